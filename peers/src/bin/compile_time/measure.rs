//! Building a generated crate with cargo and timing it; the size of its optimised code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use object::read::archive::ArchiveFile;
use object::{Object, ObjectSection, SectionKind};

use crate::Error;

/// One sort of build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// `cargo build --release`.
    Release,
    /// `cargo build`.
    Debug,
    /// `cargo check`.
    Check,
}

impl Build {
    /// Every sort, in the order of the table's columns.
    pub const ALL: [Build; 3] = [Build::Release, Build::Debug, Build::Check];

    /// The cargo arguments.
    fn args(self) -> &'static [&'static str] {
        match self {
            Build::Release => &["build", "--release"],
            Build::Debug => &["build"],
            Build::Check => &["check"],
        }
    }

    /// How errors name it.
    pub fn name(self) -> &'static str {
        match self {
            Build::Release => "release build",
            Build::Debug => "debug build",
            Build::Check => "cargo check",
        }
    }
}

/// A generated crate on disk: `dir/Cargo.toml`, `dir/src/lib.rs`, built into `dir/target`.
pub struct Crate {
    /// Its folder.
    pub dir: PathBuf,
}

impl Crate {
    /// The fastest of `runs` rebuilds of the crate alone: it is built once first (its
    /// dependencies with it), then each run touches `src/lib.rs` and times the rebuild.
    pub fn fastest_rebuild(&self, build: Build, runs: usize) -> Result<Duration, Error> {
        self.cargo(build)?;
        let mut fastest = Duration::MAX;
        for _ in 0..runs {
            self.touch()?;
            let started = Instant::now();
            let rebuilt = self.cargo(build)?;
            let took = started.elapsed();
            // A dependency rebuilt in a timed run would count its time as the crate's.
            if let Some(other) = rebuilt.iter().find(|name| *name != "generated") {
                return Err(Error::DependencyRebuilt {
                    dir: self.dir.clone(),
                    build: build.name(),
                    dependency: other.clone(),
                });
            }
            fastest = fastest.min(took);
        }
        Ok(fastest)
    }

    fn touch(&self) -> Result<(), Error> {
        let path = self.dir.join("src/lib.rs");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(SystemTime::now()))
            .map_err(|source| Error::Io { path, source })
    }

    /// Runs cargo on the crate and returns the packages it compiled (or checked).
    fn cargo(&self, build: Build) -> Result<Vec<String>, Error> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(&cargo)
            .args(build.args())
            .arg("--manifest-path")
            .arg(self.dir.join("Cargo.toml"))
            // Its own target dir, whatever CARGO_TARGET_DIR says, so variants never share one.
            .arg("--target-dir")
            .arg(self.dir.join("target"))
            // A build from the source, not an incremental reuse of the untouched file's results
            // (release builds are not incremental anyway; debug and check would be).
            .env("CARGO_INCREMENTAL", "0")
            .output()
            .map_err(|source| Error::Spawn {
                program: PathBuf::from(&cargo),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(Error::Build {
                dir: self.dir.clone(),
                build: build.name(),
                status: output.status,
                stderr: stderr.into_owned(),
            });
        }
        Ok(stderr
            .lines()
            .filter_map(|line| {
                let line = line.trim_start();
                let rest = line
                    .strip_prefix("Compiling ")
                    .or_else(|| line.strip_prefix("Checking "))?;
                rest.split_whitespace().next().map(str::to_owned)
            })
            .collect())
    }

    /// The bytes of machine code in the release rlib: the sum of the executable sections
    /// (`.text.*`, one per function) of the crate's own object files, after a release build.
    /// The embedded LLVM bitcode and the metadata are not counted.
    pub fn release_text_bytes(&self) -> Result<u64, Error> {
        let path = self.dir.join("target/release/libgenerated.rlib");
        let data = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        text_bytes(&data).map_err(|reason| Error::Rlib { path, reason })
    }
}

/// The executable sections' bytes summed over the object files of an archive.
pub fn text_bytes(bytes: &[u8]) -> Result<u64, String> {
    let archive = ArchiveFile::parse(bytes).map_err(|e| format!("not an archive: {e}"))?;
    let mut total = 0;
    let mut objects = 0;
    for member in archive.members() {
        let member = member.map_err(|e| format!("a member cannot be read: {e}"))?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        // The crate's metadata (an object file too), not code.
        if name.ends_with(".rmeta") {
            continue;
        }
        let data = member.data(bytes).map_err(|e| format!("{name}: {e}"))?;
        let file = object::File::parse(data).map_err(|e| format!("{name}: {e}"))?;
        objects += 1;
        total += file
            .sections()
            .filter(|section| section.kind() == SectionKind::Text)
            .map(|section| section.size())
            .sum::<u64>();
    }
    if objects == 0 {
        return Err("no object file in it".to_owned());
    }
    Ok(total)
}

/// Where the generated crates go by default: `target/compile-time` of this workspace.
pub fn default_out(workspace: &Path) -> PathBuf {
    workspace.join("target").join("compile-time")
}

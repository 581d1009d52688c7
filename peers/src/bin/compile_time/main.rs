//! What `#[profiled]` costs to compile (issue 16), against no attribute and against its peers.
//!
//! Generates a crate of N small functions (plus N/5 async functions and N/5 methods in one impl
//! block) per variant under `target/compile-time/<variant>/`, each with a target dir of its own,
//! and prints a markdown table of the fastest rebuild of the crate alone (its dependencies built
//! first) in release, in debug and under `cargo check`, and the size of its optimised code:
//!
//! ```sh
//! cargo run -p profilis-peers --release --bin compile_time -- --functions 500 --runs 2
//! ```

mod generate;
mod measure;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Duration;

use clap::Parser;

use generate::{Shape, Variant};
use measure::{Build, Crate};

/// Measures the compile time of `#[profilis::profiled]` against no attribute and its peers.
#[derive(Debug, Parser)]
#[command(name = "compile_time")]
struct Options {
    /// Free functions in the generated crate; a fifth as many async functions and methods are
    /// added.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    functions: u32,
    /// Timed rebuilds of each sort; the fastest is reported.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// The variants to measure, comma separated; `none` is the baseline of the per-function
    /// figures.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "none,profiled,tracing,autometrics"
    )]
    variants: Vec<Variant>,
    /// The profilis repository the `profiled` variant depends on (default: this workspace), so
    /// that two commits can be compared.
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Where the generated crates go (default: `target/compile-time` of this workspace).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Why a measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--repo` is not the root of a profilis repository.
    #[error("--repo {path}: {reason}; expected the root of a profilis repository (the folder of its top Cargo.toml, package `profilis`)")]
    NotARepo {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Cargo failed on a generated crate.
    #[error("{build} of {dir} failed ({status}):\n{stderr}")]
    Build {
        /// The generated crate.
        dir: PathBuf,
        /// Which build.
        build: &'static str,
        /// Cargo's exit status.
        status: ExitStatus,
        /// What cargo said.
        stderr: String,
    },
    /// A timed rebuild compiled more than the generated crate.
    #[error("{build} of {dir}: the dependency {dependency} was rebuilt in a timed run")]
    DependencyRebuilt {
        /// The generated crate.
        dir: PathBuf,
        /// Which build.
        build: &'static str,
        /// The dependency rebuilt.
        dependency: String,
    },
    /// The release rlib could not be read as an archive of object files.
    #[error("{path}: {reason}")]
    Rlib {
        /// The rlib.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// One variant's figures.
#[derive(Clone, Copy, Debug)]
struct Measured {
    variant: Variant,
    /// Release, debug, check: in the order of [`Build::ALL`].
    times: [Duration; 3],
    text_bytes: u64,
}

/// The workspace this binary belongs to: the default `--repo`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Checks that `path` is a profilis repository and makes it absolute.
fn profilis_repo(path: &Path) -> Result<PathBuf, Error> {
    let not_a_repo = |reason: String| Error::NotARepo {
        path: path.to_path_buf(),
        reason,
    };
    let path = path.canonicalize().map_err(|e| not_a_repo(e.to_string()))?;
    let manifest = std::fs::read_to_string(path.join("Cargo.toml"))
        .map_err(|e| not_a_repo(format!("Cargo.toml: {e}")))?;
    if !manifest
        .lines()
        .any(|line| line.trim() == "name = \"profilis\"")
    {
        return Err(not_a_repo(
            "its Cargo.toml is not the package `profilis`".to_owned(),
        ));
    }
    Ok(path)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    // Unchanged files keep their dates, so nothing is rebuilt for nothing.
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(io)
}

/// Writes the generated crate of `variant` under `out`; the repository's Cargo.lock goes with
/// it, so that its dependencies resolve to the versions the repository is tested with.
fn generate(out: &Path, variant: Variant, shape: Shape, repo: &Path) -> Result<Crate, Error> {
    let dir = out.join(variant.name());
    write(&dir.join("Cargo.toml"), &generate::manifest(variant, repo))?;
    write(&dir.join("src/lib.rs"), &generate::source(variant, shape))?;
    let lock = dir.join("Cargo.lock");
    if !lock.exists() {
        if let Ok(text) = std::fs::read_to_string(repo.join("Cargo.lock")) {
            write(&lock, &text)?;
        }
    }
    Ok(Crate { dir })
}

fn measure(krate: &Crate, variant: Variant, runs: usize) -> Result<Measured, Error> {
    let mut times = [Duration::ZERO; 3];
    for (time, build) in times.iter_mut().zip(Build::ALL) {
        eprintln!("{}: {}...", variant.name(), build.name());
        *time = krate.fastest_rebuild(build, runs)?;
        eprintln!(
            "{}: {}: {:.2} s",
            variant.name(),
            build.name(),
            time.as_secs_f64()
        );
    }
    Ok(Measured {
        variant,
        times,
        text_bytes: krate.release_text_bytes()?,
    })
}

/// The first line of a command's output, if it runs.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    output
        .status
        .success()
        .then(|| text.lines().next().unwrap_or_default().to_owned())
}

/// The markdown table, with a heading line saying what was measured.
fn table(measured: &[Measured], shape: Shape, runs: u32, repo: &Path) -> String {
    let total = shape.total() as f64;
    let baseline = measured
        .iter()
        .find(|m| m.variant == Variant::None)
        .copied();
    let mut out = String::new();
    let commit = first_line(
        "git",
        &[
            "-C",
            &repo.to_string_lossy(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    )
    .unwrap_or_else(|| "unknown".to_owned());
    let rustc = first_line("rustc", &["-V"]).unwrap_or_else(|| "rustc unknown".to_owned());
    let _ = writeln!(
        out,
        "{} functions ({} `fn`, {} `async fn`, {} methods in one impl block), fastest of {runs} \
         rebuild(s) of the crate alone, profilis at `{commit}`, {rustc}; in brackets, the cost \
         per function above no attribute.\n",
        shape.total(),
        shape.sync,
        shape.asynchronous,
        shape.methods
    );
    out.push_str(
        "| attribute | release build | debug build | `cargo check` | optimised code (`.text`) |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|\n");
    for m in measured {
        let _ = write!(out, "| {} |", m.variant.label());
        for (i, time) in m.times.iter().enumerate() {
            let _ = write!(out, " {:.2} s", time.as_secs_f64());
            if let Some(base) = baseline.filter(|_| m.variant != Variant::None) {
                let added = (time.as_secs_f64() - base.times[i].as_secs_f64()) * 1e3 / total;
                let _ = write!(out, " ({added:+.1} ms)");
            }
            out.push_str(" |");
        }
        let _ = write!(out, " {:.1} KiB", m.text_bytes as f64 / 1024.0);
        if let Some(base) = baseline.filter(|_| m.variant != Variant::None) {
            let added = (m.text_bytes as f64 - base.text_bytes as f64) / total;
            let _ = write!(out, " ({added:+.0} B)");
        }
        out.push_str(" |\n");
    }
    let find = |variant| measured.iter().find(|m| m.variant == variant).copied();
    if let (Some(base), Some(profiled), Some(tracing)) =
        (baseline, find(Variant::Profiled), find(Variant::Tracing))
    {
        let ratio = |p: f64, t: f64, b: f64| {
            if (t - b).abs() < f64::EPSILON {
                "n/a".to_owned()
            } else {
                format!("{:.2}×", (p - b) / (t - b))
            }
        };
        out.push_str("| profiled / tracing, cost above no attribute |");
        for i in 0..3 {
            let [p, t, b] = [profiled, tracing, base].map(|m| m.times[i].as_secs_f64());
            let _ = write!(out, " {} |", ratio(p, t, b));
        }
        let [p, t, b] = [profiled, tracing, base].map(|m| m.text_bytes as f64);
        let _ = writeln!(out, " {} |", ratio(p, t, b));
    }
    out
}

fn run(options: Options) -> Result<String, Error> {
    let workspace = workspace_root();
    let repo = profilis_repo(options.repo.as_deref().unwrap_or(&workspace))?;
    let out = options
        .out
        .unwrap_or_else(|| measure::default_out(&workspace));
    let shape = Shape::new(options.functions as usize);
    let mut variants = options.variants;
    variants.dedup();
    let mut measured = Vec::new();
    for variant in variants {
        let krate = generate(&out, variant, shape, &repo)?;
        measured.push(measure(&krate, variant, options.runs as usize)?);
    }
    Ok(table(&measured, shape, options.runs, &repo))
}

fn main() -> ExitCode {
    match run(Options::parse()) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("compile_time: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Variant; 4] = [
        Variant::None,
        Variant::Profiled,
        Variant::Tracing,
        Variant::Autometrics,
    ];

    /// The attributes on an item, as written (`profilis :: profiled`, ...).
    fn attributes(attrs: &[syn::Attribute]) -> Vec<String> {
        attrs
            .iter()
            .filter(|a| !a.path().is_ident("doc") && !a.path().is_ident("derive"))
            .map(|a| quote_path(a.path()))
            .collect()
    }

    fn quote_path(path: &syn::Path) -> String {
        path.segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect::<Vec<_>>()
            .join("::")
    }

    /// Every variant's source parses, has the shape asked for, and differs from the others
    /// only in its attributes: the bodies are the same.
    #[test]
    fn every_variant_has_the_same_functions_and_only_its_attributes() {
        let shape = Shape::new(12);
        assert_eq!(
            shape,
            Shape {
                sync: 12,
                asynchronous: 3,
                methods: 3
            }
        );
        let mut bodies_of_none = None;
        for variant in ALL {
            let file = syn::parse_file(&generate::source(variant, shape))
                .unwrap_or_else(|e| panic!("{variant:?}: {e}"));
            let (mut sync, mut asynchronous, mut methods) = (0, 0, 0);
            let mut bodies = Vec::new();
            let mut attrs = Vec::new();
            for item in &file.items {
                match item {
                    syn::Item::Fn(f) if f.sig.ident.to_string().starts_with("poll_") => {
                        assert!(
                            attributes(&f.attrs).is_empty(),
                            "{variant:?}: {}",
                            f.sig.ident
                        );
                    }
                    syn::Item::Fn(f) => {
                        if f.sig.asyncness.is_some() {
                            asynchronous += 1;
                        } else {
                            sync += 1;
                        }
                        attrs.push(attributes(&f.attrs));
                        bodies.push((*f.block).clone());
                    }
                    syn::Item::Impl(block) => {
                        attrs.push(attributes(&block.attrs));
                        for item in &block.items {
                            let syn::ImplItem::Fn(method) = item else {
                                panic!("{variant:?}")
                            };
                            methods += 1;
                            attrs.push(attributes(&method.attrs));
                            bodies.push(method.block.clone());
                        }
                    }
                    _ => {}
                }
            }
            assert_eq!((sync, asynchronous, methods), (12, 3, 3), "{variant:?}");
            let expected: Vec<Vec<String>> = match variant {
                Variant::None => vec![vec![]; 19],
                Variant::Profiled | Variant::Autometrics => {
                    let attr = if variant == Variant::Profiled {
                        "profilis::profiled"
                    } else {
                        "autometrics::autometrics"
                    };
                    // 15 functions, the impl block, its 3 methods bare.
                    let mut v = vec![vec![attr.to_owned()]; 16];
                    v.extend(vec![vec![]; 3]);
                    v
                }
                Variant::Tracing => {
                    let mut v = vec![vec!["tracing::instrument".to_owned()]; 15];
                    v.push(vec![]);
                    v.extend(vec![vec!["tracing::instrument".to_owned()]; 3]);
                    v
                }
            };
            assert_eq!(attrs, expected, "{variant:?}");
            match &bodies_of_none {
                None => bodies_of_none = Some(bodies),
                Some(none) => assert!(*none == bodies, "{variant:?}: bodies differ from none's"),
            }
        }
    }

    /// No two functions have the same body (the optimiser could merge them).
    #[test]
    fn bodies_differ_between_functions() {
        let source = generate::source(Variant::None, Shape::new(40));
        let file = syn::parse_file(&source).expect("parses");
        let bodies: Vec<String> = file
            .items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Fn(f) if !f.sig.ident.to_string().starts_with("poll_") => {
                    Some(format!("{:?}", f.block))
                }
                _ => None,
            })
            .collect();
        let mut unique = bodies.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), bodies.len());
    }

    /// The manifest depends on what the variant's attribute needs, and `profiled` on the
    /// repository given, its path escaped for TOML.
    #[test]
    fn manifests_name_their_dependency() {
        let repo = Path::new(r#"/tmp/a "quoted" \ repo"#);
        let profiled = generate::manifest(Variant::Profiled, repo);
        assert!(
            profiled.contains(r#"profilis = { path = "/tmp/a \"quoted\" \\ repo" }"#),
            "{profiled}"
        );
        assert!(generate::manifest(Variant::Tracing, repo).contains("tracing = \"0.1\""));
        assert!(generate::manifest(Variant::Autometrics, repo).contains("metrics-0_24"));
        let none = generate::manifest(Variant::None, repo);
        let dependencies = none
            .split("[dependencies]")
            .nth(1)
            .expect("a [dependencies] table");
        let before_workspace = dependencies.split("[workspace]").next().unwrap_or_default();
        assert!(
            before_workspace
                .lines()
                .all(|l| l.trim().is_empty() || l.starts_with('#')),
            "{none}"
        );
    }

    /// `--repo` must be a profilis repository: the error names the path and what is expected.
    #[test]
    fn a_repo_that_is_not_profilis_is_refused() {
        let dir =
            std::env::temp_dir().join(format!("compile-time-not-a-repo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"other\"\n").expect("write");
        let error = profilis_repo(&dir).expect_err("not profilis");
        let text = error.to_string();
        assert!(matches!(error, Error::NotARepo { .. }), "{text}");
        assert!(
            text.contains(&dir.to_string_lossy().into_owned()) && text.contains("`profilis`"),
            "{text}"
        );
        let missing = profilis_repo(&dir.join("absent")).expect_err("absent");
        assert!(matches!(missing, Error::NotARepo { .. }), "{missing}");
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert!(profilis_repo(&workspace_root()).is_ok());
    }

    /// The whole measurement, end to end, on the variant without dependencies and a tiny crate:
    /// it compiles in each sort of build, and the rlib's code is found and measured.
    #[test]
    fn a_tiny_crate_is_built_timed_and_measured() {
        let out = std::env::temp_dir().join(format!("compile-time-test-{}", std::process::id()));
        let shape = Shape::new(3);
        let krate = generate(&out, Variant::None, shape, &workspace_root()).expect("generated");
        let measured = measure(&krate, Variant::None, 1).expect("measured");
        assert!(
            measured.times.iter().all(|t| *t > Duration::ZERO),
            "{measured:?}"
        );
        // 5 functions and a poller of a few dozen bytes each at least, and less than a page each.
        assert!(
            (5 * 30..5 * 4096).contains(&measured.text_bytes),
            "{measured:?}"
        );
        let table = table(&[measured], shape, 1, &workspace_root());
        assert!(table.contains("| no attribute |"), "{table}");
        std::fs::remove_dir_all(&out).expect("clean up");
    }

    /// An archive with no object file in it is refused, not measured as 0 bytes.
    #[test]
    fn an_archive_without_objects_is_refused() {
        let empty = b"!<arch>\n";
        assert!(measure::text_bytes(empty).is_err());
        assert!(measure::text_bytes(b"not an archive").is_err());
    }
}

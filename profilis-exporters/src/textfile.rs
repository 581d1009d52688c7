//! The exposition written to a file for node_exporter's textfile collector
//! (`--collector.textfile.directory`): once with [`write_textfile`], or every interval by the
//! exporter ([`Exporter::textfile`](crate::Exporter::textfile)).
//!
//! A file is written atomically: the text goes to a hidden temporary file in the same
//! directory (`.<name>.<pid>.<n>.tmp`, which node_exporter does not read since it does not end
//! in `.prom`), is synced, then renamed over the target. A reader sees the old page or the
//! new one, never half of one. The temporary file is always a new one (`O_CREAT | O_EXCL`): in
//! a directory others can write to, a link planted at its name is never followed and a file
//! already there never taken over; the next name is tried.

use std::ffi::OsString;
use std::fs;
use std::hash::BuildHasher;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metric_names::TEXTFILE_FAILURES_TOTAL;

/// Why the exposition could not be written to a textfile. Every variant names the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TextfileError {
    /// The file name does not end in `.prom`: node_exporter's textfile collector reads only
    /// `*.prom` files.
    #[error("textfile {path:?}: the file name must end in `.prom` (node_exporter's textfile collector reads only *.prom files)")]
    NotProm {
        /// The path given.
        path: PathBuf,
    },
    /// The directory of the file does not exist (or is not a directory).
    #[error("textfile {path:?}: its directory {dir:?} does not exist or is not a directory")]
    NoDirectory {
        /// The path given.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// The temporary file could not be written or renamed over the target (a directory that
    /// is not writable, a full disk, a directory in the way).
    #[error("textfile {path:?}: could not be written: {source}")]
    Write {
        /// The path given.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The interval of the periodic writer is zero.
    #[error("textfile {path:?}: the write interval must be more than zero (got {interval:?})")]
    Interval {
        /// The path given.
        path: PathBuf,
        /// The interval given.
        interval: Duration,
    },
}

/// Checks that `path` names a `*.prom` file (its directory is checked when writing).
pub(crate) fn check_name(path: &Path) -> Result<(), TextfileError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.len() > ".prom".len() && name.ends_with(".prom") {
        Ok(())
    } else {
        Err(TextfileError::NotProm {
            path: path.to_owned(),
        })
    }
}

/// Numbers the temporary files of this process, so two writers of one path never share one.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `text` (an exposition in the Prometheus text format) to `path` atomically: a
/// temporary file in the same directory, synced, then renamed over `path`.
///
/// The text is written as it is. For profilis's own page, use
/// [`ExporterGuard::write_textfile`](crate::ExporterGuard::write_textfile), which leaves out
/// what node_exporter would refuse (see [`Exporter::textfile`](crate::Exporter::textfile)).
///
/// ```no_run
/// # use profilis_exporters as profilis;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A page of your own, made however you like:
/// let page = "# HELP batch_rows_total Rows imported.\n# TYPE batch_rows_total counter\nbatch_rows_total 42\n";
/// profilis::write_textfile("/var/lib/prometheus/node-exporter/batch.prom", page)?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`TextfileError::NotProm`] if the name does not end in `.prom`,
/// [`TextfileError::NoDirectory`] if its directory does not exist, [`TextfileError::Write`]
/// if the file cannot be written or renamed; each names `path`. A failed write leaves the
/// previous file as it was and no temporary file behind.
pub fn write_textfile(path: impl AsRef<Path>, text: &str) -> Result<(), TextfileError> {
    let path = path.as_ref();
    check_name(path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(TextfileError::NoDirectory {
            path: path.to_owned(),
            dir: dir.to_owned(),
        });
    }
    let (temp, file) = create_temp(dir, path).map_err(|source| TextfileError::Write {
        path: path.to_owned(),
        source,
    })?;
    let written = write_and_sync(file, text).and_then(|()| fs::rename(&temp, path));
    written.map_err(|source| {
        // The temporary file is this writer's own (made by `create_temp`), so removing it
        // removes nothing of anyone else's.
        let _ = fs::remove_file(&temp);
        TextfileError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// Most names tried for a temporary file before giving up: each name already taken (by a
/// file or link another process left there) costs one.
const TEMP_ATTEMPTS: u32 = 64;

/// Names tried as `.<name>.<pid>.<n>.tmp` before the rest add a random part: names taken in
/// advance (by someone who can write to the directory) cannot stop the writer.
const PREDICTABLE_ATTEMPTS: u32 = 8;

/// Makes a new temporary file next to `path`, `.<name>.<pid>.<n>.tmp`, and opens it for
/// writing. The name must not exist yet (`O_CREAT | O_EXCL`): a link planted at that name in a
/// directory others can write to is not followed (which would write the page, or truncate,
/// whatever file it points to, with this process's rights), and a file left there is not
/// taken over; the next name is tried instead, after [`PREDICTABLE_ATTEMPTS`] with a random
/// part (`.<name>.<pid>.<n>.<random>.tmp`), so names taken in advance cannot stop it.
fn create_temp(dir: &Path, path: &Path) -> io::Result<(PathBuf, fs::File)> {
    let mut last_error = None;
    for attempt in 0..TEMP_ATTEMPTS {
        let mut temp_name = OsString::from(".");
        temp_name.push(path.file_name().unwrap_or_default());
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        temp_name.push(format!(".{}.{seq}", std::process::id()));
        if attempt >= PREDICTABLE_ATTEMPTS {
            // A hasher keyed at random for this process: not to be guessed from outside.
            let random = std::collections::hash_map::RandomState::new().hash_one(seq);
            temp_name.push(format!(".{random:016x}"));
        }
        temp_name.push(".tmp");
        let temp = dir.join(temp_name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()))
}

fn write_and_sync(mut file: fs::File, text: &str) -> io::Result<()> {
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// The exporter's periodic writer: a thread that writes the exposition to one file every
/// interval. The application never waits on it; [`TextfileWriter::finish`] stops it and
/// writes a last time.
pub(crate) struct TextfileWriter {
    path: PathBuf,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TextfileWriter {
    /// Writes once (so a directory that cannot be written is an error now, naming the path),
    /// then starts the thread.
    pub(crate) fn start(
        path: PathBuf,
        interval: Duration,
        render: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> Result<TextfileWriter, TextfileError> {
        metrics::counter!(TEXTFILE_FAILURES_TOTAL).absolute(0);
        let (stop, stopped) = mpsc::channel::<()>();
        let (to, from) = (path.clone(), Arc::clone(&render));
        let thread = std::thread::Builder::new()
            .name("profilis-textfile".to_owned())
            .spawn(move || {
                let mut failing = false;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    failing = report(write_textfile(&to, &from()), failing);
                }
            })
            .map_err(|source| TextfileError::Write {
                path: path.clone(),
                source,
            })?;
        // The first write once nothing else can fail, so that a failed start leaves no file;
        // if it fails, the thread (waiting out its first interval) stops.
        if let Err(e) = write_textfile(&path, &render()) {
            drop(stop);
            let _ = thread.join();
            return Err(e);
        }
        Ok(TextfileWriter {
            path,
            render,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread and writes the exposition a last time.
    pub(crate) fn finish(&mut self) -> Result<(), TextfileError> {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let result = write_textfile(&self.path, &(self.render)());
        if result.is_err() {
            metrics::counter!(TEXTFILE_FAILURES_TOTAL).increment(1);
        }
        result
    }
}

/// Counts a failed periodic write, and says on stderr when writes start or stop failing
/// (not at every interval). Returns whether the writer is now failing.
fn report(result: Result<(), TextfileError>, failing: bool) -> bool {
    match result {
        Ok(()) => {
            if failing {
                eprintln!("profilis: textfile writes succeed again");
            }
            false
        }
        Err(e) => {
            metrics::counter!(TEXTFILE_FAILURES_TOTAL).increment(1);
            if !failing {
                eprintln!(
                    "profilis: {e} (counted in {TEXTFILE_FAILURES_TOTAL}; retried every interval)"
                );
            }
            true
        }
    }
}

impl Drop for TextfileWriter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.finish() {
                eprintln!("profilis: last textfile write failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_end_in_prom() {
        for bad in ["metrics.txt", ".prom", "dir/", "metrics.prom.tmp", ""] {
            assert!(
                matches!(
                    check_name(Path::new(bad)),
                    Err(TextfileError::NotProm { .. })
                ),
                "{bad:?} accepted"
            );
        }
        check_name(Path::new("/x/batch.prom")).unwrap();
        check_name(Path::new("batch.prom")).unwrap();
    }
}

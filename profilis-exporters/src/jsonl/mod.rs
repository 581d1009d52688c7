//! The rotating JSONL event sink ([`JsonlSink`], documented there) and its parts:
//! `config` (settings and their checks), `writer` (appending lines, retries, the bounded
//! pending buffer), `rotation` (rotation, retention, shutdown), `recovery` (a crash's active
//! file; opening the active file), `files` (opening a file without following a link or
//! blocking on a FIFO; the directory's lock) and `naming` (rotated file names and their UTC
//! stamps, the names beside the active file).

use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use profilis_core::{Batch, Sink, SinkError};

mod config;
mod files;
mod naming;
mod recovery;
mod rotation;
mod writer;

pub use config::{JsonlConfig, JsonlError};

use crate::json;
use crate::metric_names::{
    JSONL_DROPPED_LINES_TOTAL, JSONL_REMOVED_FILES_TOTAL, JSONL_ROTATED_FILES_TOTAL,
};
use naming::RotatedKey;
use writer::probe;

#[derive(Debug, Default)]
struct Counters {
    dropped_lines: AtomicU64,
    rotated_files: AtomicU64,
    removed_files: AtomicU64,
    failed_writes: AtomicU64,
}

/// The counters of one [`JsonlSink`], readable from any thread while the sink runs on the
/// collector's (from [`JsonlSink::counters`]).
#[derive(Debug, Clone)]
pub struct JsonlCounters(Arc<Counters>);

impl JsonlCounters {
    /// Lines dropped: the oldest pending lines when the pending buffer was full, and lines that
    /// could not be written by the last flush (or, without one, before the sink was dropped).
    pub fn dropped_lines(&self) -> u64 {
        self.0.dropped_lines.load(Ordering::Relaxed)
    }

    /// Active files rotated.
    pub fn rotated_files(&self) -> u64 {
        self.0.rotated_files.load(Ordering::Relaxed)
    }

    /// Rotated files deleted by retention.
    pub fn removed_files(&self) -> u64 {
        self.0.removed_files.load(Ordering::Relaxed)
    }

    /// Writes and flushes that returned an error.
    pub fn failed_writes(&self) -> u64 {
        self.0.failed_writes.load(Ordering::Relaxed)
    }
}

/// The rotating JSONL event sink: every event as one line of JSON (its keys, and how they
/// compare with Python profilis's: [`JsonEvent`](crate::JsonEvent)) appended to a file in a directory, rotated by size and age, with
/// retention, crash recovery and retries.
///
/// # Files
///
/// The directory ([`JsonlConfig::new`]) is created if missing; a relative one is made absolute
/// once, when the sink starts ([`JsonlSink::config`] shows it so), so a later `chdir` of the
/// process does not move the files.
///
/// Events are appended to the *active file*, `profilis-active.jsonl.tmp` by default
/// ([`JsonlConfig::active_name`]). Rotation renames it (an atomic `rename` in the same
/// directory) to `profilis-YYYYmmdd-HHMMSS.jsonl`, the time being UTC; if that name is taken
/// (two rotations in the same second) the file becomes `profilis-YYYYmmdd-HHMMSS-1.jsonl`, then
/// `-2`, ..., so no rotation overwrites another (the number only grows within a second, even
/// after retention deleted a file of that second). A rotated file is complete and never written
/// again; files sort oldest first by (time, number).
///
/// The sink writes only to regular files it opened itself: never through a symbolic link, and
/// never to a FIFO, a device or a socket (`O_NOFOLLOW` and a non-blocking open, then the open
/// file is checked; on Unix a file with other hard links, which another name reaches, is not
/// the sink's own either). If something other than a regular file is at the active path, at start or
/// put there while the sink runs, it is left as it is (not followed, cut, written, renamed or
/// rotated) and the sink writes to a new file beside it, `profilis-active.jsonl.tmp.1` (`.2`,
/// ... if taken), which is rotated like the active file; the next write or flush then returns
/// an error naming the path (counted as a sink failure and in
/// [`JsonlCounters::failed_writes`]; no line is lost). After each rotation the sink tries the
/// active path again. A file beside the active path that a crash left is recovered at the next
/// start like the active file.
///
/// # Rotation
///
/// - By size: once the active file holds [`JsonlConfig::rotate_bytes`] bytes (64 MiB by default)
///   it is rotated after the batch that reached the limit. Lines are never split between files.
/// - By age ([`JsonlConfig::rotate_every`], off by default): an active file whose first line is
///   that old is rotated. Both checks run when a batch arrives (the collector sends one each
///   `flush_interval` while anything is recorded), and an empty file is never rotated.
/// - At shutdown ([`Sink::flush`], run when the exporter's guard or the collector is dropped)
///   everything pending is written and the active file is rotated, so the directory only holds
///   complete `.jsonl` files afterwards.
///
/// # Retention
///
/// [`JsonlConfig::keep_files`] (at most N rotated files) and [`JsonlConfig::keep_bytes`] (at most
/// M bytes in rotated files), both optional: after each rotation the oldest rotated files are
/// deleted until both limits hold, so the disk cannot fill. Only names of the rotated form are
/// counted or deleted. `keep_bytes` counts every rotated file, the newest included, so set it
/// well above `rotate_bytes`. Names only grow, so the lowest is the oldest: if the wall clock
/// steps back behind the newest name (NTP, a restored VM), a rotated file takes that name's
/// second and a greater `-N` instead of an earlier time, and retention still deletes the oldest
/// files, never the one just rotated. (So a rotated file named far ahead, by a clock far wrong
/// or by hand, holds the names at its second until the clock passes it: remove it to have
/// names tell the time again.)
///
/// # Durability
///
/// Each line is complete or absent. A batch is serialized into one buffer and written with one
/// `write_all` to a file opened in append mode. When the sink starts and finds an active file
/// (the process was killed, say with `kill -9`, while writing), it cuts a trailing partial line
/// (truncates after the last `\n`) and rotates the file before writing anew, so every complete
/// line written before the crash is kept. Lines reach the operating system on each batch; the
/// file is synced to disk only at shutdown, so a machine crash (not a process crash) can still
/// lose the last lines the kernel had not written out.
///
/// # Failures
///
/// A full disk, a permission error or a vanished directory make [`Sink::write`] return an `Err`,
/// which the collector counts as a sink failure (`profilis_sink_failures_total`); the sink never
/// panics and never blocks the application (it runs on the collector thread). The lines that
/// could not be written stay in a pending buffer and are retried with the next batches after a
/// backoff that doubles from 100 ms up to 10 s ([`JsonlConfig::retry_backoff`], whose longest
/// wait is at most a day: a longer one is a [`JsonlError::Setting`]); batches that
/// arrive while waiting are added to the buffer and reported as failed too. A directory that
/// vanished is created again on retry; an active file that was deleted or moved is reopened. The
/// buffer is bounded ([`JsonlConfig::pending_bytes`], 16 MiB by default): beyond it the oldest
/// pending lines are dropped and counted ([`JsonlCounters::dropped_lines`] and
/// `profilis_jsonl_dropped_lines_total`). Rotated and deleted files are counted too
/// (`profilis_jsonl_rotated_files_total`, `profilis_jsonl_removed_files_total`).
///
/// At shutdown ([`Sink::flush`]) the pending lines get one more try, whatever the backoff.
/// Lines that still cannot be written are lost, and said so: they are counted as dropped (in
/// the metric while the listener still serves), the flush fails with an error naming their
/// count and the directory, which the collector prints on stderr, and the `shutdown()` of the
/// exporter's guard or of the collector reports them
/// ([`ShutdownReport::lost`](profilis_core::ShutdownReport::lost), and `is_clean()` is false).
///
/// # One sink per directory
///
/// One sink writes to a directory at a time, and this is enforced: the sink holds an exclusive
/// lock on the directory for its whole life (`flock`, taken without waiting, on the directory
/// itself on Unix so that no file is added to it; elsewhere on a file `.profilis-jsonl.lock`
/// in it), and [`JsonlSink::new`] fails with [`JsonlError::InUse`] naming the directory while
/// another sink, of this process or another, holds it. (Two writers on one directory lost
/// lines: a rotation's rename replaced a file the other had just made.) The lock goes with the
/// sink, or with its process if that is killed. If the directory is moved or removed while
/// the sink runs, the sink makes it anew and locks that one too (on Unix). Where the file
/// system has no such locks (some
/// network file systems) the rule is not enforced. [`Exporter::jsonl`](crate::Exporter::jsonl)
/// given two configurations naming one directory fails at install with
/// [`JsonlError::SharedDir`].
///
/// # Example
///
/// ```no_run
/// # use profilis_exporters as profilis;
/// use std::time::Duration;
/// use profilis::{JsonlConfig, JsonlSink};
///
/// # fn main() -> Result<(), profilis::Error> {
/// let config = JsonlConfig::new("/var/log/shop/profilis")
///     .rotate_bytes(16 * 1024 * 1024)
///     .rotate_every(Duration::from_secs(3600))
///     .keep_files(48)
///     .keep_bytes(1024 * 1024 * 1024);
/// // With the exporter: the directory is checked by `install`, and dropping the guard
/// // writes the last events, rotates the active file and frees the directory.
/// let profilis = profilis::Exporter::new().jsonl(config.clone()).install()?;
/// // ... the application runs ...
/// drop(profilis);
/// // Or as a sink of your own collector: one sink writes to a directory at a time, so not
/// // while the exporter's runs (that would be `JsonlError::InUse`).
/// let sink = JsonlSink::new(config)?;
/// # drop(sink);
/// # Ok(()) }
/// ```
pub struct JsonlSink {
    config: JsonlConfig,
    active: PathBuf,
    /// The active file, opened in append mode; `None` until needed again after a failure or a
    /// rotation.
    file: Option<File>,
    /// Bytes in the active file (all complete lines).
    active_bytes: u64,
    /// When the first line of the active file was written (for age rotation).
    first_line_at: Option<Instant>,
    /// Serialized lines not yet written: the current batch, plus lines kept for a retry.
    pending: Vec<u8>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The newest rotated name: a later rotation in the same second takes a greater number,
    /// even if retention has freed a smaller one.
    newest: Option<RotatedKey>,
    counters: JsonlCounters,
    /// Set when something other than a regular file was found at the active path and the
    /// sink moved beside it: the failure the next write or flush reports.
    not_regular: Option<String>,
    /// The directory's lock, held for the sink's life (`None` where locks are not supported);
    /// taken again if the directory is made anew ([`JsonlSink::relock_if_made_anew`]).
    #[cfg_attr(not(unix), allow(dead_code))]
    lock: Option<File>,
}

impl JsonlSink {
    /// Creates the directory, checks that a file can be created and written in it, recovers an
    /// active file left by a crash (cutting a partial last line and rotating it), applies
    /// retention and opens a new active file.
    ///
    /// # Errors
    /// [`JsonlError::Setting`] for a setting that cannot be used; [`JsonlError::Dir`] naming the
    /// directory if it cannot be created or written (for instance a path under a regular file);
    /// [`JsonlError::InUse`] naming it if another sink writes to it.
    pub fn new(mut config: JsonlConfig) -> Result<JsonlSink, JsonlError> {
        config.validate()?;
        config.dir = config.absolute_dir()?;
        let dir = config.dir.clone();
        let dir_error = |source| JsonlError::Dir {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&config.dir).map_err(dir_error)?;
        let lock = match files::lock_dir(&config.dir) {
            Ok(lock) => lock,
            Err(files::LockError::InUse) => return Err(JsonlError::InUse { path: dir }),
            Err(files::LockError::Io(e)) => return Err(dir_error(e)),
        };
        probe(&config.dir).map_err(dir_error)?;
        for name in [
            JSONL_ROTATED_FILES_TOTAL,
            JSONL_REMOVED_FILES_TOTAL,
            JSONL_DROPPED_LINES_TOTAL,
        ] {
            metrics::counter!(name).increment(0);
        }
        let mut sink = JsonlSink {
            active: config.active_path(),
            backoff: config.retry_initial,
            config,
            file: None,
            active_bytes: 0,
            first_line_at: None,
            pending: Vec::with_capacity(64 * 1024),
            retry_at: None,
            newest: None,
            counters: JsonlCounters(Arc::default()),
            not_regular: None,
            lock,
        };
        sink.recover().map_err(dir_error)?;
        Ok(sink)
    }

    /// The settings in use.
    pub fn config(&self) -> &JsonlConfig {
        &self.config
    }

    /// A handle on this sink's counters that stays readable after the sink is handed to a
    /// collector.
    pub fn counters(&self) -> JsonlCounters {
        self.counters.clone()
    }

    /// Lines dropped so far (see [`JsonlCounters::dropped_lines`]).
    pub fn dropped_lines(&self) -> u64 {
        self.counters.dropped_lines()
    }

    /// Bytes of lines waiting for a retry.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }
}

impl Sink for JsonlSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        for event in batch.events {
            json::write_line(&mut self.pending, event);
        }
        self.push(Instant::now())
    }

    /// Writes every pending line (whatever the backoff) and rotates the active file. Lines
    /// that cannot be written now are lost: counted as dropped, and named in the error (see
    /// "Failures" above).
    fn flush(&mut self) -> Result<(), SinkError> {
        if let Err(e) = self.write_pending() {
            return Err(self.lose_pending(e));
        }
        match self.finish_active() {
            Ok(()) => {
                self.retry_at = None;
                self.backoff = self.config.retry_initial;
                self.report_not_regular()
            }
            Err(e) => {
                self.counters
                    .0
                    .failed_writes
                    .fetch_add(1, Ordering::Relaxed);
                Err(SinkError::with_source(
                    format!(
                        "cannot finish JSONL file {} at shutdown (sync, rotation or \
                         retention failed); no line is lost: the next start rotates a file \
                         left active",
                        self.active.display()
                    ),
                    e,
                ))
            }
        }
    }

    fn name(&self) -> &str {
        "jsonl"
    }
}

impl Drop for JsonlSink {
    /// For a sink dropped without its last flush (a collector always flushes): one last try
    /// for lines still pending (the next start rotates the active file); lines that still
    /// cannot be written are counted as dropped.
    fn drop(&mut self) {
        if !self.pending.is_empty() && self.write_pending().is_err() {
            self.count_dropped(count_lines(&self.pending));
        }
    }
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSink")
            .field("active", &self.active)
            .field("active_bytes", &self.active_bytes)
            .field("pending_bytes", &self.pending.len())
            .field("retry_at", &self.retry_at)
            .finish_non_exhaustive()
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

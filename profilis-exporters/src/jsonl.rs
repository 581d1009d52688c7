//! The rotating JSONL event sink: every event as one line of JSON (the keys of Python profilis,
//! see [`crate::json`]) appended to a file in a directory, rotated by size and age, with
//! retention, crash recovery and retries.
//!
//! # Files
//!
//! Events are appended to the *active file*, `profilis-active.jsonl.tmp` by default
//! ([`JsonlConfig::active_name`]). Rotation renames it (an atomic `rename` in the same
//! directory) to `profilis-YYYYmmdd-HHMMSS.jsonl`, the time being UTC; if that name is taken
//! (two rotations in the same second) the file becomes `profilis-YYYYmmdd-HHMMSS-1.jsonl`, then
//! `-2`, ..., so no rotation overwrites another (the number only grows within a second, even
//! after retention deleted a file of that second). A rotated file is complete and never written
//! again; files sort oldest first by (time, number).
//!
//! # Rotation
//!
//! - By size: once the active file holds [`JsonlConfig::rotate_bytes`] bytes (64 MiB by default)
//!   it is rotated after the batch that reached the limit. Lines are never split between files.
//! - By age ([`JsonlConfig::rotate_every`], off by default): an active file whose first line is
//!   that old is rotated. Both checks run when a batch arrives (the collector sends one each
//!   `flush_interval` while anything is recorded), and an empty file is never rotated.
//! - At shutdown ([`Sink::flush`], run when the exporter's guard or the collector is dropped)
//!   everything pending is written and the active file is rotated, so the directory only holds
//!   complete `.jsonl` files afterwards.
//!
//! # Retention
//!
//! [`JsonlConfig::keep_files`] (at most N rotated files) and [`JsonlConfig::keep_bytes`] (at most
//! M bytes in rotated files), both optional: after each rotation the oldest rotated files are
//! deleted until both limits hold, so the disk cannot fill. Only names of the rotated form are
//! counted or deleted. `keep_bytes` counts every rotated file, the newest included, so set it
//! well above `rotate_bytes`.
//!
//! # Durability
//!
//! Each line is complete or absent. A batch is serialized into one buffer and written with one
//! `write_all` to a file opened in append mode. When the sink starts and finds an active file
//! (the process was killed, say with `kill -9`, while writing), it cuts a trailing partial line
//! (truncates after the last `\n`) and rotates the file before writing anew, so every complete
//! line written before the crash is kept. Lines reach the operating system on each batch; the
//! file is synced to disk only at shutdown, so a machine crash (not a process crash) can still
//! lose the last lines the kernel had not written out.
//!
//! # Failures
//!
//! A full disk, a permission error or a vanished directory make [`Sink::write`] return an `Err`,
//! which the collector counts as a sink failure (`profilis_sink_failures_total`); the sink never
//! panics and never blocks the application (it runs on the collector thread). The lines that
//! could not be written stay in a pending buffer and are retried with the next batches after a
//! backoff that doubles from 100 ms up to 10 s ([`JsonlConfig::retry_backoff`]); batches that
//! arrive while waiting are added to the buffer and reported as failed too. A directory that
//! vanished is created again on retry; an active file that was deleted or moved is reopened. The
//! buffer is bounded ([`JsonlConfig::pending_bytes`], 16 MiB by default): beyond it the oldest
//! pending lines are dropped and counted ([`JsonlCounters::dropped_lines`] and
//! `profilis_jsonl_dropped_lines_total`). Rotated and deleted files are counted too
//! (`profilis_jsonl_rotated_files_total`, `profilis_jsonl_removed_files_total`).
//!
//! One sink writes to a directory at a time.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use profilis_exporters::jsonl::{JsonlConfig, JsonlSink};
//!
//! # fn main() -> Result<(), profilis_exporters::Error> {
//! let config = JsonlConfig::new("/var/log/shop/profilis")
//!     .rotate_bytes(16 * 1024 * 1024)
//!     .rotate_every(Duration::from_secs(3600))
//!     .keep_files(48)
//!     .keep_bytes(1024 * 1024 * 1024);
//! // With the exporter: the directory is checked by `install`, and dropping the guard
//! // writes the last events and rotates the active file.
//! let _profilis = profilis_exporters::Exporter::new().jsonl(config.clone()).install()?;
//! // Or as a sink of your own collector.
//! let sink = JsonlSink::new(config)?;
//! # drop(sink);
//! # Ok(()) }
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use profilis_core::{Batch, Sink, SinkError};

use crate::json;

/// Default name of the active file.
pub const DEFAULT_ACTIVE_NAME: &str = "profilis-active.jsonl.tmp";
/// Default size at which the active file is rotated: 64 MiB.
pub const DEFAULT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// Default bound of the buffer of lines waiting for a retry: 16 MiB.
pub const DEFAULT_PENDING_BYTES: usize = 16 * 1024 * 1024;
/// Default first wait before retrying a failed write.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(100);
/// Default longest wait between retries.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);

/// Counter of active files rotated.
pub const ROTATED_FILES_TOTAL: &str = "profilis_jsonl_rotated_files_total";
/// Counter of rotated files deleted by retention.
pub const REMOVED_FILES_TOTAL: &str = "profilis_jsonl_removed_files_total";
/// Counter of lines dropped because the pending buffer was full (or could not be written at
/// shutdown).
pub const DROPPED_LINES_TOTAL: &str = "profilis_jsonl_dropped_lines_total";

const ROTATED_PREFIX: &str = "profilis-";
const ROTATED_SUFFIX: &str = ".jsonl";
/// A pending buffer grown past this by a failure is shrunk back once written.
const SHRINK_ABOVE: usize = 4 * 1024 * 1024;

/// Why a JSONL sink could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonlError {
    /// The directory cannot be created, or a file in it cannot be created or written.
    #[error("JSONL directory {} cannot be created or written: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A setting that cannot be used.
    #[error("JSONL setting {name} = {value} is not allowed: expected {expected}")]
    Setting {
        /// The setting (its builder method).
        name: &'static str,
        /// The rejected value.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
}

/// Settings of a [`JsonlSink`]: the directory, rotation, retention and retries.
#[derive(Debug, Clone)]
#[must_use = "the settings do nothing until given to JsonlSink::new or Exporter::jsonl"]
pub struct JsonlConfig {
    dir: PathBuf,
    active_name: String,
    rotate_bytes: u64,
    rotate_every: Option<Duration>,
    keep_files: Option<usize>,
    keep_bytes: Option<u64>,
    pending_bytes: usize,
    retry_initial: Duration,
    retry_max: Duration,
}

impl JsonlConfig {
    /// Files in `dir` (created if missing), every other setting at its default.
    pub fn new(dir: impl Into<PathBuf>) -> JsonlConfig {
        JsonlConfig {
            dir: dir.into(),
            active_name: DEFAULT_ACTIVE_NAME.to_owned(),
            rotate_bytes: DEFAULT_ROTATE_BYTES,
            rotate_every: None,
            keep_files: None,
            keep_bytes: None,
            pending_bytes: DEFAULT_PENDING_BYTES,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
        }
    }

    /// Name of the active file in the directory (default [`DEFAULT_ACTIVE_NAME`]). A plain file
    /// name that is not of the rotated form `profilis-*.jsonl`.
    pub fn active_name(mut self, name: impl Into<String>) -> Self {
        self.active_name = name.into();
        self
    }

    /// Rotate the active file once it holds this many bytes (default 64 MiB; at least 1).
    pub fn rotate_bytes(mut self, bytes: u64) -> Self {
        self.rotate_bytes = bytes;
        self
    }

    /// Also rotate the active file once its first line is this old (default: never).
    pub fn rotate_every(mut self, age: Duration) -> Self {
        self.rotate_every = Some(age);
        self
    }

    /// Keep at most this many rotated files, deleting the oldest (default: all; at least 1).
    pub fn keep_files(mut self, files: usize) -> Self {
        self.keep_files = Some(files);
        self
    }

    /// Keep at most this many bytes in rotated files, deleting the oldest (default: all; at
    /// least 1).
    pub fn keep_bytes(mut self, bytes: u64) -> Self {
        self.keep_bytes = Some(bytes);
        self
    }

    /// Most bytes of lines kept for a retry while writes fail (default 16 MiB; at least 1);
    /// beyond it the oldest lines are dropped and counted.
    pub fn pending_bytes(mut self, bytes: usize) -> Self {
        self.pending_bytes = bytes;
        self
    }

    /// After a failed write, wait `initial` before retrying, then twice as long after each
    /// further failure, at most `max` (default 100 ms and 10 s).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the active file.
    pub fn active_path(&self) -> PathBuf {
        self.dir.join(&self.active_name)
    }

    /// Checks every setting (not the directory: [`JsonlSink::new`] does).
    ///
    /// # Errors
    /// [`JsonlError::Setting`] naming the first setting that cannot be used.
    pub fn validate(&self) -> Result<(), JsonlError> {
        let name = self.active_name.as_str();
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(['/', '\\'])
            || parse_rotated(name).is_some()
        {
            return Err(JsonlError::Setting {
                name: "active_name",
                value: format!("{name:?}"),
                expected: "a plain file name, not of the rotated form profilis-*.jsonl",
            });
        }
        let at_least_one = |name: &'static str, value: u64| {
            if value == 0 {
                Err(JsonlError::Setting {
                    name,
                    value: "0".to_owned(),
                    expected: "at least 1",
                })
            } else {
                Ok(())
            }
        };
        at_least_one("rotate_bytes", self.rotate_bytes)?;
        at_least_one("pending_bytes", self.pending_bytes as u64)?;
        if let Some(files) = self.keep_files {
            at_least_one("keep_files", files as u64)?;
        }
        if let Some(bytes) = self.keep_bytes {
            at_least_one("keep_bytes", bytes)?;
        }
        if self.rotate_every == Some(Duration::ZERO) {
            return Err(JsonlError::Setting {
                name: "rotate_every",
                value: "0s".to_owned(),
                expected: "more than zero",
            });
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            return Err(JsonlError::Setting {
                name: "retry_backoff",
                value: format!("{:?}, {:?}", self.retry_initial, self.retry_max),
                expected: "an initial wait above zero and a maximum at least as long",
            });
        }
        Ok(())
    }
}

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
    /// could not be written before the sink was dropped.
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

/// The rotating JSONL sink. See the [module docs](self) for files, rotation, retention,
/// durability and failure handling.
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
}

impl JsonlSink {
    /// Creates the directory, checks that a file can be created and written in it, recovers an
    /// active file left by a crash (cutting a partial last line and rotating it), applies
    /// retention and opens a new active file.
    ///
    /// # Errors
    /// [`JsonlError::Setting`] for a setting that cannot be used; [`JsonlError::Dir`] naming the
    /// directory if it cannot be created or written (for instance a path under a regular file).
    pub fn new(config: JsonlConfig) -> Result<JsonlSink, JsonlError> {
        config.validate()?;
        let dir = config.dir.clone();
        let dir_error = |source| JsonlError::Dir {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&config.dir).map_err(dir_error)?;
        probe(&config.dir).map_err(dir_error)?;
        for name in [
            ROTATED_FILES_TOTAL,
            REMOVED_FILES_TOTAL,
            DROPPED_LINES_TOTAL,
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

    /// At start: a non-empty active file left by an earlier run is cut after its last complete
    /// line and rotated, then a new active file is opened.
    fn recover(&mut self) -> io::Result<()> {
        self.newest = rotated_files(&self.config.dir)?
            .into_iter()
            .map(|(key, _, _)| key)
            .max();
        if self.active.try_exists()? {
            self.open_active()?;
            if self.active_bytes > 0 {
                self.rotate()?;
            }
        }
        self.apply_retention()?;
        if self.file.is_none() {
            self.open_active()?;
        }
        Ok(())
    }

    /// Opens (or creates, with the directory) the active file in append mode, cutting a
    /// trailing partial line.
    fn open_active(&mut self) -> io::Result<()> {
        self.file = None;
        fs::create_dir_all(&self.config.dir)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.active)?;
        let len = file.metadata()?.len();
        let complete = complete_len(&mut file, len)?;
        if complete < len {
            file.set_len(complete)?;
        }
        self.active_bytes = complete;
        if complete == 0 {
            self.first_line_at = None;
        } else if self.first_line_at.is_none() {
            self.first_line_at = Some(Instant::now());
        }
        self.file = Some(file);
        Ok(())
    }

    /// Whether the open active file is no longer the one at the active path (deleted, moved,
    /// or its directory removed): then it is reopened, so lines never go to a lost file.
    fn file_moved(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            match (file.metadata(), fs::metadata(&self.active)) {
                (Ok(open), Ok(at_path)) => {
                    open.ino() != at_path.ino() || open.dev() != at_path.dev()
                }
                _ => true,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = file;
            !self.active.exists()
        }
    }

    /// Writes every pending line to the active file with one `write_all`. On failure the
    /// complete lines that reached the file are taken out of the buffer and a partial one is
    /// cut from the file, so a retry writes each line exactly once.
    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.file.is_none() || self.file_moved() {
            self.open_active()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("the active file is not open"));
        };
        let before = self.active_bytes;
        let mut written = 0;
        let result = loop {
            if written == self.pending.len() {
                break Ok(());
            }
            match file.write(&self.pending[written..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if before == 0 && written > 0 {
            self.first_line_at = Some(Instant::now());
        }
        match result {
            Ok(()) => {
                self.active_bytes += written as u64;
                self.pending.clear();
                if self.pending.capacity() > SHRINK_ABOVE {
                    self.pending.shrink_to(64 * 1024);
                }
                Ok(())
            }
            Err(e) => {
                let complete = self.pending[..written]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                self.pending.drain(..complete);
                self.active_bytes = before + complete as u64;
                // If the cut fails too, reopening cuts after the last complete line.
                if written > complete && file.set_len(self.active_bytes).is_err() {
                    self.file = None;
                }
                Err(e)
            }
        }
    }

    fn rotate_if_due(&mut self, now: Instant) -> io::Result<()> {
        if self.active_bytes == 0 {
            return Ok(());
        }
        let by_size = self.active_bytes >= self.config.rotate_bytes;
        let by_age = match (self.config.rotate_every, self.first_line_at) {
            (Some(every), Some(first)) => now.saturating_duration_since(first) >= every,
            _ => false,
        };
        if by_size || by_age {
            self.rotate()
        } else {
            Ok(())
        }
    }

    /// Renames the active file to the first free rotated name of this second, then applies
    /// retention. The next write opens a new active file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let (key, target) = free_rotated_path(&self.config.dir, SystemTime::now(), self.newest)?;
        fs::rename(&self.active, &target)?;
        self.newest = Some(key);
        self.active_bytes = 0;
        self.first_line_at = None;
        self.counters
            .0
            .rotated_files
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!(ROTATED_FILES_TOTAL).increment(1);
        self.apply_retention()
    }

    /// Deletes the oldest rotated files until `keep_files` and `keep_bytes` hold.
    fn apply_retention(&mut self) -> io::Result<()> {
        let (keep_files, keep_bytes) = (self.config.keep_files, self.config.keep_bytes);
        if keep_files.is_none() && keep_bytes.is_none() {
            return Ok(());
        }
        let mut rotated = rotated_files(&self.config.dir)?;
        rotated.sort_unstable_by_key(|(key, _, _)| *key);
        let mut files = rotated.len();
        let mut bytes: u64 = rotated.iter().map(|(_, _, len)| len).sum();
        for (_, path, len) in &rotated {
            let over = keep_files.is_some_and(|keep| files > keep)
                || keep_bytes.is_some_and(|keep| bytes > keep);
            if !over {
                break;
            }
            match fs::remove_file(path) {
                Ok(()) => {
                    self.counters
                        .0
                        .removed_files
                        .fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(REMOVED_FILES_TOTAL).increment(1);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            files -= 1;
            bytes -= len;
        }
        Ok(())
    }

    /// Drops the oldest pending lines beyond `pending_bytes`, counting them.
    fn bound_pending(&mut self) {
        let max = self.config.pending_bytes;
        if self.pending.len() <= max {
            return;
        }
        let excess = self.pending.len() - max;
        let cut = self.pending[excess - 1..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.pending.len(), |i| excess + i);
        let lines = count_lines(&self.pending[..cut]);
        self.pending.drain(..cut);
        self.count_dropped(lines);
    }

    fn count_dropped(&self, lines: u64) {
        if lines > 0 {
            self.counters
                .0
                .dropped_lines
                .fetch_add(lines, Ordering::Relaxed);
            metrics::counter!(DROPPED_LINES_TOTAL).increment(lines);
        }
    }

    /// Writes pending lines unless waiting for a retry, then rotates if due; on failure
    /// schedules the next try.
    fn push(&mut self, now: Instant) -> Result<(), SinkError> {
        if let Some(at) = self.retry_at {
            if now < at {
                if self.pending.is_empty() {
                    return Ok(());
                }
                self.bound_pending();
                self.counters
                    .0
                    .failed_writes
                    .fetch_add(1, Ordering::Relaxed);
                return Err(SinkError::new(format!(
                    "JSONL file {}: {} bytes wait for a retry in {:?} after a failed write",
                    self.active.display(),
                    self.pending.len(),
                    at - now,
                )));
            }
        }
        let result = self.write_pending().and_then(|()| self.rotate_if_due(now));
        match result {
            Ok(()) => {
                self.retry_at = None;
                self.backoff = self.config.retry_initial;
                Ok(())
            }
            Err(e) => Err(self.failed(now, e)),
        }
    }

    fn failed(&mut self, now: Instant, error: io::Error) -> SinkError {
        self.bound_pending();
        self.counters
            .0
            .failed_writes
            .fetch_add(1, Ordering::Relaxed);
        let wait = self.backoff;
        self.retry_at = Some(now + wait);
        self.backoff = (wait * 2).min(self.config.retry_max);
        SinkError::with_source(
            format!(
                "cannot write JSONL file {} ({} bytes kept for a retry in {wait:?})",
                self.active.display(),
                self.pending.len(),
            ),
            error,
        )
    }

    /// At shutdown: the active file is synced and rotated if it holds lines, removed if empty.
    fn finish_active(&mut self) -> io::Result<()> {
        if self.file_moved() {
            self.file = None;
        }
        if self.file.is_none() {
            if !self.active.try_exists()? {
                return Ok(());
            }
            self.open_active()?;
        }
        if let Some(file) = &self.file {
            file.sync_data()?;
        }
        if self.active_bytes > 0 {
            self.rotate()
        } else {
            self.file = None;
            match fs::remove_file(&self.active) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }
}

impl Sink for JsonlSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        for event in batch.events {
            json::write_line(&mut self.pending, event);
        }
        self.push(Instant::now())
    }

    /// Writes every pending line (whatever the backoff) and rotates the active file.
    fn flush(&mut self) -> Result<(), SinkError> {
        let now = Instant::now();
        match self.write_pending().and_then(|()| self.finish_active()) {
            Ok(()) => {
                self.retry_at = None;
                self.backoff = self.config.retry_initial;
                Ok(())
            }
            Err(e) => Err(self.failed(now, e)),
        }
    }

    fn name(&self) -> &str {
        "jsonl"
    }
}

impl Drop for JsonlSink {
    /// One last try for lines still pending (the next start rotates the active file); lines
    /// that still cannot be written are counted as dropped.
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

/// Creates, writes and removes a probe file in `dir`.
fn probe(dir: &Path) -> io::Result<()> {
    let path = dir.join(format!(".profilis-probe-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let written = file.write_all(b"probe\n");
    drop(file);
    let removed = fs::remove_file(&path);
    written.and(removed)
}

/// Length of `file` up to and including its last `\n` (0 if it has none).
fn complete_len(file: &mut File, len: u64) -> io::Result<u64> {
    let mut chunk = [0u8; 8192];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The order of rotated files: UTC date, time, then the `-N` suffix (0 without one).
type RotatedKey = (u32, u32, u64);

/// The key of a rotated file name (`profilis-YYYYmmdd-HHMMSS[-N].jsonl`), `None` for any
/// other name.
fn parse_rotated(name: &str) -> Option<RotatedKey> {
    let stem = name
        .strip_prefix(ROTATED_PREFIX)?
        .strip_suffix(ROTATED_SUFFIX)?;
    let digits = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let mut parts = stem.split('-');
    let date = digits(parts.next()?, 8)?;
    let time = digits(parts.next()?, 6)?;
    let n = match parts.next() {
        None => 0,
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok()?,
        Some(_) => return None,
    };
    parts.next().is_none().then_some((date, time, n))
}

/// Rotated files of `dir`: key, path and length.
fn rotated_files(dir: &Path) -> io::Result<Vec<(RotatedKey, PathBuf, u64)>> {
    let mut rotated = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(key) = entry.file_name().to_str().and_then(parse_rotated) else {
            continue;
        };
        let len = match entry.metadata() {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        rotated.push((key, entry.path(), len));
    }
    Ok(rotated)
}

/// `profilis-YYYYmmdd-HHMMSS.jsonl` for `now` (UTC), or with `-1`, `-2`, ... if taken or if
/// `newest` was made in the same second, so names only grow.
fn free_rotated_path(
    dir: &Path,
    now: SystemTime,
    newest: Option<RotatedKey>,
) -> io::Result<(RotatedKey, PathBuf)> {
    let (date, time) = utc_date_time(now);
    let first = match newest {
        Some((d, t, n)) if (d, t) == (date, time) => n + 1,
        _ => 0,
    };
    for n in first.. {
        let name = if n == 0 {
            format!("{ROTATED_PREFIX}{date:08}-{time:06}{ROTATED_SUFFIX}")
        } else {
            format!("{ROTATED_PREFIX}{date:08}-{time:06}-{n}{ROTATED_SUFFIX}")
        };
        let path = dir.join(name);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(((date, time, n), path)),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Err(io::Error::other("no free rotated file name"))
}

/// `YYYYmmdd` and `HHMMSS` in UTC, as numbers.
fn utc_date_time(time: SystemTime) -> (u32, u32) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let date = (year * 10_000 + month * 100 + day) as u32;
    let time = (rem / 3600 * 10_000 + rem % 3600 / 60 * 100 + rem % 60) as u32;
    (date, time)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_stamp(secs: u64) -> String {
        let (date, time) = utc_date_time(UNIX_EPOCH + Duration::from_secs(secs));
        format!("{date:08}-{time:06}")
    }

    #[test]
    fn stamps_are_utc() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(4_102_444_799), "20991231-235959");
    }

    #[test]
    fn rotated_names_sort_by_time_then_number() {
        let mut names = [
            "profilis-20240101-120000-10.jsonl",
            "profilis-20240101-120000-2.jsonl",
            "profilis-20240101-120001.jsonl",
            "profilis-20240101-120000.jsonl",
            "profilis-20231231-235959-1.jsonl",
        ];
        names.sort_by_key(|n| parse_rotated(n).unwrap());
        assert_eq!(
            names,
            [
                "profilis-20231231-235959-1.jsonl",
                "profilis-20240101-120000.jsonl",
                "profilis-20240101-120000-2.jsonl",
                "profilis-20240101-120000-10.jsonl",
                "profilis-20240101-120001.jsonl",
            ]
        );
        for other in [
            DEFAULT_ACTIVE_NAME,
            "profilis-2024010-120000.jsonl",
            "profilis-20240101-120000-.jsonl",
            "profilis-20240101-120000-1-2.jsonl",
            "profilis-20240101-120000.jsonl.tmp",
            "other-20240101-120000.jsonl",
        ] {
            assert_eq!(parse_rotated(other), None, "{other}");
        }
    }

    #[test]
    fn complete_len_finds_the_last_newline_across_chunks() {
        let dir = std::env::temp_dir().join(format!("profilis-jsonl-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut text = b"a\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 20_000));
        fs::write(&path, &text).unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(complete_len(&mut file, text.len() as u64).unwrap(), 2);
        fs::write(&path, b"no newline").unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(complete_len(&mut file, 10).unwrap(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}

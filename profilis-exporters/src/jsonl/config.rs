//! Settings of a [`JsonlSink`](super::JsonlSink) and why a sink could not start.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::naming::parse_rotated;
use crate::limits::{valid_timeout, MAX_TIMEOUT};

// The bound the message of `retry_backoff` names.
const _: () = assert!(MAX_TIMEOUT.as_secs() == 86_400);

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
    /// Another JSONL sink, of this process or another, writes to the directory: one sink
    /// writes to a directory at a time. It holds an exclusive lock on the directory (`flock`)
    /// for its whole life.
    #[error("JSONL directory {} is in use by another JSONL sink (of this process or another): one sink writes to a directory at a time", path.display())]
    InUse {
        /// The directory.
        path: PathBuf,
    },
    /// Two JSONL sinks of one exporter ([`Exporter::jsonl`](crate::Exporter::jsonl) given twice)
    /// name the same directory.
    #[error("two JSONL sinks of the exporter write to the directory {}: one sink writes to a directory at a time (give each its own directory)", path.display())]
    SharedDir {
        /// The directory.
        path: PathBuf,
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

/// Settings of a [`JsonlSink`](super::JsonlSink): the directory, rotation, retention and retries.
#[derive(Debug, Clone)]
#[must_use = "the settings do nothing until given to JsonlSink::new or Exporter::jsonl"]
pub struct JsonlConfig {
    pub(super) dir: PathBuf,
    pub(super) active_name: String,
    pub(super) rotate_bytes: u64,
    pub(super) rotate_every: Option<Duration>,
    pub(super) keep_files: Option<usize>,
    pub(super) keep_bytes: Option<u64>,
    pub(super) pending_bytes: usize,
    pub(super) retry_initial: Duration,
    pub(super) retry_max: Duration,
}

impl JsonlConfig {
    /// Default name of the active file.
    pub const DEFAULT_ACTIVE_NAME: &'static str = "profilis-active.jsonl.tmp";
    /// Default size at which the active file is rotated: 64 MiB.
    pub const DEFAULT_ROTATE_BYTES: u64 = 64 * 1024 * 1024;
    /// Default bound of the buffer of lines waiting for a retry: 16 MiB.
    pub const DEFAULT_PENDING_BYTES: usize = 16 * 1024 * 1024;
    /// Default first wait before retrying a failed write.
    pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(100);
    /// Default longest wait between retries.
    pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);

    /// Files in `dir` (created if missing), every other setting at its default. A relative
    /// `dir` is resolved against the current directory once, when the sink starts
    /// ([`JsonlSink::new`](super::JsonlSink::new)): a later `chdir` does not move the files.
    pub fn new(dir: impl Into<PathBuf>) -> JsonlConfig {
        JsonlConfig {
            dir: dir.into(),
            active_name: Self::DEFAULT_ACTIVE_NAME.to_owned(),
            rotate_bytes: Self::DEFAULT_ROTATE_BYTES,
            rotate_every: None,
            keep_files: None,
            keep_bytes: None,
            pending_bytes: Self::DEFAULT_PENDING_BYTES,
            retry_initial: Self::DEFAULT_RETRY_INITIAL,
            retry_max: Self::DEFAULT_RETRY_MAX,
        }
    }

    /// Name of the active file in the directory (default [`JsonlConfig::DEFAULT_ACTIVE_NAME`]). A plain file
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
    /// further failure, at most `max` (default 100 ms and 10 s; `initial` above zero, `max` at
    /// least `initial` and at most a day).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max;
        self
    }

    /// The directory: as given, or, in [`JsonlSink::config`](super::JsonlSink::config), made
    /// absolute when the sink started.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the active file.
    pub fn active_path(&self) -> PathBuf {
        self.dir.join(&self.active_name)
    }

    /// Checks every setting (not the directory: [`JsonlSink::new`](super::JsonlSink::new) does,
    /// save that its path must not be empty).
    ///
    /// # Errors
    /// [`JsonlError::Setting`] naming the first setting that cannot be used.
    pub fn validate(&self) -> Result<(), JsonlError> {
        if self.dir.as_os_str().is_empty() {
            return Err(JsonlError::Setting {
                name: "dir",
                value: "\"\"".to_owned(),
                expected: "a directory path, not empty (\".\" for the current directory)",
            });
        }
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
        if self.retry_initial.is_zero()
            || self.retry_max < self.retry_initial
            || !valid_timeout(self.retry_max)
        {
            return Err(JsonlError::Setting {
                name: "retry_backoff",
                value: format!("{:?}, {:?}", self.retry_initial, self.retry_max),
                expected: "an initial wait above zero and a maximum at least as long, at most \
                           1 day (86400s)",
            });
        }
        Ok(())
    }

    /// The directory made absolute against the current directory, once: a later `chdir` of
    /// the process does not move the files.
    pub(crate) fn absolute_dir(&self) -> Result<PathBuf, JsonlError> {
        std::path::absolute(&self.dir).map_err(|source| JsonlError::Dir {
            path: self.dir.clone(),
            source,
        })
    }
}

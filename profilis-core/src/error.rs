//! Errors of the core: bad configuration, a collector that cannot start, and failed sinks.

use std::fmt;

/// A configuration value that is not allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A sample rate outside `0..=1` or not a number.
    #[error("sample rate {value} is not allowed: expected a number in 0..=1")]
    SampleRate {
        /// The rejected value.
        value: f64,
    },
    /// A queue size of zero or too large.
    #[error("queue size {value} is not allowed: expected 1..={max}")]
    QueueSize {
        /// The rejected value.
        value: usize,
        /// The largest allowed value.
        max: usize,
    },
    /// A batch size of zero or too large.
    #[error("batch size {value} is not allowed: expected 1..={max}")]
    BatchMax {
        /// The rejected value.
        value: usize,
        /// The largest allowed value.
        max: usize,
    },
    /// A flush interval of zero.
    #[error("flush interval {value:?} is not allowed: expected more than zero")]
    FlushInterval {
        /// The rejected value.
        value: std::time::Duration,
    },
    /// An environment variable with a value that cannot be used.
    #[error("environment variable {name}={value:?} is not allowed: expected {expected}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// An environment variable whose value is not valid UTF-8 (and so is not ignored either).
    #[error("environment variable {name}={value:?} is not allowed: expected UTF-8 text")]
    EnvNotUnicode {
        /// The variable.
        name: &'static str,
        /// Its value, as the operating system gave it.
        value: std::ffi::OsString,
    },
    /// An environment variable whose value was read but not accepted, with the reason.
    #[error("environment variable {name} is not allowed: {source}")]
    EnvValue {
        /// The variable.
        name: &'static str,
        /// Why its value was not accepted.
        source: Box<ConfigError>,
    },
    /// Histogram buckets that cannot be used.
    #[error("buckets {value} are not allowed: {reason}; expected finite, positive seconds in increasing order")]
    Buckets {
        /// The rejected buckets, as given.
        value: String,
        /// What is wrong with them.
        reason: &'static str,
    },
}

/// Reads the environment variable `name`: `Ok(None)` when it is unset, its value when it is
/// UTF-8 text, and [`ConfigError::EnvNotUnicode`] naming it otherwise, so a value with a stray
/// byte is an error rather than silently treated as unset. Every `PROFILIS_*` variable is read
/// through this.
///
/// # Errors
/// [`ConfigError::EnvNotUnicode`] when the value is not valid UTF-8.
pub fn env_var(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|value| ConfigError::EnvNotUnicode { name, value }),
    }
}

/// Why [`Collector::start`](crate::Collector::start) could not start a collector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting that is not allowed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A collector is already running in this process.
    #[error("a profilis collector is already running in this process; drop its guard first")]
    AlreadyRunning,
    /// The collector's thread could not be started.
    #[error("could not start the profilis collector thread")]
    Spawn(#[source] std::io::Error),
    /// The thread of a [`NonBlocking`](crate::NonBlocking) sink could not be started.
    #[error("could not start a thread for the sink {sink}")]
    SinkSpawn {
        /// The sink's name.
        sink: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Why a sink could not take a batch. Counted as a sink failure; the other sinks go on.
///
/// An error that means data is gone for good (say, lines a file sink could not write at
/// shutdown) says how much with [`SinkError::with_lost`]: a failed last flush's losses are
/// added up in [`ShutdownReport::lost`](crate::ShutdownReport::lost).
#[derive(Debug)]
pub struct SinkError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    lost: u64,
}

impl SinkError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
            source: None,
            lost: 0,
        }
    }

    /// An error with a message and the error that caused it.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> SinkError {
        SinkError {
            message: message.into(),
            source: Some(Box::new(source)),
            lost: 0,
        }
    }

    /// The same error, saying that `items` (events, lines, ...) are lost for good because of
    /// it: no later call of the sink will deliver them. Name them in the message too, for the
    /// line the collector prints.
    #[must_use]
    pub fn with_lost(mut self, items: u64) -> SinkError {
        self.lost = items;
        self
    }

    /// Items this failure lost for good (0 unless set by [`SinkError::with_lost`]).
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> SinkError {
        SinkError::with_source("i/o error", e)
    }
}

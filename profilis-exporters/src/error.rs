//! The one error type of `install_exporter()` and its builder: one variant per cause, each
//! naming the value at fault and what is allowed.

use std::net::SocketAddr;
use std::path::PathBuf;

use profilis_core::ConfigError;

use crate::jsonl::JsonlError;
use crate::listener::ListenerError;

/// Why profilis could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listen address is taken by another socket.
    #[error(
        "address {addr} is already in use: choose another with PROFILIS_LISTEN or Exporter::listen"
    )]
    AddrInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The listen address does not parse.
    #[error("listen address {value:?} is not allowed: expected host:port, such as 127.0.0.1:9464")]
    InvalidListenAddr {
        /// The rejected value.
        value: String,
    },
    /// Histogram buckets that cannot be used.
    #[error("buckets {value} are not allowed: {reason}; expected finite, positive seconds in increasing order")]
    InvalidBuckets {
        /// The rejected buckets, as given.
        value: String,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A sample rate outside `0..=1` or not a number.
    #[error("sample rate {value} is not allowed: expected a number in 0..=1")]
    SampleRate {
        /// The rejected value.
        value: f64,
    },
    /// Some other code installed a global `metrics` recorder first.
    #[error("a global `metrics` recorder is already installed in this process: profilis must install its own (or record into yours with FacadeSink)")]
    RecorderInstalled,
    /// profilis's recorder was installed earlier with other buckets; they cannot change.
    #[error("profilis's recorder is already installed with other buckets; buckets can only be set by the first install in a process")]
    BucketsFixed,
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
    /// A collector setting that cannot be used, or a collector already running.
    #[error(transparent)]
    Config(ConfigError),
    /// The listener could not start for another reason.
    #[error(transparent)]
    Listener(ListenerError),
    /// A JSONL directory that cannot be created, or in which a file cannot be created or written.
    #[error("JSONL directory {} cannot be created or written: {source}", path.display())]
    JsonlDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A JSONL sink setting that cannot be used.
    #[error("JSONL setting {name} = {value} is not allowed: expected {expected}")]
    InvalidJsonl {
        /// The setting (its builder method).
        name: &'static str,
        /// The rejected value.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
}

impl From<JsonlError> for Error {
    fn from(e: JsonlError) -> Error {
        match e {
            JsonlError::Dir { path, source } => Error::JsonlDir { path, source },
            JsonlError::Setting {
                name,
                value,
                expected,
            } => Error::InvalidJsonl {
                name,
                value,
                expected,
            },
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        match e {
            ConfigError::SampleRate { value } => Error::SampleRate { value },
            ConfigError::Env {
                name,
                value,
                expected,
            } => Error::Env {
                name,
                value,
                expected,
            },
            ConfigError::Buckets { value, reason } => Error::InvalidBuckets { value, reason },
            other => Error::Config(other),
        }
    }
}

impl From<ListenerError> for Error {
    fn from(e: ListenerError) -> Error {
        match e {
            ListenerError::AddrInUse { addr } => Error::AddrInUse { addr },
            ListenerError::InvalidAddr { value } => Error::InvalidListenAddr { value },
            other => Error::Listener(other),
        }
    }
}

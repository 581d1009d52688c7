//! Why an exporter could not start.

use crate::BoxError;
use crate::MetricError;

/// Why an exporter could not start. Each variant names the value at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line: a bad option or value (clap's message), or `--help` / `--version`,
    /// whose text this is ([`main`](crate::main) prints it and exits 0).
    #[error("{0}")]
    Cli(#[from] clap::Error),
    /// `-H/--host` (or `EXPORTER_HOST`) is neither an IP address nor a name that resolves.
    #[error("host {host:?} is not allowed: {reason}; expected {expected}")]
    Host {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The script's [`UpdateMode`](crate::UpdateMode) has an interval or timeout out of
    /// range: zero, longer than [`MAX_POLL_DURATION`](crate::MAX_POLL_DURATION) (a day) in mode
    /// `Poll`, or longer than [`MAX_ON_SCRAPE_TIMEOUT`](crate::MAX_ON_SCRAPE_TIMEOUT) in mode
    /// `OnScrape`.
    #[error("the update mode's {setting} is {value:?}: expected {expected}")]
    Mode {
        /// `interval` or `timeout`.
        setting: &'static str,
        /// The duration given.
        value: std::time::Duration,
        /// What is allowed, and why.
        expected: &'static str,
    },
    /// The listen address (`-H/--host` and `-p/--port`) is taken by another socket.
    #[error(
        "listen address {addr} is already in use: stop the other process, or choose another \
         address with -H/--host and -p/--port (EXPORTER_HOST, EXPORTER_PORT)"
    )]
    AddrInUse {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
    /// The exporter could not be installed: a bad `PROFILIS_*`
    /// variable, a collector already running.
    #[error("the exporter could not start: {0}")]
    Exporter(#[from] profilis_exporters::Error),
    /// The kit's own metrics could not be published: a name the program has already published
    /// (a script's own clashes are refused at its declaration, in `configure`).
    #[error("{0}")]
    Metric(#[from] MetricError),
    /// [`Script::configure`](crate::Script::configure) failed.
    #[error("{0}")]
    Script(BoxError),
    /// [`Script::startup`](crate::Script::startup) failed.
    #[error("the startup hook failed: {0}")]
    Startup(BoxError),
    /// Another exporter started by the kit is running in this process.
    #[error(
        "an exporter started by the kit is already running in this process; shut it down \
         before starting another (one per process: the metrics recorder, the collector and the \
         published metrics are process-wide)"
    )]
    AlreadyRunning,
}

impl Error {
    /// The exit code [`main`](crate::main) gives for it: clap's for the command line (0 for
    /// `--help` and `--version`, 2 for a bad option), 1 for anything else.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Cli(e) => u8::try_from(e.exit_code()).unwrap_or(2),
            _ => 1,
        }
    }
}

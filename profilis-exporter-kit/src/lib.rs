//! Write a standalone Prometheus exporter in a few lines.
//!
//! SKELETON (the lead's contract for the helpers): the signatures below are the API; the
//! bodies, module layout, docs and tests are to be written.
//!
//! An exporter is a type implementing [`Script`]: its name, version and default port, its own
//! command-line options (clap's derive, flattened next to the common ones), `configure` (which
//! declares its metrics on a staged [`MetricSet`]), and optional hooks. [`main`] does the rest:
//! the command line (`-H/--host`, `-p/--port`, `-L/--log-level`, `--process-stats`, `--help`,
//! `--version`, each also an `EXPORTER_*` variable), logging (tracing), the built-in listener
//! with everything it has (gzip, `/healthz`, allow-list and token from `PROFILIS_*`, limits),
//! the updates (on each scrape with a time limit, or a polling loop), and graceful shutdown on
//! SIGTERM and Ctrl-C. An update that fails, panics or times out still gets the scrape
//! answered: `exporter_up` is 0, `exporter_update_errors_total{reason}` counts it, the log says
//! it, and the script's metrics are withdrawn until an update succeeds again.

#![deny(missing_docs)]

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub use profilis_exporters::metric_set::{
    Counter, Gauge, Histogram, Info, MetricSet, Published, States,
};
pub use profilis_exporters::MetricError;

/// The error a hook returns: any error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// When the script's metrics are refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateMode {
    /// Never by the kit: the script writes its metrics itself (from `startup`'s tasks, say);
    /// they are served as written.
    Never,
    /// [`Script::update`] runs on each scrape, before the answer, for at most `timeout`.
    /// Scrapes arriving while an update runs share it.
    OnScrape {
        /// Longest an update may take; past it the update is dropped and counted as timed out.
        timeout: Duration,
    },
    /// [`Script::update`] runs every `interval` (the first at start-up), for at most `timeout`
    /// each; scrapes serve the last successful update's values.
    Poll {
        /// Time between the starts of two updates.
        interval: Duration,
        /// Longest an update may take.
        timeout: Duration,
    },
}

/// A standalone exporter. See the [crate docs](crate).
pub trait Script: Sized + Send + Sync + 'static {
    /// The exporter's own command-line options, flattened next to [`CommonOptions`]
    /// (`#[derive(clap::Args)]`; use `()`-like empty struct for none).
    type Options: clap::Args + clap::FromArgMatches + Send + 'static;

    /// The command's name (in `--help`, `--version`, the log, and `rust_build_info`).
    const NAME: &'static str;
    /// The exporter's version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// One line for `--help`.
    const DESCRIPTION: &'static str = "";
    /// The port `-p/--port` defaults to.
    const DEFAULT_PORT: u16;
    /// Whether process metrics are on when `--process-stats` is not given.
    const PROCESS_STATS: bool = false;

    /// Builds the exporter from its parsed options, declaring its metrics on
    /// [`Context::metrics`]. An error stops the start-up with the error's message.
    ///
    /// # Errors
    /// Whatever the script finds wrong (a bad option, a bad metric name).
    fn configure(options: Self::Options, context: &Context) -> Result<Self, BoxError>;

    /// When [`update`](Self::update) runs. [`UpdateMode::Never`] by default.
    fn update_mode(&self) -> UpdateMode {
        UpdateMode::Never
    }

    /// Runs once after the listener is up. An error stops the exporter.
    fn startup(&self) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// Runs once on SIGTERM or Ctrl-C, before the listener stops.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Refreshes the metrics (see [`UpdateMode`]). Gauges, info metrics and state sets not set
    /// by an update are not served after it; counters and histograms keep their totals.
    fn update(&self) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }
}

/// What [`Script::configure`] gets besides its options.
#[derive(Debug)]
pub struct Context {
    _todo: (),
}

impl Context {
    /// The staged set the script declares its metrics on.
    pub fn metrics(&self) -> &MetricSet {
        todo!()
    }

    /// The common options as parsed.
    pub fn common(&self) -> &CommonOptions {
        todo!()
    }
}

/// The options every exporter has.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct CommonOptions {
    /// Host name or address to listen on.
    #[arg(short = 'H', long, env = "EXPORTER_HOST", default_value = "localhost")]
    pub host: String,
    /// Port to listen on (the exporter's default port when not given).
    #[arg(short = 'p', long, env = "EXPORTER_PORT")]
    pub port: Option<u16>,
    /// Minimum level of log messages.
    #[arg(
        short = 'L',
        long,
        env = "EXPORTER_LOG_LEVEL",
        value_enum,
        ignore_case = true,
        default_value = "info"
    )]
    pub log_level: LogLevel,
    /// Serve the process metrics (CPU, memory, file descriptors): `--process-stats`, or
    /// `--process-stats=false` to turn them off where the exporter has them on.
    #[arg(long, env = "EXPORTER_PROCESS_STATS", num_args = 0..=1, default_missing_value = "true")]
    pub process_stats: Option<bool>,
}

/// Levels of `-L/--log-level`, as prometheus-aioexporter names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Errors only (tracing has no level above error).
    Critical,
    /// Errors.
    Error,
    /// Warnings and errors.
    Warning,
    /// Informational messages too.
    Info,
    /// Everything.
    Debug,
}

/// Why an exporter could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `configure` or `startup` failed.
    #[error("{0}")]
    Script(BoxError),
}

/// Runs the exporter `S` with the process's command line until SIGTERM or Ctrl-C; returns the
/// exit code (0 after a clean stop, 2 for a command-line error, 1 for any other start-up
/// error, printed on stderr).
pub fn main<S: Script>() -> ExitCode {
    todo!()
}

/// Starts `S` with `args` (the first is the program name) on the current tokio runtime, for
/// tests and programs that run their own runtime.
///
/// # Errors
/// [`Error`] naming what stopped the start-up.
pub async fn start<S: Script, I, T>(args: I) -> Result<Running<S>, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let _ = args.into_iter();
    todo!()
}

/// A started exporter.
pub struct Running<S: Script> {
    script: Arc<S>,
}

impl<S: Script> Running<S> {
    /// Where the listener listens.
    pub fn local_addr(&self) -> SocketAddr {
        todo!()
    }

    /// The script.
    pub fn script(&self) -> &Arc<S> {
        &self.script
    }

    /// Runs the shutdown hook and stops the listener.
    pub async fn shutdown(self) {
        todo!()
    }
}

//! Write a standalone Prometheus exporter in a few lines.
//!
//! An exporter is a type implementing [`Script`]: its name, version and default port, its own
//! command-line options (clap's derive, flattened next to the common ones), `configure` (which
//! declares its metrics on a staged [`MetricSet`]), and optional hooks. [`main`] does the rest:
//!
//! - the command line: `-H/--host` (default `localhost`; a name or an IP address, IPv6 too),
//!   `-p/--port` (default [`Script::DEFAULT_PORT`]), `-L/--log-level` (`critical`, `error`,
//!   `warning` or `warn`, `info`, `debug`), `--process-stats` (`true`/`false`, `1`/`0`,
//!   `yes`/`no`, `on`/`off`), `--help` and `--version`, each also an
//!   `EXPORTER_*` variable (`EXPORTER_HOST`, `EXPORTER_PORT`, `EXPORTER_LOG_LEVEL`,
//!   `EXPORTER_PROCESS_STATS`); see [`CommonOptions`];
//! - logging with tracing, on stderr at that level;
//! - the built-in listener of `profilis-exporters` with everything it has: gzip, `/healthz`,
//!   the limits, and the `PROFILIS_*` variables of the exporter (an allow-list in
//!   `PROFILIS_ALLOW`, comma-separated networks; a bearer token in `PROFILIS_BEARER_TOKEN`;
//!   the labels, buckets and the dashboard; `-H`/`-p` replace `PROFILIS_LISTEN`); the page carries
//!   `rust_build_info{crate="<NAME>",version="<VERSION>"} 1` and, when on, the `process_*`
//!   metrics;
//! - the updates ([`UpdateMode`]): on each scrape before the answer, with a time limit (at most
//!   [`MAX_ON_SCRAPE_TIMEOUT`]), shared by the scrapes that arrive while one runs; or a polling
//!   loop (interval and timeout at most [`MAX_POLL_DURATION`]); or none. An update must not
//!   block (see [`Script::update`]);
//! - graceful shutdown on SIGTERM and Ctrl-C, from the moment the listener is up (a signal
//!   during the startup hook or the first poll ends it; before, during `configure`, a signal
//!   ends the process as usual, except as a container's PID 1, which the kernel does not
//!   stop on a signal it has no handler for): updates stop (a running one is aborted and awaited),
//!   the shutdown hook runs, the listener stops (a scrape it is still answering is cut off),
//!   the process exits 0.
//!
//! An update that fails, panics or times out still gets the scrape answered: the script's
//! metrics are withdrawn until an update succeeds again (stale values are not served as if
//! fresh), the log says what happened (the first failure and each new message at warn, a panic
//! at error; the same failure again at most once a minute, as "still failing (N times in a row
//! over S s)"; the first success after failures at info), and the kit's own metrics, always
//! served, tell it:
//!
//! | metric | meaning |
//! |---|---|
//! | `exporter_up` | 1 when the last update succeeded, else 0 (before the first update 0; always 1 in mode [`Never`](UpdateMode::Never)) |
//! | `exporter_update_errors_total{reason}` | failed updates, `reason` `error`, `panic` or `timeout` (each series there from the start, at 0) |
//! | `exporter_update_duration_seconds` | how long the last update took (after the first) |
//! | `exporter_last_success_timestamp_seconds` | when the last successful update ended, Unix time (after the first success) |
//!
//! ```no_run
//! # mod profilis { pub mod kit { pub use profilis_exporter_kit::*; } }
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use profilis::kit::{BoxError, Context, Counter, Gauge, Script, UpdateMode};
//! use std::time::Duration;
//!
//! #[derive(clap::Args)]
//! struct Options {
//!     /// The queue to watch.
//!     #[arg(long, env = "QUEUE", default_value = "jobs")]
//!     queue: String,
//! }
//!
//! struct Queue {
//!     queue: String,
//!     length: Gauge,
//!     scrapes: Counter,
//! }
//!
//! impl Script for Queue {
//!     type Options = Options;
//!     const NAME: &'static str = "queue-exporter";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const DEFAULT_PORT: u16 = 9800;
//!
//!     fn configure(options: Options, context: &Context) -> Result<Self, BoxError> {
//!         let metrics = context.metrics();
//!         Ok(Queue {
//!             length: metrics.gauge("queue_length", "Jobs waiting", &["queue"])?,
//!             scrapes: metrics.counter("queue_scrapes", "Updates made", &[])?,
//!             queue: options.queue,
//!         })
//!     }
//!
//!     fn update_mode(&self) -> UpdateMode {
//!         UpdateMode::OnScrape { timeout: Duration::from_secs(5) }
//!     }
//!
//!     async fn update(&self) -> Result<(), BoxError> {
//!         self.length.set(&[&self.queue], 42.0)?; // read it from the queue here
//!         self.scrapes.inc(&[])?;
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     profilis::kit::main::<Queue>()
//! }
//! ```
//!
//! # One exporter per process
//!
//! The metrics recorder, the collector and the published metrics are process-wide, so one
//! exporter started by the kit runs in a process at a time: [`start`] while another
//! [`Running`] is alive returns [`Error::AlreadyRunning`]; after its
//! [`shutdown`](Running::shutdown) (or drop) the next `start` succeeds. The logging subscriber
//! is set by the first start only (a subscriber set before, by the program or an earlier
//! start, stays with its own level).

#![deny(missing_docs)]

mod cli;
mod error;
mod logging;
mod updates;

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use profilis_exporters::metric_set::{
    Counter, Gauge, Histogram, Info, MetricSet, Published, States,
};
pub use profilis_exporters::MetricError;

pub use cli::{listen_addr, parse_host, CommonOptions, Host, LogLevel};
pub use error::Error;
pub use updates::{
    TimedOut, LAST_SUCCESS_TIMESTAMP_SECONDS, UP, UPDATE_DURATION_SECONDS, UPDATE_ERRORS_TOTAL,
};

use updates::{KitMetrics, Updater};

/// The error a hook returns: any error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// When the script's metrics are refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateMode {
    /// Never by the kit: the script writes its metrics itself (from `startup`'s tasks, say);
    /// they are served as written: the kit commits the staged set before each scrape, so a
    /// scrape sees every write made before it (the script does not call
    /// [`begin`](MetricSet::begin), [`commit`](MetricSet::commit) or
    /// [`withdraw`](MetricSet::withdraw) itself).
    Never,
    /// [`Script::update`] runs on each scrape, before the answer, for at most `timeout`.
    /// Scrapes arriving while an update runs share it.
    OnScrape {
        /// Longest an update may take; past it the update is dropped and counted as timed out.
        /// At most [`MAX_ON_SCRAPE_TIMEOUT`] (25 s), and best below Prometheus'
        /// `scrape_timeout` (10 s by default).
        timeout: Duration,
    },
    /// [`Script::update`] runs every `interval` (the first at start-up), for at most `timeout`
    /// each; scrapes serve the last successful update's values.
    Poll {
        /// Time between the starts of two updates; at most [`MAX_POLL_DURATION`] (a day).
        interval: Duration,
        /// Longest an update may take; at most [`MAX_POLL_DURATION`] (a day).
        timeout: Duration,
    },
}

/// The longest interval and timeout of [`UpdateMode::Poll`]: a day. Longer ones are refused at
/// start-up ([`Error::Mode`]); an exporter polling less often than daily is not one.
pub const MAX_POLL_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest timeout of [`UpdateMode::OnScrape`]: 25 seconds. The listener gives a scrape's
/// update at most its connection timeout (30 s), and Prometheus gives up on a scrape after its
/// `scrape_timeout` (10 s by default): an update that takes longer answers nobody. Keep the
/// timeout below the scrape timeout of the Prometheus that scrapes the exporter; longer ones
/// are refused at start-up ([`Error::Mode`]).
pub const MAX_ON_SCRAPE_TIMEOUT: Duration = Duration::from_secs(25);

impl UpdateMode {
    /// The time limit of an update, checked: `None` for [`Never`](Self::Never).
    fn checked_timeout(self) -> Result<Option<Duration>, Error> {
        let within = |setting, value: Duration, max: Duration, expected| {
            if value.is_zero() || value > max {
                Err(Error::Mode {
                    setting,
                    value,
                    expected,
                })
            } else {
                Ok(value)
            }
        };
        match self {
            UpdateMode::Never => Ok(None),
            UpdateMode::OnScrape { timeout } => within(
                "timeout",
                timeout,
                MAX_ON_SCRAPE_TIMEOUT,
                "a duration greater than zero and at most 25s in mode OnScrape (the listener \
                 gives a scrape's update at most its 30s connection timeout; keep it below \
                 Prometheus' scrape_timeout, 10s by default)",
            )
            .map(Some),
            UpdateMode::Poll { interval, timeout } => {
                let expected =
                    "a duration greater than zero and at most a day (86400s) in mode Poll";
                within("interval", interval, MAX_POLL_DURATION, expected)?;
                within("timeout", timeout, MAX_POLL_DURATION, expected).map(Some)
            }
        }
    }
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

    /// Runs once after the listener is up. An error stops the exporter. Under [`main`], a
    /// SIGTERM or Ctrl-C while it runs drops it and stops the exporter (the shutdown hook
    /// runs), so a hook that waits for something that never comes does not keep it up.
    fn startup(&self) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// Runs once on SIGTERM or Ctrl-C, after the updates stopped (none runs while it does),
    /// before the listener stops.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Refreshes the metrics (see [`UpdateMode`]). Gauges, info metrics and state sets not set
    /// by an update are not served after it; counters and histograms keep their totals.
    ///
    /// It must not block: it runs as a task on the exporter's runtime, which also answers
    /// the scrapes, and a blocked task cannot be stopped at its time limit. Use async I/O
    /// (`tokio::fs`, an async HTTP client), and `tokio::task::spawn_blocking` for blocking
    /// work (a `std::fs` call, a synchronous client library).
    ///
    /// Return [`TimedOut`] for a time-out of the update's own (a target that did not answer in
    /// time): it is counted with `reason="timeout"` rather than `reason="error"`.
    fn update(&self) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }
}

/// What [`Script::configure`] gets besides its options.
#[derive(Debug)]
pub struct Context {
    metrics: MetricSet,
    common: CommonOptions,
}

impl Context {
    /// The staged set the script declares its metrics on. It is already published, next to
    /// the kit's own metrics and `rust_build_info`: a declaration whose name one of them (or
    /// another published set, an info metric, a process metric, `profilis_*`) has is refused
    /// there, with a [`MetricError`] naming it.
    pub fn metrics(&self) -> &MetricSet {
        &self.metrics
    }

    /// The common options as parsed.
    pub fn common(&self) -> &CommonOptions {
        &self.common
    }
}

/// Runs the exporter `S` with the process's command line until SIGTERM or Ctrl-C; returns the
/// exit code (0 after a clean stop, 2 for a command-line error, 1 for any other start-up
/// error, printed on stderr). `--help` and `--version` print on stdout and return 0.
pub fn main<S: Script>() -> ExitCode {
    main_with_args::<S, _, _>(std::env::args_os())
}

/// [`main`] with `args` as the command line (the first is the program name): builds a
/// runtime, starts `S`, runs it until SIGTERM or Ctrl-C and returns the exit code. For a
/// program that builds the command line itself (and for tests that run an exporter as a child
/// process).
pub fn main_with_args<S: Script, I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}: the async runtime could not start: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match launch::<S, _, _>(args, true).await {
            Ok(running) => {
                running.until_signal().await;
                ExitCode::SUCCESS
            }
            Err(Error::Cli(e)) => {
                // Help and version on stdout, errors on stderr, as clap does.
                let _ = e.print();
                ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
            }
            Err(e) => {
                eprintln!("{}: {e}", S::NAME);
                ExitCode::from(e.exit_code())
            }
        }
    })
}

/// Set while an exporter started by the kit runs (see the [crate docs](crate#one-exporter-per-process)).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// The process's one place for a running exporter, given back when dropped.
struct Claim;

impl Claim {
    fn take() -> Result<Claim, Error> {
        RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| Claim)
            .map_err(|_| Error::AlreadyRunning)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// Starts `S` with `args` (the first is the program name) on the current tokio runtime, for
/// tests and programs that run their own runtime: parses the command line, sets up logging,
/// calls [`Script::configure`], starts the listener, runs [`Script::startup`], then the first
/// update (mode [`Poll`](UpdateMode::Poll)) before it returns. The runtime must have its time
/// driver on (`enable_time`, or `enable_all`); updates run as tasks on it.
///
/// # Errors
/// [`Error`] naming what stopped the start-up: [`Error::Cli`] for a bad command line and for
/// `--help` / `--version` (the text to print), [`Error::Host`], [`Error::Script`] from
/// `configure`, [`Error::Mode`], [`Error::Metric`], [`Error::AddrInUse`], [`Error::Exporter`] (a bad `PROFILIS_*` variable among others),
/// [`Error::Startup`], [`Error::AlreadyRunning`].
pub async fn start<S: Script, I, T>(args: I) -> Result<Running<S>, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    launch::<S, _, _>(args, false).await
}

/// [`start`]; with `catch_signals` (for [`main`]), SIGTERM and Ctrl-C are caught from just
/// before the listener starts (before, during `configure`, they end the process as usual),
/// and one arriving during the startup hook or the first poll ends it: the [`Running`]
/// returned then stops at once in [`until_signal`](Running::until_signal), shutdown hook and
/// all.
async fn launch<S: Script, I, T>(args: I, catch_signals: bool) -> Result<Running<S>, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let (common, options) = cli::parse::<S, _, _>(args)?;
    logging::init(common.log_level);
    let port = common.port.unwrap_or(S::DEFAULT_PORT);
    let host = common.host.clone();
    // A name is resolved on a blocking thread: a slow resolver does not hold the runtime.
    let addr = match tokio::task::spawn_blocking(move || cli::listen_addr(&host, port)).await {
        Ok(addr) => addr?,
        Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
    };
    let claim = Claim::take()?;

    // The kit's own names are published before `configure`, with the script's (still empty)
    // set: a metric the script declares that clashes with one of them is refused at its
    // declaration, where the script can say which of its own it was.
    let own = KitMetrics::new()?;
    let own_published = own.set.publish()?;
    profilis_exporters::info(
        "rust_build_info",
        &[("crate", S::NAME), ("version", S::VERSION)],
    )?;
    let context = Context {
        metrics: MetricSet::staged(),
        common: common.clone(),
    };
    let script_published = context.metrics.publish()?;
    let script = Arc::new(S::configure(options, &context).map_err(Error::Script)?);
    let mode = script.update_mode();
    let timeout = mode.checked_timeout()?;
    if mode == UpdateMode::Never {
        own.set_up();
    }
    let updater = Arc::new(Updater::new(
        Arc::clone(&script),
        context.metrics.clone(),
        own,
        timeout.unwrap_or(Duration::MAX),
        tokio::runtime::Handle::current(),
    ));

    // Caught from here: before, nothing needs stopping, and a signal ends the process as
    // usual (a `configure` that blocks, reading a FIFO say, would otherwise swallow it).
    let mut signals = catch_signals.then(Signals::install);
    let mut exporter = profilis_exporters::Exporter::new()
        .listen_addr(addr)
        .process_metrics(common.process_stats.unwrap_or(S::PROCESS_STATS));
    match mode {
        UpdateMode::OnScrape { .. } => {
            let updater = Arc::clone(&updater);
            exporter = exporter.before_scrape(move || Arc::clone(&updater).shared());
        }
        UpdateMode::Never => {
            let updater = Arc::clone(&updater);
            exporter = exporter.before_scrape(move || {
                updater.commit();
                std::future::ready(())
            });
        }
        UpdateMode::Poll { .. } => {}
    }
    let guard = exporter.install().map_err(|e| match e {
        profilis_exporters::Error::Listener(
            profilis_exporters::listener::ListenerError::AddrInUse { addr },
        ) => Error::AddrInUse { addr },
        other => Error::Exporter(other),
    })?;
    let local_addr = guard.listen_addr().unwrap_or(addr);
    tracing::info!(
        "{} {} serving http://{local_addr}/metrics",
        S::NAME,
        S::VERSION
    );
    let mut running = Running {
        script: Arc::clone(&script),
        local_addr,
        signals: None,
        stop_requested: false,
        inner: Some(Inner {
            updater: Arc::clone(&updater),
            poller: None,
            guard,
            _published: (script_published, own_published),
            _claim: claim,
        }),
    };
    match Signals::unless_caught(signals.as_mut(), script.startup()).await {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            running.stop_now();
            return Err(Error::Startup(e));
        }
        None => {
            tracing::info!("{}: stopping during the startup hook", S::NAME);
            running.stop_requested = true;
        }
    }
    if let (UpdateMode::Poll { interval, .. }, false) = (mode, running.stop_requested) {
        let first = updater.update_once();
        if Signals::unless_caught(signals.as_mut(), first)
            .await
            .is_none()
        {
            tracing::info!("{}: stopping during the first update", S::NAME);
            running.stop_requested = true;
        }
        if let Some(inner) = running.inner.as_mut() {
            if !running.stop_requested {
                let task = tokio::spawn(Arc::clone(&updater).poll(interval));
                let abort = task.abort_handle();
                let watcher = tokio::spawn(Arc::clone(&updater).supervise(task));
                inner.poller = Some(Poller { abort, watcher });
            }
        }
    }
    running.signals = signals;
    Ok(running)
}

/// A started exporter. Dropping it stops it without the shutdown hook; prefer
/// [`shutdown`](Self::shutdown).
pub struct Running<S: Script> {
    script: Arc<S>,
    local_addr: SocketAddr,
    /// The signal handlers [`main`] installed before the listener started.
    signals: Option<Signals>,
    /// A signal arrived during start-up: [`until_signal`](Self::until_signal) stops at once.
    stop_requested: bool,
    inner: Option<Inner<S>>,
}

/// The polling loop's task, and the task that watches it end.
struct Poller {
    abort: tokio::task::AbortHandle,
    watcher: tokio::task::JoinHandle<()>,
}

/// What a running exporter holds, dropped in this order.
struct Inner<S: Script> {
    updater: Arc<Updater<S>>,
    poller: Option<Poller>,
    guard: profilis_exporters::ExporterGuard,
    _published: (Published, Published),
    _claim: Claim,
}

impl<S: Script> Inner<S> {
    /// Stops the updates and waits until none runs: no update starts after it, the polling
    /// loop and an update started for scrapes are aborted and awaited, and the script's update
    /// tasks are awaited (bounded: one that blocks its thread cannot be stopped).
    async fn stop_updates(&mut self) {
        self.updater.stop();
        if let Some(poller) = self.poller.take() {
            poller.abort.abort();
            // The watcher returns once the loop's task ended (it sees the stop).
            let _ = poller.watcher.await;
        }
        self.updater.finish().await;
    }

    /// Stops the updates without waiting (on drop).
    fn abort_updates(&mut self) {
        self.updater.stop();
        if let Some(poller) = self.poller.take() {
            poller.abort.abort();
            poller.watcher.abort();
        }
        self.updater.abort_shared();
    }
}

impl<S: Script> Running<S> {
    /// Where the listener listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The script.
    pub fn script(&self) -> &Arc<S> {
        &self.script
    }

    /// Stops the updates (a running one is aborted, and awaited), runs the shutdown hook, then
    /// stops the listener: it stops accepting, and a scrape it is still answering is cut off
    /// (its runtime is dropped), so the hook is the place to finish what must be finished.
    pub async fn shutdown(mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        inner.stop_updates().await;
        self.script.shutdown().await;
        let Inner {
            updater,
            poller,
            guard,
            _published,
            _claim,
        } = inner;
        drop((updater, poller));
        // Stopping the listener waits for its thread: off the runtime, which may still have
        // to finish an update a scrape waits for.
        match tokio::task::spawn_blocking(move || guard.shutdown()).await {
            Ok(report) if !report.is_clean() => {
                tracing::warn!("{}: profiling data was lost at shutdown: {report}", S::NAME);
            }
            Ok(_) => {}
            Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
        }
        // Then the metrics leave the pages, and the process's place is free.
        drop(_published);
        drop(_claim);
        tracing::info!("{} stopped", S::NAME);
    }

    /// Waits for SIGTERM or Ctrl-C (SIGINT), then [`shutdown`](Self::shutdown). (Started by
    /// [`main`], a signal that came during start-up stops it at once.)
    pub async fn until_signal(mut self) {
        if !self.stop_requested {
            let mut signals = self.signals.take().unwrap_or_else(Signals::install);
            signals.recv().await;
            tracing::info!("{}: stopping", S::NAME);
        }
        self.shutdown().await;
    }

    /// Stops everything but the shutdown hook, on this thread.
    fn stop_now(&mut self) {
        if let Some(mut inner) = self.inner.take() {
            inner.abort_updates();
            drop(inner);
        }
    }
}

impl<S: Script> Drop for Running<S> {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// SIGTERM and Ctrl-C (SIGINT) caught from its creation on: a signal that arrives before
/// [`recv`](Self::recv) is awaited is not lost.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let catch = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(stream) => Some(stream),
                Err(e) => {
                    tracing::warn!("{name} cannot be caught: {e}");
                    None
                }
            };
            Signals {
                terminate: catch(SignalKind::terminate(), "SIGTERM"),
                interrupt: catch(SignalKind::interrupt(), "SIGINT (Ctrl-C)"),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// What `work` gives, unless a SIGTERM or Ctrl-C comes first (then `None`, and `work` is
    /// dropped); without `signals` (none caught), what `work` gives.
    async fn unless_caught<T>(
        signals: Option<&mut Signals>,
        work: impl Future<Output = T>,
    ) -> Option<T> {
        match signals {
            Some(signals) => {
                tokio::select! {
                    done = work => Some(done),
                    () = signals.recv() => None,
                }
            }
            None => Some(work.await),
        }
    }

    /// The next SIGTERM or Ctrl-C.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(stream: &mut Option<tokio::signal::unix::Signal>) {
                match stream {
                    Some(stream) => {
                        if stream.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            let Signals {
                terminate,
                interrupt,
            } = self;
            tokio::select! {
                () = next(terminate) => {}
                () = next(interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

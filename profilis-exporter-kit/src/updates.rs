//! Updates: the kit's own metrics, one update (begin, the script's hook in a task of its own
//! within the time limit, commit or withdraw), updates shared by the scrapes that arrive while
//! one runs, and the polling loop.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Counter, Gauge, MetricError, MetricSet, Script};

/// `exporter_up`: 1 when the last update succeeded.
pub const UP: &str = "exporter_up";
/// `exporter_update_errors_total{reason}`: failed updates by reason.
pub const UPDATE_ERRORS_TOTAL: &str = "exporter_update_errors_total";
/// `exporter_update_duration_seconds`: how long the last update took.
pub const UPDATE_DURATION_SECONDS: &str = "exporter_update_duration_seconds";
/// `exporter_last_success_timestamp_seconds`: when the last successful update ended.
pub const LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "exporter_last_success_timestamp_seconds";

/// The error an update returns when what it waited for took too long (a target that did not
/// answer within the script's own timeout, say): counted with `reason="timeout"`, like an
/// update the kit stopped at its time limit, rather than `reason="error"`.
///
/// ```
/// use profilis_exporter_kit::{BoxError, TimedOut};
///
/// let error: BoxError = TimedOut::new("GET http://localhost:8000/status: no answer within 2s").into();
/// assert!(error.is::<TimedOut>());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    message: String,
}

impl TimedOut {
    /// A time-out described by `message` (what took too long, and the limit).
    pub fn new(message: impl Into<String>) -> TimedOut {
        TimedOut {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TimedOut {}

/// Why an update failed: the values of the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The hook returned an error.
    Error,
    /// The hook panicked.
    Panic,
    /// The hook did not finish within the time limit.
    Timeout,
}

impl Failure {
    const ALL: [Failure; 3] = [Failure::Error, Failure::Panic, Failure::Timeout];

    fn reason(self) -> &'static str {
        match self {
            Failure::Error => "error",
            Failure::Panic => "panic",
            Failure::Timeout => "timeout",
        }
    }
}

/// The kit's own metrics: a live set, served whatever the script's updates do.
pub(crate) struct KitMetrics {
    pub(crate) set: MetricSet,
    up: Gauge,
    errors: Counter,
    duration: Gauge,
    last_success: Gauge,
}

impl KitMetrics {
    /// Declares them; `up` starts at `up`, each reason's counter at 0.
    pub(crate) fn new(up: bool) -> Result<KitMetrics, MetricError> {
        let set = MetricSet::new();
        let metrics = KitMetrics {
            up: set.gauge(
                UP,
                "Whether the exporter's last update succeeded (1) or failed (0)",
                &[],
            )?,
            errors: set.counter(
                UPDATE_ERRORS_TOTAL,
                "Updates of the exporter's metrics that failed, by reason: error, panic or timeout",
                &["reason"],
            )?,
            duration: set.gauge(
                UPDATE_DURATION_SECONDS,
                "How long the exporter's last update took, in seconds",
                &[],
            )?,
            last_success: set.gauge(
                LAST_SUCCESS_TIMESTAMP_SECONDS,
                "When the exporter's last successful update ended, in seconds since the Unix epoch",
                &[],
            )?,
            set,
        };
        metrics.up.set(&[], if up { 1.0 } else { 0.0 })?;
        for failure in Failure::ALL {
            metrics.errors.add(&[failure.reason()], 0.0)?;
        }
        Ok(metrics)
    }
}

/// Aborts a task when dropped: an update whose waiter is dropped (a timeout, a stop) does not
/// run on.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the script's updates and files their outcome.
pub(crate) struct Updater<S: Script> {
    script: Arc<S>,
    metrics: MetricSet,
    own: KitMetrics,
    timeout: Duration,
    handle: Handle,
    /// The update running for scrapes, which later scrapes wait for instead of starting one.
    current: Mutex<Option<watch::Receiver<bool>>>,
    stopped: AtomicBool,
}

impl<S: Script> Updater<S> {
    pub(crate) fn new(
        script: Arc<S>,
        metrics: MetricSet,
        own: KitMetrics,
        timeout: Duration,
        handle: Handle,
    ) -> Updater<S> {
        Updater {
            script,
            metrics,
            own,
            timeout,
            handle,
            current: Mutex::new(None),
            stopped: AtomicBool::new(false),
        }
    }

    /// No update starts after this.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// One update: `begin`, the script's `update` in a task of its own within the time limit,
    /// then `commit` and `up` 1, or `withdraw`, `up` 0, the reason counted and logged.
    pub(crate) async fn update_once(&self) {
        if self.is_stopped() {
            return;
        }
        self.metrics.begin();
        let started = Instant::now();
        let script = Arc::clone(&self.script);
        let mut task = AbortOnDrop(self.handle.spawn(async move { script.update().await }));
        let outcome = tokio::time::timeout(self.timeout, &mut task.0).await;
        let failure = match outcome {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(error))) if error.is::<TimedOut>() => {
                tracing::warn!("{}: the update timed out: {error}", S::NAME);
                Some(Failure::Timeout)
            }
            Ok(Ok(Err(error))) => {
                tracing::warn!("{}: the update failed: {error}", S::NAME);
                Some(Failure::Error)
            }
            Ok(Err(join_error)) if join_error.is_panic() => {
                let message = panic_message(join_error.into_panic());
                tracing::error!("{}: the update panicked: {message}", S::NAME);
                Some(Failure::Panic)
            }
            Ok(Err(_cancelled)) => {
                tracing::warn!("{}: the update was cancelled", S::NAME);
                Some(Failure::Error)
            }
            Err(_elapsed) => {
                tracing::warn!(
                    "{}: the update did not finish within {:?}; it was stopped",
                    S::NAME,
                    self.timeout
                );
                Some(Failure::Timeout)
            }
        };
        drop(task);
        let took = started.elapsed().as_secs_f64();
        self.record(failure, took);
    }

    fn record(&self, failure: Option<Failure>, took: f64) {
        // The kit's own gauges and counter are declared without labels but `reason`, so
        // writing them cannot fail; a failure would only leave a value stale.
        let _ = self.own.duration.set(&[], took);
        match failure {
            None => {
                self.metrics.commit();
                let _ = self.own.up.set(&[], 1.0);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let _ = self.own.last_success.set(&[], now);
                tracing::debug!("{}: updated in {took:.3}s", S::NAME);
            }
            Some(failure) => {
                self.metrics.withdraw();
                let _ = self.own.up.set(&[], 0.0);
                let _ = self.own.errors.inc(&[failure.reason()]);
            }
        }
    }

    /// An update for a scrape: starts one unless one is running, and waits for it. The update
    /// runs in a task of its own, so a scrape that goes away does not cut it short.
    pub(crate) async fn shared(self: Arc<Self>) {
        if self.is_stopped() {
            return;
        }
        let mut done = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            match current.as_ref() {
                Some(running) => running.clone(),
                None => {
                    let (sender, receiver) = watch::channel(false);
                    *current = Some(receiver.clone());
                    let this = Arc::clone(&self);
                    self.handle.spawn(async move {
                        this.update_once().await;
                        *this.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        let _ = sender.send(true);
                    });
                    receiver
                }
            }
        };
        // An error means the update's task was dropped (the runtime stopping): nothing to wait for.
        let _ = done.wait_for(|finished| *finished).await;
    }

    /// Updates every `interval` from one `interval` from now (the first update ran at
    /// start-up), skipping the ticks an update overran rather than catching up.
    pub(crate) async fn poll(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            if self.is_stopped() {
                return;
            }
            self.update_once().await;
        }
    }

    /// The script's set, committed (mode [`Never`](crate::UpdateMode::Never): before each
    /// scrape, so what the script wrote is served).
    pub(crate) fn commit(&self) {
        self.metrics.commit();
    }
}

/// A panic's message, when it is text.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

//! Updates: the kit's own metrics, one update (begin, the script's hook in a task of its own
//! within the time limit, commit or withdraw), updates shared by the scrapes that arrive while
//! one runs, and the polling loop.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
/// # mod profilis { pub mod kit { pub use profilis_exporter_kit::*; } }
/// use profilis::kit::{BoxError, TimedOut};
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
    /// Declares them; `up` starts at 0, each reason's counter at 0.
    pub(crate) fn new() -> Result<KitMetrics, MetricError> {
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
        metrics.up.set(&[], 0.0)?;
        for failure in Failure::ALL {
            metrics.errors.add(&[failure.reason()], 0.0)?;
        }
        Ok(metrics)
    }
}

impl KitMetrics {
    /// `exporter_up` 1: in mode [`Never`](crate::UpdateMode::Never), where no update can fail.
    pub(crate) fn set_up(&self) {
        // Declared without labels: the write cannot fail.
        let _ = self.up.set(&[], 1.0);
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

/// How long [`Updater::finish`] waits at most for the script's update tasks to end after they
/// were aborted (one blocking its thread does not end until it returns).
const FINISH_LIMIT: Duration = Duration::from_secs(10);

/// Runs the script's updates and files their outcome.
pub(crate) struct Updater<S: Script> {
    script: Arc<S>,
    metrics: MetricSet,
    own: KitMetrics,
    timeout: Duration,
    handle: Handle,
    /// The update running for scrapes, which later scrapes wait for instead of starting one.
    current: Mutex<Option<watch::Receiver<bool>>>,
    /// The task of the last update started for scrapes, aborted and awaited by [`finish`](Self::finish).
    shared_task: Mutex<Option<JoinHandle<()>>>,
    /// Scrapes that waited for an update another scrape started (for the tests).
    joined: AtomicUsize,
    /// Each task running the script's `update` holds a receiver: [`finish`](Self::finish)
    /// waits until none is left.
    in_flight: watch::Sender<()>,
    /// What the log said about failing updates.
    failures: Mutex<FailureLog>,
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
            shared_task: Mutex::new(None),
            joined: AtomicUsize::new(0),
            in_flight: watch::channel(()).0,
            failures: Mutex::new(FailureLog::default()),
            stopped: AtomicBool::new(false),
        }
    }

    /// No update starts after this. (Set under the lock of the shared update, so an update a
    /// scrape starts is either refused or its task is there for [`finish`](Self::finish).)
    pub(crate) fn stop(&self) {
        let _current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        self.stopped.store(true, Ordering::Release);
    }

    /// Aborts the update started for scrapes, if one runs, without waiting.
    pub(crate) fn abort_shared(&self) -> Option<JoinHandle<()>> {
        let task = self
            .shared_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        task.abort();
        Some(task)
    }

    /// After [`stop`](Self::stop): aborts the update started for scrapes and waits until no
    /// task of the script's `update` runs any more (for at most [`FINISH_LIMIT`]).
    pub(crate) async fn finish(&self) {
        if let Some(task) = self.abort_shared() {
            let _ = task.await;
        }
        if tokio::time::timeout(FINISH_LIMIT, self.in_flight.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                "{}: an update still runs {FINISH_LIMIT:?} after it was aborted (it blocks its \
                 thread?); shutting down without it",
                S::NAME
            );
        }
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
        let in_flight = self.in_flight.subscribe();
        let mut task = AbortOnDrop(self.handle.spawn(async move {
            let _in_flight = in_flight;
            script.update().await
        }));
        let outcome = tokio::time::timeout(self.timeout, &mut task.0).await;
        let failure = match outcome {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(error))) if error.is::<TimedOut>() => {
                Some((Failure::Timeout, format!("the update timed out: {error}")))
            }
            Ok(Ok(Err(error))) => Some((Failure::Error, format!("the update failed: {error}"))),
            Ok(Err(join_error)) if join_error.is_panic() => {
                let message = panic_message(join_error.into_panic());
                Some((Failure::Panic, format!("the update panicked: {message}")))
            }
            Ok(Err(_cancelled)) => Some((Failure::Error, "the update was cancelled".to_owned())),
            Err(_elapsed) => Some((
                Failure::Timeout,
                format!(
                    "the update did not finish within {:?}; it was stopped",
                    self.timeout
                ),
            )),
        };
        drop(task);
        let took = started.elapsed();
        self.log(failure.as_ref(), Instant::now());
        self.record(failure.map(|(failure, _)| failure), took.as_secs_f64());
    }

    /// Logs an update's outcome as [`FailureLog`] decides: a failure at warn (a panic at
    /// error) when it is the first or says something new, then a reminder at most once a
    /// minute; the recovery at info.
    fn log(&self, failure: Option<&(Failure, String)>, now: Instant) {
        let mut log = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let line = match failure {
            Some((_, message)) => log.failed(message, now),
            None => log.succeeded(now),
        };
        match line {
            None => {}
            Some(line @ LogLine::Recovered { .. }) => tracing::info!("{}: {line}", S::NAME),
            Some(line) if matches!(failure, Some((Failure::Panic, _))) => {
                tracing::error!("{}: {line}", S::NAME);
            }
            Some(line) => tracing::warn!("{}: {line}", S::NAME),
        }
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
        let mut done = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            if self.is_stopped() {
                return;
            }
            match current.as_ref() {
                Some(running) => {
                    self.joined.fetch_add(1, Ordering::SeqCst);
                    running.clone()
                }
                None => {
                    let (sender, receiver) = watch::channel(false);
                    *current = Some(receiver.clone());
                    let this = Arc::clone(&self);
                    let task = self.handle.spawn(async move {
                        this.update_once().await;
                        *this.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        let _ = sender.send(true);
                    });
                    *self.shared_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
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

    /// Waits for the polling loop's `task` to end; if it ends while the exporter is not
    /// stopping (a panic), no update will run again: the script's metrics are withdrawn,
    /// `exporter_up` is 0 and the log says it at error.
    pub(crate) async fn supervise(self: Arc<Self>, task: JoinHandle<()>) {
        let outcome = task.await;
        if self.is_stopped() {
            return;
        }
        let why = match outcome {
            Ok(()) => "it returned".to_owned(),
            Err(e) if e.is_panic() => format!("it panicked: {}", panic_message(e.into_panic())),
            Err(_) => "it was cancelled".to_owned(),
        };
        tracing::error!(
            "{}: the polling loop ended ({why}); no update will run again: the script's \
             metrics are withdrawn and exporter_up is 0 until the exporter is restarted",
            S::NAME
        );
        self.metrics.withdraw();
        let _ = self.own.up.set(&[], 0.0);
    }

    /// The script's set, committed (mode [`Never`](crate::UpdateMode::Never): before each
    /// scrape, so what the script wrote is served).
    pub(crate) fn commit(&self) {
        self.metrics.commit();
    }
}

/// How often at most a failure that keeps repeating the same message is logged again.
pub(crate) const REMIND_EVERY: Duration = Duration::from_secs(60);

/// What the log says about failing updates, so that one failing every poll does not flood it:
/// the first failure and each change of message in full, then while the same message repeats
/// one "still failing" line per [`REMIND_EVERY`] (a minute), and a line when an update succeeds
/// again.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    streak: Option<Streak>,
}

#[derive(Debug)]
struct Streak {
    since: Instant,
    failures: u64,
    message: String,
    logged: Instant,
}

/// A line [`FailureLog`] decided to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogLine {
    /// A failure after successes, or one whose message differs from the last.
    Failed(String),
    /// The same failure again, a minute or more after it was last logged.
    StillFailing {
        message: String,
        failures: u64,
        over: Duration,
    },
    /// An update succeeded after failures.
    Recovered { failures: u64, over: Duration },
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogLine::Failed(message) => f.write_str(message),
            LogLine::StillFailing {
                message,
                failures,
                over,
            } => write!(
                f,
                "still failing ({failures} times in a row over {}s; repeats are logged once a \
                 minute): {message}",
                over.as_secs()
            ),
            LogLine::Recovered { failures, over } => write!(
                f,
                "updates succeed again, after {failures} failures over {}s",
                over.as_secs()
            ),
        }
    }
}

impl FailureLog {
    /// A failure with `message` at `now`: the line to log, if any.
    pub(crate) fn failed(&mut self, message: &str, now: Instant) -> Option<LogLine> {
        let Some(streak) = self.streak.as_mut() else {
            self.streak = Some(Streak {
                since: now,
                failures: 1,
                message: message.to_owned(),
                logged: now,
            });
            return Some(LogLine::Failed(message.to_owned()));
        };
        streak.failures += 1;
        if streak.message != message {
            message.clone_into(&mut streak.message);
            streak.logged = now;
            return Some(LogLine::Failed(message.to_owned()));
        }
        if now.saturating_duration_since(streak.logged) >= REMIND_EVERY {
            streak.logged = now;
            return Some(LogLine::StillFailing {
                message: message.to_owned(),
                failures: streak.failures,
                over: now.saturating_duration_since(streak.since),
            });
        }
        None
    }

    /// A success at `now`: the line to log when it ends failures.
    pub(crate) fn succeeded(&mut self, now: Instant) -> Option<LogLine> {
        let streak = self.streak.take()?;
        Some(LogLine::Recovered {
            failures: streak.failures,
            over: now.saturating_duration_since(streak.since),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxError, Context};
    use profilis_exporters::ExpositionFormat;

    #[derive(clap::Args)]
    struct NoOptions {}

    /// A script whose update waits at a gate, counting the updates started and running.
    struct Gated {
        gate: tokio::sync::Semaphore,
        started: AtomicUsize,
        running: Arc<AtomicUsize>,
    }

    /// Decrements the running count when the update ends, however it ends.
    struct Running(Arc<AtomicUsize>);

    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Script for Gated {
        type Options = NoOptions;
        const NAME: &'static str = "gated";
        const VERSION: &'static str = "0.0.0";
        const DEFAULT_PORT: u16 = 9000;
        fn configure(_: NoOptions, _: &Context) -> Result<Self, BoxError> {
            Ok(Gated {
                gate: tokio::sync::Semaphore::new(0),
                started: AtomicUsize::new(0),
                running: Arc::new(AtomicUsize::new(0)),
            })
        }
        async fn update(&self) -> Result<(), BoxError> {
            self.running.fetch_add(1, Ordering::SeqCst);
            let _running = Running(Arc::clone(&self.running));
            self.started.fetch_add(1, Ordering::SeqCst);
            drop(self.gate.acquire().await?);
            Ok(())
        }
    }

    fn updater() -> (Arc<Updater<Gated>>, MetricSet) {
        let metrics = MetricSet::staged();
        let gated = Gated::configure(
            NoOptions {},
            &Context {
                metrics: metrics.clone(),
                common: crate::CommonOptions {
                    host: "localhost".into(),
                    port: None,
                    log_level: crate::LogLevel::Info,
                    process_stats: None,
                },
            },
        )
        .unwrap();
        let updater = Updater::new(
            Arc::new(gated),
            metrics.clone(),
            KitMetrics::new().unwrap(),
            Duration::from_secs(60),
            Handle::current(),
        );
        (Arc::new(updater), metrics)
    }

    /// Waits (bounded) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{what} did not happen within 10s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scrapes_arriving_during_an_update_share_it() {
        let (updater, _) = updater();
        let script = Arc::clone(&updater.script);
        let first = tokio::spawn(Arc::clone(&updater).shared());
        until("the first update's start", || {
            script.started.load(Ordering::SeqCst) == 1
        })
        .await;
        let others: Vec<_> = (0..3)
            .map(|_| tokio::spawn(Arc::clone(&updater).shared()))
            .collect();
        // All three joined the running update before the gate opens.
        until("three scrapes joining", || {
            updater.joined.load(Ordering::SeqCst) == 3
        })
        .await;
        script.gate.add_permits(10);
        first.await.unwrap();
        for other in others {
            other.await.unwrap();
        }
        assert_eq!(
            script.started.load(Ordering::SeqCst),
            1,
            "one update for four"
        );
        assert!(updater.current.lock().unwrap().is_none());

        // A scrape after it starts a new update.
        Arc::clone(&updater).shared().await;
        assert_eq!(script.started.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finish_aborts_and_awaits_the_update_a_scrape_started() {
        let (updater, _) = updater();
        let script = Arc::clone(&updater.script);
        let scrape = tokio::spawn(Arc::clone(&updater).shared());
        until("the update's start", || {
            script.running.load(Ordering::SeqCst) == 1
        })
        .await;
        updater.stop();
        updater.finish().await;
        assert_eq!(
            script.running.load(Ordering::SeqCst),
            0,
            "an update still runs after finish"
        );
        // The scrape waiting for it is answered, and no update starts after the stop.
        tokio::time::timeout(Duration::from_secs(10), scrape)
            .await
            .expect("the waiting scrape returns")
            .unwrap();
        Arc::clone(&updater).shared().await;
        assert_eq!(script.started.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_polling_loop_that_ends_withdraws_and_sets_up_to_0() {
        let (updater, metrics) = updater();
        let script = Arc::clone(&updater.script);
        script.gate.add_permits(1);
        updater.update_once().await;
        let own = || updater.own.set.render(ExpositionFormat::Text);
        assert!(own().contains("exporter_up 1"), "{}", own());
        let probe = metrics.gauge("probe", "A value", &[]).unwrap();
        metrics.begin();
        probe.set(&[], 3.0).unwrap();
        metrics.commit();
        assert!(metrics.render(ExpositionFormat::Text).contains("probe 3"));

        let task = tokio::spawn(async { panic!("the loop broke") });
        Arc::clone(&updater).supervise(task).await;
        assert!(own().contains("exporter_up 0"), "{}", own());
        let page = metrics.render(ExpositionFormat::Text);
        assert!(!page.contains("probe 3"), "stale values served: {page}");

        // Stopped: the loop's end is the stop, nothing changes.
        let (updater, _) = updater_pair_stopped();
        Arc::clone(&updater).supervise(tokio::spawn(async {})).await;
        let page = updater.own.set.render(ExpositionFormat::Text);
        assert!(page.contains("exporter_up 1"), "{page}");
    }

    /// An updater whose last update succeeded, then stopped.
    fn updater_pair_stopped() -> (Arc<Updater<Gated>>, MetricSet) {
        let (updater, metrics) = updater();
        updater.own.up.set(&[], 1.0).unwrap();
        updater.stop();
        (updater, metrics)
    }

    #[test]
    fn failure_log_says_the_first_each_change_then_once_a_minute_and_the_recovery() {
        let mut log = FailureLog::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            log.failed("refused", at(0)),
            Some(LogLine::Failed("refused".into()))
        );
        // The same message every 5 s: quiet until a minute after the last line.
        for s in (5..60).step_by(5) {
            assert_eq!(log.failed("refused", at(s)), None, "at {s}s");
        }
        let line = log
            .failed("refused", at(60))
            .expect("a reminder after a minute");
        assert_eq!(
            line,
            LogLine::StillFailing {
                message: "refused".into(),
                failures: 13,
                over: Duration::from_secs(60)
            }
        );
        assert!(
            line.to_string().contains("still failing (13 times"),
            "{line}"
        );
        assert_eq!(log.failed("refused", at(65)), None);
        // A new message is logged at once.
        assert_eq!(
            log.failed("answered 500", at(70)),
            Some(LogLine::Failed("answered 500".into()))
        );
        assert_eq!(log.failed("answered 500", at(75)), None);
        let line = log.succeeded(at(80)).expect("the recovery is logged");
        assert_eq!(
            line,
            LogLine::Recovered {
                failures: 16,
                over: Duration::from_secs(80)
            }
        );
        assert_eq!(log.succeeded(at(85)), None, "successes are not logged");
        assert_eq!(
            log.failed("refused", at(90)),
            Some(LogLine::Failed("refused".into())),
            "a new streak starts in full"
        );
    }
}

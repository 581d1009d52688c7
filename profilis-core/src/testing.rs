//! Capturing what profilis records, for tests: run code under a collector of its own and get
//! back every event and call count it recorded, as `metrics-util`'s `DebuggingRecorder` does
//! for metrics.
//!
//! ```
//! # use profilis_core as profilis;
//! use profilis::adapter;
//! use profilis::testing::capture;
//! use profilis::Site;
//!
//! static CHECKOUT: Site = Site::function("shop::checkout", None);
//!
//! let ((), captured) = capture(|| adapter::enter(&CHECKOUT).exit(true));
//! assert_eq!(captured.count("shop::checkout"), (1, 1));
//! assert!(captured.one("shop::checkout").error);
//! ```
//!
//! Only one collector runs in a process, so [`capture`] takes a process-wide lock for as long
//! as it runs: tests that capture in parallel take turns. A test that makes profiled calls
//! without capturing them, while other tests of its binary capture, can hold [`lock`] so its
//! calls do not land in another test's capture.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::collector::{Collector, CollectorConfig};
use crate::error::SinkError;
use crate::event::Event;
use crate::sink::{Batch, CallCount, Sink};

static LOCK: Mutex<()> = Mutex::new(());

/// Takes the lock [`capture`] holds while it runs (see the [module docs](self)).
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Everything a capture saw.
#[derive(Debug, Default)]
pub struct Captured {
    /// Every event, in the order the collector handed them over.
    pub events: Vec<Event>,
    /// Every call count, batch after batch.
    pub counts: Vec<CallCount>,
    /// Failed calls handed over as [`Batch::errors`] (only by [`capture_details`]).
    pub errors: Vec<Event>,
    /// Slow-call candidates handed over as [`Batch::slow`] (only by [`capture_details`]).
    pub slow: Vec<Event>,
}

impl Captured {
    /// The events of the site named `name`.
    pub fn named(&self, name: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.name() == name).collect()
    }

    /// The one event of the site named `name`.
    ///
    /// # Panics
    /// Unless there is exactly one, naming every event seen.
    pub fn one(&self, name: &str) -> &Event {
        let found = self.named(name);
        assert_eq!(
            found.len(),
            1,
            "expected one event named {name}, got {}; all: {:?}",
            found.len(),
            self.names()
        );
        found[0]
    }

    /// Total calls and errors counted for the site named `name`.
    pub fn count(&self, name: &str) -> (u64, u64) {
        self.counts
            .iter()
            .filter(|c| c.site.name() == name)
            .fold((0, 0), |(calls, errors), c| {
                (calls + c.calls, errors + c.errors)
            })
    }

    /// The names of all events, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.events.iter().map(Event::name).collect()
    }
}

/// A sink that keeps every event and count it is given, readable while the collector runs.
#[derive(Debug, Clone, Default)]
pub struct CaptureSink(Arc<Mutex<Captured>>, bool);

impl CaptureSink {
    /// An empty capture.
    pub fn new() -> CaptureSink {
        CaptureSink::default()
    }

    /// An empty capture that also wants details ([`Sink::wants_details`]): fine duration
    /// buckets, failed and slow calls, as the dashboard does.
    pub fn with_details() -> CaptureSink {
        CaptureSink(Arc::default(), true)
    }

    /// Takes what was captured so far, leaving the capture empty.
    pub fn take(&self) -> Captured {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Sink for CaptureSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let mut captured = self.0.lock().unwrap_or_else(|e| e.into_inner());
        captured.events.extend(batch.events.iter().cloned());
        captured.counts.extend(batch.counts.iter().cloned());
        captured.errors.extend(batch.errors.iter().cloned());
        captured.slow.extend(batch.slow.iter().cloned());
        Ok(())
    }

    fn wants_details(&self) -> bool {
        self.1
    }

    fn wants_exemplars(&self) -> bool {
        self.1
    }

    fn name(&self) -> &str {
        "capture"
    }
}

/// Runs `f` under a collector of its own (flushing every 5 ms, profiling on) and returns what
/// it recorded, once the collector has drained everything.
///
/// # Panics
/// If another collector is running in the process (outside [`capture`]), or the collector does
/// not drain within its shutdown timeout.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Captured) {
    capture_with(
        CollectorConfig {
            flush_interval: Duration::from_millis(5),
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        f,
    )
}

/// As [`capture`], with the collector set up by `config`.
///
/// # Panics
/// As [`capture`], and if `config` is not valid.
pub fn capture_with<R>(config: CollectorConfig, f: impl FnOnce() -> R) -> (R, Captured) {
    capture_into(CaptureSink::new(), config, f)
}

/// As [`capture`], with a sink that also wants details ([`CaptureSink::with_details`]).
///
/// # Panics
/// As [`capture`].
pub fn capture_details<R>(f: impl FnOnce() -> R) -> (R, Captured) {
    capture_into(
        CaptureSink::with_details(),
        CollectorConfig {
            flush_interval: Duration::from_millis(5),
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        f,
    )
}

fn capture_into<R>(
    sink: CaptureSink,
    config: CollectorConfig,
    f: impl FnOnce() -> R,
) -> (R, Captured) {
    let _lock = lock();
    let collector = match Collector::start(config, vec![Box::new(sink.clone())]) {
        Ok(collector) => collector,
        Err(e) => panic!("the capturing collector cannot start: {e}"),
    };
    let result = f();
    let report = collector.shutdown();
    assert!(report.is_clean(), "the collector drained in time: {report}");
    (result, sink.take())
}

//! A capturing sink and a way to run code under a fresh collector, shared by the
//! `#[profiled]` runtime tests.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use profilis::{Batch, CallCount, Collector, CollectorConfig, Event, Sink, SinkError};

/// Only one collector runs per process: tests in one binary take this lock first.
static LOCK: Mutex<()> = Mutex::new(());

/// Everything the sink saw.
#[derive(Default)]
pub struct Captured {
    pub events: Vec<Event>,
    pub counts: Vec<CallCount>,
}

impl Captured {
    /// The events of the site named `name`.
    pub fn named(&self, name: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.name() == name).collect()
    }

    /// The one event of the site named `name`; panics unless there is exactly one.
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

    /// Total (calls, errors) counted for the site named `name`.
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

struct CaptureSink(Arc<Mutex<Captured>>);

impl Sink for CaptureSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let mut captured = self.0.lock().unwrap();
        captured.events.extend(batch.events.iter().cloned());
        captured.counts.extend(batch.counts.iter().cloned());
        Ok(())
    }
}

/// Takes the lock that tests holding a collector take, so calls made while holding it see none.
pub fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` under a fresh collector and returns what it recorded, once the collector has
/// drained everything.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Captured) {
    let _serial = serial();
    let captured = Arc::new(Mutex::new(Captured::default()));
    let collector = Collector::start(
        CollectorConfig {
            flush_interval: Duration::from_millis(5),
            enabled: Some(true),
            ..Default::default()
        },
        vec![Box::new(CaptureSink(captured.clone()))],
    )
    .expect("collector starts");
    let result = f();
    assert!(collector.shutdown(), "collector drained in time");
    let captured = std::mem::take(&mut *captured.lock().unwrap());
    (result, captured)
}

/// Runs `future` to completion on a current-thread tokio runtime under a fresh collector.
pub fn capture_async<F: std::future::Future>(future: F) -> (F::Output, Captured) {
    capture(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    })
}

/// Like [`capture_async`], on a multi-thread runtime.
pub fn capture_multi_thread<F>(future: F) -> (F::Output, Captured)
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    capture(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    })
}

/// At least `ms` milliseconds, in nanoseconds.
pub fn ms(ms: u64) -> u64 {
    ms * 1_000_000
}

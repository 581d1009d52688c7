//! Code not of this crate that runs while a call is being recorded into the thread's state,
//! and restarts the collector and makes profiled calls there: a failed call's error
//! `Display`, and the `Drop` of an adapter's event detail when a full queue evicts its event.
//! The calls inside it give the thread a new state (the collector generation changed); the old
//! state must stay alive until the call being recorded is done with it.
//!
//! A binary of its own, for its allocator: every block is overwritten before it is freed, so a
//! state used after it was freed reads as garbage (and the test crashes), not as the values it
//! held.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use profilis::adapter::Timer;
use profilis::{
    profiled, Batch, Collector, CollectorConfig, Detail, DropPolicy, Outcome, Sink, SinkError,
    Site, Value,
};

/// The system allocator, filling each block with a pattern before freeing it.
struct Poisoning;

// SAFETY: every call is passed to the system allocator; `dealloc` writes only the block being
// freed, which the caller owns.
unsafe impl GlobalAlloc for Poisoning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe {
            ptr.write_bytes(0xA5, layout.size());
            System.dealloc(ptr, layout);
        }
    }
}

#[global_allocator]
static ALLOCATOR: Poisoning = Poisoning;

/// The names of the sites whose counts a collector delivered; a sink that wants events, and
/// details unless made by [`Counted::without_details`].
#[derive(Clone)]
struct Counted(Arc<Mutex<Vec<&'static str>>>, bool);

impl Default for Counted {
    fn default() -> Counted {
        Counted(Arc::default(), true)
    }
}

impl Counted {
    /// A sink that wants no details: no event is kept beyond the queue (as a slow call would
    /// be), so an evicted event is dropped for good.
    fn without_details() -> Counted {
        Counted(Arc::default(), false)
    }

    fn has(&self, name: &str) -> bool {
        self.0.lock().unwrap().contains(&name)
    }

    /// Waits (at most 10 s) until a count of `name` has been delivered.
    fn wait_for(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.has(name) {
            assert!(Instant::now() < deadline, "no count of {name} delivered");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Sink for Counted {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let mut names = self.0.lock().unwrap();
        names.extend(batch.counts.iter().map(|c| c.site.name()));
        Ok(())
    }

    fn wants_details(&self) -> bool {
        self.1
    }
}

fn config() -> CollectorConfig {
    CollectorConfig {
        flush_interval: Duration::from_millis(1),
        enabled: Some(true),
        ..CollectorConfig::default()
    }
}

/// The running collector and its sink.
static COLLECTOR: Mutex<Option<(Collector, Counted)>> = Mutex::new(None);

/// Stops the running collector (cleanly) and returns its sink.
fn stop() -> Counted {
    let (collector, sink) = COLLECTOR.lock().unwrap().take().expect("a collector");
    assert!(collector.shutdown().is_clean());
    sink
}

/// The tests share the one collector: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Replaces the running collector by a new one (flushing every millisecond) and makes
/// profiled calls under it: this thread gets a new state and lets go of the old one.
fn restart() {
    let (old, _) = COLLECTOR.lock().unwrap().take().expect("a collector");
    let _ = old.shutdown();
    let (new, sink) = start();
    inside();
    sink.wait_for("restart_while_recording::inside");
    // The cycle that delivered that count would have retired the old state, were it not held
    // (no thread owns it any more, and it was read in full); the next cycle starts after that
    // one is done.
    again();
    sink.wait_for("restart_while_recording::again");
    *COLLECTOR.lock().unwrap() = Some((new, sink));
}

#[derive(Debug)]
struct Restarts;

impl fmt::Display for Restarts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        restart();
        f.write_str("restarted the collector")
    }
}

#[profiled]
fn inside() {}

#[profiled]
fn again() {}

#[profiled]
fn fails_if(fail: bool) -> Result<(), Restarts> {
    if fail {
        Err(Restarts)
    } else {
        Ok(())
    }
}

#[profiled]
fn after() {}

/// A collector (flushing every millisecond) with a sink of its own that wants details: the
/// end of a failed call then writes its failure, and the `Display` runs in the middle of it.
fn start() -> (Collector, Counted) {
    let sink = Counted::default();
    let collector = Collector::start(config(), vec![Box::new(sink.clone())]).expect("a collector");
    (collector, sink)
}

#[test]
fn a_display_that_restarts_the_collector_leaves_the_failed_call_sound() {
    let _serial = serial();
    let (collector, first) = start();
    *COLLECTOR.lock().unwrap() = Some((collector, first.clone()));
    // The thread's state for the first collector, and the site's row in it: the failed call
    // below takes the usual path of a call's end.
    assert!(fails_if(false).is_ok());
    first.wait_for("restart_while_recording::fails_if");
    assert!(fails_if(true).is_err());
    // Under the second collector, the site's first call on this thread: the other path.
    assert!(fails_if(true).is_err());
    after();

    let third = stop();
    // The calls after the last restart are counted by the third collector.
    assert!(third.has("restart_while_recording::inside"));
    assert!(third.has("restart_while_recording::after"));
}

/// An adapter's event detail whose `Drop` restarts the collector when it runs on the thread
/// that made it (as it does when a profiled call's push into a full queue evicts its event).
#[derive(Debug)]
struct RestartsWhenDropped {
    on: ThreadId,
}

/// Whether a [`RestartsWhenDropped`] was dropped, and on the thread that made it.
static DROPPED: Mutex<Option<bool>> = Mutex::new(None);

impl Detail for RestartsWhenDropped {
    fn field(&self, _key: &str) -> Option<Value<'_>> {
        None
    }
}

impl Drop for RestartsWhenDropped {
    fn drop(&mut self) {
        let here = thread::current().id() == self.on;
        *DROPPED.lock().unwrap() = Some(here);
        if here {
            restart();
        }
    }
}

static ADAPTER: Site = Site::function("restart_while_recording::adapter", None);

#[profiled]
fn queued() {}

#[test]
fn a_detail_dropped_by_a_full_queue_that_restarts_the_collector_leaves_the_push_sound() {
    let _serial = serial();
    // A queue of 8 events that evicts the oldest when full, and a collector that neither
    // flushes nor is woken while the test fills it.
    let config = CollectorConfig {
        queue_size: 8,
        batch_max: 1000,
        flush_interval: Duration::from_secs(3600),
        drop_policy: DropPolicy::Oldest,
        enabled: Some(true),
        ..CollectorConfig::default()
    };
    let first = Counted::without_details();
    let collector =
        Collector::start(config, vec![Box::new(first.clone())]).expect("the first collector");
    *COLLECTOR.lock().unwrap() = Some((collector, first));
    let timer = Timer::start(None).expect("profiling is on");
    let on = thread::current().id();
    timer.finish(&ADAPTER, true, false, Outcome::Returned, || {
        RestartsWhenDropped { on }
    });
    // The adapter's event is the oldest of the 8 queued: the ninth event evicts it.
    for _ in 0..7 {
        queued();
    }
    assert_eq!(*DROPPED.lock().unwrap(), None, "not evicted yet");
    queued();
    assert_eq!(
        *DROPPED.lock().unwrap(),
        Some(true),
        "evicted by the ninth push, on this thread"
    );
    queued();

    let second = stop();
    // The calls after the restart are counted by the second collector.
    assert!(second.has("restart_while_recording::inside"));
    assert!(second.has("restart_while_recording::queued"));
}

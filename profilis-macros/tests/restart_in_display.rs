//! A failed call whose error's `Display` restarts the collector and makes profiled calls: the
//! end of the failed call runs that `Display` while it records into the thread's state, and
//! the calls inside it give the thread a new state (the collector generation changed). The old
//! state must stay alive until the end of the failed call is done with it.
//!
//! A binary of its own, for its allocator: every block is overwritten before it is freed, so a
//! state used after it was freed reads as garbage (and the test crashes), not as the values it
//! held.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use profilis::{profiled, Batch, Collector, CollectorConfig, Sink, SinkError};

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

/// The names of the sites whose counts a collector delivered.
#[derive(Clone, Default)]
struct Counted(Arc<Mutex<Vec<&'static str>>>);

impl Counted {
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
        true
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

#[derive(Debug)]
struct Restarts;

impl fmt::Display for Restarts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (old, _) = COLLECTOR.lock().unwrap().take().expect("a collector");
        let _ = old.shutdown();
        let (new, sink) = start();
        // Under the new collector, this thread gets a new state and lets go of the old one.
        inside();
        sink.wait_for("restart_in_display::inside");
        // The cycle that delivered that count would have retired the old state, were it not
        // held (no thread owns it any more, and it was read in full); the next cycle starts
        // after that one is done.
        again();
        sink.wait_for("restart_in_display::again");
        *COLLECTOR.lock().unwrap() = Some((new, sink));
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
    let (collector, first) = start();
    *COLLECTOR.lock().unwrap() = Some((collector, first.clone()));
    // The thread's state for the first collector, and the site's row in it: the failed call
    // below takes the usual path of a call's end.
    assert!(fails_if(false).is_ok());
    first.wait_for("restart_in_display::fails_if");
    assert!(fails_if(true).is_err());
    // Under the second collector, the site's first call on this thread: the other path.
    assert!(fails_if(true).is_err());
    after();

    let (collector, third) = COLLECTOR
        .lock()
        .unwrap()
        .take()
        .expect("the third collector");
    assert!(collector.shutdown().is_clean());
    // The calls after the last restart are counted by the third collector.
    assert!(third.has("restart_in_display::inside"));
    assert!(third.has("restart_in_display::after"));
}

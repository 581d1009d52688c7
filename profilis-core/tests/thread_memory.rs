//! Memory that follows use: what a thread costs once it makes profiled calls, with and without a
//! sink that wants events, and resident memory after 20,000 short-lived threads.
//!
//! Resident memory is read from `/proc/self/statm` (Linux). The per-thread figures are the
//! growth between 1,000 live threads that have not made a call yet and the same threads after
//! their calls, so the threads' own stacks are not counted (each thread writes 64 KiB of its
//! stack before the first reading, deeper than its calls reach); every test takes the
//! collector in turn, and this file is its own process, so nothing else allocates meanwhile.

use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use profilis_core::adapter::enter;
use profilis_core::testing::lock as serial;
use profilis_core::{stats, Batch, Collector, CollectorConfig, Sink, SinkError, Site};

const THREADS: usize = 1_000;
const KIB: u64 = 1024;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // statm counts pages of 4 KiB on the x86_64 and aarch64 Linux machines this runs on.
    pages * 4096
}

/// Resident memory once the allocator has returned what it keeps freed (glibc's
/// `malloc_trim`): what is in use, not what a burst left cached. On a loaded machine the
/// collector falls behind for a while, exited threads' states wait longer to be read and
/// reused, and new threads allocate states of their own; freed later, that memory stays in
/// the allocator's arenas (0.5-10 MiB in CI runs under load), ready for reuse, and is not what
/// this test is about: memory that profilis keeps.
fn resident_in_use() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    resident_bytes()
}

/// Counts calls and events; `events` says whether it wants them one by one.
#[derive(Clone)]
struct Counting {
    events: bool,
    details: bool,
    seen: Arc<Mutex<(u64, u64)>>,
}

impl Counting {
    fn new(events: bool) -> Counting {
        Counting {
            events,
            details: false,
            seen: Arc::default(),
        }
    }

    /// (calls counted, events received).
    fn seen(&self) -> (u64, u64) {
        *self.seen.lock().unwrap()
    }
}

impl Sink for Counting {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let mut seen = self.seen.lock().unwrap();
        seen.0 += batch.counts.iter().map(|c| c.calls).sum::<u64>();
        seen.1 += batch.events.len() as u64;
        Ok(())
    }

    fn wants_events(&self) -> bool {
        self.events
    }

    fn wants_details(&self) -> bool {
        self.details
    }
}

fn start(sink: &Counting) -> Collector {
    Collector::start(
        CollectorConfig {
            flush_interval: Duration::from_millis(5),
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        vec![Box::new(sink.clone())],
    )
    .unwrap()
}

/// Waits until the sink has counted `calls` calls (at most ~20 s).
fn wait_for_calls(sink: &Counting, calls: u64) {
    for _ in 0..2_000 {
        if sink.seen().0 >= calls {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "the sink counted {:?} of {calls} calls; {:?}",
        sink.seen(),
        stats()
    );
}

/// Writes 64 KiB of this thread's stack (of 128 KiB), so that the stack pages the calls'
/// frames reach are resident before the measurement starts: what a thread's calls touch of its
/// own stack (it depends on the build: a debug build's frames are large, and a few bytes more
/// in one of them can reach one more page) is not what profilis keeps for the thread.
#[inline(never)]
fn touch_stack() {
    let mut stack = [0u8; 64 * 1024];
    std::hint::black_box(&mut stack);
}

/// Resident memory added per thread when each of `THREADS` live threads makes `calls` calls
/// of `site`, after the collector has read them all.
fn per_thread_cost(site: &'static Site, sink: &Counting, calls: u64) -> u64 {
    let before_calls = sink.seen().0;
    let ready = Arc::new(Barrier::new(THREADS + 1));
    let go = Arc::new(Barrier::new(THREADS + 1));
    let done = Arc::new(Barrier::new(THREADS + 1));
    let exit = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (ready, go, done, exit) = (ready.clone(), go.clone(), done.clone(), exit.clone());
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    // Attach this thread to a malloc arena before the measurement starts.
                    std::hint::black_box(Box::new([0u8; 64]));
                    touch_stack();
                    ready.wait();
                    go.wait();
                    for _ in 0..calls {
                        enter(site).exit(false);
                    }
                    done.wait();
                    exit.wait();
                })
                .unwrap()
        })
        .collect();
    ready.wait();
    std::thread::sleep(Duration::from_millis(50));
    let before = resident_bytes();
    go.wait();
    done.wait();
    wait_for_calls(sink, before_calls + THREADS as u64 * calls);
    // Two more cycles: the collector has read every thread's table and queue.
    std::thread::sleep(Duration::from_millis(50));
    let after = resident_bytes();
    exit.wait();
    for thread in threads {
        thread.join().unwrap();
    }
    after.saturating_sub(before) / THREADS as u64
}

#[test]
fn a_thread_costs_at_most_16_kib_without_event_sinks_and_64_kib_with_one() {
    let _serial = serial();
    static SITE: Site = Site::function("thread_memory::aggregated", None);
    static EVENTS: Site = Site::function("thread_memory::events", None);

    let sink = Counting::new(false);
    let collector = start(&sink);
    let cost = per_thread_cost(&SITE, &sink, 100);
    assert!(collector.shutdown().is_clean());
    eprintln!("a thread that makes profiled calls, no sink wants events: {cost} bytes");
    assert!(cost <= 16 * KIB, "{} KiB a thread", cost / KIB);

    let sink = Counting::new(true);
    let collector = start(&sink);
    // 100 calls: the queue (2,048 events by default) never fills.
    let cost = per_thread_cost(&EVENTS, &sink, 100);
    assert!(collector.shutdown().is_clean());
    assert_eq!(sink.seen().1, THREADS as u64 * 100, "every event delivered");
    eprintln!("a thread that makes profiled calls, a sink wants every event: {cost} bytes");
    assert!(cost <= 64 * KIB, "{} KiB a thread", cost / KIB);
}

#[test]
fn fine_buckets_for_the_dashboard_keep_a_thread_within_16_kib() {
    let _serial = serial();
    static SITE: Site = Site::function("thread_memory::details", None);
    let sink = Counting {
        details: true,
        ..Counting::new(false)
    };
    let collector = start(&sink);
    let cost = per_thread_cost(&SITE, &sink, 100);
    assert!(collector.shutdown().is_clean());
    eprintln!("a thread that makes profiled calls, a sink wants details: {cost} bytes");
    assert!(cost <= 16 * KIB, "{} KiB a thread", cost / KIB);
}

#[test]
fn resident_memory_comes_back_after_20000_short_lived_threads() {
    let _serial = serial();
    static SITE: Site = Site::function("thread_memory::churn", None);
    const CHURN: usize = 20_000;
    const AT_ONCE: usize = 16;
    const CALLS: u64 = 50;

    let sink = Counting::new(true);
    let collector = start(&sink);
    let churn = |threads: usize| {
        for started in (0..threads).step_by(AT_ONCE) {
            let batch: Vec<_> = (started..threads.min(started + AT_ONCE))
                .map(|_| {
                    std::thread::spawn(|| {
                        for _ in 0..CALLS {
                            enter(&SITE).exit(false);
                        }
                    })
                })
                .collect();
            for thread in batch {
                thread.join().unwrap();
            }
        }
    };
    // Warm up: the allocator's arenas, the collector's buffers, the sink's series.
    churn(1_000);
    wait_for_calls(&sink, 1_000 * CALLS);
    std::thread::sleep(Duration::from_millis(50));
    let start = resident_in_use();

    churn(CHURN);
    wait_for_calls(&sink, (1_000 + CHURN) as u64 * CALLS);
    // The collector forgets the states of exited threads once it has read them.
    std::thread::sleep(Duration::from_millis(100));
    let end = resident_in_use();
    assert!(collector.shutdown().is_clean());
    let (calls, events) = sink.seen();
    assert_eq!(calls, (1_000 + CHURN) as u64 * CALLS, "every call counted");
    assert_eq!(events, calls, "every event delivered");
    let grown = end.saturating_sub(start);
    eprintln!(
        "resident memory after {CHURN} short-lived threads: {} KiB at the start, {} KiB grown",
        start / KIB,
        grown / KIB
    );
    assert!(grown <= 8 * 1024 * KIB, "grew by {} KiB", grown / KIB);
}

//! The hot path allocates nothing: after warm-up, 100,000 profiled calls (sync, async,
//! sampled out, erroring) make no heap allocation on the calling thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use profilis::{profiled, Collector, CollectorConfig};

struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = WATCHING.try_with(|w| {
            if w.get() {
                ALLOCATIONS.with(|a| a.set(a.get() + 1));
            }
        });
        // SAFETY: the caller's guarantees for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[profiled]
fn work(i: u64) -> Result<u64, &'static str> {
    if i.is_multiple_of(7) {
        Err("seven")
    } else {
        Ok(i * 2)
    }
}

#[profiled]
fn outer(i: u64) -> u64 {
    work(i).unwrap_or(0) + 1
}

#[profiled(sample = 0.0)]
fn skipped(i: u64) -> u64 {
    i + 1
}

#[profiled]
async fn later(i: u64) -> u64 {
    i + 3
}

fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|a| a.set(0));
    WATCHING.with(|w| w.set(true));
    f();
    WATCHING.with(|w| w.set(false));
    ALLOCATIONS.with(|a| a.get())
}

#[test]
fn hundred_thousand_calls_allocate_nothing() {
    let collector = Collector::start(
        CollectorConfig {
            flush_interval: Duration::from_millis(1),
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        vec![],
    )
    .unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut run = |i: u64| {
        let mut sum = outer(i) + skipped(i);
        let mut fut = std::pin::pin!(later(i));
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            sum += v;
        }
        std::hint::black_box(sum);
    };
    // Warm-up: this thread's ring and counters, the sites' ids.
    for i in 0..1_000 {
        run(i);
    }
    let n = allocations_during(|| {
        for i in 0..100_000 {
            run(i);
        }
    });
    assert_eq!(n, 0, "{n} allocations in 100,000 profiled calls");
    // The counter works: an allocation on this thread is seen.
    let m = allocations_during(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(m, 1);
    assert!(collector.shutdown().is_clean());
}

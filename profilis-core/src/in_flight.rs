//! Requests being served right now, kept by the HTTP adapters and reported by the facade sink as
//! `profilis_http_requests_in_flight`.
//!
//! Counted per thread and summed when read: a request adds one to the counter of the thread it
//! starts on and takes one from the counter of the thread it ends on (with work-stealing
//! runtimes, not always the same). Each counter is written by its own thread only, so counting
//! is a plain load and store on a cache line no other thread writes: no atomic
//! read-modify-write, no line bouncing between the cores that serve requests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// One thread's counter, on a cache line of its own.
#[repr(align(128))]
struct Slot(AtomicI64);

/// The counters of live threads and what exited threads left behind, under one lock so a
/// reader never counts an exiting thread twice or not at all.
struct Registry {
    slots: Vec<Arc<Slot>>,
    retired: i64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    slots: Vec::new(),
    retired: 0,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's counter; registered on first use, retired when the thread exits.
struct Local(Arc<Slot>);

impl Local {
    fn register() -> Local {
        let slot = Arc::new(Slot(AtomicI64::new(0)));
        registry().slots.push(Arc::clone(&slot));
        Local(slot)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let mut registry = registry();
        registry.retired += self.0 .0.load(Ordering::Relaxed);
        registry.slots.retain(|slot| !Arc::ptr_eq(slot, &self.0));
    }
}

thread_local! {
    static LOCAL: Local = Local::register();
}

#[inline]
fn add(delta: i64) {
    let counted = LOCAL.try_with(|local| {
        let count = &local.0 .0;
        // Only this thread writes its counter.
        count.store(count.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    });
    if counted.is_err() {
        add_retired(delta);
    }
}

/// A request started or ended while its thread is being torn down.
#[cold]
fn add_retired(delta: i64) {
    registry().retired += delta;
}

/// HTTP requests being served now. Summed over threads one by one while requests go on, so a
/// request that starts on one thread and ends on another during the sum can be missed or
/// counted; never below zero.
pub fn http() -> i64 {
    let registry = registry();
    let live: i64 = registry
        .slots
        .iter()
        .map(|slot| slot.0.load(Ordering::Relaxed))
        .sum();
    (registry.retired + live).max(0)
}

/// Counts one HTTP request in flight until the guard drops.
#[derive(Debug)]
#[must_use = "the request counts as in flight until the guard drops"]
pub struct HttpInFlight(());

impl HttpInFlight {
    /// A request starts being served.
    #[inline]
    pub fn start() -> HttpInFlight {
        add(1);
        HttpInFlight(())
    }
}

impl Drop for HttpInFlight {
    #[inline]
    fn drop(&mut self) {
        add(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_that_end_on_other_threads_and_exited_threads_add_up() {
        let before = http();
        let started: Vec<HttpInFlight> = (0..3).map(|_| HttpInFlight::start()).collect();
        assert_eq!(http(), before + 3);
        // Ended on another thread, which then exits: its -3 stays in the total.
        std::thread::spawn(move || drop(started)).join().unwrap();
        assert_eq!(http(), before);
        // Started on a thread that exits with the request still in flight.
        let open = std::thread::spawn(HttpInFlight::start).join().unwrap();
        assert_eq!(http(), before + 1);
        drop(open);
        assert_eq!(http(), before);
    }
}

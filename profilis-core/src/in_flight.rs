//! Calls under way, per kind (HTTP requests being served, say), for the kinds that have an
//! in-flight gauge ([`Kind::in_flight`]): kept by adapters with [`InFlight`], read by outputs
//! with [`in_flight`].
//!
//! Counted per thread and summed when read: a call adds one to the counter of the thread it
//! starts on and takes one from the counter of the thread it ends on (with work-stealing
//! runtimes, not always the same). Each counter is written by its own thread only, so counting
//! is a plain load and store on a cache line no other thread writes: no atomic
//! read-modify-write, no line bouncing between the cores that serve requests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::kind::Kind;

/// Kinds with a counter of their own on every thread; the others are counted under a lock.
const PER_THREAD: usize = 8;

/// One thread's counters, one per kind id, on cache lines no other thread writes.
#[repr(align(128))]
struct Slot([AtomicI64; PER_THREAD]);

/// The counters of live threads, and what exited threads (and kinds without a per-thread
/// counter) left behind, under one lock so a reader never counts an exiting thread twice or not
/// at all.
struct Registry {
    slots: Vec<Arc<Slot>>,
    /// Per kind id.
    retired: Vec<i64>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    slots: Vec::new(),
    retired: Vec::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    fn retire(&mut self, kind: usize, delta: i64) {
        if self.retired.len() <= kind {
            self.retired.resize(kind + 1, 0);
        }
        self.retired[kind] += delta;
    }
}

/// This thread's counters; registered on first use, retired when the thread exits.
struct Local(Arc<Slot>);

impl Local {
    fn register() -> Local {
        let slot = Arc::new(Slot(std::array::from_fn(|_| AtomicI64::new(0))));
        registry().slots.push(Arc::clone(&slot));
        Local(slot)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let mut registry = registry();
        for (kind, count) in self.0 .0.iter().enumerate() {
            registry.retire(kind, count.load(Ordering::Relaxed));
        }
        registry.slots.retain(|slot| !Arc::ptr_eq(slot, &self.0));
    }
}

thread_local! {
    static LOCAL: Local = Local::register();
}

#[inline]
fn add(kind: usize, delta: i64) {
    let counted = kind < PER_THREAD
        && LOCAL
            .try_with(|local| {
                let count = &local.0 .0[kind];
                // Only this thread writes its counter.
                count.store(count.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
            })
            .is_ok();
    if !counted {
        add_shared(kind, delta);
    }
}

/// A call of a kind without a per-thread counter, or on a thread being torn down.
#[cold]
fn add_shared(kind: usize, delta: i64) {
    registry().retire(kind, delta);
}

/// Calls of `kind` under way now. Summed over threads one by one while calls go on, so a call
/// that starts on one thread and ends on another during the sum can be missed or counted;
/// never below zero.
pub fn in_flight(kind: &'static Kind) -> i64 {
    let kind = kind.id() as usize;
    let registry = registry();
    let live: i64 = registry
        .slots
        .iter()
        .filter_map(|slot| slot.0.get(kind))
        .map(|count| count.load(Ordering::Relaxed))
        .sum();
    (registry.retired.get(kind).copied().unwrap_or(0) + live).max(0)
}

/// Counts one call of a kind as under way until the guard drops.
#[derive(Debug)]
#[must_use = "the call counts as under way until the guard drops"]
pub struct InFlight {
    kind: usize,
}

impl InFlight {
    /// A call of `kind` starts.
    #[inline]
    pub fn start(kind: &'static Kind) -> InFlight {
        let kind = kind.id() as usize;
        add(kind, 1);
        InFlight { kind }
    }
}

impl Drop for InFlight {
    #[inline]
    fn drop(&mut self) {
        add(self.kind, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{Metric, HTTP};

    #[test]
    fn calls_that_end_on_other_threads_and_exited_threads_add_up() {
        let before = in_flight(&HTTP);
        let started: Vec<InFlight> = (0..3).map(|_| InFlight::start(&HTTP)).collect();
        assert_eq!(in_flight(&HTTP), before + 3);
        // Ended on another thread, which then exits: its -3 stays in the total.
        std::thread::spawn(move || drop(started)).join().unwrap();
        assert_eq!(in_flight(&HTTP), before);
        // Started on a thread that exits with the call still under way.
        let open = std::thread::spawn(|| InFlight::start(&HTTP))
            .join()
            .unwrap();
        assert_eq!(in_flight(&HTTP), before + 1);
        drop(open);
        assert_eq!(in_flight(&HTTP), before);
    }

    #[test]
    fn kinds_beyond_the_per_thread_counters_are_counted_too() {
        const fn metric(name: &'static str) -> Metric {
            Metric { name, help: "test" }
        }
        static MANY: [Kind; PER_THREAD] = [const {
            Kind::new(
                "many",
                "MANY",
                "many",
                metric("many_total"),
                metric("many_seconds"),
            )
        }; PER_THREAD];
        let last = MANY.last().unwrap();
        for kind in &MANY {
            kind.id();
        }
        assert!(last.id() as usize >= PER_THREAD);
        let guard = InFlight::start(last);
        assert_eq!(in_flight(last), 1);
        drop(guard);
        assert_eq!(in_flight(last), 0);
    }
}

//! The collector run that threads record for (its [`Generation`]), and the registry of thread
//! states the collector reads, with what retired states left behind.

use std::sync::{Arc, Mutex};
use std::thread::Thread;

use super::table::ThreadState;
use crate::collector::Buckets;
use crate::kind::Kind;
use crate::ring::DropPolicy;

/// Settings of one collector run, shared by the thread states made during it.
pub(crate) struct Generation {
    pub(crate) id: u64,
    pub(crate) queue_size: usize,
    pub(crate) batch_max: u64,
    pub(crate) policy: DropPolicy,
    pub(crate) worker: Thread,
    /// Whether any sink wants individual events; if none does, calls are only aggregated.
    pub(crate) events: bool,
    /// Upper bounds of the duration buckets in clock ticks, per kind.
    pub(crate) bounds: Bounds,
}

/// Bucket bounds per kind id (increasing; `+Inf` is implied), in clock ticks for the calling
/// threads and in seconds for the collector, and the bounds of kinds first used after the
/// collector started.
#[derive(Clone)]
pub(crate) struct Bounds<T = u64> {
    by_kind: Box<[Box<[T]>]>,
    default: Box<[T]>,
}

impl<T: Copy> Bounds<T> {
    /// The bounds of `buckets` for `kinds` (every kind known, by id), each bound converted by
    /// `convert`.
    pub(crate) fn new(
        kinds: &[&'static Kind],
        buckets: &Buckets,
        convert: impl Fn(f64) -> T,
    ) -> Bounds<T> {
        let convert = |bounds: &[f64]| bounds.iter().map(|&s| convert(s)).collect();
        Bounds {
            by_kind: kinds.iter().map(|k| convert(buckets.of(k))).collect(),
            default: convert(buckets.all()),
        }
    }

    /// The bounds of kind `id`.
    #[inline(always)]
    pub(crate) fn of(&self, kind: u32) -> &[T] {
        self.by_kind.get(kind as usize).unwrap_or(&self.default)
    }

    /// Values kept per site: calls, errors, then (count, sum of ticks) per bucket and `+Inf`.
    pub(crate) fn stride(&self) -> usize {
        let most = self.by_kind.iter().chain([&self.default]).map(|b| b.len());
        2 + 2 * (most.max().unwrap_or(0) + 1)
    }
}

static GENERATION: Mutex<Option<Arc<Generation>>> = Mutex::new(None);
static THREADS: Mutex<Registry> = Mutex::new(Registry {
    states: Vec::new(),
    retired_enqueued: 0,
    retired_dropped: 0,
});

/// Thread states, and the totals of the states already retired, kept under one lock so the
/// collector's counters never count a retiring state twice or not at all.
struct Registry {
    states: Vec<Arc<ThreadState>>,
    retired_enqueued: u64,
    retired_dropped: u64,
}

/// A consistent view of the registry.
pub(crate) struct Snapshot {
    pub(crate) states: Vec<Arc<ThreadState>>,
    /// Events offered by retired states.
    pub(crate) retired_enqueued: u64,
    /// Events dropped by retired states.
    pub(crate) retired_dropped: u64,
}

/// Sets (or, with `None`, clears) the running generation.
pub(crate) fn set_generation(generation: Option<Arc<Generation>>) {
    *GENERATION.lock().unwrap_or_else(|e| e.into_inner()) = generation;
}

/// The running generation, if it is generation `id`.
pub(crate) fn generation(id: u64) -> Option<Arc<Generation>> {
    let generation = GENERATION.lock().unwrap_or_else(|e| e.into_inner()).clone();
    generation.filter(|g| g.id == id)
}

/// Adds a thread's new state, for the collector to read.
pub(crate) fn register(state: Arc<ThreadState>) {
    THREADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .states
        .push(state);
}

/// The thread states the collector reads, with the totals of retired ones.
pub(crate) fn snapshot() -> Snapshot {
    let registry = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    Snapshot {
        states: registry.states.clone(),
        retired_enqueued: registry.retired_enqueued,
        retired_dropped: registry.retired_dropped,
    }
}

/// Forgets thread states the collector has read for the last time, keeping their totals.
pub(crate) fn retire(done: &[&Arc<ThreadState>]) {
    let mut registry = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    for state in done {
        registry.retired_enqueued += state.enqueued();
        registry.retired_dropped += state.dropped();
    }
    registry
        .states
        .retain(|t| !done.iter().any(|d| Arc::ptr_eq(t, d)));
}

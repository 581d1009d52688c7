//! The collector run that threads record for (its [`Generation`]), and the registry of thread
//! states the collector reads, with what retired states left behind.

use std::sync::{Arc, Mutex};
use std::thread::Thread;

use super::table::ThreadState;
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
    /// Whether any sink wants details (fine buckets, failed and slow calls).
    pub(crate) details: bool,
    /// Whether any sink wants exemplar candidates.
    pub(crate) exemplars: bool,
    /// Upper bounds of the duration buckets in clock ticks, per kind.
    pub(crate) bounds: Bounds,
}

/// Bucket bounds per kind id (increasing; `+Inf` is implied), in clock ticks for the calling
/// threads and in seconds for the collector, and the bounds of kinds first used after the
/// collector started.
///
/// One flat table, a row per kind and the default row last, every row as wide as the widest
/// and padded with a bound above every duration: the hot path finds a kind's row with one
/// multiplication, one pointer away from the thread's state, and a duration beyond a row's own
/// bounds stops at the padding, the `+Inf` bucket.
#[derive(Clone)]
pub(crate) struct Bounds<T = u64> {
    rows: Box<[T]>,
    /// Each row's own bounds, the default's last.
    lens: Box<[usize]>,
    width: usize,
}

impl<T: Copy> Bounds<T> {
    /// The bounds of each kind id in `by_kind`, and `default` for the kinds beyond; rows are
    /// padded with `pad`, a bound no duration exceeds.
    pub(crate) fn new(by_kind: Vec<Box<[T]>>, default: Box<[T]>, pad: T) -> Bounds<T> {
        let all: Vec<Box<[T]>> = by_kind.into_iter().chain([default]).collect();
        let width = all.iter().map(|b| b.len()).max().unwrap_or(0);
        let rows = all
            .iter()
            .flat_map(|b| {
                b.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad, width - b.len()))
            })
            .collect();
        Bounds {
            rows,
            lens: all.iter().map(|b| b.len()).collect(),
            width,
        }
    }

    /// The row of kind `id`: its bounds, then padding.
    #[inline(always)]
    pub(crate) fn row(&self, kind: u32) -> &[T] {
        let start = self.row_of(kind) * self.width;
        debug_assert!(start + self.width <= self.rows.len());
        // SAFETY: `row_of` is below `lens.len()`, and `rows` holds `lens.len()` rows of
        // `width` (see `new`). Unchecked: this is on the path of every timed call.
        unsafe { self.rows.get_unchecked(start..start + self.width) }
    }

    /// The bounds of kind `id`, without padding.
    pub(crate) fn of(&self, kind: u32) -> &[T] {
        &self.row(kind)[..self.lens[self.row_of(kind)]]
    }

    /// The row of kind `id`: its own, or the default (the last) for a kind first used later.
    #[inline(always)]
    fn row_of(&self, kind: u32) -> usize {
        (kind as usize).min(self.lens.len() - 1)
    }

    /// Values kept per site: calls, errors, then (count, sum of ticks) per bucket and `+Inf`.
    pub(crate) fn stride(&self) -> usize {
        2 + 2 * (self.width + 1)
    }
}

/// Most states of exited threads kept for new threads to reuse.
const IDLE_MAX: usize = 64;

static GENERATION: Mutex<Option<Arc<Generation>>> = Mutex::new(None);
static THREADS: Mutex<Registry> = Mutex::new(Registry {
    states: Vec::new(),
    idle: Vec::new(),
    retired_enqueued: 0,
    retired_dropped: 0,
});

/// Thread states, and the totals of the states already retired, kept under one lock so the
/// collector's counters never count a retiring state twice or not at all.
///
/// The states of threads that have exited are kept (still registered, so the collector goes on
/// reading them) in `idle`, up to `IDLE_MAX`, and handed to the next threads that start
/// recording in the same collector run: a program that keeps starting short-lived threads
/// reuses a few states instead of allocating and freeing one per thread, which would leave the
/// allocator's arenas fragmented and resident memory creeping up.
struct Registry {
    states: Vec<Arc<ThreadState>>,
    /// States no thread owns, of the running generation; each is in `states` too.
    idle: Vec<Arc<ThreadState>>,
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

/// Sets (or, with `None`, clears) the running generation. Idle states of the previous one are
/// no longer handed out; the collector retires them once it has read them.
pub(crate) fn set_generation(generation: Option<Arc<Generation>>) {
    *GENERATION.lock().unwrap_or_else(|e| e.into_inner()) = generation;
    // Not under the generation's lock: `retire` takes the two locks in the other order.
    let idle = std::mem::take(&mut THREADS.lock().unwrap_or_else(|e| e.into_inner()).idle);
    drop(idle);
}

/// The running generation, if it is generation `id`.
pub(crate) fn generation(id: u64) -> Option<Arc<Generation>> {
    let generation = GENERATION.lock().unwrap_or_else(|e| e.into_inner()).clone();
    generation.filter(|g| g.id == id)
}

/// An idle state of `generation` for a thread starting to record, if one is kept.
pub(crate) fn take_idle(generation: &Arc<Generation>) -> Option<Arc<ThreadState>> {
    let mut registry = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let index = registry
        .idle
        .iter()
        .position(|state| Arc::ptr_eq(&state.generation, generation))?;
    Some(registry.idle.swap_remove(index))
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

/// Takes the states of exited threads that the collector has read in full: keeps them for
/// reuse while there is room and they belong to the running generation, and otherwise forgets
/// them, keeping their totals.
pub(crate) fn retire(done: &[&Arc<ThreadState>]) {
    let mut registry = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let running = GENERATION.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut forget = Vec::new();
    for &state in done {
        let current = running
            .as_ref()
            .is_some_and(|g| Arc::ptr_eq(g, &state.generation));
        if current && registry.idle.len() < IDLE_MAX {
            registry.idle.push(Arc::clone(state));
        } else {
            registry.retired_enqueued += state.enqueued();
            registry.retired_dropped += state.dropped();
            forget.push(state);
        }
    }
    registry
        .states
        .retain(|t| !forget.iter().any(|d| Arc::ptr_eq(t, d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_and_unknown_kinds_get_the_default() {
        let bounds = Bounds::new(
            vec![vec![1, 2, 3].into(), vec![5].into()],
            vec![7, 8].into(),
            u64::MAX,
        );
        assert_eq!(bounds.row(0), [1, 2, 3]);
        assert_eq!(bounds.row(1), [5, u64::MAX, u64::MAX]);
        assert_eq!(bounds.of(1), [5]);
        assert_eq!(bounds.row(2), [7, 8, u64::MAX]);
        assert_eq!(bounds.of(9), [7, 8], "a kind first used later");
        assert_eq!(bounds.stride(), 2 + 2 * 4);
    }
}

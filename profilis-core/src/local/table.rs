//! One thread's state: its event ring, and a table of per-site counters (calls, errors, and
//! duration buckets) that only the owning thread writes and the collector reads.
//!
//! The table is made of chunks of `CHUNK` sites, allocated on a site's first call on the
//! thread; ids beyond the table (more than `CHUNK * CHUNKS` sites) are counted in a shared map
//! behind a lock instead, without their durations.

use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::registry::{Bounds, Generation};
use crate::event::RawEvent;
use crate::ring::{Pushed, Ring};

const CHUNK: usize = 256;
const CHUNKS: usize = 1024;

/// Counts of sites whose id is beyond the per-thread table (more than 262,144 sites).
static OVERFLOW_COUNTS: Mutex<Option<HashMap<u32, (u64, u64)>>> = Mutex::new(None);

/// One thread's ring, per-site statistics and drop counts. Written by its thread, read by the
/// collector.
pub(crate) struct ThreadState {
    pub(crate) ring: Ring<RawEvent>,
    /// Pushes left until the collector is woken (owner-only).
    until_wake: AtomicU64,
    /// Whether calls queue events (some sink wants them) or are only aggregated.
    pub(crate) events: bool,
    /// Bucket bounds in ticks per kind (a copy of the generation's, one pointer away).
    bounds: Bounds,
    stride: usize,
    /// Per-site statistics, `CHUNK` sites of `stride` values per chunk, made on first use.
    chunks: Box<[AtomicPtr<AtomicU64>]>,
    /// Events not queued because the ring was full (drop-newest) ...
    rejected: AtomicU64,
    /// ... or queued by evicting an older one (drop-oldest).
    evicted: AtomicU64,
    pub(crate) generation: Arc<Generation>,
    /// `generation.id`, kept inline: the hot path compares it on every call without following
    /// the `Arc`.
    pub(crate) generation_id: u64,
    /// Collector-only: the counts it has already reported, per site id.
    pub(crate) reported: Mutex<Vec<u64>>,
}

impl ThreadState {
    pub(crate) fn new(generation: Arc<Generation>) -> ThreadState {
        ThreadState {
            ring: Ring::new(generation.queue_size, generation.policy),
            until_wake: AtomicU64::new(generation.batch_max),
            events: generation.events,
            bounds: generation.bounds.clone(),
            stride: generation.bounds.stride(),
            chunks: (0..CHUNKS)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            rejected: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            generation_id: generation.id,
            generation,
            reported: Mutex::new(Vec::new()),
        }
    }

    /// Counts one call of site `id` (of kind `kind`) and, if timed, files its duration (in
    /// ticks) in its bucket. Only the owning thread writes, so no read-modify-write.
    #[inline(always)]
    pub(crate) fn observe(&self, id: u32, kind: u32, error: bool, ticks: Option<u64>) {
        let (c, i) = (id as usize / CHUNK, id as usize % CHUNK);
        let Some(slot) = self.chunks.get(c) else {
            return count_overflow(id, error);
        };
        let mut chunk = slot.load(Ordering::Acquire);
        if chunk.is_null() {
            chunk = new_chunk(slot, self.stride);
        }
        // SAFETY: a chunk holds CHUNK * stride values and is only freed with the ThreadState.
        let site = unsafe { std::slice::from_raw_parts(chunk.add(i * self.stride), self.stride) };
        bump(&site[0]);
        if error {
            bump(&site[1]);
        }
        if let Some(ticks) = ticks {
            // Past its own bounds, a duration stops at the row's padding: its `+Inf` bucket.
            let row = self.bounds.row(kind);
            let bucket = row
                .iter()
                .position(|&bound| ticks <= bound)
                .unwrap_or(row.len());
            bump(&site[2 + 2 * bucket]);
            let sum = &site[3 + 2 * bucket];
            sum.store(
                sum.load(Ordering::Relaxed).wrapping_add(ticks),
                Ordering::Relaxed,
            );
        }
    }

    /// Values per site: calls, errors, then (count, sum of ticks) per bucket.
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    /// Copies the statistics of site `id` into `out` (`stride` values; zeros if none).
    pub(crate) fn read_site(&self, id: u32, out: &mut [u64]) {
        let (c, i) = (id as usize / CHUNK, id as usize % CHUNK);
        match self.chunks.get(c).map(|s| s.load(Ordering::Acquire)) {
            Some(p) if !p.is_null() => {
                // SAFETY: as in `observe`.
                let site =
                    unsafe { std::slice::from_raw_parts(p.add(i * self.stride), self.stride) };
                for (o, v) in out.iter_mut().zip(site) {
                    *o = v.load(Ordering::Relaxed);
                }
            }
            _ => out.fill(0),
        }
    }

    /// Events this thread offered to its ring.
    pub(crate) fn enqueued(&self) -> u64 {
        self.ring.pushed() + self.rejected.load(Ordering::Relaxed)
    }

    /// Events this thread's ring dropped.
    pub(crate) fn dropped(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed) + self.evicted.load(Ordering::Relaxed)
    }

    /// Queues an event, counting it if dropped and waking the collector once a batch is full.
    #[inline(always)]
    pub(crate) fn push(&self, event: RawEvent) {
        match self.ring.push(event) {
            Pushed::Yes => {}
            Pushed::EvictedOldest => bump(&self.evicted),
            Pushed::Rejected => {
                bump(&self.rejected);
                return;
            }
            Pushed::EvictedAndRejected => {
                bump(&self.evicted);
                bump(&self.rejected);
                return;
            }
        }
        let left = self.until_wake.load(Ordering::Relaxed) - 1;
        if left == 0 {
            self.wake();
        } else {
            self.until_wake.store(left, Ordering::Relaxed);
        }
    }

    /// A full batch is waiting: wake the collector (one futex wake per batch at most).
    #[cold]
    fn wake(&self) {
        self.until_wake
            .store(self.generation.batch_max, Ordering::Relaxed);
        self.generation.worker.unpark();
    }
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        for slot in self.chunks.iter() {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: made by Box::into_raw in `new_chunk` with this length, freed once here.
                drop(unsafe {
                    Box::from_raw(ptr::slice_from_raw_parts_mut(p, CHUNK * self.stride))
                });
            }
        }
    }
}

/// Adds one to a counter only its owning thread writes.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

#[cold]
fn new_chunk(slot: &AtomicPtr<AtomicU64>, stride: usize) -> *mut AtomicU64 {
    let chunk: Box<[AtomicU64]> = (0..CHUNK * stride).map(|_| AtomicU64::new(0)).collect();
    let chunk = Box::into_raw(chunk) as *mut AtomicU64;
    slot.store(chunk, Ordering::Release);
    chunk
}

#[cold]
fn count_overflow(id: u32, error: bool) {
    let mut map = OVERFLOW_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let entry = map.get_or_insert_with(HashMap::new).entry(id).or_default();
    entry.0 += 1;
    entry.1 += u64::from(error);
}

/// Takes the counts of sites beyond the per-thread table (rare: very many sites).
pub(crate) fn take_overflow_counts() -> HashMap<u32, (u64, u64)> {
    OVERFLOW_COUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}

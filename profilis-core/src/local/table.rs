//! One thread's state: its event queue, and a table of per-site counters (calls, errors, and
//! duration buckets) that only the owning thread writes and the collector reads.
//!
//! The table is a directory of chunks of `CHUNK` sites. A chunk is allocated on the first call
//! of one of its sites on the thread, and the directory grows (to a copy twice as long) when a
//! site's id is beyond it, so a thread's table takes memory for the sites it calls, not for
//! every site in the program. Ids beyond `MAX_SITES` are counted in a shared map behind a lock
//! instead, without their durations.

use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::registry::{Bounds, Generation};
use super::Recording;
use crate::event::RawEvent;
use crate::latency;
use crate::ring::{Pushed, Queue};

/// Sites per chunk of counters.
const CHUNK: usize = 8;
/// Chunks in a thread's first directory.
const FIRST_DIRECTORY: usize = 8;
/// Site ids counted in the per-thread tables; beyond, in the shared overflow map.
const MAX_SITES: usize = 1 << 18;

/// Counts of sites whose id is beyond the per-thread table (more than 262,144 sites).
static OVERFLOW_COUNTS: Mutex<Option<HashMap<u32, (u64, u64)>>> = Mutex::new(None);

/// One thread's queue, per-site statistics and drop counts. Written by its thread, read by the
/// collector.
pub(crate) struct ThreadState {
    pub(crate) ring: Queue<RawEvent>,
    /// Pushes left until the collector is woken (owner-only).
    until_wake: AtomicU64,
    /// Whether calls queue events (some sink wants them) or are only aggregated.
    pub(crate) events: bool,
    /// Bucket bounds in ticks per kind (a copy of the generation's, one pointer away).
    bounds: Bounds,
    /// Counted values per site (see [`ThreadState::stride`]).
    stride: usize,
    /// Whether durations are also filed in fine buckets (some sink wants details): then each
    /// site's row has one more value, the address of its [`FineSite`] (0 until its first
    /// timed call).
    pub(crate) details: bool,
    /// `events || details`: whether a failed call leaves its event with its failure.
    pub(crate) events_or_details: bool,
    /// `details || exemplars`: whether a call slower than its site's recent ones is kept.
    pub(crate) slow_candidates: bool,
    /// `events || details || exemplars`: whether a call may leave more than its counts (one
    /// test on the hot path).
    pub(crate) extra: bool,

    /// Values per site in a chunk: `stride`, and the fine buckets' address with `details`.
    row: usize,
    /// The directory: `directory_len` pointers to chunks of `CHUNK` sites of `stride` values,
    /// each null until one of its sites is first called. Replaced (never changed in place) when
    /// it grows: the pointer first, then the length, so a reader that sees a length sees a
    /// directory at least that long.
    directory: AtomicPtr<AtomicPtr<AtomicU64>>,
    directory_len: AtomicUsize,
    /// Directories replaced by longer ones, kept until the state is dropped (a reader may still
    /// be in one): at most as long, together, as the current one.
    old_directories: Mutex<Vec<OldDirectory>>,
    /// Events not queued because the queue was full (drop-newest) ...
    rejected: AtomicU64,
    /// ... or queued by evicting an older one (drop-oldest).
    evicted: AtomicU64,
    pub(crate) generation: Arc<Generation>,
    /// `generation.id`, kept inline: the hot path compares it on every call without following
    /// the `Arc`.
    pub(crate) generation_id: u64,
    /// Collector-only: the counts it has already reported, per chunk (as the directory).
    reported: Mutex<Vec<Option<Box<[u64]>>>>,
    /// Collector-only: the fine bucket counts it has already reported, per site id and page.
    reported_latency: Mutex<HashMap<(u32, u16), [u32; PAGE]>>,
}

impl ThreadState {
    pub(crate) fn new(generation: Arc<Generation>) -> ThreadState {
        ThreadState {
            // Without a sink that wants events nothing is ever pushed: the smallest queue.
            ring: Queue::new(
                if generation.events {
                    generation.queue_size
                } else {
                    1
                },
                generation.policy,
            ),
            until_wake: AtomicU64::new(generation.batch_max),
            events: generation.events,
            bounds: generation.bounds.clone(),
            stride: generation.bounds.stride(),
            details: generation.details,
            events_or_details: generation.events || generation.details,
            slow_candidates: generation.details || generation.exemplars,
            extra: generation.events || generation.details || generation.exemplars,
            row: generation.bounds.stride() + usize::from(generation.details),
            directory: AtomicPtr::new(new_directory(&[], FIRST_DIRECTORY)),
            directory_len: AtomicUsize::new(FIRST_DIRECTORY),
            old_directories: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            generation_id: generation.id,
            generation,
            reported: Mutex::new(Vec::new()),
            reported_latency: Mutex::new(HashMap::new()),
        }
    }

    /// The chunk pointer of chunk `c`, if the directory reaches it. `order` is `Relaxed` on the
    /// owning thread (which wrote the directory), `Acquire` on the collector.
    #[inline(always)]
    fn chunk_slot(&self, c: usize, order: Ordering) -> Option<&AtomicPtr<AtomicU64>> {
        let len = self.directory_len.load(order);
        if c >= len {
            return None;
        }
        let directory = self.directory.load(order);
        // SAFETY: a directory pointer seen after its length holds at least `len` entries (see
        // `directory`), and replaced directories live as long as the state.
        Some(unsafe { &*directory.add(c) })
    }

    /// Chunk `c`'s counters; null when it has none yet or the directory does not reach it.
    /// A pointer rather than `chunk_slot`'s `Option` of a reference, which the compiler tests
    /// for null on every call.
    #[inline(always)]
    fn chunk(&self, c: usize, order: Ordering) -> *mut AtomicU64 {
        if c >= self.directory_len.load(order) {
            return ptr::null_mut();
        }
        // SAFETY: as in `chunk_slot`.
        unsafe { (*self.directory.load(order).add(c)).load(order) }
    }

    /// Counts one call of site `id` (of kind `kind`) and, if timed, files its duration (in
    /// ticks) in its bucket. Only the owning thread writes, so no read-modify-write. Returns
    /// the site's row (null for a site beyond the table), for [`ThreadState::observe_fine`].
    #[inline(always)]
    pub(crate) fn observe(
        &self,
        id: u32,
        kind: u32,
        error: bool,
        ticks: Option<u64>,
    ) -> *const AtomicU64 {
        let row = match self.row_if_ready(id) {
            Some(row) => row,
            None => {
                let chunk = self.first_call_in_chunk(id as usize / CHUNK);
                if chunk.is_null() {
                    count_overflow(id, error);
                    return ptr::null();
                }
                self.row_in(chunk, id)
            }
        };
        self.observe_row(row, kind, error, ticks);
        row
    }

    /// The row of counters of site `id`, if its chunk has been made on this thread (`None`
    /// before the first call of one of its sites here, and beyond the table).
    #[inline(always)]
    pub(crate) fn row_if_ready(&self, id: u32) -> Option<*const AtomicU64> {
        let chunk = self.chunk(id as usize / CHUNK, Ordering::Relaxed);
        (!chunk.is_null()).then(|| self.row_in(chunk, id))
    }

    /// The row of site `id` in its chunk `chunk` (non-null).
    #[inline(always)]
    fn row_in(&self, chunk: *mut AtomicU64, id: u32) -> *const AtomicU64 {
        // SAFETY: a chunk holds CHUNK * row values and is only freed with the state.
        unsafe { chunk.add(id as usize % CHUNK * self.row) }
    }

    /// Counts one call in the site's row `row` (see [`ThreadState::observe`]).
    #[inline(always)]
    pub(crate) fn observe_row(
        &self,
        row: *const AtomicU64,
        kind: u32,
        error: bool,
        ticks: Option<u64>,
    ) {
        // The row holds `self.row >= stride` values: calls, errors, then a count and a sum
        // for each of the `width` bounds of a bounds row and for `+Inf` (`Bounds::stride`).
        debug_assert!(self.row >= self.stride);
        // SAFETY (each `add` below): within the row, by the above; the row is in a chunk
        // freed only with the state. Unchecked: this is on the path of every call.
        let value = |i: usize| unsafe { &*row.add(i) };
        bump(value(0));
        if error {
            bump(value(1));
        }
        if let Some(ticks) = ticks {
            // Past its own bounds, a duration stops at the row's padding: its `+Inf` bucket.
            let bounds = self.bounds.row(kind);
            let bucket = bounds
                .iter()
                .position(|&bound| ticks <= bound)
                .unwrap_or(bounds.len());
            debug_assert!(3 + 2 * bucket < self.stride);
            bump(value(2 + 2 * bucket));
            let sum = value(3 + 2 * bucket);
            sum.store(
                sum.load(Ordering::Relaxed).wrapping_add(ticks),
                Ordering::Relaxed,
            );
        }
    }

    /// With details: files a duration of `ticks` in the fine buckets of the site whose row
    /// `observe` returned.
    #[inline(always)]
    pub(crate) fn observe_fine(&self, site: *const AtomicU64, ticks: u64) {
        if self.details && !site.is_null() {
            // SAFETY: a row of `row` values, the last the fine buckets' address.
            observe_latency(unsafe { &*site.add(self.stride) }, ticks);
        }
    }

    /// Values per site: calls, errors, then (count, sum of ticks) per bucket.
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    /// Owner-only, once per chunk: makes the chunk of counters for chunk `c` (and the directory
    /// long enough for it). Null beyond `MAX_SITES`.
    #[cold]
    #[inline(never)]
    fn first_call_in_chunk(&self, c: usize) -> *mut AtomicU64 {
        let slot = match self.chunk_slot(c, Ordering::Relaxed) {
            Some(slot) => slot,
            None => match self.grow_directory(c) {
                Some(slot) => slot,
                None => return ptr::null_mut(),
            },
        };
        match slot.load(Ordering::Relaxed) {
            chunk if chunk.is_null() => new_chunk(slot, self.row),
            chunk => chunk,
        }
    }

    /// Owner-only, rare: makes the directory long enough for chunk `c` (a copy twice as long,
    /// or as long as needed), keeping the old one for readers still in it. `None` beyond
    /// `MAX_SITES`.
    fn grow_directory(&self, c: usize) -> Option<&AtomicPtr<AtomicU64>> {
        if c >= MAX_SITES / CHUNK {
            return None;
        }
        let len = self.directory_len.load(Ordering::Relaxed);
        let new_len = (c + 1).max(len * 2).min(MAX_SITES / CHUNK);
        let old = self.directory.load(Ordering::Relaxed);
        // SAFETY: the current directory holds `len` entries.
        let entries = unsafe { std::slice::from_raw_parts(old, len) };
        let new = new_directory(entries, new_len);
        self.directory.store(new, Ordering::Release);
        self.directory_len.store(new_len, Ordering::Release);
        // Not made a `Box` again until the state is dropped: the collector may still read it.
        self.old_directories
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(OldDirectory(old, len));
        self.chunk_slot(c, Ordering::Relaxed)
    }

    /// Collector-only: adds what this thread counted since the last call to `totals` (`stride`
    /// values per site id, for the ids it has room for).
    pub(crate) fn add_new_counts(&self, totals: &mut [u64]) {
        let (stride, row) = (self.stride, self.row);
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let chunks = self.directory_len.load(Ordering::Acquire);
        reported.resize_with(chunks, || None);
        for (c, reported) in reported.iter_mut().enumerate() {
            let chunk = self.chunk(c, Ordering::Acquire);
            if chunk.is_null() {
                continue;
            }
            // SAFETY: as in `observe`.
            let values = unsafe { std::slice::from_raw_parts(chunk, CHUNK * row) };
            let reported = reported.get_or_insert_with(|| vec![0; CHUNK * stride].into());
            for i in 0..CHUNK {
                let start = (c * CHUNK + i) * stride;
                let Some(total) = totals.get_mut(start..start + stride) else {
                    return; // sites registered after the collector took its list: next time
                };
                for ((total, before), now) in total
                    .iter_mut()
                    .zip(&mut reported[i * stride..(i + 1) * stride])
                    .zip(&values[i * row..i * row + stride])
                {
                    let now = now.load(Ordering::Relaxed);
                    *total += now.wrapping_sub(*before);
                    *before = now;
                }
            }
        }
    }

    /// Collector-only: hands `add` what this thread filed in fine buckets since the last call,
    /// per site id and page of buckets: (site id, first bucket of the page, new calls per
    /// bucket of the page), for the ids up to `last_id` (sites registered after the collector
    /// took its list wait for the next cycle, as in `add_new_counts`). Nothing without
    /// `details`.
    pub(crate) fn add_new_latency(
        &self,
        last_id: u32,
        mut add: impl FnMut(u32, usize, &[u64; PAGE]),
    ) {
        if !self.details {
            return;
        }
        let (stride, row) = (self.stride, self.row);
        let mut reported = self
            .reported_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut new = [0u64; PAGE];
        let chunks = self.directory_len.load(Ordering::Acquire);
        for c in 0..chunks {
            let chunk = self.chunk(c, Ordering::Acquire);
            if chunk.is_null() {
                continue;
            }
            for i in 0..CHUNK {
                // SAFETY: as in `observe`.
                let slot = unsafe { &*chunk.add(i * row + stride) };
                let fine = fine_site(slot, Ordering::Acquire);
                if fine.is_null() {
                    continue;
                }
                let id = (c * CHUNK + i) as u32;
                if id > last_id {
                    return;
                }
                for (p, page) in unsafe { &(*fine).pages }.iter().enumerate() {
                    let page = page.load(Ordering::Acquire);
                    if page.is_null() {
                        continue;
                    }
                    // SAFETY: pages live as long as the state.
                    let counts = unsafe { &(*page).0 };
                    let before = reported.entry((id, p as u16)).or_insert([0; PAGE]);
                    let mut any = false;
                    for ((new, before), now) in new.iter_mut().zip(before.iter_mut()).zip(counts) {
                        let now = now.load(Ordering::Relaxed);
                        *new = u64::from(now.wrapping_sub(*before));
                        any |= *new != 0;
                        *before = now;
                    }
                    if any {
                        add(id, p * PAGE, &new);
                    }
                }
            }
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
            Pushed::Yes => self.queued(),
            lost => self.lost(lost),
        }
    }

    /// A push that lost events: counts them, then drops them, last, under a [`Recording`]
    /// guard. Dropping an adapter's event runs its detail's `Drop`, code not of this crate,
    /// which may make profiled calls: on this thread's queue, now that the push is done with
    /// it, or, under a new collector generation, on a new state; this one is then held until
    /// the guard ends. Nothing uses this state after the drop: not this function, nor its
    /// callers (a push is the last thing they do with it).
    #[cold]
    #[inline(never)]
    fn lost(&self, pushed: Pushed) {
        match pushed {
            Pushed::Yes => self.queued(),
            Pushed::EvictedOldest => {
                bump(&self.evicted);
                self.queued();
            }
            Pushed::Rejected => bump(&self.rejected),
            Pushed::EvictedAndRejected => {
                bump(&self.evicted);
                bump(&self.rejected);
            }
        }
        let recording = Recording::start();
        drop(self.ring.take_not_kept());
        drop(recording);
    }

    /// One more event queued: wakes the collector once a batch is full.
    #[inline(always)]
    fn queued(&self) {
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
        let len = *self.directory_len.get_mut();
        // SAFETY: made by `new_directory` with `len` entries, freed once here.
        let directory = unsafe {
            Box::from_raw(ptr::slice_from_raw_parts_mut(
                *self.directory.get_mut(),
                len,
            ))
        };
        for slot in directory.iter() {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                if self.details {
                    for i in 0..CHUNK {
                        // SAFETY: a chunk holds CHUNK * row values.
                        let slot = unsafe { &*p.add(i * self.row + self.stride) };
                        free_fine_site(fine_site(slot, Ordering::Acquire));
                    }
                }
                // SAFETY: made by Box::into_raw in `new_chunk` with this length, freed once here
                // (the old directories hold copies of these pointers but do not own them).
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, CHUNK * self.row)) });
            }
        }
    }
}

/// A directory replaced by a longer one: its entries and length, freed when it drops (with
/// the state), when no reader can be in it.
struct OldDirectory(*mut AtomicPtr<AtomicU64>, usize);

// SAFETY: a plain allocation of atomics, owned by one `ThreadState`; it is only freed, in
// `drop`, when the state is dropped.
unsafe impl Send for OldDirectory {}
// SAFETY: as above; no method reads or writes it.
unsafe impl Sync for OldDirectory {}

impl Drop for OldDirectory {
    fn drop(&mut self) {
        // SAFETY: made by `new_directory` with this length; freed once, here. The chunks it
        // points to are the current directory's to free.
        drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(self.0, self.1)) });
    }
}

/// A directory of `len` chunk pointers, starting with those of `from`, the rest null.
fn new_directory(from: &[AtomicPtr<AtomicU64>], len: usize) -> *mut AtomicPtr<AtomicU64> {
    let directory: Box<[AtomicPtr<AtomicU64>]> = (0..len)
        .map(|c| {
            AtomicPtr::new(
                from.get(c)
                    .map_or(ptr::null_mut(), |p| p.load(Ordering::Relaxed)),
            )
        })
        .collect();
    Box::into_raw(directory) as *mut AtomicPtr<AtomicU64>
}

/// Fine buckets per page: a page is allocated on the first duration that falls in it.
pub(crate) const PAGE: usize = 32;
/// Pages of one site's fine buckets.
const PAGES: usize = latency::BUCKETS.div_ceil(PAGE);

/// One site's fine buckets on one thread: pages of `PAGE` counters, each allocated when a
/// duration first falls in it, so a site whose calls take from 1 to 4 ms costs one or two
/// pages (128 bytes each) beside the 184 bytes of page pointers.
struct FineSite {
    pages: [AtomicPtr<FinePage>; PAGES],
}

#[repr(align(64))]
struct FinePage([AtomicU32; PAGE]);

/// The fine buckets whose address `slot` holds (null: none yet).
#[inline(always)]
fn fine_site(slot: &AtomicU64, order: Ordering) -> *const FineSite {
    ptr::with_exposed_provenance(slot.load(order) as usize)
}

/// Files a duration of `ticks` in the fine buckets whose address `slot` holds (owner-only).
#[inline(always)]
fn observe_latency(slot: &AtomicU64, ticks: u64) {
    let i = latency::index(ticks);
    let mut fine = fine_site(slot, Ordering::Relaxed);
    if fine.is_null() {
        fine = new_fine_site(slot);
    }
    // SAFETY: fine buckets and their pages are freed only with the state.
    let slot = unsafe { &(*fine).pages[i / PAGE] };
    let mut page = slot.load(Ordering::Relaxed);
    if page.is_null() {
        page = new_page(slot);
    }
    // SAFETY: as above.
    let counter = unsafe { &(*page).0[i % PAGE] };
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

#[cold]
#[inline(never)]
fn new_fine_site(slot: &AtomicU64) -> *const FineSite {
    let fine = Box::into_raw(Box::new(FineSite {
        pages: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
    }));
    slot.store(fine.expose_provenance() as u64, Ordering::Release);
    fine
}

#[cold]
#[inline(never)]
fn new_page(slot: &AtomicPtr<FinePage>) -> *mut FinePage {
    let page = Box::into_raw(Box::new(FinePage(std::array::from_fn(|_| {
        AtomicU32::new(0)
    }))));
    slot.store(page, Ordering::Release);
    page
}

/// Frees fine buckets made by `new_fine_site` (null: nothing).
fn free_fine_site(fine: *const FineSite) {
    if fine.is_null() {
        return;
    }
    // SAFETY: made by Box::into_raw in `new_fine_site`, freed once, with its state.
    let fine = unsafe { Box::from_raw(fine as *mut FineSite) };
    for page in &fine.pages {
        let page = page.load(Ordering::Acquire);
        if !page.is_null() {
            // SAFETY: made by Box::into_raw in `new_page`, freed once here.
            drop(unsafe { Box::from_raw(page) });
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

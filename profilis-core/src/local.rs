//! Per-thread state of the hot path: the thread's event ring, its call counters and its current
//! span. Everything a profiled call touches lives here, so calls on different threads share
//! nothing but one read-mostly atomic ([`STATE`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use crate::event::RawEvent;
use crate::ids::{SpanId, TraceId};
use crate::ring::{DropPolicy, Pushed, Ring};
use crate::site::{Site, SiteKind};

/// Bit 0: a collector is running. Bit 1: profiling is enabled (not switched off).
/// Bits 2..: the collector generation, so threads notice a restarted collector.
pub(crate) static STATE: AtomicU64 = AtomicU64::new(ENABLED);
pub(crate) const RUNNING: u64 = 1;
pub(crate) const ENABLED: u64 = 2;
pub(crate) const ACTIVE: u64 = RUNNING | ENABLED;
pub(crate) const GEN_SHIFT: u32 = 2;

/// Settings of one collector run, shared by the thread states made during it.
pub(crate) struct Generation {
    pub(crate) id: u64,
    pub(crate) queue_size: usize,
    pub(crate) batch_max: u64,
    pub(crate) policy: DropPolicy,
    pub(crate) worker: Thread,
    /// Whether any sink wants individual events; if none does, calls are only aggregated.
    pub(crate) events: bool,
    /// Upper bounds of the duration buckets in clock ticks, increasing (`+Inf` is implied), for
    /// function, HTTP and DB sites (see [`kind_index`]).
    pub(crate) bounds: [Box<[u64]>; 3],
}

impl Generation {
    /// Values kept per site: calls, errors, then (count, sum of ticks) per bucket and `+Inf`.
    pub(crate) fn stride(&self) -> usize {
        2 + 2 * (self.bounds.iter().map(|b| b.len()).max().unwrap_or(0) + 1)
    }
}

/// Which of the three bucket sets a site uses.
#[inline(always)]
pub(crate) fn kind_index(kind: SiteKind) -> usize {
    match kind {
        SiteKind::Function => 0,
        SiteKind::Http => 1,
        SiteKind::Db => 2,
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

pub(crate) fn set_generation(generation: Option<Arc<Generation>>) {
    *GENERATION.lock().unwrap_or_else(|e| e.into_inner()) = generation;
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
    events: bool,
    /// Bucket bounds in ticks per site kind (a copy of the generation's, one pointer away).
    bounds: [Box<[u64]>; 3],
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
    generation_id: u64,
    /// Collector-only: the counts it has already reported, per site id.
    pub(crate) reported: Mutex<Vec<u64>>,
}

impl ThreadState {
    fn new(generation: Arc<Generation>) -> ThreadState {
        ThreadState {
            ring: Ring::new(generation.queue_size, generation.policy),
            until_wake: AtomicU64::new(generation.batch_max),
            events: generation.events,
            bounds: generation.bounds.clone(),
            stride: generation.stride(),
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

    /// Counts one call of site `id` and, if timed, files its duration (in ticks) in its bucket.
    /// Only the owning thread writes, so no read-modify-write.
    #[inline(always)]
    fn observe(&self, id: u32, kind: usize, error: bool, ticks: Option<u64>) {
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
            let bounds = &self.bounds[kind];
            let bucket = bounds
                .iter()
                .position(|&bound| ticks <= bound)
                .unwrap_or(bounds.len());
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

    #[inline(always)]
    fn push(&self, event: RawEvent) {
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

/// The span a thread is inside: the parent of the next recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The current span.
    pub span_id: SpanId,
}

/// What the hot path touches per call. No destructor, so access is a plain thread-local read.
pub(crate) struct Hot {
    /// Current span; span id 0 means none (trace id 0: no trace).
    ctx: Cell<SpanContext>,
    /// State of the id generator (wyrand); 0 until seeded.
    rng: Cell<u64>,
    /// This thread's state, owned by [`OWNER`]; null when there is none (yet, or any more).
    state: Cell<*const ThreadState>,
}

/// Owns this thread's state; on thread exit, drops it and clears [`Hot::state`].
struct Owner(RefCell<Option<Arc<ThreadState>>>);

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = HOT.try_with(|hot| hot.state.set(ptr::null()));
    }
}

thread_local! {
    static HOT: Hot = const {
        Hot {
            ctx: Cell::new(SpanContext { trace_id: TraceId(0), span_id: SpanId(0) }),
            rng: Cell::new(0),
            state: Cell::new(ptr::null()),
        }
    };
    static OWNER: Owner = const { Owner(RefCell::new(None)) };
}

/// This thread's hot state.
///
/// `Hot` has no destructor, so its storage lives as long as the thread; and `&Hot` is not
/// `Send` (`Hot` is not `Sync`), so the reference cannot leave the thread.
#[inline(always)]
pub(crate) fn hot() -> &'static Hot {
    // SAFETY: see above.
    HOT.with(|hot| unsafe { &*(hot as *const Hot) })
}

impl Hot {
    /// The current span context (span id 0: none).
    #[inline]
    pub(crate) fn context(&self) -> SpanContext {
        self.ctx.get()
    }

    /// Replaces the current span context, returning the previous one.
    #[inline]
    pub(crate) fn set_context(&self, ctx: SpanContext) -> SpanContext {
        self.ctx.replace(ctx)
    }

    /// A pseudo-random `u64` (wyrand). Not cryptographic: ids only need to be unique.
    #[inline]
    pub(crate) fn random(&self) -> u64 {
        let mut s = self.rng.get();
        if s == 0 {
            s = crate::ids::seed();
        }
        s = s.wrapping_add(0xa076_1d64_78bd_642f);
        self.rng.set(s);
        let t = (s as u128).wrapping_mul((s ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Records a call on this thread's state for the collector generation in `state` (the
    /// value of [`STATE`] the call started under): counts it, files its duration `ticks` (if
    /// timed) and, if a sink wants events or the event carries detail (HTTP, DB: they are
    /// always queued), queues the event `event` makes.
    #[inline(always)]
    pub(crate) fn record(
        &self,
        state: u64,
        site: &'static Site,
        error: bool,
        ticks: Option<u64>,
        detailed: bool,
        event: impl FnOnce() -> RawEvent,
    ) {
        let id = site.id();
        let mut ts = self.state.get();
        // SAFETY: a non-null pointer targets the Arc held by OWNER, which clears it before
        // dropping that Arc.
        if ts.is_null() || unsafe { (*ts).generation_id } != state >> GEN_SHIFT {
            ts = refresh(self, state);
            if ts.is_null() {
                return;
            }
        }
        // SAFETY: as above.
        let ts = unsafe { &*ts };
        ts.observe(id, kind_index(site.kind()), error, ticks);
        if ticks.is_some() && (ts.events || detailed) {
            ts.push(event());
        }
    }
}

/// The current span context of this thread, if it is inside a recorded call or runs under a
/// trace (`context::with_trace` with no parent span gives a span id of 0).
pub fn current() -> Option<SpanContext> {
    let ctx = hot().ctx.get();
    (ctx.trace_id.0 != 0 || ctx.span_id.0 != 0).then_some(ctx)
}

/// Makes (and registers) this thread's state for the running collector generation.
#[cold]
#[inline(never)]
fn refresh(hot: &Hot, state: u64) -> *const ThreadState {
    let generation = GENERATION.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(generation) = generation.filter(|g| g.id == state >> GEN_SHIFT) else {
        return ptr::null();
    };
    let ts = Arc::new(ThreadState::new(generation));
    THREADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .states
        .push(ts.clone());
    let p = Arc::as_ptr(&ts);
    // The old state (if any) stays registered until the collector has read it. During thread
    // teardown OWNER may be gone: record nothing then.
    let owned = OWNER
        .try_with(|owner| *owner.0.borrow_mut() = Some(ts))
        .is_ok();
    if !owned {
        return ptr::null();
    }
    hot.state.set(p);
    p
}

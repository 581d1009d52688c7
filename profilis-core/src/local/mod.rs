//! Per-thread state of the hot path: the thread's current span and its [`ThreadState`] (event
//! ring and call counters). Everything a profiled call touches lives here, so calls on
//! different threads share nothing but one read-mostly atomic (`switch::STATE`).
//!
//! - `registry`: the collector run threads record for, and the thread states it reads;
//! - `table`: one thread's ring and per-site counters.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

mod registry;
mod table;

pub(crate) use registry::{
    generation, retire, set_generation, snapshot, Bounds, Generation, Snapshot,
};
pub(crate) use table::{take_overflow_counts, ThreadState, PAGE};

use crate::event::{Failure, RawEvent};
use crate::notable;
use crate::random::{Draws, Rng};
use crate::site::Site;
use crate::switch::generation_of;
use crate::trace::{SpanContext, SpanId, TraceId};

/// What the hot path touches per call. No destructor, so access is a plain thread-local read.
pub(crate) struct Hot {
    /// Current span; span id 0 means none (trace id 0: no trace).
    ctx: Cell<SpanContext>,
    /// This thread's state, owned by [`OWNER`]; null when there is none (yet, or any more).
    state: Cell<*const ThreadState>,
    /// This thread's generator of span ids and sampling draws.
    rng: Rng,
    /// How many [`Recording`] guards are alive on this thread.
    recording: Cell<u32>,
    /// Whether [`Owner::held`] holds a state (to let go of when the last [`Recording`] ends).
    holds: Cell<bool>,
}

/// Owns this thread's state; on thread exit, drops it and clears [`Hot::state`].
struct Owner {
    state: RefCell<Option<Arc<ThreadState>>>,
    /// The thread's earlier states, replaced (by [`refresh`]) while a call was being recorded
    /// into them ([`Recording`]): kept until that is done, so that none is freed while in use.
    held: RefCell<Vec<Arc<ThreadState>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = HOT.try_with(|hot| hot.state.set(ptr::null()));
    }
}

thread_local! {
    static HOT: Hot = const {
        Hot {
            ctx: Cell::new(SpanContext { trace_id: TraceId(0), span_id: SpanId(0) }),
            state: Cell::new(ptr::null()),
            rng: Rng::new(),
            recording: Cell::new(0),
            holds: Cell::new(false),
        }
    };
    static OWNER: Owner = const {
        Owner {
            state: RefCell::new(None),
            held: RefCell::new(Vec::new()),
        }
    };
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

    /// The next pseudo-random `u64` of this thread.
    #[inline]
    pub(crate) fn random(&self) -> u64 {
        self.rng.next_u64()
    }

    /// Runs `f` with this thread's stream of pseudo-random draws (see [`Rng::draws`]).
    #[inline]
    pub(crate) fn draws<R>(&self, f: impl FnOnce(&mut Draws) -> R) -> R {
        self.rng.draws(f)
    }

    /// Replaces the current span context, returning the previous one.
    #[inline]
    pub(crate) fn set_context(&self, ctx: SpanContext) -> SpanContext {
        self.ctx.replace(ctx)
    }

    /// Records a call on this thread's state for the collector generation in `state` (the
    /// value of `switch::STATE` the call started under): counts it, files its duration `ticks`
    /// (if timed) and, if a sink wants events, queues the event `event` makes. If a sink wants
    /// details, a failed call (with the [`Failure`] `failure` makes) and a call slower than
    /// its site's recent ones are also kept for it ([`crate::notable`]).
    #[inline(always)]
    pub(crate) fn record(
        &self,
        state: u64,
        site: &'static Site,
        error: bool,
        ticks: Option<u64>,
        failure: impl FnOnce() -> Option<Failure>,
        event: impl FnOnce() -> RawEvent,
    ) {
        let Some(ts) = self.thread_state(state) else {
            return;
        };
        let (id, kind) = site.ids();
        let row = ts.observe(id, kind, error, ticks);
        after_count(ts, site, row, error, ticks, failure, event);
    }

    /// The end of a timed call on the usual path: the thread has its state for the
    /// generation in `state`, the site its id, and its row of counters here. Counts it and
    /// files its duration `ticks`, as [`Hot::record`] does, and returns the thread's state and
    /// the site's row for what else is wanted of the call ([`ThreadState::observe_fine`],
    /// [`wants_more`], [`beyond_fine`]).
    /// `None` when the path is not the usual one: then nothing is recorded, and
    /// [`Hot::record`] does it all.
    #[inline(always)]
    pub(crate) fn count_timed(
        &self,
        state: u64,
        site: &'static Site,
        error: bool,
        ticks: u64,
    ) -> Option<(&ThreadState, *const AtomicU64)> {
        let ts = self.state_of(state)?;
        let (id, kind) = site.ids_if_registered()?;
        let row = ts.row_if_ready(id)?;
        ts.observe_row(row, kind, error, Some(ticks));
        Some((ts, row))
    }
}

/// Whether a timed call counted by [`Hot::count_timed`], its fine buckets filed
/// ([`ThreadState::observe_fine`]), leaves more: an event, a failure or a slow-call candidate
/// (see [`beyond_fine`]). Asked only when `ts.extra`.
#[inline(always)]
pub(crate) fn wants_more(ts: &ThreadState, site: &'static Site, error: bool, ticks: u64) -> bool {
    ts.events
        || (error && ts.events_or_details)
        || (ts.slow_candidates && ticks > site.slow_ticks())
}

/// What a call leaves beyond its counts, once counted in the site's row `row` (null beyond
/// the table): its duration in fine buckets, its event, its failure, and whether it is a slow-call
/// candidate, as far as a sink wants them (see [`Hot::record`]).
#[inline(always)]
pub(crate) fn after_count(
    ts: &ThreadState,
    site: &'static Site,
    row: *const AtomicU64,
    error: bool,
    ticks: Option<u64>,
    failure: impl FnOnce() -> Option<Failure>,
    event: impl FnOnce() -> RawEvent,
) {
    if ts.extra {
        if let Some(t) = ticks {
            ts.observe_fine(row, t);
        }
        beyond_fine(ts, site, error, ticks, failure, event);
    }
}

/// What a call leaves beyond its counts and fine buckets: its event, its failure, and whether
/// it is a slow-call candidate, as far as a sink wants them (see [`after_count`]).
#[inline(always)]
pub(crate) fn beyond_fine(
    ts: &ThreadState,
    site: &'static Site,
    error: bool,
    ticks: Option<u64>,
    failure: impl FnOnce() -> Option<Failure>,
    event: impl FnOnce() -> RawEvent,
) {
    let keep = Keep {
        failed: error && ts.events_or_details,
        slow: ts.slow_candidates && ticks.is_some_and(|t| t > site.slow_ticks()),
    };
    if keep.failed | keep.slow {
        let _recording = Recording::start();
        let failure = if keep.failed { failure() } else { None };
        return notable(ts, site, ticks, keep, failure, event());
    }
    if ticks.is_some() && ts.events {
        // No `Recording` here: the events of profiled functions are made by this crate's
        // code; an adapter's, whose detail is made by code of its own, is recorded under one.
        // The push is the last use of `ts`: the events a full queue does not keep are dropped
        // at its end (under a guard of its own), and their details' `Drop` may make the
        // thread let go of this state.
        ts.push(event());
    }
}

/// Alive while this thread may run code not of this crate in the middle of recording a call
/// into its state: a failure's message (the error's `Display`), an adapter's detail of an
/// event, the `Drop` of the details of events a full queue did not keep. That code may make
/// profiled calls, and under a new collector generation those give the thread a new state
/// ([`refresh`]). The old one, still in use by the call being recorded, is then held
/// ([`Owner::held`]) until the last of these guards ends, so the collector cannot free it.
pub(crate) struct Recording(&'static Hot);

impl Recording {
    /// Marks this thread as recording a call until the guard drops.
    #[inline(always)]
    pub(crate) fn start() -> Recording {
        let hot = hot();
        hot.recording.set(hot.recording.get() + 1);
        Recording(hot)
    }
}

impl Drop for Recording {
    #[inline(always)]
    fn drop(&mut self) {
        let depth = self.0.recording.get() - 1;
        self.0.recording.set(depth);
        if depth == 0 && self.0.holds.get() {
            release_held(self.0);
        }
    }
}

/// Lets go of the states [`Owner::held`] kept while calls were recorded into them.
#[cold]
#[inline(never)]
fn release_held(hot: &Hot) {
    hot.holds.set(false);
    let held = OWNER
        .try_with(|owner| std::mem::take(&mut *owner.held.borrow_mut()))
        .unwrap_or_default();
    // Dropped outside the borrow: the last `Arc` of a state runs its destructor.
    drop(held);
}

impl Hot {
    /// Counts a call sampled out that did not fail: all it leaves is its count (as
    /// [`Hot::record`] without a duration or an error).
    #[inline(always)]
    pub(crate) fn count(&self, state: u64, site: &'static Site) {
        if let Some(ts) = self.thread_state(state) {
            let (id, kind) = site.ids();
            ts.observe(id, kind, false, None);
        }
    }

    /// This thread's state for the collector generation in `state`, made (or taken over) on
    /// the thread's first call of a generation; `None` when there is none to record on (the
    /// generation has ended, or the thread is exiting).
    #[inline(always)]
    fn thread_state(&self, state: u64) -> Option<&ThreadState> {
        if let Some(ts) = self.state_of(state) {
            return Some(ts);
        }
        let ts = refresh(self, state);
        // SAFETY: as in `state_of`.
        (!ts.is_null()).then(|| unsafe { &*ts })
    }

    /// This thread's state, if it has one for the collector generation in `state` (none
    /// made here: see [`Hot::thread_state`]).
    #[inline(always)]
    fn state_of(&self, state: u64) -> Option<&ThreadState> {
        let ts = self.state.get();
        // SAFETY: a non-null pointer targets the Arc held by OWNER, which clears it before
        // dropping that Arc; the Arc outlives this borrow of the thread's `Hot`, which cannot
        // leave the thread.
        let ts = unsafe { ts.as_ref() }?;
        (ts.generation_id == generation_of(state)).then_some(ts)
    }
}

/// Why a call leaves more than its counts and its event.
#[derive(Clone, Copy)]
struct Keep {
    /// It failed, and a sink wants its event or the failed calls.
    failed: bool,
    /// It was slower than its site's recent calls (or the first of a cycle, with exemplars),
    /// and a sink wants those.
    slow: bool,
}

/// Records what a failed or slow call leaves beyond its counts: its event with what is known
/// of the failure (for the event sinks and for the dashboard's failed calls), and a slow call
/// as a candidate for the slowest recent calls and for exemplars.
#[cold]
#[inline(never)]
fn notable(
    ts: &ThreadState,
    site: &'static Site,
    ticks: Option<u64>,
    keep: Keep,
    failure: Option<Failure>,
    mut raw: RawEvent,
) {
    raw.failure = failure.map(Arc::new);
    if ticks.is_none() {
        // Sampled out: not timed, but a failure still has a time.
        let now = crate::clock::now_ticks();
        (raw.start, raw.end) = (now, now);
    }
    if let (true, Some(t)) = (keep.slow, ticks) {
        site.raise_slow(t);
        notable::slow(raw.clone());
    }
    if keep.failed && ts.details {
        notable::failed(raw.clone());
    }
    if ticks.is_some() && ts.events {
        // Last, as in `beyond_fine`.
        ts.push(raw);
    }
}

/// The next pseudo-random `u64` of this thread: [`Hot::random`], not inlined (for a sampling
/// decision in code that is inlined into every profiled function).
#[inline(never)]
pub(crate) fn draw() -> u64 {
    hot().random()
}

/// The current span context of this thread, if it is inside a recorded call or runs under a
/// trace (`context::with_trace` with no parent span gives a span id of 0).
pub(crate) fn current() -> Option<SpanContext> {
    let ctx = hot().ctx.get();
    (!ctx.is_empty()).then_some(ctx)
}

/// Makes (and registers) this thread's state for the running collector generation, or takes
/// the idle state of a thread that has exited.
#[cold]
#[inline(never)]
fn refresh(hot: &Hot, state: u64) -> *const ThreadState {
    let Some(generation) = generation(generation_of(state)) else {
        return ptr::null();
    };
    let ts = match registry::take_idle(&generation) {
        Some(ts) => {
            ts.ring.shrink();
            ts
        }
        None => {
            let ts = Arc::new(ThreadState::new(generation));
            registry::register(ts.clone());
            ts
        }
    };
    let p = Arc::as_ptr(&ts);
    // The old state (if any) stays registered until the collector has read it. During thread
    // teardown OWNER may be gone: record nothing then.
    let owned = OWNER
        .try_with(|owner| {
            let old = owner.state.replace(Some(ts));
            // In the middle of recording a call into the old state (this call is made by a
            // failure's `Display`, say): kept until that is done.
            if let (Some(old), true) = (old, hot.recording.get() > 0) {
                owner.held.borrow_mut().push(old);
                hot.holds.set(true);
            }
        })
        .is_ok();
    if !owned {
        return ptr::null();
    }
    hot.state.set(p);
    p
}

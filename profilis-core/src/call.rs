//! Timing one call: [`Call`] (what is known at its start), the guard of a sync call
//! ([`CallGuard`]), the wrapper of an async one ([`Instrumented`]) and the [`Timer`] adapters
//! use. All of them keep their call in a [`RecordOnce`]; this is the code `#[profiled]` expands
//! to.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock;
use crate::event::{Detail, Failure, Outcome, RawEvent};
use crate::local::{self, Hot, ThreadState};
use crate::notable;
use crate::once::{Abandon, RecordOnce};
use crate::sampler;
use crate::site::Site;
use crate::switch::{ACTIVE, STATE};
use crate::trace::{SpanContext, SpanId};

/// A call being recorded: what is known at its start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    site: &'static Site,
    /// The `STATE` the call started under (names the collector generation).
    state: u64,
    /// Clock ticks at the start (timed calls only).
    start: u64,
    /// The call's own span; span id 0 when sampled out (counted, not timed).
    own: SpanContext,
    /// Its parent's span id (0: none).
    parent: SpanId,
}

impl Call {
    /// Starts a call under the thread's current span. `None` when profiling is off or no
    /// collector runs: then the call cost one atomic load.
    #[inline(always)]
    fn begin(site: &'static Site) -> Option<Call> {
        let state = STATE.load(Ordering::Relaxed);
        if state & ACTIVE != ACTIVE {
            return None;
        }
        Some(Call::begin_in(site, state, local::hot()))
    }

    #[inline(always)]
    fn begin_in(site: &'static Site, state: u64, hot: &Hot) -> Call {
        let parent = hot.context();
        if !sampler::sample(site.threshold(), || hot.random()) {
            return Call::untimed(site, state, parent.span_id);
        }
        Call::timed_in(site, state, hot, parent)
    }

    /// A call sampled in: a child span of `parent`, and the clock read.
    #[inline(always)]
    fn timed_in(site: &'static Site, state: u64, hot: &Hot, parent: SpanContext) -> Call {
        let own = hot.draws(|draws| SpanContext::child_of(parent, || draws.next()));
        Call {
            site,
            state,
            start: clock::now_ticks(),
            own,
            parent: parent.span_id,
        }
    }

    /// A call sampled out (counted, not timed): no clock read, no span of its own.
    #[inline(always)]
    fn untimed(site: &'static Site, state: u64, parent: SpanId) -> Call {
        Call {
            site,
            state,
            start: 0,
            own: SpanContext::default(),
            parent,
        }
    }

    #[inline(always)]
    fn timed(&self) -> bool {
        self.own.span_id.0 != 0
    }

    /// Records the call as ended now; `failure` says why it failed (called only for a failed
    /// call, and only if an output wants it).
    #[inline(always)]
    fn end(
        &self,
        hot: &Hot,
        error: bool,
        outcome: Outcome,
        failure: impl FnOnce() -> Option<Failure>,
    ) {
        let timed = self.timed();
        let end = if timed {
            Some(clock::now_ticks())
        } else {
            None
        };
        self.record(hot, end, error, outcome, failure, || None);
    }

    /// Records the call as ended at `end` (ticks, `None` if not timed): counted, its duration
    /// filed if timed, and its event queued if a sink wants events.
    #[inline(always)]
    fn record(
        &self,
        hot: &Hot,
        end: Option<u64>,
        error: bool,
        outcome: Outcome,
        failure: impl FnOnce() -> Option<Failure>,
        detail: impl FnOnce() -> Option<Arc<dyn Detail>>,
    ) {
        let ticks = end.map(|end| end.saturating_sub(self.start));
        hot.record(self.state, self.site, error, ticks, failure, || {
            self.event(end, error, outcome, detail())
        });
    }

    /// The call's event, as it ended at `end` (`None`: not timed).
    #[inline(always)]
    fn event(
        &self,
        end: Option<u64>,
        error: bool,
        outcome: Outcome,
        detail: Option<Arc<dyn Detail>>,
    ) -> RawEvent {
        RawEvent {
            site: self.site,
            start: self.start,
            end: end.unwrap_or(0),
            trace_id: self.own.trace_id,
            span_id: self.own.span_id,
            parent: self.parent,
            error,
            outcome,
            detail,
            failure: None,
        }
    }
}

impl Call {
    /// Ends a call that returned; `error` says whether it failed and `failed` what is known
    /// of why. A call sampled out that did not fail is only counted, inline; any other is
    /// ended by a shared function ([`Call::finish_timed_now`], or a cold one for a failed call
    /// sampled out).
    #[inline(always)]
    fn finish(&self, error: bool, failed: Option<&Failed<'_>>) {
        if self.timed() {
            self.finish_timed_now(error, failed);
        } else if error {
            // Scalars, not the call by reference: the call stays in registers on the paths
            // that do not need it in memory.
            Call::finish_untimed_failed(self.site, self.state, self.parent, failed);
        } else {
            local::hot().count(self.state, self.site);
        }
    }

    /// Ends a call sampled out that failed: counted, its failure kept if a sink wants it.
    #[cold]
    #[inline(never)]
    fn finish_untimed_failed(
        site: &'static Site,
        state: u64,
        parent: SpanId,
        failed: Option<&Failed<'_>>,
    ) {
        Call::untimed(site, state, parent).record(
            local::hot(),
            None,
            true,
            Outcome::Returned,
            || Failed::failure_of(failed),
            || None,
        );
    }

    /// Ends a timed call now: counted, its duration filed, its event queued if a sink wants
    /// events, its failure kept if one wants that.
    ///
    /// Not inlined: this is most of the code of a call (the buckets, the details, the event),
    /// and one shared copy of it, rather than one per instrumented function, is what keeps
    /// release builds of many profiled functions fast. On the usual path it only counts the
    /// call and files its duration ([`Call::count_timed`]), calling nothing; anything more (the
    /// thread's or the site's first call, an event, a failure, a slow call) goes on in
    /// [`Call::finish_rest`].
    #[inline(never)]
    fn finish_timed_now(&self, error: bool, failed: Option<&Failed<'_>>) {
        let end = clock::now_ticks();
        let rest = self.count_timed(local::hot(), end, error);
        if !matches!(rest, Rest::Done) {
            self.finish_rest(rest, end, error, failed);
        }
    }

    /// The usual end of a timed call that ended at `end`: counted and its duration filed, if
    /// the thread has its state for the generation, the site its id, and its row of counters
    /// here; what is left to do otherwise.
    #[inline(always)]
    fn count_timed(&self, hot: &'static Hot, end: u64, error: bool) -> Rest {
        let ticks = end.saturating_sub(self.start);
        match hot.count_timed(self.state, self.site, error, ticks) {
            Some((ts, row)) if ts.extra => {
                ts.observe_fine(row, ticks);
                if local::wants_more(ts, self.site, error, ticks) {
                    Rest::More(ts)
                } else {
                    Rest::Done
                }
            }
            Some(_) => Rest::Done,
            None => Rest::First,
        }
    }

    /// What [`Call::count_timed`] left to do.
    #[inline(always)]
    fn finish_rest(&self, rest: Rest, end: u64, error: bool, failed: Option<&Failed<'_>>) {
        match rest {
            Rest::Done => {}
            Rest::More(ts) => self.finish_timed_more(ts, end, error, failed),
            Rest::First => self.finish_timed_first(end, error, failed),
        }
    }

    /// What a timed call counted by [`Call::count_timed`] leaves beyond its counts and fine
    /// buckets: its event, its failure, a slow-call candidate.
    #[inline(never)]
    fn finish_timed_more(
        &self,
        ts: &ThreadState,
        end: u64,
        error: bool,
        failed: Option<&Failed<'_>>,
    ) {
        local::beyond_fine(
            ts,
            self.site,
            error,
            Some(end.saturating_sub(self.start)),
            || Failed::failure_of(failed),
            || self.event(Some(end), error, Outcome::Returned, None),
        );
    }

    /// A timed call off the usual path (the thread's first call, or the site's): recorded in
    /// full by [`Hot::record`].
    #[cold]
    #[inline(never)]
    fn finish_timed_first(&self, end: u64, error: bool, failed: Option<&Failed<'_>>) {
        self.record(
            local::hot(),
            Some(end),
            error,
            Outcome::Returned,
            || Failed::failure_of(failed),
            || None,
        );
    }
}

impl Abandon for Call {
    /// An async call dropped before it ended: failed if it panicked (also by a panic unwinding
    /// past its future), not if it was cancelled.
    fn abandon(self, outcome: Outcome) {
        let outcome = outcome.or_unwinding();
        let panicked = outcome == Outcome::Panicked;
        self.end(local::hot(), panicked, outcome, || {
            panicked.then(notable::panic_failure)
        });
    }
}

/// Times one sync call. Made by [`enter`] (or [`CallGuard::new`] and started in place by
/// [`CallGuard::start`], as `#[profiled]` does); [`CallGuard::exit`] (or
/// [`CallGuard::exit_with`]) records the call. A guard dropped without them records the call
/// as a failed one: panicked if a panic unwinds past it, else cancelled.
///
/// Guards end in the reverse order they start, on the thread that started them (a guard is not
/// `Send`), as the scopes of `#[profiled]` functions do: the span a timed call makes current
/// is the one its guard restores, and a call sampled out takes the span current at its end as
/// its parent.
#[must_use = "the call is recorded when the guard exits or drops"]
pub struct CallGuard {
    call: RecordOnce<SyncCall>,
    _not_send: PhantomData<*const ()>,
}

/// What is left to do at the end of a timed call once [`Call::count_timed`] has run.
enum Rest {
    /// Nothing: counted, and nothing more is wanted.
    Done,
    /// Counted (and its fine buckets filed) in this thread's state; a sink wants more of it.
    More(&'static ThreadState),
    /// Not counted: the thread's or the site's first call (see [`Hot::record`]).
    First,
}

/// A sync call: sampled out (only counted), or timed, with the span the thread was in before
/// it, current again when it ends.
// A tag of its own, so that `Option<SyncCall>` is told apart by one compare.
#[repr(u8)]
enum SyncCall {
    /// Sampled out: it leaves the thread's span as it is, and is only counted (a failure also
    /// kept).
    Counted { site: &'static Site, state: u64 },
    /// Sampled in: timed, and the current span while it runs.
    Timed { call: Call, saved: SpanContext },
}

impl SyncCall {
    /// Starts a timed call of `site` under `state` into `slot`, the current span until it ends.
    #[inline(never)]
    fn start_timed(site: &'static Site, state: u64, slot: &mut Option<SyncCall>) {
        let hot = local::hot();
        let call = Call::timed_in(site, state, hot, hot.context());
        let saved = hot.set_context(call.own);
        *slot = Some(SyncCall::Timed { call, saved });
    }

    /// Ends the timed call in `slot`: the span before it is current again, and the call is
    /// recorded ([`Call::count_timed`], then [`SyncCall::finish_rest`] if more is wanted).
    ///
    /// Shared by every profiled function, as [`SyncCall::start_timed`] is: what is inlined
    /// into each is only the guard's tests and these two calls.
    #[inline(never)]
    fn finish_timed(slot: &mut Option<SyncCall>, error: bool, failed: Option<&Failed<'_>>) {
        let end = clock::now_ticks();
        // Read in place: the usual path copies nothing.
        let Some(SyncCall::Timed { call, saved }) = slot else {
            return;
        };
        let hot = local::hot();
        hot.set_context(*saved);
        let rest = call.count_timed(hot, end, error);
        if !matches!(rest, Rest::Done) {
            SyncCall::finish_rest(slot, rest, end, error, failed);
        }
        // Otherwise the guard empties the slot.
    }

    /// What [`SyncCall::finish_timed`] left to do of the call in `slot`.
    #[inline(never)]
    fn finish_rest(
        slot: &mut Option<SyncCall>,
        rest: Rest,
        end: u64,
        error: bool,
        failed: Option<&Failed<'_>>,
    ) {
        // Emptied before anything else (a failure's message is written by the user's
        // `Display`, which may panic: the guard, dropped then, must not record the call again).
        if let Some(SyncCall::Timed { call, .. }) = slot.take() {
            call.finish_rest(rest, end, error, failed);
        }
    }

    /// Ends the failed call sampled out in `slot`, emptied first.
    #[cold]
    #[inline(never)]
    fn finish_counted_failed(slot: &mut Option<SyncCall>, failed: Option<&Failed<'_>>) {
        if let Some(SyncCall::Counted { site, state }) = slot.take() {
            // Its parent is the thread's span now, as when it started: a call sampled out
            // leaves the span as it is, and the calls inside it restored theirs.
            let parent = local::hot().context().span_id;
            Call::finish_untimed_failed(site, state, parent, failed);
        }
    }
}

impl Abandon for SyncCall {
    /// A sync call whose guard is dropped without `exit`: its body panicked (a failed call).
    fn abandon(self, outcome: Outcome) {
        let hot = local::hot();
        let call = match self {
            SyncCall::Timed { call, saved } => {
                hot.set_context(saved);
                call
            }
            SyncCall::Counted { site, state } => Call::untimed(site, state, hot.context().span_id),
        };
        let outcome = outcome.or_unwinding();
        call.end(hot, true, outcome, || {
            (outcome == Outcome::Panicked).then(notable::panic_failure)
        });
    }
}

/// Starts timing a call of `site` on this thread and makes it the current span; the
/// [`CallGuard`] records it when it ends.
#[inline(always)]
pub fn enter(site: &'static Site) -> CallGuard {
    let mut guard = CallGuard::new();
    guard.start(site);
    guard
}

impl Default for CallGuard {
    /// [`CallGuard::new`]: a guard with no call in it.
    fn default() -> CallGuard {
        CallGuard::new()
    }
}

impl CallGuard {
    /// A guard with no call in it: [`CallGuard::start`] starts one in place. Never started, it
    /// records nothing (on `exit` or when dropped).
    #[inline(always)]
    pub const fn new() -> CallGuard {
        CallGuard {
            call: RecordOnce::empty(),
            _not_send: PhantomData,
        }
    }

    /// Starts timing a call of `site` in this guard, as [`enter`] does; this is what
    /// `#[profiled]` expands to. Does nothing when profiling is off or no collector runs (the
    /// guard then records nothing). Sampled in, the call becomes the thread's current span
    /// until it ends; sampled out, it is only counted. The call is written into the guard, where
    /// it stays (no copy of it is made when the guard is not moved until the call ends). A guard
    /// holds one call: on one that holds a call already, this does nothing; once ended
    /// ([`CallGuard::exit_with`]), it can be started again.
    #[inline(always)]
    pub fn start(&mut self, site: &'static Site) {
        let slot = self.call.slot();
        if slot.is_some() {
            return;
        }
        let state = STATE.load(Ordering::Relaxed);
        if state & ACTIVE != ACTIVE {
            return;
        }
        if sampler::sample(site.threshold(), local::draw) {
            SyncCall::start_timed(site, state, slot);
        } else {
            *slot = Some(SyncCall::Counted { site, state });
        }
    }

    /// Ends the call; `error` says whether it failed.
    #[inline(always)]
    pub fn exit(self, error: bool) {
        let mut guard = self;
        guard.end(error, None);
    }

    /// Ends the call, failed if `failed` is `Some`, with what it says of why (a [`Failed`] is
    /// made by `#[profiled]`'s probes of a function's result; an adapter passes `None`, or
    /// uses [`CallGuard::exit`]). The guard is left empty: dropped afterwards, it records
    /// nothing.
    #[inline(always)]
    pub fn exit_with(&mut self, failed: Option<Failed<'_>>) {
        self.end(failed.is_some(), failed.as_ref());
    }

    /// Ends the call in place (the guard is not moved: it holds the whole call): a timed call
    /// and a failed one by shared functions, a call sampled out that did not fail is counted
    /// here.
    #[inline(always)]
    fn end(&mut self, error: bool, failed: Option<&Failed<'_>>) {
        let slot = self.call.slot();
        match *slot {
            Some(SyncCall::Timed { .. }) => SyncCall::finish_timed(slot, error, failed),
            Some(SyncCall::Counted { .. }) if error => {
                SyncCall::finish_counted_failed(slot, failed);
            }
            Some(SyncCall::Counted { site, state }) => local::hot().count(state, site),
            None => {}
        }
        // Ended, never abandoned: what runs above with the call still in the slot runs no
        // user or sink code (the shared functions empty the slot before a failure's `Display`
        // is written). Said again here so that the guard's drop is seen to do nothing.
        *slot = None;
    }
}

/// Calls `f` once. `#[profiled]` runs a function's body in a closure passed here, so `return`
/// and `?` in the body end the closure and the result can be inspected; the `FnOnce` bound lets
/// the body move out of, and return borrows of, its captured arguments.
#[inline(always)]
pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Wraps a reference to a function's result so that method resolution can tell a `Result`
/// (and whether its error is `Display`) from anything else: see [`FailedDisplay`].
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// A call's `Err`, borrowed: its type's name and, if it implements `Display`, the error
/// itself. Made only on the error path; written out (cut to a bound) into a [`Failure`] only
/// if an output wants it.
#[derive(Clone, Copy)]
pub struct Failed<'a> {
    type_name: &'static str,
    message: Option<&'a dyn fmt::Display>,
}

impl Failed<'_> {
    #[cold]
    fn failure(&self) -> Failure {
        Failure::new(self.type_name, self.message)
    }

    /// The [`Failure`] of a call that failed with `failed` (`None` if it did not, or nothing
    /// is known of why).
    fn failure_of(failed: Option<&Failed<'_>>) -> Option<Failure> {
        failed.map(Failed::failure)
    }
}

/// What `#[profiled]` asks of a function's result, by method resolution on
/// `(&&Probe(&value)).__profilis_failed()`: first picked for `Result<_, E: Display>` (the
/// type's name and the message), then [`FailedResult`] for any other `Result` (the type's
/// name), then [`FailedOther`] for anything else (never failed).
pub trait FailedDisplay<'a> {
    /// `Some` for an `Err`.
    fn __profilis_failed(&self) -> Option<Failed<'a>>;
}

impl<'a, T, E: fmt::Display> FailedDisplay<'a> for &Probe<'a, Result<T, E>> {
    #[inline(always)]
    fn __profilis_failed(&self) -> Option<Failed<'a>> {
        match self.0 {
            Ok(_) => None,
            Err(e) => Some(Failed {
                type_name: std::any::type_name::<E>(),
                message: Some(e),
            }),
        }
    }
}

/// Picked for a `Result` whose error is not `Display` (one auto-reference further away).
pub trait FailedResult<'a> {
    /// `Some` for an `Err`, without a message.
    fn __profilis_failed(&self) -> Option<Failed<'a>>;
}

impl<'a, T, E> FailedResult<'a> for &&Probe<'a, Result<T, E>> {
    #[inline(always)]
    fn __profilis_failed(&self) -> Option<Failed<'a>> {
        match self.0 {
            Ok(_) => None,
            Err(_) => Some(Failed {
                type_name: std::any::type_name::<E>(),
                message: None,
            }),
        }
    }
}

/// Picked for every other type (one dereference further): never failed.
pub trait FailedOther<'a> {
    /// Always `None`.
    #[inline(always)]
    fn __profilis_failed(&self) -> Option<Failed<'a>> {
        None
    }
}

impl<'a, T: ?Sized> FailedOther<'a> for Probe<'a, T> {}

pin_project_lite::pin_project! {
    /// An async call being timed, from its first poll to its completion. The call is the
    /// current span while it is polled. Dropped before completion, it is recorded as
    /// cancelled (or as panicked, if its last poll panicked).
    #[must_use = "futures do nothing unless polled"]
    pub struct Instrumented<F, C> {
        #[pin]
        future: F,
        classify: Option<C>,
        site: &'static Site,
        // `None` until the first poll.
        call: Option<RecordOnce<Call>>,
    }

    impl<F, C> PinnedDrop for Instrumented<F, C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Recorded before the future is dropped, as it was dropped: unfinished. Dropped
            // before its first poll, it is a call that started and was cancelled at once.
            match this.call.take() {
                Some(call) => drop(call),
                None => cancelled_unpolled(this.site),
            }
        }
    }
}

/// An async call dropped before its first poll: a call that started and was cancelled at once.
#[cold]
#[inline(never)]
fn cancelled_unpolled(site: &'static Site) {
    drop(RecordOnce::maybe(Call::begin(site)));
}

/// Held by a function that returns the future it makes (`#[profiled]` on a plain function
/// whose body ends with `async ..` or `Box::pin(async ..)`) from its start until that future,
/// wrapped by [`instrument`], is made ([`Handover::done`]). Dropped before, by an early
/// `return` (of a future not wrapped) or a panic, it records the call as ending then: counted,
/// failed if a panic started after it (not one that was already unwinding when the function
/// was called, from a `Drop`), so that no path of the function goes unrecorded.
#[must_use = "dropped, it records the call as ended"]
pub struct Handover {
    site: &'static Site,
    /// Whether a panic was unwinding when the call started: only a panic that starts after it
    /// ends the call as panicked (as for [`ExitOnDrop`]).
    unwinding: bool,
}

impl Handover {
    /// Starts holding the call of `site`.
    #[inline(always)]
    pub fn new(site: &'static Site) -> Handover {
        Handover {
            site,
            unwinding: std::thread::panicking(),
        }
    }

    /// The future is made and wrapped: it records the call from now on.
    #[inline(always)]
    pub fn done(self) {
        std::mem::forget(self);
    }
}

impl Drop for Handover {
    fn drop(&mut self) {
        handover_dropped(self.site, self.unwinding);
    }
}

/// Ends the call in a [`CallGuard`] when dropped: returned, not failed, on any way out of the
/// function (its tail, a `return`, a `?`); a panic unwinding past it leaves the call to the
/// guard, which records it as panicked. `#[profiled]` keeps the body of a function returning
/// an `impl Trait` (not a future) inline with it: such a result cannot be read for an error,
/// and a closure around the body would lose the signature a returned closure is checked
/// against (`-> impl Fn(&u32) -> bool`).
#[must_use = "dropped, it ends the call"]
pub struct ExitOnDrop<'a> {
    guard: &'a mut CallGuard,
    /// Whether a panic was unwinding when the call started (a function called by a `Drop`
    /// during unwinding): only a panic that starts after it ends the call as panicked.
    unwinding: bool,
}

impl ExitOnDrop<'_> {
    /// Ends the call in `guard` when dropped.
    #[inline(always)]
    pub fn new(guard: &mut CallGuard) -> ExitOnDrop<'_> {
        ExitOnDrop {
            guard,
            unwinding: std::thread::panicking(),
        }
    }
}

impl Drop for ExitOnDrop<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.unwinding || !std::thread::panicking() {
            self.guard.exit_with(None);
        }
    }
}

/// A [`Handover`] dropped before its future was made: the call ended now, by an early return
/// or a panic (one that started after the call did: not `unwinding` when it started).
#[cold]
#[inline(never)]
fn handover_dropped(site: &'static Site, unwinding: bool) {
    if let Some(call) = Call::begin(site) {
        // Ended as a call dropped unfinished is, but returned, unless a panic ends it.
        let outcome = if !unwinding && std::thread::panicking() {
            Outcome::Panicked
        } else {
            Outcome::Returned
        };
        call.abandon(outcome);
    }
}

/// Times `future` as a call of `site`; `classify` says whether its output is an error, and
/// what is known of why.
pub fn instrument<F, C>(site: &'static Site, future: F, classify: C) -> Instrumented<F, C>
where
    F: Future,
    C: for<'a> FnOnce(&'a F::Output) -> Option<Failed<'a>>,
{
    Instrumented {
        future,
        classify: Some(classify),
        site,
        call: None,
    }
}

/// Restores the thread's span context when a poll ends, also by unwinding.
struct Restore(Option<SpanContext>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(saved) = self.0 {
            local::hot().set_context(saved);
        }
    }
}

impl<F, C> Future for Instrumented<F, C>
where
    F: Future,
    C: for<'a> FnOnce(&'a F::Output) -> Option<Failed<'a>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let site = *this.site;
        let call = this
            .call
            .get_or_insert_with(|| RecordOnce::maybe(Call::begin(site)));
        let own = call.get().filter(|c| c.timed()).map(|c| c.own);
        let restore = Restore(own.map(|own| local::hot().set_context(own)));
        let future = this.future;
        let poll = call.run(|| future.poll(cx));
        drop(restore);
        if let Poll::Ready(output) = &poll {
            if let Some(ended) = call.take() {
                let failed = this.classify.take().and_then(|c| c(output));
                ended.finish(failed.is_some(), failed.as_ref());
            }
        }
        poll
    }
}

/// Records one call of `site` that took `duration` and ended now, measured elsewhere (the
/// counterpart of Python profilis's `emit_fn`): sampled at the site's rate, counted, its
/// duration filed, its event queued, exactly as a call timed here; a child of this thread's
/// current span. `failure`, for a failed call, is kept as a `#[profiled]` function's error
/// is. Does nothing when profiling is off or no collector runs.
pub fn record_measured(
    site: &'static Site,
    duration: Duration,
    error: bool,
    failure: Option<Failure>,
) {
    let Some(mut call) = Call::begin(site) else {
        return;
    };
    let end = call.timed().then(|| {
        let end = clock::now_ticks();
        call.start = end.saturating_sub(clock::duration_to_ticks(duration));
        end
    });
    let error = error || failure.is_some();
    call.record(
        local::hot(),
        end,
        error,
        Outcome::Returned,
        || failure,
        || None,
    );
}

/// A request or query timed by an adapter (HTTP layer, DB hook). [`Timer::start`] is for work
/// whose site is known only when it ends (the route and status of a response, say), sampled
/// then; [`Timer::start_sampled`] for work whose site is known at the start (a database
/// vendor's), sampled at once. Its span starts with the timer; make it the current span while
/// the work runs ([`crate::context::scope`] or [`crate::context::Scoped`]) so profiled calls
/// inside become its children.
#[derive(Debug, Clone, Copy)]
pub struct Timer {
    state: u64,
    start: u64,
    own: SpanContext,
    parent: SpanId,
    /// `false` when sampled out at the start ([`Timer::start_sampled`]): no clock was read and
    /// no span taken, so the call can only be counted.
    sampled_in: bool,
    /// The end (ticks) of work measured elsewhere ([`Timer::measured`]); 0: ends when finished.
    end: u64,
}

impl Timer {
    /// Starts timing now, as a child of `parent` (an incoming W3C `traceparent`, say), else of
    /// this thread's current span, else as the root of a new trace. `None` when profiling is
    /// off or no collector runs.
    pub fn start(parent: Option<SpanContext>) -> Option<Timer> {
        let state = STATE.load(Ordering::Relaxed);
        if state & ACTIVE != ACTIVE {
            return None;
        }
        let parent = parent.unwrap_or_else(|| local::hot().context());
        Some(Timer {
            state,
            start: clock::now_ticks(),
            own: SpanContext::child_of(parent, || local::hot().random()),
            parent: parent.span_id,
            sampled_in: true,
            end: 0,
        })
    }

    /// A timer for work measured elsewhere that took `duration` and ended now (the counterpart
    /// of Python profilis's `emit_*`), as a child of `parent`, else of this thread's current
    /// span: finished, it is recorded exactly as a call timed here, with that duration.
    /// Sampled when it finishes, as [`Timer::start`]. `None` when profiling is off or no
    /// collector runs.
    pub fn measured(parent: Option<SpanContext>, duration: Duration) -> Option<Timer> {
        let mut timer = Timer::start(parent)?;
        timer.set_measured(duration);
        Some(timer)
    }

    /// As [`Timer::measured`], for a call of `site`, sampled now at its rate as
    /// [`Timer::start_sampled`] is.
    pub fn measured_sampled(site: &'static Site, duration: Duration) -> Option<Timer> {
        let mut timer = Timer::start_sampled(site)?;
        if timer.sampled_in {
            timer.set_measured(duration);
        }
        Some(timer)
    }

    fn set_measured(&mut self, duration: Duration) {
        let end = clock::now_ticks();
        self.start = end.saturating_sub(clock::duration_to_ticks(duration));
        // 0 means "not fixed": a clock that reads 0 now is one tick later.
        self.end = end.max(1);
    }

    /// Starts one call of `site`, a site known from the start (a database vendor's, say),
    /// sampled now at the site's rate, else the global one, as a `#[profiled]` call is. Sampled
    /// out, it reads no clock and takes no span: its [`Timer::context`] is the thread's current
    /// one, so calls inside stay children of the caller, and [`Timer::finish`] only counts it.
    /// `None` when profiling is off or no collector runs.
    pub fn start_sampled(site: &'static Site) -> Option<Timer> {
        let call = Call::begin(site)?;
        let (own, sampled_in) = if call.timed() {
            (call.own, true)
        } else {
            (local::hot().context(), false)
        };
        Some(Timer {
            state: call.state,
            start: call.start,
            own,
            parent: call.parent,
            sampled_in,
            end: 0,
        })
    }

    /// The end: now, or the end of work measured elsewhere.
    fn end_now(&self) -> u64 {
        if self.end != 0 {
            self.end
        } else {
            clock::now_ticks()
        }
    }

    /// The span this timer stands for (for a timer sampled out at the start, the span that
    /// was current then).
    pub fn context(&self) -> SpanContext {
        self.own
    }

    /// Whether the call can be timed: `false` only for a timer sampled out by
    /// [`Timer::start_sampled`].
    pub fn sampled_in(&self) -> bool {
        self.sampled_in
    }

    /// Nanoseconds since the start (0 for a timer sampled out at the start).
    pub fn elapsed_ns(&self) -> u64 {
        if !self.sampled_in {
            return 0;
        }
        clock::ticks_to_ns(self.start, self.end_now())
    }

    /// Ends now as a failed call of `site`, with what is known of why: `failure` is called
    /// only if an output wants it (an event sink, the dashboard), so a client error's message
    /// is written out only then. Otherwise as [`Timer::finish`] with `error` set.
    pub fn finish_failed<D: Detail>(
        self,
        site: &'static Site,
        timed: bool,
        outcome: Outcome,
        failure: impl FnOnce() -> Failure,
        detail: impl FnOnce() -> D,
    ) {
        self.end(site, timed, true, outcome, || Some(failure()), detail);
    }

    /// Ends now, recording one call of `site`: counted always, its duration only if `timed`
    /// (the adapter's sampling decision) and the timer was not sampled out at the start.
    /// `detail` is called for the event's detail only if a sink wants events.
    pub fn finish<D: Detail>(
        self,
        site: &'static Site,
        timed: bool,
        error: bool,
        outcome: Outcome,
        detail: impl FnOnce() -> D,
    ) {
        // A panic's message, from the panic hook, when the adapter saw its work panic.
        let failure = || (outcome == Outcome::Panicked).then(notable::panic_failure);
        self.end(site, timed, error, outcome, failure, detail);
    }

    fn end<D: Detail>(
        self,
        site: &'static Site,
        timed: bool,
        error: bool,
        outcome: Outcome,
        failure: impl FnOnce() -> Option<Failure>,
        detail: impl FnOnce() -> D,
    ) {
        let call = Call {
            site,
            state: self.state,
            start: self.start,
            own: self.own,
            parent: self.parent,
        };
        let timed = timed && self.sampled_in;
        let end = if timed { Some(self.end_now()) } else { None };
        // The detail is made by the adapter's code, in the middle of recording the call.
        let _recording = local::Recording::start();
        call.record(local::hot(), end, error, outcome, failure, || {
            Some(Arc::new(detail()) as Arc<dyn Detail>)
        });
    }
}

//! Timing one call: the guard of a sync call and the wrapper of an async one. Both record
//! through [`crate::local::record`]; this is the code `#[profiled]` expands to.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use crate::clock;
use crate::event::{Detail, Event, Outcome};
use crate::ids::{self, SpanId, TraceId};
use crate::local::{self, SpanContext, ACTIVE, STATE};
use crate::sampler;
use crate::site::Site;

/// A call being timed: what is known at its start.
#[derive(Clone, Copy)]
struct Started {
    site: &'static Site,
    /// The `STATE` the call started under (names the collector generation).
    state: u64,
    /// `None` when sampled out: counted, not timed.
    timed: Option<Timed>,
}

#[derive(Clone, Copy)]
struct Timed {
    start: u64,
    own: SpanContext,
    parent: SpanContext,
}

impl Started {
    /// `None` when profiling is off or no collector runs: one atomic load.
    #[inline]
    fn begin(site: &'static Site) -> Option<Started> {
        let state = STATE.load(Ordering::Relaxed);
        if state & ACTIVE != ACTIVE {
            return None;
        }
        let timed = sampler::sample(site.threshold()).then(|| {
            let parent = local::context();
            let trace_id = if parent.trace_id.0 == 0 {
                ids::new_trace_id()
            } else {
                parent.trace_id
            };
            let own = SpanContext {
                trace_id,
                span_id: ids::new_span_id(),
            };
            Timed {
                start: clock::now_ticks(),
                own,
                parent,
            }
        });
        Some(Started { site, state, timed })
    }

    #[inline]
    fn finish(self, error: bool, outcome: Outcome, detail: Detail) {
        let event = self.timed.map(|t| {
            let end = clock::now_ticks();
            Event {
                site: self.site,
                // Raw clock ticks until the collector converts them (see collector::finish_event).
                ts_ns: t.start,
                dur_ns: end,
                error,
                outcome,
                trace_id: t.own.trace_id,
                span_id: t.own.span_id,
                parent_span_id: (t.parent.span_id.0 != 0).then_some(t.parent.span_id),
                detail,
            }
        });
        local::record(self.state, self.site, error, event);
    }
}

/// Times one sync call. Made by [`enter`]; [`CallGuard::exit`] records the call. A guard dropped
/// without `exit` (the call panicked) records the call as a panicked error.
#[must_use = "the call is recorded when the guard exits or drops"]
pub struct CallGuard {
    started: Option<Started>,
    /// The span the thread was in before this call, restored on exit.
    saved: SpanContext,
    _not_send: PhantomData<*const ()>,
}

/// Starts timing a call of `site` on this thread and makes it the current span.
#[inline]
pub fn enter(site: &'static Site) -> CallGuard {
    let started = Started::begin(site);
    let saved = match started.and_then(|s| s.timed) {
        Some(t) => local::swap_context(t.own),
        None => SpanContext::default(),
    };
    CallGuard {
        started,
        saved,
        _not_send: PhantomData,
    }
}

impl CallGuard {
    /// Ends the call; `error` says whether it failed.
    #[inline]
    pub fn exit(mut self, error: bool) {
        self.end(error, Outcome::Returned, Detail::Fn);
    }

    /// Ends the call with kind-specific detail (HTTP/DB adapters).
    pub fn exit_with(mut self, error: bool, detail: Detail) {
        self.end(error, Outcome::Returned, detail);
    }

    #[inline]
    fn end(&mut self, error: bool, outcome: Outcome, detail: Detail) {
        if let Some(started) = self.started.take() {
            if started.timed.is_some() {
                local::swap_context(self.saved);
            }
            started.finish(error, outcome, detail);
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.started.is_some() {
            let outcome = if std::thread::panicking() {
                Outcome::Panicked
            } else {
                Outcome::Cancelled
            };
            self.end(true, outcome, Detail::Fn);
        }
    }
}

/// Calls `f` once. `#[profiled]` runs a function's body in a closure passed here, so `return`
/// and `?` in the body end the closure and the result can be inspected; the `FnOnce` bound lets
/// the body move out of, and return borrows of, its captured arguments.
#[inline(always)]
pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Wraps a value so that method resolution can tell a `Result` from anything else:
/// `(&Probe(&value)).__profilis_is_err()` is `value.is_err()` for a `Result` and `false` otherwise.
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// Picked for `Result`: the call failed if it returned `Err`.
pub trait IsErrResult {
    /// Whether the probed value is an `Err`.
    fn __profilis_is_err(&self) -> bool;
}

impl<T, E> IsErrResult for Probe<'_, Result<T, E>> {
    #[inline(always)]
    fn __profilis_is_err(&self) -> bool {
        self.0.is_err()
    }
}

/// Picked for every other type (one auto-reference further away): never an error.
pub trait IsErrOther {
    /// Always `false`.
    #[inline(always)]
    fn __profilis_is_err(&self) -> bool {
        false
    }
}

impl<T: ?Sized> IsErrOther for &Probe<'_, T> {}

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
        started: Option<Started>,
        state: PollState,
    }

    impl<F, C> PinnedDrop for Instrumented<F, C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.state == PollState::Done {
                return;
            }
            let outcome = if *this.state == PollState::Polling || std::thread::panicking() {
                Outcome::Panicked
            } else {
                Outcome::Cancelled
            };
            let started = this.started.take().or_else(|| Started::begin(this.site));
            if let Some(started) = started {
                started.finish(outcome == Outcome::Panicked, outcome, Detail::Fn);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PollState {
    NotStarted,
    Idle,
    Polling,
    Done,
}

/// Times `future` as a call of `site`; `classify` says whether its output is an error.
pub fn instrument<F, C>(site: &'static Site, future: F, classify: C) -> Instrumented<F, C>
where
    F: Future,
    C: FnOnce(&F::Output) -> bool,
{
    Instrumented {
        future,
        classify: Some(classify),
        site,
        started: None,
        state: PollState::NotStarted,
    }
}

/// Restores the thread's span context when a poll ends, also by unwinding.
struct Restore(Option<SpanContext>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(saved) = self.0 {
            local::swap_context(saved);
        }
    }
}

impl<F, C> Future for Instrumented<F, C>
where
    F: Future,
    C: FnOnce(&F::Output) -> bool,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if *this.state == PollState::NotStarted {
            *this.started = Started::begin(this.site);
        }
        let timed = this.started.and_then(|s| s.timed);
        let restore = Restore(timed.map(|t| local::swap_context(t.own)));
        *this.state = PollState::Polling;
        let poll = this.future.poll(cx);
        drop(restore);
        match poll {
            Poll::Pending => {
                *this.state = PollState::Idle;
                Poll::Pending
            }
            Poll::Ready(output) => {
                *this.state = PollState::Done;
                if let Some(started) = this.started.take() {
                    let error = this.classify.take().is_some_and(|c| c(&output));
                    started.finish(error, Outcome::Returned, Detail::Fn);
                }
                Poll::Ready(output)
            }
        }
    }
}

/// The ids of a call, for tests of the context plumbing.
#[doc(hidden)]
pub fn current_ids() -> Option<(TraceId, SpanId)> {
    local::current().map(|c| (c.trace_id, c.span_id))
}

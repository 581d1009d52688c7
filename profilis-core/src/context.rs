//! Trace context: the span a thread (or a future) is in, which profiled calls take as their
//! parent. Read it, or run code under a given span, for sync code and across `.await`; parse
//! the W3C `traceparent` header that carries it from another service.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::local;
pub use crate::trace::{format_traceparent, parse_traceparent, SpanContext, SpanId, TraceId};

/// The current span of this thread, if it is inside a recorded call or a [`scope`].
pub fn current() -> Option<SpanContext> {
    local::current()
}

/// Makes `ctx` the current span until the guard drops (then the previous one is back).
pub fn enter(ctx: SpanContext) -> ContextGuard {
    ContextGuard {
        saved: local::hot().set_context(ctx),
        _not_send: PhantomData,
    }
}

/// Restores the previous span context when dropped. Not `Send`: it belongs to its thread.
#[must_use = "the context is restored when the guard drops"]
pub struct ContextGuard {
    saved: SpanContext,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        local::hot().set_context(self.saved);
    }
}

/// Runs `f` with `ctx` as the current span.
pub fn scope<R>(ctx: SpanContext, f: impl FnOnce() -> R) -> R {
    let _guard = enter(ctx);
    f()
}

/// Runs `f` under the trace `trace_id` (as a child of span `parent`, if given): the
/// counterpart of Python profilis's `use_span`.
pub fn with_trace<R>(trace_id: TraceId, parent: Option<SpanId>, f: impl FnOnce() -> R) -> R {
    scope(
        SpanContext {
            trace_id,
            span_id: parent.unwrap_or_default(),
        },
        f,
    )
}

pin_project_lite::pin_project! {
    /// A future polled with a given span as the current one, on whatever thread polls it.
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F> {
        #[pin]
        future: F,
        ctx: SpanContext,
    }
}

impl<F> Scoped<F> {
    /// `future`, polled under `ctx`.
    pub fn new(ctx: SpanContext, future: F) -> Scoped<F> {
        Scoped { future, ctx }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = enter(*this.ctx);
        this.future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        let outer = SpanContext {
            trace_id: TraceId(7),
            span_id: SpanId(1),
        };
        assert!(current().is_none());
        scope(outer, || {
            assert_eq!(current(), Some(outer));
            with_trace(TraceId(9), Some(SpanId(2)), || {
                assert_eq!(current().unwrap().trace_id, TraceId(9));
            });
            with_trace(TraceId(10), None, || {
                assert_eq!(current().unwrap().trace_id, TraceId(10));
                assert_eq!(current().unwrap().span_id, SpanId(0));
            });
            assert_eq!(current(), Some(outer));
        });
        assert!(current().is_none());
    }
}

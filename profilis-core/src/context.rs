//! Trace context: the span a thread (or a future) is in, which profiled calls take as their
//! parent. Read it, or run code under a given span, for sync code and across `.await`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::ids::{SpanId, TraceId};
use crate::local;
pub use crate::local::SpanContext;

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

/// Parses a W3C `traceparent` header (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`).
/// `None` if it is malformed or names the all-zero trace or span.
pub fn parse_traceparent(header: &str) -> Option<SpanContext> {
    let mut parts = header.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace_id = u128::from_str_radix(trace, 16).ok()?;
    let span_id = u64::from_str_radix(span, 16).ok()?;
    (trace_id != 0 && span_id != 0).then_some(SpanContext {
        trace_id: TraceId(trace_id),
        span_id: SpanId(span_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parses_or_is_refused() {
        let ctx =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(ctx.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.span_id.to_hex(), "00f067aa0ba902b7");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

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

//! W3C trace context: trace and span ids, the span context a call runs in, and the
//! `traceparent` header that carries it between services.

use std::fmt;

/// A 16-byte W3C trace id. Never all zeros once made by profilis.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub u128);

/// An 8-byte W3C span id. Never zero once made by profilis.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub u64);

impl TraceId {
    /// The id as 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        self.to_string()
    }

    /// A new random trace id (never zero), from two draws.
    #[inline]
    pub(crate) fn random(mut draw: impl FnMut() -> u64) -> TraceId {
        TraceId((u128::from(draw()) << 64) | u128::from(draw() | 1))
    }
}

impl SpanId {
    /// The id as 16 lowercase hex digits.
    pub fn to_hex(self) -> String {
        self.to_string()
    }

    /// A new random span id (never zero), from one draw.
    #[inline]
    pub(crate) fn random(draw: impl FnOnce() -> u64) -> SpanId {
        SpanId(draw() | 1)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// The span a thread (or a future) is in: the parent of the next recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanContext {
    /// The trace (0: none).
    pub trace_id: TraceId,
    /// The current span (0: none, as under `context::with_trace` without a parent).
    pub span_id: SpanId,
}

impl SpanContext {
    /// Whether this is the empty context (no trace, no span).
    pub fn is_empty(&self) -> bool {
        self.trace_id.0 == 0 && self.span_id.0 == 0
    }

    /// A new span in the trace of `parent`, or in a new trace if `parent` has none, with ids
    /// from `draw`.
    #[inline]
    pub(crate) fn child_of(parent: SpanContext, mut draw: impl FnMut() -> u64) -> SpanContext {
        let trace_id = if parent.trace_id.0 == 0 {
            TraceId::random(&mut draw)
        } else {
            parent.trace_id
        };
        SpanContext {
            trace_id,
            span_id: SpanId::random(draw),
        }
    }
}

/// The W3C `traceparent` header (version `00`, flags `01`: sampled) that makes the span
/// `ctx` the parent of the work another service does for it: what an outgoing request
/// carries. `None` for a context without a trace or a span, which the header cannot carry.
///
/// ```
/// # use profilis_core as profilis;
/// use profilis::context::{format_traceparent, parse_traceparent, SpanContext};
/// use profilis::context::{SpanId, TraceId};
///
/// let ctx = SpanContext { trace_id: TraceId(0x4bf9), span_id: SpanId(0xf067) };
/// let header = format_traceparent(ctx).unwrap();
/// assert_eq!(header, "00-00000000000000000000000000004bf9-000000000000f067-01");
/// assert_eq!(parse_traceparent(&header), Some(ctx));
/// ```
pub fn format_traceparent(ctx: SpanContext) -> Option<String> {
    (ctx.trace_id.0 != 0 && ctx.span_id.0 != 0)
        .then(|| format!("00-{}-{}-01", ctx.trace_id, ctx.span_id))
}

/// Parses a W3C `traceparent` header (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`).
/// `None` if it is malformed or names the all-zero trace or span. The hex digits are lowercase,
/// as the W3C grammar says (`HEXDIGLC`): a header with uppercase ones is malformed.
pub fn parse_traceparent(header: &str) -> Option<SpanContext> {
    let mut parts = header.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
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
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_nonzero_and_w3c_sized() {
        let rng = crate::random::Rng::new();
        let draw = || rng.next_u64();
        let spans: HashSet<u64> = (0..100_000).map(|_| SpanId::random(draw).0).collect();
        assert_eq!(spans.len(), 100_000);
        assert!(!spans.contains(&0));
        assert_eq!(TraceId::random(draw).to_hex().len(), 32);
        assert_eq!(SpanId::random(draw).to_hex().len(), 16);
        assert_eq!(SpanId(0xab).to_string(), "00000000000000ab");
    }

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

    /// Found by the property tests (`tests/traceparent.rs`): uppercase hex digits were
    /// accepted, though the W3C grammar allows only lowercase ones (`HEXDIGLC`) and says a
    /// header with others is to be ignored.
    #[test]
    fn traceparent_with_uppercase_hex_is_refused() {
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        assert!(
            parse_traceparent("0a-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0a").is_some()
        );
    }
}

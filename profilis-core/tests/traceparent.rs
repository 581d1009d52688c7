//! Property tests of `parse_traceparent`, the parser of the one header profilis takes from
//! other services: it never panics, accepts every well-formed W3C `traceparent` with the ids
//! it carries, and refuses every header one step away from well-formed. And of
//! `format_traceparent`, which writes the header profilis sends: it parses back to its span.

use profilis_core::context::{format_traceparent, parse_traceparent, SpanContext, SpanId, TraceId};
use proptest::prelude::*;

/// The parts of a well-formed header.
#[derive(Debug, Clone)]
struct Header {
    version: u8,
    trace: u128,
    span: u64,
    flags: u8,
    /// What a version after 00 may carry after the flags (`-` and anything).
    tail: String,
    /// Optional whitespace around the value, as HTTP allows.
    before: &'static str,
    after: &'static str,
}

impl Header {
    /// The header as a sender writes it, ids in the crate's own hex form.
    fn render(&self) -> String {
        format!(
            "{}{:02x}-{}-{}-{:02x}{}{}",
            self.before,
            self.version,
            TraceId(self.trace).to_hex(),
            SpanId(self.span).to_hex(),
            self.flags,
            self.tail,
            self.after
        )
    }

    /// Byte ranges of the four fields in `render()`'s output.
    fn fields(&self) -> [std::ops::Range<usize>; 4] {
        let v = self.before.len();
        [v..v + 2, v + 3..v + 35, v + 36..v + 52, v + 53..v + 55]
    }
}

fn whitespace() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", " ", "\t", "  \t"])
}

/// Any well-formed header: a version other than `ff` (00 without a tail), non-zero ids.
fn header() -> impl Strategy<Value = Header> {
    (
        0u8..=0xfe,
        1u128..,
        1u64..,
        any::<u8>(),
        "(-[ -~]{0,20})?",
        whitespace(),
        whitespace(),
    )
        .prop_map(
            |(version, trace, span, flags, tail, before, after)| Header {
                version,
                trace,
                span,
                flags,
                tail: if version == 0 { String::new() } else { tail },
                before,
                after,
            },
        )
}

/// A character that is not a lowercase hex digit (uppercase ones included: the W3C grammar
/// allows only `0-9a-f`), some of them several bytes long.
fn not_hex() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            'A', 'F', 'g', 'x', 'z', '-', ' ', '.', '+', 'é', '€', '😀'
        ]),
        any::<char>(),
    ]
    .prop_filter(
        "not a lowercase hex digit",
        |c| !matches!(c, '0'..='9' | 'a'..='f'),
    )
}

fn hex_digit() -> impl Strategy<Value = char> {
    prop::sample::select("0123456789abcdef".chars().collect::<Vec<_>>())
}

proptest! {
    #[test]
    fn never_panics_on_any_text(s in any::<String>()) {
        let _ = parse_traceparent(&s);
    }

    #[test]
    fn never_panics_on_near_headers(s in "[0-9a-fA-F\\- xé]{0,80}") {
        let _ = parse_traceparent(&s);
    }

    #[test]
    fn accepts_every_well_formed_header_with_its_ids(h in header()) {
        let text = h.render();
        let ctx = parse_traceparent(&text);
        prop_assert!(ctx.is_some(), "refused {text:?}");
        let ctx = ctx.unwrap();
        prop_assert_eq!(ctx.trace_id, TraceId(h.trace));
        prop_assert_eq!(ctx.span_id, SpanId(h.span));
        // Formatted back as the crate formats ids, the ids read as the sender wrote them.
        let field = h.fields();
        prop_assert_eq!(ctx.trace_id.to_hex(), &text[field[1].clone()]);
        prop_assert_eq!(ctx.span_id.to_hex(), &text[field[2].clone()]);
    }

    #[test]
    fn round_trips_through_the_crates_hex_form(trace in 1u128.., span in 1u64..) {
        let text = format!("00-{}-{}-01", TraceId(trace), SpanId(span));
        let ctx = parse_traceparent(&text).expect("a header of non-zero ids");
        let again = format!("00-{}-{}-01", ctx.trace_id, ctx.span_id);
        prop_assert_eq!(again, text);
    }

    #[test]
    fn one_character_that_is_not_hex_spoils_it(
        h in header(),
        field in 0usize..4,
        at in any::<prop::sample::Index>(),
        c in not_hex(),
    ) {
        let text = h.render();
        let range = h.fields()[field].clone();
        let pos = range.start + at.index(range.len());
        let mut bad = String::new();
        bad.push_str(&text[..pos]);
        bad.push(c);
        bad.push_str(&text[pos + 1..]);
        prop_assert!(parse_traceparent(&bad).is_none(), "accepted {bad:?}");
    }

    #[test]
    fn a_field_of_another_length_spoils_it(
        h in header(),
        field in 0usize..4,
        at in any::<prop::sample::Index>(),
        extra in hex_digit(),
        longer in any::<bool>(),
    ) {
        let text = h.render();
        let range = h.fields()[field].clone();
        let pos = range.start + at.index(range.len());
        let mut bad = text[..pos].to_owned();
        if longer {
            bad.push(extra);
            bad.push_str(&text[pos..]);
        } else {
            bad.push_str(&text[pos + 1..]);
        }
        prop_assert!(parse_traceparent(&bad).is_none(), "accepted {bad:?}");
    }

    #[test]
    fn all_zero_ids_are_refused(h in header(), zero_trace in any::<bool>()) {
        let h = if zero_trace {
            Header { trace: 0, ..h }
        } else {
            Header { span: 0, ..h }
        };
        let text = h.render();
        prop_assert!(parse_traceparent(&text).is_none(), "accepted {text:?}");
    }

    #[test]
    fn version_ff_is_refused(h in header()) {
        let text = Header { version: 0xff, ..h }.render();
        prop_assert!(parse_traceparent(&text).is_none(), "accepted {text:?}");
    }

    #[test]
    fn version_00_takes_nothing_after_the_flags(h in header(), tail in "-[ -~]{0,20}") {
        let text = Header { version: 0, tail, ..h }.render();
        prop_assert!(parse_traceparent(&text).is_none(), "accepted {text:?}");
    }

    #[test]
    fn the_header_an_outgoing_request_carries_parses_back(trace in 1u128.., span in 1u64..) {
        let ctx = SpanContext { trace_id: TraceId(trace), span_id: SpanId(span) };
        let header = format_traceparent(ctx).expect("a header for a span with a trace");
        prop_assert_eq!(header.len(), 55);
        prop_assert_eq!(parse_traceparent(&header), Some(ctx));
    }

    #[test]
    fn a_context_without_a_trace_or_a_span_has_no_header(trace in any::<u128>(), span in any::<u64>(), zero_trace in any::<bool>()) {
        let ctx = if zero_trace {
            SpanContext { trace_id: TraceId(0), span_id: SpanId(span) }
        } else {
            SpanContext { trace_id: TraceId(trace), span_id: SpanId(0) }
        };
        prop_assert_eq!(format_traceparent(ctx), None);
    }

    #[test]
    fn a_missing_dash_spoils_it(h in header(), dash in 0usize..3) {
        let text = h.render();
        let pos = h.fields()[dash].end;
        prop_assert_eq!(&text[pos..=pos], "-");
        let bad = format!("{}{}", &text[..pos], &text[pos + 1..]);
        prop_assert!(parse_traceparent(&bad).is_none(), "accepted {bad:?}");
    }
}

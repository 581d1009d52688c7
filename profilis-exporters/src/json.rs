//! The JSON form of an event ([`JsonEvent`]), written into a reused buffer (no allocation per
//! event once the buffer has grown). The JSONL and console sinks both write events through
//! this, with U+2028, U+2029 and U+0085 escaped (`escape_line_separators`).

use std::fmt;

use profilis_core::{Event, Outcome, Value, DB, FUNCTION, HTTP};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Formats a value with `Display` straight into the JSON string (no intermediate `String`).
struct Hex<T>(T);

impl<T: fmt::Display> Serialize for Hex<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// A field's value in JSON: a string, a number, or `null` when the event has none.
struct Field<'a>(Option<Value<'a>>);

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(Value::Str(s)) => serializer.serialize_str(s),
            Some(Value::U64(n)) => serializer.serialize_u64(n),
            None => serializer.serialize_none(),
        }
    }
}

/// An event in its JSON form: `kind` (its kind's JSON name), `ts_ns`, `dur_ns`, `fn` for a
/// function's event, the fields of its kind ([`Kind::event_fields`](profilis_core::Kind)),
/// `error`, `exception_type` and `exception_value` if a failure was captured, `outcome` unless
/// it returned, and the trace ids. Keys are Python profilis's where the meaning is the same;
/// the README's table says where the values differ (`ts_ns`, trace ids, `rows`).
///
/// `{"kind":"FN","ts_ns":…,"dur_ns":…,"fn":"shop::orders::price_order","error":false,
/// "trace_id":"<32 hex>","span_id":"<16 hex>","parent_span_id":"<16 hex>"|null}`; HTTP events
/// add `method`, `route` and `status`, DB events `db_vendor`, `query` and `rows` (and `fn`
/// when they come from a `#[profiled(db = "...")]` function), and every event not ended by
/// returning has `outcome` (`"panicked"` or `"cancelled"`).
///
/// A failed call whose reason was captured ([`Event::failure`]) also has, right after `error`,
/// `exception_type` (the error's type: `std::any::type_name` of a function's `E`, `"panic"`,
/// or the database client's error type; `null` if unknown) and `exception_value` (its message,
/// at most [`Failure::MAX_MESSAGE`](profilis_core::Failure::MAX_MESSAGE) bytes; `null` if it
/// has none). An event without a captured failure has neither key: successful calls, and
/// failures known only by their result (an HTTP 5xx, whose `status` says it).
///
/// The JSONL and console sinks also write U+2028, U+2029 and U+0085 as `\u2028`, `\u2029`
/// and `\u0085` so that line splitters see one event per line; serialized with a serializer
/// of your own, they are written as that serializer writes them (serde_json: raw).
///
/// A kind's event field named like one of the keys above (`kind`, `ts_ns`, `dur_ns`, `fn`,
/// `error`, `exception_type`, `exception_value`, `outcome`, `trace_id`, `span_id`,
/// `parent_span_id`), or named twice, is left out: a JSON object with a key twice is read
/// differently by different readers.
pub struct JsonEvent<'a>(pub &'a Event);

/// The keys events of every kind may have, which a kind's own fields
/// ([`Kind::event_fields`](profilis_core::Kind::event_fields)) cannot be.
pub(crate) const COMMON_KEYS: [&str; 11] = [
    "kind",
    "ts_ns",
    "dur_ns",
    "fn",
    "error",
    "exception_type",
    "exception_value",
    "outcome",
    "trace_id",
    "span_id",
    "parent_span_id",
];

impl Serialize for JsonEvent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let kind = e.kind();
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("kind", kind.event_kind())?;
        map.serialize_entry("ts_ns", &e.ts_ns)?;
        map.serialize_entry("dur_ns", &e.dur_ns)?;
        if e.site.is_function() {
            map.serialize_entry("fn", e.name())?;
        }
        // profilis's own kinds name no key twice (a test says so); a kind of one's own might,
        // and a key written twice is read differently by different readers (the last wins
        // for serde_json and Python): such fields are left out.
        let own = [&FUNCTION, &HTTP, &DB]
            .iter()
            .any(|k| std::ptr::eq(*k, kind));
        let fields = kind.event_fields();
        for (i, &key) in fields.iter().enumerate() {
            if !own && (COMMON_KEYS.contains(&key) || fields[..i].contains(&key)) {
                continue;
            }
            map.serialize_entry(key, &Field(e.field(key)))?;
        }
        map.serialize_entry("error", &e.error)?;
        if let Some(failure) = &e.failure {
            map.serialize_entry("exception_type", &failure.exception_type)?;
            map.serialize_entry("exception_value", &failure.exception_value)?;
        }
        match e.outcome {
            Outcome::Returned => {}
            Outcome::Panicked => map.serialize_entry("outcome", "panicked")?,
            Outcome::Cancelled => map.serialize_entry("outcome", "cancelled")?,
        }
        map.serialize_entry("trace_id", &Hex(e.trace_id))?;
        map.serialize_entry("span_id", &Hex(e.span_id))?;
        map.serialize_entry("parent_span_id", &e.parent_span_id.map(Hex))?;
        map.end()
    }
}

/// Appends `event` as one compact JSON line (ending in `\n`) to `buf`, with U+2028, U+2029 and
/// U+0085 escaped ([`escape_line_separators`]).
pub(crate) fn write_line(buf: &mut Vec<u8>, event: &Event) {
    let start = buf.len();
    // Writing to a Vec cannot fail, and every value here serializes.
    let _ = serde_json::to_writer(&mut *buf, &JsonEvent(event));
    escape_line_separators(buf, start);
    buf.push(b'\n');
}

/// Appends `event` as indented, multi-line JSON (ending in `\n`) to `buf`, with U+2028,
/// U+2029 and U+0085 escaped ([`escape_line_separators`]).
#[cfg(feature = "console")]
pub(crate) fn write_pretty(buf: &mut Vec<u8>, event: &Event) {
    let start = buf.len();
    let _ = serde_json::to_writer_pretty(&mut *buf, &JsonEvent(event));
    escape_line_separators(buf, start);
    buf.push(b'\n');
}

/// Writes U+2028, U+2029 and U+0085 in the JSON text `buf[start..]` as `\u2028`, `\u2029`
/// and `\u0085`. JSON allows them raw, but line splitters break lines on them (Python's
/// `str.splitlines`, JavaScript's line terminators), so a reader of JSONL would see a line cut
/// in two (Python profilis writes ASCII only). In serde_json's output anything not ASCII is
/// inside a string, where the escape means the same. Everything else is left as it is: a line
/// of ASCII (the usual event) costs one `is_ascii` pass.
fn escape_line_separators(buf: &mut Vec<u8>, start: usize) {
    if buf[start..].is_ascii() {
        return;
    }
    escape_line_separators_in(buf, start);
}

/// [`escape_line_separators`] for text that is not all ASCII.
#[cold]
fn escape_line_separators_in(buf: &mut Vec<u8>, start: usize) {
    // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8, U+0085 is C2 85.
    let separator_at = |bytes: &[u8], at: usize| -> Option<(&'static [u8], usize)> {
        match bytes[at..] {
            [0xE2, 0x80, 0xA8, ..] => Some((b"\\u2028", 3)),
            [0xE2, 0x80, 0xA9, ..] => Some((b"\\u2029", 3)),
            [0xC2, 0x85, ..] => Some((b"\\u0085", 2)),
            _ => None,
        }
    };
    let Some(first) = (start..buf.len()).find(|&at| separator_at(buf, at).is_some()) else {
        return;
    };
    let tail = buf.split_off(first);
    let mut at = 0;
    while at < tail.len() {
        match separator_at(&tail, at) {
            Some((escape, len)) => {
                buf.extend_from_slice(escape);
                at += len;
            }
            None => {
                buf.push(tail[at]);
                at += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use profilis_core::context::{SpanId, TraceId};
    use profilis_core::{Detail, Failure, Site};
    use std::sync::Arc;

    static PRICE: Site = Site::function("shop::orders::price", None);
    static LOAD: Site = Site::db_function("shop::orders::load", "sqlite", None);

    #[derive(Debug)]
    struct Request;

    impl Detail for Request {
        fn field(&self, key: &str) -> Option<Value<'_>> {
            match key {
                "method" => Some(Value::Str("GET")),
                "route" => Some(Value::Str("/users/{id}")),
                "status" => Some(Value::U64(200)),
                _ => None,
            }
        }
    }

    fn event(site: &'static Site, parent: Option<SpanId>, outcome: Outcome) -> Event {
        Event {
            site,
            ts_ns: 1_700_000_000_000_000_000,
            dur_ns: 1234,
            error: false,
            outcome,
            trace_id: TraceId(0xabc),
            span_id: SpanId(0x1f),
            parent_span_id: parent,
            detail: None,
            failure: None,
        }
    }

    fn line(e: &Event) -> String {
        let mut buf = Vec::new();
        write_line(&mut buf, e);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn profilis_kinds_name_no_key_twice_and_others_are_left_out_if_they_do() {
        for kind in [&FUNCTION, &HTTP, &DB] {
            let fields = kind.event_fields();
            for (i, key) in fields.iter().enumerate() {
                assert!(!COMMON_KEYS.contains(key), "{key}");
                assert!(!fields[..i].contains(key), "{key}");
            }
        }
        static ODD: profilis_core::Kind = profilis_core::Kind::new(
            "odd",
            "ODD",
            "odd",
            profilis_core::Metric {
                name: "odd_total",
                help: "Odd calls",
            },
            profilis_core::Metric {
                name: "odd_duration_seconds",
                help: "Odd call duration",
            },
        )
        .with_event_fields(&["error", "extra", "trace_id", "kind", "extra"]);
        let text = line(&event(
            Site::interned(&ODD, "odd", &[("extra", "1")]),
            None,
            Outcome::Returned,
        ));
        for key in COMMON_KEYS.iter().chain(&["extra"]) {
            let times = text.matches(&format!("\"{key}\":")).count();
            let expected = usize::from(
                *key != "fn"
                    && *key != "exception_type"
                    && *key != "exception_value"
                    && *key != "outcome",
            );
            assert_eq!(times, expected, "{key} in {text}");
        }
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["kind"], "ODD");
        assert_eq!(parsed["extra"], "1");
        assert_eq!(parsed["error"], false);
    }

    #[test]
    fn events_have_the_python_profilis_keys() {
        assert_eq!(
            line(&event(&PRICE, None, Outcome::Returned)),
            "{\"kind\":\"FN\",\"ts_ns\":1700000000000000000,\"dur_ns\":1234,\
             \"fn\":\"shop::orders::price\",\"error\":false,\
             \"trace_id\":\"00000000000000000000000000000abc\",\"span_id\":\"000000000000001f\",\
             \"parent_span_id\":null}\n"
        );
        let mut http = event(
            Site::interned(&HTTP, "/users/{id}", &[("status", "200")]),
            Some(SpanId(2)),
            Outcome::Cancelled,
        );
        http.detail = Some(Arc::new(Request));
        let text = line(&http);
        assert!(text.starts_with("{\"kind\":\"HTTP\",\"ts_ns\""), "{text}");
        assert!(
            text.contains(
                "\"dur_ns\":1234,\"method\":\"GET\",\"route\":\"/users/{id}\",\"status\":200,"
            ),
            "{text}"
        );
        assert!(text.contains("\"outcome\":\"cancelled\""));
        assert!(text.contains("\"parent_span_id\":\"0000000000000002\""));
        // A `#[profiled(db = "...")]` function: its name, its vendor, no statement.
        let parsed: serde_json::Value =
            serde_json::from_str(&line(&event(&LOAD, None, Outcome::Returned))).unwrap();
        assert_eq!(parsed["kind"], "DB");
        assert_eq!(parsed["fn"], "shop::orders::load");
        assert_eq!(parsed["db_vendor"], "sqlite");
        assert_eq!(parsed["query"], serde_json::Value::Null);
        assert_eq!(parsed["rows"], serde_json::Value::Null);
        #[cfg(feature = "console")]
        {
            let mut pretty = Vec::new();
            write_pretty(&mut pretty, &event(&PRICE, None, Outcome::Returned));
            assert!(String::from_utf8(pretty).unwrap().lines().count() > 5);
        }
    }

    #[test]
    fn a_captured_failure_is_written_with_python_profilis_keys() {
        let mut failed = event(&PRICE, None, Outcome::Returned);
        failed.error = true;
        failed.failure = Some(Arc::new(Failure::new(
            "std::io::Error",
            Some(&"disk \"full\""),
        )));
        let text = line(&failed);
        assert!(
            text.contains(
                "\"error\":true,\"exception_type\":\"std::io::Error\",\
                 \"exception_value\":\"disk \\\"full\\\"\",\"trace_id\""
            ),
            "{text}"
        );
        // Known to have failed, not why (an HTTP 5xx, say): both keys, null.
        let mut status_only = event(&PRICE, None, Outcome::Panicked);
        status_only.error = true;
        status_only.failure = Some(Arc::new(Failure::default()));
        let parsed: serde_json::Value = serde_json::from_str(&line(&status_only)).unwrap();
        let object = parsed.as_object().unwrap();
        assert_eq!(object["exception_type"], serde_json::Value::Null);
        assert_eq!(object["exception_value"], serde_json::Value::Null);
        assert_eq!(object["outcome"], "panicked");
        // A type without a message.
        failed.failure = Some(Arc::new(Failure::new("panic", None)));
        let parsed: serde_json::Value = serde_json::from_str(&line(&failed)).unwrap();
        assert_eq!(parsed["exception_type"], "panic");
        assert_eq!(parsed["exception_value"], serde_json::Value::Null);
        // No failure captured: neither key.
        let parsed: serde_json::Value =
            serde_json::from_str(&line(&event(&PRICE, None, Outcome::Returned))).unwrap();
        let object = parsed.as_object().unwrap();
        assert!(!object.contains_key("exception_type"), "{object:?}");
        assert!(!object.contains_key("exception_value"), "{object:?}");
    }

    /// Line separators a line splitter breaks lines on (Python's `str.splitlines`,
    /// JavaScript), valid raw in JSON.
    const SEPARATORS: [char; 3] = ['\u{2028}', '\u{2029}', '\u{85}'];

    static ODD: Site = Site::function("app::odd\u{2028}ls\u{2029}ps\u{85}nel é ✓", None);

    #[test]
    fn line_separators_are_escaped_so_a_line_splitter_sees_one_line() {
        let mut failed = event(&ODD, None, Outcome::Returned);
        failed.error = true;
        // At either end of the string, next to a character JSON escapes, and among others.
        let message = "\u{2028}\"\u{85}\u{2029}\\x\u{2028}\u{2028}\u{85}";
        failed.failure = Some(Arc::new(Failure::new("T", Some(&message))));
        let mut outputs = vec![line(&failed)];
        #[cfg(feature = "console")]
        {
            let mut pretty = Vec::new();
            write_pretty(&mut pretty, &failed);
            outputs.push(String::from_utf8(pretty).unwrap());
        }
        for text in outputs {
            assert!(!text.contains(SEPARATORS), "{text:?}");
            assert!(
                text.contains("app::odd\\u2028ls\\u2029ps\\u0085nel é ✓"),
                "other characters are written as they are: {text:?}"
            );
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed["fn"], ODD.name());
            assert_eq!(parsed["exception_value"], message);
        }
        let text = line(&failed);
        let lines: Vec<&str> = text.split(['\n', '\r']).collect();
        assert_eq!(lines.len(), 2, "one line and the empty rest: {lines:?}");
        assert_eq!(text.split(SEPARATORS).count(), 1);

        // Without them, byte for byte what serde_json writes, compact and pretty.
        let mut other = event(&PRICE, Some(SpanId(3)), Outcome::Panicked);
        other.error = true;
        let message = "é ✓ \"q\" \\ \u{1} \u{7f} \u{2027}\u{202a}\u{84}\u{86} 😀";
        other.failure = Some(Arc::new(Failure::new("E", Some(&message))));
        let expected = serde_json::to_string(&JsonEvent(&other)).unwrap() + "\n";
        assert_eq!(line(&other), expected);
        #[cfg(feature = "console")]
        {
            let mut pretty = Vec::new();
            write_pretty(&mut pretty, &other);
            let expected = serde_json::to_string_pretty(&JsonEvent(&other)).unwrap() + "\n";
            assert_eq!(String::from_utf8(pretty).unwrap(), expected);
        }
    }
}

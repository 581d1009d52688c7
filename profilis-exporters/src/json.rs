//! The JSON form of an event, with the keys of Python profilis's JSONL files, written into a
//! reused buffer (no allocation per event once the buffer has grown). The JSONL and console
//! sinks both write events through this.
//!
//! `{"kind":"FN","ts_ns":…,"dur_ns":…,"fn":"shop::orders::price_order","error":false,
//! "trace_id":"<32 hex>","span_id":"<16 hex>","parent_span_id":"<16 hex>"|null}`; HTTP events
//! add `method`, `route` and `status`, DB events `db_vendor`, `query` and `rows` (and `fn`
//! when they come from a `#[profiled(db = "...")]` function), and every
//! event not ended by returning has `outcome` (`"panicked"` or `"cancelled"`).

use std::fmt;

use profilis_core::{Detail, Event, Outcome};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Formats a value with `Display` straight into the JSON string (no intermediate `String`).
struct Hex<T>(T);

impl<T: fmt::Display> Serialize for Hex<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// An event in its JSON form.
pub struct JsonEvent<'a>(pub &'a Event);

impl Serialize for JsonEvent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("kind", e.kind().as_str())?;
        map.serialize_entry("ts_ns", &e.ts_ns)?;
        map.serialize_entry("dur_ns", &e.dur_ns)?;
        match &e.detail {
            Detail::Fn => map.serialize_entry("fn", e.name())?,
            Detail::Http(http) => {
                map.serialize_entry("method", &*http.method)?;
                map.serialize_entry("route", &*http.route)?;
                map.serialize_entry("status", &http.status)?;
            }
            Detail::Db(db) => {
                // A `#[profiled(db = "...")]` function: its name too.
                if e.name() != &*db.vendor {
                    map.serialize_entry("fn", e.name())?;
                }
                map.serialize_entry("db_vendor", &*db.vendor)?;
                map.serialize_entry("query", &db.query.as_deref())?;
                map.serialize_entry("rows", &db.rows)?;
            }
        }
        map.serialize_entry("error", &e.error)?;
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

/// Appends `event` as one compact JSON line (ending in `\n`) to `buf`.
pub fn write_line(buf: &mut Vec<u8>, event: &Event) {
    // Writing to a Vec cannot fail, and every value here serializes.
    let _ = serde_json::to_writer(&mut *buf, &JsonEvent(event));
    buf.push(b'\n');
}

/// Appends `event` as indented, multi-line JSON (ending in `\n`) to `buf`.
pub fn write_pretty(buf: &mut Vec<u8>, event: &Event) {
    let _ = serde_json::to_writer_pretty(&mut *buf, &JsonEvent(event));
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use profilis_core::event::{DbDetail, HttpDetail};
    use profilis_core::ids::{SpanId, TraceId};
    use profilis_core::Site;

    static PRICE: Site = Site::function("shop::orders::price", None);

    fn event(detail: Detail, parent: Option<SpanId>, outcome: Outcome) -> Event {
        Event {
            site: &PRICE,
            ts_ns: 1_700_000_000_000_000_000,
            dur_ns: 1234,
            error: false,
            outcome,
            trace_id: TraceId(0xabc),
            span_id: SpanId(0x1f),
            parent_span_id: parent,
            detail,
        }
    }

    fn line(e: &Event) -> String {
        let mut buf = Vec::new();
        write_line(&mut buf, e);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn events_have_the_python_profilis_keys() {
        assert_eq!(
            line(&event(Detail::Fn, None, Outcome::Returned)),
            "{\"kind\":\"FN\",\"ts_ns\":1700000000000000000,\"dur_ns\":1234,\
             \"fn\":\"shop::orders::price\",\"error\":false,\
             \"trace_id\":\"00000000000000000000000000000abc\",\"span_id\":\"000000000000001f\",\
             \"parent_span_id\":null}\n"
        );
        let http = Detail::Http(HttpDetail {
            method: "GET".into(),
            route: "/users/{id}".into(),
            status: 200,
        });
        let text = line(&event(http, Some(SpanId(2)), Outcome::Cancelled));
        assert!(text.contains("\"kind\":\"HTTP\""), "{text}");
        assert!(text.contains("\"method\":\"GET\",\"route\":\"/users/{id}\",\"status\":200"));
        assert!(text.contains("\"outcome\":\"cancelled\""));
        assert!(text.contains("\"parent_span_id\":\"0000000000000002\""));
        let db = Detail::Db(DbDetail {
            vendor: "sqlite".into(),
            query: Some("SELECT \"a\" FROM t WHERE id = ?".into()),
            rows: Some(3),
        });
        let text = line(&event(db, None, Outcome::Returned));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["db_vendor"], "sqlite");
        assert_eq!(parsed["query"], "SELECT \"a\" FROM t WHERE id = ?");
        assert_eq!(parsed["rows"], 3);
        // The event's site is a function, as for `#[profiled(db = "sqlite")]`: it names it.
        assert_eq!(parsed["fn"], "shop::orders::price");
        let mut from_hook = event(Detail::Fn, None, Outcome::Returned);
        from_hook.detail = Detail::Db(DbDetail {
            vendor: "sqlite".into(),
            query: None,
            rows: None,
        });
        from_hook.site = Site::db("sqlite");
        let parsed: serde_json::Value = serde_json::from_str(&line(&from_hook)).unwrap();
        assert_eq!(parsed.get("fn"), None, "{parsed}");
        assert_eq!(parsed["query"], serde_json::Value::Null);
        let mut pretty = Vec::new();
        write_pretty(&mut pretty, &event(Detail::Fn, None, Outcome::Returned));
        assert!(String::from_utf8(pretty).unwrap().lines().count() > 5);
    }
}

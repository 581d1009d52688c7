//! What a DB event carries beyond the common fields: the [`DbDetail`] every DB adapter
//! attaches, read by sinks through the `query` and `rows` fields of the DB kind (the vendor
//! is the site's `db_vendor` label).

use std::sync::Arc;

use profilis_core::{Detail, Value};

/// The detail of a DB event: JSON sinks write it, with the site's vendor, as
/// `"db_vendor":"postgres","query":"SELECT ...","rows":3` (`null` for what is unknown). Read
/// it back with `event.detail::<DbDetail>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbDetail {
    /// The statement with literals masked and cut to the statement limit, if kept.
    pub query: Option<Arc<str>>,
    /// Rows affected or returned, when the driver reports them.
    pub rows: Option<u64>,
}

impl Detail for DbDetail {
    fn field(&self, key: &str) -> Option<Value<'_>> {
        match key {
            "query" => self.query.as_deref().map(Value::Str),
            "rows" => self.rows.map(Value::U64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use profilis_core::context::{SpanId, TraceId};
    use profilis_core::{Event, Outcome, DB};

    fn event(detail: DbDetail) -> Event {
        Event {
            site: crate::db::site("postgres"),
            ts_ns: 0,
            dur_ns: 0,
            error: false,
            outcome: Outcome::Returned,
            trace_id: TraceId(1),
            span_id: SpanId(1),
            parent_span_id: None,
            detail: Some(Arc::new(detail)),
            failure: None,
        }
    }

    #[test]
    fn the_vendor_comes_from_the_site_and_unknowns_are_none() {
        let known = event(DbDetail {
            query: Some("SELECT ?".into()),
            rows: Some(3),
        });
        let fields: Vec<_> = DB.event_fields().iter().map(|k| known.field(k)).collect();
        assert_eq!(
            fields,
            [
                Some(Value::Str("postgres")),
                Some(Value::Str("SELECT ?")),
                Some(Value::U64(3)),
            ]
        );
        let unknown = event(DbDetail {
            query: None,
            rows: None,
        });
        let fields: Vec<_> = DB.event_fields().iter().map(|k| unknown.field(k)).collect();
        assert_eq!(fields, [Some(Value::Str("postgres")), None, None]);
        assert_eq!(
            unknown.detail::<DbDetail>().map(|d| d.rows),
            Some(None),
            "read back as its own type"
        );
    }
}

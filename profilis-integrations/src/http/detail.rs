//! What an HTTP event carries beyond the common fields: the [`HttpDetail`] every HTTP adapter
//! attaches, read by sinks through the `method`, `route` and `status` fields of the HTTP kind.

use std::sync::Arc;

use profilis_core::{Detail, Value};

/// The detail of an HTTP event: JSON sinks write it as
/// `"method":"GET","route":"/users/{id}","status":200`. Read it back with
/// `event.detail::<HttpDetail>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDetail {
    /// Request method (`GET`, ...): a standard one as it is, any other cut to its first
    /// [`MAX_METHOD_LEN`](super::MAX_METHOD_LEN) bytes.
    pub method: Arc<str>,
    /// Route template (`/users/{id}`), never a raw path: the `route` label of the event's
    /// site, which lives as long as the process.
    pub route: &'static str,
    /// Response status (500 for a panic, 499 for a request abandoned before its response).
    pub status: u16,
}

impl Detail for HttpDetail {
    fn field(&self, key: &str) -> Option<Value<'_>> {
        match key {
            "method" => Some(Value::Str(&self.method)),
            "route" => Some(Value::Str(self.route)),
            "status" => Some(Value::U64(u64::from(self.status))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use profilis_core::HTTP;

    #[test]
    fn every_field_of_the_http_kind_has_its_value() {
        let detail = HttpDetail {
            method: "POST".into(),
            route: "/orders/{id}",
            status: 201,
        };
        let fields: Vec<_> = HTTP
            .event_fields()
            .iter()
            .map(|key| detail.field(key))
            .collect();
        assert_eq!(
            fields,
            [
                Some(Value::Str("POST")),
                Some(Value::Str("/orders/{id}")),
                Some(Value::U64(201)),
            ]
        );
        assert_eq!(detail.field("query"), None);
    }
}

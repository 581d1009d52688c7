//! Kinds of call: a function call, an HTTP request, a database query. Each kind is described
//! once, as data (its metric names, help texts, label, JSON `kind` and event fields), and every
//! part of profilis reads the description instead of matching on the kind.
//!
//! A new kind is a new `static` [`Kind`] plus the adapter that records its calls: sites,
//! buckets, events, `/metrics` and JSONL follow from the description.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// A metric of a kind: its name and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The metric's name (`profilis_function_calls_total`).
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
}

/// What one kind of call is: how its calls are counted, timed, labelled and written as events.
///
/// Made once, as a `static`; compared by address. [`FUNCTION`], [`HTTP`] and [`DB`] are
/// profilis's own; an adapter for another kind of call defines its own `static` with
/// [`Kind::new`].
pub struct Kind {
    name: &'static str,
    event_kind: &'static str,
    label: &'static str,
    event_fields: &'static [&'static str],
    calls: Metric,
    errors: Option<Metric>,
    duration: Metric,
    in_flight: Option<Metric>,
    /// Dense id (0, 1, 2, ...), `UNREGISTERED` until the kind is first used.
    id: AtomicU32,
}

const UNREGISTERED: u32 = u32::MAX;

impl Kind {
    /// A kind named `name` (`"function"`, in configuration and messages) whose events have
    /// `"kind": event_kind` in JSON and whose sites are named by the label `label`; its calls
    /// are counted in `calls` and timed in the histogram `duration`. Add the rest with the
    /// other `const` methods.
    pub const fn new(
        name: &'static str,
        event_kind: &'static str,
        label: &'static str,
        calls: Metric,
        duration: Metric,
    ) -> Kind {
        Kind {
            name,
            event_kind,
            label,
            event_fields: &[],
            calls,
            errors: None,
            duration,
            in_flight: None,
            id: AtomicU32::new(UNREGISTERED),
        }
    }

    /// Failed calls are also counted in `errors`.
    pub const fn with_errors(mut self, errors: Metric) -> Kind {
        self.errors = Some(errors);
        self
    }

    /// Calls under way are a gauge `in_flight` (kept with [`crate::adapter::InFlight`]).
    pub const fn with_in_flight(mut self, in_flight: Metric) -> Kind {
        self.in_flight = Some(in_flight);
        self
    }

    /// The keys an event of this kind carries beyond the common ones, in order. Their values
    /// come from the event's [`Detail`](crate::Detail), else from the site's labels, else
    /// they are `null`. A field named like a key every event has (`kind`, `ts_ns`, `dur_ns`,
    /// `fn`, `error`, `exception_type`, `exception_value`, `outcome`, `trace_id`, `span_id`,
    /// `parent_span_id`), or a second time, is left out of the JSON events.
    pub const fn with_event_fields(mut self, fields: &'static [&'static str]) -> Kind {
        self.event_fields = fields;
        self
    }

    /// The kind's name: `function`, `http`, `db`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The `kind` of its events in JSON: `FN`, `HTTP`, `DB`.
    pub fn event_kind(&self) -> &'static str {
        self.event_kind
    }

    /// The label that names a site of this kind: `function`, `route`, `db_vendor`.
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// The keys its events carry beyond the common ones (see [`Kind::with_event_fields`]).
    pub fn event_fields(&self) -> &'static [&'static str] {
        self.event_fields
    }

    /// The counter of calls.
    pub fn calls(&self) -> Metric {
        self.calls
    }

    /// The counter of failed calls, if the kind has one (HTTP failures show in `status`).
    pub fn errors(&self) -> Option<Metric> {
        self.errors
    }

    /// The histogram of durations, in seconds.
    pub fn duration(&self) -> Metric {
        self.duration
    }

    /// The gauge of calls under way, if the kind has one.
    pub fn in_flight(&self) -> Option<Metric> {
        self.in_flight
    }

    /// The kind's dense id (`FUNCTION` is 0, `HTTP` 1, `DB` 2, others in order of first use).
    #[inline]
    pub(crate) fn id(&'static self) -> u32 {
        let id = self.id.load(Ordering::Relaxed);
        if id != UNREGISTERED {
            id
        } else {
            self.register()
        }
    }

    #[cold]
    fn register(&'static self) -> u32 {
        let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.id.load(Ordering::Relaxed);
        if id != UNREGISTERED {
            return id;
        }
        registered.push(self);
        let id = (BUILT_IN.len() + registered.len() - 1) as u32;
        self.id.store(id, Ordering::Relaxed);
        id
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Kind) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Kind {}

impl std::hash::Hash for Kind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(self, state);
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.name)
    }
}

/// Function calls (`#[profiled]`): `FN` events, labelled `function`.
pub static FUNCTION: Kind = Kind {
    id: AtomicU32::new(0),
    ..Kind::new(
        "function",
        "FN",
        "function",
        Metric {
            name: "profilis_function_calls_total",
            help: "Total function calls (profiled)",
        },
        Metric {
            name: "profilis_function_duration_seconds",
            help: "Function call duration",
        },
    )
    .with_errors(Metric {
        name: "profilis_function_errors_total",
        help: "Profiled calls that returned Err or panicked",
    })
};

/// HTTP requests: `HTTP` events, labelled `route` (and `status`, `method` by the adapters).
pub static HTTP: Kind = Kind {
    id: AtomicU32::new(1),
    ..Kind::new(
        "http",
        "HTTP",
        "route",
        Metric {
            name: "profilis_http_requests_total",
            help: "Total HTTP requests",
        },
        Metric {
            name: "profilis_http_request_duration_seconds",
            help: "HTTP request duration",
        },
    )
    .with_in_flight(Metric {
        name: "profilis_http_requests_in_flight",
        help: "HTTP requests being served",
    })
    .with_event_fields(&["method", "route", "status"])
};

/// Database queries: `DB` events, labelled `db_vendor`.
pub static DB: Kind = Kind {
    id: AtomicU32::new(2),
    ..Kind::new(
        "db",
        "DB",
        "db_vendor",
        Metric {
            name: "profilis_db_queries_total",
            help: "Total DB queries",
        },
        Metric {
            name: "profilis_db_query_duration_seconds",
            help: "DB query duration",
        },
    )
    .with_errors(Metric {
        name: "profilis_db_query_errors_total",
        help: "DB queries that failed",
    })
    .with_event_fields(&["db_vendor", "query", "rows"])
};

/// profilis's own kinds, at their ids.
static BUILT_IN: [&Kind; 3] = [&FUNCTION, &HTTP, &DB];

/// Kinds defined elsewhere, in order of first use (ids from 3 on).
static REGISTERED: Mutex<Vec<&'static Kind>> = Mutex::new(Vec::new());

/// Every kind known now: profilis's own, then the others in order of first use (by id).
pub fn kinds() -> Vec<&'static Kind> {
    let registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    BUILT_IN
        .iter()
        .copied()
        .chain(registered.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    static QUEUE: Kind = Kind::new(
        "queue",
        "QUEUE",
        "queue",
        Metric {
            name: "test_messages_total",
            help: "Messages",
        },
        Metric {
            name: "test_message_duration_seconds",
            help: "Message handling",
        },
    );

    #[test]
    fn built_in_kinds_have_fixed_ids_and_others_are_numbered_on_first_use() {
        assert_eq!((FUNCTION.id(), HTTP.id(), DB.id()), (0, 1, 2));
        let id = QUEUE.id();
        assert!(id >= 3);
        assert_eq!(QUEUE.id(), id);
        assert_eq!(kinds()[id as usize], &QUEUE);
        assert_eq!(kinds()[..3], [&FUNCTION, &HTTP, &DB]);
        assert_ne!(&FUNCTION, &HTTP);
        assert_eq!(DB.errors().unwrap().name, "profilis_db_query_errors_total");
        assert_eq!(HTTP.errors(), None);
    }
}

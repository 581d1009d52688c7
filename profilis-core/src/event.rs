//! The event model: one [`Event`] per recorded call, request or query (FN, HTTP, DB), with the
//! keys of Python profilis's JSONL schema.

use std::sync::Arc;

use crate::ids::{SpanId, TraceId};
use crate::site::{Site, SiteKind};

/// The kind of an event, as in the `kind` key of JSONL (`FN`, `HTTP`, `DB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A function call.
    Fn,
    /// An HTTP request.
    Http,
    /// A database query.
    Db,
}

impl EventKind {
    /// The JSONL spelling: `FN`, `HTTP` or `DB`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Fn => "FN",
            EventKind::Http => "HTTP",
            EventKind::Db => "DB",
        }
    }
}

/// How a recorded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Outcome {
    /// It returned (possibly an `Err`, see [`Event::error`]).
    #[default]
    Returned,
    /// It panicked; the panic went on to the caller unchanged.
    Panicked,
    /// An async call whose future was dropped before it completed.
    Cancelled,
}

/// What HTTP events carry beyond the common fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDetail {
    /// Request method (`GET`, ...).
    pub method: Arc<str>,
    /// Route template (`/users/{id}`), never a raw path.
    pub route: Arc<str>,
    /// Response status.
    pub status: u16,
}

/// What DB events carry beyond the common fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbDetail {
    /// Database vendor (`sqlite`, `postgres`, ...).
    pub vendor: Arc<str>,
    /// The statement with literals masked, if kept.
    pub query: Option<Arc<str>>,
    /// Rows affected or returned, when the driver reports them.
    pub rows: Option<u64>,
}

/// The kind-specific part of an event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Detail {
    /// A function call: nothing more than the site's name.
    #[default]
    Fn,
    /// An HTTP request.
    Http(HttpDetail),
    /// A database query.
    Db(DbDetail),
}

impl Detail {
    /// The detail of a call that brought none: a function call, or a call of a
    /// `#[profiled(db = "...")]` function (its vendor, no statement).
    fn of_site(site: &Site) -> Detail {
        match (site.kind(), site.db_vendor()) {
            (SiteKind::Db, Some(vendor)) => Detail::Db(DbDetail {
                vendor: vendor.into(),
                query: None,
                rows: None,
            }),
            _ => Detail::Fn,
        }
    }
}

/// One recorded call, request or query.
#[derive(Debug, Clone)]
pub struct Event {
    /// The call site (its name is the `fn` key and the `function` label).
    pub site: &'static Site,
    /// Start time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Duration in nanoseconds.
    pub dur_ns: u64,
    /// The call failed: it returned `Err(_)` or panicked.
    pub error: bool,
    /// How the call ended.
    pub outcome: Outcome,
    /// Trace the call belongs to.
    pub trace_id: TraceId,
    /// The call's own span.
    pub span_id: SpanId,
    /// The span of the profiled call (or request) it ran inside, if any.
    pub parent_span_id: Option<SpanId>,
    /// Kind-specific fields.
    pub detail: Detail,
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self.detail {
            Detail::Fn => EventKind::Fn,
            Detail::Http(_) => EventKind::Http,
            Detail::Db(_) => EventKind::Db,
        }
    }

    /// The site's name: the `fn` key of FN events.
    pub fn name(&self) -> &'static str {
        self.site.name()
    }
}

impl From<SiteKind> for EventKind {
    fn from(kind: SiteKind) -> EventKind {
        match kind {
            SiteKind::Function => EventKind::Fn,
            SiteKind::Http => EventKind::Http,
            SiteKind::Db => EventKind::Db,
        }
    }
}

/// An event as the hot path queues it: raw clock ticks, converted on the collector thread.
pub(crate) struct RawEvent {
    pub(crate) site: &'static Site,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    /// Span id 0: none.
    pub(crate) parent: SpanId,
    pub(crate) error: bool,
    pub(crate) outcome: Outcome,
    /// `None` for FN events, so a function call never allocates.
    pub(crate) detail: Option<Box<Detail>>,
}

impl RawEvent {
    /// Converts ticks to wall-clock start and duration.
    pub(crate) fn finish(self) -> Event {
        Event {
            site: self.site,
            ts_ns: crate::clock::ticks_to_unix_ns(self.start),
            dur_ns: crate::clock::ticks_to_ns(self.start, self.end),
            error: self.error,
            outcome: self.outcome,
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: (self.parent.0 != 0).then_some(self.parent),
            detail: match self.detail {
                Some(detail) => *detail,
                None => Detail::of_site(self.site),
            },
        }
    }
}

//! The event model: one [`Event`] per recorded call (a function call, a request, a query),
//! using Python profilis's key names where the meaning is the same (the README's "What matches
//! Python profilis" says where it differs). What an adapter adds beyond the common fields
//! (an HTTP method, a masked statement) is a [`Detail`] that the event carries; sinks read it
//! by key ([`Event::field`]) whatever the kind.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::kind::Kind;
use crate::site::Site;
use crate::trace::{SpanId, TraceId};

/// How a recorded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Outcome {
    /// It returned (possibly an `Err`, see [`Event::error`]).
    #[default]
    Returned,
    /// It panicked; the panic went on to the caller unchanged.
    Panicked,
    /// It was abandoned before it ended: an async call whose future was dropped, a request
    /// whose client went away.
    Cancelled,
}

/// The value of one field of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Text.
    Str(&'a str),
    /// A number.
    U64(u64),
}

/// What an adapter's events carry beyond the common fields: the values of (some of) the keys
/// of their kind's [`Kind::event_fields`]. Keys it has no value for fall back to the site's
/// labels, then to `null`.
///
/// Read a detail back as its own type with [`Event::detail`].
///
/// A detail is dropped with the last copy of its event, on whichever thread lets go of it: the
/// collector's once the sinks have it, a sink's that kept it, or a recording thread's when a
/// full queue does not keep it (with [`DropPolicy::Oldest`](crate::DropPolicy::Oldest), the
/// oldest event is evicted) or when the dashboard's lists of failed and slow calls move on. A
/// `Drop` of its own may make profiled calls.
pub trait Detail: Any + fmt::Debug + Send + Sync {
    /// The value of the field `key`, if this detail has one.
    fn field(&self, key: &str) -> Option<Value<'_>>;
}

/// Why a call failed, as far as it is known: captured on the error path only (a call that
/// succeeds pays nothing for it), carried by its [`Event`] (`exception_type` and
/// `exception_value` in JSON, Python profilis's keys) and listed by the dashboard. Never a
/// metric label.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    /// The error's type: `std::any::type_name` of `E` for a function returning
    /// `Result<_, E>`, `"panic"` for a panic, an adapter's name for its client's errors. `None`
    /// when the call failed by its result alone (an HTTP 5xx status, say).
    pub exception_type: Option<Cow<'static, str>>,
    /// The error's message (its `Display`, for an `E: Display`) or the panic's, cut to at most
    /// [`Failure::MAX_MESSAGE`] bytes (at a character boundary, ending in `…`).
    pub exception_value: Option<String>,
}

impl Failure {
    /// The longest message kept, in bytes.
    pub const MAX_MESSAGE: usize = 512;

    /// A failure of type `exception_type`, with `message` written (and cut) if given.
    pub fn new(
        exception_type: impl Into<Cow<'static, str>>,
        message: Option<&dyn fmt::Display>,
    ) -> Failure {
        Failure {
            exception_type: Some(exception_type.into()),
            exception_value: message.map(bounded_message),
        }
    }
}

/// Appends `message`, as its `Display` writes it, to `into`, up to `max` bytes of `into` (cut
/// at a character boundary); returns whether it was cut. A `Display` that fails leaves what it
/// wrote; once a piece does not fit, every later write fails, so a well-behaved `Display`
/// stops (one that ignores the error writes nothing more). One that panics leaves what it wrote
/// in `into` for a caller that catches the panic.
pub fn write_bounded(message: &dyn fmt::Display, max: usize, into: &mut String) -> bool {
    struct Bounded<'a> {
        kept: &'a mut String,
        max: usize,
        cut: bool,
    }
    impl fmt::Write for Bounded<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            if self.cut {
                return Err(fmt::Error);
            }
            let room = self.max.saturating_sub(self.kept.len());
            if s.len() <= room {
                self.kept.push_str(s);
                return Ok(());
            }
            self.kept.push_str(&s[..floor_char_boundary(s, room)]);
            self.cut = true;
            Err(fmt::Error)
        }
    }
    let mut out = Bounded {
        kept: into,
        max,
        cut: false,
    };
    let _ = fmt::write(&mut out, format_args!("{message}"));
    out.cut
}

/// `message` written out, cut to [`Failure::MAX_MESSAGE`] bytes.
pub(crate) fn bounded_message(message: &dyn fmt::Display) -> String {
    let mut kept = String::new();
    // A `Display` that fails (or is cut) leaves what it wrote. One that panics too: the
    // application's call returned, and its error must not become a panic because of us.
    let written = catch_unwind(AssertUnwindSafe(|| {
        write_bounded(message, Failure::MAX_MESSAGE, &mut kept)
    }));
    match written {
        Err(_) => {
            const NOTE: &str = "(its Display panicked)";
            let end = floor_char_boundary(&kept, Failure::MAX_MESSAGE - NOTE.len() - 1);
            kept.truncate(end);
            if !kept.is_empty() {
                kept.push(' ');
            }
            kept.push_str(NOTE);
        }
        Ok(true) => {
            let end = floor_char_boundary(&kept, Failure::MAX_MESSAGE - '…'.len_utf8());
            kept.truncate(end);
            kept.push('…');
        }
        Ok(false) => {}
    }
    kept
}

/// The largest character boundary of `s` at most `at`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// One recorded call, request or query.
#[derive(Debug, Clone)]
pub struct Event {
    /// The call site: its kind, name and labels.
    pub site: &'static Site,
    /// Start time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Duration in nanoseconds.
    pub dur_ns: u64,
    /// The call failed: it returned `Err(_)`, panicked, or its adapter says so.
    pub error: bool,
    /// How the call ended.
    pub outcome: Outcome,
    /// Trace the call belongs to.
    pub trace_id: TraceId,
    /// The call's own span.
    pub span_id: SpanId,
    /// The span of the profiled call (or request) it ran inside, if any.
    pub parent_span_id: Option<SpanId>,
    /// The adapter's part, if it gave one (function calls have none).
    pub detail: Option<Arc<dyn Detail>>,
    /// Why it failed, if it did and that was captured (see [`Failure`]).
    pub failure: Option<Arc<Failure>>,
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> &'static Kind {
        self.site.kind()
    }

    /// The site's name: the `fn` key of a function's events.
    pub fn name(&self) -> &'static str {
        self.site.name()
    }

    /// The adapter's part of the event as its own type, if it is a `T`.
    pub fn detail<T: Detail>(&self) -> Option<&T> {
        let detail: &dyn Any = self.detail.as_deref()?;
        detail.downcast_ref()
    }

    /// The value of the event field `key` (one of its kind's [`Kind::event_fields`]): from
    /// its [`Detail`], else from its site's labels; `None` when it has none (`null` in JSON).
    pub fn field(&self, key: &str) -> Option<Value<'_>> {
        self.detail
            .as_ref()
            .and_then(|d| d.field(key))
            .or_else(|| self.site.label_value(key).map(Value::Str))
    }
}

/// An event as the hot path queues it: raw clock ticks, converted on the collector thread.
#[derive(Clone)]
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
    /// `None` for function calls, so that they never allocate.
    pub(crate) detail: Option<Arc<dyn Detail>>,
    /// Only on the error path, and only when an output wants it.
    pub(crate) failure: Option<Arc<Failure>>,
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
            detail: self.detail,
            failure: self.failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::DB;

    /// Writes its message in two pieces of `.0` and `.1` bytes.
    struct TwoPieces(usize, usize);

    impl fmt::Display for TwoPieces {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&"a".repeat(self.0))?;
            f.write_str(&"é".repeat(self.1))
        }
    }

    /// Ignores the errors of its writes, as `let _ = write!(..)` does.
    struct IgnoresErrors;

    impl fmt::Display for IgnoresErrors {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let _ = f.write_str(&"a".repeat(511));
            let _ = f.write_str("bb");
            f.write_str("c")
        }
    }

    #[test]
    fn a_message_in_pieces_is_cut_to_the_bound_and_never_panics() {
        for first in 505..=513 {
            for second in 0..=4 {
                let kept = bounded_message(&TwoPieces(first, second));
                let whole = first + 2 * second;
                if whole <= Failure::MAX_MESSAGE {
                    assert_eq!(kept.len(), whole, "{first}+{second}");
                } else {
                    assert!(
                        kept.len() <= Failure::MAX_MESSAGE,
                        "{first}+{second}: {}",
                        kept.len()
                    );
                    assert!(kept.ends_with('…'), "{first}+{second}");
                }
            }
        }
        let kept = bounded_message(&IgnoresErrors);
        assert!(
            kept.len() <= Failure::MAX_MESSAGE && kept.ends_with('…'),
            "{}",
            kept.len()
        );
        assert!(!kept.contains('b') && !kept.contains('c'));
    }

    #[test]
    fn messages_are_cut_at_a_character_boundary() {
        let long = "é".repeat(600);
        let cut = bounded_message(&long);
        assert!(cut.len() <= Failure::MAX_MESSAGE, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
        assert_eq!(bounded_message(&"short"), "short");
        let f = Failure::new("io::Error", Some(&"disk full"));
        assert_eq!(f.exception_type.as_deref(), Some("io::Error"));
        assert_eq!(f.exception_value.as_deref(), Some("disk full"));
    }

    #[derive(Debug)]
    struct Query(&'static str);

    impl Detail for Query {
        fn field(&self, key: &str) -> Option<Value<'_>> {
            (key == "query").then_some(Value::Str(self.0))
        }
    }

    #[test]
    fn fields_come_from_the_detail_then_the_site_labels() {
        static LOAD: Site = Site::db_function("app::load", "postgres", None);
        let mut event = Event {
            site: &LOAD,
            ts_ns: 0,
            dur_ns: 0,
            error: false,
            outcome: Outcome::Returned,
            trace_id: TraceId(1),
            span_id: SpanId(1),
            parent_span_id: None,
            detail: None,
            failure: None,
        };
        assert_eq!(event.kind(), &DB);
        assert_eq!(event.field("db_vendor"), Some(Value::Str("postgres")));
        assert_eq!(event.field("query"), None);
        assert!(event.detail::<Query>().is_none());
        event.detail = Some(Arc::new(Query("SELECT ?")));
        assert_eq!(event.field("query"), Some(Value::Str("SELECT ?")));
        assert_eq!(event.detail::<Query>().map(|q| q.0), Some("SELECT ?"));
    }
}

//! A request being profiled, and how it ends: its span and timer ([`Request`]), the ways it can
//! end ([`End`]) and what each makes of its status, error flag and outcome; and the call that
//! the tower and actix adapters keep in a `RecordOnce` until the request is recorded.

use std::sync::Arc;

use profilis_core::adapter::{Abandon, InFlight, RecordOnce, Timer};
use profilis_core::context::{self, SpanContext};
use profilis_core::Outcome;

use super::detail::HttpDetail;
use super::rules::{HttpRules, Sampling};
use super::site::site;

/// The `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "<unmatched>";

/// The status recorded for a request whose client went away before there was a response
/// (nginx's "client closed request"); such requests are marked [`End::Cancelled`].
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// How a request ended, as far as the adapter could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The response body was sent completely.
    Complete,
    /// The handler panicked (recorded as status 500).
    Panicked,
    /// The response body failed while being sent.
    BodyFailed,
    /// The client went away (the request or its body was dropped) before the end.
    Cancelled,
}

impl End {
    /// The status recorded for a request that ended so with `status`.
    fn status(self, status: u16) -> u16 {
        if self == End::Panicked {
            500
        } else {
            status
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            End::Complete | End::BodyFailed => Outcome::Returned,
            End::Panicked => Outcome::Panicked,
            End::Cancelled => Outcome::Cancelled,
        }
    }

    /// Server errors, and every request that did not end completely, are failed requests.
    fn is_error(self, status: u16) -> bool {
        status >= 500 || self != End::Complete
    }
}

/// A request being profiled: a span (make it current while the handler runs, with
/// [`profilis_core::context::Scoped`] or [`profilis_core::context::enter`]) and a timer.
/// Counted as in flight until it is finished or dropped. Dropped unfinished, it is not
/// recorded: to record a request whatever way it ends, keep it in a type that implements
/// [`Abandon`] by finishing it, in a [`RecordOnce`].
#[derive(Debug)]
#[must_use = "a request is recorded when finished"]
pub struct Request {
    timer: Timer,
    _in_flight: InFlight,
}

impl Request {
    pub(super) fn new(timer: Timer, in_flight: InFlight) -> Request {
        Request {
            timer,
            _in_flight: in_flight,
        }
    }

    /// The request's span: profiled calls made under it become its children.
    pub fn context(&self) -> SpanContext {
        self.timer.context()
    }

    /// Records the request once, deciding by `rules` now whether its duration is recorded:
    /// `route` is its template (`None`: it matched no route), `status` the response status
    /// (500 for a panic). Failed bodies, panics and cancellations are marked as errors in the
    /// event.
    pub fn finish(
        self,
        rules: &HttpRules,
        method: &str,
        route: Option<&str>,
        status: u16,
        end: End,
    ) {
        let sampling = rules.sampling(route);
        self.finish_sampled(sampling, method, route, status, end);
    }

    /// As [`Request::finish`], with the sampling decision made earlier by
    /// [`HttpRules::sampling`] for the same `route`.
    pub fn finish_sampled(
        self,
        sampling: Sampling,
        method: &str,
        route: Option<&str>,
        status: u16,
        end: End,
    ) {
        record(self.timer, sampling, method, route, status, end);
    }
}

impl HttpRules {
    /// Records a request measured elsewhere (the counterpart of Python profilis's
    /// `emit_req`): it took `duration` and ended now with `status`, on `route` (its template;
    /// `None`: it matched no route). Recorded exactly as a request an adapter timed: these
    /// rules' sampling, exclusions (matched against the route) and method label, the same
    /// counters, histograms and events, a child of this thread's current span. Not counted
    /// as in flight. Does nothing when profiling is off or no collector runs.
    pub fn record_measured(
        &self,
        method: &str,
        route: Option<&str>,
        status: u16,
        duration: std::time::Duration,
    ) {
        if self.excludes(route.unwrap_or(UNMATCHED_ROUTE)) {
            return;
        }
        let Some(timer) = Timer::measured(None, duration) else {
            return;
        };
        record(
            timer,
            self.sampling(route),
            method,
            route,
            status,
            End::Complete,
        );
    }
}

/// Records a request that ended so: the one place that turns an end into the status, error
/// flag, outcome and site it is recorded with.
fn record(
    timer: Timer,
    sampling: Sampling,
    method: &str,
    route: Option<&str>,
    status: u16,
    end: End,
) {
    let route = route.unwrap_or(UNMATCHED_ROUTE);
    let status = end.status(status);
    let site = site(route, status, sampling.method_label().then_some(method));
    timer.finish(
        site,
        sampling.timed(status, end),
        end.is_error(status),
        end.outcome(),
        || HttpDetail {
            method: Arc::from(super::method_text(method)),
            route: site.label(),
            status,
        },
    );
}

/// A request an adapter is recording, with what its end needs: kept in a [`RecordOnce`] from
/// the moment the request starts, so it is recorded once, by the adapter when it sees the end,
/// else by the guard as [`End::Panicked`] or [`End::Cancelled`] (or what the adapter set with
/// [`Recording::if_panicked`] and [`Recording::if_cancelled`] for the stage it is in).
/// `M` is the framework's method type, `R` its route template's.
///
/// It holds the parts of a [`Request`] rather than the request: axum moves it with every
/// response, and a `Request`'s padding would make it an alignment unit larger.
// Shared by tower and actix: with one of them, or neither, part of it is unused.
#[cfg_attr(not(all(feature = "tower", feature = "actix")), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Recording<M, R> {
    timer: Timer,
    _in_flight: InFlight,
    sampling: Sampling,
    method: M,
    route: Option<R>,
    /// The response status once there is a response; [`CLIENT_CLOSED_REQUEST`] before.
    status: u16,
    if_panicked: End,
    if_cancelled: End,
}

#[cfg_attr(not(all(feature = "tower", feature = "actix")), allow(dead_code))]
impl<M: AsRef<str>, R: AsRef<str>> Recording<M, R> {
    pub(crate) fn new(
        request: Request,
        sampling: Sampling,
        method: M,
        route: Option<R>,
    ) -> RecordOnce<Recording<M, R>> {
        RecordOnce::new(Recording {
            timer: request.timer,
            _in_flight: request._in_flight,
            sampling,
            method,
            route,
            status: CLIENT_CLOSED_REQUEST,
            if_panicked: End::Panicked,
            if_cancelled: End::Cancelled,
        })
    }

    pub(crate) fn method(&self) -> &M {
        &self.method
    }

    /// The route template the request is recorded under, so far (`None`: no route).
    pub(crate) fn route(&self) -> Option<&R> {
        self.route.as_ref()
    }

    /// There is a response, with `status`.
    pub(crate) fn respond(&mut self, status: u16) {
        self.status = status;
    }

    /// The request turned out to be of another route (its path was rewritten inside).
    pub(crate) fn reroute(&mut self, route: Option<R>, sampling: Sampling) {
        self.route = route;
        self.sampling = sampling;
    }

    /// How the request ends if the work running for it panics from now on.
    pub(crate) fn if_panicked(&mut self, end: End) {
        self.if_panicked = end;
    }

    /// How the request ends if it is dropped between two pieces of work from now on.
    pub(crate) fn if_cancelled(&mut self, end: End) {
        self.if_cancelled = end;
    }

    /// Records the request as ended so, with its status.
    pub(crate) fn finish(self, end: End) {
        let route = self.route.as_ref().map(AsRef::as_ref);
        record(
            self.timer,
            self.sampling,
            self.method.as_ref(),
            route,
            self.status,
            end,
        );
    }
}

impl<M: AsRef<str>, R: AsRef<str>> Abandon for Recording<M, R> {
    fn abandon(self, outcome: Outcome) {
        let end = if outcome == Outcome::Panicked {
            self.if_panicked
        } else {
            self.if_cancelled
        };
        self.finish(end);
    }
}

/// Runs `work` (a call of the inner service, a poll of its future or body) as part of the
/// request `recording` holds: under the request's span, and so that a panic in it is
/// recorded. Without a request (not profiled), it just runs `work`.
#[cfg_attr(not(all(feature = "tower", feature = "actix")), allow(dead_code))]
#[inline]
pub(crate) fn in_span<M, R, T>(
    recording: &mut RecordOnce<Recording<M, R>>,
    work: impl FnOnce() -> T,
) -> T
where
    M: AsRef<str>,
    R: AsRef<str>,
{
    match recording.get().map(|r| r.timer.context()) {
        Some(span) => {
            let _in_span = context::enter(span);
            recording.run(work)
        }
        None => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpConfig;
    use profilis_core::testing::capture;
    use profilis_core::Event;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    fn detail(event: &Event) -> &HttpDetail {
        event.detail::<HttpDetail>().expect("an HTTP detail")
    }

    fn recording(route: &'static str) -> RecordOnce<Recording<&'static str, &'static str>> {
        let rules = HttpConfig::new().build();
        let request = rules.start(route, None).expect("a collector runs");
        Recording::new(request, rules.sampling(Some(route)), "GET", Some(route))
    }

    #[test]
    fn an_abandoned_request_ends_as_its_stage_says() {
        let ((), captured) = capture(|| {
            // Dropped before a response: the client went away.
            drop(recording("/t/before-response"));
            // Dropped after the response, between body polls.
            let mut body = recording("/t/in-body");
            body.get_mut().unwrap().respond(200);
            drop(body);
            // A panic while the handler runs, caught by a framework that drops it later.
            let mut handler = recording("/t/handler-panic");
            let caught = catch_unwind(AssertUnwindSafe(|| {
                in_span(&mut handler, || panic!("handler panics on purpose"))
            }));
            assert!(caught.is_err());
            drop(handler);
            // A body that panics, where the adapter counts that as a failed body.
            let mut failed = recording("/t/body-panic");
            let call = failed.get_mut().unwrap();
            call.respond(201);
            call.if_panicked(End::BodyFailed);
            let caught = catch_unwind(AssertUnwindSafe(|| {
                in_span(&mut failed, || panic!("body panics on purpose"))
            }));
            assert!(caught.is_err());
            drop(failed);
            // Dropped by a panic elsewhere (a sibling future's) unwinding past it: the client's
            // request was cancelled, not a handler panic.
            let sibling = recording("/t/sibling-panic");
            let caught = catch_unwind(AssertUnwindSafe(move || {
                let _sibling = sibling;
                panic!("a sibling panics on purpose");
            }));
            assert!(caught.is_err());
            // Completed: recorded by the adapter, not again by the guard.
            let mut done = recording("/t/done");
            let call = done.take().unwrap();
            drop(done);
            let mut call = call;
            call.respond(204);
            call.finish(End::Complete);
        });
        let ended = |route: &str| {
            let event = captured.one(route);
            (detail(event).status, event.error, event.outcome)
        };
        assert_eq!(
            ended("/t/before-response"),
            (CLIENT_CLOSED_REQUEST, true, Outcome::Cancelled)
        );
        assert_eq!(ended("/t/in-body"), (200, true, Outcome::Cancelled));
        assert_eq!(ended("/t/handler-panic"), (500, true, Outcome::Panicked));
        assert_eq!(
            ended("/t/sibling-panic"),
            (CLIENT_CLOSED_REQUEST, true, Outcome::Cancelled)
        );
        assert_eq!(ended("/t/body-panic"), (201, true, Outcome::Returned));
        assert_eq!(ended("/t/done"), (204, false, Outcome::Returned));
        assert_eq!(captured.count("/t/done"), (1, 0));
        assert_eq!(captured.count("/t/handler-panic"), (1, 1));
    }

    #[test]
    fn the_work_runs_under_the_request_span() {
        let (spans, _) = capture(|| {
            let mut call = recording("/t/span");
            let own = call.get().unwrap().timer.context();
            let inside = in_span(&mut call, context::current);
            (own, inside, context::current())
        });
        let (own, inside, after) = spans;
        assert_eq!(inside, Some(own));
        assert_ne!(after, Some(own), "the span ends with the work");
    }

    #[test]
    fn ends_map_to_status_error_and_outcome_once() {
        assert_eq!(End::Panicked.status(200), 500);
        assert_eq!(End::Cancelled.status(CLIENT_CLOSED_REQUEST), 499);
        assert!(!End::Complete.is_error(404));
        assert!(End::Complete.is_error(503));
        assert!(End::BodyFailed.is_error(200));
        assert_eq!(End::BodyFailed.outcome(), Outcome::Returned);
        assert_eq!(End::Cancelled.outcome(), Outcome::Cancelled);
    }
}

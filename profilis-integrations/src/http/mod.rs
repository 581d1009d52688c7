//! The rules every HTTP adapter follows, in one place: which requests are left alone, which
//! label a route gets, which requests have their duration recorded, and how a request becomes
//! a span and a recorded call.
//!
//! - **Route labels** are route templates (`/users/{id}`), never raw paths: a request that
//!   matches no route is labelled [`UNMATCHED_ROUTE`], so no client can create new series.
//! - **Exclusions** ([`HttpConfig::exclude_routes`]) are path prefixes, or regular expressions
//!   after `re:` (as in Python profilis), matched against the request path (the actix
//!   middleware: the path as actix decodes it, and the route pattern that served the request
//!   too). Excluded requests are not timed or counted at all.
//! - **Sampling**: requests are always counted exactly (`profilis_http_requests_total`); their
//!   duration is recorded at the first matching per-route rate, else the configured rate, else
//!   the global rate. With `always_sample_errors` (the default), responses with status >= 500
//!   and panics are always timed. The random source is seedable for tests.
//! - **Trace context**: a request is a span; a valid W3C `traceparent` header sets its trace id
//!   and parent. Profiled calls made while handling it become its children.
//! - **How a request ends** ([`End`]): the status recorded for panics (500) and for requests
//!   abandoned before a response ([`CLIENT_CLOSED_REQUEST`]), and which ends are errors.
//!
//! An adapter for another framework starts a [`Request`] with [`HttpRules::start`] and ends it
//! with [`Request::finish`]; its events carry an [`HttpDetail`].

#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub mod client;
mod config;
mod detail;
mod request;
mod rules;
mod site;

pub use config::{HttpConfig, HttpConfigError};
pub use detail::HttpDetail;
pub use request::{End, Request, CLIENT_CLOSED_REQUEST, UNMATCHED_ROUTE};
pub use rules::{HttpRules, Sampling};

#[cfg(feature = "grpc")]
pub(crate) use config::Pattern;
#[cfg(feature = "grpc")]
pub(crate) use rules::draw;
pub use site::site;

#[cfg(any(feature = "tower", feature = "actix"))]
pub(crate) use request::{in_span, Recording};

/// The `method` label of a request, the one rule of every HTTP adapter, server or client:
/// the standard methods by name, any other (an extension method such as `PROPFIND`, or
/// whatever a client sends) as `OTHER`, so that no client can add series by inventing methods.
pub(crate) fn method_label(method: &str) -> &'static str {
    const METHODS: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

/// What a poll of a response body says of its end: `None` while it goes on, `Some(false)` when
/// it has ended (no more frames, or `at_end` says the last one was just read), `Some(true)`
/// when it failed. The one rule of every adapter that records a request when its body ends.
#[cfg(any(
    feature = "tower",
    feature = "tower-client",
    feature = "reqwest",
    feature = "grpc"
))]
pub(crate) fn body_end<D, E>(
    polled: &std::task::Poll<Option<Result<http_body::Frame<D>, E>>>,
    at_end: impl FnOnce() -> bool,
) -> Option<bool> {
    use std::task::Poll;
    match polled {
        Poll::Pending => None,
        Poll::Ready(None) => Some(false),
        Poll::Ready(Some(Ok(_))) => at_end().then_some(false),
        Poll::Ready(Some(Err(_))) => Some(true),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn methods_are_labelled_from_a_fixed_set() {
        assert_eq!(super::method_label("GET"), "GET");
        assert_eq!(super::method_label("PATCH"), "PATCH");
        assert_eq!(super::method_label("BREW"), "OTHER");
        assert_eq!(super::method_label("get"), "OTHER");
    }
}

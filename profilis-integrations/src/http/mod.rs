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
//! - **Methods** in events are kept as sent, cut to [`MAX_METHOD_LEN`] bytes; the opt-in
//!   `method` label is a standard method or `OTHER`.
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

/// The standard methods, by name.
const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// The `method` label of a request, the one rule of every HTTP adapter, server or client:
/// the standard methods by name, any other (an extension method such as `PROPFIND`, or
/// whatever a client sends) as `OTHER`, so that no client can add series by inventing methods.
pub(crate) fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

/// The longest method an HTTP event keeps ([`HttpDetail::method`]), in bytes.
pub const MAX_METHOD_LEN: usize = 32;

/// The method an HTTP event keeps, the one rule of every server adapter (client events keep
/// [`method_label`]): a standard one as it is, any other cut to its first
/// [`MAX_METHOD_LEN`] bytes (at a character boundary), so a client sending a method of
/// hundreds of kilobytes (which HTTP servers accept) does not have it copied into every event,
/// JSONL line and console line.
pub(crate) fn method_text(method: &str) -> &str {
    if method.len() <= MAX_METHOD_LEN {
        return method;
    }
    let mut end = MAX_METHOD_LEN;
    while !method.is_char_boundary(end) {
        end -= 1;
    }
    &method[..end]
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

    #[test]
    fn events_keep_a_method_of_at_most_max_method_len_bytes() {
        use super::{method_text, MAX_METHOD_LEN};
        assert_eq!(method_text("OPTIONS"), "OPTIONS");
        assert_eq!(method_text("PROPFIND"), "PROPFIND");
        let exact = "M".repeat(MAX_METHOD_LEN);
        assert_eq!(method_text(&exact), exact);
        assert_eq!(method_text(&"M".repeat(390_000)), exact);
        // Cut at a character boundary: 31 bytes, then a 2-byte character across the bound.
        let wide = format!("{}é{}", "M".repeat(MAX_METHOD_LEN - 1), "M".repeat(10));
        assert_eq!(method_text(&wide), "M".repeat(MAX_METHOD_LEN - 1));
    }
}

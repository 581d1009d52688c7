//! Outgoing request profiling for reqwest 0.13 clients, as a `reqwest-middleware` 0.5
//! middleware: [`ProfilisMiddleware`] records every request the client sends as an
//! `HTTP_CLIENT` call and adds the `traceparent` header that names it (see
//! [the module above](super) for what is recorded).
//!
//! ```
//! use profilis::http::client::reqwest::ProfilisMiddleware;
//! use profilis::http::client::ClientConfig;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(ProfilisMiddleware::new(ClientConfig::new().build()))
//!     .build();
//! # let _ = client;
//! ```
//!
//! The request is recorded when its response body has been read to the end (`text()`,
//! `bytes()`, `json()`, or a stream of chunks), failed, or was dropped; the `Response` the
//! middleware returns reads the same body, through a wrapper. A failure without a response is
//! read from reqwest's error (`is_timeout`, `is_connect`), else from its sources
//! ([`ClientFailure::of`]).

use ::http::Extensions;
use http_body::Body;
use profilis_core::adapter::RecordOnce;
use reqwest::{Request, Response, ResponseBuilderExt};
use reqwest_middleware::{Middleware, Next, Result};

use super::body::ProfiledBody;
use super::{ClientEnd, ClientFailure, ClientRules, Outgoing};

/// A `reqwest-middleware` middleware that profiles every request of the client it is added
/// to. Put it first (`ClientBuilder::with`), so that a retry middleware after it has each of
/// its attempts inside the one request it records.
#[derive(Debug, Clone, Default)]
pub struct ProfilisMiddleware {
    rules: ClientRules,
}

impl ProfilisMiddleware {
    /// Profiles requests by `rules`.
    pub fn new(rules: ClientRules) -> ProfilisMiddleware {
        ProfilisMiddleware { rules }
    }
}

#[async_trait::async_trait]
impl Middleware for ProfilisMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let outgoing = self
            .rules
            .start(request.method().as_str(), request.url().host_str());
        let Some(outgoing) = outgoing else {
            return next.run(request, extensions).await;
        };
        super::add_traceparent(outgoing.begun.sent_context(), request.headers_mut());
        // Kept in a `RecordOnce` while the request runs: dropped (the caller gave up), it is
        // recorded as cancelled; a panic below, as panicked.
        let mut call = RecordOnce::new(outgoing);
        let result = next.run(request, extensions).await;
        let Some(mut outgoing) = call.take() else {
            return result;
        };
        match result {
            Ok(response) => {
                outgoing.respond(response.status().as_u16());
                Ok(watch_body(response, outgoing))
            }
            Err(error) => {
                outgoing.finish(ClientEnd::Failed(failure_of(&error)), Some(&error));
                Err(error)
            }
        }
    }
}

/// How a reqwest request failed without a response.
fn failure_of(error: &reqwest_middleware::Error) -> ClientFailure {
    match error {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => ClientFailure::Timeout,
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => ClientFailure::Connect,
        reqwest_middleware::Error::Reqwest(e) => ClientFailure::of(e),
        reqwest_middleware::Error::Middleware(e) => ClientFailure::of(e.as_ref()),
    }
}

/// `response`, reading its body through a [`ProfiledBody`] that records `outgoing` at its end
/// (or `outgoing` recorded now, for a response without a body).
fn watch_body(response: Response, outgoing: Outgoing) -> Response {
    let url = response.url().clone();
    let (mut parts, body) = ::http::Response::<reqwest::Body>::from(response).into_parts();
    // The conversion drops the response's URL; an empty response made with it carries it
    // back in its extensions.
    if let Ok(carrier) = ::http::Response::builder().url(url).body(()) {
        parts.extensions.extend(carrier.into_parts().0.extensions);
    }
    let body = if body.is_end_stream() {
        outgoing.finish(ClientEnd::Complete, None);
        body
    } else {
        reqwest::Body::wrap(ProfiledBody::new(body, Some(outgoing)))
    };
    Response::from(::http::Response::from_parts(parts, body))
}

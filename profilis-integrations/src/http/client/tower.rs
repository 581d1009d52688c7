//! Outgoing request profiling for tower clients (hyper-util's `Client`, or any
//! `Service<http::Request<B>, Response = http::Response<R>>`): [`ClientLayer`] records every
//! request the client sends as an `HTTP_CLIENT` call and adds the `traceparent` header that
//! names it (see [the module above](super) for what is recorded).
//!
//! ```
//! use profilis::http::client::tower::ClientLayer;
//! use profilis::http::client::ClientConfig;
//! use tower_layer::Layer;
//!
//! # fn main() -> Result<(), profilis::http::HttpConfigError> {
//! # #[derive(Clone)] struct HyperClient;
//! # let hyper_client = HyperClient;
//! let rules = ClientConfig::new().peer("payments")?.build();
//! // `hyper_client`: a `hyper_util::client::legacy::Client`, say.
//! let client = ClientLayer::new(rules).layer(hyper_client);
//! # let _ = client;
//! # Ok(()) }
//! ```
//!
//! The profiled client's errors are boxed (`Box<dyn Error + Send + Sync>`, tower's
//! `BoxError`), as those of tower's own timeout and retry layers are, so the layer goes
//! anywhere in a `ServiceBuilder` stack. Put it outside a timeout layer to record timeouts as
//! `status="timeout"`. How a request failed without a response is read from the error
//! ([`ClientFailure::of`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Body;
use profilis_core::adapter::RecordOnce;
use tower_layer::Layer;
use tower_service::Service;

pub use super::body::ProfiledBody;
use super::{add_traceparent, ClientEnd, ClientFailure, ClientRules, Outgoing};

pub use super::BoxError;

/// A tower [`Layer`] that profiles every request of the client it wraps.
#[derive(Debug, Clone, Default)]
pub struct ClientLayer {
    rules: ClientRules,
}

impl ClientLayer {
    /// Profiles requests by `rules`.
    pub fn new(rules: ClientRules) -> ClientLayer {
        ClientLayer { rules }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ProfiledClient<S>;

    fn layer(&self, inner: S) -> ProfiledClient<S> {
        ProfiledClient {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// The client [`ClientLayer`] makes: the inner client, profiled.
#[derive(Debug, Clone)]
pub struct ProfiledClient<S> {
    inner: S,
    rules: ClientRules,
}

impl<S, ReqBody, ResBody> Service<::http::Request<ReqBody>> for ProfiledClient<S>
where
    S: Service<::http::Request<ReqBody>, Response = ::http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body,
{
    type Response = ::http::Response<ProfiledBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: ::http::Request<ReqBody>) -> Self::Future {
        let outgoing = self
            .rules
            .start(request.method().as_str(), request.uri().host());
        if let Some(outgoing) = &outgoing {
            add_traceparent(outgoing.begun.sent_context(), request.headers_mut());
        }
        let mut call = RecordOnce::maybe(outgoing);
        // A client that panics in `call` has its request recorded as panicked.
        let inner = call.run(|| self.inner.call(request));
        ResponseFuture { inner, call }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ProfiledClient`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Empty when the request is not profiled (excluded, or profiling off).
        call: RecordOnce<Outgoing>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<::http::Response<ResBody>, E>>,
    E: Into<BoxError>,
    ResBody: Body,
{
    type Output = Result<::http::Response<ProfiledBody<ResBody>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let Poll::Ready(result) = this.call.run(|| inner.poll(cx)) else {
            return Poll::Pending;
        };
        // Still in its guard: the body's `is_end_stream` is its own code, run as part of the
        // call so that a panic in it is recorded.
        let mut call = std::mem::replace(this.call, RecordOnce::maybe(None));
        Poll::Ready(match result {
            Ok(response) => {
                if let Some(call) = call.get_mut() {
                    call.respond(response.status().as_u16());
                }
                if call.get().is_some() && call.run(|| response.body().is_end_stream()) {
                    if let Some(call) = call.take() {
                        call.finish(ClientEnd::Complete, None);
                    }
                }
                Ok(response.map(|body| ProfiledBody::new(body, call.take())))
            }
            Err(error) => {
                let error: BoxError = error.into();
                if let Some(call) = call.take() {
                    let failure = ClientFailure::of(&*error);
                    call.finish(ClientEnd::Failed(failure), Some(&error));
                }
                Err(error)
            }
        })
    }
}

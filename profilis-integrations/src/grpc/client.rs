//! The client layer: [`GrpcClientLayer`] records every call a tonic client (or any tower gRPC
//! client) makes, and sends the trace context.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::http::header::{HeaderName, HeaderValue};
use http_body::Body;
use profilis_core::adapter::RecordOnce;
use profilis_core::Outcome;
use tower_layer::Layer;
use tower_service::Service;

use super::{format_grpc_trace_bin, watch, GrpcBody, GrpcCall, GrpcStatus};
use crate::http::client::{add_traceparent, BoxError, ClientFailure, ClientRules};

static GRPC_TRACE_BIN: HeaderName = HeaderName::from_static("grpc-trace-bin");

/// A tower [`Layer`] that profiles every gRPC call of the client it wraps, by the rules of
/// HTTP clients ([`ClientRules`]: the peer, its cap, per-peer sampling, propagation), and sends
/// `traceparent` naming the call. With tonic: wrap the `Channel`
/// (`ServiceBuilder::new().layer(GrpcClientLayer::new(rules)).service(channel)`) and hand the
/// result to the generated client's `new`. A tonic client sends only the path unless made
/// with an origin, so give the peer a name ([`ClientConfig::peer`]).
///
/// [`ClientConfig::peer`]: crate::http::client::ClientConfig::peer
#[derive(Debug, Clone, Default)]
pub struct GrpcClientLayer {
    rules: ClientRules,
    trace_bin: bool,
}

impl GrpcClientLayer {
    /// Profiles calls by `rules`, sending `traceparent`.
    pub fn new(rules: ClientRules) -> GrpcClientLayer {
        GrpcClientLayer {
            rules,
            trace_bin: false,
        }
    }

    /// Whether calls also carry `grpc-trace-bin` (OpenCensus's binary trace context, for
    /// servers that read only that; default off: a header that changes with every call costs
    /// each call's HTTP/2 header compression).
    #[must_use]
    pub fn with_grpc_trace_bin(mut self, on: bool) -> GrpcClientLayer {
        self.trace_bin = on;
        self
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> GrpcClientService<S> {
        GrpcClientService {
            inner,
            rules: self.rules.clone(),
            trace_bin: self.trace_bin,
        }
    }
}

/// The client [`GrpcClientLayer`] makes: the inner client, profiled. Its errors are boxed.
#[derive(Debug, Clone)]
pub struct GrpcClientService<S> {
    inner: S,
    rules: ClientRules,
    trace_bin: bool,
}

impl<S, ReqBody, ResBody> Service<::http::Request<ReqBody>> for GrpcClientService<S>
where
    S: Service<::http::Request<ReqBody>, Response = ::http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body,
{
    type Response = ::http::Response<GrpcBody<ResBody>>;
    type Error = BoxError;
    type Future = GrpcClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: ::http::Request<ReqBody>) -> Self::Future {
        let call = self.rules.begin(request.uri().host()).map(|begun| {
            let headers = request.headers_mut();
            let sent = add_traceparent(begun.sent_context(), headers);
            if let Some(value) = sent
                .filter(|_| self.trace_bin)
                .and_then(format_grpc_trace_bin)
                .and_then(|v| HeaderValue::from_str(&v).ok())
            {
                headers.insert(GRPC_TRACE_BIN.clone(), value);
            }
            GrpcCall::made(begun, request.uri().path())
        });
        let mut call = RecordOnce::maybe(call);
        let inner = call.run(|| self.inner.call(request));
        GrpcClientFuture { inner, call }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GrpcClientService`].
    #[must_use = "futures do nothing unless polled"]
    pub struct GrpcClientFuture<F> {
        #[pin]
        inner: F,
        call: RecordOnce<GrpcCall>,
    }
}

impl<F, ResBody, E> Future for GrpcClientFuture<F>
where
    F: Future<Output = Result<::http::Response<ResBody>, E>>,
    E: Into<BoxError>,
    ResBody: Body,
{
    type Output = Result<::http::Response<GrpcBody<ResBody>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let Poll::Ready(result) = this.call.run(|| inner.poll(cx)) else {
            return Poll::Pending;
        };
        // Still in its guard: `watch` runs the body's own code.
        let mut call = std::mem::replace(this.call, RecordOnce::maybe(None));
        Poll::Ready(match result {
            Ok(response) => Ok(watch(response, call)),
            Err(error) => {
                let error: BoxError = error.into();
                if let Some(call) = call.take() {
                    let failure = ClientFailure::of(&*error);
                    let status = match failure {
                        ClientFailure::Timeout => GrpcStatus::DEADLINE_EXCEEDED,
                        ClientFailure::Connect => GrpcStatus::UNAVAILABLE,
                        ClientFailure::Other => GrpcStatus::UNKNOWN,
                    };
                    call.finish(
                        Some(status),
                        false,
                        Outcome::Returned,
                        Some((failure, &error)),
                    );
                }
                Err(error)
            }
        })
    }
}

//! The server layer: [`GrpcLayer`] records every call a tonic server (or any tower gRPC
//! service) serves.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Body;
use profilis_core::adapter::RecordOnce;
use profilis_core::context;
use tower_layer::Layer;
use tower_service::Service;

use super::{watch, GrpcBody, GrpcCall, GrpcRules};

/// A tower [`Layer`] that profiles every gRPC call the service it wraps serves (see the
/// [module docs](super)). With tonic: `Server::builder().layer(GrpcLayer::new(rules))`.
#[derive(Debug, Clone, Default)]
pub struct GrpcLayer {
    rules: GrpcRules,
}

impl GrpcLayer {
    /// Profiles calls by `rules`.
    pub fn new(rules: GrpcRules) -> GrpcLayer {
        GrpcLayer { rules }
    }
}

impl<S> Layer<S> for GrpcLayer {
    type Service = GrpcService<S>;

    fn layer(&self, inner: S) -> GrpcService<S> {
        GrpcService {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// The service [`GrpcLayer`] makes: the inner service, profiled.
#[derive(Debug, Clone)]
pub struct GrpcService<S> {
    inner: S,
    rules: GrpcRules,
}

impl<S, ReqBody, ResBody> Service<::http::Request<ReqBody>> for GrpcService<S>
where
    S: Service<::http::Request<ReqBody>, Response = ::http::Response<ResBody>>,
    ResBody: Body,
{
    type Response = ::http::Response<GrpcBody<ResBody>>;
    type Error = S::Error;
    type Future = GrpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ::http::Request<ReqBody>) -> Self::Future {
        let call = self.rules.start(request.uri().path(), request.headers());
        let mut call = RecordOnce::maybe(call);
        // Services may do work in `call`: under the call's span, a panic recorded.
        let inner = in_span(&mut call, || self.inner.call(request));
        GrpcFuture { inner, call }
    }
}

/// Runs `work` under the span of the call `call` holds (if any), recording a panic in it.
fn in_span<T>(call: &mut RecordOnce<GrpcCall>, work: impl FnOnce() -> T) -> T {
    match call.get().map(|c| c.timer.context()) {
        Some(span) => {
            let _in_span = context::enter(span);
            call.run(work)
        }
        None => work(),
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GrpcService`]: the inner service's, polled under the call's
    /// span.
    #[must_use = "futures do nothing unless polled"]
    pub struct GrpcFuture<F> {
        #[pin]
        inner: F,
        call: RecordOnce<GrpcCall>,
    }
}

impl<F, ResBody, E> Future for GrpcFuture<F>
where
    F: Future<Output = Result<::http::Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<::http::Response<GrpcBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let Poll::Ready(result) = in_span(this.call, || inner.poll(cx)) else {
            return Poll::Pending;
        };
        // Still in its guard: `watch` runs the body's own code.
        let mut call = std::mem::replace(this.call, RecordOnce::maybe(None));
        Poll::Ready(match result {
            Ok(response) => Ok(watch(response, call)),
            Err(error) => {
                if let Some(call) = call.take() {
                    // No response at all: the server failed.
                    call.finish(
                        Some(super::GrpcStatus::UNKNOWN),
                        false,
                        profilis_core::Outcome::Returned,
                        None,
                    );
                }
                Err(error)
            }
        })
    }
}

//! An actix-web 4 middleware that profiles every request the application handles, following
//! the shared rules of [`crate::http`]: the route label is the full pattern of the resource the
//! path matches (`/api/users/{id}`, scopes included, from actix's resource map), unmatched
//! requests share one label, and the handler runs under the request's span.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use profilis_integrations::actix::Profilis;
//! use profilis_integrations::http::HttpConfig;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rules = HttpConfig::new().exclude_routes(&["/health"])?.build();
//! let server = HttpServer::new(move || {
//!     App::new()
//!         .wrap(Profilis::new(rules.clone()))
//!         .route("/users/{id}", web::get().to(|| async { "a user" }))
//! })
//! .bind(("127.0.0.1", 8080))?;
//! # let _ = server;
//! # Ok(())
//! # }
//! ```
//!
//! # Route labels
//!
//! The pattern is looked up in actix's resource map when the request comes in, so panics and
//! errors are labelled too, and again after the response if a service inside the middleware
//! (`NormalizePath`, say) rewrote the path. A path that matches no resource, including one
//! under an existing scope, gets [`UNMATCHED_ROUTE`](crate::http::UNMATCHED_ROUTE).
//!
//! # When a request ends
//!
//! The duration runs until the response body has been sent (its last chunk handed to actix),
//! not just until the handler returned, so a streaming response is timed in full. Each
//! request is recorded exactly once:
//!
//! - the body completes: [`End::Complete`] with the response status;
//! - the body fails: [`End::BodyFailed`], still with the response status;
//! - the body is dropped before its end (the client went away): [`End::Cancelled`], with the
//!   response status; empty bodies, which actix drops unread once the head is written, count
//!   as complete;
//! - the response future is dropped before the handler answered: [`End::Cancelled`] with
//!   status [`CLIENT_CLOSED_REQUEST`]. (actix's HTTP/1 dispatcher does not drop it when the
//!   client goes away: the handler finishes and the request is recorded with its response.)
//! - the handler panics: status 500 and [`End::Panicked`], and the panic goes on unchanged.
//!   actix-web does not turn panics into responses: the panic ends the connection's task, so
//!   the client sees the connection closed without a response, and the worker carries on;
//! - a service inside the middleware returns `Err` instead of a response: recorded at once with
//!   the error's status ([`ResponseError::status_code`](actix_web::ResponseError)), as actix
//!   makes the error's response itself.

use std::future::{ready, Future, Ready};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{Method, Uri};
use actix_web::web::Bytes;
use actix_web::Error;
use profilis_core::context;

pub use crate::http::CLIENT_CLOSED_REQUEST;
use crate::http::{End, HttpRules, Request};

/// The middleware factory: `App::new().wrap(Profilis::new(rules))`. Wrap the whole `App` (or a
/// scope) with it; the route label comes from the resource that handled the request.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Profilis {
    rules: HttpRules,
}

impl Profilis {
    /// A middleware following `rules` (build them with [`crate::http::HttpConfig`]).
    pub fn new(rules: HttpRules) -> Profilis {
        Profilis { rules }
    }
}

impl From<HttpRules> for Profilis {
    fn from(rules: HttpRules) -> Profilis {
        Profilis::new(rules)
    }
}

impl<S, B> Transform<S, ServiceRequest> for Profilis
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ProfiledBody<B>>;
    type Error = Error;
    type Transform = ProfilisMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<ProfilisMiddleware<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ProfilisMiddleware {
            service,
            rules: self.rules.clone(),
        }))
    }
}

/// The service [`Profilis`] wraps around the application.
#[derive(Debug)]
pub struct ProfilisMiddleware<S> {
    service: S,
    rules: HttpRules,
}

impl<S, B> Service<ServiceRequest> for ProfilisMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ProfiledBody<B>>;
    type Error = Error;
    type Future = ProfiledResponse<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let traceparent = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok());
        let Some(request) = self.rules.start(req.path(), traceparent) else {
            return ProfiledResponse {
                future: self.service.call(req),
                recording: None,
            };
        };
        let mut recording = Recording {
            rules: self.rules.clone(),
            method: req.method().clone(),
            request: Some(request),
            // Known before the call, so that panics and errors get their route too.
            route: req.match_pattern(),
            uri: req.uri().clone(),
            status: CLIENT_CLOSED_REQUEST,
            on_drop: End::Cancelled,
        };
        // Some services do their work in `call` itself: it runs under the request's span too.
        let called = {
            let _span = context::enter(recording.context());
            catch_unwind(AssertUnwindSafe(|| self.service.call(req)))
        };
        match called {
            Ok(future) => ProfiledResponse {
                future,
                recording: Some(recording),
            },
            Err(panic) => {
                recording.finish(End::Panicked);
                resume_unwind(panic)
            }
        }
    }
}

/// A request being profiled: finished exactly once, by whoever sees its end first (the
/// response future, the body, or the drop of either).
#[derive(Debug)]
struct Recording {
    rules: HttpRules,
    method: Method,
    /// `None` once finished.
    request: Option<Request>,
    route: Option<String>,
    /// The request's URI when it came in, to see whether a service inside rewrote its path.
    uri: Uri,
    status: u16,
    /// How the request ends if this is dropped unfinished.
    on_drop: End,
}

impl Recording {
    fn context(&self) -> profilis_core::SpanContext {
        self.request
            .as_ref()
            .map(Request::context)
            .unwrap_or_default()
    }

    fn finish(&mut self, end: End) {
        if let Some(request) = self.request.take() {
            request.finish(
                &self.rules,
                self.method.as_str(),
                self.route.as_deref(),
                self.status,
                end,
            );
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.finish(self.on_drop);
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ProfilisMiddleware`]: polls the application under the
    /// request's span and wraps the response body in a [`ProfiledBody`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ProfiledResponse<F> {
        #[pin]
        future: F,
        recording: Option<Recording>,
    }
}

impl<F, B> Future for ProfiledResponse<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<ProfiledBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(recording) = this.recording.as_mut() else {
            // Excluded, or profiling off: the application's response, untouched.
            return this
                .future
                .poll(cx)
                .map_ok(|res| res.map_body(|_, body| ProfiledBody::new(body, None)));
        };
        let polled = {
            let _span = context::enter(recording.context());
            catch_unwind(AssertUnwindSafe(|| this.future.poll(cx)))
        };
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result,
            Err(panic) => {
                recording.finish(End::Panicked);
                resume_unwind(panic)
            }
        };
        let mut recording = this.recording.take().expect("checked above");
        Poll::Ready(match result {
            Ok(res) => {
                recording.status = res.status().as_u16();
                if res.request().path() != recording.uri.path() {
                    // A service inside (`NormalizePath`, say) routed a rewritten path.
                    recording.route = res.request().match_pattern();
                }
                Ok(res.map_body(|_, body| {
                    // actix writes the head of an empty response and drops its body unread.
                    if matches!(body.size(), BodySize::None | BodySize::Sized(0)) {
                        recording.on_drop = End::Complete;
                    }
                    ProfiledBody::new(body, Some(recording))
                }))
            }
            Err(err) => {
                recording.status = err.as_response_error().status_code().as_u16();
                recording.finish(End::Complete);
                Err(err)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that finishes its request when it ends: completed, failed, or dropped
    /// before its end. Chunks are produced under the request's span.
    pub struct ProfiledBody<B> {
        #[pin]
        body: B,
        recording: Option<Recording>,
    }
}

impl<B> ProfiledBody<B> {
    fn new(body: B, recording: Option<Recording>) -> ProfiledBody<B> {
        ProfiledBody { body, recording }
    }
}

impl<B> std::fmt::Debug for ProfiledBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfiledBody")
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}

impl<B: MessageBody> MessageBody for ProfiledBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let Some(recording) = this.recording.as_mut() else {
            return this.body.poll_next(cx);
        };
        let polled = {
            let _span = context::enter(recording.context());
            catch_unwind(AssertUnwindSafe(|| this.body.poll_next(cx)))
        };
        let polled = match polled {
            Ok(polled) => polled,
            Err(panic) => {
                recording.finish(End::Panicked);
                resume_unwind(panic)
            }
        };
        match &polled {
            Poll::Ready(None) => recording.finish(End::Complete),
            Poll::Ready(Some(Err(_))) => recording.finish(End::BodyFailed),
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        polled
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        // Only untimed bodies may be turned into bytes: a timed one ends when it is sent.
        if self.recording.is_some() {
            return Err(self);
        }
        let ProfiledBody { body, recording } = self;
        body.try_into_bytes()
            .map_err(|body| ProfiledBody::new(body, recording))
    }
}

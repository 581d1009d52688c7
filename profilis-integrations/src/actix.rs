//! An actix-web 4 middleware that profiles every request the application handles, following
//! the shared rules of [`crate::http`]: the route label is the full pattern of the resource the
//! path matches (`/api/users/{id}`, scopes included, from actix's resource map), unmatched
//! requests share one label, and the handler runs under the request's span.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use profilis::http::actix::Profilis;
//! use profilis::http::HttpConfig;
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
//! The label is the pattern of the resource that served the request, read from the response
//! (`match_pattern` of its request), so it is what actix routed: the path percent-decoded as
//! actix decodes it (`/user%73/1` is `/users/{id}`), resource guards tried (a guarded
//! `/items/{id}` that refused the request does not label the `/items/special` that served it),
//! after any rewrite by a service inside the middleware (`NormalizePath`, say). A path that
//! matches no resource, including one under an existing scope, gets
//! [`UNMATCHED_ROUTE`](crate::http::UNMATCHED_ROUTE). (When no resource served it, actix
//! reads the pattern from its resource map by the raw path: a request that a guarded
//! resource refused and the default service answered is labelled with that resource's
//! pattern, a template all the same.) A handler that panics leaves no response: its request
//! is labelled by the pattern its decoded path matches in the resource map, guards not tried.
//!
//! Exclusions ([`HttpConfig::exclude_routes`](crate::http::HttpConfig::exclude_routes)) are
//! matched against the decoded path when the request comes in (an excluded one is not timed
//! at all), and against the route pattern once the response says it: `/metric%73`, served by
//! `/metrics`, is excluded by `/metrics` as `/metrics` is.
//!
//! # When a request ends
//!
//! The duration runs until the response body has been sent (its last chunk handed to actix),
//! not just until the handler returned, so a streaming response is timed in full. A
//! `101 Switching Protocols` response is no exception: actix streams the upgraded connection
//! (a WebSocket of actix-ws or actix-web-actors) as its body, so its request, status 101, is
//! recorded when that stream ends, and its duration is the whole connection's (the tower
//! layer records a 101 at its head instead). Each request is recorded exactly once:
//!
//! - the body completes: [`End::Complete`] with the response status;
//! - the body fails: [`End::BodyFailed`], still with the response status;
//! - the body is dropped before its end (the client went away): [`End::Cancelled`], with the
//!   response status; empty bodies, which actix drops unread once the head is written, count
//!   as complete;
//! - the response future is dropped before the handler answered: [`End::Cancelled`] with
//!   status [`CLIENT_CLOSED_REQUEST`](crate::http::CLIENT_CLOSED_REQUEST). (actix's HTTP/1
//!   dispatcher does not drop it when the client goes away: the handler finishes and the
//!   request is recorded with its response.)
//! - the handler or the body panics: status 500 and [`End::Panicked`], and the panic goes on
//!   unchanged. actix-web does not turn panics into responses: the panic ends the connection's
//!   task, so the client sees the connection closed without a response, and the worker
//!   carries on. The request is recorded when that task drops it;
//! - a service inside the middleware returns `Err` instead of a response: recorded at once with
//!   the error's status ([`ResponseError::status_code`](actix_web::ResponseError)), as actix
//!   makes the error's response itself.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::Method;
use actix_web::web::Bytes;
use actix_web::Error;
use profilis_core::adapter::RecordOnce;

use crate::http::{in_span, End, HttpRules};

/// A request being profiled, until it is recorded.
type Recording = crate::http::Recording<Method, String>;

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
        // The path as actix routes it: percent-encoded characters that need none decoded
        // (`/metric%73` is `/metrics`).
        let path = req.match_info().as_str();
        let Some(request) = self.rules.start(path, traceparent) else {
            return ProfiledResponse {
                future: self.service.call(req),
                recording: RecordOnce::maybe(None),
                rules: None,
            };
        };
        // Until the response says which resource served the request: the pattern its path
        // matches in the resource map (guards not tried), so that a panic, which leaves no
        // response, gets a route too.
        let route = req.resource_map().match_pattern(path);
        let sampling = self.rules.sampling(route.as_deref());
        let mut recording = Recording::new(request, sampling, req.method().clone(), route);
        // Some services do their work in `call` itself: it runs under the request's span too.
        let future = in_span(&mut recording, || self.service.call(req));
        ProfiledResponse {
            future,
            recording,
            rules: Some(self.rules.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ProfilisMiddleware`]: polls the application under the
    /// request's span and wraps the response body in a [`ProfiledBody`].
    #[must_use = "futures do nothing unless polled"]
    pub struct ProfiledResponse<F> {
        #[pin]
        future: F,
        // Empty when the request is not profiled (excluded, or profiling off).
        recording: RecordOnce<Recording>,
        // The rules, to label the request by the resource that served it.
        rules: Option<HttpRules>,
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
        let future = this.future;
        let Poll::Ready(result) = in_span(this.recording, || future.poll(cx)) else {
            return Poll::Pending;
        };
        // Still in its guard: what is asked of the response below (its error's status code,
        // its body's size) is code of the application's, run as part of the request, so that
        // a panic in it is recorded.
        let mut recording = std::mem::replace(this.recording, RecordOnce::maybe(None));
        Poll::Ready(match result {
            Ok(res) => {
                if let (Some(call), Some(rules)) = (recording.get_mut(), this.rules.as_ref()) {
                    call.respond(res.status().as_u16());
                    // The pattern of the resource that served the request, as actix routed it
                    // (its guards tried, after a service inside such as `NormalizePath`
                    // rewrote the path).
                    let route = res.request().match_pattern();
                    if route.as_deref() != call.route().map(String::as_str) {
                        let sampling = rules.sampling(route.as_deref());
                        call.reroute(route, sampling);
                    }
                    if call.route().is_some_and(|route| rules.excludes(route)) {
                        // Excluded by its route: not recorded at all.
                        drop(recording.take());
                    }
                }
                Ok(res.map_body(|_, body| {
                    // actix writes the head of an empty response and drops its body unread.
                    if recording.get().is_some() {
                        let size = recording.run(|| body.size());
                        if let (Some(recording), BodySize::None | BodySize::Sized(0)) =
                            (recording.get_mut(), size)
                        {
                            recording.if_cancelled(End::Complete);
                        }
                    }
                    ProfiledBody { body, recording }
                }))
            }
            Err(err) => {
                if recording.get().is_some() {
                    let status = recording.run(|| err.as_response_error().status_code());
                    if let Some(r) = recording.get_mut() {
                        r.respond(status.as_u16());
                    }
                }
                if let Some(recording) = recording.take() {
                    recording.finish(End::Complete);
                }
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
        recording: RecordOnce<Recording>,
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
        let body = this.body;
        let polled = in_span(this.recording, || body.poll_next(cx));
        let end = match &polled {
            Poll::Ready(None) => End::Complete,
            Poll::Ready(Some(Err(_))) => End::BodyFailed,
            Poll::Ready(Some(Ok(_))) | Poll::Pending => return polled,
        };
        if let Some(recording) = this.recording.take() {
            recording.finish(end);
        }
        polled
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        // Only untimed bodies may be turned into bytes: a timed one ends when it is sent.
        if self.recording.get().is_some() {
            return Err(self);
        }
        let ProfiledBody { body, recording } = self;
        body.try_into_bytes()
            .map_err(|body| ProfiledBody { body, recording })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpConfig, HttpDetail};
    use actix_web::test as actix_test;
    use actix_web::{middleware, web, App, HttpResponse};
    use profilis_core::testing::capture;
    use profilis_core::Outcome;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::Waker;

    fn poll<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    fn chunk<B: MessageBody + Unpin>(body: &mut B) -> Poll<Option<Result<Bytes, B::Error>>> {
        Pin::new(body).poll_next(&mut Context::from_waker(Waker::noop()))
    }

    fn answered<T>(polled: Poll<T>) -> T {
        match polled {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("pending"),
        }
    }

    fn panicking_body() -> HttpResponse {
        HttpResponse::Ok().streaming(futures::stream::poll_fn(
            |_| -> Poll<Option<Result<Bytes, Error>>> { panic!("the body panics on purpose") },
        ))
    }

    #[test]
    fn every_end_is_recorded_once_as_the_module_docs_say() {
        let ((), captured) = capture(|| {
            actix_web::rt::System::new().block_on(async {
                let app = actix_test::init_service(
                    App::new()
                        .wrap(middleware::NormalizePath::trim())
                        .wrap(Profilis::new(HttpConfig::new().build()))
                        .route("/actix-test/ok/{id}", web::get().to(|| async { "ok" }))
                        .route(
                            "/actix-test/empty",
                            web::get().to(|| async { HttpResponse::NoContent().finish() }),
                        )
                        .route(
                            "/actix-test/unread",
                            web::get().to(|| async { "never read" }),
                        )
                        .route(
                            "/actix-test/handler-panics",
                            web::get().to(|| async {
                                panic!("the handler panics on purpose");
                                #[allow(unreachable_code)]
                                ""
                            }),
                        )
                        .route(
                            "/actix-test/body-panics",
                            web::get().to(|| async { panicking_body() }),
                        )
                        .route(
                            "/actix-test/gone",
                            web::get().to(std::future::pending::<HttpResponse>),
                        )
                        .service(
                            web::scope("/actix-test/refused")
                                .wrap_fn(|_, _| {
                                    ready_err(actix_web::error::ErrorUnauthorized("no token"))
                                })
                                .route("/{name}", web::get().to(|| async { "secret" })),
                        )
                        .service(
                            web::scope("/actix-test/call-panics")
                                .wrap_fn(|_, _| -> Ready<Result<ServiceResponse, Error>> {
                                    panic!("call panics on purpose")
                                })
                                .route("/{name}", web::get().to(|| async { "unreachable" })),
                        ),
                )
                .await;
                let get = |path: &str| actix_test::TestRequest::get().uri(path).to_request();

                let response = actix_test::call_service(&app, get("/actix-test/ok/1")).await;
                assert_eq!(actix_test::read_body(response).await, "ok");
                // Routed after `NormalizePath` rewrote it: labelled with the route it reached.
                let response = actix_test::call_service(&app, get("/actix-test/ok/2/")).await;
                assert_eq!(actix_test::read_body(response).await, "ok");

                drop(actix_test::call_service(&app, get("/actix-test/empty")).await);
                drop(actix_test::call_service(&app, get("/actix-test/unread")).await);

                // Dropped only after the panic was caught, as the runtime does with its task.
                let mut future = Box::pin(app.call(get("/actix-test/handler-panics")));
                assert!(catch_unwind(AssertUnwindSafe(|| poll(&mut future))).is_err());
                drop(future);

                let mut body = answered(poll(&mut Box::pin(
                    app.call(get("/actix-test/body-panics")),
                )))
                .unwrap()
                .into_body();
                assert!(catch_unwind(AssertUnwindSafe(|| chunk(&mut body))).is_err());
                drop(body);

                let mut future = Box::pin(app.call(get("/actix-test/gone")));
                assert!(poll(&mut future).is_pending());
                drop(future);

                let refused = app.call(get("/actix-test/refused/plans")).await;
                assert!(refused.is_err());

                let panicked = catch_unwind(AssertUnwindSafe(|| {
                    app.call(get("/actix-test/call-panics/x"))
                }));
                assert!(panicked.is_err(), "the panic goes on");
            });
        });
        let ended = |route: &str| {
            assert_eq!(captured.count(route).0, 1, "{route} counted once");
            let event = captured.one(route);
            let detail = event.detail::<HttpDetail>().unwrap();
            (detail.status, event.error, event.outcome)
        };
        assert_eq!(captured.count("/actix-test/ok/{id}"), (2, 0));
        assert_eq!(ended("/actix-test/empty"), (204, false, Outcome::Returned));
        assert_eq!(ended("/actix-test/unread"), (200, true, Outcome::Cancelled));
        assert_eq!(
            ended("/actix-test/handler-panics"),
            (500, true, Outcome::Panicked)
        );
        assert_eq!(
            ended("/actix-test/body-panics"),
            (500, true, Outcome::Panicked)
        );
        assert_eq!(ended("/actix-test/gone"), (499, true, Outcome::Cancelled));
        assert_eq!(
            ended("/actix-test/refused/{name}"),
            (401, false, Outcome::Returned)
        );
        assert_eq!(
            ended("/actix-test/call-panics/{name}"),
            (500, true, Outcome::Panicked)
        );
    }

    fn ready_err(error: Error) -> Ready<Result<ServiceResponse, Error>> {
        ready(Err(error))
    }
}

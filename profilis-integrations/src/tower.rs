//! HTTP request profiling for tower services: [`ProfilisLayer`] turns every request a service
//! handles into an HTTP event, following the shared [`rules`](crate::http). With the `axum`
//! feature the route label is axum's `MatchedPath` template; for
//! other services a route function you give maps a request to its template.

#![cfg_attr(
    feature = "axum",
    doc = r#"
```
use axum::{extract::Path, http::StatusCode, routing::get, Router};
use profilis::http::HttpConfig;
use profilis::http::tower::ProfilisLayer;

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}")
}

# fn main() -> Result<(), profilis::http::HttpConfigError> {
let rules = HttpConfig::new().exclude_routes(&["/healthz", "re:^/static/"])?.build();
let app: Router = Router::new()
    .route("/users/{id}", get(user))
    // A fallback of its own: axum's default one is not wrapped by `Router::layer`, so
    // without it requests that match no route would not be recorded.
    .fallback(|| async { StatusCode::NOT_FOUND })
    // After the routes: `Router::layer` wraps each route, where `MatchedPath` is known.
    .layer(ProfilisLayer::new(rules));
# let _ = app;
# Ok(()) }
```
"#
)]
//!
//! # What is recorded
//!
//! - **Route**: the template from the route function (with the `axum` feature, by default
//!   axum's `MatchedPath`, which includes the prefixes of nested routers), else
//!   [`UNMATCHED_ROUTE`](crate::http::UNMATCHED_ROUTE). Install the layer with axum's
//!   `Router::layer` *after* adding the routes and a fallback (`.fallback(|| async {
//!   StatusCode::NOT_FOUND })`): `Router::layer` wraps only what the router has by then, and
//!   axum's default fallback is not among it, so without one the requests that match no route
//!   are not recorded. A layer wrapped around the whole router runs before routing and sees
//!   no `MatchedPath`.
//! - **Nested services**: axum 0.8 gives the requests of a service nested with
//!   `Router::nest_service` (`ServeDir`, say) no `MatchedPath`, and sets their `NestedPath`
//!   inside the route, after this layer has seen them: they are labelled
//!   [`UNMATCHED_ROUTE`](crate::http::UNMATCHED_ROUTE). (`Router::nest` with a router keeps
//!   full templates.) To label them, nest the service after `.layer(..)`, wrapped in a layer
//!   of its own with a route function:
//!   `.nest_service("/files", ProfilisLayer::new(rules).with_route_fn(|_: &Request<Body>|
//!   Some("/files/{*path}")).layer(serve_dir))`.
//! - **Status**: the response status. A handler that panics is recorded as 500 and
//!   [`End::Panicked`]; the panic then goes on unchanged, so the framework's own handling (such
//!   as `tower_http::catch_panic`) still sees it. A service that returns an error instead of a
//!   response is recorded as 500.
//! - **Duration**: from the request reaching the layer until the response body has been
//!   sent: its last frame handed to the server (or the response head, for a body that is empty
//!   or not sent, as for `HEAD`, 1xx, 204 and 304). Not just until the handler returned, so a
//!   streamed or slow-to-produce body counts in full; the time the client takes to read the
//!   last bytes from the socket does not. A `101 Switching Protocols` response (a WebSocket
//!   upgrade) is recorded when its head is answered, with status 101: the upgraded connection
//!   that follows is not part of the request. (The actix middleware differs: see
//!   [`crate::actix`].)
//! - **How it ended**, once per request: [`End::Complete`]; [`End::BodyFailed`] when the body
//!   returns an error (or panics); [`End::Cancelled`] when the body is dropped before its end
//!   (with the response status), or the response future before there was a response (the
//!   client went away; status
//!   [`CLIENT_CLOSED_REQUEST`](crate::http::CLIENT_CLOSED_REQUEST)).
//! - **Trace context**: the request is a span, a child of the incoming W3C `traceparent`
//!   header if there is one; the inner service is called and polled with it as the current
//!   span, so `#[profiled]` calls made while handling the request are its children.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::header::HeaderName;
use ::http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use profilis_core::adapter::RecordOnce;
use tower_layer::Layer;
use tower_service::Service;

use crate::http::{in_span, End, HttpRules};

/// A request being profiled, until it is recorded (see [`crate::http`]'s shared rules for how
/// each end is recorded).
type Recording = crate::http::Recording<Method, RouteTemplate>;

/// The W3C trace context header. A `HeaderName` made once: looking a header up by `&str`
/// parses (and lowercases) the name on every request.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A request's route template (`/users/{id}`), as a [`RouteFn`] gives it. Made from a
/// `&'static str`, a `String`, or (with the `axum` feature) axum's `MatchedPath` without
/// copying it.
#[derive(Debug, Clone)]
pub struct RouteTemplate(Template);

#[derive(Debug, Clone)]
enum Template {
    Static(&'static str),
    Owned(String),
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
}

impl RouteTemplate {
    /// The template.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Template::Static(s) => s,
            Template::Owned(s) => s,
            #[cfg(feature = "axum")]
            Template::Matched(m) => m.as_str(),
        }
    }
}

impl AsRef<str> for RouteTemplate {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for RouteTemplate {
    fn from(template: &'static str) -> Self {
        RouteTemplate(Template::Static(template))
    }
}

impl From<String> for RouteTemplate {
    fn from(template: String) -> Self {
        RouteTemplate(Template::Owned(template))
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl From<axum::extract::MatchedPath> for RouteTemplate {
    fn from(template: axum::extract::MatchedPath) -> Self {
        RouteTemplate(Template::Matched(template))
    }
}

/// Maps a request to its route template; `None` when it matched no route (it is then labelled
/// [`UNMATCHED_ROUTE`](crate::http::UNMATCHED_ROUTE)). Implemented by [`DefaultRoute`] and by
/// every `Fn(&http::Request<B>) -> Option<T>` where `T: Into<RouteTemplate>`
/// (`&'static str`, `String`, ...).
///
/// Never return the raw path: every distinct value becomes new series.
pub trait RouteFn<B> {
    /// The route template of `request`.
    fn route(&self, request: &::http::Request<B>) -> Option<RouteTemplate>;
}

impl<B, F, T> RouteFn<B> for F
where
    F: Fn(&::http::Request<B>) -> Option<T>,
    T: Into<RouteTemplate>,
{
    fn route(&self, request: &::http::Request<B>) -> Option<RouteTemplate> {
        self(request).map(Into::into)
    }
}

/// The route function of [`ProfilisLayer::new`]: with the `axum` feature, the `MatchedPath`
/// axum's router put in the request's extensions; without it (or without a match), none.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRoute;

impl<B> RouteFn<B> for DefaultRoute {
    #[cfg(feature = "axum")]
    fn route(&self, request: &::http::Request<B>) -> Option<RouteTemplate> {
        request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .cloned()
            .map(RouteTemplate::from)
    }

    #[cfg(not(feature = "axum"))]
    fn route(&self, _request: &::http::Request<B>) -> Option<RouteTemplate> {
        None
    }
}

/// A tower [`Layer`] that profiles every request of the service it wraps: see the
/// [module docs](self) for what is recorded.
pub struct ProfilisLayer<R = DefaultRoute> {
    shared: Arc<Shared<R>>,
}

/// What every copy of the service shares. One `Arc`, because axum clones the route's service
/// for every request.
struct Shared<R> {
    rules: HttpRules,
    route: R,
}

impl ProfilisLayer {
    /// Profiles requests by `rules`, with route templates from [`DefaultRoute`] (axum's
    /// `MatchedPath` with the `axum` feature).
    pub fn new(rules: HttpRules) -> ProfilisLayer {
        ProfilisLayer {
            shared: Arc::new(Shared {
                rules,
                route: DefaultRoute,
            }),
        }
    }
}

impl Default for ProfilisLayer {
    /// [`ProfilisLayer::new`] with the default rules.
    fn default() -> Self {
        ProfilisLayer::new(HttpRules::default())
    }
}

impl<R> ProfilisLayer<R> {
    /// Takes route templates from `route` instead, for services that are not an axum router:
    ///
    /// ```
    /// use profilis::http::tower::ProfilisLayer;
    ///
    /// let layer = ProfilisLayer::default().with_route_fn(|request: &http::Request<String>| {
    ///     let path = request.uri().path();
    ///     if path.starts_with("/users/") {
    ///         Some("/users/{id}")
    ///     } else {
    ///         None
    ///     }
    /// });
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn with_route_fn<G>(self, route: G) -> ProfilisLayer<G> {
        ProfilisLayer {
            shared: Arc::new(Shared {
                rules: self.shared.rules.clone(),
                route,
            }),
        }
    }
}

impl<R> Clone for ProfilisLayer<R> {
    fn clone(&self) -> Self {
        ProfilisLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<R> std::fmt::Debug for ProfilisLayer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilisLayer")
            .field("rules", &self.shared.rules)
            .finish_non_exhaustive()
    }
}

impl<S, R> Layer<S> for ProfilisLayer<R> {
    type Service = ProfilisService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        ProfilisService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`ProfilisLayer`] makes: the inner service, profiled.
pub struct ProfilisService<S, R = DefaultRoute> {
    inner: S,
    shared: Arc<Shared<R>>,
}

impl<S: Clone, R> Clone for ProfilisService<S, R> {
    fn clone(&self) -> Self {
        ProfilisService {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, R> std::fmt::Debug for ProfilisService<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfilisService")
            .field("inner", &self.inner)
            .field("rules", &self.shared.rules)
            .finish_non_exhaustive()
    }
}

impl<S, R, ReqBody, ResBody> Service<::http::Request<ReqBody>> for ProfilisService<S, R>
where
    S: Service<::http::Request<ReqBody>, Response = ::http::Response<ResBody>>,
    R: RouteFn<ReqBody>,
    ResBody: Body,
{
    type Response = ::http::Response<ProfiledBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ::http::Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let traceparent = request
            .headers()
            .get(&TRACEPARENT)
            .and_then(|value| value.to_str().ok());
        let Some(started) = shared.rules.start(request.uri().path(), traceparent) else {
            return ResponseFuture {
                inner: self.inner.call(request),
                recording: RecordOnce::maybe(None),
            };
        };
        let route = shared.route.route(&request);
        let sampling = shared
            .rules
            .sampling(route.as_ref().map(RouteTemplate::as_str));
        let mut recording = Recording::new(started, sampling, request.method().clone(), route);
        // Services may do real work in `call` (not only in the future): same span, and a
        // panic in it is recorded.
        let inner = in_span(&mut recording, || self.inner.call(request));
        ResponseFuture { inner, recording }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ProfilisService`]: the inner service's, polled under the
    /// request's span.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Empty when the request is not profiled (excluded, or profiling off).
        recording: RecordOnce<Recording>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<::http::Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<::http::Response<ProfiledBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let Poll::Ready(result) = in_span(this.recording, || inner.poll(cx)) else {
            return Poll::Pending;
        };
        // Still in its guard: the body's `is_end_stream` is code of the application's, run as
        // part of the request, so that a panic in it is recorded.
        let mut recording = std::mem::replace(this.recording, RecordOnce::maybe(None));
        Poll::Ready(match result {
            Ok(response) => {
                let status = response.status();
                let sends = recording.get_mut().map(|r| {
                    r.respond(status.as_u16());
                    // From here on a panic is the body's: the response was there.
                    r.if_panicked(End::BodyFailed);
                    sends_body(r.method(), status)
                });
                let sent = match sends {
                    Some(true) => recording.run(|| response.body().is_end_stream()),
                    Some(false) => true,
                    None => false,
                };
                if sent {
                    if let Some(recording) = recording.take() {
                        recording.finish(End::Complete);
                    }
                }
                Ok(response.map(|body| ProfiledBody {
                    inner: body,
                    recording,
                }))
            }
            Err(error) => {
                if let Some(mut recording) = recording.take() {
                    recording.respond(500);
                    recording.finish(End::Complete);
                }
                Err(error)
            }
        })
    }
}

/// Whether the server sends a body for this response: not for `HEAD`, 1xx, 204 and 304
/// (hyper drops such bodies without reading them).
fn sends_body(method: &Method, status: StatusCode) -> bool {
    method != Method::HEAD
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

pin_project_lite::pin_project! {
    /// A response body that records its request when it has been sent, failed or dropped.
    pub struct ProfiledBody<B> {
        #[pin]
        inner: B,
        recording: RecordOnce<Recording>,
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for ProfiledBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfiledBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ProfiledBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if this.recording.get().is_none() {
            return this.inner.poll_frame(cx);
        }
        // Not under the request's span: producing a body seldom calls profiled code, and
        // entering the span for each frame would cost every request.
        let inner = this.inner.as_mut();
        let polled = this.recording.run(|| inner.poll_frame(cx));
        // The body's own code, run as part of the request: a panic in it is recorded.
        let inner = this.inner.as_ref();
        let at_end = || this.recording.run(|| inner.is_end_stream());
        let Some(failed) = crate::http::body_end(&polled, at_end) else {
            return polled;
        };
        if let Some(recording) = this.recording.take() {
            recording.finish(if failed {
                End::BodyFailed
            } else {
                End::Complete
            });
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpConfig, HttpDetail};
    use profilis_core::testing::capture;
    use profilis_core::Outcome;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::Waker;

    /// A body of `chunks` frames, or one that panics or fails when polled.
    struct TestBody {
        chunks: u32,
        panics: bool,
        fails: bool,
    }

    impl TestBody {
        fn of(chunks: u32) -> TestBody {
            TestBody {
                chunks,
                panics: false,
                fails: false,
            }
        }
    }

    impl Body for TestBody {
        type Data = &'static [u8];
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            if self.panics {
                panic!("the body panics on purpose");
            }
            if self.fails {
                return Poll::Ready(Some(Err("the body fails on purpose")));
            }
            if self.chunks == 0 {
                return Poll::Ready(None);
            }
            self.chunks -= 1;
            Poll::Ready(Some(Ok(Frame::data(&b"chunk"[..]))))
        }

        fn is_end_stream(&self) -> bool {
            self.chunks == 0 && !self.panics && !self.fails
        }
    }

    type Answer = Pin<Box<dyn Future<Output = Result<::http::Response<TestBody>, &'static str>>>>;

    /// Answers by the last part of the path.
    #[derive(Clone)]
    struct App;

    impl Service<::http::Request<()>> for App {
        type Response = ::http::Response<TestBody>;
        type Error = &'static str;
        type Future = Answer;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: ::http::Request<()>) -> Answer {
            let body = |body| Box::pin(async move { Ok(::http::Response::new(body)) }) as Answer;
            match request.uri().path().rsplit('/').next().unwrap_or_default() {
                "panic-in-call" => panic!("call panics on purpose"),
                "panic-in-handler" => Box::pin(async { panic!("the handler panics on purpose") }),
                "gone" => Box::pin(std::future::pending()),
                "error" => Box::pin(async { Err("the service fails") }),
                "body-panics" => body(TestBody {
                    panics: true,
                    ..TestBody::of(1)
                }),
                "body-fails" => body(TestBody {
                    fails: true,
                    ..TestBody::of(1)
                }),
                "endless" => body(TestBody::of(u32::MAX)),
                _ => body(TestBody::of(2)),
            }
        }
    }

    fn request(method: Method, path: &str) -> ::http::Request<()> {
        ::http::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    fn poll<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    type Polled<B> = Poll<Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>>;

    fn frame<B: Body + Unpin>(body: &mut B) -> Polled<B> {
        Pin::new(body).poll_frame(&mut Context::from_waker(Waker::noop()))
    }

    fn ready<T>(polled: Poll<T>) -> T {
        match polled {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("pending"),
        }
    }

    #[test]
    fn every_end_is_recorded_once_as_the_module_docs_say() {
        let layer = ProfilisLayer::new(HttpConfig::new().build())
            .with_route_fn(|r: &::http::Request<()>| Some(r.uri().path().to_owned()));
        let ((), captured) = capture(|| {
            let mut service = layer.layer(App);
            let get = |path| request(Method::GET, path);

            let mut body = ready(poll(&mut service.call(get("/tower-test/ok"))))
                .unwrap()
                .into_body();
            while ready(frame(&mut body)).is_some() {}
            drop(body);

            let panicked = catch_unwind(AssertUnwindSafe(|| {
                service.call(get("/tower-test/panic-in-call"))
            }));
            assert!(panicked.is_err(), "the panic goes on");

            // Dropped only after the panic was caught, as a panic-catching layer does.
            let mut future = service.call(get("/tower-test/panic-in-handler"));
            assert!(catch_unwind(AssertUnwindSafe(|| poll(&mut future))).is_err());
            drop(future);

            let mut future = service.call(get("/tower-test/gone"));
            assert!(poll(&mut future).is_pending());
            drop(future);

            assert!(ready(poll(&mut service.call(get("/tower-test/error")))).is_err());

            let mut body = ready(poll(&mut service.call(get("/tower-test/body-panics"))))
                .unwrap()
                .into_body();
            assert!(catch_unwind(AssertUnwindSafe(|| frame(&mut body))).is_err());
            drop(body);

            let mut body = ready(poll(&mut service.call(get("/tower-test/body-fails"))))
                .unwrap()
                .into_body();
            assert!(ready(frame(&mut body)).unwrap().is_err());
            drop(body);

            let mut body = ready(poll(&mut service.call(get("/tower-test/endless"))))
                .unwrap()
                .into_body();
            assert!(ready(frame(&mut body)).unwrap().is_ok());
            drop(body);

            // hyper sends no body for HEAD: recorded with the head, not again when dropped.
            let head = ready(poll(
                &mut service.call(request(Method::HEAD, "/tower-test/head")),
            ));
            drop(head);
        });
        let ended = |route: &str| {
            assert_eq!(captured.count(route).0, 1, "{route} counted once");
            let event = captured.one(route);
            let detail = event.detail::<HttpDetail>().unwrap();
            assert_eq!(detail.route, route);
            (detail.status, event.error, event.outcome)
        };
        assert_eq!(ended("/tower-test/ok"), (200, false, Outcome::Returned));
        assert_eq!(
            ended("/tower-test/panic-in-call"),
            (500, true, Outcome::Panicked)
        );
        assert_eq!(
            ended("/tower-test/panic-in-handler"),
            (500, true, Outcome::Panicked)
        );
        assert_eq!(ended("/tower-test/gone"), (499, true, Outcome::Cancelled));
        assert_eq!(ended("/tower-test/error"), (500, true, Outcome::Returned));
        assert_eq!(
            ended("/tower-test/body-panics"),
            (200, true, Outcome::Returned)
        );
        assert_eq!(
            ended("/tower-test/body-fails"),
            (200, true, Outcome::Returned)
        );
        assert_eq!(
            ended("/tower-test/endless"),
            (200, true, Outcome::Cancelled)
        );
        assert_eq!(ended("/tower-test/head"), (200, false, Outcome::Returned));
        let head = captured
            .one("/tower-test/head")
            .detail::<HttpDetail>()
            .unwrap();
        assert_eq!(&*head.method, "HEAD");
    }

    #[test]
    fn excluded_requests_pass_through_unrecorded() {
        let layer = ProfilisLayer::new(
            HttpConfig::new()
                .exclude_routes(&["/tower-test/excluded"])
                .unwrap()
                .build(),
        )
        .with_route_fn(|r: &::http::Request<()>| Some(r.uri().path().to_owned()));
        let ((), captured) = capture(|| {
            let mut service = layer.layer(App);
            let mut body = ready(poll(
                &mut service.call(request(Method::GET, "/tower-test/excluded")),
            ))
            .unwrap()
            .into_body();
            let mut frames = 0;
            while ready(frame(&mut body)).is_some() {
                frames += 1;
            }
            assert_eq!(frames, 2, "the body is untouched");
        });
        assert!(captured.named("/tower-test/excluded").is_empty());
    }
}

//! HTTP request profiling for tower services: [`ProfilisLayer`] turns every request a service
//! handles into an HTTP event, following the shared [`rules`](crate::http). With the `axum`
//! feature the route label is axum's `MatchedPath` template; for
//! other services a route function you give maps a request to its template.

#![cfg_attr(
    feature = "axum",
    doc = r#"
```
use axum::{extract::Path, routing::get, Router};
use profilis_integrations::http::HttpConfig;
use profilis_integrations::tower::ProfilisLayer;

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}")
}

# fn main() -> Result<(), profilis_integrations::http::HttpConfigError> {
let rules = HttpConfig::new().exclude_routes(&["/healthz", "re:^/static/"])?.build();
let app: Router = Router::new()
    .route("/users/{id}", get(user))
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
//!   `Router::layer` *after* adding the routes (and fallback): a layer wrapped around the
//!   whole router runs before routing and sees no `MatchedPath`.
//! - **Status**: the response status. A handler that panics is recorded as 500 and
//!   [`End::Panicked`]; the panic then goes on unchanged, so the framework's own handling (such
//!   as `tower_http::catch_panic`) still sees it. A service that returns an error instead of a
//!   response is recorded as 500.
//! - **Duration**: from the request reaching the layer until the response body has been
//!   sent: its last frame handed to the server (or the response head, for a body that is empty
//!   or not sent, as for `HEAD`, 204 and 304). Not just until the handler returned, so a
//!   streamed or slow-to-produce body counts in full; the time the client takes to read the
//!   last bytes from the socket does not.
//! - **How it ended**, once per request: [`End::Complete`]; [`End::BodyFailed`] when the body
//!   returns an error (or panics); [`End::Cancelled`] when the body is dropped before its end
//!   (with the response status), or the response future before there was a response (the
//!   client went away; status [`CLIENT_CLOSED_REQUEST`]).
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
use profilis_core::context;
use tower_layer::Layer;
use tower_service::Service;

pub use crate::http::CLIENT_CLOSED_REQUEST;
use crate::http::{End, HttpRules, Request, Sampling};

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
    /// use profilis_integrations::tower::ProfilisLayer;
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
                recording: None,
            };
        };
        let route = shared.route.route(&request);
        let span = started.context();
        let mut recording = Recording {
            sampling: shared
                .rules
                .sampling(route.as_ref().map(RouteTemplate::as_str)),
            route,
            method: request.method().clone(),
            status: CLIENT_CLOSED_REQUEST,
            // Services may do real work in `call` (not only in the future): same span, and a
            // panic in it drops `recording` while it says so.
            running: Running::Handler,
            request: Some(started),
        };
        let inner = {
            let _in_span = context::enter(span);
            self.inner.call(request)
        };
        recording.running = Running::Nothing;
        ResponseFuture {
            inner,
            recording: Some(recording),
        }
    }
}

/// What of the request the layer is running when a [`Recording`] is dropped unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Running {
    /// Nothing: the response future or body was dropped between polls (the client went away).
    Nothing,
    /// The inner service's `call` or its future: dropped now, it panicked.
    Handler,
    /// The response body: dropped now, it panicked.
    Body,
}

/// A request being profiled, until it is recorded: once, by the first of finishing, failing or
/// being dropped. Panics are seen without `catch_unwind`: a panic unwinds through the layer's
/// `call` or `poll` and drops the recording (then or later) while [`Recording::running`]
/// still says what was running.
struct Recording {
    request: Option<Request>,
    sampling: Sampling,
    method: Method,
    route: Option<RouteTemplate>,
    /// The response status once there is a response; [`CLIENT_CLOSED_REQUEST`] before.
    status: u16,
    running: Running,
}

impl Recording {
    fn span(&self) -> Option<profilis_core::SpanContext> {
        self.request.as_ref().map(Request::context)
    }

    fn finish(&mut self, status: u16, end: End) {
        if let Some(request) = self.request.take() {
            let route = self.route.as_ref().map(RouteTemplate::as_str);
            request.finish_sampled(self.sampling, self.method.as_str(), route, status, end);
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let end = match self.running {
            Running::Nothing => End::Cancelled,
            Running::Handler => End::Panicked,
            Running::Body => End::BodyFailed,
        };
        self.finish(self.status, end);
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ProfilisService`]: the inner service's, polled under the
    /// request's span.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // `None` when the request is not profiled (excluded, or profiling off).
        recording: Option<Recording>,
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
        let Some((recording, span)) = this
            .recording
            .as_mut()
            .and_then(|r| r.span().map(|span| (r, span)))
        else {
            return this.inner.poll(cx).map_ok(|response| {
                response.map(|body| ProfiledBody {
                    inner: body,
                    recording: None,
                })
            });
        };
        recording.running = Running::Handler;
        let polled = {
            let _in_span = context::enter(span);
            this.inner.poll(cx)
        };
        recording.running = Running::Nothing;
        let Poll::Ready(result) = polled else {
            return Poll::Pending;
        };
        let mut recording = this.recording.take();
        Poll::Ready(match result {
            Ok(response) => {
                if let Some(recording) = &mut recording {
                    recording.status = response.status().as_u16();
                    if !sends_body(&recording.method, response.status())
                        || response.body().is_end_stream()
                    {
                        recording.finish(recording.status, End::Complete);
                    }
                }
                Ok(response.map(|body| ProfiledBody {
                    inner: body,
                    recording,
                }))
            }
            Err(error) => {
                if let Some(recording) = &mut recording {
                    recording.finish(500, End::Complete);
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
        recording: Option<Recording>,
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
        let Some(recording) = this.recording.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        recording.running = Running::Body;
        let polled = this.inner.as_mut().poll_frame(cx);
        recording.running = Running::Nothing;
        let end = match &polled {
            Poll::Pending => return polled,
            Poll::Ready(None) => End::Complete,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => End::Complete,
            Poll::Ready(Some(Ok(_))) => return polled,
            Poll::Ready(Some(Err(_))) => End::BodyFailed,
        };
        recording.finish(recording.status, end);
        *this.recording = None;
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

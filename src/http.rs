//! HTTP request profiling: the shared rules ([`HttpConfig`], [`HttpRules`]) and, behind their
//! features, the adapters for tower/axum and actix-web and handlers that serve `/metrics` from
//! the application's own router; and outgoing requests (`client`, features `http-client`,
//! `tower-client`, `reqwest`).

pub use profilis_integrations::http::*;

/// The tower layer ([`tower::ProfilisLayer`]) for any tower/hyper service.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use profilis_integrations::tower;

/// The body of a `/metrics` answer refused for want of the bearer token.
#[cfg(any(feature = "axum", feature = "actix"))]
const UNAUTHORIZED_BODY: &str = "a bearer token is needed: Authorization: Bearer <token>\n";

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum {
    //! axum 0.8: serve `/metrics` from the application's own router with [`metrics_router`],
    //! and the live dashboard with [`dashboard_router`], instead of (or beside) the built-in
    //! listener. Requests are profiled by the tower layer,
    //! [`ProfilisLayer`](crate::http::tower::ProfilisLayer), which takes route labels from
    //! axum's `MatchedPath` with this feature.
    //!
    //! ```no_run
    //! use axum::{extract::Path, http::StatusCode, routing::get, Router};
    //! use profilis::http::axum::metrics_router;
    //! use profilis::http::tower::ProfilisLayer;
    //! use profilis::http::HttpConfig;
    //!
    //! async fn user(Path(id): Path<u64>) -> String {
    //!     format!("user {id}")
    //! }
    //!
    //! # fn main() -> Result<(), Box<dyn std::error::Error>> {
    //! let _profilis = profilis::Exporter::new().without_listener().install()?;
    //! let app: Router = Router::new()
    //!     .route("/users/{id}", get(user))
    //!     // Before the layer: axum's default fallback is not wrapped by `Router::layer`, so
    //!     // without one, requests that match no route are not recorded.
    //!     .fallback(|| async { StatusCode::NOT_FOUND })
    //!     .layer(ProfilisLayer::new(HttpConfig::new().build()))
    //!     // Merged after the layer: scrapes are not profiled themselves.
    //!     .merge(metrics_router());
    //! // axum::serve(listener, app).await?;
    //! # let _ = app;
    //! # Ok(()) }
    //! ```
    //!
    //! The dashboard ([`crate::dashboard`]) is off without the built-in listener: turn it on
    //! with [`Exporter::dashboard`](crate::Exporter::dashboard), then merge (or nest) its
    //! router. Its JSON asks for the exporter's bearer token, if one is set.
    //!
    //! ```no_run
    //! use axum::Router;
    //! use profilis::http::axum::dashboard_router;
    //!
    //! # fn main() -> Result<(), Box<dyn std::error::Error>> {
    //! let _profilis = profilis::Exporter::new()
    //!     .without_listener()
    //!     .dashboard(true)
    //!     .bearer_token("s3cret")
    //!     .install()?;
    //! // Nested at a prefix ending in `/`: the page at /profilis/, its JSON beside it
    //! // (/profilis/metrics.json). Nested at "/profilis", the page would be at /profilis.
    //! let app: Router = Router::new().nest("/profilis/", dashboard_router());
    //! # let _ = app;
    //! # Ok(()) }
    //! ```

    use axum::http::header::{ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, WWW_AUTHENTICATE};
    use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;

    use super::UNAUTHORIZED_BODY;

    /// A router that answers `GET` (and `HEAD`) `/metrics` with [`metrics_handler`]. Merge it
    /// into the application's router (`app.merge(metrics_router())`).
    pub fn metrics_router<S>() -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new().route("/metrics", get(metrics_handler))
    }

    /// The `/metrics` page of profilis's recorder ([`crate::render_as`]), answered as the
    /// built-in listener does: in the format the request's `Accept` asks for
    /// ([`ExpositionFormat::negotiate`](crate::ExpositionFormat::negotiate): OpenMetrics with
    /// exemplars for Prometheus, else the text format with
    /// [`METRICS_CONTENT_TYPE`](crate::exposition::METRICS_CONTENT_TYPE)), gzip-compressed when
    /// the request's `Accept-Encoding` accepts gzip, and `Vary: Accept, Accept-Encoding`.
    /// `401 Unauthorized` (with `WWW-Authenticate: Bearer`) without the exporter's
    /// [bearer token](crate::Exporter::bearer_token) when one is set, as the listener answers;
    /// `503 Service Unavailable` before the exporter is installed.
    pub async fn metrics_handler(headers: HeaderMap) -> Response {
        let authorization = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
        if !crate::exposition::scrape_authorized(authorization) {
            return (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE, "Bearer")],
                UNAUTHORIZED_BODY,
            )
                .into_response();
        }
        let format = crate::ExpositionFormat::negotiate(
            headers
                .get_all(ACCEPT)
                .iter()
                .filter_map(|value| value.to_str().ok()),
        );
        let Some(page) = crate::render_as(format) else {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the profilis exporter is not installed\n",
            )
                .into_response();
        };
        let accept = headers
            .get_all(ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok());
        let page = crate::exposition::metrics_page_as(format, page, accept);
        let headers: Vec<_> = page.headers().collect();
        let mut response = page.body.into_response();
        for (name, value) in headers {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }

    /// A router that answers `GET` (and `HEAD`) `/` (the page), `/metrics.json`,
    /// `/errors.json` and `/slowest.json` from the installed exporter's dashboard, as the
    /// built-in listener does. Merge it into the application's router, or nest it under a
    /// prefix of its own ending in `/` (`app.nest("/profilis/", dashboard_router())`, so the
    /// page is at `/profilis/` with its JSON beside it).
    pub fn dashboard_router<S>() -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/", get(dashboard_page))
            .route("/metrics.json", get(dashboard_metrics))
            .route("/errors.json", get(dashboard_errors))
            .route("/slowest.json", get(dashboard_slowest))
    }

    /// The dashboard's page (HTML), served without the token: it holds no data.
    /// `503` before the exporter is installed, `404` when its dashboard is off.
    pub async fn dashboard_page(uri: Uri, headers: HeaderMap) -> Response {
        dashboard_answer("/", &uri, &headers)
    }

    /// `/metrics.json?window=60|300|900` of the installed exporter's dashboard (see
    /// [`crate::dashboard`]): `401` without the exporter's bearer token when one is set,
    /// `400` for a window not allowed, `503`/`404` as [`dashboard_page`].
    pub async fn dashboard_metrics(uri: Uri, headers: HeaderMap) -> Response {
        dashboard_answer("/metrics.json", &uri, &headers)
    }

    /// `/errors.json?limit=N`, as [`dashboard_metrics`].
    pub async fn dashboard_errors(uri: Uri, headers: HeaderMap) -> Response {
        dashboard_answer("/errors.json", &uri, &headers)
    }

    /// `/slowest.json?window=60|300|900&limit=N`, as [`dashboard_metrics`].
    pub async fn dashboard_slowest(uri: Uri, headers: HeaderMap) -> Response {
        dashboard_answer("/slowest.json", &uri, &headers)
    }

    fn dashboard_answer(path: &str, uri: &Uri, headers: &HeaderMap) -> Response {
        let answer = crate::dashboard::respond_installed(
            path,
            uri.query(),
            headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
            headers
                .get_all(ACCEPT_ENCODING)
                .iter()
                .filter_map(|value| value.to_str().ok()),
        );
        let status =
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers: Vec<_> = answer.headers().collect();
        let mut response = (status, answer.body).into_response();
        for (name, value) in headers {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix {
    //! actix-web 4: profile every request with the [`Profilis`] middleware (route labels from
    //! the matched resource's pattern), and serve `/metrics` from the application itself with
    //! [`metrics_service`], and the live dashboard with [`dashboard_service`], instead of (or
    //! beside) the built-in listener.
    //!
    //! ```no_run
    //! use actix_web::{web, App, HttpServer};
    //! use profilis::http::actix::{metrics_service, Profilis};
    //! use profilis::http::HttpConfig;
    //!
    //! # fn main() -> Result<(), Box<dyn std::error::Error>> {
    //! let _profilis = profilis::Exporter::new().without_listener().install()?;
    //! let rules = HttpConfig::new().exclude_routes(&["/metrics"])?.build();
    //! let server = HttpServer::new(move || {
    //!     App::new()
    //!         .wrap(Profilis::new(rules.clone()))
    //!         .route("/users/{id}", web::get().to(|| async { "a user" }))
    //!         .service(metrics_service())
    //! })
    //! .bind(("127.0.0.1", 8080))?;
    //! // actix_web::rt::System::new().block_on(server.run())?;
    //! # let _ = server;
    //! # Ok(()) }
    //! ```
    //!
    //! The dashboard ([`crate::dashboard`]) is off without the built-in listener: turn it on
    //! with [`Exporter::dashboard`](crate::Exporter::dashboard), then register
    //! `dashboard_service()` (under a scope of its own if `/` is taken:
    //! `web::scope("/profilis").service(dashboard_service())`). Its JSON asks for the
    //! exporter's bearer token, if one is set.

    use actix_web::dev::HttpServiceFactory;
    use actix_web::http::header::{ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, WWW_AUTHENTICATE};
    use actix_web::http::StatusCode;
    use actix_web::{web, HttpRequest, HttpResponse};

    use super::UNAUTHORIZED_BODY;

    pub use profilis_integrations::actix::*;

    /// The resource `GET` (and `HEAD`) `/metrics`, answered by [`metrics`]. Register it with
    /// `App::service(metrics_service())`.
    pub fn metrics_service() -> impl HttpServiceFactory {
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .route(web::head().to(metrics))
    }

    /// The `/metrics` page of profilis's recorder ([`crate::render_as`]), answered as the
    /// built-in listener does: in the format the request's `Accept` asks for
    /// ([`ExpositionFormat::negotiate`](crate::ExpositionFormat::negotiate): OpenMetrics with
    /// exemplars for Prometheus, else the text format with
    /// [`METRICS_CONTENT_TYPE`](crate::exposition::METRICS_CONTENT_TYPE)), gzip-compressed when
    /// the request's `Accept-Encoding` accepts gzip, and `Vary: Accept, Accept-Encoding`.
    /// `401 Unauthorized` (with `WWW-Authenticate: Bearer`) without the exporter's
    /// [bearer token](crate::Exporter::bearer_token) when one is set, as the listener answers;
    /// `503 Service Unavailable` before the exporter is installed.
    pub async fn metrics(req: HttpRequest) -> HttpResponse {
        let authorization = req
            .headers()
            .get(AUTHORIZATION)
            .map(|value| value.as_bytes());
        if !crate::exposition::scrape_authorized(authorization) {
            return HttpResponse::Unauthorized()
                .insert_header((WWW_AUTHENTICATE, "Bearer"))
                .body(UNAUTHORIZED_BODY);
        }
        let format = crate::ExpositionFormat::negotiate(
            req.headers()
                .get_all(ACCEPT)
                .filter_map(|value| value.to_str().ok()),
        );
        let Some(page) = crate::render_as(format) else {
            return HttpResponse::ServiceUnavailable()
                .body("the profilis exporter is not installed\n");
        };
        let accept = req
            .headers()
            .get_all(ACCEPT_ENCODING)
            .filter_map(|value| value.to_str().ok());
        let page = crate::exposition::metrics_page_as(format, page, accept);
        let mut response = HttpResponse::Ok();
        for header in page.headers() {
            response.insert_header(header);
        }
        response.body(page.body)
    }

    /// The resources `GET` (and `HEAD`) `/` ([`dashboard_page`]), `/metrics.json`,
    /// `/errors.json` and `/slowest.json`, answered from the installed exporter's dashboard as
    /// the built-in listener does. Register them with `App::service(dashboard_service())`.
    pub fn dashboard_service() -> impl HttpServiceFactory {
        vec![
            web::resource("/")
                .route(web::get().to(dashboard_page))
                .route(web::head().to(dashboard_page)),
            web::resource("/metrics.json")
                .route(web::get().to(dashboard_metrics))
                .route(web::head().to(dashboard_metrics)),
            web::resource("/errors.json")
                .route(web::get().to(dashboard_errors))
                .route(web::head().to(dashboard_errors)),
            web::resource("/slowest.json")
                .route(web::get().to(dashboard_slowest))
                .route(web::head().to(dashboard_slowest)),
        ]
    }

    /// The dashboard's page (HTML), served without the token: it holds no data.
    /// `503` before the exporter is installed, `404` when its dashboard is off.
    pub async fn dashboard_page(req: HttpRequest) -> HttpResponse {
        dashboard_answer("/", &req)
    }

    /// `/metrics.json?window=60|300|900` of the installed exporter's dashboard (see
    /// [`crate::dashboard`]): `401` without the exporter's bearer token when one is set,
    /// `400` for a window not allowed, `503`/`404` as [`dashboard_page`].
    pub async fn dashboard_metrics(req: HttpRequest) -> HttpResponse {
        dashboard_answer("/metrics.json", &req)
    }

    /// `/errors.json?limit=N`, as [`dashboard_metrics`].
    pub async fn dashboard_errors(req: HttpRequest) -> HttpResponse {
        dashboard_answer("/errors.json", &req)
    }

    /// `/slowest.json?window=60|300|900&limit=N`, as [`dashboard_metrics`].
    pub async fn dashboard_slowest(req: HttpRequest) -> HttpResponse {
        dashboard_answer("/slowest.json", &req)
    }

    fn dashboard_answer(path: &str, req: &HttpRequest) -> HttpResponse {
        let headers = req.headers();
        let answer = crate::dashboard::respond_installed(
            path,
            Some(req.query_string()),
            headers.get(AUTHORIZATION).map(|value| value.as_bytes()),
            headers
                .get_all(ACCEPT_ENCODING)
                .filter_map(|value| value.to_str().ok()),
        );
        let status =
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::build(status);
        for header in answer.headers() {
            response.insert_header(header);
        }
        response.body(answer.body)
    }
}

//! HTTP request profiling: the shared rules ([`HttpConfig`], [`HttpRules`]) and, behind their
//! features, the adapters for tower/axum and actix-web and handlers that serve `/metrics` from
//! the application's own router.

pub use profilis_integrations::http::*;

/// The tower layer ([`tower::ProfilisLayer`]) for any tower/hyper service.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use profilis_integrations::tower;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum {
    //! axum 0.8: serve `/metrics` from the application's own router with [`metrics_router`]
    //! instead of (or beside) the built-in listener. Requests are profiled by the tower layer,
    //! [`ProfilisLayer`](crate::http::tower::ProfilisLayer), which takes route labels from
    //! axum's `MatchedPath` with this feature.
    //!
    //! ```no_run
    //! use axum::{extract::Path, routing::get, Router};
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
    //!     .layer(ProfilisLayer::new(HttpConfig::new().build()))
    //!     // Merged after the layer: scrapes are not profiled themselves.
    //!     .merge(metrics_router());
    //! // axum::serve(listener, app).await?;
    //! # let _ = app;
    //! # Ok(()) }
    //! ```

    use axum::http::header::ACCEPT_ENCODING;
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;

    /// A router that answers `GET` (and `HEAD`) `/metrics` with [`metrics_handler`]. Merge it
    /// into the application's router (`app.merge(metrics_router())`).
    pub fn metrics_router<S>() -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new().route("/metrics", get(metrics_handler))
    }

    /// The `/metrics` page of profilis's recorder ([`crate::render`]), answered as the
    /// built-in listener does: [`METRICS_CONTENT_TYPE`](crate::exposition::METRICS_CONTENT_TYPE),
    /// gzip-compressed when the request's `Accept-Encoding` accepts gzip, and
    /// `Vary: Accept-Encoding`. `503 Service Unavailable` before the exporter is installed.
    pub async fn metrics_handler(headers: HeaderMap) -> Response {
        let Some(page) = crate::render() else {
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
        let page = crate::exposition::metrics_page(page, accept);
        let headers: Vec<_> = page.headers().collect();
        let mut response = page.body.into_response();
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
    //! [`metrics_service`] instead of (or beside) the built-in listener.
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

    use actix_web::dev::HttpServiceFactory;
    use actix_web::http::header::ACCEPT_ENCODING;
    use actix_web::{web, HttpRequest, HttpResponse};

    pub use profilis_integrations::actix::*;

    /// The resource `GET` (and `HEAD`) `/metrics`, answered by [`metrics`]. Register it with
    /// `App::service(metrics_service())`.
    pub fn metrics_service() -> impl HttpServiceFactory {
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .route(web::head().to(metrics))
    }

    /// The `/metrics` page of profilis's recorder ([`crate::render`]), answered as the
    /// built-in listener does: [`METRICS_CONTENT_TYPE`](crate::exposition::METRICS_CONTENT_TYPE),
    /// gzip-compressed when the request's `Accept-Encoding` accepts gzip, and
    /// `Vary: Accept-Encoding`. `503 Service Unavailable` before the exporter is installed.
    pub async fn metrics(req: HttpRequest) -> HttpResponse {
        let Some(page) = crate::render() else {
            return HttpResponse::ServiceUnavailable()
                .body("the profilis exporter is not installed\n");
        };
        let accept = req
            .headers()
            .get_all(ACCEPT_ENCODING)
            .filter_map(|value| value.to_str().ok());
        let page = crate::exposition::metrics_page(page, accept);
        let mut response = HttpResponse::Ok();
        for header in page.headers() {
            response.insert_header(header);
        }
        response.body(page.body)
    }
}

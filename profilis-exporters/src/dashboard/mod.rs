//! The live dashboard: a page at `/` and the JSON behind it, from a sink that keeps the last
//! 15 minutes of every function, route and database vendor.
//!
//! The exporter registers a [`DashboardSink`] when the dashboard is on (by default only when
//! the built-in listener binds a loopback address; [`Exporter::dashboard`](crate::Exporter::dashboard)
//! or `PROFILIS_DASHBOARD` decide otherwise). The sink asks the collector for fine durations,
//! error details and slow calls ([`Sink::wants_details`]), and files each batch in a store
//! shared with the handlers; off, no sink is registered and calls pay nothing for it.
//!
//! # Endpoints
//!
//! Served by the built-in listener (behind its allow-list; the JSON also behind its bearer
//! token) and by the axum and actix-web handlers of `profilis::http` (behind the exporter's
//! bearer token), all through [`Dashboard::respond`]:
//!
//! | request | response |
//! |---|---|
//! | `GET /` | the page (HTML, scripts and styles inline); no token needed, it carries no data and asks for the token |
//! | `GET /metrics.json?window=60\|300\|900` | per site and in total: calls, errors, calls per second, error %, p50/p95/p99/max in ms, a 60-second sparkline; the collector's health (default window 60 s) |
//! | `GET /errors.json?limit=N` | the last errors, newest first (default 50, at most 500 kept) |
//! | `GET /slowest.json?window=60\|300\|900&limit=N` | the slowest recent calls, slowest first (default 50, at most 100) |
//!
//! A `window` or `limit` not allowed is `400` with a message naming the value and what is
//! allowed ([`QueryError`]); a missing or wrong token `401` with `WWW-Authenticate: Bearer`.
//! Bodies are gzip-compressed when the request's `Accept-Encoding` accepts gzip.
//!
//! # Windows and memory
//!
//! The store keeps per site a slot per second for the last minute and a slot per minute for
//! the last 15, each with calls, errors, calls per HTTP status and a [`Latency`](profilis_core::Latency) histogram
//! (percentiles within 3.2 %). The 1-minute window adds up the last 60 second slots; the 5-
//! and 15-minute ones the current minute so far and the whole minutes before it, so they
//! cover between 4 and 5 (14 and 15) minutes: `covered_s` says how much, and rates divide by
//! it. A site idle for 15 minutes is dropped, 500 errors and 100 slow calls a minute are kept,
//! so memory stays bounded whatever the traffic.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use profilis_core::{Batch, Sink, SinkError};

use crate::auth::bearer_authorized;
use crate::exposition::{accepts_gzip, gzip};
use crate::labels::GlobalLabels;

mod json;
mod store;

pub use store::Window;
use store::{Store, KEPT_ERRORS, SLOWEST_PER_MINUTE};

/// The page served at `/`: one self-contained HTML file, compiled into the binary.
pub const PAGE: &str = include_str!("page.html");

/// The paths the dashboard answers.
pub const PATHS: [&str; 4] = ["/", "/metrics.json", "/errors.json", "/slowest.json"];

/// How often the page asks for new data, in milliseconds (`refresh_ms` in `/metrics.json`).
pub const REFRESH_MS: u64 = 2_000;

/// Errors listed when `/errors.json` is asked for no `limit`; at most [`MAX_ERRORS`].
pub const DEFAULT_LIMIT: usize = 50;

/// The most errors kept, and the largest `limit` of `/errors.json`.
pub const MAX_ERRORS: usize = KEPT_ERRORS;

/// The largest `limit` of `/slowest.json` (the slowest calls kept per minute).
pub const MAX_SLOWEST: usize = SLOWEST_PER_MINUTE;

/// Content type of the page.
pub const HTML_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Content type of the JSON endpoints.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// A query parameter of a dashboard endpoint that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// `window` is not one of the windows there are.
    #[error("window={value:?} is not allowed: expected 60, 300 or 900 (seconds)")]
    Window {
        /// The value given.
        value: String,
    },
    /// `limit` is not a whole number from 1 to `max`.
    #[error("limit={value:?} is not allowed: expected a whole number from 1 to {max}")]
    Limit {
        /// The value given.
        value: String,
        /// The largest allowed.
        max: usize,
    },
}

/// The dashboard's store and what its handlers need (the labels it shows, the bearer token it
/// asks for). Cheap to clone: clones share the store.
#[derive(Clone)]
pub struct Dashboard {
    shared: Arc<Shared>,
}

struct Shared {
    store: Mutex<Store>,
    labels: GlobalLabels,
    bearer_token: Option<String>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("labels", &self.shared.labels)
            .field(
                "bearer_token",
                &self.shared.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Dashboard {
    /// An empty dashboard showing `labels`, whose JSON asks for `bearer_token` when set. Feed
    /// it with [`Dashboard::sink`].
    pub fn new(labels: GlobalLabels, bearer_token: Option<String>) -> Dashboard {
        Dashboard {
            shared: Arc::new(Shared {
                store: Mutex::new(Store::new(now_ms())),
                labels,
                bearer_token,
            }),
        }
    }

    /// A sink that files every batch in this dashboard, at the wall-clock time it arrives.
    pub fn sink(&self) -> DashboardSink {
        DashboardSink {
            dashboard: self.clone(),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while filing a batch leaves at worst a half-filed batch: still worth showing.
        self.shared.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Files `batch` as if it arrived at `now_ms` (milliseconds since the Unix epoch): for
    /// replays, tests and benches. [`DashboardSink`] files at the wall-clock time.
    pub fn record_at(&self, now_ms: u64, batch: &Batch<'_>) {
        self.store().ingest(now_ms, batch);
    }

    /// The body of `/metrics.json` for `window`, now.
    pub fn metrics_json(&self, window: Window) -> Vec<u8> {
        self.metrics_json_at(now_ms(), window)
    }

    /// The body of `/metrics.json` for `window` as seen at `now_ms`.
    pub fn metrics_json_at(&self, now_ms: u64, window: Window) -> Vec<u8> {
        // Added up under the lock (the collector waits for at most that), written after it.
        let summary = self.store().summary(now_ms, window);
        json::metrics(&summary, &self.shared.labels, REFRESH_MS)
    }

    /// The body of `/errors.json`: the `limit` newest errors (at most [`MAX_ERRORS`]).
    pub fn errors_json(&self, limit: usize) -> Vec<u8> {
        let (total, kept, errors) = self.store().errors(limit.min(MAX_ERRORS));
        json::errors(total, kept, &errors)
    }

    /// The body of `/slowest.json`: the `limit` slowest calls of `window`, now.
    pub fn slowest_json(&self, window: Window, limit: usize) -> Vec<u8> {
        self.slowest_json_at(now_ms(), window, limit)
    }

    /// The body of `/slowest.json` as seen at `now_ms`.
    pub fn slowest_json_at(&self, now_ms: u64, window: Window, limit: usize) -> Vec<u8> {
        let slowest = self.store().slowest(now_ms, window, limit.min(MAX_SLOWEST));
        json::slowest(window, &slowest)
    }

    /// The answer to a `GET` (or `HEAD`) of `path` with query string `query`, the
    /// `Authorization` header's value and the `Accept-Encoding` values; `None` when `path` is
    /// not one of the dashboard's ([`PATHS`]). The page needs no token; the JSON does, when
    /// one is set.
    pub fn respond<'a>(
        &self,
        path: &str,
        query: Option<&str>,
        authorization: Option<&[u8]>,
        accept_encoding: impl IntoIterator<Item = &'a str>,
    ) -> Option<DashboardResponse> {
        if !PATHS.contains(&path) {
            return None;
        }
        let gzip_ok = accepts_gzip(accept_encoding);
        if path == "/" {
            return Some(DashboardResponse::ok(
                HTML_CONTENT_TYPE,
                PAGE.as_bytes().to_vec(),
                gzip_ok,
            ));
        }
        if !bearer_authorized(self.shared.bearer_token.as_deref(), authorization) {
            return Some(DashboardResponse::unauthorized());
        }
        let body = match self.json(path, query.unwrap_or_default()) {
            Ok(body) => body,
            Err(error) => return Some(DashboardResponse::bad_request(&error)),
        };
        Some(DashboardResponse::ok(JSON_CONTENT_TYPE, body, gzip_ok))
    }

    fn json(&self, path: &str, query: &str) -> Result<Vec<u8>, QueryError> {
        let params = Params::parse(query);
        Ok(match path {
            "/metrics.json" => self.metrics_json(params.window()?),
            "/errors.json" => self.errors_json(params.limit(MAX_ERRORS)?),
            _ => {
                let window = params.window()?;
                self.slowest_json(window, params.limit(MAX_SLOWEST)?)
            }
        })
    }
}

/// The query parameters the endpoints read; others are ignored.
struct Params<'q> {
    window: Option<&'q str>,
    limit: Option<&'q str>,
}

impl<'q> Params<'q> {
    fn parse(query: &'q str) -> Params<'q> {
        let mut params = Params {
            window: None,
            limit: None,
        };
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "window" => &mut params.window,
                "limit" => &mut params.limit,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        params
    }

    fn window(&self) -> Result<Window, QueryError> {
        let Some(value) = self.window else {
            return Ok(Window::OneMinute);
        };
        value
            .parse()
            .ok()
            .and_then(Window::from_seconds)
            .ok_or_else(|| QueryError::Window {
                value: value.to_owned(),
            })
    }

    fn limit(&self, max: usize) -> Result<usize, QueryError> {
        let Some(value) = self.limit else {
            return Ok(DEFAULT_LIMIT.min(max));
        };
        value
            .parse()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| QueryError::Limit {
                value: value.to_owned(),
                max,
            })
    }
}

/// An answer of the dashboard, for the listener or a framework handler to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardResponse {
    /// The HTTP status: 200, 400 or 401.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body, gzip-compressed if [`gzip`](Self::gzip).
    pub body: Vec<u8>,
    /// Whether the body is gzip-compressed.
    pub gzip: bool,
}

impl DashboardResponse {
    fn ok(content_type: &'static str, body: Vec<u8>, gzip_ok: bool) -> DashboardResponse {
        let compressed = if gzip_ok { gzip(&body).ok() } else { None };
        let gzip = compressed.is_some();
        DashboardResponse {
            status: 200,
            content_type,
            body: compressed.unwrap_or(body),
            gzip,
        }
    }

    fn text(status: u16, message: impl Into<Vec<u8>>) -> DashboardResponse {
        DashboardResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            body: message.into(),
            gzip: false,
        }
    }

    fn unauthorized() -> DashboardResponse {
        DashboardResponse::text(
            401,
            "a bearer token is needed: Authorization: Bearer <token>\n",
        )
    }

    fn bad_request(error: &QueryError) -> DashboardResponse {
        DashboardResponse::text(400, format!("{error}\n"))
    }

    /// The headers to send with the body: `Content-Type`, `Cache-Control: no-store` (the
    /// data is live), `Vary: Accept-Encoding` and `Content-Encoding: gzip` for a compressed
    /// body, and `WWW-Authenticate: Bearer` with a `401`.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        [
            ("content-type", self.content_type),
            ("cache-control", "no-store"),
        ]
        .into_iter()
        .chain((self.status == 200).then_some(("vary", "Accept-Encoding")))
        .chain(self.gzip.then_some(("content-encoding", "gzip")))
        .chain((self.status == 401).then_some(("www-authenticate", "Bearer")))
    }
}

/// The sink that feeds a [`Dashboard`] (made by [`Dashboard::sink`]): it wants the details
/// (fine durations, errors, slow calls), never the events one by one.
pub struct DashboardSink {
    dashboard: Dashboard,
}

impl Sink for DashboardSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        self.dashboard.record_at(now_ms(), batch);
        Ok(())
    }

    fn name(&self) -> &str {
        "dashboard"
    }

    fn wants_events(&self) -> bool {
        false
    }

    fn wants_details(&self) -> bool {
        true
    }
}

/// The answer of the installed exporter's dashboard ([`installed`]) to a `GET` of `path`, as
/// [`Dashboard::respond`] gives it: what the framework handlers of `profilis::http` send.
/// `503` before an exporter is installed, `404` when its dashboard is off (or `path` is not
/// one of [`PATHS`]), each with a message saying so.
pub fn respond_installed<'a>(
    path: &str,
    query: Option<&str>,
    authorization: Option<&[u8]>,
    accept_encoding: impl IntoIterator<Item = &'a str>,
) -> DashboardResponse {
    let Some(dashboard) = installed() else {
        // Told without rendering the page: these requests need no token.
        return if !crate::exporter::is_installed() {
            DashboardResponse::text(503, "the profilis exporter is not installed\n")
        } else {
            DashboardResponse::text(
                404,
                "the profilis dashboard is off: turn it on with Exporter::dashboard(true) or \
                 PROFILIS_DASHBOARD=1\n",
            )
        };
    };
    dashboard
        .respond(path, query, authorization, accept_encoding)
        .unwrap_or_else(|| DashboardResponse::text(404, "not found\n"))
}

static INSTALLED: Mutex<Option<Dashboard>> = Mutex::new(None);

/// The dashboard of the installed exporter, if it has one on: what the framework handlers
/// of `profilis::http` answer from.
pub fn installed() -> Option<Dashboard> {
    INSTALLED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Makes `dashboard` the one [`installed`] returns.
pub(crate) fn install(dashboard: &Dashboard) {
    *INSTALLED.lock().unwrap_or_else(|e| e.into_inner()) = Some(dashboard.clone());
}

/// Forgets `dashboard` if it is still the installed one.
pub(crate) fn uninstall(dashboard: &Dashboard) {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if installed
        .as_ref()
        .is_some_and(|d| Arc::ptr_eq(&d.shared, &dashboard.shared))
    {
        *installed = None;
    }
}

#[cfg(test)]
mod tests;

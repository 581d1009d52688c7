//! What every connection shares, and answering one request: the allow-list, the bearer token,
//! the routes (`/metrics`, `/healthz`) and their responses.

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_TYPE,
    WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioTimer;
use tokio::sync::Semaphore;

use super::config::{BeforeScrape, IpNet, ListenerConfig};
use super::connection::Deadline;
use super::pool::Pool;
use super::Render;
use crate::auth::bearer_authorized;
use crate::dashboard::{Dashboard, DashboardResponse, PATHS};
use crate::exposition::metrics_page_as;
use crate::ExpositionFormat;

/// hyper refuses a read buffer smaller than this.
const MIN_READ_BUFFER_BYTES: usize = 8 * 1024;

/// Most connections answered `403` or `503` at once, each; past these, such connections are
/// closed without an answer. Each is held for at most [`ANSWER_LINGER`](super::connection::ANSWER_LINGER).
pub(super) const ANSWERING_LIMIT: usize = 8;

/// Everything a connection needs, shared by all of them.
pub(super) struct Server {
    pub(super) render: Render,
    pub(super) allow: Vec<IpNet>,
    pub(super) bearer_token: Option<String>,
    pub(super) dashboard: Option<Dashboard>,
    /// Awaited before each `/metrics` answer.
    pub(super) before_scrape: Option<BeforeScrape>,
    pub(super) connection_timeout: Duration,
    /// The connections of allowed clients.
    pub(super) pool: Arc<Pool>,
    /// Connections of refused clients being answered `403`.
    pub(super) refusing: Arc<Semaphore>,
    /// Connections being answered `503` because the pool is full of busy connections.
    pub(super) turning_away: Arc<Semaphore>,
    pub(super) http: http1::Builder,
}

impl Server {
    pub(super) fn new(config: ListenerConfig, render: Render) -> Self {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.read_timeout)
            .max_header_size(config.max_header_bytes)
            .max_buf_size(config.max_header_bytes.max(MIN_READ_BUFFER_BYTES));
        Self {
            render,
            allow: config.allow,
            bearer_token: config.bearer_token,
            dashboard: config.dashboard,
            before_scrape: config.before_scrape,
            connection_timeout: config.connection_timeout,
            pool: Pool::new(config.max_connections, config.read_timeout),
            refusing: Arc::new(Semaphore::new(ANSWERING_LIMIT)),
            turning_away: Arc::new(Semaphore::new(ANSWERING_LIMIT)),
            http,
        }
    }

    /// Whether a client may use the listener. An IPv4 client is matched in both of its forms,
    /// `a.b.c.d` and `::ffff:a.b.c.d`, whatever the socket shows it as, so an entry means the
    /// same on an IPv4, an IPv6 and a dual-stack socket.
    pub(super) fn allows(&self, ip: IpAddr) -> bool {
        if self.allow.is_empty() {
            return true;
        }
        let (v4, v6) = match ip.to_canonical() {
            IpAddr::V4(v4) => (Some(v4), IpAddr::V6(v4.to_ipv6_mapped())),
            v6 @ IpAddr::V6(_) => (None, v6),
        };
        self.allow
            .iter()
            .any(|net| net.contains(&v6) || v4.is_some_and(|v4| net.contains(&IpAddr::V4(v4))))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        bearer_authorized(
            self.bearer_token.as_deref(),
            headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
        )
    }

    /// Answers one request. The body is dropped unread; for `/metrics` (`GET`, `HEAD`) of an
    /// authorized client, the [`before_scrape`](ListenerConfig::before_scrape) hook is
    /// awaited before the page is rendered, with the connection's `deadline` stopped.
    pub(super) async fn respond<B>(
        &self,
        request: Request<B>,
        deadline: &Deadline,
    ) -> Response<Full<Bytes>> {
        let (request, body) = request.into_parts();
        drop(body);
        match self.route(&request) {
            Routed::Answer(response) => response,
            Routed::Metrics => {
                self.before_scrape(deadline).await;
                self.metrics(&request.headers)
            }
        }
    }

    /// Runs the before-scrape hook, if any, to its end or for `connection_timeout` at most (its
    /// future is then dropped). A hook that panics (when called, or while its future runs) ends
    /// there: the scrape is answered all the same. While it runs, the connection's `deadline`
    /// is stopped; without a hook the deadline is left alone.
    async fn before_scrape(&self, deadline: &Deadline) {
        let Some(hook) = &self.before_scrape else {
            return;
        };
        let _paused = deadline.pause();
        let Ok(future) = catch_unwind(AssertUnwindSafe(|| hook())) else {
            return;
        };
        // A task of its own: its panic comes back as a `JoinError` (reported by the panic
        // hook like any other), and an update under way is finished even if the client goes;
        // the time limit is the task's own, so it ends then whether or not anyone waits.
        let limit = self.connection_timeout;
        let bounded = async move {
            let _ = tokio::time::timeout(limit, future).await;
        };
        let _ = tokio::spawn(bounded).await;
    }

    /// Where a request goes: an answer at once, or the metrics page (after the hook).
    fn route(&self, request: &hyper::http::request::Parts) -> Routed {
        let path = request.uri.path();
        let dashboard = self.dashboard.as_ref().filter(|_| PATHS.contains(&path));
        // Authenticate before routing, so an unauthenticated client cannot probe for paths;
        // only the dashboard's page is served without the token: it holds no data, and asks
        // for the token to fetch the data with.
        let open_page = dashboard.is_some() && path == "/";
        if !open_page && !self.authorized(&request.headers) {
            let mut response = empty(StatusCode::UNAUTHORIZED);
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Routed::Answer(response);
        }
        let method = &request.method;
        let readable = method == Method::GET || method == Method::HEAD;
        Routed::Answer(match (path, dashboard) {
            ("/metrics", _) if readable => return Routed::Metrics,
            ("/healthz", _) if readable => text(StatusCode::OK, "ok"),
            (_, Some(dashboard)) if readable => {
                let headers = &request.headers;
                let answer = dashboard.respond(
                    path,
                    request.uri.query(),
                    headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
                    accept_encoding(headers),
                );
                answer.map_or_else(
                    || text(StatusCode::NOT_FOUND, "not found\n"),
                    from_dashboard,
                )
            }
            ("/metrics" | "/healthz", _) | (_, Some(_)) => {
                let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        })
    }

    /// Renders the metrics page, in the format the request's `Accept` asks for when the render
    /// function writes both. `HEAD` renders too, so its `Content-Length` and
    /// `Content-Encoding` match what `GET` would send; hyper leaves the body out.
    fn metrics(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let format = match &self.render {
            Render::Text(_) => ExpositionFormat::Text,
            Render::Negotiated(_) => ExpositionFormat::negotiate(
                headers
                    .get_all(ACCEPT)
                    .iter()
                    .filter_map(|value| value.to_str().ok()),
            ),
        };
        let rendered = catch_unwind(AssertUnwindSafe(|| match &self.render {
            Render::Text(render) => render(),
            Render::Negotiated(render) => render(format),
        }));
        let Ok(page) = rendered else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the metrics failed\n",
            );
        };
        let page = metrics_page_as(format, page, accept_encoding(headers));
        let mut response = Response::new(Full::new(Bytes::new()));
        for (name, value) in page.headers() {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        *response.body_mut() = Full::new(Bytes::from(page.body));
        response
    }
}

/// What [`Server::route`] decided.
enum Routed {
    /// This response, at once.
    Answer(Response<Full<Bytes>>),
    /// The metrics page, after the before-scrape hook.
    Metrics,
}

fn accept_encoding(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
}

/// A dashboard's answer as a response.
fn from_dashboard(answer: DashboardResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers() {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    *response.body_mut() = Full::new(Bytes::from(answer.body));
    response
}

pub(super) fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::config::parse_allowed_network;

    #[test]
    fn ipv4_clients_of_dual_stack_sockets_match_ipv4_networks() {
        let server = Server::new(
            ListenerConfig {
                allow: vec![parse_allowed_network("10.0.0.0/8").unwrap()],
                ..ListenerConfig::default()
            },
            Render::Text(Arc::new(String::new)),
        );
        assert!(server.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(server.allows("10.1.2.3".parse().unwrap()));
        assert!(!server.allows("::ffff:11.1.2.3".parse().unwrap()));
        assert!(!server.allows("::1".parse().unwrap()));
    }

    fn allowing(entries: &[&str]) -> Server {
        Server::new(
            ListenerConfig {
                allow: entries.iter().map(|entry| entry.parse().unwrap()).collect(),
                ..ListenerConfig::default()
            },
            Render::Text(Arc::new(String::new)),
        )
    }

    #[test]
    fn ipv4_mapped_entries_match_ipv4_clients_in_both_forms() {
        // Built without `parse_allowed_network`, so the entry stays IPv6.
        let server = allowing(&["::ffff:10.0.0.0/104"]);
        assert!(server.allows("10.1.2.3".parse().unwrap()));
        assert!(server.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!server.allows("11.1.2.3".parse().unwrap()));
        assert!(!server.allows("::ffff:11.1.2.3".parse().unwrap()));
        assert!(!server.allows("::a01:203".parse().unwrap()));
    }

    #[test]
    fn an_ipv6_network_holding_mapped_addresses_admits_ipv4_clients_on_every_socket() {
        let server = allowing(&["::/0"]);
        assert!(server.allows("192.0.2.1".parse().unwrap()));
        assert!(server.allows("::ffff:192.0.2.1".parse().unwrap()));
        assert!(server.allows("2001:db8::1".parse().unwrap()));
        let ipv6_only = allowing(&["2001:db8::/32"]);
        assert!(!ipv6_only.allows("192.0.2.1".parse().unwrap()));
        assert!(ipv6_only.allows("2001:db8::1".parse().unwrap()));
    }
}

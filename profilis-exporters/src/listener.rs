//! The built-in HTTP listener: a small, hardened server that answers Prometheus scrapes on
//! `/metrics` and health checks on `/healthz`, on its own thread with its own tokio runtime, so
//! it runs the same whether or not the application uses tokio.
//!
//! # Routes
//!
//! | request | response |
//! |---|---|
//! | `GET /metrics`, `HEAD /metrics` | `200`, `Content-Type: text/plain; version=0.0.4; charset=utf-8`, the text returned by the render function; gzip-compressed (`Content-Encoding: gzip`) when `Accept-Encoding` accepts gzip. `HEAD` sends the headers only. |
//! | `GET /healthz`, `HEAD /healthz` | `200`, body `ok` |
//! | any other method on those paths | `405` with `Allow: GET, HEAD` |
//! | any other path | `404` |
//! | render function panicked | `500` for that request; the listener keeps serving |
//!
//! The query string is ignored when matching paths. Request bodies are never read.
//!
//! # Defaults
//!
//! | setting | default |
//! |---|---|
//! | [`addr`](ListenerConfig::addr) | [`DEFAULT_LISTEN`], `127.0.0.1:9464`: loopback only |
//! | [`allow`](ListenerConfig::allow) | empty: everyone who can reach the address |
//! | [`bearer_token`](ListenerConfig::bearer_token) | none |
//! | [`read_timeout`](ListenerConfig::read_timeout) | [`DEFAULT_READ_TIMEOUT`], 5 s to send the request headers |
//! | [`connection_timeout`](ListenerConfig::connection_timeout) | [`DEFAULT_CONNECTION_TIMEOUT`], 30 s for the whole connection |
//! | [`max_header_bytes`](ListenerConfig::max_header_bytes) | [`DEFAULT_MAX_HEADER_BYTES`], 8 KiB of request line and headers |
//! | [`max_connections`](ListenerConfig::max_connections) | [`DEFAULT_MAX_CONNECTIONS`], 16 open connections |
//!
//! # Security
//!
//! - **Address.** The default address is loopback, reachable only from the same host. Bind to
//!   `0.0.0.0:<port>` or `[::]:<port>` only when a scraper on another host needs it, and then
//!   narrow it down with the two options below.
//! - **Allow-list.** With [`allow`](ListenerConfig::allow) non-empty, a client whose IP address
//!   is in none of the networks gets `403` with an empty body for every request, whatever the
//!   path, method or credentials, so it learns nothing about the routes. IPv4 clients of a
//!   dual-stack socket (`::ffff:a.b.c.d`) are matched against IPv4 networks too.
//! - **Bearer token.** With [`bearer_token`](ListenerConfig::bearer_token) set, every request
//!   (`/healthz` included, so an unauthenticated client cannot even tell which paths exist) must
//!   carry `Authorization: Bearer <token>`; otherwise it gets `401` with
//!   `WWW-Authenticate: Bearer`. The token is compared in constant time and never printed
//!   (`Debug` of [`ListenerConfig`] redacts it). It travels in clear text: use it on trusted
//!   networks or behind a TLS-terminating proxy.
//! - **Limits.** A client that does not finish its request headers within the read timeout is
//!   disconnected, no connection lives longer than the connection timeout, oversized headers are
//!   refused with `431` and the connection closed, and once `max_connections` connections are
//!   open further ones are closed as soon as they are accepted instead of queueing.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use profilis_exporters::listener::{self, ListenerConfig};
//!
//! let config = ListenerConfig {
//!     addr: "127.0.0.1:0".parse().unwrap(), // any free port
//!     ..ListenerConfig::default()
//! };
//! let listener = listener::start(config, Arc::new(|| "# no metrics yet\n".to_owned()))?;
//! println!("scrape http://{}/metrics", listener.local_addr());
//! listener.shutdown(); // dropping it does the same
//! # Ok::<(), profilis_exporters::listener::ListenerError>(())
//! ```

use std::convert::Infallible;
use std::fmt;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http_body_util::Full;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE,
    VARY, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

pub use ipnet::IpNet;

/// Port of [`DEFAULT_LISTEN`].
pub const DEFAULT_PORT: u16 = 9464;

/// Default listen address: `127.0.0.1:9464`, loopback only.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, DEFAULT_PORT));

/// Default [`ListenerConfig::read_timeout`]: 5 seconds.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Default [`ListenerConfig::connection_timeout`]: 30 seconds.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`ListenerConfig::max_header_bytes`]: 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;

/// Default [`ListenerConfig::max_connections`]: 16.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// Content type of the Prometheus text exposition format served on `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The function the listener calls on every scrape to produce the `/metrics` body.
pub type RenderFn = Arc<dyn Fn() -> String + Send + Sync>;

/// hyper refuses a read buffer smaller than this.
const MIN_READ_BUFFER_BYTES: usize = 8 * 1024;

/// Pause after a failed `accept` (such as running out of file descriptors), so the loop does not
/// spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Settings of the built-in listener. [`Default`] gives the values listed in the
/// [module docs](self#defaults).
#[derive(Clone)]
pub struct ListenerConfig {
    /// Address to listen on. Port `0` picks a free port; see [`Listener::local_addr`].
    pub addr: SocketAddr,
    /// Networks whose clients may use the listener; empty lets in everyone who can reach
    /// [`addr`](Self::addr). Build entries with [`parse_allowed_network`] or [`parse_allow_list`].
    pub allow: Vec<IpNet>,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Time a client has to send the request line and headers of each request, counted from
    /// when the listener starts waiting for them (also bounds idle keep-alive connections).
    pub read_timeout: Duration,
    /// Longest time a connection may stay open, from accept to close, whatever it is doing.
    pub connection_timeout: Duration,
    /// Largest request line plus headers accepted, in bytes; larger ones get `431`.
    pub max_header_bytes: usize,
    /// Most connections open at once; further ones are closed on accept.
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            addr: DEFAULT_LISTEN,
            allow: Vec::new(),
            bearer_token: None,
            read_timeout: DEFAULT_READ_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: show only whether one is set.
        f.debug_struct("ListenerConfig")
            .field("addr", &self.addr)
            .field("allow", &self.allow)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("read_timeout", &self.read_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Why the listener could not be configured or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerError {
    /// A listen address string could not be parsed.
    #[error(
        "listen address {value:?} is not allowed: expected `ip:port` such as `127.0.0.1:9464`, \
         `[::1]:9464`, `0.0.0.0:9464` or `localhost:9464`"
    )]
    InvalidAddr {
        /// The string given.
        value: String,
    },
    /// An allow-list entry could not be parsed.
    #[error(
        "allowed network {value:?} is not allowed: expected an IP address or a CIDR network \
         such as `10.0.0.0/8`, `127.0.0.1` or `::1`"
    )]
    InvalidNetwork {
        /// The string given.
        value: String,
    },
    /// A numeric or duration setting is out of range.
    #[error("listener setting {name} = {value} is not allowed: expected {expected}")]
    InvalidSetting {
        /// The [`ListenerConfig`] field at fault.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The bearer token is empty or holds characters that cannot appear in a header.
    #[error(
        "the bearer token is not allowed: expected at least one visible ASCII character and no \
         spaces (the token itself is not shown)"
    )]
    InvalidBearerToken,
    /// Another socket already listens on the address.
    #[error(
        "listen address {addr} is already in use: stop the other process or choose another port"
    )]
    AddrInUse {
        /// The address that was asked for.
        addr: SocketAddr,
    },
    /// Binding the address failed for another reason (permissions, no such interface, ...).
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The error from the operating system.
        source: io::Error,
    },
    /// The listener thread or its runtime could not be started.
    #[error("could not start the listener thread for {addr}: {source}")]
    Start {
        /// The address the listener was bound to.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
}

/// Parses a listen address: `ip:port` (`127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`), or
/// `localhost:port` meaning `127.0.0.1:port`. Surrounding whitespace is ignored.
///
/// # Errors
///
/// [`ListenerError::InvalidAddr`] naming the string when it is neither.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, ListenerError> {
    let trimmed = s.trim();
    if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        return Ok(addr);
    }
    trimmed
        .strip_prefix("localhost:")
        .and_then(|port| port.parse::<u16>().ok())
        .map(|port| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
        .ok_or_else(|| ListenerError::InvalidAddr {
            value: s.to_owned(),
        })
}

/// Parses one allow-list entry: a CIDR network (`10.0.0.0/8`, `fd00::/8`) or a single address
/// (`127.0.0.1`, `::1`), which allows just that address. Surrounding whitespace is ignored.
///
/// # Errors
///
/// [`ListenerError::InvalidNetwork`] naming the string when it is neither.
pub fn parse_allowed_network(s: &str) -> Result<IpNet, ListenerError> {
    let trimmed = s.trim();
    let parsed = if trimmed.contains('/') {
        trimmed.parse::<IpNet>().ok().map(|net| net.trunc())
    } else {
        trimmed.parse::<IpAddr>().ok().map(IpNet::from)
    };
    parsed.ok_or_else(|| ListenerError::InvalidNetwork {
        value: s.to_owned(),
    })
}

/// Parses a comma-separated allow-list (`"10.0.0.0/8, 127.0.0.1, ::1"`) with
/// [`parse_allowed_network`]; empty entries are skipped, so `""` gives an empty list.
///
/// # Errors
///
/// [`ListenerError::InvalidNetwork`] naming the first entry that does not parse.
pub fn parse_allow_list(s: &str) -> Result<Vec<IpNet>, ListenerError> {
    s.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(parse_allowed_network)
        .collect()
}

/// A running listener. It stops when [`shutdown`](Self::shutdown) is called or when it is
/// dropped; either way open connections are closed and its thread is joined before returning.
#[derive(Debug)]
pub struct Listener {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// The address actually bound, with the real port when port `0` was asked for.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every open connection and joins the listener thread.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // An error means the thread is already gone; joining below still applies.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the listener thread has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

/// Binds `config.addr` and starts serving on a thread of its own, calling `render` for every
/// `/metrics` request. Works from plain threads and from inside a tokio runtime alike.
///
/// The address is bound before this returns, so scrapes succeed as soon as it does.
///
/// # Errors
///
/// - [`ListenerError::InvalidSetting`] when a limit or timeout is zero;
/// - [`ListenerError::InvalidBearerToken`] when the token is empty or not visible ASCII;
/// - [`ListenerError::AddrInUse`] when another socket holds the address;
/// - [`ListenerError::Bind`] when binding fails otherwise;
/// - [`ListenerError::Start`] when the thread or its runtime cannot be created.
pub fn start(config: ListenerConfig, render: RenderFn) -> Result<Listener, ListenerError> {
    validate(&config)?;
    let addr = config.addr;
    let std_listener = std::net::TcpListener::bind(addr).map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            ListenerError::AddrInUse { addr }
        } else {
            ListenerError::Bind { addr, source }
        }
    })?;
    let local_addr = std_listener
        .local_addr()
        .and_then(|local| std_listener.set_nonblocking(true).map(|()| local))
        .map_err(|source| ListenerError::Bind { addr, source })?;

    let server = Arc::new(Server::new(config, render));
    let (ready_tx, ready_rx) = mpsc::sync_channel::<io::Result<()>>(1);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("profilis-listener".to_owned())
        .spawn(move || run(std_listener, server, &ready_tx, stop_rx))
        .map_err(|source| ListenerError::Start {
            addr: local_addr,
            source,
        })?;

    let started = ready_rx.recv().unwrap_or_else(|_| {
        Err(io::Error::other(
            "the listener thread exited during start-up",
        ))
    });
    match started {
        Ok(()) => Ok(Listener {
            local_addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Err(source) => {
            let _ = thread.join();
            Err(ListenerError::Start {
                addr: local_addr,
                source,
            })
        }
    }
}

fn validate(config: &ListenerConfig) -> Result<(), ListenerError> {
    let nonzero_duration = |name, value: Duration| {
        if value.is_zero() {
            Err(ListenerError::InvalidSetting {
                name,
                value: format!("{value:?}"),
                expected: "a duration greater than zero",
            })
        } else {
            Ok(())
        }
    };
    let nonzero_count = |name, value: usize| {
        if value == 0 {
            Err(ListenerError::InvalidSetting {
                name,
                value: value.to_string(),
                expected: "at least 1",
            })
        } else {
            Ok(())
        }
    };
    nonzero_duration("read_timeout", config.read_timeout)?;
    nonzero_duration("connection_timeout", config.connection_timeout)?;
    nonzero_count("max_header_bytes", config.max_header_bytes)?;
    nonzero_count("max_connections", config.max_connections)?;
    if let Some(token) = &config.bearer_token {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ListenerError::InvalidBearerToken);
        }
    }
    Ok(())
}

/// Body of the listener thread: builds the runtime, reports start-up, serves until told to stop.
fn run(
    std_listener: std::net::TcpListener,
    server: Arc<Server>,
    ready: &mpsc::SyncSender<io::Result<()>>,
    stop: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let listener = {
        let _context = runtime.enter();
        match TcpListener::from_std(std_listener) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        }
    };
    let _ = ready.send(Ok(()));
    runtime.block_on(async move {
        let accepting = tokio::spawn(accept_loop(listener, server));
        // Either a stop message or the `Listener` being dropped without one ends the wait.
        let _ = stop.await;
        accepting.abort();
    });
    // Dropping the runtime here drops every connection task, closing their sockets.
}

async fn accept_loop(listener: TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            continue;
        };
        // Full: close at once rather than queue, so a flood cannot pile up connections.
        let Ok(permit) = Arc::clone(&server.slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let allowed = server.allows(peer.ip());
        tokio::spawn(serve_connection(
            Arc::clone(&server),
            stream,
            allowed,
            permit,
        ));
    }
}

async fn serve_connection(
    server: Arc<Server>,
    stream: TcpStream,
    allowed: bool,
    _permit: OwnedSemaphorePermit,
) {
    // Best effort: responses are written in one go, so delaying small segments only adds latency.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(stream);
    // Timing out, a protocol error or the client going away all end in the same place: the
    // connection is dropped and its slot freed.
    if allowed {
        let handler = Arc::clone(&server);
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            std::future::ready(Ok::<_, Infallible>(handler.respond(&request)))
        });
        let connection = server.http.serve_connection(io, service);
        let _ = tokio::time::timeout(server.connection_timeout, connection).await;
    } else {
        let service = service_fn(|_request: Request<hyper::body::Incoming>| {
            std::future::ready(Ok::<_, Infallible>(empty(StatusCode::FORBIDDEN)))
        });
        let connection = server.http_refused.serve_connection(io, service);
        let _ = tokio::time::timeout(server.connection_timeout, connection).await;
    }
}

/// Everything a connection needs, shared by all of them.
struct Server {
    render: RenderFn,
    allow: Vec<IpNet>,
    bearer_token: Option<String>,
    connection_timeout: Duration,
    slots: Arc<Semaphore>,
    http: http1::Builder,
    /// Like `http`, without keep-alive: a refused client gets one answer and is disconnected.
    http_refused: http1::Builder,
}

impl Server {
    fn new(config: ListenerConfig, render: RenderFn) -> Self {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.read_timeout)
            .max_header_size(config.max_header_bytes)
            .max_buf_size(config.max_header_bytes.max(MIN_READ_BUFFER_BYTES));
        let mut http_refused = http.clone();
        http_refused.keep_alive(false);
        Self {
            render,
            allow: config.allow,
            bearer_token: config.bearer_token,
            connection_timeout: config.connection_timeout,
            slots: Arc::new(Semaphore::new(
                config.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            http,
            http_refused,
        }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        if self.allow.is_empty() {
            return true;
        }
        // An IPv4 client of a dual-stack socket shows up as `::ffff:a.b.c.d`.
        let canonical = ip.to_canonical();
        self.allow
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.bearer_token else {
            return true;
        };
        let Some(value) = headers.get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let (Some(scheme), Some(token)) = (value.get(..7), value.get(7..)) else {
            return false;
        };
        // The scheme name is case-insensitive (RFC 7235); the token is compared exactly.
        scheme.eq_ignore_ascii_case(b"bearer ")
            && constant_time_eq(token.trim_ascii(), expected.as_bytes())
    }

    fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        // Authenticate before routing, so an unauthenticated client cannot probe for paths.
        if !self.authorized(request.headers()) {
            let mut response = empty(StatusCode::UNAUTHORIZED);
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        let method = request.method();
        let readable = method == Method::GET || method == Method::HEAD;
        match request.uri().path() {
            "/metrics" if readable => self.metrics(request.headers()),
            "/healthz" if readable => text(StatusCode::OK, "ok"),
            "/metrics" | "/healthz" => {
                let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// Renders the metrics page. `HEAD` renders too, so its `Content-Length` and
    /// `Content-Encoding` match what `GET` would send; hyper leaves the body out.
    fn metrics(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let Ok(page) = catch_unwind(AssertUnwindSafe(|| (self.render)())) else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the metrics failed\n",
            );
        };
        let accept = headers
            .get_all(ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok());
        let page = metrics_page(page, accept);
        let mut response = Response::new(Full::new(Bytes::from(page.body)));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        if page.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
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

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

/// A `/metrics` response body, ready to send with [`METRICS_CONTENT_TYPE`] and, if `gzip`,
/// `Content-Encoding: gzip` (and `Vary: Accept-Encoding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsPage {
    /// The body.
    pub body: Vec<u8>,
    /// Whether the body is gzip-compressed.
    pub gzip: bool,
}

/// The `/metrics` response for exposition text `page` and a request's `Accept-Encoding`
/// values: gzip-compressed when the client accepts gzip. The built-in listener and the
/// framework handlers (`profilis::http`) answer alike through this.
pub fn metrics_page<'a>(
    page: String,
    accept_encoding: impl IntoIterator<Item = &'a str>,
) -> MetricsPage {
    if accepts_gzip(accept_encoding) {
        if let Ok(body) = gzip(page.as_bytes()) {
            return MetricsPage { body, gzip: true };
        }
    }
    MetricsPage {
        body: page.into_bytes(),
        gzip: false,
    }
}

/// Whether `Accept-Encoding` accepts gzip: `gzip` or `x-gzip` with a non-zero weight, or else
/// `*` with a non-zero weight. No header means identity only.
fn accepts_gzip<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    let mut gzip = None;
    let mut any = None;
    for item in values.into_iter().flat_map(|value| value.split(',')) {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let weight = parts
            .find_map(|param| {
                let (name, value) = param.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
            })
            .unwrap_or(1.0);
        let accepted = weight > 0.0;
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(accepted);
        } else if coding == "*" {
            any = Some(accepted);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Compares in time that depends only on the length of `expected`, so response timing does not
/// reveal how much of a guessed token was right.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (index, &byte) in expected.iter().enumerate() {
        difference |= byte ^ given.get(index).copied().unwrap_or(!byte);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept_encoding(value: &str) -> [&str; 1] {
        [value]
    }

    #[test]
    fn gzip_is_accepted_when_listed_with_a_positive_weight() {
        assert!(accepts_gzip(accept_encoding("gzip")));
        assert!(accepts_gzip(accept_encoding("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(accept_encoding("x-gzip")));
        assert!(accepts_gzip(accept_encoding("*")));
    }

    #[test]
    fn gzip_is_refused_when_absent_or_weighted_zero() {
        assert!(!accepts_gzip([]));
        assert!(!accepts_gzip(accept_encoding("identity")));
        assert!(!accepts_gzip(accept_encoding("gzip;q=0")));
        assert!(!accepts_gzip(accept_encoding("*, gzip;q=0")));
        assert!(!accepts_gzip(accept_encoding("br, *;q=0")));
    }

    #[test]
    fn constant_time_eq_matches_only_equal_bytes() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret!", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn ipv4_clients_of_dual_stack_sockets_match_ipv4_networks() {
        let server = Server::new(
            ListenerConfig {
                allow: vec![parse_allowed_network("10.0.0.0/8").unwrap()],
                ..ListenerConfig::default()
            },
            Arc::new(String::new),
        );
        assert!(server.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(server.allows("10.1.2.3".parse().unwrap()));
        assert!(!server.allows("::ffff:11.1.2.3".parse().unwrap()));
        assert!(!server.allows("::1".parse().unwrap()));
    }

    #[test]
    fn debug_of_the_config_hides_the_token() {
        let config = ListenerConfig {
            bearer_token: Some("hunter2".to_owned()),
            ..ListenerConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}

//! The built-in HTTP listener: a small, hardened server that answers Prometheus scrapes on
//! `/metrics` and health checks on `/healthz`, on its own thread with its own tokio runtime, so
//! it runs the same whether or not the application uses tokio.
//!
//! # Routes
//!
//! | request | response |
//! |---|---|
//! | `GET /metrics`, `HEAD /metrics` | `200`, `Content-Type: text/plain; version=0.0.4; charset=utf-8`, the text returned by the render function; with [`start_with_formats`] (the exporter's listener), OpenMetrics (`Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8`) when the request's `Accept` prefers it ([`ExpositionFormat::negotiate`](crate::ExpositionFormat::negotiate)); gzip-compressed (`Content-Encoding: gzip`) when `Accept-Encoding` accepts gzip; `Vary: Accept, Accept-Encoding`. `HEAD` sends the headers only. With a [`before_scrape`](ListenerConfig::before_scrape) hook, the hook's future is awaited first (after the allow-list and token checks), so the page has what it set; a hook that panics is reported by the panic hook and the page is answered all the same. |
//! | `GET /healthz`, `HEAD /healthz` | `200`, body `ok` |
//! | `GET /`, `/metrics.json`, `/errors.json`, `/slowest.json` (and `HEAD`) | with a [`dashboard`](ListenerConfig::dashboard), its page and JSON ([`crate::dashboard`]); the page `/` is served without the bearer token (it carries no data and asks for the token); `404` without a dashboard |
//! | any other method on those paths | `405` with `Allow: GET, HEAD` |
//! | any other path | `404` |
//! | render function panicked | `500` for that request; the listener keeps serving |
//! | any request from a client outside the [allow-list](ListenerConfig::allow) | `403`, empty body, sent as soon as the client connects; then the connection is closed |
//! | any request when every connection is answering a request | `503` with `Retry-After: 1`; then the connection is closed |
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
//! | [`read_timeout`](ListenerConfig::read_timeout) | [`DEFAULT_READ_TIMEOUT`], 5 s to send the request headers (also the longest idle time between keep-alive requests, and how long a response may wait for its client to take it before the connection gives way to a newcomer) |
//! | [`connection_timeout`](ListenerConfig::connection_timeout) | [`DEFAULT_CONNECTION_TIMEOUT`], 30 s for the whole connection |
//! | [`max_header_bytes`](ListenerConfig::max_header_bytes) | [`DEFAULT_MAX_HEADER_BYTES`], 8 KiB of request line and headers |
//! | [`max_connections`](ListenerConfig::max_connections) | [`DEFAULT_MAX_CONNECTIONS`], 16 open connections of allowed clients; when all are taken a newcomer takes the place of one that is not answering a request (see Limits below) |
//!
//! The two timeouts must be greater than zero and at most a day ([`MAX_TIMEOUT`]), the counts
//! at least 1; [`start`] refuses any other value with [`ListenerError::InvalidSetting`] naming
//! the setting.
//!
//! # Security
//!
//! - **Address.** The default address is loopback, reachable only from the same host. Bind to
//!   `0.0.0.0:<port>` or `[::]:<port>` only when a scraper on another host needs it, and then
//!   narrow it down with the two options below.
//! - **Allow-list.** With [`allow`](ListenerConfig::allow) non-empty, a client whose IP address
//!   is in none of the networks gets `403` with an empty body, whatever the path, method or
//!   credentials, so it learns nothing about the routes. The decision is taken when the
//!   connection is accepted, before anything is read: the `403` is written at once, without
//!   waiting for the request, and the connection closed (`Connection: close`); a refused client
//!   never holds one of the `max_connections` places. At most 8 refused connections are being
//!   answered at any time, each for at most 1 s (the time to write the answer and read what the
//!   client still sends, up to 64 KiB, so closing does not reset the connection under the
//!   answer); past that, refused connections are closed at once without an answer. An IPv4
//!   client is matched in both its forms, `a.b.c.d` and `::ffff:a.b.c.d`, so an entry means the
//!   same on IPv4, IPv6 and dual-stack sockets: IPv4-mapped entries are stored as the IPv4
//!   networks they stand for (`::ffff:10.0.0.0/104` is `10.0.0.0/8`), and an IPv6 network that
//!   holds IPv4-mapped addresses (`::/0`) admits those IPv4 clients. An allow-list string that
//!   names no network (`""`) is an error from [`parse_allow_list`], never "allow everyone".
//! - **Bearer token.** With [`bearer_token`](ListenerConfig::bearer_token) set, every request
//!   (`/healthz` included, so an unauthenticated client cannot even tell which paths exist; only
//!   the dashboard's page `/`, when there is a dashboard, is served without it) must
//!   carry `Authorization: Bearer <token>`; otherwise it gets `401` with
//!   `WWW-Authenticate: Bearer`. The token is compared in constant time and never printed
//!   (`Debug` of [`ListenerConfig`] redacts it). It travels in clear text: use it on trusted
//!   networks or behind a TLS-terminating proxy.
//! - **Limits.** A client that does not finish its request headers within the read timeout is
//!   disconnected, no connection lives longer than the connection timeout, and oversized headers
//!   are refused with `431` and the connection closed. Allowed clients share
//!   `max_connections` places, and idle or slow clients cannot fill them: when all are taken, a
//!   newcomer takes the place of the oldest connection that has not sent a complete request
//!   head yet, or else of the connection idle the longest between keep-alive requests, or else
//!   of the connection whose response has waited the longest for its client to take it, once
//!   that is longer than the read timeout (a client that asks for a page larger than the
//!   socket buffers and never reads it cannot hold its place for the connection timeout); that
//!   connection is closed. A connection whose request is being answered (until its response has
//!   been written to the socket, within the read timeout) is not closed for a newcomer. Only
//!   when every place is answering a request does a newcomer get `503 Service Unavailable`
//!   with `Retry-After: 1` and the connection closed, answered like a refused client (at most
//!   8 at a time, each for at most 1 s, past that closed at once). Each accepted connection gets to read its request
//!   before the next is accepted, so a scraper that sends its request right after connecting
//!   is answering before a flood of newcomers can displace it: 64 clients reconnecting as fast
//!   as they are cut, sending nothing or their headers one byte a second, from a refused or an
//!   allowed address, leave a scraper's requests answered within a second
//!   (`tests/listener_flood.rs`).
//!
//! # Example
//!
//! ```
//! # use profilis_exporters as profilis;
//! use std::sync::Arc;
//! use profilis::listener::{self, ListenerConfig};
//!
//! let config = ListenerConfig {
//!     addr: "127.0.0.1:0".parse().unwrap(), // any free port
//!     ..ListenerConfig::default()
//! };
//! let listener = listener::start(config, Arc::new(|| "# no metrics yet\n".to_owned()))?;
//! println!("scrape http://{}/metrics", listener.local_addr());
//! listener.shutdown(); // dropping it does the same
//! # Ok::<(), profilis::listener::ListenerError>(())
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod config;
mod connection;
mod pool;
mod server;

use config::validate;
pub use config::{
    parse_allow_list, parse_allowed_network, parse_listen_addr, BeforeScrape, IpNet,
    ListenerConfig, ListenerError, DEFAULT_CONNECTION_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_PORT, DEFAULT_READ_TIMEOUT,
    MAX_TIMEOUT,
};
use connection::{answer_and_close, Answer};
use server::Server;

/// The function the listener calls on every scrape to produce the `/metrics` body (in the
/// Prometheus text format), for [`start`].
pub type RenderFn = Arc<dyn Fn() -> String + Send + Sync>;

/// The function the listener calls on every scrape to produce the `/metrics` body in the
/// format the scraper asked for, for [`start_with_formats`].
pub type FormatRenderFn = Arc<dyn Fn(crate::ExpositionFormat) -> String + Send + Sync>;

/// Pause after a failed `accept` (such as running out of file descriptors), so the loop does not
/// spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

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
/// `/metrics` request, answered in the Prometheus text format whatever the scraper asks for.
/// Works from plain threads and from inside a tokio runtime alike.
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
    start_rendering(config, Render::Text(render))
}

/// As [`start`], answering each `/metrics` request in the format its `Accept` header asks
/// for ([`ExpositionFormat::negotiate`](crate::ExpositionFormat::negotiate)): `render` is
/// called with that format, and the response carries its content type. The exporter's own
/// listener is started this way.
///
/// # Errors
/// As [`start`].
pub fn start_with_formats(
    config: ListenerConfig,
    render: FormatRenderFn,
) -> Result<Listener, ListenerError> {
    start_rendering(config, Render::Negotiated(render))
}

/// What renders the `/metrics` body.
#[derive(Clone)]
pub(crate) enum Render {
    /// The text format only.
    Text(RenderFn),
    /// The format the request asks for.
    Negotiated(FormatRenderFn),
}

fn start_rendering(config: ListenerConfig, render: Render) -> Result<Listener, ListenerError> {
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

/// Accepts connections and decides at once what each gets: a refused client its `403`, an
/// allowed one a place in the pool (another connection giving way if need be), or `503` when
/// every connection is answering a request. Nothing is held for a client before that decision.
async fn accept_loop(listener: TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            continue;
        };
        if !server.allows(peer.ip()) {
            answer_and_close(&server.refusing, stream, Answer::Forbidden);
        } else if let Ok(slot) = server.pool.admit() {
            let task = tokio::spawn(connection::serve(
                Arc::clone(&server),
                stream,
                Arc::clone(&slot),
            ));
            slot.attach(task.abort_handle());
        } else {
            answer_and_close(&server.turning_away, stream, Answer::Busy);
        }
        // Let the new connection read its request before the next one is accepted: a client
        // that sends its request at once is then busy, and no flood of newcomers displaces it.
        tokio::task::yield_now().await;
    }
}

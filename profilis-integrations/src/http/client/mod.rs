//! Outgoing HTTP requests, the calls a service makes to others: a kind of their own
//! ([`HTTP_CLIENT`]), the rules every client adapter follows ([`ClientConfig`],
//! [`ClientRules`]), and the request being recorded ([`Outgoing`]). The adapters: a tower
//! layer for hyper/tower clients (`tower`, feature `tower-client`) and a
//! `reqwest-middleware` middleware (`reqwest`, feature `reqwest`).
//!
//! # What is recorded
//!
//! - **Metrics**: `profilis_http_client_requests_total` and
//!   `profilis_http_client_request_duration_seconds`, labelled `peer` and `status` (and the
//!   exporter's `service`, `instance`, `worker`; `method` with
//!   [`ClientConfig::method_label`]).
//! - **Peer**: the target's host (lowercase, without the port), or the name given to the
//!   client ([`ClientConfig::peer`]). At most [`ClientConfig::max_peers`] distinct hosts
//!   (default [`DEFAULT_MAX_PEERS`]) get a label of their own, counted over every client of the
//!   process; requests to any other host are labelled [`OTHER_PEER`], so clients that call
//!   arbitrary hosts (or a client built per tenant) cannot add series without end.
//! - **Status**: the response status (a status without a standard reason, as
//!   `http::StatusCode::canonical_reason` knows them, as its class: `555` is `5xx`, `777` is
//!   `7xx`, so a hostile upstream adds at most ten values per peer; events keep the number);
//!   without a response, how the request failed:
//!   `timeout`, `connect_error` (the connection could not be made: refused, unreachable, a name
//!   that does not resolve), `error` (any other transport error, a connection reset after the
//!   request was sent, or a panic in the client) or `cancelled` (the caller dropped the
//!   request before its response). They are read from the types of the client's errors
//!   ([`ClientFailure::of`]), never from their messages.
//! - **Duration**: from the request reaching the adapter until the response body has been read
//!   to its end (or failed, or was dropped), so a slow or streamed body counts in full.
//! - **Errors**: responses with status >= 500, bodies that fail, and every request without a
//!   response; a failure without a response carries the client's error message in its event
//!   (its `Display`, first 2 KiB read, at most 512 bytes kept), with every URL in it cut to
//!   scheme, host, port and path: no userinfo, query string or fragment, which may hold
//!   credentials (reqwest's messages quote the request's URL:
//!   `error sending request for url (http://host:8080/charge)`).
//!   A response body dropped before its end ends the request then, with outcome
//!   `Cancelled`, failed only if its status is.
//! - **Trace context**: the request is a span, a child of the caller's current span (a new
//!   trace if there is none), and it carries a W3C `traceparent` header naming it
//!   ([`ClientConfig::propagate`]), so a profiled service that receives it records its request
//!   as a child of this one, in the same trace. A request sampled out (no event of its own)
//!   names the caller's span instead, so no event names a parent that no event has.
//! - **Sampling**: every request is counted; its duration is recorded at the first matching
//!   per-peer rate ([`ClientConfig::peer_sample_rate`]), else [`ClientConfig::sample_rate`],
//!   else the global rate, and always for errors (unless
//!   [`ClientConfig::always_sample_errors`] is off): the same rule as the server adapters'.

#[cfg(any(feature = "tower-client", feature = "reqwest"))]
mod body;
#[cfg(feature = "tower-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-client")))]
pub mod tower;

#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use profilis_core::adapter::{Abandon, Timer};
use profilis_core::context::{self, format_traceparent, SpanContext};
use profilis_core::{validate_rate, Detail, Failure, Kind, Metric, Outcome, Site, Value};

use super::config::{HttpConfigError, Pattern};
use super::rules::draw;

/// Outgoing HTTP requests: `HTTP_CLIENT` events, labelled `peer` (and `status`, `method` by
/// the adapters).
pub static HTTP_CLIENT: Kind = Kind::new(
    "http_client",
    "HTTP_CLIENT",
    "peer",
    Metric {
        name: "profilis_http_client_requests_total",
        help: "Total outgoing HTTP requests",
    },
    Metric {
        name: "profilis_http_client_request_duration_seconds",
        help: "Outgoing HTTP request duration, until the response body was read",
    },
)
.with_event_fields(&["method", "peer", "status"]);

/// The `peer` label of requests to hosts beyond the cap ([`ClientConfig::max_peers`]), and of
/// requests whose URI names no host.
pub const OTHER_PEER: &str = "<other>";

/// How many distinct hosts a client's requests are labelled with by default.
pub const DEFAULT_MAX_PEERS: usize = 100;

/// How the client adapters profile outgoing requests. Build it, then hand it to an adapter.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientConfig {
    peer: Option<&'static str>,
    max_peers: usize,
    exclude: Vec<Pattern>,
    sample_rate: Option<f64>,
    peer_rates: Vec<(Pattern, f64)>,
    always_sample_errors: bool,
    method_label: bool,
    propagate: bool,
    seed: Option<u64>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            peer: None,
            max_peers: DEFAULT_MAX_PEERS,
            exclude: Vec::new(),
            sample_rate: None,
            peer_rates: Vec::new(),
            always_sample_errors: true,
            method_label: false,
            propagate: true,
            seed: None,
        }
    }
}

impl ClientConfig {
    /// Every request profiled and labelled with its host, durations at the global sample
    /// rate, errors always timed, `traceparent` sent.
    pub fn new() -> ClientConfig {
        ClientConfig::default()
    }

    /// Labels every request of this client `peer = name` (a service's name, say), whatever
    /// host it goes to.
    ///
    /// # Errors
    /// [`HttpConfigError::EmptyPeerName`] for an empty (or blank) name.
    pub fn peer(mut self, name: &str) -> Result<Self, HttpConfigError> {
        if name.trim().is_empty() {
            return Err(HttpConfigError::EmptyPeerName {
                name: name.to_owned(),
            });
        }
        self.peer = Some(intern(name));
        Ok(self)
    }

    /// How many distinct hosts get a `peer` label of their own (default
    /// [`DEFAULT_MAX_PEERS`]); requests to others are labelled [`OTHER_PEER`]. The hosts are
    /// counted in the process, over every client: a client admits a host it has not seen
    /// while fewer than its `max_peers` hosts have a label, so however many clients are built,
    /// at most the largest of their caps get one.
    ///
    /// # Errors
    /// [`HttpConfigError::MaxPeers`] for 0.
    pub fn max_peers(mut self, max: usize) -> Result<Self, HttpConfigError> {
        if max == 0 {
            return Err(HttpConfigError::MaxPeers { max });
        }
        self.max_peers = max;
        Ok(self)
    }

    /// Leaves requests to peers that start with one of `patterns` (or match one given as
    /// `re:<regex>`) alone: not timed, not counted, no `traceparent` added.
    ///
    /// # Errors
    /// [`HttpConfigError::InvalidRegex`] or [`HttpConfigError::EmptyPattern`], naming the
    /// pattern.
    pub fn exclude_peers<S: AsRef<str>>(mut self, patterns: &[S]) -> Result<Self, HttpConfigError> {
        for p in patterns {
            self.exclude.push(peer_pattern(p.as_ref())?);
        }
        Ok(self)
    }

    /// The share of requests whose duration is recorded (default: the global rate).
    ///
    /// # Errors
    /// [`HttpConfigError::SampleRate`] if not in `0..=1`.
    pub fn sample_rate(mut self, rate: f64) -> Result<Self, HttpConfigError> {
        self.sample_rate = Some(validate_rate(rate)?);
        Ok(self)
    }

    /// The sample rate of requests to peers that start with `pattern` (or match
    /// `re:<regex>`). The first matching rule wins.
    ///
    /// # Errors
    /// As [`ClientConfig::exclude_peers`] and [`ClientConfig::sample_rate`].
    pub fn peer_sample_rate(mut self, pattern: &str, rate: f64) -> Result<Self, HttpConfigError> {
        let rate = validate_rate(rate)?;
        self.peer_rates.push((peer_pattern(pattern)?, rate));
        Ok(self)
    }

    /// Whether failed requests (status >= 500, no response) are always timed (default `true`).
    pub fn always_sample_errors(mut self, on: bool) -> Self {
        self.always_sample_errors = on;
        self
    }

    /// Adds the opt-in `method` label (default off).
    pub fn method_label(mut self, on: bool) -> Self {
        self.method_label = on;
        self
    }

    /// Whether requests carry a W3C `traceparent` header naming their span (default `true`).
    /// A request that already has one keeps it.
    pub fn propagate(mut self, on: bool) -> Self {
        self.propagate = on;
        self
    }

    /// Seeds the sampling decisions, for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The rules, ready to share between requests (and clones of the adapter).
    pub fn build(self) -> ClientRules {
        let seed = self.seed.unwrap_or_else(profilis_core::adapter::random_u64);
        ClientRules(Arc::new(Rules {
            config: self,
            random: AtomicU64::new(seed),
        }))
    }
}

/// A pattern of peers: as a route pattern, a prefix written lowercase (hosts are compared
/// lowercase), or a regular expression after `re:`.
fn peer_pattern(pattern: &str) -> Result<Pattern, HttpConfigError> {
    if pattern.starts_with("re:") {
        Pattern::parse(pattern)
    } else {
        Pattern::parse(&pattern.to_ascii_lowercase())
    }
}

#[derive(Debug)]
struct Rules {
    config: ClientConfig,
    random: AtomicU64,
}

/// The peer labels of the process: every host admitted by a client (counted, for the cap) and
/// every name given to one, each kept once for the process, as every label is.
#[derive(Default)]
struct Peers {
    labels: HashMap<Box<str>, &'static str>,
    hosts: usize,
}

static PEERS: RwLock<Option<Peers>> = RwLock::new(None);

/// The label `name` (a peer named by the application's code), made once for the process.
fn intern(name: &str) -> &'static str {
    if let Some(&label) = PEERS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|p| p.labels.get(name))
    {
        return label;
    }
    let mut peers = PEERS.write().unwrap_or_else(|e| e.into_inner());
    let peers = peers.get_or_insert_with(Peers::default);
    if let Some(&label) = peers.labels.get(name) {
        return label;
    }
    let label: &'static str = Box::leak(name.into());
    peers.labels.insert(name.into(), label);
    label
}

/// The built rules of outgoing requests (cheap to clone), made by [`ClientConfig::build`].
/// Adapters call [`ClientRules::start`] when a request goes out, and end the [`Outgoing`]
/// it returns when the response body has been read.
#[derive(Debug, Clone)]
pub struct ClientRules(Arc<Rules>);

impl Default for ClientRules {
    fn default() -> Self {
        ClientConfig::new().build()
    }
}

impl ClientRules {
    /// Starts profiling a request of `method` to `host` (`None`: the URI names none), unless
    /// its peer is excluded or profiling is off (`None`). Its span is a child of this thread's
    /// current span.
    pub fn start(&self, method: &str, host: Option<&str>) -> Option<Outgoing> {
        let begun = self.begin(host)?;
        Some(Outgoing {
            begun,
            method: super::method_label(method),
            status: None,
            with_method: self.0.config.method_label,
        })
    }

    /// The start every outgoing call shares (an HTTP request, a gRPC call): its timer, its
    /// peer and its sampling draw, by these rules. `None` if its peer is excluded or profiling
    /// is off.
    pub(crate) fn begin(&self, host: Option<&str>) -> Option<Begun> {
        // The caller's span, before the call's own: what its `traceparent` names if its
        // duration is not recorded (see `Begun::sent_context`).
        let caller = context::current();
        // Nothing more when profiling is off: no host is admitted then.
        let timer = Timer::start(None)?;
        let config = &self.0.config;
        // The rules (exclusions, rates) see the host, lowercase, or the client's name: a host
        // beyond the cap keeps its rules.
        let host = host.filter(|h| !h.is_empty()).map(lowercase);
        let key = config.peer.or(host.as_deref()).unwrap_or(OTHER_PEER);
        if config.exclude.iter().any(|p| p.matches(key)) {
            return None;
        }
        let drawn = draw(&config.peer_rates, config.sample_rate, key, &self.0.random);
        let peer = match config.peer {
            Some(name) => name,
            None => admit(host, config.max_peers),
        };
        Some(Begun {
            timer,
            caller,
            peer,
            drawn,
            always_sample_errors: config.always_sample_errors,
            propagate: config.propagate,
        })
    }
}

/// An outgoing call started by [`ClientRules::begin`]: what every kind of outgoing call
/// (HTTP, gRPC) keeps until it ends.
#[derive(Debug)]
pub(crate) struct Begun {
    pub(crate) timer: Timer,
    /// The span current when the call started, if any.
    pub(crate) caller: Option<SpanContext>,
    pub(crate) peer: &'static str,
    pub(crate) drawn: bool,
    pub(crate) always_sample_errors: bool,
    pub(crate) propagate: bool,
}

impl Begun {
    /// Whether a call that ended `failed` has its duration recorded.
    pub(crate) fn timed(&self, failed: bool) -> bool {
        self.drawn || (self.always_sample_errors && failed)
    }

    /// The span the call's trace context names to the service it calls: its own when its
    /// duration is recorded (its event is the parent of the service's request); for a call
    /// sampled out, the caller's, so that the service's request does not name a parent that
    /// no event has (and none without a caller's span). `None` with propagation off.
    pub(crate) fn sent_context(&self) -> Option<SpanContext> {
        if !self.propagate {
            return None;
        }
        if self.drawn {
            Some(self.timer.context())
        } else {
            self.caller
        }
    }
}

/// The `peer` label of `host` (lowercase): the host if it has one (it was admitted before, by
/// any client), or if fewer than `max` hosts have one, else [`OTHER_PEER`].
fn admit(host: Option<Cow<'_, str>>, max: usize) -> &'static str {
    let Some(host) = host else {
        return OTHER_PEER;
    };
    {
        let peers = PEERS.read().unwrap_or_else(|e| e.into_inner());
        let peers = peers.as_ref();
        if let Some(&label) = peers.and_then(|p| p.labels.get(&*host)) {
            return label;
        }
        // Beyond the cap: no write lock for a host that will not get a label.
        if peers.is_some_and(|p| p.hosts >= max) {
            return OTHER_PEER;
        }
    }
    let mut peers = PEERS.write().unwrap_or_else(|e| e.into_inner());
    let peers = peers.get_or_insert_with(Peers::default);
    if let Some(&label) = peers.labels.get(&*host) {
        return label;
    }
    if peers.hosts >= max {
        return OTHER_PEER;
    }
    let label: &'static str = Box::leak(host.as_ref().into());
    peers
        .labels
        .insert(host.into_owned().into_boxed_str(), label);
    peers.hosts += 1;
    label
}

/// A host as a label: lowercase (host names are not case-sensitive), copied only if it must be.
fn lowercase(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// A boxed error, as tower's layers (and tonic's `Channel`) return: the error of the client
/// layers.
#[cfg(any(feature = "tower-client", feature = "grpc"))]
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The W3C trace context header, made once.
#[cfg(any(feature = "tower-client", feature = "reqwest", feature = "grpc"))]
static TRACEPARENT: ::http::header::HeaderName =
    ::http::header::HeaderName::from_static("traceparent");

/// Adds the `traceparent` naming `sent` (what an outgoing call sends, see
/// `Begun::sent_context`) to `headers`, unless they carry one already (the caller's own
/// propagation wins). The context added, if any.
#[cfg(any(feature = "tower-client", feature = "reqwest", feature = "grpc"))]
pub(crate) fn add_traceparent(
    sent: Option<SpanContext>,
    headers: &mut ::http::HeaderMap,
) -> Option<SpanContext> {
    if headers.contains_key(&TRACEPARENT) {
        return None;
    }
    let ctx = sent?;
    let value = ::http::HeaderValue::from_str(&format_traceparent(ctx)?).ok()?;
    headers.insert(TRACEPARENT.clone(), value);
    Some(ctx)
}

/// How an outgoing request failed without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientFailure {
    /// It timed out (connecting, or waiting for the response): `status="timeout"`.
    Timeout,
    /// The connection could not be made (refused, reset, no route, DNS):
    /// `status="connect_error"`.
    Connect,
    /// Any other error of the client: `status="error"`.
    Other,
}

impl ClientFailure {
    /// The `status` label of a request that failed so.
    pub fn status_label(self) -> &'static str {
        match self {
            ClientFailure::Timeout => "timeout",
            ClientFailure::Connect => "connect_error",
            ClientFailure::Other => "error",
        }
    }

    /// How `error` failed, read from the types of it and its sources (never from their
    /// messages, which may quote the URL, or fail to write): an `std::io::Error` of kind
    /// `TimedOut` is a timeout, and so are tower's and tokio's `Elapsed` (with the
    /// `tower-client` or `grpc` feature) and tonic's `TimeoutExpired` (with `grpc`); an I/O error saying the connection could not be made (refused,
    /// address, host or network unreachable), or hyper-util's connect errors (DNS included,
    /// with `tower-client`), are connection errors; anything else (a connection reset after
    /// the request was sent, say) is [`ClientFailure::Other`]. Adapters with a client that
    /// knows better (reqwest's `is_timeout`, `is_connect`) ask it first.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> ClientFailure {
        use std::io::ErrorKind;
        let mut failure = ClientFailure::Other;
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    ErrorKind::TimedOut => return ClientFailure::Timeout,
                    ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable => failure = ClientFailure::Connect,
                    _ => {}
                }
            }
            #[cfg(any(feature = "tower-client", feature = "grpc"))]
            if e.is::<::tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
                return ClientFailure::Timeout;
            }
            #[cfg(feature = "grpc")]
            if e.is::<tonic::TimeoutExpired>() {
                return ClientFailure::Timeout;
            }
            #[cfg(feature = "tower-client")]
            if e.downcast_ref::<hyper_util::client::legacy::Error>()
                .is_some_and(hyper_util::client::legacy::Error::is_connect)
            {
                failure = ClientFailure::Connect;
            }
            next = e.source();
        }
        failure
    }
}

/// A client's error message as an event keeps it: written out (at most
/// [`MAX_ERROR_TEXT`] bytes read), with every URL in it (`scheme://...`, up to the next
/// whitespace) cut to its scheme, host, port and path. Its userinfo (`user:password@`), query
/// string and fragment are left out, as they may hold credentials (`?api_key=...`): reqwest
/// quotes the request's URL in its errors, and a middleware's or a client's error may quote
/// anything. The one rule of every client adapter, HTTP and gRPC.
pub(crate) struct Redacted<'a>(pub(crate) &'a dyn fmt::Display);

/// How much of a client's error message is read before its URLs are redacted, in bytes: more
/// than events keep ([`Failure::MAX_MESSAGE`]), so a redacted URL still leaves them room.
const MAX_ERROR_TEXT: usize = 4 * Failure::MAX_MESSAGE;

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_urls(&read_bounded(self.0, MAX_ERROR_TEXT)))
    }
}

/// `message` written out, up to `max` bytes. A message cut there loses its last word (from its
/// last whitespace on), so that no URL is kept cut inside its userinfo, where it would not be
/// recognised as one.
fn read_bounded(message: &dyn fmt::Display, max: usize) -> String {
    let mut text = String::new();
    if profilis_core::adapter::write_bounded(message, max, &mut text) {
        let last_word = text.rfind(char::is_whitespace).unwrap_or(0);
        text.truncate(last_word);
        text.push('…');
    }
    text
}

/// `text` with every URL in it cut to its scheme, host, port and path (see [`Redacted`]). A
/// URL runs from its `://` to the next whitespace; its authority ends at the first `/`, `?`,
/// `#` or `\\` (as URL parsers read it), and its userinfo is what comes before the
/// authority's last `@`. A URL in brackets or quotes keeps its closing one.
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // What encloses the URL, if anything: the character before its scheme.
        let scheme_start = before[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map(|i| i + 1)
            .unwrap_or(0);
        let closer = match before[..scheme_start].chars().next_back() {
            Some('(') => Some(')'),
            Some('[') => Some(']'),
            Some('<') => Some('>'),
            Some('"') => Some('"'),
            Some('\'') => Some('\''),
            _ => None,
        };
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (url, tail) = after.split_at(end);
        let authority_end = url.find(['/', '?', '#', '\\']).unwrap_or(url.len());
        let (authority, path_on) = url.split_at(authority_end);
        out.push_str(
            authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host),
        );
        let path_end = path_on.find(['?', '#']).unwrap_or(path_on.len());
        out.push_str(&path_on[..path_end]);
        let dropped = &path_on[path_end..];
        if let Some(closer) = closer.filter(|&c| dropped.ends_with(c)) {
            out.push(closer);
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// How an outgoing request ended, as far as the adapter could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEnd {
    /// The response body was read to its end (or there was none).
    Complete,
    /// The response body failed while being read.
    BodyFailed,
    /// There was no response: the client failed so.
    Failed(ClientFailure),
    /// The caller dropped the request before its response (`status="cancelled"`), or the
    /// response body before its end (with the response's status).
    Cancelled,
    /// The client panicked (`status="error"` before a response).
    Panicked,
}

/// An outgoing request being profiled: a span (the `traceparent` it sends names it) and a
/// timer. Dropped unfinished, it is not recorded: adapters keep it in a
/// [`RecordOnce`](profilis_core::adapter::RecordOnce), which ends it as cancelled or
/// panicked.
#[derive(Debug)]
#[must_use = "an outgoing request is recorded when finished"]
pub struct Outgoing {
    begun: Begun,
    method: &'static str,
    /// The response status, once there is a response.
    status: Option<u16>,
    with_method: bool,
}

impl Outgoing {
    /// The request's span: its `traceparent` names it, and work done under it (a retry's
    /// backoff, say) is its child.
    pub fn context(&self) -> SpanContext {
        self.begun.timer.context()
    }

    /// The `traceparent` header the request carries (`None` with
    /// [`ClientConfig::propagate`] off). It names the request's span when its duration is
    /// recorded (its event is the parent of the service's request); for a request sampled out
    /// it names the caller's span instead, so that the service's request does not name a
    /// parent that no event has (and none without a caller's span).
    pub fn traceparent(&self) -> Option<String> {
        format_traceparent(self.begun.sent_context()?)
    }

    /// The request's `peer` label.
    pub fn peer(&self) -> &'static str {
        self.begun.peer
    }

    /// There is a response, with `status`.
    pub fn respond(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// Records the request as ended so. `error` is the client's error, for a request that
    /// failed without a response: its message is kept in the event if an output wants it.
    pub fn finish(self, end: ClientEnd, error: Option<&dyn fmt::Display>) {
        let status = match (end, self.status) {
            (ClientEnd::Failed(failure), _) => Status::Failed(failure),
            (ClientEnd::Panicked, None) => Status::Failed(ClientFailure::Other),
            (_, Some(code)) => Status::Code(code),
            (_, None) => Status::Cancelled,
        };
        let failed = match status {
            Status::Code(code) => {
                code >= 500 || matches!(end, ClientEnd::BodyFailed | ClientEnd::Panicked)
            }
            // (A class is a label, never an end.)
            Status::Class(_) | Status::Failed(_) | Status::Cancelled => true,
        };
        let outcome = match end {
            ClientEnd::Cancelled => Outcome::Cancelled,
            ClientEnd::Panicked => Outcome::Panicked,
            _ => Outcome::Returned,
        };
        let begun = self.begun;
        let site = site(
            begun.peer,
            status.labelled(),
            self.with_method.then_some(self.method),
        );
        let timed = begun.timed(failed);
        let detail = ClientDetail {
            method: self.method,
            peer: begun.peer,
            status,
        };
        match (status, error) {
            (Status::Failed(failure), Some(error)) if failed => begun.timer.finish_failed(
                site,
                timed,
                outcome,
                || Failure::new(failure.status_label(), Some(&Redacted(error))),
                || detail,
            ),
            _ => begun.timer.finish(site, timed, failed, outcome, || detail),
        }
    }
}

impl Abandon for Outgoing {
    fn abandon(self, outcome: Outcome) {
        // Dropped by a panic unwinding past it (a middleware after this one panicked): a
        // panic, not a cancellation.
        let end = if outcome.or_unwinding() == Outcome::Panicked {
            ClientEnd::Panicked
        } else {
            ClientEnd::Cancelled
        };
        self.finish(end, None);
    }
}

/// The `status` of an outgoing request: its response's, or how it failed without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Status {
    Code(u16),
    /// A label only: the class (1 to 9) of a status without a standard reason, or 0 for a
    /// status outside 100 to 999 (see [`Status::labelled`]).
    Class(u16),
    Failed(ClientFailure),
    Cancelled,
}

impl Status {
    fn label(self) -> Cow<'static, str> {
        match self.labelled() {
            Status::Code(code) => Cow::Owned(code.to_string()),
            Status::Class(0) => Cow::Borrowed(UNKNOWN_STATUS),
            Status::Class(class) => Cow::Owned(format!("{class}xx")),
            Status::Failed(failure) => Cow::Borrowed(failure.status_label()),
            Status::Cancelled => Cow::Borrowed("cancelled"),
        }
    }

    /// The status as its label says it: a response status `http::StatusCode` knows a reason
    /// for (the registered ones, `418` included) as it is, any other from 100 to 999 as its
    /// class (`555` is `5xx`, `777` is `7xx`), anything else [`UNKNOWN_STATUS`]. A hostile or
    /// broken upstream answering invented statuses adds at most the ten classes to a peer's
    /// series, not one per status. The one rule of every client adapter.
    fn labelled(self) -> Status {
        let Status::Code(code) = self else {
            return self;
        };
        match ::http::StatusCode::from_u16(code) {
            Ok(known) if known.canonical_reason().is_some() => self,
            Ok(_) => Status::Class(code / 100),
            Err(_) => Status::Class(0),
        }
    }
}

/// The `status` label of a response status outside 100 to 999 (which no HTTP client gives;
/// only [`Outgoing::respond`] can be told one).
pub const UNKNOWN_STATUS: &str = "unknown";

/// The detail of an `HTTP_CLIENT` event: JSON sinks write it as
/// `"method":"GET","peer":"payments","status":200` (`"status":"timeout"` without a
/// response). Read it back with `event.detail::<ClientDetail>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDetail {
    method: &'static str,
    peer: &'static str,
    status: Status,
}

impl ClientDetail {
    /// The request's method (`OTHER` for a non-standard one).
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The request's `peer` label.
    pub fn peer(&self) -> &'static str {
        self.peer
    }

    /// The response status, if there was a response.
    pub fn status(&self) -> Option<u16> {
        match self.status {
            Status::Code(code) => Some(code),
            _ => None,
        }
    }

    /// The `status` label: the response status, or how the request failed without one.
    pub fn status_label(&self) -> Cow<'static, str> {
        self.status.label()
    }
}

impl Detail for ClientDetail {
    fn field(&self, key: &str) -> Option<Value<'_>> {
        match key {
            "method" => Some(Value::Str(self.method)),
            "peer" => Some(Value::Str(self.peer)),
            "status" => Some(match self.status {
                Status::Code(code) => Value::U64(u64::from(code)),
                Status::Failed(failure) => Value::Str(failure.status_label()),
                Status::Cancelled => Value::Str("cancelled"),
                Status::Class(_) => Value::Str(UNKNOWN_STATUS),
            }),
            _ => None,
        }
    }
}

/// The site of requests to `peer` that ended with `status` (and `method`, with the `method`
/// label): found per thread, interned in core the first time a thread sees it.
fn site(peer: &'static str, status: Status, method: Option<&'static str>) -> &'static Site {
    type Key = (usize, Status, Option<usize>);
    thread_local! {
        static SITES: RefCell<HashMap<Key, &'static Site>> = RefCell::new(HashMap::new());
    }
    // Labels are `'static` and made once each, so their addresses identify them.
    let key = (
        peer.as_ptr() as usize,
        status,
        method.map(|m| m.as_ptr() as usize),
    );
    if let Ok(Some(site)) = SITES.try_with(|sites| sites.borrow().get(&key).copied()) {
        return site;
    }
    let status_text = status.label();
    let labels = [
        ("status", &*status_text),
        ("method", method.unwrap_or_default()),
    ];
    let labels = if method.is_some() {
        &labels[..]
    } else {
        &labels[..1]
    };
    let site = Site::interned(&HTTP_CLIENT, peer, labels);
    // A thread being torn down has no table; the site is still right.
    let _ = SITES.try_with(|sites| sites.borrow_mut().insert(key, site));
    site
}

#[cfg(test)]
mod tests {
    use super::*;
    use profilis_core::testing::capture;

    #[test]
    fn peers_are_hosts_up_to_the_cap_then_other() {
        // The only test here that labels requests by host: the hosts are counted for the
        // process.
        let rules = ClientConfig::new()
            .max_peers(2)
            .unwrap()
            .exclude_peers(&["Internal."])
            .unwrap()
            .build();
        let ((), _) = capture(|| {
            let peer = |host: Option<&str>| {
                let call = rules.start("GET", host)?;
                let peer = call.peer();
                call.finish(ClientEnd::Complete, None);
                Some(peer)
            };
            // Excluded: not profiled, and it takes no place among the peers.
            assert_eq!(peer(Some("internal.example")), None);
            assert_eq!(peer(Some("a.example")), Some("a.example"));
            assert_eq!(peer(Some("B.Example")), Some("b.example"));
            assert_eq!(peer(Some("c.example")), Some(OTHER_PEER));
            // Admitted ones keep their label, under the same text, once.
            assert_eq!(peer(Some("b.example")), Some("b.example"));
            assert!(std::ptr::eq(
                peer(Some("a.example")).unwrap(),
                peer(Some("A.EXAMPLE")).unwrap()
            ));
            assert_eq!(peer(None), Some(OTHER_PEER));
            assert_eq!(peer(Some("")), Some(OTHER_PEER));
            // The cap is the process's: other clients, however many, label no more hosts
            // than the largest cap, and keep the labels already given.
            for i in 0..100 {
                let other = ClientConfig::new().max_peers(2).unwrap().build();
                let call = other
                    .start("GET", Some(&format!("host-{i}.example")))
                    .unwrap();
                assert_eq!(call.peer(), OTHER_PEER);
                call.finish(ClientEnd::Complete, None);
            }
            let wider = ClientConfig::new().max_peers(3).unwrap().build();
            let call = wider.start("GET", Some("d.example")).unwrap();
            assert_eq!(call.peer(), "d.example");
            call.finish(ClientEnd::Complete, None);
            let call = wider.start("GET", Some("A.example")).unwrap();
            assert_eq!(call.peer(), "a.example");
            call.finish(ClientEnd::Complete, None);
        });
        // Off (no collector runs while this test holds the lock every capture takes):
        // nothing is started, and no host takes a place.
        {
            let _no_collector = profilis_core::testing::lock();
            assert!(rules.start("GET", Some("e.example")).is_none());
            assert_eq!(admit(Some("e.example".into()), 3), OTHER_PEER);
        }
        let named = ClientConfig::new().peer("payments").unwrap().build();
        let ((), _) = capture(|| {
            let call = named.start("GET", Some("10.0.0.7")).unwrap();
            assert_eq!(call.peer(), "payments");
            call.finish(ClientEnd::Complete, None);
        });
        // A name is made once, however many clients take it.
        let again = ClientConfig::new().peer("payments").unwrap();
        assert!(std::ptr::eq(
            again.peer.unwrap(),
            named.0.config.peer.unwrap()
        ));
    }

    #[test]
    fn bad_settings_are_errors_that_name_the_value() {
        let err = ClientConfig::new().peer(" ").unwrap_err();
        assert_eq!(err, HttpConfigError::EmptyPeerName { name: " ".into() });
        assert!(err.to_string().contains("\" \""), "{err}");
        let err = ClientConfig::new().max_peers(0).unwrap_err();
        assert!(err.to_string().contains("max_peers 0"), "{err}");
        assert!(ClientConfig::new().peer_sample_rate("re:(", 0.5).is_err());
        assert!(ClientConfig::new().sample_rate(2.0).is_err());
        assert!(ClientConfig::new().exclude_peers(&[""]).is_err());
    }

    #[test]
    fn failures_are_read_from_the_types_of_the_error_and_its_sources() {
        use std::io::{Error, ErrorKind};
        #[derive(Debug)]
        struct Wrapper(Error);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Wrapper(Error::from(ErrorKind::ConnectionRefused));
        assert_eq!(ClientFailure::of(&refused), ClientFailure::Connect);
        let timed_out = Wrapper(Error::from(ErrorKind::TimedOut));
        assert_eq!(ClientFailure::of(&timed_out), ClientFailure::Timeout);
        // A reset after the request was sent is not a connection that could not be made.
        let reset = Wrapper(Error::from(ErrorKind::ConnectionReset));
        assert_eq!(ClientFailure::of(&reset), ClientFailure::Other);
        // Messages are not read: a URL may say anything.
        let says: Box<dyn std::error::Error + Send + Sync> =
            "error sending request for url (http://a/?timeoutSeconds=30): timed out".into();
        assert_eq!(ClientFailure::of(&*says), ClientFailure::Other);
        let other = Error::other("malformed response");
        assert_eq!(ClientFailure::of(&other), ClientFailure::Other);
        // An error whose message fails to write is classified all the same.
        #[derive(Debug)]
        struct Unwritable;
        impl fmt::Display for Unwritable {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                Err(fmt::Error)
            }
        }
        impl std::error::Error for Unwritable {}
        assert_eq!(ClientFailure::of(&Unwritable), ClientFailure::Other);
    }

    #[test]
    fn statuses_without_a_standard_reason_are_labelled_by_class() {
        let label = |code| Status::Code(code).label().into_owned();
        assert_eq!(label(200), "200");
        assert_eq!(label(418), "418");
        assert_eq!(label(511), "511");
        assert_eq!(label(555), "5xx");
        assert_eq!(label(299), "2xx");
        assert_eq!(label(999), "9xx");
        for outside in [0, 99, 1000, u16::MAX] {
            assert_eq!(label(outside), UNKNOWN_STATUS);
        }
        assert_eq!(Status::Code(555).labelled(), Status::Code(599).labelled());
        assert_eq!(Status::Cancelled.label(), "cancelled");
    }

    #[test]
    fn error_messages_keep_no_userinfo_query_or_fragment_of_any_url() {
        let redacted = |message: &str| Redacted(&message).to_string();
        assert_eq!(
            redacted("error sending request for url (http://127.0.0.1:1/p?api_key=SECRET)"),
            "error sending request for url (http://127.0.0.1:1/p)"
        );
        assert_eq!(
            redacted("for url (https://admin:hunter2@Example.com:8443/a/b#frag)"),
            "for url (https://Example.com:8443/a/b)"
        );
        // A query holding the closing bracket, several URLs, no path, a URL at the end.
        assert_eq!(
            redacted("[http://h/p?k=a)SECRET)] then ws://u@h2?t=S x http://h3/q#f"),
            "[http://h/p] then ws://h2 x http://h3/q"
        );
        // An `@` in the path is not userinfo; one before the path is, however many.
        assert_eq!(
            redacted("GET http://a:b@c@host/users/@me?x=1 failed"),
            "GET http://host/users/@me failed"
        );
        assert_eq!(redacted("no url: timed out"), "no url: timed out");
        assert_eq!(redacted("://?x"), "://");
        // A message cut where it is read loses its last word, a URL's userinfo with it.
        let long = format!(
            "{} http://admin:hunter2@host/p",
            "x".repeat(MAX_ERROR_TEXT - 20)
        );
        let cut = redacted(&long);
        assert!(!cut.contains("hunter2") && !cut.contains("admin"), "{cut}");
        assert!(cut.len() <= MAX_ERROR_TEXT + '…'.len_utf8());
        // Cut inside a character, it stays a string.
        let wide = "é".repeat(MAX_ERROR_TEXT);
        assert!(redacted(&wide).ends_with('…'));
    }

    /// A request to the peer named `name` (these tests label no host: see above).
    fn named(name: &str, method: &str) -> Outgoing {
        let rules = ClientConfig::new()
            .peer(name)
            .unwrap()
            .method_label(true)
            .build();
        rules.start(method, None).expect("a collector runs")
    }

    #[test]
    fn each_end_gives_its_status_error_and_outcome() {
        let ((), captured) = capture(|| {
            let mut ok = named("ok.example", "GET");
            ok.respond(200);
            ok.finish(ClientEnd::Complete, None);
            let mut bad = named("bad.example", "POST");
            bad.respond(503);
            bad.finish(ClientEnd::Complete, None);
            let timeout = named("slow.example", "GET");
            timeout.finish(
                ClientEnd::Failed(ClientFailure::Timeout),
                Some(&"operation timed out"),
            );
            let dropped = named("gone.example", "GET");
            dropped.abandon(Outcome::Cancelled);
            let mut unread = named("unread.example", "GET");
            unread.respond(200);
            unread.abandon(Outcome::Cancelled);
            // Dropped by a panic unwinding past it: panicked, not cancelled.
            let unwinding = named("unwinding.example", "GET");
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _call = profilis_core::adapter::RecordOnce::new(unwinding);
                panic!("a middleware panics on purpose");
            }));
            assert!(caught.is_err());
        });
        let ended = |peer: &str| {
            let event = captured.one(peer);
            let detail = event.detail::<ClientDetail>().expect("a client detail");
            (
                detail.status_label().into_owned(),
                event.error,
                event.outcome,
            )
        };
        assert_eq!(
            ended("ok.example"),
            ("200".into(), false, Outcome::Returned)
        );
        assert_eq!(
            ended("bad.example"),
            ("503".into(), true, Outcome::Returned)
        );
        assert_eq!(
            ended("slow.example"),
            ("timeout".into(), true, Outcome::Returned)
        );
        assert_eq!(
            ended("gone.example"),
            ("cancelled".into(), true, Outcome::Cancelled)
        );
        assert_eq!(
            ended("unread.example"),
            ("200".into(), false, Outcome::Cancelled)
        );
        assert_eq!(
            ended("unwinding.example"),
            ("error".into(), true, Outcome::Panicked)
        );
        let slow = captured.one("slow.example");
        assert_eq!(slow.site.label_value("status"), Some("timeout"));
        assert_eq!(slow.site.label_value("method"), Some("GET"));
        assert_eq!(slow.site.kind(), &HTTP_CLIENT);
        let failure = slow.failure.as_deref().expect("the client's error");
        assert_eq!(
            failure.exception_value.as_deref(),
            Some("operation timed out")
        );
        assert_eq!(captured.count("bad.example"), (1, 1));
    }

    #[test]
    fn the_traceparent_names_the_requests_span_under_the_callers() {
        let rules = ClientConfig::new().peer("b").unwrap().build();
        let quiet = ClientConfig::new()
            .peer("b")
            .unwrap()
            .propagate(false)
            .build();
        let unsampled = ClientConfig::new()
            .peer("b")
            .unwrap()
            .sample_rate(0.0)
            .unwrap()
            .build();
        let ((), _) = capture(|| {
            // Sampled out, with no caller: no event will have its span, so no header.
            let call = unsampled.start("GET", None).unwrap();
            assert_eq!(call.traceparent(), None);
            call.finish(ClientEnd::Complete, None);
            let caller = profilis_core::adapter::Timer::start(None)
                .unwrap()
                .context();
            let _in_caller = profilis_core::context::enter(caller);
            // Sampled out, under a caller: the header names the caller's span.
            let call = unsampled.start("GET", None).unwrap();
            let sent = profilis_core::context::parse_traceparent(&call.traceparent().unwrap());
            assert_eq!(sent, Some(caller));
            call.finish(ClientEnd::Complete, None);
            let call = rules.start("GET", None).unwrap();
            let header = call.traceparent().expect("a traceparent");
            let sent = profilis_core::context::parse_traceparent(&header).unwrap();
            assert_eq!(sent, call.context());
            assert_eq!(sent.trace_id, caller.trace_id);
            assert_ne!(sent.span_id, caller.span_id);
            call.finish(ClientEnd::Complete, None);
            let call = quiet.start("GET", None).unwrap();
            assert_eq!(call.traceparent(), None);
            call.finish(ClientEnd::Complete, None);
        });
    }
}

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
//!   (default [`DEFAULT_MAX_PEERS`]) get a label of their own; requests to any other host are
//!   labelled [`OTHER_PEER`], so a client that calls arbitrary hosts cannot add series without
//!   end.
//! - **Status**: the response status; without a response, how the request failed:
//!   `timeout`, `connect_error` (the connection could not be made), `error` (any other
//!   transport error, or a panic in the client) or `cancelled` (the caller dropped the request
//!   before its response).
//! - **Duration**: from the request reaching the adapter until the response body has been read
//!   to its end (or failed, or was dropped), so a slow or streamed body counts in full.
//! - **Errors**: responses with status >= 500, bodies that fail, and every request without a
//!   response; a failure without a response carries the client's error message in its event.
//!   A response body dropped before its end ends the request then, with outcome
//!   `Cancelled`, failed only if its status is.
//! - **Trace context**: the request is a span, a child of the caller's current span (a new
//!   trace if there is none), and it carries a W3C `traceparent` header naming it
//!   ([`ClientConfig::propagate`]), so a profiled service that receives it records its request
//!   as a child of this one, in the same trace.
//! - **Sampling**: every request is counted; its duration is recorded at the first matching
//!   per-peer rate ([`ClientConfig::peer_sample_rate`]), else [`ClientConfig::sample_rate`],
//!   else the global rate, and always for errors (unless
//!   [`ClientConfig::always_sample_errors`] is off): the same rule as the server adapters'.

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
use profilis_core::context::{format_traceparent, SpanContext};
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
        // One name per configuration, kept for the process as every label is.
        self.peer = Some(Box::leak(name.into()));
        Ok(self)
    }

    /// How many distinct hosts get a `peer` label of their own (default
    /// [`DEFAULT_MAX_PEERS`]); requests to others are labelled [`OTHER_PEER`].
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
            self.exclude.push(Pattern::parse(p.as_ref())?);
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
        self.peer_rates.push((Pattern::parse(pattern)?, rate));
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
            peers: RwLock::new(HashMap::new()),
        }))
    }
}

#[derive(Debug)]
struct Rules {
    config: ClientConfig,
    random: AtomicU64,
    /// The hosts admitted as peers (at most `max_peers`), with their labels.
    peers: RwLock<HashMap<Box<str>, &'static str>>,
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
        let config = &self.0.config;
        let peer = match config.peer {
            Some(name) => name,
            None => {
                let host = host.filter(|h| !h.is_empty()).map(lowercase);
                // Tested before the host takes a place among the peers.
                if let Some(host) = &host {
                    if config.exclude.iter().any(|p| p.matches(host)) {
                        return None;
                    }
                }
                self.admit(host)
            }
        };
        if config.exclude.iter().any(|p| p.matches(peer)) {
            return None;
        }
        let timer = Timer::start(None)?;
        Some(Outgoing {
            timer,
            peer,
            method: method_label(method),
            status: None,
            drawn: draw(&config.peer_rates, config.sample_rate, peer, &self.0.random),
            always_sample_errors: config.always_sample_errors,
            with_method: config.method_label,
            propagate: config.propagate,
        })
    }

    /// The `peer` label of `host` (lowercase): the host if it is admitted (it was before, or
    /// there is room for one more), else [`OTHER_PEER`].
    fn admit(&self, host: Option<Cow<'_, str>>) -> &'static str {
        let Some(host) = host else {
            return OTHER_PEER;
        };
        let peers = &self.0.peers;
        if let Some(&label) = peers.read().unwrap_or_else(|e| e.into_inner()).get(&*host) {
            return label;
        }
        let mut admitted = peers.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&label) = admitted.get(&*host) {
            return label;
        }
        if admitted.len() >= self.0.config.max_peers {
            return OTHER_PEER;
        }
        // Kept for the process, as the label of every site is; at most `max_peers` of them.
        let label: &'static str = Box::leak(host.as_ref().into());
        admitted.insert(host.into_owned().into_boxed_str(), label);
        label
    }
}

/// A host as a label: lowercase (host names are not case-sensitive), copied only if it must be.
fn lowercase(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// The `method` label of a request: the standard methods by name, any other as `OTHER` (a
/// method is chosen by the caller's code, but a label must not take arbitrary values).
fn method_label(method: &str) -> &'static str {
    const METHODS: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

/// The W3C trace context header, made once.
#[cfg(any(feature = "tower-client", feature = "reqwest"))]
static TRACEPARENT: ::http::header::HeaderName =
    ::http::header::HeaderName::from_static("traceparent");

/// Adds the `traceparent` naming `outgoing` to `headers`, unless they carry one already (the
/// caller's own propagation wins).
#[cfg(any(feature = "tower-client", feature = "reqwest"))]
fn add_traceparent(outgoing: &Outgoing, headers: &mut ::http::HeaderMap) {
    if headers.contains_key(&TRACEPARENT) {
        return;
    }
    if let Some(value) = outgoing
        .traceparent()
        .and_then(|header| ::http::HeaderValue::from_str(&header).ok())
    {
        headers.insert(TRACEPARENT.clone(), value);
    }
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

    /// How `error` failed, read from it and its sources: an `std::io::Error` of kind
    /// `TimedOut`, or a message saying it timed out, is a timeout; an I/O error of a
    /// connection (refused, reset, aborted, not connected, address or host unreachable) is a
    /// connection error; anything else is [`ClientFailure::Other`]. Adapters with a client
    /// that knows better (reqwest's `is_timeout`, `is_connect`) ask it first.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> ClientFailure {
        use std::io::ErrorKind;
        let mut failure = ClientFailure::Other;
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    ErrorKind::TimedOut => return ClientFailure::Timeout,
                    ErrorKind::ConnectionRefused
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::NotConnected
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable => failure = ClientFailure::Connect,
                    _ => {}
                }
            } else if failure == ClientFailure::Other && says_timed_out(e) {
                // tower's `Elapsed` ("request timed out"), hyper's timeouts: no type to test.
                return ClientFailure::Timeout;
            }
            next = e.source();
        }
        failure
    }
}

/// Whether an error's message says it timed out.
fn says_timed_out(error: &dyn std::error::Error) -> bool {
    let message = error.to_string().to_ascii_lowercase();
    message.contains("timed out") || message.contains("timeout") || message.contains("elapsed")
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
    timer: Timer,
    peer: &'static str,
    method: &'static str,
    /// The response status, once there is a response.
    status: Option<u16>,
    drawn: bool,
    always_sample_errors: bool,
    with_method: bool,
    propagate: bool,
}

impl Outgoing {
    /// The request's span: its `traceparent` names it, and work done under it (a retry's
    /// backoff, say) is its child.
    pub fn context(&self) -> SpanContext {
        self.timer.context()
    }

    /// The `traceparent` header the request carries (`None` with
    /// [`ClientConfig::propagate`] off).
    pub fn traceparent(&self) -> Option<String> {
        self.propagate
            .then(|| format_traceparent(self.context()))
            .flatten()
    }

    /// The request's `peer` label.
    pub fn peer(&self) -> &'static str {
        self.peer
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
            Status::Failed(_) | Status::Cancelled => true,
        };
        let outcome = match end {
            ClientEnd::Cancelled => Outcome::Cancelled,
            ClientEnd::Panicked => Outcome::Panicked,
            _ => Outcome::Returned,
        };
        let site = site(self.peer, status, self.with_method.then_some(self.method));
        let timed = self.drawn || (self.always_sample_errors && failed);
        let detail = ClientDetail {
            method: self.method,
            peer: self.peer,
            status,
        };
        match (status, error) {
            (Status::Failed(failure), Some(error)) if failed => self.timer.finish_failed(
                site,
                timed,
                outcome,
                || Failure::new(failure.status_label(), Some(error)),
                || detail,
            ),
            _ => self.timer.finish(site, timed, failed, outcome, || detail),
        }
    }
}

impl Abandon for Outgoing {
    fn abandon(self, outcome: Outcome) {
        let end = if outcome == Outcome::Panicked {
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
    Failed(ClientFailure),
    Cancelled,
}

impl Status {
    fn label(self) -> Cow<'static, str> {
        match self {
            Status::Code(code) => Cow::Owned(code.to_string()),
            Status::Failed(failure) => Cow::Borrowed(failure.status_label()),
            Status::Cancelled => Cow::Borrowed("cancelled"),
        }
    }
}

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
        let rules = ClientConfig::new()
            .max_peers(2)
            .unwrap()
            .exclude_peers(&["internal."])
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
        });
        let named = ClientConfig::new().peer("payments").unwrap().build();
        let ((), _) = capture(|| {
            let call = named.start("GET", Some("10.0.0.7")).unwrap();
            assert_eq!(call.peer(), "payments");
            call.finish(ClientEnd::Complete, None);
        });
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
    fn methods_are_labelled_from_a_fixed_set() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("BREW"), "OTHER");
        assert_eq!(method_label("get"), "OTHER");
    }

    #[test]
    fn failures_are_read_from_the_error_and_its_sources() {
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
        let elapsed: Box<dyn std::error::Error + Send + Sync> = "request timed out".into();
        assert_eq!(ClientFailure::of(&*elapsed), ClientFailure::Timeout);
        let other = Error::other("malformed response");
        assert_eq!(ClientFailure::of(&other), ClientFailure::Other);
    }

    #[test]
    fn each_end_gives_its_status_error_and_outcome() {
        let rules = ClientConfig::new().method_label(true).build();
        let ((), captured) = capture(|| {
            let mut ok = rules.start("GET", Some("ok.example")).unwrap();
            ok.respond(200);
            ok.finish(ClientEnd::Complete, None);
            let mut bad = rules.start("POST", Some("bad.example")).unwrap();
            bad.respond(503);
            bad.finish(ClientEnd::Complete, None);
            let timeout = rules.start("GET", Some("slow.example")).unwrap();
            timeout.finish(
                ClientEnd::Failed(ClientFailure::Timeout),
                Some(&"operation timed out"),
            );
            let dropped = rules.start("GET", Some("gone.example")).unwrap();
            dropped.abandon(Outcome::Cancelled);
            let mut unread = rules.start("GET", Some("unread.example")).unwrap();
            unread.respond(200);
            unread.abandon(Outcome::Cancelled);
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
        let rules = ClientConfig::new().build();
        let quiet = ClientConfig::new().propagate(false).build();
        let ((), _) = capture(|| {
            let caller = profilis_core::adapter::Timer::start(None)
                .unwrap()
                .context();
            let _in_caller = profilis_core::context::enter(caller);
            let call = rules.start("GET", Some("b.example")).unwrap();
            let header = call.traceparent().expect("a traceparent");
            let sent = profilis_core::context::parse_traceparent(&header).unwrap();
            assert_eq!(sent, call.context());
            assert_eq!(sent.trace_id, caller.trace_id);
            assert_ne!(sent.span_id, caller.span_id);
            call.finish(ClientEnd::Complete, None);
            let call = quiet.start("GET", Some("b.example")).unwrap();
            assert_eq!(call.traceparent(), None);
            call.finish(ClientEnd::Complete, None);
        });
    }
}

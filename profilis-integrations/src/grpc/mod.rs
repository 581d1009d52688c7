//! gRPC calls, served and made, for tonic (or any gRPC stack built on tower and `http`): two
//! kinds of their own ([`GRPC`], [`GRPC_CLIENT`]), a server layer ([`GrpcLayer`]) and a client
//! layer ([`GrpcClientLayer`]).
//!
//! ```
//! use profilis::grpc::{GrpcClientLayer, GrpcConfig, GrpcLayer};
//! use profilis::http::client::ClientConfig;
//!
//! # fn main() -> Result<(), profilis::http::HttpConfigError> {
//! // Server: `tonic::transport::Server::builder().layer(layer).add_service(...)`.
//! let layer = GrpcLayer::new(GrpcConfig::new().method_sample_rate("/shop.Search/", 0.1)?.build());
//! // Client: `ServiceBuilder::new().layer(client_layer).service(channel)`, handed to the
//! // generated client's `new`.
//! let client_layer = GrpcClientLayer::new(ClientConfig::new().peer("inventory")?.build());
//! # let _ = (layer, client_layer);
//! # Ok(()) }
//! ```
//!
//! # What is recorded
//!
//! - **Metrics**: served calls in `profilis_grpc_requests_total` and
//!   `profilis_grpc_request_duration_seconds`, labelled `route` (the gRPC method,
//!   `/package.Service/Method`) and `status`; calls made in
//!   `profilis_grpc_client_requests_total` and `profilis_grpc_client_request_duration_seconds`,
//!   labelled `peer` (as for HTTP clients: the host, or the client's name), `route` and
//!   `status`.
//! - **Status**: the gRPC status name (`OK`, `NOT_FOUND`, `UNAVAILABLE`, ...), read from the
//!   trailers (or from the headers of a trailers-only response), so a streaming call counts
//!   until its last message. A served call whose handler panics is `INTERNAL`, one whose
//!   client went away `CANCELLED`; a call made that got no response is `DEADLINE_EXCEEDED`
//!   (timeout), `UNAVAILABLE` (no connection) or `UNKNOWN`.
//! - **Errors**: the statuses a server is to blame for (`UNKNOWN`, `DEADLINE_EXCEEDED`,
//!   `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`), panics, bodies that fail, and
//!   calls that ended without a status; the others (`NOT_FOUND`, `INVALID_ARGUMENT`, ...) are
//!   answers, as an HTTP 4xx is. A call abandoned before its end (`CANCELLED`, outcome
//!   `cancelled`) is an error, as an HTTP request whose client went away is; a `CANCELLED`
//!   answer is not.
//! - **Routes**: a method served gets a `route` label of its own once a call of it has
//!   succeeded (`OK`); until then, and for paths that do not look like a method or are longer
//!   than 256 bytes, calls are labelled [`UNMATCHED_METHOD`]. A client sending arbitrary
//!   paths gets `UNIMPLEMENTED`, or whatever a layer inside answers, never `OK`, so it adds no
//!   series. Methods of the services named by [`GrpcConfig::services`] also get their label
//!   from a failure that only a method's own handler gives: `INVALID_ARGUMENT`, `NOT_FOUND`,
//!   `ALREADY_EXISTS`, `FAILED_PRECONDITION`, `ABORTED`, `OUT_OF_RANGE`, `INTERNAL` (a panic
//!   too) or `DATA_LOSS`, read from `grpc-status` (name them: a method that only ever fails
//!   is otherwise `<unmatched>`). The statuses a layer in front of the methods answers
//!   before dispatching, whatever path the client sent, label nothing: `UNIMPLEMENTED`,
//!   `UNAUTHENTICATED` and `PERMISSION_DENIED` (an auth interceptor), `RESOURCE_EXHAUSTED`
//!   (a rate limiter), `UNAVAILABLE` (load shedding), `CANCELLED` and `DEADLINE_EXCEEDED`
//!   (the client went away, a timeout), `UNKNOWN` (a layer's error), and an HTTP status
//!   without `grpc-status`. So a client refused by an auth check adds no series, whatever
//!   paths it invents; a layer in front that answers one of the statuses above
//!   (`INVALID_ARGUMENT` for a missing header, say) would still let it add some, up to the
//!   cap. At most [`GrpcConfig::max_methods`] methods served get a label in the process
//!   (calls made: any answer but `UNIMPLEMENTED` labels the method, up to
//!   [`DEFAULT_MAX_METHODS`]).
//! - **Trace context**: a served call is a child of the caller's `traceparent`, or of its
//!   `grpc-trace-bin` (the binary trace context of OpenCensus, base64); a call made carries
//!   `traceparent` naming its span, as HTTP clients do (and `grpc-trace-bin` too, with
//!   [`GrpcClientLayer::with_grpc_trace_bin`], for servers that read only that). Handlers run
//!   under the served call's span.
//! - **Sampling**: every call is counted; served calls are timed at the first matching
//!   per-method rate ([`GrpcConfig::method_sample_rate`]), calls made at the client's per-peer
//!   rate, and errors always.

mod client;
mod server;

pub use client::{GrpcClientFuture, GrpcClientLayer, GrpcClientService};
pub use server::{GrpcFuture, GrpcLayer, GrpcService};

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use ::http::HeaderMap;
use base64::Engine as _;
use http_body::{Body, Frame, SizeHint};
use profilis_core::adapter::{Abandon, RecordOnce, Timer};
use profilis_core::context::{SpanContext, SpanId, TraceId};
use profilis_core::{validate_rate, Detail, Failure, Kind, Metric, Outcome, Site, Value};

use crate::http::client::{Begun, ClientFailure, Redacted};
use crate::http::{body_end, HttpConfigError, Pattern};

/// gRPC calls served: `GRPC` events, labelled `route` (the method) and `status`.
pub static GRPC: Kind = Kind::new(
    "grpc",
    "GRPC",
    "route",
    Metric {
        name: "profilis_grpc_requests_total",
        help: "Total gRPC calls served",
    },
    Metric {
        name: "profilis_grpc_request_duration_seconds",
        help: "gRPC call duration, until the trailers were sent",
    },
)
.with_event_fields(&["route", "status"]);

/// gRPC calls made: `GRPC_CLIENT` events, labelled `peer`, `route` (the method) and `status`.
pub static GRPC_CLIENT: Kind = Kind::new(
    "grpc_client",
    "GRPC_CLIENT",
    "peer",
    Metric {
        name: "profilis_grpc_client_requests_total",
        help: "Total gRPC calls made",
    },
    Metric {
        name: "profilis_grpc_client_request_duration_seconds",
        help: "gRPC call duration, until the trailers were read",
    },
)
.with_event_fields(&["peer", "route", "status"]);

/// The `route` label of served calls of methods never served before that were answered
/// `UNIMPLEMENTED`, and of methods beyond the cap.
pub const UNMATCHED_METHOD: &str = "<unmatched>";

/// How many distinct methods get a `route` label by default.
pub const DEFAULT_MAX_METHODS: usize = 1000;

/// The names of the gRPC status codes, by code.
const STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A gRPC status code (0 to 16; anything else read is `UNKNOWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrpcStatus(u8);

impl GrpcStatus {
    /// `OK`.
    pub const OK: GrpcStatus = GrpcStatus(0);
    /// `CANCELLED`.
    pub const CANCELLED: GrpcStatus = GrpcStatus(1);
    /// `UNKNOWN`.
    pub const UNKNOWN: GrpcStatus = GrpcStatus(2);
    /// `DEADLINE_EXCEEDED`.
    pub const DEADLINE_EXCEEDED: GrpcStatus = GrpcStatus(4);
    /// `UNIMPLEMENTED`.
    pub const UNIMPLEMENTED: GrpcStatus = GrpcStatus(12);
    /// `INTERNAL`.
    pub const INTERNAL: GrpcStatus = GrpcStatus(13);
    /// `UNAVAILABLE`.
    pub const UNAVAILABLE: GrpcStatus = GrpcStatus(14);

    /// The status of code `code` (`UNKNOWN` beyond 16).
    pub fn from_code(code: u32) -> GrpcStatus {
        u8::try_from(code)
            .ok()
            .filter(|&c| usize::from(c) < STATUS_NAMES.len())
            .map_or(GrpcStatus::UNKNOWN, GrpcStatus)
    }

    /// The code.
    pub fn code(self) -> u8 {
        self.0
    }

    /// The name, the `status` label (`OK`, `NOT_FOUND`).
    pub fn name(self) -> &'static str {
        STATUS_NAMES[usize::from(self.0)]
    }

    /// Whether the server is to blame: `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`,
    /// `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS` (the others are answers, as an HTTP 4xx is).
    pub fn is_server_error(self) -> bool {
        matches!(self.0, 2 | 4 | 12 | 13 | 14 | 15)
    }

    /// Whether a method's own handler answers this, not a layer in front of it: `OK`,
    /// `INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`, `FAILED_PRECONDITION`, `ABORTED`,
    /// `OUT_OF_RANGE`, `INTERNAL`, `DATA_LOSS`. The others are what is answered before (or
    /// without) dispatching on the method, whatever path the client sent: `UNIMPLEMENTED`
    /// (no such method), `UNAUTHENTICATED` and `PERMISSION_DENIED` (an auth interceptor),
    /// `RESOURCE_EXHAUSTED` (a rate limiter), `UNAVAILABLE` (load shedding, a server shutting
    /// down), `CANCELLED` and `DEADLINE_EXCEEDED` (the client went away, or a timeout layer
    /// gave up), `UNKNOWN` (a layer's error, a response that is not gRPC).
    fn is_answered_by_a_method(self) -> bool {
        matches!(self.0, 0 | 3 | 5 | 6 | 9 | 10 | 11 | 13 | 15)
    }

    /// The `grpc-status` of `headers` (trailers, or the headers of a trailers-only
    /// response), if they have one.
    pub fn from_headers(headers: &HeaderMap) -> Option<GrpcStatus> {
        let value = headers.get("grpc-status")?;
        let code = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok());
        Some(code.map_or(GrpcStatus::UNKNOWN, GrpcStatus::from_code))
    }

    /// The status of a response without a `grpc-status`, from its HTTP status (the mapping of
    /// gRPC's HTTP guide).
    fn of_http(status: ::http::StatusCode) -> GrpcStatus {
        match status.as_u16() {
            400 => GrpcStatus::INTERNAL,
            401 => GrpcStatus(16),
            403 => GrpcStatus(7),
            404 => GrpcStatus::UNIMPLEMENTED,
            429 | 502..=504 => GrpcStatus::UNAVAILABLE,
            _ => GrpcStatus::UNKNOWN,
        }
    }
}

/// The `grpc-trace-bin` metadata value naming `ctx` (OpenCensus's binary format: version 0,
/// the trace id, the span id, sampled; base64 without padding).
pub fn format_grpc_trace_bin(ctx: SpanContext) -> Option<String> {
    if ctx.trace_id.0 == 0 || ctx.span_id.0 == 0 {
        return None;
    }
    let mut bytes = [0u8; 29];
    bytes[1] = 0;
    bytes[2..18].copy_from_slice(&ctx.trace_id.0.to_be_bytes());
    bytes[18] = 1;
    bytes[19..27].copy_from_slice(&ctx.span_id.0.to_be_bytes());
    bytes[27] = 2;
    bytes[28] = 1;
    Some(base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes))
}

/// Parses a `grpc-trace-bin` metadata value (base64, padded or not). `None` if it is
/// malformed, of another version, or names the all-zero trace or span.
pub fn parse_grpc_trace_bin(value: &str) -> Option<SpanContext> {
    let value = value.trim().trim_end_matches('=');
    // 29 bytes are 39 characters; a longer value (a later version's fields) is read no
    // further than its first 29 bytes, and a much longer one not at all.
    if value.len() > 64 {
        return None;
    }
    let mut buffer = [0u8; 48];
    let len = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode_slice(value, &mut buffer)
        .ok()?;
    let bytes = &buffer[..len];
    let (&version, mut rest) = bytes.split_first()?;
    if version != 0 {
        return None;
    }
    let (mut trace, mut span) = (None, None);
    // Fields in order: 0 trace id (16 bytes), 1 span id (8), 2 options (1); stop at any other.
    while let Some((&field, after)) = rest.split_first() {
        match field {
            0 if after.len() >= 16 => {
                trace = Some(u128::from_be_bytes(after[..16].try_into().ok()?));
                rest = &after[16..];
            }
            1 if after.len() >= 8 => {
                span = Some(u64::from_be_bytes(after[..8].try_into().ok()?));
                rest = &after[8..];
            }
            2 if !after.is_empty() => rest = &after[1..],
            _ => break,
        }
    }
    let (trace, span) = (trace?, span?);
    (trace != 0 && span != 0).then_some(SpanContext {
        trace_id: TraceId(trace),
        span_id: SpanId(span),
    })
}

/// The trace context a served call carries: its `traceparent`, else its `grpc-trace-bin`.
fn incoming_context(headers: &HeaderMap) -> Option<SpanContext> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    text("traceparent")
        .and_then(profilis_core::context::parse_traceparent)
        .or_else(|| text("grpc-trace-bin").and_then(parse_grpc_trace_bin))
}

/// How the gRPC server layer profiles calls. Build it, then hand it to [`GrpcLayer::new`].
#[derive(Debug, Clone)]
#[must_use]
pub struct GrpcConfig {
    services: Vec<String>,
    exclude: Vec<Pattern>,
    sample_rate: Option<f64>,
    method_rates: Vec<(Pattern, f64)>,
    always_sample_errors: bool,
    max_methods: usize,
    seed: Option<u64>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            services: Vec::new(),
            exclude: Vec::new(),
            sample_rate: None,
            method_rates: Vec::new(),
            always_sample_errors: true,
            max_methods: DEFAULT_MAX_METHODS,
            seed: None,
        }
    }
}

impl GrpcConfig {
    /// Every call profiled, durations at the global sample rate, errors always timed.
    pub fn new() -> GrpcConfig {
        GrpcConfig::default()
    }

    /// The services this server serves (`shop.Cart`, tonic's `NamedService::NAME`): their
    /// methods get a `route` label from their first call that succeeds or fails in a way only
    /// a method's handler does (`NOT_FOUND`, `INTERNAL`, ...; not `UNAUTHENTICATED`,
    /// `UNAVAILABLE` or the other statuses a layer in front answers whatever the path).
    /// Methods of other services get one only once a call of theirs succeeds (see the
    /// [module docs](self)).
    pub fn services<S: AsRef<str>>(mut self, services: &[S]) -> Self {
        self.services
            .extend(services.iter().map(|s| format!("/{}/", s.as_ref())));
        self
    }

    /// Leaves calls of methods that start with one of `patterns` (`/grpc.health.v1.Health/`,
    /// or a regular expression after `re:`) alone.
    ///
    /// # Errors
    /// [`HttpConfigError::InvalidRegex`] or [`HttpConfigError::EmptyPattern`], naming the
    /// pattern.
    pub fn exclude_methods<S: AsRef<str>>(
        mut self,
        patterns: &[S],
    ) -> Result<Self, HttpConfigError> {
        for p in patterns {
            self.exclude.push(Pattern::parse(p.as_ref())?);
        }
        Ok(self)
    }

    /// The share of calls whose duration is recorded (default: the global rate).
    ///
    /// # Errors
    /// [`HttpConfigError::SampleRate`] if not in `0..=1`.
    pub fn sample_rate(mut self, rate: f64) -> Result<Self, HttpConfigError> {
        self.sample_rate = Some(validate_rate(rate)?);
        Ok(self)
    }

    /// The sample rate of methods that start with `pattern` (or match `re:<regex>`). The
    /// first matching rule wins.
    ///
    /// # Errors
    /// As [`GrpcConfig::exclude_methods`] and [`GrpcConfig::sample_rate`].
    pub fn method_sample_rate(mut self, pattern: &str, rate: f64) -> Result<Self, HttpConfigError> {
        let rate = validate_rate(rate)?;
        self.method_rates.push((Pattern::parse(pattern)?, rate));
        Ok(self)
    }

    /// Whether failed calls are always timed (default `true`).
    pub fn always_sample_errors(mut self, on: bool) -> Self {
        self.always_sample_errors = on;
        self
    }

    /// How many distinct methods get a `route` label (default [`DEFAULT_MAX_METHODS`],
    /// counted over the process).
    ///
    /// # Errors
    /// [`HttpConfigError::MaxMethods`] for 0.
    pub fn max_methods(mut self, max: usize) -> Result<Self, HttpConfigError> {
        if max == 0 {
            return Err(HttpConfigError::MaxMethods { max });
        }
        self.max_methods = max;
        Ok(self)
    }

    /// Seeds the sampling decisions, for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The rules, ready to share between calls.
    pub fn build(self) -> GrpcRules {
        let seed = self.seed.unwrap_or_else(profilis_core::adapter::random_u64);
        GrpcRules(Arc::new(Rules {
            config: self,
            random: AtomicU64::new(seed),
        }))
    }
}

#[derive(Debug)]
struct Rules {
    config: GrpcConfig,
    random: AtomicU64,
}

/// The built rules of the gRPC server layer (cheap to clone), made by [`GrpcConfig::build`].
#[derive(Debug, Clone)]
pub struct GrpcRules(Arc<Rules>);

impl Default for GrpcRules {
    fn default() -> Self {
        GrpcConfig::new().build()
    }
}

impl GrpcRules {
    /// Starts a served call of `method` (the request's path), unless it is excluded or
    /// profiling is off.
    fn start(&self, method: &str, headers: &HeaderMap) -> Option<GrpcCall> {
        let config = &self.0.config;
        if config.exclude.iter().any(|p| p.matches(method)) {
            return None;
        }
        let timer = Timer::start(incoming_context(headers))?;
        let drawn = crate::http::draw(
            &config.method_rates,
            config.sample_rate,
            method,
            &self.0.random,
        );
        let declared = config
            .services
            .iter()
            .any(|s| method.starts_with(s.as_str()));
        Some(GrpcCall {
            timer,
            peer: None,
            declared,
            route: SERVED.route(method, config.max_methods),
            drawn,
            always_sample_errors: config.always_sample_errors,
            headers_status: None,
            grpc_status_read: false,
        })
    }
}

/// The methods that have a `route` label in the process: one table for calls served, one
/// for calls made, each with its cap.
struct Methods {
    labels: RwLock<Option<HashMap<Box<str>, &'static str>>>,
    /// Set once the table holds its cap: no more allocation or write lock for new methods.
    full: AtomicBool,
}

static SERVED: Methods = Methods::new();
static MADE: Methods = Methods::new();

/// The longest method labelled, in bytes (a longer path is `<unmatched>`).
const MAX_METHOD_LEN: usize = 256;

impl Methods {
    const fn new() -> Methods {
        Methods {
            labels: RwLock::new(None),
            full: AtomicBool::new(false),
        }
    }

    /// The route of a call of `method`: its label if it has one; else, if the table has room
    /// and `method` looks like a gRPC method (`/package.Service/Method`), a method that may get
    /// one when the call ends; else `<unmatched>`.
    fn route(&'static self, method: &str, max: usize) -> Route {
        if let Some(&label) = self
            .labels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|m| m.get(method))
        {
            return Route::Known(label);
        }
        if self.full.load(Ordering::Relaxed) || !is_method(method) {
            return Route::Known(UNMATCHED_METHOD);
        }
        Route::New {
            table: self,
            method: method.into(),
            max,
        }
    }
}

/// Whether `path` has the shape of a gRPC method, `/package.Service/Method`: two non-empty
/// parts of letters, digits, `_` and `.`, at most [`MAX_METHOD_LEN`] bytes in all.
fn is_method(path: &str) -> bool {
    let Some((service, method)) = path.strip_prefix('/').and_then(|rest| rest.split_once('/'))
    else {
        return false;
    };
    let part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    path.len() <= MAX_METHOD_LEN && part(service) && part(method)
}

/// A call's `route` label, or what it will be once its status is known.
#[derive(Debug)]
enum Route {
    /// A method with a label (or `<unmatched>`).
    Known(&'static str),
    /// A method without a label yet: it gets one when the call ends as [`Route::label`]
    /// says.
    New {
        table: &'static Methods,
        method: Box<str>,
        max: usize,
    },
}

impl std::fmt::Debug for Methods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Methods")
    }
}

impl Route {
    /// The label, now that the call ended: `admit` says whether its end shows the method is
    /// served (see `GrpcCall::finish`). A server answers paths nothing serves with
    /// `UNIMPLEMENTED`, but a layer inside (auth, say) or a fallback may answer them
    /// otherwise, and a client may give up on them, so only a handler's answer shows a method
    /// is served. Until then its calls are `<unmatched>`.
    fn label(self, admit: bool) -> &'static str {
        let (table, method, max) = match self {
            Route::Known(label) => return label,
            Route::New { table, method, max } => (table, method, max),
        };
        if !admit {
            return UNMATCHED_METHOD;
        }
        let mut labels = table.labels.write().unwrap_or_else(|e| e.into_inner());
        let labels = labels.get_or_insert_with(HashMap::new);
        if let Some(&label) = labels.get(&*method) {
            return label;
        }
        if labels.len() >= max {
            table.full.store(true, Ordering::Relaxed);
            return UNMATCHED_METHOD;
        }
        let label: &'static str = Box::leak(method.clone());
        labels.insert(method, label);
        label
    }
}

/// A gRPC call being recorded, served or made.
#[derive(Debug)]
struct GrpcCall {
    timer: Timer,
    /// The peer of a call made (`None` for a call served).
    peer: Option<&'static str>,
    /// A call served of a method of a service the rules name ([`GrpcConfig::services`]).
    declared: bool,
    route: Route,
    drawn: bool,
    always_sample_errors: bool,
    /// The `grpc-status` of a trailers-only response, or the status its HTTP status maps to.
    headers_status: Option<GrpcStatus>,
    /// Whether the response is a gRPC one (its head, or its trailers, say `grpc-status`), not
    /// an HTTP status mapped to a gRPC one.
    grpc_status_read: bool,
}

impl GrpcCall {
    /// A call made, started by the client's rules.
    fn made(begun: Begun, method: &str) -> GrpcCall {
        GrpcCall {
            timer: begun.timer,
            peer: Some(begun.peer),
            declared: false,
            route: MADE.route(method, DEFAULT_MAX_METHODS),
            drawn: begun.drawn,
            always_sample_errors: begun.always_sample_errors,
            headers_status: None,
            grpc_status_read: false,
        }
    }

    /// The response's head arrived: its status, if it is a trailers-only response (or not a
    /// gRPC response at all).
    fn respond(&mut self, head: &::http::response::Parts) {
        let read = GrpcStatus::from_headers(&head.headers);
        self.grpc_status_read = read.is_some();
        self.headers_status = read.or_else(|| {
            (head.status != ::http::StatusCode::OK).then(|| GrpcStatus::of_http(head.status))
        });
    }

    /// Its kind: served or made.
    fn kind(&self) -> &'static Kind {
        if self.peer.is_some() {
            &GRPC_CLIENT
        } else {
            &GRPC
        }
    }

    /// Records the call as ended with `status` (`None`: the trailers had none; then the
    /// head's, else `UNKNOWN`), `body_failed` for a body that failed, `failure` for a call
    /// made that got no response: how it failed and the client's error, written out only if
    /// an output wants it.
    fn finish(
        self,
        status: Option<GrpcStatus>,
        body_failed: bool,
        outcome: Outcome,
        failure: Option<(ClientFailure, &dyn std::fmt::Display)>,
    ) {
        // Given (the trailers', or this layer's for a panic or a failed service), else the
        // head's `grpc-status`; not an HTTP status mapped to one.
        let grpc_status_read = status.is_some() || self.grpc_status_read;
        let status = status
            .or(self.headers_status)
            .unwrap_or(GrpcStatus::UNKNOWN);
        let failed = status.is_server_error()
            || body_failed
            || outcome != Outcome::Returned
            || failure.is_some();
        // Served: only a success shows the method is served; for a declared service, also
        // a gRPC answer that only a method's handler gives (a failure of its own, a panic's
        // `INTERNAL`), never one a layer in front answers whatever the path (an auth check's
        // `UNAUTHENTICATED`), nor an HTTP status without `grpc-status`. Made: the code chose
        // the method (capped and shape-checked all the same, for a proxy that forwards its
        // callers' paths); any end but `UNIMPLEMENTED` labels it.
        let kind = self.kind();
        let admit = if self.peer.is_none() {
            (status == GrpcStatus::OK && outcome == Outcome::Returned)
                || (self.declared && grpc_status_read && status.is_answered_by_a_method())
        } else {
            status != GrpcStatus::UNIMPLEMENTED
        };
        let route = self.route.label(admit);
        let site = site(kind, self.peer, route, status);
        let timed = self.drawn || (self.always_sample_errors && failed);
        let detail = GrpcDetail {
            peer: self.peer,
            route,
            status,
        };
        match failure {
            Some((how, error)) => self.timer.finish_failed(
                site,
                timed,
                outcome,
                || Failure::new(how.status_label(), Some(&Redacted(error))),
                || detail,
            ),
            None => self.timer.finish(site, timed, failed, outcome, || detail),
        }
    }
}

impl Abandon for GrpcCall {
    fn abandon(self, outcome: Outcome) {
        let outcome = outcome.or_unwinding();
        // A trailers-only response whose body was dropped unread: it ended with its status.
        if outcome != Outcome::Panicked && self.headers_status.is_some() {
            return self.finish(None, false, Outcome::Returned, None);
        }
        // A handler (or client) that panicked: `INTERNAL`; dropped before its end (the
        // client went away, or the caller gave up): `CANCELLED`.
        let status = if outcome == Outcome::Panicked {
            GrpcStatus::INTERNAL
        } else {
            GrpcStatus::CANCELLED
        };
        self.finish(Some(status), false, outcome, None);
    }
}

/// The detail of a `GRPC` or `GRPC_CLIENT` event: JSON sinks write it as
/// `"route":"/shop.Cart/Add","status":"OK"` (and `"peer"` for a call made). Read it back with
/// `event.detail::<GrpcDetail>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcDetail {
    peer: Option<&'static str>,
    route: &'static str,
    status: GrpcStatus,
}

impl GrpcDetail {
    /// The peer of a call made.
    pub fn peer(&self) -> Option<&'static str> {
        self.peer
    }

    /// The method (`/package.Service/Method`), or [`UNMATCHED_METHOD`].
    pub fn route(&self) -> &'static str {
        self.route
    }

    /// The gRPC status.
    pub fn status(&self) -> GrpcStatus {
        self.status
    }
}

impl Detail for GrpcDetail {
    fn field(&self, key: &str) -> Option<Value<'_>> {
        match key {
            "peer" => self.peer.map(Value::Str),
            "route" => Some(Value::Str(self.route)),
            "status" => Some(Value::Str(self.status.name())),
            _ => None,
        }
    }
}

/// The site of `kind` for `peer` (calls made), `route` and `status`: found per thread,
/// interned in core the first time a thread sees it.
fn site(
    kind: &'static Kind,
    peer: Option<&'static str>,
    route: &'static str,
    status: GrpcStatus,
) -> &'static Site {
    type Key = (usize, Option<usize>, usize, u8);
    thread_local! {
        static SITES: RefCell<HashMap<Key, &'static Site>> = RefCell::new(HashMap::new());
    }
    // Every label is `'static` and made once, so its address identifies it.
    let key = (
        kind as *const Kind as usize,
        peer.map(|p| p.as_ptr() as usize),
        route.as_ptr() as usize,
        status.code(),
    );
    if let Ok(Some(site)) = SITES.try_with(|sites| sites.borrow().get(&key).copied()) {
        return site;
    }
    let site = match peer {
        Some(peer) => Site::interned(kind, peer, &[("route", route), ("status", status.name())]),
        None => Site::interned(kind, route, &[("status", status.name())]),
    };
    // A thread being torn down has no table; the site is still right.
    let _ = SITES.try_with(|sites| sites.borrow_mut().insert(key, site));
    site
}

pin_project_lite::pin_project! {
    /// A gRPC response body that records its call at its end: its status from the trailers.
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
        // Empty when the call is not profiled, or already recorded.
        call: RecordOnce<GrpcCall>,
    }
}

impl<B> GrpcBody<B> {
    fn new(inner: B, call: Option<GrpcCall>) -> GrpcBody<B> {
        GrpcBody {
            inner,
            call: RecordOnce::maybe(call),
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for GrpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if this.call.get().is_none() {
            return this.inner.poll_frame(cx);
        }
        let inner = this.inner.as_mut();
        let polled = this.call.run(|| inner.poll_frame(cx));
        let trailers = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().and_then(GrpcStatus::from_headers),
            _ => None,
        };
        // The body's own code, run as part of the call: a panic in it is recorded.
        let inner = this.inner.as_ref();
        let ended = body_end(&polled, || {
            trailers.is_some() || this.call.run(|| inner.is_end_stream())
        });
        if let Some(failed) = ended {
            if let Some(call) = this.call.take() {
                call.finish(trailers, failed, Outcome::Returned, None);
            }
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

/// The response of a profiled call, its body wrapped to record the call at its end (or the
/// call recorded now, for a trailers-only response).
fn watch<B: Body>(
    response: ::http::Response<B>,
    mut call: RecordOnce<GrpcCall>,
) -> ::http::Response<GrpcBody<B>> {
    let (head, body) = response.into_parts();
    if let Some(call) = call.get_mut() {
        call.respond(&head);
    }
    // The body's own code, run as part of the call: a panic in it is recorded.
    if call.get().is_some() && call.run(|| body.is_end_stream()) {
        if let Some(call) = call.take() {
            call.finish(None, false, Outcome::Returned, None);
        }
    }
    ::http::Response::from_parts(head, GrpcBody::new(body, call.take()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_by_code_and_named() {
        let mut headers = HeaderMap::new();
        assert_eq!(GrpcStatus::from_headers(&headers), None);
        headers.insert("grpc-status", "5".parse().unwrap());
        let status = GrpcStatus::from_headers(&headers).unwrap();
        assert_eq!((status.code(), status.name()), (5, "NOT_FOUND"));
        assert!(!status.is_server_error());
        headers.insert("grpc-status", "99".parse().unwrap());
        assert_eq!(
            GrpcStatus::from_headers(&headers),
            Some(GrpcStatus::UNKNOWN)
        );
        headers.insert("grpc-status", "x".parse().unwrap());
        assert_eq!(
            GrpcStatus::from_headers(&headers),
            Some(GrpcStatus::UNKNOWN)
        );
        assert!(GrpcStatus::UNAVAILABLE.is_server_error());
        assert_eq!(GrpcStatus::from_code(16).name(), "UNAUTHENTICATED");
        assert_eq!(
            GrpcStatus::of_http(::http::StatusCode::NOT_FOUND),
            GrpcStatus::UNIMPLEMENTED
        );
    }

    #[test]
    fn a_method_is_labelled_by_a_success_or_its_declared_service_never_by_arbitrary_paths() {
        use profilis_core::testing::capture;
        let rules = GrpcConfig::new().services(&["unit.Declared"]).build();
        let ((), captured) = capture(|| {
            let headers = HeaderMap::new();
            let end = |path: &str, status: GrpcStatus, outcome: Outcome| {
                let call = rules.start(path, &headers).expect("a collector runs");
                call.finish(Some(status), false, outcome, None);
            };
            // What a hostile client gets for paths nothing serves: never a label.
            end("/unit.Evil/A", GrpcStatus::from_code(16), Outcome::Returned);
            end("/unit.Evil/B", GrpcStatus::UNKNOWN, Outcome::Returned);
            end("/unit.Evil/C", GrpcStatus::CANCELLED, Outcome::Cancelled);
            end("/unit.Evil/D", GrpcStatus::UNIMPLEMENTED, Outcome::Returned);
            // Not the shape of a method, even answered OK.
            end("/unit.Odd", GrpcStatus::OK, Outcome::Returned);
            end("/unit.Odd/a/b", GrpcStatus::OK, Outcome::Returned);
            end(
                &format!("/unit.Long/{}", "x".repeat(300)),
                GrpcStatus::OK,
                Outcome::Returned,
            );
            // A success labels a method; its later failures keep the label.
            end(
                "/unit.Served/Get",
                GrpcStatus::from_code(5),
                Outcome::Returned,
            );
            end("/unit.Served/Get", GrpcStatus::OK, Outcome::Returned);
            end("/unit.Served/Get", GrpcStatus::INTERNAL, Outcome::Returned);
            // A declared service's method is labelled by its first failure.
            end(
                "/unit.Declared/Fail",
                GrpcStatus::INTERNAL,
                Outcome::Returned,
            );
            end(
                "/unit.Declared/Gone",
                GrpcStatus::UNIMPLEMENTED,
                Outcome::Returned,
            );
            // What a layer in front of a declared service's methods answers, whatever the
            // path: never a label.
            for code in [16, 7, 8, 14, 1, 4, 2] {
                let path = format!("/unit.Declared/Refused{code}");
                end(&path, GrpcStatus::from_code(code), Outcome::Returned);
            }
            // Nor an HTTP answer without `grpc-status` (a proxy's 400, mapped to `INTERNAL`).
            let call = rules.start("/unit.Declared/Http", &headers).unwrap();
            let (mut head, ()) = ::http::Response::new(()).into_parts();
            head.status = ::http::StatusCode::BAD_REQUEST;
            let mut call = call;
            call.respond(&head);
            call.finish(None, false, Outcome::Returned, None);
        });
        let routes = |status: &str| {
            let mut routes: Vec<&str> = captured
                .events
                .iter()
                .filter(|e| e.detail::<GrpcDetail>().unwrap().status().name() == status)
                .map(|e| e.detail::<GrpcDetail>().unwrap().route())
                .collect();
            routes.sort_unstable();
            routes
        };
        assert_eq!(routes("UNAUTHENTICATED"), [UNMATCHED_METHOD; 2]);
        assert_eq!(routes("UNKNOWN"), [UNMATCHED_METHOD; 2]);
        assert_eq!(routes("CANCELLED"), [UNMATCHED_METHOD; 2]);
        for status in [
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "UNAVAILABLE",
            "DEADLINE_EXCEEDED",
        ] {
            assert_eq!(routes(status), [UNMATCHED_METHOD], "{status}");
        }
        assert_eq!(
            routes("UNIMPLEMENTED"),
            [UNMATCHED_METHOD, UNMATCHED_METHOD]
        );
        assert_eq!(
            routes("OK"),
            [
                "/unit.Served/Get",
                UNMATCHED_METHOD,
                UNMATCHED_METHOD,
                UNMATCHED_METHOD,
            ]
        );
        assert_eq!(routes("NOT_FOUND"), [UNMATCHED_METHOD]);
        assert_eq!(
            routes("INTERNAL"),
            ["/unit.Declared/Fail", "/unit.Served/Get", UNMATCHED_METHOD]
        );
    }

    #[test]
    fn grpc_trace_bin_round_trips_and_refuses_bad_values() {
        let ctx = SpanContext {
            trace_id: TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            span_id: SpanId(0x00f0_67aa_0ba9_02b7),
        };
        let value = format_grpc_trace_bin(ctx).unwrap();
        assert_eq!(parse_grpc_trace_bin(&value), Some(ctx));
        // Padded, as some senders write it.
        assert_eq!(parse_grpc_trace_bin(&format!("{value}==")), Some(ctx));
        // The example of the OpenCensus spec: trace, span, options.
        let spec = base64::engine::general_purpose::STANDARD.encode([
            0, 0, 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e,
            0x0e, 0x47, 0x36, 1, 0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7, 2, 1,
        ]);
        assert_eq!(parse_grpc_trace_bin(&spec), Some(ctx));
        for bad in [
            "",
            "!!",
            "AQ",
            &base64::engine::general_purpose::STANDARD.encode([0u8; 29]),
            &"A".repeat(1 << 20),
        ] {
            assert_eq!(parse_grpc_trace_bin(bad), None, "{bad}");
        }
        assert_eq!(format_grpc_trace_bin(SpanContext::default()), None);
    }
}

//! profilis shows which functions, HTTP routes and database queries of a Rust service are slow
//! or failing: put [`#[profiled]`](profiled) on a function, call [`install_exporter`] once, and
//! Prometheus scrapes call counts, errors and latency histograms from `/metrics`, at a cost per
//! call below that of reading the clock twice.
//!
//! ```no_run
//! use profilis::profiled;
//!
//! #[profiled]
//! fn price_order(items: u32) -> Result<u64, String> {
//!     Ok(u64::from(items) * 250)
//! }
//!
//! #[profiled(name = "load_user", sample = 0.25)]
//! async fn load_user(id: u64) -> Option<String> {
//!     Some(format!("user-{id}"))
//! }
//!
//! fn main() -> Result<(), profilis::Error> {
//!     let _profilis = profilis::install_exporter()?; // serves /metrics; flushes when dropped
//!     price_order(3).ok(); // counted, timed, exported
//!     Ok(())
//! }
//! ```
//!
//! It is a Rust port of the Python library profilis: the metrics the two share have the same
//! names, labels and default buckets, so Prometheus queries and dashboards over them work with
//! either. Events keep Python's keys where the meaning is the same (`exception_type`, say); the
//! README's table "What matches Python profilis" says where they differ (`ts_ns`, trace ids,
//! `rows`, kinds).
//!
//! # What there is
//!
//! - **Functions**: [`#[profiled]`](profiled) on a function, method, `impl` block or `async fn`
//!   records each call: counted (`profilis_function_calls_total`), failed
//!   (`profilis_function_errors_total`: an `Err` or a panic), timed
//!   (`profilis_function_duration_seconds`), and a span of the trace it runs in.
//! - **HTTP requests** (`profilis::http`, features `axum`, `tower`, `actix`): a layer or middleware
//!   records every request by route template and status.
//! - **Outgoing HTTP requests** (`profilis::http::client`, features `reqwest`, `tower-client`):
//!   a reqwest middleware or a tower client layer records every request a service sends by
//!   peer and status, and sends a `traceparent` so the service it calls joins the trace.
//! - **gRPC** (`profilis::grpc`, feature `grpc`): tower layers for tonic servers and clients
//!   record calls by method and gRPC status, with the trace context in and out.
//! - **Database queries** (`profilis::db`, features `db`, `rusqlite`, `sqlx`, `diesel`): every query
//!   by vendor, with its statement masked in events.
//! - **Outputs**: the Prometheus exporter ([`install_exporter`], [`Exporter`]) with its built-in
//!   listener ([`listener`]), or [`render`] for a `/metrics` route of your own; a textfile
//!   for node_exporter ([`write_textfile`], `Exporter::textfile`); a Pushgateway for batch
//!   jobs (`Pushgateway`, feature `pushgateway`); the event sinks
//!   `JsonlSink` (rotating JSONL files) and `ConsoleSink`; any [`Sink`] of your own.
//! - **A live dashboard** ([`dashboard`]): on the listener's loopback address, `/` shows per
//!   function, route and vendor the calls per second, error %, p50/p95/p99 and max over 1, 5
//!   or 15 minutes with a sparkline, the recent errors (an `Err`'s type and message, a panic's
//!   message, the HTTP status, the masked statement) and the slowest recent calls, each with
//!   its trace id; `/metrics.json`, `/errors.json` and `/slowest.json` give the same to
//!   scripts. With it on a call costs a few nanoseconds more; off, nothing.
//! - **Process, info and state-set metrics**: every page carries the `process_*` metrics of the
//!   Prometheus client guidelines (CPU seconds, memory, file descriptors, threads, start time;
//!   [`Exporter::process_metrics`] switches them off); [`info`] publishes
//!   `app_info{version="1.2.3"} 1`, [`StateSet`] `app_health{app_health="healthy"} 1` with a 0
//!   for each other state, and [`build_info!`] the application's own crate name and version.
//! - **Trace context** ([`context`]): the current span, W3C `traceparent`, spans across
//!   `.await`.
//! - **Declared metrics** ([`metric_set`]): counters, gauges, histograms, info metrics and
//!   state sets declared up front (names and labels checked then) and set by label values,
//!   on every page while published; a staged set shows an update all at once, or withdraws
//!   values it could not refresh.
//! - **Standalone exporters** (`profilis::kit`, feature `exporter-kit`): a small program that
//!   turns another program's numbers into `/metrics`, written as one `kit::Script` (its
//!   options, its metrics, an update that runs on each scrape or at an interval); the kit gives
//!   it the command line (`-H`, `-p`, `-L`, `--process-stats`), logging, the built-in listener,
//!   graceful shutdown, and failures that show in `exporter_up` instead of stopping it. The
//!   crate also installs `profilis-json-exporter`, the polling tutorial's JSON status
//!   exporter as a ready binary.
//!
//! How a call travels from `#[profiled]` to `/metrics`: the call counts itself and files its
//! duration on its own thread (no lock, no allocation); the [`Collector`] thread adds up every
//! thread's counts each flush interval and hands [`Batch`]es to the sinks; the exporter's sink
//! turns them into Prometheus series. Kinds of call ([`Kind`]: [`FUNCTION`], [`HTTP`], [`DB`])
//! are data that every part reads: their metric names, labels and event fields.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `enabled` | yes | instrumentation; without it `#[profiled]` checks its arguments and leaves the item unchanged |
//! | `exporter` | yes | the Prometheus exporter: [`install_exporter`], [`Exporter`], [`render`], [`FacadeSink`] |
//! | `listener` | yes | the exporter's built-in `/metrics` listener ([`listener`]) and its live dashboard at `/` ([`dashboard`]) |
//! | `jsonl` | | the rotating JSONL event sink (`JsonlSink`) |
//! | `console` | | the console event sink (`ConsoleSink`) |
//! | `pushgateway` | | pushing to a Prometheus Pushgateway (`Pushgateway`, `Exporter::pushgateway`) |
//! | `exporter-kit` | | writing standalone exporters (`profilis::kit`: clap, tracing) |
//! | `http`, `tower`, `axum`, `actix` | | HTTP request profiling (`profilis::http`) |
//! | `http-client`, `tower-client`, `reqwest` | | outgoing HTTP request profiling (`profilis::http::client`) |
//! | `grpc` | | gRPC calls served and made, for tonic (`profilis::grpc`) |
//! | `db`, `rusqlite`, `sqlx`, `sqlx-sqlite`, `sqlx-postgres`, `sqlx-mysql`, `diesel` | | database query profiling (`profilis::db`) |
//!
//! A library that only wants to mark its functions takes
//! `profilis = { version = "...", default-features = false, features = ["enabled"] }`:
//! `#[profiled]` and the core, nothing else; the application decides where the calls go.
//!
//! # Configuration
//!
//! Builder methods in code ([`Exporter`]), with the `PROFILIS_*` environment variables as
//! defaults that code overrides (`PROFILIS_LISTEN`, `PROFILIS_SERVICE`, `PROFILIS_INSTANCE`,
//! `PROFILIS_WORKER`, `PROFILIS_SAMPLE_RATE`, `PROFILIS_BUCKETS`, `PROFILIS_METRIC_BUCKETS`,
//! `PROFILIS_DISABLED`, `PROFILIS_DASHBOARD`, `PROFILIS_PROCESS_METRICS`, `PROFILIS_ALLOW`,
//! `PROFILIS_BEARER_TOKEN`). A bad value is an [`Error`] naming the setting, the value and what
//! is allowed; nothing panics.
//!
//! # Other entry points
//!
//! - [`set_enabled`]: switch profiling off and on at run time (off, a call costs one atomic
//!   load); [`set_global_rate`]: the share of calls that are timed.
//! - [`emit`]: record a call, request or query whose duration was measured elsewhere (a job
//!   scheduler, a client with its own timing), as Python profilis's `emit_*` do.
//! - [`testing`]: capture what your code records, in its tests.
//! - [`adapter`]: what adapters record calls with, to instrument a framework of your own.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use profilis_core::{adapter, context, testing};
pub use profilis_core::{
    global_rate, in_flight, is_enabled, kinds, set_enabled, set_global_rate, sink_fn, stats,
    validate_buckets, validate_rate, Batch, BucketTotal, Buckets, CallCount, Collector,
    CollectorConfig, ConfigError, Detail, DropPolicy, Event, EventFilter, Failure, FanOut,
    FlushOutcome, FnSink, Kind, Latency, Metric, NonBlocking, Outcome, ShutdownReport, Sink,
    SinkError, Site, StartError, Stats, Value, DB, DEFAULT_BUCKETS, FUNCTION, HTTP,
};
pub use profilis_macros::profiled;

#[cfg(feature = "exporter")]
#[cfg_attr(docsrs, doc(cfg(feature = "exporter")))]
pub use profilis_exporters::{
    install_exporter, metric_names, parse_buckets, render, render_as, Error, Exporter,
    ExporterGuard, ExpositionFormat, FacadeSink, GlobalLabels,
};

#[cfg(feature = "exporter")]
#[cfg_attr(docsrs, doc(cfg(feature = "exporter")))]
pub use profilis_exporters::{write_textfile, TextfileError};

#[cfg(feature = "exporter")]
#[cfg_attr(docsrs, doc(cfg(feature = "exporter")))]
pub use profilis_exporters::{parse_metric_buckets, MetricBucketsError, MetricMatch};

#[cfg(feature = "pushgateway")]
#[cfg_attr(docsrs, doc(cfg(feature = "pushgateway")))]
pub use profilis_exporters::{PushError, PushMethod, Pushgateway};

#[cfg(feature = "exporter")]
#[cfg_attr(docsrs, doc(cfg(feature = "exporter")))]
pub use profilis_exporters::{info, MetricError, StateSet};

/// Publishes the build of the application (the crate that calls this macro, not profilis) as
/// an info metric: `rust_build_info{crate="<its CARGO_PKG_NAME>",version="<its CARGO_PKG_VERSION>"} 1`.
/// The values are taken with `env!` where the macro is called, so they are those of the crate
/// being built there. Evaluates to `Result<(), MetricError>`.
///
/// The name follows the Prometheus convention for build information, `<namespace>_build_info`
/// with a gauge of 1, and the Go client's `go_build_info`, which carries the main module's path
/// and version under one name for every Go program: one name for every Rust service means one
/// query (`count by (crate, version) (rust_build_info)`) lists the versions deployed, the crate
/// label telling them apart. For a name of your own, give the namespace:
/// `build_info!("shop")` publishes `shop_build_info` with the same labels.
///
/// ```
/// # fn main() -> Result<(), profilis::MetricError> {
/// profilis::build_info!()?;
/// // rust_build_info{crate="my-service",version="1.4.0"} 1
/// profilis::build_info!("shop")?;
/// // shop_build_info{crate="my-service",version="1.4.0"} 1
/// # Ok(()) }
/// ```
///
/// # Errors
/// `build_info!()` never fails; with a namespace, [`MetricError::MetricName`] if
/// `<namespace>_build_info` is not a metric name.
#[cfg(feature = "exporter")]
#[cfg_attr(docsrs, doc(cfg(feature = "exporter")))]
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::build_info!("rust")
    };
    ($namespace:expr) => {
        $crate::info(
            &::std::format!("{}_build_info", $namespace),
            &[
                ("crate", ::std::env!("CARGO_PKG_NAME")),
                ("version", ::std::env!("CARGO_PKG_VERSION")),
            ],
        )
    };
}

#[cfg(feature = "listener")]
#[cfg_attr(docsrs, doc(cfg(feature = "listener")))]
pub use profilis_exporters::listener;

#[cfg(feature = "exporter")]
#[cfg_attr(docsrs, doc(cfg(feature = "exporter")))]
pub use profilis_exporters::metric_set;

/// Writing standalone exporters: see the [`profilis-exporter-kit`](profilis_exporter_kit) crate.
#[cfg(feature = "exporter-kit")]
#[cfg_attr(docsrs, doc(cfg(feature = "exporter-kit")))]
pub use profilis_exporter_kit as kit;

#[cfg(any(feature = "axum", feature = "actix", feature = "listener"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "axum", feature = "actix", feature = "listener")))
)]
pub use profilis_exporters::exposition;

#[cfg(any(feature = "axum", feature = "actix", feature = "listener"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "axum", feature = "actix", feature = "listener")))
)]
pub use profilis_exporters::dashboard;

#[cfg(feature = "jsonl")]
#[cfg_attr(docsrs, doc(cfg(feature = "jsonl")))]
pub use profilis_exporters::{JsonlConfig, JsonlCounters, JsonlError, JsonlSink};

#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub use profilis_exporters::{ConsoleFormat, ConsoleSink};

#[cfg(any(feature = "jsonl", feature = "console"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "jsonl", feature = "console"))))]
pub use profilis_exporters::JsonEvent;

pub mod emit;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc {
    //! gRPC calls served and made, for tonic: [`GrpcLayer`] on the server, [`GrpcClientLayer`]
    //! on the client; calls by method and gRPC status, trace context in and out.
    pub use profilis_integrations::grpc::*;
}

#[cfg(feature = "db")]
#[cfg_attr(docsrs, doc(cfg(feature = "db")))]
pub mod db {
    //! Database query profiling: [`query`] and [`query_async`] for any client,
    //! `#[profiled(db = "...")]` on functions, statement masking, and hooks for rusqlite, sqlx
    //! and diesel behind their features.
    pub use profilis_integrations::db::*;
}

/// Support for code generated by `#[profiled]`. Not a stable API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use profilis_core::__private::*;
}

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "exporter", feature = "listener"))]
pub struct ReadmeDoctests;

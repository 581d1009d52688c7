//! The outputs of profilis: the Prometheus contract (the recorder, the `/metrics` page, the
//! facade sink into any `metrics` recorder), the built-in listener, and the event sinks (JSONL
//! files, the console).
//!
//! [`install_exporter`] (and its builder [`Exporter`]) sets everything up: it installs
//! profilis's own `metrics` recorder, which keeps counters, gauges and histograms (as bucket
//! counts, with the exporter's buckets) and renders them in the Prometheus text format 0.0.4
//! ([`render`]) with label values and help texts escaped exactly as the format asks, so that
//! every value reads back as itself. When the scraper asks for it (as Prometheus does), pages
//! are written in OpenMetrics 1.0 instead ([`ExpositionFormat`], [`render_as`]), whose
//! duration histogram buckets carry exemplars: the trace id, duration and start of a recent
//! call in each bucket.
//!
//! The application's own histograms (`metrics::histogram!`) are bucketed histograms, never
//! summaries: with the exporter's buckets, or with buckets set per metric by full name, prefix
//! or suffix ([`Exporter::metric_buckets`], `PROFILIS_METRIC_BUCKETS`; the most specific match
//! wins, see [`MetricMatch`]). Each keeps a count per bucket and a sum, so its memory does not
//! grow with the observations, whether anything scrapes or not.
//!
//! Every page also carries the process metrics of the Prometheus client guidelines
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ..., read when the page is
//! rendered; [`Exporter::process_metrics`] switches them off), and the info metrics and state
//! sets the application publishes ([`info`], [`StateSet`]).
//!
//! Each transport is a feature:
//!
//! | feature | what it adds |
//! |---|---|
//! | `listener` | the built-in HTTP listener (`listener`), on by default in `profilis`; brings `dashboard` |
//! | `dashboard` | the live dashboard (`dashboard`): its sink, store and JSON, served by the listener at `/` and by the framework handlers of `profilis::http` |
//! | `gzip` | gzip for `/metrics` pages (`exposition`), needed by the listener and the framework handlers |
//! | `jsonl` | the rotating JSONL sink (`JsonlSink`) |
//! | `console` | the console sink (`ConsoleSink`) |
//! | `pushgateway` | pushing to a Prometheus Pushgateway (`Pushgateway`, `Exporter::pushgateway`) |
//!
//! Besides a scrape, the exposition can be written for node_exporter's textfile collector
//! ([`write_textfile`] once, [`Exporter::textfile`] every interval; no feature needed) and
//! pushed to a Pushgateway for batch jobs (feature `pushgateway`).
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "listener", feature = "dashboard"))]
mod auth;
#[cfg(feature = "console")]
mod console;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
mod error;
mod exporter;
#[cfg(feature = "gzip")]
#[cfg_attr(docsrs, doc(cfg(feature = "gzip")))]
pub mod exposition;
mod facade;
mod histograms;
mod info;
#[cfg(any(feature = "jsonl", feature = "console"))]
mod json;
#[cfg(feature = "jsonl")]
mod jsonl;
mod labels;
#[cfg(any(feature = "listener", feature = "pushgateway", feature = "jsonl"))]
mod limits;
#[cfg(feature = "listener")]
#[cfg_attr(docsrs, doc(cfg(feature = "listener")))]
pub mod listener;
mod metric_buckets;
pub mod metric_names;
pub mod metric_set;
mod process;
#[cfg(feature = "pushgateway")]
mod pushgateway;
mod recorder;
mod text_format;
mod textfile;

#[cfg(feature = "console")]
#[cfg_attr(docsrs, doc(cfg(feature = "console")))]
pub use console::{ConsoleFormat, ConsoleSink};
pub use error::Error;
pub use exporter::{install_exporter, parse_buckets, render, render_as, Exporter, ExporterGuard};
pub use facade::FacadeSink;
pub use info::{info, MetricError, StateSet};
#[cfg(any(feature = "jsonl", feature = "console"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "jsonl", feature = "console"))))]
pub use json::JsonEvent;
#[cfg(feature = "jsonl")]
#[cfg_attr(docsrs, doc(cfg(feature = "jsonl")))]
pub use jsonl::{JsonlConfig, JsonlCounters, JsonlError, JsonlSink};
pub use labels::GlobalLabels;
pub use metric_buckets::{parse_metric_buckets, MetricBucketsError, MetricMatch};
#[cfg(feature = "pushgateway")]
#[cfg_attr(docsrs, doc(cfg(feature = "pushgateway")))]
pub use pushgateway::{PushError, PushMethod, Pushgateway};
pub use text_format::ExpositionFormat;
pub use textfile::{write_textfile, TextfileError};

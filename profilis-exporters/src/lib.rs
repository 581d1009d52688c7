//! Outputs of profilis: the Prometheus exporter, the built-in `/metrics` listener and the
//! event sinks (JSONL, console).
//!
//! [`install_exporter`] (and its builder [`Exporter`]) sets everything up; the built-in
//! listener lives in [`listener`], the console sink in [`console`].
#![deny(missing_docs)]

pub mod console;
mod error;
mod exporter;
mod histograms;
pub mod json;
pub mod jsonl;
pub mod listener;

pub use console::{ConsoleFormat, ConsoleSink};
pub use error::Error;
pub use exporter::{
    install_exporter, parse_buckets, render, validate_buckets, Exporter, ExporterGuard,
};
pub use jsonl::{JsonlConfig, JsonlSink};
pub use profilis_core::DEFAULT_BUCKETS;

pub use listener::{
    metrics_page, parse_allow_list, parse_allowed_network, parse_listen_addr,
    start as start_listener, IpNet, Listener, ListenerConfig, ListenerError, MetricsPage, RenderFn,
    DEFAULT_LISTEN,
};

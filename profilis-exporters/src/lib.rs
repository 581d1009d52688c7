//! Outputs of profilis: the Prometheus exporter, the built-in `/metrics` listener and the
//! event sinks (JSONL, console).
//!
//! This crate is a skeleton for now; the exporter lands with the exporter issue.
#![deny(missing_docs)]

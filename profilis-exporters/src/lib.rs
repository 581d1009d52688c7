//! Outputs of profilis: the Prometheus exporter, the built-in `/metrics` listener and the
//! event sinks (JSONL, console).
//!
//! The built-in listener lives in [`listener`]; the exporter and sinks land with their issues.
#![deny(missing_docs)]

pub mod listener;

pub use listener::{
    parse_allow_list, parse_allowed_network, parse_listen_addr, start as start_listener, IpNet,
    Listener, ListenerConfig, ListenerError, RenderFn, DEFAULT_LISTEN,
};

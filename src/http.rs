//! HTTP request profiling: the shared rules ([`HttpConfig`], [`HttpRules`]) and, behind their
//! features, the adapters for tower/axum and actix-web and handlers that serve `/metrics` from
//! the application's own router.

pub use profilis_integrations::http::*;

//! Adapters that turn the requests a service handles and the queries it runs into profilis
//! events, each behind its own feature: a tower `Layer` (`tower`; axum's route templates with
//! `axum`) and an actix-web middleware (`actix`), which follow the same rules, from the `http`
//! module and feature (route labels, exclusions, sampling and trace context); outgoing HTTP
//! requests (`http::client`: a tower client layer, `tower-client`, and a reqwest middleware,
//! `reqwest`); gRPC served and made (`grpc`, for tonic); and database
//! hooks (`rusqlite`, `sqlx`, `diesel`), built on the `db` module and feature (timing a query
//! of any client, statement masking).
//!
//! Every adapter keeps the call it is recording in core's
//! [`RecordOnce`](profilis_core::adapter::RecordOnce), so each request or query is recorded
//! exactly once, as completed, panicked or cancelled.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "db")]
#[cfg_attr(docsrs, doc(cfg(feature = "db")))]
pub mod db;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;

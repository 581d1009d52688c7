//! Adapters that turn the requests a service handles and the queries it runs into profilis
//! events: a tower `Layer` (axum's route templates with the `axum` feature) and an actix-web
//! middleware, which follow the same rules, from [`http`] (route labels, exclusions, sampling
//! and trace context); and database hooks, from [`db`] (a generic query timer, rusqlite, sqlx
//! and diesel), which share statement masking.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod db;
pub mod http;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;

//! Adapters that turn the requests a service handles (and, later, the queries it runs) into
//! profilis events: a tower `Layer` (axum's route templates with the `axum` feature) and an
//! actix-web middleware. Both follow the same rules, from [`http`]: route labels, exclusions,
//! sampling and trace context.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod http;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;

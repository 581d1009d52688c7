//! Database queries as DB events: counted in `profilis_db_queries_total`, failures in
//! `profilis_db_query_errors_total`, timed in `profilis_db_query_duration_seconds` (labels
//! service, instance, worker, `db_vendor`). The statement never becomes a label; events keep
//! it [`mask`]ed and cut to the [statement limit](set_statement_limit), in a [`DbDetail`].
//! The vendor's label is bounded: text that is not a vendor's name, and vendors past
//! [`MAX_VENDORS`], are [`OTHER_VENDOR`] ([`site`]).
//!
//! - For any client: [`query`] times a closure and [`query_async`] a future, as one query of a
//!   vendor; `#[profiled(db = "postgres")]` turns a function's calls into queries; [`Query`] is
//!   the building block adapters use.
//! - Hooks for particular clients, each behind a feature: `rusqlite`
//!   (`rusqlite`), `sqlx` (`sqlx`), `diesel` (`diesel`).
//!
//! Like function calls, every query is counted; sampling (the global rate) decides only which
//! are timed and become events, decided when the query starts. A timed query's span is current
//! while it runs, so profiled calls inside it are its children, and it is a child of the
//! calling thread's current span; calls inside a query not timed stay the caller's children.
//!
//! A query is recorded exactly once: when it ends, or when it is dropped before (a panic, a
//! future dropped early), then as failed, with the statement it was started with.

mod detail;
mod mask;
mod query;
mod run;
mod site;

pub use detail::DbDetail;
pub use mask::{for_event, mask, set_statement_limit, statement_limit, DEFAULT_STATEMENT_LIMIT};
pub use query::{record_measured, Query, Statement};
pub use run::{failure_of, query, query_async, QueryFuture};
pub use site::{site, MAX_VENDORS, MAX_VENDOR_LEN, OTHER_VENDOR};

#[cfg(feature = "diesel")]
#[cfg_attr(docsrs, doc(cfg(feature = "diesel")))]
pub mod diesel;
#[cfg(feature = "rusqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "rusqlite")))]
pub mod rusqlite;
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub mod sqlx;

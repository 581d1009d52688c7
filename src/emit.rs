//! Recording a function call, an HTTP request or a database query whose duration was measured
//! elsewhere: the counterpart of Python profilis's `emit_fn`, `emit_req` and `emit_db`. Each
//! goes through what the built-in paths go through (the site's sampling, the counters, the
//! duration histograms, the events and the dashboard), as a child of the thread's current span,
//! and ends now. Nothing happens while no exporter or collector runs, or profiling is off.
//!
//! ```
//! use std::time::Duration;
//!
//! // A job timed by a scheduler that reports durations when it is done.
//! profilis::emit::function("billing::nightly_sync", Duration::from_millis(1_250), false);
//! ```
//!
//! A function recorded by name is interned once (a lock and a hash lookup on each call): meant
//! for work measured elsewhere, not for a hot loop, where `#[profiled]` costs far less.
//!
//! Every name, route and status given here is a label value, used as it is: each distinct one
//! is a series of its own and a site kept for the process, with no check or cap (unlike the
//! adapters, which label by route template and bound what a client can add). Give values from
//! a fixed set (a job's kind, a route's template), never an id, a raw path or user input. A
//! vendor is checked and capped as every query's is (see `db`: text that is not a vendor's
//! name, and vendors past the 64th, are `db_vendor="<other>"`).
//!
//! A call is kept as its start and end on profilis's clock, which starts about when the
//! machine did: a duration longer than the machine has been up (a job that outlived a reboot)
//! is recorded as that long, the time since the clock's start.

use std::time::Duration;

use profilis_core::adapter::record_measured;
use profilis_core::{Failure, Site, FUNCTION};

/// Records a call of the function `name` (its `function` label and the `fn` of its event) that
/// took `duration` and ended now; `error` whether it failed.
pub fn function(name: &str, duration: Duration, error: bool) {
    record_measured(Site::interned(&FUNCTION, name, &[]), duration, error, None);
}

/// Records a failed call of the function `name` that took `duration` and ended now, with why
/// it failed (its event's `exception_type` and `exception_value`, the dashboard's errors).
pub fn function_failed(name: &str, duration: Duration, failure: Failure) {
    record_measured(
        Site::interned(&FUNCTION, name, &[]),
        duration,
        true,
        Some(failure),
    );
}

/// Records an HTTP request of `method` on `route` (its template; `None`: it matched no route)
/// that took `duration` and ended now with `status`, sampled at the global rate. For the
/// sampling, exclusions and method label of an adapter's [`HttpConfig`](crate::http::HttpConfig),
/// use [`HttpRules::record_measured`](crate::http::HttpRules::record_measured) on its rules.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub fn request(method: &str, route: Option<&str>, status: u16, duration: Duration) {
    use std::sync::LazyLock;

    static RULES: LazyLock<profilis_integrations::http::HttpRules> =
        LazyLock::new(Default::default);
    RULES.record_measured(method, route, status, duration);
}

/// Records a query of `vendor` running `statement` (masked in its event) that took `duration`
/// and ended now; `rows` returned or affected if known; `failure` if it failed (see
/// [`db::failure_of`](crate::db::failure_of)).
#[cfg(feature = "db")]
#[cfg_attr(docsrs, doc(cfg(feature = "db")))]
pub fn query(
    vendor: &str,
    statement: Option<&str>,
    duration: Duration,
    rows: Option<u64>,
    failure: Option<Failure>,
) {
    profilis_integrations::db::record_measured(vendor, statement, duration, rows, failure);
}

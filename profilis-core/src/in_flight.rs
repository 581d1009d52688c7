//! Requests being served right now, kept by the HTTP adapters and reported by the facade sink as
//! `profilis_http_requests_in_flight`.

use std::sync::atomic::{AtomicI64, Ordering};

static HTTP: AtomicI64 = AtomicI64::new(0);

/// HTTP requests being served now.
pub fn http() -> i64 {
    HTTP.load(Ordering::Relaxed)
}

/// Counts one HTTP request in flight until the guard drops.
#[derive(Debug)]
#[must_use = "the request counts as in flight until the guard drops"]
pub struct HttpInFlight(());

impl HttpInFlight {
    /// A request starts being served.
    pub fn start() -> HttpInFlight {
        HTTP.fetch_add(1, Ordering::Relaxed);
        HttpInFlight(())
    }
}

impl Drop for HttpInFlight {
    fn drop(&mut self) {
        HTTP.fetch_sub(1, Ordering::Relaxed);
    }
}

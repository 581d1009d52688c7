//! Bounds shared by every output's settings, kept in one place.

use std::time::Duration;

/// The longest timeout any output takes (the listener's read and connection timeouts, a
/// Pushgateway request's, the JSONL sink's longest wait between retries): a day. Longer is not a bound in any useful sense, and
/// `Duration::MAX` does not fit on a clock (`Instant + Duration` panics).
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether `timeout` is one an output takes: greater than zero and at most [`MAX_TIMEOUT`].
pub(crate) fn valid_timeout(timeout: Duration) -> bool {
    !timeout.is_zero() && timeout <= MAX_TIMEOUT
}

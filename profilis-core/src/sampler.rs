//! Sampling: whether a call's duration is recorded. A site's own rate wins over the global rate.
//! Sampled-out calls are still counted exactly; only their duration (and event) is skipped.
//!
//! A rate is kept as a threshold on a random `u64`: a call is sampled in if its draw is below.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ConfigError;

/// Threshold meaning "always": a rate of 1.0.
pub(crate) const ALWAYS: u64 = u64::MAX;
/// Threshold meaning "this site has no rate of its own".
pub(crate) const INHERIT: u64 = u64::MAX - 1;

static GLOBAL: AtomicU64 = AtomicU64::new(ALWAYS);

/// A rate in `0..=1` as a threshold (a call is sampled in if its draw is below it).
pub(crate) const fn threshold(rate: f64) -> u64 {
    if rate.is_nan() || rate <= 0.0 {
        0
    } else if rate >= 1.0 {
        ALWAYS
    } else {
        // `as` saturates; INHERIT is only reachable for rates within 2^-63 of 1.
        let t = (rate * 18_446_744_073_709_551_616.0) as u64;
        if t >= INHERIT {
            INHERIT - 1
        } else {
            t
        }
    }
}

/// The rate a threshold stands for.
pub(crate) fn rate_of(threshold: u64) -> f64 {
    if threshold == ALWAYS {
        1.0
    } else {
        threshold as f64 / 18_446_744_073_709_551_616.0
    }
}

/// Checks that `rate` is a sample rate: a finite number in `0..=1`.
///
/// # Errors
/// [`ConfigError::SampleRate`] naming the value otherwise.
pub fn validate_rate(rate: f64) -> Result<f64, ConfigError> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(ConfigError::SampleRate { value: rate })
    }
}

/// Sets the global sample rate, used by every site without a rate of its own (default 1.0).
///
/// # Errors
/// [`ConfigError::SampleRate`] if `rate` is not a finite number in `0..=1`.
pub fn set_global_rate(rate: f64) -> Result<(), ConfigError> {
    let rate = validate_rate(rate)?;
    GLOBAL.store(threshold(rate), Ordering::Relaxed);
    Ok(())
}

/// The global sample rate.
pub fn global_rate() -> f64 {
    rate_of(GLOBAL.load(Ordering::Relaxed))
}

/// Decides whether one call of a site with threshold `site_threshold` is sampled in; `draw`
/// gives a random number, asked for only when the rate is strictly between 0 and 1.
#[inline]
pub(crate) fn sample(site_threshold: u64, draw: impl FnOnce() -> u64) -> bool {
    let t = if site_threshold == INHERIT {
        GLOBAL.load(Ordering::Relaxed)
    } else {
        site_threshold
    };
    t == ALWAYS || (t != 0 && draw() < t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_round_trip_and_decide() {
        assert_eq!(threshold(1.0), ALWAYS);
        assert_eq!(threshold(0.0), 0);
        assert!((rate_of(threshold(0.25)) - 0.25).abs() < 1e-12);
        assert!(sample(ALWAYS, || unreachable!("no draw needed")));
        assert!(!sample(0, || unreachable!("no draw needed")));
        let quarter = threshold(0.25);
        assert!(sample(quarter, || quarter - 1));
        assert!(!sample(quarter, || quarter));
        let rng = crate::random::Rng::new();
        let hits = (0..100_000)
            .filter(|_| sample(quarter, || rng.next_u64()))
            .count();
        assert!((20_000..30_000).contains(&hits), "{hits} of 100000 at 0.25");
    }

    #[test]
    fn bad_rates_are_rejected_with_the_value() {
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let err = validate_rate(bad).unwrap_err();
            assert!(err.to_string().contains("0..=1"), "{err}");
        }
        assert_eq!(validate_rate(0.5).unwrap(), 0.5);
    }
}

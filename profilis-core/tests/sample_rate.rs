//! Property tests of `validate_rate`, the check every sample rate from outside goes through
//! (`PROFILIS_SAMPLE_RATE`, `HttpConfig::sample_rate`, `set_global_rate`): exactly the finite
//! numbers in `0..=1` pass, unchanged, and every other is an error naming it.

use profilis_core::{validate_rate, ConfigError};
use proptest::prelude::*;

/// Any `f64`, with the edges and the values just past them drawn often.
fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        0.0..=1.0f64,
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            f64::MIN_POSITIVE,
            1.0 + f64::EPSILON,
            -f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
        ]),
    ]
}

proptest! {
    #[test]
    fn exactly_the_finite_numbers_in_zero_to_one_pass(r in rate()) {
        let allowed = r.is_finite() && (0.0..=1.0).contains(&r);
        match validate_rate(r) {
            Ok(v) => {
                prop_assert!(allowed, "{} was accepted", r);
                prop_assert_eq!(v.to_bits(), r.to_bits());
            }
            Err(err) => {
                prop_assert!(!allowed, "{} was refused", r);
                let named = matches!(
                    err,
                    ConfigError::SampleRate { value } if value.to_bits() == r.to_bits()
                );
                prop_assert!(named, "{:?} does not name {}", err, r);
                let message = err.to_string();
                prop_assert!(message.contains(&r.to_string()), "{}", message);
                prop_assert!(message.contains("0..=1"), "{}", message);
            }
        }
    }
}

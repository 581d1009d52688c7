//! Property tests of `parse_buckets`, the parser of `PROFILIS_BUCKETS`: it never panics,
//! returns exactly the numbers of a well-formed list, and refuses every other list with the
//! reason that applies, naming the value as given.

use profilis_core::ConfigError;
use profilis_exporters::parse_buckets;
use proptest::prelude::*;

/// Positive, finite, strictly increasing bounds, 1 to 20 of them.
fn bounds() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            1e-9..1e6f64,
            any::<f64>().prop_filter("positive, finite", |v| v.is_finite() && *v > 0.0),
        ],
        1..20,
    )
    .prop_map(|mut v| {
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    })
}

/// Bounds written as a person might: in plain or exponent form, with spaces around commas.
fn written(bounds: &[f64], styles: &[(bool, &str, &str)]) -> String {
    bounds
        .iter()
        .zip(styles.iter().cycle())
        .map(|(b, (exponent, before, after))| {
            let b = if *exponent {
                format!("{b:e}")
            } else {
                b.to_string()
            };
            format!("{before}{b}{after}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn styles() -> impl Strategy<Value = Vec<(bool, &'static str, &'static str)>> {
    let space = || prop::sample::select(vec!["", " ", "\t", "  "]);
    prop::collection::vec((any::<bool>(), space(), space()), 1..5)
}

/// The reason of a `Buckets` error for `text`, checking that it names `text` as given.
fn reason(text: &str) -> Result<&'static str, TestCaseError> {
    match parse_buckets(text) {
        Err(ConfigError::Buckets { value, reason }) => {
            prop_assert_eq!(value, format!("{text:?}"));
            Ok(reason)
        }
        other => Err(TestCaseError::fail(format!(
            "{text:?} gave {other:?}, not a Buckets error"
        ))),
    }
}

proptest! {
    #[test]
    fn never_panics_on_any_text(text in any::<String>()) {
        let _ = parse_buckets(&text);
    }

    #[test]
    fn never_panics_on_near_lists(text in "[0-9., eE+\\-infaNy]{0,40}") {
        if let Ok(values) = parse_buckets(&text) {
            // What it accepts is a usable set of bounds.
            prop_assert!(!values.is_empty());
            prop_assert!(values.iter().all(|v| v.is_finite() && *v > 0.0), "{:?}", values);
            prop_assert!(values.windows(2).all(|w| w[0] < w[1]), "{:?}", values);
        }
    }

    #[test]
    fn a_well_formed_list_gives_its_numbers(bounds in bounds(), styles in styles()) {
        let text = written(&bounds, &styles);
        let parsed = parse_buckets(&text);
        prop_assert!(parsed.is_ok(), "{:?} gave {:?}", text, parsed);
        let bits = |v: &[f64]| v.iter().map(|b| b.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&parsed.unwrap()), bits(&bounds));
    }

    #[test]
    fn a_word_among_the_numbers_is_not_a_number(
        bounds in bounds(),
        at in any::<prop::sample::Index>(),
        word in prop::sample::select(vec!["abc", "1s", "0.1.2", "1_000", "5ms", "0x10", "½", "1e"]),
    ) {
        let mut items: Vec<String> = bounds.iter().map(f64::to_string).collect();
        items.insert(at.index(items.len() + 1), word.to_owned());
        let text = items.join(",");
        prop_assert_eq!(reason(&text)?, "one is not a number");
    }

    #[test]
    fn an_infinite_or_nan_bound_is_not_finite(
        bounds in bounds(),
        at in any::<prop::sample::Index>(),
        word in prop::sample::select(vec!["inf", "infinity", "NaN", "nan", "+inf"]),
    ) {
        let mut items: Vec<String> = bounds.iter().map(f64::to_string).collect();
        items.insert(at.index(items.len() + 1), word.to_owned());
        let text = items.join(",");
        prop_assert_eq!(reason(&text)?, "one is not a finite number");
    }

    #[test]
    fn a_zero_or_negative_bound_is_not_positive(
        bounds in bounds(),
        at in any::<prop::sample::Index>(),
        bad in prop_oneof![Just(0.0), Just(-0.0), -1e6..0.0f64],
    ) {
        let mut items: Vec<String> = bounds.iter().map(f64::to_string).collect();
        items.insert(at.index(items.len() + 1), bad.to_string());
        let text = items.join(",");
        prop_assert_eq!(reason(&text)?, "one is not positive");
    }

    #[test]
    fn bounds_out_of_order_are_refused(
        bounds in bounds().prop_filter("two or more", |b| b.len() >= 2),
        at in any::<prop::sample::Index>(),
        repeat in any::<bool>(),
    ) {
        let mut items: Vec<String> = bounds.iter().map(f64::to_string).collect();
        let i = at.index(items.len() - 1);
        if repeat {
            // The same bound twice is not increasing either.
            items.insert(i + 1, items[i].clone());
        } else {
            items.swap(i, i + 1);
        }
        let text = items.join(",");
        prop_assert_eq!(reason(&text)?, "they are not in increasing order");
    }

    #[test]
    fn no_numbers_at_all_are_none(text in "[ \\t,]{0,10}") {
        prop_assert_eq!(reason(&text)?, "there are none");
    }
}

#[test]
fn the_reason_is_in_the_message_with_the_value() {
    let err = parse_buckets("0.5,0.1").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("\"0.5,0.1\""), "{message}");
    assert!(message.contains("not in increasing order"), "{message}");
}

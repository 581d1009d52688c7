//! The process-wide switch word that every profiled call reads first: whether a collector runs,
//! whether profiling is on, and which collector run (generation) threads record for.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ConfigError;

/// Bit 0: a collector is running. Bit 1: profiling is enabled (not switched off).
/// Bits 2..: the collector generation, so threads notice a restarted collector.
pub(crate) static STATE: AtomicU64 = AtomicU64::new(ENABLED);
pub(crate) const RUNNING: u64 = 1;
pub(crate) const ENABLED: u64 = 2;
/// Both bits: calls are recorded.
pub(crate) const ACTIVE: u64 = RUNNING | ENABLED;
pub(crate) const GEN_SHIFT: u32 = 2;

/// The generation named by a value of [`STATE`].
#[inline(always)]
pub(crate) fn generation_of(state: u64) -> u64 {
    state >> GEN_SHIFT
}

/// Switches profiling on or off for the whole process. Off, a profiled call costs one atomic
/// load and records nothing.
pub fn set_enabled(enabled: bool) {
    if enabled {
        STATE.fetch_or(ENABLED, Ordering::Relaxed);
    } else {
        STATE.fetch_and(!ENABLED, Ordering::Relaxed);
    }
}

/// Whether profiling is switched on (it is by default).
pub fn is_enabled() -> bool {
    STATE.load(Ordering::Relaxed) & ENABLED != 0
}

/// Marks generation `id` as running, profiling switched on or off by `enabled` (`None`: as it
/// is).
pub(crate) fn start_generation(id: u64, enabled: Option<bool>) {
    let _ = STATE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
        let on = enabled.unwrap_or(s & ENABLED != 0);
        Some((id << GEN_SHIFT) | RUNNING | if on { ENABLED } else { 0 })
    });
}

/// No collector runs any more: calls stop recording.
pub(crate) fn stop_running() {
    STATE.fetch_and(!RUNNING, Ordering::AcqRel);
}

/// Reads `PROFILIS_DISABLED`: `Some(true)` to switch profiling off, `None` when unset.
///
/// # Errors
/// As [`parse_disabled`]; [`ConfigError::EnvNotUnicode`] for a value that is not UTF-8.
pub(crate) fn disabled_from_env() -> Result<Option<bool>, ConfigError> {
    crate::error::env_var("PROFILIS_DISABLED")?
        .map(|value| parse_disabled(&value))
        .transpose()
}

/// A value of `PROFILIS_DISABLED`: `true` to switch profiling off. Any case, whitespace around
/// it ignored.
///
/// # Errors
/// [`ConfigError::Env`] for a value other than `1`, `true`, `yes`, `on`, `0`, `false`, `no`,
/// `off` or empty.
pub(crate) fn parse_disabled(value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Env {
            name: "PROFILIS_DISABLED",
            value: value.to_owned(),
            expected: "one of 1, true, yes, on, 0, false, no, off",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ON: [&str; 4] = ["1", "true", "yes", "on"];
    const OFF: [&str; 5] = ["", "0", "false", "no", "off"];

    /// One of the accepted words in a random mix of cases, with whitespace around it.
    fn word(words: &'static [&'static str]) -> impl Strategy<Value = String> {
        (
            prop::sample::select(words),
            prop::collection::vec(any::<bool>(), 5),
            "[ \t\r\n]{0,3}",
            "[ \t\r\n]{0,3}",
        )
            .prop_map(|(word, upper, before, after)| {
                let cased: String = word
                    .chars()
                    .zip(upper)
                    .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                    .collect();
                format!("{before}{cased}{after}")
            })
    }

    proptest! {
        #[test]
        fn never_panics(value in any::<String>()) {
            let _ = parse_disabled(&value);
        }

        #[test]
        fn words_that_switch_off_mean_true(value in word(&ON)) {
            prop_assert_eq!(parse_disabled(&value), Ok(true));
        }

        #[test]
        fn words_that_leave_on_mean_false(value in word(&OFF)) {
            prop_assert_eq!(parse_disabled(&value), Ok(false));
        }

        #[test]
        fn anything_else_is_an_error_naming_variable_and_value(
            value in prop_oneof![
                any::<String>(),
                "[ ]?[a-zA-Z01]{1,6}[ ]?",
                // An accepted word with something more in it.
                (prop::sample::select(&ON[..]), "[a-z0-9._é]{1,2}")
                    .prop_map(|(w, extra)| format!("{w}{extra}")),
            ]
        ) {
            let trimmed = value.trim();
            let accepted = ON.iter().chain(&OFF).any(|w| w.eq_ignore_ascii_case(trimmed));
            prop_assume!(!accepted);
            let err = parse_disabled(&value).unwrap_err();
            prop_assert_eq!(
                &err,
                &ConfigError::Env {
                    name: "PROFILIS_DISABLED",
                    value: value.clone(),
                    expected: "one of 1, true, yes, on, 0, false, no, off",
                }
            );
            let message = err.to_string();
            prop_assert!(message.contains("PROFILIS_DISABLED"), "{}", message);
            prop_assert!(message.contains(&format!("{value:?}")), "{}", message);
        }
    }
}

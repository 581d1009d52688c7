//! The `PROFILIS_*` environment variables, read and checked, and the defaults of the labels.

#[cfg(feature = "listener")]
use std::net::SocketAddr;

use profilis_core::{env_var, validate_buckets, validate_rate, ConfigError};

use crate::error::Error;

/// Parses comma-separated seconds (`"0.01,0.1,1"`), as in `PROFILIS_BUCKETS`.
///
/// # Errors
/// [`ConfigError::Buckets`] naming `s` and what is wrong with it (a value that is not a
/// number, none at all, not finite, not positive, or not in increasing order).
pub fn parse_buckets(s: &str) -> Result<Vec<f64>, ConfigError> {
    let as_given = |reason| ConfigError::Buckets {
        value: format!("{s:?}"),
        reason,
    };
    let values: Vec<f64> = s
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::parse::<f64>)
        .collect::<Result<_, _>>()
        .map_err(|_| as_given("one is not a number"))?;
    validate_buckets(&values).map_err(|error| match error {
        ConfigError::Buckets { reason, .. } => as_given(reason),
        other => other,
    })
}

/// The `PROFILIS_*` variables, read and checked.
#[derive(Default)]
pub(super) struct EnvSettings {
    #[cfg(feature = "listener")]
    pub(super) listen: Option<SocketAddr>,
    pub(super) service: Option<String>,
    pub(super) instance: Option<String>,
    pub(super) worker: Option<String>,
    pub(super) sample_rate: Option<f64>,
    pub(super) buckets: Option<Vec<f64>>,
    #[cfg(feature = "dashboard")]
    pub(super) dashboard: Option<bool>,
    pub(super) process_metrics: Option<bool>,
    /// `PROFILIS_ALLOW`: the listener's allow-list.
    #[cfg(feature = "listener")]
    pub(super) allow: Option<Vec<crate::listener::IpNet>>,
    /// `PROFILIS_BEARER_TOKEN`: checked in `install` with a token given in code, never shown.
    #[cfg(feature = "dashboard")]
    pub(super) bearer_token: Option<String>,
}

/// A variable's value checked by `parse`, or an error naming the variable, its value and
/// `expected`.
fn parse_env<T>(
    name: &'static str,
    expected: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = env_var(name)? else {
        return Ok(None);
    };
    match parse(&value) {
        Some(parsed) => Ok(Some(parsed)),
        None => Err(ConfigError::Env {
            name,
            value,
            expected,
        }),
    }
}

/// A value of `PROFILIS_SAMPLE_RATE`: a number in `0..=1`, whitespace around it ignored.
fn parse_rate(value: &str) -> Option<f64> {
    value
        .trim()
        .parse()
        .ok()
        .and_then(|r| validate_rate(r).ok())
}

/// A value of `PROFILIS_DASHBOARD` or `PROFILIS_PROCESS_METRICS`: `1`, `true`, `on` or `0`,
/// `false`, `off`, in any case, whitespace around it ignored.
fn parse_switch(value: &str) -> Option<bool> {
    let value = value.trim();
    let is = |word: &str| value.eq_ignore_ascii_case(word);
    if is("1") || is("true") || is("on") {
        Some(true)
    } else if is("0") || is("false") || is("off") {
        Some(false)
    } else {
        None
    }
}

fn env_label(name: &'static str) -> Result<Option<String>, ConfigError> {
    parse_env(name, "a non-empty label value", |v| {
        crate::labels::is_label_value(v).then(|| v.to_owned())
    })
}

/// A variable that only a part this build leaves out reads (`missing` says which): an error
/// when set, rather than ignored. `redact` for a secret, whose value is not shown.
#[cfg(not(all(feature = "listener", feature = "dashboard")))]
fn refuse_if_set(
    name: &'static str,
    missing: &'static str,
    redact: bool,
) -> Result<(), ConfigError> {
    match env_var(name)? {
        None => Ok(()),
        Some(value) => Err(ConfigError::Env {
            name,
            value: if redact {
                "<redacted>".to_owned()
            } else {
                value
            },
            expected: missing,
        }),
    }
}

impl EnvSettings {
    pub(super) fn read() -> Result<EnvSettings, ConfigError> {
        #[cfg(not(feature = "listener"))]
        for name in ["PROFILIS_LISTEN", "PROFILIS_ALLOW"] {
            refuse_if_set(
                name,
                "it unset: this build has no built-in listener (profilis's cargo feature `listener`)",
                false,
            )?;
        }
        #[cfg(not(feature = "dashboard"))]
        for (name, redact) in [
            ("PROFILIS_DASHBOARD", false),
            ("PROFILIS_BEARER_TOKEN", true),
        ] {
            refuse_if_set(
                name,
                "it unset: this build has no dashboard or listener (profilis's cargo feature `listener`, `axum` or `actix`)",
                redact,
            )?;
        }
        Ok(EnvSettings {
            #[cfg(feature = "listener")]
            listen: parse_env(
                "PROFILIS_LISTEN",
                "ip:port or localhost:port (an IP address, not a host name), such as 127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464 or localhost:9464",
                |v| crate::listener::parse_listen_addr(v).ok(),
            )?,
            service: env_label("PROFILIS_SERVICE")?,
            instance: env_label("PROFILIS_INSTANCE")?,
            worker: env_label("PROFILIS_WORKER")?,
            sample_rate: parse_env("PROFILIS_SAMPLE_RATE", "a number in 0..=1", parse_rate)?,
            buckets: env_var("PROFILIS_BUCKETS")?
                .map(|v| {
                    parse_buckets(&v).map_err(|source| ConfigError::EnvValue {
                        name: "PROFILIS_BUCKETS",
                        source: Box::new(source),
                    })
                })
                .transpose()?,
            #[cfg(feature = "dashboard")]
            dashboard: parse_env(
                "PROFILIS_DASHBOARD",
                "1, true or on to serve the dashboard; 0, false or off not to",
                parse_switch,
            )?,
            process_metrics: parse_env(
                "PROFILIS_PROCESS_METRICS",
                "1, true or on for the process_* metrics; 0, false or off for none",
                parse_switch,
            )?,
            #[cfg(feature = "listener")]
            allow: parse_env(
                "PROFILIS_ALLOW",
                "comma-separated addresses or networks, such as 10.0.0.0/8,127.0.0.1, naming at least one",
                |v| crate::listener::parse_allow_list(v).ok(),
            )?,
            #[cfg(feature = "dashboard")]
            bearer_token: bearer_token_var()?,
        })
    }
}

/// `PROFILIS_METRIC_BUCKETS`: per-metric buckets of the application's histograms, in the
/// order written (see [`parse_metric_buckets`](crate::parse_metric_buckets)); empty when unset.
pub(super) fn metric_buckets() -> Result<Vec<(crate::MetricMatch, Vec<f64>)>, Error> {
    const NAME: &str = "PROFILIS_METRIC_BUCKETS";
    let Some(value) = env_var(NAME)? else {
        return Ok(Vec::new());
    };
    crate::parse_metric_buckets(&value).map_err(|source| Error::EnvMetricBuckets {
        name: NAME,
        value,
        source,
    })
}

/// The `service` label without a setting: the executable's name.
pub(super) fn default_service() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The `instance` label without a setting: the host name.
pub(super) fn default_instance() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    if host.is_empty() {
        "localhost".to_owned()
    } else {
        host
    }
}

/// `PROFILIS_BEARER_TOKEN`, unchecked (a bad token is [`crate::Error::BearerToken`], which
/// does not show it); a value that is not UTF-8 is an error that does not show it either.
#[cfg(feature = "dashboard")]
fn bearer_token_var() -> Result<Option<String>, ConfigError> {
    const NAME: &str = "PROFILIS_BEARER_TOKEN";
    match std::env::var(NAME) {
        Ok(token) => Ok(Some(token)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Env {
            name: NAME,
            value: "<redacted>".to_owned(),
            expected: "visible ASCII characters without spaces (the token itself is not shown)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_rate_never_panics_and_is_in_zero_to_one(value in any::<String>()) {
            if let Some(rate) = parse_rate(&value) {
                prop_assert!((0.0..=1.0).contains(&rate), "{:?} gave {}", value, rate);
            }
        }

        #[test]
        fn every_rate_in_zero_to_one_is_read_as_written(
            rate in prop_oneof![0.0..=1.0f64, Just(0.0), Just(1.0)],
            exponent in any::<bool>(),
            before in "[ \t]{0,2}",
            after in "[ \t\n]{0,2}",
        ) {
            let written = if exponent { format!("{rate:e}") } else { rate.to_string() };
            let value = format!("{before}{written}{after}");
            prop_assert_eq!(parse_rate(&value).map(f64::to_bits), Some(rate.to_bits()));
        }

        #[test]
        fn numbers_outside_zero_to_one_are_refused(
            rate in prop_oneof![
                any::<f64>().prop_filter("outside 0..=1", |r| !(0.0..=1.0).contains(r)),
                Just(1.0 + f64::EPSILON),
                Just(-f64::MIN_POSITIVE),
            ],
        ) {
            let written = rate.to_string();
            prop_assert_eq!(parse_rate(&written), None, "{} was taken", written);
        }

    }

    #[test]
    fn switches_read_on_and_off_words_only() {
        for on in ["1", "true", "ON", " True\n"] {
            assert_eq!(parse_switch(on), Some(true), "{on:?}");
        }
        for off in ["0", "false", "Off", "\tOFF "] {
            assert_eq!(parse_switch(off), Some(false), "{off:?}");
        }
        for bad in ["", "yes", "2", "onn", "o n", "maybe"] {
            assert_eq!(parse_switch(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn words_and_bad_numbers_are_refused() {
        for value in [
            "", " ", "NaN", "nan", "inf", "-inf", "infinity", "0.5.1", "1/2", "50%", "0,5", "half",
            "0x1", "1e", "--0.5", "0.5 0.5",
        ] {
            assert_eq!(parse_rate(value), None, "{value:?} was taken");
        }
        assert_eq!(parse_rate(" 0.25\n"), Some(0.25));
    }
}

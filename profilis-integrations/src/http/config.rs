//! Configuring the HTTP rules: the [`HttpConfig`] builder, the route patterns it takes
//! (prefixes or `re:` regular expressions) and the errors of values it cannot use.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use profilis_core::{validate_rate, ConfigError};
use regex::Regex;

use super::rules::{HttpRules, Rules};

/// A configuration value the HTTP adapters cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// A `re:` pattern that is not a valid regular expression.
    #[error("route pattern {pattern:?} is not a valid regular expression: {reason}")]
    InvalidRegex {
        /// The pattern, without `re:`.
        pattern: String,
        /// What the regex parser said.
        reason: String,
    },
    /// An empty route pattern, which would match every request.
    #[error("route pattern {pattern:?} is not allowed: expected a path prefix such as /health or re:<regex>")]
    EmptyPattern {
        /// The pattern as given.
        pattern: String,
    },
    /// A sample rate outside `0..=1`.
    #[error(transparent)]
    SampleRate(#[from] ConfigError),
    /// An empty peer name for an HTTP client (`client::ClientConfig::peer`).
    #[error("peer name {name:?} is not allowed: expected a non-empty name such as payments")]
    EmptyPeerName {
        /// The name as given.
        name: String,
    },
    /// A cap of zero distinct gRPC methods (`grpc::GrpcConfig::max_methods`).
    #[error("max_methods {max} is not allowed: expected at least 1")]
    MaxMethods {
        /// The cap as given.
        max: usize,
    },
    /// A cap of zero distinct peers (`client::ClientConfig::max_peers`).
    #[error("max_peers {max} is not allowed: expected at least 1")]
    MaxPeers {
        /// The cap as given.
        max: usize,
    },
}

/// A path prefix, or a regular expression (given as `re:<regex>`).
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    Prefix(String),
    Regex(Regex),
}

impl Pattern {
    pub(crate) fn parse(pattern: &str) -> Result<Pattern, HttpConfigError> {
        if let Some(re) = pattern.strip_prefix("re:") {
            return Regex::new(re)
                .map(Pattern::Regex)
                .map_err(|e| HttpConfigError::InvalidRegex {
                    pattern: re.to_owned(),
                    reason: e.to_string(),
                });
        }
        if pattern.is_empty() {
            return Err(HttpConfigError::EmptyPattern {
                pattern: pattern.to_owned(),
            });
        }
        Ok(Pattern::Prefix(pattern.to_owned()))
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Prefix(prefix) => text.starts_with(prefix.as_str()),
            Pattern::Regex(re) => re.is_match(text),
        }
    }
}

/// How the HTTP adapters profile requests. Build it, then hand it to an adapter.
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpConfig {
    pub(super) exclude: Vec<Pattern>,
    pub(super) sample_rate: Option<f64>,
    pub(super) route_rates: Vec<(Pattern, f64)>,
    pub(super) always_sample_errors: bool,
    pub(super) method_label: bool,
    seed: Option<u64>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            exclude: Vec::new(),
            sample_rate: None,
            route_rates: Vec::new(),
            always_sample_errors: true,
            method_label: false,
            seed: None,
        }
    }
}

impl HttpConfig {
    /// Every request profiled, durations at the global sample rate, errors always timed.
    pub fn new() -> HttpConfig {
        HttpConfig::default()
    }

    /// Leaves requests whose path starts with one of `patterns` (or matches one given as
    /// `re:<regex>`) alone.
    ///
    /// # Errors
    /// [`HttpConfigError::InvalidRegex`] or [`HttpConfigError::EmptyPattern`], naming the
    /// pattern.
    pub fn exclude_routes<S: AsRef<str>>(
        mut self,
        patterns: &[S],
    ) -> Result<Self, HttpConfigError> {
        for p in patterns {
            self.exclude.push(Pattern::parse(p.as_ref())?);
        }
        Ok(self)
    }

    /// The share of requests whose duration is recorded (default: the global rate).
    ///
    /// # Errors
    /// [`HttpConfigError::SampleRate`] if not in `0..=1`.
    pub fn sample_rate(mut self, rate: f64) -> Result<Self, HttpConfigError> {
        self.sample_rate = Some(validate_rate(rate)?);
        Ok(self)
    }

    /// The sample rate of routes whose template starts with `pattern` (or matches `re:<regex>`).
    /// The first matching rule wins.
    ///
    /// # Errors
    /// As [`HttpConfig::exclude_routes`] and [`HttpConfig::sample_rate`].
    pub fn route_sample_rate(mut self, pattern: &str, rate: f64) -> Result<Self, HttpConfigError> {
        let rate = validate_rate(rate)?;
        self.route_rates.push((Pattern::parse(pattern)?, rate));
        Ok(self)
    }

    /// Whether responses with status >= 500 and panics are always timed (default `true`).
    pub fn always_sample_errors(mut self, on: bool) -> Self {
        self.always_sample_errors = on;
        self
    }

    /// Adds the opt-in `method` label to the HTTP metrics (default off, as in the contract):
    /// the standard methods by name, any other a client sends (`PROPFIND`, `FOO1`) as
    /// `OTHER`, so a client cannot add series by inventing methods. Events keep the method
    /// as sent.
    pub fn method_label(mut self, on: bool) -> Self {
        self.method_label = on;
        self
    }

    /// Seeds the sampling decisions, for reproducible tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The rules, ready to share between requests.
    pub fn build(self) -> HttpRules {
        let seed = self.seed.unwrap_or_else(profilis_core::adapter::random_u64);
        HttpRules(Arc::new(Rules {
            config: self,
            random: AtomicU64::new(seed),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_prefixes_or_regexes_and_bad_ones_are_errors() {
        assert!(Pattern::parse("/health").unwrap().matches("/healthz"));
        assert!(!Pattern::parse("/health").unwrap().matches("/api/health"));
        let re = Pattern::parse("re:^/users/[0-9]+$").unwrap();
        assert!(re.matches("/users/42") && !re.matches("/users/ab"));
        let err = HttpConfig::new()
            .exclude_routes(&["re:(unclosed"])
            .unwrap_err();
        assert!(
            matches!(err, HttpConfigError::InvalidRegex { ref pattern, .. } if pattern == "(unclosed")
        );
        assert!(err.to_string().contains("(unclosed"));
        assert!(matches!(
            HttpConfig::new().exclude_routes(&[""]),
            Err(HttpConfigError::EmptyPattern { .. })
        ));
        assert!(HttpConfig::new().sample_rate(1.5).is_err());
        assert!(HttpConfig::new().route_sample_rate("/x", -1.0).is_err());
    }
}

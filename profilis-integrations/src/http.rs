//! The rules every HTTP adapter follows, in one place: which requests are left alone, which
//! label a route gets, which requests have their duration recorded, and how a request becomes
//! a span and a recorded call.
//!
//! - **Route labels** are route templates (`/users/{id}`), never raw paths: a request that
//!   matches no route is labelled [`UNMATCHED_ROUTE`], so no client can create new series.
//! - **Exclusions** ([`HttpConfig::exclude_routes`]) are path prefixes, or regular expressions
//!   after `re:` (as in Python profilis), matched against the request path. Excluded requests
//!   are not timed or counted at all.
//! - **Sampling**: requests are always counted exactly (`profilis_http_requests_total`); their
//!   duration is recorded at the first matching per-route rate, else the configured rate, else
//!   the global rate. With `always_sample_errors` (the default), responses with status >= 500
//!   and panics are always timed. The random source is seedable for tests.
//! - **Trace context**: a request is a span; a valid W3C `traceparent` header sets its trace id
//!   and parent. Profiled calls made while handling it become its children.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use profilis_core::context::parse_traceparent;
use profilis_core::event::HttpDetail;
use profilis_core::in_flight::HttpInFlight;
use profilis_core::{sampler, ConfigError, Detail, Outcome, Site, SpanContext, Timer};
use regex::Regex;

/// The `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "<unmatched>";

/// The status recorded for a request whose client went away before there was a response
/// (nginx's "client closed request"); such requests are marked [`End::Cancelled`].
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

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
}

/// A path prefix, or a regular expression (given as `re:<regex>`).
#[derive(Debug, Clone)]
enum Pattern {
    Prefix(String),
    Regex(Regex),
}

impl Pattern {
    fn parse(pattern: &str) -> Result<Pattern, HttpConfigError> {
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

    fn matches(&self, text: &str) -> bool {
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
    exclude: Vec<Pattern>,
    sample_rate: Option<f64>,
    route_rates: Vec<(Pattern, f64)>,
    always_sample_errors: bool,
    method_label: bool,
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
        self.sample_rate = Some(sampler::validate_rate(rate)?);
        Ok(self)
    }

    /// The sample rate of routes whose template starts with `pattern` (or matches `re:<regex>`).
    /// The first matching rule wins.
    ///
    /// # Errors
    /// As [`HttpConfig::exclude_routes`] and [`HttpConfig::sample_rate`].
    pub fn route_sample_rate(mut self, pattern: &str, rate: f64) -> Result<Self, HttpConfigError> {
        let rate = sampler::validate_rate(rate)?;
        self.route_rates.push((Pattern::parse(pattern)?, rate));
        Ok(self)
    }

    /// Whether responses with status >= 500 and panics are always timed (default `true`).
    pub fn always_sample_errors(mut self, on: bool) -> Self {
        self.always_sample_errors = on;
        self
    }

    /// Adds the opt-in `method` label to the HTTP metrics (default off, as in the contract).
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
        let seed = self.seed.unwrap_or_else(profilis_core::ids::next_u64);
        HttpRules(Arc::new(Rules {
            config: self,
            random: AtomicU64::new(seed),
        }))
    }
}

#[derive(Debug)]
struct Rules {
    config: HttpConfig,
    /// State of a splitmix64 sequence: lock-free, and deterministic for a seed and an order.
    random: AtomicU64,
}

/// The shared rules (cheap to clone). Adapters call [`HttpRules::start`] when a request comes
/// in and [`Request::finish`] when its response has been sent; an adapter that knows the
/// route when the request comes in can decide its sampling then ([`HttpRules::sampling`]) and
/// end it with [`Request::finish_sampled`], without keeping the rules per request.
#[derive(Debug, Clone)]
pub struct HttpRules(Arc<Rules>);

impl Default for HttpRules {
    fn default() -> Self {
        HttpConfig::new().build()
    }
}

/// How a request ended, as far as the adapter could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The response body was sent completely.
    Complete,
    /// The handler panicked (recorded as status 500).
    Panicked,
    /// The response body failed while being sent.
    BodyFailed,
    /// The client went away (the request or its body was dropped) before the end.
    Cancelled,
}

impl HttpRules {
    /// Starts profiling a request, unless its path is excluded or profiling is off (`None`).
    /// `traceparent` is the request's W3C `traceparent` header, if any.
    pub fn start(&self, path: &str, traceparent: Option<&str>) -> Option<Request> {
        if self.0.config.exclude.iter().any(|p| p.matches(path)) {
            return None;
        }
        let parent = traceparent.and_then(parse_traceparent);
        let timer = Timer::start(parent)?;
        Some(Request {
            timer,
            _in_flight: HttpInFlight::start(),
        })
    }

    /// Decides whether a request of `route` (its template; `None`: it matched no route) has
    /// its duration recorded, as far as its route can tell: at the route's rate, else the
    /// configured one, else the global one. An error can still force timing when it ends (see
    /// [`Sampling`]). Adapters that know the route when the request comes in decide then, and
    /// keep only the small [`Sampling`] instead of the rules.
    pub fn sampling(&self, route: Option<&str>) -> Sampling {
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        let config = &self.0.config;
        let rate = config
            .route_rates
            .iter()
            .find(|(p, _)| p.matches(route))
            .map(|(_, rate)| *rate)
            .or(config.sample_rate)
            .unwrap_or_else(sampler::global_rate);
        let drawn = if rate >= 1.0 {
            true
        } else if rate <= 0.0 {
            false
        } else {
            let unit = (self.next_random() >> 11) as f64 / (1u64 << 53) as f64;
            unit < rate
        };
        Sampling {
            drawn,
            always_sample_errors: config.always_sample_errors,
            method_label: config.method_label,
        }
    }

    fn next_random(&self) -> u64 {
        let mut z = self
            .0
            .random
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The sampling decision of one request, made by [`HttpRules::sampling`] once its route is
/// known, with what else of the rules its end needs (a few bytes, copied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// The route's rate said yes.
    drawn: bool,
    always_sample_errors: bool,
    method_label: bool,
}

impl Sampling {
    /// Whether a request that ended with `status` and `end` has its duration recorded: the
    /// route's draw, or always for errors (status >= 500, panics) with `always_sample_errors`.
    pub fn timed(&self, status: u16, end: End) -> bool {
        self.drawn || (self.always_sample_errors && (status >= 500 || end == End::Panicked))
    }
}

/// A request being profiled: a span (make it current while the handler runs, with
/// [`profilis_core::context::Scoped`] or [`profilis_core::context::enter`]) and a timer.
/// Counted as in flight until it is finished or dropped.
#[derive(Debug)]
#[must_use = "a request is recorded when finished"]
pub struct Request {
    timer: Timer,
    _in_flight: HttpInFlight,
}

impl Request {
    /// The request's span: profiled calls made under it become its children.
    pub fn context(&self) -> SpanContext {
        self.timer.context()
    }

    /// Records the request once, deciding by `rules` now whether its duration is recorded:
    /// `route` is its template (`None`: it matched no route), `status` the response status
    /// (500 for a panic). Failed bodies, panics and cancellations are marked as errors in the
    /// event.
    pub fn finish(
        self,
        rules: &HttpRules,
        method: &str,
        route: Option<&str>,
        status: u16,
        end: End,
    ) {
        let sampling = rules.sampling(route);
        self.finish_sampled(sampling, method, route, status, end);
    }

    /// As [`Request::finish`], with the sampling decision made earlier by
    /// [`HttpRules::sampling`] for the same `route`.
    pub fn finish_sampled(
        self,
        sampling: Sampling,
        method: &str,
        route: Option<&str>,
        status: u16,
        end: End,
    ) {
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        let status = if end == End::Panicked { 500 } else { status };
        let timed = sampling.timed(status, end);
        let site = Site::http(route, status, sampling.method_label.then_some(method));
        let outcome = match end {
            End::Complete | End::BodyFailed => Outcome::Returned,
            End::Panicked => Outcome::Panicked,
            End::Cancelled => Outcome::Cancelled,
        };
        let error = status >= 500 || end != End::Complete;
        self.timer.finish(site, timed, error, outcome, || {
            Detail::Http(HttpDetail {
                method: method.into(),
                route: route.into(),
                status,
            })
        });
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

    impl HttpRules {
        fn sampled(&self, route: &str, status: u16, end: End) -> bool {
            self.sampling(Some(route)).timed(status, end)
        }
    }

    #[test]
    fn sampling_follows_overrides_errors_and_seed() {
        let rules = HttpConfig::new()
            .sample_rate(0.0)
            .unwrap()
            .route_sample_rate("/hot", 0.5)
            .unwrap()
            .route_sample_rate("re:^/ho", 1.0)
            .unwrap()
            .seed(7)
            .build();
        assert!(!rules.sampled("/cold", 200, End::Complete));
        assert!(
            rules.sampled("/cold", 503, End::Complete),
            "errors always timed"
        );
        assert!(rules.sampled("/cold", 200, End::Panicked));
        // "/hot" matches its own rule first (0.5), not the later regex (1.0).
        let hits = (0..10_000)
            .filter(|_| rules.sampled("/hot", 200, End::Complete))
            .count();
        assert!((4_500..5_500).contains(&hits), "{hits}");
        assert!(rules.sampled("/home", 200, End::Complete));
        // Same seed, same decisions.
        let a = HttpConfig::new().sample_rate(0.3).unwrap().seed(1).build();
        let b = HttpConfig::new().sample_rate(0.3).unwrap().seed(1).build();
        let run = |r: &HttpRules| {
            (0..100)
                .map(|_| r.sampled("/x", 200, End::Complete))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(&a), run(&b));
        let no_errors = HttpConfig::new()
            .sample_rate(0.0)
            .unwrap()
            .always_sample_errors(false)
            .build();
        assert!(!no_errors.sampled("/cold", 500, End::Complete));
    }

    #[test]
    fn excluded_paths_are_not_started() {
        let rules = HttpConfig::new()
            .exclude_routes(&["/health", "re:^/internal/"])
            .unwrap()
            .build();
        assert!(rules.start("/healthz", None).is_none());
        assert!(rules.start("/internal/debug", None).is_none());
    }
}

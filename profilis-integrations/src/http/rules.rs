//! The built rules, shared by every request of an adapter: whether a request is profiled at
//! all, and whether its duration is recorded ([`Sampling`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use profilis_core::adapter::{InFlight, Timer};
use profilis_core::context::parse_traceparent;
use profilis_core::{global_rate, HTTP};

use super::config::{HttpConfig, Pattern};
use super::request::{End, Request, UNMATCHED_ROUTE};

#[derive(Debug)]
pub(super) struct Rules {
    pub(super) config: HttpConfig,
    /// State of a splitmix64 sequence: lock-free, and deterministic for a seed and an order.
    pub(super) random: AtomicU64,
}

/// The shared rules (cheap to clone), made by [`HttpConfig::build`]. Adapters call
/// [`HttpRules::start`] when a request comes in and [`Request::finish`] when its response has
/// been sent; an adapter that knows the route when the request comes in can decide its
/// sampling then ([`HttpRules::sampling`]) and end it with [`Request::finish_sampled`], without
/// keeping the rules per request.
#[derive(Debug, Clone)]
pub struct HttpRules(pub(super) Arc<Rules>);

impl Default for HttpRules {
    fn default() -> Self {
        HttpConfig::new().build()
    }
}

impl HttpRules {
    /// Starts profiling a request, unless its path is excluded or profiling is off (`None`).
    /// `traceparent` is the request's W3C `traceparent` header, if any.
    pub fn start(&self, path: &str, traceparent: Option<&str>) -> Option<Request> {
        if self.excludes(path) {
            return None;
        }
        let parent = traceparent.and_then(parse_traceparent);
        let timer = Timer::start(parent)?;
        Some(Request::new(timer, InFlight::start(&HTTP)))
    }

    /// Whether `path` (a request's path, or its route template) is excluded
    /// ([`HttpConfig::exclude_routes`]): the one test of every adapter.
    pub(crate) fn excludes(&self, path: &str) -> bool {
        self.0.config.exclude.iter().any(|p| p.matches(path))
    }

    /// Decides whether a request of `route` (its template; `None`: it matched no route) has
    /// its duration recorded, as far as its route can tell: at the route's rate, else the
    /// configured one, else the global one. An error can still force timing when it ends (see
    /// [`Sampling`]). Adapters that know the route when the request comes in decide then, and
    /// keep only the small [`Sampling`] instead of the rules.
    pub fn sampling(&self, route: Option<&str>) -> Sampling {
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        let config = &self.0.config;
        Sampling {
            drawn: draw(
                &config.route_rates,
                config.sample_rate,
                route,
                &self.0.random,
            ),
            always_sample_errors: config.always_sample_errors,
            method_label: config.method_label,
        }
    }
}

/// The sampling draw of every HTTP adapter, server or client: at the rate of the first rule
/// of `rates` whose pattern matches `key` (a route template, a peer), else at `rate`, else at
/// the global rate; drawn from the splitmix64 sequence in `random`.
pub(crate) fn draw(
    rates: &[(Pattern, f64)],
    rate: Option<f64>,
    key: &str,
    random: &AtomicU64,
) -> bool {
    let rate = rates
        .iter()
        .find(|(p, _)| p.matches(key))
        .map(|(_, rate)| *rate)
        .or(rate)
        .unwrap_or_else(global_rate);
    if rate >= 1.0 {
        true
    } else if rate <= 0.0 {
        false
    } else {
        let unit = (next_random(random) >> 11) as f64 / (1u64 << 53) as f64;
        unit < rate
    }
}

fn next_random(random: &AtomicU64) -> u64 {
    let mut z = random
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

    /// Whether the request's site carries the opt-in `method` label.
    pub(super) fn method_label(&self) -> bool {
        self.method_label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

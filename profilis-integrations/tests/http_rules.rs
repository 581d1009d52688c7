//! Property tests of the HTTP rules every adapter shares, on what clients and configuration
//! hand them: route patterns (`HttpConfig::exclude_routes`, `route_sample_rate`), request
//! paths and `traceparent` headers (`HttpRules::start`), routes (`HttpRules::sampling`).
//! Nothing panics; a bad pattern or rate is a typed error naming it; a request is left alone
//! exactly when its path starts with an excluded prefix or matches an excluded `re:` regex.
//!
//! `HttpRules::start` starts a request only while a collector runs, so the tests that start
//! requests run their cases under one `testing::capture`.

use profilis_core::context::{SpanId, TraceId};
use profilis_core::testing::capture;
use profilis_core::ConfigError;
use profilis_integrations::http::{End, HttpConfig, HttpConfigError, HttpRules, UNMATCHED_ROUTE};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// Runs `test` on `cases` values of `strategy` under a collector, so that requests start.
fn with_collector<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let (result, _) = capture(|| {
        let mut runner = TestRunner::new(ProptestConfig::with_cases(cases));
        runner.run(&strategy, test)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Whether `rules` leave a request for `path` alone (under a collector).
fn excluded(rules: &HttpRules, path: &str) -> bool {
    rules.start(path, None).is_none()
}

/// Path prefixes such as `/health` or `/api/v`.
fn prefix() -> impl Strategy<Value = String> {
    "/[a-c]{1,3}(/[a-c]{0,2})?"
}

/// Request paths over the same letters, so that they often start with a prefix, and some
/// that are not paths at all.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "/[a-c]{0,3}(/[a-c0-9]{0,3}){0,3}",
        1 => "[a-c/]{0,8}",
        1 => any::<String>(),
    ]
}

proptest! {
    #[test]
    fn any_pattern_builds_or_is_a_typed_error_naming_it(pattern in prop_oneof![
        any::<String>(),
        "re:.{0,20}",
        "re:[()\\[\\]{}*+?|^$\\\\a-z0-9,]{0,12}",
        Just(String::new()),
    ]) {
        match HttpConfig::new().exclude_routes(&[&pattern]) {
            Ok(config) => {
                prop_assert!(!pattern.is_empty(), "the empty pattern was taken");
                let _ = config.build();
            }
            Err(HttpConfigError::EmptyPattern { pattern: named }) => {
                prop_assert_eq!(&pattern, "");
                prop_assert_eq!(named, "");
            }
            Err(err @ HttpConfigError::InvalidRegex { .. }) => {
                let regex = pattern.strip_prefix("re:");
                prop_assert!(regex.is_some(), "{:?} is no regex, yet {}", pattern, err);
                let regex = regex.unwrap();
                let HttpConfigError::InvalidRegex { pattern: named, reason } = &err else {
                    unreachable!()
                };
                prop_assert_eq!(named, regex);
                prop_assert!(!reason.is_empty());
                let message = err.to_string();
                prop_assert!(message.contains(&format!("{regex:?}")), "{}", message);
            }
            Err(other) => prop_assert!(false, "{:?} gave {:?}", pattern, other),
        }
        // The same pattern as a sampling rule is taken or refused alike.
        let as_rule = HttpConfig::new().route_sample_rate(&pattern, 0.5);
        prop_assert_eq!(
            as_rule.is_ok(),
            HttpConfig::new().exclude_routes(&[&pattern]).is_ok()
        );
    }

    #[test]
    fn rates_outside_zero_to_one_are_typed_errors_naming_them(
        rate in any::<f64>().prop_filter("outside 0..=1", |r| !(0.0..=1.0).contains(r)),
    ) {
        for err in [
            HttpConfig::new().sample_rate(rate).unwrap_err(),
            HttpConfig::new().route_sample_rate("/x", rate).unwrap_err(),
        ] {
            let named = matches!(
                err,
                HttpConfigError::SampleRate(ConfigError::SampleRate { value })
                    if value.to_bits() == rate.to_bits()
            );
            prop_assert!(named, "{:?} does not name {}", err, rate);
        }
    }

    #[test]
    fn sampling_never_panics_and_rates_of_0_and_1_decide(
        rules in prop::collection::vec((prefix(), any::<bool>()), 0..4),
        default in prop::option::of(any::<bool>()),
        route in prop::option::of(path()),
        status in 100u16..600,
    ) {
        let mut config = HttpConfig::new().always_sample_errors(false);
        for (pattern, on) in &rules {
            config = config
                .route_sample_rate(pattern, if *on { 1.0 } else { 0.0 })
                .unwrap();
        }
        if let Some(on) = default {
            config = config.sample_rate(if on { 1.0 } else { 0.0 }).unwrap();
        }
        let http = config.build();
        let sampling = http.sampling(route.as_deref());
        // The first rule whose prefix the route (or, with none, UNMATCHED_ROUTE) starts with.
        let matched = route.as_deref().unwrap_or(UNMATCHED_ROUTE);
        let expected = rules
            .iter()
            .find(|(p, _)| matched.starts_with(p.as_str()))
            .map(|(_, on)| *on)
            .or(default);
        if let Some(expected) = expected {
            prop_assert_eq!(sampling.timed(status, End::Complete), expected);
        }
    }

    #[test]
    fn errors_are_timed_at_any_rate_by_default(
        rate in 0.0..=1.0f64,
        route in prop::option::of(path()),
        status in 500u16..600,
    ) {
        let http = HttpConfig::new().sample_rate(rate).unwrap().build();
        let sampling = http.sampling(route.as_deref());
        prop_assert!(sampling.timed(status, End::Complete));
        prop_assert!(sampling.timed(200, End::Panicked));
    }
}

#[test]
fn a_path_is_excluded_exactly_when_it_starts_with_an_excluded_prefix() {
    let strategy = (
        prop::collection::vec(prefix(), 0..4),
        prop::collection::vec(path(), 1..8),
    );
    with_collector(128, strategy, |(prefixes, paths)| {
        let rules = HttpConfig::new().exclude_routes(&prefixes).unwrap().build();
        // The prefixes themselves, and paths under them, are paths too.
        let under = prefixes.iter().map(|p| format!("{p}/x"));
        for path in paths.iter().cloned().chain(prefixes.clone()).chain(under) {
            let expected = prefixes.iter().any(|p| path.starts_with(p.as_str()));
            prop_assert_eq!(
                excluded(&rules, &path),
                expected,
                "path {:?}, prefixes {:?}",
                path,
                prefixes
            );
        }
        Ok(())
    });
}

#[test]
fn a_path_is_excluded_exactly_when_it_matches_an_excluded_regex() {
    let strategy = (
        "[a-c]{1,3}",
        "[0-9]{1,4}",
        prop::sample::select(vec!["", "x", "/", "/1"]),
        prop::collection::vec(path(), 1..6),
    );
    with_collector(128, strategy, |(segment, id, tail, paths)| {
        let rules = HttpConfig::new()
            .exclude_routes(&[
                format!("re:^/{segment}/[0-9]+$"),
                format!("re:{segment}c{segment}"),
            ])
            .unwrap()
            .build();
        // The anchored pattern: `/<segment>/<digits>` and nothing more.
        let path = format!("/{segment}/{id}{tail}");
        let inner = format!("{segment}c{segment}");
        let anchored = tail.is_empty();
        prop_assert_eq!(
            excluded(&rules, &path),
            anchored || path.contains(&inner),
            "{:?}",
            path
        );
        let deeper = format!("/api/{segment}/{id}");
        prop_assert_eq!(
            excluded(&rules, &deeper),
            deeper.contains(&inner),
            "{:?}",
            deeper
        );
        // The unanchored one: anywhere in the path.
        for path in &paths {
            let at_root = path
                .strip_prefix(&format!("/{segment}/"))
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(
                excluded(&rules, path),
                at_root || path.contains(&inner),
                "{:?}",
                path
            );
        }
        Ok(())
    });
}

#[test]
fn any_pattern_and_any_path_start_or_are_excluded_without_panicking() {
    let strategy = (
        prop::collection::vec(prop_oneof![any::<String>(), "re:.{0,12}", prefix()], 0..4),
        prop::collection::vec(any::<String>(), 1..6),
    );
    with_collector(128, strategy, |(patterns, paths)| {
        let Ok(config) = HttpConfig::new().exclude_routes(&patterns) else {
            return Ok(());
        };
        let rules = config.build();
        for path in &paths {
            let started = rules.start(path, None);
            // A prefix pattern (not `re:`) that the path starts with always excludes it.
            let by_prefix = patterns
                .iter()
                .any(|p| !p.starts_with("re:") && path.starts_with(p.as_str()));
            if by_prefix {
                prop_assert!(
                    started.is_none(),
                    "{:?} not excluded by {:?}",
                    path,
                    patterns
                );
            }
            let _ = rules.sampling(Some(path));
        }
        Ok(())
    });
}

#[test]
fn a_valid_traceparent_sets_the_trace_of_the_request() {
    let strategy = (1u128.., 1u64.., any::<u8>(), any::<String>());
    with_collector(128, strategy, |(trace, span, flags, junk)| {
        let rules = HttpRules::default();
        let header = format!("00-{}-{}-{flags:02x}", TraceId(trace), SpanId(span));
        let request = rules
            .start("/traced", Some(&header))
            .expect("a collector runs");
        prop_assert_eq!(request.context().trace_id, TraceId(trace));
        prop_assert_ne!(request.context().span_id, SpanId(span));
        // Anything else starts a trace of its own (or, if it is a valid header, its own).
        let other = rules
            .start("/traced", Some(&junk))
            .expect("a collector runs");
        let expected = profilis_core::context::parse_traceparent(&junk);
        match expected {
            Some(ctx) => prop_assert_eq!(other.context().trace_id, ctx.trace_id),
            None => prop_assert_ne!(other.context().trace_id, TraceId(trace)),
        }
        prop_assert_ne!(other.context().trace_id, TraceId(0));
        Ok(())
    });
}

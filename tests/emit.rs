//! Calls, requests and queries measured elsewhere (`profilis::emit`, Python profilis's
//! `emit_fn`/`emit_req`/`emit_db`) go through the paths of timed ones: counted, their
//! durations in the duration buckets and the fine buckets, their events with the kind's fields,
//! sampled, children of the current span, their failures kept.

use std::time::Duration;

use profilis::adapter;
use profilis::testing::{capture, capture_details, capture_with};
use profilis::{emit, CollectorConfig, Failure, Site, Value};

/// The bucket (its upper bound, seconds) the one timed call of `name` was filed in.
fn bucket_of(captured: &profilis::testing::Captured, name: &str) -> f64 {
    let filled: Vec<f64> = captured
        .counts
        .iter()
        .filter(|c| c.site.name() == name)
        .flat_map(|c| c.durations.iter().filter(|b| b.count > 0).map(|b| b.le))
        .collect();
    assert_eq!(filled.len(), 1, "one bucket of {name}: {filled:?}");
    filled[0]
}

fn near(ns: u64, expected: Duration) -> bool {
    // Never less than given (it was 1 ns less), and more only by less than a clock tick.
    let expected = expected.as_nanos() as u64;
    ns >= expected && ns - expected < 1_000
}

#[test]
fn a_function_call_measured_elsewhere_is_counted_filed_and_an_event() {
    static OUTER: Site = Site::function("emit::outer", None);
    let ((), captured) = capture(|| {
        let outer = adapter::enter(&OUTER);
        emit::function("billing::sync", Duration::from_millis(3), false);
        emit::function_failed(
            "billing::sync",
            Duration::from_millis(70),
            Failure::new("billing::Error", Some(&"ledger locked")),
        );
        outer.exit(false);
    });
    assert_eq!(captured.count("billing::sync"), (2, 1));
    let events = captured.named("billing::sync");
    assert_eq!(events.len(), 2);
    assert!(
        near(events[0].dur_ns, Duration::from_millis(3)),
        "{}",
        events[0].dur_ns
    );
    assert!(near(events[1].dur_ns, Duration::from_millis(70)));
    // A function's event: it carries `fn`, as a `#[profiled]` one does.
    assert!(events[0].site.is_function());
    let failure = events[1].failure.as_deref().expect("its failure");
    assert_eq!(failure.exception_value.as_deref(), Some("ledger locked"));
    // Children of the span they were recorded in.
    let outer = captured.one("emit::outer");
    assert!(events
        .iter()
        .all(|e| e.parent_span_id == Some(outer.span_id) && e.trace_id == outer.trace_id));
    let buckets: Vec<f64> = captured
        .counts
        .iter()
        .filter(|c| c.site.name() == "billing::sync")
        .flat_map(|c| c.durations.iter().filter(|b| b.count > 0).map(|b| b.le))
        .collect();
    assert_eq!(
        buckets,
        [0.005, 0.1],
        "3 ms and 70 ms in the default buckets"
    );
}

#[test]
fn a_request_measured_elsewhere_has_its_route_status_and_method() {
    let ((), captured) = capture(|| {
        emit::request("POST", Some("/orders/{id}"), 503, Duration::from_millis(20));
        emit::request("GET", None, 404, Duration::from_micros(900));
    });
    let event = captured.one("/orders/{id}");
    assert_eq!(event.field("status"), Some(Value::U64(503)));
    assert_eq!(event.field("method"), Some(Value::Str("POST")));
    assert!(event.error, "a 5xx is a failed request");
    assert!(near(event.dur_ns, Duration::from_millis(20)));
    assert_eq!(bucket_of(&captured, "/orders/{id}"), 0.025);
    assert_eq!(captured.count("<unmatched>"), (1, 0));
}

#[test]
fn a_query_measured_elsewhere_is_masked_and_keeps_its_failure() {
    let ((), captured) = capture(|| {
        emit::query(
            "postgres",
            Some("SELECT * FROM users WHERE email = 'a@b.c'"),
            Duration::from_millis(12),
            Some(1),
            None,
        );
        emit::query(
            "postgres",
            Some("DELETE FROM locks WHERE id = 7"),
            Duration::from_millis(1),
            None,
            Some(Failure::new(
                "tokio_postgres::Error",
                Some(&"deadlock detected in DELETE FROM locks WHERE id = 7"),
            )),
        );
    });
    let events = captured.named("postgres");
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].field("query"),
        Some(Value::Str("SELECT * FROM users WHERE email = ?"))
    );
    assert_eq!(events[0].field("rows"), Some(Value::U64(1)));
    assert!(near(events[0].dur_ns, Duration::from_millis(12)));
    let failure = events[1].failure.as_deref().expect("its failure");
    assert_eq!(
        failure.exception_value.as_deref(),
        Some("deadlock detected in DELETE FROM locks WHERE id = ?"),
        "the statement quoted in the message is masked too"
    );
    assert_eq!(captured.count("postgres"), (2, 1));
}

#[test]
fn measured_calls_are_sampled_and_reach_the_fine_buckets() {
    // Sampled out everywhere: counted, never timed.
    let ((), captured) = capture_with(
        CollectorConfig {
            flush_interval: Duration::from_millis(5),
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        || {
            profilis::set_global_rate(0.0).unwrap();
            emit::function("emit::sampled_out", Duration::from_millis(2), false);
            profilis::set_global_rate(1.0).unwrap();
        },
    );
    assert_eq!(captured.count("emit::sampled_out"), (1, 0));
    assert!(captured.named("emit::sampled_out").is_empty(), "no event");

    let ((), captured) = capture_details(|| {
        for ms in [1, 2, 4, 8] {
            emit::function("emit::fine", Duration::from_millis(ms), false);
        }
    });
    let mut latency = profilis::Latency::default();
    for count in captured
        .counts
        .iter()
        .filter(|c| c.site.name() == "emit::fine")
    {
        latency.add(count.latency.as_ref().unwrap());
    }
    assert_eq!(latency.count(), 4);
    let p50 = latency.quantile_ns(0.5).unwrap() as f64;
    assert!((p50 - 2e6).abs() / 2e6 < 0.05, "{p50}");
}

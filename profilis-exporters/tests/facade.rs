//! The facade sink through `metrics-util`'s debugging recorder: exact names, label sets and
//! values of the contract metrics.

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use profilis_core::adapter::enter;
use profilis_core::{Collector, CollectorConfig, Site};
use profilis_exporters::{FacadeSink, GlobalLabels};

fn labels_of(key: &CompositeKey) -> Vec<(String, String)> {
    let mut labels: Vec<_> = key
        .key()
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    labels
}

fn expected(function: &str) -> Vec<(String, String)> {
    let mut labels = vec![
        ("function".to_owned(), function.to_owned()),
        ("instance".to_owned(), "host-1".to_owned()),
        ("service".to_owned(), "shop".to_owned()),
        ("worker".to_owned(), "42".to_owned()),
    ];
    labels.sort();
    labels
}

#[test]
fn functions_become_exact_counters_and_histograms() {
    static PRICE: Site = Site::function("shop::orders::price", None);
    static HOT: Site = Site::function("shop::orders::hot", Some(0.0));
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let sink = FacadeSink::with_recorder(
        GlobalLabels {
            service: "shop".into(),
            instance: "host-1".into(),
            worker: "42".into(),
        },
        Arc::new(recorder),
    );
    let collector = Collector::start(
        CollectorConfig {
            flush_interval: Duration::from_millis(2),
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        vec![Box::new(sink)],
    )
    .unwrap();
    for i in 0..13 {
        let guard = enter(&PRICE);
        std::thread::sleep(Duration::from_micros(100));
        guard.exit(i >= 10);
    }
    for _ in 0..100 {
        enter(&HOT).exit(false);
    }
    assert!(collector.shutdown().is_clean());

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |kind: MetricKind, name: &str, function: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.kind() == kind
                    && key.key().name() == name
                    && labels_of(key) == expected(function)
            })
            .map(|(_, _, _, value)| value)
    };
    assert_eq!(
        find(
            MetricKind::Counter,
            "profilis_function_calls_total",
            "shop::orders::price"
        ),
        Some(&DebugValue::Counter(13))
    );
    assert_eq!(
        find(
            MetricKind::Counter,
            "profilis_function_errors_total",
            "shop::orders::price"
        ),
        Some(&DebugValue::Counter(3))
    );
    match find(
        MetricKind::Histogram,
        "profilis_function_duration_seconds",
        "shop::orders::price",
    ) {
        Some(DebugValue::Histogram(values)) => {
            assert_eq!(values.len(), 13);
            assert!(
                values.iter().all(|v| v.into_inner() >= 100e-6),
                "{values:?}"
            );
        }
        other => panic!("no duration histogram: {other:?}"),
    }
    // Sampled out: counted exactly, never timed.
    assert_eq!(
        find(
            MetricKind::Counter,
            "profilis_function_calls_total",
            "shop::orders::hot"
        ),
        Some(&DebugValue::Counter(100))
    );
    if let Some(DebugValue::Histogram(values)) = find(
        MetricKind::Histogram,
        "profilis_function_duration_seconds",
        "shop::orders::hot",
    ) {
        assert!(values.is_empty());
    }
    // Health metrics carry no labels.
    let health = |kind: MetricKind, name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| key.kind() == kind && key.key().name() == name)
            .map(|(key, _, _, value)| (key.key().labels().count(), value))
    };
    assert_eq!(
        health(MetricKind::Counter, "profilis_events_dropped_total"),
        Some((0, &DebugValue::Counter(0)))
    );
    assert!(matches!(
        health(MetricKind::Gauge, "profilis_queue_depth"),
        Some((0, &DebugValue::Gauge(_)))
    ));
}

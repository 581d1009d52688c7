//! Memory stays bounded with nothing scraping: 10 million observations recorded into an
//! application's histogram (`metrics::histogram!`, with per-metric buckets), and no scrape,
//! grow resident memory by less than 32 MiB. The recorder keeps a count per bucket and a sum,
//! never one sample per observation (which for these alone would take 80 MB).

use std::time::Duration;

use profilis::{Exporter, MetricMatch};
use profilis_test_support::{parse_exposition, resident_bytes};

const SAMPLES: u64 = 10_000_000;
const WARM_UP: u64 = 100_000;

/// Observation `i`: spread over every bucket, `+Inf` included (1..=2000 ms).
fn value(i: u64) -> f64 {
    (i % 2000 + 1) as f64 / 1000.0
}

#[test]
fn ten_million_observations_without_a_scrape_stay_under_32_mib() {
    let guard = Exporter::new()
        .without_listener()
        .flush_interval(Duration::from_millis(5))
        .metric_buckets(MetricMatch::suffix("_seconds"), &[0.25, 0.5, 1.0])
        .unwrap()
        .install()
        .unwrap();
    let histogram = metrics::histogram!("checkout_seconds", "step" => "pay");
    // Warm up: the series, the allocator's arenas.
    for i in 0..WARM_UP {
        histogram.record(value(i));
    }
    std::thread::sleep(Duration::from_millis(50));
    let before = resident_bytes();
    for i in 0..SAMPLES {
        histogram.record(std::hint::black_box(value(i)));
    }
    let grown = resident_bytes().saturating_sub(before);
    eprintln!(
        "resident memory grew by {} KiB over {SAMPLES} observations",
        grown / 1024
    );
    assert!(
        grown < 32 * 1024 * 1024,
        "resident memory grew by {} MiB",
        grown / (1024 * 1024)
    );

    // Every observation is in its bucket: nothing was sampled away or lost.
    let text = guard.render();
    let page = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let buckets: Vec<(String, f64)> = page
        .named("checkout_seconds_bucket")
        .map(|s| (s.label("le").unwrap().to_owned(), s.value))
        .collect();
    let total = (SAMPLES + WARM_UP) as f64;
    // Values 1..=2000 ms, evenly: 250 of every 2000 are at most 0.25 s, 500 at most 0.5 s,
    // 1000 at most 1 s.
    let expected = [("0.25", 0.125), ("0.5", 0.25), ("1", 0.5), ("+Inf", 1.0)]
        .map(|(le, share)| (le.to_owned(), total * share));
    assert_eq!(buckets, expected, "{text}");
    let count = page.named("checkout_seconds_count").next().map(|s| s.value);
    assert_eq!(count, Some(total));
    drop(guard);
}

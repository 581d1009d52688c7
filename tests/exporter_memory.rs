//! Memory stays bounded with nothing scraping: 10 million profiled calls, every one of them
//! recorded into the Prometheus histogram, grow resident memory by less than 32 MiB. The
//! recorder keeps bucket counts, never one sample per call (which for these calls alone would
//! take more than 80 MB).

use std::time::Duration;

use profilis::{profiled, Exporter};
use profilis_test_support::resident_bytes;

#[profiled]
fn tiny(i: u64) -> u64 {
    i.wrapping_mul(3)
}

#[test]
fn ten_million_calls_without_a_scrape_stay_under_32_mib() {
    let guard = Exporter::new()
        .without_listener()
        .flush_interval(Duration::from_millis(5))
        .install()
        .unwrap();
    // Warm up: this thread's state, the series, the allocator's arenas.
    for i in 0..100_000 {
        std::hint::black_box(tiny(i));
    }
    std::thread::sleep(Duration::from_millis(50));
    let before = resident_bytes();
    for i in 0..10_000_000 {
        std::hint::black_box(tiny(i));
    }
    // Shutting down drains every count into the recorder.
    let report = guard.shutdown();
    assert!(report.is_clean(), "{report}");
    let grown = resident_bytes().saturating_sub(before);
    eprintln!(
        "resident memory grew by {} KiB over 10 million calls",
        grown / 1024
    );
    assert!(
        grown < 32 * 1024 * 1024,
        "resident memory grew by {} MiB",
        grown / (1024 * 1024)
    );
    // Every call reached the Prometheus histogram: nothing was sampled away or lost.
    let text = profilis::render().expect("the recorder stays installed");
    let count = text
        .lines()
        .find(|l| {
            l.starts_with("profilis_function_duration_seconds_count")
                && l.contains("function=\"exporter_memory::tiny\"")
        })
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.parse::<f64>().unwrap());
    assert_eq!(count, Some(10_100_000.0));
}

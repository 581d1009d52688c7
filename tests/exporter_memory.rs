//! Memory stays bounded with nothing scraping: 10 million profiled calls, every one of them
//! recorded into the Prometheus histogram, grow resident memory by less than 32 MiB. Without
//! the recorder's upkeep the samples alone would take 80 MB.

use std::time::Duration;

use profilis::{profiled, Exporter};

#[profiled]
fn tiny(i: u64) -> u64 {
    i.wrapping_mul(3)
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn ten_million_calls_without_a_scrape_stay_under_32_mib() {
    let guard = Exporter::new()
        .without_listener()
        .queue_size(65_536)
        .batch_max(4_096)
        .flush_interval(Duration::from_millis(5))
        .install()
        .unwrap();
    // Warm up: this thread's queue, the series, the allocator's arenas.
    for i in 0..100_000 {
        std::hint::black_box(tiny(i));
    }
    let wait_drained = || {
        while profilis::core::stats().queue_depth > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait_drained();
    let before = resident_bytes();
    let dropped_before = profilis::core::stats().dropped;
    for chunk in 0..1_000u64 {
        for i in 0..10_000 {
            std::hint::black_box(tiny(chunk * 10_000 + i));
        }
        // Let the collector keep up, so every call is really recorded (no drops).
        if profilis::core::stats().queue_depth > 40_000 {
            wait_drained();
        }
    }
    wait_drained();
    let grown = resident_bytes().saturating_sub(before);
    let stats = profilis::core::stats();
    assert_eq!(
        stats.dropped, dropped_before,
        "every call was recorded: {stats:?}"
    );
    assert!(
        grown < 32 * 1024 * 1024,
        "resident memory grew by {} MiB",
        grown / (1024 * 1024)
    );
    let text = guard.render();
    assert!(text.contains("profilis_function_duration_seconds_count"));
}

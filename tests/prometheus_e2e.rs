//! End to end against a real Prometheus server: it scrapes the built-in listener every second,
//! and its query API returns the calls made and a median from the bucketed histogram.
//! Needs the `prometheus` binary (Debian package `prometheus`, which .ci/run installs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use profilis::{profiled, Exporter};
use profilis_test_support::{tool, wait_for, Prometheus};

#[profiled]
fn counted() -> u32 {
    7
}

#[profiled]
fn steady() {
    std::thread::sleep(Duration::from_millis(15));
}

#[test]
fn prometheus_scrapes_the_listener_and_answers_queries() {
    let Some(prometheus_bin) = tool("prometheus") else {
        return;
    };
    let guard = Exporter::new()
        .service("e2e")
        .listen("127.0.0.1:0")
        .unwrap()
        .flush_interval(Duration::from_millis(20))
        .install()
        .unwrap();
    let target = guard.listen_addr().unwrap();

    let server = Prometheus::start(&prometheus_bin, "e2e", target, &[]);

    for _ in 0..250 {
        assert_eq!(counted(), 7);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                steady();
            }
        })
    };

    let calls = wait_for(Duration::from_secs(90), || {
        server.query(
            r#"profilis_function_calls_total{function="prometheus_e2e::counted",service="e2e"}"#,
        )
        .filter(|&v| v == 250.0)
    });
    let median = wait_for(Duration::from_secs(90), || {
        server.query(
            r#"histogram_quantile(0.5, rate(profilis_function_duration_seconds_bucket{function="prometheus_e2e::steady"}[1m]))"#,
        )
    });
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let log = server.log();
    assert_eq!(
        calls,
        Some(250.0),
        "Prometheus never saw the 250 calls; its log:\n{log}"
    );
    // 15 ms calls are never in the buckets up to 0.01 s, so the median (interpolated inside
    // its bucket: (0.01, 0.025] on a quiet machine) is above 0.01 s.
    let median = median.unwrap_or_else(|| panic!("no median from Prometheus; its log:\n{log}"));
    assert!(median > 0.01 && median <= 10.0, "median {median}");
}

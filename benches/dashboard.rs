//! What the dashboard's summary costs: producing the `/metrics.json` body for 1,000 sites
//! (900 functions, 100 HTTP routes with two statuses each) with a full 15-minute history (a
//! batch a second for 16 minutes, every site called in each, its durations in fine buckets),
//! for each window, and gzip-compressed as the listener sends it. Issue 13 asks for under 20 ms.
//!
//! ```sh
//! cargo bench --bench dashboard -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use profilis::dashboard::{Dashboard, Window};
use profilis::{Batch, CallCount, GlobalLabels, Site, Stats, HTTP};
use profilis_core::Latency;

const FUNCTIONS: usize = 900;
const ROUTES: usize = 100;
/// A whole minute, as the store files batches by wall-clock second and minute.
const START_MS: u64 = 1_764_090_000_000;
/// 16 minutes of history: every minute slot and every second slot full.
const SECONDS: u64 = 16 * 60;

fn sites() -> Vec<&'static Site> {
    let functions = (0..FUNCTIONS).map(|i| {
        let name: &'static str =
            Box::leak(format!("shop::module_{:02}::function_{i:05}", i % 50).into_boxed_str());
        &*Box::leak(Box::new(Site::function(name, None)))
    });
    let routes = (0..ROUTES).flat_map(|i| {
        let route = format!("/api/v1/resource_{i:03}/{{id}}");
        ["200", "500"].map(|status| Site::interned(&HTTP, &route, &[("status", status)]))
    });
    functions.chain(routes).collect()
}

/// A small deterministic generator: durations that differ from second to second and site to
/// site, so that each slot's histogram holds a realistic spread of buckets.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// A dashboard with a batch a second for [`SECONDS`] seconds, each with 10 calls of every
/// site timed between 10 us and about 100 ms.
fn filled() -> (Dashboard, u64) {
    let labels = GlobalLabels {
        service: "shop".to_owned(),
        instance: "host-1".to_owned(),
        worker: "1".to_owned(),
    };
    let dashboard = Dashboard::new(labels, None);
    let sites = sites();
    let mut random = Lcg(42);
    for second in 0..SECONDS {
        let counts: Vec<CallCount> = sites
            .iter()
            .enumerate()
            .map(|(i, &site)| {
                let mut latency = Latency::default();
                let scale = 10_000 * (1 + (i as u64 % 100));
                for _ in 0..10 {
                    latency.record_ns(scale + random.next() % (scale * 10));
                }
                CallCount {
                    site,
                    calls: 10,
                    errors: u64::from(random.next().is_multiple_of(20)),
                    durations: Vec::new(),
                    latency: Some(latency),
                }
            })
            .collect();
        dashboard.record_at(
            START_MS + second * 1000 + 50,
            &Batch {
                events: &[],
                counts: &counts,
                stats: Stats::default(),
                errors: &[],
                slow: &[],
            },
        );
    }
    (dashboard, START_MS + SECONDS * 1000 - 1)
}

fn summary(c: &mut Criterion) {
    let before = profilis_test_support::resident_bytes();
    let (dashboard, now) = filled();
    eprintln!(
        "the store of 1,000 sites with a full history: {} MiB resident",
        profilis_test_support::resident_bytes().saturating_sub(before) / (1024 * 1024)
    );
    let rows = |window| {
        let body = dashboard.metrics_json_at(now, window);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        (json["rows"].as_array().expect("rows").len(), body.len())
    };
    for window in Window::ALL {
        let (count, bytes) = rows(window);
        assert_eq!(count, FUNCTIONS + ROUTES, "one row per function and route");
        eprintln!(
            "window {} s: {count} rows, {} KiB of JSON",
            window.seconds(),
            bytes / 1024
        );
    }
    let mut group = c.benchmark_group("dashboard_summary_1000_sites");
    for window in Window::ALL {
        group.bench_with_input(
            BenchmarkId::new("metrics_json", window.seconds()),
            &window,
            |b, &window| b.iter(|| black_box(dashboard.metrics_json_at(now, window))),
        );
    }
    group.bench_function("metrics_json_gzip/60", |b| {
        b.iter(|| {
            let body = dashboard.metrics_json_at(now, Window::OneMinute);
            black_box(profilis::exposition::metrics_page(
                String::from_utf8(body).expect("UTF-8"),
                ["gzip"],
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, summary);
criterion_main!(benches);

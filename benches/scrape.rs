//! What a scrape of `/metrics` costs with 1,000 and with 10,000 profiled functions (series):
//! the time to render the exposition text, with and without gzip (as the built-in listener
//! sends it to clients that accept gzip), and its size both ways.
//!
//! ```sh
//! cargo bench --bench scrape -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use flate2::write::GzEncoder;
use flate2::Compression;
use profilis::Site;

/// Gzip at the level the built-in listener uses.
fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::default());
    encoder.write_all(text.as_bytes()).expect("in memory");
    encoder.finish().expect("in memory")
}

/// Profiled functions named `shop::module_NN::function_NNNNN`, made as `#[profiled]` makes
/// them (a `static` site each), numbered from `from`.
fn sites(from: usize, to: usize) -> Vec<&'static Site> {
    (from..to)
        .map(|i| {
            let name: &'static str =
                Box::leak(format!("shop::module_{:02}::function_{i:05}", i % 50).into_boxed_str());
            &*Box::leak(Box::new(Site::function(name, None)))
        })
        .collect()
}

/// One recorded call of each site, as a profiled function's call records it.
fn call_each(sites: &[&'static Site]) {
    for &site in sites {
        profilis::adapter::enter(site).exit(false);
    }
}

/// Series of `profilis_function_calls_total` in `text`.
fn function_series(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("profilis_function_calls_total{"))
        .count()
}

/// Waits until the collector has handed every site's calls to the recorder.
fn wait_for_series(guard: &profilis::ExporterGuard, series: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while function_series(&guard.render()) < series {
        assert!(Instant::now() < deadline, "{series} series never showed up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scrape(c: &mut Criterion) {
    let guard = profilis::Exporter::new()
        .without_listener()
        .flush_interval(Duration::from_millis(10))
        .install()
        .expect("the exporter installs");
    let mut group = c.benchmark_group("scrape");
    group.sample_size(10);
    let mut made = 0;
    for series in [1_000, 10_000] {
        call_each(&sites(made, series));
        made = series;
        wait_for_series(&guard, series);
        let text = guard.render();
        let zipped = gzip(&text);
        println!(
            "scrape: {series} functions: {} lines, {} bytes plain, {} bytes gzip ({:.1}×)",
            text.lines().count(),
            text.len(),
            zipped.len(),
            text.len() as f64 / zipped.len() as f64
        );
        group.bench_function(BenchmarkId::new("render", series), |b| {
            b.iter(|| black_box(guard.render()))
        });
        group.bench_function(BenchmarkId::new("render_gzip", series), |b| {
            b.iter(|| black_box(gzip(&guard.render())))
        });
    }
    group.finish();
}

criterion_group!(benches, scrape);
criterion_main!(benches);

//! What one profiled call costs, against a bare call and against reading the clock twice.
//!
//! `cargo bench --bench overhead`. Figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use profilis::{profiled, Collector, CollectorConfig, FacadeSink, GlobalLabels};

#[inline(never)]
fn bare() {
    black_box(());
}

#[profiled]
#[inline(never)]
fn profiled_empty() {
    black_box(());
}

#[profiled(sample = 0.0)]
#[inline(never)]
fn profiled_sampled_out() {
    black_box(());
}

/// Runs `f` `iters` times on each of `threads` threads at once; the time of the slowest thread.
fn on_threads(threads: usize, iters: u64, f: fn()) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        f();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    })
}

fn overhead(c: &mut Criterion) {
    let _collector = Collector::start(
        CollectorConfig {
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        vec![Box::new(FacadeSink::new(GlobalLabels {
            service: "bench".into(),
            instance: "localhost".into(),
            worker: "0".into(),
        }))],
    )
    .expect("collector starts");

    let mut g = c.benchmark_group("overhead");
    g.bench_function("bare", |b| b.iter(bare));
    g.bench_function("two_instant_now", |b| {
        b.iter(|| {
            let start = Instant::now();
            let end = Instant::now();
            black_box(end - start)
        })
    });
    g.bench_function("profiled", |b| b.iter(profiled_empty));
    g.bench_function("profiled_sampled_out", |b| b.iter(profiled_sampled_out));
    profilis::set_enabled(false);
    g.bench_function("profiled_disabled", |b| b.iter(profiled_empty));
    profilis::set_enabled(true);
    g.bench_function("profiled_1_thread", |b| {
        b.iter_custom(|iters| on_threads(1, iters, profiled_empty))
    });
    g.bench_function("profiled_2_threads", |b| {
        b.iter_custom(|iters| on_threads(2, iters, profiled_empty))
    });
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);

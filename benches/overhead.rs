//! What one profiled call costs, against a bare call, against reading the clock twice
//! (`Instant::now()`) and against the floor of a timed call (the two TSC reads it makes), with
//! the Prometheus exporter installed (its listener off: nothing scrapes). Also the cost when a
//! sink asks for every call as an event.
//!
//! `cargo bench --bench overhead`. Figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use profilis::{profiled, Collector, CollectorConfig, Exporter};

mod common {
    pub mod discard;
}
use common::discard::Discard;

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
    let exporter = Exporter::new()
        .without_listener()
        .enabled(true)
        .install()
        .expect("exporter installs");

    let mut g = c.benchmark_group("overhead");
    g.bench_function("bare", |b| b.iter(bare));
    g.bench_function("two_instant_now", |b| {
        b.iter(|| {
            let start = Instant::now();
            let end = Instant::now();
            black_box(end - start)
        })
    });
    // The floor of a timed call: the two TSC reads a profiled call makes (the clock it reads
    // on x86_64), around the bare call, and the duration added to a counter.
    #[cfg(target_arch = "x86_64")]
    g.bench_function("two_tsc_reads", |b| {
        use std::sync::atomic::{AtomicU64, Ordering};
        static TOTAL: AtomicU64 = AtomicU64::new(0);
        b.iter(|| {
            // SAFETY: every x86_64 has the instruction; reading it has no other effect.
            let start = unsafe { std::arch::x86_64::_rdtsc() };
            bare();
            let end = unsafe { std::arch::x86_64::_rdtsc() };
            let total = TOTAL.load(Ordering::Relaxed);
            TOTAL.store(total.wrapping_add(end - start), Ordering::Relaxed);
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
    drop(exporter);

    // With the dashboard on: fine duration buckets too (and the checks for failed and slow
    // calls), its sink adding them up each cycle.
    let exporter = Exporter::new()
        .without_listener()
        .dashboard(true)
        .enabled(true)
        .install()
        .expect("exporter installs");
    g.bench_function("profiled_with_details", |b| b.iter(profiled_empty));
    g.bench_function("profiled_with_details_1_thread", |b| {
        b.iter_custom(|iters| on_threads(1, iters, profiled_empty))
    });
    g.bench_function("profiled_with_details_2_threads", |b| {
        b.iter_custom(|iters| on_threads(2, iters, profiled_empty))
    });
    drop(exporter);

    // Every call also queued as an event for a sink that wants events.
    let collector = Collector::start(
        CollectorConfig {
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        vec![Box::new(Discard)],
    )
    .expect("collector starts");
    g.bench_function("profiled_with_event_sink", |b| b.iter(profiled_empty));
    drop(collector);
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);

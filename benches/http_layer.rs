//! What `ProfilisLayer` adds to one request: the same minimal axum app with and without the
//! layer, driven in-process with `tower::ServiceExt::oneshot` (no network), the response body
//! read to its end so every request is recorded. The exporter is installed, its listener off.
//!
//! `cargo bench --features axum --bench http_layer`. The load test over loopback is
//! `benches/http_load.sh`.

use std::time::{Duration, Instant};

use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use profilis::Exporter;

#[macro_use]
mod common {
    #[macro_use]
    pub mod http;
}

// `app`, `Layered` and `send!`: shared with `benches/http_layer_instructions.rs`, defined here
// at the root.
http_app!();

/// Sends `iters` requests through `app`; the time it took.
fn drive(runtime: &tokio::runtime::Runtime, app: &Router, iters: u64) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        send!(app, iters);
        start.elapsed()
    })
}

/// Whether criterion only tests the cases (`--test`, or no `--bench`: `cargo test --benches`)
/// or lists them (`--list`), rather than measuring them.
fn not_measuring() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--test") || has("--list") || !has("--bench")
}

fn http_layer(c: &mut Criterion) {
    let _profilis = Exporter::new()
        .without_listener()
        .install()
        .expect("exporter installs");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("axum request (oneshot, in-process)");
    let cases = [
        ("without layer", app(Layered::No)),
        ("with a pass-through layer", app(Layered::PassThrough)),
        ("with ProfilisLayer", app(Layered::Profilis)),
    ];
    // Which cases criterion ran: a filter may leave some out.
    let mut ran = [false; 3];
    for ((name, app), ran) in cases.iter().zip(&mut ran) {
        group.bench_function(*name, |b| {
            *ran = true;
            b.iter_custom(|iters| drive(&runtime, app, iters))
        });
    }
    group.finish();
    if ran.contains(&false) || not_measuring() {
        return;
    }
    // On a shared machine other processes slow some samples down, and criterion measures the
    // cases one after the other. For the comparison, the cases take turns in short rounds,
    // and each keeps its fastest round: the one least disturbed. Only after criterion measured
    // all three cases.
    let (rounds, requests) = (30, 20_000);
    let mut best = [f64::INFINITY; 3];
    for _ in 0..rounds {
        for (best, (_, app)) in best.iter_mut().zip(&cases) {
            let took = drive(&runtime, app, requests);
            *best = best.min(took.as_nanos() as f64 / requests as f64);
        }
    }
    let [without, pass_through, with] = best;
    println!(
        "fastest of {rounds} interleaved rounds of {requests} requests: {without:.0} ns without a \
         layer, {pass_through:.0} ns with a pass-through layer (+{:.0} ns), {with:.0} ns with \
         ProfilisLayer (+{:.0} ns, {:.3}x; +{:.0} ns over the pass-through layer)",
        pass_through - without,
        with - without,
        with / without,
        with - pass_through,
    );
}

criterion_group!(benches, http_layer);
criterion_main!(benches);

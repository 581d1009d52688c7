//! What `ProfilisLayer` adds to one request: the same minimal axum app with and without the
//! layer, driven in-process with `tower::ServiceExt::oneshot` (no network), the response body
//! read to its end so every request is recorded. The exporter is installed, its listener off.
//!
//! `cargo bench --features axum --bench http_layer`. The load test over loopback is
//! `benches/http_load.sh`.

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::BodyExt;
use profilis::http::axum::ProfilisLayer;
use profilis::http::HttpConfig;
use profilis::Exporter;
use tower::ServiceExt;

async fn hello() -> &'static str {
    "hello"
}

#[derive(Clone, Copy)]
enum Layered {
    No,
    /// A layer that does nothing: what axum's `Router::layer` itself costs per request.
    PassThrough,
    Profilis,
}

fn app(layered: Layered) -> Router {
    let app = Router::new().route("/users/{id}", get(hello));
    match layered {
        Layered::No => app,
        Layered::PassThrough => app.layer(tower::layer::layer_fn(|inner| inner)),
        Layered::Profilis => app.layer(ProfilisLayer::new(HttpConfig::new().build())),
    }
}

/// Sends `iters` requests through `app`; the time it took.
fn drive(runtime: &tokio::runtime::Runtime, app: &Router, iters: u64) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let request = Request::get("/users/42").body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap();
            black_box(body);
        }
        start.elapsed()
    })
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
    // Time and iterations over the whole run (warm-up included), for the ratio below.
    let totals: [Cell<(Duration, u64)>; 3] = Default::default();
    let cases = [
        ("without layer", Layered::No),
        ("with a pass-through layer", Layered::PassThrough),
        ("with ProfilisLayer", Layered::Profilis),
    ];
    for (case, (name, layered)) in cases.into_iter().enumerate() {
        let app = app(layered);
        let total = &totals[case];
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let took = drive(&runtime, &app, iters);
                let (time, n) = total.get();
                total.set((time + took, n + iters));
                took
            })
        });
    }
    group.finish();
    let per_request = |total: &Cell<(Duration, u64)>| {
        let (time, n) = total.get();
        time.as_nanos() as f64 / n.max(1) as f64
    };
    if totals.iter().any(|t| t.get().1 == 0) {
        return; // a filter left a case out
    }
    let [without, pass_through, with] = totals.each_ref().map(per_request);
    println!(
        "ProfilisLayer: {with:.0} ns per request against {without:.0} ns without \
         (+{:.0} ns, {:.3}x) and {pass_through:.0} ns with a pass-through layer \
         (+{:.0} ns: the layer's own work)",
        with - without,
        with / without,
        with - pass_through,
    );
}

criterion_group!(benches, http_layer);
criterion_main!(benches);

//! What the client adapters add to one outgoing request: a GET over loopback to a minimal axum
//! server (on a runtime of its own), its body read to the end, sent by
//!
//! - reqwest through `reqwest-middleware`: with no middleware, with `ProfilisMiddleware`, and
//!   with `reqwest-tracing`'s `TracingMiddleware` under a `tracing-subscriber` registry with a
//!   fmt layer writing to `io::sink` (what a user of tracing would pick);
//! - hyper-util's client as a tower service: alone, under profilis's `ClientLayer`, and under
//!   `tower-http`'s `TraceLayer` with the same subscriber.
//!
//! The exporter is installed (its listener off), so profilis records every request.
//!
//! `cargo bench --features axum,reqwest,tower-client --bench http_client`.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use profilis::http::client::reqwest::ProfilisMiddleware;
use profilis::http::client::tower::ClientLayer;
use profilis::http::client::ClientConfig;
use profilis::Exporter;
use reqwest_middleware::ClientWithMiddleware;
use tower::{Layer, Service, ServiceExt};
use tower_http::trace::TraceLayer;
use tracing_subscriber::layer::SubscriberExt;

/// Serves `/ok` on a loopback port, on a thread of its own, for the rest of the process.
fn serve() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new().route("/ok", get(|| async { "hello" }));
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}/ok", rx.recv().unwrap())
}

/// A subscriber that formats every span and event of the peer's own crate (`tower-http`'s
/// are at DEBUG, `reqwest-tracing`'s at INFO) and throws the text away. Only theirs: hyper and
/// h2 log at DEBUG and TRACE too, and formatting those would be a cost of the subscriber, not
/// of the peer (it made tonic calls 8 times slower).
fn subscriber() -> impl tracing::Subscriber + Send + Sync {
    let peers = tracing_subscriber::filter::Targets::new()
        .with_target("tower_http", tracing::Level::TRACE)
        .with_target("reqwest_tracing", tracing::Level::TRACE);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::sink)
        .with_ansi(false);
    tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(fmt, peers))
}

type Hyper = Client<HttpConnector, Empty<Bytes>>;

fn request(url: &str) -> axum::http::Request<Empty<Bytes>> {
    axum::http::Request::get(url).body(Empty::new()).unwrap()
}

/// Sends `iters` requests with `client`; the time it took.
async fn send_reqwest(client: &ClientWithMiddleware, url: &str, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(body, "hello");
    }
    start.elapsed()
}

/// Sends `iters` requests through the tower client `client`; the time it took.
async fn send_tower<S, B>(client: &S, url: &str, iters: u64) -> Duration
where
    S: Service<axum::http::Request<Empty<Bytes>>, Response = axum::http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..iters {
        let response = client.clone().oneshot(request(url)).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello");
    }
    start.elapsed()
}

fn http_client(c: &mut Criterion) {
    let _profilis = Exporter::new()
        .without_listener()
        .install()
        .expect("exporter installs");
    let url = serve();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let rules = ClientConfig::new().peer("bench").unwrap().build();

    let mut group = c.benchmark_group("outgoing request (reqwest, loopback)");
    let plain = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();
    let profiled = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ProfilisMiddleware::new(rules.clone()))
        .build();
    let traced = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_tracing::TracingMiddleware::default())
        .build();
    group.bench_function("without middleware", |b| {
        b.iter_custom(|iters| runtime.block_on(send_reqwest(&plain, &url, iters)));
    });
    group.bench_function("with ProfilisMiddleware", |b| {
        b.iter_custom(|iters| runtime.block_on(send_reqwest(&profiled, &url, iters)));
    });
    group.bench_function("with reqwest-tracing and a subscriber", |b| {
        b.iter_custom(|iters| {
            tracing::subscriber::with_default(subscriber(), || {
                runtime.block_on(send_reqwest(&traced, &url, iters))
            })
        });
    });
    group.finish();

    let mut group = c.benchmark_group("outgoing request (hyper-util client, loopback)");
    let hyper: Hyper = Client::builder(TokioExecutor::new()).build_http();
    let layered = ClientLayer::new(rules).layer(hyper.clone());
    let trace = TraceLayer::new_for_http().layer(hyper.clone());
    group.bench_function("without layer", |b| {
        b.iter_custom(|iters| runtime.block_on(send_tower(&hyper, &url, iters)));
    });
    group.bench_function("with ClientLayer", |b| {
        b.iter_custom(|iters| runtime.block_on(send_tower(&layered, &url, iters)));
    });
    group.bench_function("with tower-http TraceLayer and a subscriber", |b| {
        b.iter_custom(|iters| {
            tracing::subscriber::with_default(subscriber(), || {
                runtime.block_on(send_tower(&trace, &url, iters))
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = http_client
}
criterion_main!(benches);

//! What the gRPC layers add to one call: a unary tonic call over loopback HTTP/2 to a server
//! (on a thread and runtime of its own) whose one method echoes its message, with
//!
//! - no layer on either side;
//! - profilis's `GrpcLayer` on the server and `GrpcClientLayer` on the client;
//! - `tower-http`'s `TraceLayer::new_for_grpc()` on both sides, under a `tracing-subscriber`
//!   registry with a fmt layer writing to `io::sink` (what a user of tracing would pick).
//!
//! The exporter is installed (its listener off), so profilis records every call twice (served
//! and made).
//!
//! `cargo bench --features grpc --bench grpc`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::uri::PathAndQuery;
use profilis::grpc::{GrpcClientLayer, GrpcConfig, GrpcLayer};
use profilis::http::client::ClientConfig;
use profilis::Exporter;
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tower::{service_fn, Layer, Service};
use tower_http::trace::TraceLayer;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, PartialEq, prost::Message)]
struct Message {
    #[prost(string, tag = "1")]
    text: String,
}

/// `bench.Echo/Say`, echoing its message.
#[derive(Clone)]
struct Echo;

impl NamedService for Echo {
    const NAME: &'static str = "bench.Echo";
}

type Answered = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl Service<http::Request<Body>> for Echo {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answered;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Answered {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Message, Message>::default());
            let say = service_fn(|request: Request<Message>| async move {
                Ok::<_, Status>(Response::new(request.into_inner()))
            });
            Ok(grpc.unary(say, request).await)
        })
    }
}

#[derive(Clone, Copy)]
enum Layers {
    None,
    Profilis,
    Tracing,
}

/// Serves `Echo` on a loopback port with `layers`, on a thread of its own; its URL.
fn serve(layers: Layers) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let incoming = TcpListenerStream::new(listener);
            let mut builder = tonic::transport::Server::builder();
            match layers {
                Layers::None => {
                    builder
                        .add_service(Echo)
                        .serve_with_incoming(incoming)
                        .await
                }
                Layers::Profilis => {
                    builder
                        .layer(GrpcLayer::new(GrpcConfig::new().build()))
                        .add_service(Echo)
                        .serve_with_incoming(incoming)
                        .await
                }
                Layers::Tracing => {
                    let _subscriber = tracing::subscriber::set_default(subscriber());
                    builder
                        .layer(TraceLayer::new_for_grpc())
                        .add_service(Echo)
                        .serve_with_incoming(incoming)
                        .await
                }
            }
            .unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
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

/// Makes `iters` calls with `client`; the time it took.
async fn call<S>(client: &mut tonic::client::Grpc<S>, iters: u64) -> Duration
where
    S: GrpcService<Body>,
    S::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let start = Instant::now();
    for _ in 0..iters {
        client.ready().await.map_err(Into::into).unwrap();
        let answer = client
            .unary(
                Request::new(Message { text: "hi".into() }),
                PathAndQuery::from_static("/bench.Echo/Say"),
                ProstCodec::<Message, Message>::default(),
            )
            .await
            .unwrap();
        assert_eq!(answer.into_inner().text, "hi");
    }
    start.elapsed()
}

fn grpc(c: &mut Criterion) {
    let _profilis = Exporter::new()
        .without_listener()
        .install()
        .expect("exporter installs");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connect = |url: String| {
        runtime.block_on(async { Channel::from_shared(url).unwrap().connect().await.unwrap() })
    };
    let mut group = c.benchmark_group("unary gRPC call (tonic, loopback)");
    let mut plain = tonic::client::Grpc::new(connect(serve(Layers::None)));
    let rules = ClientConfig::new().peer("bench").unwrap().build();
    let mut profiled = tonic::client::Grpc::new(
        GrpcClientLayer::new(rules).layer(connect(serve(Layers::Profilis))),
    );
    let mut traced =
        tonic::client::Grpc::new(TraceLayer::new_for_grpc().layer(connect(serve(Layers::Tracing))));
    group.bench_function("without layers", |b| {
        b.iter_custom(|iters| runtime.block_on(call(&mut plain, iters)));
    });
    group.bench_function("with GrpcLayer and GrpcClientLayer", |b| {
        b.iter_custom(|iters| runtime.block_on(call(&mut profiled, iters)));
    });
    group.bench_function(
        "with tower-http TraceLayer on both sides and a subscriber",
        |b| {
            b.iter_custom(|iters| {
                tracing::subscriber::with_default(subscriber(), || {
                    runtime.block_on(call(&mut traced, iters))
                })
            });
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = grpc
}
criterion_main!(benches);

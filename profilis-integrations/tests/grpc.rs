//! gRPC over real loopback HTTP/2: a tonic server profiled by `GrpcLayer` and a tonic client
//! profiled by `GrpcClientLayer`, with messages derived by prost (no code generation: the
//! service is written by hand, as tonic's generated code would be). Unary and server-streaming
//! calls are counted by method and gRPC status on `/metrics`, a stream until its trailers,
//! an unknown method as `<unmatched>`, a panicking handler as `INTERNAL`; the trace goes from
//! the caller through the client's call to the server's call and its handler, by
//! `traceparent` and by `grpc-trace-bin` alone. The dashboard has rows for both kinds.
//!
//! One exporter per process, so the tests take turns (`SERIAL`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use profilis::adapter::Timer;
use profilis::context;
use profilis::grpc::{
    format_grpc_trace_bin, GrpcClientLayer, GrpcConfig, GrpcDetail, GrpcLayer, GRPC, GRPC_CLIENT,
    UNMATCHED_METHOD,
};
use profilis::http::client::ClientConfig;
use profilis::{Event, Exporter, Outcome};
use profilis_test_support::{page_when, sample, KeepEvents};
use tonic::body::Body;
use tonic::codegen::tokio_stream::{self, wrappers::TcpListenerStream, StreamExt};
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;
use tower::{service_fn, Layer, Service, ServiceBuilder};

static SERIAL: Mutex<()> = Mutex::new(());

/// How long the server waits between two messages of a stream.
const BETWEEN: Duration = Duration::from_millis(60);

#[derive(Clone, PartialEq, prost::Message)]
struct Ask {
    #[prost(string, tag = "1")]
    text: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Answer {
    #[prost(string, tag = "1")]
    text: String,
}

/// The service `test.Echo`: `Say` (unary: echoes, or fails as asked), `Count` (three
/// answers, `BETWEEN` apart), `Trace` (the span its handler runs under), `Slow` (5 s),
/// `Panic`.
#[derive(Clone)]
struct Echo;

impl NamedService for Echo {
    const NAME: &'static str = "test.Echo";
}

type Answered = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

async fn say(request: Request<Ask>) -> Result<Response<Answer>, Status> {
    let text = request.into_inner().text;
    match text.as_str() {
        "missing" => Err(Status::not_found("no such thing")),
        "broken" => Err(Status::internal("it broke")),
        _ => Ok(Response::new(Answer { text })),
    }
}

async fn slow(request: Request<Ask>) -> Result<Response<Answer>, Status> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(Response::new(request.into_inner().into()))
}

impl From<Ask> for Answer {
    fn from(ask: Ask) -> Answer {
        Answer { text: ask.text }
    }
}

async fn panics(_: Request<Ask>) -> Result<Response<Answer>, Status> {
    panic!("the handler panics on purpose")
}

async fn trace(_: Request<Ask>) -> Result<Response<Answer>, Status> {
    let ctx = context::current().unwrap_or_default();
    Ok(Response::new(Answer {
        text: format!("{}-{}", ctx.trace_id, ctx.span_id),
    }))
}

type Answers = Pin<Box<dyn tokio_stream::Stream<Item = Result<Answer, Status>> + Send>>;

async fn count(_: Request<Ask>) -> Result<Response<Answers>, Status> {
    let answers = tokio_stream::iter(0..3).then(|i| async move {
        if i > 0 {
            tokio::time::sleep(BETWEEN).await;
        }
        Ok(Answer {
            text: i.to_string(),
        })
    });
    Ok(Response::new(Box::pin(answers) as Answers))
}

impl Service<http::Request<Body>> for Echo {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answered;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Answered {
        // As an auth interceptor, a rate limiter or a load shedder in front of the methods
        // answers: before dispatching on the path, whatever it names.
        let refuse = request
            .headers()
            .get("x-refuse")
            .and_then(|v| v.to_str().ok());
        if let Some(code) = refuse.and_then(|code| code.parse::<i32>().ok()) {
            let refused = Status::new(Code::from_i32(code), "refused before dispatch");
            return Box::pin(async move { Ok(refused.into_http()) });
        }
        let codec = ProstCodec::<Answer, Ask>::default();
        match request.uri().path() {
            "/test.Echo/Say" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.unary(service_fn(say), request).await)
            }),
            "/test.Echo/Trace" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.unary(service_fn(trace), request).await)
            }),
            "/test.Echo/Slow" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.unary(service_fn(slow), request).await)
            }),
            "/test.Echo/Panic" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.unary(service_fn(panics), request).await)
            }),
            "/test.Echo/Count" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.server_streaming(service_fn(count), request).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    metrics: SocketAddr,
    server: SocketAddr,
    events: KeepEvents,
}

fn setup() -> (&'static Setup, MutexGuard<'static, ()>) {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let setup = SETUP.get_or_init(|| {
        let events = KeepEvents::default();
        let guard = Exporter::new()
            .service("grpc-test")
            .listen("127.0.0.1:0")
            .unwrap()
            .flush_interval(Duration::from_millis(10))
            .dashboard(true)
            .sink(events.clone())
            .install()
            .expect("exporter installs");
        let metrics = guard.listen_addr().expect("listener runs");
        std::mem::forget(guard);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tonic::transport::Server::builder()
                // The service named: its methods are labelled even if they only fail.
                .layer(GrpcLayer::new(
                    GrpcConfig::new().services(&[Echo::NAME]).build(),
                ))
                .add_service(Echo)
                .serve_with_incoming(TcpListenerStream::new(listener));
            tokio::spawn(async move { server.await.unwrap() });
            addr
        });
        Setup {
            runtime,
            metrics,
            server,
            events,
        }
    });
    (setup, serial)
}

type Client = tonic::client::Grpc<profilis::grpc::GrpcClientService<Channel>>;

impl Setup {
    /// A profiled client of the server, its calls labelled `peer`.
    async fn client(&self, peer: &str) -> Client {
        let channel = Channel::from_shared(format!("http://{}", self.server))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let rules = ClientConfig::new().peer(peer).unwrap().build();
        tonic::client::Grpc::new(
            ServiceBuilder::new()
                .layer(GrpcClientLayer::new(rules))
                .service(channel),
        )
    }

    /// The events of `kind` whose `route` is `route` once there are `n`, in order.
    fn events(&self, kind: &str, route: &str, n: usize) -> Vec<Event> {
        let what = format!("{n} {kind} events of {route}");
        self.events.when(&what, |events| {
            let found: Vec<Event> = events
                .iter()
                .filter(|e| e.kind().name() == kind && detail(e).route() == route)
                .cloned()
                .collect();
            (found.len() >= n).then_some(found)
        })
    }

    fn metrics_when(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        page_when(self.metrics, "/metrics", what, done)
    }
}

fn detail(event: &Event) -> &GrpcDetail {
    event.detail::<GrpcDetail>().expect("a gRPC detail")
}

fn ended(event: &Event) -> (&'static str, bool, Outcome) {
    (detail(event).status().name(), event.error, event.outcome)
}

async fn say_to(client: &mut Client, text: &str) -> Result<String, Status> {
    client.ready().await.unwrap();
    let answer = client
        .unary(
            Request::new(Ask { text: text.into() }),
            PathAndQuery::from_static("/test.Echo/Say"),
            ProstCodec::<Ask, Answer>::default(),
        )
        .await?;
    Ok(answer.into_inner().text)
}

#[test]
fn calls_are_counted_by_method_and_grpc_status_on_both_sides() {
    let (setup, _serial) = setup();
    setup.runtime.block_on(async {
        let mut client = setup.client("echo").await;
        assert_eq!(say_to(&mut client, "hello").await.unwrap(), "hello");
        let missing = say_to(&mut client, "missing").await.unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        let broken = say_to(&mut client, "broken").await.unwrap_err();
        assert_eq!(broken.code(), Code::Internal);
        // A method nothing serves.
        client.ready().await.unwrap();
        let nope = client
            .unary(
                Request::new(Ask::default()),
                PathAndQuery::from_static("/test.Echo/Nope"),
                ProstCodec::<Ask, Answer>::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(nope.code(), Code::Unimplemented);
    });
    // The server's events come from its two worker threads: compared in the order of
    // their statuses.
    let ends = |events: &[Event]| {
        let mut ends: Vec<_> = events.iter().map(ended).collect();
        ends.sort_unstable_by_key(|(status, ..)| *status);
        ends
    };
    let want = [
        ("INTERNAL", true, Outcome::Returned),
        ("NOT_FOUND", false, Outcome::Returned),
        ("OK", false, Outcome::Returned),
    ];
    let served = setup.events("grpc", "/test.Echo/Say", 3);
    assert_eq!(ends(&served), want);
    assert_eq!(served[0].kind(), &GRPC);
    let made = setup.events("grpc_client", "/test.Echo/Say", 3);
    assert_eq!(ends(&made), want);
    assert_eq!(made[0].kind(), &GRPC_CLIENT);
    assert_eq!(detail(&made[0]).peer(), Some("echo"));
    // The unknown method adds no series of its own, on either side. (Other tests' calls can
    // be `<unmatched>` too: a call cancelled before its method was ever labelled.)
    let unknown = setup.events.when("the unknown method's call", |events| {
        events
            .iter()
            .find(|e| {
                e.kind() == &GRPC
                    && detail(e).route() == UNMATCHED_METHOD
                    && detail(e).status().name() == "UNIMPLEMENTED"
            })
            .cloned()
    });
    assert_eq!(ended(&unknown), ("UNIMPLEMENTED", true, Outcome::Returned));
    assert_eq!(setup.events("grpc_client", UNMATCHED_METHOD, 1).len(), 1);

    let text = setup.metrics_when("the gRPC counts", |text| {
        sample(
            text,
            "profilis_grpc_client_requests_total",
            &[
                ("peer", "echo"),
                ("route", "/test.Echo/Say"),
                ("status", "NOT_FOUND"),
            ],
        ) == Some(1.0)
    });
    let served = [
        ("route", "/test.Echo/Say"),
        ("status", "OK"),
        ("service", "grpc-test"),
    ];
    assert_eq!(
        sample(&text, "profilis_grpc_requests_total", &served),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "profilis_grpc_request_duration_seconds_count",
            &served
        ),
        Some(1.0)
    );
    assert!(!text.contains("/test.Echo/Nope"), "{text}");
    // The dashboard has a row for the method served and one for the peer called.
    let row = |page: &str, kind: &str, name: &str| {
        let json: serde_json::Value = serde_json::from_str(page).unwrap();
        json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == name)
            .cloned()
    };
    let page = page_when(setup.metrics, "/metrics.json", "dashboard rows", |page| {
        row(page, "grpc", "/test.Echo/Say").is_some() && row(page, "grpc_client", "echo").is_some()
    });
    let served = row(&page, "grpc", "/test.Echo/Say").unwrap();
    assert!(served["calls"].as_u64().unwrap() >= 3, "{served}");
    assert!(served["errors"].as_u64().unwrap() >= 1, "{served}");
    let made = row(&page, "grpc_client", "echo").unwrap();
    assert!(made["calls"].as_u64().unwrap() >= 3, "{made}");
}

#[test]
fn a_stream_counts_until_its_trailers() {
    let (setup, _serial) = setup();
    let answers = setup.runtime.block_on(async {
        let mut client = setup.client("echo-stream").await;
        client.ready().await.unwrap();
        let mut stream = client
            .server_streaming(
                Request::new(Ask::default()),
                PathAndQuery::from_static("/test.Echo/Count"),
                ProstCodec::<Ask, Answer>::default(),
            )
            .await
            .unwrap()
            .into_inner();
        let mut answers = Vec::new();
        while let Some(answer) = stream.message().await.unwrap() {
            answers.push(answer.text);
        }
        answers
    });
    assert_eq!(answers, ["0", "1", "2"]);
    let least = 2 * BETWEEN.as_nanos() as u64;
    for kind in ["grpc", "grpc_client"] {
        let event = &setup.events(kind, "/test.Echo/Count", 1)[0];
        assert_eq!(ended(event), ("OK", false, Outcome::Returned), "{kind}");
        assert!(event.dur_ns >= least, "{kind}: {} ns", event.dur_ns);
    }
}

#[test]
fn the_trace_goes_from_the_caller_to_the_handler() {
    let (setup, _serial) = setup();
    let caller = Timer::start(None).expect("a collector runs").context();
    let (seen, seen_by_bin) = setup.runtime.block_on(context::Scoped::new(caller, async {
        let mut client = setup.client("echo-trace").await;
        client.ready().await.unwrap();
        let trace = PathAndQuery::from_static("/test.Echo/Trace");
        let seen = client
            .unary(
                Request::new(Ask::default()),
                trace.clone(),
                ProstCodec::<Ask, Answer>::default(),
            )
            .await
            .unwrap()
            .into_inner()
            .text;
        // A caller that sends only `grpc-trace-bin`, through a client without the layer.
        let channel = Channel::from_shared(format!("http://{}", setup.server))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut plain = tonic::client::Grpc::new(channel);
        plain.ready().await.unwrap();
        let mut request = Request::new(Ask::default());
        let bin = format_grpc_trace_bin(caller).unwrap();
        request.metadata_mut().insert_bin(
            "grpc-trace-bin",
            tonic::metadata::MetadataValue::from_bytes(&base64_decode(&bin)),
        );
        let seen_by_bin = plain
            .unary(request, trace, ProstCodec::<Ask, Answer>::default())
            .await
            .unwrap()
            .into_inner()
            .text;
        (seen, seen_by_bin)
    }));
    let made = &setup.events("grpc_client", "/test.Echo/Trace", 1)[0];
    assert_eq!(made.trace_id, caller.trace_id);
    assert_eq!(made.parent_span_id, Some(caller.span_id));
    let served = setup.events("grpc", "/test.Echo/Trace", 2);
    let by_header = served
        .iter()
        .find(|e| e.parent_span_id == Some(made.span_id))
        .expect("the server's call is a child of the client's");
    assert_eq!(by_header.trace_id, caller.trace_id);
    // The handler ran under the server's call.
    assert_eq!(
        seen,
        format!("{}-{}", by_header.trace_id, by_header.span_id)
    );
    let by_bin = served
        .iter()
        .find(|e| e.parent_span_id == Some(caller.span_id))
        .expect("the call that carried only grpc-trace-bin");
    assert_eq!(by_bin.trace_id, caller.trace_id);
    assert_eq!(
        seen_by_bin,
        format!("{}-{}", by_bin.trace_id, by_bin.span_id)
    );
}

/// The bytes of a base64 value (tonic's binary metadata takes bytes and encodes them).
fn base64_decode(value: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(value)
        .unwrap()
}

#[test]
fn a_panicking_handler_is_an_internal_error() {
    let (setup, _serial) = setup();
    let result = setup.runtime.block_on(async {
        let mut client = setup.client("echo-panic").await;
        client.ready().await.unwrap();
        client
            .unary(
                Request::new(Ask::default()),
                PathAndQuery::from_static("/test.Echo/Panic"),
                ProstCodec::<Ask, Answer>::default(),
            )
            .await
    });
    assert!(result.is_err(), "{result:?}");
    let served = &setup.events("grpc", "/test.Echo/Panic", 1)[0];
    assert_eq!(ended(served), ("INTERNAL", true, Outcome::Panicked));
    let made = &setup.events("grpc_client", "/test.Echo/Panic", 1)[0];
    assert!(made.error);
    assert_eq!(detail(made).peer(), Some("echo-panic"));
}

#[test]
fn calls_made_that_get_no_answer_say_why() {
    let (setup, _serial) = setup();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    setup.runtime.block_on(async {
        let layer = |peer: &str| {
            GrpcClientLayer::new(ClientConfig::new().peer(peer).unwrap().build())
                .with_grpc_trace_bin(true)
        };
        // tonic's own timeout (`Endpoint::timeout`): DEADLINE_EXCEEDED.
        let channel = Channel::from_shared(format!("http://{}", setup.server))
            .unwrap()
            .timeout(Duration::from_millis(100))
            .connect()
            .await
            .unwrap();
        let mut client = tonic::client::Grpc::new(layer("echo-slow").layer(channel));
        client.ready().await.unwrap();
        let late = client
            .unary(
                Request::new(Ask::default()),
                PathAndQuery::from_static("/test.Echo/Slow"),
                ProstCodec::<Ask, Answer>::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(late.code(), Code::Cancelled, "{late:?}");
        // Nothing listens: UNAVAILABLE. (A method of its own: the other tests count the
        // calls of theirs.)
        let channel = Channel::from_shared(format!("http://{closed}"))
            .unwrap()
            .connect_lazy();
        let mut client = tonic::client::Grpc::new(layer("echo-closed").layer(channel));
        let refused = client.ready().await;
        let refused = match refused {
            Err(e) => Status::from_error(e),
            Ok(()) => client
                .unary(
                    Request::new(Ask::default()),
                    PathAndQuery::from_static("/test.Echo/Unreachable"),
                    ProstCodec::<Ask, Answer>::default(),
                )
                .await
                .unwrap_err(),
        };
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    });
    let by_peer = |peer: &str| {
        setup
            .events
            .when(&format!("a call made to {peer}"), |events| {
                events
                    .iter()
                    .find(|e| e.kind() == &GRPC_CLIENT && detail(e).peer() == Some(peer))
                    .cloned()
            })
    };
    let late = by_peer("echo-slow");
    assert_eq!(ended(&late), ("DEADLINE_EXCEEDED", true, Outcome::Returned));
    assert_eq!(
        late.failure
            .as_deref()
            .and_then(|f| f.exception_type.as_deref()),
        Some("timeout")
    );
    let refused = by_peer("echo-closed");
    assert_eq!(ended(&refused), ("UNAVAILABLE", true, Outcome::Returned));
}

/// Review finding: with the service named (`services`), any status but `UNIMPLEMENTED` gave a
/// method a label, so an unauthenticated client that an auth check answers before dispatch
/// filled the method table with invented names, and real methods were `<unmatched>` for good.
/// The statuses a layer in front of the methods answers admit no method now.
#[test]
fn statuses_answered_before_dispatch_admit_no_method() {
    let (setup, _serial) = setup();
    // UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAVAILABLE, CANCELLED,
    // DEADLINE_EXCEEDED, UNKNOWN.
    let refusals = [16, 7, 8, 14, 1, 4, 2];
    setup.runtime.block_on(async {
        let mut client = setup.client("refused-peer").await;
        for code in refusals {
            client.ready().await.unwrap();
            let mut request = Request::new(Ask::default());
            request
                .metadata_mut()
                .insert("x-refuse", code.to_string().parse().unwrap());
            let path = PathAndQuery::try_from(format!("/test.Echo/Invented{code}")).unwrap();
            let refused = client
                .unary(request, path, ProstCodec::<Ask, Answer>::default())
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::from_i32(code));
        }
    });
    let made = setup.events.when("the refused calls made", |events| {
        let made: Vec<Event> = events
            .iter()
            .filter(|e| e.kind() == &GRPC_CLIENT && detail(e).peer() == Some("refused-peer"))
            .cloned()
            .collect();
        (made.len() == refusals.len()).then_some(made)
    });
    for call in &made {
        let served = setup.events.when("the call served", |events| {
            events
                .iter()
                .find(|e| e.kind() == &GRPC && e.parent_span_id == Some(call.span_id))
                .cloned()
        });
        assert_eq!(
            (detail(&served).route(), detail(&served).status()),
            (UNMATCHED_METHOD, detail(call).status()),
            "{} admitted",
            detail(call).route()
        );
    }
    let text = setup.metrics_when("the refused calls' series", |text| {
        sample(
            text,
            "profilis_grpc_requests_total",
            &[
                ("route", UNMATCHED_METHOD),
                ("status", "RESOURCE_EXHAUSTED"),
            ],
        ) == Some(1.0)
    });
    let served: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("profilis_grpc_requests_total") && l.contains("Invented"))
        .collect();
    assert!(served.is_empty(), "{served:?}");
}

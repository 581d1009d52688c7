//! Outgoing HTTP requests, end to end over real loopback HTTP: the tower client layer around
//! hyper-util's client, and the reqwest middleware, calling an axum server that the server
//! layer profiles in the same process. Each request is counted on `/metrics` under its peer
//! and status, timed until its body has been read, failed without a response as
//! `connect_error` or `timeout`, and carries a `traceparent` that makes the server's request
//! its child. The dashboard shows a row per peer.
//!
//! One exporter per process, so the tests take turns (`SERIAL`); each labels its requests
//! with a peer name of its own (but the cap test, which uses hosts).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use profilis::adapter::Timer;
use profilis::context::{self, parse_traceparent, SpanContext};
use profilis::http::client::reqwest::ProfilisMiddleware;
use profilis::http::client::tower::ClientLayer;
use profilis::http::client::{ClientConfig, ClientDetail, HTTP_CLIENT, OTHER_PEER};
use profilis::http::tower::ProfilisLayer;
use profilis::http::{HttpConfig, HttpDetail};
use profilis::{Event, Exporter, Outcome};
use profilis_test_support::{page_when, sample, KeepEvents};
use tower::{Layer, ServiceBuilder, ServiceExt};

/// The tests share one collector: one runs at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long the server waits before the last chunk of `/slow-body`.
const SLOW_BODY: Duration = Duration::from_millis(100);

struct Setup {
    runtime: tokio::runtime::Runtime,
    /// The built-in listener.
    metrics: SocketAddr,
    /// The profiled axum server the clients call.
    server: SocketAddr,
    /// Every event of an outgoing or incoming request, as a sink got them.
    events: KeepEvents,
}

fn app() -> Router {
    Router::new()
        .route("/ok", get(|| async { "hello" }))
        .route(
            "/slow-body",
            get(|| async {
                let chunks = futures::stream::iter(0..2).then(|i| async move {
                    if i == 1 {
                        tokio::time::sleep(SLOW_BODY).await;
                    }
                    Ok::<_, Infallible>(Bytes::from_static(b"chunk"))
                });
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/echo",
            get(|headers: HeaderMap| async move {
                headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .layer(ProfilisLayer::new(HttpConfig::new().build()))
}

fn setup() -> (&'static Setup, MutexGuard<'static, ()>) {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let setup = SETUP.get_or_init(|| {
        let events = KeepEvents::default();
        let guard = Exporter::new()
            .service("client-test")
            .listen("127.0.0.1:0")
            .unwrap()
            .flush_interval(Duration::from_millis(10))
            .dashboard(true)
            .sink(events.clone())
            .install()
            .expect("exporter installs");
        let metrics = guard.listen_addr().expect("listener runs");
        // Runs for the whole test binary.
        std::mem::forget(guard);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
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

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server)
    }

    /// The client events of `peer` once there are `n` of them (the collector flushes every
    /// 10 ms), in the order they were recorded.
    fn client_events(&self, peer: &str, n: usize) -> Vec<Event> {
        self.events
            .when(&format!("{n} requests to {peer}"), |events| {
                let of_peer: Vec<Event> = events
                    .iter()
                    .filter(|e| e.kind() == &HTTP_CLIENT && e.name() == peer)
                    .cloned()
                    .collect();
                (of_peer.len() >= n).then_some(of_peer)
            })
    }

    /// The server's event of the request whose parent span is `parent`.
    fn server_event_under(&self, parent: SpanContext) -> Event {
        self.events.when("the server's request", |events| {
            events
                .iter()
                .find(|e| e.kind() == &profilis::HTTP && e.parent_span_id == Some(parent.span_id))
                .cloned()
        })
    }

    /// The metrics page once `done` holds for it.
    fn metrics_when(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        page_when(self.metrics, "/metrics", what, done)
    }
}

fn detail(event: &Event) -> &ClientDetail {
    event.detail::<ClientDetail>().expect("a client detail")
}

fn status_of(event: &Event) -> String {
    detail(event).status_label().into_owned()
}

/// A loopback port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `(trace, parent span)` of a `traceparent` the server echoed.
fn echoed(body: &[u8]) -> SpanContext {
    let text = std::str::from_utf8(body).unwrap();
    parse_traceparent(text).unwrap_or_else(|| panic!("no traceparent reached the server: {text:?}"))
}

type Hyper = Client<HttpConnector, Empty<Bytes>>;

fn hyper_client() -> Hyper {
    Client::builder(TokioExecutor::new()).build_http()
}

fn get_request(url: &str) -> axum::http::Request<Empty<Bytes>> {
    axum::http::Request::get(url).body(Empty::new()).unwrap()
}

#[test]
fn the_tower_client_records_each_request_until_its_body_is_read() {
    let (setup, _serial) = setup();
    let rules = ClientConfig::new()
        .peer("tower-peer")
        .unwrap()
        .method_label(true)
        .build();
    let client = ClientLayer::new(rules).layer(hyper_client());
    let bodies = setup.runtime.block_on(async {
        let mut bodies = Vec::new();
        for path in ["/ok", "/slow-body", "/fail", "/ok"] {
            let response = client
                .clone()
                .oneshot(get_request(&setup.url(path)))
                .await
                .unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            bodies.push(body);
        }
        bodies
    });
    assert_eq!(bodies[0], "hello");
    assert_eq!(bodies[1], "chunkchunk");

    let events = setup.client_events("tower-peer", 4);
    let statuses: Vec<String> = events.iter().map(status_of).collect();
    assert_eq!(statuses, ["200", "200", "500", "200"]);
    assert_eq!(
        events.iter().map(|e| e.error).collect::<Vec<_>>(),
        [false, false, true, false]
    );
    // The duration runs until the body was read: the server waited before its last chunk.
    assert!(
        events[1].dur_ns >= SLOW_BODY.as_nanos() as u64,
        "{} ns",
        events[1].dur_ns
    );
    assert_eq!(detail(&events[0]).method(), "GET");

    let text = setup.metrics_when("the tower client's counts", |text| {
        sample(
            text,
            "profilis_http_client_requests_total",
            &[("peer", "tower-peer"), ("status", "200")],
        ) == Some(3.0)
    });
    let labels = [
        ("peer", "tower-peer"),
        ("status", "500"),
        ("method", "GET"),
        ("service", "client-test"),
    ];
    assert_eq!(
        sample(&text, "profilis_http_client_requests_total", &labels),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "profilis_http_client_request_duration_seconds_count",
            &labels
        ),
        Some(1.0)
    );
    // The dashboard has a row for the peer, as for a route or a function.
    let row = |page: &str| {
        let json: serde_json::Value = serde_json::from_str(page).unwrap();
        json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "http_client" && r["name"] == "tower-peer")
            .cloned()
            .filter(|r| r["calls"] == 4)
    };
    let page = page_when(setup.metrics, "/metrics.json", "a dashboard row", |page| {
        row(page).is_some()
    });
    assert_eq!(row(&page).unwrap()["errors"], 1, "{page}");
}

/// A response body whose `is_end_stream` panics, as a client's inner service might hand back.
struct EndPanickingBody;

impl http_body::Body for EndPanickingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        panic!("is_end_stream panicked on purpose")
    }
}

#[test]
fn the_tower_client_records_a_request_whose_body_panics_when_asked_if_it_ended() {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    let (setup, _serial) = setup();
    let rules = ClientConfig::new().peer("tower-touchy").unwrap().build();
    let client = ClientLayer::new(rules).layer(tower::service_fn(
        |_: axum::http::Request<Empty<Bytes>>| async {
            Ok::<_, Infallible>(axum::http::Response::new(EndPanickingBody))
        },
    ));
    let url = setup.url("/ok");
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        setup.runtime.block_on(client.oneshot(get_request(&url)))
    }));
    assert!(panicked.is_err(), "the panic goes on");
    let events = setup.client_events("tower-touchy", 1);
    assert!(events[0].error, "{:?}", events[0]);
}

#[test]
fn the_tower_client_sends_its_span_and_the_server_records_a_child() {
    let (setup, _serial) = setup();
    let rules = ClientConfig::new().peer("tower-trace").unwrap().build();
    let client = ClientLayer::new(rules).layer(hyper_client());
    // The caller's own span: the outgoing request is its child.
    let caller = Timer::start(None).expect("a collector runs").context();
    let body = setup.runtime.block_on(context::Scoped::new(caller, async {
        let response = client
            .oneshot(get_request(&setup.url("/echo")))
            .await
            .unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    }));
    let sent = echoed(&body);
    let out = &setup.client_events("tower-trace", 1)[0];
    assert_eq!((out.trace_id, out.span_id), (sent.trace_id, sent.span_id));
    assert_eq!(out.trace_id, caller.trace_id);
    assert_eq!(out.parent_span_id, Some(caller.span_id));
    let served = setup.server_event_under(sent);
    assert_eq!(served.trace_id, caller.trace_id);
    assert_eq!(
        served.detail::<HttpDetail>().map(|h| h.route),
        Some("/echo")
    );
}

#[test]
fn the_tower_client_records_refused_connections_and_timeouts() {
    let (setup, _serial) = setup();
    let refused = ClientLayer::new(ClientConfig::new().peer("tower-refused").unwrap().build())
        .layer(hyper_client());
    let slow = ServiceBuilder::new()
        .layer(ClientLayer::new(
            ClientConfig::new().peer("tower-timeout").unwrap().build(),
        ))
        .timeout(Duration::from_millis(100))
        .service(hyper_client());
    let url = format!("http://127.0.0.1:{}/ok", closed_port());
    setup.runtime.block_on(async {
        let error = refused.oneshot(get_request(&url)).await.unwrap_err();
        assert!(!error.to_string().is_empty());
        let error = slow
            .oneshot(get_request(&setup.url("/sleep")))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("timed out"), "{error}");
    });
    let refused = &setup.client_events("tower-refused", 1)[0];
    assert_eq!(status_of(refused), "connect_error");
    assert!(refused.error);
    let failure = refused.failure.as_deref().expect("the client's error");
    assert_eq!(failure.exception_type.as_deref(), Some("connect_error"));
    let timed_out = &setup.client_events("tower-timeout", 1)[0];
    assert_eq!(status_of(timed_out), "timeout");
    assert!(timed_out.error);
    setup.metrics_when("the failures' series", |text| {
        sample(
            text,
            "profilis_http_client_requests_total",
            &[("peer", "tower-timeout"), ("status", "timeout")],
        ) == Some(1.0)
            && sample(
                text,
                "profilis_http_client_requests_total",
                &[("peer", "tower-refused"), ("status", "connect_error")],
            ) == Some(1.0)
    });
}

#[test]
fn the_reqwest_middleware_records_requests_bodies_failures_and_trace() {
    let (setup, _serial) = setup();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ProfilisMiddleware::new(
            ClientConfig::new().peer("reqwest-peer").unwrap().build(),
        ))
        .build();
    let caller = Timer::start(None).expect("a collector runs").context();
    let refused_url = format!("http://127.0.0.1:{}/ok", closed_port());
    let (texts, echo) = setup.runtime.block_on(context::Scoped::new(caller, async {
        let mut texts = Vec::new();
        for path in ["/ok", "/slow-body", "/fail"] {
            let response = client.get(setup.url(path)).send().await.unwrap();
            // The URL survives the middleware's wrapping of the body.
            assert_eq!(response.url().as_str(), setup.url(path));
            texts.push(response.text().await.unwrap());
        }
        let echo = client
            .get(setup.url("/echo"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let timeout = client
            .get(setup.url("/sleep"))
            .timeout(Duration::from_millis(100))
            .send()
            .await
            .unwrap_err();
        assert!(timeout.is_timeout(), "{timeout}");
        client.get(&refused_url).send().await.unwrap_err();
        // A body the caller drops unread ends the request then, with its status.
        drop(client.get(setup.url("/slow-body")).send().await.unwrap());
        (texts, echo)
    }));
    assert_eq!(texts, ["hello", "chunkchunk", "boom"]);

    let events = setup.client_events("reqwest-peer", 7);
    let ends: Vec<(String, bool, Outcome)> = events
        .iter()
        .map(|e| (status_of(e), e.error, e.outcome))
        .collect();
    let returned = |status: &str, error| (status.to_owned(), error, Outcome::Returned);
    assert_eq!(
        ends,
        [
            returned("200", false),
            returned("200", false),
            returned("500", true),
            returned("200", false),
            returned("timeout", true),
            returned("connect_error", true),
            ("200".to_owned(), false, Outcome::Cancelled),
        ]
    );
    assert!(
        events[1].dur_ns >= SLOW_BODY.as_nanos() as u64,
        "{} ns",
        events[1].dur_ns
    );
    // The trace: the caller's, through the request's span, to the server's request.
    let sent = echoed(&echo);
    let out = &events[3];
    assert_eq!((out.trace_id, out.span_id), (sent.trace_id, sent.span_id));
    assert_eq!(out.parent_span_id, Some(caller.span_id));
    assert_eq!(setup.server_event_under(sent).trace_id, caller.trace_id);
    setup.metrics_when("the reqwest client's counts", |text| {
        sample(
            text,
            "profilis_http_client_requests_total",
            &[("peer", "reqwest-peer"), ("status", "200")],
        ) == Some(4.0)
    });
}

#[test]
fn hosts_beyond_the_cap_share_one_peer_label() {
    let (setup, _serial) = setup();
    let rules = ClientConfig::new().max_peers(1).unwrap().build();
    let client = ClientLayer::new(rules).layer(hyper_client());
    // 127.0.0.2 is loopback too; nothing listens on the port, so it fails to connect.
    let elsewhere = format!("http://127.0.0.2:{}/ok", closed_port());
    setup.runtime.block_on(async {
        let ok = client.clone().oneshot(get_request(&setup.url("/ok"))).await;
        ok.unwrap().into_body().collect().await.unwrap();
        assert!(client.oneshot(get_request(&elsewhere)).await.is_err());
    });
    let admitted = &setup.client_events("127.0.0.1", 1)[0];
    assert_eq!(status_of(admitted), "200");
    let other = &setup.client_events(OTHER_PEER, 1)[0];
    assert_eq!(status_of(other), "connect_error");
    setup.metrics_when("the capped series", |text| {
        sample(
            text,
            "profilis_http_client_requests_total",
            &[("peer", OTHER_PEER), ("status", "connect_error")],
        ) == Some(1.0)
            && !text.contains("peer=\"127.0.0.2\"")
    });
}

/// Review finding: reqwest's error message quotes the request's URL, query string included,
/// and a `Request` built by hand keeps its userinfo; events, JSONL and the dashboard's
/// `/errors.json` must not carry either (nor a fragment).
#[test]
fn a_failed_requests_message_keeps_no_query_fragment_or_userinfo() {
    let (setup, _serial) = setup();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ProfilisMiddleware::new(
            ClientConfig::new().peer("reqwest-secret").unwrap().build(),
        ))
        .build();
    let port = closed_port();
    let with_query = format!("http://127.0.0.1:{port}/charge?api_key=SECRET123#FRAGMENT9");
    let with_userinfo = format!("http://admin:hunter2@127.0.0.1:{port}/login?token=SECRET456");
    setup.runtime.block_on(async {
        let error = client.get(&with_query).send().await.unwrap_err();
        // The caller's own error is left as it is.
        assert!(error.to_string().contains("SECRET123"), "{error}");
        // Built by hand, the request keeps the URL's userinfo (reqwest's builder strips it).
        let request = reqwest::Request::new(
            reqwest::Method::GET,
            reqwest::Url::parse(&with_userinfo).unwrap(),
        );
        let error = client.execute(request).await.unwrap_err();
        assert!(error.to_string().contains("hunter2"), "{error}");
        // A tower client whose stack quotes the URL in its error (hyper-util's own does not).
        let quoting = ServiceBuilder::new()
            .layer(ClientLayer::new(
                ClientConfig::new().peer("tower-secret").unwrap().build(),
            ))
            .map_err({
                let url = with_userinfo.clone();
                move |e: hyper_util::client::legacy::Error| format!("GET {url} failed: {e}")
            })
            .service(hyper_client());
        let error = quoting.oneshot(get_request(&with_query)).await.unwrap_err();
        assert!(error.to_string().contains("SECRET456"), "{error}");
    });
    let tower = &setup.client_events("tower-secret", 1)[0];
    let message = tower.failure.as_deref().unwrap().exception_value.clone();
    assert_eq!(
        message.as_deref(),
        Some(&*format!(
            "GET http://127.0.0.1:{port}/login failed: client error (Connect)"
        )),
    );
    let events = setup.client_events("reqwest-secret", 2);
    let secrets = [
        "SECRET123",
        "FRAGMENT9",
        "SECRET456",
        "hunter2",
        "admin",
        "api_key",
        "token",
    ];
    for event in &events {
        assert_eq!(status_of(event), "connect_error");
        let message = event
            .failure
            .as_deref()
            .and_then(|f| f.exception_value.clone())
            .expect("the client's error message");
        for secret in secrets {
            assert!(!message.contains(secret), "{secret} in {message:?}");
        }
        // What is left names the request: scheme, host, port and path.
        assert!(
            message.contains(&format!("(http://127.0.0.1:{port}/charge)"))
                || message.contains(&format!("(http://127.0.0.1:{port}/login)")),
            "{message}"
        );
    }
    let errors = profilis_test_support::get(setup.metrics, "/errors.json", &[]).text();
    assert!(errors.contains("/charge"), "{errors}");
    for secret in secrets {
        assert!(!errors.contains(secret), "{secret} in {errors}");
    }
}

/// A hostile upstream on loopback: answers every request with the status its path ends with
/// (`/s/777`), whatever it is, and closes the connection.
fn status_echoing_upstream() -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split_whitespace().nth(1).unwrap_or("/s/200");
            let code = path.rsplit('/').next().unwrap_or("200");
            let answer = format!(
                "HTTP/1.1 {code} Whatever\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    addr
}

/// Review finding: an upstream answering invented statuses (555, 600, 777, 999) made a
/// series per status per peer. Statuses without a standard reason are labelled by class.
#[test]
fn statuses_without_a_standard_reason_are_labelled_by_class() {
    let (setup, _serial) = setup();
    let upstream = status_echoing_upstream();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ProfilisMiddleware::new(
            ClientConfig::new()
                .peer("hostile-statuses")
                .unwrap()
                .build(),
        ))
        .build();
    let codes = [200u16, 418, 555, 599, 600, 777, 999];
    setup.runtime.block_on(async {
        for code in codes {
            let response = client
                .get(format!("http://{upstream}/s/{code}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), code);
            response.bytes().await.unwrap();
        }
    });
    let events = setup.client_events("hostile-statuses", codes.len());
    // Events keep the status the upstream gave; the label is bounded.
    let got: Vec<(Option<u16>, String, Option<&str>)> = events
        .iter()
        .map(|e| {
            let label = e.site.label_value("status");
            (detail(e).status(), status_of(e), label)
        })
        .collect();
    let want = [
        (200, "200"),
        (418, "418"),
        (555, "5xx"),
        (599, "5xx"),
        (600, "6xx"),
        (777, "7xx"),
        (999, "9xx"),
    ];
    let want: Vec<(Option<u16>, String, Option<&str>)> = want
        .iter()
        .map(|&(code, label)| (Some(code), label.to_owned(), Some(label)))
        .collect();
    assert_eq!(got, want);
    let text = setup.metrics_when("the classes' series", |text| {
        sample(
            text,
            "profilis_http_client_requests_total",
            &[("peer", "hostile-statuses"), ("status", "5xx")],
        ) == Some(2.0)
    });
    for invented in ["555", "599", "600", "777", "999"] {
        assert!(!text.contains(&format!("status=\"{invented}\"")), "{text}");
    }
}

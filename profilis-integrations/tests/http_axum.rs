//! The tower layer in an axum 0.8 app, end to end over real loopback HTTP: requests land on
//! `/metrics` with exact counts per route template and status; unknown paths share one series;
//! exclusions, per-route sampling and always-sampled errors; panics as 500; streamed bodies
//! timed to their end; nested routers; trace context from `traceparent`; `metrics_router`.
//!
//! One exporter per process, so the tests take turns (`SERIAL`) and each uses its own routes.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use profilis::http::axum::metrics_router;
use profilis::http::tower::ProfilisLayer;
use profilis::http::{HttpConfig, HttpDetail, UNMATCHED_ROUTE};
use profilis::{profiled, Batch, Event, Exporter, Outcome, Sink, SinkError};
use profilis_test_support::sample;
use tower_http::catch_panic::CatchPanicLayer;

/// The tests share one collector: one runs at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Setup {
    runtime: tokio::runtime::Runtime,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// The built-in listener.
    metrics: SocketAddr,
    /// HTTP events (but those of unmatched routes) and FN events, as a sink got them.
    events: Arc<Mutex<Vec<Event>>>,
}

/// Keeps the events the tests look at (not the thousands of unmatched requests).
struct Capture(Arc<Mutex<Vec<Event>>>);

impl Sink for Capture {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let keep = batch.events.iter().filter(|e| {
            if e.kind() == &profilis::HTTP {
                http_detail(e).is_some_and(|http| http.route != UNMATCHED_ROUTE)
            } else {
                e.kind() == &profilis::FUNCTION
            }
        });
        self.0.lock().unwrap().extend(keep.cloned());
        Ok(())
    }
}

fn setup() -> (&'static Setup, MutexGuard<'static, ()>) {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let setup = SETUP.get_or_init(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let guard = Exporter::new()
            .service("axum-test")
            .listen("127.0.0.1:0")
            .unwrap()
            .flush_interval(Duration::from_millis(10))
            .sink(Capture(Arc::clone(&events)))
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
        let client = Client::builder(TokioExecutor::new()).build_http();
        Setup {
            runtime,
            client,
            metrics,
            events,
        }
    });
    (setup, serial)
}

impl Setup {
    /// Serves `app` on a new loopback port.
    fn serve(&self, app: Router) -> SocketAddr {
        self.runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            addr
        })
    }

    fn get(&self, addr: SocketAddr, path: &str) -> (StatusCode, Bytes) {
        let (status, _, body) =
            self.runtime
                .block_on(request(&self.client, Method::GET, addr, path, &[]));
        (status, body)
    }

    fn metrics_text(&self) -> String {
        let (status, body) = self.get(self.metrics, "/metrics");
        assert_eq!(status, StatusCode::OK);
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// The metrics text once `done` holds for it (the collector flushes every 10 ms).
    fn metrics_when(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.metrics_text();
            if done(&text) {
                // Anything still on its way would show now: the checks that follow are exact.
                std::thread::sleep(Duration::from_millis(50));
                return self.metrics_text();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first captured event `pick` accepts, waiting for it.
    fn event(&self, what: &str, pick: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| pick(e)) {
                return e.clone();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn request(
    client: &Client<HttpConnector, Empty<Bytes>>,
    method: Method,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        client.request(builder.body(Empty::new()).unwrap()),
    )
    .await
    .expect("no hang")
    .unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"));
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

fn requests(text: &str, route: &str, status: &str) -> Option<f64> {
    sample(
        text,
        "profilis_http_requests_total",
        &[("route", route), ("status", status)],
    )
}

fn duration(text: &str, part: &str, route: &str, status: &str) -> Option<f64> {
    sample(
        text,
        &format!("profilis_http_request_duration_seconds_{part}"),
        &[("route", route), ("status", status)],
    )
}

fn http_series(text: &str) -> HashSet<String> {
    text.lines()
        .filter(|l| l.starts_with("profilis_http_requests_total{"))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

fn http_detail(e: &Event) -> Option<&HttpDetail> {
    e.detail::<HttpDetail>()
}

fn is_http(e: &Event, route: &str) -> bool {
    http_detail(e).is_some_and(|h| h.route == route)
}

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}")
}

async fn fail() -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn ok() -> &'static str {
    "ok"
}

#[test]
fn requests_are_counted_exactly_per_route_and_status() {
    let (t, _serial) = setup();
    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/fail", get(fail))
        .layer(ProfilisLayer::new(HttpConfig::new().build()));
    let addr = t.serve(app);
    for id in 1..=7 {
        let (status, body) = t.get(addr, &format!("/users/{id}"));
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, format!("user {id}").as_bytes())
        );
    }
    for _ in 0..3 {
        assert_eq!(t.get(addr, "/fail").0, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let (status, headers, _) =
        t.runtime
            .block_on(request(&t.client, Method::HEAD, addr, "/users/8", &[]));
    assert_eq!(status, StatusCode::OK, "{headers:?}");

    let text = t.metrics_when("7 + 1 requests to /users/{id}", |text| {
        requests(text, "/users/{id}", "200") == Some(8.0)
            && requests(text, "/fail", "500") == Some(3.0)
    });
    assert_eq!(requests(&text, "/users/{id}", "200"), Some(8.0));
    assert_eq!(duration(&text, "count", "/users/{id}", "200"), Some(8.0));
    assert_eq!(requests(&text, "/fail", "500"), Some(3.0));
    assert_eq!(duration(&text, "count", "/fail", "500"), Some(3.0));
    assert!(
        !text.contains("route=\"/users/1\""),
        "raw paths never become labels"
    );
    // The contract's labels, and no `method` label unless asked for.
    let line = text
        .lines()
        .find(|l| l.starts_with("profilis_http_requests_total{") && l.contains("/users/{id}"))
        .unwrap();
    for label in [
        "service=\"axum-test\"",
        "instance=",
        "worker=",
        "status=\"200\"",
    ] {
        assert!(line.contains(label), "{line}");
    }
    assert!(!line.contains("method="), "{line}");
    // HEAD sends no body: recorded as complete, not as a cancelled request.
    let head = t.event("the HEAD request", |e| {
        http_detail(e).is_some_and(|h| h.route == "/users/{id}" && &*h.method == "HEAD")
    });
    assert_eq!(
        (head.error, head.outcome),
        (false, Outcome::Returned),
        "{head:?}"
    );
}

#[test]
fn unknown_paths_share_one_series() {
    let (t, _serial) = setup();
    let app = Router::new()
        .route("/known", get(ok))
        .layer(ProfilisLayer::new(HttpConfig::new().build()));
    let addr = t.serve(app);
    let before = t.metrics_text();
    let unmatched_before = requests(&before, UNMATCHED_ROUTE, "404").unwrap_or(0.0);

    // 10,000 random paths over a few keep-alive connections.
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 1_250;
    let started = Instant::now();
    t.runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let client = t.client.clone();
                tokio::spawn(async move {
                    let mut state = 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(task + 1);
                    for _ in 0..PER_TASK {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let path = format!("/nope/{state:016x}");
                        let (status, _, _) = request(&client, Method::GET, addr, &path, &[]).await;
                        assert_eq!(status, StatusCode::NOT_FOUND);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    eprintln!("10,000 unknown paths in {:?}", started.elapsed());

    let want = unmatched_before + (TASKS * PER_TASK) as f64;
    let after = t.metrics_when("10,000 unmatched requests", |text| {
        requests(text, UNMATCHED_ROUTE, "404") == Some(want)
    });
    assert_eq!(requests(&after, UNMATCHED_ROUTE, "404"), Some(want));
    let new: Vec<_> = http_series(&after)
        .difference(&http_series(&before))
        .cloned()
        .collect();
    assert!(new.len() <= 1, "new series: {new:?}");
    assert!(new.iter().all(|s| s.contains(UNMATCHED_ROUTE)), "{new:?}");
    assert!(!after.contains("/nope/"));
}

#[test]
fn excluded_paths_leave_no_series() {
    let (t, _serial) = setup();
    let rules = HttpConfig::new()
        .exclude_routes(&["/health", "re:^/internal/[0-9]+$"])
        .unwrap()
        .build();
    let app = Router::new()
        .route("/healthz", get(ok))
        .route("/internal/{n}", get(ok))
        .route("/kept", get(ok))
        .layer(ProfilisLayer::new(rules));
    let addr = t.serve(app);
    for path in [
        "/healthz",
        "/internal/1",
        "/internal/2",
        "/kept",
        "/healthz",
    ] {
        assert_eq!(t.get(addr, path).0, StatusCode::OK, "{path}");
    }
    // Not matched by the regex: profiled.
    assert_eq!(t.get(addr, "/internal/x").0, StatusCode::OK);
    let text = t.metrics_when("/kept", |text| {
        requests(text, "/kept", "200") == Some(1.0)
            && requests(text, "/internal/{n}", "200") == Some(1.0)
    });
    assert_eq!(requests(&text, "/kept", "200"), Some(1.0));
    assert_eq!(requests(&text, "/internal/{n}", "200"), Some(1.0));
    assert!(!text.contains("route=\"/healthz\""), "{text}");
}

/// Restores the global sample rate, even if the test fails.
struct GlobalRate;

impl Drop for GlobalRate {
    fn drop(&mut self) {
        profilis::set_global_rate(1.0).unwrap();
    }
}

#[test]
fn per_route_rates_and_always_sampled_errors() {
    let (t, _serial) = setup();
    let rules = HttpConfig::new()
        .route_sample_rate("/unsampled", 0.0)
        .unwrap()
        .build();
    let app = Router::new()
        .route("/unsampled", get(ok))
        .route("/sampled", get(ok))
        .layer(ProfilisLayer::new(rules));
    let addr = t.serve(app);
    for _ in 0..5 {
        assert_eq!(t.get(addr, "/unsampled").0, StatusCode::OK);
        assert_eq!(t.get(addr, "/sampled").0, StatusCode::OK);
    }

    let _restore = GlobalRate;
    profilis::set_global_rate(0.0).unwrap();
    let app = Router::new()
        .route("/rate0/ok", get(ok))
        .route("/rate0/fail", get(fail))
        .layer(ProfilisLayer::new(HttpConfig::new().build()));
    let addr0 = t.serve(app);
    for _ in 0..4 {
        assert_eq!(t.get(addr0, "/rate0/ok").0, StatusCode::OK);
        assert_eq!(
            t.get(addr0, "/rate0/fail").0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    let text = t.metrics_when("sampled and unsampled requests", |text| {
        requests(text, "/unsampled", "200") == Some(5.0)
            && requests(text, "/sampled", "200") == Some(5.0)
            && requests(text, "/rate0/ok", "200") == Some(4.0)
            && requests(text, "/rate0/fail", "500") == Some(4.0)
    });
    // Counted exactly, timed by their rate.
    assert_eq!(requests(&text, "/unsampled", "200"), Some(5.0));
    assert_eq!(
        duration(&text, "count", "/unsampled", "200").unwrap_or(0.0),
        0.0
    );
    assert_eq!(duration(&text, "count", "/sampled", "200"), Some(5.0));
    // Global rate 0: successes are counted but not timed; errors are always timed.
    assert_eq!(requests(&text, "/rate0/ok", "200"), Some(4.0));
    assert_eq!(
        duration(&text, "count", "/rate0/ok", "200").unwrap_or(0.0),
        0.0
    );
    assert_eq!(requests(&text, "/rate0/fail", "500"), Some(4.0));
    assert_eq!(duration(&text, "count", "/rate0/fail", "500"), Some(4.0));
}

async fn panics() -> &'static str {
    panic!("handler panicked on purpose")
}

#[test]
fn a_panicking_handler_counts_as_500() {
    let (t, _serial) = setup();
    let app = Router::new()
        .route("/panic", get(panics))
        .route("/calm", get(ok))
        .layer(ProfilisLayer::new(HttpConfig::new().build()))
        // The framework's own panic handling, outside ours: it still sees the panic.
        .layer(CatchPanicLayer::new());
    let addr = t.serve(app);
    assert_eq!(t.get(addr, "/panic").0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        t.get(addr, "/calm").0,
        StatusCode::OK,
        "the server lives on"
    );
    let text = t.metrics_when("the panic", |text| {
        requests(text, "/panic", "500") == Some(1.0)
    });
    assert_eq!(requests(&text, "/panic", "500"), Some(1.0));
    assert_eq!(duration(&text, "count", "/panic", "500"), Some(1.0));
    let event = t.event("the panic's event", |e| is_http(e, "/panic"));
    assert_eq!(http_detail(&event).unwrap().status, 500);
    assert_eq!((event.error, event.outcome), (true, Outcome::Panicked));
}

/// `chunks` chunks, 100 ms apart, the first one at once.
fn slow_stream(chunks: u32) -> Body {
    let stream = futures::stream::unfold(0, move |i| async move {
        if i == chunks {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("chunk {i}\n"))),
            i + 1,
        ))
    });
    Body::from_stream(stream)
}

#[test]
fn streamed_bodies_are_timed_until_sent_and_failures_are_marked() {
    let (t, _serial) = setup();
    let app = Router::new()
        // The handler returns at once; the body takes 300 ms.
        .route("/stream", get(|| async { slow_stream(4) }))
        .route(
            "/broken",
            get(|| async {
                let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(Bytes::from_static(b"first\n")),
                    Err(std::io::Error::other("the body failed")),
                ];
                Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route("/endless", get(|| async { slow_stream(100) }))
        .layer(ProfilisLayer::new(HttpConfig::new().build()));
    let addr = t.serve(app);

    let started = Instant::now();
    let (status, body) = t.get(addr, "/stream");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let text = t.metrics_when("the stream", |text| {
        duration(text, "count", "/stream", "200") == Some(1.0)
    });
    let sum = duration(&text, "sum", "/stream", "200").unwrap();
    assert!(sum >= 0.3, "recorded {sum} s for a 300 ms body");
    let event = t.event("the stream's event", |e| is_http(e, "/stream"));
    assert!(event.dur_ns >= 300_000_000, "{event:?}");
    assert_eq!((event.error, event.outcome), (false, Outcome::Returned));

    // A body that fails: the client sees a broken response; recorded once, as an error.
    let failed = t.runtime.block_on(async {
        let uri = format!("http://{addr}/broken").parse().unwrap();
        // hyper may read the failing body before it has written the head.
        match t.client.get(uri).await {
            Ok(response) => response.into_body().collect().await.is_err(),
            Err(_) => true,
        }
    });
    assert!(failed, "the client sees the body fail");
    let event = t.event("the failed body's event", |e| is_http(e, "/broken"));
    assert_eq!(http_detail(&event).unwrap().status, 200);
    assert!(event.error, "{event:?}");

    // The client goes away after the first chunk: recorded once, as cancelled.
    t.runtime.block_on(async {
        let uri = format!("http://{addr}/endless").parse().unwrap();
        let response = t.client.get(uri).await.unwrap();
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "chunk 0\n");
        drop(body);
    });
    let event = t.event("the cancelled request's event", |e| is_http(e, "/endless"));
    assert_eq!((event.error, event.outcome), (true, Outcome::Cancelled));
    assert!(event.dur_ns < 10_000_000_000, "not the whole 10 s body");
    let text = t.metrics_when("one request each", |text| {
        requests(text, "/endless", "200") == Some(1.0)
            && requests(text, "/broken", "200") == Some(1.0)
    });
    assert_eq!(requests(&text, "/endless", "200"), Some(1.0));
    assert_eq!(requests(&text, "/broken", "200"), Some(1.0));
}

#[test]
fn nested_routers_give_the_full_template() {
    let (t, _serial) = setup();
    let layer = ProfilisLayer::new(HttpConfig::new().build());
    let v2 = Router::new().route("/items/{item}", get(ok));
    let api = Router::new()
        .route("/users/{id}", get(user))
        .nest("/v2", v2);
    // Layered inside, then nested: the template still has the prefix.
    let admin = Router::new()
        .route("/stats/{day}", get(ok))
        .layer(layer.clone());
    let app = Router::new()
        .nest("/api", api)
        .layer(layer)
        .nest("/admin", admin);
    let addr = t.serve(app);
    for path in [
        "/api/users/1",
        "/api/users/2",
        "/api/v2/items/x",
        "/admin/stats/mon",
    ] {
        assert_eq!(t.get(addr, path).0, StatusCode::OK, "{path}");
    }
    let text = t.metrics_when("nested routes", |text| {
        requests(text, "/api/users/{id}", "200") == Some(2.0)
            && requests(text, "/api/v2/items/{item}", "200") == Some(1.0)
            && requests(text, "/admin/stats/{day}", "200") == Some(1.0)
    });
    assert_eq!(requests(&text, "/api/users/{id}", "200"), Some(2.0));
    assert_eq!(requests(&text, "/api/v2/items/{item}", "200"), Some(1.0));
    assert_eq!(requests(&text, "/admin/stats/{day}", "200"), Some(1.0));
    assert!(!text.contains("route=\"/users/{id}\""));
    assert!(!text.contains("route=\"/stats/{day}\""));
}

/// Review finding (documented, not changed): axum 0.8 gives the requests of a service nested
/// with `nest_service` no `MatchedPath` (and sets its `NestedPath` inside the route, after a
/// `Router::layer`), so they are `<unmatched>`; the docs' way to label them, a layer of their
/// own with a route function, gives them their template.
#[test]
fn nested_services_are_unmatched_unless_given_a_route_function() {
    let (t, _serial) = setup();
    let rules = HttpConfig::new().build();
    let files = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(axum::response::Response::new(Body::from("file")))
    });
    let labelled =
        ProfilisLayer::new(rules.clone()).with_route_fn(|_: &Request<Body>| Some("/files/{*path}"));
    let app: Router = Router::new()
        .route("/nest-home", get(ok))
        .nest_service("/blobs", files)
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(ProfilisLayer::new(rules))
        // After the layer, so that it is not recorded twice.
        .nest_service("/files", tower::Layer::layer(&labelled, files));
    let addr = t.serve(app);
    let before = requests(&t.metrics_text(), UNMATCHED_ROUTE, "200").unwrap_or(0.0);
    for path in ["/blobs/a/b", "/files/a/b", "/files/c", "/nest-home"] {
        assert_eq!(t.get(addr, path).0, StatusCode::OK, "{path}");
    }
    let text = t.metrics_when("the nested services' requests", |text| {
        requests(text, "/files/{*path}", "200") == Some(2.0)
            && requests(text, UNMATCHED_ROUTE, "200") == Some(before + 1.0)
            && requests(text, "/nest-home", "200") == Some(1.0)
    });
    assert!(!text.contains("/blobs"), "{text}");
}

/// The docs say (review finding: the README stated one rule for all adapters) that the tower
/// layer records a `101 Switching Protocols` response when its head is answered: the
/// upgraded connection is not part of the request.
#[test]
fn a_101_response_is_recorded_at_its_head() {
    use std::io::{Read, Write};
    let (t, _serial) = setup();
    let app: Router = Router::new()
        .route(
            "/upgrade-101",
            get(|| async {
                axum::response::Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("upgrade", "websocket")
                    .header("connection", "upgrade")
                    .body(Body::empty())
                    .unwrap()
            }),
        )
        .layer(ProfilisLayer::new(HttpConfig::new().build()));
    let addr = t.serve(app);
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /upgrade-101 HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    // Recorded while the upgraded connection is still open.
    let event = t.event("the upgrade's request", |e| is_http(e, "/upgrade-101"));
    assert_eq!(
        (http_detail(&event).unwrap().status, event.error),
        (101, false)
    );
    drop(stream);
}

#[profiled(name = "axum_test_load_order")]
async fn load_order(id: u64) -> Result<u64, String> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    price_order(id)
}

#[profiled(name = "axum_test_price_order")]
fn price_order(id: u64) -> Result<u64, String> {
    Ok(id * 250)
}

#[test]
fn profiled_calls_in_a_handler_are_children_of_the_request() {
    let (t, _serial) = setup();
    let app = Router::new()
        .route(
            "/orders/{id}",
            post(|Path(id): Path<u64>| async move { load_order(id).await.unwrap().to_string() }),
        )
        .layer(ProfilisLayer::new(
            HttpConfig::new().method_label(true).build(),
        ));
    let addr = t.serve(app);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{parent}-01");
    let (status, _, body) = t.runtime.block_on(request(
        &t.client,
        Method::POST,
        addr,
        "/orders/3",
        &[("traceparent", &traceparent)],
    ));
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"750"[..]));

    let http = t.event("the request's event", |e| is_http(e, "/orders/{id}"));
    assert_eq!(http.kind(), &profilis::HTTP);
    assert_eq!(http.trace_id.to_hex(), trace);
    assert_eq!(
        http.parent_span_id.map(|s| s.to_hex()).as_deref(),
        Some(parent)
    );
    assert_eq!(&*http_detail(&http).unwrap().method, "POST");
    let load = t.event("load_order's event", |e| e.name() == "axum_test_load_order");
    assert_eq!(load.trace_id.to_hex(), trace);
    assert_eq!(load.parent_span_id, Some(http.span_id));
    let price = t.event("price_order's event", |e| {
        e.name() == "axum_test_price_order"
    });
    assert_eq!(price.trace_id.to_hex(), trace);
    assert_eq!(price.parent_span_id, Some(load.span_id));

    // The opt-in method label.
    let text = t.metrics_when("the POST", |text| {
        sample(
            text,
            "profilis_http_requests_total",
            &[("route", "/orders/{id}"), ("method", "POST")],
        ) == Some(1.0)
    });
    assert!(text.contains("method=\"POST\""));
}

#[test]
fn invented_methods_share_one_method_label() {
    let (t, _serial) = setup();
    let app: Router =
        Router::new()
            .route("/any", axum::routing::any(ok))
            .layer(ProfilisLayer::new(
                HttpConfig::new().method_label(true).build(),
            ));
    let addr = t.serve(app);
    for method in ["FOO1", "FOO2", "PROPFIND", "GET"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, _, _) = t
            .runtime
            .block_on(request(&t.client, method, addr, "/any", &[]));
        assert_eq!(status, StatusCode::OK);
    }
    let count = |text: &str, method| {
        sample(
            text,
            "profilis_http_requests_total",
            &[("route", "/any"), ("method", method)],
        )
    };
    let text = t.metrics_when("the four requests", |text| {
        count(text, "OTHER") == Some(3.0) && count(text, "GET") == Some(1.0)
    });
    for invented in ["FOO1", "FOO2", "PROPFIND"] {
        assert!(!text.contains(&format!("method=\"{invented}\"")), "{text}");
    }
}

/// Review finding: a request's method went whole into its event (a 100,000-byte method into
/// JSONL and the console). Standard methods are kept as they are, others cut to
/// `http::MAX_METHOD_LEN` bytes.
#[test]
fn a_huge_invented_method_is_cut_in_events() {
    let (t, _serial) = setup();
    let app: Router = Router::new()
        .route("/any-method", axum::routing::any(ok))
        .layer(ProfilisLayer::new(HttpConfig::new().build()));
    let addr = t.serve(app);
    let huge = "M".repeat(100_000);
    for method in [huge.as_str(), "PROPFIND", "DELETE"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, _, _) =
            t.runtime
                .block_on(request(&t.client, method, addr, "/any-method", &[]));
        assert_eq!(status, StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    // Served by two worker threads: compared in order of their text.
    let methods: Vec<String> = loop {
        let mut methods: Vec<String> = t
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| is_http(e, "/any-method"))
            .map(|e| http_detail(e).unwrap().method.to_string())
            .collect();
        if methods.len() >= 3 {
            methods.sort_unstable();
            break methods;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {} events",
            methods.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        methods,
        [
            "DELETE".into(),
            "M".repeat(profilis::http::MAX_METHOD_LEN),
            "PROPFIND".into()
        ]
    );
}

#[test]
fn metrics_router_serves_the_page_like_the_listener() {
    let (t, _serial) = setup();
    let app: Router = Router::new()
        .route("/hello", get(ok))
        .layer(ProfilisLayer::new(HttpConfig::new().build()))
        .merge(metrics_router());
    let addr = t.serve(app);
    assert_eq!(t.get(addr, "/hello").0, StatusCode::OK);
    t.metrics_when("/hello", |text| {
        requests(text, "/hello", "200") == Some(1.0)
    });

    let fetch = |addr, headers: &[(&str, &str)]| {
        t.runtime
            .block_on(request(&t.client, Method::GET, addr, "/metrics", headers))
    };
    let (status, headers, body) = fetch(addr, &[]);
    let (_, listener_headers, _) = fetch(t.metrics, &[]);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        profilis::exposition::METRICS_CONTENT_TYPE
    );
    assert_eq!(headers["content-type"], listener_headers["content-type"]);
    assert_eq!(headers["vary"], "Accept, Accept-Encoding");
    assert!(headers.get("content-encoding").is_none());
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(requests(&text, "/hello", "200"), Some(1.0));

    let (status, headers, body) = fetch(addr, &[("accept-encoding", "gzip")]);
    let (_, listener_headers, _) = fetch(t.metrics, &[("accept-encoding", "gzip")]);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(
        headers["content-encoding"],
        listener_headers["content-encoding"]
    );
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
    assert_eq!(requests(&text, "/hello", "200"), Some(1.0));
    // Merged after the layer: scrapes are not profiled.
    assert!(requests(&text, "/metrics", "200").is_none());

    // OpenMetrics when the scraper prefers it, as Prometheus does, like the listener.
    let accept = [(
        "accept",
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    )];
    let (status, headers, body) = fetch(addr, &accept);
    let (_, listener_headers, _) = fetch(t.metrics, &accept);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        profilis::exposition::OPENMETRICS_CONTENT_TYPE
    );
    assert_eq!(headers["content-type"], listener_headers["content-type"]);
    let text = String::from_utf8(body.to_vec()).unwrap();
    let page =
        profilis_test_support::parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(page
        .named("profilis_http_requests_total")
        .any(|s| s.label("route") == Some("/hello")));
}

#[test]
fn plain_tower_services_take_templates_from_a_route_function() {
    use tower::{Layer, ServiceExt};

    let (t, _serial) = setup();
    let layer =
        ProfilisLayer::new(HttpConfig::new().build()).with_route_fn(|request: &Request<Body>| {
            request
                .uri()
                .path()
                .starts_with("/plain/")
                .then_some("/plain/{name}")
        });
    let service = layer.layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(axum::http::Response::new(Body::from("plain")))
    }));
    t.runtime.block_on(async {
        for path in ["/plain/a", "/plain/b", "/elsewhere"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = service.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.into_body().collect().await.unwrap().to_bytes(),
                "plain"
            );
        }
    });
    let text = t.metrics_when("/plain/{name}", |text| {
        requests(text, "/plain/{name}", "200") == Some(2.0)
    });
    assert_eq!(requests(&text, "/plain/{name}", "200"), Some(2.0));
}

/// A body that panics when polled.
struct PanickingBody;

impl http_body::Body for PanickingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        panic!("body panicked on purpose")
    }
}

/// A body whose `is_end_stream` panics: asked by the layer when the response is there.
struct EndPanickingBody;

impl http_body::Body for EndPanickingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        panic!("is_end_stream panicked on purpose")
    }
}

/// A body of one frame whose `is_end_stream` panics once that frame was polled.
#[derive(Default)]
struct LatePanickingBody {
    sent: bool,
}

impl http_body::Body for LatePanickingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.sent {
            return std::task::Poll::Ready(None);
        }
        self.sent = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from("one")))))
    }

    fn is_end_stream(&self) -> bool {
        assert!(
            !self.sent,
            "is_end_stream panicked on purpose after a frame"
        );
        false
    }
}

/// Sends one request of `path` to `service` and reads its response's body until it panics.
fn read_until_the_body_panics<S, B>(t: &Setup, service: S, path: &str)
where
    S: tower::Service<Request<Body>, Response = axum::http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Unpin,
{
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use tower::ServiceExt;

    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = t
        .runtime
        .block_on(service.oneshot(request))
        .expect("a response");
    let mut body = response.into_body();
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(body.frame())
    }));
    assert!(panicked.is_err(), "the panic goes on");
    drop(body);
}

#[test]
fn panics_in_call_and_in_the_body_are_recorded_once() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use tower::{Layer, Service, ServiceExt};

    let (t, _serial) = setup();
    let layer = ProfilisLayer::new(HttpConfig::new().build())
        .with_route_fn(|request: &Request<Body>| Some(request.uri().path().to_owned()));

    // The inner service panics in `call` itself, before there is a future.
    let mut service = layer.layer(tower::service_fn(
        |_: Request<Body>| -> std::future::Ready<Result<axum::http::Response<Body>, Infallible>> {
            panic!("call panicked on purpose")
        },
    ));
    let request = Request::get("/tower/panic-in-call")
        .body(Body::empty())
        .unwrap();
    let panicked = catch_unwind(AssertUnwindSafe(|| service.call(request)));
    assert!(panicked.is_err(), "the panic goes on");

    // The body panics while the server sends it: the response (200) was there, the body failed.
    let service = layer.layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(axum::http::Response::new(PanickingBody))
    }));
    read_until_the_body_panics(t, service, "/tower/panic-in-body");

    // The body panics when asked whether it has ended, as the response comes back.
    let service = layer.layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(axum::http::Response::new(EndPanickingBody))
    }));
    let request = Request::get("/tower/panic-in-end-check")
        .body(Body::empty())
        .unwrap();
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        t.runtime.block_on(service.oneshot(request))
    }));
    assert!(panicked.is_err(), "the panic goes on");

    // The same, asked after the body's first frame.
    let service = layer.layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(axum::http::Response::new(LatePanickingBody::default()))
    }));
    read_until_the_body_panics(t, service, "/tower/panic-in-late-end-check");

    let event = t.event("the panic in call", |e| is_http(e, "/tower/panic-in-call"));
    assert_eq!(http_detail(&event).unwrap().status, 500);
    assert_eq!((event.error, event.outcome), (true, Outcome::Panicked));
    let event = t.event("the panic in the body", |e| {
        is_http(e, "/tower/panic-in-body")
    });
    assert_eq!(http_detail(&event).unwrap().status, 200);
    assert_eq!((event.error, event.outcome), (true, Outcome::Returned));
    let event = t.event("the panic in is_end_stream", |e| {
        is_http(e, "/tower/panic-in-end-check")
    });
    assert_eq!(http_detail(&event).unwrap().status, 200);
    assert_eq!((event.error, event.outcome), (true, Outcome::Returned));
    let event = t.event("the late panic in is_end_stream", |e| {
        is_http(e, "/tower/panic-in-late-end-check")
    });
    assert_eq!(http_detail(&event).unwrap().status, 200);
    assert_eq!((event.error, event.outcome), (true, Outcome::Returned));

    let text = t.metrics_when("the four panics", |text| {
        requests(text, "/tower/panic-in-call", "500") == Some(1.0)
            && requests(text, "/tower/panic-in-body", "200") == Some(1.0)
            && requests(text, "/tower/panic-in-end-check", "200") == Some(1.0)
    });
    assert_eq!(requests(&text, "/tower/panic-in-call", "500"), Some(1.0));
    assert_eq!(requests(&text, "/tower/panic-in-body", "200"), Some(1.0));
}

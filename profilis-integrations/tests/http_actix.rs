//! The actix-web middleware over real loopback HTTP: an actix `HttpServer` on 127.0.0.1:0, a
//! real client, and the exporter's `/metrics` page read back for exact counts per route and
//! status. One collector per process, so the tests take turns (`exclusive`).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use profilis::context::SpanId;
use profilis::exposition::{METRICS_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE};
use profilis::http::actix::{metrics_service, Profilis};
use profilis::http::{HttpConfig, HttpDetail, HttpRules};
use profilis::{profiled, Batch, Event, Exporter, Outcome, Sink, SinkError};
use profilis_test_support::{get, sample, wait_for};

const WAIT: Duration = Duration::from_secs(20);
const REQUESTS: &str = "profilis_http_requests_total";
const DURATION_COUNT: &str = "profilis_http_request_duration_seconds_count";
const DURATION_SUM: &str = "profilis_http_request_duration_seconds_sum";

/// Events of every batch, for checks on spans and on how requests ended.
static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());

struct Capture;

impl Sink for Capture {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        EVENTS.lock().unwrap().extend(batch.events.iter().cloned());
        Ok(())
    }

    fn wants_events(&self) -> bool {
        true
    }
}

/// Installs the exporter once (built-in listener on a free port, events captured) and holds
/// the lock that makes the tests take turns. Returns the listener's address.
fn exclusive() -> (SocketAddr, MutexGuard<'static, ()>) {
    static TURN: Mutex<()> = Mutex::new(());
    static LISTENER: OnceLock<SocketAddr> = OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let addr = *LISTENER.get_or_init(|| {
        let guard = Exporter::new()
            .service("shop")
            .listen("127.0.0.1:0")
            .unwrap()
            .flush_interval(Duration::from_millis(10))
            .sink(Capture)
            .install()
            .expect("exporter installs");
        let addr = guard.listen_addr().expect("listener runs");
        // Lives as long as the test binary.
        std::mem::forget(guard);
        addr
    });
    (addr, turn)
}

/// Runs an actix `HttpServer` (one worker) with the middleware and `routes`, on its own
/// thread and actix system, until the process ends.
fn serve(rules: HttpRules, routes: fn(&mut web::ServiceConfig)) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(Profilis::new(rules.clone()))
                    .configure(routes)
            })
            .workers(1)
            .disable_signals()
            .shutdown_timeout(0)
            .bind(("127.0.0.1", 0))
            .expect("binds");
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.expect("server runs");
        });
    });
    rx.recv_timeout(WAIT).expect("server starts")
}

fn metrics(listener: SocketAddr) -> String {
    get(listener, "/metrics", &[]).text()
}

/// Waits until `name{route, status}` is exactly `want` and returns the page; fails with the
/// last value seen otherwise.
fn wait_exact(listener: SocketAddr, name: &str, route: &str, status: &str, want: f64) -> String {
    let labels = [("route", route), ("status", status)];
    let mut last = None;
    wait_for(WAIT, || {
        let text = metrics(listener);
        last = sample(&text, name, &labels);
        (last == Some(want)).then_some(text)
    })
    .unwrap_or_else(|| panic!("{name}{{route={route:?},status={status:?}}}: {last:?}, want {want}"))
}

/// The HTTP event of `route` (waiting for it), with the events recorded so far.
fn http_event(route: &str) -> (Event, Vec<Event>) {
    wait_for(WAIT, || {
        let events = EVENTS.lock().unwrap().clone();
        let http = events
            .iter()
            .find(|e| e.detail::<HttpDetail>().is_some_and(|d| d.route == route))?
            .clone();
        Some((http, events))
    })
    .unwrap_or_else(|| panic!("no HTTP event for {route}"))
}

fn no_request_in_flight() {
    assert!(
        wait_for(WAIT, || (profilis::in_flight(&profilis::HTTP) == 0)
            .then_some(()))
        .is_some(),
        "requests still in flight: {}",
        profilis::in_flight(&profilis::HTTP)
    );
}

/// An HTTP/1.1 client that keeps its connection open between requests.
struct KeepAlive {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> KeepAlive {
        let writer = TcpStream::connect(addr).unwrap();
        writer.set_read_timeout(Some(WAIT)).unwrap();
        writer.set_nodelay(true).unwrap();
        KeepAlive {
            reader: BufReader::new(writer.try_clone().unwrap()),
            writer,
        }
    }

    /// `GET path`; the status (the body is read and dropped).
    fn get(&mut self, path: &str) -> u16 {
        write!(self.writer, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            assert!(!name.eq_ignore_ascii_case("transfer-encoding"), "{line}");
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        status
    }
}

#[profiled]
fn lookup(id: u64) -> u64 {
    id * 2
}

async fn user(id: web::Path<u64>) -> String {
    format!("user {}", lookup(*id))
}

async fn ok() -> &'static str {
    "ok"
}

#[test]
fn routes_are_templates_with_exact_counts_nested_scopes_included() {
    let (listener, _turn) = exclusive();
    let app = serve(HttpConfig::new().build(), |cfg| {
        cfg.route("/users/{id}", web::get().to(user)).service(
            web::scope("/api").service(web::scope("/v1").route("/items/{item}", web::get().to(ok))),
        );
    });

    for id in 1..=7 {
        let res = get(app, &format!("/users/{id}"), &[]);
        assert_eq!(res.status, 200);
        assert_eq!(res.text(), format!("user {}", id * 2));
    }
    for item in ["a", "b", "c"] {
        assert_eq!(get(app, &format!("/api/v1/items/{item}"), &[]).status, 200);
    }

    wait_exact(listener, REQUESTS, "/users/{id}", "200", 7.0);
    let text = wait_exact(listener, REQUESTS, "/api/v1/items/{item}", "200", 3.0);
    assert!(
        !text.contains("route=\"/users/1\"") && !text.contains("route=\"/items/{item}\""),
        "raw paths or partial patterns as labels:\n{text}"
    );
    assert!(text.contains("service=\"shop\""));
    no_request_in_flight();
}

#[test]
fn ten_thousand_unknown_paths_add_at_most_one_series() {
    let (listener, _turn) = exclusive();
    let app = serve(HttpConfig::new().build(), |cfg| {
        cfg.route("/known", web::get().to(ok))
            .service(web::scope("/api").route("/known", web::get().to(ok)));
    });
    // Something recorded by this app, so the page is up to date before counting series.
    assert_eq!(get(app, "/known", &[]).status, 200);
    let before = wait_exact(listener, REQUESTS, "/known", "200", 1.0);
    let unmatched = [("route", "<unmatched>"), ("status", "404")];
    let unmatched_before = sample(&before, REQUESTS, &unmatched).unwrap_or(0.0);
    let series = |text: &str| -> HashSet<String> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{REQUESTS}{{")))
            .filter_map(|l| Some(l.rsplit_once(' ')?.0.to_owned()))
            .collect()
    };

    const CLIENTS: u64 = 4;
    const EACH: u64 = 2_500;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = KeepAlive::connect(app);
                let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ (c + 1);
                for i in 0..EACH {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Half of them under a scope that exists, whose own routes do not match.
                    let path = if i % 2 == 0 {
                        format!("/nope/{x:016x}")
                    } else {
                        format!("/api/{x:016x}")
                    };
                    assert_eq!(client.get(&path), 404, "{path}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }

    let want = unmatched_before + (CLIENTS * EACH) as f64;
    let after = wait_exact(listener, REQUESTS, "<unmatched>", "404", want);
    let before = series(&before);
    let new: Vec<_> = series(&after).difference(&before).cloned().collect();
    assert!(
        new.len() <= 1 && new.iter().all(|s| s.contains("route=\"<unmatched>\"")),
        "new series: {new:?}"
    );
    assert!(!after.contains("/nope/"));
    no_request_in_flight();
}

#[test]
fn excluded_prefixes_and_regexes_leave_no_series() {
    let (listener, _turn) = exclusive();
    let rules = HttpConfig::new()
        .exclude_routes(&["/health", "re:^/internal/[a-z]+$"])
        .unwrap()
        .build();
    let app = serve(rules, |cfg| {
        cfg.route("/healthz", web::get().to(ok))
            .route("/internal/{name}", web::get().to(ok))
            .route("/kept", web::get().to(ok));
    });
    for path in ["/healthz", "/internal/debug", "/healthz", "/internal/stats"] {
        assert_eq!(get(app, path, &[]).status, 200, "{path}");
    }
    // Not matched by the regex: profiled.
    assert_eq!(get(app, "/internal/v2", &[]).status, 200);
    assert_eq!(get(app, "/kept", &[]).status, 200);

    let text = wait_exact(listener, REQUESTS, "/kept", "200", 1.0);
    let text = if sample(&text, REQUESTS, &[("route", "/internal/{name}")]) == Some(1.0) {
        text
    } else {
        wait_exact(listener, REQUESTS, "/internal/{name}", "200", 1.0)
    };
    assert!(!text.contains("route=\"/healthz\""), "{text}");
    assert_eq!(
        sample(&text, REQUESTS, &[("route", "/internal/{name}")]),
        Some(1.0),
        "only /internal/v2 is profiled"
    );
}

async fn fail() -> HttpResponse {
    HttpResponse::InternalServerError().body("failed")
}

#[test]
fn per_route_rates_count_exactly_and_errors_are_always_timed() {
    let (listener, _turn) = exclusive();
    let rules = HttpConfig::new()
        .sample_rate(0.0)
        .unwrap()
        .route_sample_rate("/sampled/hot", 1.0)
        .unwrap()
        .build();
    let app = serve(rules, |cfg| {
        cfg.route("/sampled/cold", web::get().to(ok))
            .route("/sampled/hot", web::get().to(ok))
            .route("/sampled/fail", web::get().to(fail));
    });
    for _ in 0..5 {
        assert_eq!(get(app, "/sampled/cold", &[]).status, 200);
    }
    for _ in 0..4 {
        assert_eq!(get(app, "/sampled/hot", &[]).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(app, "/sampled/fail", &[]).status, 500);
    }

    wait_exact(listener, REQUESTS, "/sampled/cold", "200", 5.0);
    wait_exact(listener, REQUESTS, "/sampled/hot", "200", 4.0);
    wait_exact(listener, REQUESTS, "/sampled/fail", "500", 3.0);
    let text = wait_exact(listener, DURATION_COUNT, "/sampled/fail", "500", 3.0);
    let text = if sample(&text, DURATION_COUNT, &[("route", "/sampled/hot")]) == Some(4.0) {
        text
    } else {
        wait_exact(listener, DURATION_COUNT, "/sampled/hot", "200", 4.0)
    };
    let cold = sample(&text, DURATION_COUNT, &[("route", "/sampled/cold")]);
    assert!(
        cold.is_none() || cold == Some(0.0),
        "rate 0 times nothing: {cold:?}"
    );
}

async fn boom() -> &'static str {
    panic!("handler panics on purpose");
}

#[test]
fn a_panicking_handler_is_recorded_as_500_and_the_panic_goes_on() {
    let (listener, _turn) = exclusive();
    let rules = HttpConfig::new().sample_rate(0.0).unwrap().build();
    let app = serve(rules, |cfg| {
        cfg.route("/boom", web::get().to(boom))
            .route("/after", web::get().to(ok));
    });

    // actix-web has no panic handling of its own: the panic ends the connection's task, so
    // the client gets the connection closed without any response.
    let mut stream = TcpStream::connect(app).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(b"GET /boom HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert!(
        raw.is_empty(),
        "actix answered a panic with: {:?}",
        String::from_utf8_lossy(&raw)
    );
    // The worker carries on.
    assert_eq!(get(app, "/after", &[]).status, 200);

    wait_exact(listener, REQUESTS, "/boom", "500", 1.0);
    wait_exact(listener, DURATION_COUNT, "/boom", "500", 1.0);
    let (event, _) = http_event("/boom");
    assert_eq!(event.outcome, Outcome::Panicked);
    assert!(event.error);
    no_request_in_flight();
}

/// A body of `chunks` chunks, one every 100 ms; with `fail`, an error instead of the last one.
fn slow_body(
    chunks: u32,
    fail: bool,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(0, move |sent| async move {
        if sent == chunks {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        if fail && sent + 1 == chunks {
            return Some((Err(std::io::Error::other("body fails")), sent + 1));
        }
        Some((Ok(Bytes::from_static(b"chunk\n")), sent + 1))
    })
}

async fn stream() -> HttpResponse {
    HttpResponse::Ok().streaming(slow_body(3, false))
}

async fn broken() -> HttpResponse {
    HttpResponse::Ok().streaming(slow_body(2, true))
}

async fn endless() -> HttpResponse {
    HttpResponse::Ok().streaming(slow_body(u32::MAX, false))
}

#[test]
fn the_duration_runs_until_the_body_is_sent_and_every_end_is_recorded_once() {
    let (listener, _turn) = exclusive();
    let rules = HttpConfig::new().sample_rate(1.0).unwrap().build();
    let app = serve(rules, |cfg| {
        cfg.route("/stream", web::get().to(stream))
            .route("/broken", web::get().to(broken))
            .route("/endless", web::get().to(endless));
    });

    // The handler returns at once; the body takes three times 100 ms.
    let res = get(app, "/stream", &[]);
    assert_eq!(
        (res.status, res.text().as_str()),
        (200, "chunk\nchunk\nchunk\n")
    );
    let text = wait_exact(listener, DURATION_COUNT, "/stream", "200", 1.0);
    let sum = sample(&text, DURATION_SUM, &[("route", "/stream")]).unwrap();
    assert!(sum >= 0.3, "recorded {sum} s for a body sent over 300 ms");

    // A body that fails: the client sees the response cut short; recorded once, as an error.
    let mut raw = Vec::new();
    let mut conn = TcpStream::connect(app).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(b"GET /broken HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let _ = conn.read_to_end(&mut raw);
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
    wait_exact(listener, REQUESTS, "/broken", "200", 1.0);
    let (event, _) = http_event("/broken");
    assert!(event.error);
    assert_eq!(event.outcome, Outcome::Returned);

    // A client that goes away in the middle of the body.
    let mut conn = TcpStream::connect(app).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut first = [0; 64];
    let n = conn.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    drop(conn);
    wait_exact(listener, REQUESTS, "/endless", "200", 1.0);
    let (event, _) = http_event("/endless");
    assert_eq!(event.outcome, Outcome::Cancelled);
    assert!(event.error);

    // Each recorded exactly once.
    std::thread::sleep(Duration::from_millis(100));
    let text = metrics(listener);
    for route in ["/stream", "/broken", "/endless"] {
        assert_eq!(
            sample(&text, REQUESTS, &[("route", route)]),
            Some(1.0),
            "{route}"
        );
    }
    no_request_in_flight();
}

#[test]
fn traceparent_sets_the_trace_and_profiled_calls_become_children() {
    let (_listener, _turn) = exclusive();
    let app = serve(HttpConfig::new().sample_rate(1.0).unwrap().build(), |cfg| {
        cfg.route("/traced/{id}", web::get().to(user))
            .route("/untraced/{id}", web::get().to(user));
    });
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(
        get(app, "/traced/21", &[("traceparent", traceparent)]).status,
        200
    );

    let child_of = |http: &Event, events: &[Event]| -> Option<Event> {
        events
            .iter()
            .find(|e| {
                e.kind() == &profilis::FUNCTION
                    && e.name().ends_with("lookup")
                    && e.parent_span_id == Some(http.span_id)
            })
            .cloned()
    };
    let (http, events) = http_event("/traced/{id}");
    assert_eq!(http.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(http.parent_span_id, Some(SpanId(0x00f0_67aa_0ba9_02b7)));
    let child = child_of(&http, &events)
        .or_else(|| wait_for(WAIT, || child_of(&http, &EVENTS.lock().unwrap())))
        .expect("lookup ran as a child of the request");
    assert_eq!(child.trace_id, http.trace_id);

    // Without the header the request starts a trace of its own, with the same parentage.
    assert_eq!(get(app, "/untraced/4", &[]).status, 200);
    let (http, _) = http_event("/untraced/{id}");
    assert_ne!(http.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(http.parent_span_id, None);
    let child = wait_for(WAIT, || child_of(&http, &EVENTS.lock().unwrap()))
        .expect("lookup ran as a child of the request");
    assert_eq!(child.trace_id, http.trace_id);
}

#[test]
fn the_metrics_handler_answers_like_the_built_in_listener() {
    let (listener, _turn) = exclusive();
    let rules = HttpConfig::new()
        .exclude_routes(&["/metrics"])
        .unwrap()
        .build();
    let app = serve(rules, |cfg| {
        cfg.route("/page", web::get().to(ok))
            .service(metrics_service());
    });
    assert_eq!(get(app, "/page", &[]).status, 200);
    wait_exact(listener, REQUESTS, "/page", "200", 1.0);

    let plain = get(app, "/metrics", &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), Some(METRICS_CONTENT_TYPE));
    assert_eq!(plain.header("vary"), Some("Accept, Accept-Encoding"));
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(
        sample(&plain.text(), REQUESTS, &[("route", "/page")]),
        Some(1.0)
    );

    let gzipped = get(app, "/metrics", &[("Accept-Encoding", "br, gzip;q=0.8")]);
    assert_eq!(gzipped.status, 200);
    assert_eq!(gzipped.header("content-type"), Some(METRICS_CONTENT_TYPE));
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gzipped.header("vary"), Some("Accept, Accept-Encoding"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gzipped.body[..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    assert_eq!(sample(&text, REQUESTS, &[("route", "/page")]), Some(1.0));
    assert!(!text.contains("route=\"/metrics\""), "scrapes are excluded");

    // What the client does not accept, it does not get.
    let identity = get(app, "/metrics", &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(identity.header("content-encoding"), None);

    // OpenMetrics when the scraper prefers it, as Prometheus does.
    let open_metrics = get(
        app,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
    );
    assert_eq!(
        open_metrics.header("content-type"),
        Some(OPENMETRICS_CONTENT_TYPE)
    );
    let text = open_metrics.text();
    let page =
        profilis_test_support::parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        page.named(REQUESTS)
            .any(|s| s.label("route") == Some("/page")),
        "{text}"
    );
}

#[test]
fn errors_returned_by_inner_services_keep_their_route_and_status() {
    let (listener, _turn) = exclusive();
    let app = serve(HttpConfig::new().build(), |cfg| {
        cfg.service(
            web::scope("/secret")
                // A guard that answers with an `Err` rather than a response.
                .wrap_fn(|_req, _srv| {
                    std::future::ready(Err::<actix_web::dev::ServiceResponse, _>(
                        actix_web::error::ErrorUnauthorized("no token"),
                    ))
                })
                .route("/{name}", web::get().to(ok)),
        );
    });
    for _ in 0..2 {
        assert_eq!(get(app, "/secret/plans", &[]).status, 401);
    }
    wait_exact(listener, REQUESTS, "/secret/{name}", "401", 2.0);
    no_request_in_flight();
}

/// An error whose status code panics when asked.
#[derive(Debug)]
struct Touchy;

impl std::fmt::Display for Touchy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("touchy")
    }
}

impl actix_web::ResponseError for Touchy {
    fn status_code(&self) -> actix_web::http::StatusCode {
        panic!("status_code panics on purpose")
    }
}

#[test]
fn an_error_whose_status_code_panics_is_still_recorded() {
    let (listener, _turn) = exclusive();
    let app = serve(HttpConfig::new().build(), |cfg| {
        cfg.service(
            web::scope("/touchy")
                .wrap_fn(|_req, _srv| {
                    std::future::ready(Err::<actix_web::dev::ServiceResponse, _>(
                        actix_web::Error::from(Touchy),
                    ))
                })
                .route("/{name}", web::get().to(ok)),
        )
        .route("/after", web::get().to(ok));
    });
    // The panic ends the connection's task: no answer.
    let mut stream = TcpStream::connect(app).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(b"GET /touchy/a HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(get(app, "/after", &[]).status, 200);
    wait_exact(listener, REQUESTS, "/touchy/{name}", "500", 1.0);
    let (event, _) = http_event("/touchy/{name}");
    assert_eq!(event.outcome, Outcome::Panicked);
    no_request_in_flight();
}

async fn sleepy() -> &'static str {
    actix_web::rt::time::sleep(Duration::from_millis(1_000)).await;
    "late"
}

/// actix's HTTP/1 dispatcher does not watch the socket while a handler runs: a client gone
/// before the response leaves the handler to finish, and the request is recorded once, with
/// the response it got (what a future dropped early would record, 499 and `Cancelled`, is
/// left to servers that drop it).
#[test]
fn a_client_gone_before_the_response_is_recorded_once() {
    let (listener, _turn) = exclusive();
    let app = serve(HttpConfig::new().build(), |cfg| {
        cfg.route("/sleepy", web::get().to(sleepy));
    });
    let mut conn = TcpStream::connect(app).unwrap();
    conn.write_all(b"GET /sleepy HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(conn);

    let (event, _) = http_event("/sleepy");
    assert_eq!(event.detail::<HttpDetail>().map(|d| d.status), Some(200));
    assert_eq!(event.outcome, Outcome::Returned);
    std::thread::sleep(Duration::from_millis(100));
    wait_exact(listener, REQUESTS, "/sleepy", "200", 1.0);
    no_request_in_flight();
}

/// Review finding: the route label was read from actix's resource map before routing, by the
/// raw path and without guards: `/member%73/1`, served by `/members/{id}`, was
/// `<unmatched>`; `/stat%73` got past `exclude_routes(&["/stats"])`; and a guarded
/// `/goods/{id}` registered before `/goods/special` labelled `/goods/special` requests as
/// `/goods/{id}`. The label is now the pattern actix matched, and exclusions see it too.
#[test]
fn labels_and_exclusions_follow_the_resource_actix_routed_to() {
    let (listener, _turn) = exclusive();
    // `/hidden/{id}` is a template: no path starts with it, the route that served one does.
    let rules = HttpConfig::new()
        .exclude_routes(&["/stats", "/hidden/{id}"])
        .unwrap()
        .build();
    let app = serve(rules, |cfg| {
        cfg.route("/members/{id}", web::get().to(ok))
            .route("/hidden/{id}", web::get().to(ok))
            .route("/stats", web::get().to(ok))
            .service(
                web::resource("/goods/{id}")
                    .guard(actix_web::guard::Header("x-v", "2"))
                    .to(ok),
            )
            .service(web::resource("/goods/special").to(ok))
            .route("/kept-after", web::get().to(ok));
    });
    for (path, headers) in [
        ("/member%73/1", &[][..]),
        ("/members/%31", &[]),
        ("/stat%73", &[]),
        ("/stats", &[]),
        ("/hidden/7", &[]),
        ("/goods/special", &[]),
        ("/goods/special", &[("x-v", "2")]),
    ] {
        assert_eq!(get(app, path, headers).status, 200, "{path} {headers:?}");
    }
    // Recorded after the others: once it is on the page, so are they.
    assert_eq!(get(app, "/kept-after", &[]).status, 200);
    wait_exact(listener, REQUESTS, "/kept-after", "200", 1.0);
    let text = wait_exact(listener, REQUESTS, "/members/{id}", "200", 2.0);
    assert_eq!(
        sample(&text, REQUESTS, &[("route", "/goods/special")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, REQUESTS, &[("route", "/goods/{id}")]),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("route=\"/stats\""), "{text}");
    assert!(!text.contains("route=\"/hidden/{id}\""), "{text}");
    no_request_in_flight();
}

/// The docs say (review finding: the README stated one rule for all adapters) that actix
/// streams an upgraded connection as the body of its `101 Switching Protocols` response, so
/// the middleware records such a request, status 101, when that stream ends.
#[test]
fn a_101_response_is_recorded_when_its_upgraded_stream_ends() {
    static RELEASE: Mutex<Option<futures::channel::oneshot::Receiver<()>>> = Mutex::new(None);
    async fn upgrade() -> HttpResponse {
        let release = RELEASE.lock().unwrap().take();
        let first =
            futures::stream::once(async { Ok::<_, actix_web::Error>(Bytes::from("frame")) });
        let last = futures::stream::once(async move {
            if let Some(release) = release {
                let _ = release.await;
            }
            Ok(Bytes::from("last"))
        });
        HttpResponse::SwitchingProtocols()
            .insert_header(("upgrade", "websocket"))
            .streaming(futures::StreamExt::chain(first, last))
    }
    let (_listener, _turn) = exclusive();
    let (release, released) = futures::channel::oneshot::channel();
    *RELEASE.lock().unwrap() = Some(released);
    let app = serve(HttpConfig::new().build(), |cfg| {
        cfg.route("/upgrade-101", web::get().to(upgrade));
    });
    let mut stream = TcpStream::connect(app).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET /upgrade-101 HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("frame") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 101"));
    // The head and a frame are out, the stream goes on: the request is still under way.
    assert_eq!(profilis::in_flight(&profilis::HTTP), 1);
    assert!(!EVENTS.lock().unwrap().iter().any(|e| e
        .detail::<HttpDetail>()
        .is_some_and(|d| d.route == "/upgrade-101")));
    release.send(()).unwrap();
    let (event, _) = http_event("/upgrade-101");
    let detail = event.detail::<HttpDetail>().unwrap();
    assert_eq!((detail.status, event.error), (101, false));
    no_request_in_flight();
}

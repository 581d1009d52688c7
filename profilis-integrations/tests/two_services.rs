//! A trace that crosses two services, each a process of its own with its own collector and
//! its own JSONL files, over real loopback HTTP. The test is service A: an axum app whose
//! `/checkout` handler calls service B's `/price` through reqwest with the profilis
//! middleware. Service B is this same test binary started again as a child process, with
//! `PROFILIS_TEST_SERVICE_B` naming its JSONL directory (the one test of this file then serves
//! B instead). A request with a known `traceparent` goes to A; the JSONL files of the two
//! processes, joined by trace id, hold one chain: the caller's span, A's request, A's outgoing
//! request, B's request.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use profilis::http::client::reqwest::ProfilisMiddleware;
use profilis::http::client::ClientConfig;
use profilis::http::tower::ProfilisLayer;
use profilis::http::HttpConfig;
use profilis::{Exporter, JsonlConfig};
use serde_json::Value;

/// Set in the child process: the directory of service B's JSONL files.
const SERVICE_B: &str = "PROFILIS_TEST_SERVICE_B";

/// The trace and span of the caller of A, as its `traceparent` names them.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An exporter writing every event to JSONL files in `dir`, flushing often.
fn exporter(service: &str, dir: &Path) -> profilis::ExporterGuard {
    Exporter::new()
        .without_listener()
        .service(service)
        .flush_interval(Duration::from_millis(10))
        .jsonl(JsonlConfig::new(dir))
        .install()
        .expect("exporter installs")
}

/// Service B (in the child process): serves `/price` until its stdin closes, then flushes its
/// events and exits.
fn serve_b(dir: &Path) {
    let guard = exporter("pricing", dir);
    let runtime = runtime();
    let addr = runtime.block_on(async {
        let app = Router::new()
            .route("/price", get(|| async { "42" }))
            .layer(ProfilisLayer::new(HttpConfig::new().build()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });
    println!("LISTENING {addr}");
    std::io::stdout().flush().unwrap();
    // Until service A is done with it.
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    drop(runtime);
    let report = guard.shutdown();
    assert!(report.is_clean(), "{report}");
}

/// Starts service B, returning the child process and its address.
fn start_b(dir: &Path) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_trace_crosses_two_services_and_their_jsonl_events_join",
            "--nocapture",
        ])
        .env(SERVICE_B, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("service B starts");
    let stdout = child.stdout.take().unwrap();
    let (found, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("LISTENING ") {
                let _ = found.send(addr.to_owned());
            }
        }
    });
    match lines.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => (child, addr),
        Err(_) => {
            // Stopped by its PID: only the process this test started.
            let _ = child.kill();
            panic!("service B did not say where it listens");
        }
    }
}

/// Closes B's stdin and waits for it to flush and exit (killing it, by PID, if it does not).
fn stop_b(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "service B failed: {status}");
            return;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("service B did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every event in the JSONL files of `dir`.
fn events_in(dir: &Path) -> Vec<Value> {
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            events.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    }
    events
}

/// The one event of `kind` whose `field` is `value`.
fn one<'a>(events: &'a [Value], kind: &str, field: &str, value: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == kind && e[field] == value)
        .collect();
    assert_eq!(found.len(), 1, "{kind} {field}={value} in {events:#?}");
    found[0]
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("profilis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_trace_crosses_two_services_and_their_jsonl_events_join() {
    if let Some(dir) = std::env::var_os(SERVICE_B) {
        serve_b(Path::new(&dir));
        return;
    }
    let (dir_a, dir_b) = (temp_dir("service-a"), temp_dir("service-b"));
    let (b, b_addr) = start_b(&dir_b);

    let guard = exporter("checkout", &dir_a);
    let runtime = runtime();
    let price = runtime.block_on(async {
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(ProfilisMiddleware::new(
                ClientConfig::new().peer("pricing").unwrap().build(),
            ))
            .build();
        let app = Router::new()
            .route(
                "/checkout",
                get(
                    |State((client, b)): State<(
                        reqwest_middleware::ClientWithMiddleware,
                        String,
                    )>| async move {
                        let response = client
                            .get(format!("http://{b}/price"))
                            .send()
                            .await
                            .unwrap();
                        response.text().await.unwrap()
                    },
                ),
            )
            .with_state((client, b_addr))
            .layer(ProfilisLayer::new(HttpConfig::new().build()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        // The caller of A: a plain client that sends a trace of its own.
        let caller = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let request = axum::http::Request::get(format!("http://{a_addr}/checkout"))
            .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
            .body(Empty::new())
            .unwrap();
        let response = caller.request(request).await.unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    });
    assert_eq!(price, "42");
    drop(runtime);
    stop_b(b);
    let report = guard.shutdown();
    assert!(report.is_clean(), "{report}");

    let (a, b) = (events_in(&dir_a), events_in(&dir_b));
    let checkout = one(&a, "HTTP", "route", "/checkout");
    let outgoing = one(&a, "HTTP_CLIENT", "peer", "pricing");
    let priced = one(&b, "HTTP", "route", "/price");
    // One trace, the caller's, across the two processes' files.
    for event in [checkout, outgoing, priced] {
        assert_eq!(event["trace_id"], TRACE, "{event}");
    }
    // One chain of parents: caller, A's request, A's outgoing request, B's request.
    assert_eq!(checkout["parent_span_id"], CALLER_SPAN);
    assert_eq!(outgoing["parent_span_id"], checkout["span_id"]);
    assert_eq!(priced["parent_span_id"], outgoing["span_id"]);
    assert_eq!(outgoing["status"], 200);
    assert_eq!(outgoing["method"], "GET");
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}

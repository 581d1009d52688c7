//! The `profilis-json-exporter` binary as a user runs it: a child process polling a real axum
//! status server (the tutorial's uvicorn app), scraped over loopback, checked by promtool and a
//! real Prometheus server; the target failing in each way; bad configuration; the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use profilis_test_support::{
    free_port, promtool_check_metrics, sample, tool, try_get, wait_for, Prometheus,
};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_profilis-json-exporter");

/// The exporter's variables, removed from a child's environment so the tester's own do not
/// change what a test runs.
const VARIABLES: &[&str] = &[
    "POLLING_INTERVAL_SECONDS",
    "TARGET_HOST",
    "TARGET_PORT",
    "TARGET_METRICS",
    "TARGET_TIMEOUT_SECONDS",
    "EXPORTER_CONFIG",
    "EXPORTER_HOST",
    "EXPORTER_PORT",
    "EXPORTER_LOG_LEVEL",
    "EXPORTER_PROCESS_STATS",
];

/// How long a test waits for something that takes a poll or two.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The status server

/// How the status server answers.
#[derive(Debug, Clone)]
enum Mode {
    /// The document, as JSON.
    Document,
    /// 500 with a text body.
    Fails,
    /// 200 with a body that is not JSON.
    Garbled,
    /// The document, after this long.
    Slow(Duration),
    /// The headers at once, then the document a byte every this long.
    Trickle(Duration),
    /// This text as the JSON body.
    Raw(Arc<str>),
}

struct Shared {
    document: Mutex<Value>,
    mode: Mutex<Mode>,
}

/// A real HTTP status server on loopback, on a runtime of its own.
struct StatusServer {
    shared: Arc<Shared>,
    port: u16,
    runtime: tokio::runtime::Runtime,
    serving: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

fn tutorial_document() -> Value {
    json!({
        "current_requests": 10,
        "pending_requests": 2,
        "total_uptime": 25.99274135,
        "health": "healthy"
    })
}

impl StatusServer {
    /// A server for `document` on a free port, not yet serving.
    fn new(document: Value) -> StatusServer {
        StatusServer {
            shared: Arc::new(Shared {
                document: Mutex::new(document),
                mode: Mutex::new(Mode::Document),
            }),
            port: free_port(),
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the status server"),
            serving: None,
        }
    }

    fn started(document: Value) -> StatusServer {
        let mut server = StatusServer::new(document);
        server.start();
        server
    }

    fn start(&mut self) {
        assert!(self.serving.is_none(), "the status server already serves");
        let shared = Arc::clone(&self.shared);
        let app = axum::Router::new()
            .route("/status", axum::routing::get(status))
            .with_state(shared);
        let port = self.port;
        let listener = self.runtime.block_on(async move {
            // The port may be held a moment after a stop; bind within a bounded wait.
            for _ in 0..100 {
                if let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    return listener;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the status server cannot bind 127.0.0.1:{port}");
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = self.runtime.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("the status server serves");
        });
        self.serving = Some((stop, task));
    }

    /// Stops serving: the port refuses connections after this.
    fn stop(&mut self) {
        let (stop, task) = self.serving.take().expect("the status server serves");
        let _ = stop.send(());
        self.runtime.block_on(async {
            // Graceful: idle keep-alive connections are closed; a slow answer is cut off.
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                eprintln!("the status server took over 5 s to stop");
            }
        });
    }

    fn set(&self, document: Value) {
        *self.shared.document.lock().unwrap() = document;
    }

    fn mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }
}

async fn status(axum::extract::State(shared): axum::extract::State<Arc<Shared>>) -> Response {
    let mode = shared.mode.lock().unwrap().clone();
    let document = shared.document.lock().unwrap().clone();
    match mode {
        Mode::Document => axum::Json(document).into_response(),
        Mode::Fails => (StatusCode::INTERNAL_SERVER_ERROR, "the database is gone").into_response(),
        Mode::Garbled => (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"current_requests\": 10, \"pending",
        )
            .into_response(),
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            axum::Json(document).into_response()
        }
        Mode::Trickle(every) => {
            let bytes = serde_json::to_vec(&document).unwrap();
            let stream = trickle(bytes, every);
            (
                [(header::CONTENT_TYPE, "application/json")],
                axum::body::Body::from_stream(stream),
            )
                .into_response()
        }
        Mode::Raw(text) => (
            [(header::CONTENT_TYPE, "application/json")],
            text.to_string(),
        )
            .into_response(),
    }
}

/// `bytes` one at a time, `every` apart.
fn trickle(
    bytes: Vec<u8>,
    every: Duration,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    futures::stream::unfold(0, move |sent| {
        let next = bytes.get(sent).copied();
        async move {
            let byte = next?;
            tokio::time::sleep(every).await;
            Some((Ok(vec![byte]), sent + 1))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The exporter process

/// The exporter running as a child process; killed by its PID when dropped.
struct Exporter {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    for var in VARIABLES {
        command.env_remove(var);
    }
    command.args(args).envs(env.iter().copied());
    command
}

impl Exporter {
    /// Starts the exporter on a free port of 127.0.0.1, polling the status server at
    /// `target_port` every half second, with `extra` arguments.
    fn start(name: &str, target_port: u16, extra: &[&str]) -> Exporter {
        Exporter::start_with_env(name, target_port, extra, &[])
    }

    /// As [`Exporter::start`], with these variables set.
    fn start_with_env(
        name: &str,
        target_port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Exporter {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "profilis-json-exporter-{name}-{}.log",
            std::process::id()
        ));
        let file = std::fs::File::create(&log).expect("the exporter's log file");
        let (port_arg, target_arg) = (port.to_string(), target_port.to_string());
        let mut args = vec![
            "-H",
            "127.0.0.1",
            "-p",
            &port_arg,
            "--target-host",
            "127.0.0.1",
            "--target-port",
            &target_arg,
            "--polling-interval-seconds",
            "0.5",
        ];
        args.extend_from_slice(extra);
        let child = command(&args, env)
            .stdout(file.try_clone().expect("the log file"))
            .stderr(file)
            .spawn()
            .expect("the exporter starts");
        let mut exporter = Exporter {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        let up = wait_for(WAIT, || {
            exporter.assert_running();
            try_get(exporter.addr, "/metrics", &[])
                .ok()
                .filter(|r| r.status == 200)
        });
        assert!(
            up.is_some(),
            "the exporter did not answer:\n{}",
            exporter.log()
        );
        exporter
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("the exporter's status") {
            panic!("the exporter exited ({status}):\n{}", self.log());
        }
    }

    /// The page `/metrics` serves now.
    fn scrape(&mut self) -> String {
        self.assert_running();
        let response = try_get(self.addr, "/metrics", &[]).expect("the exporter answers");
        assert_eq!(response.status, 200, "{}", response.text());
        response.text()
    }

    /// Waits until the page passes `check`, and returns it.
    fn wait_until(&mut self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = wait_for(WAIT, || {
            last = self.scrape();
            check(&last).then(|| last.clone())
        });
        found.unwrap_or_else(|| {
            panic!(
                "waited {WAIT:?} for {what}; the last page:\n{last}\nthe log:\n{}",
                self.log()
            )
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs the binary to its end (within a bounded wait), for the cases that stop at start-up.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the exporter starts");
    let exited = wait_for(WAIT, || child.try_wait().expect("its status"));
    if exited.is_none() {
        let _ = child.kill();
        let output = child.wait_with_output().expect("its output");
        panic!(
            "the exporter kept running with {args:?} {env:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    child.wait_with_output().expect("its output")
}

// ---------------------------------------------------------------------------------------------
// Reading pages

fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(page, name, labels)
}

fn up(page: &str) -> Option<f64> {
    value(page, "exporter_up", &[])
}

/// The sum of `exporter_update_errors_total` over its reasons.
fn errors(page: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with("exporter_update_errors_total"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Lines of series whose names start with `prefix`.
fn series<'a>(page: &'a str, prefix: &str) -> Vec<&'a str> {
    page.lines()
        .filter(|l| l.starts_with(prefix) && !l.starts_with('#'))
        .collect()
}

fn serves_tutorial(page: &str, current: f64, health: &str) -> bool {
    value(page, "app_requests_current", &[]) == Some(current)
        && value(page, "app_health", &[("app_health", health)]) == Some(1.0)
}

// ---------------------------------------------------------------------------------------------
// Following the target

#[test]
fn serves_the_tutorials_document_and_follows_it() {
    let server = StatusServer::started(tutorial_document());
    let mut exporter = Exporter::start("follows", server.port, &[]);

    let page = exporter.wait_until("the tutorial's values", |p| {
        serves_tutorial(p, 10.0, "healthy")
    });
    assert_eq!(value(&page, "app_requests_pending", &[]), Some(2.0));
    assert_eq!(value(&page, "app_uptime", &[]), Some(25.99274135));
    assert_eq!(
        value(&page, "app_health", &[("app_health", "unhealthy")]),
        Some(0.0)
    );
    for (name, help, kind) in [
        ("app_requests_current", "Current requests", "gauge"),
        ("app_requests_pending", "Pending requests", "gauge"),
        ("app_uptime", "Uptime", "gauge"),
        ("app_health", "Health", "gauge"),
    ] {
        assert!(
            page.contains(&format!("# HELP {name} {help}\n")),
            "{name}'s help:\n{page}"
        );
        assert!(
            page.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}'s type:\n{page}"
        );
    }
    assert_eq!(up(&page), Some(1.0), "{page}");
    // The exporter's own build info and (on by default here) the process metrics.
    assert!(
        series(&page, "rust_build_info")
            .iter()
            .any(|l| l.contains("profilis-json-exporter") && l.ends_with(" 1")),
        "rust_build_info names the exporter:\n{page}"
    );
    assert!(
        value(&page, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0),
        "process metrics:\n{page}"
    );
    promtool_check_metrics(page.as_bytes());

    // The target's values change between polls; the page follows them.
    server.set(json!({
        "current_requests": 4,
        "pending_requests": 0,
        "total_uptime": 104.914734,
        "health": "unhealthy"
    }));
    let page = exporter.wait_until("the new values", |p| serves_tutorial(p, 4.0, "unhealthy"));
    assert_eq!(value(&page, "app_requests_pending", &[]), Some(0.0));
    assert_eq!(value(&page, "app_uptime", &[]), Some(104.914734));
    assert_eq!(
        value(&page, "app_health", &[("app_health", "healthy")]),
        Some(0.0)
    );
    assert_eq!(errors(&page), 0.0, "no poll failed:\n{page}");
    promtool_check_metrics(page.as_bytes());
}

#[test]
fn prometheus_scrapes_it_and_answers_a_query() {
    let Some(prometheus_bin) = tool("prometheus") else {
        return;
    };
    let server = StatusServer::started(tutorial_document());
    let mut exporter = Exporter::start("prometheus", server.port, &[]);
    exporter.wait_until("the tutorial's values", |p| {
        serves_tutorial(p, 10.0, "healthy")
    });
    server.set(json!({
        "current_requests": 17,
        "pending_requests": 2,
        "total_uptime": 30.5,
        "health": "healthy"
    }));
    exporter.wait_until("the new value", |p| serves_tutorial(p, 17.0, "healthy"));

    let prometheus = Prometheus::start(&prometheus_bin, "json-exporter", exporter.addr, &[]);
    let answered = wait_for(Duration::from_secs(60), || {
        prometheus
            .query("app_requests_current")
            .filter(|&v| v == 17.0)
    });
    assert_eq!(
        answered,
        Some(17.0),
        "Prometheus's log:\n{}\nthe exporter's log:\n{}",
        prometheus.log(),
        exporter.log()
    );
    let healthy = wait_for(WAIT, || {
        prometheus.query("app_health{app_health=\"healthy\"}")
    });
    assert_eq!(healthy, Some(1.0));
}

// ---------------------------------------------------------------------------------------------
// The target failing

/// Waits for the exporter to report the target down: `exporter_up 0`, a failure counted, no
/// `app_*` series, and the log naming the URL and `cause`. Returns the errors counted then.
fn assert_reported_down(exporter: &mut Exporter, port: u16, cause: &str) -> f64 {
    let page = exporter.wait_until("the target reported down", |p| {
        up(p) == Some(0.0) && errors(p) >= 1.0 && series(p, "app_").is_empty()
    });
    let url = format!("http://127.0.0.1:{port}/status");
    let found = wait_for(WAIT, || {
        let log = exporter.log();
        log.lines()
            .any(|l| l.contains(&url) && l.contains(cause))
            .then_some(())
    });
    assert!(
        found.is_some(),
        "the log names {url} and {cause:?}:\n{}",
        exporter.log()
    );
    // It keeps running and keeps counting the failed polls.
    let before = errors(&page);
    let page = exporter.wait_until("more failures counted", |p| errors(p) > before);
    assert!(series(&page, "app_").is_empty(), "{page}");
    promtool_check_metrics(page.as_bytes());
    errors(&page)
}

fn assert_recovered(exporter: &mut Exporter, errors_then: f64) {
    let page = exporter.wait_until("the target served again", |p| {
        up(p) == Some(1.0) && serves_tutorial(p, 10.0, "healthy")
    });
    assert_eq!(value(&page, "app_uptime", &[]), Some(25.99274135));
    assert!(
        errors(&page) >= errors_then,
        "the counter keeps its total:\n{page}"
    );
}

#[test]
fn the_target_down_then_up_then_stopped() {
    // No server yet: the port refuses connections.
    let mut server = StatusServer::new(tutorial_document());
    let mut exporter = Exporter::start("down", server.port, &[]);
    let counted = assert_reported_down(&mut exporter, server.port, "connection refused");

    server.start();
    assert_recovered(&mut exporter, counted);

    // The server stops while the exporter polls it.
    server.stop();
    let counted = assert_reported_down(&mut exporter, server.port, "connection refused");
    server.start();
    assert_recovered(&mut exporter, counted);
}

/// `exporter_update_errors_total{reason}`.
fn failures(page: &str, reason: &str) -> f64 {
    value(page, "exporter_update_errors_total", &[("reason", reason)]).unwrap_or(0.0)
}

#[test]
fn the_longest_target_timeout_starts() {
    // The option takes up to a day; the kit's limit is a day too, and the margin the exporter
    // adds to the fetch's timeout must not push it past that.
    let server = StatusServer::started(tutorial_document());
    let mut exporter = Exporter::start(
        "longest-timeout",
        server.port,
        &["--target-timeout-seconds", "86400"],
    );
    exporter.wait_until("the tutorial's values", |p| {
        serves_tutorial(p, 10.0, "healthy")
    });
}

#[test]
fn a_slow_target_times_out() {
    let server = StatusServer::started(tutorial_document());
    let mut exporter = Exporter::start("slow", server.port, &["--target-timeout-seconds", "0.5"]);
    exporter.wait_until("the tutorial's values", |p| {
        serves_tutorial(p, 10.0, "healthy")
    });

    // An answer that comes too late, then one whose body trickles past the timeout: both are
    // the fetch's own timeout, counted as reason="timeout" (not "error").
    for (mode, what) in [
        (Mode::Slow(Duration::from_secs(3)), "a late answer"),
        (
            Mode::Trickle(Duration::from_millis(100)),
            "a trickling body",
        ),
    ] {
        server.mode(mode);
        let counted = assert_reported_down(
            &mut exporter,
            server.port,
            "no complete answer within 500ms",
        );
        let page = exporter.scrape();
        assert!(failures(&page, "timeout") >= 1.0, "{what}:\n{page}");
        assert_eq!(failures(&page, "error"), 0.0, "{what}:\n{page}");
        assert!(
            exporter
                .log()
                .contains("the update timed out: GET http://127.0.0.1:"),
            "{what}: logged as a time-out:\n{}",
            exporter.log()
        );
        server.mode(Mode::Document);
        assert_recovered(&mut exporter, counted);
    }
}

#[test]
fn a_target_answering_500() {
    let server = StatusServer::started(tutorial_document());
    let mut exporter = Exporter::start("500", server.port, &[]);
    exporter.wait_until("the tutorial's values", |p| {
        serves_tutorial(p, 10.0, "healthy")
    });

    server.mode(Mode::Fails);
    let counted = assert_reported_down(&mut exporter, server.port, "500 Internal Server Error");
    server.mode(Mode::Document);
    assert_recovered(&mut exporter, counted);
}

#[test]
fn unmapped_fields_do_not_fail_a_poll() {
    let server = StatusServer::started(tutorial_document());
    let mut exporter = Exporter::start("robust", server.port, &[]);
    exporter.wait_until("the tutorial's values", |p| {
        serves_tutorial(p, 10.0, "healthy")
    });

    // A byte-order mark, a number beyond f64 and 200 levels of nesting, all in fields the
    // mapping does not name: the mapped ones are served, the poll is good.
    let deep = format!("{}0{}", "[".repeat(200), "]".repeat(200));
    let body = format!(
        "\u{FEFF}{{\"current_requests\": 12, \"pending_requests\": 2, \"total_uptime\": 30.5, \
         \"health\": \"healthy\", \"bytes_served\": 1e400, \"trace\": {deep}}}"
    );
    server.mode(Mode::Raw(body.into()));
    let page = exporter.wait_until("the values beside odd fields", |p| {
        serves_tutorial(p, 12.0, "healthy")
    });
    assert_eq!(up(&page), Some(1.0), "{page}");
    assert_eq!(errors(&page), 0.0, "{page}");

    // A mapped field beyond f64: that field alone is left out, and the log says what and where.
    let body = "{\"current_requests\": 13, \"pending_requests\": 2, \"total_uptime\": 1e400, \
                \"health\": \"healthy\"}";
    server.mode(Mode::Raw(body.into()));
    let page = exporter.wait_until("the values without app_uptime", |p| {
        serves_tutorial(p, 13.0, "healthy")
    });
    assert!(series(&page, "app_uptime").is_empty(), "{page}");
    assert_eq!(up(&page), Some(1.0), "{page}");
    assert!(
        exporter
            .log()
            .contains("the field at /total_uptime is 1e400, a number beyond the range of f64"),
        "{}",
        exporter.log()
    );
    promtool_check_metrics(page.as_bytes());

    // Not JSON: the error says what and where.
    server.mode(Mode::Raw(
        "{\"current_requests\": 1,\n \"health\": tru}".into(),
    ));
    assert_reported_down(&mut exporter, server.port, "line 2 column");
}

#[test]
fn a_target_answering_bad_json() {
    let server = StatusServer::started(tutorial_document());
    let mut exporter = Exporter::start("garbled", server.port, &[]);
    exporter.wait_until("the tutorial's values", |p| {
        serves_tutorial(p, 10.0, "healthy")
    });

    server.mode(Mode::Garbled);
    let counted = assert_reported_down(&mut exporter, server.port, "the body is not JSON");
    server.mode(Mode::Document);
    assert_recovered(&mut exporter, counted);
}

// ---------------------------------------------------------------------------------------------
// A mapping file

fn write_config(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "profilis-json-exporter-{name}-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("the mapping file");
    path
}

const SERVICE_MAP: &str = r#"
[[metric]]
pointer = "/service/queues/0/depth"
name = "svc_queue_depth"
type = "gauge"
help = "Jobs waiting in the first queue"
labels = { queue = "mail", region = "eu" }

[[metric]]
pointer = "/service/queues/1/depth"
name = "svc_queue_depth"
type = "gauge"
help = "Jobs waiting in the first queue"
labels = { queue = "sms", region = "eu" }

[[metric]]
pointer = "/maintenance"
name = "svc_maintenance"
type = "gauge"
help = "Whether the service is in maintenance"

[[metric]]
pointer = "/state"
name = "svc_state"
type = "state_set"
help = "The service's state"
states = ["ok", "degraded", "down"]

[[metric]]
pointer = "/served"
name = "svc_requests"
type = "counter"
help = "Requests served"

[[metric]]
pointer = "/service/workers/idle"
name = "svc_workers_idle"
type = "gauge"
help = "Idle workers"
"#;

#[test]
fn a_mapping_file_maps_another_document() {
    let config = write_config("service", SERVICE_MAP);
    let server = StatusServer::started(json!({
        "service": {"queues": [{"name": "mail", "depth": 7}, {"name": "sms", "depth": 2}], "workers": {"busy": 3}},
        "maintenance": false,
        "state": "degraded",
        "served": 1234
    }));
    let config_arg = config.display().to_string();
    let mut exporter = Exporter::start("service", server.port, &["--config", &config_arg]);

    let page = exporter.wait_until("the mapped values", |p| {
        value(p, "svc_queue_depth", &[("queue", "mail"), ("region", "eu")]) == Some(7.0)
    });
    // Two entries of one name: two series of one metric.
    assert_eq!(
        value(
            &page,
            "svc_queue_depth",
            &[("queue", "sms"), ("region", "eu")]
        ),
        Some(2.0)
    );
    assert_eq!(
        page.matches("# TYPE svc_queue_depth gauge").count(),
        1,
        "{page}"
    );
    assert_eq!(value(&page, "svc_maintenance", &[]), Some(0.0));
    assert_eq!(
        value(&page, "svc_state", &[("svc_state", "degraded")]),
        Some(1.0)
    );
    assert_eq!(value(&page, "svc_state", &[("svc_state", "ok")]), Some(0.0));
    assert_eq!(
        value(&page, "svc_state", &[("svc_state", "down")]),
        Some(0.0)
    );
    assert_eq!(value(&page, "svc_requests_total", &[]), Some(1234.0));
    assert!(
        page.contains("# HELP svc_queue_depth Jobs waiting in the first queue\n"),
        "{page}"
    );
    assert!(
        page.contains("# TYPE svc_requests_total counter\n"),
        "{page}"
    );
    // A field the document lacks is not served; the others are, and the poll counts as good.
    assert!(series(&page, "svc_workers_idle").is_empty(), "{page}");
    assert_eq!(up(&page), Some(1.0));
    assert!(
        series(&page, "app_").is_empty(),
        "only the file's metrics:\n{page}"
    );
    promtool_check_metrics(page.as_bytes());
    let warned = wait_for(WAIT, || {
        exporter
            .log()
            .contains("no field at /service/workers/idle")
            .then_some(())
    });
    assert!(
        warned.is_some(),
        "the log says the field is missing:\n{}",
        exporter.log()
    );

    // The values change: a boolean becomes 1, another state, the missing field appears, and
    // a state the file does not know leaves that state set out (and the log says why).
    server.set(json!({
        "service": {"queues": [{"depth": 9}], "workers": {"busy": 3, "idle": 5}},
        "maintenance": true,
        "state": "rebooting",
        "served": 1300
    }));
    let page = exporter.wait_until("the changed values", |p| {
        value(p, "svc_maintenance", &[]) == Some(1.0)
            && value(p, "svc_workers_idle", &[]) == Some(5.0)
    });
    assert_eq!(
        value(&page, "svc_queue_depth", &[("queue", "mail")]),
        Some(9.0)
    );
    assert_eq!(value(&page, "svc_requests_total", &[]), Some(1300.0));
    assert!(
        series(&page, "svc_state").is_empty(),
        "an unknown state:\n{page}"
    );
    assert_eq!(up(&page), Some(1.0));
    let warned = wait_for(WAIT, || {
        exporter
            .log()
            .contains("\"rebooting\", not one of the states")
            .then_some(())
    });
    assert!(
        warned.is_some(),
        "the log says the state is unknown:\n{}",
        exporter.log()
    );

    // Another unknown state (and a new depth, to know it was polled): the same kind of
    // problem, not logged again.
    server.set(json!({
        "service": {"queues": [{"depth": 11}], "workers": {"busy": 3, "idle": 5}},
        "maintenance": true,
        "state": "crashing",
        "served": 1300
    }));
    exporter.wait_until("the next poll", |p| {
        value(p, "svc_queue_depth", &[("queue", "mail")]) == Some(11.0)
    });
    let log = exporter.log();
    assert_eq!(
        log.matches("not one of the states").count(),
        1,
        "one warning for unknown states, whatever the value:\n{log}"
    );

    // A known state again; the counter's field gone: it keeps its last total.
    server.set(json!({
        "service": {"queues": [{"depth": 9}]},
        "maintenance": true,
        "state": "ok"
    }));
    let page = exporter.wait_until("a known state again", |p| {
        value(p, "svc_state", &[("svc_state", "ok")]) == Some(1.0)
    });
    assert_eq!(
        value(&page, "svc_state", &[("svc_state", "degraded")]),
        Some(0.0)
    );
    assert!(series(&page, "svc_workers_idle").is_empty(), "{page}");
    assert_eq!(value(&page, "svc_requests_total", &[]), Some(1300.0));
    promtool_check_metrics(page.as_bytes());
    let said = wait_for(WAIT, || {
        let log = exporter.log();
        log.contains(
            "no field at /served in the document; the counter svc_requests keeps its last total",
        )
        .then_some(())
    });
    assert!(
        said.is_some(),
        "the counter keeps its total:\n{}",
        exporter.log()
    );
    assert!(
        exporter
            .log()
            .contains("the field at /state is back; svc_state is served again"),
        "{}",
        exporter.log()
    );
    let _ = std::fs::remove_file(config);
}

// ---------------------------------------------------------------------------------------------
// Bad configuration stops the start

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_failed(status: ExitStatus, code: i32, stderr: &str) {
    assert_eq!(status.code(), Some(code), "exit code; stderr:\n{stderr}");
}

#[test]
fn bad_mapping_files_are_named_at_start_up() {
    let entry = |rest: &str| {
        format!("[[metric]]\npointer = \"/a\"\nname = \"app_a\"\ntype = \"gauge\"\nhelp = \"A\"\n[[metric]]\n{rest}")
    };
    let cases = [
        ("syntax", "[[metric]\n".to_owned(), vec!["is not valid"]),
        ("unknown-key", entry("pointer = \"/b\"\nname = \"app_b\"\ntype = \"gauge\"\nhelp = \"B\"\nunit = \"s\"\n"),
         vec!["unknown field `unit`"]),
        ("pointer", entry("pointer = \"b\"\nname = \"app_b\"\ntype = \"gauge\"\nhelp = \"B\"\n"),
         vec!["metric #2 (app_b)", "does not start with '/'"]),
        ("metric-name", entry("pointer = \"/b\"\nname = \"app-b\"\ntype = \"gauge\"\nhelp = \"B\"\n"),
         vec!["metric #2 (app-b)", "\"app-b\""]),
        ("label-name", entry("pointer = \"/b\"\nname = \"app_b\"\ntype = \"gauge\"\nhelp = \"B\"\nlabels = { \"bad label\" = \"x\" }\n"),
         vec!["metric #2 (app_b)", "\"bad label\""]),
        ("no-states", entry("pointer = \"/b\"\nname = \"app_b\"\ntype = \"state_set\"\nhelp = \"B\"\n"),
         vec!["metric #2 (app_b)", "needs `states`"]),
        ("duplicate", entry("pointer = \"/b\"\nname = \"app_a\"\ntype = \"gauge\"\nhelp = \"A\"\n"),
         vec!["metric #2 (app_a)", "it writes the same series as metric #1"]),
        ("one-name-two-helps", entry("pointer = \"/b\"\nname = \"app_a\"\ntype = \"gauge\"\nhelp = \"B\"\n"),
         vec!["metric #2 (app_a)", "its help \"B\" is another than metric #1"]),
        ("clash", entry("pointer = \"/b\"\nname = \"app_b_total\"\ntype = \"gauge\"\nhelp = \"B\"\n[[metric]]\npointer = \"/c\"\nname = \"app_b\"\ntype = \"counter\"\nhelp = \"C\"\n"),
         vec!["metric #3 (app_b)", "app_b_total"]),
        ("build-info", entry("pointer = \"/b\"\nname = \"rust_build_info\"\ntype = \"gauge\"\nhelp = \"B\"\n"),
         vec!["metric #2 (rust_build_info)", "rust_build_info is already published as an info metric"]),
        ("process", entry("pointer = \"/b\"\nname = \"process_open_fds\"\ntype = \"gauge\"\nhelp = \"B\"\n"),
         vec!["metric #2 (process_open_fds)", "process metrics"]),
        ("kit-name", entry("pointer = \"/b\"\nname = \"exporter_up\"\ntype = \"gauge\"\nhelp = \"B\"\n"),
         vec!["metric #2 (exporter_up)", "exporter_up is already published"]),
    ];
    for (name, text, says) in cases {
        let config = write_config(&format!("bad-{name}"), &text);
        let output = run(&["--config", &config.display().to_string()], &[]);
        let err = stderr(&output);
        assert_failed(output.status, 1, &err);
        assert!(
            err.contains(&config.display().to_string()),
            "{name}: names the file:\n{err}"
        );
        for said in says {
            assert!(err.contains(said), "{name}: says {said:?}:\n{err}");
        }
        let _ = std::fs::remove_file(config);
    }

    // Given by its variable, and not there at all.
    let missing = std::env::temp_dir().join("profilis-json-exporter-no-such-file.toml");
    let missing = missing.display().to_string();
    let output = run(&[], &[("EXPORTER_CONFIG", &missing)]);
    let err = stderr(&output);
    assert_failed(output.status, 1, &err);
    assert!(
        err.contains(&format!("cannot read the mapping file {missing}")),
        "{err}"
    );
}

#[test]
fn bad_variables_and_options_are_named_at_start_up() {
    for (var, value, says) in [
        ("POLLING_INTERVAL_SECONDS", "0", "is not above 0"),
        ("POLLING_INTERVAL_SECONDS", "soon", "is not a number"),
        ("TARGET_PORT", "70000", "70000"),
        ("TARGET_PORT", "http", "http"),
        ("TARGET_TIMEOUT_SECONDS", "0", "is not above 0"),
        (
            "POLLING_INTERVAL_SECONDS",
            "1e-12",
            "below the shortest, 10ms",
        ),
        (
            "POLLING_INTERVAL_SECONDS",
            "0.000001",
            "below the shortest, 10ms",
        ),
        (
            "POLLING_INTERVAL_SECONDS",
            "inf",
            "\"inf\" is not a finite number",
        ),
        (
            "TARGET_TIMEOUT_SECONDS",
            "1e-12",
            "below the shortest, 10ms",
        ),
        (
            "TARGET_TIMEOUT_SECONDS",
            "100000",
            "above the longest, one day",
        ),
        (
            "TARGET_HOST",
            "https://example.com",
            "https is not supported",
        ),
        ("TARGET_HOST", "localhost:41871", "\"localhost:41871\""),
        ("TARGET_HOST", "a:b", "\"a:b\""),
        ("TARGET_HOST", "[::1", "\"[::1\""),
        ("TARGET_HOST", "...", "\"...\""),
        ("TARGET_HOST", "-x", "\"-x\""),
        ("EXPORTER_PORT", "99999", "99999"),
    ] {
        let output = run(&[], &[(var, value)]);
        let err = stderr(&output);
        assert_failed(output.status, 2, &err);
        let option = format!("--{}", var.to_ascii_lowercase().replace('_', "-"));
        let option = option.replace("--exporter-port", "--port");
        assert!(
            err.contains(var) || err.contains(&option),
            "{var}={value}: names the variable or its option:\n{err}"
        );
        assert!(err.contains(says), "{var}={value}: says {says:?}:\n{err}");
    }
    let output = run(&["--polling-interval-seconds", "0"], &[]);
    let err = stderr(&output);
    assert_failed(output.status, 2, &err);
    assert!(
        err.contains("--polling-interval-seconds") && err.contains("\"0\" is not above 0"),
        "{err}"
    );
    for host in ["localhost:41871", "a:b", "[::1", "...", "-x"] {
        let output = run(&[&format!("--target-host={host}")], &[]);
        let err = stderr(&output);
        assert_failed(output.status, 2, &err);
        assert!(
            err.contains("--target-host") && err.contains(&format!("{host:?}")),
            "{host}: {err}"
        );
    }
}

#[test]
fn an_empty_exporter_config_means_no_file() {
    let server = StatusServer::started(tutorial_document());
    let mut exporter =
        Exporter::start_with_env("empty-config", server.port, &[], &[("EXPORTER_CONFIG", "")]);
    exporter.wait_until("the tutorial's values", |p| {
        serves_tutorial(p, 10.0, "healthy")
    });
}

// ---------------------------------------------------------------------------------------------
// The command line

#[test]
fn help_shows_the_options_and_their_variables() {
    let output = run(&["--help"], &[]);
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{help}{}", stderr(&output));
    for (option, variable, default) in [
        (
            "--polling-interval-seconds",
            "POLLING_INTERVAL_SECONDS",
            Some("5"),
        ),
        ("--target-host", "TARGET_HOST", Some("localhost")),
        ("--target-port", "TARGET_PORT", Some("8000")),
        ("--target-metrics", "TARGET_METRICS", Some("status")),
        ("--target-timeout-seconds", "TARGET_TIMEOUT_SECONDS", None),
        ("--config", "EXPORTER_CONFIG", None),
        ("--port", "EXPORTER_PORT", None),
        ("--log-level", "EXPORTER_LOG_LEVEL", Some("info")),
    ] {
        assert!(help.contains(option), "{option}:\n{help}");
        assert!(
            help.contains(&format!("env: {variable}=")),
            "{variable}:\n{help}"
        );
        if let Some(default) = default {
            let block = help
                .split(option)
                .nth(1)
                .and_then(|rest| rest.split("\n  -").next())
                .unwrap_or_default();
            assert!(
                block.contains(&format!("[default: {default}]")),
                "{option}'s default {default}:\n{help}"
            );
        }
    }
    assert!(help.contains("https is not supported"), "{help}");

    let output = run(&["--version"], &[]);
    assert!(output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")),
        "{output:?}"
    );
}

#[test]
fn a_bad_option_is_refused() {
    let output = run(&["--target-hots", "example.com"], &[]);
    let err = stderr(&output);
    assert_failed(output.status, 2, &err);
    assert!(err.contains("--target-hots"), "{err}");
}

#[test]
fn a_bad_log_level_is_refused_with_the_levels() {
    let output = run(&["-L", "loud"], &[]);
    let err = stderr(&output);
    assert_failed(output.status, 2, &err);
    assert!(err.contains("loud"), "{err}");
    for level in ["critical", "error", "warning", "info", "debug"] {
        assert!(err.contains(level), "lists {level}:\n{err}");
    }
}

//! The dashboard in a real browser: starts `examples/dashboard_demo.rs` (a real instrumented
//! program: functions, axum routes, SQLite), opens its page in headless Chromium through
//! chromedriver (WebDriver), and checks from the DOM, after the page's scripts ran, that:
//! every function, route and vendor is listed with the counts `/metrics` has; the known error's
//! message is in the error list; the percentiles shown are those of `/metrics.json`; sorting,
//! the filter and the window selector work; the theme toggle changes the theme and is
//! remembered; the page mounted under a prefix in the demo's axum router shows the same; a page whose data cannot be loaded says so and marks the numbers stale; with a
//! token set the page shows no data without it and shows it after `?token=`. It saves a
//! screenshot as `target/dashboard.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them; without them the
//! test fails under `CI=true` and says it skipped elsewhere), and the example built beside the
//! test, as `cargo test` builds it (alone: `cargo build --features axum,rusqlite --example
//! dashboard_demo && cargo test --features axum,rusqlite --test dashboard_browser`).
//!
//! WebDriver (fantoccini and chromedriver) rather than the DevTools protocol: the W3C protocol
//! is small and stable, chromedriver comes with Debian's chromium in the same version, and the
//! client is plain HTTP on loopback with no TLS stack or generated protocol bindings to build.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use profilis_test_support::{
    find_on_path, free_port, missing, parse_exposition, try_get, wait_for,
};
use serde_json::{json, Value};

/// Rounds of the demo's workload: sku 42 (the known error) comes at round 42.
const ROUNDS: u64 = 60;
const TOKEN: &str = "s3cret-token";
const ERROR_MESSAGE: &str = "no price for sku 42";

/// A process this test started, killed (by its PID, through `Child`) when dropped.
struct Process {
    child: Child,
    what: &'static str,
}

impl Process {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            eprintln!("stopping {} (pid {})", self.what, self.child.id());
        }
        self.stop();
    }
}

/// `target/`, where the screenshot and the logs go.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .to_path_buf()
}

/// chromium and chromedriver, if installed (see [`missing`] otherwise).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_on_path("chromium");
    let driver = find_on_path("chromedriver");
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            missing(
                "Chromium and ChromeDriver",
                "apt-get install chromium chromium-driver",
            );
            None
        }
    }
}

/// The demo program built beside this test (`target/<profile>/examples/dashboard_demo`).
fn demo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let demo = profile_dir.join("examples").join("dashboard_demo");
    let how = "`cargo test` builds it with the other tests; to run this test alone: \
               `cargo build --features axum,rusqlite --example dashboard_demo && \
               cargo test --features axum,rusqlite --test dashboard_browser`";
    let built = std::fs::metadata(&demo)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is not built: {how}", demo.display()));
    // An old build would test an old page: the sources most edited with this test.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for source in [
        "examples/dashboard_demo.rs",
        "profilis-exporters/src/dashboard/page.html",
    ] {
        let changed = std::fs::metadata(root.join(source)).and_then(|m| m.modified());
        assert!(
            changed.is_ok_and(|changed| changed <= built),
            "{} is older than {source}: {how}",
            demo.display()
        );
    }
    demo
}

/// The demo, running: its listener's address and the lines it prints.
struct Demo {
    process: Process,
    addr: SocketAddr,
    /// The dashboard as the demo's own axum app mounts it, under `/profilis/`.
    mounted: String,
    lines: mpsc::Receiver<String>,
}

impl Demo {
    fn start(name: &str, extra: &[&str]) -> Demo {
        let log = target_dir().join(format!("dashboard_demo-{name}.log"));
        let mut child = Command::new(demo_binary())
            .args(["--listen", "127.0.0.1:0", "--rounds", &ROUNDS.to_string()])
            .args(extra)
            .env_remove("PROFILIS_LISTEN")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file under target/"))
            .spawn()
            .expect("the demo starts");
        let stdout = child.stdout.take().expect("piped");
        let process = Process {
            child,
            what: "dashboard_demo",
        };
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("the demo printed nothing ({e}); see {}", log.display()));
        // The quickstart's promise: the dashboard's URL is printed.
        let url = first
            .strip_prefix("profilis dashboard: http://")
            .unwrap_or_else(|| panic!("the demo's first line names the dashboard: {first:?}"));
        let addr = url.trim_end_matches('/').parse().expect("host:port");
        let mounted = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the demo names its mounted dashboard");
            if let Some(url) = line.strip_prefix("mounted dashboard:") {
                break url.trim().to_owned();
            }
        };
        Demo {
            process,
            addr,
            mounted,
            lines,
        }
    }

    /// Waits until the workload's rounds are done.
    fn wait_until_done(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("workload done") => return,
                Ok(_) => {}
                Err(e) => panic!("the demo's workload did not finish: {e}"),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let response = try_get(self.addr, path, &headers)
            .unwrap_or_else(|e| panic!("GET {path} from the demo: {e}"));
        (response.status, response.text())
    }

    fn json(&self, path: &str, token: Option<&str>) -> Value {
        let (status, body) = self.get(path, token);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
    }
}

/// What `/metrics` counts for one row of the dashboard.
#[derive(Debug, PartialEq)]
struct Counts {
    calls: u64,
    errors: u64,
    statuses: Vec<(String, u64)>,
}

/// The rows `/metrics` implies, keyed `kind:name` as the page's `data-row`.
fn counts_from_metrics(text: &str) -> Vec<(String, Counts)> {
    let page = parse_exposition(text).expect("/metrics parses");
    let value = |name: &str, key: &str, label: &str| -> u64 {
        page.named(name)
            .filter(|s| s.label(key) == Some(label))
            .map(|s| s.value as u64)
            .sum()
    };
    let mut rows = Vec::new();
    for (kind, calls, errors, key) in [
        (
            "function",
            "profilis_function_calls_total",
            "profilis_function_errors_total",
            "function",
        ),
        (
            "db",
            "profilis_db_queries_total",
            "profilis_db_query_errors_total",
            "db_vendor",
        ),
    ] {
        for sample in page.named(calls) {
            let name = sample.label(key).expect("labelled").to_owned();
            rows.push((
                format!("{kind}:{name}"),
                Counts {
                    calls: sample.value as u64,
                    errors: value(errors, key, &name),
                    statuses: Vec::new(),
                },
            ));
        }
    }
    let mut routes: Vec<String> = page
        .named("profilis_http_requests_total")
        .map(|s| s.label("route").expect("a route").to_owned())
        .collect();
    routes.sort();
    routes.dedup();
    for route in routes {
        let mut statuses: Vec<(String, u64)> = page
            .named("profilis_http_requests_total")
            .filter(|s| s.label("route") == Some(route.as_str()))
            .map(|s| (s.label("status").unwrap().to_owned(), s.value as u64))
            .collect();
        statuses.sort();
        let calls = statuses.iter().map(|(_, n)| n).sum();
        let errors = statuses
            .iter()
            .filter(|(s, _)| s.starts_with('5'))
            .map(|(_, n)| n)
            .sum();
        rows.push((
            format!("http:{route}"),
            Counts {
                calls,
                errors,
                statuses,
            },
        ));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Reads the table as the page shows it.
const READ_ROWS: &str = r#"
return Array.from(document.querySelectorAll('#rows tbody tr[data-row]')).map(function (tr) {
  var cells = {};
  tr.querySelectorAll('td[data-col]').forEach(function (td) {
    cells[td.dataset.col] = { value: td.dataset.value === undefined ? null : td.dataset.value,
                              text: td.textContent.trim() };
  });
  var statuses = [];
  tr.querySelectorAll('[data-status]').forEach(function (s) {
    statuses.push([s.dataset.status, Number(s.dataset.count)]);
  });
  var spark = tr.querySelector('td[data-col=spark] svg');
  return { row: tr.dataset.row, calls: Number(tr.dataset.calls), errors: Number(tr.dataset.errors),
           cells: cells, statuses: statuses,
           spark_points: spark ? Number(spark.getAttribute('data-points')) : 0,
           visible: tr.offsetParent !== null };
});
"#;

async fn js(client: &Client, script: &str) -> Value {
    client
        .execute(script, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("the script failed: {e}\n{script}"))
}

/// Polls `condition` (a JS expression) until it is true; panics with the page's state if it
/// never is.
async fn wait_until(client: &Client, condition: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let script = format!("return !!({condition});");
    loop {
        if js(client, &script).await == json!(true) {
            return;
        }
        if Instant::now() >= deadline {
            let state = js(
                client,
                "return { state: document.body.dataset.state, url: location.href, \
                 banner: document.getElementById('banner').textContent, \
                 status: document.getElementById('status').textContent };",
            )
            .await;
            panic!("waited {limit:?} for `{condition}`; the page: {state}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The number the page shows, against the one in the JSON: the exact value in `data-value`,
/// and the text rounded to 3 significant digits.
fn check_number(what: &str, shown: &Value, expected: &Value) {
    match expected.as_f64() {
        None => {
            assert!(expected.is_null(), "{what}: {expected} is a number or null");
            assert_eq!(shown["value"], json!(""), "{what}: null shows no value");
            assert_eq!(shown["text"], json!("–"), "{what}: null shows a dash");
        }
        Some(want) => {
            let value: f64 = shown["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what}: no value in {shown}"));
            assert_eq!(value, want, "{what}: the page's value against the JSON's");
            let text: f64 = shown["text"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{what}: the text of {shown} is not a number"));
            assert!(
                (text - want).abs() <= want.abs() * 0.005 + 0.5e-3,
                "{what}: shows {text}, the JSON has {want}"
            );
        }
    }
}

/// Capabilities for headless Chromium: no sandbox (CI runs as root), and none of its
/// background connections (the machine has no network beyond loopback).
fn capabilities(chromium: &Path) -> serde_json::Map<String, Value> {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--disable-quic",
                "--window-size=1300,1000", "--lang=en-US"
            ]
        }),
    );
    caps
}

async fn start_browser(driver: &Path, chromium: &Path) -> (Process, Client) {
    let port = free_port();
    let log = target_dir().join("chromedriver.log");
    let process = Process {
        child: Command::new(driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
        what: "chromedriver",
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // It listens once it is ready (its answers keep the connection open, so a connection is
    // the readiness test here; the session below is the real one).
    wait_for(Duration::from_secs(30), || {
        std::net::TcpStream::connect(addr).ok()
    })
    .unwrap_or_else(|| panic!("chromedriver did not listen; see {}", log.display()));
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities(chromium))
        .connect(&format!("http://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("no Chromium session: {e}; see {}", log.display()));
    (process, client)
}

/// Waits until `/metrics` has every round's calls and `/metrics.json` (window 15 min) has
/// every row `/metrics` has, with the same calls: the collector hands a cycle to both within
/// a flush interval.
fn settled(demo: &Demo, token: Option<&str>) -> (Vec<(String, Counts)>, Value) {
    // The counts of the previous poll: settled means unchanged across two polls (a request
    // still under way when the demo said "done" ends a moment later on a loaded machine).
    let mut previous: Option<Vec<(String, Counts)>> = None;
    wait_for(Duration::from_secs(30), || {
        let (_, text) = demo.get("/metrics", token);
        let counts = counts_from_metrics(&text);
        let unchanged = previous.as_ref() == Some(&counts);
        if !unchanged {
            previous = Some(counts);
            std::thread::sleep(Duration::from_millis(250));
            return None;
        }
        let json = demo.json("/metrics.json?window=900", token);
        let rows = json["rows"].as_array()?;
        let all = counts.iter().all(|(key, c)| {
            rows.iter().any(|r| {
                format!(
                    "{}:{}",
                    r["kind"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or("")
                ) == *key
                    && r["calls"].as_u64() == Some(c.calls)
            })
        });
        // The last round's calls are in (the demo printed "done" right after making them).
        let price = counts
            .iter()
            .find(|(k, _)| k == "function:dashboard_demo::price_order")
            .map(|(_, c)| c.calls);
        (all && counts.len() == rows.len() && price == Some(ROUNDS)).then_some((counts, json))
    })
    .expect("/metrics.json has the rows and calls of /metrics within 30 s")
}

async fn main_page(client: &Client, demo: &mut Demo) {
    demo.wait_until_done();
    let (counts, summary) = settled(demo, None);
    for expected in [
        "function:dashboard_demo::price_order",
        "function:dashboard_demo::checksum",
        "function:dashboard_demo::parse_coupon",
        "function:dashboard_demo::load_user",
        "http:/users/{id}",
        "http:/checkout/{n}",
        "http:/slow",
        "db:sqlite",
    ] {
        assert!(
            counts.iter().any(|(k, _)| k == expected),
            "/metrics has no {expected}: {counts:?}"
        );
    }
    let price = &counts
        .iter()
        .find(|(k, _)| k == "function:dashboard_demo::price_order")
        .unwrap()
        .1;
    assert_eq!(
        (price.calls, price.errors),
        (ROUNDS, 1),
        "one price per round"
    );

    client.goto(&demo.url("/")).await.expect("the page opens");
    wait_until(
        client,
        "document.body.dataset.state === 'live'",
        Duration::from_secs(60),
    )
    .await;
    client
        .find(Locator::Css("#window"))
        .await
        .unwrap()
        .select_by_value("900")
        .await
        .unwrap();
    wait_until(
        client,
        "document.body.dataset.state === 'live' && \
         document.getElementById('covered').dataset.window === '900'",
        Duration::from_secs(30),
    )
    .await;

    // Who: the service the demo set, the instance and worker the JSON has.
    let who = js(
        client,
        "return ['service','instance','worker'].map(function (id) { \
         return document.getElementById(id).textContent; });",
    )
    .await;
    assert_eq!(who[0], json!("shop"));
    assert_eq!(who[1], summary["instance"]);
    assert_eq!(who[2], summary["worker"]);

    // Every row, with the counts of /metrics and the numbers of /metrics.json.
    let rows = js(client, READ_ROWS).await;
    let rows = rows.as_array().expect("rows");
    let mut shown: Vec<String> = rows
        .iter()
        .map(|r| r["row"].as_str().unwrap().to_owned())
        .collect();
    shown.sort();
    let keys: Vec<&String> = counts.iter().map(|(k, _)| k).collect();
    assert_eq!(shown.iter().collect::<Vec<_>>(), keys, "the page's rows");
    for (key, want) in &counts {
        let row = rows.iter().find(|r| r["row"] == json!(key)).unwrap();
        assert_eq!(row["calls"], json!(want.calls), "{key}: calls");
        assert_eq!(row["errors"], json!(want.errors), "{key}: errors");
        assert_eq!(
            row["cells"]["calls"]["text"],
            json!(want.calls.to_string()),
            "{key}: the calls shown"
        );
        let statuses: Vec<(String, u64)> = row["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s[0].as_str().unwrap().to_owned(), s[1].as_u64().unwrap()))
            .collect();
        assert_eq!(statuses, want.statuses, "{key}: statuses");
        assert_eq!(
            row["spark_points"],
            json!(60),
            "{key}: a 60-point sparkline"
        );
        let json_row = summary["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                format!(
                    "{}:{}",
                    r["kind"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ) == *key
            })
            .unwrap();
        for col in ["p50_ms", "p95_ms", "p99_ms", "max_ms", "error_pct"] {
            check_number(&format!("{key} {col}"), &row["cells"][col], &json_row[col]);
        }
    }
    let total_calls = js(
        client,
        "return [document.getElementById('total-calls').dataset.value, \
         document.getElementById('total-errors').dataset.value];",
    )
    .await;
    let (calls, errors) = counts
        .iter()
        .fold((0, 0), |(c, e), (_, n)| (c + n.calls, e + n.errors));
    assert_eq!(
        total_calls,
        json!([calls.to_string(), errors.to_string()]),
        "the totals are the sums of /metrics"
    );
    let totals = js(
        client,
        "return ['total-p50','total-p95','total-p99'].map(function (id) { \
         var n = document.getElementById(id); \
         return { value: n.dataset.value, text: n.firstChild ? n.firstChild.textContent : '' }; });",
    )
    .await;
    for (i, key) in ["p50_ms", "p95_ms", "p99_ms"].iter().enumerate() {
        check_number(&format!("total {key}"), &totals[i], &summary["totals"][key]);
    }

    // The known error, with its type, and a trace id of 32 hex digits as errors.json has it.
    let errors = js(
        client,
        "return Array.from(document.querySelectorAll('#errors tbody tr[data-error]')).map(function (tr) { \
         return { row: tr.dataset.error, error: tr.querySelector('[data-col=error]').textContent, \
         trace: tr.querySelector('[data-col=trace_id]').textContent }; });",
    )
    .await;
    let known = errors
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["error"].as_str().unwrap_or("").contains(ERROR_MESSAGE))
        .unwrap_or_else(|| panic!("no {ERROR_MESSAGE:?} in the error list: {errors}"));
    assert_eq!(known["row"], json!("function:dashboard_demo::price_order"));
    assert!(
        known["error"].as_str().unwrap().contains("PriceError"),
        "the error's type is shown: {known}"
    );
    let listed = demo.json("/errors.json", None);
    let entry = listed["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["exception_value"] == json!(ERROR_MESSAGE))
        .expect("errors.json has the known error");
    assert_eq!(known["trace"], entry["trace_id"]);
    assert!(known["trace"].as_str().unwrap().len() == 32);

    // The slowest calls, slowest first, with their trace ids: /slow sleeps 40 ms.
    let slowest = js(
        client,
        "return Array.from(document.querySelectorAll('#slowest tbody tr[data-slow]')).map(function (tr) { \
         return { row: tr.dataset.slow, ms: Number(tr.querySelector('[data-col=dur_ms]').dataset.value), \
         trace: tr.querySelector('[data-col=trace_id]').textContent }; });",
    )
    .await;
    let slowest = slowest.as_array().expect("slowest rows");
    let ms: Vec<f64> = slowest.iter().map(|s| s["ms"].as_f64().unwrap()).collect();
    assert!(ms.windows(2).all(|w| w[0] >= w[1]), "slowest first: {ms:?}");
    let slow = slowest
        .iter()
        .find(|s| s["row"] == json!("http:/slow"))
        .unwrap_or_else(|| panic!("/slow is among the slowest calls: {slowest:?}"));
    assert!(
        slow["ms"].as_f64().unwrap() >= 40.0,
        "/slow took 40 ms: {slow}"
    );
    assert_eq!(slow["trace"].as_str().map(str::len), Some(32), "{slow}");

    // The screenshot, in the light theme, before the controls below change the view.
    let png = client.screenshot().await.expect("a screenshot");
    let path = target_dir().join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("screenshot: {}", path.display());

    // Sorting: by p95, slowest first, then the other way.
    let p95_order = "return Array.from(document.querySelectorAll('#rows tbody tr[data-row]')).map(function (tr) { \
                     var v = tr.querySelector('[data-col=p95_ms]').dataset.value; return v === '' ? null : Number(v); });";
    let header = client
        .find(Locator::Css("th[data-sort=p95_ms]"))
        .await
        .unwrap();
    header.click().await.unwrap();
    let descending = js(client, p95_order).await;
    header.click().await.unwrap();
    let ascending = js(client, p95_order).await;
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .collect()
    };
    let (down, up) = (numbers(&descending), numbers(&ascending));
    assert!(down.len() > 2, "rows with a p95: {descending}");
    assert!(
        down.windows(2).all(|w| w[0] >= w[1]),
        "descending: {down:?}"
    );
    assert!(up.windows(2).all(|w| w[0] <= w[1]), "ascending: {up:?}");

    // The filter: only the database row is left.
    let filter = client.find(Locator::Css("#filter")).await.unwrap();
    filter.send_keys("sqlite").await.unwrap();
    let left = js(client, READ_ROWS).await;
    let left: Vec<&Value> = left.as_array().unwrap().iter().map(|r| &r["row"]).collect();
    assert_eq!(left, vec![&json!("db:sqlite")], "filtered by 'sqlite'");
    filter.clear().await.unwrap();
    filter.send_keys(" ").await.unwrap();
    filter.clear().await.unwrap();

    // The theme toggle: another theme and background, remembered over a reload.
    let theme = "return { theme: document.documentElement.dataset.theme, \
                 background: getComputedStyle(document.body).backgroundColor };";
    let before = js(client, theme).await;
    client
        .find(Locator::Css("#theme-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let after = js(client, theme).await;
    assert_ne!(
        before["theme"], after["theme"],
        "the toggle changes the theme"
    );
    assert_ne!(before["background"], after["background"], "and the colours");
    client.refresh().await.unwrap();
    wait_until(
        client,
        "document.body.dataset.state === 'live'",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(js(client, theme).await, after, "the theme is remembered");

    // The same page mounted in the demo's axum router under a prefix: its data comes from
    // next to it, and is the same.
    client.goto(&demo.mounted).await.unwrap();
    wait_until(
        client,
        "document.body.dataset.state === 'live' && \
         document.querySelectorAll('#rows tbody tr[data-row]').length > 0",
        Duration::from_secs(30),
    )
    .await;
    let mounted = js(client, READ_ROWS).await;
    let mut mounted: Vec<(String, u64)> = mounted
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_str().unwrap().to_owned(),
                r["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    mounted.sort();
    let expected: Vec<(String, u64)> = counts.iter().map(|(k, c)| (k.clone(), c.calls)).collect();
    assert_eq!(
        mounted, expected,
        "the mounted page's rows, at {}",
        demo.mounted
    );

    // The program goes away: the page says so, and marks what it shows as stale.
    demo.process.stop();
    wait_until(
        client,
        "document.body.dataset.state === 'stale' && !document.getElementById('banner').hidden",
        Duration::from_secs(30),
    )
    .await;
    let banner = js(
        client,
        "return document.getElementById('banner').textContent;",
    )
    .await;
    assert!(
        banner
            .as_str()
            .unwrap()
            .starts_with("data could not be loaded: ")
            && banner.as_str().unwrap().contains("retrying"),
        "the banner: {banner}"
    );
    let still = js(client, READ_ROWS).await;
    assert!(
        !still.as_array().unwrap().is_empty(),
        "the last numbers stay, marked stale"
    );
    assert_eq!(
        js(
            client,
            "return document.getElementById('status').textContent;"
        )
        .await,
        json!("stale")
    );
}

async fn with_token(client: &Client, demo: &Demo) {
    demo.wait_until_done();
    let (status, _) = demo.get("/metrics.json", None);
    assert_eq!(status, 401, "the JSON needs the token");
    settled(demo, Some(TOKEN));

    let data_shown = "document.querySelectorAll('#rows tbody tr[data-row]').length";
    client
        .goto(&demo.url("/"))
        .await
        .expect("the page opens without the token");
    wait_until(
        client,
        "document.body.dataset.state === 'auth'",
        Duration::from_secs(60),
    )
    .await;
    let form = client.find(Locator::Css("#token-form")).await.unwrap();
    assert!(
        form.is_displayed().await.unwrap(),
        "the page asks for the token"
    );
    assert!(
        !client
            .find(Locator::Css("#content"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "and shows no data"
    );
    assert_eq!(js(client, &format!("return {data_shown};")).await, json!(0));
    assert_eq!(
        js(
            client,
            "return document.getElementById('service').textContent;"
        )
        .await,
        json!("–")
    );

    client
        .goto(&demo.url(&format!("/?token={TOKEN}")))
        .await
        .unwrap();
    wait_until(
        client,
        &format!("document.body.dataset.state === 'live' && {data_shown} > 0"),
        Duration::from_secs(30),
    )
    .await;
    let kept = js(
        client,
        "return { search: location.search, token: localStorage.getItem('profilis.token') };",
    )
    .await;
    assert_eq!(
        kept,
        json!({"search": "", "token": TOKEN}),
        "kept, and out of the address bar"
    );

    // A refused token: the form again, then the right one typed into it.
    js(
        client,
        "localStorage.setItem('profilis.token', 'wrong'); return null;",
    )
    .await;
    client.refresh().await.unwrap();
    wait_until(
        client,
        &format!("document.body.dataset.state === 'auth' && {data_shown} === 0"),
        Duration::from_secs(30),
    )
    .await;
    client
        .find(Locator::Css("#token-input"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    client
        .find(Locator::Css("#token-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        client,
        &format!("document.body.dataset.state === 'live' && {data_shown} > 0"),
        Duration::from_secs(30),
    )
    .await;
}

#[test]
fn the_dashboard_in_chromium() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let mut plain = Demo::start("plain", &[]);
    let secured = Demo::start("token", &["--token", TOKEN]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut driver_process, client) = start_browser(&driver, &chromium).await;
        let outcome = AssertUnwindSafe(async {
            main_page(&client, &mut plain).await;
            with_token(&client, &secured).await;
        })
        .catch_unwind()
        .await;
        // Ends the session (and its Chromium) before chromedriver, whatever happened.
        let _ = client.close().await;
        driver_process.stop();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

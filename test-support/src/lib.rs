//! What the tests of the profilis crates share: a minimal HTTP/1.1 client over a real loopback
//! socket, finding the external tools CI installs (promtool, prometheus, PostgreSQL), reading
//! exposition text (strictly, as Prometheus does: `parse_exposition`, and OpenMetrics:
//! `parse_openmetrics`), and capturing what async
//! code records (`profilis::testing` on a tokio runtime). Not published.
#![allow(missing_docs)]

mod exposition;
mod openmetrics;

pub use exposition::{parse_exposition, unescape, Exemplar, Exposition, Sample};
pub use openmetrics::{parse_openmetrics, Family, OpenMetrics};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A response: status, headers (lowercase names), body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` with extra headers; the connection is closed after the response.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    try_get(addr, path, headers).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// Connects from `source` (any address of the loopback network on Linux, such as
/// `127.0.0.2`) to `addr` within `timeout`.
pub fn connect_from(
    source: std::net::Ipv4Addr,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::new(source.into(), 0).into())?;
    socket.connect_timeout(&addr.into(), timeout)?;
    Ok(socket.into())
}

/// As [`get`], but a connection error is returned (for servers still starting).
pub fn try_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "the connection closed after {} bytes, without a complete response head",
                raw.len()
            ),
        ));
    }
    Ok(parse(&raw))
}

fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..line_end])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Percent-encodes a query-string value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The path of `name` in a `PATH` directory, if any.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Reports a missing external requirement: under `CI=true` the test fails loudly (CI installs
/// it); elsewhere it says the test was skipped.
pub fn missing(what: &str, install: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "{what} is not installed; .ci/run installs it ({install})"
    );
    eprintln!("SKIPPED: {what} is not installed ({install}); this test is required under CI=true");
}

/// Finds an external tool from Debian's `prometheus` package; see [`missing`] for when it is
/// not there.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = find_on_path(name);
    if found.is_none() {
        missing(&format!("`{name}`"), "apt-get install prometheus");
    }
    found
}

/// This process's resident memory in bytes, from `/proc/self/statm` (Linux; pages of 4 KiB).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages in /proc/self/statm");
    pages * 4096
}

/// Runs `promtool check metrics` on `page`, panicking with its complaints if it refuses the
/// page. Without promtool: fails under CI, says it skipped otherwise ([`tool`]).
pub fn promtool_check_metrics(page: &[u8]) {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(page)
        .expect("promtool reads the page");
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(page)
    );
}

/// A sink that keeps every event it is given, for a test to look through.
#[derive(Clone, Default)]
pub struct KeepEvents(pub std::sync::Arc<std::sync::Mutex<Vec<profilis::Event>>>);

impl profilis::Sink for KeepEvents {
    fn write(&mut self, batch: &profilis::Batch<'_>) -> Result<(), profilis::SinkError> {
        let mut events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        events.extend(batch.events.iter().cloned());
        Ok(())
    }
}

impl KeepEvents {
    /// What `pick` finds among the events kept, once it finds something (waiting at most
    /// 10 s; `what` names it if it never does).
    ///
    /// # Panics
    /// If nothing is found in time.
    pub fn when<T>(&self, what: &str, pick: impl Fn(&[profilis::Event]) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = pick(&self.0.lock().unwrap_or_else(|e| e.into_inner())) {
                return found;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The page of `path` (`/metrics`, `/metrics.json`) served at `addr`, once `done` holds for it
/// (waiting at most 10 s).
///
/// # Panics
/// If `done` does not hold in time; the message has `what` and the last page.
pub fn page_when(addr: SocketAddr, path: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(addr, path, &[]).text();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the sample `name{...}` in exposition text whose labels include every `want`.
pub fn sample(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, labels) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let all = want
            .iter()
            .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

/// Runs `future` to completion on a current-thread tokio runtime under a fresh collector
/// ([`profilis::testing::capture`]).
pub fn capture_async<F: std::future::Future>(
    future: F,
) -> (F::Output, profilis::testing::Captured) {
    profilis::testing::capture(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
            .block_on(future)
    })
}

/// Like [`capture_async`], on a multi-thread runtime of two workers.
pub fn capture_multi_thread<F>(future: F) -> (F::Output, profilis::testing::Captured)
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    profilis::testing::capture(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("a tokio runtime")
            .block_on(future)
    })
}

/// `ms` milliseconds, in nanoseconds.
pub fn ms(ms: u64) -> u64 {
    ms * 1_000_000
}

/// A loopback port that was free a moment ago (for a server a test starts as a process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A Prometheus server a test started (the `prometheus` binary at `bin`), scraping `target`
/// every second, with its data and log in a directory of its own; stopped by its PID (and the
/// directory removed) when dropped.
pub struct Prometheus {
    child: Option<std::process::Child>,
    web: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts it on a free loopback port, with `extra` command-line arguments (a feature flag,
    /// say); `name` names its directory.
    ///
    /// # Panics
    /// If its directory cannot be written or the binary cannot be started.
    pub fn start(
        bin: &std::path::Path,
        name: &str,
        target: SocketAddr,
        extra: &[&str],
    ) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("profilis-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for Prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: profilis\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("Prometheus's configuration");
        let web: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("Prometheus's log");
        let child = std::process::Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child: Some(child),
            web,
            dir,
        }
    }

    /// Where its web API listens.
    pub fn web(&self) -> SocketAddr {
        self.web
    }

    /// The value of the single sample an instant query `promql` returns now, if it returns
    /// one and it is finite.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let response = try_get(
            self.web,
            &format!("/api/v1/query?query={}", encode(promql)),
            &[],
        )
        .ok()?;
        if response.status != 200 {
            return None;
        }
        let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
        let result = body["data"]["result"].as_array()?;
        let value = result.first()?["value"][1].as_str()?;
        value.parse().ok().filter(|v: &f64| v.is_finite())
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Stops it (by the PID of the process this started), keeping its log.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

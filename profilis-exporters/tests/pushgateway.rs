//! Pushing to Debian's `prometheus-pushgateway`, started by the test on a free loopback port
//! (with no persistence file): push (PUT), push-add (POST) and delete read back through the
//! gateway's `/metrics`, grouping labels with a `/` (base64), basic auth against a gateway
//! started with a `--web.config.file` that requires it, the gateway's refusal of a bad body,
//! a closed port and a server that never answers as typed errors, and the exporter's guard
//! pushing after its last flush when it drops, its metrics intact after a failed push.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use profilis_core::Site;
use profilis_exporters::{Exporter, PushError, PushMethod, Pushgateway};
use profilis_test_support::{
    find_on_path, free_port, missing, promtool_check_metrics, sample, try_get, wait_for,
};

static SITE: Site = Site::function("pushgateway_tests::job", None);

/// Longest any wait in these tests lasts; far above what a healthy run needs.
const PATIENCE: Duration = Duration::from_secs(30);

/// The bcrypt hash (cost 4, the lowest, to keep the test quick) of the password `s3cret`, made
/// with `python3 -c "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"`.
const S3CRET_BCRYPT: &str = "$2b$04$wWspYtiSv2AlaaBq1Jg9luocwgk5HNof/zPpwXea5pxRYIjuTjx7K";

/// A Pushgateway started by this test; stopped by the PID of its `Child` when dropped.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    auth: Option<String>,
    config: Option<PathBuf>,
}

impl Gateway {
    /// Starts `prometheus-pushgateway` on `addr` (a free loopback port when `None`), asking
    /// for basic auth `ci:s3cret` if `basic_auth`. `None` (and "skipped", or a failure under
    /// CI) when it is not installed.
    fn start(addr: Option<SocketAddr>, basic_auth: bool) -> Option<Gateway> {
        let Some(binary) = find_on_path("prometheus-pushgateway") else {
            missing(
                "`prometheus-pushgateway`",
                "apt-get install prometheus-pushgateway",
            );
            return None;
        };
        let addr = addr.unwrap_or_else(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let mut command = Command::new(binary);
        command
            .arg(format!("--web.listen-address={addr}"))
            .arg("--persistence.file=")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let config = basic_auth.then(|| {
            let path = std::env::temp_dir().join(format!(
                "profilis-pushgateway-test-{}-{}.yml",
                std::process::id(),
                addr.port()
            ));
            fs::write(
                &path,
                format!("basic_auth_users:\n  ci: '{S3CRET_BCRYPT}'\n"),
            )
            .unwrap();
            command.arg(format!("--web.config.file={}", path.display()));
            path
        });
        let child = command.spawn().expect("the Pushgateway starts");
        let gateway = Gateway {
            child,
            addr,
            auth: basic_auth.then(|| "Basic Y2k6czNjcmV0".to_owned()), // ci:s3cret
            config,
        };
        // Ready when it answers at all (401 with auth on).
        wait_for(PATIENCE, || try_get(addr, "/-/ready", &[]).ok())
            .expect("the Pushgateway answers on /-/ready");
        Some(gateway)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The gateway's `/metrics`.
    fn metrics(&self) -> String {
        let headers: Vec<(&str, &str)> = self
            .auth
            .as_deref()
            .map(|auth| ("Authorization", auth))
            .into_iter()
            .collect();
        let response = try_get(self.addr, "/metrics", &headers).expect("the gateway's /metrics");
        assert_eq!(response.status, 200, "{}", response.text());
        response.text()
    }

    /// The gateway's `/metrics` once it satisfies `want`.
    fn metrics_until(&self, want: impl Fn(&str) -> bool) -> String {
        wait_for(PATIENCE, || Some(self.metrics()).filter(|page| want(page)))
            .unwrap_or_else(|| panic!("the gateway never showed it:\n{}", self.metrics()))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(config) = &self.config {
            let _ = fs::remove_file(config);
        }
    }
}

const GROUP: &[(&str, &str)] = &[("job", "profilis test"), ("shard", "eu/1")];

#[test]
fn push_push_add_and_delete_read_back_from_the_gateway() {
    let Some(gateway) = Gateway::start(None, false) else {
        return;
    };
    let group = Pushgateway::new(&gateway.url(), "profilis test")
        .unwrap()
        .grouping("shard", "eu/1")
        .unwrap();
    let other = Pushgateway::new(&gateway.url(), "profilis test")
        .unwrap()
        .grouping("shard", "us")
        .unwrap();

    let both =
        "# TYPE rows_total counter\nrows_total 1\n# TYPE lag_seconds gauge\nlag_seconds 2.5\n";
    group.push(PushMethod::Put, both).unwrap();
    other
        .push(PushMethod::Put, "# TYPE rows_total counter\nrows_total 9\n")
        .unwrap();
    let page = gateway.metrics();
    assert_eq!(sample(&page, "rows_total", GROUP), Some(1.0), "{page}");
    assert_eq!(sample(&page, "lag_seconds", GROUP), Some(2.5), "{page}");
    assert_eq!(
        sample(&page, "rows_total", &[("shard", "us")]),
        Some(9.0),
        "{page}"
    );

    // Push-add replaces only the metrics of the names pushed.
    group
        .push(
            PushMethod::Post,
            "# TYPE rows_total counter\nrows_total 5\n",
        )
        .unwrap();
    let page = gateway.metrics();
    assert_eq!(sample(&page, "rows_total", GROUP), Some(5.0), "{page}");
    assert_eq!(sample(&page, "lag_seconds", GROUP), Some(2.5), "{page}");

    // Push replaces the whole group.
    group
        .push(PushMethod::Put, "# TYPE rows_total counter\nrows_total 6\n")
        .unwrap();
    let page = gateway.metrics();
    assert_eq!(sample(&page, "rows_total", GROUP), Some(6.0), "{page}");
    assert_eq!(sample(&page, "lag_seconds", GROUP), None, "{page}");

    // Delete removes the group, and only it.
    group.delete().unwrap();
    let page = gateway.metrics();
    assert_eq!(sample(&page, "rows_total", GROUP), None, "{page}");
    assert_eq!(
        sample(&page, "rows_total", &[("shard", "us")]),
        Some(9.0),
        "{page}"
    );
}

#[test]
fn a_refused_body_is_a_typed_error_with_the_gateways_reason() {
    let Some(gateway) = Gateway::start(None, false) else {
        return;
    };
    let group = Pushgateway::new(&gateway.url(), "bad").unwrap();
    let err = group
        .push(PushMethod::Put, "this is not { exposition\n")
        .unwrap_err();
    match &err {
        PushError::Status {
            method,
            url,
            status,
            body,
        } => {
            assert_eq!((*method, *status), ("PUT", 400), "{err}");
            assert_eq!(url, &format!("{}/metrics/job/bad", gateway.url()));
            assert!(!body.is_empty(), "{err}");
        }
        other => panic!("not a Status error: {other}"),
    }
    assert!(err.to_string().contains("/metrics/job/bad"), "{err}");
}

#[test]
fn basic_auth_is_sent_to_a_gateway_that_requires_it() {
    let Some(gateway) = Gateway::start(None, true) else {
        return;
    };
    let text = "# TYPE rows_total counter\nrows_total 3\n";
    let without = Pushgateway::new(&gateway.url(), "auth").unwrap();
    let err = without.push(PushMethod::Put, text).unwrap_err();
    assert!(
        matches!(err, PushError::Status { status: 401, .. }),
        "{err}"
    );
    let wrong = without.clone().basic_auth("ci", "wrong").unwrap();
    let err = wrong.push(PushMethod::Put, text).unwrap_err();
    assert!(
        matches!(err, PushError::Status { status: 401, .. }),
        "{err}"
    );
    assert!(
        !format!("{err} {wrong:?}").contains("wrong"),
        "no password in messages"
    );

    let right = without.basic_auth("ci", "s3cret").unwrap();
    right.push(PushMethod::Put, text).unwrap();
    let page = gateway.metrics();
    assert_eq!(
        sample(&page, "rows_total", &[("job", "auth")]),
        Some(3.0),
        "{page}"
    );
    right.delete().unwrap();
    let page = gateway.metrics();
    assert_eq!(sample(&page, "rows_total", &[("job", "auth")]), None);
}

/// A job or grouping value `.` or `..` would be a path's own segment: the gateway (Go's router)
/// redirects the cleaned path, `/metrics/job/..` to `/metrics`, and nothing is stored. They
/// go in base64, and the gateway stores them as given.
#[test]
fn dot_values_are_stored_as_given() {
    let Some(gateway) = Gateway::start(None, false) else {
        return;
    };
    let group = Pushgateway::new(&gateway.url(), "..")
        .unwrap()
        .grouping("dir", ".")
        .unwrap();
    group
        .push(PushMethod::Put, "# TYPE rows_total counter\nrows_total 4\n")
        .unwrap();
    let page = gateway.metrics();
    assert_eq!(
        sample(&page, "rows_total", &[("job", ".."), ("dir", ".")]),
        Some(4.0),
        "{page}"
    );
    group.delete().unwrap();
    let page = gateway.metrics();
    assert_eq!(
        sample(&page, "rows_total", &[("job", "..")]),
        None,
        "{page}"
    );
}

/// A server in front of the gateway that redirects every push (a proxy sending it to a login
/// page, which answers `200`): the redirect is not followed, and the push is an error naming
/// the status, not a success that stored nothing. Returns the request lines the server saw.
#[test]
fn a_redirect_is_an_error_not_followed() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};

    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&seen);
    // Serves until the test's process ends (it blocks in `accept` after the last request).
    std::thread::spawn(move || {
        for stream in server.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let request_line = request_line.trim().to_owned();
            let answer = if request_line.starts_with("GET /login") {
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nlogin"
            } else {
                "HTTP/1.1 302 Found\r\nlocation: /login\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            };
            log.lock().unwrap().push(request_line);
            stream.write_all(answer.as_bytes()).unwrap();
        }
    });
    let gateway = Pushgateway::new(&url, "nightly").unwrap();
    for method in [PushMethod::Put, PushMethod::Post] {
        let err = gateway.push(method, "a 1\n").unwrap_err();
        assert!(
            matches!(&err, PushError::Status { status: 302, .. }),
            "{err}"
        );
    }
    let err = gateway.delete().unwrap_err();
    assert!(
        matches!(
            &err,
            PushError::Status {
                method: "DELETE",
                status: 302,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "PUT /metrics/job/nightly HTTP/1.1",
            "POST /metrics/job/nightly HTTP/1.1",
            "DELETE /metrics/job/nightly HTTP/1.1"
        ]
    );
}

#[test]
fn a_closed_port_and_a_silent_server_are_typed_errors() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let gateway = Pushgateway::new(&closed, "closed").unwrap();
    let err = gateway.push(PushMethod::Put, "a 1\n").unwrap_err();
    assert!(
        matches!(&err, PushError::Request { method: "PUT", url, .. } if url == &format!("{closed}/metrics/job/closed")),
        "{err}"
    );
    let err = gateway.delete().unwrap_err();
    assert!(
        matches!(
            &err,
            PushError::Request {
                method: "DELETE",
                ..
            }
        ),
        "{err}"
    );

    // A server that accepts and never answers: the timeout ends the wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let gateway = Pushgateway::new(&url, "silent")
        .unwrap()
        .timeout(Duration::from_millis(300))
        .unwrap();
    let err = gateway.push(PushMethod::Post, "a 1\n").unwrap_err();
    assert!(
        matches!(&err, PushError::Request { method: "POST", .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn the_guard_pushes_after_its_last_flush_and_a_failed_push_loses_nothing() {
    let Some(gateway) = Gateway::start(None, false) else {
        return;
    };
    let addr = gateway.addr;
    let group = Pushgateway::new(&gateway.url(), "nightly")
        .unwrap()
        .grouping("shard", "eu/1")
        .unwrap()
        .timeout(Duration::from_secs(5))
        .unwrap();
    let exporter = Exporter::new()
        .service("pushgateway-test")
        // The collector flushes only at shutdown: a profiled call reaches the gateway only
        // through the push made when the guard drops, after the last flush.
        .flush_interval(Duration::from_secs(3600))
        .pushgateway(group);
    #[cfg(feature = "listener")]
    let exporter = exporter.without_listener();
    let guard = exporter.install().unwrap();
    let nightly = &[("job", "nightly"), ("shard", "eu/1")];

    metrics::describe_counter!("nightly_rows_total", "Rows imported");
    let rows = metrics::counter!("nightly_rows_total");
    rows.increment(3);
    guard.push(PushMethod::Put).unwrap();
    let page = gateway.metrics();
    assert_eq!(
        sample(&page, "nightly_rows_total", nightly),
        Some(3.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "profilis_function_calls_total", nightly),
        None,
        "{page}"
    );

    // The gateway goes away: the push fails, typed, and the metrics stay.
    drop(gateway);
    rows.increment(4);
    let err = guard.push(PushMethod::Put).unwrap_err();
    assert!(matches!(err, PushError::Request { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("/metrics/job/nightly/shard@base64/"),
        "{err}"
    );
    assert_eq!(
        sample(&guard.render(), "nightly_rows_total", &[]),
        Some(7.0)
    );
    // The page pushed passes promtool: every family has its help, the push failures' counter
    // among them.
    let pushed = guard.render();
    assert!(
        pushed.contains("# HELP profilis_push_failures_total "),
        "{pushed}"
    );
    promtool_check_metrics(pushed.as_bytes());

    // Back on the same address, it gets everything from the push when the guard drops,
    // the call flushed only then included.
    let Some(gateway) = Gateway::start(Some(addr), false) else {
        return;
    };
    profilis_core::adapter::enter(&SITE).exit(false);
    drop(guard);
    let page = gateway.metrics_until(|page| sample(page, "nightly_rows_total", nightly).is_some());
    assert_eq!(
        sample(&page, "nightly_rows_total", nightly),
        Some(7.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "profilis_function_calls_total",
            &[
                ("job", "nightly"),
                ("function", "pushgateway_tests::job"),
                ("service", "pushgateway-test")
            ]
        ),
        Some(1.0),
        "{page}"
    );
    // The counter of failed pushes at drop is there from the install (a failure returned to
    // the caller, as above, is the caller's to handle and not counted).
    assert_eq!(
        sample(&page, "profilis_push_failures_total", nightly),
        Some(0.0),
        "{page}"
    );
}

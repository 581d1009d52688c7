//! Declared metric sets on real pages: the exporter's listener over loopback, whose
//! before-scrape hook updates a published staged set; hooks that panic; which requests run the
//! hook; `promtool check metrics` on a page with every type. The exporter is installed once,
//! by one test, as a process can hold it once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use profilis_exporters::listener::{self, BeforeScrape, ListenerConfig};
use profilis_exporters::metric_set::{MetricSet, Published};
use profilis_exporters::{Exporter, ExpositionFormat};
use profilis_test_support::{
    get, parse_exposition, parse_openmetrics, promtool_check_metrics, sample, wait_for,
};

const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5";

/// A staged set with one metric of every type, and a function that runs one update of it.
fn every_type() -> (MetricSet, impl Fn(u64) + Send + Sync + 'static) {
    let set = MetricSet::staged();
    let current = set
        .gauge("app_requests_current", "Requests being served.", &[])
        .unwrap();
    let polls = set
        .counter("app_polls", "Updates of the set.", &["outcome"])
        .unwrap();
    let latency = set
        .histogram(
            "app_poll_seconds",
            "Time of an update.",
            &["target"],
            &[0.1, 1.0],
        )
        .unwrap();
    let version = set
        .info("app_target", "The target's version.", &["version"])
        .unwrap();
    let health = set
        .state_set(
            "app_health",
            "The target's health.",
            &[],
            &["healthy", "unhealthy"],
        )
        .unwrap();
    let update = {
        let set = set.clone();
        move |n: u64| {
            set.begin();
            current.set(&[], n as f64).unwrap();
            polls.inc(&["ok"]).unwrap();
            latency.observe(&["local"], 0.05 * n as f64).unwrap();
            version.set(&[&format!("1.{n}")]).unwrap();
            let state = if n.is_multiple_of(2) {
                "healthy"
            } else {
                "unhealthy"
            };
            health.set(&[], state).unwrap();
            set.commit();
        }
    };
    (set, update)
}

fn hook(f: impl Fn() + Send + Sync + 'static) -> BeforeScrape {
    let f = Arc::new(f);
    Arc::new(move || {
        let f = Arc::clone(&f);
        Box::pin(async move { f() })
    })
}

/// `HEAD path`, returning the status line.
fn head(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("HEAD {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    raw.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_scrape_of_the_exporter_sees_what_its_before_scrape_hook_committed() {
    let (set, update) = every_type();
    let scrapes = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&scrapes);
    let guard = Exporter::new()
        .listen_addr("127.0.0.1:0".parse().unwrap())
        .before_scrape(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            update(n);
            async {}
        })
        .install()
        .unwrap();
    let addr = guard.listen_addr().expect("the exporter listens");
    let published: Published = set.publish().unwrap();

    for n in 1..=3u64 {
        let page = get(addr, "/metrics", &[]).text();
        assert_eq!(
            sample(&page, "app_requests_current", &[]),
            Some(n as f64),
            "{page}"
        );
        assert_eq!(
            sample(&page, "app_polls_total", &[("outcome", "ok")]),
            Some(n as f64),
            "{page}"
        );
        assert_eq!(
            sample(&page, "app_poll_seconds_count", &[("target", "local")]),
            Some(n as f64),
            "{page}"
        );
        let version = format!("1.{n}");
        assert_eq!(
            sample(&page, "app_target_info", &[("version", &version)]),
            Some(1.0),
            "{page}"
        );
        let state = if n.is_multiple_of(2) {
            "healthy"
        } else {
            "unhealthy"
        };
        assert_eq!(
            sample(&page, "app_health", &[("app_health", state)]),
            Some(1.0),
            "{page}"
        );
        // Only the latest info: the old version is not served.
        assert_eq!(page.matches("app_target_info{").count(), 1, "{page}");
        let parsed = parse_exposition(&page).unwrap_or_else(|e| panic!("{e}\n{page}"));
        assert_eq!(
            parsed.help_of("app_requests_current"),
            Some("Requests being served.")
        );
        // The whole page, profilis's own families and the process metrics among them.
        promtool_check_metrics(page.as_bytes());
    }

    // HEAD runs the hook too; /healthz does not.
    assert!(head(addr, "/metrics", &[]).contains(" 200 "));
    assert_eq!(scrapes.load(Ordering::SeqCst), 4);
    assert_eq!(get(addr, "/healthz", &[]).status, 200);
    assert_eq!(scrapes.load(Ordering::SeqCst), 4);

    let open = get(addr, "/metrics", &[("Accept", OPENMETRICS)]).text();
    let parsed = parse_openmetrics(&open).unwrap_or_else(|e| panic!("{e}\n{open}"));
    let polls = parsed.family("app_polls").expect("the counter's family");
    assert_eq!(polls.kind, "counter", "{open}");
    assert_eq!(
        parsed.named("app_polls_total").next().map(|s| s.value),
        Some(5.0),
        "{open}"
    );
    assert!(parsed.family("app_poll_seconds").is_some(), "{open}");

    // `render` (the textfile's and the Pushgateway's page) has the set too, until the guard goes.
    let rendered = profilis_exporters::render_as(ExpositionFormat::Text).unwrap();
    assert!(rendered.contains("\napp_requests_current "), "{rendered}");
    drop(published);
    let page = get(addr, "/metrics", &[]).text();
    assert!(!page.contains("app_requests_current"), "{page}");
    assert!(
        page.contains("process_"),
        "the rest of the page stays: {page}"
    );
    drop(guard);
}

fn listener_with(hook: BeforeScrape, token: Option<&str>, set: &MetricSet) -> listener::Listener {
    let set = set.clone();
    let config = ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        before_scrape: Some(hook),
        bearer_token: token.map(str::to_owned),
        ..ListenerConfig::default()
    };
    listener::start_with_formats(config, Arc::new(move |format| set.render(format))).unwrap()
}

#[test]
fn a_hook_that_panics_still_gets_the_scrape_answered() {
    let set = MetricSet::new();
    let gauge = set.gauge("still_here", "", &[]).unwrap();
    gauge.set(&[], 7.0).unwrap();
    // A future that panics while it runs, and a function that panics before returning one.
    let in_future: BeforeScrape = Arc::new(|| Box::pin(async { panic!("the update failed") }));
    let in_function: BeforeScrape = Arc::new(|| panic!("the hook failed"));
    for hook in [in_future, in_function] {
        let listener = listener_with(hook, None, &set);
        for _ in 0..2 {
            let reply = get(listener.local_addr(), "/metrics", &[]);
            assert_eq!(reply.status, 200);
            assert_eq!(
                sample(&reply.text(), "still_here", &[]),
                Some(7.0),
                "{}",
                reply.text()
            );
        }
    }
}

#[test]
fn the_hook_runs_only_for_metrics_requests_let_in() {
    let set = MetricSet::new();
    let runs = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&runs);
    let listener = listener_with(
        hook(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }),
        Some("s3cret"),
        &set,
    );
    let addr = listener.local_addr();
    assert_eq!(get(addr, "/metrics", &[]).status, 401);
    assert_eq!(
        get(addr, "/metrics", &[("Authorization", "Bearer wrong")]).status,
        401
    );
    let auth = [("Authorization", "Bearer s3cret")];
    assert_eq!(get(addr, "/healthz", &auth).status, 200);
    assert_eq!(get(addr, "/nothing", &auth).status, 404);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(get(addr, "/metrics", &auth).status, 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(head(addr, "/metrics", &auth).contains(" 200 "));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn a_hook_that_waits_is_awaited_before_the_page_is_rendered() {
    let set = MetricSet::staged();
    let gauge = set.gauge("refreshed", "", &[]).unwrap();
    let hook_set = set.clone();
    let n = Arc::new(AtomicU64::new(0));
    let hook: BeforeScrape = Arc::new(move || {
        let (set, gauge, n) = (hook_set.clone(), gauge.clone(), Arc::clone(&n));
        Box::pin(async move {
            // The update finishes only after the hook has yielded to the runtime.
            tokio::time::sleep(Duration::from_millis(20)).await;
            set.begin();
            gauge
                .set(&[], (n.fetch_add(1, Ordering::SeqCst) + 1) as f64)
                .unwrap();
            set.commit();
        })
    });
    let listener = listener_with(hook, None, &set);
    for want in 1..=2 {
        let page = get(listener.local_addr(), "/metrics", &[]).text();
        assert_eq!(
            sample(&page, "refreshed", &[]),
            Some(f64::from(want)),
            "{page}"
        );
    }
}

/// A listener ending connections after `connection_timeout`, serving `set` after `hook`.
fn listener_timing_out(
    hook: BeforeScrape,
    connection_timeout: Duration,
    set: &MetricSet,
) -> listener::Listener {
    let set = set.clone();
    let config = ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        before_scrape: Some(hook),
        connection_timeout,
        ..ListenerConfig::default()
    };
    listener::start_with_formats(config, Arc::new(move |format| set.render(format))).unwrap()
}

/// Sends `GET /metrics` on a kept-alive connection and reads one response: its status and body,
/// or why there was none (the connection closed, or nothing within the read timeout).
fn scrape_on(stream: &mut TcpStream) -> Result<(u16, String), String> {
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .ok_or_else(|| format!("no content-length: {head}"))?;
            if raw.len() >= end + 4 + length {
                let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]);
                return Ok((status, body.into_owned()));
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => return Err(format!("closed after {} bytes", raw.len())),
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
            Err(e) => return Err(format!("read after {} bytes: {e}", raw.len())),
        }
    }
}

#[test]
fn the_wait_for_the_hook_does_not_count_against_the_connection_timeout() {
    let set = MetricSet::new();
    set.gauge("waited_for", "", &[])
        .unwrap()
        .set(&[], 1.0)
        .unwrap();
    let hook: BeforeScrape =
        Arc::new(|| Box::pin(async { tokio::time::sleep(Duration::from_millis(600)).await }));
    let listener = listener_timing_out(hook, Duration::from_secs(1), &set);
    let mut stream = TcpStream::connect(listener.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // At 0.6 s into a 1 s connection, a scrape whose hook takes 0.6 s: its answer is due
    // after the connection's time, without the wait.
    std::thread::sleep(Duration::from_millis(600));
    let (status, page) = scrape_on(&mut stream).expect("the scrape is answered");
    assert_eq!(status, 200);
    assert_eq!(sample(&page, "waited_for", &[]), Some(1.0), "{page}");
    // The connection still ends: idle, it is closed within its (pushed back) time.
    let mut rest = Vec::new();
    let closed = stream.read_to_end(&mut rest);
    assert!(
        matches!(closed, Ok(0)),
        "the connection ends once its time is up: {closed:?}"
    );
}

/// Sets its flag when dropped: the future holding it was dropped, finished or not.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_hook_that_never_finishes_is_dropped_after_the_connection_timeout() {
    let set = MetricSet::new();
    set.gauge("what_is_there", "", &[])
        .unwrap()
        .set(&[], 5.0)
        .unwrap();
    let started = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let hook: BeforeScrape = {
        let (started, dropped) = (Arc::clone(&started), Arc::clone(&dropped));
        Arc::new(move || {
            let guard = SetOnDrop(Arc::clone(&dropped));
            started.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            })
        })
    };
    let listener = listener_timing_out(hook, Duration::from_secs(1), &set);
    let reply = get(listener.local_addr(), "/metrics", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(
        sample(&reply.text(), "what_is_there", &[]),
        Some(5.0),
        "answered with what is there: {}",
        reply.text()
    );
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert!(
        wait_for(Duration::from_secs(5), || dropped
            .load(Ordering::SeqCst)
            .then_some(()))
        .is_some(),
        "the hook's future was dropped"
    );
}

#[test]
fn promtool_accepts_a_set_with_every_type() {
    let (set, update) = every_type();
    update(1);
    update(2);
    let page = set.render(ExpositionFormat::Text);
    for family in [
        "app_requests_current",
        "app_polls_total",
        "app_poll_seconds",
        "app_target_info",
        "app_health",
    ] {
        assert!(
            page.contains(&format!("# TYPE {family} ")),
            "{family}: {page}"
        );
    }
    promtool_check_metrics(page.as_bytes());
}

//! Declared metric sets on real pages: the exporter's listener over loopback, whose
//! before-scrape hook updates a published staged set; hooks that panic; which requests run the
//! hook; `promtool check metrics` on a page with every type. The exporter is installed once,
//! by one test, as a process can hold it once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use profilis_exporters::listener::{self, BeforeScrape, ListenerConfig};
use profilis_exporters::metric_set::{MetricSet, Published};
use profilis_exporters::{Exporter, ExpositionFormat};
use profilis_test_support::{
    get, parse_exposition, parse_openmetrics, promtool_check_metrics, sample,
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

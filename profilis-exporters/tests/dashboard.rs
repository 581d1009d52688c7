//! The dashboard's routes on the built-in listener over real loopback HTTP: the page without a
//! token, the JSON with one, a bad window, gzip, 404 when off; and the exporter's setting (on
//! by default on loopback, off on 0.0.0.0, `Exporter::dashboard`, `PROFILIS_DASHBOARD`) with
//! real calls reaching `/metrics.json`.

use std::io::Read as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use profilis_core::__private::enter;
use profilis_core::{ConfigError, Site};
use profilis_exporters::dashboard::{self, Dashboard, HTML_CONTENT_TYPE, JSON_CONTENT_TYPE};
use profilis_exporters::listener::{self, Listener, ListenerConfig};
use profilis_exporters::{Error, Exporter, GlobalLabels};
use profilis_test_support::{get, wait_for, Response};
use serde_json::Value;

const TOKEN: &str = "s3cret-token";

/// One exporter (and one collector) at a time, and the environment with it.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn labels() -> GlobalLabels {
    GlobalLabels {
        service: "shop".to_owned(),
        instance: "host-1".to_owned(),
        worker: "7".to_owned(),
    }
}

fn listener_with(dashboard: Option<Dashboard>, token: Option<&str>) -> Listener {
    listener::start(
        ListenerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            bearer_token: token.map(str::to_owned),
            dashboard,
            ..ListenerConfig::default()
        },
        Arc::new(|| "# nothing\n".to_owned()),
    )
    .expect("listener starts")
}

fn json(response: &Response) -> Value {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some(JSON_CONTENT_TYPE));
    serde_json::from_slice(&response.body).expect("JSON")
}

#[test]
fn the_page_is_open_and_the_json_needs_the_token() {
    let d = Dashboard::new(labels(), Some(TOKEN.to_owned()));
    let l = listener_with(Some(d), Some(TOKEN));
    let addr = l.local_addr();
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];

    let page = get(addr, "/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some(HTML_CONTENT_TYPE));
    assert!(
        page.text().contains("profilis dashboard"),
        "{}",
        page.text()
    );

    for path in ["/metrics.json", "/errors.json", "/slowest.json", "/metrics"] {
        let refused = get(addr, path, &[]);
        assert_eq!(refused.status, 401, "{path}");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"), "{path}");
        let wrong = get(addr, path, &[("Authorization", "Bearer guess")]);
        assert_eq!(wrong.status, 401, "{path}");
    }
    let metrics = json(&get(addr, "/metrics.json?window=300", &auth));
    assert_eq!(metrics["window_s"], 300);
    assert_eq!(metrics["service"], "shop");
    assert_eq!(metrics["worker"], "7");
    let errors = json(&get(addr, "/errors.json?limit=10", &auth));
    assert_eq!(errors["total"], 0);
    let slowest = json(&get(addr, "/slowest.json?window=900&limit=5", &auth));
    assert_eq!(slowest["window_s"], 900);
    assert_eq!(get(addr, "/metrics", &auth).status, 200);
    // Other paths still ask for the token first, so nothing can be probed without it.
    assert_eq!(get(addr, "/elsewhere", &[]).status, 401);
    assert_eq!(get(addr, "/elsewhere", &auth).status, 404);
}

#[test]
fn a_bad_window_or_limit_is_a_400_naming_the_value() {
    let l = listener_with(Some(Dashboard::new(labels(), None)), None);
    let addr = l.local_addr();
    for (path, value, allowed) in [
        ("/metrics.json?window=61", "61", "60, 300 or 900"),
        ("/slowest.json?window=5m", "5m", "60, 300 or 900"),
        ("/errors.json?limit=1000", "1000", "1 to 500"),
        ("/slowest.json?limit=abc", "abc", "1 to 100"),
    ] {
        let response = get(addr, path, &[]);
        assert_eq!(response.status, 400, "{path}");
        let text = response.text();
        assert!(
            text.contains(&format!("\"{value}\"")) && text.contains(allowed),
            "{path}: {text}"
        );
    }
}

#[test]
fn json_is_gzipped_for_clients_that_accept_it() {
    let l = listener_with(Some(Dashboard::new(labels(), None)), None);
    let response = get(
        l.local_addr(),
        "/metrics.json",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(response.body.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["window_s"], 60);
    let plain = get(l.local_addr(), "/metrics.json", &[]);
    assert_eq!(plain.header("content-encoding"), None);
}

#[test]
fn without_a_dashboard_its_paths_are_not_found() {
    let l = listener_with(None, None);
    for path in ["/", "/metrics.json", "/errors.json", "/slowest.json"] {
        assert_eq!(get(l.local_addr(), path, &[]).status, 404, "{path}");
    }
    assert_eq!(get(l.local_addr(), "/metrics", &[]).status, 200);
}

static WORK: Site = Site::function("dashboard_tests::work", None);

/// The `/metrics.json` status of the exporter's listener, and whether a dashboard is installed.
fn served(exporter: Exporter) -> (u16, bool) {
    let guard = exporter.install().expect("install");
    let port = guard.listen_addr().expect("a listener").port();
    let addr = ([127, 0, 0, 1], port).into();
    let status = get(addr, "/metrics.json", &[]).status;
    assert_eq!(guard.dashboard().is_some(), status == 200);
    let installed = dashboard::installed().is_some();
    drop(guard);
    assert!(
        dashboard::installed().is_none(),
        "uninstalled with the guard"
    );
    (status, installed)
}

#[test]
fn the_exporter_serves_the_dashboard_by_default_on_loopback_only() {
    let _serial = serial();
    let loopback = || Exporter::new().listen("127.0.0.1:0").unwrap();
    let everywhere = || Exporter::new().listen("0.0.0.0:0").unwrap();
    assert_eq!(served(loopback()), (200, true));
    assert_eq!(served(everywhere()), (404, false));
    assert_eq!(served(everywhere().dashboard(true)), (200, true));
    assert_eq!(served(loopback().dashboard(false)), (404, false));

    std::env::set_var("PROFILIS_DASHBOARD", " On");
    assert_eq!(served(everywhere()), (200, true));
    std::env::set_var("PROFILIS_DASHBOARD", "off");
    assert_eq!(served(loopback()), (404, false));
    // Code overrides the variable.
    assert_eq!(served(loopback().dashboard(true)), (200, true));
    std::env::set_var("PROFILIS_DASHBOARD", "maybe");
    let error = loopback().install().err().expect("refused");
    std::env::remove_var("PROFILIS_DASHBOARD");
    let Error::Config(ConfigError::Env { name, value, .. }) = &error else {
        panic!("{error:?}");
    };
    assert_eq!((*name, value.as_str()), ("PROFILIS_DASHBOARD", "maybe"));
    assert!(error.to_string().contains("1, true or on"), "{error}");

    // Without the listener it is off unless asked for (to mount its handlers).
    let guard = Exporter::new().without_listener().install().unwrap();
    assert!(guard.dashboard().is_none() && dashboard::installed().is_none());
    drop(guard);
    let guard = Exporter::new()
        .without_listener()
        .dashboard(true)
        .install()
        .unwrap();
    assert!(guard.dashboard().is_some() && dashboard::installed().is_some());
    drop(guard);

    // A token that cannot be sent in a header is refused at install, listener or not.
    for exporter in [
        Exporter::new().listen("127.0.0.1:0").unwrap(),
        Exporter::new().without_listener().dashboard(true),
    ] {
        let error = exporter
            .bearer_token("two words")
            .install()
            .err()
            .expect("refused");
        assert!(matches!(error, Error::BearerToken), "{error:?}");
        assert!(!error.to_string().contains("two words"), "{error}");
    }
}

#[test]
fn calls_reach_the_dashboard_through_the_collector() {
    let _serial = serial();
    let guard = Exporter::new()
        .listen("127.0.0.1:0")
        .unwrap()
        .bearer_token(TOKEN)
        .flush_interval(Duration::from_millis(20))
        .install()
        .unwrap();
    let addr = guard.listen_addr().unwrap();
    for _ in 0..5 {
        enter(&WORK).exit(false);
    }
    enter(&WORK).exit(true);
    let bearer = format!("Bearer {TOKEN}");
    let row = wait_for(Duration::from_secs(10), || {
        let metrics = json(&get(
            addr,
            "/metrics.json",
            &[("Authorization", bearer.as_str())],
        ));
        let rows = metrics["rows"].as_array()?.clone();
        rows.into_iter()
            .find(|r| r["name"] == "dashboard_tests::work" && r["calls"] == 6)
    })
    .expect("the calls show within 10 s");
    assert_eq!(row["kind"], "function");
    assert_eq!(row["errors"], 1);
}

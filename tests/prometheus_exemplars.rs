//! Exemplars end to end against a real Prometheus server run with
//! `--enable-feature=exemplar-storage`: it scrapes the built-in listener (asking for
//! OpenMetrics first, as it does by default), stores the duration buckets' exemplars, and its
//! `query_exemplars` API returns trace ids of calls that were really made (those a sink of the
//! same exporter received). Needs the `prometheus` binary (Debian package `prometheus`, which
//! .ci/run installs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use profilis::{profiled, Batch, Exporter, Sink, SinkError};
use profilis_test_support::{encode, tool, try_get, wait_for, Prometheus};

#[profiled]
fn traced() {
    std::thread::sleep(Duration::from_millis(3));
}

/// Every event's trace id, with its duration (ns).
type Seen = Arc<Mutex<HashMap<String, u64>>>;

struct Recording(Seen);

impl Sink for Recording {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let mut seen = self.0.lock().unwrap();
        for event in batch.events {
            seen.insert(event.trace_id.to_hex(), event.dur_ns);
        }
        Ok(())
    }
}

fn api(prometheus: std::net::SocketAddr, path: &str) -> Option<serde_json::Value> {
    let response = try_get(prometheus, path, &[]).ok()?;
    if response.status != 200 {
        return None;
    }
    serde_json::from_slice(&response.body).ok()
}

/// The exemplars Prometheus stored for `traced`'s duration buckets: (trace id, value).
fn exemplars(prometheus: std::net::SocketAddr) -> Vec<(String, f64)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query =
        r#"profilis_function_duration_seconds_bucket{function="prometheus_exemplars::traced"}"#;
    let path = format!(
        "/api/v1/query_exemplars?query={}&start={}&end={}",
        encode(query),
        now - 600,
        now + 60
    );
    let Some(body) = api(prometheus, &path) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for series in body["data"].as_array().into_iter().flatten() {
        for exemplar in series["exemplars"].as_array().into_iter().flatten() {
            let trace_id = exemplar["labels"]["trace_id"].as_str().unwrap_or_default();
            let value = exemplar["value"].as_str().and_then(|v| v.parse().ok());
            if let Some(value) = value {
                found.push((trace_id.to_owned(), value));
            }
        }
    }
    found
}

#[test]
fn prometheus_stores_exemplars_of_recorded_calls() {
    let Some(prometheus_bin) = tool("prometheus") else {
        return;
    };
    let seen: Seen = Arc::default();
    let guard = Exporter::new()
        .service("exemplars")
        .listen("127.0.0.1:0")
        .unwrap()
        .flush_interval(Duration::from_millis(20))
        .sink(Recording(seen.clone()))
        .install()
        .unwrap();
    let target = guard.listen_addr().unwrap();

    let mut server = Prometheus::start(
        &prometheus_bin,
        "exemplars",
        target,
        &["--enable-feature=exemplar-storage"],
    );
    let web = server.web();

    // Calls on fresh threads now and then, and steadily on one: each collector cycle's first
    // call of the site (and each slower one after it) is an exemplar candidate.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::spawn(traced).join().unwrap();
                for _ in 0..20 {
                    traced();
                }
            }
        })
    };

    let found = wait_for(Duration::from_secs(90), || {
        let found = exemplars(web);
        (!found.is_empty()).then_some(found)
    });
    let targets = api(web, "/api/v1/targets");
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    server.stop();
    let log = server.log();
    let found = found.unwrap_or_else(|| {
        panic!("Prometheus stored no exemplars; targets: {targets:?}\nits log:\n{log}")
    });
    // The scrapes succeeded (Prometheus's OpenMetrics parser took every page).
    let target = &targets.expect("the targets API answers")["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");

    let seen = seen.lock().unwrap().clone();
    for (trace_id, value) in &found {
        assert_eq!(trace_id.len(), 32, "{trace_id}");
        let dur_ns = seen
            .get(trace_id)
            .unwrap_or_else(|| panic!("exemplar {trace_id} is no recorded call: {found:?}"));
        assert_eq!(*value, *dur_ns as f64 / 1e9, "{trace_id}");
    }
}

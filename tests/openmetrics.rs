//! OpenMetrics over real loopback HTTP: the listener answers in the format the scraper's
//! `Accept` asks for (OpenMetrics for Prometheus's header, the text format by default and when
//! the text format weighs more), each page passes its strict reader (and `promtool check
//! metrics` for the text format), and the duration buckets' exemplars are calls that were
//! really made: their trace ids, durations and start times are those of events a sink of the
//! same exporter received.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use profilis::exposition::{METRICS_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE};
use profilis::{profiled, Batch, Exporter, ExpositionFormat, Sink, SinkError};
use profilis_test_support::{
    get, parse_exposition, parse_openmetrics, promtool_check_metrics, wait_for, OpenMetrics,
};

/// Prometheus 2's scrape `Accept` header.
const PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[profiled]
fn work(sleep_us: u64) {
    std::thread::sleep(Duration::from_micros(sleep_us));
}

/// Every event's trace id, with its duration and start (ns).
type Seen = Arc<Mutex<HashMap<String, (u64, u64)>>>;

struct Recording(Seen);

impl Sink for Recording {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let mut seen = self.0.lock().unwrap();
        for event in batch.events {
            seen.insert(event.trace_id.to_hex(), (event.dur_ns, event.ts_ns));
        }
        Ok(())
    }
}

/// The exemplars of `work`'s duration buckets: (trace id, value, timestamp).
fn exemplars(page: &OpenMetrics) -> Vec<(String, f64, f64)> {
    page.named("profilis_function_duration_seconds_bucket")
        .filter(|s| s.label("function") == Some("openmetrics::work"))
        .filter_map(|s| s.exemplar.as_ref())
        .map(|e| {
            (
                e.label("trace_id").expect("a trace id").to_owned(),
                e.value,
                e.timestamp.expect("a timestamp"),
            )
        })
        .collect()
}

#[test]
fn the_listener_negotiates_openmetrics_with_exemplars_of_real_calls() {
    let seen: Seen = Arc::default();
    let guard = Exporter::new()
        .service("om")
        .listen("127.0.0.1:0")
        .unwrap()
        .flush_interval(Duration::from_millis(20))
        .sink(Recording(seen.clone()))
        .install()
        .expect("exporter installs");
    let addr = guard.listen_addr().unwrap();
    metrics::describe_counter!("app_orders_total", "Orders \"taken\"");
    metrics::counter!("app_orders_total", "shop" => "a\"b\\c\nd").increment(2);

    // Calls of several durations on several threads: each collector cycle's first call of the
    // site, and each slower one after it in the cycle, is an exemplar candidate.
    let threads: Vec<_> = [0u64, 200, 3_000, 30_000]
        .into_iter()
        .map(|sleep_us| {
            std::thread::spawn(move || {
                for _ in 0..130 {
                    work(sleep_us);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    let (response, page) = wait_for(Duration::from_secs(20), || {
        let response = get(addr, "/metrics", &[("Accept", PROMETHEUS)]);
        let page = parse_openmetrics(&response.text())
            .unwrap_or_else(|e| panic!("{e}\n{}", response.text()));
        // The page of a collector cycle that has read every call (one that began while the
        // last calls ran may lack them), with exemplars.
        let all_read = page
            .named("profilis_function_calls_total")
            .any(|s| s.label("function") == Some("openmetrics::work") && s.value == 520.0);
        (all_read && exemplars(&page).len() >= 2).then_some((response, page))
    })
    .expect("every call of work counted, and exemplars on its buckets");
    assert_eq!(
        response.header("content-type"),
        Some(OPENMETRICS_CONTENT_TYPE)
    );
    assert_eq!(response.header("vary"), Some("Accept, Accept-Encoding"));
    let text = response.text();
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    assert!(text.ends_with("\n# EOF\n"), "{text}");

    // Every exemplar is a call that was made: its trace id, its duration, its start.
    let seen = seen.lock().unwrap().clone();
    for (trace_id, value, timestamp) in exemplars(&page) {
        assert_eq!(trace_id.len(), 32, "{trace_id}");
        let &(dur_ns, ts_ns) = seen
            .get(&trace_id)
            .unwrap_or_else(|| panic!("exemplar {trace_id} is no recorded call"));
        assert_eq!(value, dur_ns as f64 / 1e9, "{trace_id}");
        assert_eq!(timestamp, ts_ns as f64 / 1e9, "{trace_id}");
    }
    // The strict reader checked each lies within its bucket; counters are named as
    // OpenMetrics asks, label values escaped as in the text format.
    assert_eq!(
        page.family("app_orders").map(|f| f.kind.as_str()),
        Some("counter")
    );
    let orders = page
        .named("app_orders_total")
        .next()
        .expect("app_orders_total");
    assert_eq!(orders.label("shop"), Some("a\"b\\c\nd"));
    assert_eq!(orders.value, 2.0);
    let calls = page
        .named("profilis_function_calls_total")
        .find(|s| s.label("function") == Some("openmetrics::work"))
        .expect("work's calls");
    assert_eq!(calls.value, 520.0);

    // The text format by default, and whenever it weighs more: no exemplars, no `# EOF`,
    // the same series, and promtool accepts it.
    for accept in [
        None,
        Some("text/plain;version=0.0.4"),
        Some("*/*"),
        Some("application/openmetrics-text;q=0.2, text/plain;q=0.9"),
        Some("application/openmetrics-text;version=0.0.1"),
    ] {
        let headers: Vec<_> = accept.iter().map(|a| ("Accept", *a)).collect();
        let response = get(addr, "/metrics", &headers);
        assert_eq!(
            response.header("content-type"),
            Some(METRICS_CONTENT_TYPE),
            "{accept:?}"
        );
        let text = response.text();
        assert!(
            !text.contains("# EOF") && !text.contains("trace_id"),
            "{accept:?}"
        );
        let parsed = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let orders = parsed
            .named("app_orders_total")
            .next()
            .expect("app_orders_total");
        assert_eq!(orders.label("shop"), Some("a\"b\\c\nd"));
        promtool_check_metrics(text.as_bytes());
    }

    // OpenMetrics alone, and gzip-compressed.
    let response = get(
        addr,
        "/metrics",
        &[
            ("Accept", "application/openmetrics-text"),
            ("Accept-Encoding", "gzip"),
        ],
    );
    assert_eq!(
        response.header("content-type"),
        Some(OPENMETRICS_CONTENT_TYPE)
    );
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&response.body[..])
        .read_to_string(&mut unzipped)
        .expect("a gzip body");
    parse_openmetrics(&unzipped).unwrap_or_else(|e| panic!("{e}\n{unzipped}"));

    // `render_as` writes the same formats for an application's own router.
    let rendered = profilis::render_as(ExpositionFormat::OpenMetrics).expect("installed");
    assert!(rendered.ends_with("# EOF\n"));
    parse_openmetrics(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert!(!guard.render_as(ExpositionFormat::Text).contains("# EOF"));
}

//! The console sink under a real collector, writing into an in-memory writer: compact lines and
//! pretty objects parse as JSON with the JSONL keys, one per event; a failing writer is counted
//! as a sink failure and the other sinks keep working.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use profilis_core::adapter::enter;
use profilis_core::{sink_fn, stats, Collector, CollectorConfig, Event, EventFilter, Sink, Site};
use profilis_exporters::{ConsoleFormat, ConsoleSink};
use serde_json::Value;

/// One collector per process: tests take turns.
static LOCK: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `Vec<u8>` the test keeps a handle on while the sink writes into it; counts the writes.
#[derive(Clone, Default)]
struct SharedWriter {
    bytes: Arc<Mutex<Vec<u8>>>,
    writes: Arc<Mutex<usize>>,
}

impl SharedWriter {
    fn text(&self) -> String {
        String::from_utf8(self.bytes.lock().unwrap().clone()).expect("utf-8 output")
    }
}

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        *self.writes.lock().unwrap() += 1;
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A disk that is always full.
struct FullDisk;

impl Write for FullDisk {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

static OK_SITE: Site = Site::function("shop::orders::price", None);
static ERR_SITE: Site = Site::function("shop::orders::refund", None);

/// Runs `calls` calls (every third one failing) under a collector with `sinks`, then drains it.
fn run(calls: usize, sinks: Vec<Box<dyn Sink>>) {
    let collector = Collector::start(
        CollectorConfig {
            flush_interval: Duration::from_millis(2),
            batch_max: 16,
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        sinks,
    )
    .expect("collector starts");
    for i in 0..calls {
        if i % 3 == 2 {
            enter(&ERR_SITE).exit(true);
        } else {
            // A nested call, so some events have a parent.
            let outer = enter(&OK_SITE);
            enter(&OK_SITE).exit(false);
            outer.exit(false);
        }
    }
    assert!(collector.shutdown().is_clean(), "collector drained in time");
}

fn events_of(calls: usize) -> usize {
    (0..calls).map(|i| if i % 3 == 2 { 1 } else { 2 }).sum()
}

fn check_keys(event: &Value) {
    let object = event.as_object().expect("an object");
    assert_eq!(object["kind"], "FN");
    assert!(object["ts_ns"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    assert!(object["dur_ns"].is_u64());
    let name = object["fn"].as_str().unwrap();
    assert!(name == OK_SITE.name() || name == ERR_SITE.name(), "{name}");
    assert_eq!(object["error"], name == ERR_SITE.name());
    assert_eq!(object["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(object["span_id"].as_str().unwrap().len(), 16);
    let parent = &object["parent_span_id"];
    assert!(parent.is_null() || parent.as_str().unwrap().len() == 16);
}

#[test]
fn compact_output_is_one_json_line_per_event() {
    let _serial = serial();
    let out = SharedWriter::default();
    run(30, vec![Box::new(ConsoleSink::to_writer(out.clone()))]);
    let text = out.text();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), events_of(30), "{text}");
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    events.iter().for_each(check_keys);
    assert_eq!(events.iter().filter(|e| e["error"] == true).count(), 10);
    // Inner calls name their outer call as parent.
    let parents = events.iter().filter(|e| e["parent_span_id"].is_string());
    assert_eq!(parents.count(), 20);
    // One write per batch, not per event.
    assert!(
        *out.writes.lock().unwrap() < events.len(),
        "a write per event"
    );
}

#[test]
fn pretty_output_is_indented_json_objects() {
    let _serial = serial();
    let out = SharedWriter::default();
    let sink = ConsoleSink::to_writer(out.clone()).format(ConsoleFormat::Pretty);
    run(9, vec![Box::new(sink)]);
    let text = out.text();
    let events: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("a stream of JSON objects");
    assert_eq!(events.len(), events_of(9));
    events.iter().for_each(check_keys);
    assert!(text.lines().count() >= events.len() * 8, "{text}");
    assert!(text.contains("\n  \"kind\": \"FN\""), "{text}");
}

#[test]
fn a_filter_keeps_only_the_events_it_accepts() {
    let _serial = serial();
    let out = SharedWriter::default();
    let errors_only =
        ConsoleSink::to_writer(out.clone()).filter(EventFilter::matching(|e| e.error));
    let http_only =
        ConsoleSink::to_writer(out.clone()).filter(EventFilter::kinds([&profilis_core::HTTP]));
    run(12, vec![Box::new(errors_only), Box::new(http_only)]);
    let text = out.text();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text
        .lines()
        .all(|l| l.contains("\"fn\":\"shop::orders::refund\"")));
}

#[test]
fn a_failing_writer_counts_as_sink_failures_and_other_sinks_go_on() {
    let _serial = serial();
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let capture = {
        let seen = seen.clone();
        sink_fn(move |batch| {
            seen.lock().unwrap().extend_from_slice(batch.events);
            Ok(())
        })
    };
    let out = SharedWriter::default();
    let before = stats().sink_failures;
    run(
        60,
        vec![
            Box::new(ConsoleSink::to_writer(FullDisk)),
            Box::new(capture),
            Box::new(ConsoleSink::to_writer(out.clone())),
        ],
    );
    let failures = stats().sink_failures - before;
    assert!(failures >= 1, "no failure counted");
    assert_eq!(seen.lock().unwrap().len(), events_of(60));
    assert_eq!(out.text().lines().count(), events_of(60));
}

#[test]
fn the_error_names_the_sink_and_the_io_error() {
    let mut sink = ConsoleSink::to_writer(FullDisk);
    assert_eq!(sink.name(), "console");
    let event = Event {
        site: &OK_SITE,
        ts_ns: 1,
        dur_ns: 2,
        error: false,
        outcome: Default::default(),
        trace_id: Default::default(),
        span_id: Default::default(),
        parent_span_id: None,
        detail: Default::default(),
        failure: None,
    };
    let batch = profilis_core::Batch {
        events: std::slice::from_ref(&event),
        counts: &[],
        stats: Default::default(),
        errors: &[],
        slow: &[],
    };
    let error = sink.write(&batch).unwrap_err().to_string();
    assert!(error.contains("console sink could not write"), "{error}");
    assert!(error.contains("no space left"), "{error}");
    // An empty batch writes nothing, so it cannot fail.
    let empty = profilis_core::Batch {
        events: &[],
        ..batch
    };
    assert!(sink.write(&empty).is_ok());
}

/// A console whose reader stopped reading (`app | less`, left alone): every write waits until
/// the test lets it go.
struct StalledPipe(Arc<Mutex<std::sync::mpsc::Receiver<()>>>);

impl Write for StalledPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.0.lock().unwrap().recv();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `profilis_function_calls_total` of `site` on the page.
fn calls_on_page(text: &str, site: &Site) -> u64 {
    let label = format!("function=\"{}\"", site.name());
    text.lines()
        .filter(|l| l.starts_with("profilis_function_calls_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_console_that_waits_holds_up_neither_the_application_nor_prometheus() {
    let _serial = serial();
    let (release, stalled) = std::sync::mpsc::channel();
    let exporter = profilis_exporters::Exporter::new();
    #[cfg(feature = "listener")]
    let exporter = exporter.without_listener();
    let guard = exporter
        .flush_interval(Duration::from_millis(2))
        .shutdown_timeout(Duration::from_millis(200))
        .console(ConsoleSink::to_writer(StalledPipe(Arc::new(Mutex::new(
            stalled,
        )))))
        .install()
        .expect("installs");
    let failures_before = stats().sink_failures;
    let base = calls_on_page(&guard.render(), &OK_SITE);
    // Round after round of calls: each round must reach the page although the console has
    // not written a line since the first.
    for round in 1..=20u64 {
        for _ in 0..500 {
            enter(&OK_SITE).exit(false);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let counted = calls_on_page(&guard.render(), &OK_SITE);
            if counted >= base + round * 500 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: {counted} calls on the page"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // The batches the stalled console could not take were counted as its failures.
    assert!(stats().sink_failures > failures_before, "{:?}", stats());
    let report = guard.shutdown();
    assert!(!report.is_clean(), "the console never wrote: {report:?}");
    drop(release);
}

//! The collector against real threads and sinks: the counting invariant under concurrent
//! producers, drop policies, bounded memory behind a stuck sink, sink isolation, shutdown flush
//! and its report, the off switch and span nesting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use profilis_core::adapter::enter;
use profilis_core::context;
use profilis_core::{
    stats, Batch, Buckets, Collector, CollectorConfig, ConfigError, DropPolicy, Event, FanOut,
    Outcome, ShutdownReport, Sink, SinkError, Site, StartError,
};

/// One collector per process: tests take turns.
use profilis_core::testing::lock as serial;

#[derive(Default)]
struct Seen {
    events: Vec<Event>,
    calls: u64,
    errors: u64,
    /// Per bucket bound: (timed calls, sum of their durations in ns), over every site.
    buckets: Vec<(f64, u64, u64)>,
}

/// Keeps what it is given. `gate` closed: blocks (sleeping) until opened, like a stuck backend.
#[derive(Clone, Default)]
struct Capture {
    seen: Arc<Mutex<Seen>>,
    gate: Option<Arc<AtomicBool>>,
}

impl Sink for Capture {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        if let Some(gate) = &self.gate {
            while !gate.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut seen = self.seen.lock().unwrap();
        seen.events.extend_from_slice(batch.events);
        for c in batch.counts {
            seen.calls += c.calls;
            seen.errors += c.errors;
            if seen.buckets.is_empty() {
                seen.buckets = c.durations.iter().map(|b| (b.le, 0, 0)).collect();
            }
            for (total, bucket) in seen.buckets.iter_mut().zip(&c.durations) {
                total.1 += bucket.count;
                total.2 += bucket.sum_ns;
            }
        }
        Ok(())
    }
}

fn quick() -> CollectorConfig {
    CollectorConfig {
        flush_interval: Duration::from_millis(2),
        enabled: Some(true),
        ..CollectorConfig::default()
    }
}

/// The collector's counters once they stop changing (at most ~10 s of waiting).
fn quiet_stats() -> profilis_core::Stats {
    let mut last = stats();
    for _ in 0..1_000 {
        std::thread::sleep(Duration::from_millis(10));
        let now = stats();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the collector never went quiet: {last:?}")
}

fn call(site: &'static Site, error: bool) {
    enter(site).exit(error);
}

#[test]
fn enqueued_equals_processed_plus_dropped_plus_queued_under_concurrent_producers() {
    let _serial = serial();
    static SITE: Site = Site::function("collector::concurrent", None);
    let capture = Capture::default();
    let before = stats();
    let collector = Collector::start(
        CollectorConfig {
            queue_size: 256,
            batch_max: 32,
            ..quick()
        },
        vec![Box::new(capture.clone())],
    )
    .unwrap();
    const THREADS: u64 = 4;
    const CALLS: u64 = 50_000;
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..CALLS {
                    call(&SITE, (i + t) % 10 == 0);
                }
            })
        })
        .collect();
    // While producers run, the counters never claim more than was offered.
    for _ in 0..20 {
        let s = stats();
        assert!(s.processed + s.dropped <= s.enqueued + 1_000, "{s:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    for p in producers {
        p.join().unwrap();
    }
    // Quiet: the producers are done and the collector has stopped moving events (its
    // counters are read one by one, so they only add up exactly when nothing moves).
    let quiet = quiet_stats();
    assert_eq!(quiet.enqueued - before.enqueued, THREADS * CALLS);
    assert_eq!(
        quiet.enqueued,
        quiet.processed + quiet.dropped + quiet.queue_depth,
        "{quiet:?}"
    );
    assert!(collector.shutdown().is_clean());
    let after = stats();
    assert_eq!(after.queue_depth, 0);
    assert_eq!(after.enqueued, after.processed + after.dropped);
    let seen = capture.seen.lock().unwrap();
    assert_eq!(seen.events.len() as u64, after.processed - before.processed);
    // Counts are exact whatever was dropped.
    assert_eq!(seen.calls, THREADS * CALLS);
    assert_eq!(seen.errors, THREADS * CALLS / 10);
}

fn run_against_stuck_sink(policy: DropPolicy) -> (Vec<Event>, u64, profilis_core::Stats) {
    static SITE: Site = Site::function("collector::stuck", None);
    let gate = Arc::new(AtomicBool::new(false));
    let capture = Capture {
        gate: Some(gate.clone()),
        ..Capture::default()
    };
    let before = stats();
    let collector = Collector::start(
        CollectorConfig {
            queue_size: 100,
            batch_max: 10,
            drop_policy: policy,
            ..quick()
        },
        vec![Box::new(capture.clone())],
    )
    .unwrap();
    // The first batch gets stuck in the sink; everything after piles up behind it.
    call(&SITE, false);
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..1_000 {
        call(&SITE, false);
    }
    let last = {
        let guard = enter(&SITE);
        let ids = context::current().unwrap();
        guard.exit(false);
        ids.span_id
    };
    let stuck = quiet_stats();
    gate.store(true, Ordering::Release);
    assert!(collector.shutdown().is_clean());
    let delta = profilis_core::Stats {
        enqueued: stuck.enqueued - before.enqueued,
        processed: stuck.processed - before.processed,
        dropped: stuck.dropped - before.dropped,
        ..stuck
    };
    let events = std::mem::take(&mut capture.seen.lock().unwrap().events);
    let found = events.iter().filter(|e| e.span_id == last).count() as u64;
    (events, found, delta)
}

#[test]
fn drop_newest_keeps_the_queue_at_queue_size_behind_a_stuck_sink() {
    let _serial = serial();
    let (events, last_found, stuck) = run_against_stuck_sink(DropPolicy::Newest);
    assert_eq!(stuck.enqueued, 1_002);
    // One event is in the stuck sink's hands, 100 wait in the queue, the rest were dropped.
    assert_eq!(stuck.queue_depth, 101, "{stuck:?}");
    assert_eq!(stuck.dropped, 1_002 - 101);
    assert_eq!(events.len(), 101);
    assert_eq!(last_found, 0, "drop-newest drops the latest call");
}

#[test]
fn drop_oldest_keeps_the_latest_events() {
    let _serial = serial();
    let (events, last_found, stuck) = run_against_stuck_sink(DropPolicy::Oldest);
    assert_eq!(stuck.queue_depth, 101, "{stuck:?}");
    assert_eq!(stuck.dropped, 1_002 - 101);
    assert_eq!(events.len(), 101);
    assert_eq!(last_found, 1, "drop-oldest keeps the latest call");
}

#[test]
fn drop_oldest_behind_a_stuck_sink_keeps_the_latest_events_across_rings() {
    let _serial = serial();
    // A queue of 1,000 grows through several rings; while the sink is stuck, every call past
    // the limit must evict the oldest queued event, wherever it is, so the queue ends up
    // holding the latest 1,000 calls.
    static OLD: Site = Site::function("collector::oldest_old", None);
    static NEW: Site = Site::function("collector::oldest_new", None);
    let gate = Arc::new(AtomicBool::new(false));
    let capture = Capture {
        gate: Some(gate.clone()),
        ..Capture::default()
    };
    let collector = Collector::start(
        CollectorConfig {
            queue_size: 1_000,
            batch_max: 10,
            drop_policy: DropPolicy::Oldest,
            ..quick()
        },
        vec![Box::new(capture.clone())],
    )
    .unwrap();
    // A first full batch gets stuck in the sink.
    for _ in 0..50 {
        call(&OLD, false);
    }
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..20_000 {
        call(&OLD, false);
    }
    for _ in 0..1_000 {
        call(&NEW, false);
    }
    quiet_stats();
    gate.store(true, Ordering::Release);
    assert!(collector.shutdown().is_clean());
    let seen = capture.seen.lock().unwrap();
    let new = seen
        .events
        .iter()
        .filter(|e| e.site.name() == NEW.name())
        .count();
    let old = seen.events.len() - new;
    assert_eq!(
        new, 1_000,
        "every one of the latest calls is kept ({old} older ones)"
    );
    // Only the stuck batch and what the collector had in hand hold older calls.
    assert!(old <= 20, "{old} older events kept");
}

#[test]
fn ten_million_calls_behind_a_stuck_sink_stay_bounded() {
    let _serial = serial();
    static SITE: Site = Site::function("collector::ten_million", None);
    let gate = Arc::new(AtomicBool::new(false));
    let capture = Capture {
        gate: Some(gate.clone()),
        ..Capture::default()
    };
    let before = stats();
    let collector = Collector::start(
        CollectorConfig {
            queue_size: 1_000,
            batch_max: 100,
            ..quick()
        },
        vec![Box::new(capture.clone())],
    )
    .unwrap();
    for _ in 0..10_000_000 {
        call(&SITE, false);
    }
    let s = quiet_stats();
    assert_eq!(s.enqueued - before.enqueued, 10_000_000);
    // At most one batch in the sink's hands plus a full queue; everything else counted dropped.
    assert!(s.queue_depth >= 1_000 && s.queue_depth <= 1_100, "{s:?}");
    assert_eq!(
        s.dropped - before.dropped,
        10_000_000 - (s.processed - before.processed) - s.queue_depth
    );
    gate.store(true, Ordering::Release);
    assert!(collector.shutdown().is_clean());
    assert_eq!(capture.seen.lock().unwrap().calls, 10_000_000);
}

struct Failing;
impl Sink for Failing {
    fn write(&mut self, _: &Batch<'_>) -> Result<(), SinkError> {
        Err(SinkError::new("backend down"))
    }
}

struct Panicking;
impl Sink for Panicking {
    fn write(&mut self, _: &Batch<'_>) -> Result<(), SinkError> {
        panic!("sink bug")
    }
}

#[test]
fn failing_and_panicking_sinks_do_not_stop_the_others() {
    let _serial = serial();
    static SITE: Site = Site::function("collector::isolation", None);
    let capture = Capture::default();
    let before = stats();
    let collector = Collector::start(
        quick(),
        vec![
            Box::new(Failing),
            Box::new(Panicking),
            Box::new(capture.clone()),
        ],
    )
    .unwrap();
    for i in 0..1_000 {
        call(&SITE, i % 4 == 0);
    }
    assert!(collector.shutdown().is_clean());
    let seen = capture.seen.lock().unwrap();
    assert_eq!(seen.calls, 1_000);
    assert_eq!(seen.errors, 250);
    assert_eq!(seen.events.len(), 1_000);
    let failures = stats().sink_failures - before.sink_failures;
    assert!(
        failures >= 2,
        "each bad sink fails at least once: {failures}"
    );
    assert_eq!(
        failures % 2,
        0,
        "both bad sinks fail on every batch: {failures}"
    );
}

#[test]
fn shutdown_delivers_every_event_made_before_it() {
    let _serial = serial();
    static SITE: Site = Site::function("collector::shutdown", None);
    let capture = Capture::default();
    // A long flush interval: only the shutdown flush can deliver these.
    let collector = Collector::start(
        CollectorConfig {
            flush_interval: Duration::from_secs(3600),
            batch_max: 1_000_000,
            queue_size: 10_000,
            ..quick()
        },
        vec![Box::new(capture.clone())],
    )
    .unwrap();
    for _ in 0..5_000 {
        call(&SITE, false);
    }
    drop(collector);
    let seen = capture.seen.lock().unwrap();
    assert_eq!(seen.events.len(), 5_000);
    assert_eq!(seen.calls, 5_000);
    assert!(seen
        .events
        .iter()
        .all(|e| e.name() == "collector::shutdown"));
}

/// Takes every batch; its last flush fails, losing `lost` items.
struct LosingFlush {
    lost: u64,
}

impl Sink for LosingFlush {
    fn write(&mut self, _: &Batch<'_>) -> Result<(), SinkError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Err(SinkError::new(format!("{} records could not be sent", self.lost)).with_lost(self.lost))
    }
}

struct PanickingFlush;

impl Sink for PanickingFlush {
    fn write(&mut self, _: &Batch<'_>) -> Result<(), SinkError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        panic!("flush bug")
    }
}

#[test]
fn shutdown_reports_failed_last_flushes_and_what_they_lost() {
    let _serial = serial();
    static SITE: Site = Site::function("collector::lossy_shutdown", None);
    let capture = Capture::default();
    let before = stats();
    let collector = Collector::start(
        quick(),
        vec![
            Box::new(LosingFlush { lost: 42 }),
            Box::new(PanickingFlush),
            Box::new(capture.clone()),
            // A fan-out inside passes its sinks' losses on.
            Box::new(FanOut::new(vec![
                Box::new(LosingFlush { lost: 8 }),
                Box::new(Capture::default()),
            ])),
        ],
    )
    .unwrap();
    for _ in 0..100 {
        call(&SITE, false);
    }
    let report = collector.shutdown();
    assert!(report.flushed, "{report:?}");
    assert_eq!(report.failed_flushes, 3, "{report:?}");
    assert_eq!(report.lost, 50, "{report:?}");
    assert!(!report.is_clean());
    assert_eq!(
        report.to_string(),
        "every sink flushed in time; 3 sink(s) failed their last flush, losing 50 item(s)"
    );
    assert_eq!(stats().sink_failures - before.sink_failures, 3);
    // The other sinks were flushed and got everything.
    assert_eq!(capture.seen.lock().unwrap().events.len(), 100);

    let report = Collector::start(quick(), vec![Box::new(Capture::default())])
        .unwrap()
        .shutdown();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report, ShutdownReport::default());
    assert_eq!(report.to_string(), "every sink flushed in time");
}

/// Its last flush waits until `gate` opens, then sets `done`.
struct SlowFlush {
    gate: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
}

impl Sink for SlowFlush {
    fn write(&mut self, _: &Batch<'_>) -> Result<(), SinkError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        while !self.gate.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.done.store(true, Ordering::Release);
        Ok(())
    }
}

#[test]
fn a_flush_past_the_shutdown_timeout_is_reported() {
    let _serial = serial();
    let gate = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let collector = Collector::start(
        CollectorConfig {
            shutdown_timeout: Duration::from_millis(50),
            ..quick()
        },
        vec![Box::new(SlowFlush {
            gate: gate.clone(),
            done: done.clone(),
        })],
    )
    .unwrap();
    let report = collector.shutdown();
    gate.store(true, Ordering::Release);
    assert!(!report.flushed, "{report:?}");
    assert!(!report.is_clean());
    assert!(
        report.to_string().contains("did not finish flushing"),
        "{report}"
    );
    // Let the late flush end before the next test starts a collector.
    for _ in 0..10_000 {
        if done.load(Ordering::Acquire) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the late flush never ended");
}

/// A sink that shuts its own collector down (taken from `collector`) on its first batch, and
/// reports what that shutdown said, then that its last flush ran.
struct ShutsItsCollectorDown {
    collector: Arc<Mutex<Option<Collector>>>,
    report: std::sync::mpsc::Sender<ShutdownReport>,
    flushed: Arc<AtomicBool>,
}

impl Sink for ShutsItsCollectorDown {
    fn write(&mut self, _batch: &Batch<'_>) -> Result<(), SinkError> {
        if let Some(collector) = self.collector.lock().unwrap().take() {
            let _ = self.report.send(collector.shutdown());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.flushed.store(true, Ordering::Release);
        Ok(())
    }
}

#[test]
fn a_sink_that_shuts_its_collector_down_does_not_wait_for_itself() {
    shut_down_by_its_sink(false);
}

#[test]
fn a_sink_on_a_thread_of_its_own_that_shuts_its_collector_down_does_not_wait_for_it() {
    shut_down_by_its_sink(true);
}

/// A sink shuts its collector down; `own_thread`: the sink runs in a `NonBlocking`.
fn shut_down_by_its_sink(own_thread: bool) {
    let _serial = serial();
    static SITE: Site = Site::function("collector::shut_by_its_sink", None);
    let collector = Arc::new(Mutex::new(None));
    let (report, reported) = std::sync::mpsc::channel();
    let flushed = Arc::new(AtomicBool::new(false));
    let sink = ShutsItsCollectorDown {
        collector: collector.clone(),
        report,
        flushed: flushed.clone(),
    };
    let sink: Box<dyn Sink> = if own_thread {
        Box::new(profilis_core::NonBlocking::new(sink).expect("a thread"))
    } else {
        Box::new(sink)
    };
    let started = Collector::start(
        CollectorConfig {
            // Were the shutdown to wait for its own thread, it would wait this long.
            shutdown_timeout: Duration::from_secs(3600),
            ..quick()
        },
        vec![sink],
    )
    .unwrap();
    *collector.lock().unwrap() = Some(started);
    call(&SITE, false);
    let report = reported
        .recv_timeout(Duration::from_secs(10))
        .expect("the sink's shutdown returned");
    // It could not wait for the flush: it says so.
    assert!(!report.flushed, "{report:?}");
    // The collector then drains and flushes on its own.
    for _ in 0..10_000 {
        if flushed.load(Ordering::Acquire) {
            // And a collector can start again.
            let next = Collector::start(quick(), Vec::new()).expect("a new collector");
            assert!(next.shutdown().is_clean());
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the collector shut down by its sink never flushed");
}

#[test]
fn switched_off_records_nothing() {
    let _serial = serial();
    static SITE: Site = Site::function("collector::off", None);
    let capture = Capture::default();
    let collector = Collector::start(
        CollectorConfig {
            enabled: Some(false),
            ..quick()
        },
        vec![Box::new(capture.clone())],
    )
    .unwrap();
    assert!(!profilis_core::is_enabled());
    for _ in 0..100 {
        call(&SITE, false);
    }
    profilis_core::set_enabled(true);
    call(&SITE, false);
    assert!(collector.shutdown().is_clean());
    let seen = capture.seen.lock().unwrap();
    assert_eq!(seen.calls, 1);
    assert_eq!(seen.events.len(), 1);
}

#[test]
fn profilis_disabled_variable_is_read_and_checked() {
    let _serial = serial();
    std::env::set_var("PROFILIS_DISABLED", "1");
    let collector = Collector::start(
        CollectorConfig {
            enabled: None,
            ..quick()
        },
        vec![],
    )
    .unwrap();
    assert!(!profilis_core::is_enabled());
    drop(collector);
    std::env::set_var("PROFILIS_DISABLED", "maybe");
    let err = Collector::start(
        CollectorConfig {
            enabled: None,
            ..quick()
        },
        vec![],
    )
    .err()
    .expect("a bad value is an error");
    assert!(matches!(
        err,
        StartError::Config(ConfigError::Env {
            name: "PROFILIS_DISABLED",
            ..
        })
    ));
    assert!(err.to_string().contains("maybe"), "{err}");
    std::env::remove_var("PROFILIS_DISABLED");
    profilis_core::set_enabled(true);
}

#[test]
fn bad_settings_and_a_second_collector_are_errors() {
    let _serial = serial();
    let bad = [
        CollectorConfig {
            queue_size: 0,
            ..quick()
        },
        CollectorConfig {
            batch_max: 0,
            ..quick()
        },
        CollectorConfig {
            flush_interval: Duration::ZERO,
            ..quick()
        },
    ];
    for config in bad {
        let err = Collector::start(config, vec![]).err().expect("rejected");
        assert!(err.to_string().contains("not allowed"), "{err}");
    }
    let first = Collector::start(quick(), vec![]).unwrap();
    let second = Collector::start(quick(), vec![])
        .err()
        .expect("only one collector");
    assert!(matches!(second, StartError::AlreadyRunning), "{second:?}");
    drop(first);
    let again = Collector::start(quick(), vec![]).expect("free again after drop");
    drop(again);
}

#[test]
fn nested_calls_are_children_of_their_caller() {
    let _serial = serial();
    static OUTER: Site = Site::function("collector::outer", None);
    static INNER: Site = Site::function("collector::inner", None);
    static SKIPPED: Site = Site::function("collector::skipped", Some(0.0));
    let capture = Capture::default();
    let collector = Collector::start(quick(), vec![Box::new(capture.clone())]).unwrap();
    let outer = enter(&OUTER);
    let outer_ctx = context::current().unwrap();
    let (trace, outer_span) = (outer_ctx.trace_id, outer_ctx.span_id);
    let skipped = enter(&SKIPPED);
    // A sampled-out call opens no span: the inner call hangs off the outer one.
    assert_eq!(context::current().unwrap().span_id, outer_span);
    call(&INNER, false);
    skipped.exit(false);
    outer.exit(false);
    assert!(context::current().is_none());
    call(&OUTER, false);
    assert!(collector.shutdown().is_clean());
    let seen = capture.seen.lock().unwrap();
    assert_eq!(seen.calls, 4);
    let inner = seen
        .events
        .iter()
        .find(|e| e.name() == "collector::inner")
        .unwrap();
    assert_eq!(inner.parent_span_id, Some(outer_span));
    assert_eq!(inner.trace_id, trace);
    let outers: Vec<_> = seen
        .events
        .iter()
        .filter(|e| e.name() == "collector::outer")
        .collect();
    assert_eq!(outers.len(), 2);
    assert_eq!(outers[0].parent_span_id, None);
    assert_ne!(
        outers[0].trace_id, outers[1].trace_id,
        "each root call starts a trace"
    );
    assert!(seen.events.iter().all(|e| e.outcome == Outcome::Returned));
}

#[test]
fn durations_are_filed_in_their_buckets_on_the_calling_thread() {
    let _serial = serial();
    static TIMED: Site = Site::function("collector::timed", None);
    static UNTIMED: Site = Site::function("collector::untimed", Some(0.0));
    let capture = Capture::default();
    let collector = Collector::start(
        CollectorConfig {
            buckets: Buckets::default()
                .with_kind(&profilis_core::FUNCTION, &[0.001, 0.01, 0.1])
                .unwrap(),
            ..quick()
        },
        vec![Box::new(capture.clone())],
    )
    .unwrap();
    // Each call's duration lies between the sleep inside it and the time around it.
    let mut calls: Vec<(Duration, Duration)> = Vec::new();
    for (pause, times) in [
        (Duration::from_micros(2_500), 4),
        (Duration::from_millis(20), 2),
    ] {
        for _ in 0..times {
            let outer = std::time::Instant::now();
            let guard = enter(&TIMED);
            let inner = std::time::Instant::now();
            std::thread::sleep(pause);
            let inside = inner.elapsed();
            guard.exit(false);
            calls.push((inside, outer.elapsed()));
        }
    }
    let inside: Duration = calls.iter().map(|c| c.0).sum();
    let around: Duration = calls.iter().map(|c| c.1).sum();
    for _ in 0..50 {
        enter(&UNTIMED).exit(true);
    }
    assert!(collector.shutdown().is_clean());
    let seen = capture.seen.lock().unwrap();
    assert_eq!((seen.calls, seen.errors), (56, 50));
    let bounds: Vec<f64> = seen.buckets.iter().map(|b| b.0).collect();
    assert_eq!(bounds, vec![0.001, 0.01, 0.1, f64::INFINITY]);
    let counts: Vec<u64> = seen.buckets.iter().map(|b| b.1).collect();
    // Sampled-out calls are untimed: six timed calls. Each sits in a bucket between those of
    // the time inside it and around it (the same bucket unless a bound falls in between; on a
    // quiet machine, 2.5 ms calls in (0.001, 0.01] and 20 ms calls in (0.01, 0.1]).
    assert_eq!(counts.iter().sum::<u64>(), 6);
    let bucket = |d: Duration| bounds.iter().position(|&le| d.as_secs_f64() <= le).unwrap();
    for (b, &count) in counts.iter().enumerate() {
        let surely = calls
            .iter()
            .filter(|c| bucket(c.0) == b && bucket(c.1) == b)
            .count();
        let maybe = calls
            .iter()
            .filter(|c| (bucket(c.0)..=bucket(c.1)).contains(&b))
            .count();
        assert!(
            (surely..=maybe).contains(&(count as usize)),
            "bucket {b}: {count} calls; expected {surely}..={maybe} from {calls:?}"
        );
    }
    let sum_ns = u128::from(seen.buckets.iter().map(|b| b.2).sum::<u64>());
    // Two clocks (TSC and Instant): allow them 1 ms of disagreement over the whole run.
    assert!(
        sum_ns + 1_000_000 >= inside.as_nanos() && sum_ns <= around.as_nanos() + 1_000_000,
        "sum {sum_ns} ns, not between {inside:?} and {around:?}"
    );
}

#[test]
fn filtered_and_closure_sinks_get_what_they_asked_for() {
    use profilis_core::{sink_fn, EventFilter, HTTP};
    let _serial = serial();
    static KEEP: Site = Site::function("collector::keep", None);
    static SKIP: Site = Site::function("collector::skip", None);

    /// Wants only the events of `collector::keep`.
    struct Picky {
        filter: EventFilter,
        seen: Arc<Mutex<Vec<&'static str>>>,
    }
    impl Sink for Picky {
        fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
            let mut seen = self.seen.lock().unwrap();
            seen.extend(batch.events.iter().map(Event::name));
            Ok(())
        }
        fn event_filter(&self) -> Option<&EventFilter> {
            Some(&self.filter)
        }
    }

    let picky_seen = Arc::new(Mutex::new(Vec::new()));
    let kinds_seen = Arc::new(Mutex::new(Vec::new()));
    let all = Arc::new(Mutex::new(0usize));
    let all_in_closure = all.clone();
    let collector = Collector::start(
        quick(),
        vec![
            Box::new(Picky {
                filter: EventFilter::matching(|e| e.name() == "collector::keep"),
                seen: picky_seen.clone(),
            }),
            Box::new(Picky {
                filter: EventFilter::kinds([&HTTP]),
                seen: kinds_seen.clone(),
            }),
            Box::new(sink_fn(move |batch| {
                *all_in_closure.lock().unwrap() += batch.events.len();
                Ok(())
            })),
        ],
    )
    .unwrap();
    for _ in 0..3 {
        call(&KEEP, false);
        call(&SKIP, false);
    }
    assert!(collector.shutdown().is_clean());
    assert_eq!(*picky_seen.lock().unwrap(), vec!["collector::keep"; 3]);
    assert!(
        kinds_seen.lock().unwrap().is_empty(),
        "no HTTP events were made"
    );
    assert_eq!(*all.lock().unwrap(), 6, "the closure sink got every event");
}

#[test]
fn each_kind_files_durations_in_its_own_buckets() {
    use profilis_core::adapter::Timer;
    use profilis_core::testing::capture_with;
    use profilis_core::{Detail, Kind, Metric, Value, FUNCTION};

    /// A kind first used after the collector started: it gets the buckets of every kind.
    static LATE: Kind = Kind::new(
        "late",
        "LATE",
        "late",
        Metric {
            name: "late_total",
            help: "Late calls",
        },
        Metric {
            name: "late_duration_seconds",
            help: "Late call duration",
        },
    );
    #[derive(Debug)]
    struct NoFields;
    impl Detail for NoFields {
        fn field(&self, _: &str) -> Option<Value<'_>> {
            None
        }
    }
    static NARROW: Site = Site::function("collector::narrow", None);

    let config = CollectorConfig {
        // Functions get one bucket, narrower than any call: the other kinds' rows are wider,
        // so the function row is padded past its own bound.
        buckets: Buckets::new(&[0.001, 0.002, 0.004, 0.008])
            .unwrap()
            .with_kind(&FUNCTION, &[1e-6])
            .unwrap(),
        ..quick()
    };
    let ((), captured) = capture_with(config, || {
        let guard = enter(&NARROW);
        std::thread::sleep(Duration::from_millis(2));
        guard.exit(false);
        let late = Site::interned(&LATE, "queue", &[]);
        let timer = Timer::start_sampled(late).expect("a collector runs");
        std::thread::sleep(Duration::from_millis(2));
        timer.finish(late, true, false, Outcome::Returned, || NoFields);
    });
    let buckets = |name: &str| -> Vec<(f64, u64)> {
        let count = captured
            .counts
            .iter()
            .find(|c| c.site.name() == name)
            .unwrap_or_else(|| panic!("no count of {name}"));
        count.durations.iter().map(|b| (b.le, b.count)).collect()
    };
    // Past its only bound: in its own +Inf bucket, not in a wider row's.
    assert_eq!(
        buckets("collector::narrow"),
        [(1e-6, 0), (f64::INFINITY, 1)]
    );
    let late = buckets("queue");
    let bounds: Vec<f64> = late.iter().map(|b| b.0).collect();
    assert_eq!(bounds, [0.001, 0.002, 0.004, 0.008, f64::INFINITY]);
    assert_eq!(late.iter().map(|b| b.1).sum::<u64>(), 1);
    assert_eq!(
        late[0].1 + late[1].1,
        0,
        "slept 2 ms: above 0.002 s: {late:?}"
    );
}

#[test]
fn a_guard_started_in_place_records_its_one_call() {
    use profilis_core::adapter::CallGuard;
    use profilis_core::testing::capture;

    static IN_PLACE: Site = Site::function("collector::in_place", None);
    static SECOND: Site = Site::function("collector::second", None);
    static UNSAMPLED: Site = Site::function("collector::unsampled", Some(0.0));
    let ((), captured) = capture(|| {
        let mut guard = CallGuard::new();
        guard.start(&IN_PLACE);
        let inside = context::current().expect("the call is the current span");
        // A guard holds one call: a second start does nothing.
        guard.start(&SECOND);
        assert_eq!(context::current(), Some(inside));
        guard.exit(true);
        assert_eq!(
            context::current(),
            None,
            "the span before it is current again"
        );
        // A guard never started records nothing.
        CallGuard::default().exit(false);
        // The same for a call sampled out; and a guard ended can be started again.
        let mut counted = CallGuard::new();
        counted.start(&UNSAMPLED);
        counted.start(&SECOND);
        assert_eq!(context::current(), None, "a call sampled out makes no span");
        counted.exit_with(None);
        counted.start(&UNSAMPLED);
        counted.exit_with(None);
    });
    assert_eq!(captured.count("collector::in_place"), (1, 1));
    assert_eq!(captured.count("collector::unsampled"), (2, 0));
    assert_eq!(captured.count("collector::second"), (0, 0));
    assert_eq!(captured.events.len(), 1, "{:?}", captured.events);
}

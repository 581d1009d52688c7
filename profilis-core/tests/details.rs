//! What a sink that wants details gets from real calls on real threads: fine duration buckets
//! whose percentiles are within 5% of the exact ones of the durations recorded (the events'
//! `dur_ns`), failed calls, and slow-call candidates.

use std::time::{Duration, Instant};

use profilis_core::adapter;
use profilis_core::testing::capture_details;
use profilis_core::{Latency, Site};

static SPREAD: Site = Site::function("details::spread", None);
static FAILING: Site = Site::function("details::failing", None);

/// Busy-waits `d` (a sleep would hand the thread to the scheduler for far longer).
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn percentiles_of_fine_buckets_are_within_five_percent_of_the_exact_ones() {
    // Log-uniform from 1 us to 10 ms, on two threads.
    let ((), captured) = capture_details(|| {
        std::thread::scope(|s| {
            for t in 0..2u64 {
                s.spawn(move || {
                    for i in 0..500u64 {
                        let exponent = ((i * 2 + t) as f64) / 1000.0 * 4.0;
                        let ns = 1_000.0 * 10f64.powf(exponent);
                        let guard = adapter::enter(&SPREAD);
                        spin(Duration::from_nanos(ns as u64));
                        guard.exit(false);
                    }
                });
            }
        });
    });
    let mut exact: Vec<u64> = captured
        .named("details::spread")
        .iter()
        .map(|e| e.dur_ns)
        .collect();
    assert_eq!(exact.len(), 1000, "one event per call");
    exact.sort_unstable();
    let mut latency = Latency::default();
    for count in captured
        .counts
        .iter()
        .filter(|c| c.site.name() == "details::spread")
    {
        latency.add(count.latency.as_ref().expect("fine buckets with details"));
    }
    assert_eq!(latency.count(), 1000);
    for q in [0.5, 0.95, 0.99] {
        let rank = (q * exact.len() as f64).ceil() as usize;
        let want = exact[rank - 1] as f64;
        let got = latency.quantile_ns(q).unwrap() as f64;
        assert!(
            (got - want).abs() / want < 0.05,
            "p{}: {got} ns from the buckets, {want} ns exact",
            q * 100.0
        );
    }
    let max = latency.max_ns().unwrap() as f64;
    let want = *exact.last().unwrap() as f64;
    assert!(
        max >= want * 0.99 && max <= want * 1.07,
        "max {max} against {want}"
    );
}

#[test]
fn failed_and_slow_calls_reach_the_sink_with_their_trace_ids() {
    let ((), captured) = capture_details(|| {
        for i in 0..20u64 {
            let guard = adapter::enter(&FAILING);
            spin(Duration::from_micros(if i == 10 { 3_000 } else { 20 }));
            guard.exit(i % 5 == 0);
        }
    });
    let failed: Vec<_> = captured
        .errors
        .iter()
        .filter(|e| e.name() == "details::failing")
        .collect();
    assert_eq!(failed.len(), 4, "every failed call: {failed:?}");
    assert!(failed.iter().all(|e| e.error && e.trace_id.0 != 0));
    // No error type without a result to read it from.
    assert!(failed.iter().all(|e| e.failure.is_none()));
    let slowest = captured
        .slow
        .iter()
        .filter(|e| e.name() == "details::failing")
        .max_by_key(|e| e.dur_ns)
        .expect("slow-call candidates");
    assert!(slowest.dur_ns >= 3_000_000, "{slowest:?}");
    let event = captured
        .named("details::failing")
        .into_iter()
        .find(|e| e.span_id == slowest.span_id)
        .expect("the slow call's event, by its span id");
    assert_eq!(event.dur_ns, slowest.dur_ns);
}

#[test]
fn without_details_sinks_get_none() {
    let ((), captured) = profilis_core::testing::capture(|| {
        let guard = adapter::enter(&FAILING);
        guard.exit(true);
    });
    assert!(captured.counts.iter().all(|c| c.latency.is_none()));
    assert!(captured.errors.is_empty() && captured.slow.is_empty());
}

#[test]
fn with_exemplars_the_first_call_of_a_cycle_and_the_slowest_are_candidates() {
    static SAMPLED: Site = Site::function("details::sampled", None);

    /// Wants exemplars only (as the Prometheus exporter does), and keeps the candidates.
    #[derive(Clone, Default)]
    struct Exemplars(std::sync::Arc<std::sync::Mutex<Vec<profilis_core::Event>>>);

    impl profilis_core::Sink for Exemplars {
        fn write(
            &mut self,
            batch: &profilis_core::Batch<'_>,
        ) -> Result<(), profilis_core::SinkError> {
            self.0.lock().unwrap().extend(batch.slow.iter().cloned());
            Ok(())
        }
        fn wants_events(&self) -> bool {
            false
        }
        fn wants_exemplars(&self) -> bool {
            true
        }
    }

    let _serial = profilis_core::testing::lock();
    let sink = Exemplars::default();
    let collector = profilis_core::Collector::start(
        profilis_core::CollectorConfig {
            flush_interval: Duration::from_millis(20),
            enabled: Some(true),
            ..Default::default()
        },
        vec![Box::new(sink.clone())],
    )
    .unwrap();
    let round = |spin_for: Duration| {
        let guard = adapter::enter(&SAMPLED);
        spin(spin_for);
        guard.exit(false);
    };
    // A slow first call, then fast ones: only the first is a candidate until the next cycle
    // forgets the threshold.
    round(Duration::from_micros(500));
    for _ in 0..200 {
        round(Duration::ZERO);
    }
    std::thread::sleep(Duration::from_millis(100));
    round(Duration::ZERO);
    assert!(collector.shutdown().is_clean());
    let candidates = sink.0.lock().unwrap().clone();
    let candidates: Vec<_> = candidates
        .iter()
        .filter(|e| e.name() == "details::sampled")
        .collect();
    assert!(
        candidates[0].dur_ns >= 500_000,
        "the first call: {candidates:?}"
    );
    assert!(candidates.iter().all(|e| e.trace_id.0 != 0));
    assert!(
        candidates.len() < 20,
        "the fast calls after it are not candidates: {}",
        candidates.len()
    );
    assert!(
        candidates.last().unwrap().dur_ns < 500_000,
        "a later cycle's first call, however fast, is one: {candidates:?}"
    );
}

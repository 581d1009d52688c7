//! How fast the one collector thread drains events into a sink, and how many events are dropped
//! when one or two threads call a profiled function as fast as they can.
//!
//! ```sh
//! cargo bench --features jsonl --bench collector
//! ```
//!
//! Each row runs producers for `RUN` against a freshly installed Prometheus exporter (default
//! collector settings: 2,048 events queued per thread, batches of 128, the collector woken every
//! 128 events), which alone wants no events (calls are counted and filed in buckets on their
//! threads, and the facade sink records the totals), and with a sink that wants every event:
//! - one that drops the batch: the collector's own draining rate;
//! - the JSONL sink (rotating files in a temp directory, 64 MiB each, the newest two kept).
//!
//! Events drained per second are the events handed to the sinks while the producers ran; the
//! drop rate is the share of queued events that found their thread's queue full.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use profilis::{profiled, stats, Exporter, JsonlConfig};

mod common {
    pub mod discard;
}
use common::discard::Discard;

/// How long the producers call.
const RUN: Duration = Duration::from_secs(2);

#[profiled]
#[inline(never)]
fn work() {
    black_box(());
}

/// What one run measured.
struct Run {
    calls_per_s: f64,
    drained_per_s: f64,
    drop_rate: f64,
}

/// Runs `producers` threads calling `work` for `RUN` against the exporter `exporter` installs.
fn run(producers: usize, exporter: Exporter) -> Run {
    let guard = exporter
        .without_listener()
        .enabled(true)
        .install()
        .expect("the exporter installs");
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    let barrier = Barrier::new(producers + 1);
    let (before, after, elapsed) = std::thread::scope(|s| {
        for _ in 0..producers {
            s.spawn(|| {
                barrier.wait();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        work();
                    }
                    n += 1024;
                }
                calls.fetch_add(n, Ordering::Relaxed);
            });
        }
        let before = stats();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
        let after = stats();
        (before, after, start.elapsed())
    });
    let report = guard.shutdown();
    assert!(report.is_clean(), "the collector flushed: {report}");
    let secs = elapsed.as_secs_f64();
    let enqueued = after.enqueued - before.enqueued;
    Run {
        calls_per_s: calls.load(Ordering::Relaxed) as f64 / secs,
        drained_per_s: (after.processed - before.processed) as f64 / secs,
        drop_rate: if enqueued == 0 {
            0.0
        } else {
            (after.dropped - before.dropped) as f64 / enqueued as f64
        },
    }
}

/// Makes the exporter of one row, afresh for each run.
type MakeExporter<'a> = Box<dyn Fn() -> Exporter + 'a>;

fn millions(per_s: f64) -> String {
    format!("{:.2} M/s", per_s / 1e6)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("profilis-bench-collector-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rows: Vec<(&str, MakeExporter)> = vec![
        (
            "Prometheus exporter (facade sink) alone: counts, no events",
            Box::new(Exporter::new),
        ),
        (
            "Prometheus exporter + a sink that wants every event and drops it",
            Box::new(|| Exporter::new().sink(Discard)),
        ),
        (
            "Prometheus exporter + JSONL sink",
            Box::new(|| {
                Exporter::new().jsonl(
                    JsonlConfig::new(&dir)
                        .rotate_bytes(64 * 1024 * 1024)
                        .keep_files(2),
                )
            }),
        ),
    ];
    println!();
    println!("| sinks | producer threads | calls | events drained | events dropped |");
    println!("|---|---:|---:|---:|---:|");
    for (label, exporter) in &rows {
        for producers in [1, 2] {
            let r = run(producers, exporter());
            println!(
                "| {label} | {producers} | {} | {} | {:.1}% |",
                millions(r.calls_per_s),
                millions(r.drained_per_s),
                r.drop_rate * 100.0
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! Resident memory after 10 million calls with nothing scraping, for `#[profiled]` with the
//! Prometheus exporter, for autometrics 3 with its Prometheus exporter, and for hand-written
//! `metrics` calls (cached handles) with metrics-exporter-prometheus installed as its users
//! install it without an HTTP listener (`install_recorder`).
//!
//! ```sh
//! cargo bench -p profilis-peers --bench peers_memory
//! ```
//!
//! Each peer runs in a child process of its own (this binary again, with
//! `PROFILIS_PEERS_PROCESS` naming it): each installs the global `metrics` recorder, and memory
//! is only comparable in a fresh process. The parent prints one table. The assertion on
//! profilis's figure lives in the root package's `tests/exporter_memory.rs`; this bench only
//! measures.

use std::process::Command;
use std::time::Duration;

#[macro_use]
mod common {
    #[macro_use]
    pub mod peer_work;
}

// `PROCESS_VAR`, `work`, `profiled_work`, `autometrics_work`, `metrics_cached_work`: the very
// functions `benches/peers.rs` times (the call of the empty `work` in `metrics_cached_work` keeps
// nothing in memory), defined here at the root.
peer_work!();

/// Calls measured, after a warm-up of `WARM_UP` calls.
const CALLS: u64 = 10_000_000;
const WARM_UP: u64 = 100_000;

/// The peers, in the order of the table: (process, what is measured).
const PEERS: &[(&str, &str)] = &[
    (
        "profilis",
        "`#[profiled]`, Prometheus exporter (no listener)",
    ),
    (
        "autometrics",
        "autometrics 3, its Prometheus exporter (metrics-exporter-prometheus 0.17)",
    ),
    (
        "metrics",
        "`metrics` cached handles, metrics-exporter-prometheus 0.18 `install_recorder`",
    ),
];

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages in /proc/self/statm");
    pages * 4096
}

/// Warms up, then makes `CALLS` calls; the growth of resident memory over them, in bytes.
fn grown_over_calls(call: fn()) -> u64 {
    // This thread's state, the series, the allocator's arenas.
    for _ in 0..WARM_UP {
        call();
    }
    std::thread::sleep(Duration::from_millis(50));
    let before = resident_bytes();
    for _ in 0..CALLS {
        call();
    }
    resident_bytes().saturating_sub(before)
}

/// The `_count` of the histogram line starting with `prefix` in `text`.
fn histogram_count(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// Runs one peer; prints `grown_bytes calls_seen` for the parent.
fn run_child(process: &str) {
    let (grown, count) = match process {
        "profilis" => {
            let guard = profilis::Exporter::new()
                .without_listener()
                .install()
                .expect("the profilis exporter installs");
            let grown = grown_over_calls(profiled_work);
            // Drains every thread's counts into the recorder, as a scrape would see them.
            let report = guard.shutdown();
            assert!(report.is_clean(), "the collector flushed: {report}");
            let text = profilis::render().unwrap_or_default();
            (
                grown,
                histogram_count(&text, "profilis_function_duration_seconds_count"),
            )
        }
        "autometrics" => {
            autometrics::prometheus_exporter::try_init().expect("autometrics' exporter installs");
            let grown = grown_over_calls(autometrics_work);
            let text = autometrics::prometheus_exporter::encode_to_string().unwrap_or_default();
            (
                grown,
                histogram_count(&text, "function_calls_duration_seconds_count"),
            )
        }
        "metrics" => {
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&profilis::DEFAULT_BUCKETS)
                .expect("buckets")
                .install_recorder()
                .expect("the Prometheus recorder installs");
            let grown = grown_over_calls(metrics_cached_work);
            (
                grown,
                histogram_count(&handle.render(), "work_duration_seconds_count"),
            )
        }
        other => panic!("{PROCESS_VAR}={other}: not a peer of this bench"),
    };
    println!("{grown} {}", count.unwrap_or(f64::NAN));
}

/// `bytes` in KiB below a MiB, else in MiB.
fn size(bytes: u64) -> String {
    if bytes < 1024 * 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

fn main() {
    if let Ok(process) = std::env::var(PROCESS_VAR) {
        run_child(&process);
        return;
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    println!();
    println!(
        "| peer | resident memory growth over {} M calls, nothing scraping | calls in the histogram's `_count` |",
        CALLS / 1_000_000
    );
    println!("|---|---:|---:|");
    for (process, label) in PEERS {
        let output = Command::new(&exe)
            .env(PROCESS_VAR, process)
            .output()
            .expect("the bench runs itself");
        assert!(
            output.status.success(),
            "the {process} peer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut fields = stdout.split_whitespace();
        let grown: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let count = fields.next().unwrap_or("?");
        println!("| {label} | {} | {count} |", size(grown));
    }
}

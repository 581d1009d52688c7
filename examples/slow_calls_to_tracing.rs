//! A custom sink: every profiled call slower than a threshold becomes a `tracing` warning, with
//! the function, its duration and its trace id (to find the rest of the request in the JSONL
//! log). It asks the collector for slow calls only, so the filter runs once on the collector
//! thread and the other sinks still see every event.
//!
//! `cargo run --example slow_calls_to_tracing`: runs a few seconds of work, one function of which
//! is now and then slow, then stops (dropping the guard flushes the last calls).
//!
//! The sink is all there is to it:
//!
//! ```no_run
//! use std::time::Duration;
//! use profilis::{Batch, EventFilter, Sink, SinkError};
//!
//! struct SlowCallsToTracing {
//!     slow: EventFilter,
//! }
//!
//! impl SlowCallsToTracing {
//!     fn new(threshold: Duration) -> Self {
//!         let threshold_ns = u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX);
//!         SlowCallsToTracing { slow: EventFilter::matching(move |e| e.dur_ns > threshold_ns) }
//!     }
//! }
//!
//! impl Sink for SlowCallsToTracing {
//!     fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
//!         for e in batch.events {
//!             tracing::warn!(
//!                 function = e.name(),
//!                 duration_ms = e.dur_ns as f64 / 1e6,
//!                 trace_id = %e.trace_id,
//!                 "slow call"
//!             );
//!         }
//!         Ok(())
//!     }
//!
//!     fn event_filter(&self) -> Option<&EventFilter> {
//!         Some(&self.slow)
//!     }
//! }
//!
//! # fn main() -> Result<(), profilis::Error> {
//! tracing_subscriber::fmt().init();
//! let _profilis = profilis::Exporter::new()
//!     .sink(SlowCallsToTracing::new(Duration::from_millis(20)))
//!     .install()?;
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use profilis::{profiled, Batch, EventFilter, Sink, SinkError};

/// Calls that take longer than this are reported.
const THRESHOLD: Duration = Duration::from_millis(20);
/// How long the example runs.
const RUN_FOR: Duration = Duration::from_secs(3);

/// Forwards every event slower than a threshold to `tracing` as a warning.
struct SlowCallsToTracing {
    slow: EventFilter,
}

impl SlowCallsToTracing {
    fn new(threshold: Duration) -> Self {
        let threshold_ns = u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX);
        SlowCallsToTracing {
            slow: EventFilter::matching(move |e| e.dur_ns > threshold_ns),
        }
    }
}

impl Sink for SlowCallsToTracing {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        // Only slow events are here: the collector applied `event_filter` for this sink.
        for e in batch.events {
            tracing::warn!(
                function = e.name(),
                duration_ms = e.dur_ns as f64 / 1e6,
                trace_id = %e.trace_id,
                "slow call"
            );
        }
        Ok(())
    }

    fn event_filter(&self) -> Option<&EventFilter> {
        Some(&self.slow)
    }

    fn name(&self) -> &str {
        "slow-calls-to-tracing"
    }
}

/// Fast: well under the threshold.
#[profiled]
fn lookup_price(sku: u32) -> u64 {
    std::thread::sleep(Duration::from_millis(1));
    u64::from(sku) * 250
}

/// Every seventh order waits on a slow "payment provider", past the threshold.
#[profiled]
fn charge(order: u32) -> Result<(), String> {
    let wait = if order.is_multiple_of(7) { 35 } else { 2 };
    std::thread::sleep(Duration::from_millis(wait));
    Ok(())
}

/// One order: its calls share a trace, so a slow `charge` warning names the order's trace.
#[profiled]
fn place_order(order: u32) -> Result<u64, String> {
    let total = (0..3).map(|i| lookup_price(order + i)).sum();
    charge(order)?;
    Ok(total)
}

fn main() {
    tracing_subscriber::fmt().with_target(false).init();
    let profilis = match profilis::Exporter::new()
        // No `/metrics` listener here: this example only shows the custom sink.
        .without_listener()
        .sink(SlowCallsToTracing::new(THRESHOLD))
        .install()
    {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("profilis could not start: {e}");
            std::process::exit(1);
        }
    };
    tracing::info!(
        threshold_ms = THRESHOLD.as_millis() as u64,
        "placing orders for {RUN_FOR:?}"
    );

    let started = Instant::now();
    let mut orders = 0u32;
    while started.elapsed() < RUN_FOR {
        orders += 1;
        if let Err(e) = place_order(orders) {
            tracing::error!("order {orders} failed: {e}");
        }
    }

    // Dropping the guard drains the queued calls into the sinks, so the last warnings appear.
    drop(profilis);
    tracing::info!(orders, "done");
}

//! Profiled sync and async functions under a steady workload, one failing now and then.
//!
//! `cargo run --example quickstart`; stop with Ctrl-C. Every second it prints what the
//! collector saw: calls, errors and mean duration per function.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use profilis::{profiled, Batch, Collector, CollectorConfig, Sink, SinkError};

#[profiled]
fn price_order(items: u32) -> Result<u64, String> {
    std::thread::sleep(Duration::from_micros(200 + u64::from(items) * 20));
    if items.is_multiple_of(11) {
        Err(format!("no price for {items} items"))
    } else {
        Ok(u64::from(items) * 250)
    }
}

#[profiled(sample = 0.25)]
fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |acc, b| acc.rotate_left(5) ^ u32::from(*b))
}

#[profiled]
async fn load_user(id: u64) -> Option<String> {
    tokio::time::sleep(Duration::from_millis(1 + id % 3)).await;
    Some(format!("user-{id}"))
}

/// Prints a line per function every second.
#[derive(Default)]
struct Summary {
    per_fn: BTreeMap<&'static str, (u64, u64, u64, u64)>, // calls, errors, timed, total ns
    last_print: Option<std::time::Instant>,
}

impl Sink for Summary {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        for c in batch.counts {
            let e = self.per_fn.entry(c.site.name()).or_default();
            e.0 += c.calls;
            e.1 += c.errors;
        }
        for ev in batch.events {
            let e = self.per_fn.entry(ev.name()).or_default();
            e.2 += 1;
            e.3 += ev.dur_ns;
        }
        let now = std::time::Instant::now();
        if self
            .last_print
            .is_none_or(|t| now - t >= Duration::from_secs(1))
        {
            self.last_print = Some(now);
            for (name, (calls, errors, timed, ns)) in &self.per_fn {
                let mean_us = if *timed > 0 {
                    *ns as f64 / *timed as f64 / 1e3
                } else {
                    0.0
                };
                println!("{name:<28} calls {calls:>7}  errors {errors:>5}  mean {mean_us:>8.1} µs");
            }
            println!("{:?}", batch.stats);
        }
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), profilis::ConfigError> {
    let collector = Collector::start(
        CollectorConfig::default(),
        vec![Box::new(Summary::default())],
    )?;
    println!("profiling; Ctrl-C to stop");

    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let _ = price_order((i % 40) as u32);
                checksum(&i.to_le_bytes());
                load_user(i).await;
            }
        })
    };
    let _ = tokio::signal::ctrl_c().await;
    stop.store(true, Ordering::Relaxed);
    let _ = worker.await;
    // Dropping the collector flushes every queued event.
    drop(collector);
    println!("flushed, bye");
    Ok(())
}

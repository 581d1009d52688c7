//! Profiled sync and async functions under a steady workload, one failing now and then, served
//! on `/metrics` by the built-in listener, with its live dashboard at `/`.
//!
//! `cargo run --example quickstart`, then open the printed URLs (or `curl` them). Ctrl-C stops it;
//! dropping the guard flushes every queued call first. `PROFILIS_LISTEN=127.0.0.1:9999` moves it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use profilis::profiled;

/// Prices an order; every eleventh size has no price (an `Err`, counted as an error).
#[profiled]
fn price_order(items: u32) -> Result<u64, String> {
    std::thread::sleep(Duration::from_micros(300 + u64::from(items) * 50));
    if items.is_multiple_of(11) {
        Err(format!("no price for {items} items"))
    } else {
        Ok(u64::from(items) * 250)
    }
}

/// A cheap, hot function: only a quarter of its calls are timed, all are counted.
#[profiled(sample = 0.25)]
fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |acc, b| acc.rotate_left(5) ^ u32::from(*b))
}

/// An async call: timed from its first poll to completion, across its `.await`s.
#[profiled]
async fn load_user(id: u64) -> Option<String> {
    tokio::time::sleep(Duration::from_millis(2 + id % 5)).await;
    Some(format!("user-{id}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let profilis = match profilis::install_exporter() {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("profilis could not start: {e}");
            std::process::exit(1);
        }
    };
    let addr = profilis.listen_addr().expect("the built-in listener runs");
    // On by default on a loopback address such as the default 127.0.0.1:9464.
    if profilis.dashboard().is_some() {
        println!("live dashboard on  http://{addr}/");
    }
    println!("serving metrics on http://{addr}/metrics (Ctrl-C to stop)");

    let stop = Arc::new(AtomicBool::new(false));
    let sync_work = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_add(1);
                let _ = price_order(i % 40);
                for _ in 0..100 {
                    std::hint::black_box(checksum(&i.to_le_bytes()));
                }
            }
        })
    };
    let async_work = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                load_user(id).await;
            }
        })
    };

    let _ = tokio::signal::ctrl_c().await;
    stop.store(true, Ordering::Relaxed);
    let _ = sync_work.join();
    let _ = async_work.await;
    let report = profilis.shutdown();
    println!("stopped: {report}");
}

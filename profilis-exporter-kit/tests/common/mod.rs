//! A probe exporter the tests start: its update does what the test asks (set a value, fail,
//! panic, sleep, wait at a gate) and counts its calls.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use profilis_exporter_kit::{BoxError, Context, Counter, Gauge, Running, Script, UpdateMode};

/// Tests that start an exporter take turns: one runs per process.
pub static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the next updates do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Set `probe_value` to the value.
    Succeed,
    /// Return an error.
    Fail,
    /// Return the kit's `TimedOut` error.
    TimedOut,
    /// Panic.
    Panic,
    /// Sleep this long, then succeed.
    Sleep(Duration),
    /// Wait until the gate opens, then succeed.
    Gate,
}

#[derive(clap::Args, Debug)]
pub struct ProbeOptions {
    /// How updates run: never, on-scrape or poll.
    #[arg(long, default_value = "on-scrape")]
    pub mode: String,
    /// Poll interval in milliseconds.
    #[arg(long, default_value_t = 3_600_000)]
    pub interval_ms: u64,
    /// Update time limit in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Name of the probe's gauge.
    #[arg(long, default_value = "probe_value")]
    pub metric_name: String,
}

pub struct Probe {
    pub mode: UpdateMode,
    pub value: AtomicU64,
    pub calls: AtomicUsize,
    pub behaviour: Mutex<Behaviour>,
    pub gate: tokio::sync::Semaphore,
    pub shut_down: Arc<AtomicBool>,
    /// Updates running now.
    pub running: Arc<AtomicUsize>,
    /// Updates running when the shutdown hook ran.
    pub running_at_shutdown: AtomicUsize,
    pub gauge: Gauge,
    pub updates: Counter,
}

impl Probe {
    pub fn set_value(&self, value: u64) {
        self.value.store(value, Ordering::SeqCst);
    }

    pub fn behave(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Script for Probe {
    type Options = ProbeOptions;
    const NAME: &'static str = "probe-exporter";
    const VERSION: &'static str = "1.2.3";
    const DESCRIPTION: &'static str = "Probes the exporter kit.";
    const DEFAULT_PORT: u16 = 9999;

    fn configure(options: ProbeOptions, context: &Context) -> Result<Self, BoxError> {
        let interval = Duration::from_millis(options.interval_ms);
        let timeout = Duration::from_millis(options.timeout_ms);
        let mode = match options.mode.as_str() {
            "never" => UpdateMode::Never,
            "on-scrape" => UpdateMode::OnScrape { timeout },
            "poll" => UpdateMode::Poll { interval, timeout },
            other => {
                return Err(format!("--mode {other:?}: expected never, on-scrape or poll").into())
            }
        };
        let metrics = context.metrics();
        Ok(Probe {
            mode,
            value: AtomicU64::new(0),
            calls: AtomicUsize::new(0),
            behaviour: Mutex::new(Behaviour::Succeed),
            gate: tokio::sync::Semaphore::new(0),
            shut_down: Arc::new(AtomicBool::new(false)),
            running: Arc::new(AtomicUsize::new(0)),
            running_at_shutdown: AtomicUsize::new(usize::MAX),
            gauge: metrics.gauge(&options.metric_name, "The probe's value", &["source"])?,
            updates: metrics.counter("probe_updates", "Successful updates", &[])?,
        })
    }

    fn update_mode(&self) -> UpdateMode {
        self.mode
    }

    async fn shutdown(&self) {
        self.running_at_shutdown
            .store(self.running.load(Ordering::SeqCst), Ordering::SeqCst);
        self.shut_down.store(true, Ordering::SeqCst);
    }

    async fn update(&self) -> Result<(), BoxError> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let _running = RunningGuard(Arc::clone(&self.running));
        self.calls.fetch_add(1, Ordering::SeqCst);
        let behaviour = *self.behaviour.lock().unwrap();
        match behaviour {
            Behaviour::Succeed => {}
            Behaviour::Fail => return Err("the target answered 500".into()),
            Behaviour::TimedOut => {
                return Err(
                    profilis_exporter_kit::TimedOut::new("the target did not answer").into(),
                )
            }
            Behaviour::Panic => panic!("the probe panicked on purpose"),
            Behaviour::Sleep(d) => tokio::time::sleep(d).await,
            Behaviour::Gate => drop(self.gate.acquire().await?),
        }
        self.gauge
            .set(&["test"], self.value.load(Ordering::SeqCst) as f64)?;
        self.updates.inc(&[])?;
        Ok(())
    }
}

/// Counts an update as running until it ends, however it ends (an abort drops it).
struct RunningGuard(Arc<AtomicUsize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts the probe on a free loopback port with `extra` arguments.
pub async fn start(extra: &[&str]) -> Result<Running<Probe>, profilis_exporter_kit::Error> {
    let mut args = vec![
        "probe-exporter",
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "-L",
        "debug",
    ];
    args.extend_from_slice(extra);
    profilis_exporter_kit::start::<Probe, _, _>(args).await
}

/// `GET /metrics` over loopback, off the runtime: status and body.
pub async fn scrape(addr: SocketAddr) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let response = profilis_test_support::get(addr, "/metrics", &[]);
        (response.status, response.text())
    })
    .await
    .expect("the scrape's thread")
}

/// The value of `name{labels}` on `page`.
pub fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    profilis_test_support::sample(page, name, labels)
}

//! The collector: a worker thread that drains every thread's ring, counts calls exactly, and hands
//! batches to the sinks, every `flush_interval` and whenever a batch fills. The application never
//! waits for it; a full queue drops events and counts them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

mod config;
mod worker;

pub use config::{validate_buckets, Buckets, CollectorConfig, DEFAULT_BUCKETS};

use crate::clock;
use crate::error::StartError;
use crate::kind::kinds;
use crate::local::{self, Generation};
use crate::sink::{FanOut, Sink, Stats};
use crate::switch;
use worker::Worker;

static COLLECTOR_RUNNING: AtomicBool = AtomicBool::new(false);
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

/// The collector's counters now (process-wide, over every collector run).
pub fn stats() -> Stats {
    worker::stats_of(&local::snapshot())
}

/// A running collector. Only one runs per process. Dropping it (or [`Collector::shutdown`])
/// stops recording, drains every queued event into the sinks, flushes them and stops the worker,
/// waiting at most `shutdown_timeout`.
#[must_use = "dropping the collector stops it"]
pub struct Collector {
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
    worker: Option<JoinHandle<()>>,
    timeout: Duration,
}

impl Collector {
    /// Starts the collector thread with `sinks`.
    ///
    /// # Errors
    /// [`StartError::Config`] for an invalid setting or a bad `PROFILIS_DISABLED`,
    /// [`StartError::AlreadyRunning`] if a collector is already running, [`StartError::Spawn`]
    /// if its thread cannot be started.
    pub fn start(
        config: CollectorConfig,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<Collector, StartError> {
        config.validate()?;
        let enabled = match config.enabled {
            Some(enabled) => Some(enabled),
            None => switch::disabled_from_env()?.map(|disabled| !disabled),
        };
        if COLLECTOR_RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(StartError::AlreadyRunning);
        }
        clock::warm_up();
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = mpsc::channel();
        // Kinds with buckets of their own are known (registered) by now.
        let kinds = kinds();
        let sinks = FanOut::new(sinks);
        let wants_events = sinks.wants_events();
        let mut worker = Worker {
            sinks,
            batch_max: config.batch_max,
            buckets: config.buckets.bounds(&kinds, |seconds| seconds),
            events: Vec::with_capacity(config.batch_max.min(4096)),
            counts: Vec::new(),
            totals: Vec::new(),
        };
        let worker_stop = stop.clone();
        let flush_interval = config.flush_interval;
        let spawned = thread::Builder::new()
            .name("profilis-collector".into())
            .spawn(move || worker.run(&worker_stop, flush_interval, done_tx));
        let handle = match spawned {
            Ok(handle) => handle,
            Err(e) => {
                COLLECTOR_RUNNING.store(false, Ordering::Release);
                return Err(StartError::Spawn(e));
            }
        };
        let id = GENERATIONS.fetch_add(1, Ordering::Relaxed) + 1;
        local::set_generation(Some(Arc::new(Generation {
            id,
            queue_size: config.queue_size,
            batch_max: config.batch_max as u64,
            policy: config.drop_policy,
            worker: handle.thread().clone(),
            events: wants_events,
            bounds: config.buckets.bounds(&kinds, clock::seconds_to_ticks),
        })));
        switch::start_generation(id, enabled);
        Ok(Collector {
            stop,
            done,
            worker: Some(handle),
            timeout: config.shutdown_timeout,
        })
    }

    /// Stops recording, drains every queued event into the sinks and flushes them. Returns
    /// whether that finished within `shutdown_timeout`.
    pub fn shutdown(mut self) -> bool {
        self.stop_worker()
    }

    fn stop_worker(&mut self) -> bool {
        let Some(worker) = self.worker.take() else {
            return true;
        };
        switch::stop_running();
        local::set_generation(None);
        self.stop.store(true, Ordering::Release);
        worker.thread().unpark();
        let flushed = match self.done.recv_timeout(self.timeout) {
            Ok(()) => worker.join().is_ok(),
            Err(_) => {
                eprintln!(
                    "profilis: the collector did not finish flushing within {:?}; \
                     events still queued may be lost",
                    self.timeout
                );
                false
            }
        };
        COLLECTOR_RUNNING.store(false, Ordering::Release);
        flushed
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop_worker();
    }
}

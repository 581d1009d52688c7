//! The collector: a worker thread that drains every thread's ring, counts calls exactly, and hands
//! batches to the sinks, every `flush_interval` and whenever a batch fills. The application never
//! waits for it; a full queue drops events and counts them.

use std::fmt;
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
use crate::sink::{FanOut, FlushOutcome, Sink, Stats};
use crate::switch;
use worker::Worker;
pub(crate) use worker::SINK_FAILURES;

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
    done: mpsc::Receiver<FlushOutcome>,
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
        let wants_details = sinks.wants_details();
        let wants_exemplars = sinks.wants_exemplars();
        if wants_events || wants_details {
            crate::notable::install_panic_hook();
        }
        let mut worker = Worker {
            sinks,
            batch_max: config.batch_max,
            buckets: config.buckets.bounds(&kinds, |seconds| seconds),
            events: Vec::with_capacity(config.batch_max.min(4096)),
            counts: Vec::new(),
            totals: Vec::new(),
            details: wants_details,
            exemplars: wants_exemplars,
            latency: Default::default(),
            failed: Vec::new(),
            slow: Vec::new(),
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
            details: wants_details,
            exemplars: wants_exemplars,
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

    /// Stops recording, drains every queued event into the sinks and flushes them, waiting at
    /// most `shutdown_timeout`. The report says whether that finished in time and what the
    /// sinks' last flushes lost (each failed flush is also printed on stderr).
    ///
    /// Called on the collector's own thread or a [`NonBlocking`](crate::NonBlocking) sink's
    /// (by a sink, or by the `Drop` of an event's detail), it cannot wait for that thread: it
    /// returns at once with `flushed: false`, and the collector drains and flushes once the
    /// work at hand returns, unwatched.
    ///
    /// ```
    /// # use profilis_core as profilis;
    /// use profilis::{Collector, CollectorConfig};
    ///
    /// let collector = Collector::start(CollectorConfig::default(), Vec::new()).unwrap();
    /// let report = collector.shutdown();
    /// assert!(report.is_clean(), "{report}");
    /// ```
    pub fn shutdown(mut self) -> ShutdownReport {
        self.stop_worker()
    }

    fn stop_worker(&mut self) -> ShutdownReport {
        let Some(worker) = self.worker.take() else {
            return ShutdownReport::default();
        };
        switch::stop_running();
        local::set_generation(None);
        self.stop.store(true, Ordering::Release);
        worker.thread().unpark();
        // A `NonBlocking` sink's thread is the collector's too: the collector waits for it.
        let on_its_own_thread = worker.thread().id() == std::thread::current().id()
            || crate::non_blocking::on_sink_thread();
        let report = match self.done_in_time(on_its_own_thread) {
            Some(outcome) => ShutdownReport {
                flushed: worker.join().is_ok(),
                failed_flushes: outcome.failed,
                lost: outcome.lost,
            },
            None => ShutdownReport {
                flushed: false,
                ..ShutdownReport::default()
            },
        };
        COLLECTOR_RUNNING.store(false, Ordering::Release);
        report
    }

    /// The collector's last flush, if it ends within `shutdown_timeout` (`None` past it, said
    /// on stderr). Not waited for on the collector's own thread: code it runs (a sink, a
    /// detail's `Drop`) that stops it would wait for itself, holding it that long.
    fn done_in_time(&self, on_its_own_thread: bool) -> Option<FlushOutcome> {
        if on_its_own_thread {
            eprintln!(
                "profilis: the collector was shut down from its own thread (a sink or an \
                 event's detail); it drains and flushes after the work at hand, unwatched"
            );
            return None;
        }
        let outcome = self.done.recv_timeout(self.timeout).ok();
        if outcome.is_none() {
            eprintln!(
                "profilis: the collector did not finish flushing within {:?}; \
                 events still queued may be lost",
                self.timeout
            );
        }
        outcome
    }
}

/// What a shutdown did: [`Collector::shutdown`], and the exporter guard's `shutdown`, which
/// returns the same. [`ShutdownReport::is_clean`] is the one question most callers ask: did
/// everything recorded reach the sinks?
///
/// Only the shutdown is reported here, with what each sink's last flush says it lost (a
/// [`NonBlocking`](crate::NonBlocking) sink's includes the batches it refused while
/// stalled). Losses while running are counted as they happen:
/// events dropped by full queues in [`Stats::dropped`] (`profilis_events_dropped_total`),
/// failed sink calls in [`Stats::sink_failures`] (`profilis_sink_failures_total`), and the
/// sinks' own counters (`profilis_jsonl_dropped_lines_total`).
///
/// The `Default` report is that of a shutdown with nothing left to do: flushed, nothing lost.
#[must_use = "a shutdown that lost data says so here (and on stderr)"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether the collector drained every queue and flushed every sink within
    /// `shutdown_timeout`. When `false`, the sinks may still be flushing on the collector
    /// thread, and what they lose then is not in this report.
    pub flushed: bool,
    /// Sinks whose last flush failed (returned an error or panicked).
    pub failed_flushes: u64,
    /// Items (events, JSONL lines, ...) the failed flushes lost for good, as the sinks said
    /// ([`SinkError::lost`](crate::SinkError::lost)).
    pub lost: u64,
}

impl ShutdownReport {
    /// Flushed in time, no sink's last flush failed, nothing lost.
    pub fn is_clean(&self) -> bool {
        self.flushed && self.failed_flushes == 0 && self.lost == 0
    }
}

impl Default for ShutdownReport {
    fn default() -> ShutdownReport {
        ShutdownReport {
            flushed: true,
            failed_flushes: 0,
            lost: 0,
        }
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.flushed {
            f.write_str("every sink flushed in time")?;
        } else {
            f.write_str("the sinks did not finish flushing within the shutdown timeout")?;
        }
        if self.failed_flushes > 0 {
            write!(
                f,
                "; {} sink(s) failed their last flush, losing {} item(s)",
                self.failed_flushes, self.lost
            )?;
        }
        Ok(())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Dropped without `shutdown`: what a failed flush lost is said on stderr only.
        let _ = self.stop_worker();
    }
}

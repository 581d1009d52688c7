//! The collector: a worker thread that drains every thread's ring, counts calls exactly, and hands
//! batches to the sinks, every `flush_interval` and whenever a batch fills. The application never
//! waits for it; a full queue drops events and counts them.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::clock;
use crate::error::ConfigError;
use crate::event::Event;
use crate::local::{self, Generation, Snapshot, ThreadState, ENABLED, GEN_SHIFT, RUNNING, STATE};
use crate::ring::DropPolicy;
use crate::sink::{Batch, BucketTotal, CallCount, FanOut, Sink};
use crate::site::{self, Site};

/// The largest queue size (and batch size) accepted.
pub const MAX_QUEUE_SIZE: usize = 1 << 24;

/// Settings of the collector.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// Events each recording thread may have queued (default 2048). Memory is bounded by
    /// `queue_size` events per thread that records; beyond it, events are dropped and counted.
    pub queue_size: usize,
    /// Most events in one batch handed to the sinks (default 128). A thread that has queued a
    /// full batch wakes the collector early.
    pub batch_max: usize,
    /// How often the collector drains the queues and flushes (default 100 ms).
    pub flush_interval: Duration,
    /// Which event to drop when a queue is full (default: the new one).
    pub drop_policy: DropPolicy,
    /// How long dropping the [`Collector`] may wait for the last flush (default 5 s).
    pub shutdown_timeout: Duration,
    /// `Some(false)` starts with profiling switched off, `Some(true)` on; `None` reads
    /// `PROFILIS_DISABLED` (`1`/`true` switches it off).
    pub enabled: Option<bool>,
    /// Upper bounds (seconds) of the buckets that function durations are filed in on the
    /// calling thread (default [`DEFAULT_BUCKETS`]). Sinks get them in [`CallCount::durations`].
    pub function_buckets: Vec<f64>,
    /// The same for HTTP requests.
    pub http_buckets: Vec<f64>,
    /// The same for database queries.
    pub db_buckets: Vec<f64>,
}

/// Default histogram buckets, in seconds (the same as Python profilis).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Checks histogram buckets: at least one, all finite and positive, strictly increasing.
///
/// # Errors
/// [`ConfigError::Buckets`] naming the buckets and what is wrong.
pub fn validate_buckets(values: &[f64]) -> Result<Vec<f64>, ConfigError> {
    let bad = |reason| ConfigError::Buckets {
        value: format!("{values:?}"),
        reason,
    };
    if values.is_empty() {
        return Err(bad("there are none"));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad("one is not a finite number"));
    }
    if values.iter().any(|&v| v <= 0.0) {
        return Err(bad("one is not positive"));
    }
    if values.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("they are not in increasing order"));
    }
    Ok(values.to_vec())
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            queue_size: 2048,
            batch_max: 128,
            flush_interval: Duration::from_millis(100),
            drop_policy: DropPolicy::Newest,
            shutdown_timeout: Duration::from_secs(5),
            enabled: None,
            function_buckets: DEFAULT_BUCKETS.to_vec(),
            http_buckets: DEFAULT_BUCKETS.to_vec(),
            db_buckets: DEFAULT_BUCKETS.to_vec(),
        }
    }
}

impl CollectorConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// The first value that is out of range, named with what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.queue_size == 0 || self.queue_size > MAX_QUEUE_SIZE {
            return Err(ConfigError::QueueSize {
                value: self.queue_size,
                max: MAX_QUEUE_SIZE,
            });
        }
        if self.batch_max == 0 || self.batch_max > MAX_QUEUE_SIZE {
            return Err(ConfigError::BatchMax {
                value: self.batch_max,
                max: MAX_QUEUE_SIZE,
            });
        }
        validate_buckets(&self.function_buckets)?;
        validate_buckets(&self.http_buckets)?;
        validate_buckets(&self.db_buckets)?;
        if self.flush_interval.is_zero() {
            return Err(ConfigError::FlushInterval {
                value: self.flush_interval,
            });
        }
        Ok(())
    }
}

/// Reads `PROFILIS_DISABLED`: `Some(true)` to switch profiling off, `None` when unset.
///
/// # Errors
/// [`ConfigError::Env`] for a value other than `1`, `true`, `yes`, `on`, `0`, `false`, `no`,
/// `off` or empty.
pub fn disabled_from_env() -> Result<Option<bool>, ConfigError> {
    let Ok(value) = std::env::var("PROFILIS_DISABLED") else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "" | "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(ConfigError::Env {
            name: "PROFILIS_DISABLED",
            value,
            expected: "one of 1, true, yes, on, 0, false, no, off",
        }),
    }
}

/// Switches profiling on or off for the whole process. Off, a profiled call costs one atomic
/// load and records nothing.
pub fn set_enabled(enabled: bool) {
    if enabled {
        STATE.fetch_or(ENABLED, Ordering::Relaxed);
    } else {
        STATE.fetch_and(!ENABLED, Ordering::Relaxed);
    }
}

/// Whether profiling is switched on (it is by default).
pub fn is_enabled() -> bool {
    STATE.load(Ordering::Relaxed) & ENABLED != 0
}

/// The collector's counters. At any quiet moment
/// `enqueued == processed + dropped + queue_depth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Events offered to the queues.
    pub enqueued: u64,
    /// Events handed to the sinks.
    pub processed: u64,
    /// Events dropped because a queue was full.
    pub dropped: u64,
    /// Sink calls that failed (returned an error or panicked).
    pub sink_failures: u64,
    /// Events queued or in the batch being written now.
    pub queue_depth: u64,
}

static COLLECTOR_RUNNING: AtomicBool = AtomicBool::new(false);
static GENERATIONS: AtomicU64 = AtomicU64::new(0);
static POPPED: AtomicU64 = AtomicU64::new(0);
static PROCESSED: AtomicU64 = AtomicU64::new(0);
static SINK_FAILURES: AtomicU64 = AtomicU64::new(0);

/// The collector's counters now (process-wide, over every collector run).
pub fn stats() -> Stats {
    stats_of(&local::snapshot())
}

fn stats_of(snapshot: &Snapshot) -> Stats {
    let mut s = Stats {
        enqueued: snapshot.retired_enqueued,
        dropped: snapshot.retired_dropped,
        ..Stats::default()
    };
    let mut queued = 0;
    for t in &snapshot.states {
        s.enqueued += t.enqueued();
        s.dropped += t.dropped();
        queued += t.ring.len();
    }
    let processed = PROCESSED.load(Ordering::Acquire);
    s.processed = processed;
    s.sink_failures = SINK_FAILURES.load(Ordering::Relaxed);
    s.queue_depth = queued + POPPED.load(Ordering::Acquire).saturating_sub(processed);
    s
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
    /// A [`ConfigError`] for an invalid setting or a bad `PROFILIS_DISABLED`, or
    /// [`ConfigError::AlreadyRunning`] if a collector is already running.
    pub fn start(
        config: CollectorConfig,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<Collector, ConfigError> {
        config.validate()?;
        let enabled = match config.enabled {
            Some(enabled) => Some(enabled),
            None => disabled_from_env()?.map(|disabled| !disabled),
        };
        if COLLECTOR_RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(ConfigError::AlreadyRunning);
        }
        clock::warm_up();
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = mpsc::channel();
        let sinks = FanOut::new(sinks);
        let wants_events = sinks.wants_events();
        let mut worker = Worker {
            sinks,
            batch_max: config.batch_max,
            buckets: [
                config.function_buckets.clone(),
                config.http_buckets.clone(),
                config.db_buckets.clone(),
            ],
            events: Vec::with_capacity(config.batch_max.min(4096)),
            counts: Vec::new(),
            totals: Vec::new(),
            scratch: Vec::new(),
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
                eprintln!("profilis: could not start the collector thread: {e}");
                return Err(ConfigError::AlreadyRunning);
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
            bounds: [
                &config.function_buckets,
                &config.http_buckets,
                &config.db_buckets,
            ]
            .map(|b| b.iter().map(|&s| clock::seconds_to_ticks(s)).collect()),
        })));
        let _ = STATE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
            let on = enabled.unwrap_or(s & ENABLED != 0);
            Some((id << GEN_SHIFT) | RUNNING | if on { ENABLED } else { 0 })
        });
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
        STATE.fetch_and(!RUNNING, Ordering::AcqRel);
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

struct Worker {
    sinks: FanOut,
    batch_max: usize,
    /// Bucket bounds in seconds, as configured, per site kind (see `local::kind_index`).
    buckets: [Vec<f64>; 3],
    events: Vec<Event>,
    counts: Vec<CallCount>,
    /// Per site id, `stride` values (see `Generation::stride`) counted in this cycle.
    totals: Vec<u64>,
    scratch: Vec<u64>,
}

impl Worker {
    fn run(&mut self, stop: &AtomicBool, flush_interval: Duration, done: mpsc::Sender<()>) {
        loop {
            let stopping = stop.load(Ordering::Acquire);
            self.cycle(stopping);
            if stopping {
                let failed = self.sinks.flush_all();
                SINK_FAILURES.fetch_add(failed, Ordering::Relaxed);
                let _ = done.send(());
                return;
            }
            thread::park_timeout(flush_interval);
        }
    }

    /// Reads every thread's counts and queue, hands the result to the sinks, and forgets the
    /// states of threads that have exited.
    fn cycle(&mut self, last: bool) {
        let snapshot = local::snapshot();
        let states = &snapshot.states;
        // Registry + our copy: no thread uses this state any more, so after the fence
        // everything it recorded is visible and this cycle reads it all.
        let finished: Vec<bool> = states.iter().map(|s| Arc::strong_count(s) == 2).collect();
        fence(Ordering::Acquire);
        self.gather_counts(states);
        for (state, &finished) in states.iter().zip(&finished) {
            let mut budget = if finished || last {
                u64::MAX
            } else {
                state.ring.len()
            };
            while budget > 0 {
                let Some(event) = state.ring.pop() else { break };
                budget -= 1;
                POPPED.fetch_add(1, Ordering::Relaxed);
                self.events.push(event.finish());
                if self.events.len() >= self.batch_max {
                    self.deliver(&snapshot);
                }
            }
        }
        if !self.events.is_empty() || !self.counts.is_empty() {
            self.deliver(&snapshot);
        }
        let retire: Vec<&Arc<ThreadState>> = states
            .iter()
            .zip(&finished)
            .filter(|(_, &f)| f)
            .map(|(s, _)| s)
            .collect();
        if !retire.is_empty() {
            local::retire(&retire);
        }
    }

    /// Adds up what every thread counted and timed since the last cycle, per site.
    fn gather_counts(&mut self, states: &[Arc<ThreadState>]) {
        let sites = site::all();
        let stride = 2 + 2 * (self.buckets.iter().map(Vec::len).max().unwrap_or(0) + 1);
        self.totals.clear();
        self.totals.resize((sites.len() + 1) * stride, 0);
        for state in states {
            if state.stride() != stride {
                continue; // made by a collector with other buckets, and read by it
            }
            let mut reported = state.reported.lock().unwrap_or_else(|e| e.into_inner());
            reported.resize((sites.len() + 1) * stride, 0);
            self.scratch.resize(stride, 0);
            for id in 1..=sites.len() {
                state.read_site(id as u32, &mut self.scratch);
                let range = id * stride..(id + 1) * stride;
                if reported[range.clone()] == self.scratch[..] {
                    continue;
                }
                for ((total, before), now) in self.totals[range.clone()]
                    .iter_mut()
                    .zip(&reported[range.clone()])
                    .zip(&self.scratch)
                {
                    *total += now.wrapping_sub(*before);
                }
                reported[range].copy_from_slice(&self.scratch);
            }
        }
        for (id, (calls, errors)) in local::take_overflow_counts() {
            if let Some(t) = self
                .totals
                .get_mut(id as usize * stride..id as usize * stride + 2)
            {
                t[0] += calls;
                t[1] += errors;
            }
        }
        for (id, site) in sites.iter().enumerate().map(|(i, s)| (i + 1, *s)) {
            let t = &self.totals[id * stride..(id + 1) * stride];
            if t[0] == 0 {
                continue;
            }
            let bounds = &self.buckets[local::kind_index(site.kind())];
            let durations = t[2..]
                .chunks(2)
                .take(bounds.len() + 1)
                .enumerate()
                .map(|(i, pair)| BucketTotal {
                    le: bounds.get(i).copied().unwrap_or(f64::INFINITY),
                    count: pair[0],
                    sum_ns: clock::ticks_to_ns(0, pair[1]),
                })
                .collect();
            self.counts.push(CallCount {
                site: site as &'static Site,
                calls: t[0],
                errors: t[1],
                durations,
            });
        }
    }

    fn deliver(&mut self, snapshot: &Snapshot) {
        let counts = std::mem::take(&mut self.counts);
        let batch = Batch {
            events: &self.events,
            counts: &counts,
            stats: stats_of(snapshot),
        };
        let failed = self.sinks.write_all(&batch);
        SINK_FAILURES.fetch_add(failed, Ordering::Relaxed);
        PROCESSED.fetch_add(self.events.len() as u64, Ordering::AcqRel);
        self.events.clear();
    }
}

//! The collector's thread: each cycle it adds up every thread's call counts, drains the event
//! rings, hands batches to the sinks, and forgets the states of threads that have exited.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use std::collections::BTreeMap;

use crate::clock;
use crate::event::Event;
use crate::latency::Latency;
use crate::local::PAGE;
use crate::local::{self, Snapshot, ThreadState};
use crate::notable;
use crate::sink::{Batch, BucketTotal, CallCount, FanOut, FlushOutcome, Stats};
use crate::site::{self, Site};

pub(super) static POPPED: AtomicU64 = AtomicU64::new(0);
pub(super) static PROCESSED: AtomicU64 = AtomicU64::new(0);
/// Sink calls that failed, on the collector's thread or a [`NonBlocking`](crate::NonBlocking)
/// sink's own.
pub(crate) static SINK_FAILURES: AtomicU64 = AtomicU64::new(0);

/// The collector's counters as of `snapshot`.
pub(super) fn stats_of(snapshot: &Snapshot) -> Stats {
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

pub(super) struct Worker {
    pub(super) sinks: FanOut,
    pub(super) batch_max: usize,
    /// Bucket bounds in seconds, per kind id, as the calling threads file them.
    pub(super) buckets: local::Bounds<f64>,
    pub(super) events: Vec<Event>,
    pub(super) counts: Vec<CallCount>,
    /// Per site id, `stride` values counted in this cycle.
    pub(super) totals: Vec<u64>,
    /// Whether a sink wants details: fine buckets, failed and slow calls.
    pub(super) details: bool,
    /// Whether a sink wants exemplar candidates (sampled and slow calls).
    pub(super) exemplars: bool,
    /// This cycle's fine bucket counts, per site id and first bucket of a page.
    pub(super) latency: BTreeMap<(u32, usize), [u64; PAGE]>,
    /// Failed calls and slow-call candidates taken this cycle (details only).
    pub(super) failed: Vec<Event>,
    pub(super) slow: Vec<Event>,
}

impl Worker {
    pub(super) fn run(
        &mut self,
        stop: &AtomicBool,
        flush_interval: Duration,
        done: mpsc::Sender<FlushOutcome>,
    ) {
        loop {
            let stopping = stop.load(Ordering::Acquire);
            self.cycle(stopping);
            if stopping {
                let flushed = self.sinks.flush_all();
                SINK_FAILURES.fetch_add(flushed.failed, Ordering::Relaxed);
                let _ = done.send(flushed);
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
        if self.details || self.exemplars {
            notable::take(
                |e| self.failed.push(e.finish()),
                |e| self.slow.push(e.finish()),
            );
        }
        for (state, &finished) in states.iter().zip(&finished) {
            let budget = if finished || last {
                u64::MAX
            } else {
                state.ring.len()
            };
            self.drain(state, budget, &snapshot);
        }
        if !self.events.is_empty()
            || !self.counts.is_empty()
            || !self.failed.is_empty()
            || !self.slow.is_empty()
        {
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

    /// Takes up to `budget` events from a thread's queue into batches, delivering each full
    /// batch. The queue is held only while events are taken, never while a sink writes, so
    /// its thread can evict its oldest event (drop-oldest) meanwhile.
    fn drain(&mut self, state: &ThreadState, mut budget: u64, snapshot: &Snapshot) {
        // Tries while the queue's own thread holds it (evicting) and events are waiting.
        let mut busy = 0;
        while budget > 0 {
            let room = (self.batch_max - self.events.len()) as u64;
            let taken = state.ring.drain(budget.min(room), |event| {
                POPPED.fetch_add(1, Ordering::Relaxed);
                self.events.push(event.finish());
            });
            budget -= taken;
            if self.events.len() >= self.batch_max {
                self.deliver(snapshot);
            }
            if taken == 0 {
                if !state.ring.is_being_read() || state.ring.len() == 0 || busy == 100 {
                    break;
                }
                busy += 1;
                thread::yield_now();
            }
        }
    }

    /// Adds up what every thread counted and timed since the last cycle, per site.
    fn gather_counts(&mut self, states: &[Arc<ThreadState>]) {
        let sites = site::all();
        let stride = self.buckets.stride();
        self.totals.clear();
        self.totals.resize((sites.len() + 1) * stride, 0);
        self.latency.clear();
        for state in states {
            if state.stride() != stride || state.details != self.details {
                continue; // made by a collector with other settings, and read by it
            }
            state.add_new_counts(&mut self.totals);
            let latency = &mut self.latency;
            state.add_new_latency(sites.len() as u32, |id, first, new| {
                let page = latency.entry((id, first)).or_insert([0; PAGE]);
                for (total, new) in page.iter_mut().zip(new) {
                    *total += new;
                }
            });
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
            if self.details || self.exemplars {
                // Every cycle's first timed call of each site is a candidate: exemplars and
                // the slowest calls stay fresh for frequent and rare sites alike.
                site.reset_slow();
            }
            let t = &self.totals[id * stride..(id + 1) * stride];
            // A cycle can read a call's count and not yet its bucket or its fine bucket, which
            // its thread writes just after: those come in the next cycle, with no new call. A
            // site with nothing new at all is left out.
            if t[0] == 0 && t[1..].iter().all(|&v| v == 0) && !self.has_new_latency(id as u32) {
                continue;
            }
            let bounds = self.buckets.of(site.ids().1);
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
                latency: self.details.then(|| self.latency_of(id as u32)),
            });
        }
    }

    /// Whether site `id` has fine bucket counts in this cycle.
    fn has_new_latency(&self, id: u32) -> bool {
        self.details && self.latency.range((id, 0)..(id + 1, 0)).next().is_some()
    }

    /// Site `id`'s fine bucket counts of this cycle.
    fn latency_of(&self, id: u32) -> Latency {
        let buckets = self
            .latency
            .range((id, 0)..(id + 1, 0))
            .flat_map(|(&(_, first), page)| {
                page.iter()
                    .enumerate()
                    .filter(|(_, &n)| n != 0)
                    .map(move |(i, &n)| (first + i, n))
            });
        Latency::from_sorted(buckets)
    }

    fn deliver(&mut self, snapshot: &Snapshot) {
        let counts = std::mem::take(&mut self.counts);
        let batch = Batch {
            events: &self.events,
            counts: &counts,
            stats: stats_of(snapshot),
            errors: &self.failed,
            slow: &self.slow,
        };
        let failed = self.sinks.write_all(&batch);
        SINK_FAILURES.fetch_add(failed, Ordering::Relaxed);
        PROCESSED.fetch_add(self.events.len() as u64, Ordering::AcqRel);
        self.events.clear();
        self.failed.clear();
        self.slow.clear();
    }
}

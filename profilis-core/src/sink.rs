//! Where batches go: the [`Sink`] trait and [`FanOut`], which runs several sinks side by side and
//! keeps each one's failures (errors and panics) its own.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::SinkError;
use crate::event::Event;
use crate::kind::Kind;
use crate::latency::Latency;
use crate::notable;
use crate::site::Site;

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

/// Exact call counts of one site since the previous batch, sampled-out calls included, and the
/// durations of its timed calls filed in buckets on the calling threads.
///
/// A call's duration is filed just after its count, so a batch may hold the count and the
/// next batch its duration: a `CallCount` can have durations (or fine buckets) and no calls.
/// Summed over batches, every timed call has one duration.
#[derive(Debug, Clone)]
pub struct CallCount {
    /// The site.
    pub site: &'static Site,
    /// Calls since the previous batch.
    pub calls: u64,
    /// Failed calls (returned `Err` or panicked) since the previous batch.
    pub errors: u64,
    /// Timed (sampled-in) calls per duration bucket, the last one `+Inf`.
    pub durations: Vec<BucketTotal>,
    /// The same timed calls in fine buckets, for percentiles: `Some` only when a sink wants
    /// details ([`Sink::wants_details`]).
    pub latency: Option<Latency>,
}

/// Timed calls whose duration fell in one bucket: above the previous bound, at most `le`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketTotal {
    /// Upper bound of the bucket, in seconds (`f64::INFINITY` for the last).
    pub le: f64,
    /// Calls in the bucket.
    pub count: u64,
    /// Sum of their durations, in nanoseconds.
    pub sum_ns: u64,
}

/// What the collector hands to sinks: recorded events, exact call counts, and its own health.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Events recorded since the previous batch (at most `batch_max`), oldest first per thread.
    pub events: &'a [Event],
    /// Call counts since the previous batch, one entry per site that was called.
    pub counts: &'a [CallCount],
    /// The collector's counters when the batch was made.
    pub stats: Stats,
    /// Failed calls since the previous batch, with what is known of why
    /// ([`Event::failure`]), oldest first; at most the last 512. Only when a sink wants
    /// details ([`Sink::wants_details`]), whether or not any sink wants events.
    pub errors: &'a [Event],
    /// Calls since the previous batch that were the slowest of their site in their collector
    /// cycle so far (the first timed call of every site called in a cycle, and each one slower
    /// than those before it), with their trace ids: the candidates for a list of the slowest
    /// recent calls, and for exemplars. Only when a sink wants details or exemplars.
    pub slow: &'a [Event],
}

/// A destination for batches. Runs on the collector thread, never on the application's; a
/// sink that can wait (a file, a pipe, a network) belongs in a [`NonBlocking`](crate::NonBlocking),
/// on a thread of its own, so that it never holds up the collector and the other sinks
/// (`Exporter` runs the sinks it is given that way).
///
/// An `Err` or a panic is counted as a sink failure (`profilis_sink_failures_total`); the other
/// sinks still get the batch and the application is never affected.
pub trait Sink: Send + 'static {
    /// Takes one batch.
    ///
    /// # Errors
    /// Any [`SinkError`]: the batch is counted as failed for this sink.
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError>;

    /// Called after the last batch, at shutdown: write out what is still buffered. Nothing
    /// follows it, so what a sink cannot deliver now is lost.
    ///
    /// # Errors
    /// Any [`SinkError`]: counted as a failure and printed on stderr. Say what was lost for
    /// good with [`SinkError::with_lost`]; the collector adds it up in
    /// [`ShutdownReport::lost`](crate::ShutdownReport::lost).
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// A name for messages about this sink.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Whether this sink uses [`Batch::events`]. When no sink does, profiled calls are only
    /// counted and filed in duration buckets on their thread, never queued one by one (the
    /// cheapest path). Default `true`.
    fn wants_events(&self) -> bool {
        true
    }

    /// Whether this sink uses the details a dashboard needs: [`CallCount::latency`] (fine
    /// duration buckets, for percentiles), [`Batch::errors`] and [`Batch::slow`]. When no
    /// sink does, calls pay nothing for them. Default `false`.
    fn wants_details(&self) -> bool {
        false
    }

    /// Whether this sink uses exemplar candidates: [`Batch::slow`] with a candidate for every
    /// site called in a cycle (timed calls with their trace ids, for OpenMetrics exemplars).
    /// Default `false`.
    fn wants_exemplars(&self) -> bool {
        false
    }

    /// Only these events, if set: the collector hands this sink a batch with the events the
    /// filter accepts (the other sinks still get every event, and pay nothing for it).
    fn event_filter(&self) -> Option<&EventFilter> {
        None
    }
}

/// Which events a sink wants (see [`Sink::event_filter`]).
pub enum EventFilter {
    /// Events of these kinds.
    Kinds(Vec<&'static Kind>),
    /// Events the function accepts.
    Matching(Box<dyn Fn(&Event) -> bool + Send + Sync>),
}

impl EventFilter {
    /// Events of these kinds only.
    pub fn kinds(kinds: impl IntoIterator<Item = &'static Kind>) -> EventFilter {
        EventFilter::Kinds(kinds.into_iter().collect())
    }

    /// Events `accept` returns `true` for.
    pub fn matching(accept: impl Fn(&Event) -> bool + Send + Sync + 'static) -> EventFilter {
        EventFilter::Matching(Box::new(accept))
    }

    /// Whether `event` passes.
    pub fn accepts(&self, event: &Event) -> bool {
        match self {
            EventFilter::Kinds(kinds) => kinds.contains(&event.kind()),
            EventFilter::Matching(accept) => accept(event),
        }
    }
}

impl std::fmt::Debug for EventFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventFilter::Kinds(kinds) => f.debug_tuple("Kinds").field(kinds).finish(),
            EventFilter::Matching(_) => f.write_str("Matching(..)"),
        }
    }
}

/// A sink made of a closure over each batch: `sink_fn(|batch| { ...; Ok(()) })`.
pub fn sink_fn<F>(write: F) -> FnSink<F>
where
    F: FnMut(&Batch<'_>) -> Result<(), SinkError> + Send + 'static,
{
    FnSink(write)
}

/// The sink [`sink_fn`] makes. It wants every event.
pub struct FnSink<F>(F);

impl<F> Sink for FnSink<F>
where
    F: FnMut(&Batch<'_>) -> Result<(), SinkError> + Send + 'static,
{
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        (self.0)(batch)
    }

    fn name(&self) -> &str {
        "closure"
    }
}

struct Member {
    sink: Box<dyn Sink>,
    failures: u64,
    /// This sink's events, for a sink with an event filter (reused between batches).
    filtered: Vec<Event>,
}

/// Several sinks side by side: each gets every batch; one failing or panicking sink does not stop
/// the others.
#[derive(Default)]
pub struct FanOut {
    members: Vec<Member>,
}

impl FanOut {
    /// A fan-out over `sinks`.
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> FanOut {
        FanOut {
            members: sinks
                .into_iter()
                .map(|sink| Member {
                    sink,
                    failures: 0,
                    filtered: Vec::new(),
                })
                .collect(),
        }
    }

    /// Adds a sink.
    pub fn push(&mut self, sink: Box<dyn Sink>) {
        self.members.push(Member {
            sink,
            failures: 0,
            filtered: Vec::new(),
        });
    }

    /// Number of sinks.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no sinks.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether any of the sinks wants events.
    pub fn wants_events(&self) -> bool {
        self.members.iter().any(|m| m.sink.wants_events())
    }

    /// Whether any of the sinks wants exemplar candidates ([`Sink::wants_exemplars`]).
    pub fn wants_exemplars(&self) -> bool {
        self.members.iter().any(|m| m.sink.wants_exemplars())
    }

    /// Whether any of the sinks wants details ([`Sink::wants_details`]).
    pub fn wants_details(&self) -> bool {
        self.members.iter().any(|m| m.sink.wants_details())
    }

    /// Failures so far, per sink name.
    pub fn failures(&self) -> Vec<(String, u64)> {
        self.members
            .iter()
            .map(|m| (m.sink.name().to_owned(), m.failures))
            .collect()
    }

    /// Writes `batch` to every sink (filtered for sinks with an event filter); returns how
    /// many failed.
    pub fn write_all(&mut self, batch: &Batch<'_>) -> u64 {
        self.each(
            |sink, filtered| {
                let Some(filter) = sink.event_filter() else {
                    return sink.write(batch);
                };
                filtered.clear();
                filtered.extend(batch.events.iter().filter(|e| filter.accepts(e)).cloned());
                sink.write(&Batch {
                    events: filtered,
                    ..*batch
                })
            },
            Call::Write,
        )
        .failed
    }

    /// Flushes every sink; returns how many failed and what they lost. Every failed flush is
    /// reported on stderr (a write's failures only the first time), since a flush is the last
    /// word of a sink at shutdown.
    pub fn flush_all(&mut self) -> FlushOutcome {
        self.each(|sink, _| sink.flush(), Call::Flush)
    }

    fn each(
        &mut self,
        mut op: impl FnMut(&mut dyn Sink, &mut Vec<Event>) -> Result<(), SinkError>,
        call: Call,
    ) -> FlushOutcome {
        let mut outcome = FlushOutcome::default();
        for member in &mut self.members {
            let mut run = || {
                catch_unwind(AssertUnwindSafe(|| {
                    op(member.sink.as_mut(), &mut member.filtered)
                }))
            };
            // A sink that failed before is said no more: its panics are not printed again.
            let result = if member.failures == 0 {
                run()
            } else {
                notable::quietly(run)
            };
            let message = match result {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => {
                    outcome.lost += e.lost();
                    e.to_string()
                }
                Err(panic) => panic_message(&*panic),
            };
            outcome.failed += 1;
            member.failures += 1;
            let name = member.sink.name();
            match call {
                Call::Flush => eprintln!("profilis: sink {name} failed to flush: {message}"),
                Call::Write if member.failures == 1 => eprintln!(
                    "profilis: sink {name} failed: {message} (further failures are only counted)"
                ),
                Call::Write => {}
            }
        }
        outcome
    }
}

/// Which sink method a fan-out runs: their failures are reported differently.
#[derive(Clone, Copy)]
enum Call {
    Write,
    Flush,
}

/// What [`FanOut::flush_all`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FlushOutcome {
    /// Sinks whose flush failed (returned an error or panicked).
    pub failed: u64,
    /// Items those failures lost for good, as their errors said ([`SinkError::lost`]).
    pub lost: u64,
}

impl Sink for FanOut {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        match self.write_all(batch) {
            0 => Ok(()),
            n => Err(SinkError::new(format!("{n} sink(s) failed"))),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match self.flush_all() {
            FlushOutcome { failed: 0, .. } => Ok(()),
            FlushOutcome { failed, lost } => Err(SinkError::new(format!(
                "{failed} sink(s) failed to flush, losing {lost} item(s)"
            ))
            .with_lost(lost)),
        }
    }

    fn name(&self) -> &str {
        "fan-out"
    }

    fn wants_events(&self) -> bool {
        FanOut::wants_events(self)
    }

    fn wants_details(&self) -> bool {
        FanOut::wants_details(self)
    }

    fn wants_exemplars(&self) -> bool {
        FanOut::wants_exemplars(self)
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload");
    format!("panicked: {text}")
}

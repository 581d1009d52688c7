//! A sink on a thread of its own ([`NonBlocking`]): the collector hands it a copy of each
//! batch and goes on, so a sink that waits (a pipe nobody reads, a stalled disk, a network)
//! never holds up the collector, and with it the counts every other sink (Prometheus) gets.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::collector::SINK_FAILURES;
use crate::error::SinkError;
use crate::event::Event;
use crate::sink::{Batch, CallCount, FanOut, FlushOutcome, Sink, Stats};

/// Batches a [`NonBlocking`] sink holds for its thread before it refuses more.
const QUEUED_BATCHES: usize = 16;

/// How long a batch waits for room before the sink is taken as stalled, by default.
const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a [`NonBlocking`] dropped waits for its thread to drop the wrapped sink, at most:
/// after a last flush that succeeded the thread has nothing left to do but that.
const DROP_WAIT: Duration = Duration::from_secs(1);

/// A sink that runs another on a thread of its own, as tracing-appender's `NonBlocking` does
/// for a writer. The collector hands it a copy of each batch and goes on at once, so a sink
/// that waits (a console piped into a reader that stopped, a FIFO, a stalled disk or network)
/// holds up neither the collector nor the other sinks: Prometheus keeps counting.
///
/// The thread keeps up to 16 batches. A batch that finds them all waiting waits for room, so a
/// sink that is only slower than the collector loses nothing (the collector waits for it, as
/// it would have); but if the thread takes no batch within
/// [`stall_timeout`](NonBlocking::stall_timeout) (5 s by default), the sink is stalled: that
/// batch, and each one after it that finds no room, is refused at once until the thread
/// takes a batch again. A refused batch fails the write with an error that says how many
/// events it lost (counted in `profilis_sink_failures_total` and [`Stats::sink_failures`],
/// said once on stderr); the next [`Sink::flush`] reports them lost. The wrapped sink's own
/// errors and panics are counted and said the same way. [`Sink::flush`] waits for the thread
/// to write what it holds and flush, at most [`flush_timeout`](NonBlocking::flush_timeout)
/// (5 s by default). Dropped, it ends the thread and waits (at most 1 s, and not for a
/// thread a flush found stuck) until the wrapped sink is dropped, so what it holds (a file,
/// a lock) is let go when a collector's shutdown returns.
///
/// [`Exporter`](https://docs.rs/profilis-exporters) runs the JSONL, console and added sinks
/// this way, with its `shutdown_timeout` as the flush timeout. The wrapped sink's event filter, if
/// any, is applied on its thread (a refused batch counts all its events as lost). A
/// shutdown called from the thread (by the sink) does not wait for the collector, which waits
/// for the thread: it returns at once, as on the collector's own thread.
///
/// ```
/// # use profilis_core as profilis;
/// use profilis::{sink_fn, NonBlocking};
///
/// let slow = sink_fn(|batch| {
///     std::thread::sleep(std::time::Duration::from_millis(1)); // a slow destination
///     let _ = batch.events.len();
///     Ok(())
/// });
/// let sink = NonBlocking::new(slow).expect("a thread for the sink");
/// # drop(sink);
/// ```
pub struct NonBlocking {
    name: String,
    wants_events: bool,
    wants_details: bool,
    wants_exemplars: bool,
    /// `None` once dropped: the thread then ends.
    sender: Option<SyncSender<Message>>,
    /// Says when the thread has ended, its sink dropped (a file sink's lock let go).
    ended: Receiver<()>,
    /// Whether a flush found the thread stuck: it is not waited for again.
    stuck: bool,
    /// Batches refused since the last flush, and their events, which it reports lost.
    refused: (u64, u64),
    /// Events handed over and not written yet.
    queued: Arc<AtomicU64>,
    flush_timeout: Duration,
    stall_timeout: Duration,
    /// Whether the last batch waited `stall_timeout` for room in vain: until the thread takes
    /// a batch again, batches that find no room are refused at once.
    stalled: bool,
}

enum Message {
    Batch(OwnedBatch),
    Flush(mpsc::Sender<FlushOutcome>),
}

/// A batch's copy, for the sink's thread.
struct OwnedBatch {
    events: Vec<Event>,
    counts: Vec<CallCount>,
    stats: Stats,
    errors: Vec<Event>,
    slow: Vec<Event>,
}

impl NonBlocking {
    /// `sink` on a thread of its own (named `profilis-sink`).
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn new(sink: impl Sink) -> std::io::Result<NonBlocking> {
        NonBlocking::from_box(Box::new(sink))
    }

    /// As [`NonBlocking::new`], for a boxed sink.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn from_box(sink: Box<dyn Sink>) -> std::io::Result<NonBlocking> {
        let name = sink.name().to_owned();
        let (wants_events, wants_details, wants_exemplars) = (
            sink.wants_events(),
            sink.wants_details(),
            sink.wants_exemplars(),
        );
        let (sender, receiver) = mpsc::sync_channel(QUEUED_BATCHES);
        let (end, ended) = mpsc::channel();
        let queued = Arc::new(AtomicU64::new(0));
        let written = Arc::clone(&queued);
        thread::Builder::new()
            .name("profilis-sink".into())
            .spawn(move || {
                ON_SINK_THREAD.with(|on| on.set(true));
                run(FanOut::new(vec![sink]), &receiver, &written);
                let _ = end.send(());
            })?;
        Ok(NonBlocking {
            name,
            wants_events,
            wants_details,
            wants_exemplars,
            sender: Some(sender),
            ended,
            stuck: false,
            refused: (0, 0),
            queued,
            flush_timeout: Duration::from_secs(5),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            stalled: false,
        })
    }

    /// How long a batch that finds the thread's 16 batches waiting waits for room before the
    /// sink is taken as stalled (default 5 s). A sink slower than the collector thus holds it
    /// back a little, as it would on the collector's thread, and loses nothing; one that takes
    /// no batch for this long loses the batches that find no room from then on, without
    /// waiting, until it takes one again.
    #[must_use]
    pub fn stall_timeout(mut self, timeout: Duration) -> NonBlocking {
        self.stall_timeout = timeout;
        self
    }

    /// How long [`Sink::flush`] waits for the thread to write what it holds and flush
    /// (default 5 s). What it has not written by then is reported lost.
    #[must_use]
    pub fn flush_timeout(mut self, timeout: Duration) -> NonBlocking {
        self.flush_timeout = timeout;
        self
    }

    /// An error for a batch of `events` events not handed over.
    fn not_handed_over(&self, why: &str, events: u64) -> SinkError {
        SinkError::new(format!(
            "{why}: a batch of {events} event(s) was not handed to it"
        ))
        .with_lost(events)
    }
}

thread_local! {
    /// Whether this thread is a [`NonBlocking`] sink's.
    static ON_SINK_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is a [`NonBlocking`] sink's, which a shutdown called from there
/// (by the sink) must not wait for: the collector waits for it.
pub(crate) fn on_sink_thread() -> bool {
    ON_SINK_THREAD.try_with(Cell::get).unwrap_or(false)
}

/// The sink's thread: writes each batch, flushes when asked, and flushes once more if the
/// sender goes away with batches written since the last flush. The sink is dropped when it
/// returns.
fn run(mut sink: FanOut, receiver: &Receiver<Message>, queued: &AtomicU64) {
    let mut unflushed = false;
    while let Ok(message) = receiver.recv() {
        match message {
            Message::Batch(owned) => {
                let batch = Batch {
                    events: &owned.events,
                    counts: &owned.counts,
                    stats: owned.stats,
                    errors: &owned.errors,
                    slow: &owned.slow,
                };
                let failed = sink.write_all(&batch);
                SINK_FAILURES.fetch_add(failed, Ordering::Relaxed);
                queued.fetch_sub(owned.events.len() as u64, Ordering::AcqRel);
                unflushed = true;
            }
            Message::Flush(reply) => {
                let _ = reply.send(sink.flush_all());
                unflushed = false;
            }
        }
    }
    if unflushed {
        let flushed = sink.flush_all();
        SINK_FAILURES.fetch_add(flushed.failed, Ordering::Relaxed);
    }
}

/// Why [`send_while`] did not send.
enum NotSent {
    /// No room, in time.
    Full,
    /// The thread has ended.
    Stopped,
}

/// Sends `message`, waiting for room while `in_time()` says so.
fn send_while(
    sender: &SyncSender<Message>,
    mut message: Message,
    in_time: impl Fn() -> bool,
) -> Result<(), NotSent> {
    loop {
        match sender.try_send(message) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(again)) if in_time() => {
                message = again;
                thread::sleep(Duration::from_millis(1));
            }
            Err(TrySendError::Full(_)) => return Err(NotSent::Full),
            Err(TrySendError::Disconnected(_)) => return Err(NotSent::Stopped),
        }
    }
}

/// Whether `deadline` is still ahead (`None`: there is none).
fn in_time_for(deadline: Option<Instant>) -> bool {
    deadline.is_none_or(|deadline| Instant::now() < deadline)
}

impl Drop for NonBlocking {
    /// Ends the thread and waits (at most 1 s, and not for a thread a flush found stuck) until
    /// it has dropped its sink: after a shutdown's last flush, a file sink's lock is let go
    /// before the collector's shutdown returns.
    fn drop(&mut self) {
        self.sender = None;
        if !self.stuck && !on_sink_thread() {
            let _ = self.ended.recv_timeout(DROP_WAIT.min(self.flush_timeout));
        }
    }
}

impl Sink for NonBlocking {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let details = self.wants_details || self.wants_exemplars;
        let owned = OwnedBatch {
            events: if self.wants_events {
                batch.events.to_vec()
            } else {
                Vec::new()
            },
            counts: batch.counts.to_vec(),
            stats: batch.stats,
            errors: if details {
                batch.errors.to_vec()
            } else {
                Vec::new()
            },
            slow: if details {
                batch.slow.to_vec()
            } else {
                Vec::new()
            },
        };
        let events = owned.events.len() as u64;
        // Counted before the thread can take it, so `queued` never goes below zero.
        self.queued.fetch_add(events, Ordering::AcqRel);
        // A stalled sink's batch waits for no room; no deadline past what the clock can say.
        let deadline = (!self.stalled).then(|| Instant::now().checked_add(self.stall_timeout));
        let in_time = || deadline.is_some_and(in_time_for);
        let Some(sender) = &self.sender else {
            return Err(self.not_handed_over("its thread has stopped", events));
        };
        match send_while(sender, Message::Batch(owned), in_time) {
            Ok(()) => {
                self.stalled = false;
                Ok(())
            }
            Err(e) => {
                self.queued.fetch_sub(events, Ordering::AcqRel);
                self.refused.0 += 1;
                self.refused.1 = self.refused.1.saturating_add(events);
                let why = match e {
                    NotSent::Full => {
                        self.stalled = true;
                        "its thread has taken no batch for a while"
                    }
                    NotSent::Stopped => "its thread has stopped",
                };
                Err(self.not_handed_over(why, events))
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let timeout = self.flush_timeout;
        // `None`: past what the clock can say, so no deadline.
        let deadline = Instant::now().checked_add(timeout);
        let in_time = || in_time_for(deadline);
        // Batches refused while it was stalled are lost too, and reported with the rest.
        let (batches, refused) = std::mem::take(&mut self.refused);
        let late = |queued: &AtomicU64| {
            let left = queued.load(Ordering::Acquire);
            SinkError::new(format!(
                "its thread did not finish writing within {timeout:?}: {left} event(s) not \
                 written, {refused} more refused while it was stalled"
            ))
            .with_lost(left.saturating_add(refused))
        };
        let (reply, outcome) = mpsc::channel();
        let Some(sender) = &self.sender else {
            return Err(SinkError::new("its thread has stopped"));
        };
        match send_while(sender, Message::Flush(reply), in_time) {
            Ok(()) => {}
            Err(NotSent::Full) => {
                self.stuck = true;
                return Err(late(&self.queued));
            }
            Err(NotSent::Stopped) => return Err(SinkError::new("its thread has stopped")),
        }
        let reply = match deadline {
            Some(deadline) => {
                outcome.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            }
            None => outcome
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match reply {
            Ok(FlushOutcome { failed: 0, .. }) if batches == 0 => {
                self.stuck = false;
                Ok(())
            }
            // Batches refused while it was stalled: lost, and the report says so.
            Ok(FlushOutcome { failed: 0, .. }) => Err(SinkError::new(format!(
                "{batches} batch(es) with {refused} event(s) were not handed to it while it \
                 was stalled"
            ))
            .with_lost(refused)),
            // The wrapped sink's failed flush was said on stderr by its thread.
            Ok(FlushOutcome { lost, .. }) => {
                Err(SinkError::new("its flush failed").with_lost(lost.saturating_add(refused)))
            }
            Err(_) => {
                self.stuck = true;
                Err(late(&self.queued))
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn wants_events(&self) -> bool {
        self.wants_events
    }

    fn wants_details(&self) -> bool {
        self.wants_details
    }

    fn wants_exemplars(&self) -> bool {
        self.wants_exemplars
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::sink_fn;
    use std::sync::Mutex;

    static SITE: crate::Site = crate::Site::function("non_blocking::tests", None);

    fn event() -> Event {
        Event {
            site: &SITE,
            ts_ns: 1,
            dur_ns: 2,
            error: false,
            outcome: crate::Outcome::Returned,
            trace_id: Default::default(),
            span_id: Default::default(),
            parent_span_id: None,
            detail: None,
            failure: None,
        }
    }

    #[test]
    fn timeouts_past_what_the_clock_can_say_wait_as_long_as_it_takes() {
        let mut sink = NonBlocking::new(sink_fn(|_| Ok(())))
            .expect("a thread")
            .flush_timeout(Duration::MAX)
            .stall_timeout(Duration::MAX);
        let events = [event()];
        for _ in 0..(QUEUED_BATCHES * 4) {
            sink.write(&batch_of(&events, &[])).expect("handed over");
        }
        sink.flush().expect("flushed");
    }

    fn batch_of<'a>(events: &'a [Event], counts: &'a [CallCount]) -> Batch<'a> {
        Batch {
            events,
            counts,
            stats: Stats::default(),
            errors: &[],
            slow: &[],
        }
    }

    #[test]
    fn a_sink_that_waits_does_not_hold_up_the_writer_and_its_losses_are_errors() {
        let (release, wait) = mpsc::channel::<()>();
        let wait = Mutex::new(wait);
        let written = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&written);
        let mut sink = NonBlocking::new(sink_fn(move |_batch| {
            // Waits until released: a reader that stopped reading.
            let _ = wait.lock().unwrap().recv();
            seen.fetch_add(1, Ordering::AcqRel);
            Ok(())
        }))
        .expect("a thread")
        .flush_timeout(Duration::from_millis(50))
        .stall_timeout(Duration::from_millis(50));
        let mut results = Vec::new();
        let events = [event(), event(), event()];
        // The thread takes one batch and waits in it; 16 more wait in the queue; the next
        // waits for room in vain, and the rest are refused at once.
        for _ in 0..(QUEUED_BATCHES + 5) {
            results.push(sink.write(&batch_of(&events, &[])));
        }
        let refused = results.iter().filter(|r| r.is_err()).count();
        assert!(refused >= 4, "{refused} refused");
        let error = results
            .into_iter()
            .find_map(Result::err)
            .expect("a refusal");
        assert!(
            error.to_string().contains("has taken no batch for a while"),
            "{error}"
        );
        // A flush that cannot finish in time says so, and counts as lost what it holds and
        // what it refused.
        let late = sink.flush().expect_err("the thread is stuck");
        assert!(
            late.to_string().contains("did not finish writing"),
            "{late}"
        );
        let held = (QUEUED_BATCHES + 5 - refused) as u64 * 3;
        assert_eq!(late.lost(), held + refused as u64 * 3, "{late}");
        // Released, it writes what it took, and a flush then succeeds.
        for _ in 0..(QUEUED_BATCHES + 5) {
            let _ = release.send(());
        }
        let mut sink = sink.flush_timeout(Duration::from_secs(30));
        sink.flush().expect("flushes once released");
        assert_eq!(
            written.load(Ordering::Acquire) as usize,
            QUEUED_BATCHES + 5 - refused
        );
    }

    #[test]
    fn every_batch_handed_over_is_written_in_order_and_flushed() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flushed = Arc::new(AtomicU64::new(0));
        struct Recording(Arc<Mutex<Vec<u64>>>, Arc<AtomicU64>);
        impl Sink for Recording {
            fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
                self.0.lock().unwrap().push(batch.stats.enqueued);
                Ok(())
            }
            fn flush(&mut self) -> Result<(), SinkError> {
                self.1.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            fn wants_events(&self) -> bool {
                false
            }
        }
        let mut sink = NonBlocking::new(Recording(Arc::clone(&seen), Arc::clone(&flushed)))
            .expect("a thread")
            .flush_timeout(Duration::from_secs(30));
        assert!(!sink.wants_events(), "the wrapped sink's wishes are kept");
        // More than the thread holds: a sink that moves gets every batch (the writer waits
        // for room), in order.
        for i in 0..100 {
            let mut batch = batch_of(&[], &[]);
            batch.stats.enqueued = i;
            sink.write(&batch).expect("handed over");
        }
        sink.flush().expect("flushes");
        assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
        assert_eq!(flushed.load(Ordering::Acquire), 1);
        // Dropped after batches not flushed: the thread flushes them.
        sink.write(&batch_of(&[], &[])).expect("handed over");
        drop(sink);
        let deadline = Instant::now() + Duration::from_secs(30);
        while flushed.load(Ordering::Acquire) < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(flushed.load(Ordering::Acquire), 2);
    }

    #[test]
    fn the_wrapped_sinks_failures_and_panics_are_counted() {
        let before = SINK_FAILURES.load(Ordering::Acquire);
        let mut calls = 0;
        let mut sink = NonBlocking::new(sink_fn(move |_| {
            calls += 1;
            match calls {
                1 => Err(SinkError::new("refused")),
                2 => panic!("a sink that panics"),
                _ => Ok(()),
            }
        }))
        .expect("a thread")
        .flush_timeout(Duration::from_secs(30));
        for _ in 0..3 {
            sink.write(&batch_of(&[], &[])).expect("handed over");
        }
        sink.flush().expect("its flush succeeds");
        // Other tests may fail sinks at the same time: at least these two.
        assert!(SINK_FAILURES.load(Ordering::Acquire) >= before + 2);
    }
}

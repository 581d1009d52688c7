//! A bounded queue of events written by one thread and read by the collector, that takes
//! memory only as it fills.
//!
//! Each producing thread owns one [`Queue`], so producers never contend with each other. A queue
//! is a chain of rings ([`Segment`]s): it starts with a small one and, only when that one is
//! full and the queue holds fewer than its limit, links a ring twice as large and writes there,
//! up to the size the limit needs. The collector reads the rings oldest first and frees each
//! one it has emptied once the producer has moved past it, so a thread whose events are drained
//! as they come keeps one small ring, and events stay in the order they were pushed.
//!
//! Within a ring, slots carry sequence numbers (after Vyukov's bounded queue) so a reader can
//! claim a slot with one CAS on `head`. The producer itself becomes a reader only to evict the
//! oldest event of its ring when the queue is full and the drop policy says so. Nothing here
//! blocks; a push allocates only when it links a larger ring.
//!
//! The push never reads a slot's line, so a write to a line the collector has read costs a store
//! miss (absorbed by the store buffer), not a load miss. That is safe because a ring has two
//! more slots than it may hold: with the collector as the only reader, the slot a push writes is
//! never the one being read. Only with drop-oldest (the producer reads too) does a push check the
//! slot's sequence number, and readers mark slots free after reading.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

/// Slots of a queue's first ring (fewer when its limit needs fewer).
const FIRST_SEGMENT_SLOTS: usize = 64;

/// What to do with a new event when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropPolicy {
    /// Keep the queued events, drop the new one (the default: the oldest events are closest to
    /// being flushed).
    #[default]
    Newest,
    /// Drop the oldest queued event to make room for the new one.
    Oldest,
}

struct Slot<T> {
    seq: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

#[repr(align(128))]
struct Padded(AtomicU64);

/// Outcome of [`Queue::push`]. The events lost (all but `Yes`) are set aside, not dropped:
/// the producer takes them with [`Queue::take_not_kept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Yes,
    /// Queued after evicting the oldest event.
    EvictedOldest,
    /// Not queued: the queue was full.
    Rejected,
    /// Not queued, after evicting the oldest event: the slot to write was still being read.
    /// Two events lost.
    EvictedAndRejected,
}

/// The events a push did not keep ([`Queue::take_not_kept`]).
pub(crate) struct NotKept<T> {
    /// The oldest event, evicted to make room (drop-oldest).
    pub(crate) evicted: Option<T>,
    /// The new event, not queued.
    pub(crate) rejected: Option<T>,
}

/// Why [`Segment::try_push`] did not queue an event (which it hands back).
enum NotPushed<T> {
    /// The ring holds its limit.
    Full(T),
    /// Drop-oldest only: the collector is still reading the slot to write.
    Busy(T),
}

/// One ring of a [`Queue`].
struct Segment<T> {
    slots: Box<[Slot<T>]>,
    mask: u64,
    /// Most events this ring may hold now, at most `slots.len() - 2`; written by the producer.
    limit: AtomicU64,
    head: Padded,
    tail: Padded,
    /// Producer's last view of `head`, so a push reads the shared `head` only when it looks full.
    head_seen: AtomicU64,
    /// The ring the producer moved on to; null while this is the one it writes.
    next: AtomicPtr<Segment<T>>,
}

impl<T> Segment<T> {
    /// A ring of `slots` slots (a power of two, at least 4) holding at most `limit`.
    fn new(slots: usize, limit: u64) -> Segment<T> {
        debug_assert!(slots.is_power_of_two() && slots >= 4);
        Segment {
            slots: (0..slots as u64)
                .map(|i| Slot {
                    seq: AtomicU64::new(i),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
            mask: slots as u64 - 1,
            limit: AtomicU64::new(limit.min(slots as u64 - 2)),
            head: Padded(AtomicU64::new(0)),
            tail: Padded(AtomicU64::new(0)),
            head_seen: AtomicU64::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Most events this ring can ever hold.
    fn room(&self) -> u64 {
        self.mask - 1
    }

    /// Queues an event if the ring is below its limit. Owning thread only.
    #[inline(always)]
    fn try_push(&self, event: T, policy: DropPolicy) -> Result<(), NotPushed<T>> {
        let pos = self.tail.0.load(Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        if pos - self.head_seen.load(Ordering::Relaxed) >= limit {
            let head = self.head.0.load(Ordering::Acquire);
            if pos - head >= limit {
                return Err(NotPushed::Full(event));
            }
            self.head_seen.store(head, Ordering::Relaxed);
        }
        prefetch_for_write(&self.slots[((pos + 4) & self.mask) as usize]);
        let slot = &self.slots[(pos & self.mask) as usize];
        if policy == DropPolicy::Oldest && slot.seq.load(Ordering::Acquire) != pos {
            // The collector has claimed this slot and is still reading it.
            return Err(NotPushed::Busy(event));
        }
        // SAFETY: only this (owning) thread writes slots, and no reader is reading this one: with
        // drop-oldest the sequence number says so; otherwise the only reader works at `head`,
        // which is at least two slots past this slot's previous occupant (see the module docs).
        unsafe { (*slot.value.get()).write(event) };
        slot.seq.store(pos + 1, Ordering::Release);
        self.tail.0.store(pos + 1, Ordering::Release);
        Ok(())
    }

    /// Takes the oldest event, if any. Safe to call from any thread.
    fn pop(&self, policy: DropPolicy) -> Option<T> {
        let mut pos = self.head.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[(pos & self.mask) as usize];
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == pos + 1 {
                match self.head.0.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS gave this thread the slot; seq == pos + 1 says it is full.
                        let event = unsafe { (*slot.value.get()).assume_init_read() };
                        if policy == DropPolicy::Oldest {
                            slot.seq.store(pos + self.mask + 1, Ordering::Release);
                        }
                        return Some(event);
                    }
                    Err(current) => pos = current,
                }
            } else {
                // Not filled for this lap: empty, unless another reader moved `head` meanwhile.
                let current = self.head.0.load(Ordering::Relaxed);
                if current == pos {
                    return None;
                }
                pos = current;
            }
        }
    }

    /// Events in this ring now.
    fn len(&self) -> u64 {
        let head = self.head.0.load(Ordering::Acquire);
        self.tail.0.load(Ordering::Acquire).saturating_sub(head)
    }
}

impl<T> Drop for Segment<T> {
    fn drop(&mut self) {
        while self.pop(DropPolicy::Newest).is_some() {}
    }
}

/// A thread's bounded event queue: a chain of [`Segment`]s, the producer writing the newest and
/// the collector reading (and freeing) from the oldest.
pub(crate) struct Queue<T> {
    /// What the producer uses, on lines of its own ...
    producer: Producer<T>,
    /// ... and what the readers write, on others.
    reader: Reader<T>,
    /// Most events queued at once.
    limit: u64,
    /// Slots of the largest ring the limit needs.
    max_slots: usize,
    policy: DropPolicy,
}

#[repr(align(128))]
struct Producer<T> {
    /// The ring the producer writes (owner-only).
    write: AtomicPtr<Segment<T>>,
    /// Events pushed so far (producer-written).
    pushed: AtomicU64,
    /// The events the last push did not keep, set aside until the producer takes them
    /// (owner-only): dropping an event may run code not of this crate (an adapter's detail),
    /// so it is done by the producer once the push is over, not in the middle of it.
    not_kept: UnsafeCell<NotKept<T>>,
}

#[repr(align(128))]
struct Reader<T> {
    /// The oldest ring not yet emptied: where readers start. Changes only when a ring is
    /// freed, so the producer can read it cheaply to tell whether older rings are left.
    read: AtomicPtr<Segment<T>>,
    /// Set while a reader walks the chain, so only one does (it frees the rings it empties).
    reading: AtomicBool,
    /// Events taken out so far, by readers and by evictions; on a line of its own, as it
    /// changes with every event read.
    popped: Padded,
}

// SAFETY: slot values are handed from one thread to another through the sequence protocol of
// `Segment` (so `T: Send` suffices), no slot is ever accessed by two threads at once, and a ring
// is freed only by the one reader, after the producer has moved past it.
unsafe impl<T: Send> Sync for Queue<T> {}
unsafe impl<T: Send> Send for Queue<T> {}

impl<T> Queue<T> {
    /// A queue that holds at most `limit` events (`limit >= 1`), starting small.
    pub(crate) fn new(limit: usize, policy: DropPolicy) -> Queue<T> {
        let limit = limit.max(1) as u64;
        let max_slots = (limit as usize + 2).next_power_of_two();
        let first = Box::into_raw(Box::new(Segment::new(
            max_slots.min(FIRST_SEGMENT_SLOTS),
            limit,
        )));
        Queue {
            producer: Producer {
                write: AtomicPtr::new(first),
                pushed: AtomicU64::new(0),
                not_kept: UnsafeCell::new(NotKept {
                    evicted: None,
                    rejected: None,
                }),
            },
            reader: Reader {
                read: AtomicPtr::new(first),
                reading: AtomicBool::new(false),
                popped: Padded(AtomicU64::new(0)),
            },
            limit,
            max_slots,
            policy,
        }
    }

    /// Queues an event. Must only be called by the queue's owning thread.
    #[inline(always)]
    pub(crate) fn push(&self, event: T) -> Pushed {
        let write = self.producer.write.load(Ordering::Relaxed);
        // SAFETY: `write` is only changed by this (owning) thread and never freed while it is
        // the ring being written.
        match unsafe { &*write }.try_push(event, self.policy) {
            Ok(()) => {
                self.count_pushed();
                Pushed::Yes
            }
            Err(NotPushed::Busy(event)) => self.busy(event),
            Err(NotPushed::Full(event)) => self.push_full(write, event),
        }
    }

    /// Drop-oldest only: the slot to write is still being read; `event` is rejected. Out of
    /// line, so that [`Queue::push`], inlined where events are pushed, holds no set-aside
    /// value of its own.
    #[cold]
    #[inline(never)]
    fn busy(&self, event: T) -> Pushed {
        self.set_aside(None, Some(event))
    }

    /// Owning thread only: keeps the events a push lost for [`Queue::take_not_kept`]; what
    /// that push returns.
    #[cold]
    #[inline(never)]
    fn set_aside(&self, evicted: Option<T>, rejected: Option<T>) -> Pushed {
        let pushed = match (&evicted, &rejected) {
            (None, None) => Pushed::Yes,
            (Some(_), None) => Pushed::EvictedOldest,
            (None, Some(_)) => Pushed::Rejected,
            (Some(_), Some(_)) => Pushed::EvictedAndRejected,
        };
        // SAFETY: only the owning thread (this one) touches `not_kept`, and it holds no
        // reference into it across a push.
        let not_kept = unsafe { &mut *self.producer.not_kept.get() };
        // The producer takes the events after every push that lost some: nothing is left here
        // to be dropped now, in the middle of a push.
        debug_assert!(not_kept.evicted.is_none() && not_kept.rejected.is_none());
        *not_kept = NotKept { evicted, rejected };
        pushed
    }

    /// Owning thread only: the events the last push set aside (each `None` after a push that
    /// lost nothing, and once taken). The caller drops them, after its last use of anything
    /// that the drop could free.
    pub(crate) fn take_not_kept(&self) -> NotKept<T> {
        // SAFETY: as in `set_aside`.
        let not_kept = unsafe { &mut *self.producer.not_kept.get() };
        NotKept {
            evicted: not_kept.evicted.take(),
            rejected: not_kept.rejected.take(),
        }
    }

    #[inline(always)]
    fn count_pushed(&self) {
        let pushed = self.producer.pushed.load(Ordering::Relaxed);
        self.producer.pushed.store(pushed + 1, Ordering::Release);
    }

    /// The ring being written is at its limit: raise the limit if the queue has room (older
    /// rings drained), else link a larger ring if the limit needs one, else apply the policy
    /// (drop-oldest evicts the oldest event, then tries once more).
    ///
    /// `write` is the ring being written. It is passed as a pointer, not a reference: once a
    /// larger ring is linked, the collector may free it while this call still runs.
    #[cold]
    #[inline(never)]
    fn push_full(&self, write: *const Segment<T>, event: T) -> Pushed {
        let mut evicted = None;
        loop {
            // SAFETY: still the ring being written (nothing is linked before the return below).
            let queued = self.queued(unsafe { &*write });
            if queued < self.limit {
                return match self.push_with_room(write, event, queued) {
                    Ok(()) if evicted.is_none() => Pushed::Yes,
                    Ok(()) => self.set_aside(evicted, None),
                    Err(rejected) => self.set_aside(evicted, Some(rejected)),
                };
            }
            if evicted.is_some() || self.policy == DropPolicy::Newest {
                break;
            }
            // Drop-oldest: evict the oldest event; if the collector is reading the older rings
            // just now, the oldest of this one.
            let oldest = self.pop().or_else(|| {
                // SAFETY: as above.
                let oldest = unsafe { &*write }.pop(self.policy);
                if oldest.is_some() {
                    self.reader.popped.0.fetch_add(1, Ordering::AcqRel);
                }
                oldest
            });
            match oldest {
                Some(oldest) => evicted = Some(oldest),
                None => break,
            }
        }
        self.set_aside(evicted, Some(event))
    }

    /// Events queued now, seen from the producer writing `segment`: the ring's own when it is
    /// the only one left (no counter the collector writes per event is read), else the
    /// queue's.
    fn queued(&self, segment: &Segment<T>) -> u64 {
        if ptr::eq(self.reader.read.load(Ordering::Acquire), segment) {
            segment.len()
        } else {
            self.len().max(segment.len())
        }
    }

    /// Pushes into `write` (the ring being written), raising its limit to the room the queue
    /// has (`queued` now), or into a new, larger ring when `write` has no more room to give.
    /// Once the new ring is linked, `write` may be freed by the collector: it is not touched
    /// again. An event not pushed is handed back.
    fn push_with_room(&self, write: *const Segment<T>, event: T, queued: u64) -> Result<(), T> {
        let target = {
            // SAFETY: the ring being written; not freed before `next` is linked below, and
            // this reference is not used after that.
            let segment = unsafe { &*write };
            let older = queued.saturating_sub(segment.len());
            let room = segment.room().min(self.limit - older);
            if segment.len() < room {
                segment.limit.store(room, Ordering::Relaxed);
                write
            } else if segment.slots.len() < self.max_slots {
                self.link(write, segment.slots.len() * 2, self.limit - queued)
            } else {
                return Err(event);
            }
        };
        // SAFETY: the ring being written now (`write`, or the one just linked): only this
        // thread writes it, and it is freed only after the producer has moved past it.
        let target = unsafe { &*target };
        match target.try_push(event, self.policy) {
            Ok(()) => {
                self.count_pushed();
                Ok(())
            }
            Err(NotPushed::Full(event) | NotPushed::Busy(event)) => Err(event),
        }
    }

    /// Owning thread only: if the queue is empty and its ring has grown past the first size,
    /// goes back to a ring of the first size (the collector frees the large one). For a state
    /// handed to a new thread, so a burst of an earlier owner does not keep its memory.
    pub(crate) fn shrink(&self) {
        // SAFETY: as in `push`.
        let segment = unsafe { &*self.producer.write.load(Ordering::Relaxed) };
        let first = self.max_slots.min(FIRST_SEGMENT_SLOTS);
        if segment.slots.len() <= first || self.len() != 0 {
            return;
        }
        self.link(segment, first, self.limit);
    }

    /// Owning thread only: links a new ring of `slots` slots holding at most `limit` after
    /// `write` (the ring being written) and writes there from now on. Once linked, `write` may
    /// be freed by the collector: hence a pointer, not a reference that would outlive that.
    fn link(&self, write: *const Segment<T>, slots: usize, limit: u64) -> *const Segment<T> {
        let next = Box::into_raw(Box::new(Segment::new(slots, limit)));
        // Publish: readers see every event pushed to `write` before `next`.
        // SAFETY: the ring being written, alive until this store is seen by the collector.
        unsafe { &*write }.next.store(next, Ordering::Release);
        self.producer.write.store(next, Ordering::Relaxed);
        next
    }

    /// Takes the oldest event, if any. Safe to call from any thread; while one thread reads,
    /// another gets `None`.
    pub(crate) fn pop(&self) -> Option<T> {
        let mut event = None;
        self.drain(1, |e| event = Some(e));
        event
    }

    /// Takes up to `max` of the oldest events, oldest first, handing each to `take`; returns
    /// how many. Safe to call from any thread; while one thread reads, another takes nothing.
    /// Cheaper per event than [`pop`](Self::pop): the reader claims the queue once.
    pub(crate) fn drain(&self, max: u64, mut take: impl FnMut(T)) -> u64 {
        /// Gives the queue back to other readers, also if `take` panics.
        struct Reading<'a>(&'a AtomicBool);
        impl Drop for Reading<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        if max == 0 || self.reader.reading.swap(true, Ordering::Acquire) {
            return 0;
        }
        let _reading = Reading(&self.reader.reading);
        let mut taken = 0;
        while taken < max {
            let Some(event) = self.take_reading() else {
                break;
            };
            taken += 1;
            // Counted before `take` sees it, so the queue's length never counts an event
            // that is already in the reader's hands.
            self.reader.popped.0.fetch_add(1, Ordering::AcqRel);
            take(event);
        }
        taken
    }

    /// Whether a reader holds the queue just now (then [`drain`](Self::drain) takes nothing).
    pub(crate) fn is_being_read(&self) -> bool {
        self.reader.reading.load(Ordering::Acquire)
    }

    /// The oldest event, for the reader that holds `reading`; frees the rings it empties.
    fn take_reading(&self) -> Option<T> {
        loop {
            let current = self.reader.read.load(Ordering::Acquire);
            // SAFETY: rings are freed only below, by the one reader, which this thread is.
            let segment = unsafe { &*current };
            if let Some(event) = segment.pop(self.policy) {
                return Some(event);
            }
            let next = segment.next.load(Ordering::Acquire);
            if next.is_null() {
                return None;
            }
            // The producer linked `next` after its last push here, so that push is visible now.
            if let Some(event) = segment.pop(self.policy) {
                return Some(event);
            }
            self.reader.read.store(next, Ordering::Release);
            // SAFETY: made by Box::into_raw; empty, the producer has moved past it, and no other
            // reader can be in it (`reading`).
            drop(unsafe { Box::from_raw(current) });
        }
    }

    /// Events pushed so far.
    pub(crate) fn pushed(&self) -> u64 {
        self.producer.pushed.load(Ordering::Acquire)
    }

    /// Events queued now.
    pub(crate) fn len(&self) -> u64 {
        let popped = self.reader.popped.0.load(Ordering::Acquire);
        self.producer
            .pushed
            .load(Ordering::Acquire)
            .saturating_sub(popped)
    }
}

/// Asks for write ownership of a slot a few pushes ahead, so the miss on a line the collector
/// has read overlaps with the pushes before it.
#[inline(always)]
fn prefetch_for_write<S>(slot: &S) {
    // Not under Miri, which cannot run inline assembly.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: PREFETCHW only hints the cache (a NOP on CPUs without it); it cannot fault.
    unsafe {
        std::arch::asm!("prefetchw [{0}]", in(reg) slot as *const S, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = slot;
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        let mut current = *self.reader.read.get_mut();
        while !current.is_null() {
            // SAFETY: every ring from `read` on is owned by the queue, made by Box::into_raw.
            let segment = unsafe { Box::from_raw(current) };
            current = segment.next.load(Ordering::Acquire);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Outcome};
    use crate::site::Site;
    use crate::trace::{SpanId, TraceId};

    static SITE: Site = Site::function("ring::test", None);

    /// Pushes as a thread's state does, taking what the push did not keep: the outcome, and
    /// the numbers of the evicted and of the rejected event, if any.
    fn push(queue: &Queue<Event>, event: Event) -> (Pushed, Option<u64>, Option<u64>) {
        let pushed = queue.push(event);
        let lost = queue.take_not_kept();
        let expected = match pushed {
            Pushed::Yes => (false, false),
            Pushed::EvictedOldest => (true, false),
            Pushed::Rejected => (false, true),
            Pushed::EvictedAndRejected => (true, true),
        };
        let handed_back = (lost.evicted.is_some(), lost.rejected.is_some());
        assert_eq!(handed_back, expected, "the events {pushed:?} lost");
        let number = |e: Event| e.ts_ns;
        (pushed, lost.evicted.map(number), lost.rejected.map(number))
    }

    const KEPT: (Pushed, Option<u64>, Option<u64>) = (Pushed::Yes, None, None);

    fn ev(n: u64) -> Event {
        Event {
            site: &SITE,
            ts_ns: n,
            dur_ns: 0,
            error: false,
            outcome: Outcome::Returned,
            trace_id: TraceId(1),
            span_id: SpanId(n),
            parent_span_id: None,
            detail: None,
            failure: None,
        }
    }

    /// An event that checks it is not dropped in the middle of a push (its drop may run code
    /// that pushes, or frees the queue).
    struct Checked;

    thread_local! {
        static PUSHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    impl Drop for Checked {
        fn drop(&mut self) {
            assert!(!PUSHING.get(), "an event dropped in the middle of a push");
        }
    }

    #[test]
    fn no_event_is_dropped_in_the_middle_of_a_push() {
        for policy in [DropPolicy::Newest, DropPolicy::Oldest] {
            // A limit above the first ring's size: pushes also grow the queue.
            let queue = Queue::new(100, policy);
            let mut lost = 0;
            for i in 0..1000 {
                PUSHING.set(true);
                let _ = queue.push(Checked);
                PUSHING.set(false);
                let not_kept = queue.take_not_kept();
                lost += usize::from(not_kept.evicted.is_some())
                    + usize::from(not_kept.rejected.is_some());
                drop(not_kept);
                if i % 3 == 0 {
                    drop(queue.pop());
                }
            }
            assert!(lost > 0, "{policy:?}: the queue filled");
        }
    }

    #[test]
    fn fifo_and_bounded_at_limit_not_capacity() {
        let ring = Queue::new(5, DropPolicy::Newest); // capacity 8, limit 5
        for i in 0..5 {
            assert_eq!(push(&ring, ev(i)), KEPT);
        }
        assert_eq!(push(&ring, ev(99)), (Pushed::Rejected, None, Some(99)));
        assert_eq!(ring.len(), 5);
        assert_eq!(ring.pop().unwrap().ts_ns, 0);
        assert_eq!(push(&ring, ev(5)), KEPT);
        let rest: Vec<u64> = std::iter::from_fn(|| ring.pop()).map(|e| e.ts_ns).collect();
        assert_eq!(rest, vec![1, 2, 3, 4, 5]);
        assert!(ring.pop().is_none());
    }

    #[test]
    fn drop_oldest_keeps_the_newest() {
        let ring = Queue::new(3, DropPolicy::Oldest);
        for i in 0..10 {
            // Each push past the limit evicts the oldest event, and hands it back.
            let expected = if i < 3 {
                KEPT
            } else {
                (Pushed::EvictedOldest, Some(i - 3), None)
            };
            assert_eq!(push(&ring, ev(i)), expected);
        }
        let rest: Vec<u64> = std::iter::from_fn(|| ring.pop()).map(|e| e.ts_ns).collect();
        assert_eq!(rest, vec![7, 8, 9]);
    }

    impl<T> Queue<T> {
        /// Rings in the chain, and the slots of the one being written.
        fn shape(&self) -> (usize, usize) {
            let mut count = 0;
            let mut current = self.reader.read.load(Ordering::Acquire);
            while !current.is_null() {
                count += 1;
                current = unsafe { &*current }.next.load(Ordering::Acquire);
            }
            let write = unsafe { &*self.producer.write.load(Ordering::Relaxed) };
            (count, write.slots.len())
        }
    }

    #[test]
    fn starts_small_and_grows_only_when_it_fills() {
        let queue = Queue::new(2048, DropPolicy::Newest);
        assert_eq!(queue.shape(), (1, FIRST_SEGMENT_SLOTS));
        // Drained as it goes, the queue never grows, however many events pass.
        for i in 0..10_000 {
            assert_eq!(push(&queue, ev(i)), KEPT);
            assert_eq!(queue.pop().unwrap().ts_ns, i);
        }
        assert_eq!(queue.shape(), (1, FIRST_SEGMENT_SLOTS));
        // Not drained, it grows up to its limit and no further, keeping every event in order.
        for i in 0..2048 {
            assert_eq!(push(&queue, ev(i)), KEPT, "event {i}");
        }
        assert_eq!(push(&queue, ev(9999)), (Pushed::Rejected, None, Some(9999)));
        assert_eq!(queue.len(), 2048);
        // 64 + 128 + ... + 1024 slots hold 1974 events: the rest went to a ring of 2048.
        assert_eq!(queue.shape(), (6, 2048));
        for i in 0..2048 {
            assert_eq!(queue.pop().unwrap().ts_ns, i);
        }
        assert!(queue.pop().is_none());
        assert_eq!(queue.shape(), (1, 2048), "emptied rings are freed");
        // Full again, from the one ring: it takes what it can hold, the next the rest.
        for i in 0..2048 {
            assert_eq!(push(&queue, ev(i)), KEPT, "event {i}");
        }
        assert_eq!(push(&queue, ev(9999)), (Pushed::Rejected, None, Some(9999)));
        assert_eq!(queue.shape(), (2, 4096), "the largest ring the limit needs");
    }

    #[test]
    fn an_empty_grown_queue_shrinks_back_to_its_first_ring() {
        let queue = Queue::new(2048, DropPolicy::Newest);
        for i in 0..1000 {
            assert_eq!(push(&queue, ev(i)), KEPT);
        }
        queue.shrink();
        assert_eq!(queue.shape().1, 1024, "not while events are queued");
        for i in 0..1000 {
            assert_eq!(queue.pop().unwrap().ts_ns, i);
        }
        queue.shrink();
        assert_eq!(queue.shape(), (2, FIRST_SEGMENT_SLOTS));
        assert!(queue.pop().is_none());
        assert_eq!(
            queue.shape(),
            (1, FIRST_SEGMENT_SLOTS),
            "the large ring is freed"
        );
        for i in 0..2048 {
            assert_eq!(push(&queue, ev(i)), KEPT, "event {i}");
        }
        assert_eq!(push(&queue, ev(9999)), (Pushed::Rejected, None, Some(9999)));
    }

    #[test]
    fn the_limit_holds_across_rings() {
        // Older rings still hold events when a new one is linked: the new one gets only the
        // room left, and takes more as the older ones drain.
        let queue = Queue::new(100, DropPolicy::Newest);
        for i in 0..62 {
            assert_eq!(push(&queue, ev(i)), KEPT);
        }
        for i in 62..100 {
            assert_eq!(push(&queue, ev(i)), KEPT, "event {i}");
        }
        assert_eq!(push(&queue, ev(100)), (Pushed::Rejected, None, Some(100)));
        for i in 0..10 {
            assert_eq!(queue.pop().unwrap().ts_ns, i);
        }
        for i in 101..111 {
            assert_eq!(push(&queue, ev(i)), KEPT, "event {i}");
        }
        assert_eq!(push(&queue, ev(111)), (Pushed::Rejected, None, Some(111)));
        assert_eq!(queue.len(), 100);
        let rest: Vec<u64> = std::iter::from_fn(|| queue.pop())
            .map(|e| e.ts_ns)
            .collect();
        let expected: Vec<u64> = (10..100).chain(101..111).collect();
        assert_eq!(rest, expected);
    }

    #[test]
    fn drop_oldest_evicts_when_full_across_rings() {
        let queue = Queue::new(300, DropPolicy::Oldest);
        let mut dropped = Vec::new();
        for i in 0..1000 {
            let (_, evicted, rejected) = push(&queue, ev(i));
            dropped.extend(evicted.into_iter().chain(rejected));
        }
        let rest: Vec<u64> = std::iter::from_fn(|| queue.pop())
            .map(|e| e.ts_ns)
            .collect();
        // Every event is either still queued or was handed back, once.
        let mut all: Vec<u64> = rest.iter().copied().chain(dropped).collect();
        all.sort_unstable();
        assert!(all.iter().copied().eq(0..1000));
        assert_eq!(rest.len(), 300);
        assert!(rest.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*rest.last().unwrap(), 999, "the newest is kept");
    }

    #[test]
    fn concurrent_reader_sees_every_event_once_in_order() {
        // A limit above the first ring's size: the producer links larger rings while the
        // collector reads and frees the older ones.
        let ring = std::sync::Arc::new(Queue::<Event>::new(1000, DropPolicy::Newest));
        let reader = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while seen.len() < 100_000 {
                    match ring.pop() {
                        Some(e) => seen.push(e.ts_ns),
                        None => std::hint::spin_loop(),
                    }
                }
                seen
            })
        };
        let mut i = 0;
        while i < 100_000 {
            if push(&ring, ev(i)) == KEPT {
                i += 1;
            }
        }
        let seen = reader.join().unwrap();
        assert!(seen.iter().copied().eq(0..100_000));
    }

    #[test]
    fn evicting_producer_and_concurrent_reader_never_share_an_event() {
        let ring = std::sync::Arc::new(Queue::<Event>::new(200, DropPolicy::Oldest));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (ring, done) = (ring.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    let finished = done.load(Ordering::Acquire);
                    match ring.pop() {
                        Some(e) => seen.push(e.ts_ns),
                        None if finished => return seen,
                        None => std::hint::spin_loop(),
                    }
                }
            })
        };
        let mut dropped = Vec::new();
        for i in 0..200_000 {
            let (_, evicted, rejected) = push(&ring, ev(i));
            dropped.extend(evicted.into_iter().chain(rejected));
        }
        done.store(true, Ordering::Release);
        let seen = reader.join().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "each event once, in order"
        );
        // Every event was read or handed back by its push, once: none is lost unseen.
        let mut all: Vec<u64> = seen.into_iter().chain(dropped).collect();
        all.sort_unstable();
        assert!(all.iter().copied().eq(0..200_000));
    }
}

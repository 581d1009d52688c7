//! A bounded ring of events written by one thread and read by the collector.
//!
//! Each producing thread owns one ring, so producers never contend with each other. Slots carry
//! sequence numbers (Vyukov's bounded queue) so a reader can claim a slot with one CAS on `head`;
//! the producer itself becomes a reader only to evict the oldest event when the ring is full and
//! the drop policy says so. Nothing here blocks or allocates after construction.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::Event;

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

struct Slot {
    seq: AtomicU64,
    value: UnsafeCell<MaybeUninit<Event>>,
}

#[repr(align(128))]
struct Padded(AtomicU64);

/// Outcome of [`Ring::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Yes,
    /// Queued after evicting the oldest event.
    EvictedOldest,
    /// Not queued: the ring was full.
    Rejected,
}

pub(crate) struct Ring {
    slots: Box<[Slot]>,
    mask: u64,
    limit: u64,
    head: Padded,
    tail: Padded,
    /// Producer's last view of `head`, so a push reads the shared `head` only when it looks full.
    head_seen: AtomicU64,
}

// SAFETY: slot values are handed from one thread to another through the sequence protocol
// below; an `Event` is `Send`, and no slot is ever accessed by two threads at once.
unsafe impl Sync for Ring {}
unsafe impl Send for Ring {}

impl Ring {
    /// A ring that holds at most `limit` events (`limit >= 1`).
    pub(crate) fn new(limit: usize) -> Ring {
        let cap = limit.max(1).next_power_of_two();
        let slots = (0..cap as u64)
            .map(|i| Slot {
                seq: AtomicU64::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            slots,
            mask: cap as u64 - 1,
            limit: limit.max(1) as u64,
            head: Padded(AtomicU64::new(0)),
            tail: Padded(AtomicU64::new(0)),
            head_seen: AtomicU64::new(0),
        }
    }

    /// Queues an event. Must only be called by the ring's owning thread.
    #[inline]
    pub(crate) fn push(&self, event: Event, policy: DropPolicy) -> Pushed {
        let pos = self.tail.0.load(Ordering::Relaxed);
        let mut result = Pushed::Yes;
        if pos - self.head_seen.load(Ordering::Relaxed) >= self.limit {
            let mut head = self.head.0.load(Ordering::Acquire);
            if pos - head >= self.limit {
                if policy == DropPolicy::Newest || self.pop().is_none() {
                    return Pushed::Rejected;
                }
                result = Pushed::EvictedOldest;
                head = self.head.0.load(Ordering::Acquire);
                if pos - head >= self.limit {
                    return Pushed::Rejected;
                }
            }
            self.head_seen.store(head, Ordering::Relaxed);
        }
        let slot = &self.slots[(pos & self.mask) as usize];
        if slot.seq.load(Ordering::Acquire) != pos {
            // The collector has claimed this slot and is still reading it.
            return Pushed::Rejected;
        }
        // SAFETY: seq == pos means the slot is empty and only this (owning) thread writes it.
        unsafe { (*slot.value.get()).write(event) };
        slot.seq.store(pos + 1, Ordering::Release);
        self.tail.0.store(pos + 1, Ordering::Release);
        result
    }

    /// Takes the oldest event, if any. Safe to call from any thread.
    pub(crate) fn pop(&self) -> Option<Event> {
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
                        slot.seq.store(pos + self.mask + 1, Ordering::Release);
                        return Some(event);
                    }
                    Err(current) => pos = current,
                }
            } else if seq <= pos {
                return None;
            } else {
                pos = self.head.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Events pushed so far.
    pub(crate) fn pushed(&self) -> u64 {
        self.tail.0.load(Ordering::Acquire)
    }

    /// Events queued now.
    pub(crate) fn len(&self) -> u64 {
        let head = self.head.0.load(Ordering::Acquire);
        self.tail.0.load(Ordering::Acquire).saturating_sub(head)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detail, Outcome};
    use crate::ids::{SpanId, TraceId};
    use crate::site::Site;

    static SITE: Site = Site::function("ring::test", None);

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
            detail: Detail::Fn,
        }
    }

    #[test]
    fn fifo_and_bounded_at_limit_not_capacity() {
        let ring = Ring::new(5); // capacity 8, limit 5
        for i in 0..5 {
            assert_eq!(ring.push(ev(i), DropPolicy::Newest), Pushed::Yes);
        }
        assert_eq!(ring.push(ev(99), DropPolicy::Newest), Pushed::Rejected);
        assert_eq!(ring.len(), 5);
        assert_eq!(ring.pop().unwrap().ts_ns, 0);
        assert_eq!(ring.push(ev(5), DropPolicy::Newest), Pushed::Yes);
        let rest: Vec<u64> = std::iter::from_fn(|| ring.pop()).map(|e| e.ts_ns).collect();
        assert_eq!(rest, vec![1, 2, 3, 4, 5]);
        assert!(ring.pop().is_none());
    }

    #[test]
    fn drop_oldest_keeps_the_newest() {
        let ring = Ring::new(3);
        for i in 0..10 {
            let r = ring.push(ev(i), DropPolicy::Oldest);
            assert_eq!(
                r,
                if i < 3 {
                    Pushed::Yes
                } else {
                    Pushed::EvictedOldest
                }
            );
        }
        let rest: Vec<u64> = std::iter::from_fn(|| ring.pop()).map(|e| e.ts_ns).collect();
        assert_eq!(rest, vec![7, 8, 9]);
    }

    #[test]
    fn concurrent_reader_sees_every_event_once_in_order() {
        let ring = std::sync::Arc::new(Ring::new(64));
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
            if ring.push(ev(i), DropPolicy::Newest) == Pushed::Yes {
                i += 1;
            }
        }
        let seen = reader.join().unwrap();
        assert!(seen.iter().copied().eq(0..100_000));
    }
}

//! A bounded ring of events written by one thread and read by the collector.
//!
//! Each producing thread owns one ring, so producers never contend with each other. Slots carry
//! sequence numbers (after Vyukov's bounded queue) so a reader can claim a slot with one CAS on
//! `head`. The producer itself becomes a reader only to evict the oldest event when the ring is
//! full and the drop policy says so. Nothing here blocks or allocates after construction.
//!
//! The push never reads a slot's line, so a write to a line the collector has read costs a store
//! miss (absorbed by the store buffer), not a load miss. That is safe because the ring has two
//! more slots than it may hold: with the collector as the only reader, the slot a push writes is
//! never the one being read. Only with drop-oldest (the producer reads too) does a push check the
//! slot's sequence number, and readers mark slots free after reading.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Outcome of [`Ring::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Yes,
    /// Queued after evicting the oldest event.
    EvictedOldest,
    /// Not queued: the ring was full.
    Rejected,
    /// Not queued, after evicting the oldest event: the slot to write was still being read.
    /// Two events lost.
    EvictedAndRejected,
}

pub(crate) struct Ring<T> {
    slots: Box<[Slot<T>]>,
    mask: u64,
    limit: u64,
    head: Padded,
    tail: Padded,
    /// Producer's last view of `head`, so a push reads the shared `head` only when it looks full.
    head_seen: AtomicU64,
    policy: DropPolicy,
}

// SAFETY: slot values are handed from one thread to another through the sequence protocol
// below (so `T: Send` suffices), and no slot is ever accessed by two threads at once.
unsafe impl<T: Send> Sync for Ring<T> {}
unsafe impl<T: Send> Send for Ring<T> {}

impl<T> Ring<T> {
    /// A ring that holds at most `limit` events (`limit >= 1`).
    pub(crate) fn new(limit: usize, policy: DropPolicy) -> Ring<T> {
        let cap = (limit.max(1) + 2).next_power_of_two();
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
            policy,
        }
    }

    /// Queues an event. Must only be called by the ring's owning thread.
    #[inline(always)]
    pub(crate) fn push(&self, event: T) -> Pushed {
        let pos = self.tail.0.load(Ordering::Relaxed);
        let mut result = Pushed::Yes;
        if pos - self.head_seen.load(Ordering::Relaxed) >= self.limit {
            let mut head = self.head.0.load(Ordering::Acquire);
            if pos - head >= self.limit {
                if self.policy == DropPolicy::Newest || self.pop().is_none() {
                    return Pushed::Rejected;
                }
                result = Pushed::EvictedOldest;
                head = self.head.0.load(Ordering::Acquire);
                if pos - head >= self.limit {
                    return Pushed::EvictedAndRejected;
                }
            }
            self.head_seen.store(head, Ordering::Relaxed);
        }
        prefetch_for_write(&self.slots[((pos + 4) & self.mask) as usize]);
        let slot = &self.slots[(pos & self.mask) as usize];
        if self.policy == DropPolicy::Oldest && slot.seq.load(Ordering::Acquire) != pos {
            // The collector has claimed this slot and is still reading it.
            return match result {
                Pushed::EvictedOldest => Pushed::EvictedAndRejected,
                _ => Pushed::Rejected,
            };
        }
        // SAFETY: only this (owning) thread writes slots, and no reader is reading this one: with
        // drop-oldest the sequence number says so; otherwise the only reader works at `head`,
        // which is at least two slots past this slot's previous occupant (see the module docs).
        unsafe { (*slot.value.get()).write(event) };
        slot.seq.store(pos + 1, Ordering::Release);
        self.tail.0.store(pos + 1, Ordering::Release);
        result
    }

    /// Takes the oldest event, if any. Safe to call from any thread.
    pub(crate) fn pop(&self) -> Option<T> {
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
                        if self.policy == DropPolicy::Oldest {
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

/// Asks for write ownership of a slot a few pushes ahead, so the miss on a line the collector
/// has read overlaps with the pushes before it.
#[inline(always)]
fn prefetch_for_write<S>(slot: &S) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHW only hints the cache (a NOP on CPUs without it); it cannot fault.
    unsafe {
        std::arch::asm!("prefetchw [{0}]", in(reg) slot as *const S, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Outcome};
    use crate::site::Site;
    use crate::trace::{SpanId, TraceId};

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
            detail: None,
        }
    }

    #[test]
    fn fifo_and_bounded_at_limit_not_capacity() {
        let ring = Ring::new(5, DropPolicy::Newest); // capacity 8, limit 5
        for i in 0..5 {
            assert_eq!(ring.push(ev(i)), Pushed::Yes);
        }
        assert_eq!(ring.push(ev(99)), Pushed::Rejected);
        assert_eq!(ring.len(), 5);
        assert_eq!(ring.pop().unwrap().ts_ns, 0);
        assert_eq!(ring.push(ev(5)), Pushed::Yes);
        let rest: Vec<u64> = std::iter::from_fn(|| ring.pop()).map(|e| e.ts_ns).collect();
        assert_eq!(rest, vec![1, 2, 3, 4, 5]);
        assert!(ring.pop().is_none());
    }

    #[test]
    fn drop_oldest_keeps_the_newest() {
        let ring = Ring::new(3, DropPolicy::Oldest);
        for i in 0..10 {
            let r = ring.push(ev(i));
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
        let ring = std::sync::Arc::new(Ring::<Event>::new(64, DropPolicy::Newest));
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
            if ring.push(ev(i)) == Pushed::Yes {
                i += 1;
            }
        }
        let seen = reader.join().unwrap();
        assert!(seen.iter().copied().eq(0..100_000));
    }

    #[test]
    fn evicting_producer_and_concurrent_reader_never_share_an_event() {
        let ring = std::sync::Arc::new(Ring::<Event>::new(8, DropPolicy::Oldest));
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
        let mut dropped = 0;
        for i in 0..200_000 {
            match ring.push(ev(i)) {
                Pushed::Yes => {}
                Pushed::EvictedOldest | Pushed::Rejected => dropped += 1,
                Pushed::EvictedAndRejected => dropped += 2,
            }
        }
        done.store(true, Ordering::Release);
        let seen = reader.join().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "each event once, in order"
        );
        assert_eq!(seen.len() as u64 + dropped, 200_000);
    }
}

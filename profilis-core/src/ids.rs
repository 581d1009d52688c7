//! W3C trace-context identifiers (16-byte trace id, 8-byte span id) and the per-thread random
//! source that makes them without a syscall.

use std::fmt;

/// A 16-byte W3C trace id. Never all zeros once made by profilis.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub u128);

/// An 8-byte W3C span id. Never zero once made by profilis.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub u64);

impl TraceId {
    /// The id as 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }
}

impl SpanId {
    /// The id as 16 lowercase hex digits.
    pub fn to_hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// A fast per-thread pseudo-random `u64` (wyrand), seeded once per thread from the clock, the
/// thread's stack address and a global counter. Not cryptographic: ids only need to be unique.
#[inline]
pub fn next_u64() -> u64 {
    crate::local::hot().random()
}

#[cold]
pub(crate) fn seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let local = 0u8;
    let mut x = crate::clock::now_ticks()
        ^ (&local as *const u8 as u64).rotate_left(32)
        ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    // splitmix64 finalizer, so nearby seeds give unrelated streams.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) | 1
}

/// A new random span id (never zero).
#[inline]
pub fn new_span_id() -> SpanId {
    SpanId(next_u64() | 1)
}

/// A new random trace id (never zero).
#[inline]
pub fn new_trace_id() -> TraceId {
    TraceId(((next_u64() as u128) << 64) | (next_u64() | 1) as u128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_nonzero_and_w3c_sized() {
        let spans: HashSet<u64> = (0..100_000).map(|_| new_span_id().0).collect();
        assert_eq!(spans.len(), 100_000);
        assert!(!spans.contains(&0));
        let t = new_trace_id();
        assert_eq!(t.to_hex().len(), 32);
        assert_eq!(new_span_id().to_hex().len(), 16);
        assert_eq!(SpanId(0xab).to_string(), "00000000000000ab");
    }

    #[test]
    fn threads_get_different_streams() {
        let a = std::thread::spawn(next_u64).join().unwrap();
        let b = std::thread::spawn(next_u64).join().unwrap();
        assert_ne!(a, b);
    }
}

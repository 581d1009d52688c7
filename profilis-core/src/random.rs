//! The per-thread pseudo-random source of span ids and sampling decisions: wyrand, seeded once
//! per thread from the clock, the thread's stack address and a global counter. Not
//! cryptographic: ids only need to be unique, draws only evenly spread. No syscall, no lock.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// The generator's state; 0 until seeded. No destructor: access is a plain TLS read.
    static STATE: Cell<u64> = const { Cell::new(0) };
}

/// The next pseudo-random `u64` of this thread.
#[inline]
pub(crate) fn next_u64() -> u64 {
    // A thread being torn down still gets numbers, from a fresh seed each time.
    STATE
        .try_with(|state| {
            let mut s = state.get();
            if s == 0 {
                s = seed();
            }
            s = s.wrapping_add(0xa076_1d64_78bd_642f);
            state.set(s);
            mix(s)
        })
        .unwrap_or_else(|_| mix(seed()))
}

#[inline]
fn mix(s: u64) -> u64 {
    let t = u128::from(s).wrapping_mul(u128::from(s ^ 0xe703_7ed1_a0b4_28db));
    ((t >> 64) as u64) ^ (t as u64)
}

#[cold]
fn seed() -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_get_different_streams() {
        let a = std::thread::spawn(next_u64).join().unwrap();
        let b = std::thread::spawn(next_u64).join().unwrap();
        assert_ne!(a, b);
        assert_ne!(next_u64(), next_u64());
    }
}

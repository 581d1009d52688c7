//! The per-thread pseudo-random source of span ids and sampling decisions: wyrand, seeded once
//! per thread from the clock, the thread's stack address and a global counter. Not
//! cryptographic: ids only need to be unique, draws only evenly spread. No syscall, no lock.
//! Each thread's generator lives in its hot state (`local::Hot`), beside the current span.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// One thread's generator. `const`-constructible and without a destructor, so it can live in
/// a thread-local that costs a plain TLS read.
pub(crate) struct Rng(Cell<u64>);

impl Rng {
    /// A generator seeded on its first draw.
    pub(crate) const fn new() -> Rng {
        Rng(Cell::new(0))
    }

    /// The next pseudo-random `u64`.
    #[inline]
    pub(crate) fn next_u64(&self) -> u64 {
        self.draws(Draws::next)
    }

    /// Runs `f` with this generator's stream, seeded (once) if it is not yet: for several
    /// draws in a row at the cost of one check.
    #[inline]
    pub(crate) fn draws<R>(&self, f: impl FnOnce(&mut Draws) -> R) -> R {
        let mut s = self.0.get();
        if s == 0 {
            s = seed();
        }
        let mut draws = Draws(s);
        let r = f(&mut draws);
        self.0.set(draws.0);
        r
    }
}

/// A generator's stream while it is drawn from (see [`Rng::draws`]).
pub(crate) struct Draws(u64);

impl Draws {
    /// The next pseudo-random `u64`.
    #[inline]
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0).wrapping_mul(u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db));
        ((t >> 64) as u64) ^ (t as u64)
    }
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
    fn generators_give_different_streams() {
        let (a, b) = (Rng::new(), Rng::new());
        assert_ne!(a.next_u64(), b.next_u64());
        assert_ne!(a.next_u64(), a.next_u64());
    }
}

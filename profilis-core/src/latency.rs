//! Fine latency histograms for percentiles: 16 buckets per power of two of clock ticks, so a
//! bucket is at most 1/16 of its lower bound wide and the midpoint of the bucket a quantile
//! falls in is within 3.2% of every duration in it. The calling threads count durations in
//! these buckets (only when a sink wants them, see [`Sink::wants_details`](crate::Sink)); the
//! collector hands each cycle's counts to sinks as a [`Latency`] per site, which sinks add up
//! over any window and ask for quantiles.
//!
//! The Prometheus buckets stay as configured: these are a second, finer filing of the same
//! durations, never exposed as a metric.

use std::fmt;

/// Bits of a duration kept below its leading one: 16 buckets per power of two.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// The highest power of two with buckets of its own; longer durations share the last bucket
/// (2^48 ticks: more than a day at any clock rate).
const TOP_EXPONENT: u32 = 47;
/// Buckets of one histogram.
pub(crate) const BUCKETS: usize = ((TOP_EXPONENT - SUB_BITS + 2) as usize) * SUB as usize;

/// The bucket of a duration of `ticks`: exact below 16 ticks, then 16 per power of two.
#[inline(always)]
pub(crate) fn index(ticks: u64) -> usize {
    if ticks < SUB {
        return ticks as usize;
    }
    let exponent = 63 - ticks.leading_zeros();
    if exponent > TOP_EXPONENT {
        return BUCKETS - 1;
    }
    let sub = (ticks >> (exponent - SUB_BITS)) & (SUB - 1);
    (exponent - SUB_BITS + 1) as usize * SUB as usize + sub as usize
}

/// The smallest duration (ticks) of bucket `i`.
fn lower(i: usize) -> u64 {
    if i < SUB as usize {
        return i as u64;
    }
    let exponent = (i / SUB as usize) as u32 + SUB_BITS - 1;
    (SUB + (i % SUB as usize) as u64) << (exponent - SUB_BITS)
}

/// The smallest duration (ticks) above bucket `i`.
fn upper(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        return u64::MAX;
    }
    lower(i + 1)
}

/// Durations of one site's timed calls, counted in fine buckets: what a dashboard needs for
/// percentiles. Sparse (only buckets with calls), in bucket order; add histograms of several
/// cycles or sites with [`Latency::add`].
///
/// ```
/// # use profilis_core as profilis;
/// use profilis::Latency;
///
/// let mut latency = Latency::default();
/// for us in 1..=1000 {
///     latency.record_ns(us * 1000);
/// }
/// let p50 = latency.quantile_ns(0.5).unwrap() as f64;
/// assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.05);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Latency {
    /// Increasing buckets with calls, each packed in 8 bytes (a dashboard keeps many).
    buckets: Vec<Bucket>,
    count: u64,
}

/// A bucket's index (high 16 bits) and calls (low 48 bits, saturating: 2.8e14 calls).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Bucket(u64);

impl Bucket {
    const CALLS: u64 = (1 << 48) - 1;

    fn new(index: usize, calls: u64) -> Bucket {
        Bucket((index as u64) << 48 | calls.min(Bucket::CALLS))
    }

    fn index(self) -> usize {
        (self.0 >> 48) as usize
    }

    fn calls(self) -> u64 {
        self.0 & Bucket::CALLS
    }

    fn plus(self, calls: u64) -> Bucket {
        Bucket::new(self.index(), self.calls().saturating_add(calls))
    }
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latency")
            .field("count", &self.count)
            .field("buckets", &self.buckets.len())
            .field("p50_ns", &self.quantile_ns(0.5))
            .field("max_ns", &self.max_ns())
            .finish()
    }
}

impl Latency {
    /// From per-bucket counts (index, calls) in increasing order of index, none zero.
    pub(crate) fn from_sorted(buckets: impl IntoIterator<Item = (usize, u64)>) -> Latency {
        let buckets: Vec<Bucket> = buckets
            .into_iter()
            .map(|(i, n)| Bucket::new(i, n))
            .collect();
        debug_assert!(buckets.windows(2).all(|w| w[0].index() < w[1].index()));
        let count = buckets.iter().map(|b| b.calls()).sum();
        Latency { buckets, count }
    }

    /// Counts one duration of `ns` nanoseconds (for tests, and durations measured elsewhere).
    pub fn record_ns(&mut self, ns: u64) {
        let i = index(crate::clock::ns_to_ticks(ns));
        match self.buckets.binary_search_by_key(&i, |b| b.index()) {
            Ok(at) => self.buckets[at] = self.buckets[at].plus(1),
            Err(at) => self.buckets.insert(at, Bucket::new(i, 1)),
        }
        self.count += 1;
    }

    /// Adds every call of `other`.
    pub fn add(&mut self, other: &Latency) {
        if other.buckets.is_empty() {
            return;
        }
        if self.buckets.is_empty() {
            self.clone_from(other);
            return;
        }
        let mut merged = Vec::with_capacity(self.buckets.len() + other.buckets.len());
        let (mut a, mut b) = (
            self.buckets.iter().copied().peekable(),
            other.buckets.iter().copied().peekable(),
        );
        loop {
            match (a.peek().copied(), b.peek().copied()) {
                (Some(x), Some(y)) => {
                    if x.index() == y.index() {
                        merged.push(x.plus(y.calls()));
                        a.next();
                        b.next();
                    } else if x.index() < y.index() {
                        merged.push(x);
                        a.next();
                    } else {
                        merged.push(y);
                        b.next();
                    }
                }
                (Some(x), None) => {
                    merged.push(x);
                    a.next();
                }
                (None, Some(y)) => {
                    merged.push(y);
                    b.next();
                }
                (None, None) => break,
            }
        }
        // Kept for long (a dashboard's slots): no more room than a quarter to spare.
        if merged.capacity() > merged.len() + merged.len() / 4 {
            merged.shrink_to_fit();
        }
        self.buckets = merged;
        self.count += other.count;
    }

    /// The sum of `parts` (the slots of a window, say): added up in one dense array, so each
    /// part costs its own buckets whatever the size of the sum.
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a Latency>) -> Latency {
        let mut dense = [0u64; BUCKETS];
        let (mut low, mut high, mut count) = (BUCKETS, 0, 0u64);
        for part in parts {
            if let (Some(first), Some(last)) = (part.buckets.first(), part.buckets.last()) {
                low = low.min(first.index());
                high = high.max(last.index());
            }
            for b in &part.buckets {
                dense[b.index()] = dense[b.index()].saturating_add(b.calls());
            }
            count = count.saturating_add(part.count);
        }
        if count == 0 {
            return Latency::default();
        }
        let buckets = (low..=high)
            .filter(|&i| dense[i] != 0)
            .map(|i| Bucket::new(i, dense[i]))
            .collect();
        Latency { buckets, count }
    }

    /// Timed calls counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no call is counted.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `q` quantile (`0.0..=1.0`) in nanoseconds: the midpoint of the bucket holding the
    /// call of rank `ceil(q * count)` (the nearest-rank definition), within 3.2% of that
    /// call's duration. `None` when no call is counted.
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for b in &self.buckets {
            seen += b.calls();
            if seen >= rank {
                return Some(midpoint_ns(b.index()));
            }
        }
        self.buckets.last().map(|b| midpoint_ns(b.index()))
    }

    /// The longest duration counted, in nanoseconds, to the bucket (its upper end): within
    /// 6.3% above the real one. `None` when no call is counted.
    pub fn max_ns(&self) -> Option<u64> {
        let i = self.buckets.last()?.index();
        let top = upper(i).saturating_sub(1);
        Some(crate::clock::ticks_to_ns(0, top))
    }

    /// The buckets with calls: (smallest and largest duration of the bucket in nanoseconds,
    /// calls), shortest first.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.buckets.iter().map(|b| {
            let (i, n) = (b.index(), b.calls());
            let low = crate::clock::ticks_to_ns(0, lower(i));
            let high = crate::clock::ticks_to_ns(0, upper(i).saturating_sub(1));
            (low, high, n)
        })
    }
}

/// The middle of bucket `i`, in nanoseconds.
fn midpoint_ns(i: usize) -> u64 {
    let (low, high) = (lower(i), upper(i));
    if high - low <= 1 {
        return crate::clock::ticks_to_ns(0, low);
    }
    crate::clock::ticks_to_ns(0, low + (high - low) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_falls_in_the_bucket_whose_bounds_hold_it() {
        let mut v = 1u64;
        let mut last = 0;
        while v < (1 << 50) {
            for d in [v - 1, v, v + 1, v + v / 3] {
                let i = index(d);
                assert!(i < BUCKETS);
                if i < BUCKETS - 1 {
                    assert!(lower(i) <= d && d < upper(i), "{d} in {i}");
                    // At most 1/16 of the lower bound wide.
                    assert!((upper(i) - lower(i)) * SUB <= lower(i).max(SUB), "{i}");
                }
            }
            assert!(index(v) >= last);
            last = index(v);
            v = v * 5 / 4 + 1;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        for i in 0..BUCKETS {
            assert_eq!(index(lower(i)), i);
        }
    }

    #[test]
    fn quantiles_of_a_spread_from_microseconds_to_seconds_are_within_five_percent() {
        // Log-uniform from 1 us to 5 s, plus a second mode around 20 ms.
        let mut durations: Vec<u64> = (0..20_000)
            .map(|i| (1_000.0 * 5_000_000f64.powf(i as f64 / 20_000.0)) as u64)
            .chain((0..5_000).map(|i| 20_000_000 + i * 97))
            .collect();
        let mut latency = Latency::default();
        for &d in &durations {
            latency.record_ns(d);
        }
        durations.sort_unstable();
        assert_eq!(latency.count(), durations.len() as u64);
        for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
            let rank = (q * durations.len() as f64).ceil() as usize;
            let exact = durations[rank - 1] as f64;
            let got = latency.quantile_ns(q).unwrap() as f64;
            assert!(
                (got - exact).abs() / exact < 0.05,
                "q{q}: {got} against {exact}"
            );
        }
        let max = latency.max_ns().unwrap() as f64;
        let exact_max = *durations.last().unwrap() as f64;
        assert!(max >= exact_max * 0.999 && max < exact_max * 1.07, "{max}");
    }

    #[test]
    fn adding_histograms_adds_their_calls() {
        let (mut a, mut b, mut both) = (Latency::default(), Latency::default(), Latency::default());
        for ns in [10, 1_000, 50_000, 1_000_000] {
            a.record_ns(ns);
            both.record_ns(ns);
        }
        for ns in [1_000, 7_000_000, 3] {
            b.record_ns(ns);
            both.record_ns(ns);
        }
        assert_eq!(Latency::sum([&a, &b, &Latency::default()]), both);
        assert_eq!(Latency::sum([]), Latency::default());
        a.add(&b);
        assert_eq!(a, both);
        assert_eq!(a.count(), 7);
        assert_eq!(a.buckets().map(|(_, _, n)| n).sum::<u64>(), 7);
        let mut empty = Latency::default();
        empty.add(&a);
        assert_eq!(empty, a);
        assert_eq!(Latency::default().quantile_ns(0.5), None);
    }
}

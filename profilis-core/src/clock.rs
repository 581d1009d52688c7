//! The clock of the hot path: raw TSC ticks (through `quanta`) read twice per call, converted to
//! nanoseconds and wall-clock time only on the collector thread.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

struct Anchor {
    clock: quanta::Clock,
    raw: u64,
    unix_ns: u64,
}

static ANCHOR: LazyLock<Anchor> = LazyLock::new(|| {
    let clock = quanta::Clock::new();
    let unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let raw = clock.raw();
    Anchor {
        clock,
        raw,
        unix_ns,
    }
});

/// Reads the fastest monotonic counter of the machine (the TSC where it is invariant).
///
/// The value is in ticks, not nanoseconds: convert with [`ticks_to_ns`] / [`ticks_to_unix_ns`].
#[inline(always)]
pub(crate) fn now_ticks() -> u64 {
    ANCHOR.clock.raw()
}

/// Nanoseconds between two readings of [`now_ticks`] (0 if `end` is not after `start`).
#[inline]
pub(crate) fn ticks_to_ns(start: u64, end: u64) -> u64 {
    ANCHOR.clock.delta_as_nanos(start, end)
}

/// Converts a reading of [`now_ticks`] to nanoseconds since the Unix epoch.
pub(crate) fn ticks_to_unix_ns(ticks: u64) -> u64 {
    let anchor = &*ANCHOR;
    if ticks >= anchor.raw {
        anchor.unix_ns + anchor.clock.delta_as_nanos(anchor.raw, ticks)
    } else {
        anchor
            .unix_ns
            .saturating_sub(anchor.clock.delta_as_nanos(ticks, anchor.raw))
    }
}

/// Clock ticks in `duration` (rounded down).
pub(crate) fn duration_to_ticks(duration: std::time::Duration) -> u64 {
    seconds_to_ticks(duration.as_secs_f64())
}

/// Clock ticks in `ns` nanoseconds (rounded down).
pub(crate) fn ns_to_ticks(ns: u64) -> u64 {
    seconds_to_ticks(ns as f64 / 1e9)
}

/// Clock ticks in `seconds` (rounded down), for comparing durations in ticks.
pub(crate) fn seconds_to_ticks(seconds: f64) -> u64 {
    let anchor = &*ANCHOR;
    // Nanoseconds per tick, measured over a span long enough for full precision.
    let ns_per_tick = anchor.clock.delta_as_nanos(0, 1 << 40) as f64 / (1u64 << 40) as f64;
    (seconds * 1e9 / ns_per_tick) as u64
}

/// Forces the clock calibration now, so the first profiled call does not pay for it.
pub(crate) fn warm_up() {
    LazyLock::force(&ANCHOR);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_increasing_durations_and_wall_time() {
        let a = now_ticks();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = now_ticks();
        let ns = ticks_to_ns(a, b);
        assert!(ns >= 2_000_000, "slept 2 ms, measured {ns} ns");
        assert_eq!(ticks_to_ns(b, a), 0);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let converted = ticks_to_unix_ns(b);
        // Same clock twice, a few milliseconds apart at most.
        assert!(
            converted.abs_diff(wall) < 1_000_000_000,
            "{converted} vs {wall}"
        );
    }
}

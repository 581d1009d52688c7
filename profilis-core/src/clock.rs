//! The clock of the hot path: raw TSC ticks (through `quanta`) read twice per call, converted to
//! nanoseconds and wall-clock time only on the collector thread.

#[cfg(target_arch = "x86_64")]
use std::sync::atomic::{AtomicBool, Ordering};
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
    #[cfg(target_arch = "x86_64")]
    TSC.0.store(reads_tsc(&clock), Ordering::Relaxed);
    Anchor {
        clock,
        raw,
        unix_ns,
    }
});

/// Whether `quanta`'s clock reads the TSC (set when [`ANCHOR`] is made): then the hot path
/// reads it inline, instead of calling `quanta::Clock::raw`, which is not inlined across crates.
/// Read twice by every timed call: alone on its cache lines, so that no atomic the collector
/// writes often (its counters were once placed next to it) makes each read a miss.
#[cfg(target_arch = "x86_64")]
static TSC: ReadMostly = ReadMostly(AtomicBool::new(false));

/// A flag on cache lines of its own (two: the adjacent line is prefetched with it).
#[cfg(target_arch = "x86_64")]
#[repr(align(128))]
struct ReadMostly(AtomicBool);

/// Reads the fastest monotonic counter of the machine (the TSC where it is invariant).
///
/// The value is in ticks, not nanoseconds: convert with [`ticks_to_ns`] / [`ticks_to_unix_ns`].
#[inline(always)]
pub(crate) fn now_ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if TSC.0.load(Ordering::Relaxed) {
        // SAFETY: `TSC` is set only after the clock was seen to read the TSC, so the
        // instruction exists; reading it has no other effect.
        return unsafe { std::arch::x86_64::_rdtsc() };
    }
    read_through_quanta()
}

/// [`now_ticks`] before the clock is calibrated, or where it is not the TSC.
#[cfg_attr(target_arch = "x86_64", cold)]
#[inline(never)]
fn read_through_quanta() -> u64 {
    ANCHOR.clock.raw()
}

/// Whether `clock` reads the TSC: its readings are not nanoseconds (its scale is not 1) and
/// fall between two reads of the TSC, three times running. A clock that fails this keeps
/// being read through `quanta`.
#[cfg(target_arch = "x86_64")]
fn reads_tsc(clock: &quanta::Clock) -> bool {
    const SPAN: u64 = 1 << 40;
    if clock.delta_as_nanos(0, SPAN) == SPAN {
        return false;
    }
    (0..3).all(|_| {
        // SAFETY: as in `now_ticks`, on an x86_64 whose clock reports a scale.
        let before = unsafe { std::arch::x86_64::_rdtsc() };
        let raw = clock.raw();
        let after = unsafe { std::arch::x86_64::_rdtsc() };
        before <= raw && raw <= after
    })
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

/// Clock ticks in `duration`, for work measured elsewhere: the fewest ticks that
/// [`ticks_to_ns`] (which rounds down) turns back into at least `duration`, so an emitted
/// 3 s is recorded as 3 s, not 2.999999999 s. Exact to the nanosecond when a tick is shorter
/// than one (the TSC, or a clock counting nanoseconds); otherwise up to a tick more.
pub(crate) fn duration_to_ticks(duration: std::time::Duration) -> u64 {
    let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let clock = &ANCHOR.clock;
    let mut ticks = seconds_to_ticks(duration.as_secs_f64());
    // The estimate may be a tick or two short (it is rounded down, through an `f64`).
    for _ in 0..4 {
        if ticks == u64::MAX || clock.delta_as_nanos(0, ticks) >= ns {
            break;
        }
        ticks += 1;
    }
    ticks
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
    fn the_inline_read_is_the_clock_quanta_reads() {
        warm_up();
        let clock = &ANCHOR.clock;
        #[cfg(target_arch = "x86_64")]
        assert_eq!(TSC.0.load(Ordering::Relaxed), reads_tsc(clock));
        // Read through quanta, inline, through quanta: the three readings are of one clock (a
        // clock in another unit or from another epoch would land far outside). The slack (a
        // fraction of a millisecond) allows for a thread moved between cores.
        const SLACK: u64 = 1 << 20;
        for _ in 0..1000 {
            let before = clock.raw();
            let inline = now_ticks();
            let after = clock.raw();
            assert!(
                before.saturating_sub(SLACK) <= inline && inline <= after.saturating_add(SLACK),
                "{before} <= {inline} <= {after}"
            );
        }
    }

    /// Found by a review: `emit::function(.., 3 s, ..)` was recorded as 2.999999999 s.
    #[test]
    fn a_duration_in_ticks_converts_back_to_itself() {
        use std::time::Duration;
        let ns_per_tick = ticks_to_ns(0, 1 << 40) as f64 / (1u64 << 40) as f64;
        for duration in [
            Duration::from_nanos(1),
            Duration::from_nanos(999),
            Duration::from_micros(1),
            Duration::from_nanos(1_234_567),
            Duration::from_millis(1500),
            Duration::from_secs(3),
            Duration::from_secs(3600),
            Duration::from_nanos(86_400_000_000_017),
        ] {
            let ticks = duration_to_ticks(duration);
            let back = ticks_to_ns(0, ticks);
            let ns = duration.as_nanos() as u64;
            if ns_per_tick <= 1.0 {
                assert_eq!(back, ns, "{duration:?}: {ticks} ticks");
            } else {
                // A tick longer than a nanosecond: up to one tick more.
                assert!(
                    back >= ns && back - ns <= ns_per_tick.ceil() as u64,
                    "{duration:?}"
                );
            }
        }
        assert_eq!(duration_to_ticks(Duration::ZERO), 0);
    }

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

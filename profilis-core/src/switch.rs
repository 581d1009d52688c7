//! The process-wide switch word that every profiled call reads first: whether a collector runs,
//! whether profiling is on, and which collector run (generation) threads record for.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ConfigError;

/// Bit 0: a collector is running. Bit 1: profiling is enabled (not switched off).
/// Bits 2..: the collector generation, so threads notice a restarted collector.
pub(crate) static STATE: AtomicU64 = AtomicU64::new(ENABLED);
pub(crate) const RUNNING: u64 = 1;
pub(crate) const ENABLED: u64 = 2;
/// Both bits: calls are recorded.
pub(crate) const ACTIVE: u64 = RUNNING | ENABLED;
pub(crate) const GEN_SHIFT: u32 = 2;

/// The generation named by a value of [`STATE`].
#[inline(always)]
pub(crate) fn generation_of(state: u64) -> u64 {
    state >> GEN_SHIFT
}

/// Switches profiling on or off for the whole process. Off, a profiled call costs one atomic
/// load and records nothing.
pub fn set_enabled(enabled: bool) {
    if enabled {
        STATE.fetch_or(ENABLED, Ordering::Relaxed);
    } else {
        STATE.fetch_and(!ENABLED, Ordering::Relaxed);
    }
}

/// Whether profiling is switched on (it is by default).
pub fn is_enabled() -> bool {
    STATE.load(Ordering::Relaxed) & ENABLED != 0
}

/// Marks generation `id` as running, profiling switched on or off by `enabled` (`None`: as it
/// is).
pub(crate) fn start_generation(id: u64, enabled: Option<bool>) {
    let _ = STATE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
        let on = enabled.unwrap_or(s & ENABLED != 0);
        Some((id << GEN_SHIFT) | RUNNING | if on { ENABLED } else { 0 })
    });
}

/// No collector runs any more: calls stop recording.
pub(crate) fn stop_running() {
    STATE.fetch_and(!RUNNING, Ordering::AcqRel);
}

/// Reads `PROFILIS_DISABLED`: `Some(true)` to switch profiling off, `None` when unset.
///
/// # Errors
/// [`ConfigError::Env`] for a value other than `1`, `true`, `yes`, `on`, `0`, `false`, `no`,
/// `off` or empty; [`ConfigError::EnvNotUnicode`] for a value that is not UTF-8.
pub(crate) fn disabled_from_env() -> Result<Option<bool>, ConfigError> {
    let Some(value) = crate::error::env_var("PROFILIS_DISABLED")? else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "" | "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(ConfigError::Env {
            name: "PROFILIS_DISABLED",
            value,
            expected: "one of 1, true, yes, on, 0, false, no, off",
        }),
    }
}

//! Calls worth a closer look, for the dashboard: failed calls with what is known of why, and
//! candidates for the slowest recent calls. Taken off the hot path only on the error path, or
//! when a call is slower than every recent one of its site; each goes into a bounded lock-free
//! queue that keeps the latest (the oldest give way), drained by the collector each cycle.
//!
//! Also the panic messages: a panic hook (installed once, chained to the one before) keeps the
//! message of the thread's last panic, which the guard of a call unwinding from it reads.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, LazyLock, Once};

use crossbeam_queue::ArrayQueue;

use crate::event::{bounded_message, Failure, RawEvent};

/// Failed calls kept between two collector cycles (the latest).
const ERRORS: usize = 512;
/// Slow-call candidates kept between two collector cycles (the latest): with exemplars, the
/// first timed call of every site called in a cycle is one.
const SLOW: usize = 1024;

static FAILED: LazyLock<ArrayQueue<RawEvent>> = LazyLock::new(|| ArrayQueue::new(ERRORS));
static SLOWEST: LazyLock<ArrayQueue<RawEvent>> = LazyLock::new(|| ArrayQueue::new(SLOW));

/// Keeps a failed call (evicting the oldest kept if full).
pub(crate) fn failed(event: RawEvent) {
    let _ = FAILED.force_push(event);
}

/// Keeps a slow-call candidate (evicting the oldest kept if full).
pub(crate) fn slow(event: RawEvent) {
    let _ = SLOWEST.force_push(event);
}

/// Collector-only: takes what was kept since the last call.
pub(crate) fn take(mut failed: impl FnMut(RawEvent), mut slow: impl FnMut(RawEvent)) {
    // Bounded by the queues' sizes, so calls failing all the time cannot keep the collector
    // here.
    for _ in 0..ERRORS {
        match FAILED.pop() {
            Some(event) => failed(event),
            None => break,
        }
    }
    for _ in 0..SLOW {
        match SLOWEST.pop() {
            Some(event) => slow(event),
            None => break,
        }
    }
}

thread_local! {
    /// The message of this thread's last panic (as the hook saw it).
    static LAST_PANIC: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
    /// Whether the hook keeps this thread's panics from the hooks installed before it (see
    /// [`quietly`]).
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (which must catch its own panics) with this thread's panics kept from the panic
/// hooks installed before profilis's: a sink that panicked once and was said so on stderr is
/// not printed again at every batch, only counted.
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> R {
    let before = QUIET.try_with(|quiet| quiet.replace(true)).unwrap_or(false);
    let result = f();
    let _ = QUIET.try_with(|quiet| quiet.set(before));
    result
}

/// Installs (once per process) a panic hook that keeps each panic's message for the thread it
/// happens on, then runs the hook that was installed before it. A hook installed later
/// replaces it: panics are then still recorded as failures, without their message. The message
/// stays until the thread's next panic, so every profiled frame the panic unwinds through gets
/// it; a panic resumed with `std::panic::resume_unwind` (which runs no hook) gets the message of
/// the last panic the hook saw on that thread, if any.
pub(crate) fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .map(|m| Arc::<str>::from(bounded_message(&m)));
            let _ = LAST_PANIC.try_with(|last| {
                if let Ok(mut last) = last.try_borrow_mut() {
                    *last = message;
                }
            });
            if !QUIET.try_with(Cell::get).unwrap_or(false) {
                previous(info);
            }
        }));
    });
}

/// What is known of a panic unwinding on this thread now: its message, if the hook saw it.
pub(crate) fn panic_failure() -> Failure {
    let message = LAST_PANIC
        .try_with(|last| last.try_borrow().ok().and_then(|m| m.clone()))
        .ok()
        .flatten();
    Failure {
        exception_type: Some("panic".into()),
        exception_value: message.map(|m| m.to_string()),
    }
}

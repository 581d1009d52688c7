//! Recording a call exactly once, and telling how it ended: the one guard that every
//! instrumented thing (a `#[profiled]` call, a request, a query) keeps its call in.
//!
//! A call ends in one of three ways. It completes: the adapter [takes](RecordOnce::take) the
//! call and records it with what it knows (its result, its status, its rows). It panics: the
//! panic unwinds through the code that was running the call's work, or a framework catches the
//! panic and drops the call later; either way the guard is dropped while it still says the
//! work was [running](RecordOnce::run), and records the call as [`Outcome::Panicked`]. Or it is
//! abandoned: dropped between two pieces of work (a future dropped between polls, a client gone
//! away), and recorded as [`Outcome::Cancelled`]. No `catch_unwind` is needed for any of this.

use crate::event::Outcome;

/// A call that records itself when it is dropped before it ended (see [`RecordOnce`]).
pub trait Abandon {
    /// Records the call as ended with `outcome` ([`Outcome::Panicked`] or
    /// [`Outcome::Cancelled`]).
    fn abandon(self, outcome: Outcome);
}

/// Holds a call until it ends, and records it exactly once: by [`RecordOnce::take`] when it
/// completes, else as panicked or cancelled when dropped. See the [module docs](self).
#[derive(Debug)]
#[must_use = "the call is recorded as cancelled when the guard drops"]
pub struct RecordOnce<T: Abandon> {
    call: Option<T>,
    /// Inside [`RecordOnce::run`]: dropped now, the work panicked.
    running: bool,
}

impl<T: Abandon> RecordOnce<T> {
    /// Holds `call`, not yet running.
    #[inline]
    pub fn new(call: T) -> RecordOnce<T> {
        RecordOnce {
            call: Some(call),
            running: false,
        }
    }

    /// Holds `call` if there is one (profiling may be off); with `None` it records nothing.
    #[inline]
    pub fn maybe(call: Option<T>) -> RecordOnce<T> {
        RecordOnce {
            call,
            running: false,
        }
    }

    /// The call, until it is taken or recorded.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        self.call.as_ref()
    }

    /// The call, to update what it will be recorded with.
    #[inline]
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.call.as_mut()
    }

    /// Runs `work` as part of the call (a poll of its future, a piece of its body): if `work`
    /// panics, the call is recorded as panicked when the guard is dropped, even if the panic
    /// is caught and the guard dropped later.
    #[inline]
    pub fn run<R>(&mut self, work: impl FnOnce() -> R) -> R {
        self.running = true;
        let result = work();
        self.running = false;
        result
    }

    /// Takes the call to record it as completed; the guard then records nothing.
    #[inline]
    pub fn take(&mut self) -> Option<T> {
        self.call.take()
    }
}

impl<T: Abandon> Drop for RecordOnce<T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            abandon(call, self.running);
        }
    }
}

#[cold]
#[inline(never)]
fn abandon<T: Abandon>(call: T, running: bool) {
    let outcome = if running || std::thread::panicking() {
        Outcome::Panicked
    } else {
        Outcome::Cancelled
    };
    call.abandon(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    struct Recorded(Rc<RefCell<Vec<Outcome>>>);

    impl Abandon for Recorded {
        fn abandon(self, outcome: Outcome) {
            self.0.borrow_mut().push(outcome);
        }
    }

    fn guard() -> (RecordOnce<Recorded>, Rc<RefCell<Vec<Outcome>>>) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        (RecordOnce::new(Recorded(seen.clone())), seen)
    }

    #[test]
    fn a_taken_call_is_not_recorded_again() {
        let (mut once, seen) = guard();
        assert!(once.take().is_some());
        assert!(once.take().is_none());
        drop(once);
        assert!(seen.borrow().is_empty());
    }

    #[test]
    fn dropped_between_pieces_of_work_it_is_cancelled() {
        let (mut once, seen) = guard();
        assert_eq!(once.run(|| 7), 7);
        drop(once);
        assert_eq!(*seen.borrow(), [Outcome::Cancelled]);
    }

    #[test]
    fn a_panic_is_seen_while_unwinding_and_after_it_was_caught() {
        let (once, seen) = guard();
        let unwound = catch_unwind(AssertUnwindSafe(move || {
            let mut once = once;
            once.run(|| panic!("in the work"));
        }));
        assert!(unwound.is_err());
        assert_eq!(*seen.borrow(), [Outcome::Panicked]);

        let (mut once, seen) = guard();
        let caught = catch_unwind(AssertUnwindSafe(|| once.run(|| panic!("caught"))));
        assert!(caught.is_err());
        assert!(seen.borrow().is_empty(), "not recorded before the drop");
        drop(once);
        assert_eq!(*seen.borrow(), [Outcome::Panicked]);
    }

    #[test]
    fn nothing_to_record_records_nothing() {
        let once: RecordOnce<Recorded> = RecordOnce::maybe(None);
        assert!(once.get().is_none());
    }
}

//! Recording a call exactly once, and telling how it ended: the one guard that every
//! instrumented thing (a `#[profiled]` call, a request, a query) keeps its call in.
//!
//! A call ends in one of three ways. It completes: the adapter [takes](RecordOnce::take) the
//! call and records it with what it knows (its result, its status, its rows). It panics: the
//! panic unwinds through a piece of the call's work [run](RecordOnce::run) by the guard, which
//! records the call as [`Outcome::Panicked`] right then, whether or not someone catches the
//! panic later. Or it is dropped unfinished: between two pieces of work (a future dropped
//! between polls, a client gone away), and recorded as [`Outcome::Cancelled`]. A guard dropped
//! by a panic unwinding past it (a sync call's, whose body is not run piece by piece) is
//! dropped unfinished too; a call that counts that as its own panic says so in its
//! [`Abandon`] with [`Outcome::or_unwinding`]. No `catch_unwind` is needed for any of this,
//! and the guard is no bigger than `Option<T>`.

use crate::event::Outcome;

/// A call that records itself when it is dropped before it ended (see [`RecordOnce`]).
pub trait Abandon {
    /// Records the call as ended with `outcome`: [`Outcome::Panicked`] if a piece of its work
    /// panicked, else [`Outcome::Cancelled`] (dropped unfinished; possibly by a panic unwinding
    /// past it, see [`Outcome::or_unwinding`]).
    fn abandon(self, outcome: Outcome);
}

impl Outcome {
    /// `Cancelled` becomes `Panicked` while the thread unwinds a panic: for a call whose guard
    /// is dropped by its own panic rather than inside [`RecordOnce::run`].
    pub fn or_unwinding(self) -> Outcome {
        if self == Outcome::Cancelled && std::thread::panicking() {
            Outcome::Panicked
        } else {
            self
        }
    }
}

/// Holds a call until it ends, and records it exactly once: by [`RecordOnce::take`] when it
/// completes, else as panicked (a panic unwinding out of [`RecordOnce::run`]) or cancelled
/// (dropped unfinished, see [`Outcome::or_unwinding`]) through its [`Abandon`].
#[derive(Debug)]
#[must_use = "the call is recorded as cancelled when the guard drops"]
pub struct RecordOnce<T: Abandon> {
    call: Option<T>,
}

impl<T: Abandon> RecordOnce<T> {
    /// Holds `call`, not yet running.
    #[inline]
    pub fn new(call: T) -> RecordOnce<T> {
        RecordOnce { call: Some(call) }
    }

    /// Holds no call (records nothing), in a `const` context.
    #[inline]
    pub(crate) const fn empty() -> RecordOnce<T> {
        RecordOnce { call: None }
    }

    /// Holds `call` if there is one (profiling may be off); with `None` it records nothing.
    #[inline]
    pub fn maybe(call: Option<T>) -> RecordOnce<T> {
        RecordOnce { call }
    }

    /// The call, until it is taken or recorded.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        self.call.as_ref()
    }

    /// Where the call is held, to start one in place.
    #[inline(always)]
    pub(crate) fn slot(&mut self) -> &mut Option<T> {
        &mut self.call
    }

    /// The call, to update what it will be recorded with.
    #[inline]
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.call.as_mut()
    }

    /// Runs `work` as part of the call (a poll of its future, a piece of its body): if `work`
    /// panics, the call is recorded as panicked as the panic unwinds out of it, whether or not
    /// the panic is caught later.
    #[inline]
    pub fn run<R>(&mut self, work: impl FnOnce() -> R) -> R {
        let unwinding = Unwinding(&mut self.call);
        let result = work();
        std::mem::forget(unwinding);
        result
    }

    /// Takes the call to record it as completed; the guard then records nothing.
    #[inline]
    pub fn take(&mut self) -> Option<T> {
        self.call.take()
    }
}

impl<T: Abandon> Drop for RecordOnce<T> {
    /// Not taken: dropped unfinished.
    #[inline]
    fn drop(&mut self) {
        if self.call.is_some() {
            cancelled(&mut self.call);
        }
    }
}

/// Lives while [`RecordOnce::run`] runs its work; dropped only if the work panics.
struct Unwinding<'a, T: Abandon>(&'a mut Option<T>);

impl<T: Abandon> Drop for Unwinding<'_, T> {
    fn drop(&mut self) {
        if let Some(call) = self.0.take() {
            panicked(call);
        }
    }
}

#[cold]
#[inline(never)]
fn cancelled<T: Abandon>(call: &mut Option<T>) {
    if let Some(call) = call.take() {
        call.abandon(Outcome::Cancelled);
    }
}

#[cold]
#[inline(never)]
fn panicked<T: Abandon>(call: T) {
    call.abandon(Outcome::Panicked);
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
        assert_eq!(
            *seen.borrow(),
            [Outcome::Panicked],
            "recorded as it unwound"
        );
        assert!(once.get().is_none());
        drop(once);
        assert_eq!(seen.borrow().len(), 1, "once");
    }

    #[test]
    fn dropped_by_an_unrelated_unwind_it_is_cancelled_unless_the_call_says_otherwise() {
        let (once, seen) = guard();
        let unwound = catch_unwind(AssertUnwindSafe(move || {
            let _once = once;
            panic!("a sibling's panic");
        }));
        assert!(unwound.is_err());
        assert_eq!(*seen.borrow(), [Outcome::Cancelled]);

        struct Unwinding(Rc<RefCell<Vec<Outcome>>>);
        impl Drop for Unwinding {
            fn drop(&mut self) {
                self.0.borrow_mut().push(Outcome::Cancelled.or_unwinding());
            }
        }
        let seen = Rc::new(RefCell::new(Vec::new()));
        let during = Unwinding(seen.clone());
        let unwound = catch_unwind(AssertUnwindSafe(move || {
            let _during = during;
            panic!("its own panic");
        }));
        assert!(unwound.is_err());
        drop(Unwinding(seen.clone()));
        assert_eq!(*seen.borrow(), [Outcome::Panicked, Outcome::Cancelled]);
        assert_eq!(Outcome::Returned.or_unwinding(), Outcome::Returned);
    }

    #[test]
    fn the_guard_is_no_bigger_than_an_option() {
        assert_eq!(
            std::mem::size_of::<RecordOnce<Recorded>>(),
            std::mem::size_of::<Option<Recorded>>()
        );
    }

    #[test]
    fn nothing_to_record_records_nothing() {
        let once: RecordOnce<Recorded> = RecordOnce::maybe(None);
        assert!(once.get().is_none());
    }
}

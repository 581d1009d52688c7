//! What a plain function returns, in the forms hostile reviews found mishandled: a boxed
//! future made some other way than an async block in the tail (timed as the future's work,
//! with its error), an async block whose `Output` only the signature says, a returned closure
//! that takes a reference (`-> impl Fn(&u32) -> bool`, whose signature a wrapped body lost),
//! and bodies whose tail is coerced or inferred from the return type. Each of these compiles
//! as it does without the attribute.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::time::Duration;

use futures::FutureExt;
use profilis::{profiled, Outcome};
use profilis_test_support::{capture_async, ms};

/// An error without `Display`: an async block's `Err` of it once made the probes ask for one.
#[derive(Debug, PartialEq)]
pub struct NotDisplay;

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An alias in tonic's style: its parameters are not the future's `Output`.
type ResultFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

async fn work(fail: bool) -> Result<u8, String> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if fail {
        Err("bad".into())
    } else {
        Ok(1)
    }
}

#[profiled]
fn via_box_pin_call(fail: bool) -> Pin<Box<dyn Future<Output = Result<u8, String>> + Send>> {
    Box::pin(work(fail))
}

#[profiled]
fn via_boxed(fail: bool) -> Pin<Box<dyn Future<Output = Result<u8, String>> + Send + 'static>> {
    async move { work(fail).await }.boxed()
}

#[profiled]
fn via_branches(fail: bool) -> Pin<Box<dyn Future<Output = Result<u8, String>> + Send>> {
    if fail {
        Box::pin(work(true))
    } else {
        Box::pin(async { work(false).await })
    }
}

#[profiled]
fn via_early_return(fail: bool) -> Pin<Box<dyn Future<Output = Result<u8, String>> + Send>> {
    if fail {
        return Box::pin(work(true));
    }
    Box::pin(work(false))
}

#[profiled]
fn via_early_return_then_block(
    fail: bool,
) -> Pin<Box<dyn Future<Output = Result<u8, String>> + Send>> {
    if fail {
        return Box::pin(work(true));
    }
    Box::pin(async move { work(false).await })
}

#[profiled]
fn boxed_impl_output() -> Pin<Box<dyn Future<Output = impl std::fmt::Display>>> {
    Box::pin(ready(1u8))
}

#[profiled]
fn via_block(fail: bool) -> impl Future<Output = Result<u8, String>> + Send + 'static {
    async move { work(fail).await }
}

/// Made by a call, not an async block: only the making is timed (the future is opaque).
#[profiled]
fn via_call(fail: bool) -> impl Future<Output = Result<u8, String>> {
    work(fail)
}

#[profiled]
fn block_of_not_display() -> impl Future<Output = Result<u8, NotDisplay>> {
    async { Err(NotDisplay) }
}

#[profiled]
fn boxed_block_of_not_display() -> Pin<Box<dyn Future<Output = Result<u8, NotDisplay>> + Send>> {
    Box::pin(async { Ok(5) })
}

#[profiled]
fn block_of_default() -> Pin<Box<dyn Future<Output = u8> + Send>> {
    Box::pin(async { Default::default() })
}

#[profiled]
fn block_that_panics() -> impl Future<Output = u8> {
    async { panic!("no value") }
}

#[profiled]
fn alias_block(x: u8) -> ResultFuture<u8, std::io::Error> {
    Box::pin(async move { Ok(x) })
}

#[profiled]
fn opaque_early_return(x: bool) -> impl Future<Output = u32> {
    if x {
        return ready(1);
    }
    ready(2)
}

#[profiled]
fn inferred_tail(b: Ready<u32>) -> Boxed<u32> {
    Box::pin(b)
}

#[profiled]
fn into_tail(b: Box<dyn Future<Output = u32> + Send>) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    b.into()
}

#[profiled]
fn boxed_sync(x: u8) -> Pin<Box<dyn Future<Output = u8> + Send + Sync>> {
    Box::pin(ready(x))
}

#[profiled]
fn boxed_borrowing<'a>(text: &'a str) -> Pin<Box<dyn Future<Output = usize> + Send + 'a>> {
    Box::pin(async move { text.len() }.map(|n| n + 1))
}

#[profiled]
fn boxed_local(x: std::rc::Rc<u8>) -> Pin<Box<dyn Future<Output = u8>>> {
    Box::pin(ready(*x))
}

#[profiled]
fn panics_while_making_boxed(x: Option<u32>) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    Box::pin(ready(x.expect("no x")))
}

#[profiled]
fn panics_while_making_opaque(x: Option<u32>) -> impl Future<Output = u32> {
    ready(x.expect("no x"))
}

#[profiled]
fn is_even() -> impl Fn(&u32) -> bool {
    |x| x % 2 == 0
}

#[profiled]
fn first_word() -> impl Fn(&str) -> &str {
    |s| s.split(' ').next().unwrap_or("")
}

#[profiled]
fn identity() -> impl for<'a> Fn(&'a str) -> &'a str {
    |s: &str| s
}

/// An early `return` and a `?` leave an inline body too: each ends the call once.
#[profiled]
fn checked(limit: &str) -> impl Fn(&u32) -> bool {
    let Ok(limit) = limit.parse::<u32>() else {
        return Box::new(|_: &u32| false) as Box<dyn Fn(&u32) -> bool>;
    };
    Box::new(move |x: &u32| *x < limit)
}

/// An iterator made while a panic unwinds (in a `Drop`): it returned, it did not panic.
#[profiled]
fn digits() -> impl Iterator<Item = u8> {
    0..10
}

struct MakesDigitsOnDrop;

impl Drop for MakesDigitsOnDrop {
    fn drop(&mut self) {
        assert_eq!(digits().count(), 10);
    }
}

#[test]
fn boxed_futures_made_in_any_form_are_timed_as_their_work_with_their_errors() {
    let ((), captured) = capture_async(async {
        for fail in [false, true] {
            assert_eq!(via_box_pin_call(fail).await.is_err(), fail);
            assert_eq!(via_boxed(fail).await.is_err(), fail);
            assert_eq!(via_branches(fail).await.is_err(), fail);
            assert_eq!(via_early_return(fail).await.is_err(), fail);
            assert_eq!(via_early_return_then_block(fail).await.is_err(), fail);
            assert_eq!(via_block(fail).await.is_err(), fail);
            assert_eq!(via_call(fail).await.is_err(), fail);
        }
    });
    for name in [
        "returned::via_box_pin_call",
        "returned::via_boxed",
        "returned::via_branches",
        "returned::via_early_return",
        "returned::via_early_return_then_block",
        "returned::via_block",
    ] {
        assert_eq!(captured.count(name), (2, 1), "{name}");
        for event in captured.named(name) {
            // The future's work (20 ms), not the making of it.
            assert!(event.dur_ns >= ms(20), "{name}: {} ns", event.dur_ns);
        }
        let failed: Vec<_> = captured
            .named(name)
            .into_iter()
            .filter(|e| e.error)
            .collect();
        assert_eq!(failed.len(), 1, "{name}");
        let failure = failed[0].failure.as_ref().expect("the error kept");
        assert_eq!(failure.exception_value.as_deref(), Some("bad"), "{name}");
    }
    // An opaque future made by a call: counted as made, not as its work (documented).
    assert_eq!(captured.count("returned::via_call"), (2, 0));
}

#[test]
fn async_blocks_and_tails_get_the_type_the_signature_names() {
    let ((), captured) = capture_async(async {
        assert_eq!(block_of_not_display().await, Err(NotDisplay));
        assert_eq!(boxed_block_of_not_display().await, Ok(5));
        assert_eq!(block_of_default().await, 0);
        assert_eq!(alias_block(3).await.ok(), Some(3));
        assert_eq!(opaque_early_return(true).await, 1);
        assert_eq!(inferred_tail(ready(4)).await, 4);
        assert_eq!(into_tail(Box::new(ready(5))).await, 5);
        assert_eq!(boxed_sync(6).await, 6);
        assert_eq!(boxed_impl_output().await.to_string(), "1");
        assert_eq!(boxed_borrowing("abc").await, 4);
        assert_eq!(boxed_local(std::rc::Rc::new(7)).await, 7);
        let panicked = std::panic::AssertUnwindSafe(block_that_panics())
            .catch_unwind()
            .await;
        assert!(panicked.is_err());
    });
    assert_eq!(captured.count("returned::block_of_not_display"), (1, 1));
    assert_eq!(
        captured.count("returned::boxed_block_of_not_display"),
        (1, 0)
    );
    assert_eq!(captured.count("returned::block_of_default"), (1, 0));
    assert_eq!(captured.count("returned::alias_block"), (1, 0));
    assert_eq!(captured.count("returned::opaque_early_return"), (1, 0));
    assert_eq!(captured.count("returned::inferred_tail"), (1, 0));
    for name in [
        "returned::into_tail",
        "returned::boxed_sync",
        "returned::boxed_borrowing",
        "returned::boxed_local",
    ] {
        assert_eq!(captured.count(name), (1, 0), "{name}");
    }
    assert_eq!(captured.count("returned::block_that_panics"), (1, 1));
    let panicked = captured.one("returned::block_that_panics");
    assert_eq!(panicked.outcome, Outcome::Panicked);
}

#[test]
fn a_panic_while_the_future_is_made_is_recorded() {
    let ((), captured) = capture_async(async {
        assert!(std::panic::catch_unwind(|| panics_while_making_boxed(None)).is_err());
        assert!(std::panic::catch_unwind(|| panics_while_making_opaque(None)).is_err());
    });
    for name in [
        "returned::panics_while_making_boxed",
        "returned::panics_while_making_opaque",
    ] {
        assert_eq!(captured.count(name), (1, 1), "{name}");
        assert_eq!(captured.one(name).outcome, Outcome::Panicked, "{name}");
    }
}

#[test]
fn returned_closures_keep_their_signature_and_each_call_is_recorded_once() {
    let ((), captured) = capture_async(async {
        let even = is_even();
        assert!(even(&4) && !even(&3));
        assert_eq!(first_word()("hello world"), "hello");
        assert_eq!(identity()("same"), "same");
        assert!(checked("10")(&3));
        assert!(!checked("ten")(&3));
        // Called by a `Drop` while a panic unwinds: it returned.
        let unwound = std::panic::catch_unwind(|| {
            let _digits = MakesDigitsOnDrop;
            panic!("unwinding");
        });
        assert!(unwound.is_err());
    });
    for name in [
        "returned::is_even",
        "returned::first_word",
        "returned::identity",
        "returned::digits",
    ] {
        assert_eq!(captured.count(name), (1, 0), "{name}");
        assert_eq!(captured.one(name).outcome, Outcome::Returned, "{name}");
    }
    assert_eq!(captured.count("returned::checked"), (2, 0));
}

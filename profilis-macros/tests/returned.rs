//! What a plain function returns, in the forms a hostile review found mishandled: a future
//! made some other way than an async block in the tail (timed as the future's work, with its
//! error), an async block whose `Output` only the signature says, and a returned closure that
//! takes a reference (`-> impl Fn(&u32) -> bool`, whose signature a wrapped body lost). Each
//! of these compiles exactly as it does without the attribute.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use profilis::{profiled, Outcome};
use profilis_test_support::{capture_async, ms};

/// An error without `Display`: an async block's `Err` of it once made the probes ask for one.
#[derive(Debug, PartialEq)]
pub struct NotDisplay;

async fn work(fail: bool) -> Result<u8, String> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if fail {
        Err("bad".into())
    } else {
        Ok(1)
    }
}

#[profiled]
fn via_call(fail: bool) -> impl Future<Output = Result<u8, String>> {
    work(fail)
}

#[profiled]
fn via_box_pin_call(fail: bool) -> Pin<Box<dyn Future<Output = Result<u8, String>> + Send>> {
    Box::pin(work(fail))
}

#[profiled]
fn via_boxed(fail: bool) -> BoxFuture<'static, Result<u8, String>> {
    async move { work(fail).await }.boxed()
}

#[profiled]
fn via_block(fail: bool) -> impl Future<Output = Result<u8, String>> + Send + 'static {
    async move { work(fail).await }
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

#[test]
fn futures_made_in_any_form_are_timed_as_their_work_with_their_errors() {
    let ((), captured) = capture_async(async {
        for fail in [false, true] {
            assert_eq!(via_call(fail).await.is_err(), fail);
            assert_eq!(via_box_pin_call(fail).await.is_err(), fail);
            assert_eq!(via_boxed(fail).await.is_err(), fail);
            assert_eq!(via_block(fail).await.is_err(), fail);
        }
    });
    for name in [
        "returned::via_call",
        "returned::via_box_pin_call",
        "returned::via_boxed",
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
}

#[test]
fn async_blocks_get_the_output_the_signature_names() {
    let ((), captured) = capture_async(async {
        assert_eq!(block_of_not_display().await, Err(NotDisplay));
        assert_eq!(boxed_block_of_not_display().await, Ok(5));
        assert_eq!(block_of_default().await, 0);
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
    assert_eq!(captured.count("returned::block_that_panics"), (1, 1));
    let panicked = captured.one("returned::block_that_panics");
    assert_eq!(panicked.outcome, Outcome::Panicked);
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
    });
    for name in [
        "returned::is_even",
        "returned::first_word",
        "returned::identity",
    ] {
        assert_eq!(captured.count(name), (1, 0), "{name}");
        assert_eq!(captured.one(name).outcome, Outcome::Returned, "{name}");
    }
    assert_eq!(captured.count("returned::checked"), (2, 0));
}

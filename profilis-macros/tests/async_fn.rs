//! `#[profiled]` on `async fn`: timing from first poll to completion, errors, cancellation,
//! panics and parent links across `.await` on both tokio runtimes.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use profilis::{profiled, Outcome};
use profilis_test_support::{capture_async, capture_multi_thread, ms};

#[profiled]
async fn fetch(id: u64) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    if id == 0 {
        return Err("no such id".into());
    }
    Ok(format!("user {id}"))
}

#[profiled]
async fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    let value: u32 = text.trim().parse()?;
    Ok(value * 2)
}

#[profiled]
async fn quick() -> u8 {
    3
}

#[profiled]
async fn no_return_type(counter: &mut u32) {
    *counter += 1;
}

#[profiled]
async fn parent() -> u32 {
    let a = child().await;
    tokio::task::yield_now().await;
    let b = child().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    a + b + sync_child()
}

#[profiled]
async fn child() -> u32 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    1
}

#[profiled]
fn sync_child() -> u32 {
    1
}

#[profiled]
async fn forever() {
    std::future::pending::<()>().await;
}

/// A plain function returning the future it makes: the future's work is the call.
#[profiled]
fn make_fetch(id: u64) -> impl Future<Output = Result<String, String>> + Send + 'static {
    let label = format!("user {id}");
    async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if id == 0 {
            return Err("no such id".into());
        }
        Ok(label)
    }
}

/// The same with statements before its tail that may end the call there: an early `return`
/// of a future not wrapped, or a panic.
#[profiled]
fn make_fetch_or_not(id: u64) -> std::pin::Pin<Box<dyn Future<Output = u64> + Send>> {
    if id == 0 {
        return Box::pin(async { 0 });
    }
    assert!(id != 13, "unlucky");
    Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        id
    })
}

/// An early `return` no token shows: a macro of the user's own, named like a common one.
macro_rules! info {
    ($id:expr) => {
        if $id == 0 {
            return Box::pin(async { 0 });
        }
    };
}

#[profiled]
fn make_fetch_early_by_macro(id: u64) -> std::pin::Pin<Box<dyn Future<Output = u64> + Send>> {
    info!(id);
    Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        id
    })
}

/// `-> !` through a `macro_rules!` type fragment.
macro_rules! never_returning {
    ($name:ident, $never:ty) => {
        #[profiled]
        async fn $name() -> $never {
            tokio::task::yield_now().await;
            panic!("never returns either");
        }
    };
}

never_returning!(explode_never_by_macro, !);

/// A function that never returns: `!` is its return type.
#[profiled]
async fn serve_forever(interval: Duration) -> ! {
    loop {
        tokio::time::sleep(interval).await;
    }
}

#[profiled]
async fn explode_never() -> ! {
    tokio::task::yield_now().await;
    panic!("never returns");
}

#[profiled]
async fn explode() -> u32 {
    tokio::task::yield_now().await;
    panic!("async kaboom");
}

#[profiled(sample = 0)]
async fn unsampled() -> Result<(), ()> {
    Err(())
}

#[profiled]
async fn early_return(flag: bool) -> u32 {
    if flag {
        return 1;
    }
    2
}

#[profiled]
async fn borrowing<'a>(items: &'a [String], prefix: &str) -> Option<&'a String> {
    items.iter().find(|item| item.starts_with(prefix))
}

#[profiled]
async fn returns_impl(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

/// Must be `Send` to be spawned: the instrumentation must not take that away.
fn assert_send<F: Future + Send>(future: F) -> F {
    future
}

#[test]
fn duration_starts_at_the_first_poll() {
    let ((value, window), captured) = capture_async(async {
        let future = fetch(7);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The call must lie inside this window: its first poll is in here, so the 50 ms wait
        // before it is not part of its duration, however slow the machine is.
        let polled = std::time::Instant::now();
        let value = future.await;
        (value, polled.elapsed())
    });
    assert_eq!(value.as_deref(), Ok("user 7"));
    let event = captured.one("async_fn::fetch");
    assert!(event.dur_ns >= ms(10), "dur_ns = {}", event.dur_ns);
    assert!(
        u128::from(event.dur_ns) <= window.as_nanos() + u128::from(ms(1)),
        "dur_ns = {} is longer than the {window:?} from the first poll to completion: \
         it includes the wait before the first poll",
        event.dur_ns
    );
    assert!(!event.error);
    assert_eq!(event.outcome, Outcome::Returned);
}

#[test]
fn a_function_returning_a_future_it_makes_times_the_future() {
    let ((ok, err, other), captured) = capture_async(async {
        let ok = make_fetch(7);
        let err = make_fetch(0);
        let other = make_fetch_or_not(3);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let polled = std::time::Instant::now();
        let (ok, err, other) = (ok.await, err.await, other.await);
        (ok, err, (other, polled.elapsed()))
    });
    assert_eq!(ok.as_deref(), Ok("user 7"));
    assert!(err.is_err());
    let (other, window) = other;
    assert_eq!(other, 3);
    let mut calls = captured.named("async_fn::make_fetch");
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls.iter().filter(|c| c.error).count(),
        1,
        "the Err is an error"
    );
    calls.push(captured.one("async_fn::make_fetch_or_not"));
    for call in &calls {
        // Timed from the first poll: the sleep inside, not the wait before it.
        assert!(call.dur_ns >= ms(10), "dur_ns = {}", call.dur_ns);
        assert!(u128::from(call.dur_ns) <= window.as_nanos() + u128::from(ms(1)));
    }
}

/// A boxed future through an alias, which `#[profiled]` cannot name: its async tail is wrapped,
/// and the statements before it run under a `Handover`.
type Fetch = std::pin::Pin<Box<dyn Future<Output = u64> + Send>>;

#[profiled]
fn make_fetch_aliased(id: u64) -> Fetch {
    if id == 0 {
        return Box::pin(async { 0 });
    }
    Box::pin(async move { id })
}

/// Makes futures, by an early `return` or not, and runs them when dropped: while a panic
/// unwinds, in the test below.
struct FetchesOnDrop;

impl Drop for FetchesOnDrop {
    fn drop(&mut self) {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for (id, mut future) in [
            (0, make_fetch_aliased(0)),
            (2, make_fetch_aliased(2)),
            (0, make_fetch_or_not(0)),
            (0, make_fetch_early_by_macro(0)),
        ] {
            assert_eq!(future.as_mut().poll(&mut cx), std::task::Poll::Ready(id));
        }
    }
}

#[test]
fn a_future_returning_function_called_while_a_panic_unwinds_returned() {
    let ((), captured) = capture_async(async {
        let unwound = std::panic::catch_unwind(|| {
            let _fetches = FetchesOnDrop;
            panic!("unwinding");
        });
        assert!(unwound.is_err());
    });
    for (name, calls) in [
        ("async_fn::make_fetch_aliased", 2),
        ("async_fn::make_fetch_or_not", 1),
        ("async_fn::make_fetch_early_by_macro", 1),
    ] {
        let recorded = captured.named(name);
        assert_eq!(recorded.len(), calls, "{name}: {recorded:?}");
        for call in recorded {
            assert_eq!(
                (call.outcome, call.error),
                (Outcome::Returned, false),
                "{name}"
            );
        }
    }
}

#[test]
fn a_future_returning_function_ended_before_its_tail_is_recorded() {
    let ((), captured) = capture_async(async {
        // An early return, written out or by a macro: a future that is not wrapped.
        assert_eq!(make_fetch_or_not(0).await, 0);
        assert_eq!(make_fetch_early_by_macro(0).await, 0);
        assert_eq!(make_fetch_early_by_macro(2).await, 2);
        // A panic before the tail.
        let unlucky = std::panic::catch_unwind(|| make_fetch_or_not(13));
        assert!(unlucky.is_err(), "the panic goes on");
    });
    let calls = captured.named("async_fn::make_fetch_or_not");
    assert_eq!(calls.len(), 2, "{calls:?}");
    let outcomes: Vec<_> = calls.iter().map(|c| (c.error, c.outcome)).collect();
    assert!(
        outcomes.contains(&(false, Outcome::Returned)),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&(true, Outcome::Panicked)),
        "{outcomes:?}"
    );
    let by_macro = captured.named("async_fn::make_fetch_early_by_macro");
    assert!(by_macro.iter().all(|c| c.outcome == Outcome::Returned));
    assert_eq!(by_macro.len(), 2, "both paths: {by_macro:?}");
    assert!(
        by_macro.iter().any(|c| c.dur_ns >= ms(10)),
        "the wrapped one"
    );
}

#[test]
fn err_outputs_are_errors() {
    let ((), captured) = capture_async(async {
        assert!(fetch(0).await.is_err());
        assert!(parse("x").await.is_err());
        assert_eq!(parse(" 4 ").await, Ok(8));
        assert_eq!(quick().await, 3);
        let mut counter = 0;
        no_return_type(&mut counter).await;
        assert_eq!(counter, 1);
        assert_eq!(early_return(true).await, 1);
        assert_eq!(early_return(false).await, 2);
        let items = vec!["apple".to_string(), "banana".to_string()];
        assert_eq!(borrowing(&items, "ba").await, Some(&items[1]));
        assert_eq!(returns_impl(3).await.sum::<u32>(), 3);
    });
    assert!(captured.one("async_fn::fetch").error);
    let parse: Vec<bool> = captured
        .named("async_fn::parse")
        .iter()
        .map(|e| e.error)
        .collect();
    assert_eq!(parse, [true, false]);
    assert!(!captured.one("async_fn::quick").error);
    captured.one("async_fn::no_return_type");
    assert_eq!(captured.named("async_fn::early_return").len(), 2);
    captured.one("async_fn::borrowing");
    captured.one("async_fn::returns_impl");
}

#[test]
fn a_dropped_future_is_recorded_once_as_cancelled() {
    let ((), captured) = capture_async(async {
        let timed_out = tokio::time::timeout(Duration::from_millis(5), forever()).await;
        assert!(timed_out.is_err());
        let never = serve_forever(Duration::from_millis(1));
        let timed_out = tokio::time::timeout(Duration::from_millis(5), never).await;
        assert!(timed_out.is_err());
        drop(fetch(1));
    });
    for name in ["async_fn::forever", "async_fn::serve_forever"] {
        let event = captured.one(name);
        assert_eq!(event.outcome, Outcome::Cancelled, "{name}");
        assert!(!event.error, "{name}");
        assert!(event.dur_ns >= ms(5), "{name}: dur_ns = {}", event.dur_ns);
    }
    // The body of an `async fn` never polled never started: there was no call.
    assert!(captured.named("async_fn::fetch").is_empty());
}

#[test]
fn a_panicking_future_is_recorded_and_the_panic_propagates() {
    let (payload, captured) = capture_async(async {
        AssertUnwindSafe(explode())
            .catch_unwind()
            .await
            .expect_err("explode panics")
    });
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"async kaboom"),
        "the panic payload is unchanged"
    );
    let event = captured.one("async_fn::explode");
    assert!(event.error);
    assert_eq!(event.outcome, Outcome::Panicked);
}

#[test]
fn a_function_that_never_returns_is_recorded_when_it_panics() {
    let (payload, captured) = capture_async(async {
        AssertUnwindSafe(explode_never())
            .catch_unwind()
            .await
            .expect_err("explode_never panics")
    });
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"never returns"));
    let event = captured.one("async_fn::explode_never");
    assert!(event.error);
    assert_eq!(event.outcome, Outcome::Panicked);
    let (_, captured) = capture_async(async {
        AssertUnwindSafe(explode_never_by_macro())
            .catch_unwind()
            .await
            .expect_err("explode_never_by_macro panics")
    });
    let event = captured.one("async_fn::explode_never_by_macro");
    assert_eq!((event.error, event.outcome), (true, Outcome::Panicked));
}

fn check_family(captured: &profilis::testing::Captured) {
    let parent = captured.one("async_fn::parent");
    let children = captured.named("async_fn::child");
    assert_eq!(children.len(), 2);
    for child in children {
        assert_eq!(child.trace_id, parent.trace_id);
        assert_eq!(child.parent_span_id, Some(parent.span_id));
    }
    let sync_child = captured.one("async_fn::sync_child");
    assert_eq!(sync_child.trace_id, parent.trace_id);
    assert_eq!(sync_child.parent_span_id, Some(parent.span_id));
    assert_eq!(parent.parent_span_id, None);
}

#[test]
fn nested_calls_link_across_await_on_current_thread() {
    let (value, captured) = capture_async(parent());
    assert_eq!(value, 3);
    check_family(&captured);
}

#[test]
fn nested_calls_link_across_await_on_multi_thread() {
    let (value, captured) = capture_multi_thread(async {
        let handle = tokio::spawn(assert_send(parent()));
        // Interleave with other work so the task can hop between threads.
        let other = tokio::spawn(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
        other.await.unwrap();
        handle.await.unwrap()
    });
    assert_eq!(value, 3);
    check_family(&captured);
}

#[test]
fn sample_zero_counts_without_events() {
    let ((), captured) = capture_async(async {
        for _ in 0..4 {
            assert!(unsampled().await.is_err());
        }
    });
    assert!(captured.named("async_fn::unsampled").is_empty());
    assert_eq!(captured.count("async_fn::unsampled"), (4, 4));
}

//! `#[profiled]` on sync functions: names, durations, errors, panics, nesting and the
//! signature shapes the macro must keep compiling (without lints of the expansion's own:
//! `unused_braces` was one, on a `-> !` body).
#![deny(unused_braces)]

use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use profilis::testing::capture;
use profilis::{profiled, Outcome};
use profilis_test_support::ms;

#[derive(Debug, PartialEq)]
struct PriceError;

/// Prices an order.
#[profiled]
fn price(qty: u32) -> Result<u32, PriceError> {
    if qty == 0 {
        return Err(PriceError);
    }
    Ok(qty * 250)
}

#[profiled]
fn slow() {
    std::thread::sleep(Duration::from_millis(5));
}

#[profiled(name = "custom label")]
fn labelled() -> u8 {
    7
}

#[profiled]
fn parse_sum(a: &str, b: &str) -> Result<i64, std::num::ParseIntError> {
    let a: i64 = a.parse()?;
    let b: i64 = b.parse()?;
    Ok(a + b)
}

#[profiled]
fn boom(message: &'static str) -> u32 {
    if !message.is_empty() {
        panic!("{message}");
    }
    0
}

#[profiled]
fn outer() -> u32 {
    inner() + 1
}

#[profiled]
fn inner() -> u32 {
    1
}

#[profiled(sample = 0.0)]
fn never_sampled(fail: bool) -> Result<(), ()> {
    if fail {
        Err(())
    } else {
        Ok(())
    }
}

#[profiled(sample = 1)]
fn always_sampled() {}

#[profiled]
fn largest<T>(items: &[T]) -> Option<&T>
where
    T: Ord,
{
    items.iter().max()
}

#[profiled]
fn describe(value: impl Display) -> impl Display {
    format!("<{value}>")
}

#[profiled]
fn evens(limit: u32) -> Result<impl Iterator<Item = u32>, String> {
    if limit == 0 {
        return Err("empty".into());
    }
    Ok((0..limit).filter(|n| n % 2 == 0))
}

/// # Safety
/// `ptr` must be valid for reads.
#[profiled]
unsafe fn read(ptr: *const u32) -> u32 {
    unsafe { *ptr }
}

#[profiled]
fn diverges() -> ! {
    panic!("never returns")
}

/// A divergent function of the test crate's API.
#[profiled]
#[rustfmt::skip]
pub fn fails_with(message: &str) -> ! { panic!("{message}") }

/// On one line, as rustfmt leaves it where it does not run (rustc lints such braces).
#[profiled]
#[rustfmt::skip]
pub fn exits(code: u8) -> ! { std::process::exit(code.into()) }

#[profiled]
fn take_ownership(items: Vec<String>) -> Vec<String> {
    let mut items = items;
    items.push("more".into());
    items
}

#[profiled]
fn pattern_args((a, b): (u32, u32), mut acc: u32) -> u32 {
    acc += a * b;
    acc
}

#[test]
fn one_event_per_call_named_after_the_module_path() {
    let ((), captured) = capture(|| {
        assert_eq!(price(2), Ok(500));
        assert_eq!(price(3), Ok(750));
        assert_eq!(labelled(), 7);
    });
    assert_eq!(captured.named("sync::price").len(), 2);
    assert_eq!(captured.one("custom label").outcome, Outcome::Returned);
    assert_eq!(captured.count("sync::price"), (2, 0));
}

#[test]
fn duration_covers_the_body() {
    let ((), captured) = capture(slow);
    let event = captured.one("sync::slow");
    assert!(event.dur_ns >= ms(5), "dur_ns = {}", event.dur_ns);
    assert!(event.dur_ns < ms(5_000), "dur_ns = {}", event.dur_ns);
}

#[test]
fn err_is_an_error_and_ok_is_not() {
    let ((), captured) = capture(|| {
        assert_eq!(price(0), Err(PriceError));
        assert_eq!(price(1), Ok(250));
        assert_eq!(parse_sum("1", "x").map_err(|_| ()), Err(()));
        assert_eq!(parse_sum("1", "2"), Ok(3));
    });
    let errors: Vec<bool> = captured
        .named("sync::price")
        .iter()
        .map(|e| e.error)
        .collect();
    assert_eq!(errors, [true, false]);
    let errors: Vec<bool> = captured
        .named("sync::parse_sum")
        .iter()
        .map(|e| e.error)
        .collect();
    assert_eq!(errors, [true, false]);
    assert_eq!(captured.count("sync::price"), (2, 1));
}

#[test]
fn a_panic_is_recorded_and_propagates_unchanged() {
    let (payload, captured) = capture(|| catch_unwind(|| boom("kaboom")).expect_err("boom panics"));
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("kaboom")
    );
    let event = captured.one("sync::boom");
    assert!(event.error);
    assert_eq!(event.outcome, Outcome::Panicked);
}

#[test]
fn a_never_returning_fn_is_recorded_when_it_panics() {
    let (payload, captured) = capture(|| catch_unwind(|| diverges()).expect_err("panics"));
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"never returns"));
    let event = captured.one("sync::diverges");
    assert_eq!(event.outcome, Outcome::Panicked);
}

#[test]
fn nested_calls_share_the_trace_and_link_parents() {
    let (value, captured) = capture(outer);
    assert_eq!(value, 2);
    let outer = captured.one("sync::outer");
    let inner = captured.one("sync::inner");
    assert_eq!(inner.trace_id, outer.trace_id);
    assert_eq!(inner.parent_span_id, Some(outer.span_id));
    assert_eq!(outer.parent_span_id, None);
    assert_ne!(inner.span_id, outer.span_id);
}

#[test]
fn sample_zero_is_counted_without_events() {
    let ((), captured) = capture(|| {
        for i in 0..10 {
            let _ = never_sampled(i % 2 == 0);
        }
        always_sampled();
    });
    assert!(captured.named("sync::never_sampled").is_empty());
    assert_eq!(captured.count("sync::never_sampled"), (10, 5));
    assert_eq!(captured.named("sync::always_sampled").len(), 1);
}

#[test]
fn generic_impl_trait_unsafe_and_by_value_fns_work() {
    let ((), captured) = capture(|| {
        assert_eq!(largest(&[3, 9, 2]), Some(&9));
        assert_eq!(largest::<u8>(&[]), None);
        assert_eq!(describe(5).to_string(), "<5>");
        assert_eq!(evens(5).unwrap().collect::<Vec<_>>(), [0, 2, 4]);
        assert!(evens(0).is_err());
        let value = 41;
        // SAFETY: `value` is a live u32.
        assert_eq!(unsafe { read(&value) }, 41);
        assert_eq!(take_ownership(vec!["a".into()]), ["a", "more"]);
        assert_eq!(pattern_args((2, 3), 1), 7);
    });
    assert_eq!(captured.named("sync::largest").len(), 2);
    assert_eq!(captured.named("sync::describe").len(), 1);
    let evens: Vec<bool> = captured
        .named("sync::evens")
        .iter()
        .map(|e| e.error)
        .collect();
    assert_eq!(evens, [false, true]);
    captured.one("sync::read");
    captured.one("sync::take_ownership");
    captured.one("sync::pattern_args");
}

#[test]
fn calls_without_a_collector_still_work() {
    // Hold the collector lock, so no other test's collector is running meanwhile.
    let _no_collector = profilis::testing::lock();
    assert_eq!(price(4), Ok(1000));
    let caught = catch_unwind(AssertUnwindSafe(|| boom("alone")));
    assert!(caught.is_err());
}

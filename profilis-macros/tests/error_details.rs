//! What `#[profiled]` keeps of a failure: the error's type and (for a `Display` error) its
//! message, a panic's message; in events, and in the failed calls handed to a sink that wants
//! details. A call that succeeds carries none.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use profilis::profiled;
use profilis::testing::{capture, capture_details, Captured};
use profilis::Event;

#[derive(Debug)]
struct OutOfStock {
    sku: u32,
}

impl fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sku {} is out of stock", self.sku)
    }
}

#[derive(Debug)]
struct Opaque;

#[profiled]
fn reserve(sku: u32) -> Result<u32, OutOfStock> {
    if sku == 0 {
        return Err(OutOfStock { sku: 42 });
    }
    Ok(sku)
}

#[profiled]
fn opaque(fail: bool) -> Result<(), Opaque> {
    if fail {
        Err(Opaque)
    } else {
        Ok(())
    }
}

#[profiled]
fn generic<E>(result: Result<u8, E>) -> Result<u8, E> {
    result
}

#[profiled]
fn explode(what: &str) {
    panic!("boom: {what}");
}

#[profiled]
fn chatty() -> Result<(), String> {
    Err("x".repeat(10_000))
}

#[profiled]
async fn fetch(id: u64) -> Result<u64, OutOfStock> {
    if id == 0 {
        return Err(OutOfStock { sku: 7 });
    }
    Ok(id)
}

#[profiled(sample = 0.0)]
fn reserve_unsampled(sku: u32) -> Result<u32, OutOfStock> {
    if sku == 0 {
        return Err(OutOfStock { sku });
    }
    Ok(sku)
}

#[profiled(sample = 0.0)]
async fn fetch_unsampled(id: u64) -> Result<u64, OutOfStock> {
    if id == 0 {
        return Err(OutOfStock { sku: 9 });
    }
    Ok(id)
}

/// Calls both sampled-out functions, failing and not, inside a timed call.
#[profiled]
fn order() {
    for sku in 0..3 {
        let _ = reserve_unsampled(sku);
        let _ = futures::executor::block_on(fetch_unsampled(sku as u64));
    }
}

#[test]
fn a_call_sampled_out_that_fails_is_counted_and_its_failure_kept_under_its_parent() {
    let (_, captured) = capture_details(order);
    let order = captured.one("error_details::order");
    for (name, message) in [
        ("error_details::reserve_unsampled", "sku 0 is out of stock"),
        ("error_details::fetch_unsampled", "sku 9 is out of stock"),
    ] {
        let failed = one_failed(&captured, name);
        let failure = failed.failure.as_ref().expect("a failure");
        assert_eq!(failure.exception_value.as_deref(), Some(message));
        assert_eq!(failed.parent_span_id, Some(order.span_id), "{name}");
        assert_eq!(failed.dur_ns, 0, "{name}: sampled out, not timed");
        assert_eq!(captured.count(name), (3, 1), "{name}");
    }
}

/// The one failed call of `name` handed over as a detail.
fn one_failed<'a>(captured: &'a Captured, name: &str) -> &'a Event {
    let failed: Vec<&Event> = captured
        .errors
        .iter()
        .filter(|e| e.name() == name)
        .collect();
    assert_eq!(failed.len(), 1, "{name}: {:?}", captured.errors);
    failed[0]
}

/// An error whose `Display` panics: the user's code, run only when a sink wants the message.
#[derive(Debug)]
struct Touchy;

impl fmt::Display for Touchy {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("touchy display")
    }
}

#[profiled]
fn touchy() -> Result<(), Touchy> {
    Err(Touchy)
}

#[profiled(sample = 0.0)]
fn touchy_unsampled() -> Result<(), Touchy> {
    Err(Touchy)
}

#[profiled]
async fn touchy_async() -> Result<(), Touchy> {
    Err(Touchy)
}

#[test]
fn an_error_whose_display_panics_is_returned_as_it_is_and_recorded_once() {
    let (_, captured) = capture_details(|| {
        for f in [touchy as fn() -> Result<(), Touchy>, touchy_unsampled] {
            // Without profiling nothing would call this `Display`: its panic must not reach
            // the caller because profiling wrote the message.
            let returned = catch_unwind(AssertUnwindSafe(f));
            assert!(matches!(returned, Ok(Err(Touchy))), "{returned:?}");
        }
        let returned = catch_unwind(AssertUnwindSafe(|| {
            futures::executor::block_on(touchy_async())
        }));
        assert!(matches!(returned, Ok(Err(Touchy))), "{returned:?}");
        // The span before the calls is current again.
        assert_eq!(profilis::context::current(), None);
    });
    for name in [
        "error_details::touchy",
        "error_details::touchy_unsampled",
        "error_details::touchy_async",
    ] {
        assert_eq!(captured.count(name), (1, 1), "{name}");
        let failure = one_failed(&captured, name)
            .failure
            .as_ref()
            .expect("a failure");
        assert_eq!(
            failure.exception_value.as_deref(),
            Some("(its Display panicked)"),
            "{name}"
        );
    }
}

#[test]
fn a_display_error_gives_its_type_and_message_in_the_event() {
    let (_, captured) = capture(|| {
        let _ = reserve(0);
        let _ = reserve(1);
    });
    let events = captured.named("error_details::reserve");
    assert_eq!(events.len(), 2);
    let failed = events.iter().find(|e| e.error).expect("the failed call");
    let failure = failed.failure.as_deref().expect("a failure");
    assert_eq!(
        failure.exception_type.as_deref(),
        Some("error_details::OutOfStock")
    );
    assert_eq!(
        failure.exception_value.as_deref(),
        Some("sku 42 is out of stock")
    );
    let ok = events
        .iter()
        .find(|e| !e.error)
        .expect("the call that succeeded");
    assert!(ok.failure.is_none(), "{ok:?}");
}

#[test]
fn an_error_without_display_gives_its_type_only() {
    let (_, captured) = capture(|| {
        let _ = opaque(true);
        let _ = generic::<Opaque>(Err(Opaque));
        let _ = generic::<String>(Err("typed, but generic".into()));
    });
    let failure = captured
        .one("error_details::opaque")
        .failure
        .clone()
        .unwrap();
    assert_eq!(
        failure.exception_type.as_deref(),
        Some("error_details::Opaque")
    );
    assert_eq!(failure.exception_value, None);
    // In a generic function without a `Display` bound the message is not reachable; the type
    // still is, as the caller instantiated it.
    let generic = captured.named("error_details::generic");
    let types: Vec<_> = generic
        .iter()
        .map(|e| {
            e.failure
                .as_ref()
                .unwrap()
                .exception_type
                .as_deref()
                .unwrap()
        })
        .collect();
    assert_eq!(types, ["error_details::Opaque", "alloc::string::String"]);
}

#[test]
fn a_panic_gives_its_message() {
    let (_, captured) = capture(|| {
        let result = catch_unwind(AssertUnwindSafe(|| explode("the reactor")));
        assert!(result.is_err());
    });
    let event = captured.one("error_details::explode");
    let failure = event.failure.as_deref().expect("a failure");
    assert_eq!(failure.exception_type.as_deref(), Some("panic"));
    assert_eq!(
        failure.exception_value.as_deref(),
        Some("boom: the reactor")
    );
}

#[test]
fn long_messages_are_cut() {
    let (_, captured) = capture(|| {
        let _ = chatty();
    });
    let value = captured
        .one("error_details::chatty")
        .failure
        .as_ref()
        .and_then(|f| f.exception_value.clone())
        .unwrap();
    assert!(
        value.len() <= profilis::Failure::MAX_MESSAGE,
        "{}",
        value.len()
    );
    assert!(value.starts_with("xxxx") && value.ends_with('…'));
}

#[test]
fn async_errors_carry_their_message_too() {
    let (_, captured) = capture(|| {
        futures::executor::block_on(async {
            let _ = fetch(0).await;
            let _ = fetch(3).await;
        })
    });
    let failed = captured
        .named("error_details::fetch")
        .into_iter()
        .find(|e| e.error)
        .unwrap();
    assert_eq!(
        failed.failure.as_ref().unwrap().exception_value.as_deref(),
        Some("sku 7 is out of stock")
    );
}

#[test]
fn a_sink_that_wants_details_gets_the_failed_calls_and_fine_durations() {
    let (_, captured) = capture_details(|| {
        for sku in 0..10 {
            let _ = reserve(sku);
        }
    });
    let failed: Vec<_> = captured
        .errors
        .iter()
        .filter(|e| e.name() == "error_details::reserve")
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", captured.errors);
    assert_eq!(
        failed[0]
            .failure
            .as_ref()
            .unwrap()
            .exception_value
            .as_deref(),
        Some("sku 42 is out of stock")
    );
    assert_ne!(failed[0].trace_id.0, 0, "a trace id to find it by");
    let timed: u64 = captured
        .counts
        .iter()
        .filter(|c| c.site.name() == "error_details::reserve")
        .map(|c| c.latency.as_ref().expect("fine buckets").count())
        .sum();
    assert_eq!(timed, 10);
    assert!(
        captured
            .slow
            .iter()
            .any(|e| e.name() == "error_details::reserve"),
        "the first call of a site is the slowest so far"
    );
}

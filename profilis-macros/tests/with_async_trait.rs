//! `#[profiled]` with `#[async_trait]`, in both orders, on impl blocks and on methods: the
//! real async work is timed, not the boxing of the future.

use std::time::Duration;

use async_trait::async_trait;
use profilis::{profiled, Outcome};
use profilis_test_support::{capture_async, capture_multi_thread, ms};

#[async_trait]
trait Store: Send {
    async fn load(&self, key: u32) -> Result<String, String>;
    async fn touch(&mut self);
    async fn consume(self: Box<Self>) -> u32;
}

/// `#[async_trait]` runs first: `#[profiled]` sees the boxed future.
struct First {
    touched: u32,
}

#[async_trait]
#[profiled]
impl Store for First {
    async fn load(&self, key: u32) -> Result<String, String> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if key == 0 {
            return Err("missing".into());
        }
        let value: u32 = format!("{key}").parse().map_err(|_| "bad".to_string())?;
        Ok(format!("first {value} {}", self.touched))
    }

    async fn touch(&mut self) {
        self.touched += 1;
    }

    #[profiled(name = "first_consume")]
    async fn consume(self: Box<Self>) -> u32 {
        self.touched
    }
}

/// `#[profiled]` runs first: `#[async_trait]` boxes the instrumented `async fn`s.
struct Second {
    touched: u32,
}

#[profiled]
#[async_trait]
impl Store for Second {
    async fn load(&self, key: u32) -> Result<String, String> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if key == 0 {
            return Err("missing".into());
        }
        Ok(format!("second {key} {}", self.touched))
    }

    async fn touch(&mut self) {
        self.touched += 1;
    }

    #[profiled(skip)]
    async fn consume(self: Box<Self>) -> u32 {
        self.touched
    }
}

/// `#[profiled]` on a method of an `#[async_trait]` impl block.
struct Third;

#[async_trait]
impl Store for Third {
    #[profiled]
    async fn load(&self, key: u32) -> Result<String, String> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(format!("third {key}"))
    }

    async fn touch(&mut self) {}

    async fn consume(self: Box<Self>) -> u32 {
        0
    }
}

/// The value, whether `load(0)` failed, and the time from the first poll of `load(5)` to its
/// completion (the call must lie inside it).
async fn exercise(store: &mut (dyn Store + Send)) -> (String, bool, Duration) {
    let future = store.load(5);
    // Created but not yet polled: this wait is not part of the call.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let polled = std::time::Instant::now();
    let value = future.await.unwrap();
    let window = polled.elapsed();
    let failed = store.load(0).await.is_err();
    store.touch().await;
    (value, failed, window)
}

fn check_load(captured: &profilis::testing::Captured, name: &str, window: Duration) {
    let loads = captured.named(name);
    assert!(
        !loads.is_empty(),
        "no events named {name}: {:?}",
        captured.names()
    );
    let first = loads[0];
    assert!(first.dur_ns >= ms(10), "{name}: dur_ns = {}", first.dur_ns);
    assert!(
        u128::from(first.dur_ns) <= window.as_nanos() + u128::from(ms(1)),
        "{name}: dur_ns = {} is longer than the {window:?} from the first poll to completion: \
         it includes the wait before the first poll",
        first.dur_ns
    );
    assert!(!first.error);
    assert_eq!(first.outcome, Outcome::Returned);
    if let Some(second) = loads.get(1) {
        assert!(second.error, "{name}: Err is an error");
    }
}

#[test]
fn async_trait_first_times_the_async_work() {
    let ((value, failed, window, consumed), captured) = capture_async(async {
        let mut store = First { touched: 0 };
        let (value, failed, window) = exercise(&mut store).await;
        (value, failed, window, Box::new(store).consume().await)
    });
    assert_eq!(value, "first 5 0");
    assert!(failed);
    assert_eq!(consumed, 1);
    check_load(&captured, "with_async_trait::First::load", window);
    assert_eq!(captured.named("with_async_trait::First::load").len(), 2);
    captured.one("with_async_trait::First::touch");
    captured.one("first_consume");
}

#[test]
fn profiled_first_times_the_async_work() {
    let ((value, failed, window, consumed), captured) = capture_multi_thread(async {
        let mut store = Second { touched: 0 };
        let (value, failed, window) = exercise(&mut store).await;
        (value, failed, window, Box::new(store).consume().await)
    });
    assert_eq!(value, "second 5 0");
    assert!(failed);
    assert_eq!(consumed, 1);
    check_load(&captured, "with_async_trait::Second::load", window);
    captured.one("with_async_trait::Second::touch");
    assert!(captured
        .named("with_async_trait::Second::consume")
        .is_empty());
}

#[test]
fn profiled_method_inside_async_trait_impl() {
    let ((value, window), captured) = capture_async(async {
        let polled = std::time::Instant::now();
        let value = Third.load(1).await;
        (value, polled.elapsed())
    });
    assert_eq!(value.as_deref(), Ok("third 1"));
    // A method's own attribute cannot see the type.
    check_load(&captured, "with_async_trait::load", window);
}

#[test]
fn async_trait_futures_stay_send() {
    // Dropping the unpolled future records it as cancelled: not into another test's collector.
    let _no_collector = profilis::testing::lock();
    fn assert_send<T: Send>(_: &T) {}
    let store = First { touched: 0 };
    let future = store.load(1);
    assert_send(&future);
}

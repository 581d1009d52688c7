//! With `enabled` off, `#[profiled]` leaves items as written: they run, record nothing (no
//! site, no guard, no event, no count), and the methods' own `#[profiled]` attributes are
//! removed.
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use profilis::profiled;

#[profiled(name = "kept", sample = 0.5)]
fn add(a: u32, b: u32) -> Result<u32, ()> {
    Ok(a + b)
}

#[profiled]
async fn later() -> u32 {
    2
}

struct Cart(u32);

#[profiled(sample = 1)]
impl Cart {
    #[profiled(name = "cart_total")]
    fn total(&self) -> u32 {
        self.0
    }

    #[profiled(skip)]
    fn untouched(&self) -> u32 {
        self.0 + 1
    }
}

/// Polls a future that never waits.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future waited"),
    }
}

fn main() {
    let (sum, captured) = profilis::testing::capture(|| {
        let cart = Cart(add(1, 2).unwrap());
        cart.total() + cart.untouched() + ready(later())
    });
    assert_eq!(sum, 9);
    // Nothing was instrumented, so nothing was counted or recorded.
    assert!(captured.events.is_empty(), "{:?}", captured.names());
    assert!(captured.counts.is_empty());
    println!("compiled out: ok");
}

#[cfg(feature = "bad")]
#[profiled(sampel = 0.5)]
fn misspelled() {}

// Two on one item: an error with the instrumentation compiled out too.
#[cfg(feature = "bad")]
#[profiled]
#[profiled(sample = 0.5)]
fn twice() {}

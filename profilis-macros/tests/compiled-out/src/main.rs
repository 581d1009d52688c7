//! With `enabled` off, `#[profiled]` leaves items unchanged: no site, no guard, no event.
use profilis::profiled;

#[profiled(name = "kept", sample = 0.5)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

struct Cart(u32);

#[profiled]
impl Cart {
    fn total(&self) -> u32 {
        self.0
    }
    #[profiled(skip)]
    fn untouched(&self) -> u32 {
        self.0 + 1
    }
}

fn main() {
    let collector = profilis::Collector::start(
        profilis::CollectorConfig {
            enabled: Some(true),
            ..Default::default()
        },
        vec![],
    )
    .unwrap();
    let cart = Cart(add(1, 2));
    assert_eq!(cart.total() + cart.untouched(), 7);
    assert!(collector.shutdown());
    let stats = profilis::core::stats();
    // Nothing was instrumented, so nothing was offered to the collector.
    assert_eq!(stats.enqueued, 0, "{stats:?}");
    println!("compiled out: ok");
}

#[cfg(feature = "bad")]
#[profiled(sampel = 0.5)]
fn misspelled() {}

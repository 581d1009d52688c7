//! With the `enabled` feature off, `#[profiled]` leaves items as written: they run, record
//! nothing, and the methods' own `#[profiled]` attributes are removed.
#![cfg(not(feature = "enabled"))]

mod common;

use common::capture;
use profilis::profiled;

#[profiled(name = "disabled", sample = 0.5)]
fn plain(x: u32) -> Result<u32, ()> {
    Ok(x + 1)
}

#[profiled]
async fn later() -> u32 {
    2
}

struct Thing;

#[profiled(sample = 1)]
impl Thing {
    #[profiled(name = "thing_get")]
    fn get(&self) -> u32 {
        3
    }

    #[profiled(skip)]
    fn skipped(&self) -> u32 {
        4
    }
}

#[test]
fn items_run_unchanged_and_record_nothing() {
    let (sum, captured) = capture(|| {
        let later = futures::executor::block_on(later());
        plain(1).unwrap() + later + Thing.get() + Thing.skipped()
    });
    assert_eq!(sum, 11);
    assert!(captured.events.is_empty(), "{:?}", captured.names());
    assert!(captured.counts.is_empty());
}

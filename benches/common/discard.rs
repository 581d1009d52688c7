//! A sink for `benches/overhead.rs` and `benches/collector.rs`.

use std::hint::black_box;

use profilis::{Batch, Sink, SinkError};

/// A sink that wants every event and does nothing with it: what the collector drains when
/// only its own work counts.
pub struct Discard;

impl Sink for Discard {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        black_box(batch.events.len());
        Ok(())
    }
}

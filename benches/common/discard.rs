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

/// A sink that wants details (fine buckets, failed and slow calls) and no events: what the
/// dashboard asks of the hot path. (Only `overhead.rs` uses it.)
#[allow(dead_code)]
pub struct DiscardDetails;

impl Sink for DiscardDetails {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        black_box(batch.counts.len() + batch.errors.len() + batch.slow.len());
        Ok(())
    }

    fn wants_events(&self) -> bool {
        false
    }

    fn wants_details(&self) -> bool {
        true
    }
}

//! Events per second the JSONL sink writes to files in a temp directory: serialization into the
//! reused buffer, one `write_all` per batch, and size rotation (64 MiB files, the newest four
//! kept), as the collector hands it batches of 128 (its default `batch_max`) and 1024 events;
//! and what handing the same batches to the sink on its own thread (`NonBlocking`) costs the
//! collector's thread.
//!
//! `cargo bench --features jsonl --bench jsonl`. Figures go to BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use profilis::context::{SpanId, TraceId};
use profilis::{Batch, Event, JsonlConfig, JsonlSink, NonBlocking, Outcome, Sink, Site, Stats};

static SITE: Site = Site::function("shop::orders::price_order", None);

/// A typical FN event: inside a request (with a parent span).
fn event(i: u64) -> Event {
    Event {
        site: &SITE,
        ts_ns: 1_763_700_000_000_000_000 + i * 1_000,
        dur_ns: 12_345 + i % 1000,
        error: i.is_multiple_of(50),
        outcome: Outcome::Returned,
        trace_id: TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736 + u128::from(i / 16)),
        span_id: SpanId(0x00f0_67aa_0ba9_02b7 + i),
        parent_span_id: Some(SpanId(0x00f0_67aa_0ba9_0000 + i / 16)),
        detail: None,
        failure: None,
    }
}

fn jsonl(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("profilis-bench-jsonl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut group = c.benchmark_group("jsonl_sink");
    for size in [128usize, 1024] {
        let events: Vec<Event> = (0..size as u64).map(event).collect();
        let batch = Batch {
            events: &events,
            counts: &[],
            stats: Stats::default(),
            errors: &[],
            slow: &[],
        };
        let mut sink = JsonlSink::new(JsonlConfig::new(&dir).keep_files(4)).expect("temp dir");
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::new("write", size), |b| {
            b.iter(|| sink.write(black_box(&batch)).expect("write"));
        });
        sink.flush().expect("flush");
        // What the collector's thread pays for the same batch when the sink runs on a thread
        // of its own (as `Exporter::jsonl` runs it): the batch's copy, handed over. (A batch
        // that finds the sink's queue full is refused after the copy, at the same cost.)
        let mut sink = NonBlocking::new(
            JsonlSink::new(JsonlConfig::new(&dir).keep_files(4)).expect("temp dir"),
        )
        .expect("a thread");
        group.bench_function(BenchmarkId::new("handed_over", size), |b| {
            b.iter(|| black_box(sink.write(black_box(&batch))));
        });
        sink.flush().expect("flush");
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, jsonl);
criterion_main!(benches);

//! Names of the metrics the exporter adds to those of the kinds (whose names are part of each
//! [`Kind`](profilis_core::Kind): `profilis_function_calls_total` is
//! `profilis_core::FUNCTION.calls().name`).

/// Counter, no labels: events dropped because a queue was full.
pub const EVENTS_DROPPED_TOTAL: &str = "profilis_events_dropped_total";
/// Gauge, no labels: events queued in the collector.
pub const QUEUE_DEPTH: &str = "profilis_queue_depth";
/// Counter, no labels: sink writes that failed, and failed last flushes at shutdown.
pub const SINK_FAILURES_TOTAL: &str = "profilis_sink_failures_total";

/// Describes the collector's health metrics ([`EVENTS_DROPPED_TOTAL`], [`QUEUE_DEPTH`],
/// [`SINK_FAILURES_TOTAL`]) to the current `metrics` recorder: their help texts, for a page
/// scraped before the first batch as for any later one.
pub(crate) fn describe_health() {
    metrics::describe_counter!(
        EVENTS_DROPPED_TOTAL,
        "Events dropped because a queue was full"
    );
    metrics::describe_gauge!(QUEUE_DEPTH, "Events queued in the collector");
    metrics::describe_counter!(SINK_FAILURES_TOTAL, "Sink writes that failed");
}
/// Counter, no labels: active JSONL files rotated.
pub const JSONL_ROTATED_FILES_TOTAL: &str = "profilis_jsonl_rotated_files_total";
/// Counter, no labels: rotated JSONL files deleted by retention.
pub const JSONL_REMOVED_FILES_TOTAL: &str = "profilis_jsonl_removed_files_total";
/// Counter, no labels: JSONL lines dropped because the pending buffer was full, or because
/// they could not be written by the last flush at shutdown (counted before the exporter's
/// listener stops).
pub const JSONL_DROPPED_LINES_TOTAL: &str = "profilis_jsonl_dropped_lines_total";
/// Counter, no labels: textfile writes that failed (periodic ones and the last one when the
/// exporter's guard drops; see [`Exporter::textfile`](crate::Exporter::textfile)).
pub const TEXTFILE_FAILURES_TOTAL: &str = "profilis_textfile_failures_total";
/// Counter, no labels: pushes to a Pushgateway that failed when the exporter's guard dropped
/// (`Exporter::pushgateway`, feature `pushgateway`).
pub const PUSH_FAILURES_TOTAL: &str = "profilis_push_failures_total";

//! Names of the metrics the exporter adds to those of the kinds (whose names are part of each
//! [`Kind`](profilis_core::Kind): `profilis_function_calls_total` is
//! `profilis_core::FUNCTION.calls().name`).

/// Counter, no labels: events dropped because a queue was full.
pub const EVENTS_DROPPED_TOTAL: &str = "profilis_events_dropped_total";
/// Gauge, no labels: events queued in the collector.
pub const QUEUE_DEPTH: &str = "profilis_queue_depth";
/// Counter, no labels: sink writes that failed, and failed last flushes at shutdown.
pub const SINK_FAILURES_TOTAL: &str = "profilis_sink_failures_total";

/// Describes the exporter's health metrics ([`EVENTS_DROPPED_TOTAL`], [`QUEUE_DEPTH`],
/// [`SINK_FAILURES_TOTAL`], and the outputs' [`TEXTFILE_FAILURES_TOTAL`] and
/// [`PUSH_FAILURES_TOTAL`]) to the current `metrics` recorder: their help texts, for a page
/// scraped before the first batch as for any later one (a family without one fails
/// `promtool check metrics`). A text given for a family that is not on the page is not shown.
pub(crate) fn describe_health() {
    metrics::describe_counter!(
        EVENTS_DROPPED_TOTAL,
        "Events dropped because a queue was full"
    );
    metrics::describe_gauge!(QUEUE_DEPTH, "Events queued in the collector");
    metrics::describe_counter!(SINK_FAILURES_TOTAL, "Sink writes that failed");
    metrics::describe_counter!(TEXTFILE_FAILURES_TOTAL, "Textfile writes that failed");
    metrics::describe_counter!(
        PUSH_FAILURES_TOTAL,
        "Pushes to the Pushgateway that failed when the exporter stopped"
    );
}

/// Profilis's own families with no labels: facts of the process that writes them, which every
/// program writing a textfile would name the same way (see
/// [`Exporter::textfile`](crate::Exporter::textfile)).
pub(crate) const UNLABELLED: [&str; 8] = [
    EVENTS_DROPPED_TOTAL,
    QUEUE_DEPTH,
    SINK_FAILURES_TOTAL,
    JSONL_ROTATED_FILES_TOTAL,
    JSONL_REMOVED_FILES_TOTAL,
    JSONL_DROPPED_LINES_TOTAL,
    TEXTFILE_FAILURES_TOTAL,
    PUSH_FAILURES_TOTAL,
];
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

// The process metrics (`Exporter::process_metrics`), with the names of the Prometheus client
// guidelines; each is left out where the operating system does not give it.

/// Counter (fractional), no labels: CPU time used by the process, user and system, in seconds.
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
/// Gauge, no labels: resident memory of the process, in bytes.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
/// Gauge, no labels: virtual memory of the process, in bytes.
pub const PROCESS_VIRTUAL_MEMORY_BYTES: &str = "process_virtual_memory_bytes";
/// Gauge, no labels: the most virtual memory the process may have, in bytes (`+Inf` without a
/// limit).
pub const PROCESS_VIRTUAL_MEMORY_MAX_BYTES: &str = "process_virtual_memory_max_bytes";
/// Gauge, no labels: file descriptors the process has open.
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
/// Gauge, no labels: the most file descriptors the process may open (`+Inf` without a limit).
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
/// Gauge, no labels: when the process started, in seconds since the Unix epoch.
pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";
/// Gauge, no labels: operating system threads of the process.
pub const PROCESS_THREADS: &str = "process_threads";

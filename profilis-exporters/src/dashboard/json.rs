//! The JSON of `/metrics.json`, `/errors.json` and `/slowest.json`, as the dashboard's
//! contract gives it (Python profilis's keys where the meaning is the same).

use profilis_core::{Event, Outcome, Stats, Value};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::store::{RowSummary, Summary, Tally};
use super::Window;
use crate::labels::GlobalLabels;

/// Nanoseconds as milliseconds (to the nanosecond: a fast function takes well under one
/// microsecond).
fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// `x` to three decimals: rates and percentages need no more.
fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

#[derive(serde::Serialize)]
struct MetricsJson<'a> {
    service: &'a str,
    instance: &'a str,
    worker: &'a str,
    now_ms: u64,
    window_s: u64,
    covered_s: f64,
    refresh_ms: u64,
    rps: f64,
    error_pct: f64,
    p50: Option<f64>,
    p95: Option<f64>,
    spark: &'a [u64],
    totals: Figures,
    pipeline: Pipeline,
    rows: Vec<Row<'a>>,
}

/// Calls, errors, rates and percentiles of a row or of the whole process.
#[derive(serde::Serialize)]
struct Figures {
    calls: u64,
    errors: u64,
    rps: f64,
    error_pct: f64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
}

impl Figures {
    fn of(tally: &Tally, covered_s: f64) -> Figures {
        let quantile = |q| tally.latency.quantile_ns(q).map(ms);
        Figures {
            calls: tally.calls,
            errors: tally.errors,
            rps: if covered_s > 0.0 {
                round3(tally.calls as f64 / covered_s)
            } else {
                0.0
            },
            error_pct: if tally.calls > 0 {
                round3(tally.errors as f64 * 100.0 / tally.calls as f64)
            } else {
                0.0
            },
            p50_ms: quantile(0.5),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
            max_ms: tally.latency.max_ns().map(ms),
        }
    }
}

#[derive(serde::Serialize)]
struct Pipeline {
    enqueued: u64,
    processed: u64,
    dropped: u64,
    queue_depth: u64,
    sink_failures: u64,
}

impl From<Stats> for Pipeline {
    fn from(s: Stats) -> Pipeline {
        Pipeline {
            enqueued: s.enqueued,
            processed: s.processed,
            dropped: s.dropped,
            queue_depth: s.queue_depth,
            sink_failures: s.sink_failures,
        }
    }
}

#[derive(serde::Serialize)]
struct Row<'a> {
    kind: &'static str,
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    statuses: Option<Statuses<'a>>,
    #[serde(flatten)]
    figures: Figures,
    spark: &'a [u64],
}

impl<'a> Row<'a> {
    fn of(row: &'a RowSummary, covered_s: f64) -> Row<'a> {
        Row {
            kind: row.kind.name(),
            name: row.name,
            statuses: row.statuses.as_deref().map(Statuses),
            figures: Figures::of(&row.tally, covered_s),
            spark: &row.spark,
        }
    }
}

/// Calls per status, as an object (`{"200": 100, "500": 3}`).
struct Statuses<'a>(&'a [(&'static str, u64)]);

impl Serialize for Statuses<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (status, calls) in self.0 {
            map.serialize_entry(status, calls)?;
        }
        map.end()
    }
}

/// `/metrics.json`.
pub(super) fn metrics(summary: &Summary, labels: &GlobalLabels, refresh_ms: u64) -> Vec<u8> {
    let covered_s = summary.covered_ms as f64 / 1000.0;
    let totals = Figures::of(&summary.totals, covered_s);
    let json = MetricsJson {
        service: &labels.service,
        instance: &labels.instance,
        worker: &labels.worker,
        now_ms: summary.now_ms,
        window_s: summary.window.seconds(),
        covered_s,
        refresh_ms,
        rps: totals.rps,
        error_pct: totals.error_pct,
        p50: totals.p50_ms,
        p95: totals.p95_ms,
        spark: &summary.spark,
        pipeline: summary.stats.into(),
        rows: summary
            .rows
            .iter()
            .map(|row| Row::of(row, covered_s))
            .collect(),
        totals,
    };
    to_vec(&json)
}

fn to_vec(value: &impl Serialize) -> Vec<u8> {
    // Writing these types to memory cannot fail: every key is a string, every number finite.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// What an error and a slow call share: where, when, how long, and their trace.
#[derive(serde::Serialize)]
struct Call<'a> {
    ts_ns: u64,
    kind: &'static str,
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exception_type: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exception_value: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    status: Option<u64>,
    route: Option<&'a str>,
    query: Option<&'a str>,
    dur_ms: f64,
    trace_id: String,
    span_id: String,
}

impl<'a> Call<'a> {
    fn of(event: &'a Event) -> Call<'a> {
        let text = |key| match event.field(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        };
        Call {
            ts_ns: event.ts_ns,
            kind: event.kind().name(),
            name: event.site.label(),
            exception_type: None,
            exception_value: None,
            outcome: None,
            status: match event.field("status") {
                Some(Value::U64(n)) => Some(n),
                Some(Value::Str(s)) => s.parse().ok(),
                None => None,
            },
            route: text("route"),
            query: text("query"),
            dur_ms: ms(event.dur_ns),
            trace_id: event.trace_id.to_hex(),
            span_id: event.span_id.to_hex(),
        }
    }

    /// With the error's keys: its type, message and how the call ended.
    fn failed(event: &'a Event) -> Call<'a> {
        let failure = event.failure.as_deref();
        Call {
            // A panic is a panic even when its message was not captured.
            exception_type: Some(
                failure
                    .and_then(|f| f.exception_type.as_deref())
                    .or((event.outcome == Outcome::Panicked).then_some("panic")),
            ),
            exception_value: Some(failure.and_then(|f| f.exception_value.as_deref())),
            outcome: Some(match event.outcome {
                Outcome::Returned => "returned",
                Outcome::Panicked => "panicked",
                Outcome::Cancelled => "cancelled",
            }),
            ..Call::of(event)
        }
    }
}

#[derive(serde::Serialize)]
struct ErrorsJson<'a> {
    total: u64,
    kept: usize,
    errors: Vec<Call<'a>>,
}

/// `/errors.json`: `errors` newest first.
pub(super) fn errors(total: u64, kept: usize, errors: &[Event]) -> Vec<u8> {
    to_vec(&ErrorsJson {
        total,
        kept,
        errors: errors.iter().map(Call::failed).collect(),
    })
}

#[derive(serde::Serialize)]
struct SlowestJson<'a> {
    window_s: u64,
    slowest: Vec<Call<'a>>,
}

/// `/slowest.json`: `slowest` slowest first.
pub(super) fn slowest(window: Window, slowest: &[Event]) -> Vec<u8> {
    to_vec(&SlowestJson {
        window_s: window.seconds(),
        slowest: slowest.iter().map(Call::of).collect(),
    })
}

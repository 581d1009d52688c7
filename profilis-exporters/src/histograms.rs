//! Function-duration histograms kept as bucket counts and rendered beside the recorder's output.
//!
//! `metrics-exporter-prometheus` takes histogram samples one at a time and keeps each until its
//! upkeep, so feeding it one sample per call would cost the collector work (and memory) in
//! proportion to the calls made. Profiled calls already arrive filed in the histogram's own
//! buckets (`CallCount::durations`), so the exporter adds the bucket totals up here, at a cost
//! per flush that depends on the number of functions, not of calls, and exact.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use metrics_exporter_prometheus::formatting::{
    sanitize_label_key, sanitize_label_value, write_help_line, write_type_line,
};
use profilis_core::metric_names::FUNCTION_DURATION_SECONDS;
use profilis_core::{CallCount, GlobalLabels, SiteKind};

#[derive(Default)]
struct Series {
    /// Calls per bucket (not cumulative), the last one `+Inf`.
    counts: Vec<u64>,
    sum_ns: u128,
}

/// `profilis_function_duration_seconds`, one series per label set.
#[derive(Default)]
pub(crate) struct FunctionHistograms {
    /// Bucket bounds in seconds (without `+Inf`).
    bounds: Vec<f64>,
    /// Keyed by the rendered label set, so output order is stable.
    series: Mutex<BTreeMap<String, Series>>,
}

impl FunctionHistograms {
    pub(crate) fn new(bounds: Vec<f64>) -> FunctionHistograms {
        FunctionHistograms {
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds the timed calls of a batch's counts.
    pub(crate) fn add(&self, labels: &GlobalLabels, counts: &[CallCount]) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for count in counts {
            let timed = count.durations.iter().any(|b| b.count > 0);
            if count.site.kind() != SiteKind::Function || !timed {
                continue;
            }
            let key = label_set(labels, count.site.name());
            let entry = series.entry(key).or_default();
            entry.counts.resize(self.bounds.len() + 1, 0);
            for (total, bucket) in entry.counts.iter_mut().zip(&count.durations) {
                *total += bucket.count;
            }
            entry.sum_ns += count
                .durations
                .iter()
                .map(|b| u128::from(b.sum_ns))
                .sum::<u128>();
        }
    }

    /// Appends the family in the Prometheus text format (nothing if no call was timed yet).
    pub(crate) fn render_into(&self, out: &mut String) {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if series.is_empty() {
            return;
        }
        let name = FUNCTION_DURATION_SECONDS;
        write_help_line(out, name, None, None, "Function call duration");
        write_type_line(out, name, None, None, "histogram");
        for (labels, s) in series.iter() {
            let mut cumulative = 0;
            for (i, count) in s.counts.iter().enumerate() {
                cumulative += count;
                match self.bounds.get(i) {
                    Some(le) => writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}"),
                    None => writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}"),
                }
                .expect("writing to a String");
            }
            let sum = s.sum_ns as f64 / 1e9;
            writeln!(out, "{name}_sum{{{labels}}} {sum}").expect("writing to a String");
            writeln!(out, "{name}_count{{{labels}}} {cumulative}").expect("writing to a String");
        }
        out.push('\n');
    }
}

fn label_set(labels: &GlobalLabels, function: &str) -> String {
    [
        ("service", labels.service.as_str()),
        ("instance", labels.instance.as_str()),
        ("worker", labels.worker.as_str()),
        ("function", function),
    ]
    .iter()
    .map(|(k, v)| format!("{}=\"{}\"", sanitize_label_key(k), sanitize_label_value(v)))
    .collect::<Vec<_>>()
    .join(",")
}

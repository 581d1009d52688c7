//! Duration histograms kept as bucket counts and rendered beside the recorder's output.
//!
//! `metrics-exporter-prometheus` takes histogram samples one at a time and keeps each until its
//! upkeep, so feeding it one sample per call would cost the collector work (and memory) in
//! proportion to the calls made. Calls, requests and queries already arrive filed in the
//! histogram's own buckets (`CallCount::durations`), so the exporter adds the bucket totals up
//! here, at a cost per flush that depends on the number of series, not of calls, and exact.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use metrics_exporter_prometheus::formatting::{
    sanitize_label_key, sanitize_label_value, write_help_line, write_type_line,
};
use profilis_core::CallCount;

use crate::labels::GlobalLabels;

#[derive(Default)]
struct Series {
    /// Calls per bucket (not cumulative), the last one `+Inf`, with their bounds.
    counts: Vec<(f64, u64)>,
    sum_ns: u128,
}

/// One family: its help text, and its series by rendered label set.
type Family = (&'static str, BTreeMap<String, Series>);

/// The duration families of the kinds, one series per label set.
#[derive(Default)]
pub(crate) struct Histograms {
    /// By family name; sorted, so the output order is stable.
    families: Mutex<BTreeMap<&'static str, Family>>,
}

impl Histograms {
    /// Adds the timed calls of a batch's counts.
    pub(crate) fn add(&self, labels: &GlobalLabels, counts: &[CallCount]) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        for count in counts {
            if count.durations.iter().all(|b| b.count == 0) {
                continue;
            }
            let duration = count.site.kind().duration();
            let (_, series) = families
                .entry(duration.name)
                .or_insert_with(|| (duration.help, BTreeMap::new()));
            let entry = series.entry(label_set(labels, count)).or_default();
            if entry.counts.is_empty() {
                entry.counts = count.durations.iter().map(|b| (b.le, 0)).collect();
            }
            for (total, bucket) in entry.counts.iter_mut().zip(&count.durations) {
                total.1 += bucket.count;
            }
            entry.sum_ns += count
                .durations
                .iter()
                .map(|b| u128::from(b.sum_ns))
                .sum::<u128>();
        }
    }

    /// Appends the families in the Prometheus text format (those with a timed call).
    pub(crate) fn render_into(&self, out: &mut String) {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        for (name, (help, series)) in families.iter() {
            write_help_line(out, name, None, None, help);
            write_type_line(out, name, None, None, "histogram");
            for (labels, s) in series {
                let mut cumulative = 0;
                for (le, count) in &s.counts {
                    cumulative += count;
                    let le = if le.is_finite() {
                        le.to_string()
                    } else {
                        "+Inf".to_owned()
                    };
                    writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}")
                        .expect("writing to a String");
                }
                let sum = s.sum_ns as f64 / 1e9;
                writeln!(out, "{name}_sum{{{labels}}} {sum}").expect("writing to a String");
                writeln!(out, "{name}_count{{{labels}}} {cumulative}")
                    .expect("writing to a String");
            }
            out.push('\n');
        }
    }
}

fn label_set(labels: &GlobalLabels, count: &CallCount) -> String {
    labels
        .for_site(count.site)
        .map(|(k, v)| format!("{}=\"{}\"", sanitize_label_key(k), sanitize_label_value(v)))
        .collect::<Vec<_>>()
        .join(",")
}

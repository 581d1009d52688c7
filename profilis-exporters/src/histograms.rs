//! The duration histograms of the kinds, kept as bucket counts and rendered with the
//! recorder's families.
//!
//! Calls, requests and queries arrive filed in the histogram's own buckets
//! (`CallCount::durations`), so the exporter adds the bucket totals up here, at a cost per
//! flush that depends on the number of series, not of calls, and exact (the sum in whole
//! nanoseconds), rather than recording one sample per call through `metrics`.
//!
//! Each bucket of a series also keeps its latest exemplar: a timed call (from the core's
//! exemplar and slow-call candidates) whose duration lies within the bucket, with its trace
//! id, for OpenMetrics pages. One per bucket at most, so memory follows the series, not the
//! calls.

use std::collections::BTreeMap;
use std::sync::Mutex;

use profilis_core::{CallCount, Event};

use crate::labels::GlobalLabels;
use crate::text_format::{self, Exemplar, HistogramSample, Page, Sample};

#[derive(Default)]
struct Series {
    /// Calls per bucket (not cumulative), the last one `+Inf`, with their bounds.
    counts: Vec<(f64, u64)>,
    sum_ns: u128,
    /// The latest exemplar of each bucket (empty until the first one).
    exemplars: Vec<Option<Exemplar>>,
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

    /// Keeps `calls` (timed calls with their trace ids) as exemplars of the buckets their
    /// durations fall in: for each bucket of a series, the call that started last. A call
    /// without a trace id, or whose series has no timed call counted yet, is left out.
    pub(crate) fn add_exemplars<'a>(
        &self,
        labels: &GlobalLabels,
        calls: impl IntoIterator<Item = &'a Event>,
    ) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        for call in calls {
            if call.trace_id.0 == 0 {
                continue;
            }
            let Some((_, series)) = families.get_mut(call.site.kind().duration().name) else {
                continue;
            };
            let Some(entry) = series.get_mut(&text_format::label_set(labels.for_site(call.site)))
            else {
                continue;
            };
            let value = call.dur_ns as f64 / 1e9;
            // The first bucket whose bound is at least the value: the last is `+Inf`.
            let Some(bucket) = entry.counts.iter().position(|&(le, _)| value <= le) else {
                continue;
            };
            if entry.exemplars.len() != entry.counts.len() {
                entry.exemplars = vec![None; entry.counts.len()];
            }
            let exemplar = Exemplar {
                trace_id: call.trace_id.0,
                value,
                timestamp: call.ts_ns as f64 / 1e9,
            };
            let slot = &mut entry.exemplars[bucket];
            if slot.is_none_or(|kept| kept.timestamp <= exemplar.timestamp) {
                *slot = Some(exemplar);
            }
        }
    }

    /// Puts the families (those with a timed call) on `page`, with their kinds' help texts,
    /// unit (seconds) and exemplars.
    pub(crate) fn add_to(&self, page: &mut Page) {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        for (name, (help, series)) in families.iter() {
            for (labels, s) in series {
                let sample = HistogramSample {
                    buckets: s.counts.clone(),
                    sum: s.sum_ns as f64 / 1e9,
                };
                page.add(name, labels.clone(), Sample::Histogram(sample));
                if !s.exemplars.is_empty() {
                    page.exemplars(name, labels, s.exemplars.clone());
                }
            }
            page.help(name, help);
            page.unit(name, "seconds");
        }
    }
}

fn label_set(labels: &GlobalLabels, count: &CallCount) -> String {
    text_format::label_set(labels.for_site(count.site))
}

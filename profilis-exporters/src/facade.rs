//! The facade sink: turns batches into the metrics of each kind ([`Kind::calls`],
//! [`Kind::errors`], [`Kind::duration`], [`Kind::in_flight`]) and the collector's health,
//! through the `metrics` crate, with handles cached per site (no registry lookup per count).

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Label, Recorder, Unit};
use profilis_core::{in_flight, kinds, Batch, Kind, Sink, SinkError, Site};

use crate::labels::GlobalLabels;
use crate::metric_names as names;

/// The handles of one site, made on its first count.
struct SiteHandles {
    calls: Counter,
    /// Kinds with an error counter: failed calls.
    errors: Option<Counter>,
    /// `None` without histograms (never registered, so never rendered empty).
    duration: Option<Histogram>,
}

/// Records batches as `metrics` counters, histograms and gauges.
///
/// Calls are counted from the batch's exact counts (sampled-out ones included) and timed from
/// its bucket totals: the calls of each bucket are recorded at their mean duration, which keeps
/// every bucket count and the sum exact for histograms with the same buckets as the
/// collector's. It needs no individual events. The collector's health is recorded as
/// `profilis_events_dropped_total`, `profilis_queue_depth` and `profilis_sink_failures_total`,
/// and the calls under way of each kind with an in-flight gauge (HTTP requests being served,
/// `profilis_http_requests_in_flight`) as that gauge.
pub struct FacadeSink {
    labels: GlobalLabels,
    /// Whether durations go to the duration histograms through `metrics`.
    histograms: bool,
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    sites: Vec<Option<SiteHandles>>,
    health: Option<Health>,
}

struct Health {
    dropped: Counter,
    depth: Gauge,
    failures: Counter,
    /// The in-flight gauge of each kind that has one, for the kinds described so far.
    in_flight: Vec<(&'static Kind, Gauge)>,
    /// Kinds described so far: every kind known at the first batch, then each kind when its
    /// first call is counted.
    described: Vec<&'static Kind>,
}

impl FacadeSink {
    /// A sink that records into the global `metrics` recorder.
    pub fn new(labels: GlobalLabels) -> FacadeSink {
        FacadeSink {
            labels,
            histograms: true,
            recorder: None,
            sites: Vec::new(),
            health: None,
        }
    }

    /// A sink that records into `recorder` instead of the global one (tests, embedding).
    pub fn with_recorder(
        labels: GlobalLabels,
        recorder: Arc<dyn Recorder + Send + Sync>,
    ) -> FacadeSink {
        FacadeSink {
            recorder: Some(recorder),
            ..FacadeSink::new(labels)
        }
    }

    /// Leaves the duration histograms to the caller, who reads the bucket totals of
    /// [`CallCount::durations`](profilis_core::CallCount::durations) itself (the Prometheus
    /// exporter does: it keeps them as bucket counts rather than one sample per call).
    /// Counters are still recorded.
    pub fn without_histograms(mut self) -> FacadeSink {
        self.histograms = false;
        self
    }

    /// Runs `f` with this sink's recorder as the current one.
    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.recorder {
            Some(recorder) => metrics::with_local_recorder(recorder.as_ref(), f),
            None => f(),
        }
    }

    /// The health handles, made (and the metrics described) on the first batch.
    fn health(&mut self) -> &mut Health {
        if self.health.is_none() {
            let health = self.with(|| {
                names::describe_health();
                Health {
                    dropped: metrics::counter!(names::EVENTS_DROPPED_TOTAL),
                    depth: metrics::gauge!(names::QUEUE_DEPTH),
                    failures: metrics::counter!(names::SINK_FAILURES_TOTAL),
                    in_flight: Vec::new(),
                    described: Vec::new(),
                }
            });
            self.health = Some(health);
            self.describe(&kinds());
        }
        self.health.as_mut().expect("just made")
    }

    /// Describes the metrics of `new` kinds, and makes their in-flight gauges.
    fn describe(&mut self, new: &[&'static Kind]) {
        let global: Vec<Label> = self
            .labels
            .pairs()
            .iter()
            .map(|&(k, v)| Label::new(k, v.to_owned()))
            .collect();
        let gauges = self.with(|| {
            let mut gauges = Vec::new();
            for &kind in new {
                let calls = kind.calls();
                metrics::describe_counter!(calls.name, calls.help);
                if let Some(errors) = kind.errors() {
                    metrics::describe_counter!(errors.name, errors.help);
                }
                let duration = kind.duration();
                metrics::describe_histogram!(duration.name, Unit::Seconds, duration.help);
                if let Some(gauge) = kind.in_flight() {
                    metrics::describe_gauge!(gauge.name, gauge.help);
                    gauges.push((kind, metrics::gauge!(gauge.name, global.clone())));
                }
            }
            gauges
        });
        if let Some(health) = &mut self.health {
            health.in_flight.extend(gauges);
            health.described.extend_from_slice(new);
        }
    }

    /// The handles of `site`, made (with its kind's metric names and labels) on first use.
    fn site(&mut self, site: &'static Site, id: usize) -> &SiteHandles {
        if self.sites.len() <= id {
            self.sites.resize_with(id + 1, || None);
        }
        if self.sites[id].is_none() {
            // The first site of a kind first used after the first batch: describe the kind.
            let kind = site.kind();
            if self
                .health
                .as_ref()
                .is_some_and(|h| !h.described.contains(&kind))
            {
                self.describe(&[kind]);
            }
            let labels: Vec<Label> = self
                .labels
                .for_site(site)
                .map(|(k, v)| Label::new(k, v.to_owned()))
                .collect();
            let histograms = self.histograms;
            let handles = self.with(|| SiteHandles {
                calls: metrics::counter!(kind.calls().name, labels.clone()),
                errors: kind
                    .errors()
                    .map(|errors| metrics::counter!(errors.name, labels.clone())),
                duration: histograms.then(|| metrics::histogram!(kind.duration().name, labels)),
            });
            self.sites[id] = Some(handles);
        }
        self.sites[id].as_ref().expect("just filled")
    }
}

impl Sink for FacadeSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        self.health();
        for count in batch.counts {
            let handles = self.site(count.site, count.site.id() as usize);
            handles.calls.increment(count.calls);
            if let Some(errors) = &handles.errors {
                errors.increment(count.errors);
            }
            let Some(duration) = &handles.duration else {
                continue;
            };
            // Each bucket's calls at their mean duration: the same buckets and the same sum
            // as recording every call.
            for bucket in count.durations.iter().filter(|b| b.count > 0) {
                let mean = bucket.sum_ns as f64 / bucket.count as f64 / 1e9;
                duration.record_many(mean, bucket.count as usize);
            }
        }
        if let Some(health) = &self.health {
            health.dropped.absolute(batch.stats.dropped);
            health.depth.set(batch.stats.queue_depth as f64);
            health.failures.absolute(batch.stats.sink_failures);
            for (kind, gauge) in &health.in_flight {
                gauge.set(in_flight(kind) as f64);
            }
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "facade"
    }

    fn wants_events(&self) -> bool {
        false
    }
}

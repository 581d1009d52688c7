//! The facade sink: turns batches into the metrics of the profilis contract through the
//! `metrics` crate, with handles cached per site (no registry lookup per event).

use std::collections::HashMap;
use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Label, Recorder, Unit};

use crate::error::SinkError;
use crate::event::{Detail, Event};
use crate::sink::{Batch, Sink};
use crate::site::{Site, SiteKind};

/// Names of the metrics profilis records (the contract shared with Python profilis).
pub mod metric_names {
    /// Counter {service, instance, worker, route, status}.
    pub const HTTP_REQUESTS_TOTAL: &str = "profilis_http_requests_total";
    /// Histogram {service, instance, worker, route, status}.
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "profilis_http_request_duration_seconds";
    /// Counter {service, instance, worker, function}.
    pub const FUNCTION_CALLS_TOTAL: &str = "profilis_function_calls_total";
    /// Counter {service, instance, worker, function}: calls that returned `Err` or panicked.
    pub const FUNCTION_ERRORS_TOTAL: &str = "profilis_function_errors_total";
    /// Histogram {service, instance, worker, function}.
    pub const FUNCTION_DURATION_SECONDS: &str = "profilis_function_duration_seconds";
    /// Counter {service, instance, worker, db_vendor}.
    pub const DB_QUERIES_TOTAL: &str = "profilis_db_queries_total";
    /// Histogram {service, instance, worker, db_vendor}.
    pub const DB_QUERY_DURATION_SECONDS: &str = "profilis_db_query_duration_seconds";
    /// Counter, no labels.
    pub const EVENTS_DROPPED_TOTAL: &str = "profilis_events_dropped_total";
    /// Gauge, no labels.
    pub const QUEUE_DEPTH: &str = "profilis_queue_depth";
    /// Counter, no labels: sink writes that failed.
    pub const SINK_FAILURES_TOTAL: &str = "profilis_sink_failures_total";
}

use metric_names as names;

/// The labels every profilis series carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalLabels {
    /// `service`: the application.
    pub service: String,
    /// `instance`: the host.
    pub instance: String,
    /// `worker`: the process.
    pub worker: String,
}

struct FnHandles {
    calls: Counter,
    errors: Counter,
    /// `None` without function histograms (never registered, so never rendered empty).
    duration: Option<Histogram>,
}

struct Pair {
    total: Counter,
    duration: Histogram,
}

/// Records batches as `metrics` counters, histograms and gauges.
///
/// Function calls are counted from the batch's exact counts (sampled-out calls included) and
/// timed from its bucket totals: the calls of each bucket are recorded at their mean duration,
/// which keeps every bucket count and the sum exact for histograms with the same buckets as
/// the collector's `duration_buckets`. It needs no individual FN events. The collector's health is recorded as `profilis_events_dropped_total`,
/// `profilis_queue_depth` and `profilis_sink_failures_total`.
pub struct FacadeSink {
    labels: GlobalLabels,
    /// Whether function durations go to `profilis_function_duration_seconds` through `metrics`.
    function_histograms: bool,
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    functions: Vec<Option<FnHandles>>,
    http: HashMap<(Arc<str>, u16), Pair>,
    db: HashMap<Arc<str>, Pair>,
    health: Option<(Counter, Gauge, Counter)>,
}

impl FacadeSink {
    /// A sink that records into the global `metrics` recorder.
    pub fn new(labels: GlobalLabels) -> FacadeSink {
        FacadeSink {
            labels,
            function_histograms: true,
            recorder: None,
            functions: Vec::new(),
            http: HashMap::new(),
            db: HashMap::new(),
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

    /// Leaves `profilis_function_duration_seconds` to the caller, who reads the bucket totals
    /// of [`crate::CallCount::durations`] itself (the Prometheus exporter does: it keeps them
    /// as bucket counts rather than one sample per call). Counters are still recorded.
    pub fn without_function_histograms(mut self) -> FacadeSink {
        self.function_histograms = false;
        self
    }

    /// Runs `f` with this sink's recorder as the current one.
    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.recorder {
            Some(recorder) => metrics::with_local_recorder(recorder.as_ref(), f),
            None => f(),
        }
    }

    fn base(&self) -> Vec<Label> {
        vec![
            Label::new("service", self.labels.service.clone()),
            Label::new("instance", self.labels.instance.clone()),
            Label::new("worker", self.labels.worker.clone()),
        ]
    }

    fn describe(&self) {
        self.with(|| {
            metrics::describe_counter!(
                names::FUNCTION_CALLS_TOTAL,
                "Total function calls (profiled)"
            );
            metrics::describe_counter!(
                names::FUNCTION_ERRORS_TOTAL,
                "Profiled calls that returned Err or panicked"
            );
            metrics::describe_histogram!(
                names::FUNCTION_DURATION_SECONDS,
                Unit::Seconds,
                "Function call duration"
            );
            metrics::describe_counter!(names::HTTP_REQUESTS_TOTAL, "Total HTTP requests");
            metrics::describe_histogram!(
                names::HTTP_REQUEST_DURATION_SECONDS,
                Unit::Seconds,
                "HTTP request duration"
            );
            metrics::describe_counter!(names::DB_QUERIES_TOTAL, "Total DB queries");
            metrics::describe_histogram!(
                names::DB_QUERY_DURATION_SECONDS,
                Unit::Seconds,
                "DB query duration"
            );
            metrics::describe_counter!(
                names::EVENTS_DROPPED_TOTAL,
                "Events dropped because a queue was full"
            );
            metrics::describe_gauge!(names::QUEUE_DEPTH, "Events queued in the collector");
            metrics::describe_counter!(names::SINK_FAILURES_TOTAL, "Sink writes that failed");
        });
    }

    fn function(&mut self, site: &'static Site) -> &FnHandles {
        let id = site.id() as usize;
        if self.functions.len() <= id {
            self.functions.resize_with(id + 1, || None);
        }
        if self.functions[id].is_none() {
            let mut labels = self.base();
            labels.push(Label::new("function", site.name()));
            let with_histogram = self.function_histograms;
            let handles = self.with(|| FnHandles {
                calls: metrics::counter!(names::FUNCTION_CALLS_TOTAL, labels.clone()),
                errors: metrics::counter!(names::FUNCTION_ERRORS_TOTAL, labels.clone()),
                duration: with_histogram
                    .then(|| metrics::histogram!(names::FUNCTION_DURATION_SECONDS, labels)),
            });
            self.functions[id] = Some(handles);
        }
        self.functions[id].as_ref().expect("just filled")
    }

    fn record_event(&mut self, event: &Event) {
        let seconds = event.dur_ns as f64 / 1e9;
        match &event.detail {
            // Timed from the batch's bucket totals, which include every timed call.
            Detail::Fn => {}
            Detail::Http(http) => {
                let key = (http.route.clone(), http.status);
                if !self.http.contains_key(&key) {
                    let mut labels = self.base();
                    labels.push(Label::new("route", http.route.to_string()));
                    labels.push(Label::new("status", http.status.to_string()));
                    let pair = self.with(|| Pair {
                        total: metrics::counter!(names::HTTP_REQUESTS_TOTAL, labels.clone()),
                        duration: metrics::histogram!(names::HTTP_REQUEST_DURATION_SECONDS, labels),
                    });
                    self.http.insert(key.clone(), pair);
                }
                let pair = &self.http[&key];
                pair.total.increment(1);
                pair.duration.record(seconds);
            }
            Detail::Db(db) => {
                if !self.db.contains_key(&db.vendor) {
                    let mut labels = self.base();
                    labels.push(Label::new("db_vendor", db.vendor.to_string()));
                    let pair = self.with(|| Pair {
                        total: metrics::counter!(names::DB_QUERIES_TOTAL, labels.clone()),
                        duration: metrics::histogram!(names::DB_QUERY_DURATION_SECONDS, labels),
                    });
                    self.db.insert(db.vendor.clone(), pair);
                }
                let pair = &self.db[&db.vendor];
                pair.total.increment(1);
                pair.duration.record(seconds);
            }
        }
    }
}

impl Sink for FacadeSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        if self.health.is_none() {
            self.describe();
            self.health = Some(self.with(|| {
                (
                    metrics::counter!(names::EVENTS_DROPPED_TOTAL),
                    metrics::gauge!(names::QUEUE_DEPTH),
                    metrics::counter!(names::SINK_FAILURES_TOTAL),
                )
            }));
        }
        for count in batch.counts {
            if count.site.kind() != SiteKind::Function {
                continue;
            }
            let handles = self.function(count.site);
            handles.calls.increment(count.calls);
            handles.errors.increment(count.errors);
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
        for event in batch.events {
            self.record_event(event);
        }
        if let Some((dropped, depth, failures)) = &self.health {
            dropped.absolute(batch.stats.dropped);
            depth.set(batch.stats.queue_depth as f64);
            failures.absolute(batch.stats.sink_failures);
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

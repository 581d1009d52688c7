//! The facade sink: turns batches into the metrics of the profilis contract through the
//! `metrics` crate, with handles cached per site (no registry lookup per event).

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Label, Recorder, Unit};

use crate::error::SinkError;
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
    /// Gauge {service, instance, worker}: HTTP requests being served.
    pub const HTTP_REQUESTS_IN_FLIGHT: &str = "profilis_http_requests_in_flight";
    /// Counter {service, instance, worker, db_vendor}.
    pub const DB_QUERIES_TOTAL: &str = "profilis_db_queries_total";
    /// Counter {service, instance, worker, db_vendor}: queries that failed.
    pub const DB_QUERY_ERRORS_TOTAL: &str = "profilis_db_query_errors_total";
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

/// The metric names of one kind of site: the call counter, the error counter (none for HTTP:
/// failures show in the `status` label), the duration histogram and its help text.
#[derive(Debug, Clone, Copy)]
pub struct KindNames {
    /// Counter of calls, requests or queries.
    pub total: &'static str,
    /// Counter of failures, if the kind has one.
    pub errors: Option<&'static str>,
    /// Histogram of durations in seconds.
    pub duration: &'static str,
    /// Help text of the histogram.
    pub duration_help: &'static str,
}

impl KindNames {
    /// The names for sites of `kind`.
    pub fn of(kind: SiteKind) -> KindNames {
        match kind {
            SiteKind::Function => KindNames {
                total: names::FUNCTION_CALLS_TOTAL,
                errors: Some(names::FUNCTION_ERRORS_TOTAL),
                duration: names::FUNCTION_DURATION_SECONDS,
                duration_help: "Function call duration",
            },
            SiteKind::Http => KindNames {
                total: names::HTTP_REQUESTS_TOTAL,
                errors: None,
                duration: names::HTTP_REQUEST_DURATION_SECONDS,
                duration_help: "HTTP request duration",
            },
            SiteKind::Db => KindNames {
                total: names::DB_QUERIES_TOTAL,
                errors: Some(names::DB_QUERY_ERRORS_TOTAL),
                duration: names::DB_QUERY_DURATION_SECONDS,
                duration_help: "DB query duration",
            },
        }
    }
}

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

impl GlobalLabels {
    /// The full label set of a site's series, in contract order: service, instance, worker,
    /// then `function`, or `route` and `status` (and `method` if on), or `db_vendor`.
    pub fn for_site(&self, site: &Site) -> Vec<(&'static str, String)> {
        let mut labels = vec![
            ("service", self.service.clone()),
            ("instance", self.instance.clone()),
            ("worker", self.worker.clone()),
        ];
        match site.kind() {
            SiteKind::Function => labels.push(("function", site.name().to_owned())),
            SiteKind::Http => {
                labels.push(("route", site.name().to_owned()));
                labels.push(("status", site.status().to_string()));
                if let Some(method) = site.method() {
                    labels.push(("method", method.to_owned()));
                }
            }
            SiteKind::Db => labels.push((
                "db_vendor",
                site.db_vendor().unwrap_or(site.name()).to_owned(),
            )),
        }
        labels
    }
}

/// The handles of one site, made on its first count.
struct SiteHandles {
    calls: Counter,
    /// Functions and DB vendors: failed calls. HTTP failures show in the `status` label.
    errors: Option<Counter>,
    /// `None` without histograms (never registered, so never rendered empty).
    duration: Option<Histogram>,
}

/// Records batches as `metrics` counters, histograms and gauges.
///
/// Calls, requests and queries are counted from the batch's exact counts (sampled-out ones
/// included) and timed from its bucket totals: the calls of each bucket are recorded at their
/// mean duration, which keeps every bucket count and the sum exact for histograms with the same
/// buckets as the collector's. It needs no individual events. The collector's health is
/// recorded as `profilis_events_dropped_total`, `profilis_queue_depth` and
/// `profilis_sink_failures_total`, and HTTP requests being served as
/// `profilis_http_requests_in_flight`.
pub struct FacadeSink {
    labels: GlobalLabels,
    /// Whether durations go to the `*_duration_seconds` histograms through `metrics`.
    histograms: bool,
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    sites: Vec<Option<SiteHandles>>,
    health: Option<Health>,
}

struct Health {
    dropped: Counter,
    depth: Gauge,
    failures: Counter,
    in_flight: Gauge,
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

    /// Leaves the `*_duration_seconds` histograms to the caller, who reads the bucket totals of
    /// [`crate::CallCount::durations`] itself (the Prometheus exporter does: it keeps them as
    /// bucket counts rather than one sample per call). Counters are still recorded.
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
            metrics::describe_gauge!(names::HTTP_REQUESTS_IN_FLIGHT, "HTTP requests being served");
            metrics::describe_counter!(names::DB_QUERIES_TOTAL, "Total DB queries");
            metrics::describe_counter!(names::DB_QUERY_ERRORS_TOTAL, "DB queries that failed");
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

    /// The handles of `site`, made (with its kind's metric names and labels) on first use.
    fn site(&mut self, site: &'static Site) -> &SiteHandles {
        let id = site.id() as usize;
        if self.sites.len() <= id {
            self.sites.resize_with(id + 1, || None);
        }
        if self.sites[id].is_none() {
            let labels: Vec<Label> = self
                .labels
                .for_site(site)
                .into_iter()
                .map(|(k, v)| Label::new(k, v))
                .collect();
            let names = KindNames::of(site.kind());
            let histograms = self.histograms;
            let handles = self.with(|| SiteHandles {
                calls: metrics::counter!(names.total, labels.clone()),
                errors: names
                    .errors
                    .map(|name| metrics::counter!(name, labels.clone())),
                duration: histograms.then(|| metrics::histogram!(names.duration, labels)),
            });
            self.sites[id] = Some(handles);
        }
        self.sites[id].as_ref().expect("just filled")
    }
}

impl Sink for FacadeSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        if self.health.is_none() {
            self.describe();
            self.health = Some(self.with(|| Health {
                dropped: metrics::counter!(names::EVENTS_DROPPED_TOTAL),
                depth: metrics::gauge!(names::QUEUE_DEPTH),
                failures: metrics::counter!(names::SINK_FAILURES_TOTAL),
                in_flight: metrics::gauge!(
                    names::HTTP_REQUESTS_IN_FLIGHT,
                    "service" => self.labels.service.clone(),
                    "instance" => self.labels.instance.clone(),
                    "worker" => self.labels.worker.clone()
                ),
            }));
        }
        for count in batch.counts {
            let handles = self.site(count.site);
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
            health.in_flight.set(crate::in_flight::http() as f64);
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

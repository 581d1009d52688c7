//! profilis's `metrics` recorder: the counters, gauges and histograms recorded through the
//! `metrics` macros (profilis's own and the application's) on `metrics-util`'s registry,
//! histograms kept as bucket counts, and the kinds' duration histograms, all rendered in the
//! Prometheus text format by `text_format`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use metrics_util::registry::{Registry, Storage};

use crate::histograms::Histograms;
use crate::metric_buckets::MetricBuckets;
use crate::text_format::{self, ExpositionFormat, HistogramSample, Page, Sample};

/// The recorder; clones share everything.
#[derive(Clone)]
pub(crate) struct PrometheusRecorder {
    state: Arc<State>,
}

struct State {
    registry: Registry<Key, BucketStorage>,
    /// Help texts by sanitized metric name; the first description of a name wins. (The text
    /// format 0.0.4 has no unit line, so units are not kept.)
    descriptions: Mutex<HashMap<String, SharedString>>,
    durations: Histograms,
}

impl PrometheusRecorder {
    /// A recorder whose histograms (those recorded through `metrics`) have buckets `bounds`
    /// (seconds, increasing; `+Inf` is added).
    #[cfg(test)]
    pub(crate) fn new(bounds: &[f64]) -> PrometheusRecorder {
        PrometheusRecorder::with_buckets(MetricBuckets::new(bounds))
    }

    /// A recorder whose histograms (those recorded through `metrics`) get their buckets from
    /// `buckets` by name, when first registered (`+Inf` is added).
    pub(crate) fn with_buckets(buckets: MetricBuckets) -> PrometheusRecorder {
        PrometheusRecorder {
            state: Arc::new(State {
                registry: Registry::new(BucketStorage { buckets }),
                descriptions: Mutex::new(HashMap::new()),
                durations: Histograms::default(),
            }),
        }
    }

    /// The kinds' duration histograms, which the Prometheus sink fills from bucket totals.
    pub(crate) fn durations(&self) -> &Histograms {
        &self.state.durations
    }

    /// Everything recorded, in the Prometheus text format 0.0.4.
    #[cfg(test)]
    pub(crate) fn render(&self) -> String {
        self.render_with(ExpositionFormat::Text, |_| {})
    }

    /// Everything recorded, in `format`.
    #[cfg(test)]
    pub(crate) fn render_as(&self, format: ExpositionFormat) -> String {
        self.render_with(format, |_| {})
    }

    /// Everything recorded and the families `more` puts on the page (those kept outside the
    /// registry: the process metrics, info metrics and state sets), in `format` (exemplars in
    /// OpenMetrics only).
    pub(crate) fn render_with(
        &self,
        format: ExpositionFormat,
        more: impl FnOnce(&mut Page),
    ) -> String {
        let state = &*self.state;
        let mut page = Page::default();
        state.registry.visit_counters(|key, counter| {
            let value = counter.load(Ordering::Acquire);
            page.add(key.name(), labels(key), Sample::Counter(value));
        });
        state.registry.visit_gauges(|key, gauge| {
            let value = f64::from_bits(gauge.load(Ordering::Acquire));
            page.add(key.name(), labels(key), Sample::Gauge(value));
        });
        state.registry.visit_histograms(|key, histogram| {
            let sample = Sample::Histogram(histogram.sample());
            page.add(key.name(), labels(key), sample);
        });
        state.durations.add_to(&mut page);
        more(&mut page);
        let descriptions = state.descriptions.lock().unwrap_or_else(|e| e.into_inner());
        for (name, help) in descriptions.iter() {
            page.help(name, help);
        }
        drop(descriptions);
        page.render_as(format)
    }

    fn describe(&self, name: &KeyName, help: SharedString) {
        let mut descriptions = self
            .state
            .descriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        descriptions
            .entry(text_format::metric_name(name.as_str()).into_owned())
            .or_insert(help);
    }
}

/// The label set of an application's series: its keys as the application gave them, each
/// made one the series may carry (see [`text_format::app_label_set`]).
fn labels(key: &Key) -> String {
    text_format::app_label_set(key.labels().map(|l| (l.key(), l.value())))
}

impl Recorder for PrometheusRecorder {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.describe(&key, description);
    }

    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.describe(&key, description);
    }

    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.describe(&key, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let registry = &self.state.registry;
        registry.get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let registry = &self.state.registry;
        registry.get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let registry = &self.state.registry;
        registry.get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

/// The registry's storage: counters and gauges as atomics (a gauge's `f64` as its bits),
/// histograms as bucket counts, with the buckets of their name (as rendered).
struct BucketStorage {
    buckets: MetricBuckets,
}

impl Storage<Key> for BucketStorage {
    type Counter = Arc<AtomicU64>;
    type Gauge = Arc<AtomicU64>;
    type Histogram = Arc<BucketHistogram>;

    fn counter(&self, _: &Key) -> Self::Counter {
        Arc::new(AtomicU64::new(0))
    }

    fn gauge(&self, _: &Key) -> Self::Gauge {
        Arc::new(AtomicU64::new(0.0f64.to_bits()))
    }

    fn histogram(&self, key: &Key) -> Self::Histogram {
        // Once per series: the name's buckets are looked up here, never when recording.
        let bounds = self.buckets.of(&text_format::metric_name(key.name()));
        Arc::new(BucketHistogram::new(bounds))
    }
}

/// A histogram as a count per bucket and a sum: memory fixed by its buckets, whatever the
/// number of observations.
pub(crate) struct BucketHistogram {
    bounds: Arc<[f64]>,
    /// Observations per bucket (not cumulative); one more than `bounds`, the last `+Inf`.
    counts: Box<[AtomicU64]>,
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

impl BucketHistogram {
    fn new(bounds: Arc<[f64]>) -> BucketHistogram {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        BucketHistogram {
            bounds,
            counts,
            sum: AtomicU64::new(0.0f64.to_bits()),
        }
    }

    /// The bucket of `value`: the first whose bound is at least `value`, else `+Inf` (as for
    /// NaN).
    fn bucket(&self, value: f64) -> usize {
        if value.is_nan() {
            return self.bounds.len();
        }
        self.bounds.partition_point(|&bound| bound < value)
    }

    fn sample(&self) -> HistogramSample {
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        HistogramSample {
            buckets: bounds
                .zip(self.counts.iter())
                .map(|(le, count)| (le, count.load(Ordering::Acquire)))
                .collect(),
            sum: f64::from_bits(self.sum.load(Ordering::Acquire)),
        }
    }
}

impl HistogramFn for BucketHistogram {
    fn record(&self, value: f64) {
        self.record_many(value, 1);
    }

    fn record_many(&self, value: f64, count: usize) {
        let count = count as u64;
        self.counts[self.bucket(value)].fetch_add(count, Ordering::AcqRel);
        let add = value * count as f64;
        // `fetch_update` retries until no other thread changed the sum in between; the closure
        // always returns `Some`, so it cannot fail.
        let _ = self
            .sum
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                Some((f64::from_bits(bits) + add).to_bits())
            });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use profilis_core::context::{SpanId, TraceId};
    use profilis_core::{Batch, BucketTotal, CallCount, Sink, Site, Stats, FUNCTION};
    use profilis_core::{Event, Outcome};
    use profilis_test_support::{
        parse_exposition, parse_openmetrics, promtool_check_metrics, Exposition,
    };
    use proptest::prelude::*;

    use super::*;
    use crate::facade::FacadeSink;
    use crate::labels::GlobalLabels;
    use crate::metric_buckets::MetricMatch;

    fn page(recorder: &PrometheusRecorder) -> Exposition {
        let text = recorder.render();
        parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// One call of a function site labelled `function`, through the path the Prometheus sink
    /// takes: counters through the facade sink, its duration into the bucket counts.
    fn record_call(recorder: &PrometheusRecorder, labels: &GlobalLabels, function: &str) {
        let site: &'static Site = Site::interned(&FUNCTION, function, &[]);
        let counts = [CallCount {
            site,
            calls: 1,
            errors: 0,
            durations: vec![
                BucketTotal {
                    le: 0.1,
                    count: 1,
                    sum_ns: 2_000_000,
                },
                BucketTotal {
                    le: f64::INFINITY,
                    count: 0,
                    sum_ns: 0,
                },
            ],
            latency: None,
        }];
        let batch = Batch {
            events: &[],
            counts: &counts,
            stats: Stats::default(),
            errors: &[],
            slow: &[],
        };
        let mut facade = FacadeSink::with_recorder(labels.clone(), Arc::new(recorder.clone()))
            .without_histograms();
        facade.write(&batch).unwrap();
        recorder.durations().add(labels, &counts);
    }

    #[test]
    fn application_histograms_are_bucketed_with_the_recorders_buckets() {
        let recorder = PrometheusRecorder::new(&[0.1, 1.0]);
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!("app_seconds", Unit::Seconds, "Work");
            let histogram = metrics::histogram!("app_seconds", "step" => "a");
            for v in [0.05, 0.1, 0.5, 5.0] {
                histogram.record(v);
            }
            histogram.record_many(0.2, 3);
        });
        let text = recorder.render();
        assert_eq!(
            text,
            "# HELP app_seconds Work\n\
             # TYPE app_seconds histogram\n\
             app_seconds_bucket{step=\"a\",le=\"0.1\"} 2\n\
             app_seconds_bucket{step=\"a\",le=\"1\"} 6\n\
             app_seconds_bucket{step=\"a\",le=\"+Inf\"} 7\n\
             app_seconds_sum{step=\"a\"} 6.25\n\
             app_seconds_count{step=\"a\"} 7\n\n"
        );
    }

    /// The `le` bounds of the `_bucket` lines of `name`'s series labelled `step="a"`, in page
    /// order; their counts must be cumulative and end at `_count`.
    fn bucket_bounds(page: &Exposition, name: &str) -> Vec<f64> {
        let bucket = format!("{name}_bucket");
        let buckets: Vec<_> = page
            .named(&bucket)
            .filter(|s| s.label("step") == Some("a"))
            .collect();
        let counts: Vec<f64> = buckets.iter().map(|s| s.value).collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "{name}: {counts:?}"
        );
        let count = page
            .named(&format!("{name}_count"))
            .find(|s| s.label("step") == Some("a"))
            .map(|s| s.value);
        assert_eq!(counts.last().copied(), count, "{name}");
        buckets
            .iter()
            .map(|s| {
                let le = s.label("le").expect("an le label");
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or_else(|_| panic!("{name}: le={le:?}"))
                }
            })
            .collect()
    }

    #[test]
    fn each_histogram_gets_the_buckets_of_its_most_specific_matcher() {
        let mut buckets = MetricBuckets::new(&[0.5, 5.0]);
        let rules = [
            (MetricMatch::prefix("http_"), vec![0.01, 0.1]),
            (MetricMatch::suffix("_bytes"), vec![-10.0, 0.0, 1e3, 1e6]),
            (
                MetricMatch::full("http_checkout_seconds"),
                vec![1.0, 2.0, 3.0],
            ),
            (MetricMatch::prefix("http_upload_"), vec![100.0]),
            (MetricMatch::suffix("_size_bytes"), vec![256.0, 4096.0]),
        ];
        for (matcher, values) in rules {
            buckets.set(matcher, &values);
        }
        let recorder = PrometheusRecorder::with_buckets(buckets);
        let names = [
            "http_checkout_seconds",    // the full name
            "http_request_seconds",     // the prefix `http_`
            "disk_read_bytes",          // the suffix `_bytes`
            "http_upload_size_bytes",   // `http_upload_` (12) over `_size_bytes` (11)
            "http_response_size_bytes", // `_size_bytes` (11) over `http_` (5)
            "queue_wait_seconds",       // none: the default
            "http.checkout-seconds",    // matched as it renders: the full name
        ];
        metrics::with_local_recorder(&recorder, || {
            for name in names {
                metrics::describe_histogram!(name, "Things measured");
                for v in [-20.0, 0.05, 1.5, 300.0, 5e6] {
                    metrics::histogram!(name, "step" => "a").record(v);
                }
            }
        });
        let text = recorder.render();
        let page = page(&recorder);
        let inf = f64::INFINITY;
        for (name, bounds) in [
            ("http_checkout_seconds", vec![1.0, 2.0, 3.0, inf]),
            ("http_request_seconds", vec![0.01, 0.1, inf]),
            ("disk_read_bytes", vec![-10.0, 0.0, 1e3, 1e6, inf]),
            ("http_upload_size_bytes", vec![100.0, inf]),
            ("http_response_size_bytes", vec![256.0, 4096.0, inf]),
            ("queue_wait_seconds", vec![0.5, 5.0, inf]),
        ] {
            assert_eq!(bucket_bounds(&page, name), bounds, "{name}\n{text}");
        }
        // Two names that render alike share their buckets, so their series add up.
        let count = page
            .named("http_checkout_seconds_count")
            .map(|s| s.value)
            .collect::<Vec<_>>();
        assert_eq!(count, [10.0], "{text}");
        assert!(
            text.contains("disk_read_bytes_bucket{step=\"a\",le=\"-10\"} 1\n")
                && text.contains("disk_read_bytes_bucket{step=\"a\",le=\"1000000\"} 4\n"),
            "{text}"
        );
        promtool_check_metrics(text.as_bytes());
    }

    #[test]
    fn families_are_grouped_once_sorted_with_sanitized_names() {
        let recorder = PrometheusRecorder::new(&[1.0]);
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!("b.orders", "Orders\nby \"kind\" \\ all");
            metrics::counter!("b.orders", "kind" => "x").increment(2);
            metrics::gauge!("a_depth").set(-1.5);
            metrics::counter!("b.orders", "kind" => "y", "shop-id" => "1").increment(3);
            // A second name that sanitizes alike adds to the same series.
            metrics::counter!("b-orders", "kind" => "x").increment(1);
            // The same name as a gauge: the family stays a counter.
            metrics::gauge!("b_orders").set(9.0);
        });
        let text = recorder.render();
        assert_eq!(
            text,
            "# TYPE a_depth gauge\n\
             a_depth -1.5\n\
             \n\
             # HELP b_orders Orders\\nby \"kind\" \\\\ all\n\
             # TYPE b_orders counter\n\
             b_orders{kind=\"x\"} 3\n\
             b_orders{kind=\"y\",shop_id=\"1\"} 3\n\n"
        );
        let page = page(&recorder);
        assert_eq!(page.help_of("b_orders"), Some("Orders\nby \"kind\" \\ all"));
    }

    #[test]
    fn label_keys_the_page_cannot_carry_as_they_are_are_renamed_not_dropped() {
        let recorder = PrometheusRecorder::new(&[1.0]);
        metrics::with_local_recorder(&recorder, || {
            // `le` is the histogram's own label.
            metrics::histogram!("lat", "le" => "x").record(0.5);
            // Two keys that sanitize alike, and one that would be `exported_a_b` too.
            metrics::counter!("jobs_total", "a.b" => "1", "a-b" => "2", "exported_a_b" => "3")
                .increment(1);
            // Names Prometheus reserves.
            metrics::counter!("jobs_total", "__name__" => "y", "__x" => "z").increment(2);
            // Prometheus keeps `le` for histograms and `quantile` for summaries: not on a gauge
            // either.
            metrics::gauge!("depth", "le" => "q", "quantile" => "0.99").set(1.0);
            metrics::describe_histogram!("lat", "Latency.");
            metrics::describe_counter!("jobs_total", "Jobs.");
            metrics::describe_gauge!("depth", "Depth.");
        });
        let text = recorder.render();
        let expected = [
            "lat_bucket{exported_le=\"x\",le=\"1\"} 1\n",
            "lat_bucket{exported_le=\"x\",le=\"+Inf\"} 1\n",
            "jobs_total{a_b=\"1\",exported_a_b=\"2\",exported_exported_a_b=\"3\"} 1\n",
            "jobs_total{exported___name__=\"y\",exported___x=\"z\"} 2\n",
            "depth{exported_le=\"q\",exported_quantile=\"0.99\"} 1\n",
        ];
        for line in expected {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        let read = page(&recorder);
        assert_eq!(read.named("jobs_total").count(), 2, "{text}");
        promtool_check_metrics(text.as_bytes());
        let om = recorder.render_as(ExpositionFormat::OpenMetrics);
        parse_openmetrics(&om).unwrap_or_else(|e| panic!("{e}\n{om}"));
    }

    #[test]
    fn the_same_labels_in_another_order_are_one_series() {
        let recorder = PrometheusRecorder::new(&[1.0]);
        metrics::with_local_recorder(&recorder, || {
            // `metrics` keys compare their labels in any order (a `Key`'s hash and equality),
            // so these are one key, one series: written once, in the order first given.
            // (Two lines with one label set would be a duplicate series Prometheus drops.)
            metrics::counter!("jobs_total", "shop" => "1", "kind" => "x").increment(1);
            metrics::counter!("jobs_total", "kind" => "x", "shop" => "1").increment(2);
            // Another set of the same keys stays its own series.
            metrics::counter!("jobs_total", "kind" => "y", "shop" => "1").increment(5);
            // Keys that are renamed or sanitized, and a key given twice.
            metrics::counter!("odd_total", "le" => "1", "a.b" => "2", "a-b" => "3").increment(1);
            metrics::counter!("odd_total", "a-b" => "3", "le" => "1", "a.b" => "2").increment(1);
            metrics::counter!("twice_total", "k" => "1", "k" => "2").increment(1);
            metrics::counter!("twice_total", "k" => "2", "k" => "1").increment(1);
            metrics::gauge!("depth", "z" => "1", "a" => "2").set(4.0);
            metrics::gauge!("depth", "a" => "2", "z" => "1").set(6.0);
            metrics::histogram!("lat", "b" => "1", "a" => "2").record(0.5);
            metrics::histogram!("lat", "a" => "2", "b" => "1").record(2.0);
            // A counter and a gauge of one name and labels are not one storage.
            metrics::counter!("mixed_total", "p" => "1", "q" => "2").increment(7);
            metrics::gauge!("mixed_total", "q" => "2", "p" => "1").set(1.0);
            metrics::describe_counter!("jobs_total", "Jobs");
            metrics::describe_counter!("odd_total", "Odd");
            metrics::describe_counter!("twice_total", "Twice");
            metrics::describe_gauge!("depth", "Depth");
            metrics::describe_histogram!("lat", "Latency");
            metrics::describe_counter!("mixed_total", "Mixed");
        });
        let text = recorder.render();
        // Written once, in the order first given, with what both recorded.
        for line in [
            "jobs_total{shop=\"1\",kind=\"x\"} 3\n",
            "jobs_total{kind=\"y\",shop=\"1\"} 5\n",
            "odd_total{exported_le=\"1\",a_b=\"2\",exported_a_b=\"3\"} 2\n",
            "depth{z=\"1\",a=\"2\"} 6\n",
            "lat_count{b=\"1\",a=\"2\"} 2\n",
            "lat_sum{b=\"1\",a=\"2\"} 2.5\n",
            "mixed_total{p=\"1\",q=\"2\"} 7\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        let read = page(&recorder);
        assert_eq!(read.named("jobs_total").count(), 2, "{text}");
        assert_eq!(read.named("odd_total").count(), 1, "{text}");
        assert_eq!(read.named("twice_total").count(), 1, "{text}");
        assert_eq!(read.named("depth").count(), 1, "{text}");
        assert_eq!(read.named("lat_count").count(), 1, "{text}");
        let twice = read.named("twice_total").next().map(|s| s.value);
        assert_eq!(twice, Some(2.0), "{text}");
        promtool_check_metrics(text.as_bytes());
        let om = recorder.render_as(ExpositionFormat::OpenMetrics);
        parse_openmetrics(&om).unwrap_or_else(|e| panic!("{e}\n{om}"));
    }

    /// A page with awkward label values and help texts, through every path that renders.
    fn awkward_page() -> (String, Vec<&'static str>) {
        let (recorder, values) = awkward_recorder();
        (recorder.render(), values)
    }

    /// The recorder of [`awkward_page`].
    fn awkward_recorder() -> (PrometheusRecorder, Vec<&'static str>) {
        let values = vec![
            "a\"b",
            "a\\\"b",
            "bs\\\n",
            "bs\\n",
            "line\nfeed",
            "cr\r\0nul",
            "\\",
            "\"",
            "ünï ✓ 🦀",
            "",
        ];
        let recorder = PrometheusRecorder::new(&[0.1]);
        let labels = GlobalLabels {
            service: "svc\"\\".into(),
            instance: "host\n".into(),
            worker: "1".into(),
        };
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!("app_things_total", "Things \\ counted\nper \"value\"");
            metrics::describe_gauge!("app_level", "Level");
            metrics::describe_histogram!("app_seconds", Unit::Seconds, "Time taken");
            for (i, &value) in values.iter().enumerate() {
                metrics::counter!("app_things_total", "value" => value).increment(i as u64 + 1);
                metrics::gauge!("app_level", "value" => value).set(i as f64);
                metrics::histogram!("app_seconds", "value" => value).record(0.01);
            }
        });
        for value in values.iter().filter(|v| !v.is_empty()) {
            record_call(&recorder, &labels, value);
        }
        (recorder, values)
    }

    #[test]
    fn awkward_values_are_distinct_series_that_read_back_as_themselves() {
        let (text, values) = awkward_page();
        let page = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let things: Vec<_> = page.named("app_things_total").collect();
        assert_eq!(things.len(), values.len(), "{text}");
        for (i, value) in values.iter().enumerate() {
            let series: Vec<_> = things
                .iter()
                .filter(|s| s.label("value") == Some(value))
                .collect();
            assert_eq!(series.len(), 1, "{value:?}\n{text}");
            assert_eq!(series[0].value, i as f64 + 1.0, "{value:?}");
        }
        for value in values.iter().filter(|v| !v.is_empty()) {
            let calls: Vec<_> = page
                .named("profilis_function_calls_total")
                .filter(|s| s.label("function") == Some(value))
                .collect();
            assert_eq!(calls.len(), 1, "{value:?}\n{text}");
            assert_eq!(calls[0].label("service"), Some("svc\"\\"));
            assert_eq!(calls[0].label("instance"), Some("host\n"));
            let durations = page
                .named("profilis_function_duration_seconds_count")
                .filter(|s| s.label("function") == Some(value))
                .count();
            assert_eq!(durations, 1, "{value:?}");
        }
        assert_eq!(
            page.help_of("app_things_total"),
            Some("Things \\ counted\nper \"value\"")
        );
    }

    /// The awkward page in OpenMetrics: it reads back strictly, with the same label values
    /// as the text format (the escaping is the same), counters under `_total`.
    #[test]
    fn awkward_values_read_back_the_same_in_openmetrics() {
        let (text, values) = awkward_page();
        let text_page = parse_exposition(&text).unwrap();
        let (recorder, _) = awkward_recorder();
        let om = recorder.render_as(ExpositionFormat::OpenMetrics);
        let page = parse_openmetrics(&om).unwrap_or_else(|e| panic!("{e}\n{om}"));
        assert_eq!(om.matches("# EOF").count(), 1);
        assert!(om.ends_with("\n# EOF\n"));
        for (name, om_name) in [
            ("app_things_total", "app_things_total"),
            ("app_level", "app_level"),
            ("app_seconds_bucket", "app_seconds_bucket"),
            (
                "profilis_function_calls_total",
                "profilis_function_calls_total",
            ),
            (
                "profilis_function_duration_seconds_bucket",
                "profilis_function_duration_seconds_bucket",
            ),
        ] {
            let mut in_text: Vec<_> = text_page
                .named(name)
                .map(|s| (&s.labels, s.value))
                .collect();
            let mut in_om: Vec<_> = page.named(om_name).map(|s| (&s.labels, s.value)).collect();
            in_text.sort_by(|a, b| a.partial_cmp(b).unwrap());
            in_om.sort_by(|a, b| a.partial_cmp(b).unwrap());
            assert_eq!(in_text, in_om, "{name}");
            assert!(!in_om.is_empty(), "{name}");
        }
        assert_eq!(page.named("app_things_total").count(), values.len());
        let family = page
            .family("app_things")
            .expect("the counter's family, without _total");
        assert_eq!(family.kind, "counter");
        assert_eq!(
            family.help.as_deref(),
            Some("Things \\ counted\nper \"value\"")
        );
        let durations = page.family("profilis_function_duration_seconds").unwrap();
        assert_eq!(durations.unit.as_deref(), Some("seconds"));
    }

    fn timed_call(function: &str, trace_id: u128, dur_ns: u64, ts_ns: u64) -> Event {
        Event {
            site: Site::interned(&FUNCTION, function, &[]),
            ts_ns,
            dur_ns,
            error: false,
            outcome: Outcome::Returned,
            trace_id: TraceId(trace_id),
            span_id: SpanId(1),
            parent_span_id: None,
            detail: None,
            failure: None,
        }
    }

    #[test]
    fn each_bucket_keeps_the_latest_exemplar_that_lies_within_it() {
        let recorder = PrometheusRecorder::new(&[0.1]);
        let labels = GlobalLabels {
            service: "s".into(),
            instance: "i".into(),
            worker: "w".into(),
        };
        record_call(&recorder, &labels, "exemplary");
        let s = 1_700_000_000_000_000_000;
        recorder.durations().add_exemplars(
            &labels,
            &[
                // The bucket (0, 0.1]: the later call wins, whatever the order given.
                timed_call("exemplary", 0x22, 50_000_000, s + 2_000_000_000),
                timed_call("exemplary", 0x11, 100_000_000, s),
                // +Inf: just above the bound.
                timed_call("exemplary", 0x33, 100_000_001, s + 1_000_000_000),
                // No trace id; a series with no timed call: left out.
                timed_call("exemplary", 0, 1, s + 9_000_000_000),
                timed_call("never_counted", 0x44, 1, s),
            ],
        );
        let om = recorder.render_as(ExpositionFormat::OpenMetrics);
        let page = parse_openmetrics(&om).unwrap_or_else(|e| panic!("{e}\n{om}"));
        let buckets: Vec<_> = page
            .named("profilis_function_duration_seconds_bucket")
            .filter(|b| b.label("function") == Some("exemplary"))
            .collect();
        assert_eq!(buckets.len(), 2, "{om}");
        let first = buckets[0]
            .exemplar
            .as_ref()
            .expect("an exemplar in (0, 0.1]");
        assert_eq!(
            first.label("trace_id"),
            Some("00000000000000000000000000000022")
        );
        assert_eq!(
            (first.value, first.timestamp),
            (0.05, Some(1_700_000_002.0))
        );
        let last = buckets[1].exemplar.as_ref().expect("an exemplar in +Inf");
        assert_eq!(
            last.label("trace_id"),
            Some("00000000000000000000000000000033")
        );
        assert_eq!(last.value, 0.100000001);
        assert!(!om.contains("never_counted") && !om.contains(&format!("{:032x}", 0x44)));
        // The text format has none.
        assert!(!recorder.render().contains("trace_id"));
    }

    #[test]
    fn promtool_accepts_a_page_of_awkward_values() {
        let (text, _) = awkward_page();
        promtool_check_metrics(text.as_bytes());
    }

    proptest! {
        #[test]
        fn any_label_value_reads_back_as_itself(
            value in any::<String>(),
            other in any::<String>(),
            help in any::<String>(),
        ) {
            let recorder = PrometheusRecorder::new(&[0.1]);
            metrics::with_local_recorder(&recorder, || {
                metrics::describe_counter!("app_total", help.clone());
                metrics::counter!("app_total", "v" => value.clone()).increment(1);
                metrics::counter!("app_total", "v" => other.clone()).increment(2);
                metrics::gauge!("app_gauge", "v" => value.clone()).set(1.5);
                metrics::histogram!("app_seconds", "v" => value.clone()).record(0.05);
            });
            let labels = GlobalLabels {
                service: other.clone(),
                instance: value.clone(),
                worker: "w".into(),
            };
            if !value.is_empty() {
                record_call(&recorder, &labels, &value);
            }
            let text = recorder.render();
            let page = parse_exposition(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            // OpenMetrics reads back strictly too, with the same values.
            let om = recorder.render_as(ExpositionFormat::OpenMetrics);
            let om_page = parse_openmetrics(&om).map_err(|e| TestCaseError::fail(format!("{e}\n{om}")))?;
            let om_help = om_page.family("app").and_then(|f| f.help.as_deref());
            prop_assert_eq!(om_help, Some(help.as_str()));
            let mut in_text: Vec<_> = page.named("app_total").map(|s| (&s.labels, s.value)).collect();
            let mut in_om: Vec<_> = om_page.named("app_total").map(|s| (&s.labels, s.value)).collect();
            in_text.sort_by(|a, b| a.partial_cmp(b).unwrap());
            in_om.sort_by(|a, b| a.partial_cmp(b).unwrap());
            prop_assert_eq!(in_text, in_om);

            // Two values are two series, each reading back as its own value.
            let totals: Vec<_> = page.named("app_total").collect();
            if value == other {
                prop_assert_eq!(totals.len(), 1);
                prop_assert_eq!(totals[0].value, 3.0);
            } else {
                prop_assert_eq!(totals.len(), 2);
                for (v, n) in [(&value, 1.0), (&other, 2.0)] {
                    let mine: Vec<_> = totals.iter().filter(|s| s.label("v") == Some(v.as_str())).collect();
                    prop_assert_eq!(mine.len(), 1);
                    prop_assert_eq!(mine[0].value, n);
                }
            }
            // Help texts read back too, but for leading blanks, which the format skips.
            prop_assert_eq!(page.help_of("app_total"), Some(help.trim_start_matches([' ', '\t'])));
            let gauge: Vec<_> = page.named("app_gauge").collect();
            prop_assert_eq!(gauge.len(), 1);
            prop_assert_eq!(gauge[0].label("v"), Some(value.as_str()));
            let buckets: Vec<_> = page.named("app_seconds_bucket").collect();
            prop_assert_eq!(buckets.len(), 2);
            prop_assert!(buckets.iter().all(|s| s.label("v") == Some(value.as_str())));
            if !value.is_empty() {
                for name in ["profilis_function_calls_total", "profilis_function_duration_seconds_count"] {
                    let calls: Vec<_> = page.named(name).collect();
                    prop_assert_eq!(calls.len(), 1);
                    prop_assert_eq!(calls[0].label("function"), Some(value.as_str()));
                    prop_assert_eq!(calls[0].label("instance"), Some(value.as_str()));
                    prop_assert_eq!(calls[0].label("service"), Some(other.as_str()));
                }
            }
        }
    }
}

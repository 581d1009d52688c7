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
use crate::text_format::{self, HistogramSample, Page, Sample};

/// The recorder; clones share everything.
#[derive(Clone)]
pub(crate) struct PrometheusRecorder {
    state: Arc<State>,
}

struct State {
    registry: Registry<Key, BucketStorage>,
    /// By sanitized metric name; the first description of a name wins.
    descriptions: Mutex<HashMap<String, Description>>,
    durations: Histograms,
}

struct Description {
    help: SharedString,
    /// The text format 0.0.4 has no unit line; kept for formats that have one (OpenMetrics).
    #[expect(dead_code, reason = "no format rendered yet shows units")]
    unit: Option<Unit>,
}

impl PrometheusRecorder {
    /// A recorder whose histograms (those recorded through `metrics`) have buckets `bounds`
    /// (seconds, increasing; `+Inf` is added).
    pub(crate) fn new(bounds: &[f64]) -> PrometheusRecorder {
        PrometheusRecorder {
            state: Arc::new(State {
                registry: Registry::new(BucketStorage {
                    bounds: bounds.into(),
                }),
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
    pub(crate) fn render(&self) -> String {
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
        let descriptions = state.descriptions.lock().unwrap_or_else(|e| e.into_inner());
        for (name, description) in descriptions.iter() {
            page.help(name, &description.help);
        }
        drop(descriptions);
        page.render()
    }

    fn describe(&self, name: &KeyName, unit: Option<Unit>, help: SharedString) {
        let mut descriptions = self
            .state
            .descriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        descriptions
            .entry(text_format::metric_name(name.as_str()).into_owned())
            .or_insert(Description { help, unit });
    }
}

fn labels(key: &Key) -> String {
    text_format::label_set(key.labels().map(|l| (l.key(), l.value())))
}

impl Recorder for PrometheusRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(&key, unit, description);
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
/// histograms as bucket counts.
struct BucketStorage {
    bounds: Arc<[f64]>,
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

    fn histogram(&self, _: &Key) -> Self::Histogram {
        Arc::new(BucketHistogram::new(self.bounds.clone()))
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

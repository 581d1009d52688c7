//! profilis's recorder as the global `metrics` recorder (installed once per process) and the
//! sink that feeds it: counters and gauges through the facade sink, duration histograms as
//! bucket counts with their exemplars.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use profilis_core::{Batch, Buckets, Sink, SinkError};

use crate::error::Error;
use crate::facade::FacadeSink;
use crate::labels::GlobalLabels;
use crate::metric_buckets::MetricBuckets;
use crate::recorder::PrometheusRecorder;
use crate::text_format::ExpositionFormat;

/// profilis's recorder, once installed: it stays the global recorder for the process.
#[derive(Clone)]
pub(super) struct Installed {
    recorder: PrometheusRecorder,
    buckets: Buckets,
    metric_buckets: MetricBuckets,
    /// Whether pages carry the process metrics: set by each install, shared by every clone.
    process_metrics: Arc<AtomicBool>,
}

impl Installed {
    /// The exposition text: every family of the recorder, the duration histograms among them,
    /// the process metrics (read now, if on), the published info metrics and state sets, and
    /// the published metric sets.
    pub(super) fn render(&self) -> String {
        self.render_as(ExpositionFormat::Text)
    }

    /// The page a textfile gets: [`Installed::render`]'s without the families that are facts
    /// of this process, which every program writing a file would name the same way, with no
    /// labels: the process metrics (node_exporter has its own) and profilis's own health
    /// metrics ([`metric_names::UNLABELLED`](crate::metric_names::UNLABELLED)).
    /// node_exporter reads every file of its directory into one page, and refuses a series
    /// another file or its own page already has.
    pub(super) fn render_textfile(&self) -> String {
        self.render_page(
            ExpositionFormat::Text,
            false,
            &crate::metric_names::UNLABELLED,
        )
    }

    /// Pages from now on carry the process metrics, or not.
    pub(super) fn set_process_metrics(&self, on: bool) {
        self.process_metrics.store(on, Ordering::Release);
    }

    /// The exposition in `format`, with what [`Installed::render`] has.
    pub(super) fn render_as(&self, format: ExpositionFormat) -> String {
        let process_metrics = self.process_metrics.load(Ordering::Acquire);
        self.render_page(format, process_metrics, &[])
    }

    /// Every family of the recorder, the process metrics if `process_metrics`, the published
    /// info metrics, state sets and metric sets, in `format`, but the families `left_out`.
    fn render_page(
        &self,
        format: ExpositionFormat,
        process_metrics: bool,
        left_out: &[&str],
    ) -> String {
        self.recorder.render_with(format, |page| {
            if process_metrics {
                crate::process::add_to(page);
            }
            crate::info::add_to(page);
            crate::metric_set::add_to(page);
            page.leave_out(left_out);
        })
    }
}

static RECORDER: Mutex<Option<Installed>> = Mutex::new(None);

/// Installs profilis's recorder as the global `metrics` recorder, or returns the one installed
/// earlier in the process if it has the same buckets: `buckets` for the kinds' durations,
/// `metric_buckets` for the application's histograms.
pub(super) fn install_recorder(
    buckets: &Buckets,
    metric_buckets: &MetricBuckets,
) -> Result<Installed, Error> {
    let mut installed = RECORDER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = installed.as_ref() {
        return if &existing.buckets == buckets && &existing.metric_buckets == metric_buckets {
            Ok(existing.clone())
        } else {
            Err(Error::BucketsFixed)
        };
    }
    // The kinds' duration histograms come from bucket counts with each kind's buckets (see
    // `histograms`); the application's own histograms get the buckets of their name, by
    // default those of every kind without buckets of its own.
    let recorder = PrometheusRecorder::with_buckets(metric_buckets.clone());
    metrics::set_global_recorder(recorder.clone()).map_err(|_| Error::RecorderInstalled)?;
    let new = Installed {
        recorder,
        buckets: buckets.clone(),
        metric_buckets: metric_buckets.clone(),
        process_metrics: Arc::new(AtomicBool::new(true)),
    };
    *installed = Some(new.clone());
    Ok(new)
}

/// Whether an exporter has been installed (its recorder is the process's), without rendering
/// a page.
#[cfg(feature = "dashboard")]
pub(crate) fn is_installed() -> bool {
    RECORDER.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// The Prometheus exposition text of profilis's recorder, or `None` before
/// [`install_exporter`](crate::install_exporter) has run. For applications that serve
/// `/metrics` from their own router.
pub fn render() -> Option<String> {
    let installed = RECORDER.lock().unwrap_or_else(|e| e.into_inner()).clone();
    installed.map(|i| i.render())
}

/// As [`render`], in `format`: OpenMetrics pages carry the duration histograms' exemplars
/// (the trace ids of recent calls in each bucket) and end in `# EOF`. Pick the format from the
/// request's `Accept` header with [`ExpositionFormat::negotiate`].
///
/// ```no_run
/// # use profilis_exporters as profilis;
/// use profilis::{render_as, ExpositionFormat};
///
/// let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
/// let format = ExpositionFormat::negotiate([accept]);
/// if let Some(page) = render_as(format) {
///     // answer with `Content-Type: format.content_type()` and `page`
///     assert!(page.ends_with("# EOF\n"));
/// }
/// ```
pub fn render_as(format: ExpositionFormat) -> Option<String> {
    let installed = RECORDER.lock().unwrap_or_else(|e| e.into_inner()).clone();
    installed.map(|i| i.render_as(format))
}

/// The facade sink (counters and gauges) and the duration histograms as bucket counts.
pub(super) struct PrometheusSink {
    facade: FacadeSink,
    labels: GlobalLabels,
    installed: Installed,
}

impl PrometheusSink {
    pub(super) fn new(labels: GlobalLabels, installed: Installed) -> PrometheusSink {
        PrometheusSink {
            facade: FacadeSink::new(labels.clone()).without_histograms(),
            labels,
            installed,
        }
    }
}

impl Sink for PrometheusSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let result = self.facade.write(batch);
        self.installed
            .recorder
            .durations()
            .add(&self.labels, batch.counts);
        // After the counts, so the calls' series exist.
        self.installed
            .recorder
            .durations()
            .add_exemplars(&self.labels, batch.slow.iter());
        result
    }

    fn wants_events(&self) -> bool {
        self.facade.wants_events()
    }

    /// Exemplars for the duration histograms' buckets (OpenMetrics pages).
    fn wants_exemplars(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "prometheus"
    }
}

//! profilis's Prometheus recorder (`metrics-exporter-prometheus`, installed once per process)
//! and the sink that feeds it: counters and gauges through the facade sink, duration
//! histograms as bucket counts, and the recorder's upkeep.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use profilis_core::{Batch, Buckets, Sink, SinkError};

use crate::error::Error;
use crate::facade::FacadeSink;
use crate::histograms::Histograms;
use crate::labels::GlobalLabels;

/// Run the recorder's upkeep (which folds recorded histogram samples into buckets and frees
/// them) after this many events, so memory stays bounded when nothing scrapes ...
const UPKEEP_EVENTS: u64 = 16_384;
/// ... and at least this often.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// profilis's recorder, once installed: it stays the global recorder for the process.
#[derive(Clone)]
pub(super) struct Installed {
    handle: PrometheusHandle,
    buckets: Buckets,
    histograms: Arc<Histograms>,
}

impl Installed {
    /// The recorder's exposition text followed by the duration histograms.
    pub(super) fn render(&self) -> String {
        let mut text = self.handle.render();
        self.histograms.render_into(&mut text);
        text
    }
}

static RECORDER: Mutex<Option<Installed>> = Mutex::new(None);

/// Installs profilis's recorder as the global `metrics` recorder, or returns the one installed
/// earlier in the process if it has the same buckets.
pub(super) fn install_recorder(buckets: &Buckets) -> Result<Installed, Error> {
    let mut installed = RECORDER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = installed.as_ref() {
        return if &existing.buckets == buckets {
            Ok(existing.clone())
        } else {
            Err(Error::BucketsFixed)
        };
    }
    // profilis's own histograms are rendered from bucket counts (see `histograms`), so the
    // recorder needs no bucket matchers for them; the application's histograms keep its
    // defaults.
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| Error::RecorderInstalled)?;
    let new = Installed {
        handle,
        buckets: buckets.clone(),
        histograms: Arc::new(Histograms::default()),
    };
    *installed = Some(new.clone());
    Ok(new)
}

/// The Prometheus exposition text of profilis's recorder, or `None` before
/// [`install_exporter`](crate::install_exporter) has run. For applications that serve
/// `/metrics` from their own router.
pub fn render() -> Option<String> {
    let installed = RECORDER.lock().unwrap_or_else(|e| e.into_inner()).clone();
    installed.map(|i| i.render())
}

/// The facade sink (counters and gauges), the duration histograms as bucket counts, and the
/// recorder's upkeep (every `UPKEEP_EVENTS` events and every `UPKEEP_INTERVAL`), which keeps
/// the application's own histograms bounded.
pub(super) struct PrometheusSink {
    facade: FacadeSink,
    labels: GlobalLabels,
    installed: Installed,
    since_upkeep: u64,
    last_upkeep: Instant,
}

impl PrometheusSink {
    pub(super) fn new(labels: GlobalLabels, installed: Installed) -> PrometheusSink {
        PrometheusSink {
            facade: FacadeSink::new(labels.clone()).without_histograms(),
            labels,
            installed,
            since_upkeep: 0,
            last_upkeep: Instant::now(),
        }
    }
}

impl Sink for PrometheusSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let result = self.facade.write(batch);
        self.installed.histograms.add(&self.labels, batch.counts);
        self.since_upkeep += batch.events.len() as u64;
        if self.since_upkeep >= UPKEEP_EVENTS || self.last_upkeep.elapsed() >= UPKEEP_INTERVAL {
            self.installed.handle.run_upkeep();
            self.since_upkeep = 0;
            self.last_upkeep = Instant::now();
        }
        result
    }

    fn wants_events(&self) -> bool {
        self.facade.wants_events()
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.installed.handle.run_upkeep();
        Ok(())
    }

    fn name(&self) -> &str {
        "prometheus"
    }
}

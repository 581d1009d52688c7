//! `install_exporter()`, its builder [`Exporter`] and the guard it returns: installs
//! profilis's Prometheus recorder as the global `metrics` recorder, starts the collector with
//! the Prometheus sink (plus any other sinks) and the built-in `/metrics` listener.
//!
//! - `builder`: the settings, and `install`;
//! - `env`: the `PROFILIS_*` variables;
//! - `prometheus`: the recorder, installed once per process, and the sink that feeds it.

use std::net::SocketAddr;

use profilis_core::{Collector, ShutdownReport};

mod builder;
mod env;
mod prometheus;

pub use builder::Exporter;
pub use env::parse_buckets;
#[cfg(feature = "dashboard")]
pub(crate) use prometheus::is_installed;
pub use prometheus::{render, render_as};

use crate::error::Error;
use crate::labels::GlobalLabels;
#[cfg(feature = "listener")]
use crate::listener::Listener;
use crate::metric_names::SINK_FAILURES_TOTAL;
use prometheus::Installed;

/// Reads the `PROFILIS_*` variables and installs everything: the recorder, the collector with
/// the Prometheus sink, and the built-in listener. Keep the guard alive; dropping it flushes.
///
/// ```no_run
/// # use profilis_exporters as profilis;
/// fn main() -> Result<(), profilis::Error> {
///     let _profilis = profilis::install_exporter()?;
///     // ... run the service; Prometheus scrapes http://127.0.0.1:9464/metrics
///     Ok(())
/// }
/// ```
///
/// # Errors
/// As [`Exporter::install`].
pub fn install_exporter() -> Result<ExporterGuard, Error> {
    Exporter::new().install()
}

/// What [`install_exporter`] started. Dropping it (or [`ExporterGuard::shutdown`]) drains every
/// queued event into the recorder and the other sinks and flushes them, records what that cost
/// in the health metrics, and only then stops the listener, so a scrape until then sees it.
/// The recorder stays installed: [`render`] still reads it afterwards.
#[must_use = "dropping the guard stops profiling"]
pub struct ExporterGuard {
    collector: Option<Collector>,
    #[cfg(feature = "listener")]
    listener: Option<Listener>,
    #[cfg(feature = "dashboard")]
    dashboard: Option<crate::dashboard::Dashboard>,
    installed: Installed,
    labels: GlobalLabels,
    textfile: Option<crate::textfile::TextfileWriter>,
    #[cfg(feature = "pushgateway")]
    pushgateway: Option<crate::pushgateway::Pushgateway>,
}

impl ExporterGuard {
    /// The Prometheus exposition text now: the calls the collector has gathered, up to its last
    /// flush ([`Exporter::flush_interval`](crate::Exporter::flush_interval) ago at most), not
    /// those of the interval under way. Dropping the guard flushes them.
    pub fn render(&self) -> String {
        self.installed.render()
    }

    /// The exposition now in `format`: OpenMetrics pages carry the exemplars (see
    /// [`render_as`]).
    pub fn render_as(&self, format: crate::ExpositionFormat) -> String {
        self.installed.render_as(format)
    }

    /// Where the built-in listener listens (`None` without one).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        #[cfg(feature = "listener")]
        return self.listener.as_ref().map(Listener::local_addr);
        #[cfg(not(feature = "listener"))]
        None
    }

    /// The live dashboard, when it is on ([`Exporter::dashboard`]).
    #[cfg(feature = "dashboard")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
    pub fn dashboard(&self) -> Option<&crate::dashboard::Dashboard> {
        self.dashboard.as_ref()
    }

    /// The service, instance and worker labels in use.
    pub fn labels(&self) -> &GlobalLabels {
        &self.labels
    }

    /// Writes the exposition now to `path` for node_exporter's textfile collector, atomically
    /// ([`write_textfile`](crate::write_textfile)): the page of
    /// [`Exporter::textfile`](crate::Exporter::textfile), without the process metrics and
    /// profilis's unlabelled health metrics. Like [`ExporterGuard::render`], without the calls
    /// of the flush interval under way: right after a short batch of work the file may be
    /// empty; dropping the guard of an [`Exporter::textfile`](crate::Exporter::textfile) writes
    /// everything.
    ///
    /// # Errors
    /// As [`write_textfile`](crate::write_textfile).
    pub fn write_textfile(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<(), crate::TextfileError> {
        crate::write_textfile(path, &self.installed.render_textfile())
    }

    /// Pushes the exposition now to the exporter's Pushgateway
    /// ([`Exporter::pushgateway`](crate::Exporter::pushgateway)) with `method`: the page of
    /// [`ExporterGuard::render`], up to the collector's last flush (dropping the guard flushes,
    /// then pushes everything). A failure changes nothing locally: the metrics stay, and the
    /// next push sends them.
    ///
    /// # Errors
    /// [`PushError::NotConfigured`](crate::PushError) without a gateway; otherwise as
    /// [`Pushgateway::push`](crate::Pushgateway::push).
    #[cfg(feature = "pushgateway")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pushgateway")))]
    pub fn push(&self, method: crate::PushMethod) -> Result<(), crate::PushError> {
        let gateway = self
            .pushgateway
            .as_ref()
            .ok_or(crate::PushError::NotConfigured)?;
        gateway.push(method, &self.render())
    }

    /// The exporter's Pushgateway, if any (to [`delete`](crate::Pushgateway::delete) its
    /// group, say).
    #[cfg(feature = "pushgateway")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pushgateway")))]
    pub fn pushgateway(&self) -> Option<&crate::Pushgateway> {
        self.pushgateway.as_ref()
    }

    /// Flushes and stops, and says how that went: whether the flush finished within the
    /// shutdown timeout and what the sinks' last flushes lost (for the JSONL sink, the lines it
    /// could not write, also counted in `profilis_jsonl_dropped_lines_total`). A failed flush
    /// is also printed on stderr, and counted in `profilis_sink_failures_total` before the
    /// listener stops.
    ///
    /// ```no_run
    /// # use profilis_exporters as profilis;
    /// # fn main() -> Result<(), profilis::Error> {
    /// let profilis = profilis::install_exporter()?;
    /// // ... run the service
    /// let report = profilis.shutdown();
    /// if !report.is_clean() {
    ///     eprintln!("profiling data was lost at shutdown: {report}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn shutdown(mut self) -> ShutdownReport {
        self.stop()
    }

    fn stop(&mut self) -> ShutdownReport {
        let report = self
            .collector
            .take()
            .map_or_else(ShutdownReport::default, Collector::shutdown);
        // A failed last flush comes after the last batch, whose stats fed this counter.
        metrics::counter!(SINK_FAILURES_TOTAL).absolute(profilis_core::stats().sink_failures);
        // The outputs of the exposition see the last flush.
        #[cfg(feature = "pushgateway")]
        if let Some(gateway) = self.pushgateway.take() {
            if let Some(method) = gateway.on_drop() {
                if let Err(e) = gateway.push(method, &self.render()) {
                    metrics::counter!(crate::metric_names::PUSH_FAILURES_TOTAL).increment(1);
                    eprintln!("profilis: the push at shutdown failed: {e}");
                }
            }
        }
        if let Some(mut textfile) = self.textfile.take() {
            if let Err(e) = textfile.finish() {
                eprintln!("profilis: the last textfile write failed: {e}");
            }
        }
        #[cfg(feature = "listener")]
        if let Some(listener) = self.listener.take() {
            listener.shutdown();
        }
        #[cfg(feature = "dashboard")]
        if let Some(dashboard) = self.dashboard.take() {
            crate::dashboard::uninstall(&dashboard);
        }
        report
    }
}

impl Drop for ExporterGuard {
    fn drop(&mut self) {
        // Dropped without `shutdown`: what a failed flush lost is said on stderr and in the
        // metrics only.
        let _ = self.stop();
    }
}

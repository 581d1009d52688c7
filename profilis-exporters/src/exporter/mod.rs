//! `install_exporter()`, its builder [`Exporter`] and the guard it returns: installs
//! profilis's Prometheus recorder as the global `metrics` recorder, starts the collector with
//! the Prometheus sink (plus any other sinks) and the built-in `/metrics` listener.
//!
//! - `builder`: the settings, and `install`;
//! - `env`: the `PROFILIS_*` variables;
//! - `prometheus`: the recorder, installed once per process, and the sink that feeds it.

use std::net::SocketAddr;

use profilis_core::Collector;

mod builder;
mod env;
mod prometheus;

pub use builder::Exporter;
pub use env::parse_buckets;
pub use prometheus::render;

use crate::error::Error;
use crate::labels::GlobalLabels;
#[cfg(feature = "listener")]
use crate::listener::Listener;
use prometheus::Installed;

/// Reads the `PROFILIS_*` variables and installs everything: the recorder, the collector with
/// the Prometheus sink, and the built-in listener. Keep the guard alive; dropping it flushes.
///
/// ```no_run
/// fn main() -> Result<(), profilis_exporters::Error> {
///     let _profilis = profilis_exporters::install_exporter()?;
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

/// What [`install_exporter`] started. Dropping it drains every queued event into the recorder
/// (and the other sinks), then stops the listener. The recorder stays installed.
#[must_use = "dropping the guard stops profiling"]
pub struct ExporterGuard {
    collector: Option<Collector>,
    #[cfg(feature = "listener")]
    listener: Option<Listener>,
    installed: Installed,
    labels: GlobalLabels,
}

impl ExporterGuard {
    /// The Prometheus exposition text now.
    pub fn render(&self) -> String {
        self.installed.render()
    }

    /// Where the built-in listener listens (`None` without one).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        #[cfg(feature = "listener")]
        return self.listener.as_ref().map(Listener::local_addr);
        #[cfg(not(feature = "listener"))]
        None
    }

    /// The service, instance and worker labels in use.
    pub fn labels(&self) -> &GlobalLabels {
        &self.labels
    }

    /// Flushes and stops; returns whether the flush finished within the shutdown timeout.
    pub fn shutdown(mut self) -> bool {
        self.stop()
    }

    fn stop(&mut self) -> bool {
        let flushed = self.collector.take().is_none_or(Collector::shutdown);
        #[cfg(feature = "listener")]
        if let Some(listener) = self.listener.take() {
            listener.shutdown();
        }
        flushed
    }
}

impl Drop for ExporterGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

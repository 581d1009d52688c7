//! `profilis-json-exporter`: polls a JSON status endpoint and serves its fields as Prometheus
//! metrics, the polling-exporter tutorial's exporter done with `profilis-exporter-kit`.
//!
//! Every `POLLING_INTERVAL_SECONDS` it `GET`s `http://TARGET_HOST:TARGET_PORT/TARGET_METRICS`
//! and maps the document's fields to metrics: the tutorial's four fields by default, or those
//! of a mapping file (`--config`, see `config.rs`). A poll that fails (the target down, slow,
//! answering a non-2xx status, or not JSON) is an update error: the kit serves
//! `exporter_up 0`, counts it in `exporter_update_errors_total`, logs it naming the URL, and
//! stops serving the mapped values until a poll succeeds again.

mod config;
mod document;
mod fetch;
mod mapping;
mod options;

use std::process::ExitCode;
use std::time::Duration;

use profilis_exporter_kit::{BoxError, Context, Script, TimedOut, UpdateMode};

use crate::config::MetricSpec;
use crate::fetch::{FetchError, Fetcher};
use crate::mapping::Mapping;
use crate::options::JsonOptions;

/// How much longer than the fetch's own timeout the kit lets a poll run, so that a slow target
/// is reported by the fetch, naming the URL, rather than by the kit's limit. The fetch's
/// timeout is returned as [`TimedOut`], so it is counted as `reason="timeout"` all the same.
const KIT_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

struct JsonExporter {
    fetcher: Fetcher,
    mapping: Mapping,
    interval: Duration,
}

impl Script for JsonExporter {
    type Options = JsonOptions;

    const NAME: &'static str = "profilis-json-exporter";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Polls a JSON status endpoint and serves its fields as Prometheus metrics";
    const DEFAULT_PORT: u16 = 9877;
    const PROCESS_STATS: bool = true;

    fn configure(options: JsonOptions, context: &Context) -> Result<Self, BoxError> {
        let (specs, source) = match options.config() {
            Some(file) => (
                config::read(file)?,
                format!("the mapping file {}", file.display()),
            ),
            None => (MetricSpec::tutorial(), "the built-in mapping".to_owned()),
        };
        let mapping = Mapping::declare(specs, context.metrics(), &source)?;
        let fetcher = Fetcher::new(&options.url(), options.timeout())?;
        tracing::info!(
            "polling {} every {:?} (timeout {:?}) with {source}",
            fetcher.url(),
            options.polling_interval_seconds,
            options.timeout()
        );
        Ok(JsonExporter {
            fetcher,
            mapping,
            interval: options.polling_interval_seconds,
        })
    }

    /// Polls every interval, within the fetch's timeout and the margin, or the kit's longest
    /// timeout when the fetch's is that already (`--target-timeout-seconds 86400`): the fetch
    /// then reports its own timeout or the kit's limit does, counted as a timeout either way.
    fn update_mode(&self) -> UpdateMode {
        UpdateMode::Poll {
            interval: self.interval,
            timeout: (self.fetcher_timeout() + KIT_TIMEOUT_MARGIN)
                .min(profilis_exporter_kit::MAX_POLL_DURATION),
        }
    }

    async fn update(&self) -> Result<(), BoxError> {
        let document = self
            .fetcher
            .fetch(self.mapping.pointers())
            .await
            .map_err(|error| match error {
                FetchError::Timeout { .. } => BoxError::from(TimedOut::new(error.to_string())),
                other => BoxError::from(other),
            })?;
        let written = self.mapping.apply(&document);
        tracing::debug!(url = self.fetcher.url(), written, "polled");
        Ok(())
    }
}

impl JsonExporter {
    fn fetcher_timeout(&self) -> Duration {
        self.fetcher.timeout()
    }
}

fn main() -> ExitCode {
    profilis_exporter_kit::main::<JsonExporter>()
}

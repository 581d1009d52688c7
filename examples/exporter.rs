//! A standalone exporter in a few lines: one option, a gauge and a counter, updated on each
//! scrape. Run it and scrape it:
//!
//! ```text
//! cargo run --example exporter --features exporter-kit -- --path /tmp -p 9800
//! curl http://localhost:9800/metrics
//! ```

use std::time::Duration;

use profilis::kit::{BoxError, Context, Counter, Gauge, Script, UpdateMode};

/// Counts the entries of a directory.
#[derive(clap::Args)]
struct Options {
    /// The directory to watch.
    #[arg(long, env = "WATCH_PATH", default_value = ".")]
    path: String,
}

struct DirExporter {
    path: String,
    entries: Gauge,
    reads: Counter,
}

impl Script for DirExporter {
    type Options = Options;
    const NAME: &'static str = "dir-exporter";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Serves the number of entries of a directory.";
    const DEFAULT_PORT: u16 = 9800;

    fn configure(options: Options, context: &Context) -> Result<Self, BoxError> {
        let metrics = context.metrics();
        Ok(DirExporter {
            entries: metrics.gauge("dir_entries", "Entries in the directory", &["path"])?,
            reads: metrics.counter("dir_reads", "Times the directory was read", &[])?,
            path: options.path,
        })
    }

    fn update_mode(&self) -> UpdateMode {
        UpdateMode::OnScrape {
            timeout: Duration::from_secs(5),
        }
    }

    async fn update(&self) -> Result<(), BoxError> {
        // Reading a directory blocks: it runs on a blocking thread, not on the runtime that
        // answers the scrapes. The error names the path.
        let path = self.path.clone();
        let entries = tokio::task::spawn_blocking(move || {
            std::fs::read_dir(&path)
                .map(|dir| dir.count())
                .map_err(|e| format!("reading the directory {path:?}: {e}"))
        })
        .await??;
        self.entries.set(&[&self.path], entries as f64)?;
        self.reads.inc(&[])?;
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    profilis::kit::main::<DirExporter>()
}

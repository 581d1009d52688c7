//! The console sink: every event as JSON, to stdout or any writer.

use std::fmt;
use std::io::{self, Write};

use profilis_core::{Batch, EventFilter, Sink, SinkError};

use crate::json;

/// How the console sink lays out each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsoleFormat {
    /// One compact JSON object per line, the same lines as the JSONL files.
    #[default]
    Compact,
    /// Indented JSON over several lines per event, for reading by eye.
    Pretty,
}

/// Writes every event as JSON (the keys of the JSONL files, see
/// [`JsonEvent`](crate::JsonEvent)), one compact line each or indented over several lines, to
/// stdout or any [`io::Write`].
///
/// ```no_run
/// # use profilis_exporters as profilis;
/// use profilis::{ConsoleFormat, ConsoleSink};
/// use profilis::Exporter;
///
/// # fn main() -> Result<(), profilis::Error> {
/// // Compact lines on stdout, beside the Prometheus exporter.
/// let _profilis = Exporter::new().console(ConsoleFormat::Compact).install()?;
/// # Ok(()) }
/// # fn other() -> Result<(), profilis::Error> {
/// // Or indented JSON into a file of your own.
/// let file = std::fs::File::create("events.json").expect("created");
/// let _profilis = Exporter::new()
///     .console(ConsoleSink::to_writer(file).format(ConsoleFormat::Pretty))
///     .install()?;
/// # Ok(()) }
/// ```
///
/// Each batch is serialized into one reused buffer and handed to the writer in a single write,
/// then flushed, so lines of different batches never interleave and nothing waits in a buffer.
/// A write or flush that fails is returned as a [`SinkError`] (counted as a sink failure); the
/// next batch is tried afresh.
pub struct ConsoleSink {
    out: Box<dyn Write + Send>,
    format: ConsoleFormat,
    filter: Option<EventFilter>,
    buf: Vec<u8>,
}

impl ConsoleSink {
    /// Compact lines on stdout.
    pub fn stdout() -> ConsoleSink {
        ConsoleSink::to_writer(io::stdout())
    }

    /// Compact lines to `out` (a file, a socket, a `Vec<u8>` behind a lock, ...).
    pub fn to_writer(out: impl Write + Send + 'static) -> ConsoleSink {
        ConsoleSink {
            out: Box::new(out),
            format: ConsoleFormat::Compact,
            filter: None,
            buf: Vec::new(),
        }
    }

    /// Lays out events as `format` (default [`ConsoleFormat::Compact`]).
    #[must_use]
    pub fn format(mut self, format: ConsoleFormat) -> ConsoleSink {
        self.format = format;
        self
    }

    /// Writes only the events `filter` accepts (only HTTP events, or only slow calls, say); the
    /// other sinks still get every event.
    #[must_use]
    pub fn filter(mut self, filter: EventFilter) -> ConsoleSink {
        self.filter = Some(filter);
        self
    }
}

impl Default for ConsoleSink {
    /// Compact lines on stdout.
    fn default() -> ConsoleSink {
        ConsoleSink::stdout()
    }
}

impl From<ConsoleFormat> for ConsoleSink {
    /// Events on stdout, laid out as `format`.
    fn from(format: ConsoleFormat) -> ConsoleSink {
        ConsoleSink::stdout().format(format)
    }
}

impl fmt::Debug for ConsoleSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleSink")
            .field("format", &self.format)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl Sink for ConsoleSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        if batch.events.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        let write_event = match self.format {
            ConsoleFormat::Compact => json::write_line,
            ConsoleFormat::Pretty => json::write_pretty,
        };
        for event in batch.events {
            write_event(&mut self.buf, event);
        }
        self.out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush())
            .map_err(|e| SinkError::with_source("console sink could not write", e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .map_err(|e| SinkError::with_source("console sink could not flush", e))
    }

    fn name(&self) -> &str {
        "console"
    }

    fn event_filter(&self) -> Option<&EventFilter> {
        self.filter.as_ref()
    }
}

//! Appending lines to the active file: one `write_all` per batch, a cut after the last complete
//! line when a write fails, retries with a doubling backoff, and a bounded buffer of lines
//! waiting for a retry.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use profilis_core::SinkError;

use super::{count_lines, JsonlSink, JSONL_DROPPED_LINES_TOTAL};
use crate::limits::MAX_TIMEOUT;

/// A pending buffer grown past this by a failure is shrunk back once written.
const SHRINK_ABOVE: usize = 4 * 1024 * 1024;

impl JsonlSink {
    /// Writes every pending line to the active file with one `write_all`. On failure the
    /// complete lines that reached the file are taken out of the buffer and a partial one is
    /// cut from the file, so a retry writes each line exactly once.
    pub(super) fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.file.is_none() || self.file_moved() {
            self.open_active()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("the active file is not open"));
        };
        let before = self.active_bytes;
        let mut written = 0;
        let result = loop {
            if written == self.pending.len() {
                break Ok(());
            }
            match file.write(&self.pending[written..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if before == 0 && written > 0 {
            self.first_line_at = Some(Instant::now());
        }
        match result {
            Ok(()) => {
                self.active_bytes += written as u64;
                self.pending.clear();
                if self.pending.capacity() > SHRINK_ABOVE {
                    self.pending.shrink_to(64 * 1024);
                }
                Ok(())
            }
            Err(e) => {
                let complete = self.pending[..written]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                self.pending.drain(..complete);
                self.active_bytes = before + complete as u64;
                // If the cut fails too, reopening cuts after the last complete line.
                if written > complete && file.set_len(self.active_bytes).is_err() {
                    self.file = None;
                }
                Err(e)
            }
        }
    }

    /// Drops the oldest pending lines beyond `pending_bytes`, counting them.
    pub(super) fn bound_pending(&mut self) {
        let max = self.config.pending_bytes;
        if self.pending.len() <= max {
            return;
        }
        let excess = self.pending.len() - max;
        let cut = self.pending[excess - 1..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.pending.len(), |i| excess + i);
        let lines = count_lines(&self.pending[..cut]);
        self.pending.drain(..cut);
        self.count_dropped(lines);
    }

    pub(super) fn count_dropped(&self, lines: u64) {
        if lines > 0 {
            self.counters
                .0
                .dropped_lines
                .fetch_add(lines, Ordering::Relaxed);
            metrics::counter!(JSONL_DROPPED_LINES_TOTAL).increment(lines);
        }
    }

    /// At the last flush, after `error`: the pending lines will never be written. Counts them
    /// as dropped and says how many are lost, and where, in the returned error.
    pub(super) fn lose_pending(&mut self, error: io::Error) -> SinkError {
        let lines = count_lines(&self.pending);
        self.pending.clear();
        self.count_dropped(lines);
        self.counters
            .0
            .failed_writes
            .fetch_add(1, Ordering::Relaxed);
        SinkError::with_source(
            format!(
                "{lines} JSONL line(s) could not be written to {} at shutdown and are lost",
                self.config.dir.display()
            ),
            error,
        )
        .with_lost(lines)
    }

    /// Writes pending lines unless waiting for a retry, then rotates if due; on failure
    /// schedules the next try.
    pub(super) fn push(&mut self, now: Instant) -> Result<(), SinkError> {
        if let Some(at) = self.retry_at {
            if now < at {
                if self.pending.is_empty() {
                    return Ok(());
                }
                self.bound_pending();
                self.counters
                    .0
                    .failed_writes
                    .fetch_add(1, Ordering::Relaxed);
                return Err(SinkError::new(format!(
                    "JSONL file {}: {} bytes wait for a retry in {:?} after a failed write",
                    self.active.display(),
                    self.pending.len(),
                    at - now,
                )));
            }
        }
        let result = self.write_pending().and_then(|()| self.rotate_if_due(now));
        match result {
            Ok(()) => {
                self.retry_at = None;
                self.backoff = self.config.retry_initial;
                self.report_not_regular()
            }
            Err(e) => Err(self.failed(now, e)),
        }
    }

    /// After lines were written beside the active path because something other than a
    /// regular file is there: a failure, counted, that says so (no line is lost).
    pub(super) fn report_not_regular(&mut self) -> Result<(), SinkError> {
        match self.not_regular.take() {
            None => Ok(()),
            Some(message) => {
                self.counters
                    .0
                    .failed_writes
                    .fetch_add(1, Ordering::Relaxed);
                Err(SinkError::new(message))
            }
        }
    }

    pub(super) fn failed(&mut self, now: Instant, error: io::Error) -> SinkError {
        self.bound_pending();
        self.counters
            .0
            .failed_writes
            .fetch_add(1, Ordering::Relaxed);
        let wait = self.backoff;
        // Settings bound the wait (`MAX_TIMEOUT`); nothing here overflows whatever it is.
        self.retry_at = Some(
            now.checked_add(wait)
                .or_else(|| now.checked_add(MAX_TIMEOUT))
                .unwrap_or(now),
        );
        self.backoff = wait.saturating_mul(2).min(self.config.retry_max);
        SinkError::with_source(
            format!(
                "cannot write JSONL file {} ({} bytes kept for a retry in {wait:?})",
                self.active.display(),
                self.pending.len(),
            ),
            error,
        )
    }
}

/// Creates, writes and removes a probe file in `dir`: a new file (`O_EXCL`, which never
/// follows a link), after removing one left by a process of the same id.
pub(super) fn probe(dir: &Path) -> io::Result<()> {
    let path = dir.join(format!(".profilis-probe-{}", std::process::id()));
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let written = file.write_all(b"probe\n");
    drop(file);
    let removed = fs::remove_file(&path);
    written.and(removed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::JsonlConfig;

    #[test]
    fn the_longest_wait_does_not_overflow_the_clock() {
        let dir = std::env::temp_dir().join(format!("profilis-jsonl-wait-{}", std::process::id()));
        let mut sink = JsonlSink::new(JsonlConfig::new(&dir)).unwrap();
        // Beyond what settings allow, as if a check were missed.
        sink.backoff = Duration::MAX;
        sink.config.retry_max = Duration::MAX;
        let now = Instant::now();
        let err = sink.failed(now, io::Error::other("disk full"));
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(sink.retry_at.is_some_and(|at| at >= now));
        assert_eq!(sink.backoff, Duration::MAX);
        drop(sink);
        fs::remove_dir_all(&dir).unwrap();
    }
}

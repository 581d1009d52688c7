//! Rotation by size and age, retention of rotated files, and the last rotation at shutdown.

use std::fs;
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use super::naming::{free_rotated_path, rotated_files};
use super::{JsonlSink, JSONL_REMOVED_FILES_TOTAL, JSONL_ROTATED_FILES_TOTAL};

impl JsonlSink {
    pub(super) fn rotate_if_due(&mut self, now: Instant) -> io::Result<()> {
        if self.active_bytes == 0 {
            return Ok(());
        }
        let by_size = self.active_bytes >= self.config.rotate_bytes;
        let by_age = match (self.config.rotate_every, self.first_line_at) {
            (Some(every), Some(first)) => now.saturating_duration_since(first) >= every,
            _ => false,
        };
        if by_size || by_age {
            self.rotate()
        } else {
            Ok(())
        }
    }

    /// Renames the active file to the first free rotated name of this second, then applies
    /// retention. The next write opens a new active file, at the active path again if the
    /// sink wrote beside it. Something other than a regular file at the active file's path (a
    /// link or a FIFO put there since it was opened) is not renamed: an error.
    pub(super) fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if let Some(what) = self.active_not_regular() {
            return Err(io::Error::other(format!(
                "JSONL file {} is {what}: not rotated",
                self.active.display()
            )));
        }
        let (key, target) = free_rotated_path(&self.config.dir, SystemTime::now(), self.newest)?;
        fs::rename(&self.active, &target)?;
        self.active = self.config.active_path();
        self.newest = Some(key);
        self.active_bytes = 0;
        self.first_line_at = None;
        self.counters
            .0
            .rotated_files
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!(JSONL_ROTATED_FILES_TOTAL).increment(1);
        self.apply_retention()
    }

    /// Deletes the oldest rotated files until `keep_files` and `keep_bytes` hold.
    pub(super) fn apply_retention(&mut self) -> io::Result<()> {
        let (keep_files, keep_bytes) = (self.config.keep_files, self.config.keep_bytes);
        if keep_files.is_none() && keep_bytes.is_none() {
            return Ok(());
        }
        let mut rotated = rotated_files(&self.config.dir)?;
        rotated.sort_unstable_by_key(|(key, _, _)| *key);
        let mut files = rotated.len();
        let mut bytes: u64 = rotated.iter().map(|(_, _, len)| len).sum();
        for (_, path, len) in &rotated {
            let over = keep_files.is_some_and(|keep| files > keep)
                || keep_bytes.is_some_and(|keep| bytes > keep);
            if !over {
                break;
            }
            match fs::remove_file(path) {
                Ok(()) => {
                    self.counters
                        .0
                        .removed_files
                        .fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(JSONL_REMOVED_FILES_TOTAL).increment(1);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            files -= 1;
            bytes -= len;
        }
        Ok(())
    }

    /// At shutdown: the active file is synced and rotated if it holds lines, removed if empty.
    /// Something other than a regular file at its path is left as it is.
    pub(super) fn finish_active(&mut self) -> io::Result<()> {
        if self.file_moved() {
            self.file = None;
        }
        if self.file.is_none() {
            match fs::symlink_metadata(&self.active) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
                Ok(meta) if !meta.is_file() => return Ok(()),
                Ok(_) => {}
            }
            self.open_active()?;
        }
        if let Some(file) = &self.file {
            file.sync_data()?;
        }
        if self.active_bytes > 0 {
            self.rotate()
        } else {
            self.file = None;
            if self.active_not_regular().is_some() {
                return Ok(());
            }
            let removed = match fs::remove_file(&self.active) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
            self.active = self.config.active_path();
            removed
        }
    }
}

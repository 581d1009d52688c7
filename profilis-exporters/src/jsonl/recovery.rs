//! Starting after a crash: an active file left behind is cut after its last complete line
//! and rotated, so every complete line written before the crash is kept. Opening the active
//! file, never through a link or a FIFO put at its path.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Instant;

#[cfg(unix)]
use super::files::{lock_dir, LockError};
use super::files::{not_regular_at, open_regular};
use super::naming::{beside_name, left_active_files, rotated_files};
use super::JsonlSink;

/// Most files tried beside the active file before giving up (each taken by something else).
const MAX_BESIDE: u32 = 1024;

impl JsonlSink {
    /// At start: a non-empty active file left by an earlier run (and any file it wrote to
    /// beside the active path) is cut after its last complete line and rotated, then a new
    /// active file is opened. Something other than a regular file at the active path is left
    /// alone: see [`JsonlSink::open_active`].
    pub(super) fn recover(&mut self) -> io::Result<()> {
        self.newest = rotated_files(&self.config.dir)?
            .into_iter()
            .map(|(key, _, _)| key)
            .max();
        let main = self.config.active_path();
        for path in left_active_files(&self.config.dir, &self.config.active_name)? {
            self.active = path.clone();
            self.open_active()?;
            if self.active != path {
                // Swapped for a link since listed: nothing of ours to recover there.
                continue;
            }
            if self.active_bytes > 0 {
                self.rotate()?;
            } else if path != main {
                self.file = None;
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        if self.active != main {
            self.file = None;
            self.active = main;
        }
        self.apply_retention()?;
        if self.file.is_none() {
            self.open_active()?;
        }
        Ok(())
    }

    /// Opens (or creates, with the directory) the active file in append mode, cutting a
    /// trailing partial line. If something other than a regular file is at the active path (a
    /// symbolic link, a FIFO), it is neither followed, nor cut, nor moved: the sink writes to
    /// a file of its own beside it (`<active name>.1`, ...) and its next write or flush reports
    /// the failure ([`JsonlSink::not_regular`]).
    pub(super) fn open_active(&mut self) -> io::Result<()> {
        self.file = None;
        fs::create_dir_all(&self.config.dir)?;
        self.relock_if_made_anew()?;
        let mut file = match open_regular(&self.active, false)? {
            Ok(file) => file,
            Err(what) => {
                let (path, file) = self.open_beside()?;
                self.not_regular = Some(format!(
                    "JSONL file {} is {what}: the sink neither writes to it nor moves it, and \
                     writes to {} instead (remove it, and the sink takes that name again after \
                     its next rotation)",
                    self.active.display(),
                    path.display(),
                ));
                self.active = path;
                file
            }
        };
        let len = file.metadata()?.len();
        let complete = complete_len(&mut file, len)?;
        if complete < len {
            file.set_len(complete)?;
        }
        self.active_bytes = complete;
        if complete == 0 {
            self.first_line_at = None;
        } else if self.first_line_at.is_none() {
            self.first_line_at = Some(Instant::now());
        }
        self.file = Some(file);
        Ok(())
    }

    /// Creates the first free file beside the active path (`<active name>.N`).
    fn open_beside(&self) -> io::Result<(PathBuf, File)> {
        for n in 1..=MAX_BESIDE {
            let path = self
                .config
                .dir
                .join(beside_name(&self.config.active_name, n));
            match open_regular(&path, true) {
                Ok(Ok(file)) => return Ok((path, file)),
                Ok(Err(_)) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "{} is not a regular file, and no file beside it could be created",
            self.active.display()
        )))
    }

    /// The lock is on the directory the sink started in: if that was moved or removed and the
    /// path made anew (by [`JsonlSink::open_active`]), the new directory is locked too, or, if
    /// another sink got there first, nothing is written to it (an error: the lines wait for
    /// a retry). On Unix; elsewhere the lock file went with the old directory.
    pub(super) fn relock_if_made_anew(&mut self) -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let Some(lock) = &self.lock else {
                return Ok(());
            };
            let (held, now) = (lock.metadata()?, fs::metadata(&self.config.dir)?);
            if held.ino() == now.ino() && held.dev() == now.dev() {
                return Ok(());
            }
            match lock_dir(&self.config.dir) {
                Ok(lock) => {
                    self.lock = lock;
                    Ok(())
                }
                Err(LockError::InUse) => Err(io::Error::other(format!(
                    "JSONL directory {} was made anew and another JSONL sink writes to it now",
                    self.config.dir.display()
                ))),
                Err(LockError::Io(e)) => Err(e),
            }
        }
        #[cfg(not(unix))]
        {
            Ok(())
        }
    }

    /// Whether the open active file is no longer the one at the active path (deleted, moved,
    /// replaced, or its directory removed): then it is reopened, so lines never go to a lost
    /// file.
    pub(super) fn file_moved(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // The entry itself: a link put in its place is not the file, whatever it points to.
            match (file.metadata(), fs::symlink_metadata(&self.active)) {
                (Ok(open), Ok(at_path)) => {
                    open.ino() != at_path.ino() || open.dev() != at_path.dev()
                }
                _ => true,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = file;
            !fs::symlink_metadata(&self.active).is_ok_and(|m| m.is_file())
        }
    }

    /// What is at the active path if it is not a regular file.
    pub(super) fn active_not_regular(&self) -> Option<&'static str> {
        not_regular_at(&self.active)
    }
}

/// Length of `file` up to and including its last `\n` (0 if it has none).
fn complete_len(file: &mut File, len: u64) -> io::Result<u64> {
    let mut chunk = [0u8; 8192];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_len_finds_the_last_newline_across_chunks() {
        let dir = std::env::temp_dir().join(format!("profilis-jsonl-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut text = b"a\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 20_000));
        fs::write(&path, &text).unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(complete_len(&mut file, text.len() as u64).unwrap(), 2);
        fs::write(&path, b"no newline").unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(complete_len(&mut file, 10).unwrap(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}

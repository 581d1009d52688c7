//! Starting after a crash: an active file left behind is cut after its last complete line
//! and rotated, so every complete line written before the crash is kept.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::time::Instant;

use super::naming::rotated_files;
use super::JsonlSink;

impl JsonlSink {
    /// At start: a non-empty active file left by an earlier run is cut after its last complete
    /// line and rotated, then a new active file is opened.
    pub(super) fn recover(&mut self) -> io::Result<()> {
        self.newest = rotated_files(&self.config.dir)?
            .into_iter()
            .map(|(key, _, _)| key)
            .max();
        if self.active.try_exists()? {
            self.open_active()?;
            if self.active_bytes > 0 {
                self.rotate()?;
            }
        }
        self.apply_retention()?;
        if self.file.is_none() {
            self.open_active()?;
        }
        Ok(())
    }

    /// Opens (or creates, with the directory) the active file in append mode, cutting a
    /// trailing partial line.
    pub(super) fn open_active(&mut self) -> io::Result<()> {
        self.file = None;
        fs::create_dir_all(&self.config.dir)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.active)?;
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

    /// Whether the open active file is no longer the one at the active path (deleted, moved,
    /// or its directory removed): then it is reopened, so lines never go to a lost file.
    pub(super) fn file_moved(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            match (file.metadata(), fs::metadata(&self.active)) {
                (Ok(open), Ok(at_path)) => {
                    open.ino() != at_path.ino() || open.dev() != at_path.dev()
                }
                _ => true,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = file;
            !self.active.exists()
        }
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

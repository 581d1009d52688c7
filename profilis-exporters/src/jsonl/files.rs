//! Opening the sink's files without following a link or blocking on a FIFO put at their
//! path, and the lock that keeps a directory to one sink.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// What is at a path instead of a regular file of the sink's own: "a symbolic link, not a
/// regular file", "a FIFO, not a regular file", ...
pub(super) type NotRegular = &'static str;

/// Opens `path` for reading and appending, creating it if missing (with `create_new`, only
/// creating it: an existing entry is [`io::ErrorKind::AlreadyExists`]). Never through a
/// symbolic link at `path` (`O_NOFOLLOW`), and never blocking, on a FIFO nobody reads say (the
/// open is `O_NONBLOCK`, cleared once the open file is seen to be a regular file). Anything
/// but a regular file is `Ok(Err(what))` and is left as it is: not truncated, not written. So
/// is, on Unix, a regular file with other hard links: another name (outside the directory,
/// say) reaches it, so it is not the sink's own.
pub(super) fn open_regular(path: &Path, create_new: bool) -> io::Result<Result<File, NotRegular>> {
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    #[cfg(not(unix))]
    {
        // No `O_NOFOLLOW` here: look first (a link put in between is still refused below,
        // once open, unless it points to a regular file).
        if let Some(what) = not_regular_at(path) {
            return Ok(Err(what));
        }
    }
    let file = match options.open(path) {
        Ok(file) => file,
        // A link (`ELOOP`), a directory (`EISDIR`), a socket (`ENXIO`), ...: say what is there.
        Err(e) => {
            return match not_regular_at(path) {
                Some(what) => Ok(Err(what)),
                None => Err(e),
            }
        }
    };
    // The file opened, not the path: nothing can be swapped in between.
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(Err(describe(meta.file_type())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Ok(Err(
                "a regular file with other hard links (another name reaches it, so it is not \
                 the sink's own)",
            ));
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fcntl` on a descriptor `file` owns, with integer arguments only.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags == -1 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Ok(file))
}

/// What is at `path` if it exists and is not a regular file (not following a link).
pub(super) fn not_regular_at(path: &Path) -> Option<NotRegular> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    (!meta.is_file()).then(|| describe(meta.file_type()))
}

fn describe(file_type: std::fs::FileType) -> NotRegular {
    if file_type.is_symlink() {
        return "a symbolic link, not a regular file";
    }
    if file_type.is_dir() {
        return "a directory, not a regular file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO, not a regular file";
        }
        if file_type.is_socket() {
            return "a socket, not a regular file";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device, not a regular file";
        }
    }
    "not a regular file"
}

/// Why [`lock_dir`] failed.
pub(super) enum LockError {
    /// Another sink holds the lock.
    InUse,
    /// The lock could not be taken.
    Io(io::Error),
}

/// Takes the exclusive lock that keeps `dir` to one sink, for as long as the returned file is
/// open: `flock` (non-blocking) on the directory itself on Unix, so no file is added to it;
/// elsewhere on a file `.profilis-jsonl.lock` in it. `Ok(None)` where the file system has no
/// such locks (some network file systems): the rule is then not enforced.
pub(super) fn lock_dir(dir: &Path) -> Result<Option<File>, LockError> {
    #[cfg(unix)]
    let file = File::open(dir).map_err(LockError::Io)?;
    #[cfg(not(unix))]
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(".profilis-jsonl.lock"))
        .map_err(LockError::Io)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::InUse),
        Err(std::fs::TryLockError::Error(e)) if no_locks_here(&e) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(LockError::Io(e)),
    }
}

/// Whether `error` says that the file system or platform has no such locks.
fn no_locks_here(error: &io::Error) -> bool {
    if error.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(unix)]
    if let Some(code) = error.raw_os_error() {
        return [
            libc::ENOLCK,
            libc::EOPNOTSUPP,
            libc::ENOTSUP,
            libc::EINVAL,
            libc::EBADF,
        ]
        .contains(&code);
    }
    false
}

//! `write_textfile` in a directory that others can write to (node_exporter's textfile
//! directory often is): whatever is already at the temporary file's name (a link planted there,
//! a file left by a process that had the same id) is never written through, truncated or
//! removed. A test binary of its own, so this process's temporary names start at the first and
//! the planted names are the ones the writer tries.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use profilis_exporters::write_textfile;

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "profilis-textfile-links-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn links_and_files_at_the_temporary_names_are_never_written_through() {
    let dir = TempDir::new("planted");
    let victim = dir.0.join("victim.conf");
    fs::write(&victim, "precious\n").unwrap();
    let leftover = dir.0.join("leftover");
    fs::write(&leftover, "left behind\n").unwrap();
    // The names this process's first writes of `batch.prom` would use as temporary files: the
    // first two links to files that are not the writer's, the third a link to nowhere.
    let pid = std::process::id();
    let temp = |n: u32| dir.0.join(format!(".batch.prom.{pid}.{n}.tmp"));
    symlink(&victim, temp(0)).unwrap();
    symlink(&leftover, temp(1)).unwrap();
    symlink(dir.0.join("nowhere"), temp(2)).unwrap();

    let page = "# TYPE batch_rows_total counter\nbatch_rows_total 42\n";
    write_textfile(dir.0.join("batch.prom"), page).unwrap();

    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(fs::read_to_string(&leftover).unwrap(), "left behind\n");
    assert!(
        !dir.0.join("nowhere").exists(),
        "a file was made through a link"
    );
    let target = dir.0.join("batch.prom");
    assert!(
        !target.is_symlink(),
        "a planted link was renamed into place"
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), page);
    // What others put there is left as it was.
    for n in 0..3 {
        assert!(temp(n).is_symlink(), "{:?} was removed", temp(n));
    }

    // Every name the next write would try in turn (the first took the fourth), taken in
    // advance: it still writes.
    for n in 4..4 + 64 {
        symlink(&victim, temp(n)).unwrap();
    }
    let again = "# TYPE batch_rows_total counter\nbatch_rows_total 43\n";
    write_textfile(dir.0.join("batch.prom"), again).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), again);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
}

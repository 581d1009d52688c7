//! The rotating JSONL sink against real directories: rotation names, retention, recovery after
//! a real `kill -9` of a writing child process, failures and retries, and shutdown through a
//! real collector, and a full disk (a file size limit, in a child process) at shutdown reported
//! by the exporter's guard; links and FIFOs put at the active path, two sinks (of one process
//! or two) on one directory, and a relative directory after a `chdir`.
//! Each test has its own directory under the system temp dir.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use profilis_core::adapter::enter;
use profilis_core::context::{SpanId, TraceId};
use profilis_core::{
    Batch, Collector, CollectorConfig, Event, Outcome, Sink, SinkError, Site, Stats,
};
use profilis_exporters::{Error, Exporter, JsonEvent, JsonlConfig, JsonlError, JsonlSink};

const DEFAULT_ACTIVE_NAME: &str = JsonlConfig::DEFAULT_ACTIVE_NAME;

static SITE: Site = Site::function("jsonl_tests::work", None);

/// `event` as the sink writes it: one line of JSON.
fn write_line(buf: &mut Vec<u8>, event: &Event) {
    serde_json::to_writer(&mut *buf, &JsonEvent(event)).unwrap();
    buf.push(b'\n');
}

/// One collector runs per process: tests that start one take this first.
static COLLECTOR: Mutex<()> = Mutex::new(());

/// Set in the environment of the child process of `killed_writer_loses_no_complete_line`.
const CHILD_DIR: &str = "PROFILIS_JSONL_TEST_CHILD_DIR";

/// Longest any wait in these tests lasts; far above what a healthy run needs.
const PATIENCE: Duration = Duration::from_secs(30);

/// A fresh directory, removed (with its `.moved` sibling) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("profilis-jsonl-test-{}-{name}", std::process::id()));
        let dir = TempDir(path);
        dir.clean();
        dir
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn moved(&self) -> PathBuf {
        self.0.with_extension("moved")
    }

    fn clean(&self) {
        for path in [self.0.clone(), self.moved()] {
            let _ = fs::remove_dir_all(&path);
            let _ = fs::remove_file(&path);
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        self.clean();
    }
}

/// An FN event whose `dur_ns` is `seq`, to find it in the files.
fn event(seq: u64) -> Event {
    Event {
        site: &SITE,
        ts_ns: 1_700_000_000_000_000_000 + seq,
        dur_ns: seq,
        error: false,
        outcome: Outcome::Returned,
        trace_id: TraceId(0xabc),
        span_id: SpanId(seq + 1),
        parent_span_id: None,
        detail: None,
        failure: None,
    }
}

fn write(sink: &mut JsonlSink, seqs: Range<u64>) -> Result<(), SinkError> {
    let events: Vec<Event> = seqs.map(event).collect();
    sink.write(&Batch {
        events: &events,
        counts: &[],
        stats: Stats::default(),
        errors: &[],
        slow: &[],
    })
}

/// Length of one event's line (every `seq` in 10..100 gives the same).
fn line_len() -> u64 {
    let mut buf = Vec::new();
    write_line(&mut buf, &event(10));
    buf.len() as u64
}

/// (date, time, number) of a rotated file name, `None` for other names.
fn rotated_key(name: &str) -> Option<(String, String, u64)> {
    let stem = name.strip_prefix("profilis-")?.strip_suffix(".jsonl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    match parts[..] {
        [date, time] if digits(date, 8) && digits(time, 6) => {
            Some((date.to_owned(), time.to_owned(), 0))
        }
        [date, time, n] if digits(date, 8) && digits(time, 6) => {
            Some((date.to_owned(), time.to_owned(), n.parse().ok()?))
        }
        _ => None,
    }
}

/// Rotated files of `dir`, oldest first.
fn rotated(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| rotated_key(&name).map(|key| (key, name)))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(_, name)| (name.clone(), dir.join(name)))
        .collect()
}

/// Every regular file of `dir` (any name; not a link or a FIFO).
fn all_files(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The `dur_ns` of every line of `path`, checking that each line is a complete FN event.
fn seqs_in(path: &Path) -> Vec<u64> {
    let text = fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends in a partial line",
        path.display()
    );
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", path.display()));
            assert_eq!(value["kind"], "FN");
            value["dur_ns"].as_u64().unwrap()
        })
        .collect()
}

fn seqs_of(files: &[(String, PathBuf)]) -> Vec<u64> {
    files.iter().flat_map(|(_, path)| seqs_in(path)).collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn lines_are_appended_and_the_active_file_is_rotated_on_flush() {
    let dir = TempDir::new("append");
    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    assert_eq!(
        fs::read(&active).unwrap(),
        b"",
        "the active file is opened at start"
    );
    write(&mut sink, 0..3).unwrap();
    write(&mut sink, 3..5).unwrap();
    assert_eq!(seqs_in(&active), [0, 1, 2, 3, 4]);
    let line = fs::read_to_string(&active).unwrap();
    let first: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(first["fn"], "jsonl_tests::work");
    assert_eq!(first["span_id"], "0000000000000001");
    assert_eq!(first["parent_span_id"], serde_json::Value::Null);
    assert!(rotated(dir.path()).is_empty());

    sink.flush().unwrap();
    assert!(!active.exists(), "flush rotates the active file");
    let files = rotated(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(seqs_of(&files), [0, 1, 2, 3, 4]);
    assert_eq!(
        all_files(dir.path()).len(),
        1,
        "{:?}",
        all_files(dir.path())
    );
    assert_eq!(sink.counters().rotated_files(), 1);
}

#[test]
fn flush_with_nothing_written_leaves_no_file() {
    let dir = TempDir::new("empty");
    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    sink.flush().unwrap();
    assert!(all_files(dir.path()).is_empty());
}

#[test]
fn two_rotations_in_the_same_second_get_numbered_names() {
    let dir = TempDir::new("same-second");
    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path()).rotate_bytes(1)).unwrap();
    for seq in 0..10 {
        write(&mut sink, seq..seq + 1).unwrap();
    }
    let files = rotated(dir.path());
    assert_eq!(files.len(), 10, "no rotation overwrote another");
    assert_eq!(seqs_of(&files), (0..10).collect::<Vec<_>>(), "oldest first");
    // Within one second the names go `x`, `x-1`, `x-2`, ...; ten rotations take far less
    // than two seconds, so some second has several.
    let mut by_second: Vec<(String, Vec<u64>)> = Vec::new();
    for (name, _) in &files {
        let (date, time, n) = rotated_key(name).unwrap();
        let second = format!("{date}-{time}");
        match by_second.last_mut() {
            Some((s, ns)) if *s == second => ns.push(n),
            _ => by_second.push((second, vec![n])),
        }
    }
    assert!(by_second.iter().any(|(_, ns)| ns.len() > 1), "{files:?}");
    for (second, ns) in &by_second {
        assert_eq!(*ns, (0..ns.len() as u64).collect::<Vec<_>>(), "{second}");
    }
    assert!(files.iter().any(|(name, _)| name.ends_with("-1.jsonl")));
}

#[test]
fn size_rotation_happens_between_lines() {
    let dir = TempDir::new("size");
    let len = line_len();
    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path()).rotate_bytes(3 * len)).unwrap();
    for seq in (10..40).step_by(2) {
        write(&mut sink, seq..seq + 2).unwrap();
    }
    sink.flush().unwrap();
    let files = rotated(dir.path());
    assert_eq!(seqs_of(&files), (10..40).collect::<Vec<_>>());
    for (name, path) in &files[..files.len() - 1] {
        // Rotated after the batch that reached the limit: 4 lines of 2 batches.
        assert_eq!(fs::metadata(path).unwrap().len(), 4 * len, "{name}");
    }
}

#[test]
fn rotates_by_age() {
    let dir = TempDir::new("age");
    let mut sink =
        JsonlSink::new(JsonlConfig::new(dir.path()).rotate_every(Duration::from_millis(100)))
            .unwrap();
    write(&mut sink, 0..1).unwrap();
    write(&mut sink, 1..2).unwrap();
    assert!(rotated(dir.path()).is_empty());
    std::thread::sleep(Duration::from_millis(150));
    write(&mut sink, 2..2).unwrap();
    let files = rotated(dir.path());
    assert_eq!(
        seqs_of(&files),
        [0, 1],
        "an empty batch rotates a file that is old enough"
    );
    // The age counts from the first line: a new file waiting empty is not rotated.
    std::thread::sleep(Duration::from_millis(150));
    write(&mut sink, 2..3).unwrap();
    assert_eq!(rotated(dir.path()).len(), 1);
    assert_eq!(seqs_in(&dir.path().join(DEFAULT_ACTIVE_NAME)), [2]);
}

#[test]
fn retention_keeps_the_newest_files() {
    let dir = TempDir::new("keep-files");
    fs::create_dir_all(dir.path()).unwrap();
    fs::write(dir.path().join("notes.txt"), "not ours").unwrap();
    fs::write(
        dir.path().join("profilis-latest.jsonl"),
        "not rotated by us",
    )
    .unwrap();
    let mut sink =
        JsonlSink::new(JsonlConfig::new(dir.path()).rotate_bytes(1).keep_files(3)).unwrap();
    for seq in 10..18 {
        write(&mut sink, seq..seq + 1).unwrap();
    }
    assert_eq!(seqs_of(&rotated(dir.path())), [15, 16, 17]);
    assert_eq!(sink.counters().rotated_files(), 8);
    assert_eq!(sink.counters().removed_files(), 5);
    assert!(dir.path().join("notes.txt").exists());
    assert!(dir.path().join("profilis-latest.jsonl").exists());
}

#[test]
fn retention_keeps_at_most_the_given_bytes() {
    let dir = TempDir::new("keep-bytes");
    let len = line_len();
    let mut sink = JsonlSink::new(
        JsonlConfig::new(dir.path())
            .rotate_bytes(1)
            .keep_bytes(2 * len + len / 2),
    )
    .unwrap();
    for seq in 10..16 {
        write(&mut sink, seq..seq + 1).unwrap();
    }
    assert_eq!(seqs_of(&rotated(dir.path())), [14, 15]);
    assert_eq!(sink.counters().removed_files(), 4);
}

#[test]
fn a_partial_line_left_by_a_crash_is_cut_and_rotated() {
    let dir = TempDir::new("partial");
    fs::create_dir_all(dir.path()).unwrap();
    let mut text = Vec::new();
    write_line(&mut text, &event(7));
    write_line(&mut text, &event(8));
    text.extend_from_slice(br#"{"kind":"FN","ts_ns":17000"#);
    fs::write(dir.path().join("events.tmp"), &text).unwrap();

    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path()).active_name("events.tmp")).unwrap();
    let files = rotated(dir.path());
    assert_eq!(
        files.len(),
        1,
        "the old active file is rotated before writing anew"
    );
    assert_eq!(seqs_of(&files), [7, 8]);
    assert_eq!(fs::read(dir.path().join("events.tmp")).unwrap(), b"");
    write(&mut sink, 9..10).unwrap();
    assert_eq!(seqs_in(&dir.path().join("events.tmp")), [9]);
}

#[test]
fn a_crash_right_after_a_rotation_keeps_the_rotated_files_as_they_are() {
    let dir = TempDir::new("after-rotation");
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path()).rotate_bytes(1)).unwrap();
    write(&mut sink, 0..1).unwrap();
    write(&mut sink, 1..3).unwrap();
    write(&mut sink, 3..4).unwrap();
    // Each write rotates at once (`rotate_bytes(1)`), so this is the state a kill between a
    // rotation and the next write leaves: rotated files and no active file. Dropped without
    // its last flush, the sink leaves it as it is (nothing is pending), and frees the
    // directory's lock as a killed process does.
    assert_eq!(sink.pending_bytes(), 0);
    drop(sink);
    assert!(
        !active.exists(),
        "the active file is made by the next write"
    );
    let before: Vec<(String, Vec<u8>)> = rotated(dir.path())
        .into_iter()
        .map(|(name, path)| (name, fs::read(path).unwrap()))
        .collect();
    assert_eq!(before.len(), 3);

    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path()).rotate_bytes(1)).unwrap();
    assert_eq!(fs::read(&active).unwrap(), b"", "a new, empty active file");
    let after: Vec<(String, Vec<u8>)> = rotated(dir.path())
        .into_iter()
        .map(|(name, path)| (name, fs::read(path).unwrap()))
        .collect();
    assert_eq!(after, before, "rotated files untouched and none added");
    write(&mut sink, 4..5).unwrap();
    let files = rotated(dir.path());
    assert_eq!(
        seqs_of(&files),
        [0, 1, 2, 3, 4],
        "numbering continues after the newest"
    );
}

/// Not a test on its own: the writer that `killed_writer_loses_no_complete_line` runs in a child
/// process (this test binary, re-executed) and kills.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let mut sink = JsonlSink::new(JsonlConfig::new(dir).rotate_bytes(2 << 20)).unwrap();
    let mut seq = 0;
    for size in (1..).map(|i| 1 + (i * 7919) % 4000) {
        write(&mut sink, seq..seq + size).unwrap();
        seq += size;
    }
}

#[test]
fn killed_writer_loses_no_complete_line() {
    let dir = TempDir::new("kill");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_writer_child", "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    // Batches of up to 4000 lines (800 KB): the kernel may stop such a write between pages
    // when the kill arrives, leaving a partial line.
    wait_until("the child to write 6 MiB", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the writer exited early: {status}");
        }
        let rotated_bytes: u64 = all_files(dir.path())
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        rotated_bytes > 6 << 20 && fs::metadata(&active).is_ok_and(|m| m.len() > 0)
    });
    // A varying moment within the child's write cycle.
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 20_000;
    std::thread::sleep(Duration::from_micros(jitter.into()));
    child.kill().unwrap(); // SIGKILL, whatever the child is doing
    child.wait().unwrap();
    // Between a rotation and the next write there is no active file: a kill at that moment
    // leaves only rotated files, which recovery must keep as they are.
    let before = match fs::read(&active) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("reading {}: {e}", active.display()),
    };
    eprintln!(
        "killed with {} bytes in the active file, ending in a partial line: {}",
        before.len(),
        before.last().is_some_and(|&b| b != b'\n'),
    );
    let lines_on_disk: usize = all_files(dir.path())
        .iter()
        .map(|p| fs::read(p).unwrap().iter().filter(|&&b| b == b'\n').count())
        .sum();

    let sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    assert_eq!(fs::read(&active).unwrap(), b"", "a new active file");
    let files = rotated(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    let seqs = seqs_of(&files);
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "every line from the first on, once, in order"
    );
    assert_eq!(seqs.len(), lines_on_disk, "every complete line kept");
    let complete_before = before.iter().filter(|&&b| b == b'\n').count();
    if complete_before > 0 {
        let last = &files.last().unwrap().1;
        assert_eq!(
            seqs_in(last).len(),
            complete_before,
            "the active file's complete lines are rotated as the newest file"
        );
    }
    drop(sink);
}

#[test]
fn a_directory_that_cannot_be_created_is_a_clear_error() {
    let _one = COLLECTOR.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("not-a-dir");
    fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    for path in [file.join("logs"), file.clone()] {
        let err = JsonlSink::new(JsonlConfig::new(&path)).unwrap_err();
        let JsonlError::Dir { path: named, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*named, path);
        let message = err.to_string();
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
        assert!(
            message.contains("cannot be created or written"),
            "{message}"
        );
    }

    let err = Exporter::new()
        .without_listener()
        .jsonl(JsonlConfig::new(file.join("logs")))
        .install()
        .err()
        .expect("install fails");
    let Error::Jsonl(JsonlError::Dir { path, source }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*path, file.join("logs"));
    assert!(err.to_string().contains(&source.to_string()), "{err}");
}

#[test]
fn settings_that_cannot_be_used_are_rejected_naming_them() {
    let dir = TempDir::new("settings");
    let cases = [
        (
            JsonlConfig::new(dir.path()).active_name("a/b"),
            "active_name",
        ),
        (JsonlConfig::new(dir.path()).active_name(""), "active_name"),
        (
            JsonlConfig::new(dir.path()).active_name("profilis-20240101-000000.jsonl"),
            "active_name",
        ),
        (JsonlConfig::new(dir.path()).rotate_bytes(0), "rotate_bytes"),
        (JsonlConfig::new(dir.path()).keep_files(0), "keep_files"),
        (JsonlConfig::new(dir.path()).keep_bytes(0), "keep_bytes"),
        (
            JsonlConfig::new(dir.path()).pending_bytes(0),
            "pending_bytes",
        ),
        (
            JsonlConfig::new(dir.path()).rotate_every(Duration::ZERO),
            "rotate_every",
        ),
        (
            JsonlConfig::new(dir.path())
                .retry_backoff(Duration::from_secs(2), Duration::from_secs(1)),
            "retry_backoff",
        ),
        (JsonlConfig::new(""), "dir"),
    ];
    for (config, setting) in cases {
        let err = JsonlSink::new(config).unwrap_err();
        assert!(
            matches!(&err, JsonlError::Setting { name, .. } if *name == setting),
            "{err:?}"
        );
        assert!(err.to_string().contains(setting), "{err}");
    }
    assert!(!dir.path().exists(), "nothing is created for bad settings");
}

/// Moves the directory away (the sink's open file goes with it) and puts a regular file in its
/// place, so the directory can be neither found nor created, even by root.
fn break_dir(dir: &TempDir) {
    fs::rename(dir.path(), dir.moved()).unwrap();
    fs::write(dir.path(), "in the way").unwrap();
}

fn repair_dir(dir: &TempDir) {
    fs::remove_file(dir.path()).unwrap();
}

#[test]
fn a_vanished_directory_fails_then_the_kept_lines_are_written() {
    let dir = TempDir::new("vanish");
    let mut sink = JsonlSink::new(
        JsonlConfig::new(dir.path())
            .retry_backoff(Duration::from_millis(20), Duration::from_millis(80)),
    )
    .unwrap();
    write(&mut sink, 10..12).unwrap();
    break_dir(&dir);
    let err = write(&mut sink, 12..14).unwrap_err();
    assert!(err.to_string().contains("cannot write JSONL file"), "{err}");
    // Waiting for the retry: kept, reported as failed, not retried yet.
    write(&mut sink, 14..15).unwrap_err();
    std::thread::sleep(Duration::from_millis(30));
    write(&mut sink, 15..16).unwrap_err(); // the retry fails: the directory is still blocked
    assert!(sink.counters().failed_writes() >= 3);
    assert!(sink.pending_bytes() > 0);

    repair_dir(&dir);
    std::thread::sleep(Duration::from_millis(100));
    write(&mut sink, 16..17).unwrap();
    assert_eq!(sink.pending_bytes(), 0);
    sink.flush().unwrap();
    assert_eq!(seqs_in(&dir.moved().join(DEFAULT_ACTIVE_NAME)), [10, 11]);
    assert_eq!(seqs_of(&rotated(dir.path())), (12..17).collect::<Vec<_>>());
    assert_eq!(sink.dropped_lines(), 0);
}

#[test]
fn pending_lines_beyond_the_bound_are_dropped_oldest_first_and_counted() {
    let dir = TempDir::new("bound");
    let len = line_len() as usize;
    let mut sink = JsonlSink::new(
        JsonlConfig::new(dir.path())
            .pending_bytes(3 * len)
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(10)),
    )
    .unwrap();
    break_dir(&dir);
    for seq in 10..20 {
        write(&mut sink, seq..seq + 1).unwrap_err();
    }
    assert_eq!(sink.dropped_lines(), 7);
    assert_eq!(sink.pending_bytes(), 3 * len);
    repair_dir(&dir);
    std::thread::sleep(Duration::from_millis(20));
    write(&mut sink, 20..21).unwrap();
    sink.flush().unwrap();
    assert_eq!(seqs_of(&rotated(dir.path())), [17, 18, 19, 20]);
}

#[test]
fn lines_that_cannot_be_written_before_drop_are_counted_as_dropped() {
    let dir = TempDir::new("drop");
    let sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    let counters = sink.counters();
    let mut sink = sink;
    break_dir(&dir);
    write(&mut sink, 10..14).unwrap_err();
    drop(sink);
    assert_eq!(counters.dropped_lines(), 4);
}

/// Makes every later write of this process that would grow a file fail, as on a full disk:
/// a file size limit (`RLIMIT_FSIZE`, `ulimit -f`) of `bytes`, with `SIGXFSZ` ignored so that
/// such a write fails with `EFBIG` ("File too large") instead of killing the process. Only for
/// a child process of these tests: the limit is the whole process's. (A link to `/dev/full` no
/// longer works: the sink does not write through links.)
#[cfg(unix)]
fn fill_disk(bytes: u64) {
    // SAFETY: plain system calls on this process's own signal disposition and limits.
    unsafe {
        assert_ne!(libc::signal(libc::SIGXFSZ, libc::SIG_IGN), libc::SIG_ERR);
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// Runs the test `name` of this binary in a child process, with `var` set to `value`: for a
/// test that changes what is the whole process's (limits, the current directory).
fn run_child(name: &str, var: &str, value: &Path) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(var, value)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts that a child of `run_child` succeeded, showing its output if not.
fn assert_child_ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "the child failed: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The lines of the regular files of `dir`, by name.
fn lines_on_disk(dir: &Path) -> Vec<u64> {
    let mut files: Vec<(String, PathBuf)> = all_files(dir)
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    files.sort();
    seqs_of(&files)
}

/// Set in the environment of the child process of
/// `a_full_disk_at_the_last_flush_loses_the_pending_lines_and_says_how_many`.
const FULL_FLUSH_DIR: &str = "PROFILIS_JSONL_TEST_FULL_FLUSH_DIR";

/// Not a test on its own: the body of
/// `a_full_disk_at_the_last_flush_loses_the_pending_lines_and_says_how_many`, in a child process
/// (its file size limit is the whole process's).
#[cfg(unix)]
#[test]
fn full_flush_child() {
    let Some(dir) = std::env::var_os(FULL_FLUSH_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut sink = JsonlSink::new(JsonlConfig::new(&dir)).unwrap();
    let counters = sink.counters();
    write(&mut sink, 10..13).unwrap();
    fill_disk(3 * line_len());
    let err = write(&mut sink, 13..20).unwrap_err();
    assert_eq!(err.lost(), 0, "kept for a retry, not lost: {err}");
    assert_eq!(counters.dropped_lines(), 0);

    let err = sink.flush().unwrap_err();
    assert_eq!(err.lost(), 7, "{err}");
    let message = err.to_string();
    let expected = format!(
        "7 JSONL line(s) could not be written to {} at shutdown and are lost",
        dir.display()
    );
    assert!(message.contains(&expected), "{message}");
    assert!(message.contains("File too large"), "{message}");
    assert_eq!(counters.dropped_lines(), 7);
    assert_eq!(sink.pending_bytes(), 0);
    assert_eq!(lines_on_disk(&dir), [10, 11, 12]);
    drop(sink);
    assert_eq!(counters.dropped_lines(), 7, "counted once");
}

#[cfg(unix)]
#[test]
fn a_full_disk_at_the_last_flush_loses_the_pending_lines_and_says_how_many() {
    let dir = TempDir::new("full-flush");
    assert_child_ok(&run_child("full_flush_child", FULL_FLUSH_DIR, dir.path()));
}

/// Set in the environment of the child process of `lines_lost_at_shutdown_are_reported`.
const FULL_DISK_DIR: &str = "PROFILIS_JSONL_TEST_FULL_DISK_DIR";
/// Starts each line of what `full_disk_child` reports on stdout.
const REPORT: &str = "full-disk-report:";
/// Calls made before and after the disk fills.
const BEFORE_FULL: usize = 300;
const AFTER_FULL: usize = 700;

/// A sink added after the JSONL sink: its last flush, which runs right after the JSONL sink's,
/// scrapes `/metrics` while the guard is still shutting down.
struct ScrapeAtFlush {
    addr: Arc<OnceLock<SocketAddr>>,
    page: Arc<Mutex<Option<String>>>,
}

impl Sink for ScrapeAtFlush {
    fn write(&mut self, _: &Batch<'_>) -> Result<(), SinkError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let addr = self
            .addr
            .get()
            .ok_or_else(|| SinkError::new("no listen address"))?;
        let page = scrape(*addr).map_err(|e| SinkError::with_source("scrape failed", e))?;
        *self.page.lock().unwrap() = Some(page);
        Ok(())
    }

    fn wants_events(&self) -> bool {
        false
    }
}

/// `GET /metrics` over loopback: the whole reply.
fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, PATIENCE)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// The value of the series `name` (no labels) in a Prometheus page.
fn value_of(page: &str, name: &str) -> Option<u64> {
    page.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Not a test on its own: the exporter that `lines_lost_at_shutdown_are_reported` runs in a
/// child process (this test binary, re-executed), for its stderr and for a recorder of its own.
#[cfg(unix)]
#[test]
fn full_disk_child() {
    let Some(dir) = std::env::var_os(FULL_DISK_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let addr = Arc::new(OnceLock::new());
    let page = Arc::new(Mutex::new(None));
    // No retry before shutdown: every line after the disk filled waits for the last flush.
    let hour = Duration::from_secs(3600);
    let sink = JsonlSink::new(JsonlConfig::new(&dir).retry_backoff(hour, hour)).unwrap();
    let counters = sink.counters();
    let guard = Exporter::new()
        .listen_addr("127.0.0.1:0".parse().unwrap())
        .enabled(true)
        .queue_size(BEFORE_FULL + AFTER_FULL)
        .flush_interval(Duration::from_millis(10))
        .shutdown_timeout(PATIENCE)
        .sink(sink)
        .sink(ScrapeAtFlush {
            addr: addr.clone(),
            page: page.clone(),
        })
        .install()
        .unwrap();
    addr.set(guard.listen_addr().unwrap()).unwrap();
    calls(BEFORE_FULL);
    let active = dir.join(DEFAULT_ACTIVE_NAME);
    wait_until("the first lines", || {
        fs::read(&active)
            .is_ok_and(|text| text.iter().filter(|&&b| b == b'\n').count() == BEFORE_FULL)
    });
    fill_disk(fs::metadata(&active).unwrap().len());
    calls(AFTER_FULL);
    wait_until("a failed write", || counters.failed_writes() > 0);

    let report = guard.shutdown();
    let during = page.lock().unwrap().take().unwrap_or_default();
    let after = profilis_exporters::render().unwrap();
    let stats = profilis_core::stats();
    let values = [
        ("calls", (BEFORE_FULL + AFTER_FULL) as u64),
        ("flushed", report.flushed.into()),
        ("clean", report.is_clean().into()),
        ("failed_flushes", report.failed_flushes),
        ("lost", report.lost),
        ("events_dropped", stats.dropped),
        ("sink_failures", stats.sink_failures),
    ];
    for (name, value) in values {
        println!("{REPORT} {name} {value}");
    }
    for (when, page) in [("during", &during), ("after", &after)] {
        for name in [
            "profilis_jsonl_dropped_lines_total",
            "profilis_sink_failures_total",
        ] {
            let value = value_of(page, name).map_or("missing".to_owned(), |v| v.to_string());
            println!("{REPORT} {when}:{name} {value}");
        }
    }
    println!("{REPORT} report-text {report}");
}

#[cfg(unix)]
#[test]
fn lines_lost_at_shutdown_are_reported() {
    let dir = TempDir::new("full-shutdown");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "full_disk_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FULL_DISK_DIR, dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the child failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    let report: HashMap<&str, &str> = stdout
        .lines()
        .filter_map(|line| line.split_once(REPORT)?.1.trim().split_once(' '))
        .collect();
    let number = |name: &str| -> u64 {
        report
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from the child's report:\n{stdout}"))
    };
    assert_eq!(number("events_dropped"), 0, "every call reached the sink");
    // The lines written before the disk filled, each once.
    let written = span_ids(&[dir.path()]);
    assert_each_once(&written, BEFORE_FULL);
    let lost = number("lost");
    assert_eq!(
        lost,
        number("calls") - written.len() as u64,
        "the report counts every line not in the files"
    );
    assert_eq!(number("flushed"), 1, "flushed in time: {stdout}");
    assert_eq!(number("failed_flushes"), 1, "the JSONL sink's: {stdout}");
    assert_eq!(number("clean"), 0);
    assert!(
        report["report-text"].contains(&format!("losing {lost} item(s)")),
        "{stdout}"
    );

    // On stderr: the count and the directory, though the sink's first failure (a write) was
    // reported before.
    let expected = format!(
        "profilis: sink jsonl failed to flush: {lost} JSONL line(s) could not be written to {} \
         at shutdown and are lost",
        dir.path().display()
    );
    assert!(stderr.contains(&expected), "{expected:?} not in:\n{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");

    // Counted while the listener still served, and kept in the recorder afterwards.
    assert_eq!(number("during:profilis_jsonl_dropped_lines_total"), lost);
    assert_eq!(number("after:profilis_jsonl_dropped_lines_total"), lost);
    // One failed write at least, and the failed last flush, which came after the last batch.
    let failures = number("sink_failures");
    assert!(failures >= 2, "{stdout}");
    assert_eq!(number("after:profilis_sink_failures_total"), failures);
}

/// `n` profiled calls of `SITE` on this thread.
fn calls(n: usize) {
    for _ in 0..n {
        enter(&SITE).exit(false);
    }
}

/// Span ids of the FN events of `SITE` in every file of `dirs`, checking each is complete.
fn span_ids(dirs: &[&Path]) -> Vec<String> {
    let mut ids = Vec::new();
    for dir in dirs {
        for path in all_files(dir) {
            let text = fs::read_to_string(&path).unwrap();
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{}",
                path.display()
            );
            for line in text.lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                if value["fn"] == "jsonl_tests::work" {
                    ids.push(value["span_id"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    ids
}

fn assert_each_once(ids: &[String], n: usize) {
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an event was written twice");
    assert_eq!(ids.len(), n, "every event is in the files");
}

#[test]
fn every_event_before_the_guard_drops_is_in_the_files() {
    let _one = COLLECTOR.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("shutdown");
    const N: usize = 20_000;
    let dropped_before = profilis_core::stats().dropped;
    let guard = Exporter::new()
        .without_listener()
        .queue_size(N)
        .jsonl(JsonlConfig::new(dir.path()).rotate_bytes(256 * 1024))
        .install()
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| calls(N / 2));
        calls(N / 2);
    });
    let page = guard.render();
    for name in [
        "profilis_jsonl_rotated_files_total",
        "profilis_jsonl_removed_files_total",
        "profilis_jsonl_dropped_lines_total",
    ] {
        assert!(page.contains(name), "{name} missing from /metrics:\n{page}");
    }
    drop(guard);
    assert_eq!(profilis_core::stats().dropped, dropped_before);
    assert!(
        !dir.path().join(DEFAULT_ACTIVE_NAME).exists(),
        "the active file is rotated at shutdown"
    );
    assert!(rotated(dir.path()).len() > 1, "size rotation happened");
    assert_each_once(&span_ids(&[dir.path()]), N);
}

#[test]
fn failures_are_counted_by_the_collector_and_the_lines_retried() {
    let _one = COLLECTOR.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("collector-failures");
    let sink = JsonlSink::new(
        JsonlConfig::new(dir.path())
            .retry_backoff(Duration::from_millis(20), Duration::from_millis(100)),
    )
    .unwrap();
    let counters = sink.counters();
    let dropped_before = profilis_core::stats().dropped;
    let collector = Collector::start(
        CollectorConfig {
            flush_interval: Duration::from_millis(10),
            ..CollectorConfig::default()
        },
        vec![Box::new(sink)],
    )
    .unwrap();
    let mut made = 0;
    let mut call = |n: usize| {
        calls(n);
        made += n;
    };
    call(50);
    wait_until("50 lines", || span_ids(&[dir.path()]).len() == 50);

    break_dir(&dir);
    let failures_before = profilis_core::stats().sink_failures;
    // Keep calling: the sink only runs when a batch arrives.
    wait_until("sink failures", || {
        call(10);
        profilis_core::stats().sink_failures >= failures_before + 3
    });
    let failed = counters.failed_writes();
    assert!(failed >= 3);

    repair_dir(&dir);
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    wait_until("the retried lines", || {
        call(10);
        fs::metadata(&active).is_ok_and(|m| m.len() > 0)
    });
    call(10);
    assert!(collector.shutdown().is_clean());
    assert_eq!(profilis_core::stats().dropped, dropped_before);
    assert_eq!(counters.dropped_lines(), 0);
    // The lines before the failure went with the moved directory; every later one was kept
    // and retried into the recreated directory.
    assert_eq!(span_ids(&[&dir.moved()]).len(), 50);
    assert_each_once(&span_ids(&[dir.path(), &dir.moved()]), made);
    assert!(!active.exists(), "the active file is rotated at shutdown");
}

/// Makes a FIFO at `path`.
#[cfg(unix)]
fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Runs `f` on a thread of its own and returns its result; fails (after unblocking it by
/// opening the FIFO `fifo` for reading, so the thread can end) if it does not return within
/// `PATIENCE`: the sink blocked on the FIFO.
#[cfg(unix)]
fn without_blocking<T: Send + 'static>(fifo: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the thread panicked"),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            use std::os::unix::fs::OpenOptionsExt;
            let _reader = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(fifo);
            panic!("the sink blocked on the FIFO at {}", fifo.display());
        }
    }
}

/// Asserts that every file in `dir` whose name is of the rotated form is a regular file (not
/// a link moved there).
fn rotated_are_regular(dir: &Path) {
    for (name, path) in rotated(dir) {
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file(), "{name} is not a regular file: {meta:?}");
    }
}

#[cfg(unix)]
#[test]
fn a_link_at_the_active_path_at_start_is_neither_followed_nor_moved() {
    let dir = TempDir::new("link-start");
    fs::create_dir_all(dir.path()).unwrap();
    // Outside the directory: the `.moved` sibling, removed with it.
    let victim = dir.moved();
    let text = "keep=1\nlast line without newline";
    fs::write(&victim, text).unwrap();
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    std::os::unix::fs::symlink(&victim, &active).unwrap();

    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    let counters = sink.counters();
    assert_eq!(fs::read_to_string(&victim).unwrap(), text, "not cut");
    assert!(rotated(dir.path()).is_empty(), "the link is not rotated");
    // The lines go to a file of the sink's own; the link is a counted failure naming it.
    let err = write(&mut sink, 0..3).unwrap_err();
    assert_eq!(err.lost(), 0, "{err}");
    let message = err.to_string();
    assert!(message.contains(&*active.to_string_lossy()), "{message}");
    assert!(message.contains("not a regular file"), "{message}");
    assert_eq!(counters.failed_writes(), 1);
    write(&mut sink, 3..5).unwrap();
    sink.flush().unwrap();

    assert_eq!(fs::read_to_string(&victim).unwrap(), text, "not written");
    assert!(
        fs::symlink_metadata(&active).unwrap().is_symlink(),
        "left as it is"
    );
    rotated_are_regular(dir.path());
    assert_eq!(seqs_of(&rotated(dir.path())), [0, 1, 2, 3, 4]);
    assert_eq!(counters.dropped_lines(), 0);
}

#[cfg(unix)]
#[test]
fn a_link_swapped_in_while_running_is_not_written_through() {
    let dir = TempDir::new("link-swap");
    let victim = dir.moved();
    fs::write(&victim, "precious\n").unwrap();
    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    let counters = sink.counters();
    write(&mut sink, 0..3).unwrap();
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    fs::rename(&active, dir.path().join("aside.jsonl")).unwrap();
    std::os::unix::fs::symlink(&victim, &active).unwrap();

    let err = write(&mut sink, 3..6).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert_eq!(counters.failed_writes(), 1);
    write(&mut sink, 6..8).unwrap();
    sink.flush().unwrap();

    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(
        fs::symlink_metadata(&active).unwrap().is_symlink(),
        "left as it is"
    );
    rotated_are_regular(dir.path());
    assert_eq!(lines_on_disk(dir.path()), (0..8).collect::<Vec<_>>());
    assert_eq!(counters.dropped_lines(), 0);
}

#[cfg(unix)]
#[test]
fn a_fifo_at_the_active_path_does_not_block_the_sink() {
    use std::os::unix::fs::FileTypeExt;
    // More than a pipe's buffer (64 KiB): written into a FIFO nobody reads, they would block.
    const MANY: u64 = 2000;
    // At start.
    let dir = TempDir::new("fifo-start");
    fs::create_dir_all(dir.path()).unwrap();
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    mkfifo(&active);
    let path = dir.path().to_owned();
    let (counters, first, second) = without_blocking(&active, move || {
        let mut sink = JsonlSink::new(JsonlConfig::new(&path)).unwrap();
        let first = write(&mut sink, 0..MANY).map_err(|e| e.to_string());
        let second = write(&mut sink, MANY..MANY + 2).map_err(|e| e.to_string());
        let flushed = sink.flush().map_err(|e| e.to_string());
        (sink.counters(), first, second.and(flushed))
    });
    let message = first.unwrap_err();
    assert!(message.contains("not a regular file"), "{message}");
    second.unwrap();
    assert_eq!(counters.failed_writes(), 1);
    assert!(fs::symlink_metadata(&active).unwrap().file_type().is_fifo());
    rotated_are_regular(dir.path());
    assert_eq!(
        seqs_of(&rotated(dir.path())),
        (0..MANY + 2).collect::<Vec<_>>()
    );

    // Put in while the sink runs.
    let dir = TempDir::new("fifo-swap");
    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    let counters = sink.counters();
    write(&mut sink, 0..3).unwrap();
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    fs::rename(&active, dir.path().join("aside.jsonl")).unwrap();
    mkfifo(&active);
    let (sink, first, second) = without_blocking(&active, move || {
        let first = write(&mut sink, 3..MANY).map_err(|e| e.to_string());
        let second = write(&mut sink, MANY..MANY + 2).map_err(|e| e.to_string());
        let flushed = sink.flush().map_err(|e| e.to_string());
        (sink, first, second.and(flushed))
    });
    drop(sink);
    let message = first.unwrap_err();
    assert!(message.contains("not a regular file"), "{message}");
    second.unwrap();
    assert_eq!(counters.failed_writes(), 1);
    assert!(fs::symlink_metadata(&active).unwrap().file_type().is_fifo());
    assert_eq!(lines_on_disk(dir.path()), (0..MANY + 2).collect::<Vec<_>>());
    assert_eq!(counters.dropped_lines(), 0);
}

/// Set in the environment of the child process of
/// `a_file_written_beside_a_link_is_recovered_after_a_crash`.
const LINK_CRASH_DIR: &str = "PROFILIS_JSONL_TEST_LINK_CRASH_DIR";

/// Not a test on its own: writes beside the link, then exits without flushing or dropping the
/// sink, as a crash would.
#[cfg(unix)]
#[test]
fn link_crash_child() {
    let Some(dir) = std::env::var_os(LINK_CRASH_DIR) else {
        return;
    };
    let mut sink = JsonlSink::new(JsonlConfig::new(dir)).unwrap();
    write(&mut sink, 0..3).unwrap_err();
    std::process::exit(0);
}

/// A crash while the sink wrote to its own file beside a link: the next start rotates that file
/// too, and leaves the link alone.
#[cfg(unix)]
#[test]
fn a_file_written_beside_a_link_is_recovered_after_a_crash() {
    let dir = TempDir::new("link-crash");
    fs::create_dir_all(dir.path()).unwrap();
    let victim = dir.moved();
    fs::write(&victim, "precious\n").unwrap();
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    std::os::unix::fs::symlink(&victim, &active).unwrap();
    assert_child_ok(&run_child("link_crash_child", LINK_CRASH_DIR, dir.path()));
    assert!(rotated(dir.path()).is_empty());

    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    rotated_are_regular(dir.path());
    assert_eq!(
        seqs_of(&rotated(dir.path())),
        [0, 1, 2],
        "recovered at start"
    );
    write(&mut sink, 3..4).unwrap_err();
    sink.flush().unwrap();
    assert_eq!(seqs_of(&rotated(dir.path())), [0, 1, 2, 3]);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(fs::symlink_metadata(&active).unwrap().is_symlink());
}

#[test]
fn a_second_sink_on_the_same_directory_is_refused_naming_it() {
    let dir = TempDir::new("two-sinks");
    let mut first = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    let err = JsonlSink::new(JsonlConfig::new(dir.path()).active_name("other.tmp")).unwrap_err();
    let JsonlError::InUse { path } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*path, dir.path());
    let message = err.to_string();
    assert!(
        message.contains(&*dir.path().to_string_lossy()),
        "{message}"
    );
    assert!(!dir.path().join("other.tmp").exists(), "nothing written");
    write(&mut first, 0..2).unwrap();
    first.flush().unwrap();
    drop(first);
    // Free again once the first sink is gone.
    let mut again = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    write(&mut again, 2..3).unwrap();
    again.flush().unwrap();
    assert_eq!(seqs_of(&rotated(dir.path())), [0, 1, 2]);
}

/// Set in the environment of the child process of
/// `a_directory_held_by_another_process_is_refused`.
const HOLD_DIR: &str = "PROFILIS_JSONL_TEST_HOLD_DIR";
/// What `hold_dir_child` prints once its sink holds the directory.
const HOLDING: &str = "holding-the-directory";

/// Not a test on its own: holds a sink on a directory until its stdin is closed.
#[test]
fn hold_dir_child() {
    let Some(dir) = std::env::var_os(HOLD_DIR) else {
        return;
    };
    let mut sink = JsonlSink::new(JsonlConfig::new(dir)).unwrap();
    write(&mut sink, 0..2).unwrap();
    println!("{HOLDING}");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();
    sink.flush().unwrap();
}

/// A child process this test started, killed (by its id) if the test ends before it does.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_directory_held_by_another_process_is_refused() {
    use std::io::BufRead as _;
    let dir = TempDir::new("two-processes");
    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "hold_dir_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOLD_DIR, dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut lines = stdout.lines();
    loop {
        let line = lines
            .next()
            .expect("the child ended before holding the directory")
            .unwrap();
        if line.contains(HOLDING) {
            break;
        }
    }
    let err = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap_err();
    assert!(
        matches!(&err, JsonlError::InUse { path } if path == dir.path()),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&*dir.path().to_string_lossy()),
        "{err}"
    );
    drop(child.0.stdin.take());
    assert!(child.0.wait().unwrap().success());
    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    write(&mut sink, 2..3).unwrap();
    sink.flush().unwrap();
    assert_eq!(seqs_of(&rotated(dir.path())), [0, 1, 2], "no line lost");
}

#[test]
fn two_jsonl_sinks_on_one_directory_are_refused_at_install() {
    let _one = COLLECTOR.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("install-twice");
    let err = Exporter::new()
        .without_listener()
        .jsonl(JsonlConfig::new(dir.path()))
        .jsonl(JsonlConfig::new(dir.path().join(".")).active_name("other.tmp"))
        .install()
        .err()
        .expect("install fails");
    let Error::Jsonl(JsonlError::SharedDir { path }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*path, dir.path());
    assert!(
        err.to_string().contains(&*dir.path().to_string_lossy()),
        "{err}"
    );
    assert!(!dir.path().exists(), "checked before any sink starts");
}

#[test]
fn a_shut_down_exporter_has_let_go_of_its_directory() {
    let _one = COLLECTOR.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("let-go");
    // Its sink runs on a thread of its own: the shutdown returns once that thread has dropped
    // it, with the directory's lock, so the directory can be used again at once, every time.
    for round in 0..10 {
        let guard = Exporter::new()
            .without_listener()
            .jsonl(JsonlConfig::new(dir.path()))
            .install()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        calls(100);
        let report = guard.shutdown();
        assert!(report.is_clean(), "round {round}: {report}");
        let sink = JsonlSink::new(JsonlConfig::new(dir.path()))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        drop(sink);
    }
}

#[test]
fn retry_waits_beyond_a_day_are_rejected_naming_the_bound() {
    let dir = TempDir::new("backoff");
    let config = JsonlConfig::new(dir.path())
        .retry_backoff(Duration::from_secs(u64::MAX / 2), Duration::MAX);
    let err = JsonlSink::new(config).unwrap_err();
    let JsonlError::Setting {
        name,
        value,
        expected,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*name, "retry_backoff");
    assert!(value.contains(&format!("{:?}", Duration::MAX)), "{value}");
    assert!(expected.contains("at most 1 day"), "{expected}");
    let day = Duration::from_secs(24 * 60 * 60);
    let longer = JsonlConfig::new(dir.path()).retry_backoff(Duration::from_secs(1), day * 2);
    assert!(longer.validate().is_err());
    JsonlConfig::new(dir.path())
        .retry_backoff(day, day)
        .validate()
        .unwrap();
    assert!(!dir.path().exists());
}

/// Set in the environment of the child process of
/// `a_relative_directory_is_resolved_once_at_start`.
const CHDIR_BASE: &str = "PROFILIS_JSONL_TEST_CHDIR_BASE";

/// Not a test on its own: starts a sink on `logs` in `a`, then moves to `b` and writes.
#[test]
fn chdir_child() {
    let Some(base) = std::env::var_os(CHDIR_BASE) else {
        return;
    };
    let base = PathBuf::from(base);
    std::env::set_current_dir(base.join("a")).unwrap();
    let mut sink = JsonlSink::new(JsonlConfig::new("logs")).unwrap();
    assert_eq!(sink.config().dir(), base.join("a").join("logs"));
    std::env::set_current_dir(base.join("b")).unwrap();
    write(&mut sink, 0..3).unwrap();
    sink.flush().unwrap();
}

#[test]
fn a_relative_directory_is_resolved_once_at_start() {
    let base = TempDir::new("chdir");
    fs::create_dir_all(base.path().join("a")).unwrap();
    fs::create_dir_all(base.path().join("b")).unwrap();
    assert_child_ok(&run_child("chdir_child", CHDIR_BASE, base.path()));
    assert_eq!(
        seqs_of(&rotated(&base.path().join("a").join("logs"))),
        [0, 1, 2]
    );
    assert!(!base.path().join("b").join("logs").exists());
}

/// A hard link to a file outside the directory, put at the active path: a regular file, but
/// not the sink's own (another name reaches it), so neither cut nor written.
#[cfg(unix)]
#[test]
fn a_hard_link_at_the_active_path_is_neither_cut_nor_written() {
    let dir = TempDir::new("hard-link");
    fs::create_dir_all(dir.path()).unwrap();
    let victim = dir.moved();
    let text = "keep=1\nlast line without newline";
    fs::write(&victim, text).unwrap();
    let active = dir.path().join(DEFAULT_ACTIVE_NAME);
    fs::hard_link(&victim, &active).unwrap();

    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    let err = write(&mut sink, 0..3).unwrap_err();
    assert!(err.to_string().contains("other hard links"), "{err}");
    write(&mut sink, 3..5).unwrap();
    sink.flush().unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), text);
    assert_eq!(fs::read_to_string(&active).unwrap(), text);
    rotated_are_regular(dir.path());
    assert_eq!(seqs_of(&rotated(dir.path())), [0, 1, 2, 3, 4]);
}

/// The lock is on the directory the sink started in: if that is moved away and the sink makes
/// the path anew, it locks the new directory too, so a second sink still cannot start there.
#[cfg(unix)]
#[test]
fn a_directory_made_anew_is_locked_again() {
    let dir = TempDir::new("relock");
    let mut sink = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap();
    write(&mut sink, 0..2).unwrap();
    fs::rename(dir.path(), dir.moved()).unwrap();
    write(&mut sink, 2..4).unwrap();
    assert!(dir.path().is_dir(), "made anew");
    let err = JsonlSink::new(JsonlConfig::new(dir.path())).unwrap_err();
    assert!(
        matches!(&err, JsonlError::InUse { path } if path == dir.path()),
        "{err:?}"
    );
    sink.flush().unwrap();
    assert_eq!(seqs_of(&rotated(dir.path())), [2, 3]);
    assert_eq!(seqs_in(&dir.moved().join(DEFAULT_ACTIVE_NAME)), [0, 1]);
}

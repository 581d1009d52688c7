//! The textfile output against real directories and Debian's `prometheus-node-exporter`, started
//! by the test on a free loopback port with its textfile collector reading the test's
//! directory: the series the exporter writes are scraped back from node_exporter as written,
//! the writer thread rewrites the file every interval, and dropping the guard writes it a last
//! time after the last flush. Bad paths are typed errors naming the path.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use profilis_core::Site;
use profilis_exporters::{write_textfile, Error, Exporter, TextfileError};
use profilis_test_support::{find_on_path, free_port, missing, sample, try_get, wait_for};

static SITE: Site = Site::function("textfile_tests::work", None);

/// Longest any wait in these tests lasts; far above what a healthy run needs.
const PATIENCE: Duration = Duration::from_secs(30);

/// Held by each test that installs an exporter: one collector runs in a process at a time.
static INSTALLS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "profilis-textfile-test-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// node_exporter started by this test; stopped by the PID of its `Child` when dropped.
struct NodeExporter {
    child: Child,
    addr: SocketAddr,
    /// Where its log (stderr) goes.
    log: PathBuf,
}

impl NodeExporter {
    /// Starts `prometheus-node-exporter` with only the textfile collector, reading `dir`, its
    /// log written to `log`. `None` (and "skipped", or a failure under CI) when it is not
    /// installed.
    fn start(dir: &Path, log: &Path) -> Option<NodeExporter> {
        let Some(binary) = find_on_path("prometheus-node-exporter") else {
            missing(
                "`prometheus-node-exporter`",
                "apt-get install prometheus-node-exporter",
            );
            return None;
        };
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(binary)
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!("--collector.textfile.directory={}", dir.display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .expect("node_exporter starts");
        Some(NodeExporter {
            child,
            addr,
            log: log.to_owned(),
        })
    }

    /// The errors node_exporter logged gathering its page: a family it refused (one of the
    /// file's clashing with its own, or with another file's), which its page does not show.
    fn gathering_errors(&self) -> Vec<String> {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|line| line.contains("error gathering metrics"))
            .map(str::to_owned)
            .collect()
    }

    /// node_exporter's `/metrics` once it contains `want` (`None` if it never does).
    fn scrape_until(&self, want: impl Fn(&str) -> bool) -> Option<String> {
        wait_for(PATIENCE, || {
            let page = try_get(self.addr, "/metrics", &[]).ok()?.text();
            want(&page).then_some(page)
        })
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bad_paths_are_typed_errors_naming_the_path() {
    let dir = TempDir::new("errors");

    let missing_dir = dir.path().join("absent").join("a.prom");
    let err = write_textfile(&missing_dir, "a 1\n").unwrap_err();
    assert!(
        matches!(&err, TextfileError::NoDirectory { path, .. } if path == &missing_dir),
        "{err}"
    );
    assert!(err.to_string().contains("absent"), "{err}");

    let not_prom = dir.path().join("a.txt");
    let err = write_textfile(&not_prom, "a 1\n").unwrap_err();
    assert!(
        matches!(&err, TextfileError::NotProm { path } if path == &not_prom),
        "{err}"
    );
    assert!(err.to_string().contains("a.txt"), "{err}");
    let err = Exporter::new()
        .textfile(&not_prom, Duration::from_secs(1))
        .err()
        .expect("a name without .prom is refused by the builder");
    assert!(
        matches!(&err, Error::Textfile(TextfileError::NotProm { .. })),
        "{err}"
    );
    let err = Exporter::new()
        .textfile(dir.path().join("a.prom"), Duration::ZERO)
        .err()
        .expect("a zero interval is refused");
    assert!(
        matches!(&err, Error::Textfile(TextfileError::Interval { .. })),
        "{err}"
    );

    // A directory where the file should be: the rename fails (even for root, unlike
    // permissions), the error names the path and no temporary file is left behind.
    let blocked = dir.path().join("blocked.prom");
    fs::create_dir(&blocked).unwrap();
    let err = write_textfile(&blocked, "a 1\n").unwrap_err();
    assert!(
        matches!(&err, TextfileError::Write { path, .. } if path == &blocked),
        "{err}"
    );
    assert!(err.to_string().contains("blocked.prom"), "{err}");
    assert_eq!(dir.entries(), ["blocked.prom"]);

    // A good write replaces the file whole and leaves only it.
    let good = dir.path().join("good.prom");
    write_textfile(&good, "a 1\n").unwrap();
    write_textfile(&good, "a 2\n").unwrap();
    assert_eq!(fs::read_to_string(&good).unwrap(), "a 2\n");
    assert_eq!(dir.entries(), ["blocked.prom", "good.prom"]);
}

#[test]
fn node_exporter_exposes_what_the_exporter_writes() {
    let _one_at_a_time = INSTALLS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("node-exporter");
    let file = dir.path().join("profilis_batch.prom");
    let exporter = Exporter::new()
        .service("textfile-test")
        // The collector flushes only at shutdown: a profiled call shows up in the file only
        // through the last write, made after the last flush.
        .flush_interval(Duration::from_secs(3600))
        .textfile(&file, Duration::from_millis(200))
        .unwrap();
    #[cfg(feature = "listener")]
    let exporter = exporter.without_listener();
    let guard = exporter.install().unwrap();
    assert!(file.is_file(), "install writes the file once");

    // Recorded directly into profilis's recorder, with a label value the format escapes.
    let rows = metrics::counter!("batch_rows_total", "table" => "or\"ders");
    rows.increment(7);
    let logs = TempDir::new("node-exporter-log");
    let Some(node) = NodeExporter::start(dir.path(), &logs.path().join("stderr.log")) else {
        return;
    };
    let page = node
        .scrape_until(|page| {
            sample(page, "batch_rows_total", &[("table", "or\\\"ders")]) == Some(7.0)
        })
        .unwrap_or_else(|| {
            panic!(
                "node_exporter never exposed batch_rows_total 7; the file:\n{}",
                fs::read_to_string(&file).unwrap_or_default()
            )
        });
    // node_exporter read the file without complaint, and names it.
    assert_eq!(sample(&page, "node_textfile_scrape_error", &[]), Some(0.0));
    assert!(
        page.contains(&format!(
            "node_textfile_mtime_seconds{{file=\"{}\"}}",
            file.display()
        )),
        "{page}"
    );
    assert!(page.contains("# TYPE batch_rows_total counter"), "{page}");

    // The writer thread rewrites the file: a later value reaches node_exporter by itself.
    rows.increment(5);
    node.scrape_until(|page| {
        sample(page, "batch_rows_total", &[("table", "or\\\"ders")]) == Some(12.0)
    })
    .expect("the periodic write brings 12 to node_exporter");
    assert_eq!(
        sample(
            &fs::read_to_string(&file).unwrap(),
            "profilis_function_calls_total",
            &[]
        ),
        None,
        "no flush yet, so no call in the file"
    );

    // One call, flushed only when the guard drops: the last write comes after it.
    profilis_core::adapter::enter(&SITE).exit(false);
    drop(guard);
    let written = fs::read_to_string(&file).unwrap();
    assert_eq!(
        sample(
            &written,
            "profilis_function_calls_total",
            &[
                ("function", "textfile_tests::work"),
                ("service", "textfile-test")
            ]
        ),
        Some(1.0),
        "{written}"
    );
    // No family of the writing process without labels: node_exporter's own `process_*` and
    // another profilis program's file would have the same series.
    for line in written
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(
            !(line.starts_with("process_") || line.starts_with("profilis_")) || line.contains('{'),
            "{line}\n{written}"
        );
    }
    assert!(!written.contains("process_cpu_seconds_total"), "{written}");
    assert!(!written.contains("profilis_queue_depth"), "{written}");
    let page = node
        .scrape_until(|page| {
            sample(
                page,
                "profilis_function_calls_total",
                &[("function", "textfile_tests::work")],
            ) == Some(1.0)
        })
        .expect("node_exporter exposes the last write");
    assert_eq!(sample(&page, "node_textfile_scrape_error", &[]), Some(0.0));
    // node_exporter kept every family of the file: none was refused for clashing with its own.
    assert_eq!(node.gathering_errors(), Vec::<String>::new());
    // Only the file remains: no temporary file left behind.
    assert_eq!(dir.entries(), ["profilis_batch.prom"]);
}

/// An install that fails after the textfile was set up (here: the listener's address is
/// taken) leaves no file behind, which node_exporter would serve for as long as it stays.
#[cfg(feature = "listener")]
#[test]
fn a_failed_install_leaves_no_file() {
    let _one_at_a_time = INSTALLS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("failed-install");
    let file = dir.path().join("service.prom");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = Exporter::new()
        .listen(&addr)
        .unwrap()
        .textfile(&file, Duration::from_secs(1))
        .unwrap()
        .install()
        .err()
        .expect("the listener's address is taken");
    assert!(matches!(&err, Error::Listener(_)), "{err}");
    assert!(err.to_string().contains(&addr), "{err}");
    assert_eq!(dir.entries(), Vec::<String>::new());
}

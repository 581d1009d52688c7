//! SIGTERM stops a running exporter: the shutdown hook runs and the listener stops. A file of
//! its own: the test sends SIGTERM to its own process (by its PID, with `kill`).

#![cfg(unix)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{scrape, start, value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_runs_the_shutdown_hook_and_stops_the_listener() {
    // Caught from here on, so a SIGTERM sent before the exporter listens does not end the
    // test process.
    let mut ours = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM caught");
    let running = start(&[]).await.expect("started");
    let addr = running.local_addr();
    let shut_down = running.script().shut_down.clone();
    let (_, page) = scrape(addr).await;
    assert_eq!(value(&page, "exporter_up", &[]), Some(1.0), "{page}");

    let stopped = tokio::spawn(running.until_signal());
    let pid = std::process::id().to_string();
    // Sent until the exporter's wait sees one (it starts waiting when its task first runs).
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        while !stopped.is_finished() {
            let status = tokio::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .await
                .expect("kill runs");
            assert!(status.success(), "kill -TERM {pid}: {status}");
            ours.recv().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(outcome.is_ok(), "the exporter did not stop on SIGTERM");
    stopped.await.expect("until_signal returned");
    assert!(shut_down.load(Ordering::SeqCst), "the shutdown hook ran");
    let refused =
        tokio::task::spawn_blocking(move || profilis_test_support::try_get(addr, "/metrics", &[]))
            .await
            .unwrap();
    assert!(refused.is_err(), "the listener still answers");
}

/// Set in the child process of the test below: it runs the exporter instead of testing.
const CHILD: &str = "KIT_SIGNAL_TEST_CHILD";

/// An exporter whose first poll takes a minute: the signal arrives during start-up.
struct SlowPoll;

#[derive(clap::Args)]
struct NoOptions {}

impl profilis_exporter_kit::Script for SlowPoll {
    type Options = NoOptions;
    const NAME: &'static str = "slow-poll";
    const VERSION: &'static str = "0.0.1";
    const DEFAULT_PORT: u16 = 9999;

    fn configure(
        _: NoOptions,
        _: &profilis_exporter_kit::Context,
    ) -> Result<Self, profilis_exporter_kit::BoxError> {
        Ok(SlowPoll)
    }

    fn update_mode(&self) -> profilis_exporter_kit::UpdateMode {
        profilis_exporter_kit::UpdateMode::Poll {
            interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(120),
        }
    }

    async fn update(&self) -> Result<(), profilis_exporter_kit::BoxError> {
        eprintln!("first poll started");
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    }

    async fn shutdown(&self) {
        eprintln!("shutdown hook ran");
    }
}

/// A real SIGTERM to a child process (this test binary again, running the exporter through
/// `main_with_args`) during its first poll: the shutdown hook runs and it exits 0, rather than
/// dying of the signal (exit status 143).
#[test]
fn sigterm_during_the_first_poll_runs_the_shutdown_hook_and_exits_0() {
    if std::env::var_os(CHILD).is_some() {
        let code = profilis_exporter_kit::main_with_args::<SlowPoll, _, _>([
            "slow-poll",
            "-H",
            "127.0.0.1",
            "-p",
            "0",
        ]);
        std::process::exit(if code == std::process::ExitCode::SUCCESS {
            0
        } else {
            1
        });
    }

    let (exit, log) = sigterm_child_when(
        "sigterm_during_the_first_poll_runs_the_shutdown_hook_and_exits_0",
        "1",
        "first poll started",
    );
    assert!(exit.success(), "{exit}: {log:#?}");
    assert!(
        log.iter().any(|l| l.contains("shutdown hook ran")),
        "the shutdown hook did not run: {log:#?}"
    );
}

/// An exporter whose `configure` (reading a FIFO nobody writes, say) or startup hook (waiting
/// for a database that is not up) blocks for a minute, as the child's `KIT_SIGNAL_TEST_CHILD`
/// says: `configure` or `startup`.
struct SlowStart;

impl profilis_exporter_kit::Script for SlowStart {
    type Options = NoOptions;
    const NAME: &'static str = "slow-start";
    const VERSION: &'static str = "0.0.1";
    const DEFAULT_PORT: u16 = 9999;

    fn configure(
        _: NoOptions,
        _: &profilis_exporter_kit::Context,
    ) -> Result<Self, profilis_exporter_kit::BoxError> {
        if std::env::var(CHILD).as_deref() == Ok("configure") {
            eprintln!("configure started");
            std::thread::sleep(Duration::from_secs(60));
        }
        Ok(SlowStart)
    }

    async fn startup(&self) -> Result<(), profilis_exporter_kit::BoxError> {
        eprintln!("startup hook started");
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    }

    async fn shutdown(&self) {
        eprintln!("shutdown hook ran");
    }
}

/// Runs the test `name` of this binary again as a child with `KIT_SIGNAL_TEST_CHILD=phase`,
/// sends it SIGTERM once its stderr says `ready`, and returns how it exited (within 30 s, else
/// the test fails: the signal was swallowed) and its stderr.
fn sigterm_child_when(
    name: &str,
    phase: &str,
    ready: &str,
) -> (std::process::ExitStatus, Vec<String>) {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, phase)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the child starts");
    let (lines, seen) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = lines.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log.iter().any(|l: &String| l.contains(ready)) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match seen.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child did not say {ready:?}: {log:#?}");
            }
        }
    }
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {pid}: {status}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not stop within 30s of SIGTERM (swallowed?): {log:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    log.extend(seen.try_iter());
    (exit, log)
}

/// In the child: runs `SlowStart` through `main_with_args`, exiting with its code.
fn run_slow_start_child() {
    let code = profilis_exporter_kit::main_with_args::<SlowStart, _, _>([
        "slow-start",
        "-H",
        "127.0.0.1",
        "-p",
        "0",
    ]);
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// The kit caught SIGTERM from right after the command line was read, but looked at it only
/// once start-up was done: a `configure` or a startup hook that blocked kept the exporter up
/// through every SIGTERM and Ctrl-C (`docker stop` waited for its SIGKILL). Now a signal during
/// `configure` ends the process as usual (nothing is up yet) ...
#[test]
fn sigterm_during_configure_ends_the_process() {
    if std::env::var_os(CHILD).is_some() {
        run_slow_start_child();
    }
    let (exit, log) = sigterm_child_when(
        "sigterm_during_configure_ends_the_process",
        "configure",
        "configure started",
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(exit.signal(), Some(15), "{exit}: {log:#?}");
}

/// ... and one during the startup hook stops the exporter: the shutdown hook runs and it
/// exits 0.
#[test]
fn sigterm_during_the_startup_hook_runs_the_shutdown_hook_and_exits_0() {
    if std::env::var_os(CHILD).is_some() {
        run_slow_start_child();
    }
    let (exit, log) = sigterm_child_when(
        "sigterm_during_the_startup_hook_runs_the_shutdown_hook_and_exits_0",
        "startup",
        "startup hook started",
    );
    assert!(exit.success(), "{exit}: {log:#?}");
    assert!(
        log.iter().any(|l| l.contains("shutdown hook ran")),
        "the shutdown hook did not run: {log:#?}"
    );
}

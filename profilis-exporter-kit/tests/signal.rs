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

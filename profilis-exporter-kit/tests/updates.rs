//! The updates of a started exporter, scraped over loopback: on each scrape, polled, or never;
//! failures (error, panic, timeout) answered with the script's series withdrawn and counted;
//! recovery; scrapes sharing one update; start-up errors; shutdown.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{scrape, start, value, Behaviour, TURN};
use profilis_exporter_kit::Error;

const PROBE: &str = "probe_value";
const SOURCE: &[(&str, &str)] = &[("source", "test")];

fn errors(page: &str, reason: &str) -> Option<f64> {
    value(page, "exporter_update_errors_total", &[("reason", reason)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_scrape_the_page_follows_the_value() {
    let _turn = TURN.lock().await;
    let running = start(&["--mode", "on-scrape"]).await.expect("started");
    let probe = running.script().clone();

    probe.set_value(3);
    let (status, page) = scrape(running.local_addr()).await;
    assert_eq!(status, 200);
    assert_eq!(value(&page, PROBE, SOURCE), Some(3.0), "{page}");
    assert_eq!(value(&page, "exporter_up", &[]), Some(1.0), "{page}");
    for reason in ["error", "panic", "timeout"] {
        assert_eq!(errors(&page, reason), Some(0.0), "{reason}: {page}");
    }
    assert!(value(&page, "exporter_last_success_timestamp_seconds", &[]).unwrap() > 1.7e9);
    assert!(
        value(&page, "exporter_update_duration_seconds", &[]).is_some(),
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            "rust_build_info",
            &[("crate", "probe-exporter"), ("version", "1.2.3")]
        ),
        Some(1.0),
        "{page}"
    );

    probe.set_value(8);
    let (_, page) = scrape(running.local_addr()).await;
    assert_eq!(value(&page, PROBE, SOURCE), Some(8.0), "{page}");
    assert_eq!(
        value(&page, "probe_updates_total", &[]),
        Some(2.0),
        "{page}"
    );
    assert_eq!(probe.calls(), 2);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_update_is_answered_counted_and_withdraws_the_values_until_one_succeeds() {
    let _turn = TURN.lock().await;
    // Long enough for a panic to be told from a timeout on a loaded machine: the panic hook
    // prints a backtrace (symbolized, under RUST_BACKTRACE) before the task's end is seen, and
    // that took over 300 ms while other builds ran.
    let running = start(&["--mode", "on-scrape", "--timeout-ms", "5000"])
        .await
        .expect("started");
    let probe = running.script().clone();
    let addr = running.local_addr();
    probe.set_value(5);
    let (_, page) = scrape(addr).await;
    assert_eq!(value(&page, PROBE, SOURCE), Some(5.0), "{page}");

    let cases = [
        (Behaviour::Fail, "error"),
        (Behaviour::Panic, "panic"),
        (Behaviour::Sleep(Duration::from_secs(60)), "timeout"),
        // The script's own time-out (kit::TimedOut) counts as a timeout too.
        (Behaviour::TimedOut, "timeout"),
    ];
    let mut counted = std::collections::HashMap::new();
    for (count, (behaviour, reason)) in cases.into_iter().enumerate() {
        *counted.entry(reason).or_insert(0.0) += 1.0;
        probe.behave(behaviour);
        let (status, page) = scrape(addr).await;
        assert_eq!(status, 200, "{reason}");
        assert_eq!(
            value(&page, "exporter_up", &[]),
            Some(0.0),
            "{reason}: {page}"
        );
        assert_eq!(
            errors(&page, reason),
            Some(counted[reason]),
            "{reason}: {page}"
        );
        let total: f64 = ["error", "panic", "timeout"]
            .iter()
            .map(|r| errors(&page, r).unwrap())
            .sum();
        assert_eq!(total, (count + 1) as f64, "{reason}: {page}");
        assert_eq!(
            value(&page, PROBE, SOURCE),
            None,
            "{reason}: stale value served: {page}"
        );
        assert!(
            !page.contains("probe_updates_total"),
            "{reason}: the script's series are withdrawn: {page}"
        );
    }

    probe.behave(Behaviour::Succeed);
    probe.set_value(6);
    let (_, page) = scrape(addr).await;
    assert_eq!(value(&page, "exporter_up", &[]), Some(1.0), "{page}");
    assert_eq!(value(&page, PROBE, SOURCE), Some(6.0), "{page}");
    // The counter kept its total through the failures: two successful updates.
    assert_eq!(
        value(&page, "probe_updates_total", &[]),
        Some(2.0),
        "{page}"
    );
    for (reason, want) in [("error", 1.0), ("panic", 1.0), ("timeout", 2.0)] {
        assert_eq!(errors(&page, reason), Some(want), "{reason}: {page}");
    }
    running.shutdown().await;
}

// Scrapes arriving during an update share it: a unit test in src/updates.rs, which can see
// the scrapes joining the update before it lets the update finish.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_are_all_answered() {
    let _turn = TURN.lock().await;
    let running = start(&["--mode", "on-scrape"]).await.expect("started");
    let probe = running.script().clone();
    let addr = running.local_addr();
    probe.set_value(4);
    let scrapes: Vec<_> = (0..4).map(|_| tokio::spawn(scrape(addr))).collect();
    for scrape in scrapes {
        let (status, page) = scrape.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(value(&page, PROBE, SOURCE), Some(4.0), "{page}");
    }
    assert!((1..=4).contains(&probe.calls()), "{}", probe.calls());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_aborts_and_awaits_a_running_update_before_the_hook() {
    let _turn = TURN.lock().await;
    for mode in [
        &["--mode", "on-scrape"][..],
        &["--mode", "poll", "--interval-ms", "50"][..],
    ] {
        let running = start(mode).await.expect("started");
        let probe = running.script().clone();
        let addr = running.local_addr();
        probe.behave(Behaviour::Gate);
        // On scrape, a scrape starts the update; polling, the next tick does.
        let scraping = tokio::task::spawn_blocking(move || {
            let _ = profilis_test_support::try_get(addr, "/metrics", &[]);
        });
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while probe.running.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{mode:?}: no update started");
        running.shutdown().await;
        assert_eq!(
            probe.running_at_shutdown.load(Ordering::SeqCst),
            0,
            "{mode:?}: an update still ran when the shutdown hook did"
        );
        scraping.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_updates_at_start_up_then_on_the_interval_not_on_scrapes() {
    let _turn = TURN.lock().await;
    // An interval of an hour: only the update at start-up runs during the test.
    let running = start(&["--mode", "poll"]).await.expect("started");
    let probe = running.script().clone();
    assert_eq!(
        probe.calls(),
        1,
        "the first update ran before start returned"
    );
    for _ in 0..3 {
        let (_, page) = scrape(running.local_addr()).await;
        assert_eq!(value(&page, PROBE, SOURCE), Some(0.0), "{page}");
        assert_eq!(value(&page, "exporter_up", &[]), Some(1.0), "{page}");
    }
    assert_eq!(probe.calls(), 1, "scrapes do not update in poll mode");
    running.shutdown().await;

    let running = start(&["--mode", "poll", "--interval-ms", "100"])
        .await
        .expect("started");
    let probe = running.script().clone();
    probe.set_value(9);
    let addr = running.local_addr();
    let mut page = String::new();
    for _ in 0..100 {
        page = scrape(addr).await.1;
        if value(&page, PROBE, SOURCE) == Some(9.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(value(&page, PROBE, SOURCE), Some(9.0), "{page}");

    // A failing poll withdraws the values and counts the error.
    probe.behave(Behaviour::Fail);
    for _ in 0..100 {
        page = scrape(addr).await.1;
        if errors(&page, "error").is_some_and(|n| n >= 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(errors(&page, "error").unwrap() >= 1.0, "{page}");
    assert_eq!(value(&page, "exporter_up", &[]), Some(0.0), "{page}");
    assert_eq!(value(&page, PROBE, SOURCE), None, "{page}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_serves_what_the_script_writes() {
    let _turn = TURN.lock().await;
    let running = start(&["--mode", "never"]).await.expect("started");
    let probe = running.script().clone();
    let (_, page) = scrape(running.local_addr()).await;
    assert_eq!(value(&page, "exporter_up", &[]), Some(1.0), "{page}");
    assert_eq!(value(&page, PROBE, SOURCE), None, "{page}");

    probe.gauge.set(&["test"], 12.0).unwrap();
    let (_, page) = scrape(running.local_addr()).await;
    assert_eq!(value(&page, PROBE, SOURCE), Some(12.0), "{page}");
    probe.gauge.set(&["test"], 13.0).unwrap();
    let (_, page) = scrape(running.local_addr()).await;
    assert_eq!(value(&page, PROBE, SOURCE), Some(13.0), "{page}");
    assert_eq!(probe.calls(), 0, "no update in mode never");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_runs_the_hook_stops_the_listener_and_frees_the_process() {
    let _turn = TURN.lock().await;
    let running = start(&[]).await.expect("started");
    let addr = running.local_addr();
    let shut_down = running.script().shut_down.clone();

    // One exporter per process.
    let second = start(&[]).await;
    assert!(
        matches!(second, Err(Error::AlreadyRunning)),
        "{:?}",
        second.err()
    );

    running.shutdown().await;
    assert!(shut_down.load(Ordering::SeqCst), "the shutdown hook ran");
    let refused =
        tokio::task::spawn_blocking(move || profilis_test_support::try_get(addr, "/metrics", &[]))
            .await
            .unwrap();
    assert!(refused.is_err(), "the listener still answers");

    let again = start(&[])
        .await
        .expect("a second start after the first stopped");
    let (_, page) = scrape(again.local_addr()).await;
    assert_eq!(value(&page, "exporter_up", &[]), Some(1.0), "{page}");
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_name_what_is_wrong() {
    let _turn = TURN.lock().await;
    let error = start(&["--metric-name", "probe value"])
        .await
        .err()
        .unwrap();
    assert!(matches!(error, Error::Script(_)), "{error:?}");
    assert!(error.to_string().contains("\"probe value\""), "{error}");

    // The kit's names are published before `configure`: the script's declaration fails.
    let error = start(&["--metric-name", "exporter_up"])
        .await
        .err()
        .unwrap();
    assert!(matches!(error, Error::Script(_)), "{error:?}");
    assert!(error.to_string().contains("exporter_up"), "{error}");

    let error = start(&["--mode", "poll", "--interval-ms", "0"])
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            Error::Mode {
                setting: "interval",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("interval"), "{error}");
    // Too long: a poll interval or timeout above a day (Duration::MAX made the polling loop
    // panic), an on-scrape timeout above 25 s.
    let huge = u64::MAX.to_string();
    for (args, setting) in [
        (
            vec!["--mode", "poll", "--interval-ms", huge.as_str()],
            "interval",
        ),
        (
            vec!["--mode", "poll", "--interval-ms", "86400001"],
            "interval",
        ),
        (
            vec!["--mode", "poll", "--timeout-ms", huge.as_str()],
            "timeout",
        ),
        (
            vec!["--mode", "on-scrape", "--timeout-ms", "25001"],
            "timeout",
        ),
    ] {
        let error = start(&args).await.err().expect("refused");
        assert!(
            matches!(error, Error::Mode { setting: s, .. } if s == setting),
            "{args:?}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(setting), "{message}");
        let limit = if args[1] == "poll" { "a day" } else { "25s" };
        assert!(message.contains(limit), "{limit:?} is not in: {message}");
    }
    let at_the_limits = start(&[
        "--mode",
        "poll",
        "--interval-ms",
        "86400000",
        "--timeout-ms",
        "86400000",
    ])
    .await
    .expect("a day is allowed");
    at_the_limits.shutdown().await;
    let error = start(&["--timeout-ms", "0"]).await.err().unwrap();
    assert!(
        matches!(
            error,
            Error::Mode {
                setting: "timeout",
                ..
            }
        ),
        "{error:?}"
    );

    // The listen address taken: an error, and the process is free again after it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let args = ["probe-exporter", "-H", "127.0.0.1", "-p", port.as_str()];
    let error = profilis_exporter_kit::start::<common::Probe, _, _>(args)
        .await
        .err()
        .unwrap();
    assert!(matches!(error, Error::AddrInUse { .. }), "{error:?}");
    let message = error.to_string();
    for want in [port.as_str(), "-H/--host", "-p/--port", "EXPORTER_PORT"] {
        assert!(message.contains(want), "{want:?} is not in: {message}");
    }
    assert!(!message.contains("PROFILIS_LISTEN"), "{message}");
    let running = start(&[]).await.expect("started after the failures");
    running.shutdown().await;
}

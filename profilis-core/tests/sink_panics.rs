//! A sink that panics at every batch is said once on stderr, then only counted: the panic
//! hooks installed before profilis's see its first panic, not the others. (A process of its
//! own: the hook installed first here is the test's.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use profilis_core::adapter::enter;
use profilis_core::{sink_fn, stats, Collector, CollectorConfig, Site};

static SITE: Site = Site::function("sink_panics::call", None);
static SINK_PANICS_SEEN: AtomicUsize = AtomicUsize::new(0);
static OTHER_PANICS_SEEN: AtomicUsize = AtomicUsize::new(0);

#[test]
fn a_sink_that_keeps_panicking_reaches_the_hooks_once() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or_default();
        if message == "a sink that always panics" {
            SINK_PANICS_SEEN.fetch_add(1, Ordering::AcqRel);
        } else {
            OTHER_PANICS_SEEN.fetch_add(1, Ordering::AcqRel);
        }
    }));
    let before = stats().sink_failures;
    let collector = Collector::start(
        CollectorConfig {
            flush_interval: Duration::from_millis(2),
            enabled: Some(true),
            ..CollectorConfig::default()
        },
        vec![Box::new(sink_fn(|_| panic!("a sink that always panics")))],
    )
    .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats().sink_failures < before + 5 {
        assert!(Instant::now() < deadline, "{:?}", stats());
        enter(&SITE).exit(false);
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(collector);
    assert_eq!(SINK_PANICS_SEEN.load(Ordering::Acquire), 1);
    // The application's own panics still reach its hook.
    let _ = std::panic::catch_unwind(|| panic!("the application's"));
    assert_eq!(OTHER_PANICS_SEEN.load(Ordering::Acquire), 1);
}

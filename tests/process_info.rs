//! The process metrics, info metrics and state sets on the exporter's page, end to end: served
//! by the listener over loopback, read back strictly, accepted by `promtool`; the process
//! metrics switched off by the builder and by `PROFILIS_PROCESS_METRICS`. One test, because the
//! recorder, the collector and the environment are shared by the whole process.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use profilis::metric_names::{
    PROCESS_CPU_SECONDS_TOTAL, PROCESS_MAX_FDS, PROCESS_OPEN_FDS, PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_START_TIME_SECONDS, PROCESS_THREADS, PROCESS_VIRTUAL_MEMORY_BYTES,
};
use profilis::{profiled, Error, Exporter, MetricError, StateSet};
use profilis_test_support::{get, parse_exposition, promtool_check_metrics, wait_for, Exposition};

const PROCESS: [&str; 7] = [
    PROCESS_CPU_SECONDS_TOTAL,
    PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_VIRTUAL_MEMORY_BYTES,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_START_TIME_SECONDS,
    PROCESS_THREADS,
];

fn read(text: &str) -> Exposition {
    parse_exposition(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn type_of<'a>(page: &'a Exposition, name: &str) -> Option<&'a str> {
    let found = page.types.iter().find(|(n, _)| n == name);
    found.map(|(_, t)| t.as_str())
}

fn only(page: &Exposition, name: &str) -> f64 {
    let series: Vec<_> = page.named(name).collect();
    assert_eq!(series.len(), 1, "one series of {name}: {series:?}");
    series[0].value
}

#[profiled]
fn warm_up() {}

fn render() -> String {
    profilis::render().expect("the exporter was installed")
}

#[test]
fn process_info_and_state_sets_are_served_and_switchable() {
    // Published before the exporter is installed: they wait in their registry.
    profilis::info("shop", &[("version", "1.2.3"), ("region", "eu \"west\"")]).unwrap();
    let health = StateSet::new("app_health", &["healthy", "unhealthy"]).unwrap();

    let guard = Exporter::new()
        .listen("127.0.0.1:0")
        .unwrap()
        .install()
        .expect("exporter installs");
    let addr = guard.listen_addr().expect("listener runs");
    // The health metrics get their help texts with the collector's first batch, which a
    // profiled call brings; promtool wants them.
    warm_up();
    let text = wait_for(Duration::from_secs(10), || {
        let text = get(addr, "/metrics", &[]).text();
        text.contains("# HELP profilis_queue_depth").then_some(text)
    })
    .expect("the first batch within 10 s");
    let page = read(&text);

    // The tutorial's rendering, line for line.
    assert!(
        text.contains(
            "# TYPE app_health gauge\n\
             app_health{app_health=\"healthy\"} 1\n\
             app_health{app_health=\"unhealthy\"} 0\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "# TYPE shop_info gauge\n\
             shop_info{version=\"1.2.3\",region=\"eu \\\"west\\\"\"} 1\n"
        ),
        "{text}"
    );

    // Process metrics: typed, described, plausible.
    assert_eq!(type_of(&page, PROCESS_CPU_SECONDS_TOTAL), Some("counter"));
    for name in &PROCESS[1..] {
        assert_eq!(type_of(&page, name), Some("gauge"), "{name}\n{text}");
    }
    for name in PROCESS {
        assert!(page.help_of(name).is_some(), "{name} has a help text");
    }
    assert!(only(&page, PROCESS_RESIDENT_MEMORY_BYTES) > 0.0);
    assert!(only(&page, PROCESS_OPEN_FDS) >= 3.0);
    assert!(only(&page, PROCESS_THREADS) >= 1.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = only(&page, PROCESS_START_TIME_SECONDS);
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "{started} vs {now}"
    );
    assert!(only(&page, PROCESS_CPU_SECONDS_TOTAL) >= 0.0);
    promtool_check_metrics(text.as_bytes());

    // The state changes; a handle got again by name shares it; an unknown state is refused.
    let again = StateSet::new("app_health", &["healthy", "unhealthy"]).unwrap();
    again.set("unhealthy").unwrap();
    assert_eq!(health.state(), "unhealthy");
    match health.set("on fire") {
        Err(MetricError::UnknownState { state, states, .. }) => {
            assert_eq!(state, "on fire");
            assert_eq!(states, ["healthy", "unhealthy"]);
        }
        other => panic!("expected UnknownState, got {other:?}"),
    }
    let text = get(addr, "/metrics", &[]).text();
    assert!(
        text.contains(
            "app_health{app_health=\"healthy\"} 0\n\
             app_health{app_health=\"unhealthy\"} 1\n"
        ),
        "{text}"
    );

    // An info published again replaces its labels; a description replaces the default help.
    metrics::describe_gauge!("shop_info", "The shop's build");
    profilis::info("shop_info", &[("version", "1.3.0")]).unwrap();
    let page = read(&render());
    let shop: Vec<_> = page.named("shop_info").collect();
    assert_eq!(shop.len(), 1, "{shop:?}");
    assert_eq!(shop[0].label("version"), Some("1.3.0"));
    assert_eq!(shop[0].label("region"), None);
    assert_eq!(page.help_of("shop_info"), Some("The shop's build"));

    // Bad names are typed errors naming them, also through `?` into profilis::Error.
    let bad = || -> Result<(), Error> {
        profilis::info("shop", &[("build-id", "7")])?;
        Ok(())
    };
    match bad() {
        Err(Error::Metric(MetricError::LabelName { metric, label })) => {
            assert_eq!((metric.as_str(), label.as_str()), ("shop_info", "build-id"));
        }
        other => panic!("expected Error::Metric, got {other:?}"),
    }
    let err = StateSet::new("app-health", &["up"]).unwrap_err();
    assert!(err.to_string().contains("\"app-health\""), "{err}");
    assert!(matches!(
        StateSet::new("app_health", &["up", "down"]),
        Err(MetricError::NameTaken { .. })
    ));
    drop(guard);

    // Switched off in code: no process series, the rest stays.
    let guard = Exporter::new()
        .without_listener()
        .process_metrics(false)
        .install()
        .unwrap();
    let text = render();
    for name in PROCESS {
        assert!(!text.contains(name), "{name} is still there:\n{text}");
    }
    assert!(text.contains("app_health{"), "{text}");
    drop(guard);

    // Switched off by the environment, and back on by code, which overrides it.
    std::env::set_var("PROFILIS_PROCESS_METRICS", "off");
    let guard = Exporter::new().without_listener().install().unwrap();
    assert!(!render().contains(PROCESS_RESIDENT_MEMORY_BYTES));
    drop(guard);
    let guard = Exporter::new()
        .without_listener()
        .process_metrics(true)
        .install()
        .unwrap();
    assert!(render().contains(PROCESS_RESIDENT_MEMORY_BYTES));
    drop(guard);
    std::env::remove_var("PROFILIS_PROCESS_METRICS");
}

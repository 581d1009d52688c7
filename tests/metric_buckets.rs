//! Per-metric buckets of the application's histograms, end to end: `PROFILIS_METRIC_BUCKETS`
//! checked (a bad value is an error naming the variable, its value and what is wrong), the
//! builder's matchers replacing the environment's same matcher, and each histogram's
//! `_bucket{le=..}` lines on the page. One test, because the environment and the recorder are
//! shared by the whole process.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use profilis::{profiled, ConfigError, Error, Exporter, MetricBucketsError, MetricMatch};
use std::time::Duration;

use profilis_test_support::{parse_exposition, promtool_check_metrics, wait_for, Exposition};

#[profiled]
fn work() {}

const VAR: &str = "PROFILIS_METRIC_BUCKETS";

fn env_error(value: impl AsRef<OsStr>) -> Error {
    let value = value.as_ref();
    std::env::set_var(VAR, value);
    let err = Exporter::new()
        .without_listener()
        .install()
        .err()
        .unwrap_or_else(|| panic!("{VAR}={value:?} must be rejected"));
    std::env::remove_var(VAR);
    err
}

/// The `le` bounds of `name`'s `_bucket` lines, checking they are cumulative up to `_count`.
fn bounds(page: &Exposition, name: &str) -> Vec<String> {
    let bucket = format!("{name}_bucket");
    let lines: Vec<_> = page.named(&bucket).collect();
    assert!(
        lines.windows(2).all(|w| w[0].value <= w[1].value),
        "{name}: {lines:?}"
    );
    let count = page.named(&format!("{name}_count")).map(|s| s.value).next();
    assert_eq!(lines.last().map(|s| s.value), count, "{name}");
    lines
        .iter()
        .map(|s| s.label("le").expect("le").to_owned())
        .collect()
}

#[test]
fn environment_matchers_are_checked_overridden_by_code_and_rendered_per_metric() {
    // Bad values: an error naming the variable, the value and the part at fault.
    for (value, part) in [
        ("http_", "no `=`"),
        ("http.*=1", "character"),
        ("*=1", "`*`"),
        ("*_bytes=100,10", "not in increasing order"),
        ("checkout_seconds=fast", "not a number"),
        ("a=1;a=2", "given before"),
        ("", "no entry"),
    ] {
        let err = env_error(value);
        match &err {
            Error::EnvMetricBuckets { name, value: v, .. } => {
                assert_eq!((*name, v.as_str()), (VAR, value));
            }
            other => panic!("{VAR}={value:?}: expected EnvMetricBuckets, got {other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(VAR) && message.contains(&format!("{value:?}")),
            "{message}"
        );
        assert!(message.contains(part), "{value:?}: {message}");
    }
    let not_utf8 = OsStr::from_bytes(b"a=1\xff");
    match env_error(not_utf8) {
        Error::Config(ConfigError::EnvNotUnicode { name, value }) => {
            assert_eq!((name, value.as_os_str()), (VAR, not_utf8));
        }
        other => panic!("expected EnvNotUnicode, got {other}"),
    }

    // Bad settings in code: refused by the builder, naming the matcher.
    let err = Exporter::new()
        .metric_buckets(MetricMatch::prefix("http-"), &[1.0])
        .err()
        .expect("`-` is not in a metric name");
    assert!(
        matches!(&err, Error::MetricBuckets(MetricBucketsError::Matcher { matcher, .. }) if matcher == "http-*"),
        "{err}"
    );
    let err = Exporter::new()
        .metric_buckets(MetricMatch::full("a"), &[1.0, f64::NAN])
        .err()
        .expect("NaN is not a bound");
    assert!(
        matches!(&err, Error::MetricBuckets(MetricBucketsError::Buckets { matcher, .. }) if matcher == "a"),
        "{err}"
    );

    // The environment's matchers, the code replacing `http_*` and adding `*_size_bytes`.
    std::env::set_var(
        VAR,
        "checkout_seconds=7,8,9; http_*=0.01,0.1; *_bytes=1000,100000",
    );
    let setup = || {
        Exporter::new()
            .without_listener()
            .metric_buckets(MetricMatch::prefix("http_"), &[0.2, 0.4])
            .unwrap()
            .metric_buckets(MetricMatch::suffix("_size_bytes"), &[64.0])
            .unwrap()
    };
    let guard = setup().install().unwrap();
    for name in [
        "checkout_seconds",
        "http_request_seconds",
        "http_response_size_bytes",
        "disk_read_bytes",
        "queue_wait_seconds",
    ] {
        metrics::describe_histogram!(name, "Measured");
        for v in [0.1, 0.3, 8.5, 5000.0] {
            metrics::histogram!(name).record(v);
        }
    }
    // After the first batch (of a profiled call), when profilis's own metrics have their help
    // texts too.
    work();
    let text = wait_for(Duration::from_secs(10), || {
        let text = guard.render();
        text.contains("# HELP profilis_queue_depth").then_some(text)
    })
    .expect("a first batch within 10 s");
    let page = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (name, want) in [
        ("checkout_seconds", &["7", "8", "9", "+Inf"][..]), // the environment's full name
        ("http_request_seconds", &["0.2", "0.4", "+Inf"]),  // the code's `http_*`
        ("http_response_size_bytes", &["64", "+Inf"]),      // `*_size_bytes` (11) over `http_`
        ("disk_read_bytes", &["1000", "100000", "+Inf"]),   // the environment's `*_bytes`
        // No match: profilis's default buckets.
        (
            "queue_wait_seconds",
            &[
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2", "5", "10", "+Inf",
            ],
        ),
    ] {
        assert_eq!(bounds(&page, name), want, "{name}\n{text}");
    }
    let line = |l: &str| text.lines().any(|t| t == l);
    assert!(line("http_request_seconds_bucket{le=\"0.4\"} 2"), "{text}");
    assert!(line("disk_read_bytes_bucket{le=\"1000\"} 3"), "{text}");
    promtool_check_metrics(text.as_bytes());
    drop(guard);

    // The recorder stays installed with these buckets: the same settings install again, other
    // ones are refused.
    drop(setup().install().unwrap());
    std::env::remove_var(VAR);
    assert!(matches!(setup().install(), Err(Error::BucketsFixed)));
}

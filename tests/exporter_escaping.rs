//! Function names, label values and help texts with quotes, backslashes and line feeds, through
//! the installed exporter: each value is its own series, reads back as itself under
//! Prometheus's rules for the text format, and the page passes `promtool check metrics`.
//! (Before profilis rendered its own page, `a"b` and `a\"b` became one series, and `bs\` with a
//! line feed came out as `bs\n\\`.)

use std::time::Duration;

use profilis::{profiled, Exporter};
use profilis_test_support::{parse_exposition, promtool_check_metrics, wait_for, Exposition};

#[profiled(name = "a\"b")]
fn quoted() {}

#[profiled(name = "a\\\"b")]
fn backslash_quoted() {}

#[profiled(name = "bs\\")]
fn trailing_backslash() {}

#[profiled(name = "bs\\n")]
fn backslash_n() {}

const FUNCTIONS: [(&str, f64); 4] = [
    ("a\"b", 1.0),
    ("a\\\"b", 2.0),
    ("bs\\", 3.0),
    ("bs\\n", 4.0),
];

fn calls_of(page: &Exposition, function: &str) -> Vec<f64> {
    page.named("profilis_function_calls_total")
        .filter(|s| s.label("function") == Some(function))
        .map(|s| s.value)
        .collect()
}

#[test]
fn awkward_values_are_distinct_series_that_read_back_and_pass_promtool() {
    let guard = Exporter::new()
        .service("shop \"eu\\west\"")
        .instance("host-1")
        .worker("7")
        .without_listener()
        // Two renders are compared below: the process's memory would differ between them.
        .process_metrics(false)
        .flush_interval(Duration::from_millis(10))
        .install()
        .expect("exporter installs");
    quoted();
    for _ in 0..2 {
        backslash_quoted();
    }
    for _ in 0..3 {
        trailing_backslash();
    }
    for _ in 0..4 {
        backslash_n();
    }
    metrics::describe_counter!("app_lines_total", "Lines \\ read\nper \"source\"");
    metrics::counter!("app_lines_total", "source" => "bs\\\n").increment(5);
    metrics::counter!("app_lines_total", "source" => "bs\\n").increment(6);
    metrics::describe_histogram!(
        "app_read_seconds",
        metrics::Unit::Seconds,
        "Time to read a line"
    );
    metrics::histogram!("app_read_seconds", "source" => "a\"b").record(0.2);

    let (text, page) = wait_for(Duration::from_secs(10), || {
        let text = profilis::render().expect("installed");
        let page = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let done = FUNCTIONS
            .iter()
            .all(|&(function, n)| calls_of(&page, function) == [n]);
        done.then_some((text, page))
    })
    .expect("every function is its own series, with its own count");
    assert_eq!(guard.render(), text);

    for sample in page.named("profilis_function_calls_total") {
        assert_eq!(sample.label("service"), Some("shop \"eu\\west\""));
    }
    for (function, n) in FUNCTIONS {
        let counts: Vec<f64> = page
            .named("profilis_function_duration_seconds_count")
            .filter(|s| s.label("function") == Some(function))
            .map(|s| s.value)
            .collect();
        assert_eq!(counts, [n], "{function:?}\n{text}");
    }
    let lines: Vec<(Option<&str>, f64)> = page
        .named("app_lines_total")
        .map(|s| (s.label("source"), s.value))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.contains(&(Some("bs\\\n"), 5.0)), "{text}");
    assert!(lines.contains(&(Some("bs\\n"), 6.0)), "{text}");
    assert_eq!(
        page.help_of("app_lines_total"),
        Some("Lines \\ read\nper \"source\"")
    );
    // The application's histogram is bucketed with the exporter's (default) buckets.
    let bucket = |le: &str| {
        page.named("app_read_seconds_bucket")
            .find(|s| s.label("le") == Some(le) && s.label("source") == Some("a\"b"))
            .map(|s| s.value)
    };
    assert_eq!(bucket("0.1"), Some(0.0), "{text}");
    assert_eq!(bucket("0.25"), Some(1.0), "{text}");
    assert_eq!(bucket("+Inf"), Some(1.0), "{text}");
    assert!(!text.contains("quantile="), "no summaries\n{text}");
    assert!(text.contains("# TYPE app_read_seconds histogram\n"));

    promtool_check_metrics(text.as_bytes());
}

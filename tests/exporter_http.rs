//! The exporter end to end over real loopback HTTP: profiled calls appear on `/metrics` with the
//! contract's names, labels, buckets, counts and sums; the text passes `promtool check metrics`;
//! the application's own metrics share the page; errors are typed.

use std::time::Duration;

use profilis::listener::ListenerError;
use profilis::{profiled, Error, Exporter};
use profilis::{ConfigError, StartError};
use profilis_test_support::{get, promtool_check_metrics, sample, wait_for};

#[profiled]
fn quick(i: u64) -> Result<u64, String> {
    if i.is_multiple_of(4) {
        Err("every fourth fails".into())
    } else {
        Ok(i)
    }
}

#[profiled(name = "slow_call")]
fn slow() {
    std::thread::sleep(Duration::from_millis(30));
}

#[test]
fn profiled_calls_are_served_on_metrics_and_pass_promtool() {
    let guard = Exporter::new()
        .service("shop")
        .instance("host-1")
        .worker("7")
        .listen("127.0.0.1:0")
        .unwrap()
        .flush_interval(Duration::from_millis(10))
        .install()
        .expect("exporter installs");
    let addr = guard.listen_addr().expect("listener runs");
    // Scraped before any batch: the health metrics are there, described, and the page passes.
    let first = get(addr, "/metrics", &[]).text();
    assert!(
        first.contains("# HELP profilis_events_dropped_total ")
            && first.contains("# HELP profilis_queue_depth "),
        "{first}"
    );
    promtool_check_metrics(first.as_bytes());

    for i in 0..40 {
        let _ = quick(i);
    }
    for _ in 0..3 {
        slow();
    }
    metrics::describe_counter!("app_orders_total", "Orders taken by the application");
    metrics::counter!("app_orders_total").increment(5);

    let labels = [("service", "shop"), ("instance", "host-1"), ("worker", "7")];
    let fn_labels = |f: &'static str| {
        let mut l = labels.to_vec();
        l.push(("function", f));
        l
    };
    let text = wait_for(Duration::from_secs(10), || {
        let text = get(addr, "/metrics", &[]).text();
        let done = sample(
            &text,
            "profilis_function_calls_total",
            &fn_labels("slow_call"),
        ) == Some(3.0)
            && sample(
                &text,
                "profilis_function_calls_total",
                &fn_labels("exporter_http::quick"),
            ) == Some(40.0);
        done.then_some(text)
    })
    .expect("the calls reach /metrics");

    let quick_fn = fn_labels("exporter_http::quick");
    assert_eq!(
        sample(&text, "profilis_function_errors_total", &quick_fn),
        Some(10.0)
    );
    assert_eq!(
        sample(&text, "profilis_function_duration_seconds_count", &quick_fn),
        Some(40.0)
    );
    // Bucketed with the default buckets: every boundary is there, +Inf holds every call.
    let slow_fn = fn_labels("slow_call");
    for le in [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2", "5", "10", "+Inf",
    ] {
        let mut with_le = slow_fn.clone();
        with_le.push(("le", le));
        let v = sample(&text, "profilis_function_duration_seconds_bucket", &with_le);
        let expected = if matches!(le, "0.005" | "0.01" | "0.025") {
            0.0
        } else {
            3.0
        };
        assert_eq!(v, Some(expected), "bucket le={le}\n{text}");
    }
    let sum = sample(&text, "profilis_function_duration_seconds_sum", &slow_fn).unwrap();
    assert!((0.09..1.0).contains(&sum), "three 30 ms calls sum to {sum}");
    assert!(
        !text.contains("quantile="),
        "profilis histograms are not summaries"
    );
    assert!(text.contains("# TYPE profilis_function_duration_seconds histogram"));
    // Health metrics and the application's own metrics share the page.
    assert_eq!(
        sample(&text, "profilis_events_dropped_total", &[]),
        Some(0.0)
    );
    assert!(sample(&text, "profilis_queue_depth", &[]).is_some());
    assert_eq!(sample(&text, "app_orders_total", &[]), Some(5.0));
    // render() serves the same text for applications with their own router.
    let rendered = profilis::render().expect("installed");
    assert!(rendered.contains("profilis_function_calls_total"));

    let response = get(addr, "/metrics", &[]);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    promtool_check_metrics(&response.body);

    // A second exporter while this one runs: the collector is taken.
    let second = Exporter::new().listen("127.0.0.1:0").unwrap().install();
    assert!(matches!(
        second,
        Err(Error::Collector(StartError::AlreadyRunning))
    ));

    // The port is taken: a typed error naming the address. The install's sample rate is not
    // left behind for the next install to inherit.
    drop(guard);
    let rate_before = profilis::global_rate();
    let taken = Exporter::new()
        .listen_addr(addr)
        .sample_rate(rate_before / 4.0)
        .unwrap();
    let _holder = std::net::TcpListener::bind(addr).unwrap();
    match taken.install() {
        Err(Error::Listener(ListenerError::AddrInUse { addr: a })) => assert_eq!(a, addr),
        Err(other) => panic!("expected AddrInUse, got {other}"),
        Ok(_) => panic!("expected AddrInUse, got an exporter"),
    }
    assert_eq!(profilis::global_rate(), rate_before);
}

#[test]
fn bad_settings_are_typed_errors_naming_the_value() {
    let buckets = [
        (vec![], "there are none"),
        (vec![0.1, f64::NAN], "not a finite number"),
        (vec![-1.0, 1.0], "not positive"),
        (vec![0.5, 0.1], "not in increasing order"),
        (vec![0.1, 0.1], "not in increasing order"),
    ];
    for (values, why) in buckets {
        let err = Exporter::new().buckets(&values).err().expect("rejected");
        assert!(
            matches!(err, Error::Config(ConfigError::Buckets { .. })),
            "{err}"
        );
        assert!(err.to_string().contains(why), "{err}");
    }
    for rate in [-0.5, 1.5, f64::NAN] {
        let err = Exporter::new().sample_rate(rate).err().expect("rejected");
        assert!(
            matches!(err, Error::Config(ConfigError::SampleRate { .. })),
            "{err}"
        );
    }
    // An empty label from code, as from the environment, is refused (Prometheus would read it
    // as none, and merge the series of the processes it tells apart).
    for (exporter, name) in [
        (Exporter::new().service(""), "service"),
        (Exporter::new().instance(" "), "instance"),
        (Exporter::new().worker("\t"), "worker"),
    ] {
        let err = exporter.install().err().expect("rejected");
        assert!(
            matches!(err, Error::EmptyLabel { name: n, .. } if n == name),
            "{err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = Exporter::new()
        .listen("not an address")
        .err()
        .expect("rejected");
    assert!(
        matches!(err, Error::Listener(ListenerError::InvalidAddr { ref value }) if value == "not an address")
    );
    let err = Exporter::new()
        .allow("10.0.0.0/99")
        .err()
        .expect("rejected");
    assert!(err.to_string().contains("10.0.0.0/99"), "{err}");
    assert!(profilis::parse_buckets("0.1,abc").is_err());
    assert_eq!(
        profilis::parse_buckets("0.1, 1,10").unwrap(),
        vec![0.1, 1.0, 10.0]
    );
}

//! The process metrics of the Prometheus client guidelines (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), read from the operating system by `metrics-process`
//! each time a page is rendered, so a scrape sees the values of that moment and nothing is read
//! while nobody looks. A value the system does not give is left off the page.

use metrics_process::collector::{collect, Metrics};

use crate::metric_names::{
    PROCESS_CPU_SECONDS_TOTAL as CPU_SECONDS_TOTAL, PROCESS_MAX_FDS as MAX_FDS,
    PROCESS_OPEN_FDS as OPEN_FDS, PROCESS_RESIDENT_MEMORY_BYTES as RESIDENT_MEMORY_BYTES,
    PROCESS_START_TIME_SECONDS as START_TIME_SECONDS, PROCESS_THREADS as THREADS,
    PROCESS_VIRTUAL_MEMORY_BYTES as VIRTUAL_MEMORY_BYTES,
    PROCESS_VIRTUAL_MEMORY_MAX_BYTES as VIRTUAL_MEMORY_MAX_BYTES,
};
use crate::text_format::{Page, Sample};

/// Every family this module puts on a page. The one counter among them,
/// [`CPU_SECONDS_TOTAL`], is also named without `_total` in OpenMetrics.
pub(crate) const FAMILIES: [&str; 8] = [
    CPU_SECONDS_TOTAL,
    RESIDENT_MEMORY_BYTES,
    VIRTUAL_MEMORY_BYTES,
    VIRTUAL_MEMORY_MAX_BYTES,
    OPEN_FDS,
    MAX_FDS,
    START_TIME_SECONDS,
    THREADS,
];

/// Whether a page of the exporter may carry `name` as one of the process metrics' names: a
/// family of [`FAMILIES`] or, for its counter, the OpenMetrics family without `_total`.
pub(crate) fn writes(name: &str) -> bool {
    FAMILIES
        .iter()
        .any(|family| *family == name || family.strip_suffix("_total") == Some(name))
}

/// Reads the process's figures now and puts each one the system gives on `page`.
pub(crate) fn add_to(page: &mut Page) {
    add_metrics(page, &collect());
}

fn add_metrics(page: &mut Page, m: &Metrics) {
    // The help texts are the client guidelines' own, word for word, as the Go and Python
    // clients write them: where these families meet another program's (node_exporter's own,
    // the Pushgateway's), a different text is a conflict (node_exporter refuses the family,
    // the Pushgateway logs it and rewrites it).
    let mut gauge = |name: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            page.add(name, String::new(), Sample::Gauge(value));
            page.default_help(name, help);
        }
    };
    let bytes = |v: Option<u64>| v.map(|v| v as f64);
    // `metrics-process` gives 0 for a limit that is unlimited; the limit is then no number.
    let limit = |v: Option<u64>| v.map(|v| if v == 0 { f64::INFINITY } else { v as f64 });
    gauge(
        RESIDENT_MEMORY_BYTES,
        "Resident memory size in bytes.",
        bytes(m.resident_memory_bytes),
    );
    gauge(
        VIRTUAL_MEMORY_BYTES,
        "Virtual memory size in bytes.",
        bytes(m.virtual_memory_bytes),
    );
    gauge(
        VIRTUAL_MEMORY_MAX_BYTES,
        "Maximum amount of virtual memory available in bytes.",
        limit(m.virtual_memory_max_bytes),
    );
    gauge(
        OPEN_FDS,
        "Number of open file descriptors.",
        bytes(m.open_fds),
    );
    gauge(
        MAX_FDS,
        "Maximum number of open file descriptors.",
        limit(m.max_fds),
    );
    gauge(
        START_TIME_SECONDS,
        "Start time of the process since unix epoch in seconds.",
        bytes(m.start_time_seconds),
    );
    gauge(
        THREADS,
        "Number of OS threads in the process.",
        bytes(m.threads),
    );
    if let Some(cpu) = m.cpu_seconds_total {
        page.add(CPU_SECONDS_TOTAL, String::new(), Sample::FloatCounter(cpu));
        page.default_help(
            CPU_SECONDS_TOTAL,
            "Total user and system CPU time spent in seconds.",
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use profilis_test_support::{parse_exposition, promtool_check_metrics, Exposition};

    use super::*;

    fn read() -> (String, Exposition) {
        let mut page = Page::default();
        add_to(&mut page);
        let text = page.render();
        let parsed = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        (text, parsed)
    }

    fn type_of<'a>(page: &'a Exposition, name: &str) -> Option<&'a str> {
        let found = page.types.iter().find(|(n, _)| n == name);
        found.map(|(_, t)| t.as_str())
    }

    fn value(page: &Exposition, name: &str) -> f64 {
        let series: Vec<_> = page.named(name).collect();
        assert_eq!(series.len(), 1, "one series of {name}");
        series[0].value
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_plausibly_and_passes_promtool() {
        let (text, page) = read();
        assert!(value(&page, RESIDENT_MEMORY_BYTES) > 0.0, "{text}");
        assert!(
            value(&page, VIRTUAL_MEMORY_BYTES) >= value(&page, RESIDENT_MEMORY_BYTES),
            "{text}"
        );
        // Standard input, output and error at least.
        assert!(value(&page, OPEN_FDS) >= 3.0, "{text}");
        assert!(value(&page, MAX_FDS) >= value(&page, OPEN_FDS), "{text}");
        assert!(value(&page, THREADS) >= 1.0, "{text}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let started = value(&page, START_TIME_SECONDS);
        // The test binary started within the last hour, and not in the future (the value is
        // whole seconds, from clock ticks since boot).
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
        assert!(value(&page, VIRTUAL_MEMORY_MAX_BYTES) > 0.0, "{text}");
        assert_eq!(type_of(&page, CPU_SECONDS_TOTAL), Some("counter"), "{text}");
        for name in [
            RESIDENT_MEMORY_BYTES,
            OPEN_FDS,
            MAX_FDS,
            START_TIME_SECONDS,
            THREADS,
        ] {
            assert_eq!(type_of(&page, name), Some("gauge"), "{name}\n{text}");
            assert!(page.help_of(name).is_some(), "{name}\n{text}");
        }
        promtool_check_metrics(text.as_bytes());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_seconds_grow_with_work() {
        let (_, page) = read();
        let before = value(&page, CPU_SECONDS_TOTAL);
        assert!(before >= 0.0);
        // Busy work until the reading moves (clock ticks are 10 ms), within a bound.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut spin = 0u64;
        let after = loop {
            for i in 0..1_000_000u64 {
                spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(i));
            }
            let (_, page) = read();
            let now = value(&page, CPU_SECONDS_TOTAL);
            if now > before || Instant::now() > deadline {
                break now;
            }
        };
        assert!(after > before, "CPU seconds stayed at {before} after work");
    }

    #[test]
    fn families_lists_every_family_written() {
        let mut page = Page::default();
        add_metrics(
            &mut page,
            &Metrics {
                cpu_seconds_total: Some(1.0),
                open_fds: Some(1),
                max_fds: Some(2),
                virtual_memory_bytes: Some(3),
                virtual_memory_max_bytes: Some(4),
                resident_memory_bytes: Some(5),
                start_time_seconds: Some(6),
                threads: Some(7),
            },
        );
        let parsed = parse_exposition(&page.render()).unwrap();
        let mut written: Vec<&str> = parsed.types.iter().map(|(n, _)| n.as_str()).collect();
        written.sort_unstable();
        let mut listed = FAMILIES.to_vec();
        listed.sort_unstable();
        assert_eq!(written, listed);
        assert!(writes("process_cpu_seconds") && writes("process_open_fds"));
        assert!(!writes("process_open") && !writes("process_threads_total"));
    }

    #[test]
    fn values_the_system_does_not_give_are_left_out() {
        let mut page = Page::default();
        add_metrics(
            &mut page,
            &Metrics {
                cpu_seconds_total: Some(1.25),
                open_fds: Some(7),
                max_fds: Some(0),
                ..Metrics::default()
            },
        );
        assert_eq!(
            page.render(),
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 1.25\n\
             \n\
             # HELP process_max_fds Maximum number of open file descriptors.\n\
             # TYPE process_max_fds gauge\n\
             process_max_fds +Inf\n\
             \n\
             # HELP process_open_fds Number of open file descriptors.\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds 7\n\n"
        );
    }
}

//! The exporter's own options (the tutorial's variables, each also an option), and the checks
//! that turn them into a target URL and the poll's timing.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use profilis_exporter_kit::{parse_host, Host};

/// Where the status document is and how often to read it. Flattened by the kit next to its
/// `-H/-p/-L/--process-stats`.
#[derive(Debug, Clone, clap::Args)]
pub struct JsonOptions {
    /// Seconds between two polls of the target (such as 5 or 0.5; from 0.01 to 86400, one
    /// day).
    #[arg(long, env = "POLLING_INTERVAL_SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub polling_interval_seconds: Duration,
    /// Host name or address of the target (plain http; https is not supported).
    #[arg(long, env = "TARGET_HOST", default_value = "localhost", value_parser = parse_target_host)]
    pub target_host: Host,
    /// HTTP port of the target.
    #[arg(long, env = "TARGET_PORT", default_value = "8000",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub target_port: u16,
    /// Path of the status document on the target (`status` is `/status`).
    #[arg(long, env = "TARGET_METRICS", default_value = "status", value_parser = parse_path)]
    pub target_metrics: String,
    /// Seconds a poll may take before it counts as failed (default: the polling interval, at
    /// most 10; from 0.01 to 86400).
    #[arg(long, env = "TARGET_TIMEOUT_SECONDS", value_parser = parse_seconds)]
    pub target_timeout_seconds: Option<Duration>,
    /// A TOML file mapping the document's fields to metrics (default, or empty: the tutorial's
    /// fields).
    #[arg(long, env = "EXPORTER_CONFIG", value_name = "FILE", value_parser = parse_config)]
    pub config: Option<PathBuf>,
}

/// The longest a poll waits by default, when the interval is longer.
const DEFAULT_TIMEOUT_CAP: Duration = Duration::from_secs(10);

/// The shortest interval or timeout taken: below it, polls would only load the target (and a
/// value such as `1e-12` would round to no time at all).
pub const MIN_SECONDS: Duration = Duration::from_millis(10);

/// The longest interval or timeout taken: one day.
pub const MAX_SECONDS: Duration = Duration::from_secs(24 * 60 * 60);

impl JsonOptions {
    /// The URL polled: `http://host:port/path`.
    pub fn url(&self) -> String {
        let host = match &self.target_host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => ip.to_string(),
            Host::Name(name) => name.clone(),
        };
        format!("http://{host}:{}{}", self.target_port, self.target_metrics)
    }

    /// The timeout of one poll: the option, or the smaller of the interval and 10 s.
    pub fn timeout(&self) -> Duration {
        self.target_timeout_seconds
            .unwrap_or_else(|| self.polling_interval_seconds.min(DEFAULT_TIMEOUT_CAP))
    }

    /// The mapping file, if one is given: an empty `EXPORTER_CONFIG=` (as compose files set
    /// it) means none.
    pub fn config(&self) -> Option<&Path> {
        self.config
            .as_deref()
            .filter(|path| !path.as_os_str().is_empty())
    }
}

/// A number of seconds, whole or decimal, that is from [`MIN_SECONDS`] to [`MAX_SECONDS`] once
/// converted (so `1e-12`, which would be no time at all, is refused too).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let allowed = "a number of seconds from 0.01 to 86400 (one day), such as 5 or 0.5";
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number; {allowed}"))?;
    if !seconds.is_finite() {
        return Err(format!("{text:?} is not a finite number; {allowed}"));
    }
    if seconds <= 0.0 {
        return Err(format!("{text:?} is not above 0; {allowed}"));
    }
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if duration < MIN_SECONDS => Err(format!(
            "{text:?} is {duration:?}, below the shortest, 10ms; {allowed}"
        )),
        Ok(duration) if duration <= MAX_SECONDS => Ok(duration),
        _ => Err(format!("{text:?} is above the longest, one day; {allowed}")),
    }
}

/// A host name or address, not a URL: the kit's one host rule ([`parse_host`]), as `-H` takes.
fn parse_target_host(text: &str) -> Result<Host, String> {
    parse_host(text).map_err(|e| {
        if text.contains("://") {
            format!("{e} (the target is read over plain http; https is not supported)")
        } else {
            e.to_string()
        }
    })
}

/// The mapping file's path; empty is kept, and means none ([`JsonOptions::config`]).
fn parse_config(text: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(text))
}

/// A path on the target: `status` and `/status` are both `/status`; a query is kept.
fn parse_path(text: &str) -> Result<String, String> {
    let path = text.trim();
    if path.contains("://") {
        return Err(format!(
            "{text:?} is not a path but a URL; give the path of the status document, such as \
             status (the host and port are --target-host and --target-port)"
        ));
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    match path.parse::<hyper::Uri>() {
        Ok(uri) if uri.scheme().is_none() && uri.authority().is_none() => Ok(path),
        _ => Err(format!(
            "{text:?} is not a path; give the path of the status document, such as status or \
             /api/status?verbose=1"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Command {
        #[command(flatten)]
        options: JsonOptions,
    }

    fn parse(args: &[&str]) -> Result<JsonOptions, String> {
        Command::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .map(|c| c.options)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_tutorials_defaults() {
        // The defaults are read unless the test's environment sets the variables.
        for var in [
            "POLLING_INTERVAL_SECONDS",
            "TARGET_HOST",
            "TARGET_PORT",
            "TARGET_METRICS",
            "TARGET_TIMEOUT_SECONDS",
            "EXPORTER_CONFIG",
        ] {
            if std::env::var_os(var).is_some() {
                eprintln!("skipped: {var} is set in the environment");
                return;
            }
        }
        let options = parse(&[]).unwrap();
        assert_eq!(options.polling_interval_seconds, Duration::from_secs(5));
        assert_eq!(options.url(), "http://localhost:8000/status");
        assert_eq!(options.timeout(), Duration::from_secs(5));
        assert!(options.config.is_none());
    }

    #[test]
    fn the_timeout_is_the_interval_at_most_ten_seconds_unless_given() {
        let long = parse(&["--polling-interval-seconds", "60"]).unwrap();
        assert_eq!(long.timeout(), Duration::from_secs(10));
        let short = parse(&["--polling-interval-seconds", "0.5"]).unwrap();
        assert_eq!(short.timeout(), Duration::from_millis(500));
        let given = parse(&[
            "--polling-interval-seconds",
            "60",
            "--target-timeout-seconds",
            "30",
        ])
        .unwrap();
        assert_eq!(given.timeout(), Duration::from_secs(30));
    }

    #[test]
    fn urls_from_hosts_ports_and_paths() {
        let options = parse(&[
            "--target-host",
            "::1",
            "--target-port",
            "9",
            "--target-metrics",
            "/api/status?x=1",
        ])
        .unwrap();
        assert_eq!(options.url(), "http://[::1]:9/api/status?x=1");
        let bracketed = parse(&["--target-host", "[::1]"]).unwrap();
        assert_eq!(bracketed.url(), "http://[::1]:8000/status");
        let v4 = parse(&["--target-host", "10.0.0.7"]).unwrap();
        assert_eq!(v4.url(), "http://10.0.0.7:8000/status");
    }

    #[test]
    fn the_shortest_and_longest_seconds_are_taken() {
        let options = parse(&[
            "--polling-interval-seconds",
            "0.01",
            "--target-timeout-seconds",
            "86400",
        ])
        .unwrap();
        assert_eq!(options.polling_interval_seconds, MIN_SECONDS);
        assert_eq!(options.timeout(), MAX_SECONDS);
    }

    #[test]
    fn an_empty_config_is_none() {
        assert_eq!(parse(&["--config="]).unwrap().config(), None);
        let given = parse(&["--config", "map.toml"]).unwrap();
        assert_eq!(given.config(), Some(Path::new("map.toml")));
    }

    #[test]
    fn bad_values_name_the_option_and_the_value() {
        for (args, says) in [
            (
                &["--polling-interval-seconds", "0"][..],
                "\"0\" is not above 0",
            ),
            (
                &["--polling-interval-seconds", "five"],
                "\"five\" is not a number",
            ),
            (&["--polling-interval-seconds", "-1"], "is not above 0"),
            (&["--target-timeout-seconds", "0"], "is not above 0"),
            (
                &["--polling-interval-seconds", "1e-12"],
                "below the shortest, 10ms",
            ),
            (
                &["--polling-interval-seconds", "0.000001"],
                "below the shortest, 10ms",
            ),
            (
                &["--target-timeout-seconds", "0.009"],
                "below the shortest, 10ms",
            ),
            (
                &["--polling-interval-seconds", "inf"],
                "\"inf\" is not a finite number",
            ),
            (
                &["--polling-interval-seconds", "NaN"],
                "is not a finite number",
            ),
            (
                &["--polling-interval-seconds", "86401"],
                "above the longest, one day",
            ),
            (
                &["--target-timeout-seconds", "1e300"],
                "above the longest, one day",
            ),
            (&["--target-port", "70000"], "70000"),
            (&["--target-port", "0"], "0"),
            (
                &["--target-host", "https://example.com"],
                "https is not supported",
            ),
            (&["--target-host", "a b"], "\"a b\""),
            (&["--target-host", "localhost:41871"], "\"localhost:41871\""),
            (&["--target-host", "a:b"], "\"a:b\""),
            (&["--target-host", "[::1"], "\"[::1\""),
            (&["--target-host", "..."], "\"...\""),
            (&["--target-host", "-x"], "\"-x\""),
            (&["--target-metrics", "http://x/status"], "is not a path"),
        ] {
            // `--option=value`, so that a value starting with '-' is read as one.
            let err = parse(&[&format!("{}={}", args[0], args[1])]).unwrap_err();
            assert!(err.contains(args[0]), "{args:?}: {err}");
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
}

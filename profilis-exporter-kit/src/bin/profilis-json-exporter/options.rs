//! The exporter's own options (the tutorial's variables, each also an option), and the checks
//! that turn them into a target URL and the poll's timing.

use std::path::PathBuf;
use std::time::Duration;

/// Where the status document is and how often to read it. Flattened by the kit next to its
/// `-H/-p/-L/--process-stats`.
#[derive(Debug, Clone, clap::Args)]
pub struct JsonOptions {
    /// Seconds between two polls of the target (a number above 0, such as 5 or 0.5).
    #[arg(long, env = "POLLING_INTERVAL_SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub polling_interval_seconds: Duration,
    /// Host name or address of the target (plain http; https is not supported).
    #[arg(long, env = "TARGET_HOST", default_value = "localhost", value_parser = parse_host)]
    pub target_host: String,
    /// HTTP port of the target.
    #[arg(long, env = "TARGET_PORT", default_value = "8000",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub target_port: u16,
    /// Path of the status document on the target (`status` is `/status`).
    #[arg(long, env = "TARGET_METRICS", default_value = "status", value_parser = parse_path)]
    pub target_metrics: String,
    /// Seconds a poll may take before it counts as failed (default: the polling interval, at
    /// most 10).
    #[arg(long, env = "TARGET_TIMEOUT_SECONDS", value_parser = parse_seconds)]
    pub target_timeout_seconds: Option<Duration>,
    /// A TOML file mapping the document's fields to metrics (default: the tutorial's fields).
    #[arg(long, env = "EXPORTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The longest a poll waits by default, when the interval is longer.
const DEFAULT_TIMEOUT_CAP: Duration = Duration::from_secs(10);

impl JsonOptions {
    /// The URL polled: `http://host:port/path`.
    pub fn url(&self) -> String {
        let host = if self.target_host.contains(':') {
            format!("[{}]", self.target_host)
        } else {
            self.target_host.clone()
        };
        format!("http://{host}:{}{}", self.target_port, self.target_metrics)
    }

    /// The timeout of one poll: the option, or the smaller of the interval and 10 s.
    pub fn timeout(&self) -> Duration {
        self.target_timeout_seconds
            .unwrap_or_else(|| self.polling_interval_seconds.min(DEFAULT_TIMEOUT_CAP))
    }
}

/// A number of seconds above 0, whole or decimal.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let allowed = "a number of seconds above 0, such as 5 or 0.5";
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number; {allowed}"))?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("{text:?} is not above 0; {allowed}"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is too large; {allowed}"))
}

/// A host name or address, not a URL.
fn parse_host(text: &str) -> Result<String, String> {
    let host = text.trim().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(
            "the target host is empty; give a host name or address such as localhost".into(),
        );
    }
    if text.contains("://") {
        return Err(format!(
            "{text:?} is a URL; give the host name or address alone (the target is read over \
             plain http; https is not supported)"
        ));
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
    {
        return Err(format!(
            "{text:?} has {bad:?}; a host name or address has letters, digits, '.', '-', '_' \
             (and ':' in an IPv6 address)"
        ));
    }
    Ok(host.to_owned())
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
        assert_eq!(bracketed.target_host, "::1");
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
            (&["--target-port", "70000"], "70000"),
            (&["--target-port", "0"], "0"),
            (
                &["--target-host", "https://example.com"],
                "https is not supported",
            ),
            (&["--target-host", "a b"], "' '"),
            (&["--target-metrics", "http://x/status"], "is not a path"),
        ] {
            // `--option=value`, so that a value starting with '-' is read as one.
            let err = parse(&[&format!("{}={}", args[0], args[1])]).unwrap_err();
            assert!(err.contains(args[0]), "{args:?}: {err}");
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
}

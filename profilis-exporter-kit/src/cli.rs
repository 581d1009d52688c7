//! The command line: the common options every exporter has, the script's own flattened next to
//! them, and the listen address `-H/--host` and `-p/--port` resolve to.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use clap::{Args, FromArgMatches};

use crate::{Error, Script};

/// The options every exporter has. Each is also an `EXPORTER_*` environment variable; the
/// command line wins.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct CommonOptions {
    /// Host name or address to listen on.
    #[arg(short = 'H', long, env = "EXPORTER_HOST", default_value = "localhost")]
    pub host: String,
    /// Port to listen on.
    #[arg(short = 'p', long, env = "EXPORTER_PORT")]
    pub port: Option<u16>,
    /// Minimum level of log messages.
    #[arg(
        short = 'L',
        long,
        env = "EXPORTER_LOG_LEVEL",
        value_enum,
        ignore_case = true,
        default_value = "info"
    )]
    pub log_level: LogLevel,
    /// Serve the process metrics (CPU, memory, file descriptors): `--process-stats`, or
    /// `--process-stats=false` to turn them off where the exporter has them on
    /// (true/false, 1/0, yes/no, on/off, any case).
    #[arg(
        long,
        env = "EXPORTER_PROCESS_STATS",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub process_stats: Option<bool>,
}

/// Levels of `-L/--log-level`, as prometheus-aioexporter names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Errors only (tracing has no level above error).
    Critical,
    /// Errors.
    Error,
    /// Warnings and errors (`warn` is accepted too).
    #[value(alias = "warn")]
    Warning,
    /// Informational messages too.
    Info,
    /// Everything.
    Debug,
}

impl LogLevel {
    /// The tracing level this level lets through (`critical` is `error`, `warning` is `warn`).
    #[must_use]
    pub fn tracing_level(self) -> tracing::Level {
        match self {
            LogLevel::Critical | LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warning => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
        }
    }
}

/// The command of script `S`: its name, version and description, the common options with
/// `--port`'s default the script's port, and the script's own options.
pub(crate) fn command<S: Script>() -> clap::Command {
    let command = clap::Command::new(S::NAME).version(S::VERSION);
    let command = CommonOptions::augment_args(command).mut_arg("port", |port| {
        port.default_value(S::DEFAULT_PORT.to_string())
    });
    // After the options: their derives set the about text from their structs' doc comments.
    let description = (!S::DESCRIPTION.is_empty()).then_some(S::DESCRIPTION);
    S::Options::augment_args(command)
        .about(description)
        .long_about(None::<&str>)
}

/// Parses `args` (the first is the program name).
pub(crate) fn parse<S: Script, I, T>(args: I) -> Result<(CommonOptions, S::Options), Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command::<S>().try_get_matches_from(args)?;
    let common = CommonOptions::from_arg_matches(&matches)?;
    let own = S::Options::from_arg_matches(&matches)?;
    Ok((common, own))
}

/// What `-H/--host` accepts, for the error naming a bad one.
const HOST_EXPECTED: &str = "a host name (`localhost`, `exporter.example.com`) or an IP address \
     (`127.0.0.1`, `0.0.0.0`, `::1`, `[::]`)";

/// Whether `host` has the form of a DNS name: dot-separated labels of letters, digits, `-`
/// and `_`, none empty, longer than 63 bytes, or starting or ending with `-` (RFC 1123; so
/// `-x`, surely an option given as the value, is not a name), at most 253 bytes in all.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A host as the kit's options take it: an IP address or a DNS name (not resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP address (`127.0.0.1`, `::1`, or `[::1]` with brackets).
    Ip(IpAddr),
    /// A DNS name (`localhost`, `exporter.example.com`).
    Name(String),
}

/// Reads a host the way `-H/--host` does, without resolving a name: an IP address as given
/// (IPv6 with or without brackets), or a name of the form of a DNS name. An exporter's own host
/// options (the JSON exporter's `--target-host`) use it, so every host option takes the same.
///
/// # Errors
/// [`Error::Host`] naming `text` when it is neither (`host:port`, a URL, an empty text).
pub fn parse_host(text: &str) -> Result<Host, Error> {
    let literal = text
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if is_host_name(text) {
        return Ok(Host::Name(text.to_owned()));
    }
    let reason = if text.contains("://") {
        "it is a URL, not a host"
    } else if text.contains(':') {
        "it is not an IP address, and a host name has no ':' (give the port on its own)"
    } else {
        "it is not an IP address, and not a host name"
    };
    Err(Error::Host {
        host: text.to_owned(),
        expected: HOST_EXPECTED,
        reason: reason.to_owned(),
    })
}

/// The address to listen on for `host` and `port`: an IP address as given (IPv6 with or
/// without brackets), a name resolved (its first IPv4 address, else its first address).
///
/// # Errors
/// [`Error::Host`] naming `host` when it is neither an address nor a name that resolves.
pub fn listen_addr(host: &str, port: u16) -> Result<SocketAddr, Error> {
    let name = match parse_host(host)? {
        Host::Ip(ip) => return Ok(SocketAddr::new(ip, port)),
        Host::Name(name) => name,
    };
    let bad = |reason: String| Error::Host {
        host: host.to_owned(),
        expected: HOST_EXPECTED,
        reason,
    };
    let addrs: Vec<SocketAddr> = (name.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| bad(format!("it does not resolve: {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| bad("it resolves to no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxError, Context};

    #[derive(clap::Args)]
    struct NoOptions {}

    struct Nothing;

    impl Script for Nothing {
        type Options = NoOptions;
        const NAME: &'static str = "nothing";
        const VERSION: &'static str = "0.0.0";
        const DEFAULT_PORT: u16 = 9000;
        fn configure(_: NoOptions, _: &Context) -> Result<Self, BoxError> {
            Ok(Nothing)
        }
    }

    fn common(args: &[&str]) -> Result<CommonOptions, Error> {
        let args = std::iter::once("nothing").chain(args.iter().copied());
        parse::<Nothing, _, _>(args).map(|(common, _)| common)
    }

    /// The one test that sets `EXPORTER_*` variables (the tests of this binary run at once).
    #[test]
    fn process_stats_and_log_level_take_the_usual_spellings() {
        for (text, want) in [
            ("true", true),
            ("1", true),
            ("yes", true),
            ("On", true),
            ("TRUE", true),
            ("false", false),
            ("0", false),
            ("no", false),
            ("OFF", false),
        ] {
            let flag = format!("--process-stats={text}");
            assert_eq!(
                common(&[&flag]).unwrap().process_stats,
                Some(want),
                "{flag}"
            );
            std::env::set_var("EXPORTER_PROCESS_STATS", text);
            let from_env = common(&[]);
            std::env::remove_var("EXPORTER_PROCESS_STATS");
            assert_eq!(
                from_env.unwrap().process_stats,
                Some(want),
                "variable {text}"
            );
        }
        assert_eq!(
            common(&["--process-stats"]).unwrap().process_stats,
            Some(true)
        );
        assert_eq!(common(&[]).unwrap().process_stats, None);
        let error = common(&["--process-stats=maybe"]).unwrap_err().to_string();
        assert!(error.contains("maybe"), "{error}");

        for level in ["warn", "warning", "WARN"] {
            assert_eq!(
                common(&["-L", level]).unwrap().log_level,
                LogLevel::Warning,
                "{level}"
            );
        }
        std::env::set_var("EXPORTER_LOG_LEVEL", "warn");
        let from_env = common(&[]);
        std::env::remove_var("EXPORTER_LOG_LEVEL");
        assert_eq!(from_env.unwrap().log_level, LogLevel::Warning);
        assert!(common(&["-L", "err"]).is_err(), "no other alias");
    }

    #[test]
    fn literals_and_names() {
        assert_eq!(
            listen_addr("127.0.0.1", 80).unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(listen_addr("::1", 80).unwrap(), "[::1]:80".parse().unwrap());
        assert_eq!(listen_addr("[::]", 80).unwrap(), "[::]:80".parse().unwrap());
        assert!(listen_addr("localhost", 80).unwrap().ip().is_loopback());
        let error = listen_addr("not a host", 80).unwrap_err().to_string();
        assert!(error.contains("\"not a host\""), "{error}");
        assert!(listen_addr("a..b", 80).is_err());
        for bad in [
            "localhost:8000",
            "[::1",
            "http://x",
            "",
            "a b",
            "-x",
            "a.-b",
            "a-.b",
        ] {
            let error = parse_host(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
        assert_eq!(
            parse_host("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            parse_host("db-1.local").unwrap(),
            Host::Name("db-1.local".into())
        );
    }
}

//! The command line through `start`: `--help` and `--version` text, a bad option, a bad log
//! level and a bad host are errors naming them, with the exit codes `main` gives.

mod common;

use common::Probe;
use profilis_exporter_kit::Error;

async fn start_err(args: &[&str]) -> Error {
    match profilis_exporter_kit::start::<Probe, _, _>(args.iter().copied()).await {
        Ok(_) => panic!("{args:?} started"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn help_lists_every_option_with_defaults_and_variables() {
    let error = start_err(&["probe-exporter", "--help"]).await;
    assert_eq!(error.exit_code(), 0, "{error}");
    let Error::Cli(ref cli) = error else {
        panic!("not a command-line error: {error:?}")
    };
    assert_eq!(cli.kind(), clap::error::ErrorKind::DisplayHelp);
    let help = cli.render().to_string();
    for want in [
        "Probes the exporter kit.",
        "probe-exporter",
        "-H, --host",
        "[env: EXPORTER_HOST=]",
        "[default: localhost]",
        "-p, --port",
        "[env: EXPORTER_PORT=]",
        "[default: 9999]",
        "-L, --log-level",
        "critical",
        "warning",
        "--process-stats",
        "--mode",
        "--interval-ms",
        "--version",
    ] {
        assert!(help.contains(want), "{want:?} is not in the help:\n{help}");
    }
}

#[tokio::test]
async fn version_is_name_and_version() {
    let error = start_err(&["probe-exporter", "--version"]).await;
    assert_eq!(error.exit_code(), 0);
    let Error::Cli(ref cli) = error else {
        panic!("not a command-line error: {error:?}")
    };
    assert_eq!(cli.kind(), clap::error::ErrorKind::DisplayVersion);
    assert_eq!(cli.render().to_string().trim(), "probe-exporter 1.2.3");
}

#[tokio::test]
async fn a_bad_option_is_named_with_exit_code_2() {
    let error = start_err(&["probe-exporter", "--frobnicate"]).await;
    assert!(matches!(error, Error::Cli(_)), "{error:?}");
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("--frobnicate"), "{error}");

    let error = start_err(&["probe-exporter", "--port", "eighty"]).await;
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("eighty"), "{error}");
}

#[tokio::test]
async fn a_bad_log_level_is_named_with_the_levels_allowed() {
    let error = start_err(&["probe-exporter", "-L", "loud"]).await;
    assert_eq!(error.exit_code(), 2);
    let message = error.to_string();
    for want in ["loud", "critical", "error", "warning", "info", "debug"] {
        assert!(message.contains(want), "{want:?} is not in: {message}");
    }
}

#[tokio::test]
async fn a_bad_host_is_named() {
    let error = start_err(&["probe-exporter", "-H", "not a host!", "-p", "0"]).await;
    assert!(matches!(error, Error::Host { .. }), "{error:?}");
    assert_eq!(error.exit_code(), 1);
    let message = error.to_string();
    assert!(message.contains("\"not a host!\""), "{message}");
    assert!(message.contains("IP address"), "{message}");
}

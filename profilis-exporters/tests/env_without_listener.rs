//! A build without the built-in listener (or without the dashboard) cannot act on the
//! variables only they read: set, they are an error naming the variable and the feature, as
//! every other `PROFILIS_*` value that cannot be used, not silently ignored (an operator's
//! `PROFILIS_LISTEN=0.0.0.0:9464` served nothing, and said nothing). One test, because the
//! environment is shared by the whole process. Runs with the crate's default features
//! (`cargo test -p profilis-exporters`), which have neither.
#![cfg(not(feature = "listener"))]

use profilis_core::ConfigError;
use profilis_exporters::{Error, Exporter};

#[test]
fn listener_and_dashboard_variables_are_refused_where_nothing_reads_them() {
    let listener = [
        ("PROFILIS_LISTEN", "0.0.0.0:9464", "0.0.0.0:9464"),
        ("PROFILIS_ALLOW", "10.0.0.0/8", "10.0.0.0/8"),
    ];
    let dashboard = [
        ("PROFILIS_DASHBOARD", "on", "on"),
        // The token itself is never shown.
        ("PROFILIS_BEARER_TOKEN", "s3cret", "<redacted>"),
    ];
    let dashboard = if cfg!(feature = "dashboard") {
        &[][..]
    } else {
        &dashboard[..]
    };
    for &(name, value, shown) in listener.iter().chain(dashboard) {
        std::env::set_var(name, value);
        let result = Exporter::new().install();
        std::env::remove_var(name);
        match result {
            Err(Error::Config(ConfigError::Env {
                name: n,
                value: v,
                expected,
            })) => {
                assert_eq!((n, v.as_str()), (name, shown));
                assert!(expected.contains("feature"), "{name}: {expected}");
                let message = Error::Config(ConfigError::Env {
                    name: n,
                    value: v,
                    expected,
                })
                .to_string();
                assert!(!message.contains("s3cret"), "{message}");
            }
            Err(other) => panic!("{name}={value}: expected Error::Config(Env), got {other}"),
            Ok(guard) => {
                drop(guard);
                panic!("{name}={value} was ignored: this build has nothing that reads it");
            }
        }
    }
}

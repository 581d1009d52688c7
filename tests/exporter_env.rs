//! `PROFILIS_*` variables: defaults that code overrides; bad values are errors naming the
//! variable and the value. One test, because the environment is shared by the whole process.

use profilis::{ConfigError, Error, Exporter};

fn env_error(name: &str, value: &str) -> Error {
    std::env::set_var(name, value);
    let err = Exporter::new()
        .without_listener()
        .install()
        .err()
        .unwrap_or_else(|| panic!("{name}={value} must be rejected"));
    std::env::remove_var(name);
    err
}

#[test]
fn environment_values_are_checked_and_overridden_by_code() {
    for (name, value) in [
        ("PROFILIS_SAMPLE_RATE", "2"),
        ("PROFILIS_SAMPLE_RATE", "half"),
        ("PROFILIS_BUCKETS", "0.5,0.1"),
        ("PROFILIS_BUCKETS", "fast"),
        ("PROFILIS_LISTEN", "nowhere"),
        ("PROFILIS_SERVICE", " "),
        ("PROFILIS_DISABLED", "perhaps"),
    ] {
        match env_error(name, value) {
            Error::Config(ConfigError::Env {
                name: n, value: v, ..
            }) => {
                assert_eq!((n, v.as_str()), (name, value));
            }
            other => panic!("{name}={value}: expected Error::Env, got {other}"),
        }
    }

    std::env::set_var("PROFILIS_SERVICE", "from-env");
    std::env::set_var("PROFILIS_INSTANCE", "env-host");
    std::env::set_var("PROFILIS_LISTEN", "127.0.0.1:0");
    std::env::set_var("PROFILIS_SAMPLE_RATE", "0.5");
    let guard = Exporter::new().service("from-code").install().unwrap();
    assert_eq!(guard.labels().service, "from-code");
    assert_eq!(guard.labels().instance, "env-host");
    assert_eq!(guard.labels().worker, std::process::id().to_string());
    assert!(guard.listen_addr().unwrap().ip().is_loopback());
    assert_eq!(profilis::global_rate(), 0.5);
    drop(guard);

    std::env::set_var("PROFILIS_DISABLED", "1");
    let guard = Exporter::new().without_listener().install().unwrap();
    assert!(!profilis::is_enabled());
    assert!(guard.listen_addr().is_none());
    drop(guard);
    let guard = Exporter::new()
        .without_listener()
        .enabled(true)
        .install()
        .unwrap();
    assert!(profilis::is_enabled(), "code overrides PROFILIS_DISABLED");
    drop(guard);
}

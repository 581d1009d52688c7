//! `PROFILIS_*` variables: defaults that code overrides; bad values are errors naming the
//! variable and the value. One test, because the environment is shared by the whole process.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use profilis::{ConfigError, Error, Exporter};

fn env_error(name: &str, value: impl AsRef<OsStr>) -> Error {
    let value = value.as_ref();
    std::env::set_var(name, value);
    let err = Exporter::new()
        .without_listener()
        .install()
        .err()
        .unwrap_or_else(|| panic!("{name}={value:?} must be rejected"));
    std::env::remove_var(name);
    err
}

#[test]
fn environment_values_are_checked_and_overridden_by_code() {
    for (name, value) in [
        ("PROFILIS_SAMPLE_RATE", "2"),
        ("PROFILIS_SAMPLE_RATE", "half"),
        ("PROFILIS_LISTEN", "nowhere"),
        ("PROFILIS_SERVICE", " "),
        ("PROFILIS_DISABLED", "perhaps"),
        ("PROFILIS_PROCESS_METRICS", "sometimes"),
        ("PROFILIS_ALLOW", "10.0.0.0/33"),
        ("PROFILIS_ALLOW", " , "),
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

    // Bucket lists keep the builder's specific reason.
    for (value, reason) in [
        ("0.5,0.1", "they are not in increasing order"),
        ("fast", "one is not a number"),
        (",", "there are none"),
        ("0.1,-1", "one is not positive"),
    ] {
        let err = env_error("PROFILIS_BUCKETS", value);
        match &err {
            Error::Config(ConfigError::EnvValue { name, source }) => {
                assert_eq!(*name, "PROFILIS_BUCKETS");
                assert_eq!(
                    **source,
                    ConfigError::Buckets {
                        value: format!("{value:?}"),
                        reason
                    }
                );
            }
            other => panic!("PROFILIS_BUCKETS={value}: expected EnvValue, got {other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("PROFILIS_BUCKETS") && message.contains(reason),
            "{message}"
        );
    }

    // A value that is not UTF-8 is an error naming the variable, never taken as unset.
    for name in [
        "PROFILIS_DISABLED",
        "PROFILIS_LISTEN",
        "PROFILIS_SERVICE",
        "PROFILIS_INSTANCE",
        "PROFILIS_WORKER",
        "PROFILIS_SAMPLE_RATE",
        "PROFILIS_BUCKETS",
        "PROFILIS_PROCESS_METRICS",
        "PROFILIS_ALLOW",
    ] {
        let value = OsStr::from_bytes(b"1\xff");
        let err = env_error(name, value);
        match &err {
            Error::Config(ConfigError::EnvNotUnicode { name: n, value: v }) => {
                assert_eq!((*n, v.as_os_str()), (name, value));
            }
            other => panic!("{name}=1\\xff: expected EnvNotUnicode, got {other}"),
        }
        assert!(err.to_string().contains(name), "{err}");
    }

    // A bad token is refused without being shown, whether its bytes are UTF-8 or not.
    let err = env_error("PROFILIS_BEARER_TOKEN", "open sesame");
    assert!(matches!(err, Error::BearerToken), "{err}");
    assert!(err.to_string().contains("PROFILIS_BEARER_TOKEN"), "{err}");
    assert!(
        !err.to_string().contains("sesame"),
        "the token is shown: {err}"
    );
    let err = env_error("PROFILIS_BEARER_TOKEN", OsStr::from_bytes(b"sesame\xff"));
    assert!(
        matches!(
            &err,
            Error::Config(ConfigError::Env {
                name: "PROFILIS_BEARER_TOKEN",
                ..
            })
        ),
        "{err}"
    );
    assert!(
        !err.to_string().contains("sesame"),
        "the token is shown: {err}"
    );

    // The allow-list and token of the environment guard the listener; code replaces them.
    std::env::set_var("PROFILIS_ALLOW", "127.0.0.2");
    std::env::set_var("PROFILIS_BEARER_TOKEN", "from-env");
    let listen: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let guard = Exporter::new().listen_addr(listen).install().unwrap();
    let addr = guard.listen_addr().unwrap();
    assert_eq!(
        profilis_test_support::get(addr, "/metrics", &[]).status,
        403
    );
    drop(guard);
    let guard = Exporter::new()
        .listen_addr(listen)
        .allow("127.0.0.1")
        .unwrap()
        .install()
        .unwrap();
    let addr = guard.listen_addr().unwrap();
    assert_eq!(
        profilis_test_support::get(addr, "/metrics", &[]).status,
        401
    );
    let env_token = [("Authorization", "Bearer from-env")];
    assert_eq!(
        profilis_test_support::get(addr, "/metrics", &env_token).status,
        200
    );
    drop(guard);
    let guard = Exporter::new()
        .listen_addr(listen)
        .allow("127.0.0.1")
        .unwrap()
        .bearer_token("from-code")
        .install()
        .unwrap();
    let addr = guard.listen_addr().unwrap();
    assert_eq!(
        profilis_test_support::get(addr, "/metrics", &env_token).status,
        401
    );
    let code_token = [("Authorization", "Bearer from-code")];
    assert_eq!(
        profilis_test_support::get(addr, "/metrics", &code_token).status,
        200
    );
    drop(guard);
    std::env::remove_var("PROFILIS_ALLOW");
    std::env::remove_var("PROFILIS_BEARER_TOKEN");

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

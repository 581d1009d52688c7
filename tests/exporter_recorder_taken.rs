//! Another global `metrics` recorder installed first: a typed error, no panic.

use profilis::{Error, Exporter};

#[test]
fn a_recorder_installed_by_someone_else_is_reported() {
    metrics_util::debugging::DebuggingRecorder::new()
        .install()
        .expect("first recorder");
    let err = Exporter::new()
        .without_listener()
        .install()
        .err()
        .expect("rejected");
    assert!(matches!(err, Error::RecorderInstalled), "{err}");
    assert!(err.to_string().contains("already installed"));
}

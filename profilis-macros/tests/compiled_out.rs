//! Builds and runs `tests/compiled-out` with the `enabled` feature off: instrumentation is
//! compiled out, yet the macro still checks its arguments (see `bad_arguments_still_fail`).

use std::path::Path;
use std::process::Command;

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    cmd.env("CARGO_TARGET_DIR", root.join("target").join("compiled-out"))
        .current_dir(root.join("tests").join("compiled-out"));
    cmd
}

#[test]
fn instrumentation_compiles_out_without_the_enabled_feature() {
    let out = cargo().args(["run", "--quiet"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("compiled out: ok"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_arguments_still_fail_without_the_enabled_feature() {
    let out = cargo()
        .args(["build", "--quiet", "--features", "bad"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a misspelled argument must not compile"
    );
    assert!(
        stderr.contains("unknown profiled argument `sampel`"),
        "{stderr}"
    );
}

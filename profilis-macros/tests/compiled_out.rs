//! Builds and runs `tests/compiled-out` with profilis's `enabled` feature off: instrumentation
//! is compiled out (items run unchanged and record nothing), yet the macro still checks its
//! arguments (see `bad_arguments_still_fail`).

use std::path::Path;
use std::process::Command;

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = crate_dir
        .parent()
        .expect("the workspace holds the macro crate");
    cmd.env(
        "CARGO_TARGET_DIR",
        workspace.join("target").join("compiled-out"),
    )
    .current_dir(crate_dir.join("tests").join("compiled-out"));
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
    assert!(
        stderr.contains("#[profiled] is on this item twice"),
        "{stderr}"
    );
}

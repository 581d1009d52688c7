//! Compile-time behaviour of `#[profiled]`: what must compile (`ui/ok`) and the errors for
//! misuse (`ui/err`), each with its expected output beside it (regenerate with
//! `TRYBUILD=overwrite`). Both hold with the `enabled` feature on or off; `ui/expanded` holds
//! errors that only exist when the item is instrumented.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/ok/*.rs");
    cases.compile_fail("tests/ui/err/*.rs");
    if cfg!(feature = "enabled") {
        cases.compile_fail("tests/ui/expanded/*.rs");
    }
}

//! Compile-time behaviour of `#[profiled]`: what must compile (`ui/ok`), the errors for misuse
//! (`ui/err`) and the errors that exist only because the item is instrumented (`ui/expanded`),
//! each with its expected output beside it (regenerate with `TRYBUILD=overwrite`).
//!
//! The cases build with the `enabled` feature on (the `profilis` dev-dependency turns it on).
//! The arguments are checked the same way with it off, before any expansion;
//! `compiled_out.rs` builds a crate with it off and checks that a misuse still fails there.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/ok/*.rs");
    cases.compile_fail("tests/ui/err/*.rs");
    cases.compile_fail("tests/ui/expanded/*.rs");
}

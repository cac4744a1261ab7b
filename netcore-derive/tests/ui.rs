//! Every compile error the macro can emit, and the shapes it accepts (STYLE §6).
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p netcore-derive --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}

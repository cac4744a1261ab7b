//! Every compile error the macro can emit, and the shapes it accepts (STYLE §6).
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p netcore-derive --test ui`.
//!
//! trybuild compiles netcore and all its dependencies again, in `target/tests/trybuild/`, before
//! the first case: that is where the time of a first run goes (add `-- --nocapture` to see it).

#[test]
fn ui() {
    // Without debug info that second build of the dependencies is faster and smaller; the
    // compiler's messages, which the cases compare, are the same. A value set by the caller wins.
    if std::env::var_os("CARGO_PROFILE_DEV_DEBUG").is_none() {
        std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "0");
    }
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}

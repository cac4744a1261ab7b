//! Compiles the example schemas in schemas/ for the examples and tests of this package.

fn main() -> Result<(), netcore_codegen::Error> {
    netcore_codegen::Builder::new()
        .schema("schemas/users.ncs")
        .schema("schemas/telemetry.ncs")
        .schema("schemas/account.ncs")
        .compile()
}

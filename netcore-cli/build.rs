//! Compiles the workspace's example schemas for the unit tests that compare the `netcore`
//! command's encoding with the generated types'. Outside the workspace there is nothing to do.

fn main() {
    let schemas = std::path::Path::new("../schemas");
    if !schemas.join("users.ncs").exists() {
        return;
    }
    let builder =
        netcore_codegen::Builder::new().schema(schemas.join("users.ncs")).schema(schemas.join("telemetry.ncs"));
    builder.compile().unwrap_or_else(|err| err.exit());
}

//! Compiles the workspace's example schemas for the unit tests that compare the `netcore`
//! command's encoding with the generated types'. Outside the workspace there is nothing to do.

fn main() -> Result<(), netcore_codegen::Error> {
    let schemas = std::path::Path::new("../schemas");
    if !schemas.join("users.ncs").exists() {
        return Ok(());
    }
    netcore_codegen::Builder::new().schema(schemas.join("users.ncs")).schema(schemas.join("telemetry.ncs")).compile()
}

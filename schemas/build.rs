//! Compiles the example schemas beside this file (and their imports) into `OUT_DIR`.

fn main() {
    let schemas = netcore_codegen::Builder::new()
        .schema("users.ncs")
        .schema("telemetry.ncs")
        .schema("account.ncs")
        .schema("streams.ncs");
    schemas.compile().unwrap_or_else(|err| err.exit());
}

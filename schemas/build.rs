//! Compiles the example schemas beside this file (and their imports) into `OUT_DIR`.

fn main() -> Result<(), netcore_codegen::Error> {
    netcore_codegen::Builder::new().schema("users.ncs").schema("telemetry.ncs").compile()
}

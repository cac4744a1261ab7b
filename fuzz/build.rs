//! Generates the Rust of every schema in ../schemas for the `schema_types` target, with the same
//! codegen a user's build.rs runs, and beside each a list of every type its methods put on the
//! wire: each declared type, each method's argument tuple and its result.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use netcore_codegen::emit::canonical_type;
use netcore_codegen::model::{MethodKind, Type};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    println!("cargo:rerun-if-changed={}", dir.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut schemas: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "ncs"))
        .collect();
    schemas.sort();
    let mut modules = String::new();
    for path in &schemas {
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("schema file names are UTF-8");
        let fail = |errors: Vec<netcore_codegen::SchemaError>| -> ! {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("{}", errors.join("\n"))
        };
        let code = netcore_codegen::generate(path).unwrap_or_else(|e| fail(e));
        let (model, _) = netcore_codegen::load(path).unwrap_or_else(|e| fail(e));
        let mut wire = BTreeSet::new();
        for def in &model.types {
            wire.insert(def.name.clone());
        }
        for method in model.services.iter().flat_map(|s| &s.methods) {
            // A `stream<T>` argument is not in the tuple: its bytes follow it (docs/PROTOCOL.md §15),
            // each item of a `stream<T>` a `T` on its own.
            let mut args = Vec::new();
            for arg in &method.args {
                match &arg.ty.ty {
                    Type::Stream(item) if **item == Type::Bytes => {}
                    Type::Stream(item) => {
                        wire.insert(canonical_type(item).to_string());
                    }
                    ty => args.push(format!("{},", canonical_type(ty))),
                }
            }
            wire.insert(format!("({})", args.concat()));
            // A `-> stream<T>` result is records (docs/PROTOCOL.md §15, "Result streams"), each data
            // record of a `stream<T>` a `T` on its own.
            match &method.returns.ty {
                _ if method.kind == MethodKind::Event => {}
                Type::Stream(item) if **item == Type::Bytes => {}
                Type::Stream(item) => {
                    wire.insert(canonical_type(item).to_string());
                }
                ty => {
                    wire.insert(canonical_type(ty).to_string());
                }
            }
        }
        let terms: Vec<String> =
            wire.iter().map(|ty| format!("netcore_runtime::fuzzing::schema_type::<{ty}>(data)")).collect();
        let list = format!(
            "/// Decodes `data` as every type the schema's methods put on the wire; how many decodes succeeded.\n\
             pub fn each(data: &[u8]) -> usize {{\n    {}\n}}\n",
            if terms.is_empty() { "0".to_string() } else { terms.join("\n    + ") }
        );
        std::fs::write(out.join(format!("{stem}.rs")), code).expect("OUT_DIR is writable");
        std::fs::write(out.join(format!("{stem}_wire.rs")), list).expect("OUT_DIR is writable");
        writeln!(
            modules,
            "#[allow(dead_code, missing_docs)]\npub mod {stem} {{\n    netcore::include_schema!(\"{stem}\");\n    \
             include!(concat!(env!(\"OUT_DIR\"), \"/{stem}_wire.rs\"));\n}}"
        )
        .unwrap();
    }
    let calls: Vec<String> = schemas
        .iter()
        .map(|p| format!("{}::each(data)", p.file_stem().and_then(|s| s.to_str()).unwrap_or_default()))
        .collect();
    writeln!(
        modules,
        "/// Decodes `data` as every wire type of every schema; how many decodes succeeded.\n\
        pub fn each(data: &[u8]) -> usize {{\n    {}\n}}",
        calls.join(" + ")
    )
    .unwrap();
    std::fs::write(out.join("schemas.rs"), modules).expect("OUT_DIR is writable");
}

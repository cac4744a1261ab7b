//! The build-script API: schema files to Rust in `OUT_DIR`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::{Origin, Schema};
use crate::schema::{self, SchemaError};
use crate::{emit, validate};

/// Why code generation failed. Its Display is the readable form (each problem as
/// `file:line:column: message` with the line); in `build.rs`, [`exit`](Self::exit) prints that.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The schema does not parse or validate; every problem found, each with file:line:column.
    Schema(Vec<SchemaError>),
    /// A file could not be read or written.
    Io(PathBuf, std::io::Error),
    /// `OUT_DIR` is not set: not running in a build script, and no output directory given.
    NoOutDir,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Schema(errors) => {
                for (n, err) in errors.iter().enumerate() {
                    if n > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{err}")?;
                }
                Ok(())
            }
            Error::Io(path, err) => write!(f, "{}: {err}", path.display()),
            Error::NoOutDir => f.write_str("OUT_DIR is not set: call from build.rs or set Builder::out_dir"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(_, err) => Some(err),
            Error::Schema(errors) if errors.len() == 1 => Some(&errors[0]),
            _ => None,
        }
    }
}

impl Error {
    /// For `build.rs`: prints this error's readable form to stderr, which cargo shows when the
    /// build script fails, and exits with status 1. (A `main` returning `Result` would print the
    /// Debug form instead.)
    pub fn exit(&self) -> ! {
        eprintln!("{self}");
        std::process::exit(1)
    }
}

/// Compiles one schema file (and its imports) to `$OUT_DIR/<stem>.rs`, for
/// `netcore::include_schema!("<stem>")`. Prints `cargo:rerun-if-changed` for every file read.
///
/// ```no_run
/// // build.rs
/// fn main() {
///     netcore_codegen::compile("schemas/users.ncs").unwrap_or_else(|err| err.exit());
/// }
/// ```
#[allow(clippy::needless_doctest_main)] // a build script is a `main`
pub fn compile(schema: impl AsRef<Path>) -> Result<(), Error> {
    Builder::new().schema(schema).compile()
}

/// Compiles several schemas, or writes somewhere other than `OUT_DIR`.
#[derive(Debug, Default)]
pub struct Builder {
    schemas: Vec<PathBuf>,
    out_dir: Option<PathBuf>,
}

impl Builder {
    /// A builder with no schema yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a root schema file; its output is named after its file stem.
    pub fn schema(mut self, path: impl AsRef<Path>) -> Self {
        self.schemas.push(path.as_ref().to_path_buf());
        self
    }

    /// Writes to `dir` instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Generates every schema's file, reporting all errors of all schemas.
    pub fn compile(self) -> Result<(), Error> {
        let out_dir = match self.out_dir {
            Some(dir) => dir,
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or(Error::NoOutDir)?,
        };
        let mut errors = Vec::new();
        for path in &self.schemas {
            match generate(path) {
                Ok(code) => {
                    let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                    let target = out_dir.join(format!("{stem}.rs"));
                    std::fs::write(&target, code).map_err(|err| Error::Io(target, err))?;
                }
                Err(mut found) => errors.append(&mut found),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Schema(errors))
        }
    }
}

/// Parses, validates and emits one root schema; prints `cargo:rerun-if-changed` for its files.
/// Returns the formatted Rust source.
pub fn generate(path: &Path) -> Result<String, Vec<SchemaError>> {
    println!("cargo:rerun-if-changed={}", path.display());
    let (model, files) = load(path)?;
    for file in files.iter().skip(1) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(render(emit::emit_schema(&model), path))
}

/// Parses and validates one root schema and its imports, printing nothing (the `netcore check`
/// command and [`generate`] share it). Returns the model and every file read.
pub fn load(path: &Path) -> Result<(Schema, Vec<PathBuf>), Vec<SchemaError>> {
    let (model, files) = schema::parse_file_all(path)?;
    let problems = validate::validate(&model, true);
    if !problems.is_empty() {
        return Err(problems.into_iter().map(|d| to_schema_error(&d.origin, d.message)).collect());
    }
    Ok((model, files))
}

fn to_schema_error(origin: &Origin, message: String) -> SchemaError {
    match origin {
        Origin::Schema { file, line, column } => {
            let source = std::fs::read_to_string(file).unwrap_or_default();
            SchemaError::new(file.clone(), &source, *line, *column, message)
        }
        Origin::Rust(_) => SchemaError::new(PathBuf::new(), "", 1, 1, message),
    }
}

/// Formats generated tokens as a file that says where it came from.
pub fn render(tokens: proc_macro2::TokenStream, source: &Path) -> String {
    let file: syn::File = syn::parse2(tokens).expect("the emitter produces valid Rust");
    format!(
        "// @generated by netcore-codegen from {}. Do not edit: change the schema instead.\n\n{}",
        source.display(),
        prettyplease::unparse(&file)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_structured_and_display_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("bad.ncs");
        std::fs::write(&schema, "service S {\n    rpc get(id: u32) -> Nope;\n}\n").unwrap();
        let err = Builder::new().schema(&schema).out_dir(dir.path()).compile().unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("{}:", schema.display())), "{shown}");
        let debug = format!("{err:?}");
        assert!(debug.starts_with("Schema([SchemaError { file: "), "{debug}");
        assert!(debug.contains("line: ") && debug.contains("message: "), "{debug}");

        // An output "directory" that is a file: the write fails.
        let good = dir.path().join("good.ncs");
        std::fs::write(&good, "service S {\n    rpc get(id: u32) -> u32;\n}\n").unwrap();
        let err = Builder::new().schema(&good).out_dir(&schema).compile().unwrap_err();
        assert!(matches!(&err, Error::Io(path, _) if path.starts_with(&schema)), "{err:?}");
        let source = std::error::Error::source(&err).expect("the io::Error");
        assert!(source.downcast_ref::<std::io::Error>().is_some(), "{source:?}");
    }
}

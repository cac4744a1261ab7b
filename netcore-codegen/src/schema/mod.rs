//! The schema language front end: `.ncs` files to the [model](crate::model) (docs/SCHEMA.md).

pub(crate) mod lexer;
mod parser;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::Schema;

/// A schema that does not parse or validate, with its position and the offending line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, and what to write instead where that is clear.
    pub message: String,
    /// The text of the offending line.
    pub source_line: String,
}

impl SchemaError {
    pub(crate) fn new(file: PathBuf, source: &str, line: usize, column: usize, message: String) -> Self {
        let source_line = source.lines().nth(line.saturating_sub(1)).unwrap_or_default().to_string();
        Self { file, line, column, message, source_line }
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)?;
        let gutter = self.line.to_string().len();
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{} | {}", self.line, self.source_line)?;
        // Columns count characters; tabs stay tabs so the caret lines up.
        let pad: String =
            self.source_line.chars().take(self.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        write!(f, "{:gutter$} | {pad}^", "")
    }
}

impl std::error::Error for SchemaError {}

/// Parses a schema from text; `file` names it in errors. Imports are not followed. The error is
/// the first of the file; [`parse_str_all`] gives all of them.
pub fn parse_str(source: &str, file: &Path) -> Result<Schema, SchemaError> {
    parse_str_all(source, file).map_err(first)
}

/// Parses a schema from text, as [`parse_str`], reporting every error of the file in its order.
pub fn parse_str_all(source: &str, file: &Path) -> Result<Schema, Vec<SchemaError>> {
    parse_one(source, file).map(|parsed| parsed.schema)
}

fn first(mut errors: Vec<SchemaError>) -> SchemaError {
    errors.swap_remove(0)
}

fn parse_one(source: &str, file: &Path) -> Result<parser::Parsed, Vec<SchemaError>> {
    let tokens =
        lexer::lex(source, |line, column, message| SchemaError::new(file.to_path_buf(), source, line, column, message))
            .map_err(|err| vec![err])?;
    parser::Parser::new(tokens, file, source).parse_file()
}

/// Parses a schema file and, transitively, the files it imports (relative to the importing file).
/// Returns the merged declarations and every file read, for `cargo:rerun-if-changed`. The error
/// is the first found; [`parse_file_all`] gives all of them.
pub fn parse_file(path: &Path) -> Result<(Schema, Vec<PathBuf>), SchemaError> {
    parse_file_all(path).map_err(first)
}

/// Parses a schema file and its imports, as [`parse_file`], reporting every error of every file
/// (a file that does not parse does not stop the others from being read).
pub fn parse_file_all(path: &Path) -> Result<(Schema, Vec<PathBuf>), Vec<SchemaError>> {
    let mut merged = Schema::default();
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut stack = vec![(path.to_path_buf(), None::<SchemaError>)];
    while let Some((file, import_site)) = stack.pop() {
        let key = file.canonicalize().unwrap_or_else(|_| file.clone());
        if !seen.insert(key) {
            continue;
        }
        let source = match std::fs::read_to_string(&file) {
            Ok(source) => source,
            Err(err) => {
                let mut site = import_site.unwrap_or_else(|| SchemaError::new(file.clone(), "", 1, 1, String::new()));
                site.message = format!("cannot read {}: {err}", file.display());
                errors.push(site);
                continue;
            }
        };
        let parsed = match parse_one(&source, &file) {
            Ok(parsed) => parsed,
            Err(mut found) => {
                errors.append(&mut found);
                files.push(file);
                continue;
            }
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        for (import, line, column) in parsed.imports.into_iter().rev() {
            let site = SchemaError::new(file.clone(), &source, line, column, String::new());
            stack.push((dir.join(import), Some(site)));
        }
        merged.types.extend(parsed.schema.types);
        merged.services.extend(parsed.schema.services);
        files.push(file);
    }
    if errors.is_empty() {
        Ok((merged, files))
    } else {
        Err(errors)
    }
}

//! Keeps the layers' arrows pointing one way (see the layering note in lib.rs): the sans-IO core
//! (`frame`, `session`) names none of the async layers, and `connection` does not name the
//! `endpoint` or `typed` modules, in code or in doc links. Doc comments may point up at the
//! crate-root names of the endpoint layer (`crate::Endpoint::stats`); code may not.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display())).path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "no sources under {}", dir.display());
    files
}

/// The first segment of every `crate::` path in `text`, with those of `crate::{a, b::c}` groups:
/// line number, whether the line is a comment, and the name.
fn crate_paths(text: &str) -> Vec<(usize, bool, String)> {
    let mut found = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let comment = line.trim_start().starts_with("//");
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let names = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or("").split(',').map(str::trim).collect(),
                None => vec![rest],
            };
            for name in names {
                let first: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                found.push((line_no + 1, comment, first));
            }
        }
    }
    found
}

/// Fails with every place under `src/<layer>` that names one of `modules`, or in code (not in
/// comments) one of `root_names`.
fn check(layer: &str, modules: &[&str], root_names: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(layer);
    let mut offences = Vec::new();
    for file in sources(&dir) {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("cannot read {}: {err}", file.display()));
        for (line, comment, name) in crate_paths(&text) {
            if modules.contains(&name.as_str()) || (!comment && root_names.contains(&name.as_str())) {
                offences.push(format!("{}:{line}: crate::{name}", file.display()));
            }
        }
        if text.contains("super::super::") {
            offences.push(format!("{}: a super::super:: path (name the module from crate:: instead)", file.display()));
        }
    }
    assert!(offences.is_empty(), "src/{layer} names a layer above it:\n{}", offences.join("\n"));
}

#[test]
fn connection_does_not_name_the_endpoint() {
    // The crate root's names of the endpoint and typed layers.
    let root_names = ["Endpoint", "EndpointEvent", "EventKind", "Blueprint", "Cancellation", "Context"];
    check("connection", &["endpoint", "typed"], &root_names);
}

#[test]
fn the_sans_io_core_names_no_async_layer() {
    let above = ["connection", "endpoint", "typed", "transport", "codec", "Connection", "Endpoint"];
    check("frame", &above, &[]);
    check("session", &above, &[]);
}

#[test]
fn paths_in_groups_are_seen() {
    let text = "use crate::{endpoint::Request, frame};\n    /// [`x`](crate::typed::X)\n";
    let names: Vec<_> =
        crate_paths(text).into_iter().map(|(line, comment, name)| format!("{line}:{comment}:{name}")).collect();
    assert_eq!(names, ["1:false:endpoint", "1:false:frame", "2:true:typed"]);
}

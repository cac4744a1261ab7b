//! Every input kept from fuzzing (`fuzz/regressions/<target>/`: the minimized corpus of each
//! cargo-fuzz target, and any crash reproducer) run through the same entry point as its target, so
//! what the fuzzer once found stays fixed. Refresh after a campaign with
//! `cargo fuzz cmin -s none TARGET` and a copy of `fuzz/corpus/TARGET` into the directory.

use std::path::PathBuf;

use netcore_runtime::fuzzing;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no input", dir.display());
    files.into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect()
}

fn replay(target: &str, run: fn(&[u8])) {
    let inputs = inputs(target);
    for (path, data) in &inputs {
        let result = std::panic::catch_unwind(|| run(data));
        assert!(result.is_ok(), "{target}: {} fails again", path.display());
    }
    eprintln!("{target}: {} inputs replayed", inputs.len());
}

#[test]
fn stream_decoder() {
    replay("stream_decoder", fuzzing::stream_decoder);
}

#[test]
fn lossy_decoder() {
    replay("lossy_decoder", fuzzing::lossy_decoder);
}

#[test]
fn frame_body() {
    replay("frame_body", fuzzing::frame_body);
}

#[test]
fn session() {
    replay("session", fuzzing::session);
}

#[test]
fn handshake() {
    replay("handshake", fuzzing::handshake);
}

#[test]
fn codec() {
    replay("codec", fuzzing::codec);
}

#[test]
fn records() {
    replay("records", fuzzing::result_records);
}

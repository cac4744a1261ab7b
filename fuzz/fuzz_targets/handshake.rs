//! The handshake of a fresh session fed arbitrary HELLOs and bytes. See `netcore_runtime::fuzzing::handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netcore_runtime::fuzzing::handshake(data));

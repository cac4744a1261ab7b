//! Arbitrary link bytes into a sans-IO session after a valid HELLO. See `netcore_runtime::fuzzing::session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netcore_runtime::fuzzing::session(data));

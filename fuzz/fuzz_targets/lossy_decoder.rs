//! Arbitrary bytes through the lossy (COBS) frame decoder. See `netcore_runtime::fuzzing::lossy_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netcore_runtime::fuzzing::lossy_decoder(data));

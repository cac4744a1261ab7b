//! Arbitrary bytes through the stream (length-prefixed) frame decoder. See `netcore_runtime::fuzzing::stream_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netcore_runtime::fuzzing::stream_decoder(data));

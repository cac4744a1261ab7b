//! Arbitrary frame bodies, CRC fixed up, through the field parsers. See `netcore_runtime::fuzzing::frame_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netcore_runtime::fuzzing::frame_body(data));

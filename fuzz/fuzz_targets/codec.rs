//! The payload codec on arbitrary bytes, as nested typed values. See `netcore_runtime::fuzzing::codec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netcore_runtime::fuzzing::codec(data));

//! The result-stream record reader (docs/PROTOCOL.md §15) on arbitrary bytes in arbitrary
//! chunks. See `netcore_runtime::fuzzing::result_records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netcore_runtime::fuzzing::result_records(data));

//! The payload codecs on arbitrary bytes, as nested typed values: postcard, and bincode with the
//! `bincode` feature. See `netcore_runtime::fuzzing::codec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netcore_runtime::fuzzing::codec(data));

//! postcard 1.x, the default payload codec (docs/PROTOCOL.md §14.1): LEB128 varints for integers
//! above 8 bits (zigzag for signed), little-endian floats, varint lengths, varint enum variant
//! indices. postcard reads lengths against the bytes it was given, so no claim allocates beyond
//! the input (serde's own preallocation is capped at 1 MiB).

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;

#[allow(unused_imports)]
use crate::prelude::*;

use super::{bounded, Cause, CodecError};

/// Encodes `value` with postcard.
#[cfg_attr(not(any(test, fuzzing, feature = "testing")), allow(dead_code))] // the fuzz targets
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    ::postcard::to_allocvec(value).map_err(|err| CodecError::Encode(Cause::new(err)))
}

/// Decodes one whole value with postcard, within the size and depth bounds.
#[cfg_attr(not(any(test, all(feature = "tokio", any(fuzzing, feature = "testing")))), allow(dead_code))] // the fuzz targets
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_seed(core::marker::PhantomData::<T>, bytes)
}

/// Decodes one whole value through `seed` with postcard, within the size and depth bounds.
pub(crate) fn decode_seed<'de, S: DeserializeSeed<'de>>(seed: S, bytes: &'de [u8]) -> Result<S::Value, CodecError> {
    bounded(bytes, seed, |seed| {
        let mut deserializer = ::postcard::Deserializer::from_bytes(bytes);
        let value = seed.deserialize(&mut deserializer)?;
        let rest = deserializer.finalize()?;
        Ok::<_, ::postcard::Error>((value, bytes.len() - rest.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_hostile_length_is_an_error_not_an_allocation() {
        // A LEB128 varint claiming a u64::MAX-byte string or list, in 10 bytes.
        let hostile = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(decode::<String>(&hostile).is_err());
        assert!(decode::<Vec<u64>>(&hostile).is_err());
        // 2^21 u64 claimed in 3 bytes.
        assert!(decode::<Vec<u64>>(&[0x80, 0x80, 0x80, 0x01]).is_err());
    }

    #[test]
    fn depth_bound_holds() {
        let err = decode::<super::super::tests::Tree>(&super::super::tests::hostile_tree()).unwrap_err();
        assert!(matches!(err, CodecError::TooDeep), "{err:?}");
    }

    #[test]
    fn leb128_and_zigzag() {
        let cases: &[(Vec<u8>, &str)] = &[
            (encode(&300u32).unwrap(), "ac 02"),
            (encode(&-2i32).unwrap(), "03"),
            (encode(&200u8).unwrap(), "c8"),
            (encode(&-1i8).unwrap(), "ff"),
            (encode(&1.5f32).unwrap(), "00 00 c0 3f"),
            (encode(&Some(true)).unwrap(), "01 01"),
            (encode(&"hé").unwrap(), "03 68 c3 a9"),
        ];
        for (bytes, want) in cases {
            assert_eq!(hex(bytes), *want);
        }
    }
}

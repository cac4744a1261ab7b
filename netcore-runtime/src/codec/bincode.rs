//! bincode 2 in serde mode, the opt-in payload codec (feature `bincode`, docs/PROTOCOL.md §14.2):
//! little endian, bincode's own variable-length integers, and a limit of [`DECODE_LIMIT`] bytes on
//! what one value may claim.

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;

#[allow(unused_imports)]
use crate::prelude::*;

use super::{bounded, Cause, CodecError, DECODE_LIMIT};

type Conf = ::bincode::config::Configuration<
    ::bincode::config::LittleEndian,
    ::bincode::config::Varint,
    ::bincode::config::Limit<DECODE_LIMIT>,
>;

const CONFIG: Conf = ::bincode::config::standard().with_little_endian().with_variable_int_encoding().with_limit();

/// Encodes `value` with bincode.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    ::bincode::serde::encode_to_vec(value, CONFIG).map_err(|err| CodecError::Encode(Cause::new(err)))
}

/// Decodes one whole value with bincode, within the size and depth bounds.
#[cfg_attr(not(any(test, fuzzing, feature = "testing")), allow(dead_code))] // the fuzz targets
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_seed(core::marker::PhantomData::<T>, bytes)
}

/// Decodes one whole value through `seed` with bincode, within the size and depth bounds.
pub(crate) fn decode_seed<'de, S: DeserializeSeed<'de>>(seed: S, bytes: &'de [u8]) -> Result<S::Value, CodecError> {
    bounded(bytes, seed, |seed| ::bincode::serde::seed_decode_from_slice(seed, bytes, CONFIG))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_length_is_an_error_not_an_allocation() {
        // A bincode varint claiming a u64::MAX-byte string, in 9 bytes.
        let hostile = [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode::<String>(&hostile).is_err());
        assert!(decode::<Vec<u64>>(&hostile).is_err());
    }

    #[test]
    fn depth_bound_holds() {
        let err = decode::<super::super::tests::Tree>(&super::super::tests::hostile_tree()).unwrap_err();
        assert!(matches!(err, CodecError::TooDeep), "{err:?}");
    }

    #[test]
    fn bincode_varints() {
        assert_eq!(encode(&300u32).unwrap(), [0xfb, 0x2c, 0x01]);
        assert_eq!(encode(&-2i32).unwrap(), [0x03]);
    }
}

//! The payload codec: the one place that decides how typed values become bytes (docs/PROTOCOL.md §14).
//!
//! bincode 2 in serde mode with a fixed configuration: little endian, variable-length integers,
//! and a limit on what one value may claim, so a hostile length prefix is an error rather than an
//! allocation, and a bound on nesting depth ([`MAX_DEPTH`]), so a deeply nested hostile value is
//! an error rather than a stack overflow. To move to another format (postcard is the natural
//! successor) change this module only.

mod depth;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

pub use depth::MAX_DEPTH;

/// Most bytes one decoded value may claim; larger payloads belong in files or raw bytes.
pub const DECODE_LIMIT: usize = 16 << 20;

type Conf = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
>;

const CONFIG: Conf = bincode::config::standard().with_little_endian().with_variable_int_encoding().with_limit();

/// A value could not be encoded or decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// bincode refused the value.
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The payload has bytes left after the value.
    #[error("decode: {0} trailing bytes after the value")]
    Trailing(usize),
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes a value with the netcore payload codec.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, CONFIG)?)
}

/// Decodes a whole payload; bytes left over are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let seed = depth::Seed::<T>(std::marker::PhantomData);
    let (value, used) = bincode::serde::seed_decode_from_slice(seed, bytes, CONFIG)?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

/// Decodes a whole payload with a seed (a value shaped at run time, such as the `netcore` command's
/// schema walker), under the same limits as [`decode`]; bytes left over are an error.
pub fn decode_seed<'de, S: serde::de::DeserializeSeed<'de>>(seed: S, bytes: &'de [u8]) -> Result<S::Value, CodecError> {
    let (value, used) = bincode::serde::seed_decode_from_slice(depth::SeedOf(seed), bytes, CONFIG)?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let bytes = encode(&("temp", 21.5f32, vec![1u16, 300])).unwrap();
        let back: (String, f32, Vec<u16>) = decode(&bytes).unwrap();
        assert_eq!(back, ("temp".to_string(), 21.5, vec![1, 300]));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode::<(String, f32, Vec<u16>)>(&longer), Err(CodecError::Trailing(1))));
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    enum Tree {
        Leaf,
        Node(Vec<Tree>),
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // Node([Node([ … Leaf … ])]): two bytes a level; 100 000 levels would overflow any stack.
        let levels = 100_000;
        let mut hostile = [0x01u8, 0x01].repeat(levels);
        hostile.push(0x00);
        let err = decode::<Tree>(&hostile).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 128 levels"), "{err}");
        // Honest nesting within the bound still decodes, and round-trips.
        let mut tree = Tree::Leaf;
        for _ in 0..60 {
            tree = Tree::Node(vec![tree]);
        }
        let bytes = encode(&tree).unwrap();
        assert!(matches!(decode::<Tree>(&bytes).unwrap(), Tree::Node(_)));
    }

    #[test]
    fn a_hostile_length_is_an_error_not_an_allocation() {
        // A varint claiming a u64::MAX-byte string, in 9 bytes.
        let hostile = [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode::<String>(&hostile).is_err());
        assert!(decode::<Vec<u64>>(&hostile).is_err());
    }
}

//! The payload codec: the one place that decides how typed values become bytes (docs/PROTOCOL.md §14).
//!
//! postcard 1.x by default (§14.1); bincode 2 in serde mode with the `bincode` cargo feature
//! (§14.2). Either way the same two bounds hold: an input above [`DECODE_LIMIT`] is refused before
//! it is read and no length prefix is believed beyond the bytes (or the limit) behind it, so a
//! hostile length is an error rather than an allocation; and nesting is bounded by [`MAX_DEPTH`]
//! (`depth.rs`), so a deeply nested hostile value is an error rather than a stack overflow. The
//! codec in use, [`CODEC`], is announced in HELLO (§5.1) and both sides must agree (§9). Neither
//! codec's types appear in [`CodecError`]; another format is one more module here.
//!
//! The seam builds without std (feature `codec` alone, `#![no_std]` with `alloc`), so a board
//! encodes and decodes payloads with the same bounds as the host; `CodecError::Json` and the
//! bincode codec need std.
//!
//! ```text
//!   T: Serialize ─ encode ─▶ postcard | bincode ─▶ payload bytes
//!   payload bytes ─ decode ─▶ size check ─▶ depth::Seed ─▶ postcard | bincode ─▶ trailing check ─▶ T
//! ```

#[cfg(feature = "bincode")]
pub(crate) mod bincode;
mod depth;
pub(crate) mod postcard;

use core::cell::Cell;
use core::error::Error as StdError;
use core::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

#[allow(unused_imports)]
use crate::prelude::*;

pub use crate::frame::PayloadCodec;
pub use depth::MAX_DEPTH;

/// Most bytes one encoded value may have; larger payloads belong in files or raw bytes.
pub const DECODE_LIMIT: usize = 16 << 20;

/// The codec [`encode`] and [`decode`] use in this build, announced in HELLO (§5.1).
pub const CODEC: PayloadCodec = PayloadCodec::COMPILED;

/// A value could not be encoded or decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec refused the value (a `Serialize` impl failed, or a sequence of unknown length).
    #[error("encode: {0}")]
    Encode(#[source] Cause),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode: {0}")]
    Decode(#[source] Cause),
    /// The value nests deeper than [`MAX_DEPTH`] levels.
    #[error("decode: value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The payload is larger than [`DECODE_LIMIT`].
    #[error("decode: payload of {0} bytes exceeds the decode limit of {DECODE_LIMIT} bytes")]
    TooLarge(usize),
    /// The payload has bytes left after the value.
    #[error("decode: {0} trailing bytes after the value")]
    Trailing(usize),
    /// JSON (de)serialisation failed.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// What the codec said went wrong: its message, and its error as the [`source`](core::error::Error::source),
/// without naming the codec's types.
pub struct Cause(Box<dyn StdError + Send + Sync + 'static>);

impl Cause {
    fn new(err: impl StdError + Send + Sync + 'static) -> Self {
        Self(Box::new(err))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// Encodes a value with the netcore payload codec ([`CODEC`]).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    #[cfg(feature = "bincode")]
    return bincode::encode(value);
    #[cfg(not(feature = "bincode"))]
    return postcard::encode(value);
}

/// Decodes a whole payload with the netcore payload codec ([`CODEC`]); bytes left over are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_seed(core::marker::PhantomData::<T>, bytes)
}

/// Decodes a whole payload with a seed (a value shaped at run time, such as the `netcore` command's
/// schema walker), under the same limits as [`decode`]; bytes left over are an error.
pub fn decode_seed<'de, S: serde::de::DeserializeSeed<'de>>(seed: S, bytes: &'de [u8]) -> Result<S::Value, CodecError> {
    #[cfg(feature = "bincode")]
    return bincode::decode_seed(seed, bytes);
    #[cfg(not(feature = "bincode"))]
    return postcard::decode_seed(seed, bytes);
}

/// The checks every codec shares around its own decoding: the size bound before, the depth
/// bound during (through the seed), the trailing bytes after. `run` decodes through the seed and
/// returns the value and the bytes it used.
fn bounded<'de, S, E>(
    bytes: &'de [u8],
    seed: S,
    run: impl FnOnce(depth::Seed<'_, S>) -> Result<(S::Value, usize), E>,
) -> Result<S::Value, CodecError>
where
    S: serde::de::DeserializeSeed<'de>,
    E: StdError + Send + Sync + 'static,
{
    if bytes.len() > DECODE_LIMIT {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    let too_deep = Cell::new(false);
    match run(depth::Seed { too_deep: &too_deep, inner: seed }) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(CodecError::Trailing(bytes.len() - used)),
        Err(_) if too_deep.get() => Err(CodecError::TooDeep),
        Err(err) => Err(CodecError::Decode(Cause::new(err))),
    }
}

#[cfg(test)]
mod tests {
    //! What holds for the codec of this build, whichever it is; byte-level vectors are in each
    //! codec's module.
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
    pub(super) enum Tree {
        Leaf,
        Node(Vec<Tree>),
    }

    /// Node([Node([ … Leaf … ])]): two bytes a level in both codecs; 100 000 levels would overflow
    /// any stack.
    pub(super) fn hostile_tree() -> Vec<u8> {
        let mut hostile = [0x01u8, 0x01].repeat(100_000);
        hostile.push(0x00);
        hostile
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let err = decode::<Tree>(&hostile_tree()).unwrap_err();
        assert!(matches!(err, CodecError::TooDeep), "{err:?}");
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
    fn a_payload_above_the_limit_is_refused_before_it_is_read() {
        let big = vec![0u8; DECODE_LIMIT + 1];
        assert!(matches!(decode::<Vec<u8>>(&big), Err(CodecError::TooLarge(n)) if n == DECODE_LIMIT + 1));
    }

    #[test]
    fn errors_name_no_codec_type_but_keep_the_cause() {
        let err = decode::<bool>(&[7]).unwrap_err();
        assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
        assert!(err.to_string().starts_with("decode: "), "{err}");
        assert!(StdError::source(&err).is_some());
    }
}

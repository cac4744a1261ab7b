//! Unsigned LEB128 varints, as used by every variable-width field (docs/PROTOCOL.md §2).

#[allow(unused_imports)]
use crate::prelude::*;

use bytes::BufMut;

use crate::frame::FrameError;

/// Longest encoding of a `u64`.
pub const MAX_LEN: usize = 10;

/// Number of bytes `value` takes on the wire.
pub const fn encoded_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits, at least one.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends the minimal encoding of `value`.
pub fn put(out: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Outcome of reading a varint from a possibly incomplete buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// The value and the number of bytes it took.
    Value(u64, usize),
    /// The buffer ends inside the varint.
    Incomplete,
}

/// Reads a varint at the start of `input` without consuming it.
///
/// Rejects encodings longer than [`MAX_LEN`], values above `u64::MAX` and non-minimal encodings
/// (a final byte of zero after the first): every value has exactly one encoding (§2).
pub fn peek(input: &[u8]) -> Result<Peek, FrameError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate().take(MAX_LEN) {
        let group = u64::from(byte & 0x7f);
        if i == MAX_LEN - 1 && byte > 1 {
            return Err(FrameError::BadVarint);
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(FrameError::BadVarint);
            }
            return Ok(Peek::Value(value, i + 1));
        }
    }
    if input.len() >= MAX_LEN {
        Err(FrameError::BadVarint)
    } else {
        Ok(Peek::Incomplete)
    }
}

/// Reads and consumes a varint from a complete field; running out of bytes is [`FrameError::Truncated`].
pub fn get(input: &mut &[u8]) -> Result<u64, FrameError> {
    match peek(input)? {
        Peek::Value(value, len) => {
            *input = &input[len..];
            Ok(value)
        }
        Peek::Incomplete => Err(FrameError::Truncated),
    }
}

/// Reads a varint that must fit in a `u32`.
pub fn get_u32(input: &mut &[u8]) -> Result<u32, FrameError> {
    u32::try_from(get(input)?).map_err(|_| FrameError::BadVarint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        let table: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (16_384, &[0x80, 0x80, 0x01]),
            (u64::MAX, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ];
        for &(value, bytes) in table {
            let mut out = Vec::new();
            put(&mut out, value);
            assert_eq!(out, bytes, "encoding {value}");
            assert_eq!(encoded_len(value), bytes.len());
            assert_eq!(peek(bytes).unwrap(), Peek::Value(value, bytes.len()));
        }
    }

    #[test]
    fn rejects_non_minimal_and_overflow() {
        assert_eq!(peek(&[0x80, 0x00]), Err(FrameError::BadVarint));
        assert_eq!(peek(&[0xff; 10]), Err(FrameError::BadVarint));
        let mut too_big = [0xff; 10];
        too_big[9] = 0x02;
        assert_eq!(peek(&too_big), Err(FrameError::BadVarint));
    }

    #[test]
    fn incomplete_is_not_an_error() {
        assert_eq!(peek(&[]).unwrap(), Peek::Incomplete);
        assert_eq!(peek(&[0x80]).unwrap(), Peek::Incomplete);
        assert_eq!(get(&mut &[0x80][..]), Err(FrameError::Truncated));
    }

    proptest::proptest! {
        #[test]
        fn round_trip(value: u64) {
            let mut out = Vec::new();
            put(&mut out, value);
            proptest::prop_assert_eq!(out.len(), encoded_len(value));
            proptest::prop_assert_eq!(get(&mut &out[..]).unwrap(), value);
        }
    }
}

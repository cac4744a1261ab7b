//! Headers: the calls' use of HEAD metadata (docs/PROTOCOL.md §15).

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes};

/// Most headers one message may carry.
const MAX_HEADERS: u64 = 64;

/// Request or response headers: UTF-8 names to UTF-8 values, sent in the HEAD's metadata.
pub type Headers = BTreeMap<String, String>;

/// Encodes headers as `varint count ‖ (varint len ‖ name ‖ varint len ‖ value)*`; `None` if empty.
pub(crate) fn encode_headers(headers: &Headers) -> Option<Bytes> {
    if headers.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    crate::varint::put(&mut out, headers.len() as u64);
    for (name, value) in headers {
        for field in [name, value] {
            crate::varint::put(&mut out, field.len() as u64);
            out.put_slice(field.as_bytes());
        }
    }
    Some(out.into())
}

/// Decodes headers; malformed metadata yields an error message, never a panic or a large allocation.
/// Pairs may come in any order; of duplicate names the last wins; a count of 0 is no headers (§15).
pub(crate) fn decode_headers(meta: Option<&Bytes>) -> Result<Headers, &'static str> {
    let mut headers = Headers::new();
    let Some(meta) = meta else { return Ok(headers) };
    let mut r = &meta[..];
    let count = get_varint(&mut r)?;
    if count > MAX_HEADERS {
        return Err("too many headers");
    }
    for _ in 0..count {
        let name = get_str(&mut r)?;
        let value = get_str(&mut r)?;
        headers.insert(name, value);
    }
    if !r.is_empty() {
        return Err("trailing bytes after headers");
    }
    Ok(headers)
}

/// A §2 varint: minimal LEB128, as in every other field of the protocol.
fn get_varint(r: &mut &[u8]) -> Result<u64, &'static str> {
    crate::varint::get(r).map_err(|err| match err {
        crate::frame::FrameError::Truncated => "truncated headers",
        _ => "bad varint in headers",
    })
}

fn get_str(r: &mut &[u8]) -> Result<String, &'static str> {
    let len = get_varint(r)?;
    if len > r.len() as u64 {
        return Err("header longer than the metadata");
    }
    let (field, rest) = r.split_at(len as usize);
    *r = rest;
    String::from_utf8(field.to_vec()).map_err(|_| "header is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_reject_garbage() {
        let mut headers = Headers::new();
        headers.insert("auth".into(), "token".into());
        headers.insert("trace".into(), "42".into());
        let bytes = encode_headers(&headers).unwrap();
        assert_eq!(decode_headers(Some(&bytes)).unwrap(), headers);
        assert_eq!(encode_headers(&Headers::new()), None);
        assert!(decode_headers(Some(&Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]))).is_err());
        assert!(decode_headers(Some(&Bytes::from_static(&[1, 0xff, 0x01]))).is_err());
    }

    #[test]
    fn receivers_take_any_order_the_last_duplicate_and_an_empty_block() {
        let unsorted = Bytes::from_static(&[2, 1, b'z', 1, b'1', 1, b'a', 1, b'2']);
        let got = decode_headers(Some(&unsorted)).unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), [("a".into(), "2".into()), ("z".into(), "1".into())]);
        let duplicate = Bytes::from_static(&[2, 1, b'k', 1, b'1', 1, b'k', 1, b'2']);
        assert_eq!(decode_headers(Some(&duplicate)).unwrap()["k"], "2");
        assert_eq!(decode_headers(Some(&Bytes::from_static(&[0]))).unwrap(), Headers::new());
        for bad in [&[0x80, 0x00][..], &[65], &[0, 0], &[1, 1, 0xff, 0]] {
            assert!(decode_headers(Some(&Bytes::copy_from_slice(bad))).is_err(), "{bad:?}");
        }
    }
}

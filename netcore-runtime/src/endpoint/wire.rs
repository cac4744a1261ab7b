//! The endpoint layer's use of HEAD metadata: headers (docs/PROTOCOL.md §15).

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
    put_varint(&mut out, headers.len() as u64);
    for (name, value) in headers {
        for field in [name, value] {
            put_varint(&mut out, field.len() as u64);
            out.put_slice(field.as_bytes());
        }
    }
    Some(out.into())
}

/// Decodes headers; malformed metadata yields an error message, never a panic or a large allocation.
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

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(r: &mut &[u8]) -> Result<u64, &'static str> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = r.split_first().ok_or("truncated headers")?;
        *r = rest;
        value |= u64::from(byte & 0x7f).checked_shl(7 * i).ok_or("bad varint in headers")?;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("bad varint in headers")
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
}

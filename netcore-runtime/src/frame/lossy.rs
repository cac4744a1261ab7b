//! The lossy framing: `0x00 ‖ COBS(body) ‖ 0x00` (docs/PROTOCOL.md §4.2).
//!
//! COBS removes every zero byte from the body, so a zero always marks a frame boundary. After any
//! damage the decoder drops the bytes up to the next zero and carries on: a flipped, lost or extra
//! byte costs at most the frame it hit. Each frame starts *and* ends with a delimiter so that a
//! lost delimiter cannot merge two frames.

use bytes::{Buf, Bytes, BytesMut};

use super::{decode_body, encode_body, encoded_body_len, Frame, FrameError};

/// Appends `frame`, COBS-encoded between delimiters, to `out`.
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    let mut body = Vec::with_capacity(encoded_body_len(frame));
    encode_body(frame, &mut body);
    out.reserve(max_encoded_len(body.len()) + 2);
    out.extend_from_slice(&[0]);
    cobs_encode(&body, out);
    out.extend_from_slice(&[0]);
}

/// Longest COBS encoding of a body of `len` bytes: one code byte per started 254-byte block.
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

fn cobs_encode(src: &[u8], out: &mut BytesMut) {
    let mut rest = src;
    loop {
        let window = &rest[..rest.len().min(254)];
        match window.iter().position(|&b| b == 0) {
            Some(zero) => {
                out.extend_from_slice(&[zero as u8 + 1]);
                out.extend_from_slice(&window[..zero]);
                rest = &rest[zero + 1..];
            }
            None if window.len() == 254 => {
                out.extend_from_slice(&[0xff]);
                out.extend_from_slice(window);
                rest = &rest[254..];
            }
            None => {
                out.extend_from_slice(&[window.len() as u8 + 1]);
                out.extend_from_slice(window);
                return;
            }
        }
    }
}

fn cobs_decode(src: &[u8]) -> Result<Bytes, FrameError> {
    let mut out = Vec::with_capacity(src.len());
    let mut rest = src;
    while let Some((&code, tail)) = rest.split_first() {
        let run = usize::from(code).checked_sub(1).ok_or(FrameError::BadCobs)?;
        if run > tail.len() {
            return Err(FrameError::BadCobs);
        }
        out.extend_from_slice(&tail[..run]);
        rest = &tail[run..];
        if code != 0xff && !rest.is_empty() {
            out.push(0);
        }
    }
    Ok(out.into())
}

/// Finds frames between zero delimiters, skipping anything damaged.
#[derive(Debug)]
pub struct LossyDecoder {
    input: BytesMut,
    /// Bytes of `input` already known to hold no delimiter.
    scanned: usize,
    max_encoded: usize,
    max_body: usize,
    /// Inside an oversized frame: drop everything up to the next delimiter.
    skipping: bool,
    discarded: u64,
}

impl LossyDecoder {
    /// A decoder that refuses bodies longer than `max_body`.
    pub fn new(max_body: usize) -> Self {
        Self {
            input: BytesMut::new(),
            scanned: 0,
            max_encoded: max_encoded_len(max_body),
            max_body,
            skipping: false,
            discarded: 0,
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// The receive buffer, for reading straight into it.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Bytes received but not yet decoded (an oversized frame being skipped is not kept).
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// Bytes dropped so far: damaged frames, oversized frames and noise.
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// The next good frame, `Ok(None)` until one is complete, or `Err` for one dropped frame.
    /// Decoding resumes after an error.
    pub fn decode(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some(pos) = self.input[self.scanned..].iter().position(|&b| b == 0) else {
                return self.await_delimiter();
            };
            let end = self.scanned + pos;
            let encoded = self.input.split_to(end + 1);
            self.scanned = 0;
            let encoded = &encoded[..end];
            if std::mem::take(&mut self.skipping) {
                self.discarded += encoded.len() as u64;
                continue;
            }
            if encoded.is_empty() {
                continue;
            }
            if encoded.len() > self.max_encoded {
                self.discarded += encoded.len() as u64;
                return Err(self.too_large(encoded.len()));
            }
            let result = cobs_decode(encoded).and_then(|body| self.check_body(body)).and_then(decode_body);
            if result.is_err() {
                self.discarded += encoded.len() as u64;
            }
            return result.map(Some);
        }
    }

    fn await_delimiter(&mut self) -> Result<Option<Frame>, FrameError> {
        self.scanned = self.input.len();
        if self.input.len() <= self.max_encoded {
            return Ok(None);
        }
        // §8: no frame is this long; drop it now rather than buffer noise without bound.
        let len = self.input.len();
        self.discarded += len as u64;
        self.input.advance(len);
        self.scanned = 0;
        let was_skipping = std::mem::replace(&mut self.skipping, true);
        if was_skipping {
            Ok(None)
        } else {
            Err(self.too_large(len))
        }
    }

    /// §8: a body over `max_frame` is refused on both framings, whatever its encoded length.
    fn check_body(&self, body: Bytes) -> Result<Bytes, FrameError> {
        if body.len() > self.max_body {
            return Err(FrameError::TooLarge { len: body.len() as u64, max: self.max_body as u64 });
        }
        Ok(body)
    }

    fn too_large(&self, len: usize) -> FrameError {
        FrameError::TooLarge { len: len as u64, max: self.max_encoded as u64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(src: &[u8]) {
        let mut out = BytesMut::new();
        cobs_encode(src, &mut out);
        assert!(!out.contains(&0), "{src:?} encoded with a zero");
        assert!(out.len() <= max_encoded_len(src.len()));
        assert_eq!(&cobs_decode(&out).unwrap()[..], src);
    }

    #[test]
    fn cobs_vectors() {
        // Vectors from Cheshire & Baker's paper and the common test suite.
        let table: &[(&[u8], &[u8])] = &[
            (&[], &[0x01]),
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for &(src, enc) in table {
            let mut out = BytesMut::new();
            cobs_encode(src, &mut out);
            assert_eq!(&out[..], enc, "encoding {src:?}");
            assert_eq!(&cobs_decode(enc).unwrap()[..], src);
        }
    }

    #[test]
    fn cobs_block_boundaries() {
        for len in [253, 254, 255, 508, 509, 1000] {
            round(&vec![7u8; len]);
            let mut with_zero = vec![7u8; len];
            with_zero[len / 2] = 0;
            round(&with_zero);
        }
    }

    #[test]
    fn cobs_rejects_overrun() {
        assert_eq!(cobs_decode(&[0x05, 1, 2]), Err(FrameError::BadCobs));
    }
}

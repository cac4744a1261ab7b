//! The lossy framing: `0x00 ‖ COBS(body) ‖ 0x00` (docs/PROTOCOL.md §4.2).
//!
//! COBS removes every zero byte from the body, so a zero always marks a frame boundary. After any
//! damage the decoder drops the bytes up to the next zero and carries on: a flipped, lost or extra
//! byte costs at most the frame it hit. Each frame starts *and* ends with a delimiter so that a
//! lost delimiter cannot merge two frames.

#[allow(unused_imports)]
use crate::prelude::*;

use bytes::{Buf, Bytes, BytesMut};

use super::body::encode_body_valid;
use super::{check, decode_body, encoded_body_len, Frame, FrameError};

/// Appends `frame`, COBS-encoded between delimiters, to `out`; a frame that breaks a rule of §5
/// is [`FrameError::Unencodable`] with nothing written ([`check`]).
pub fn encode(frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
    check(frame)?;
    encode_valid(frame, out);
    Ok(())
}

/// [`encode`] of a frame this crate built, valid by construction.
pub(crate) fn encode_valid(frame: &Frame, out: &mut BytesMut) {
    let mut body = Vec::with_capacity(encoded_body_len(frame));
    encode_body_valid(frame, &mut body);
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

/// What the bytes at the start of a run say about a stream-framed HELLO (§4, §4.1, §5.1).
enum StreamHello {
    /// `varint(len) ‖ 01 4e 43 …`: `len` bytes whose CRC is correct.
    Whole,
    /// That prefix, with fewer than `len` (at most `max`) bytes yet.
    Partial,
    /// Anything else, a lossy frame included: its first byte is a COBS code, whose run holds
    /// at least as many bytes as the code read as a length, over which the CRC fails.
    No,
}

fn stream_hello(run: &[u8], max: usize) -> StreamHello {
    let mut rest = run;
    let Ok(len) = crate::varint::get(&mut rest) else { return StreamHello::No };
    if !rest.starts_with(&[0x01, 0x4e, 0x43]) || len < 9 || len > max as u64 {
        return StreamHello::No;
    }
    if len > rest.len() as u64 {
        return StreamHello::Partial;
    }
    let (body, crc) = rest[..len as usize].split_at(len as usize - 4);
    match crc32fast::hash(body).to_le_bytes() == crc {
        true => StreamHello::Whole,
        false => StreamHello::No,
    }
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
    /// The bytes since a run that began like a stream-framed HELLO, until they show whether it
    /// was one (at most `max_encoded` of them).
    suspect: Option<Vec<u8>>,
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
            suspect: None,
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
            // §4: a peer on the stream framing starts with a length-prefixed HELLO.
            let suspect = match stream_hello(&self.input, self.max_encoded) {
                StreamHello::Whole => return Err(self.stream_framing()),
                StreamHello::Partial => self.suspect.is_none(),
                StreamHello::No => false,
            };
            let Some(pos) = self.input[self.scanned..].iter().position(|&b| b == 0) else {
                return self.await_delimiter();
            };
            let end = self.scanned + pos;
            let encoded = self.input.split_to(end + 1);
            self.scanned = 0;
            if suspect {
                self.suspect = Some(Vec::new());
            }
            if let Some(copy) = &mut self.suspect {
                // The run is decoded as usual (damage costs one frame); its copy decides later
                // whether it began a stream-framed HELLO.
                copy.extend_from_slice(&encoded);
                match stream_hello(copy, self.max_encoded) {
                    StreamHello::Whole => return Err(self.stream_framing()),
                    StreamHello::Partial => {}
                    StreamHello::No => self.suspect = None,
                }
            }
            let encoded = &encoded[..end];
            if core::mem::take(&mut self.skipping) {
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

    /// The peer uses the stream framing: nothing it sends will decode (§4).
    fn stream_framing(&mut self) -> FrameError {
        self.discarded += self.input.len() as u64;
        self.input.clear();
        self.scanned = 0;
        self.suspect = None;
        FrameError::StreamFraming
    }

    fn await_delimiter(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(copy) = &self.suspect {
            let bytes = [&copy[..], &self.input[..]].concat();
            if let StreamHello::Whole = stream_hello(&bytes, self.max_encoded) {
                return Err(self.stream_framing());
            }
        }
        self.scanned = self.input.len();
        if self.input.len() <= self.max_encoded {
            return Ok(None);
        }
        // §8: no frame is this long; drop it now rather than buffer noise without bound.
        let len = self.input.len();
        self.discarded += len as u64;
        self.input.advance(len);
        self.scanned = 0;
        let was_skipping = core::mem::replace(&mut self.skipping, true);
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
#[cfg(test)]
mod stream_hello_tests {
    use super::*;
    use crate::frame::{Framing, Hello, Limits};

    #[test]
    fn a_stream_hello_is_recognised() {
        let mut out = BytesMut::new();
        crate::frame::encode(
            Framing::Stream,
            &Frame::Hello(Hello::new(1, 1, 0, Limits::default()).with_nonce(7)),
            &mut out,
        )
        .unwrap();
        let mut decoder = LossyDecoder::new(1024);
        decoder.extend(&out[..10]);
        assert_eq!(decoder.decode(), Err(FrameError::BadCobs), "a damaged lossy frame, for all we know yet");
        decoder.extend(&out[10..]);
        let mut got = decoder.decode();
        while got.as_ref().is_err_and(FrameError::is_damage) {
            got = decoder.decode();
        }
        assert_eq!(got, Err(FrameError::StreamFraming));
        // A lossy HELLO, even with zeros in it, is no such thing.
        let mut lossy = BytesMut::new();
        crate::frame::encode(
            Framing::Lossy,
            &Frame::Hello(Hello::new(1, 1, 0, Limits::default()).with_nonce(7)),
            &mut lossy,
        )
        .unwrap();
        let mut decoder = LossyDecoder::new(1024);
        decoder.extend(&lossy);
        assert!(matches!(decoder.decode(), Ok(Some(Frame::Hello(_)))));
    }
}

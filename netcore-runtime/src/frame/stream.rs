//! The stream framing: `varint(len) ‖ body` (docs/PROTOCOL.md §4.1).
//!
//! For reliable byte streams. Any error is final: after a damaged frame there is no way to find
//! the next length prefix, so the connection must close.

#[allow(unused_imports)]
use crate::prelude::*;

use bytes::{Buf, BytesMut};

use super::body::encode_body_valid;
use super::{check, decode_body, encoded_body_len, Frame, FrameError, MIN_BODY};
use crate::varint::{self, Peek};

/// Appends `frame` with its length prefix to `out`; a frame that breaks a rule of §5 is
/// [`FrameError::Unencodable`] with nothing written ([`check`]).
pub fn encode(frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
    check(frame)?;
    encode_valid(frame, out);
    Ok(())
}

/// [`encode`] of a frame this crate built, valid by construction.
pub(crate) fn encode_valid(frame: &Frame, out: &mut BytesMut) {
    let len = encoded_body_len(frame);
    out.reserve(varint::MAX_LEN + len);
    varint::put(out, len as u64);
    encode_body_valid(frame, out);
}

/// Splits a byte stream into frames. Never buffers more than one maximal frame beyond what was fed.
#[derive(Debug)]
pub struct StreamDecoder {
    buf: BytesMut,
    max_body: usize,
    failed: Option<FrameError>,
}

impl StreamDecoder {
    /// A decoder that refuses bodies longer than `max_body`.
    pub fn new(max_body: usize) -> Self {
        Self { buf: BytesMut::new(), max_body, failed: None }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends a received buffer, without copying when nothing is pending.
    pub fn feed(&mut self, bytes: BytesMut) {
        if self.buf.is_empty() {
            self.buf = bytes;
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    /// The receive buffer, for reading straight into it.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next frame, or `Ok(None)` until one is complete. After an error, always that error.
    pub fn decode(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.decode_inner();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn decode_inner(&mut self) -> Result<Option<Frame>, FrameError> {
        let peeked = varint::peek(&self.buf).map_err(|_| FrameError::BadLengthPrefix)?;
        let (len, prefix) = match peeked {
            Peek::Incomplete => return Ok(None),
            Peek::Value(len, prefix) => (len, prefix),
        };
        // §8: the announced length is checked before a single byte of the body is buffered for it.
        if len > self.max_body as u64 {
            return Err(FrameError::TooLarge { len, max: self.max_body as u64 });
        }
        if len < MIN_BODY as u64 {
            return Err(FrameError::ShortLength(len));
        }
        let len = len as usize;
        if self.buf.len() < prefix + len {
            return Ok(None);
        }
        self.buf.advance(prefix);
        let body = self.buf.split_to(len).freeze();
        decode_body(body).map(Some)
    }
}

//! Frames: the unit of the wire format (docs/PROTOCOL.md §3–§5).
//!
//! A frame *body* is `type ‖ fields ‖ payload ‖ crc32`. The two framings in [`stream`] and
//! [`lossy`] only differ in how bodies are delimited on the byte stream. Decoding checks the CRC
//! before it reads a single field, so no length inside a damaged body is ever trusted.

#[allow(unused_imports)]
use crate::prelude::*;

mod body;
mod error;
pub mod lossy;
pub mod stream;
mod types;

pub use body::{check, decode_body, encode_body, encoded_body_len, is_sequenced};
pub use error::FrameError;
pub use types::*;

/// Bytes of CRC32 at the end of every body (§3).
pub const CRC_LEN: usize = 4;

/// Smallest possible body: a type byte and the CRC.
pub const MIN_BODY: usize = 1 + CRC_LEN;

/// The two ways bodies are delimited on a byte stream (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Length-prefixed bodies for reliable streams (TCP, Unix sockets, in-process pipes).
    #[default]
    Stream,
    /// COBS-encoded bodies between zero delimiters, for byte-lossy links such as serial lines.
    Lossy,
}

/// A frame decoder for either framing, fed with bytes as they arrive.
#[derive(Debug)]
pub enum Decoder {
    /// See [`stream::StreamDecoder`].
    Stream(stream::StreamDecoder),
    /// See [`lossy::LossyDecoder`].
    Lossy(lossy::LossyDecoder),
}

impl Decoder {
    /// A decoder for `framing` that refuses bodies longer than `max_body` bytes.
    pub fn new(framing: Framing, max_body: usize) -> Self {
        match framing {
            Framing::Stream => Decoder::Stream(stream::StreamDecoder::new(max_body)),
            Framing::Lossy => Decoder::Lossy(lossy::LossyDecoder::new(max_body)),
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        match self {
            Decoder::Stream(d) => d.extend(bytes),
            Decoder::Lossy(d) => d.extend(bytes),
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    ///
    /// On the stream framing an error is final. On the lossy framing it reports one discarded
    /// body and decoding resumes at the next delimiter.
    pub fn decode(&mut self) -> Result<Option<Frame>, FrameError> {
        match self {
            Decoder::Stream(d) => d.decode(),
            Decoder::Lossy(d) => d.decode(),
        }
    }

    /// The receive buffer, for reading from the link straight into it.
    pub fn buffer_mut(&mut self) -> &mut bytes::BytesMut {
        match self {
            Decoder::Stream(d) => d.buffer_mut(),
            Decoder::Lossy(d) => d.buffer_mut(),
        }
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        match self {
            Decoder::Stream(d) => d.buffered(),
            Decoder::Lossy(d) => d.buffered(),
        }
    }

    /// Bytes dropped so far by the lossy framing's resynchronisation (§4.2); 0 on the stream
    /// framing, where an error is final.
    pub fn discarded_bytes(&self) -> u64 {
        match self {
            Decoder::Stream(_) => 0,
            Decoder::Lossy(d) => d.discarded_bytes(),
        }
    }
}

/// Appends `frame`, framed for `framing`, to `out`; a frame that breaks a rule of §5 is
/// [`FrameError::Unencodable`] with nothing written ([`check`]).
pub fn encode(framing: Framing, frame: &Frame, out: &mut bytes::BytesMut) -> Result<(), FrameError> {
    check(frame)?;
    encode_valid(framing, frame, out);
    Ok(())
}

/// [`encode`] of a frame this crate built (the session, the endpoint), valid by construction.
pub(crate) fn encode_valid(framing: Framing, frame: &Frame, out: &mut bytes::BytesMut) {
    match framing {
        Framing::Stream => stream::encode_valid(frame, out),
        Framing::Lossy => lossy::encode_valid(frame, out),
    }
}

#[cfg(test)]
mod tests;

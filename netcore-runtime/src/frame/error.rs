#[allow(unused_imports)]
use crate::prelude::*;

use thiserror::Error;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The body is shorter than its fields require.
    #[error("frame body is truncated")]
    Truncated,
    /// Fewer bytes than a type byte and a CRC: noise, not a frame.
    #[error("frame body of {0} bytes is shorter than the minimum of 5")]
    Short(usize),
    /// The CRC32 does not match the body: the frame was damaged in transit (§3).
    #[error("frame check failed: computed crc32 {computed:#010x}, frame carries {carried:#010x}")]
    BadCrc {
        /// CRC32 of the received bytes.
        computed: u32,
        /// CRC32 found at the end of the body.
        carried: u32,
    },
    /// A body longer than the negotiated maximum was announced or received (§8).
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced or accumulated length (saturated at `u64::MAX`).
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// A varint is longer than 10 bytes, overflows, or is not minimally encoded (§2).
    #[error("malformed varint")]
    BadVarint,
    /// A COBS block points past the end of the body (§4.2).
    #[error("malformed cobs encoding")]
    BadCobs,
    /// A field holds a value the specification does not allow.
    #[error("invalid {field} in {frame} frame")]
    Invalid {
        /// The frame type's name.
        frame: &'static str,
        /// The offending field.
        field: &'static str,
    },
    /// A frame of a type that must be understood, but is not (§3.1).
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// An exchange reference whose id is above 2^32−1 (§6).
    #[error("exchange id {0} exceeds 2^32-1")]
    ExchangeIdTooLarge(u64),
    /// A stream framing length prefix that is not a minimal varint of at most 10 bytes (§4.1).
    #[error("malformed length prefix: not a minimal varint of at most 10 bytes")]
    BadLengthPrefix,
    /// A stream framing length prefix below the smallest body, 5 bytes (§4.1). A prefix of 0 is
    /// what the lossy framing's delimiter looks like to a stream receiver.
    #[error("length prefix announces a body of {len} bytes, below the minimum of 5{hint}", len = .0, hint = lossy_hint(*.0))]
    ShortLength(u64),
    /// A lossy receiver found a whole stream-framed HELLO (a length prefix, then an intact HELLO
    /// body) where a lossy frame should start: the two sides use different framings (§4).
    #[error(
        "the peer sends the stream framing (Config::stream: length-prefixed frames) but this side uses \
         the lossy framing (Config::lossy: 0x00-delimited COBS): a stream-framed HELLO arrived; \
         configure both ends alike"
    )]
    StreamFraming,
    /// A frame given to an encoder breaks a rule of §5 that the decoder enforces, named in `rule`
    /// with the limit involved; nothing was written ([`check`](super::check)).
    #[error("cannot encode {frame} frame: {rule}")]
    Unencodable {
        /// The frame type's name.
        frame: &'static str,
        /// The rule it breaks.
        rule: String,
    },
}

fn lossy_hint(len: u64) -> &'static str {
    match len {
        0 => " (a 0x00 byte starts every frame of the lossy framing: is the peer using Config::lossy()?)",
        _ => "",
    }
}

impl FrameError {
    /// Whether this error means the bytes were damaged in transit, rather than that an intact frame
    /// (its CRC correct) breaks the rules. On the lossy framing damage costs one frame; a broken
    /// rule is the peer's fault and closes the connection (§4.2).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            FrameError::BadCrc { .. } | FrameError::BadCobs | FrameError::TooLarge { .. } | FrameError::Short(_)
        )
    }
}

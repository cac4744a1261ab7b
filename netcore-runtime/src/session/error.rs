#[allow(unused_imports)]
use crate::prelude::*;

use thiserror::Error;

use crate::frame::{FrameError, GoAwayCode, PayloadCodec};

/// A rule of the protocol the peer broke; the session closes with a GOAWAY.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame could not be decoded.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The first frame was not a HELLO (§9).
    #[error("expected HELLO, received frame type {0:#04x}")]
    ExpectedHello(u8),
    /// A second HELLO arrived.
    #[error("unexpected second HELLO")]
    DuplicateHello,
    /// No protocol version in common (§9).
    #[error("no common protocol version: we speak {ours_min}..={ours_max}, the peer {theirs_min}..={theirs_max}")]
    Version {
        /// Oldest version we speak.
        ours_min: u8,
        /// Newest version we speak.
        ours_max: u8,
        /// Oldest version the peer speaks.
        theirs_min: u8,
        /// Newest version the peer speaks.
        theirs_max: u8,
    },
    /// The two sides encode typed payloads with different codecs (§9, §14).
    #[error(
        "payload codec mismatch: ours is {}, the peer's is {} (enable or disable the netcore \"bincode\" feature on one side)",
        ours.name(),
        theirs.name()
    )]
    Codec {
        /// Our codec.
        ours: PayloadCodec,
        /// The peer's.
        theirs: PayloadCodec,
    },
    /// The two sides were built from different service declarations (§9).
    #[error("schema fingerprint mismatch: ours is {ours:#018x}, the peer's is {theirs:#018x}")]
    Fingerprint {
        /// Our fingerprint.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// An exchange id out of sequence (§6).
    #[error("exchange id {got} out of sequence, expected {expected}")]
    ExchangeOrder {
        /// The next id in sequence.
        expected: u32,
        /// The id received.
        got: u32,
    },
    /// A HEAD for an exchange whose message is still arriving (§6).
    #[error("exchange {0} reused while its message is in flight")]
    ExchangeReused(u32),
    /// An open-length HEAD (§5.2) on exchange `0` without both HELLOs offering OPEN (§5.1).
    #[error("open-length message on exchange {0}, but open-length messages were not negotiated (HELLO option OPEN)")]
    OpenLengthNotNegotiated(u32),
    /// A DATA frame that does not continue its message exactly (§5.3).
    #[error("chunk at offset {got} of exchange {id}, expected offset {expected}")]
    Offset {
        /// The exchange.
        id: u32,
        /// The next offset in sequence.
        expected: u64,
        /// The offset received.
        got: u64,
    },
    /// A chunk past the announced total, or an END flag that disagrees with it (§5.3).
    #[error("chunk of exchange {id} disagrees with the total of {total} bytes")]
    Total {
        /// The exchange.
        id: u32,
        /// The total announced in its HEAD.
        total: u64,
    },
    /// The peer sent more payload than its credit allowed (§5.5).
    #[error("peer sent {received} payload bytes against a limit of {limit}")]
    FlowControl {
        /// Bytes received.
        received: u64,
        /// Limit granted.
        limit: u64,
    },
    /// The peer sends control traffic faster than it reads our answers.
    #[error("control frame queue overflow: the peer does not read")]
    ControlFlood,
    /// The peer cancelled more of its requests before they were answered than `Config::max_resets`
    /// allows per window (§8.5).
    #[error("peer cancelled {count} requests before their answer within {window:?} (Config::max_resets)")]
    Resets {
        /// Cancelled in the window so far.
        count: u32,
        /// The window.
        window: core::time::Duration,
    },
    /// The peer sent more frames needing no answer than `Config::max_noise` allows per window (§8.5).
    #[error("peer sent {count} frames needing no answer within {window:?} (Config::max_noise)")]
    Noise {
        /// Such frames in the window so far.
        count: u32,
        /// The window.
        window: core::time::Duration,
    },
    /// The peer's limits cannot work (for instance a frame too small for any header).
    #[error("unusable peer limit: {0}")]
    PeerLimits(&'static str),
    /// A frame of reliable delivery (SEQ or ACK) that was not negotiated (§16).
    #[error("frame type {0:#04x} without reliable delivery negotiated")]
    NotNegotiated(u8),
    /// A HEAD, DATA or CANCEL outside SEQ while reliable delivery is in use (§16).
    #[error("frame type {0:#04x} outside SEQ under reliable delivery")]
    Unsequenced(u8),
    /// An ACK for frames never sent (§16).
    #[error("ACK up to {next} while {sent} frames from {base} are unacknowledged")]
    BadAck {
        /// The ACK's next expected number.
        next: u8,
        /// Our oldest unacknowledged number.
        base: u8,
        /// How many we have sent from there.
        sent: u8,
    },
}

impl ProtocolError {
    /// The GOAWAY code announcing this error to the peer.
    pub fn goaway_code(&self) -> GoAwayCode {
        match self {
            ProtocolError::Version { .. } => GoAwayCode::VERSION,
            ProtocolError::Fingerprint { .. } => GoAwayCode::FINGERPRINT,
            ProtocolError::Codec { .. } => GoAwayCode::CODEC,
            ProtocolError::FlowControl { .. } => GoAwayCode::FLOW_CONTROL,
            ProtocolError::Resets { .. } | ProtocolError::Noise { .. } => GoAwayCode::ABUSE,
            ProtocolError::ControlFlood | ProtocolError::Frame(FrameError::TooLarge { .. }) => GoAwayCode::LIMIT,
            _ => GoAwayCode::PROTOCOL,
        }
    }
}

/// Why a message could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed.
    #[error("session is closed")]
    Closed,
    /// The payload exceeds the peer's `max_message`.
    #[error("message of {len} bytes exceeds the peer's limit of {max} bytes")]
    TooLarge {
        /// Payload length.
        len: u64,
        /// The peer's limit.
        max: u64,
    },
    /// No request with this id awaits an answer.
    #[error("no request {0} awaits a response")]
    UnknownExchange(u32),
    /// An open-length body ([`Body::Open`](super::Body::Open)) to a peer that did not offer them
    /// (docs/PROTOCOL.md §5.1, §5.2).
    #[error("the peer did not offer open-length messages (HELLO option OPEN)")]
    OpenLengthNotOffered,
}

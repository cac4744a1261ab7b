use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::codec::CodecError;
use crate::frame::CancelReason;
use crate::session::{CloseReason, Millis};

/// Category of a failed call, carried in the ERROR message's first two bytes (docs/PROTOCOL.md §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The handler returned an error.
    pub const HANDLER: Self = Self(0);
    /// No route matched and there is no default handler.
    pub const NOT_FOUND: Self = Self(1);
    /// The request's payload could not be decoded.
    pub const BAD_REQUEST: Self = Self(2);
    /// The handler panicked or failed unexpectedly.
    pub const INTERNAL: Self = Self(3);
    /// The endpoint is shutting down or over a limit.
    pub const UNAVAILABLE: Self = Self(4);
    /// The handler ran out of time.
    pub const TIMEOUT: Self = Self(5);
    /// The answer exceeds the requester's `max_message`, or the request its route's decode limit;
    /// the message names both sizes (§8.1, §8.4).
    pub const TOO_LARGE: Self = Self(6);
    /// A resumed upload's offset does not match what the receiver holds under its token; the
    /// message says what it holds (§17.3).
    pub const RESUME: Self = Self(7);
}

/// What a handler returns when it fails; sent to the caller as an ERROR message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} (code {})", code.0)]
pub struct HandlerError {
    /// Category.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

impl HandlerError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// A handler failure.
    pub fn handler(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::HANDLER, message)
    }

    /// A request that could not be understood.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BAD_REQUEST, message)
    }

    pub(crate) fn from_box(err: tower::BoxError) -> Self {
        if err.is::<tower::timeout::error::Elapsed>() {
            return Self::new(ErrorCode::TIMEOUT, "handler timed out");
        }
        match err.downcast::<HandlerError>() {
            Ok(err) => *err,
            Err(other) => Self::new(ErrorCode::INTERNAL, other.to_string()),
        }
    }

    /// The ERROR payload: code (u16 little endian) then the UTF-8 message (§15).
    pub(crate) fn to_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.message.len());
        out.extend_from_slice(&self.code.0.to_le_bytes());
        out.extend_from_slice(self.message.as_bytes());
        out
    }

    pub(crate) fn from_payload(bytes: &[u8]) -> Self {
        match bytes {
            [a, b, rest @ ..] => Self::new(ErrorCode(u16::from_le_bytes([*a, *b])), String::from_utf8_lossy(rest)),
            _ => Self::new(ErrorCode::INTERNAL, "malformed error payload"),
        }
    }
}

impl From<CodecError> for HandlerError {
    fn from(err: CodecError) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<std::io::Error> for HandlerError {
    fn from(err: std::io::Error) -> Self {
        Self::new(ErrorCode::INTERNAL, err.to_string())
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CallError {
    /// The peer does not serve this typed method, or serves it with another layout (its METHODS
    /// table, docs/PROTOCOL.md §5.1, §15): nothing was sent, and the connection stays up.
    #[error(
        "{method} is incompatible with the peer: {}",
        match theirs { Some(theirs) => format!("it has another layout (ours {ours:#018x}, the peer's {theirs:#018x})"), None => "the peer does not serve it".to_owned() }
    )]
    Incompatible {
        /// The method's route name, e.g. `/users/get`.
        method: String,
        /// Our layout hash of the method.
        ours: u64,
        /// The peer's, or `None` when the peer does not serve the method.
        theirs: Option<u64>,
    },
    /// A typed call's or event's encoded arguments exceed the codec's decode limit
    /// ([`codec::DECODE_LIMIT`](crate::codec::DECODE_LIMIT)), which the receiver would refuse
    /// (docs/PROTOCOL.md §8.4): nothing was sent. Large payloads go in a streaming route.
    #[error("arguments of {method} are {size} bytes, over the decode limit of {limit} bytes: nothing was sent")]
    TooLarge {
        /// The method's route name, e.g. `/fw/flash`.
        method: String,
        /// The encoded arguments' size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The peer's handler failed, or no route matched.
    #[error("remote error: {0}")]
    Remote(HandlerError),
    /// The exchange was cancelled, by the peer or because it could not be delivered.
    #[error("call cancelled ({})", cancel_text(*.0))]
    Cancelled(CancelReason),
    /// No reply within the call's timeout ([`CallOptions::timeout`](crate::CallOptions::timeout),
    /// or a typed method's `timeout_ms`); the exchange was cancelled on both sides.
    #[error("call to {route} timed out after {} (the call's timeout)", Millis(*after))]
    TimedOut {
        /// The route called: its name, or `route 0x…` for a bare route id.
        route: Arc<str>,
        /// How long the call waited.
        after: Duration,
    },
    /// No reply from a Python Netcore 0.1.3 peer within the call's timeout (docs/COMPAT.md §4):
    /// it sends no error replies, so an unknown route, a failing handler and a handler that
    /// returned no `Response` all end like this.
    #[error(
        "no answer to {route} from the Python peer within {} (Python netcore 0.1.3 sends no error replies: \
         an unknown route, a failing handler or one that returned no Response look the same)",
        Millis(*after)
    )]
    NoAnswerFromPython {
        /// The route called.
        route: Arc<str>,
        /// How long the call waited.
        after: Duration,
    },
    /// A Python Netcore 0.1.3 peer never delivers an empty payload (docs/COMPAT.md §5, D7): the
    /// call was not sent.
    #[error("not sent to {route}: the Python peer never delivers an empty payload (send at least one byte)")]
    EmptyForPython {
        /// The route called.
        route: Arc<str>,
    },
    /// The connection closed before the reply arrived.
    #[error("disconnected: {0}")]
    Disconnected(CloseReason),
    /// The request could not be queued (too large for the peer, for instance).
    #[error("cannot send: {0}")]
    Send(#[from] crate::session::SendError),
    /// The reply could not be decoded, or the request encoded.
    #[error("codec: {0}")]
    Codec(String),
    /// The reply was stored in a file that could not be read.
    #[error("i/o: {0}")]
    Io(String),
    /// A resumable upload ([`Connection::upload`](crate::Connection::upload)) was cut short: the
    /// link closed or the exchange was cancelled. The receiver keeps what it received under
    /// `token` (docs/PROTOCOL.md §17); uploading the same [`Resumable`](super::Resumable) again,
    /// on this link or a new one, sends only the rest.
    #[error(
        "upload {token} interrupted after {sent} of {total} bytes ({cause}); the receiver held at least {confirmed}: \
         upload the same Resumable again to send the rest"
    )]
    Interrupted {
        /// The upload's resume token.
        token: super::ResumeToken,
        /// The offset the receiver confirmed before this attempt: it holds at least this much
        /// (the next attempt asks it for the exact figure).
        confirmed: u64,
        /// Bytes of the body handed to the transport, from its start: at most what it holds.
        sent: u64,
        /// The body's whole length.
        total: u64,
        /// What cut it: [`CallError::Disconnected`] or [`CallError::Cancelled`].
        cause: Box<CallError>,
    },
    /// A resumable download ([`Connection::download`](crate::Connection::download)) was cut
    /// short: the link closed, the exchange was cancelled or timed out. The writer holds the body
    /// up to `received`; downloading again from that offset, on this link or a new one, gets the
    /// rest (docs/PROTOCOL.md §17.6).
    #[error("download interrupted at offset {received} ({cause}): download again from offset {received} for the rest")]
    DownloadInterrupted {
        /// The offset reached: bytes of the body written, from its start.
        received: u64,
        /// The body's whole length, once an answer announced it.
        total: Option<u64>,
        /// What cut it: [`CallError::Disconnected`], [`CallError::Cancelled`] or
        /// [`CallError::TimedOut`].
        cause: Box<CallError>,
    },
}

impl CallError {
    /// Whether the connection is gone (a deadline of the link's, such as keepalive, included).
    pub fn is_disconnected(&self) -> bool {
        match self {
            CallError::Interrupted { cause, .. } | CallError::DownloadInterrupted { cause, .. } => {
                cause.is_disconnected()
            }
            _ => matches!(self, CallError::Disconnected(_)),
        }
    }

    /// The token to resume an interrupted upload with ([`CallError::Interrupted`]).
    pub fn resume_token(&self) -> Option<super::ResumeToken> {
        match self {
            CallError::Interrupted { token, .. } => Some(*token),
            _ => None,
        }
    }

    /// Whether the call's own timeout expired ([`CallError::TimedOut`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, CallError::TimedOut { .. } | CallError::NoAnswerFromPython { .. })
    }
}

/// `reason 7: the receiver's spill budget for large messages is full`.
fn cancel_text(reason: CancelReason) -> String {
    match reason.describe() {
        Some(text) => format!("reason {}: {text}", reason.0),
        None => format!("reason {}", reason.0),
    }
}

impl From<CodecError> for CallError {
    fn from(err: CodecError) -> Self {
        CallError::Codec(err.to_string())
    }
}

/// An endpoint could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two routes have the same name.
    #[error("route {0:?} is registered twice")]
    DuplicateRoute(String),
    /// Two route names hash to the same route id (docs/PROTOCOL.md §5.2); rename one.
    #[error("routes {0:?} and {1:?} have the same route id {2:#010x}; rename one")]
    RouteIdCollision(String, String, u32),
    /// A setting names a route that is not registered.
    #[error("no route {0:?} is registered")]
    UnknownRoute(String),
}

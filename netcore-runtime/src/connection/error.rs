use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::codec::CodecError;
use crate::frame::CancelReason;
use crate::session::{CloseReason, Millis};

/// Category of a failed call, carried in the ERROR message's first two bytes (docs/PROTOCOL.md §15).
///
/// Displayed by its name (`NOT_FOUND`), or as `code 42` for a code §15 does not define.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
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

    /// The code's name in docs/PROTOCOL.md §15 (`NOT_FOUND`), or `None` for a code it does not define.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::HANDLER => "HANDLER",
            Self::NOT_FOUND => "NOT_FOUND",
            Self::BAD_REQUEST => "BAD_REQUEST",
            Self::INTERNAL => "INTERNAL",
            Self::UNAVAILABLE => "UNAVAILABLE",
            Self::TIMEOUT => "TIMEOUT",
            Self::TOO_LARGE => "TOO_LARGE",
            Self::RESUME => "RESUME",
            _ => return None,
        })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "code {}", self.0),
        }
    }
}

/// `ErrorCode::NOT_FOUND`, or `ErrorCode(42)` for a code §15 does not define.
impl std::fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "ErrorCode::{name}"),
            None => write!(f, "ErrorCode({})", self.0),
        }
    }
}

/// What a handler returns when it fails; sent to the caller as an ERROR message. Build one with
/// [`HandlerError::new`] or its shorthands: more detail may be added.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
#[error("{code}: {message}")]
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
    /// The reply could not be decoded, or the request encoded; the codec's error is the source.
    #[error("codec: {0}")]
    Codec(#[source] ErrorSource),
    /// A body or a stored reply could not be read, or a download written; the
    /// [`std::io::Error`] is the source.
    #[error("i/o: {0}")]
    Io(#[source] ErrorSource),
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
        CallError::Codec(ErrorSource::new(err))
    }
}

/// The error underneath a [`CallError::Codec`] or [`CallError::Io`], shared so that the call
/// error stays `Clone`. It displays as that error (with any context first), and
/// [`source`](std::error::Error::source) goes on down its chain; [`get_ref`](Self::get_ref)
/// and [`downcast_ref`](Self::downcast_ref) reach the error itself (a [`CodecError`], an
/// [`std::io::Error`], …). Two are equal when their messages are.
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl ErrorSource {
    pub(crate) fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(err))
    }

    /// `err`, displayed after `context`: `cannot read the body: permission denied`.
    pub(crate) fn context(context: impl Into<String>, err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::new(Context { context: context.into(), source: Box::new(err) })
    }

    /// A cause with no error underneath, only what was wrong.
    pub(crate) fn message(message: impl Into<String>) -> Self {
        Self::new(Context { context: message.into(), source: Box::new(NoSource) })
    }

    /// The underlying error (the context's error when there is a context).
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match self.0.downcast_ref::<Context>() {
            Some(context) => &*context.source,
            None => &*self.0,
        }
    }

    /// The underlying error as a `T`, if it is one.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.get_ref().downcast_ref::<T>()
    }
}

impl std::fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ErrorSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The message already says what `self.0` says; the chain goes on below it.
        match self.0.downcast_ref::<Context>() {
            Some(context) if !context.source.is::<NoSource>() => Some(&*context.source),
            Some(_) => None,
            None => self.0.source(),
        }
    }
}

impl PartialEq for ErrorSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for ErrorSource {}

/// An error with what was being done when it happened.
#[derive(Debug)]
struct Context {
    context: String,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.source.is::<NoSource>() {
            f.write_str(&self.context)
        } else {
            write!(f, "{}: {}", self.context, self.source)
        }
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The error below a [`ErrorSource::message`]: none.
#[derive(Debug, Error)]
#[error("")]
struct NoSource;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn call_errors_keep_their_source() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let err = CallError::Io(ErrorSource::context("cannot read the body", io));
        assert_eq!(err.to_string(), "i/o: cannot read the body: permission denied");
        let source = err.source().expect("a source");
        assert_eq!(source.to_string(), "cannot read the body: permission denied");
        let io = source.source().and_then(|e| e.downcast_ref::<std::io::Error>()).expect("the io::Error below");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
        let CallError::Io(cause) = &err else { unreachable!() };
        assert_eq!(
            cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::PermissionDenied)
        );
        assert_eq!(err.clone(), err);

        let codec = CallError::from(CodecError::Trailing(3));
        assert_eq!(codec.to_string(), "codec: decode: 3 trailing bytes after the value");
        let CallError::Codec(cause) = &codec else { unreachable!() };
        assert!(matches!(cause.downcast_ref::<CodecError>(), Some(CodecError::Trailing(3))));

        let message = CallError::Codec(ErrorSource::message("/dl answered an empty window"));
        assert_eq!(message.to_string(), "codec: /dl answered an empty window");
        assert!(message.source().and_then(|s| s.source()).is_none(), "nothing below a message");
    }

    #[test]
    fn codes_are_printed_by_name() {
        assert_eq!(ErrorCode::NOT_FOUND.to_string(), "NOT_FOUND");
        assert_eq!(ErrorCode(42).to_string(), "code 42");
        assert_eq!(format!("{:?}", ErrorCode::BAD_REQUEST), "ErrorCode::BAD_REQUEST");
        assert_eq!(format!("{:?}", ErrorCode(42)), "ErrorCode(42)");
        let err = CallError::Remote(HandlerError::new(ErrorCode::BAD_REQUEST, "payload is not UTF-8"));
        assert_eq!(err.to_string(), "remote error: BAD_REQUEST: payload is not UTF-8");
        for code in 0..8 {
            assert!(ErrorCode(code).name().is_some(), "every code of §15 has a name: {code}");
        }
    }

    #[test]
    fn goaway_codes_are_printed_by_name() {
        use crate::frame::GoAwayCode;
        let reason = CloseReason::Peer { code: GoAwayCode::LIMIT, message: "too many connections".into() };
        assert_eq!(reason.to_string(), "peer closed (LIMIT): too many connections");
        assert_eq!(GoAwayCode(200).to_string(), "code 200");
    }
}

#[allow(unused_imports)]
use crate::prelude::*;

use core::fmt;
use core::time::Duration;
#[cfg(feature = "std")]
use std::io::Read;

use bytes::Bytes;
#[cfg(feature = "tokio")]
use tempfile::NamedTempFile;

use super::{Keepalive, ProtocolError};
use crate::frame::{CancelReason, GoAwayCode, Hello, Kind, Priority, Route};

/// Local handle of a message this side sends. Never on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub(crate) u64);

/// An exchange as the application sees it (docs/PROTOCOL.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Exchange {
    /// Opened by us: the request or one-way message we sent with this handle.
    Ours(MessageId),
    /// Opened by the peer with this exchange id; answer a request with
    /// [`Session::respond`](super::Session::respond).
    Theirs(u32),
}

/// A received message's payload.
#[derive(Debug)]
pub enum Payload {
    /// Reassembled in memory.
    Memory(Bytes),
    /// Stored in a temporary file, which is deleted when this value is dropped unless persisted:
    /// what the tokio driver's storage makes of a [`Payload::Stored`] (the session itself never
    /// creates one).
    #[cfg(feature = "tokio")]
    File(NamedTempFile),
    /// Handed to the caller's storage as it arrived ([`StoreOp`](super::StoreOp)s from
    /// [`Session::poll_store`](super::Session::poll_store)): the session holds none of it. A
    /// driver replaces it with what it stored (`Payload::File`) before the application sees it.
    Stored {
        /// The payload's length.
        total: u64,
    },
    /// Delivered as it arrives, in [`Event::Chunk`]s that follow this message's event (see
    /// [`Session::stream_when`](super::Session::stream_when) and
    /// [`SendOptions::stream_answer`]); `total` bytes are announced.
    Streamed {
        /// The payload's length as the sender announced it;
        /// [`OPEN_TOTAL`](crate::frame::OPEN_TOTAL) for an open-length message, which ends with
        /// the chunk that has `end` set.
        total: u64,
    },
}

#[cfg(feature = "std")]
impl Payload {
    /// The payload's bytes: copied from memory, or read back from the file.
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Payload::Memory(bytes) => Ok(bytes.to_vec()),
            #[cfg(feature = "tokio")]
            Payload::File(file) => std::fs::read(file.path()),
            Payload::Stored { .. } => Err(stored_error()),
            Payload::Streamed { .. } => Err(streamed_error()),
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> std::io::Result<u64> {
        match self {
            Payload::Memory(bytes) => Ok(bytes.len() as u64),
            #[cfg(feature = "tokio")]
            Payload::File(file) => Ok(file.as_file().metadata()?.len()),
            Payload::Stored { total } | Payload::Streamed { total } => Ok(*total),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        self.len().map(|len| len == 0)
    }
}

/// The error of reading a streamed payload as a whole.
#[cfg(feature = "std")]
fn streamed_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Unsupported, "the payload is streamed: read it chunk by chunk")
}

/// The error of reading a payload the caller's storage holds.
#[cfg(feature = "std")]
fn stored_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Unsupported, "the payload is in the caller's storage (Payload::Stored)")
}

/// A message from the peer: complete, or the start of a streamed one ([`Payload::Streamed`]).
#[derive(Debug)]
pub struct Incoming {
    /// The exchange it belongs to: [`Exchange::Theirs`] for requests and one-way messages,
    /// [`Exchange::Ours`] for the answer to one of our requests.
    pub exchange: Exchange,
    /// What it is.
    pub kind: Kind,
    /// Its route, for requests and one-way messages.
    pub route: Option<Route>,
    /// The sender's priority for it.
    pub priority: Priority,
    /// Metadata for the endpoint layer.
    pub meta: Option<Bytes>,
    /// The payload.
    pub payload: Payload,
}

/// Bytes moved of a message so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes sent or received.
    pub done: u64,
    /// The message's length; [`OPEN_TOTAL`](crate::frame::OPEN_TOTAL) while an open-length
    /// message's end is not known.
    pub total: u64,
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`Session::close`](super::Session::close) was called.
    Local,
    /// The peer sent GOAWAY.
    Peer {
        /// Its code.
        code: GoAwayCode,
        /// Its text.
        message: String,
    },
    /// The peer broke the protocol; a GOAWAY was sent.
    Protocol(ProtocolError),
    /// A deadline passed: the handshake's, keepalive's, or reliable delivery's give-up; a GOAWAY
    /// TIMEOUT was sent.
    TimedOut {
        /// Which limit fired.
        deadline: Deadline,
        /// How long the session waited before it gave up.
        after: Duration,
    },
    /// The transport ended ([`Session::handle_eof`](super::Session::handle_eof)).
    Disconnected,
    /// The peer restarted: a HELLO with a new nonce arrived on the live lossy link (§9). No
    /// GOAWAY was sent (the peer that would read it is the new one); a new session answering
    /// that HELLO is [`Session::successor`](super::Session::successor).
    PeerRestarted,
}

impl CloseReason {
    /// Whether a deadline closed the session ([`CloseReason::TimedOut`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, CloseReason::TimedOut { .. })
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Peer { code, message } => write!(f, "peer closed ({code}): {message}"),
            CloseReason::Protocol(err) => write!(f, "protocol error: {err}"),
            CloseReason::TimedOut { deadline, after } => deadline.describe(*after, f),
            CloseReason::Disconnected => f.write_str("transport disconnected"),
            CloseReason::PeerRestarted => f.write_str("peer restarted"),
        }
    }
}

/// The limit behind a [`CloseReason::TimedOut`] (docs/PROTOCOL.md §9, §10, §16.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deadline {
    /// No HELLO from the peer within [`Config::handshake_timeout`](super::Config::handshake_timeout).
    Handshake,
    /// Nothing heard from the peer for `(max_missed + 1) × interval` of this keepalive.
    Keepalive(Keepalive),
    /// A sequenced frame went unacknowledged for [`Reliability::give_up`](super::Reliability::give_up).
    GiveUp,
    /// A frame started arriving and was not complete within
    /// [`Config::frame_timeout`](super::Config::frame_timeout) (stream framing).
    Frame,
}

impl Deadline {
    /// What passed, for the close reason and the GOAWAY's text alike.
    fn describe(&self, after: Duration, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let after = Millis(after);
        match self {
            Deadline::Handshake => {
                write!(f, "handshake timed out: no HELLO from the peer within {after} (Config::handshake_timeout)")
            }
            Deadline::Keepalive(k) => write!(
                f,
                "peer silent for {after}: keepalive deadline ({} interval × {} missed + 1)",
                Millis(k.interval),
                k.max_missed
            ),
            Deadline::GiveUp => {
                write!(f, "a frame unacknowledged for {after}: reliable-delivery give-up (Reliability::give_up)")
            }
            Deadline::Frame => {
                write!(f, "a frame still incomplete after {after}: frame deadline (Config::frame_timeout)")
            }
        }
    }
}

/// A duration as people read it in an error message: `250 ms`, `4 s`, `1.5 s`.
pub(crate) struct Millis(pub(crate) Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "{} µs", self.0.as_micros()),
            1..=999 => write!(f, "{ms} ms"),
            _ if ms % 1000 == 0 => write!(f, "{} s", ms / 1000),
            _ => {
                let secs = format!("{}.{:03}", ms / 1000, ms % 1000);
                write!(f, "{} s", secs.trim_end_matches('0'))
            }
        }
    }
}

/// Something the application must learn about, in order, from [`Session::poll_event`](super::Session::poll_event).
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed; the peer's HELLO.
    Connected(Hello),
    /// A complete message, or the start of a streamed one ([`Payload::Streamed`]).
    Message(Incoming),
    /// The next piece of a streamed message's payload, in order. Its bytes hold flow-control
    /// credit until the application hands them back with
    /// [`Session::consumed`](super::Session::consumed). The last chunk has `end` set (and may be
    /// empty); a stream that stops without one was cancelled ([`Event::Cancelled`]) or the
    /// session closed.
    Chunk {
        /// The message's exchange.
        exchange: Exchange,
        /// The bytes.
        bytes: Bytes,
        /// Whether this is the last chunk.
        end: bool,
    },
    /// The last byte of an outgoing message was handed to the transport.
    Sent(MessageId),
    /// The peer's request `id` announces more than its route's limit
    /// ([`Session::limit_when`](super::Session::limit_when)); nothing of it was stored. Answer it
    /// with [`Session::respond`](super::Session::respond), typically an error naming the limit.
    Oversized {
        /// The peer's exchange id.
        id: u32,
        /// The route it was sent to.
        route: Route,
        /// Its announced total.
        total: u64,
        /// The route's limit.
        limit: u64,
        /// Its priority, for the answer.
        priority: Priority,
    },
    /// An exchange was abandoned, by the peer or because its message could not be delivered.
    Cancelled {
        /// Which.
        exchange: Exchange,
        /// Why.
        reason: CancelReason,
    },
    /// The session closed; every exchange still open failed.
    Closed(CloseReason),
}

/// A payload to send: bytes in memory, or a source of known length whose bytes the caller
/// supplies chunk by chunk when the session asks ([`Demand`](super::Demand)).
pub enum Body {
    /// Sent by slicing, without copying until the frame is encoded.
    Bytes(Bytes),
    /// Two parts in memory sent one after the other without joining them (a small header in
    /// front of a large payload): slices of either, and one chunk that spans both is copied.
    Chain(Bytes, Bytes),
    /// Read by the caller as chunks are scheduled (the session hands the reader over with a
    /// [`Demand::Reader`](super::Demand::Reader) and never reads it); never loaded whole.
    #[cfg(feature = "std")]
    Reader {
        /// The source.
        reader: Box<dyn Read + Send>,
        /// How many bytes it yields; fewer is an error that cancels the message.
        len: u64,
    },
    /// `len` bytes the caller supplies from a source of its own when asked
    /// ([`Demand::Read`](super::Demand::Read), [`Session::supply`](super::Session::supply)).
    Supplied {
        /// How many bytes the source yields; fewer is an error that cancels the message.
        len: u64,
    },
    /// A body of unknown length, sent as an open-length message (docs/PROTOCOL.md §5.2): the
    /// caller supplies its bytes as it has them, up to what each
    /// [`Demand::Read`](super::Demand::Read) asks, and ends it with
    /// [`Session::supply_end`](super::Session::supply_end). A source given here is handed back
    /// with [`Demand::Source`](super::Demand::Source) when the message is queued. Only to a peer
    /// that offered open-length messages ([`SendError::OpenLengthNotOffered`](super::SendError)).
    Open(Option<Box<dyn core::any::Any + Send>>),
}

#[cfg(feature = "std")]
impl Body {
    /// A body read from `reader`, which must yield exactly `len` bytes.
    pub fn reader(reader: impl Read + Send + 'static, len: u64) -> Self {
        Body::Reader { reader: Box::new(reader), len }
    }

    /// A body streamed from the file at `path`.
    pub fn file(path: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Body::reader(std::io::BufReader::with_capacity(64 * 1024, file), len))
    }
}

impl Body {
    /// An open-length body whose bytes the caller supplies from its own bookkeeping.
    pub fn open() -> Self {
        Body::Open(None)
    }

    /// An open-length body with its source, handed back in a [`Demand::Source`](super::Demand::Source).
    pub fn open_with(source: impl core::any::Any + Send) -> Self {
        Body::Open(Some(Box::new(source)))
    }

    /// Whether the body is open-length ([`Body::Open`]).
    pub fn is_open(&self) -> bool {
        matches!(self, Body::Open(_))
    }

    /// The payload length; 0 for an open-length body, whose length is not known.
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::Chain(head, rest) => (head.len() + rest.len()) as u64,
            #[cfg(feature = "std")]
            Body::Reader { len, .. } => *len,
            Body::Supplied { len } => *len,
            Body::Open(_) => 0,
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Bytes(bytes) => f.debug_tuple("Bytes").field(&bytes.len()).finish(),
            Body::Chain(head, rest) => f.debug_tuple("Chain").field(&head.len()).field(&rest.len()).finish(),
            #[cfg(feature = "std")]
            Body::Reader { len, .. } => f.debug_struct("Reader").field("len", len).finish_non_exhaustive(),
            Body::Supplied { len } => f.debug_struct("Supplied").field("len", len).finish(),
            Body::Open(source) => f.debug_struct("Open").field("source", &source.is_some()).finish(),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body::Bytes(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::Bytes(bytes.into())
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Body::Bytes(Bytes::from_static(bytes))
    }
}

/// Options of an outgoing message.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Scheduling class.
    pub priority: Priority,
    /// Metadata for the endpoint layer.
    pub meta: Option<Bytes>,
    /// For a request: deliver its answer streamed, as an [`Event::Message`] with
    /// [`Payload::Streamed`] and then [`Event::Chunk`]s whose credit goes back with
    /// [`Session::consumed`](super::Session::consumed), as for streamed requests (a local
    /// choice, nothing on the wire; an ERROR answer still arrives whole). Ignored otherwise.
    pub stream_answer: bool,
}

impl SendOptions {
    /// Options with this priority.
    pub fn priority(priority: Priority) -> Self {
        Self { priority, ..Self::default() }
    }

    /// With this metadata.
    pub fn with_meta(mut self, meta: Option<Bytes>) -> Self {
        self.meta = meta;
        self
    }

    /// With the answer streamed ([`SendOptions::stream_answer`]), or not.
    pub fn with_stream_answer(mut self, stream: bool) -> Self {
        self.stream_answer = stream;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        for (duration, text) in [
            (Duration::from_micros(300), "300 µs"),
            (Duration::from_millis(250), "250 ms"),
            (Duration::from_secs(4), "4 s"),
            (Duration::from_millis(1500), "1.5 s"),
            (Duration::from_millis(10_002), "10.002 s"),
        ] {
            assert_eq!(Millis(duration).to_string(), text);
        }
    }
}

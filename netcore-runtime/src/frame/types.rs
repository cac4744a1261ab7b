#[allow(unused_imports)]
use crate::prelude::*;

use alloc::sync::Arc;

use bytes::Bytes;

/// A frame's type byte (§3.1). Types with the high bit set are extensions a receiver may ignore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameType(pub u8);

impl FrameType {
    /// Handshake: magic, versions, schema fingerprint and limits (§5.1).
    pub const HELLO: Self = Self(0x01);
    /// First frame of a message: kind, route, total length and the first payload bytes (§5.2).
    pub const HEAD: Self = Self(0x02);
    /// A further chunk of a message's payload at an offset (§5.3).
    pub const DATA: Self = Self(0x03);
    /// Abandons an exchange in both directions (§5.4).
    pub const CANCEL: Self = Self(0x04);
    /// Raises the sender's flow-control limit (§5.5).
    pub const CREDIT: Self = Self(0x05);
    /// Liveness probe (§5.6).
    pub const PING: Self = Self(0x06);
    /// Answer to a PING (§5.6).
    pub const PONG: Self = Self(0x07);
    /// The sender is closing the connection, with a code and a reason (§5.7).
    pub const GOAWAY: Self = Self(0x08);
    /// A HEAD, DATA or CANCEL with a sequence number, under reliable delivery (§16).
    pub const SEQ: Self = Self(0x09);
    /// Acknowledges SEQ frames: everything before a number, and a bitmap of those after (§16).
    pub const ACK: Self = Self(0x0a);

    /// Whether a receiver that does not know this type must skip it rather than fail (§3.1).
    pub const fn is_ignorable(self) -> bool {
        self.0 & 0x80 != 0
    }
}

/// Identifies an exchange (a message and, for requests, its response) on the wire (§6).
///
/// Each side numbers the exchanges it opens. The wire form is the varint `id << 1 | bit`, where
/// the bit is 0 when the frame's sender opened the exchange and 1 when its receiver did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xid {
    /// The opener's exchange number.
    pub id: u32,
    /// Whether the frame's receiver (rather than its sender) opened the exchange.
    pub opened_by_receiver: bool,
}

impl Xid {
    /// An exchange opened by the frame's sender.
    pub const fn sender(id: u32) -> Self {
        Self { id, opened_by_receiver: false }
    }

    /// An exchange opened by the frame's receiver.
    pub const fn receiver(id: u32) -> Self {
        Self { id, opened_by_receiver: true }
    }

    pub(crate) const fn to_wire(self) -> u64 {
        (self.id as u64) << 1 | self.opened_by_receiver as u64
    }

    pub(crate) fn from_wire(value: u64) -> Option<Self> {
        let id = u32::try_from(value >> 1).ok()?;
        Some(Self { id, opened_by_receiver: value & 1 == 1 })
    }
}

/// What a message is (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Asks for a response; opens an exchange.
    Request = 0,
    /// The successful answer to a request.
    Response = 1,
    /// The failed answer to a request; the payload describes the failure.
    Error = 2,
    /// A message that expects no answer; opens an exchange that ends with it.
    OneWay = 3,
}

impl Kind {
    /// Whether this kind opens an exchange (and so carries a route).
    pub const fn opens_exchange(self) -> bool {
        matches!(self, Kind::Request | Kind::OneWay)
    }

    const fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => Kind::Request,
            1 => Kind::Response,
            2 => Kind::Error,
            _ => Kind::OneWay,
        }
    }
}

/// Scheduling class of a message: 0 is the least urgent, 7 the most (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Priority(u8);

impl Priority {
    /// Bulk transfers that should yield to everything else.
    pub const LOW: Self = Self(1);
    /// The default.
    pub const NORMAL: Self = Self(3);
    /// Interactive calls.
    pub const HIGH: Self = Self(5);
    /// Commands that must overtake all other traffic.
    pub const CRITICAL: Self = Self(7);
    /// Number of classes.
    pub const LEVELS: usize = 8;

    /// A priority from 0 to 7; larger values are clamped to 7.
    pub const fn new(level: u8) -> Self {
        Self(if level > 7 { 7 } else { level })
    }

    /// The class, 0 to 7.
    pub const fn level(self) -> u8 {
        self.0
    }
}

impl From<u8> for Priority {
    /// [`Priority::new`]: larger values than 7 are clamped to 7.
    fn from(level: u8) -> Self {
        Self::new(level)
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

/// Where a request or one-way message goes (§5.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// A compact route id: [`route_id`] of the route's name.
    Id(u32),
    /// The route's name in full, for untyped routes.
    Name(String),
}

impl Route {
    /// The id this route is dispatched by: its own for [`Route::Id`], the hash of the name otherwise.
    pub fn id(&self) -> u32 {
        match self {
            Route::Id(id) => *id,
            Route::Name(name) => route_id(name),
        }
    }
}

/// A route by name: `conn.call("/echo", …)` and `conn.call_with("/echo", …)` take the same.
impl From<&str> for Route {
    fn from(name: &str) -> Self {
        Route::Name(name.to_owned())
    }
}

/// A route by name.
impl From<String> for Route {
    fn from(name: String) -> Self {
        Route::Name(name)
    }
}

/// A route by name.
impl From<&String> for Route {
    fn from(name: &String) -> Self {
        Route::Name(name.clone())
    }
}

/// The compact id of a route name: 32-bit FNV-1a of its UTF-8 bytes (§5.2), defined in
/// `netcore-layout` so that the code generators share it without building this crate.
pub use netcore_layout::route_id;

/// HELLO: the first frame each side sends (§5.1). Build one with [`Hello::new`] and the `with_*`
/// methods: new options may add fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hello {
    /// Oldest protocol version the sender speaks.
    pub version_min: u8,
    /// Newest protocol version the sender speaks.
    pub version_max: u8,
    /// Hash of the sender's service declarations; 0 for an untyped endpoint.
    pub fingerprint: u64,
    /// What the sender accepts.
    pub limits: Limits,
    /// The receive window, in frames (1 to 128), with which the sender offers reliable delivery
    /// (§16); `None` when it does not. Sent as a HELLO option (§5.1).
    pub reliable: Option<u8>,
    /// The sender's session nonce (§5.1, §9): a random value drawn for each session, so that a HELLO
    /// with another nonce on a live link says the peer restarted. `None` for peers that send none.
    pub nonce: Option<u64>,
    /// The payload codec the sender's typed calls use (§5.1, §9, §14), sent as the CODEC option
    /// unless it is [`PayloadCodec::POSTCARD`], which a HELLO without the option announces.
    pub codec: PayloadCodec,
    /// The typed methods the sender serves, as (route id, method hash) pairs (§5.1, §15), sent as
    /// the METHODS option; at most [`MAX_METHODS`] entries. `None` when the sender sent no table
    /// (an old or untyped peer), or one this version ignored (too long or malformed): calls to such
    /// a peer are not checked before they are sent.
    pub methods: Option<Arc<[(u32, u64)]>>,
    /// Whether the sender accepts and sends open-length messages (§5.1 option OPEN, §5.2): in
    /// effect only when both HELLOs carry it.
    pub open: bool,
}

/// Most entries a HELLO's METHODS table carries (§5.1); a longer table is ignored.
pub const MAX_METHODS: usize = 1024;

impl Hello {
    /// A HELLO with no options (and so the postcard payload codec).
    pub fn new(version_min: u8, version_max: u8, fingerprint: u64, limits: Limits) -> Self {
        Self {
            version_min,
            version_max,
            fingerprint,
            limits,
            reliable: None,
            nonce: None,
            codec: PayloadCodec::POSTCARD,
            methods: None,
            open: false,
        }
    }

    /// The same HELLO announcing the methods table `methods` (route id, method hash).
    pub fn with_methods(mut self, methods: impl Into<Arc<[(u32, u64)]>>) -> Self {
        self.methods = Some(methods.into());
        self
    }

    /// The same HELLO announcing the payload codec `codec`.
    pub fn with_codec(mut self, codec: PayloadCodec) -> Self {
        self.codec = codec;
        self
    }

    /// The same HELLO carrying the session nonce `nonce`.
    pub fn with_nonce(mut self, nonce: u64) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// The same HELLO offering reliable delivery with a receive window of `window` frames.
    pub fn with_reliable(mut self, window: u8) -> Self {
        self.reliable = Some(window);
        self
    }
}

/// The payload codec a side's typed calls encode values with, announced in its HELLO's CODEC
/// option (§5.1, §14). Two sides with different codecs cannot understand each other's payloads,
/// so the handshake refuses the pair (§9). Unknown values are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadCodec(pub u8);

impl PayloadCodec {
    /// postcard 1.x (§14), the default: a HELLO without the CODEC option announces it.
    pub const POSTCARD: Self = Self(0);
    /// bincode 2 in serde mode (§14.2), with the netcore `bincode` cargo feature.
    pub const BINCODE: Self = Self(1);
    /// The codec this build's `netcore::codec` uses: bincode with the `bincode` feature, else postcard.
    pub const COMPILED: Self = if cfg!(feature = "bincode") { Self::BINCODE } else { Self::POSTCARD };

    /// Its name, for error messages: `postcard`, `bincode`, or `codec N` for one this version does not know.
    pub fn name(self) -> alloc::borrow::Cow<'static, str> {
        match self {
            Self::POSTCARD => "postcard".into(),
            Self::BINCODE => "bincode".into(),
            Self(other) => format!("codec {other}").into(),
        }
    }
}

/// What a receiver accepts, announced in its HELLO (§8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body, CRC included.
    pub max_frame: u32,
    /// Largest message payload.
    pub max_message: u64,
    /// Largest payload kept in memory while it arrives; larger ones go to storage (§8.2).
    pub inline_limit: u64,
    /// Flow-control window in payload bytes; 0 means the receiver does not use credit (§5.5).
    pub window: u64,
    /// Most messages the receiver reassembles at once.
    pub max_in_flight: u32,
}

impl Default for Limits {
    fn default() -> Self {
        // The window bounds how much bulk data can queue ahead of an urgent message (§7): 512 KiB is
        // about 0.25 ms at loopback speed and costs no bulk throughput (benches/compare.rs).
        Self {
            max_frame: 64 * 1024,
            max_message: 1 << 30,
            inline_limit: 256 << 10,
            window: 512 << 10,
            max_in_flight: 64,
        }
    }
}

/// HEAD: opens a message and carries its first payload bytes (§5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The exchange this message belongs to.
    pub xid: Xid,
    /// What the message is.
    pub kind: Kind,
    /// Its scheduling class.
    pub priority: Priority,
    /// Its destination; present exactly for kinds that open an exchange.
    pub route: Option<Route>,
    /// Metadata for the endpoint layer, opaque to the core.
    pub meta: Option<Bytes>,
    /// Length of the whole payload; [`OPEN_TOTAL`] for an open-length message (§5.2), whose
    /// length is not known when it starts (total 0 without END on the wire).
    pub total: u64,
    /// The first payload bytes; when they are the whole payload the message is complete.
    pub payload: Bytes,
}

/// The [`Head::total`] of an open-length message (§5.2): sent as a total of 0 without END. No
/// message can be this long, so a HEAD announcing 2^64−1 bytes is malformed.
pub const OPEN_TOTAL: u64 = u64::MAX;

impl Head {
    /// Whether this frame carries the whole message.
    pub fn is_complete(&self) -> bool {
        self.total != OPEN_TOTAL && self.payload.len() as u64 == self.total
    }

    /// Whether this is the HEAD of an open-length message (§5.2): its end is the first DATA
    /// with END.
    pub fn is_open(&self) -> bool {
        self.total == OPEN_TOTAL
    }
}

/// DATA: a further chunk of a message's payload (§5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The exchange the message belongs to.
    pub xid: Xid,
    /// Position of the first byte of `payload` in the message's payload.
    pub offset: u64,
    /// Set on the chunk that ends the message.
    pub end: bool,
    /// The bytes; never empty.
    pub payload: Bytes,
}

/// Why an exchange was cancelled (§5.4). Unknown codes are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelReason(pub u8);

impl CancelReason {
    /// The application gave up (a dropped call, an explicit cancel).
    pub const CANCELLED: Self = Self(0);
    /// A deadline passed.
    pub const TIMED_OUT: Self = Self(1);
    /// The message exceeds the receiver's limits.
    pub const TOO_LARGE: Self = Self(2);
    /// Part of the message was lost or damaged in transit.
    pub const DAMAGED: Self = Self(3);
    /// The receiver had too many messages in flight.
    pub const REFUSED: Self = Self(4);
    /// The receiver is shutting down and takes no new exchanges.
    pub const SHUTTING_DOWN: Self = Self(5);
    /// The payload could not be read (sender) or stored (receiver).
    pub const IO: Self = Self(6);
    /// The receiver's storage budget for large messages is full (§8.4).
    pub const STORAGE_FULL: Self = Self(7);

    /// What the reason means, for error messages; `None` for a code this version does not know.
    pub fn describe(self) -> Option<&'static str> {
        Some(match self {
            Self::CANCELLED => "cancelled",
            Self::TIMED_OUT => "timed out",
            Self::TOO_LARGE => "the message exceeds the receiver's limits",
            Self::DAMAGED => "the message was damaged in transit",
            Self::REFUSED => "the receiver had too many messages in flight",
            Self::SHUTTING_DOWN => "the receiver is shutting down",
            Self::IO => "the payload could not be read or stored",
            Self::STORAGE_FULL => "the receiver's spill budget for large messages is full",
            _ => return None,
        })
    }
}

/// Why a connection is being closed (§5.7). Unknown codes are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoAwayCode(pub u8);

impl GoAwayCode {
    /// Orderly shutdown.
    pub const NORMAL: Self = Self(0);
    /// The peer broke a rule of the protocol.
    pub const PROTOCOL: Self = Self(1);
    /// No protocol version in common.
    pub const VERSION: Self = Self(2);
    /// Different service declarations on the two sides.
    pub const FINGERPRINT: Self = Self(3);
    /// The peer exceeded a limit it was told about.
    pub const LIMIT: Self = Self(4);
    /// The peer sent more than its flow-control credit.
    pub const FLOW_CONTROL: Self = Self(5);
    /// No traffic within the keepalive deadline.
    pub const TIMEOUT: Self = Self(6);
    /// The peer sent work that does nothing faster than this side's budget for it (§8.5):
    /// requests it cancelled before they were answered, or frames that need no answer.
    pub const ABUSE: Self = Self(7);
    /// The two sides encode typed payloads with different codecs (§9, §14).
    pub const CODEC: Self = Self(8);

    /// The code's name in docs/PROTOCOL.md §5.7 (`LIMIT`), or `None` for a code it does not define.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NORMAL => "NORMAL",
            Self::PROTOCOL => "PROTOCOL",
            Self::VERSION => "VERSION",
            Self::FINGERPRINT => "FINGERPRINT",
            Self::LIMIT => "LIMIT",
            Self::FLOW_CONTROL => "FLOW_CONTROL",
            Self::TIMEOUT => "TIMEOUT",
            Self::ABUSE => "ABUSE",
            Self::CODEC => "CODEC",
            _ => return None,
        })
    }
}

/// The name (`LIMIT`), or `code 42` for a code §5.7 does not define.
impl core::fmt::Display for GoAwayCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "code {}", self.0),
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// §5.1
    Hello(Hello),
    /// §5.2
    Head(Head),
    /// §5.3
    Data(Data),
    /// §5.4
    Cancel {
        /// The exchange to abandon.
        xid: Xid,
        /// Why.
        reason: CancelReason,
    },
    /// §5.5
    Credit {
        /// Total payload bytes the receiver of this frame may have sent, from the start.
        limit: u64,
    },
    /// §5.6
    Ping {
        /// Echoed in the PONG.
        nonce: u64,
    },
    /// §5.6
    Pong {
        /// The PING's nonce.
        nonce: u64,
    },
    /// §5.7
    GoAway {
        /// Why.
        code: GoAwayCode,
        /// Human-readable detail.
        message: String,
    },
    /// §16: a HEAD, DATA or CANCEL numbered for reliable delivery.
    Seq {
        /// Its sequence number.
        seq: u8,
        /// The frame carried: a [`Frame::Head`], [`Frame::Data`] or [`Frame::Cancel`].
        frame: Box<Frame>,
    },
    /// §16: acknowledges SEQ frames.
    Ack {
        /// Every sequence number before this one was received (modulo 256), and this one was not.
        next: u8,
        /// Bit `i` set: sequence number `next + 1 + i` was received.
        received: u128,
    },
    /// A frame of an ignorable extension type (§3.1), kept for inspection.
    Extension {
        /// Its type byte.
        ty: FrameType,
        /// Its fields, CRC excluded.
        body: Bytes,
    },
}

impl Frame {
    /// The type byte this frame is encoded with.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::HELLO,
            Frame::Head(_) => FrameType::HEAD,
            Frame::Data(_) => FrameType::DATA,
            Frame::Cancel { .. } => FrameType::CANCEL,
            Frame::Credit { .. } => FrameType::CREDIT,
            Frame::Ping { .. } => FrameType::PING,
            Frame::Pong { .. } => FrameType::PONG,
            Frame::GoAway { .. } => FrameType::GOAWAY,
            Frame::Seq { .. } => FrameType::SEQ,
            Frame::Ack { .. } => FrameType::ACK,
            Frame::Extension { ty, .. } => *ty,
        }
    }
}

pub(super) const HEAD_END: u8 = 0x01;
pub(super) const HEAD_ROUTE_NAME: u8 = 0x02;
pub(super) const HEAD_META: u8 = 0x04;
pub(super) const HEAD_KIND_SHIFT: u8 = 3;
pub(super) const HEAD_PRIORITY_SHIFT: u8 = 5;
pub(super) const DATA_END: u8 = 0x01;
pub(super) const HELLO_MAGIC: [u8; 2] = *b"NC";
/// HELLO option tag: reliable delivery offered, with its receive window (§5.1, §16).
pub(super) const HELLO_OPTION_RELIABLE: u8 = 0x01;
/// HELLO option tag: the sender's session nonce, `u64le` (§5.1, §9).
pub(super) const HELLO_OPTION_NONCE: u8 = 0x02;
/// HELLO option tag: the sender's payload codec, `u8` (§5.1, §14); absent means postcard.
pub(super) const HELLO_OPTION_CODEC: u8 = 0x03;
/// HELLO option: the typed methods the sender serves (§5.1, §15).
pub(super) const HELLO_OPTION_METHODS: u8 = 0x04;
/// HELLO option: the sender accepts and sends open-length messages, empty value (§5.1, §5.2).
pub(super) const HELLO_OPTION_OPEN: u8 = 0x05;
/// The largest window of reliable delivery: half the 8-bit sequence space (§16).
pub const MAX_RELIABLE_WINDOW: u8 = 128;

pub(super) fn kind_from_flags(flags: u8) -> Kind {
    Kind::from_bits(flags >> HEAD_KIND_SHIFT)
}

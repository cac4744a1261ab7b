#[allow(unused_imports)]
use crate::prelude::*;

use core::time::Duration;
#[cfg(feature = "std")]
use std::path::PathBuf;

use super::SpillBudget;
use crate::frame::{Framing, Limits, PayloadCodec};

/// How a [`Session`](super::Session) behaves: its framing, what it accepts and how it sends.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// How frames are delimited on the link (docs/PROTOCOL.md §4).
    pub framing: Framing,
    /// Largest payload slice per HEAD or DATA frame; the peer's `max_frame` may lower it (§7).
    pub chunk_size: usize,
    /// What this side accepts, announced in its HELLO (§8).
    pub limits: Limits,
    /// Hash of the service declarations, checked strictly (§9): when both sides set one, any
    /// difference refuses the connection. 0 (the default) checks nothing at the handshake and
    /// leaves compatibility to the methods table.
    pub fingerprint: u64,
    /// The typed methods this side serves, as (route id, method hash) pairs, announced in the
    /// HELLO's METHODS option (docs/PROTOCOL.md §5.1, §15) so the peer's generated clients can
    /// check a method before calling it. The endpoint fills it from its typed routes; empty sends
    /// no table, and so does a table above [`MAX_METHODS`](crate::frame::MAX_METHODS) entries.
    pub methods: alloc::sync::Arc<[(u32, u64)]>,
    /// The payload codec announced in the HELLO (docs/PROTOCOL.md §5.1, §14); a peer announcing
    /// another is refused at the handshake. Default [`PayloadCodec::COMPILED`], the one
    /// `netcore::codec` uses in this build.
    pub codec: PayloadCodec,
    /// Liveness probing, which is also the idle timeout: a connection that carries no frame for
    /// `(max_missed + 1) × interval` closes with GOAWAY TIMEOUT (docs/PROTOCOL.md §10), while a
    /// live idle peer answers the PINGs and stays. Default on the stream framing 30 s × 3 (a dead
    /// or silent TCP peer is let go after 2 min; nothing on TCP expires by itself), on the lossy
    /// profile 1 s × 3. `None` disables it: then nothing ends a silent connection.
    pub keepalive: Option<Keepalive>,
    /// How long a partly received message may go without a new chunk before it is dropped,
    /// freeing its `max_in_flight` slot, memory and spill file, and the peer is told with CANCEL
    /// (DAMAGED on the lossy framing without reliable delivery, where its tail was lost;
    /// TIMED_OUT elsewhere). Default 30 s on the stream framing, 10 s on the lossy profile; under
    /// reliable delivery at least [`Reliability::give_up`]. The clock does not run while the
    /// peer may be waiting for credit we hold (§8.2). `None` keeps
    /// partial messages until the connection closes.
    pub stall_timeout: Option<Duration>,
    /// How long a frame may take to arrive once its first byte has (stream framing): a peer
    /// dribbling a 64 KiB frame a byte at a time holds its buffer and escapes keepalive, since no
    /// frame completes. Beyond it the session closes with GOAWAY TIMEOUT naming this deadline.
    /// Default 30 s (a 64 KiB frame at 20 kbit/s); `None` disables it. Unused on the lossy
    /// framing, where an unfinished run ends at the next delimiter.
    pub frame_timeout: Option<Duration>,
    /// How long the peer's HELLO may take (default 10 s).
    pub handshake_timeout: Duration,
    /// Where messages above `limits.inline_limit` are stored while they arrive; `None` is the
    /// system's temporary directory.
    #[cfg(feature = "std")]
    pub spill_dir: Option<PathBuf>,
    /// Most spill files and bytes partly received messages may hold (docs/PROTOCOL.md §8.4);
    /// default [`SpillBudget::default`], 64 files and 1 GiB: a laptop's disk and descriptor
    /// table survive it, and it stays far below the descriptors kept for connections. A clone of
    /// this `Config` shares the budget, so every connection of an endpoint draws from one. A large
    /// message beyond it is refused at its HEAD with CANCEL STORAGE_FULL.
    pub spill_budget: SpillBudget,
    /// Reliable delivery on the lossy framing (docs/PROTOCOL.md §16), offered in the HELLO and used
    /// when the peer offers it too; `None` (the default) neither offers nor accepts it. Ignored on
    /// the stream framing.
    pub reliable: Option<Reliability>,
    /// This session's nonce, sent in the HELLO's NONCE option (docs/PROTOCOL.md §5.1, §9): a random
    /// value the caller draws for each session it starts (the core draws no randomness). A HELLO
    /// with another nonce on a live lossy link means the peer restarted. `None` sends no nonce.
    pub nonce: Option<u64>,
    /// Wait for the peer indefinitely: no handshake deadline until the first byte arrives, then
    /// `handshake_timeout` from there (docs/PROTOCOL.md §9, §10). For a board whose host may
    /// start long after it. Drivers also start a new session on the same link after each one
    /// that ends by a timeout or the peer's GOAWAY, instead of closing the link.
    pub wait_for_peer: bool,
    /// Payload bytes held in memory by queued messages (answers and calls) before a driver stops
    /// starting new request handlers on this connection (docs/PROTOCOL.md §8.5); a message holds
    /// its whole in-memory payload until its last byte is sent. Default 4 MiB: eight default
    /// windows, so a peer that reads keeps the link busy from the queue alone, while one that
    /// never reads, or grants a window too small to make progress, costs at most this (plus the
    /// answers of handlers already running, at most `max_in_flight` of them).
    pub send_budget: u64,
    /// The window over which `max_resets` and `max_noise` are counted (§8.5). Default 1 s.
    pub abuse_window: Duration,
    /// Requests the peer may cancel before they are answered, per `abuse_window`, before the
    /// session closes with GOAWAY ABUSE (§8.5; the "rapid reset" attack, CVE-2023-44487). Default
    /// 1024: a well-behaved client cancels on a timeout or a dropped call, at most
    /// `max_in_flight` (64) calls per timeout, so this is one every ms for a second; the attack
    /// runs at hundreds of thousands per second.
    pub max_resets: u32,
    /// Frames that need no answer (CREDIT, PING, PONG, CANCEL, extensions, DATA or answers for
    /// unknown or finished exchanges) the peer may send per
    /// `abuse_window` before the session closes with GOAWAY ABUSE (§8.5), on top of one for each
    /// HEAD or DATA this side sent (the peer's CREDITs answer them) and 32 for each CANCEL it sent
    /// (a window of default chunks may be on its way). Default 10 000: keepalive, credit and
    /// cancels of a busy link stay far below it, while a flood runs at millions per second.
    pub max_noise: u32,
    /// Offer open-length messages (the HELLO option OPEN, docs/PROTOCOL.md §5.1, §5.2): accept
    /// them from the peer and send them ([`Body::open`](super::Body::open)) when it offers them too.
    /// Default on; off only to act as a peer without them (an older netcore, Python Netcore).
    pub open_length: bool,
}

/// Reliable delivery on a lossy link (docs/PROTOCOL.md §16): every HEAD, DATA and CANCEL is
/// numbered, acknowledged and sent again until it arrives, so nothing is lost or duplicated.
///
/// Sized for serial lines: 8-bit sequence numbers, a window of a few dozen frames, timers of
/// tens of milliseconds to seconds. On a noisy line use small chunks too
/// ([`Config::with_chunk_size`]): a frame of n bytes survives a byte error rate p with
/// probability (1 − p)^n.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reliability {
    /// Frames received out of order that we hold (our receive window, announced in the HELLO),
    /// and at most how many we leave unacknowledged; 1 to 128.
    pub window: u8,
    /// Retransmission timeout before the first round-trip measurement.
    pub rto_initial: Duration,
    /// Smallest retransmission timeout, whatever the measured round trip.
    pub rto_min: Duration,
    /// Largest retransmission timeout, backoff included.
    pub rto_max: Duration,
    /// A frame unacknowledged for this long means the peer is gone: the session closes.
    pub give_up: Duration,
}

impl Default for Reliability {
    fn default() -> Self {
        Self {
            window: 32,
            rto_initial: Duration::from_millis(500),
            rto_min: Duration::from_millis(50),
            rto_max: Duration::from_secs(2),
            give_up: Duration::from_secs(30),
        }
    }
}

impl Reliability {
    /// Sets the window (clamped to 1..=128).
    pub fn with_window(mut self, window: u8) -> Self {
        self.window = window;
        self
    }

    /// Sets the retransmission timeouts: initial, smallest and largest.
    pub fn with_rto(mut self, initial: Duration, min: Duration, max: Duration) -> Self {
        (self.rto_initial, self.rto_min, self.rto_max) = (initial, min, max.max(min));
        self
    }

    /// Sets how long a frame may stay unacknowledged before the session gives up.
    pub fn with_give_up(mut self, give_up: Duration) -> Self {
        self.give_up = give_up;
        self
    }

    /// The window as announced: 1 to 128.
    pub fn window(&self) -> u8 {
        self.window.clamp(1, crate::frame::MAX_RELIABLE_WINDOW)
    }
}

/// Liveness probing (docs/PROTOCOL.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence after which a PING is sent.
    pub interval: Duration,
    /// Unanswered intervals after which the peer is considered gone.
    pub max_missed: u32,
}

impl Config {
    /// Settings for reliable streams (TCP, Unix sockets, in-process pipes): large chunks, credit.
    pub fn stream() -> Self {
        Self {
            framing: Framing::Stream,
            chunk_size: 16 * 1024,
            limits: Limits::default(),
            fingerprint: 0,
            methods: alloc::sync::Arc::new([]),
            codec: PayloadCodec::COMPILED,
            keepalive: Some(Keepalive { interval: Duration::from_secs(30), max_missed: 3 }),
            stall_timeout: Some(Duration::from_secs(30)),
            frame_timeout: Some(Duration::from_secs(30)),
            handshake_timeout: Duration::from_secs(10),
            #[cfg(feature = "std")]
            spill_dir: None,
            spill_budget: SpillBudget::default(),
            reliable: None,
            nonce: None,
            wait_for_peer: false,
            send_budget: 4 << 20,
            abuse_window: Duration::from_secs(1),
            max_resets: 1024,
            max_noise: 10_000,
            open_length: true,
        }
    }

    /// Settings for byte-lossy links such as serial lines: small chunks so an urgent message
    /// waits at most about one chunk's airtime, small frames, keepalive, no credit (§5.5).
    pub fn lossy() -> Self {
        Self {
            framing: Framing::Lossy,
            chunk_size: 256,
            limits: Limits { max_frame: 1024, window: 0, ..Limits::default() },
            keepalive: Some(Keepalive { interval: Duration::from_secs(1), max_missed: 3 }),
            stall_timeout: Some(Duration::from_secs(10)),
            ..Self::stream()
        }
    }

    /// Offers open-length messages, or not ([`Config::open_length`]).
    pub fn with_open_length(mut self, offer: bool) -> Self {
        self.open_length = offer;
        self
    }

    /// Sets the framing.
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Sets the chunk size (at least 1 byte).
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size.max(1);
        self
    }

    /// Sets the limits announced to the peer.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the schema fingerprint, which strict mode checks (§9): a peer that sets another
    /// is refused at the handshake, whatever its methods table says.
    pub fn with_fingerprint(mut self, fingerprint: u64) -> Self {
        self.fingerprint = fingerprint;
        self
    }

    /// Sets the payload codec announced in the HELLO (§5.1); only for peers that encode payloads
    /// themselves, since typed calls always use [`PayloadCodec::COMPILED`].
    pub fn with_codec(mut self, codec: PayloadCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Sets or disables keepalive.
    pub fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Offers (and accepts) reliable delivery on the lossy framing, or not (docs/PROTOCOL.md §16).
    pub fn with_reliable(mut self, reliable: Option<Reliability>) -> Self {
        self.reliable = reliable;
        self
    }

    /// Sets the session nonce sent in the HELLO (§5.1); drivers draw one per session.
    pub fn with_nonce(mut self, nonce: Option<u64>) -> Self {
        self.nonce = nonce;
        self
    }

    /// Waits for the peer indefinitely and, in a driver, keeps the link for the next peer after
    /// each session ends ([`Config::wait_for_peer`](Self#structfield.wait_for_peer)).
    pub fn wait_for_peer(mut self) -> Self {
        self.wait_for_peer = true;
        self
    }

    /// Sets or disables the stall timeout of partly received messages.
    pub fn with_stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// Sets or disables the deadline for a frame to finish arriving once started.
    pub fn with_frame_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.frame_timeout = timeout;
        self
    }

    /// Sets the send budget in payload bytes ([`Config::send_budget`](Self#structfield.send_budget)).
    pub fn with_send_budget(mut self, bytes: u64) -> Self {
        self.send_budget = bytes;
        self
    }

    /// Sets how many cancelled requests and frames needing no answer the peer may send per
    /// window before GOAWAY ABUSE (§8.5).
    pub fn with_abuse_limits(mut self, window: Duration, max_resets: u32, max_noise: u32) -> Self {
        (self.abuse_window, self.max_resets, self.max_noise) = (window, max_resets, max_noise);
        self
    }

    /// Sets how long the peer's HELLO may take.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Bounds the spill files of large incoming messages to `max_files` files and `max_bytes`
    /// bytes at once, over every session configured from this `Config` or a clone of it.
    pub fn with_spill_budget(mut self, max_files: u32, max_bytes: u64) -> Self {
        self.spill_budget = SpillBudget::new(max_files, max_bytes);
        self
    }

    /// Sets where large incoming messages are stored.
    #[cfg(feature = "std")]
    pub fn with_spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::stream()
    }
}

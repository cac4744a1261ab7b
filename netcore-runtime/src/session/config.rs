use std::path::PathBuf;
use std::time::Duration;

use crate::frame::{Framing, Limits};

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
    /// Hash of the service declarations; 0 for an untyped endpoint (§9).
    pub fingerprint: u64,
    /// Liveness probing; `None` disables it.
    pub keepalive: Option<Keepalive>,
    /// How long the peer's HELLO may take.
    pub handshake_timeout: Duration,
    /// Where messages above `limits.inline_limit` are stored while they arrive; `None` is the
    /// system's temporary directory.
    pub spill_dir: Option<PathBuf>,
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
            keepalive: None,
            handshake_timeout: Duration::from_secs(10),
            spill_dir: None,
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
            ..Self::stream()
        }
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

    /// Sets the schema fingerprint.
    pub fn with_fingerprint(mut self, fingerprint: u64) -> Self {
        self.fingerprint = fingerprint;
        self
    }

    /// Sets or disables keepalive.
    pub fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Sets where large incoming messages are stored.
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

//! Handshake deadline and keepalive (docs/PROTOCOL.md §10), on the caller's clock.

use std::time::{Duration, Instant};

use super::{Deadline, Keepalive};

/// What a timer firing asks of the session.
pub(super) enum Due {
    Nothing,
    Ping(u64),
    /// Close: this deadline passed after so long.
    Dead(Deadline, Duration),
}

pub(super) struct Liveness {
    /// Set until the handshake completes.
    handshake_deadline: Option<Instant>,
    /// When the handshake began, to say how long it waited.
    started: Instant,
    keepalive: Option<Keepalive>,
    last_heard: Instant,
    /// PINGs sent since we last heard from the peer.
    pings: u32,
    next_nonce: u64,
}

impl Liveness {
    pub(super) fn new(now: Instant, handshake_timeout: Duration, keepalive: Option<Keepalive>) -> Self {
        Self {
            handshake_deadline: Some(now + handshake_timeout),
            started: now,
            keepalive,
            last_heard: now,
            pings: 0,
            next_nonce: 0,
        }
    }

    pub(super) fn opened(&mut self) {
        self.handshake_deadline = None;
    }

    /// Any frame counts as life.
    pub(super) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.pings = 0;
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        let keepalive = self.keepalive.map(|k| self.last_heard + k.interval * (self.pings + 1));
        match (self.handshake_deadline, keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn on_timeout(&mut self, now: Instant) -> Due {
        if self.handshake_deadline.is_some_and(|deadline| now >= deadline) {
            return Due::Dead(Deadline::Handshake, now.saturating_duration_since(self.started));
        }
        let Some(keepalive) = self.keepalive else { return Due::Nothing };
        if now < self.last_heard + keepalive.interval * (self.pings + 1) {
            return Due::Nothing;
        }
        if self.pings >= keepalive.max_missed {
            return Due::Dead(Deadline::Keepalive(keepalive), now.saturating_duration_since(self.last_heard));
        }
        self.pings += 1;
        self.next_nonce += 1;
        Due::Ping(self.next_nonce)
    }
}

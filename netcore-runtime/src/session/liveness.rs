//! Handshake deadline and keepalive (docs/PROTOCOL.md §10), on the caller's clock.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::time::{Duration, Instant};

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
    /// When the handshake deadline started, to say how long it waited.
    started: Instant,
    /// Waiting for the peer: the handshake deadline starts at the first byte received.
    handshake_timeout: Option<Duration>,
    /// Keepalive runs only once the session is open: before that the handshake deadline alone
    /// applies (§10), so a lossy profile's 1 s × (3 + 1) cannot cut a 10 s handshake short.
    open: bool,
    keepalive: Option<Keepalive>,
    last_heard: Instant,
    /// PINGs sent since we last heard from the peer.
    pings: u32,
    next_nonce: u64,
    /// The latest PING that went out and when, until its PONG arrives: a PONG of an older one
    /// measures nothing (§5.6: PONGs need no matching; the RTT is only a diagnostic).
    ping_out: Option<(u64, Instant)>,
    /// The nonce and round-trip time of the latest PING answered.
    answered: Option<(u64, Duration)>,
}

impl Liveness {
    /// With `wait`, no handshake deadline runs until [`received`](Self::received) is called.
    pub(super) fn new(now: Instant, handshake_timeout: Duration, keepalive: Option<Keepalive>, wait: bool) -> Self {
        let (handshake_deadline, handshake_timeout) = match wait {
            true => (None, Some(handshake_timeout)),
            false => (Some(now + handshake_timeout), None),
        };
        Self {
            handshake_deadline,
            started: now,
            handshake_timeout,
            open: false,
            keepalive,
            last_heard: now,
            pings: 0,
            next_nonce: 0,
            ping_out: None,
            answered: None,
        }
    }

    /// A nonce for a PING the application asked for, from the keepalive's sequence (§5.6).
    pub(super) fn next_nonce(&mut self) -> u64 {
        self.next_nonce += 1;
        self.next_nonce
    }

    /// A PING with `nonce` was handed to the link at `now`.
    pub(super) fn ping_sent(&mut self, nonce: u64, now: Instant) {
        self.ping_out = Some((nonce, now));
    }

    /// A PONG arrived: the RTT of the PING it answers, if it is the latest one sent.
    pub(super) fn pong(&mut self, nonce: u64, now: Instant) -> Option<Duration> {
        let (sent_nonce, at) = self.ping_out?;
        if sent_nonce != nonce {
            return None;
        }
        self.ping_out = None;
        let rtt = now.saturating_duration_since(at);
        self.answered = Some((nonce, rtt));
        Some(rtt)
    }

    /// The round-trip time of the latest PING answered by its PONG.
    pub(super) fn rtt(&self) -> Option<Duration> {
        self.answered.map(|(_, rtt)| rtt)
    }

    /// The nonce and round-trip time of the latest PING answered.
    pub(super) fn last_pong(&self) -> Option<(u64, Duration)> {
        self.answered
    }

    /// Bytes arrived: a waiting handshake's deadline starts now.
    pub(super) fn received(&mut self, now: Instant) {
        if let Some(timeout) = self.handshake_timeout.take() {
            if !self.open {
                self.handshake_deadline = Some(now + timeout);
                self.started = now;
            }
        }
    }

    pub(super) fn opened(&mut self, now: Instant) {
        self.handshake_deadline = None;
        self.handshake_timeout = None;
        self.open = true;
        self.last_heard = now;
        self.pings = 0;
    }

    /// Any frame counts as life.
    pub(super) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.pings = 0;
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        let keepalive = self.keepalive.filter(|_| self.open).map(|k| self.last_heard + k.interval * (self.pings + 1));
        match (self.handshake_deadline, keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn on_timeout(&mut self, now: Instant) -> Due {
        if self.handshake_deadline.is_some_and(|deadline| now >= deadline) {
            return Due::Dead(Deadline::Handshake, now.saturating_duration_since(self.started));
        }
        let Some(keepalive) = self.keepalive.filter(|_| self.open) else { return Due::Nothing };
        if now < self.last_heard + keepalive.interval * (self.pings + 1) {
            return Due::Nothing;
        }
        if self.pings >= keepalive.max_missed {
            return Due::Dead(Deadline::Keepalive(keepalive), now.saturating_duration_since(self.last_heard));
        }
        self.pings += 1;
        Due::Ping(self.next_nonce())
    }
}

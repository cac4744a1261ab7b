//! The `tracing` events of a connection (README "Observability").
//!
//! The sans-IO session does no logging: the driver reports what its events and counters say.
//! Every function here either is a single `tracing` macro, whose fields are evaluated only when
//! a subscriber wants the event, or starts by asking `tracing` whether anyone listens, so with no
//! subscriber installed a connection pays a relaxed atomic load per call, and nothing per chunk.
//!
//! | level | what |
//! |---|---|
//! | `info` | handshake done (both HELLOs), GOAWAY sent or received with its reason, link lost |
//! | `warn` | handshake failed, GOAWAY for a protocol error or a deadline, refused exchanges (`max_in_flight`), oversized requests |
//! | `error` | a handler panicked |
//! | `debug` | cancels both ways, call timeouts, retransmissions, damaged frames and resyncs, duplicates, handler errors, handler slots or send budget full |
//!
//! Events of a connection are inside its span `connection{id, label, peer}`; `peer` is the
//! peer's session nonce once its HELLO arrived.

use std::fmt;

use tracing::Level;

use crate::frame::{CancelReason, GoAwayCode, Hello};
use crate::session::{CloseReason, Exchange, Session, Stats};

/// The span of connection `id`.
pub(super) fn connection_span(id: u64, label: &str) -> tracing::Span {
    tracing::info_span!("connection", id, label, peer = tracing::field::Empty)
}

/// A HELLO as one line: version range, fingerprint, nonce, codec, limits, reliability, methods.
struct HelloLine<'a>(&'a Hello);

impl fmt::Display for HelloLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.0;
        write!(f, "v{}..={} fingerprint {:#018x}", h.version_min, h.version_max, h.fingerprint)?;
        match h.nonce {
            Some(nonce) => write!(f, " nonce {nonce:016x}")?,
            None => f.write_str(" no nonce")?,
        }
        let l = &h.limits;
        write!(
            f,
            " codec {} max_frame {} max_message {} inline_limit {} window {} max_in_flight {}",
            h.codec.0, l.max_frame, l.max_message, l.inline_limit, l.window, l.max_in_flight
        )?;
        if let Some(window) = h.reliable {
            write!(f, " reliable window {window}")?;
        }
        match &h.methods {
            Some(methods) => write!(f, " methods {}", methods.len()),
            None => Ok(()),
        }
    }
}

/// A GOAWAY code by name (docs/PROTOCOL.md §5.7).
struct Code(GoAwayCode);

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            GoAwayCode::NORMAL => "NORMAL",
            GoAwayCode::PROTOCOL => "PROTOCOL",
            GoAwayCode::VERSION => "VERSION",
            GoAwayCode::FINGERPRINT => "FINGERPRINT",
            GoAwayCode::LIMIT => "LIMIT",
            GoAwayCode::FLOW_CONTROL => "FLOW_CONTROL",
            GoAwayCode::TIMEOUT => "TIMEOUT",
            GoAwayCode::ABUSE => "ABUSE",
            GoAwayCode::CODEC => "CODEC",
            GoAwayCode(other) => return write!(f, "{other}"),
        };
        f.write_str(name)
    }
}

/// A cancel reason by name (§5.4).
struct Reason(CancelReason);

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.describe() {
            Some(text) => f.write_str(text),
            None => write!(f, "code {}", self.0 .0),
        }
    }
}

/// The handshake completed: both HELLOs, and the peer's nonce recorded on the span.
pub(super) fn connected(session: &Session, peer: &Hello, restarted: bool) {
    if !tracing::enabled!(Level::INFO) {
        return;
    }
    if let Some(nonce) = peer.nonce {
        tracing::Span::current().record("peer", tracing::field::display(format_args!("{nonce:016x}")));
    }
    let ours = session.hello();
    tracing::info!(
        ours = %HelloLine(&ours),
        theirs = %HelloLine(peer),
        reliable = session.is_reliable(),
        restarted,
        "handshake done"
    );
}

/// The session ended; `handshaking` if it never opened (the reason then names what the peer's
/// HELLO had that ours did not accept).
pub(super) fn closed(session: &Session, reason: &CloseReason, handshaking: bool) {
    if handshaking && !matches!(reason, CloseReason::Local | CloseReason::Disconnected) {
        return tracing::warn!(%reason, ours = %HelloLine(&session.hello()), "handshake failed");
    }
    match reason {
        CloseReason::Local => {
            tracing::info!(code = %Code(GoAwayCode::NORMAL), "goaway sent: closed by the application")
        }
        CloseReason::Peer { code, message } => match *code {
            GoAwayCode::NORMAL => tracing::info!(code = %Code(*code), reason = %message, "goaway received"),
            _ => tracing::warn!(code = %Code(*code), reason = %message, "goaway received"),
        },
        CloseReason::Protocol(err) => tracing::warn!(code = %Code(err.goaway_code()), reason = %err, "goaway sent"),
        CloseReason::TimedOut { .. } => tracing::warn!(code = %Code(GoAwayCode::TIMEOUT), %reason, "goaway sent"),
        CloseReason::Disconnected => tracing::info!("transport closed"),
        other => tracing::info!(reason = %other, "session ended"),
    }
}

/// The link outlives the session and waits for the next peer (`Config::wait_for_peer`, §10).
pub(super) fn waiting_again(reason: &CloseReason) {
    tracing::info!(%reason, "peer lost; waiting for the next one");
}

/// An exchange was cancelled: by the peer, by the session (damage, limits), or by us.
pub(super) fn cancelled(exchange: Exchange, reason: CancelReason) {
    match exchange {
        Exchange::Ours(_) => tracing::debug!(reason = %Reason(reason), "our exchange cancelled"),
        Exchange::Theirs(exchange) => tracing::debug!(exchange, reason = %Reason(reason), "peer's exchange cancelled"),
    }
}

/// A call's future was dropped or timed out: the driver cancels it; `found` if the session
/// still had it (queued or awaiting its answer: a CANCEL goes out if its HEAD did).
pub(super) fn call_dropped(reason: CancelReason, found: bool) {
    match reason {
        CancelReason::TIMED_OUT => tracing::debug!(found, "call timed out; cancelling it"),
        _ => tracing::debug!(reason = %Reason(reason), found, "call dropped; cancelling it"),
    }
}

/// A request over its route's decode limit was refused at its HEAD (§8.4).
pub(super) fn oversized(route: &str, total: u64, limit: u64) {
    tracing::warn!(route, total, limit, "request refused: over the route's decode limit");
}

/// Our answer exceeds the requester's `max_message` (§8.1).
pub(super) fn answer_too_large(exchange: u32, len: u64, max: u64) {
    tracing::warn!(exchange, len, max, "answer refused: over the requester's max_message");
}

/// Every handler slot is taken: the link stops reading until one frees.
pub(super) fn handlers_full(slots: usize) {
    tracing::debug!(slots, "all handler slots busy; reading paused");
}

/// A request's handler waits: the send budget is full (§8.5).
pub(super) fn deferred(exchange: u32) {
    tracing::debug!(exchange, "send budget full; request deferred");
}

/// A handler failed; its error goes to the requester.
pub(crate) fn handler_error(route: &str, code: u16, message: &str) {
    tracing::debug!(route, code, error = message, "handler error");
}

/// A handler panicked; the requester gets an INTERNAL error.
pub(super) fn handler_panic(route: &str, what: &str) {
    tracing::error!(route, panic = what, "handler panicked");
}

/// Reports what the session's counters say happened since the last look: retransmissions,
/// damaged frames (each one a resynchronisation at the next delimiter), duplicates, refusals.
#[derive(Default)]
pub(super) struct Counters {
    seen: Stats,
}

impl Counters {
    /// Compares the session's counters with those seen last (only if someone listens).
    pub(super) fn observe(&mut self, session: &Session) {
        if !tracing::enabled!(Level::WARN) {
            return;
        }
        let now = session.stats();
        let seen = std::mem::replace(&mut self.seen, now);
        if now.retransmitted > seen.retransmitted {
            let unacked = session.queues().unacked;
            tracing::debug!(
                frames = now.retransmitted - seen.retransmitted,
                total = now.retransmitted,
                unacked,
                "retransmitted"
            );
        }
        if now.frames_dropped > seen.frames_dropped {
            tracing::debug!(
                frames = now.frames_dropped - seen.frames_dropped,
                bytes = now.bytes_discarded - seen.bytes_discarded,
                total = now.frames_dropped,
                "damaged frames dropped; resynchronised at the next delimiter"
            );
        } else if now.bytes_discarded > seen.bytes_discarded {
            tracing::debug!(bytes = now.bytes_discarded - seen.bytes_discarded, "noise discarded; resynchronised");
        }
        if now.duplicates > seen.duplicates {
            tracing::debug!(count = now.duplicates - seen.duplicates, total = now.duplicates, "duplicates ignored");
        }
        if now.refused > seen.refused {
            let max = session.config().limits.max_in_flight;
            tracing::warn!(
                count = now.refused - seen.refused,
                max_in_flight = max,
                "peer's exchanges refused: max_in_flight"
            );
        }
    }

    /// The next session starts counting from zero.
    pub(super) fn reset(&mut self) {
        self.seen = Stats::default();
    }
}

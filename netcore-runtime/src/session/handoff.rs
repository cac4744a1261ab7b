//! What the session hands to its caller instead of doing I/O itself (docs/PROTOCOL.md §7, §8.4).
//!
//! The core stores nothing on disk and reads no body: above the inline limit an incoming
//! message's bytes go out as [`StoreOp`]s ([`Session::poll_store`](super::Session::poll_store))
//! for the caller's storage, and an outgoing body the caller supplies is asked for piece by piece
//! as [`Demand`]s ([`Session::poll_demand`](super::Session::poll_demand)), answered with
//! [`Session::supply`](super::Session::supply). A tokio driver does both off the connection's task
//! (`connection::storage`, `connection::bodies`); the simulator ([`crate::sim`]) does them in place.
//!
//! ```text
//!   handle_input ─▶ reassembly ─┬─ memory (≤ inline_limit) ─────────▶ Event::Message(Memory)
//!                               ├─ stream (stream_when) ────────────▶ Event::Chunk …
//!                               └─ storage: poll_store ─▶ caller ───▶ Event::Message(Stored)
//!   poll_transmit ◀─ scheduler ◀─ Body::Bytes (sliced, zero-copy)
//!                              ◀─ supplied body ◀─ supply ◀─ caller ◀─ poll_demand
//! ```

#[allow(unused_imports)]
use crate::prelude::*;

use core::fmt;

use bytes::Bytes;

use super::event::{Exchange, MessageId};

/// An operation on the caller's storage for one incoming message above the inline limit.
///
/// The session decides (§8.4): the message's whole announced total was reserved in the
/// [`SpillBudget`](super::SpillBudget) at its HEAD, so a storage that follows these operations
/// never holds more than the budget. The bytes of a [`Write`](StoreOp::Write) hold the peer's
/// flow-control credit until the caller hands them back with
/// [`Session::consumed`](super::Session::consumed) once they are stored (a slow disk thus slows
/// the peer down instead of growing a queue). After the last byte comes a
/// [`Finish`](StoreOp::Finish); once the storage has it all, the caller says so with
/// [`Session::store_finished`](super::Session::store_finished) and the message is an
/// [`Event::Message`](super::Event::Message) with [`Payload::Stored`](super::Payload::Stored),
/// which the caller replaces with what it stored. If the storage fails,
/// [`Session::store_failed`](super::Session::store_failed) cancels the message (CANCEL IO).
#[derive(Debug)]
pub enum StoreOp {
    /// A message starts: create its storage, for `total` bytes.
    Begin {
        /// Its exchange; the key of every later operation on it.
        exchange: Exchange,
        /// Its announced payload length.
        total: u64,
    },
    /// The next bytes of the message, in order.
    Write {
        /// Its exchange.
        exchange: Exchange,
        /// The bytes.
        bytes: Bytes,
    },
    /// Every byte was written: make the storage complete (flush it), then call
    /// [`Session::store_finished`](super::Session::store_finished).
    Finish {
        /// Its exchange.
        exchange: Exchange,
    },
    /// The message was dropped before it completed (cancelled, damaged, stalled, withdrawn
    /// before the application took it, or the session closed): delete what was stored.
    Discard {
        /// Its exchange.
        exchange: Exchange,
    },
}

/// A request from the session about an outgoing body whose bytes the caller supplies (the pull
/// model): memory bodies ([`Body::Bytes`](super::Body::Bytes)) never produce one.
///
/// The session asks for a supplied message's bytes in order, a little ahead of the link (at
/// least two chunks, [`SUPPLY_AHEAD`] bytes), so that the link does not wait for the source.
pub enum Demand {
    /// A [`Body::Reader`](super::Body::Reader) was queued as `message`: from now on the caller
    /// owns and reads it (the session never does) to answer the [`Read`](Demand::Read)s that
    /// follow.
    #[cfg(feature = "std")]
    Reader {
        /// The message.
        message: MessageId,
        /// Its source.
        reader: Box<dyn std::io::Read + Send>,
    },
    /// A [`Body::Open`](super::Body::Open) with a source was queued as `message`: from now on
    /// the caller owns it, to answer the [`Read`](Demand::Read)s that follow.
    Source {
        /// The message.
        message: MessageId,
        /// The source given to [`Body::open_with`](super::Body::open_with).
        source: Box<dyn core::any::Any + Send>,
    },
    /// Supply `len` bytes of `message` starting at `offset` with
    /// [`Session::supply`](super::Session::supply), or report a failure with
    /// [`Session::supply_failed`](super::Session::supply_failed). Offsets follow each other.
    ///
    /// For an open-length body ([`Body::Open`](super::Body::Open)) `len` is "up to": answer
    /// whenever bytes are there, with 1 to `len` of them, or end the message with
    /// [`Session::supply_end`](super::Session::supply_end); the next `Read` (at the offset after
    /// what was supplied) follows the answer. Meanwhile the session sends the other messages.
    Read {
        /// The message.
        message: MessageId,
        /// The first byte wanted.
        offset: u64,
        /// How many bytes: exactly (fewer is a failure of the source), or for an open-length
        /// body at most.
        len: usize,
    },
    /// The message is gone (sent, cancelled, failed, or the session closed): drop its source.
    Release {
        /// The message.
        message: MessageId,
    },
}

impl fmt::Debug for Demand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "std")]
            Demand::Reader { message, .. } => {
                f.debug_struct("Reader").field("message", message).finish_non_exhaustive()
            }
            Demand::Source { message, .. } => {
                f.debug_struct("Source").field("message", message).finish_non_exhaustive()
            }
            Demand::Read { message, offset, len } => {
                f.debug_struct("Read").field("message", message).field("offset", offset).field("len", len).finish()
            }
            Demand::Release { message } => f.debug_struct("Release").field("message", message).finish(),
        }
    }
}

/// How far ahead of the link a supplied body is asked for, at least: 64 KiB (one write batch of
/// the tokio driver), and never less than two chunks, so one chunk is being read while the
/// other goes out.
pub const SUPPLY_AHEAD: u64 = 64 * 1024;

/// How far ahead of the link a supplied body of known length (`Body::Reader`,
/// [`Body::Supplied`](super::Body::Supplied)) is asked for: 256 KiB, so that a source read on
/// another thread keeps a fast link busy across its round trips. An open-length body is asked
/// for [`SUPPLY_AHEAD`] at a time.
pub const READ_AHEAD: u64 = 256 * 1024;

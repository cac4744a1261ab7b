//! Outgoing messages and the chunk scheduler (docs/PROTOCOL.md §7).
//!
//! Strict priority between the eight levels, round robin within a level: the scheduler pops the
//! first message of the most urgent level that can send, emits one chunk and re-queues it at the
//! back. Invariant: a message id is in exactly one level queue iff it is in `messages`, i.e. it
//! still has a HEAD or payload bytes to send.

use std::collections::{HashMap, VecDeque};
use std::io::Read;

use bytes::{Bytes, BytesMut};

use super::credit::SendCredit;
use super::event::{Body, MessageId, SendOptions};
use super::Key;
use crate::frame::{encoded_body_len, CancelReason, Data, Frame, Head, Kind, Limits, Priority, Route};
use crate::varint;

/// What the scheduler produced.
pub(super) enum Scheduled {
    /// A frame to transmit; `finished` is set when it carries the message's last byte.
    Frame { frame: Frame, finished: Option<MessageId> },
    /// A message that cannot be sent; `key` is set iff the peer knows its exchange (a CANCEL is due).
    Failed { id: MessageId, key: Option<Key>, reason: CancelReason },
}

struct Outgoing {
    kind: Kind,
    priority: Priority,
    /// Moved into the HEAD when it is built.
    route: Option<Route>,
    meta: Option<Bytes>,
    /// Known at once for responses; for opening kinds, assigned when the HEAD is sent (§6).
    key: Option<Key>,
    source: Source,
    total: u64,
    sent: u64,
    head_sent: bool,
    /// Whether `total - sent` bytes are reserved in the send credit (§5.5 liveness rule).
    reserved: bool,
    /// Whether it counts against the peer's `max_in_flight`: HEAD sent, more chunks to come.
    in_flight: bool,
}

enum Source {
    Bytes(Bytes),
    Reader(Box<dyn Read + Send>),
}

impl Source {
    fn read(&mut self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        match self {
            Source::Bytes(bytes) => Ok(bytes.slice(offset as usize..offset as usize + len)),
            Source::Reader(reader) => {
                let mut buf = BytesMut::zeroed(len);
                reader.read_exact(&mut buf)?;
                Ok(buf.freeze())
            }
        }
    }
}

/// The chunk a stored message may send now (§5.5): `wanted` bytes if the free credit covers them,
/// else as much as is free, provided that is at least a quarter of the peer's `window` (the batch
/// in which the receiver returns credit), so progress never waits for more than the receiver will
/// ever grant at once and frames stay large enough to be worth their header. `true` when blocked.
fn cut_to_credit(wanted: u64, free: u64, window: u64) -> (u64, bool) {
    if free >= wanted {
        return (wanted, false);
    }
    let least = wanted.min(window.div_ceil(4)).max(1);
    (free, free < least)
}

/// Outcome of trying one message.
enum Attempt {
    Sent(Frame, bool),
    Blocked,
    Failed(CancelReason),
}

#[derive(Default)]
pub(super) struct Outbox {
    messages: HashMap<MessageId, Outgoing>,
    levels: [VecDeque<MessageId>; Priority::LEVELS],
    /// Messages whose exchange is known, by exchange.
    by_key: HashMap<Key, MessageId>,
    next_message: u64,
    /// Id of the next exchange we open (§6).
    next_exchange: u32,
    /// Messages whose HEAD is sent and whose last byte is not: the peer is reassembling them.
    in_flight: u32,
    pub(super) credit: SendCredit,
}

impl Outbox {
    /// Queues a message. `key` is the exchange of a response; `None` for opening kinds.
    pub(super) fn push(
        &mut self,
        kind: Kind,
        route: Option<Route>,
        body: Body,
        opts: SendOptions,
        key: Option<Key>,
    ) -> MessageId {
        let id = MessageId(self.next_message);
        self.next_message += 1;
        let (source, total) = match body {
            Body::Bytes(bytes) => {
                let len = bytes.len() as u64;
                (Source::Bytes(bytes), len)
            }
            Body::Reader { reader, len } => (Source::Reader(reader), len),
        };
        let message = Outgoing {
            kind,
            priority: opts.priority,
            route,
            meta: opts.meta,
            key,
            source,
            total,
            sent: 0,
            head_sent: false,
            reserved: false,
            in_flight: false,
        };
        if let Some(key) = key {
            self.by_key.insert(key, id);
        }
        self.levels[usize::from(opts.priority.level())].push_back(id);
        self.messages.insert(id, message);
        id
    }

    /// Picks and builds the next chunk to send, if any message can send now.
    pub(super) fn next(&mut self, peer: &Limits, chunk_size: usize) -> Option<Scheduled> {
        for level in (0..Priority::LEVELS).rev() {
            for _ in 0..self.levels[level].len() {
                let id = self.levels[level].pop_front().expect("counted");
                match self.attempt(id, peer, chunk_size) {
                    Attempt::Blocked => self.levels[level].push_back(id),
                    Attempt::Sent(frame, more) => {
                        if more {
                            self.levels[level].push_back(id);
                            return Some(Scheduled::Frame { frame, finished: None });
                        }
                        self.forget(id);
                        return Some(Scheduled::Frame { frame, finished: Some(id) });
                    }
                    Attempt::Failed(reason) => {
                        let key = self.forget(id);
                        return Some(Scheduled::Failed { id, key, reason });
                    }
                }
            }
        }
        None
    }

    fn attempt(&mut self, id: MessageId, peer: &Limits, chunk_size: usize) -> Attempt {
        let in_flight_full = self.in_flight >= peer.max_in_flight;
        let message = self.messages.get_mut(&id).expect("queued messages exist");
        if message.head_sent {
            return Self::attempt_data(message, &mut self.credit, peer, chunk_size);
        }
        if message.total > peer.max_message {
            return Attempt::Failed(CancelReason::TOO_LARGE);
        }
        let key = message.key.unwrap_or(Key { id: self.next_exchange, ours: true });
        let mut head = Head {
            xid: key.to_xid(),
            kind: message.kind,
            priority: message.priority,
            route: message.route.take(),
            meta: message.meta.take(),
            total: message.total,
            payload: Bytes::new(),
        };
        let overhead = encoded_body_len(&Frame::Head(head.clone())) as u64;
        let room = u64::from(peer.max_frame).saturating_sub(overhead).min(chunk_size as u64);
        if room == 0 && message.total > 0 {
            return Attempt::Failed(CancelReason::TOO_LARGE);
        }
        let inline = message.total <= peer.inline_limit;
        let free = self.credit.available();
        // §5.5: an in-memory message needs its whole total free; a stored one a chunk, cut to
        // the free credit so that a window smaller than the chunk size still makes progress.
        let (first, blocked) = match inline {
            true => (message.total.min(room), free < message.total),
            false => cut_to_credit(message.total.min(room), free, peer.window),
        };
        let single = first == message.total;
        if (!single && in_flight_full) || blocked {
            (message.route, message.meta) = (head.route.take(), head.meta.take());
            return Attempt::Blocked;
        }
        head.payload = match message.source.read(0, first as usize) {
            Ok(bytes) => bytes,
            Err(_) => return Attempt::Failed(CancelReason::IO),
        };
        if message.key.is_none() {
            message.key = Some(key);
            self.by_key.insert(key, id);
            self.next_exchange = self.next_exchange.wrapping_add(1);
        }
        message.head_sent = true;
        message.reserved = inline && !single;
        if message.reserved {
            self.credit.reserve(message.total);
        }
        self.credit.spend(first, message.reserved);
        message.sent = first;
        if !single {
            message.in_flight = true;
            self.in_flight += 1;
        }
        Attempt::Sent(Frame::Head(head), !single)
    }

    fn attempt_data(message: &mut Outgoing, credit: &mut SendCredit, peer: &Limits, chunk_size: usize) -> Attempt {
        let xid = message.key.expect("set with the HEAD").to_xid();
        let overhead =
            2 + varint::encoded_len(xid.to_wire()) + varint::encoded_len(message.sent) + crate::frame::CRC_LEN;
        let room = (peer.max_frame as u64).saturating_sub(overhead as u64).min(chunk_size as u64);
        let mut len = (message.total - message.sent).min(room);
        if len == 0 {
            return Attempt::Failed(CancelReason::TOO_LARGE);
        }
        if !message.reserved {
            let blocked;
            (len, blocked) = cut_to_credit(len, credit.available(), peer.window);
            if blocked {
                return Attempt::Blocked;
            }
        }
        let payload = match message.source.read(message.sent, len as usize) {
            Ok(bytes) => bytes,
            Err(_) => return Attempt::Failed(CancelReason::IO),
        };
        credit.spend(len, message.reserved);
        let offset = message.sent;
        message.sent += len;
        let end = message.sent == message.total;
        Attempt::Sent(Frame::Data(Data { xid, offset, end, payload }), !end)
    }

    /// Drops a message: returns its exchange if the peer knows it, that is if the HEAD was sent
    /// or the message answers the peer's request (§5.4).
    fn forget(&mut self, id: MessageId) -> Option<Key> {
        let message = self.messages.remove(&id)?;
        let unsent = message.total - message.sent;
        if message.reserved {
            self.credit.unreserve(unsent);
        }
        if message.in_flight {
            self.in_flight -= 1;
        }
        if let Some(key) = message.key {
            self.by_key.remove(&key);
        }
        let known = message.head_sent || !message.kind.opens_exchange();
        known.then_some(message.key).flatten()
    }

    /// Cancels a queued message. `Some(key)` if the peer knows of its exchange.
    pub(super) fn cancel(&mut self, id: MessageId) -> Option<Option<Key>> {
        let level = usize::from(self.messages.get(&id)?.priority.level());
        self.levels[level].retain(|queued| *queued != id);
        Some(self.forget(id))
    }

    /// Cancels the message sending for an exchange, if any.
    pub(super) fn cancel_exchange(&mut self, key: Key) -> Option<MessageId> {
        let id = *self.by_key.get(&key)?;
        self.cancel(id);
        Some(id)
    }

    /// The queued message of an exchange.
    pub(super) fn message_of(&self, key: Key) -> Option<MessageId> {
        self.by_key.get(&key).copied()
    }

    /// Bytes sent of a queued message and its total.
    pub(super) fn progress(&self, id: MessageId) -> Option<(u64, u64)> {
        self.messages.get(&id).map(|m| (m.sent, m.total))
    }

    /// Whether nothing is waiting to be sent.
    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Drops everything (the session closed).
    pub(super) fn clear(&mut self) -> Vec<MessageId> {
        self.levels.iter_mut().for_each(VecDeque::clear);
        self.by_key.clear();
        self.in_flight = 0;
        self.messages.drain().map(|(id, _)| id).collect()
    }
}

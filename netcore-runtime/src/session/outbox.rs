//! Outgoing messages and the chunk scheduler (docs/PROTOCOL.md §7).
//!
//! Strict priority between the eight levels, round robin within a level: the scheduler pops the
//! first message of the most urgent level that can send, emits one chunk and re-queues it at the
//! back. Invariant: a message id is in exactly one level queue or one park iff it is in
//! `messages`, i.e. it still has a HEAD or payload bytes to send; it is in a park iff its last
//! attempt found it lacking credit (`parked_credit`) or a `max_in_flight` slot (`parked_slot`),
//! and nothing has freed either since. A message that cannot send thus leaves the rotation until
//! what it lacks arrives, so a call to [`Outbox::next`] costs one attempt per message that may
//! send, not per message queued (a peer that never grants credit costs nothing per frame).
//! A message whose body the caller supplies and whose next bytes have not arrived yet
//! ([`Demand`]) waits in `parked_data` until [`Outbox::supply`] brings them.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::collections::VecDeque;

use crate::collections::HashMap;

use bytes::{Bytes, BytesMut};

use super::credit::SendCredit;
use super::event::{Body, MessageId, SendOptions};
use super::handoff::{Demand, READ_AHEAD, SUPPLY_AHEAD};
use super::Key;
use crate::frame::{encoded_body_len, CancelReason, Data, Frame, Head, Kind, Limits, Priority, Route, OPEN_TOTAL};
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
    /// In memory: chunks are slices of it (zero-copy).
    Bytes(Bytes),
    /// In memory in two parts: chunks are slices of one, or (one chunk) a copy of both ends.
    Chain(Bytes, Bytes),
    /// Supplied by the caller on demand (the pull model, [`Demand`]).
    Supplied(Supply),
}

/// A supplied body's bytes. Invariant: `buffer` holds the `buffered` bytes that follow the
/// message's `sent` bytes, and bytes up to `requested` (from the start) have been asked for.
struct Supply {
    buffer: VecDeque<Bytes>,
    buffered: u64,
    requested: u64,
    /// Bytes asked for at once.
    piece: u64,
    /// The source failed at this offset: once the bytes before it are sent, the message is
    /// cancelled (CANCEL IO).
    failed: Option<u64>,
    /// An open-length body's state (§5.2); `None` for a body of known length. Its bytes are
    /// asked for up to [`SUPPLY_AHEAD`] (or two pieces) at once, one request at a time.
    open: Option<OpenSupply>,
}

/// An open-length body: one `Demand::Read` at a time ("up to `piece` bytes", answered whenever
/// the caller has bytes), since each answer decides where the next one starts.
struct OpenSupply {
    /// A `Demand::Read` is waiting for its answer.
    asked: bool,
    /// The body ended at this offset ([`Outbox::supply_end`]).
    ended: Option<u64>,
}

impl Supply {
    /// Takes the next `len` bytes (at most what is buffered): one slice when a supplied piece
    /// holds them, else a copy of the pieces joined.
    fn take(&mut self, len: u64) -> Bytes {
        let len = len.min(self.buffered) as usize;
        if len == 0 {
            return Bytes::new();
        }
        self.buffered -= len as u64;
        let front = self.buffer.front_mut().expect("buffered bytes are in the buffer");
        if front.len() >= len {
            let bytes = front.split_to(len);
            if front.is_empty() {
                self.buffer.pop_front();
            }
            return bytes;
        }
        let mut joined = BytesMut::with_capacity(len);
        while joined.len() < len {
            let front = self.buffer.front_mut().expect("buffered bytes are in the buffer");
            let n = front.len().min(len - joined.len());
            joined.extend_from_slice(&front.split_to(n));
            if front.is_empty() {
                self.buffer.pop_front();
            }
        }
        joined.freeze()
    }
}

impl Source {
    /// Bytes that can be taken now from offset `sent` (all of them for a memory body).
    fn available(&self, sent: u64, total: u64) -> u64 {
        match self {
            Source::Bytes(_) | Source::Chain(..) => total - sent,
            Source::Supplied(supply) => supply.buffered,
        }
    }

    fn take(&mut self, offset: u64, len: u64) -> Bytes {
        match self {
            Source::Bytes(bytes) => bytes.slice(offset as usize..(offset + len) as usize),
            Source::Chain(head, rest) => {
                let (start, end, cut) = (offset as usize, (offset + len) as usize, head.len());
                if end <= cut {
                    head.slice(start..end)
                } else if start >= cut {
                    rest.slice(start - cut..end - cut)
                } else {
                    let mut joined = BytesMut::with_capacity(end - start);
                    joined.extend_from_slice(&head[start..]);
                    joined.extend_from_slice(&rest[..end - cut]);
                    joined.freeze()
                }
            }
            Source::Supplied(supply) => supply.take(len),
        }
    }

    /// What a supplied body with nothing buffered leads to: waiting for its bytes, or, once its
    /// source failed (every byte read before the failure is sent first), CANCEL IO.
    fn lacking(&self, sent: u64) -> Attempt {
        match self {
            Source::Supplied(Supply { failed: Some(at), .. }) if sent >= *at => Attempt::Failed(CancelReason::IO),
            _ => Attempt::Blocked(Lack::Data),
        }
    }

    /// Whether an open-length body has ended with every byte up to `sent` taken.
    fn open_ended(&self, sent: u64) -> bool {
        matches!(self, Source::Supplied(Supply { open: Some(OpenSupply { ended: Some(at), .. }), .. }) if *at == sent)
    }

    /// The offset at which an open-length body ended, once it did.
    fn open_end(&self) -> Option<u64> {
        match self {
            Source::Supplied(Supply { open: Some(open), .. }) => open.ended,
            _ => None,
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

/// What a message that cannot send now lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lack {
    Credit,
    Slot,
    /// The next bytes of a supplied body.
    Data,
}

/// Outcome of trying one message.
enum Attempt {
    Sent(Frame, bool),
    Blocked(Lack),
    Failed(CancelReason),
}

#[derive(Default)]
pub(super) struct Outbox {
    messages: HashMap<MessageId, Outgoing>,
    levels: [VecDeque<MessageId>; Priority::LEVELS],
    /// Messages out of the rotation until credit arrives, by level, in the order they blocked.
    parked_credit: [VecDeque<MessageId>; Priority::LEVELS],
    /// Messages out of the rotation until a `max_in_flight` slot frees, by level.
    parked_slot: [VecDeque<MessageId>; Priority::LEVELS],
    /// Supplied messages out of the rotation until their next bytes are supplied, with their level.
    parked_data: HashMap<MessageId, usize>,
    /// Requests for the bytes of supplied bodies, in order ([`Session::poll_demand`](super::Session::poll_demand)).
    demands: VecDeque<Demand>,
    /// Messages whose exchange is known, by exchange.
    by_key: HashMap<Key, MessageId>,
    next_message: u64,
    /// Id of the next exchange we open (§6).
    next_exchange: u32,
    /// Messages whose HEAD is sent and whose last byte is not: the peer is reassembling them.
    in_flight: u32,
    /// Exchanges the peer counts against its `max_in_flight` for opening HEADs (§8.1): our
    /// requests from their HEAD until the session settles them (answered, cancelled, failed),
    /// and our other messages while partly sent.
    open: u32,
    /// Payload bytes held in memory by queued messages (`Body::Bytes`), whole until the message
    /// leaves, by priority level: what the send budget counts (§8.5).
    queued: [u64; Priority::LEVELS],
    pub(super) credit: SendCredit,
    /// Messages tried by [`next`](Self::next), for the tests of its cost.
    #[cfg(test)]
    pub(super) attempts: u64,
}

impl Outbox {
    /// Queues a message. `key` is the exchange of a response; `None` for opening kinds. A
    /// supplied body is asked for `chunk_size` bytes at a time.
    pub(super) fn push(
        &mut self,
        kind: Kind,
        route: Option<Route>,
        body: Body,
        opts: SendOptions,
        key: Option<Key>,
        chunk_size: usize,
    ) -> MessageId {
        let id = MessageId(self.next_message);
        self.next_message += 1;
        let supplied = |len, open: bool| {
            let piece = (chunk_size as u64).max(1);
            let open = open.then_some(OpenSupply { asked: false, ended: None });
            let supply = Supply { buffer: VecDeque::new(), buffered: 0, requested: 0, piece, failed: None, open };
            (Source::Supplied(supply), len)
        };
        let (source, total) = match body {
            Body::Bytes(bytes) => {
                let len = bytes.len() as u64;
                self.queued[usize::from(opts.priority.level())] += len;
                (Source::Bytes(bytes), len)
            }
            Body::Chain(head, rest) => {
                let len = (head.len() + rest.len()) as u64;
                self.queued[usize::from(opts.priority.level())] += len;
                (Source::Chain(head, rest), len)
            }
            #[cfg(feature = "std")]
            Body::Reader { reader, len } => {
                // The caller reads it from now on; the session only asks for its bytes.
                self.demands.push_back(Demand::Reader { message: id, reader });
                supplied(len, false)
            }
            Body::Supplied { len } => supplied(len, false),
            Body::Open(source) => {
                if let Some(source) = source {
                    self.demands.push_back(Demand::Source { message: id, source });
                }
                supplied(OPEN_TOTAL, true)
            }
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
        self.ask(id);
        id
    }

    /// Asks for the next pieces of a supplied body, to keep at least [`SUPPLY_AHEAD`] bytes (and
    /// two pieces) asked for ahead of what was sent.
    fn ask(&mut self, id: MessageId) {
        let Some(Outgoing { source: Source::Supplied(supply), sent, total, .. }) = self.messages.get_mut(&id) else {
            return;
        };
        let ahead = SUPPLY_AHEAD.max(2 * supply.piece);
        if let Some(open) = &mut supply.open {
            // One "up to" request at a time, from where the bytes supplied end, for as much as
            // is kept ahead (a producer's item in one answer, not a chunk's worth): at most
            // `2 × ahead` bytes are buffered.
            if !open.asked && open.ended.is_none() && supply.failed.is_none() && supply.buffered < ahead {
                open.asked = true;
                let offset = *sent + supply.buffered;
                self.demands.push_back(Demand::Read { message: id, offset, len: ahead as usize });
            }
            return;
        }
        // A source of known length is read in larger batches: its reads cross to another thread
        // (a file, a reader), and 64 KiB ahead leaves a fast link waiting for each round trip.
        let ahead = READ_AHEAD.max(ahead);
        while supply.requested < *total && supply.requested - *sent < ahead {
            let len = supply.piece.min(*total - supply.requested);
            self.demands.push_back(Demand::Read { message: id, offset: supply.requested, len: len as usize });
            supply.requested += len;
        }
    }

    /// Bytes of a supplied body, at `offset`. `false` if they are not the ones expected next (a
    /// message gone meanwhile, or bytes out of order), and then ignored.
    pub(super) fn supply(&mut self, id: MessageId, offset: u64, bytes: Bytes) -> bool {
        let Some(Outgoing { source: Source::Supplied(supply), sent, .. }) = self.messages.get_mut(&id) else {
            return false;
        };
        let len = bytes.len() as u64;
        if let Some(open) = &mut supply.open {
            // An answer of 1 to `piece` bytes to the one request outstanding.
            if !open.asked || offset != *sent + supply.buffered || len == 0 || len > SUPPLY_AHEAD.max(2 * supply.piece)
            {
                return false;
            }
            open.asked = false;
            supply.buffered += len;
            supply.buffer.push_back(bytes);
            self.unpark_data(id);
            self.ask(id);
            return true;
        }
        let end = supply.failed.unwrap_or(supply.requested).min(supply.requested);
        if offset != *sent + supply.buffered || offset + len > end {
            return false;
        }
        if len > 0 {
            supply.buffered += len;
            supply.buffer.push_back(bytes);
        }
        self.unpark_data(id);
        true
    }

    /// An open-length body ends at `offset`, the end of what was supplied. `false` if the
    /// message is gone, is not open-length, or `offset` is not where its bytes end.
    pub(super) fn supply_end(&mut self, id: MessageId, offset: u64) -> bool {
        let Some(Outgoing { source: Source::Supplied(supply), sent, .. }) = self.messages.get_mut(&id) else {
            return false;
        };
        let Some(open) = &mut supply.open else { return false };
        if offset != *sent + supply.buffered || open.ended.is_some() {
            return false;
        }
        open.ended = Some(offset);
        open.asked = false;
        self.unpark_data(id);
        true
    }

    /// The source of a supplied body failed: the message is cancelled with CANCEL IO once the
    /// bytes supplied before are sent. `false` if the message is gone.
    pub(super) fn supply_failed(&mut self, id: MessageId, offset: u64) -> bool {
        let Some(Outgoing { source: Source::Supplied(supply), .. }) = self.messages.get_mut(&id) else {
            return false;
        };
        supply.failed = Some(supply.failed.map_or(offset, |at| at.min(offset)));
        self.unpark_data(id);
        true
    }

    fn unpark_data(&mut self, id: MessageId) {
        if let Some(level) = self.parked_data.remove(&id) {
            self.levels[level].push_back(id);
        }
    }

    /// The next request for the bytes of a supplied body.
    pub(super) fn poll_demand(&mut self) -> Option<Demand> {
        self.demands.pop_front()
    }

    /// Picks and builds the next chunk to send, if any message can send now.
    /// `open_length`: both sides offered open-length messages (§5.1); without it one fails
    /// (CANCEL REFUSED, before its HEAD: it was queued before the handshake told).
    pub(super) fn next(&mut self, peer: &Limits, chunk_size: usize, open_length: bool) -> Option<Scheduled> {
        for level in (0..Priority::LEVELS).rev() {
            while let Some(id) = self.levels[level].pop_front() {
                #[cfg(test)]
                {
                    self.attempts += 1;
                }
                match self.attempt(id, peer, chunk_size, open_length) {
                    Attempt::Blocked(Lack::Credit) => self.parked_credit[level].push_back(id),
                    Attempt::Blocked(Lack::Slot) => self.parked_slot[level].push_back(id),
                    Attempt::Blocked(Lack::Data) => {
                        self.parked_data.insert(id, level);
                    }
                    Attempt::Sent(frame, more) => {
                        self.ask(id);
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

    /// Credit may have become free: every message waiting for it rejoins its level's rotation.
    fn unpark_credit(&mut self) {
        for (level, parked) in self.levels.iter_mut().zip(&mut self.parked_credit) {
            level.append(parked);
        }
    }

    /// A `max_in_flight` slot freed: every message waiting for one rejoins its level's rotation.
    fn unpark_slot(&mut self) {
        for (level, parked) in self.levels.iter_mut().zip(&mut self.parked_slot) {
            level.append(parked);
        }
    }

    /// Applies the peer's CREDIT (§5.5).
    pub(super) fn raise_credit(&mut self, limit: u64) {
        let before = self.credit.available();
        self.credit.raise(limit);
        if self.credit.available() > before {
            self.unpark_credit();
        }
    }

    /// One of our requests is settled (answered, cancelled, failed): the peer no longer counts it.
    pub(super) fn settle_request(&mut self) {
        self.open -= 1;
        self.unpark_slot();
    }

    /// Bytes held in memory by queued messages at `level` or more urgent (§8.5).
    pub(super) fn queued_bytes(&self, level: u8) -> u64 {
        self.queued[usize::from(level)..].iter().sum()
    }

    fn attempt(&mut self, id: MessageId, peer: &Limits, chunk_size: usize, open_length: bool) -> Attempt {
        let in_flight_full = self.in_flight >= peer.max_in_flight;
        let open_full = self.open >= peer.max_in_flight;
        let message = self.messages.get_mut(&id).expect("queued messages exist");
        if message.head_sent {
            return Self::attempt_data(message, &mut self.credit, peer, chunk_size);
        }
        if message.total == OPEN_TOTAL {
            if !open_length {
                return Attempt::Failed(CancelReason::REFUSED);
            }
            return self.attempt_open_head(id, peer, chunk_size, open_full);
        }
        if message.total > peer.max_message {
            return Attempt::Failed(CancelReason::TOO_LARGE);
        }
        // A supplied body's HEAD waits for its first bytes, and then carries what has come.
        let available = message.source.available(0, message.total);
        if available == 0 && message.total > 0 {
            return message.source.lacking(message.sent);
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
            true => (message.total.min(room).min(available), free < message.total),
            false => cut_to_credit(message.total.min(room), free, peer.window),
        };
        let first = first.min(available);
        let single = first == message.total;
        // §8.1: the peer counts every request until it answers it, and every other message while
        // partly received; answers only against the second, so they never wait for requests.
        let slot_full = match message.kind {
            Kind::Request => open_full,
            kind if kind.opens_exchange() => !single && open_full,
            _ => !single && in_flight_full,
        };
        if slot_full || blocked {
            (message.route, message.meta) = (head.route.take(), head.meta.take());
            return Attempt::Blocked(if slot_full { Lack::Slot } else { Lack::Credit });
        }
        head.payload = message.source.take(0, first);
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
        if message.kind == Kind::Request || !single {
            self.open += 1;
        }
        Attempt::Sent(Frame::Head(head), !single)
    }

    /// The HEAD of an open-length body (§5.2): it goes as soon as a slot is free, with what has
    /// been supplied (maybe nothing), so the peer can start on it; a body that ended with every
    /// byte in one frame goes as a complete message of known length instead.
    fn attempt_open_head(&mut self, id: MessageId, peer: &Limits, chunk_size: usize, open_full: bool) -> Attempt {
        let message = self.messages.get_mut(&id).expect("queued messages exist");
        let available = message.source.available(0, 0);
        if message.source.open_end().is_none()
            && matches!(message.source, Source::Supplied(Supply { failed: Some(0), .. }))
        {
            return Attempt::Failed(CancelReason::IO);
        }
        let key = message.key.unwrap_or(Key { id: self.next_exchange, ours: true });
        let ended = message.source.open_end() == Some(available);
        let mut head = Head {
            xid: key.to_xid(),
            kind: message.kind,
            priority: message.priority,
            route: message.route.take(),
            meta: message.meta.take(),
            total: OPEN_TOTAL,
            payload: Bytes::new(),
        };
        let overhead = encoded_body_len(&Frame::Head(head.clone())) as u64;
        let room = u64::from(peer.max_frame).saturating_sub(overhead).min(chunk_size as u64);
        let free = self.credit.available();
        let single = ended && available <= room && available <= peer.max_message && free >= available;
        let (first, blocked) = match single {
            true => (available, false),
            false => cut_to_credit(available.min(room), free, peer.window),
        };
        let slot_full = match message.kind {
            Kind::Request => open_full,
            _ => !single && open_full,
        };
        if slot_full {
            (message.route, message.meta) = (head.route.take(), head.meta.take());
            return Attempt::Blocked(Lack::Slot);
        }
        // Without credit for its first bytes the HEAD goes alone: it needs none.
        let first = if blocked { 0 } else { first };
        head.payload = message.source.take(0, first);
        if single {
            head.total = first;
        }
        if message.key.is_none() {
            message.key = Some(key);
            self.by_key.insert(key, id);
            self.next_exchange = self.next_exchange.wrapping_add(1);
        }
        message.head_sent = true;
        self.credit.spend(first, false);
        message.sent = first;
        if single {
            message.total = first;
        } else {
            message.in_flight = true;
            self.in_flight += 1;
        }
        if message.kind == Kind::Request || !single {
            self.open += 1;
        }
        Attempt::Sent(Frame::Head(head), !single)
    }

    fn attempt_data(message: &mut Outgoing, credit: &mut SendCredit, peer: &Limits, chunk_size: usize) -> Attempt {
        if message.total == OPEN_TOTAL {
            return Self::attempt_open_data(message, credit, peer, chunk_size);
        }
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
                return Attempt::Blocked(Lack::Credit);
            }
        }
        // A supplied body sends what has come of the chunk, or waits for it.
        len = len.min(message.source.available(message.sent, message.total));
        if len == 0 {
            return message.source.lacking(message.sent);
        }
        let payload = message.source.take(message.sent, len);
        credit.spend(len, message.reserved);
        let offset = message.sent;
        message.sent += len;
        let end = message.sent == message.total;
        Attempt::Sent(Frame::Data(Data { xid, offset, end, payload }), !end)
    }

    /// The next DATA of an open-length body: what has been supplied, cut to the credit and the
    /// frame; once the body ended, END (an empty DATA if every byte was already sent, §5.3).
    fn attempt_open_data(message: &mut Outgoing, credit: &mut SendCredit, peer: &Limits, chunk_size: usize) -> Attempt {
        let xid = message.key.expect("set with the HEAD").to_xid();
        let offset = message.sent;
        let available = message.source.available(offset, 0);
        if available == 0 {
            if message.source.open_ended(offset) {
                message.total = offset;
                return Attempt::Sent(Frame::Data(Data { xid, offset, end: true, payload: Bytes::new() }), false);
            }
            return message.source.lacking(offset);
        }
        let overhead = 2 + varint::encoded_len(xid.to_wire()) + varint::encoded_len(offset) + crate::frame::CRC_LEN;
        let room = (peer.max_frame as u64).saturating_sub(overhead as u64).min(chunk_size as u64);
        if room == 0 {
            return Attempt::Failed(CancelReason::TOO_LARGE);
        }
        let (len, blocked) = cut_to_credit(available.min(room), credit.available(), peer.window);
        if blocked {
            return Attempt::Blocked(Lack::Credit);
        }
        let payload = message.source.take(offset, len);
        credit.spend(len, false);
        message.sent += len;
        let end = message.source.open_ended(message.sent);
        if end {
            message.total = message.sent;
        }
        Attempt::Sent(Frame::Data(Data { xid, offset, end, payload }), !end)
    }

    /// Drops a message: returns its exchange if the peer knows it, that is if the HEAD was sent
    /// or the message answers the peer's request (§5.4).
    fn forget(&mut self, id: MessageId) -> Option<Key> {
        let message = self.messages.remove(&id)?;
        let unsent = message.total - message.sent;
        match message.source {
            Source::Bytes(_) | Source::Chain(..) => self.queued[usize::from(message.priority.level())] -= message.total,
            Source::Supplied(_) => {
                // Its pending requests are void; the caller drops the source.
                self.parked_data.remove(&id);
                self.demands.retain(|d| !matches!(d, Demand::Read { message, .. } if *message == id));
                self.demands.push_back(Demand::Release { message: id });
            }
        }
        if message.reserved && unsent > 0 {
            self.credit.unreserve(unsent);
            self.unpark_credit();
        }
        if message.in_flight {
            self.in_flight -= 1;
            if message.kind != Kind::Request {
                // A request's slot is the session's to settle, when its answer is in.
                self.open -= 1;
            }
            self.unpark_slot();
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
        for queue in [&mut self.levels[level], &mut self.parked_credit[level], &mut self.parked_slot[level]] {
            queue.retain(|queued| *queued != id);
        }
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

    /// Messages not yet completely sent (diagnostics).
    pub(super) fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether nothing is waiting to be sent.
    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Drops everything (the session closed).
    pub(super) fn clear(&mut self) -> Vec<MessageId> {
        self.levels.iter_mut().chain(&mut self.parked_credit).chain(&mut self.parked_slot).for_each(VecDeque::clear);
        self.parked_data.clear();
        self.by_key.clear();
        self.in_flight = 0;
        self.open = 0;
        self.queued = Default::default();
        self.demands.retain(|d| !matches!(d, Demand::Read { .. }));
        let mut ids = Vec::with_capacity(self.messages.len());
        for (id, message) in core::mem::take(&mut self.messages) {
            if let Source::Supplied(_) = message.source {
                self.demands.push_back(Demand::Release { message: id });
            }
            ids.push(id);
        }
        ids
    }
}

//! Reassembly of incoming messages (docs/PROTOCOL.md §5.2, §5.3, §8.2).
//!
//! Any interleaving of chunks of many messages delivers each message once, intact. Messages up to
//! `inline_limit` grow in memory as their bytes arrive (never by the size a peer claims); larger
//! ones are handed to the caller's storage as they arrive ([`StoreOp`]s), which discards them
//! unless the message completes. Messages the application chose to stream (a [`StreamPolicy`])
//! are handed over chunk by chunk as they arrive. Nothing here does I/O.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::collections::VecDeque;

use crate::collections::HashMap;
use crate::time::{Duration, Instant};

use bytes::Bytes;

use super::event::{Exchange, Incoming, Payload};
use super::handoff::StoreOp;
use super::spill::{SpillBudget, SpillTicket};
use super::{Key, ProtocolError};
use crate::frame::{CancelReason, Data, Head, Kind, Limits, Priority, Route, OPEN_TOTAL};

/// What one HEAD or DATA frame led to.
#[derive(Debug)]
pub(super) enum Arrival {
    /// Stored, or dropped without consequence.
    Nothing,
    /// A whole message; `held` bytes of credit are released when the application takes it.
    Complete { message: Incoming, held: u64 },
    /// A streamed message starts ([`Payload::Streamed`]), with its first bytes. Streamed bytes
    /// hold their credit until the application says it consumed them.
    Begin { message: Incoming, first: Bytes, end: bool },
    /// The next bytes of a streamed message.
    Chunk { exchange: Exchange, bytes: Bytes, end: bool },
    /// A request or one-way message whose announced total exceeds its route's size limit (a
    /// [`SizePolicy`]): nothing of it is stored, its later DATA is dropped as unknown.
    Oversized { key: Key, head: Head, limit: u64 },
    /// The message was dropped; the peer must be told with a CANCEL. `seen`: the application
    /// was already given its start (a streamed message) and must be told too.
    Rejected { key: Key, reason: CancelReason, seen: bool },
}

/// Which incoming requests and one-way messages are streamed, by route.
pub type StreamPolicy = Box<dyn Fn(&Route) -> bool + Send>;

/// The largest payload a route takes, if it has a limit of its own (a route that decodes its
/// payload whole: typed, JSON or codec routes).
pub type SizePolicy = Box<dyn Fn(&Route) -> Option<u64> + Send>;

struct Partial {
    exchange: Exchange,
    kind: Kind,
    route: Option<Route>,
    priority: Priority,
    meta: Option<Bytes>,
    /// [`OPEN_TOTAL`] for an open-length message (§5.2).
    total: u64,
    received: u64,
    /// The most bytes it may bring: `total` for a message of known length; for an open-length
    /// one reassembled in memory the least of `inline_limit`, `max_message` and its route's
    /// limit (§8.1), counted as its bytes arrive; for a streamed one none while credit bounds it,
    /// `max_message` without credit (window 0, §8.3).
    limit: u64,
    store: Store,
    /// When its last chunk arrived.
    touched: Instant,
}

enum Store {
    Memory(Vec<u8>),
    /// In the caller's storage, with its share of the spill budget, given back when the message
    /// completes (its storage is then the application's) or is dropped. `finishing`: every byte
    /// was handed out and the caller was asked to finish ([`StoreOp::Finish`]).
    Storage {
        _ticket: SpillTicket,
        finishing: bool,
    },
    /// Handed to the application as it arrives.
    Stream,
}

impl Partial {
    /// Whether every byte is in and the caller's storage is finishing it: it cannot stall.
    fn finishing(&self) -> bool {
        matches!(self.store, Store::Storage { finishing: true, .. })
    }

    /// Whether its stall clock runs (§8.2): not while its storage finishes, and not for an
    /// open-length message on a link that loses nothing (the stream framing, or reliable
    /// delivery, §16), whose sender may have nothing for a while (a dead peer is keepalive's to
    /// find). On a lossy link an open message whose END was lost is a stalled one.
    fn may_stall(&self, open_stalls: bool) -> bool {
        !self.finishing() && (open_stalls || self.total != OPEN_TOTAL)
    }
}

/// A message as the application sees it, from its HEAD.
fn incoming(exchange: Exchange, head: &Head, payload: Payload) -> Incoming {
    Incoming {
        exchange,
        kind: head.kind,
        route: head.route.clone(),
        priority: head.priority,
        meta: head.meta.clone(),
        payload,
    }
}

/// Messages being reassembled, by exchange.
pub(super) struct Inbox {
    partial: HashMap<Key, Partial>,
    limits: Limits,
    spill_budget: SpillBudget,
    /// Operations for the caller's storage, in order ([`Session::poll_store`](super::Session::poll_store)).
    ops: VecDeque<StoreOp>,
    /// Tolerate loss and duplication (lossy framing) instead of failing (§6).
    tolerant: bool,
    /// Open-length messages can stall (§8.2): frames may be lost for good (the lossy framing
    /// without reliable delivery).
    open_stalls: bool,
    /// Credit released by the last call; the session collects it.
    released: u64,
    /// Credit of complete open-length messages that went back as their bytes arrived, to be
    /// held again until the application takes them (§8.1): the session collects it.
    withheld: u64,
    stream_policy: Option<StreamPolicy>,
    size_policy: Option<SizePolicy>,
}

impl Inbox {
    pub(super) fn new(limits: Limits, spill_budget: SpillBudget, tolerant: bool) -> Self {
        Self {
            partial: HashMap::new(),
            limits,
            spill_budget,
            ops: VecDeque::new(),
            tolerant,
            open_stalls: tolerant,
            released: 0,
            withheld: 0,
            stream_policy: None,
            size_policy: None,
        }
    }

    pub(super) fn take_stream_policy(&mut self) -> Option<StreamPolicy> {
        self.stream_policy.take()
    }

    pub(super) fn set_stream_policy(&mut self, policy: StreamPolicy) {
        self.stream_policy = Some(policy);
    }

    pub(super) fn take_size_policy(&mut self) -> Option<SizePolicy> {
        self.size_policy.take()
    }

    pub(super) fn set_size_policy(&mut self, policy: SizePolicy) {
        self.size_policy = Some(policy);
    }

    /// The size limit of this message's route, if it opens an exchange and its route has one.
    fn route_limit(&self, head: &Head) -> Option<u64> {
        match (&self.size_policy, &head.route) {
            (Some(policy), Some(route)) if head.kind.opens_exchange() => policy(route),
            _ => None,
        }
    }

    /// Whether the application chose to stream this message (requests and one-way messages only).
    fn streams(&self, head: &Head) -> bool {
        match (&self.stream_policy, &head.route) {
            (Some(policy), Some(route)) if head.kind.opens_exchange() => policy(route),
            _ => false,
        }
    }

    /// Whether `key` is a partial message being streamed to the application.
    pub(super) fn is_streamed(&self, key: Key) -> bool {
        self.partial.get(&key).is_some_and(|p| matches!(p.store, Store::Stream))
    }

    /// The next operation for the caller's storage.
    pub(super) fn poll_store(&mut self) -> Option<StoreOp> {
        self.ops.pop_front()
    }

    /// Tells the caller's storage to discard a message the session dropped after completing it
    /// (a request withdrawn before the application took it).
    pub(super) fn discard_stored(&mut self, exchange: Exchange) {
        self.ops.push_back(StoreOp::Discard { exchange });
    }

    /// Credit released since the last call: bytes dropped.
    pub(super) fn take_released(&mut self) -> u64 {
        core::mem::take(&mut self.released)
    }

    /// Credit to hold again since the last call: the bytes of complete open-length messages,
    /// released as they arrived, now held like any complete message until the application
    /// takes it (otherwise unread open messages would be bounded by nothing).
    pub(super) fn take_withheld(&mut self) -> u64 {
        core::mem::take(&mut self.withheld)
    }

    /// A HEAD whose exchange the session has already checked. `stream_answer`: it answers a
    /// request of ours whose answer is streamed ([`SendOptions::stream_answer`](super::SendOptions)).
    pub(super) fn head(
        &mut self,
        key: Key,
        exchange: Exchange,
        head: Head,
        now: Instant,
        stream_answer: bool,
    ) -> Result<Arrival, ProtocolError> {
        let len = head.payload.len() as u64;
        if self.partial.contains_key(&key) {
            if !self.tolerant {
                return Err(ProtocolError::ExchangeReused(key.id));
            }
            self.released += len;
            return Ok(Arrival::Nothing);
        }
        let open = head.is_open();
        if !open && head.total > self.limits.max_message {
            return Ok(self.reject(key, len, CancelReason::TOO_LARGE));
        }
        if let Some(limit) = self.route_limit(&head).filter(|limit| !open && head.total > *limit) {
            // §8.4: refused at its HEAD, before a byte is stored; the application answers.
            self.released += len;
            return Ok(Arrival::Oversized { key, head, limit });
        }
        let streamed = (stream_answer && head.kind == Kind::Response) || self.streams(&head);
        if head.is_complete() {
            return Ok(match streamed {
                true => Arrival::Begin {
                    message: incoming(exchange, &head, Payload::Streamed { total: head.total }),
                    first: head.payload,
                    end: true,
                },
                false => Arrival::Complete {
                    message: incoming(exchange, &head, Payload::Memory(head.payload.clone())),
                    held: len,
                },
            });
        }
        if self.partial.len() >= self.limits.max_in_flight as usize {
            return Ok(self.reject(key, len, CancelReason::REFUSED));
        }
        let mut limit = head.total;
        let store = if streamed {
            if open && self.limits.window == 0 {
                // §8.3: without credit nothing else bounds what an unread stream holds.
                limit = self.limits.max_message;
            }
            Store::Stream
        } else if open {
            // §8.1: reassembled in memory, bounded as its bytes arrive; never stored.
            limit = self.limits.inline_limit.min(self.limits.max_message);
            if let Some(route) = self.route_limit(&head) {
                limit = limit.min(route);
            }
            Store::Memory(Vec::with_capacity(head.payload.len()))
        } else if head.total <= self.limits.inline_limit {
            Store::Memory(Vec::with_capacity(head.payload.len()))
        } else {
            // §8.4: the whole announced total is reserved before the caller's storage hears of
            // it, so no claim can take more descriptors or disk than the budget shared by the
            // endpoint's connections.
            let Some(ticket) = self.spill_budget.reserve(head.total) else {
                return Ok(self.reject(key, len, CancelReason::STORAGE_FULL));
            };
            self.ops.push_back(StoreOp::Begin { exchange, total: head.total });
            Store::Storage { _ticket: ticket, finishing: false }
        };
        let partial = Partial {
            exchange,
            kind: head.kind,
            route: head.route.clone(),
            priority: head.priority,
            meta: head.meta.clone(),
            total: head.total,
            received: 0,
            limit,
            store,
            touched: now,
        };
        self.partial.insert(key, partial);
        if streamed {
            // The application starts on the HEAD; its payload bytes are the first chunk.
            let message = incoming(exchange, &head, Payload::Streamed { total: head.total });
            self.partial.get_mut(&key).expect("just inserted").received = len;
            return Ok(Arrival::Begin { message, first: head.payload, end: false });
        }
        self.append(key, head.payload, false)
    }

    /// A DATA frame.
    pub(super) fn data(&mut self, key: Key, data: Data, now: Instant) -> Result<Arrival, ProtocolError> {
        let len = data.payload.len() as u64;
        let Some(partial) = self.partial.get_mut(&key) else {
            // Unknown or cancelled exchange: chunks may still be on their way after a CANCEL.
            self.released += len;
            return Ok(Arrival::Nothing);
        };
        partial.touched = now;
        let (expected, total) = (partial.received, partial.total);
        let end = data.offset + len;
        if data.offset != expected {
            if !self.tolerant {
                return Err(ProtocolError::Offset { id: key.id, expected, got: data.offset });
            }
            if data.offset < expected {
                self.released += len;
                return Ok(Arrival::Nothing);
            }
            return Ok(self.reject(key, len, CancelReason::DAMAGED));
        }
        if total == OPEN_TOTAL {
            // §8.1: a reassembled open-length message over its limit is cancelled.
            if end > partial.limit {
                return Ok(self.reject(key, len, CancelReason::TOO_LARGE));
            }
            return self.append(key, data.payload, data.end);
        }
        if end > total || (end == total) != data.end {
            if !self.tolerant {
                return Err(ProtocolError::Total { id: key.id, total });
            }
            return Ok(self.reject(key, len, CancelReason::DAMAGED));
        }
        self.append(key, data.payload, data.end)
    }

    /// The next bytes of a partial message; `ended`: the frame had END (what ends an
    /// open-length message; a message of known length ends at its total).
    fn append(&mut self, key: Key, bytes: Bytes, ended: bool) -> Result<Arrival, ProtocolError> {
        let partial = self.partial.get_mut(&key).expect("caller checked");
        let open = partial.total == OPEN_TOTAL;
        if open && partial.received + bytes.len() as u64 > partial.limit {
            // An open HEAD's first bytes over the limit (the DATA path checks before).
            let len = bytes.len() as u64;
            return Ok(self.reject(key, len, CancelReason::TOO_LARGE));
        }
        match &mut partial.store {
            Store::Memory(buf) => {
                // Grow by doubling as bytes arrive, never past the announced total (§8.2).
                if buf.capacity() - buf.len() < bytes.len() {
                    let cap = partial.total.min(partial.limit).min(usize::MAX as u64) as usize;
                    let target = (buf.capacity() * 2).max(buf.len() + bytes.len()).min(cap);
                    buf.reserve_exact(target.saturating_sub(buf.len()));
                }
                buf.extend_from_slice(&bytes);
                if open {
                    // Its credit goes back as it arrives: the sender cannot know to reserve the
                    // whole (§5.5), and `limit` bounds what is held.
                    self.released += bytes.len() as u64;
                }
            }
            // Held until the caller says they are stored (`Session::consumed`).
            Store::Storage { .. } if !bytes.is_empty() => {
                self.ops.push_back(StoreOp::Write { exchange: partial.exchange, bytes: bytes.clone() })
            }
            Store::Storage { .. } | Store::Stream => {}
        }
        partial.received += bytes.len() as u64;
        let end = if open { ended } else { partial.received == partial.total };
        match &mut partial.store {
            Store::Stream => {
                let exchange = partial.exchange;
                if end {
                    self.partial.remove(&key);
                }
                return Ok(Arrival::Chunk { exchange, bytes, end });
            }
            // Complete once the caller's storage is (`Session::store_finished`).
            Store::Storage { finishing, .. } if end => {
                *finishing = true;
                self.ops.push_back(StoreOp::Finish { exchange: partial.exchange });
                return Ok(Arrival::Nothing);
            }
            _ if !end => return Ok(Arrival::Nothing),
            _ => {}
        }
        Ok(self.complete(key))
    }

    /// The caller's storage finished the stored message `key`: it is complete.
    pub(super) fn store_finished(&mut self, key: Key) -> Option<Arrival> {
        match self.partial.get(&key)?.store {
            Store::Storage { finishing: true, .. } => Some(self.complete(key)),
            _ => None,
        }
    }

    /// A message whose last byte is in: its payload in memory, or in the caller's storage.
    fn complete(&mut self, key: Key) -> Arrival {
        let partial = self.partial.remove(&key).expect("present");
        let (payload, held) = match partial.store {
            // An open-length message's credit went back as it arrived (its sender cannot
            // reserve the whole, §5.5); complete, it is held again until the application takes
            // it, as for any message in memory.
            Store::Memory(buf) if partial.total == OPEN_TOTAL => {
                self.withheld += partial.received;
                (Payload::Memory(buf.into()), partial.received)
            }
            Store::Memory(buf) => (Payload::Memory(buf.into()), partial.total),
            // The ticket goes with the store: a complete message's storage is the application's.
            // Its bytes' credit came back as the caller stored them.
            Store::Storage { .. } => (Payload::Stored { total: partial.total }, 0),
            Store::Stream => unreachable!("streamed messages complete in `append`"),
        };
        let message = Incoming {
            exchange: partial.exchange,
            kind: partial.kind,
            route: partial.route,
            priority: partial.priority,
            meta: partial.meta,
            payload,
        };
        Arrival::Complete { message, held }
    }

    /// Drops a message and the `extra` bytes of the frame that condemned it.
    fn reject(&mut self, key: Key, extra: u64, reason: CancelReason) -> Arrival {
        let seen = self.is_streamed(key);
        self.cancel(key);
        self.released += extra;
        Arrival::Rejected { key, reason, seen }
    }

    /// Drops a partial message (the caller's storage is told to discard it; streamed or stored
    /// bytes already handed over keep their credit until the caller consumes them). Whether
    /// there was one.
    pub(super) fn cancel(&mut self, key: Key) -> bool {
        let Some(partial) = self.partial.remove(&key) else { return false };
        match partial.store {
            Store::Memory(_) if partial.total == OPEN_TOTAL => {}
            Store::Memory(_) => self.released += partial.received,
            Store::Storage { .. } => self.ops.push_back(StoreOp::Discard { exchange: partial.exchange }),
            Store::Stream => {}
        }
        true
    }

    /// The exchange key of a partial message stored by the caller, if `exchange` is one.
    pub(super) fn stored_key(&self, exchange: Exchange) -> Option<Key> {
        self.partial
            .iter()
            .find(|(_, p)| p.exchange == exchange && matches!(p.store, Store::Storage { .. }))
            .map(|(k, _)| *k)
    }

    /// Drops a stored partial message whose storage failed: the peer is told (CANCEL IO).
    pub(super) fn store_failed(&mut self, key: Key) -> Arrival {
        self.reject(key, 0, CancelReason::IO)
    }

    /// Reliable delivery (§16) is in use: no frame is lost for good, so an open-length message
    /// that pauses is not a stalled one.
    pub(super) fn set_lossless(&mut self) {
        self.open_stalls = false;
    }

    /// When the longest-stalled partial message reaches `timeout` without a new chunk.
    pub(super) fn stall_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.partial.values().filter(|p| p.may_stall(self.open_stalls)).map(|p| p.touched + timeout).min()
    }

    /// Drops the partial messages stalled for `timeout` at `now`, to be cancelled with `reason`.
    pub(super) fn expire_stalled(&mut self, now: Instant, timeout: Duration, reason: CancelReason) -> Vec<Arrival> {
        let stalled: Vec<Key> = self
            .partial
            .iter()
            .filter(|(_, p)| p.may_stall(self.open_stalls) && p.touched + timeout <= now)
            .map(|(k, _)| *k)
            .collect();
        stalled.into_iter().map(|key| self.reject(key, 0, reason)).collect()
    }

    /// Restarts every partial message's stall clock (the peer waits for us, not we for it).
    pub(super) fn touch_all(&mut self, now: Instant) {
        for partial in self.partial.values_mut() {
            partial.touched = now;
        }
    }

    /// Bytes received of a partial message and its total.
    pub(super) fn progress(&self, key: Key) -> Option<(u64, u64)> {
        self.partial.get(&key).map(|p| (p.received, p.total))
    }

    /// Whether `key` is a message being reassembled (or streamed).
    pub(super) fn contains(&self, key: Key) -> bool {
        self.partial.contains_key(&key)
    }

    /// Number of messages being reassembled.
    pub(super) fn len(&self) -> usize {
        self.partial.len()
    }

    /// Drops everything (the session closed); the caller's storage discards what it holds.
    pub(super) fn clear(&mut self) {
        for (_, partial) in core::mem::take(&mut self.partial) {
            if let Store::Storage { .. } = partial.store {
                self.ops.push_back(StoreOp::Discard { exchange: partial.exchange });
            }
        }
    }
}

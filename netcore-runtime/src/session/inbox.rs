//! Reassembly of incoming messages (docs/PROTOCOL.md §5.2, §5.3, §8.2).
//!
//! Any interleaving of chunks of many messages delivers each message once, intact. Messages up to
//! `inline_limit` grow in memory as their bytes arrive (never by the size a peer claims); larger
//! ones are written to a temporary file that is deleted unless the message completes.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tempfile::NamedTempFile;

use super::event::{Exchange, Incoming, Payload};
use super::{Key, ProtocolError};
use crate::frame::{CancelReason, Data, Head, Kind, Limits, Priority, Route};

/// What one HEAD or DATA frame led to.
#[derive(Debug)]
pub(super) enum Arrival {
    /// Stored, or dropped without consequence.
    Nothing,
    /// A whole message; `held` bytes of credit are released when the application takes it.
    Complete { message: Incoming, held: u64 },
    /// The message was dropped; the peer must be told with a CANCEL.
    Rejected { key: Key, reason: CancelReason },
}

struct Partial {
    exchange: Exchange,
    kind: Kind,
    route: Option<Route>,
    priority: Priority,
    meta: Option<Bytes>,
    total: u64,
    received: u64,
    store: Store,
    /// When its last chunk arrived.
    touched: Instant,
}

enum Store {
    Memory(Vec<u8>),
    File(NamedTempFile),
}

impl Store {
    /// Appends bytes; returns how many bytes of credit this releases at once (those on disk).
    fn append(&mut self, bytes: &[u8], total: u64) -> std::io::Result<u64> {
        match self {
            Store::Memory(buf) => {
                // Grow by doubling as bytes arrive, never past the announced total (§8.2).
                if buf.capacity() - buf.len() < bytes.len() {
                    let target = (buf.capacity() * 2).max(buf.len() + bytes.len()).min(total as usize);
                    buf.reserve_exact(target - buf.len());
                }
                buf.extend_from_slice(bytes);
                Ok(0)
            }
            Store::File(file) => {
                file.as_file_mut().write_all(bytes)?;
                Ok(bytes.len() as u64)
            }
        }
    }
}

/// Messages being reassembled, by exchange.
pub(super) struct Inbox {
    partial: HashMap<Key, Partial>,
    limits: Limits,
    spill_dir: Option<PathBuf>,
    /// Tolerate loss and duplication (lossy framing) instead of failing (§6).
    tolerant: bool,
    /// Credit released by the last call; the session collects it.
    released: u64,
}

impl Inbox {
    pub(super) fn new(limits: Limits, spill_dir: Option<PathBuf>, tolerant: bool) -> Self {
        Self { partial: HashMap::new(), limits, spill_dir, tolerant, released: 0 }
    }

    /// Credit released since the last call: bytes dropped or written to storage.
    pub(super) fn take_released(&mut self) -> u64 {
        std::mem::take(&mut self.released)
    }

    /// A HEAD whose exchange the session has already checked.
    pub(super) fn head(
        &mut self,
        key: Key,
        exchange: Exchange,
        head: Head,
        now: Instant,
    ) -> Result<Arrival, ProtocolError> {
        let len = head.payload.len() as u64;
        if self.partial.contains_key(&key) {
            if !self.tolerant {
                return Err(ProtocolError::ExchangeReused(key.id));
            }
            self.released += len;
            return Ok(Arrival::Nothing);
        }
        if head.total > self.limits.max_message {
            return Ok(self.reject(key, len, CancelReason::TOO_LARGE));
        }
        if head.is_complete() {
            let message = Incoming {
                exchange,
                kind: head.kind,
                route: head.route,
                priority: head.priority,
                meta: head.meta,
                payload: Payload::Memory(head.payload),
            };
            return Ok(Arrival::Complete { message, held: len });
        }
        if self.partial.len() >= self.limits.max_in_flight as usize {
            return Ok(self.reject(key, len, CancelReason::REFUSED));
        }
        let store = if head.total <= self.limits.inline_limit {
            Store::Memory(Vec::with_capacity(head.payload.len()))
        } else {
            let dir = self.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
            match NamedTempFile::with_prefix_in(".netcore-rx-", dir) {
                Ok(file) => Store::File(file),
                Err(_) => return Ok(self.reject(key, len, CancelReason::IO)),
            }
        };
        let partial = Partial {
            exchange,
            kind: head.kind,
            route: head.route,
            priority: head.priority,
            meta: head.meta,
            total: head.total,
            received: 0,
            store,
            touched: now,
        };
        self.partial.insert(key, partial);
        self.append(key, &head.payload)
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
        if end > total || (end == total) != data.end {
            if !self.tolerant {
                return Err(ProtocolError::Total { id: key.id, total });
            }
            return Ok(self.reject(key, len, CancelReason::DAMAGED));
        }
        self.append(key, &data.payload)
    }

    fn append(&mut self, key: Key, bytes: &[u8]) -> Result<Arrival, ProtocolError> {
        let partial = self.partial.get_mut(&key).expect("caller checked");
        match partial.store.append(bytes, partial.total) {
            Ok(on_disk) => self.released += on_disk,
            Err(_) => return Ok(self.reject(key, bytes.len() as u64, CancelReason::IO)),
        }
        partial.received += bytes.len() as u64;
        if partial.received < partial.total {
            return Ok(Arrival::Nothing);
        }
        let partial = self.partial.remove(&key).expect("present");
        let (payload, held) = match partial.store {
            Store::Memory(buf) => (Payload::Memory(buf.into()), partial.total),
            Store::File(mut file) => match file.as_file_mut().flush() {
                Ok(()) => (Payload::File(file), 0),
                Err(_) => return Ok(Arrival::Rejected { key, reason: CancelReason::IO }),
            },
        };
        let message = Incoming {
            exchange: partial.exchange,
            kind: partial.kind,
            route: partial.route,
            priority: partial.priority,
            meta: partial.meta,
            payload,
        };
        Ok(Arrival::Complete { message, held })
    }

    /// Drops a message and the `extra` bytes of the frame that condemned it.
    fn reject(&mut self, key: Key, extra: u64, reason: CancelReason) -> Arrival {
        self.cancel(key);
        self.released += extra;
        Arrival::Rejected { key, reason }
    }

    /// Drops a partial message (its file is deleted). Whether there was one.
    pub(super) fn cancel(&mut self, key: Key) -> bool {
        let Some(partial) = self.partial.remove(&key) else { return false };
        if let Store::Memory(_) = partial.store {
            self.released += partial.received;
        }
        true
    }

    /// When the longest-stalled partial message reaches `timeout` without a new chunk.
    pub(super) fn stall_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.partial.values().map(|p| p.touched + timeout).min()
    }

    /// Drops the partial messages stalled for `timeout` at `now` (their tails were lost).
    pub(super) fn expire_stalled(&mut self, now: Instant, timeout: Duration) -> Vec<Arrival> {
        let stalled: Vec<Key> =
            self.partial.iter().filter(|(_, p)| p.touched + timeout <= now).map(|(k, _)| *k).collect();
        stalled.into_iter().map(|key| self.reject(key, 0, CancelReason::DAMAGED)).collect()
    }

    /// Bytes received of a partial message and its total.
    pub(super) fn progress(&self, key: Key) -> Option<(u64, u64)> {
        self.partial.get(&key).map(|p| (p.received, p.total))
    }

    /// Number of messages being reassembled.
    pub(super) fn len(&self) -> usize {
        self.partial.len()
    }

    /// Drops everything (the session closed).
    pub(super) fn clear(&mut self) {
        self.partial.clear();
    }
}

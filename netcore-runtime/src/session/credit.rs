//! Connection-level flow control in payload bytes (docs/PROTOCOL.md §5.5).

#[allow(unused_imports)]
use crate::prelude::*;

use super::ProtocolError;

/// The sender's view: how much payload the peer allows us to have sent.
#[derive(Debug, Default)]
pub(super) struct SendCredit {
    /// Absolute limit granted by the peer; `None` when the peer uses no credit (window 0).
    limit: Option<u64>,
    /// Payload bytes sent so far.
    sent: u64,
    /// Unsent bytes of started in-memory messages, promised to them (§5.5 liveness rule).
    reserved: u64,
}

impl SendCredit {
    /// Starts from the peer's announced window.
    pub(super) fn open(&mut self, window: u64) {
        self.limit = (window > 0).then_some(window);
    }

    /// Bytes a new chunk or message may still use.
    pub(super) fn available(&self) -> u64 {
        match self.limit {
            None => u64::MAX,
            Some(limit) => limit.saturating_sub(self.sent + self.reserved),
        }
    }

    /// Applies a CREDIT frame; stale or repeated limits are ignored.
    pub(super) fn raise(&mut self, limit: u64) {
        if let Some(current) = &mut self.limit {
            *current = (*current).max(limit);
        }
    }

    /// Payload bytes the peer still allows (reserved ones included); `None` without credit.
    pub(super) fn remaining(&self) -> Option<u64> {
        self.limit.map(|limit| limit.saturating_sub(self.sent))
    }

    pub(super) fn reserve(&mut self, bytes: u64) {
        self.reserved += bytes;
    }

    pub(super) fn unreserve(&mut self, bytes: u64) {
        self.reserved -= bytes;
    }

    /// Records `bytes` sent, out of a reservation or out of the free credit.
    pub(super) fn spend(&mut self, bytes: u64, reserved: bool) {
        if reserved {
            self.reserved -= bytes;
        }
        self.sent += bytes;
    }
}

/// The receiver's view: what it granted, received and released.
#[derive(Debug)]
pub(super) struct RecvCredit {
    window: u64,
    /// The largest message a sender holds back until its whole total is free (§5.5).
    largest_reserved: u64,
    received: u64,
    released: u64,
    /// The limit last announced (initially the window in our HELLO).
    announced: u64,
}

impl RecvCredit {
    /// Credit for a receiver announcing `window`, whose in-memory messages are at most
    /// `largest_reserved` bytes (its `min(inline_limit, max_message)`).
    pub(super) fn new(window: u64, largest_reserved: u64) -> Self {
        Self { window, largest_reserved, received: 0, released: 0, announced: window }
    }

    /// Accounts for received payload; more than granted is a protocol error.
    pub(super) fn receive(&mut self, bytes: usize) -> Result<(), ProtocolError> {
        let received = self.received.saturating_add(bytes as u64);
        if self.window > 0 && received > self.announced {
            return Err(ProtocolError::FlowControl { received, limit: self.announced });
        }
        self.received = received;
        Ok(())
    }

    /// The application or storage is done with `bytes` received bytes.
    pub(super) fn release(&mut self, bytes: u64) {
        self.released += bytes;
        debug_assert!(self.released <= self.received, "released more than received");
    }

    /// `bytes` released earlier are held again (a complete open-length message, §8.1): no new
    /// limit is announced until as much is released again.
    pub(super) fn withhold(&mut self, bytes: u64) {
        self.released = self.released.saturating_sub(bytes);
    }

    /// A new limit to announce: once a quarter of the window has been released since the last; or,
    /// when nothing is held, as soon as what is withheld could stop the sender from starting the
    /// largest in-memory message (it needs the whole total free, §5.5), which with nothing left in
    /// flight no later release would ever announce.
    pub(super) fn poll_update(&mut self) -> Option<u64> {
        let limit = self.released + self.window;
        let unannounced = limit.saturating_sub(self.announced);
        let batch_full = unannounced >= self.window.div_ceil(4);
        let could_block = self.held() == 0 && unannounced > self.window.saturating_sub(self.largest_reserved);
        if self.window == 0 || unannounced == 0 || !(batch_full || could_block) {
            return None;
        }
        self.announced = limit;
        Some(limit)
    }

    /// Payload bytes the peer may still send under the limit last announced; `None` without
    /// credit (window 0).
    pub(super) fn remaining(&self) -> Option<u64> {
        (self.window > 0).then(|| self.announced.saturating_sub(self.received))
    }

    /// Bytes received and not yet released: the memory the peer makes us hold.
    pub(super) fn held(&self) -> u64 {
        self.received - self.released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_is_absolute_and_monotonic() {
        let mut send = SendCredit::default();
        send.open(100);
        send.spend(60, false);
        assert_eq!(send.available(), 40);
        send.raise(50);
        assert_eq!(send.available(), 40, "a stale limit is ignored");
        send.raise(160);
        assert_eq!(send.available(), 100);
        send.reserve(30);
        assert_eq!(send.available(), 70);
        send.spend(30, true);
        assert_eq!(send.available(), 70);
    }

    #[test]
    fn window_zero_means_no_flow_control() {
        let mut send = SendCredit::default();
        send.open(0);
        assert_eq!(send.available(), u64::MAX);
        let mut recv = RecvCredit::new(0, 0);
        recv.receive(usize::MAX).unwrap();
        assert_eq!(recv.poll_update(), None);
    }

    #[test]
    fn receiver_enforces_and_updates() {
        let mut recv = RecvCredit::new(100, 90);
        recv.receive(100).unwrap();
        assert!(recv.receive(1).is_err());
        let mut recv = RecvCredit::new(100, 90);
        recv.receive(30).unwrap();
        recv.release(24);
        assert_eq!(recv.poll_update(), None, "less than a quarter released");
        recv.release(1);
        assert_eq!(recv.poll_update(), Some(125));
        assert_eq!(recv.held(), 5);
        recv.release(5);
        assert_eq!(recv.poll_update(), None, "nothing held, but 5 withheld bytes cannot block a 90-byte message");
        recv.receive(4).unwrap();
        recv.release(4);
        assert_eq!(recv.poll_update(), None, "9 withheld leave 91 free: a 90-byte message can start");
        recv.receive(2).unwrap();
        recv.release(2);
        assert_eq!(recv.poll_update(), Some(136), "11 withheld would block a 90-byte message: announce");
        let mut tight = RecvCredit::new(100, 98);
        tight.receive(3).unwrap();
        tight.release(3);
        assert_eq!(tight.poll_update(), Some(103), "3 withheld would block a 98-byte message: announce")
    }
}

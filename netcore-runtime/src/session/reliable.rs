//! Reliable delivery on the lossy framing (docs/PROTOCOL.md §16): selective repeat with 8-bit
//! sequence numbers and selective acknowledgements, on the caller's clock.
//!
//! Sender invariant: `slots[i]` holds the framed bytes of sequence number `snd_base + i`, and
//! `slots` never holds more than `send_window` entries, so every unacknowledged number is within
//! 128 of `snd_base`. Receiver invariant: `held[d]` holds the frame numbered `rcv_base + d` if it
//! arrived, for `d < recv_window`; `held[0]` is always empty (that frame is what is awaited).

#[allow(unused_imports)]
use crate::prelude::*;

use crate::time::{Duration, Instant};
use alloc::collections::VecDeque;

use bytes::Bytes;

use super::config::Reliability;
use super::ProtocolError;
use crate::frame::Frame;

struct Slot {
    /// The SEQ frame as framed on the wire, ready to go again.
    wire: Bytes,
    acked: bool,
    /// Due for retransmission: its timer expired, or a later frame was acknowledged first.
    lost: bool,
    sent_at: Instant,
    first_sent: Instant,
    /// Transmission order: on a link that never reorders, a frame sent before an acknowledged one
    /// and still unacknowledged was lost.
    tx: u64,
    retransmits: u32,
}

pub(super) struct Reliable {
    config: Reliability,
    send_window: u8,
    snd_base: u8,
    slots: VecDeque<Slot>,
    tx: u64,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    /// Doubles on every expiry of the retransmission timer, back to 1 on progress.
    backoff: u32,
    recv_window: u8,
    rcv_base: u8,
    held: VecDeque<Option<Frame>>,
    ack_due: bool,
}

impl Reliable {
    /// Reliable delivery between our `config` and a peer that receives with `peer_window`.
    pub(super) fn new(config: Reliability, peer_window: u8) -> Self {
        let recv_window = config.window();
        Self {
            send_window: recv_window.min(peer_window).max(1),
            snd_base: 0,
            slots: VecDeque::new(),
            tx: 0,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: config.rto_initial,
            backoff: 1,
            recv_window,
            rcv_base: 0,
            held: (0..recv_window).map(|_| None).collect(),
            ack_due: false,
            config,
        }
    }

    /// Whether a new SEQ frame fits in the window.
    pub(super) fn can_send(&self) -> bool {
        self.slots.len() < usize::from(self.send_window)
    }

    /// The sequence number of the next new frame.
    pub(super) fn next_seq(&self) -> u8 {
        self.snd_base.wrapping_add(self.slots.len() as u8)
    }

    /// Records a new SEQ frame, framed as `wire`, handed to the link at `now`.
    pub(super) fn sent(&mut self, wire: Bytes, now: Instant) {
        debug_assert!(self.can_send());
        self.tx += 1;
        let slot = Slot { wire, acked: false, lost: false, sent_at: now, first_sent: now, tx: self.tx, retransmits: 0 };
        self.slots.push_back(slot);
    }

    /// The next frame to send again, if any is due; oldest first.
    pub(super) fn retransmit(&mut self, now: Instant) -> Option<Bytes> {
        let slot = self.slots.iter_mut().find(|s| s.lost && !s.acked)?;
        self.tx += 1;
        slot.lost = false;
        slot.sent_at = now;
        slot.tx = self.tx;
        slot.retransmits += 1;
        Some(slot.wire.clone())
    }

    /// Frames waiting to be acknowledged.
    pub(super) fn unacked(&self) -> usize {
        self.slots.iter().filter(|s| !s.acked).count()
    }

    fn timeout(&self) -> Duration {
        (self.rto * self.backoff).min(self.config.rto_max)
    }

    /// When [`on_timeout`](Self::on_timeout) must run: a retransmission timer, or the deadline
    /// after which the peer is taken for gone.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let timeout = self.timeout();
        let waiting = self.slots.iter().filter(|s| !s.acked);
        let retransmit = waiting.clone().filter(|s| !s.lost).map(|s| s.sent_at + timeout).min();
        let give_up = waiting.map(|s| s.first_sent + self.config.give_up).min();
        match (retransmit, give_up) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Marks the frames whose timer expired for retransmission. `Err` with how long the oldest
    /// frame waited when that is the give-up time or more: the peer does not acknowledge any more.
    pub(super) fn on_timeout(&mut self, now: Instant) -> Result<(), Duration> {
        let oldest = self.slots.iter().filter(|s| !s.acked).map(|s| s.first_sent).min();
        if let Some(waited) = oldest.map(|first| now.saturating_duration_since(first)) {
            if waited >= self.config.give_up {
                return Err(waited);
            }
        }
        let timeout = self.timeout();
        let mut expired = false;
        for slot in self.slots.iter_mut().filter(|s| !s.acked && !s.lost && s.sent_at + timeout <= now) {
            slot.lost = true;
            expired = true;
        }
        if expired {
            self.backoff = (self.backoff * 2).min(64);
        }
        Ok(())
    }

    /// Applies an ACK (§16).
    pub(super) fn on_ack(&mut self, next: u8, received: u128, now: Instant) -> Result<(), ProtocolError> {
        let in_flight = self.slots.len();
        let advance = usize::from(next.wrapping_sub(self.snd_base));
        if advance > in_flight {
            // Behind our base: an old ACK (a duplicate); ahead of what we sent: a broken peer.
            if usize::from(self.snd_base.wrapping_sub(next)) <= usize::from(crate::frame::MAX_RELIABLE_WINDOW) {
                return Ok(());
            }
            return Err(ProtocolError::BadAck { next, base: self.snd_base, sent: in_flight as u8 });
        }
        let mut newest_acked = 0;
        let mut sample = None;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let cumulative = i < advance;
            let selective = i > advance && i - advance - 1 < 128 && received >> (i - advance - 1) & 1 == 1;
            if (cumulative || selective) && !slot.acked {
                slot.acked = true;
                newest_acked = newest_acked.max(slot.tx);
                if slot.retransmits == 0 {
                    sample = Some(now.saturating_duration_since(slot.sent_at));
                }
            }
        }
        let progress = newest_acked > 0;
        for _ in 0..advance {
            self.slots.pop_front();
        }
        self.snd_base = next;
        // On a link that keeps order, what was sent before an acknowledged frame and is still
        // unacknowledged was lost: send it again now rather than at its timer.
        for slot in self.slots.iter_mut().filter(|s| !s.acked && s.tx < newest_acked) {
            slot.lost = true;
        }
        if let Some(rtt) = sample {
            self.update_rtt(rtt);
        }
        if progress {
            self.backoff = 1;
        }
        Ok(())
    }

    /// RFC 6298's estimator, clamped to the configured bounds.
    fn update_rtt(&mut self, rtt: Duration) {
        let srtt = match self.srtt {
            None => {
                self.rttvar = rtt / 2;
                rtt
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                (srtt * 7 + rtt) / 8
            }
        };
        self.srtt = Some(srtt);
        self.rto = (srtt + self.rttvar * 4).clamp(self.config.rto_min, self.config.rto_max);
    }

    /// A received SEQ frame; returns the frames now deliverable in order (possibly none).
    pub(super) fn receive(&mut self, seq: u8, frame: Frame) -> Vec<Frame> {
        self.ack_due = true;
        let d = usize::from(seq.wrapping_sub(self.rcv_base));
        if d >= usize::from(self.recv_window) {
            // Already delivered (a duplicate or a retransmission whose ACK was lost), or beyond
            // the window a well-behaved sender never exceeds: dropped, the ACK tells where we are.
            return Vec::new();
        }
        if self.held[d].is_none() {
            self.held[d] = Some(frame);
        }
        let mut ready = Vec::new();
        while let Some(frame) = self.held[0].take() {
            ready.push(frame);
            self.held.pop_front();
            self.held.push_back(None);
            self.rcv_base = self.rcv_base.wrapping_add(1);
        }
        ready
    }

    /// The ACK to send, if frames arrived since the last one.
    pub(super) fn take_ack(&mut self) -> Option<Frame> {
        if !core::mem::take(&mut self.ack_due) {
            return None;
        }
        let mut received = 0u128;
        for (d, held) in self.held.iter().enumerate().skip(1) {
            if held.is_some() {
                received |= 1 << (d - 1);
            }
        }
        Some(Frame::Ack { next: self.rcv_base, received })
    }

    /// Frames held out of order, waiting for an earlier one.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.held.iter().filter(|h| h.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    fn ping(n: u64) -> Frame {
        Frame::Ping { nonce: n }
    }

    #[test]
    fn delivers_in_order_once_and_acks_selectively() {
        let mut r = Reliable::new(Reliability::default().with_window(8), 8);
        assert!(r.receive(1, ping(1)).is_empty());
        assert!(r.receive(3, ping(3)).is_empty());
        assert_eq!(r.take_ack(), Some(Frame::Ack { next: 0, received: 0b101 }));
        assert_eq!(r.take_ack(), None);
        assert_eq!(r.receive(0, ping(0)), vec![ping(0), ping(1)]);
        assert!(r.receive(1, ping(1)).is_empty(), "a duplicate");
        assert_eq!(r.receive(2, ping(2)), vec![ping(2), ping(3)]);
        assert_eq!(r.take_ack(), Some(Frame::Ack { next: 4, received: 0 }));
        assert!(r.receive(200, ping(200)).is_empty(), "far outside the window");
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = Reliable::new(Reliability::default().with_window(128), 128);
        for n in 0..1000u64 {
            assert_eq!(r.receive(n as u8, ping(n)), vec![ping(n)]);
        }
        let now = Instant::now();
        let mut s = Reliable::new(Reliability::default().with_window(4), 4);
        for n in 0..1000u32 {
            assert!(s.can_send());
            let seq = s.next_seq();
            assert_eq!(seq, n as u8);
            s.sent(Bytes::new(), now);
            s.on_ack(seq.wrapping_add(1), 0, now).unwrap();
        }
    }

    #[test]
    fn losses_are_inferred_from_later_acks_and_timers() {
        let t0 = Instant::now();
        let config = Reliability::default().with_window(8);
        let mut s = Reliable::new(config.clone(), 8);
        for n in 0..4u8 {
            s.sent(Bytes::from(vec![n]), t0);
        }
        assert!(s.retransmit(t0).is_none());
        // 1 and 3 arrived 100 ms later, 0 and 2 did not: both were sent before 3, so both are lost.
        let t1 = t0 + Duration::from_millis(100);
        s.on_ack(0, 0b101, t1).unwrap();
        assert_eq!(s.retransmit(t1).as_deref(), Some(&[0u8][..]));
        assert_eq!(s.retransmit(t1).as_deref(), Some(&[2u8][..]));
        assert!(s.retransmit(t1).is_none());
        // One sample of 100 ms: srtt 100 ms, rttvar 50 ms, so a timeout of 300 ms.
        let due = s.deadline().unwrap();
        assert_eq!(due, t1 + Duration::from_millis(300));
        s.on_timeout(due).unwrap();
        assert!(s.retransmit(due).is_some() && s.retransmit(due).is_some());
        assert_eq!(s.deadline().unwrap(), due + Duration::from_millis(600), "backoff");
        s.on_ack(4, 0, due).unwrap();
        assert_eq!(s.unacked(), 0);
        assert_eq!(s.deadline(), None);
        // An ACK for frames never sent is an error; an old one is ignored.
        assert!(s.on_ack(9, 0, due).is_err());
        assert!(s.on_ack(2, 0, due).is_ok());
    }

    #[test]
    fn gives_up_after_the_give_up_time() {
        let t0 = Instant::now();
        let config = Reliability::default();
        let mut s = Reliable::new(config.clone(), 8);
        s.sent(Bytes::new(), t0);
        let mut now = t0;
        while let Some(due) = s.deadline() {
            now = due;
            if s.on_timeout(now).is_err() {
                break;
            }
            s.retransmit(now);
        }
        assert_eq!(now, t0 + config.give_up);
    }
}

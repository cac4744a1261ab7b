//! The per-connection bounds of docs/PROTOCOL.md §8.1 and §8.5, against a peer that speaks raw
//! frames: deterministic, on a fake clock.

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::frame::{Framing, Priority};
use crate::sim::Pair;

/// A session fed raw frames by a hand-made peer, which reads everything it sends.
struct Raw {
    session: Session,
    now: Instant,
    decoder: frame::Decoder,
    sent: Vec<Frame>,
    events: Vec<Event>,
}

impl Raw {
    /// An open session whose peer announced `limits`.
    fn open(config: Config, limits: Limits) -> Self {
        let now = Instant::now();
        let mut raw = Self {
            session: Session::new(config, now),
            now,
            decoder: frame::Decoder::new(Framing::Stream, 1 << 24),
            sent: Vec::new(),
            events: Vec::new(),
        };
        raw.frames(&[Frame::Hello(Hello::new(1, 1, 0, limits))]);
        assert!(raw.session.is_open());
        raw.sent.clear();
        raw.events.clear();
        raw
    }

    fn frames(&mut self, frames: &[Frame]) {
        let mut wire = BytesMut::new();
        for frame in frames {
            frame::encode(Framing::Stream, frame, &mut wire).unwrap();
        }
        self.session.handle_input(self.now, &wire);
        self.drain();
    }

    fn drain(&mut self) {
        let mut out = BytesMut::new();
        while self.session.poll_transmit(self.now, &mut out) {}
        self.decoder.extend(&out);
        while let Ok(Some(frame)) = self.decoder.decode() {
            self.sent.push(frame);
        }
        self.events.extend(std::iter::from_fn(|| self.session.poll_event()));
    }

    fn requests(&mut self) -> Vec<u32> {
        let ids = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Message(Incoming { exchange: Exchange::Theirs(id), kind: Kind::Request, .. }) => Some(*id),
                _ => None,
            })
            .collect();
        self.events.retain(|e| !matches!(e, Event::Message(_)));
        ids
    }

    fn refused(&self) -> Vec<u32> {
        self.sent
            .iter()
            .filter_map(|f| match f {
                Frame::Cancel { xid, reason: CancelReason::REFUSED } => Some(xid.id),
                _ => None,
            })
            .collect()
    }

    fn goaway(&self) -> Option<(GoAwayCode, String)> {
        self.sent.iter().find_map(|f| match f {
            Frame::GoAway { code, message } => Some((*code, message.clone())),
            _ => None,
        })
    }
}

fn request(id: u32, payload: &[u8]) -> Frame {
    Frame::Head(Head {
        xid: Xid { id, opened_by_receiver: false },
        kind: Kind::Request,
        priority: Priority::default(),
        route: Some(Route::Name("/r".into())),
        meta: None,
        total: payload.len() as u64,
        payload: Bytes::copy_from_slice(payload),
    })
}

fn cancel(id: u32) -> Frame {
    Frame::Cancel { xid: Xid { id, opened_by_receiver: false }, reason: CancelReason::CANCELLED }
}

fn with_in_flight(max_in_flight: u32) -> Config {
    Config::stream().with_limits(Limits { max_in_flight, ..Limits::default() })
}

#[test]
fn complete_and_empty_requests_count_toward_max_in_flight() {
    let mut raw = Raw::open(with_in_flight(4), Limits::default());
    let frames: Vec<Frame> = (0..6).map(|id| request(id, if id % 2 == 0 { b"" } else { b"x" })).collect();
    raw.frames(&frames);
    assert_eq!(raw.requests(), [0, 1, 2, 3]);
    assert_eq!(raw.refused(), [4, 5], "the excess is refused (§8.1)");
    // Answering one frees its slot; the refused ones are gone, the next id is accepted.
    raw.session.respond(1, Ok(Body::from(Vec::new())), SendOptions::default()).unwrap();
    raw.frames(&[request(6, b""), request(7, b"")]);
    assert_eq!(raw.requests(), [6]);
    assert_eq!(raw.refused(), [4, 5, 7]);
    assert!(raw.session.is_open());
}

#[test]
fn a_sender_holds_requests_beyond_the_peers_max_in_flight() {
    let mut pair = Pair::new(Config::stream(), with_in_flight(3));
    pair.run();
    pair.take_a();
    pair.take_b();
    for n in 0..10u8 {
        pair.a.request(Route::Name("/r".into()), vec![n], SendOptions::default()).unwrap();
    }
    let mut answered = 0;
    for _ in 0..10 {
        pair.run();
        let events = pair.take_b();
        let ids: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                Event::Message(Incoming { exchange: Exchange::Theirs(id), .. }) => Some(*id),
                _ => None,
            })
            .collect();
        assert!(ids.len() <= 3, "at most max_in_flight unanswered requests at once: {ids:?}");
        for id in ids {
            pair.b.respond(id, Ok(Body::from(vec![1])), SendOptions::default()).unwrap();
            answered += 1;
        }
    }
    pair.run();
    assert_eq!(answered, 10);
    let replies = pair.take_a().into_iter().filter(|e| matches!(e, Event::Message(_))).count();
    assert_eq!(replies, 10, "every call answered, none refused");
    assert!(pair.a.is_idle() && pair.b.is_idle());
}

#[test]
fn a_request_cancelled_before_it_was_taken_is_withdrawn() {
    let mut raw = Raw::open(Config::stream(), Limits::default());
    raw.session.handle_input(raw.now, &{
        let mut wire = BytesMut::new();
        frame::encode(Framing::Stream, &request(0, &[7; 100]), &mut wire).unwrap();
        frame::encode(Framing::Stream, &cancel(0), &mut wire).unwrap();
        wire
    });
    assert!(raw.session.peek_event().is_none(), "no handler ever hears of it");
    assert_eq!(raw.session.held_bytes(), 0, "its credit is returned");
    assert!(raw.session.is_idle());
    // Cancelled after it was taken: the application is told.
    raw.frames(&[request(1, b"x")]);
    assert_eq!(raw.requests(), [1]);
    raw.frames(&[cancel(1)]);
    assert!(matches!(raw.events[..], [Event::Cancelled { exchange: Exchange::Theirs(1), .. }]));
}

#[test]
fn rapid_reset_closes_with_goaway_abuse() {
    let config = Config::stream().with_abuse_limits(Duration::from_secs(1), 10, 10_000);
    let mut raw = Raw::open(config, Limits::default());
    let mut id = 0;
    let mut pairs = |raw: &mut Raw, n: u32| {
        let frames: Vec<Frame> = (0..n)
            .flat_map(|_| {
                id += 1;
                [request(id - 1, b""), cancel(id - 1)]
            })
            .collect();
        raw.frames(&frames);
    };
    pairs(&mut raw, 10);
    assert!(raw.session.is_open(), "within the budget");
    raw.now += Duration::from_secs(1);
    pairs(&mut raw, 10);
    assert!(raw.session.is_open(), "a new window, a new budget");
    pairs(&mut raw, 1);
    let (code, message) = raw.goaway().expect("GOAWAY");
    assert_eq!(code, GoAwayCode::ABUSE);
    assert!(message.contains("cancelled 11 requests") && message.contains("max_resets"), "{message}");
    assert!(matches!(raw.events.last(), Some(Event::Closed(CloseReason::Protocol(ProtocolError::Resets { .. })))));
}

#[test]
fn floods_of_frames_needing_no_answer_close_with_goaway_abuse() {
    type Make = fn(u32) -> Frame;
    let floods: [(&str, Make); 5] = [
        ("CREDIT", |n| Frame::Credit { limit: u64::from(n) }),
        ("PING", |n| Frame::Ping { nonce: u64::from(n) }),
        ("CANCEL", |n| Frame::Cancel { xid: Xid { id: n, opened_by_receiver: true }, reason: CancelReason::CANCELLED }),
        ("DATA", |n| {
            Frame::Data(Data {
                xid: Xid { id: n + 1000, opened_by_receiver: false },
                offset: 0,
                end: true,
                payload: Bytes::from_static(b"x"),
            })
        }),
        ("extension", |_| Frame::Extension { ty: frame::FrameType(0x80), body: Bytes::new() }),
    ];
    for (name, make) in floods {
        let config = Config::stream().with_abuse_limits(Duration::from_secs(1), 1024, 100);
        let mut raw = Raw::open(config, Limits::default());
        for window in 0..3u32 {
            let frames: Vec<Frame> = (0..100).map(|n| make(window * 100 + n)).collect();
            raw.frames(&frames);
            assert!(raw.session.is_open(), "{name}: 100 per window are within the budget");
            raw.now += Duration::from_secs(1);
        }
        let frames: Vec<Frame> = (0..101).map(make).collect();
        raw.frames(&frames);
        let (code, message) = raw.goaway().unwrap_or_else(|| panic!("{name}: GOAWAY"));
        assert_eq!(code, GoAwayCode::ABUSE, "{name}");
        assert!(message.contains("101 frames") && message.contains("max_noise"), "{name}: {message}");
    }
}

#[test]
fn credit_for_a_bulk_transfer_at_full_speed_is_not_noise() {
    // A small window and small chunks: the receiver sends a CREDIT every 1 KiB, thousands of them
    // at one instant of the fake clock, against a noise budget of 10.
    let small = Limits { window: 4096, inline_limit: 4096, ..Limits::default() };
    let a = Config::stream().with_chunk_size(1024).with_abuse_limits(Duration::from_secs(1), 10, 10);
    let b = Config::stream().with_limits(small).with_abuse_limits(Duration::from_secs(1), 10, 10);
    let mut pair = Pair::new(a, b);
    pair.run();
    let call = pair.a.request(Route::Name("/bulk".into()), vec![3u8; 4 << 20], SendOptions::default()).unwrap();
    pair.run();
    let events = pair.take_b();
    let Some(Event::Message(m)) = events.into_iter().find(|e| matches!(e, Event::Message(_))) else { panic!() };
    let Exchange::Theirs(id) = m.exchange else { panic!() };
    pair.b.respond(id, Ok(Body::from(vec![5u8; 4 << 20])), SendOptions::default()).unwrap();
    pair.run();
    assert!(pair.a.is_open() && pair.b.is_open(), "legitimate credit never trips the budget");
    let reply = pair.take_a().into_iter().find_map(|e| match e {
        Event::Message(m) if m.exchange == Exchange::Ours(call) => Some(m),
        _ => None,
    });
    assert_eq!(reply.expect("the reply").payload.len().unwrap(), 4 << 20);
}

#[test]
fn messages_blocked_on_credit_cost_nothing_per_frame() {
    // The peer announces a window of 1 byte and stores everything (inline_limit 0): every answer
    // sends a byte and blocks for good.
    let stingy = Limits { window: 1, inline_limit: 0, ..Limits::default() };
    let mut raw = Raw::open(Config::stream(), stingy);
    let frames: Vec<Frame> = (0..64).map(|id| request(id, b"")).collect();
    raw.frames(&frames);
    for id in raw.requests() {
        raw.session.respond(id, Ok(Body::from(vec![9u8; 100_000])), SendOptions::default()).unwrap();
    }
    raw.drain();
    let before = raw.session.outbox.attempts;
    for _ in 0..10_000 {
        raw.drain();
    }
    let after = raw.session.outbox.attempts;
    assert_eq!(after, before, "no message is tried again until credit arrives");
    assert_eq!(raw.session.queued_bytes(), 64 * 100_000);
    // Credit brings them back: the next byte goes.
    let data_before = raw.sent.iter().filter(|f| matches!(f, Frame::Data(_) | Frame::Head(_))).count();
    raw.frames(&[Frame::Credit { limit: 2 }]);
    let data_after = raw.sent.iter().filter(|f| matches!(f, Frame::Data(_) | Frame::Head(_))).count();
    assert_eq!(data_after, data_before + 1);
}

#[test]
fn the_send_budget_fills_with_queued_answers_but_not_for_urgent_requests() {
    let stingy = Limits { window: 1, inline_limit: 0, ..Limits::default() };
    let mut raw = Raw::open(Config::stream().with_send_budget(1 << 20), stingy);
    raw.frames(&(0..8).map(|id| request(id, b"")).collect::<Vec<_>>());
    let ids = raw.requests();
    assert!(!raw.session.send_budget_full(Priority::default()));
    for id in &ids[..3] {
        raw.session.respond(*id, Ok(Body::from(vec![1u8; 300_000])), SendOptions::default()).unwrap();
    }
    assert!(!raw.session.send_budget_full(Priority::default()), "900 000 bytes of a 1 MiB budget");
    raw.session.respond(ids[3], Ok(Body::from(vec![1u8; 300_000])), SendOptions::default()).unwrap();
    raw.drain();
    assert_eq!(raw.session.queued_bytes(), 1_200_000);
    assert!(raw.session.send_budget_full(Priority::default()), "the queue reached the budget");
    assert!(!raw.session.send_budget_full(Priority::new(7)), "an urgent request still goes (§7)");
    // A cancelled answer leaves the queue.
    raw.frames(&[cancel(ids[0]), cancel(ids[1])]);
    assert_eq!(raw.session.queued_bytes(), 600_000);
    assert!(!raw.session.send_budget_full(Priority::default()));
}

//! Helpers shared by the fault tests: frames built by hand (valid or hostile), sessions fed by hand.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use netcore_runtime::faults::Rng;
use netcore_runtime::frame::{self, Frame, Framing, Head, Hello, Kind, Limits, Priority, Route, Xid};
use netcore_runtime::session::{Body, Config, Event, Exchange, Incoming, SendOptions, Session, PROTOCOL_VERSION};
use netcore_runtime::sim::Pair;

/// `frames`, framed for `framing`, one after the other.
pub fn wire(framing: Framing, frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for f in frames {
        frame::encode(framing, f, &mut out).unwrap();
    }
    out.to_vec()
}

/// A body from raw fields: `fields ‖ crc32(fields)`, so that the fields reach the parsers.
pub fn body(fields: &[u8]) -> Vec<u8> {
    let mut body = fields.to_vec();
    body.extend_from_slice(&crc32fast::hash(fields).to_le_bytes());
    body
}

/// A raw body framed for `framing` (an independent COBS encoder for the lossy one).
pub fn framed_body(framing: Framing, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match framing {
        Framing::Stream => {
            let mut len = body.len() as u64;
            while len >= 0x80 {
                out.push(len as u8 | 0x80);
                len >>= 7;
            }
            out.push(len as u8);
            out.extend_from_slice(body);
        }
        Framing::Lossy => {
            out.push(0);
            out.extend(cobs(body));
            out.push(0);
        }
    }
    out
}

/// COBS encoding as in docs/PROTOCOL.md §4.2.
pub fn cobs(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    let mut code_at = 0;
    for &byte in body {
        if byte != 0 {
            out.push(byte);
        }
        let run = out.len() - code_at;
        if byte == 0 || run == 0xff {
            out[code_at] = run as u8;
            code_at = out.len();
            out.push(0);
        }
    }
    out[code_at] = (out.len() - code_at) as u8;
    out
}

/// Unsigned LEB128.
pub fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

pub fn hello(limits: Limits, fingerprint: u64) -> Frame {
    Frame::Hello(Hello::new(PROTOCOL_VERSION, PROTOCOL_VERSION, fingerprint, limits))
}

/// An opening HEAD (REQUEST or ONEWAY) from the peer.
pub fn opening(id: u32, kind: Kind, total: u64, payload: &[u8]) -> Frame {
    Frame::Head(Head {
        xid: Xid::sender(id),
        kind,
        priority: Priority::NORMAL,
        route: Some(Route::Id(7)),
        meta: None,
        total,
        payload: Bytes::copy_from_slice(payload),
    })
}

/// An answer HEAD (RESPONSE) from the peer to our exchange `id`.
pub fn answer(id: u32, payload: &[u8]) -> Frame {
    Frame::Head(Head {
        xid: Xid::receiver(id),
        kind: Kind::Response,
        priority: Priority::NORMAL,
        route: None,
        meta: None,
        total: payload.len() as u64,
        payload: Bytes::copy_from_slice(payload),
    })
}

pub fn data(id: u32, offset: u64, end: bool, payload: &[u8]) -> Frame {
    Frame::Data(frame::Data { xid: Xid::sender(id), offset, end, payload: Bytes::copy_from_slice(payload) })
}

/// One side of a connection fed by hand: the peer is the test.
pub struct Fed {
    pub session: Session,
    pub now: Instant,
    pub framing: Framing,
    /// Everything the session sent, decoded.
    pub sent: Vec<Frame>,
    pub events: Vec<Event>,
    decoder: frame::Decoder,
}

impl Fed {
    /// A session that has received a valid HELLO (default limits, max_frame 1024) and is open.
    pub fn open(config: Config) -> Self {
        let framing = config.framing;
        let mut fed = Self::handshaking(config);
        let hello = hello(Limits { max_frame: 1024, ..Limits::default() }, 0);
        fed.input(&wire(framing, &[hello]));
        assert!(fed.session.is_open(), "{:?}", fed.events);
        fed.events.clear();
        fed.sent.clear();
        fed
    }

    /// A session that has received nothing yet.
    pub fn handshaking(config: Config) -> Self {
        let now = Instant::now();
        let framing = config.framing;
        Self {
            session: Session::new(config, now),
            now,
            framing,
            sent: Vec::new(),
            events: Vec::new(),
            decoder: frame::Decoder::new(framing, 1 << 20),
        }
    }

    /// Feeds bytes, then reads everything the session has to send and report.
    pub fn input(&mut self, bytes: &[u8]) {
        self.session.handle_input(self.now, bytes);
        self.drain();
    }

    pub fn frames(&mut self, frames: &[Frame]) {
        let bytes = wire(self.framing, frames);
        self.input(&bytes);
    }

    /// Reads what the session sends (the peer reads) and its events.
    pub fn drain(&mut self) {
        let mut out = BytesMut::new();
        while self.session.poll_transmit(self.now, &mut out) {}
        self.decoder.extend(&out);
        while let Ok(Some(frame)) = self.decoder.decode() {
            self.sent.push(frame);
        }
        self.events.extend(std::iter::from_fn(|| self.session.poll_event()));
    }

    /// Only the events (the peer does not read what the session sends).
    pub fn events_only(&mut self) {
        self.events.extend(std::iter::from_fn(|| self.session.poll_event()));
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.session.poll_timeout().is_some_and(|t| t <= self.now) {
            self.session.handle_timeout(self.now);
        }
        self.drain();
    }

    pub fn messages(&mut self) -> Vec<Incoming> {
        let events = std::mem::take(&mut self.events);
        let (messages, rest): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| matches!(e, Event::Message(_)));
        self.events = rest;
        messages.into_iter().map(|e| if let Event::Message(m) = e { m } else { unreachable!() }).collect()
    }

    pub fn closed(&self) -> Option<&netcore_runtime::session::CloseReason> {
        self.events.iter().find_map(|e| if let Event::Closed(r) = e { Some(r) } else { None })
    }

    pub fn cancels_sent(&self) -> Vec<(Xid, netcore_runtime::CancelReason)> {
        self.sent
            .iter()
            .filter_map(|f| if let Frame::Cancel { xid, reason } = f { Some((*xid, *reason)) } else { None })
            .collect()
    }

    pub fn goaway_sent(&self) -> Option<(netcore_runtime::GoAwayCode, String)> {
        self.sent.iter().find_map(|f| match f {
            Frame::GoAway { code, message } => Some((*code, message.clone())),
            _ => None,
        })
    }
}

/// Moves bytes both ways in up to 40 steps of random size, `b` answering each request it gets
/// with 3000 bytes: traffic to cut at a random point.
pub fn random_steps(pair: &mut Pair, rng: &mut Rng) {
    for _ in 0..rng.below(40) {
        pair.step_bytes(rng.below(300) as usize + 1);
        for event in pair.take_b() {
            if let Event::Message(m) = event {
                if let Exchange::Theirs(id) = m.exchange {
                    let _ = pair.b.respond(id, Ok(Body::from(vec![1; 3000])), SendOptions::default());
                }
            }
        }
    }
}

/// Test-sized limits: small frames and messages, few in flight.
pub fn small_limits() -> Limits {
    Limits { max_frame: 1024, max_message: 1 << 20, inline_limit: 4096, window: 0, max_in_flight: 8 }
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

//! Streamed reception (`Session::stream_when`) on the deterministic two-peer simulation.

use bytes::Bytes;

use super::*;
use crate::frame::Limits;
use crate::sim::Pair;

fn route(name: &str) -> Route {
    Route::Name(name.into())
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(3)).collect()
}

/// A pair whose receiver `b` streams the route `/up`.
fn streaming_pair(receiver: Config) -> Pair {
    let mut pair = Pair::new(Config::stream().with_chunk_size(4096), receiver);
    pair.b.stream_when(|route| *route == Route::Name("/up".into()));
    pair.run();
    pair.take_a();
    pair.take_b();
    pair
}

/// What the streaming side saw: the message's start, then its chunks' bytes and whether it ended.
#[derive(Default)]
struct Seen {
    start: Option<Incoming>,
    bytes: Vec<u8>,
    chunks: usize,
    ended: bool,
    cancelled: Option<CancelReason>,
}

impl Seen {
    /// Takes `session`'s events; consumes (returns the credit of) every chunk when `consume`.
    fn take(&mut self, session: &mut Session, consume: bool) {
        while let Some(event) = session.poll_event() {
            match event {
                Event::Message(message) => {
                    assert!(self.start.is_none(), "one start");
                    self.start = Some(message);
                }
                Event::Chunk { bytes, end, .. } => {
                    assert!(self.start.is_some() && !self.ended, "chunks come between start and end");
                    self.bytes.extend_from_slice(&bytes);
                    self.chunks += 1;
                    self.ended = end;
                    if consume {
                        session.consumed(bytes.len() as u64);
                    }
                }
                Event::Cancelled { reason, .. } => self.cancelled = Some(reason),
                Event::Sent(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn a_streamed_message_starts_at_its_head_and_arrives_in_order() {
    let mut pair = streaming_pair(Config::stream());
    let payload = pattern(100_000);
    pair.a.request(route("/up"), payload.clone(), SendOptions::default()).unwrap();
    let mut seen = Seen::default();
    pair.step_bytes(4096);
    seen.take(&mut pair.b, true);
    let start = seen.start.as_ref().expect("the handler can start after the first frame");
    assert!(matches!(start.payload, Payload::Streamed { total: 100_000 }));
    assert!(!seen.ended);
    while pair.step() {
        seen.take(&mut pair.b, true);
    }
    seen.take(&mut pair.b, true);
    assert!(seen.ended && seen.chunks > 10);
    assert_eq!(seen.bytes, payload);
    assert_eq!(pair.b.held_bytes(), 0);
    // The request can be answered as any other.
    let Exchange::Theirs(id) = seen.start.unwrap().exchange else { panic!("peer-opened") };
    pair.b.respond(id, Ok(Body::from(b"ok".to_vec())), SendOptions::default()).unwrap();
    pair.run();
    assert!(pair.take_a().iter().any(|e| matches!(e, Event::Message(m) if m.kind == Kind::Response)));
}

#[test]
fn unconsumed_chunks_hold_the_window_and_consuming_them_resumes_the_sender() {
    let limits = Limits { window: 64 * 1024, inline_limit: 16 * 1024, ..Limits::default() };
    let mut pair = streaming_pair(Config::stream().with_limits(limits));
    pair.a.send_oneway(route("/up"), pattern(1 << 20), SendOptions::default()).unwrap();
    let mut seen = Seen::default();
    pair.run();
    seen.take(&mut pair.b, false);
    assert_eq!(pair.b.held_bytes(), 64 * 1024, "the sender stopped at the window");
    assert_eq!(seen.bytes.len(), 64 * 1024);
    pair.b.consumed(seen.bytes.len() as u64);
    while pair.step() {
        seen.take(&mut pair.b, true);
        assert!(pair.b.held_bytes() <= 64 * 1024);
    }
    seen.take(&mut pair.b, true);
    assert!(seen.ended);
    assert_eq!(seen.bytes, pattern(1 << 20));
}

#[test]
fn a_message_within_one_frame_is_a_start_and_a_last_chunk() {
    let mut pair = streaming_pair(Config::stream());
    pair.a.send_oneway(route("/up"), b"tiny".to_vec(), SendOptions::default()).unwrap();
    pair.a.send_oneway(route("/up"), Vec::new(), SendOptions::default()).unwrap();
    pair.run();
    let events = pair.take_b();
    assert!(matches!(&events[0], Event::Message(m) if matches!(m.payload, Payload::Streamed { total: 4 })));
    assert!(matches!(&events[1], Event::Chunk { bytes, end: true, .. } if &bytes[..] == b"tiny"));
    assert!(matches!(&events[2], Event::Message(m) if matches!(m.payload, Payload::Streamed { total: 0 })));
    assert!(matches!(&events[3], Event::Chunk { bytes, end: true, .. } if bytes.is_empty()));
    assert_eq!(events.len(), 4);
}

#[test]
fn other_routes_and_replies_are_stored_as_before() {
    let mut pair = streaming_pair(Config::stream());
    pair.b.request(route("/up"), b"from b".to_vec(), SendOptions::default()).unwrap();
    pair.a.send_oneway(route("/other"), pattern(50_000), SendOptions::default()).unwrap();
    pair.run();
    let events = pair.take_b();
    let other = events.iter().find_map(|e| if let Event::Message(m) = e { Some(m) } else { None }).unwrap();
    assert_eq!(other.payload.to_vec().unwrap(), pattern(50_000));
    let request = pair.take_a().into_iter().find_map(|e| if let Event::Message(m) = e { Some(m) } else { None });
    let Exchange::Theirs(id) = request.unwrap().exchange else { panic!("peer-opened") };
    pair.a.respond(id, Ok(Body::from(pattern(50_000))), SendOptions::default()).unwrap();
    pair.run();
    let reply = pair.take_b().into_iter().find_map(|e| if let Event::Message(m) = e { Some(m) } else { None });
    assert_eq!(reply.unwrap().payload.to_vec().unwrap(), pattern(50_000), "replies are never streamed");
}

#[test]
fn a_streamed_one_way_message_cancelled_by_its_sender_is_reported() {
    let mut pair = streaming_pair(Config::stream());
    let message = pair.a.send_oneway(route("/up"), pattern(200_000), SendOptions::default()).unwrap();
    pair.step_bytes(8192);
    let mut seen = Seen::default();
    seen.take(&mut pair.b, true);
    assert!(seen.start.is_some() && !seen.ended);
    assert!(pair.a.cancel(Exchange::Ours(message), CancelReason::CANCELLED));
    pair.run();
    seen.take(&mut pair.b, true);
    assert_eq!(seen.cancelled, Some(CancelReason::CANCELLED), "the reader must learn its stream stopped");
    assert!(!seen.ended);
    assert_eq!(pair.b.held_bytes(), 0);
}

#[test]
fn an_early_answer_stops_the_rest_of_the_request() {
    let mut pair = streaming_pair(Config::stream());
    let call = pair.a.request(route("/up"), pattern(4 << 20), SendOptions::default()).unwrap();
    pair.step_bytes(8192);
    let mut seen = Seen::default();
    seen.take(&mut pair.b, true);
    let Exchange::Theirs(id) = seen.start.as_ref().expect("started").exchange else { panic!("peer-opened") };
    // The reader has what it needs (say, a header it refuses) and answers at once.
    pair.b.respond(id, Err(Body::from(b"bad image".to_vec())), SendOptions::default()).unwrap();
    pair.run();
    seen.take(&mut pair.b, true);
    let answer = pair.take_a().into_iter().find_map(|e| if let Event::Message(m) = e { Some(m) } else { None });
    let answer = answer.expect("the call has its answer");
    assert_eq!((answer.exchange, answer.kind), (Exchange::Ours(call), Kind::Error));
    assert_eq!(seen.cancelled, Some(CancelReason::CANCELLED), "the rest of the request was called off");
    let sent = pair.a.stats().bytes_out;
    assert!(sent < 1 << 20, "the requester stopped sending: {sent} bytes of a 4 MiB request went out");
    assert!(pair.a.is_idle() && pair.b.is_idle());
    assert_eq!(pair.b.held_bytes(), 0);
}

#[test]
fn returning_more_credit_than_is_held_is_ignored() {
    let mut pair = streaming_pair(Config::stream());
    pair.a.send_oneway(route("/up"), Bytes::from(pattern(10)), SendOptions::default()).unwrap();
    pair.run();
    pair.b.consumed(u64::MAX);
    assert_eq!(pair.b.held_bytes(), 0);
    pair.run();
    assert!(pair.a.is_open() && pair.b.is_open());
}

//! Open-length messages (docs/PROTOCOL.md §5.2, §5.3, §6, §8.1, §8.3) and streamed answers
//! (`SendOptions::stream_answer`) on the deterministic two-peer simulation.

use bytes::Bytes;

use super::*;
use crate::frame::{Limits, OPEN_TOTAL};
use crate::sim::Pair;

fn route(name: &str) -> Route {
    Route::Name(name.into())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect()
}

fn pair() -> Pair {
    Pair::connected(Config::stream().with_chunk_size(4096), Config::stream().with_chunk_size(4096))
}

fn messages(events: Vec<Event>) -> Vec<Incoming> {
    events.into_iter().filter_map(|e| if let Event::Message(m) = e { Some(m) } else { None }).collect()
}

fn their_id(message: &Incoming) -> u32 {
    match message.exchange {
        Exchange::Theirs(id) => id,
        other => panic!("not the peer's exchange: {other:?}"),
    }
}

/// What a reader of a streamed message saw.
#[derive(Default, Debug)]
struct Seen {
    start: Option<Incoming>,
    bytes: Vec<u8>,
    ended: bool,
    cancelled: Option<CancelReason>,
    /// Bytes received and not yet consumed.
    unread: u64,
}

impl Seen {
    /// Takes the events of `exchange`; consumes every chunk when `consume`.
    fn take(&mut self, session: &mut Session, consume: bool) -> Vec<Event> {
        let mut others = Vec::new();
        while let Some(event) = session.poll_event() {
            match event {
                Event::Message(m) if self.start.is_none() && matches!(m.payload, Payload::Streamed { .. }) => {
                    self.start = Some(m)
                }
                Event::Chunk { bytes, end, .. } => {
                    assert!(!self.ended, "no chunk after the end");
                    self.bytes.extend_from_slice(&bytes);
                    self.ended = end;
                    match consume {
                        true => session.consumed(bytes.len() as u64),
                        false => self.unread += bytes.len() as u64,
                    }
                }
                Event::Cancelled { reason, .. } => self.cancelled = Some(reason),
                other => others.push(other),
            }
        }
        others
    }
}

#[test]
fn both_sides_offer_open_length_by_default() {
    let pair = pair();
    assert!(pair.a.open_length() && pair.b.open_length());
    assert!(pair.a.hello().open);
}

#[test]
fn an_open_request_round_trips_and_its_streamed_answer_too() {
    let mut pair = pair();
    let upload = pattern(50_000, 1);
    let opts = SendOptions::default().with_stream_answer(true);
    let call = pair.a.request(route("/echo"), Body::open_with(()), opts).unwrap();
    pair.run();
    for piece in upload.chunks(7000) {
        pair.a_handoff.feed(&mut pair.a, call, Bytes::copy_from_slice(piece));
        pair.run();
    }
    pair.a_handoff.end(&mut pair.a, call);
    pair.run();
    // Not streamed at b: reassembled in memory, complete once the END arrived.
    let request = messages(pair.take_b()).pop().expect("the request arrived");
    assert_eq!(request.payload.to_vec().unwrap(), upload);
    assert_eq!(pair.b.held_bytes(), 0, "an open message's credit went back as it arrived");

    let answer = pair.b.respond(their_id(&request), Ok(Body::open_with(())), SendOptions::default()).unwrap();
    pair.run();
    let mut seen = Seen::default();
    seen.take(&mut pair.a, true);
    let start = seen.start.as_ref().expect("the answer's HEAD starts it, before any byte");
    assert_eq!(start.exchange, Exchange::Ours(call));
    assert!(matches!(start.payload, Payload::Streamed { total: OPEN_TOTAL }));
    let download = pattern(30_000, 2);
    for piece in download.chunks(5000) {
        pair.b_handoff.feed(&mut pair.b, answer, Bytes::copy_from_slice(piece));
        pair.run();
        seen.take(&mut pair.a, true);
    }
    assert!(!seen.ended);
    pair.b_handoff.end(&mut pair.b, answer);
    pair.run();
    seen.take(&mut pair.a, true);
    assert!(seen.ended && seen.cancelled.is_none());
    assert_eq!(seen.bytes, download);
    assert!(pair.a.is_idle() && pair.b.is_idle());
    assert_eq!((pair.a.held_bytes(), pair.b.held_bytes()), (0, 0));
}

#[test]
fn an_open_body_that_ends_before_its_head_goes_is_a_plain_message() {
    let mut pair = pair();
    let call = pair.a.request(route("/small"), Body::open_with(()), SendOptions::default()).unwrap();
    pair.a_handoff.serve(&mut pair.a);
    pair.a_handoff.feed(&mut pair.a, call, &b"tiny"[..]);
    pair.a_handoff.end(&mut pair.a, call);
    let mut out = BytesMut::new();
    assert!(pair.a.poll_transmit(pair.now, &mut out));
    let Ok(Some(Frame::Head(head))) = frame::Decoder::new(frame::Framing::Stream, 1 << 20).tap(&out) else {
        panic!("a HEAD")
    };
    assert!(head.is_complete() && head.total == 4, "{head:?}");
}

/// Decodes one frame from bytes (test helper).
trait Tap {
    fn tap(self, bytes: &[u8]) -> Result<Option<Frame>, frame::FrameError>;
}

impl Tap for frame::Decoder {
    fn tap(mut self, bytes: &[u8]) -> Result<Option<Frame>, frame::FrameError> {
        self.extend(bytes);
        self.decode()
    }
}

#[test]
fn an_open_body_with_nothing_for_a_while_does_not_stall_a_small_call() {
    let mut pair = pair();
    let slow = pair.a.request(route("/slow"), Body::open_with(()), SendOptions::default()).unwrap();
    pair.a_handoff.feed(&mut pair.a, slow, &b"first"[..]);
    pair.run();
    pair.take_b();
    // The open body has nothing now; a small call goes through meanwhile, and is answered.
    let small = pair.a.request(route("/ping"), &b"ping"[..], SendOptions::default()).unwrap();
    pair.run();
    let request = messages(pair.take_b()).into_iter().find(|m| m.route == Some(route("/ping"))).unwrap();
    pair.b.respond(their_id(&request), Ok(Body::from(&b"pong"[..])), SendOptions::default()).unwrap();
    pair.run();
    let answers = messages(pair.take_a());
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].exchange, Exchange::Ours(small));
    // Much later (no stall timeout on a reliable stream for an open message), the rest.
    pair.advance(Duration::from_secs(120));
    pair.a_handoff.feed(&mut pair.a, slow, &b" and last"[..]);
    pair.a_handoff.end(&mut pair.a, slow);
    pair.run();
    let request = messages(pair.take_b()).pop().expect("the slow request completed");
    assert_eq!(request.payload.to_vec().unwrap(), b"first and last");
}

#[test]
fn a_streamed_answer_holds_at_most_a_window_for_a_slow_reader() {
    let window = 64 * 1024;
    let limits = Limits { window, inline_limit: 32 * 1024, ..Limits::default() };
    let config = Config::stream().with_chunk_size(4096).with_limits(limits);
    let mut pair = Pair::connected(config.clone(), config);
    let call = pair.a.request(route("/download"), &b""[..], SendOptions::default().with_stream_answer(true)).unwrap();
    pair.run();
    let request = messages(pair.take_b()).pop().unwrap();
    let answer = pair.b.respond(their_id(&request), Ok(Body::open_with(())), SendOptions::default()).unwrap();
    let total = 1 << 20;
    let body = pattern(total, 3);
    let mut seen = Seen::default();
    let mut fed = 0;
    // The producer offers far more than the window; the reader does not read at all.
    while fed < total {
        pair.b_handoff.feed(&mut pair.b, answer, Bytes::copy_from_slice(&body[fed..fed + 16 * 1024]));
        fed += 16 * 1024;
        pair.run();
        seen.take(&mut pair.a, false);
        assert!(seen.unread <= window, "{} bytes unread at the reader, window {window}", seen.unread);
    }
    assert!(seen.unread > 0 && !seen.ended, "the reader got some, not all");
    // Then it reads everything.
    pair.b_handoff.end(&mut pair.b, answer);
    let held = seen.unread;
    pair.a.consumed(held);
    seen.unread = 0;
    for _ in 0..10_000 {
        let moved = pair.step();
        seen.take(&mut pair.a, true);
        if !moved && seen.ended {
            break;
        }
    }
    assert!(seen.ended);
    assert_eq!(seen.bytes, body);
    let _ = call;
}

#[test]
fn cancel_from_the_reader_mid_stream_frees_both_sides() {
    let mut pair = pair();
    let call = pair.a.request(route("/d"), &b""[..], SendOptions::default().with_stream_answer(true)).unwrap();
    pair.run();
    let request = messages(pair.take_b()).pop().unwrap();
    let answer = pair.b.respond(their_id(&request), Ok(Body::open_with(())), SendOptions::default()).unwrap();
    pair.b_handoff.feed(&mut pair.b, answer, pattern(10_000, 4));
    pair.run();
    let mut seen = Seen::default();
    seen.take(&mut pair.a, true);
    assert!(seen.start.is_some() && !seen.ended);
    assert!(pair.a.cancel(Exchange::Ours(call), CancelReason::CANCELLED));
    pair.run();
    let events = pair.take_b();
    assert!(events.iter().any(|e| matches!(e, Event::Cancelled { reason: CancelReason::CANCELLED, .. })), "{events:?}");
    // The producer's source was released.
    pair.b_handoff.feed(&mut pair.b, answer, &b"more"[..]);
    pair.run();
    assert!(pair.a.is_idle() && pair.b.is_idle(), "{:?} {:?}", pair.a.queues(), pair.b.queues());
    assert_eq!((pair.a.held_bytes(), pair.b.held_bytes()), (0, 0));
}

#[test]
fn cancel_from_the_producer_mid_stream_reaches_the_reader() {
    let mut pair = pair();
    let call = pair.a.request(route("/d"), &b""[..], SendOptions::default().with_stream_answer(true)).unwrap();
    pair.run();
    let request = messages(pair.take_b()).pop().unwrap();
    let answer = pair.b.respond(their_id(&request), Ok(Body::open_with(())), SendOptions::default()).unwrap();
    pair.b_handoff.feed(&mut pair.b, answer, pattern(10_000, 5));
    pair.run();
    // The source fails: the bytes before are sent, then CANCEL IO.
    assert!(pair.b.supply_failed(answer, 10_000));
    pair.run();
    let mut seen = Seen::default();
    seen.take(&mut pair.a, true);
    assert_eq!(seen.bytes.len(), 10_000);
    assert_eq!(seen.cancelled, Some(CancelReason::IO));
    assert!(!seen.ended);
    assert!(pair.a.is_idle() && pair.b.is_idle());
    let _ = call;
}

#[test]
fn a_reassembled_open_message_over_its_limit_is_cancelled_too_large() {
    let limits = Limits { max_message: 20_000, inline_limit: 20_000, ..Limits::default() };
    let mut pair = Pair::connected(Config::stream().with_chunk_size(4096), Config::stream().with_limits(limits));
    let call = pair.a.request(route("/big"), Body::open_with(()), SendOptions::default()).unwrap();
    for _ in 0..8 {
        pair.a_handoff.feed(&mut pair.a, call, pattern(4096, 6));
        pair.run();
    }
    let events = pair.take_a();
    assert!(
        events.iter().any(|e| matches!(e, Event::Cancelled { reason: CancelReason::TOO_LARGE, exchange } if *exchange == Exchange::Ours(call))),
        "{events:?}"
    );
    assert!(messages(pair.take_b()).is_empty(), "the receiver never delivered it");
    assert!(pair.a.is_idle() && pair.b.is_idle());
    assert_eq!(pair.b.held_bytes(), 0);
}

#[test]
fn a_peer_without_open_is_refused_locally() {
    let mut pair = Pair::connected(Config::stream(), Config::stream().with_open_length(false));
    assert!(!pair.a.open_length() && !pair.b.open_length());
    assert!(!pair.b.hello().open);
    let err = pair.a.request(route("/x"), Body::open(), SendOptions::default()).unwrap_err();
    assert_eq!(err, SendError::OpenLengthNotOffered);
    assert!(err.to_string().contains("HELLO option OPEN"));
    // And the side that does not offer it refuses too; known-length messages still go.
    assert_eq!(
        pair.b.send_oneway(route("/x"), Body::open(), SendOptions::default()),
        Err(SendError::OpenLengthNotOffered)
    );
    pair.a.request(route("/x"), &b"fine"[..], SendOptions::default()).unwrap();
    pair.run();
    let request = messages(pair.take_b()).pop().unwrap();
    assert_eq!(
        pair.b.respond(their_id(&request), Ok(Body::open()), SendOptions::default()),
        Err(SendError::OpenLengthNotOffered)
    );
    // The request is still unanswered, so it can be answered otherwise.
    pair.b.respond(their_id(&request), Ok(Body::from(&b"ok"[..])), SendOptions::default()).unwrap();
}

#[test]
fn an_open_head_without_negotiation_is_a_protocol_error() {
    let mut session = Session::new(Config::stream(), crate::time::Instant::now());
    let mut wire = BytesMut::new();
    let mut peer = Session::new(Config::stream().with_open_length(false), crate::time::Instant::now());
    frame::encode(frame::Framing::Stream, &Frame::Hello(peer.hello()), &mut wire).unwrap();
    let head = Head {
        xid: frame::Xid::sender(0),
        kind: Kind::OneWay,
        priority: Priority::default(),
        route: Some(Route::Id(1)),
        meta: None,
        total: OPEN_TOTAL,
        payload: Bytes::from_static(b"x"),
    };
    frame::encode(frame::Framing::Stream, &Frame::Head(head), &mut wire).unwrap();
    session.handle_input(crate::time::Instant::now(), &wire);
    let closed = core::iter::from_fn(|| session.poll_event()).find_map(|e| match e {
        Event::Closed(reason) => Some(reason),
        _ => None,
    });
    assert_eq!(closed, Some(CloseReason::Protocol(ProtocolError::OpenLengthNotNegotiated(0))));
    let _ = peer.poll_event();
}

#[test]
fn bidirectional_the_request_keeps_going_while_its_answer_streams() {
    let mut pair = pair();
    pair.b.stream_when(|r| *r == Route::Name("/chat".into()));
    let call =
        pair.a.request(route("/chat"), Body::open_with(()), SendOptions::default().with_stream_answer(true)).unwrap();
    pair.a_handoff.feed(&mut pair.a, call, &b"q1"[..]);
    pair.run();
    let mut at_b = Seen::default();
    at_b.take(&mut pair.b, true);
    let id = their_id(at_b.start.as_ref().expect("the request streams to b"));
    let answer = pair.b.respond(id, Ok(Body::open_with(())), SendOptions::default()).unwrap();
    let mut at_a = Seen::default();
    for n in 2..6 {
        // b answers each item as it reads it, while the request is still open.
        pair.b_handoff.feed(&mut pair.b, answer, format!("a{}", n - 1).into_bytes());
        pair.a_handoff.feed(&mut pair.a, call, format!("q{n}").into_bytes());
        pair.run();
        at_b.take(&mut pair.b, true);
        at_a.take(&mut pair.a, true);
    }
    assert_eq!(at_b.bytes, b"q1q2q3q4q5");
    assert_eq!(at_a.bytes, b"a1a2a3a4");
    assert!(at_b.cancelled.is_none() && at_a.cancelled.is_none());
    pair.a_handoff.end(&mut pair.a, call);
    pair.run();
    at_b.take(&mut pair.b, true);
    assert!(at_b.ended);
    pair.b_handoff.end(&mut pair.b, answer);
    pair.run();
    at_a.take(&mut pair.a, true);
    assert!(at_a.ended);
    assert!(pair.a.is_idle() && pair.b.is_idle());
}

#[test]
fn an_answer_that_completes_stops_the_rest_of_the_open_request() {
    let mut pair = pair();
    pair.b.stream_when(|r| *r == Route::Name("/up".into()));
    let call = pair.a.request(route("/up"), Body::open_with(()), SendOptions::default()).unwrap();
    pair.a_handoff.feed(&mut pair.a, call, &b"part"[..]);
    pair.run();
    let mut at_b = Seen::default();
    at_b.take(&mut pair.b, true);
    let id = their_id(at_b.start.as_ref().unwrap());
    pair.b.respond(id, Ok(Body::from(&b"enough"[..])), SendOptions::default()).unwrap();
    pair.run();
    assert_eq!(messages(pair.take_a()).len(), 1);
    at_b.take(&mut pair.b, true);
    assert_eq!(at_b.cancelled, Some(CancelReason::CANCELLED));
    assert!(pair.a.is_idle() && pair.b.is_idle());
}

#[test]
fn lossy_framing_a_lost_chunk_of_an_open_message_cancels_it_damaged() {
    let config = Config::lossy().with_chunk_size(256);
    let mut pair = Pair::connected(config.clone(), config);
    let call = pair.a.request(route("/up"), Body::open_with(()), SendOptions::default()).unwrap();
    pair.a_handoff.feed(&mut pair.a, call, pattern(256, 7));
    pair.run();
    // The next chunk is lost on the line.
    pair.a_to_b.filter = Some(Box::new(|bytes: &mut Vec<u8>| bytes.clear()));
    pair.a_handoff.feed(&mut pair.a, call, pattern(256, 8));
    pair.run();
    pair.a_to_b.filter = None;
    pair.a_handoff.feed(&mut pair.a, call, pattern(256, 9));
    pair.a_handoff.end(&mut pair.a, call);
    pair.run();
    let events = pair.take_a();
    assert!(events.iter().any(|e| matches!(e, Event::Cancelled { reason: CancelReason::DAMAGED, .. })), "{events:?}");
    assert!(messages(pair.take_b()).is_empty());
    assert!(pair.b.is_idle());
}

#[test]
fn lossy_framing_a_lost_end_is_a_stalled_message() {
    let config = Config::lossy().with_chunk_size(256);
    let mut pair = Pair::connected(config.clone(), config);
    let call = pair.a.request(route("/up"), Body::open_with(()), SendOptions::default()).unwrap();
    pair.a_handoff.feed(&mut pair.a, call, pattern(100, 7));
    pair.run();
    pair.a_to_b.filter = Some(Box::new(|bytes: &mut Vec<u8>| bytes.clear()));
    pair.a_handoff.end(&mut pair.a, call);
    pair.run();
    pair.a_to_b.filter = None;
    pair.advance(Duration::from_secs(31));
    pair.run();
    let events = pair.take_a();
    assert!(events.iter().any(|e| matches!(e, Event::Cancelled { reason: CancelReason::DAMAGED, .. })), "{events:?}");
    assert!(pair.b.is_idle());
}

#[test]
fn an_open_head_without_negotiation_is_dropped_on_the_lossy_framing() {
    // Both directions: a peer without OPEN sends one, and we do not offer it while the peer does.
    for (ours, theirs) in [(true, false), (false, true)] {
        let now = crate::time::Instant::now();
        let mut session = Session::new(Config::lossy().with_open_length(ours), now);
        let peer = Session::new(Config::lossy().with_open_length(theirs), now);
        let mut wire = BytesMut::new();
        frame::encode(frame::Framing::Lossy, &Frame::Hello(peer.hello()), &mut wire).unwrap();
        let head = Head {
            xid: frame::Xid::sender(0),
            kind: Kind::OneWay,
            priority: Priority::default(),
            route: Some(Route::Id(1)),
            meta: None,
            total: OPEN_TOTAL,
            payload: Bytes::from_static(b"x"),
        };
        frame::encode(frame::Framing::Lossy, &Frame::Head(head), &mut wire).unwrap();
        let end = Data { xid: frame::Xid::sender(0), offset: 1, end: true, payload: Bytes::new() };
        frame::encode(frame::Framing::Lossy, &Frame::Data(end), &mut wire).unwrap();
        session.handle_input(now, &wire);
        assert!(!session.open_length() && session.is_open() && !session.is_closed());
        let events: Vec<Event> = core::iter::from_fn(|| session.poll_event()).collect();
        assert!(messages(events).is_empty(), "nothing is delivered");
        assert!(session.stats().frames_dropped >= 1);
        assert_eq!(session.held_bytes(), 0);
    }
}

#[test]
fn lossy_framing_with_reliable_delivery_an_open_message_may_pause() {
    // Review: under reliable delivery (§16) no END is lost for good, so an open message that
    // has nothing for a while (a subscription over a serial line) must not be cancelled as
    // stalled, as on the stream framing.
    let config = Config::lossy().with_chunk_size(256).with_reliable(Some(Reliability::default()));
    let mut pair = Pair::connected(config.clone(), config);
    assert!(pair.a.is_reliable() && pair.b.is_reliable());
    let call = pair.a.request(route("/up"), Body::open_with(()), SendOptions::default()).unwrap();
    pair.a_handoff.feed(&mut pair.a, call, pattern(100, 7));
    pair.run();
    for _ in 0..60 {
        pair.advance(Duration::from_secs(1));
        pair.run();
    }
    let events = pair.take_a();
    assert!(!events.iter().any(|e| matches!(e, Event::Cancelled { .. } | Event::Closed(_))), "{events:?}");
    pair.a_handoff.feed(&mut pair.a, call, pattern(50, 8));
    pair.a_handoff.end(&mut pair.a, call);
    pair.run();
    let request = messages(pair.take_b()).pop().expect("the paused request completed");
    assert_eq!(request.payload.to_vec().unwrap().len(), 150);
}

#[test]
fn an_open_body_queued_before_the_handshake_to_a_peer_without_open_fails_before_its_head() {
    let mut pair = Pair::new(Config::stream(), Config::stream().with_open_length(false));
    // Queued before the peer's HELLO is known: accepted for now.
    let call = pair.a.request(route("/x"), Body::open(), SendOptions::default()).unwrap();
    pair.run();
    let events = pair.take_a();
    assert!(
        events.iter().any(|e| matches!(e, Event::Cancelled { exchange, reason: CancelReason::REFUSED } if *exchange == Exchange::Ours(call))),
        "{events:?}"
    );
    // Nothing of it reached the peer, which stays open.
    assert!(messages(pair.take_b()).is_empty());
    assert!(pair.a.is_open() && pair.b.is_open() && pair.a.is_idle());
}

#[test]
fn a_known_length_answer_is_streamed_when_asked() {
    let mut pair = pair();
    let call = pair.a.request(route("/get"), &b""[..], SendOptions::default().with_stream_answer(true)).unwrap();
    pair.run();
    let request = messages(pair.take_b()).pop().unwrap();
    let body = pattern(40_000, 9);
    pair.b.respond(their_id(&request), Ok(Body::from(body.clone())), SendOptions::default()).unwrap();
    pair.run();
    let mut seen = Seen::default();
    seen.take(&mut pair.a, true);
    let start = seen.start.as_ref().expect("streamed");
    assert_eq!(start.exchange, Exchange::Ours(call));
    assert!(matches!(start.payload, Payload::Streamed { total: 40_000 }));
    assert!(seen.ended);
    assert_eq!(seen.bytes, body);
    // An ERROR answer still arrives whole.
    pair.a.request(route("/get"), &b""[..], SendOptions::default().with_stream_answer(true)).unwrap();
    pair.run();
    let request = messages(pair.take_b()).pop().unwrap();
    pair.b.respond(their_id(&request), Err(Body::from(&b"nope"[..])), SendOptions::default()).unwrap();
    pair.run();
    let answer = messages(pair.take_a()).pop().unwrap();
    assert_eq!(answer.kind, Kind::Error);
    assert!(matches!(answer.payload, Payload::Memory(_)));
}

#[test]
fn complete_open_messages_the_application_has_not_taken_hold_their_credit() {
    // Review: an open message's credit went back as it arrived and stayed back once complete,
    // so unread complete open messages were bounded by nothing (a peer could queue any number).
    let window = 64 * 1024;
    let limits = Limits { window, inline_limit: 32 * 1024, ..Limits::default() };
    let config = Config::stream().with_chunk_size(4096).with_limits(limits);
    let mut pair = Pair::connected(config.clone(), config);
    let len = 20_000;
    let count = 40;
    // One after the other, each complete before the next starts; the application reads none.
    for i in 0..count {
        let message = pair.a.send_oneway(route("/note"), Body::open_with(()), SendOptions::default()).unwrap();
        pair.a_handoff.feed(&mut pair.a, message, pattern(len, i as u8));
        pair.a_handoff.end(&mut pair.a, message);
        pair.run();
        let held = pair.b.held_bytes();
        assert!(held <= window + len as u64, "{held} bytes held by unread messages, window {window}");
    }
    let first = messages(pair.take_b());
    assert!(!first.is_empty() && first.len() < count, "{} of {count} messages unread at once", first.len());
    let mut received = first.len();
    for _ in 0..100 {
        pair.run();
        let more = messages(pair.take_b());
        if more.is_empty() {
            break;
        }
        received += more.len();
    }
    assert_eq!(received, count, "all arrive once taken");
    assert_eq!(pair.b.held_bytes(), 0);
    assert!(pair.a.is_idle() && pair.b.is_idle());
}

#[test]
fn an_unread_open_stream_without_credit_is_bounded_by_max_message() {
    // Review: with window 0 (no credit, as on the lossy profile) an open message streamed into a
    // route that does not read had no bound at all.
    let limits = Limits { window: 0, max_message: 64 * 1024, inline_limit: 32 * 1024, ..Limits::default() };
    let mut pair = Pair::connected(Config::stream().with_chunk_size(4096), Config::stream().with_limits(limits));
    pair.b.stream_when(|r| *r == Route::Name("/sink".into()));
    let call = pair.a.request(route("/sink"), Body::open_with(()), SendOptions::default()).unwrap();
    let mut seen = Seen::default();
    for i in 0..64 {
        pair.a_handoff.feed(&mut pair.a, call, pattern(4096, i));
        pair.run();
        seen.take(&mut pair.b, false);
        assert!(seen.unread <= 64 * 1024, "{} bytes unread, max_message 65536", seen.unread);
    }
    assert_eq!(seen.cancelled, Some(CancelReason::TOO_LARGE));
    let events = pair.take_a();
    assert!(
        events.iter().any(|e| matches!(e, Event::Cancelled { reason: CancelReason::TOO_LARGE, exchange } if *exchange == Exchange::Ours(call))),
        "{events:?}"
    );
}

#[test]
fn supplies_out_of_order_are_refused_without_effect() {
    let mut pair = pair();
    let call = pair.a.send_oneway(route("/x"), Body::open_with(()), SendOptions::default()).unwrap();
    pair.run();
    // Nothing asked at offset 5, nor more than a piece, nor an empty answer.
    assert!(!pair.a.supply(call, 5, Bytes::from_static(b"abc")));
    assert!(!pair.a.supply(call, 0, Bytes::from(vec![0; 1 << 24])));
    assert!(!pair.a.supply(call, 0, Bytes::new()));
    // An end where the bytes supplied do not end.
    assert!(!pair.a.supply_end(call, 3));
    pair.a_handoff.feed(&mut pair.a, call, &b"abc"[..]);
    pair.a_handoff.end(&mut pair.a, call);
    // After the end: no more bytes, no second end.
    assert!(!pair.a.supply(call, 3, Bytes::from_static(b"d")));
    assert!(!pair.a.supply_end(call, 3));
    pair.run();
    let got = messages(pair.take_b()).pop().expect("delivered");
    assert_eq!(got.payload.to_vec().unwrap(), b"abc");
    // The message is gone: every supply says so.
    assert!(!pair.a.supply(call, 3, Bytes::from_static(b"d")));
    assert!(!pair.a.supply_end(call, 3));
    assert!(!pair.a.supply_failed(call, 3));
    // And a known-length message takes no end.
    let known = pair.a.send_oneway(route("/x"), Body::Supplied { len: 4 }, SendOptions::default()).unwrap();
    assert!(!pair.a.supply_end(known, 0));
    assert!(pair.a.is_open());
}

#[test]
fn an_answer_refused_mid_way_stops_the_open_request_too() {
    // Review: a requester that refused its answer (here one over its limit, CANCEL TOO_LARGE)
    // kept sending its open request and asking its source for more: the CANCEL ends the whole
    // exchange (§5.4), so its own message must go as well (Demand::Release).
    let limits = Limits { max_message: 8192, inline_limit: 8192, ..Limits::default() };
    let mut pair = Pair::connected(
        Config::stream().with_chunk_size(4096).with_limits(limits),
        Config::stream().with_chunk_size(4096),
    );
    pair.b.stream_when(|r| *r == Route::Name("/chat".into()));
    let call = pair.a.request(route("/chat"), Body::open_with(()), SendOptions::default()).unwrap();
    pair.a_handoff.feed(&mut pair.a, call, &b"q1"[..]);
    pair.run();
    let mut at_b = Seen::default();
    at_b.take(&mut pair.b, true);
    let id = their_id(at_b.start.as_ref().expect("the request streams to b"));
    let answer = pair.b.respond(id, Ok(Body::open_with(())), SendOptions::default()).unwrap();
    for i in 0..4 {
        pair.b_handoff.feed(&mut pair.b, answer, pattern(4096, i));
        pair.run();
    }
    let events = pair.take_a();
    assert!(
        events.iter().any(|e| matches!(e, Event::Cancelled { reason: CancelReason::TOO_LARGE, exchange } if *exchange == Exchange::Ours(call))),
        "{events:?}"
    );
    assert!(!pair.a.supply(call, 2, Bytes::from_static(b"q2")), "the request is gone");
    at_b.take(&mut pair.b, true);
    assert!(at_b.cancelled.is_some(), "b's reader learns the request stopped");
    assert!(pair.a.is_idle() && pair.b.is_idle());
}

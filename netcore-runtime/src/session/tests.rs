//! Session behaviour on the deterministic two-peer simulation.

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::frame::{Framing, Priority};
use crate::sim::Pair;

fn route(name: &str) -> Route {
    Route::Name(name.into())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn messages(events: Vec<Event>) -> Vec<Incoming> {
    events.into_iter().filter_map(|e| if let Event::Message(m) = e { Some(m) } else { None }).collect()
}

fn closed(events: &[Event]) -> Option<&CloseReason> {
    events.iter().find_map(|e| if let Event::Closed(r) = e { Some(r) } else { None })
}

#[test]
fn handshake_reports_the_peer() {
    let mut pair = Pair::new(Config::stream().with_fingerprint(7), Config::stream().with_fingerprint(7));
    pair.run();
    let events = pair.take_a();
    assert!(matches!(&events[..], [Event::Connected(hello)] if hello.fingerprint == 7));
}

#[test]
fn request_and_response() {
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    let call = pair.a.request(route("/echo"), b"ping".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    let request = messages(pair.take_b()).pop().unwrap();
    assert_eq!(request.kind, Kind::Request);
    assert_eq!(request.route, Some(route("/echo")));
    let Exchange::Theirs(id) = request.exchange else { panic!("peer-opened") };
    pair.b.respond(id, Ok(b"pong".to_vec().into()), SendOptions::default()).unwrap();
    pair.run();
    let events = pair.take_a();
    assert!(matches!(events[0], Event::Sent(m) if m == call));
    let reply = messages(events).pop().unwrap();
    assert_eq!(reply.exchange, Exchange::Ours(call));
    assert_eq!(reply.kind, Kind::Response);
    assert_eq!(reply.payload.to_vec().unwrap(), b"pong");
    assert!(pair.a.is_idle() && pair.b.is_idle());
    assert_eq!(
        pair.b.respond(id, Ok(Body::from(Vec::new())), SendOptions::default()),
        Err(SendError::UnknownExchange(id))
    );
}

#[test]
fn urgent_small_message_overtakes_a_bulk_transfer() {
    let mut pair = Pair::connected(Config::stream().with_chunk_size(1024), Config::stream());
    pair.a.send_oneway(route("/bulk"), pattern(1 << 20, 1), SendOptions::priority(Priority::LOW)).unwrap();
    // Let a few chunks of the bulk message go first.
    for _ in 0..3 {
        pair.step_bytes(1024);
    }
    pair.a.send_oneway(route("/stop"), b"now".to_vec(), SendOptions::priority(Priority::CRITICAL)).unwrap();
    pair.step_bytes(2048);
    let got = messages(pair.take_b());
    assert_eq!(got.len(), 1, "the urgent message arrives within about one chunk");
    assert_eq!(got[0].route, Some(route("/stop")));
    assert!(pair.b.progress_in(Exchange::Theirs(0)).unwrap().done < 8 * 1024);
    pair.run();
    let got = messages(pair.take_b());
    assert_eq!(got[0].payload.to_vec().unwrap(), pattern(1 << 20, 1));
}

#[test]
fn same_priority_messages_share_the_link_round_robin() {
    let mut pair = Pair::connected(Config::stream().with_chunk_size(100), Config::stream());
    pair.a.send_oneway(route("/x"), pattern(1000, 1), SendOptions::default()).unwrap();
    pair.a.send_oneway(route("/y"), pattern(1000, 2), SendOptions::default()).unwrap();
    // Eight chunks: four of each, alternating.
    for _ in 0..8 {
        pair.step_bytes(1);
    }
    let x = pair.b.progress_in(Exchange::Theirs(0)).unwrap().done;
    let y = pair.b.progress_in(Exchange::Theirs(1)).unwrap().done;
    assert_eq!((x, y), (400, 400));
}

#[test]
fn cancel_mid_transfer_frees_the_peer_and_tells_it() {
    let mut pair = Pair::connected(Config::stream().with_chunk_size(1000), Config::stream());
    let call = pair.a.request(route("/upload"), pattern(100_000, 3), SendOptions::default()).unwrap();
    for _ in 0..5 {
        pair.step_bytes(1000);
    }
    assert!(pair.b.progress_in(Exchange::Theirs(0)).is_some());
    assert!(pair.b.held_bytes() > 0);
    assert!(pair.a.cancel(Exchange::Ours(call), CancelReason::CANCELLED));
    pair.run();
    assert_eq!(pair.b.progress_in(Exchange::Theirs(0)), None);
    assert_eq!(pair.b.held_bytes(), 0, "the partial message's credit is released");
    assert!(messages(pair.take_b()).is_empty());
    assert!(pair.a.is_idle() && pair.b.is_idle());
    // The link is still good.
    pair.a.send_oneway(route("/after"), b"ok".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    assert_eq!(messages(pair.take_b()).len(), 1);
}

#[test]
fn responder_cancel_fails_the_call() {
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    let call = pair.a.request(route("/slow"), b"x".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    pair.take_b();
    assert!(pair.b.cancel(Exchange::Theirs(0), CancelReason::SHUTTING_DOWN));
    pair.run();
    let events = pair.take_a();
    assert!(events.iter().any(|e| matches!(e,
        Event::Cancelled { exchange: Exchange::Ours(m), reason } if *m == call && *reason == CancelReason::SHUTTING_DOWN)));
}

#[test]
fn a_late_reply_never_reaches_another_call() {
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    let first = pair.a.request(route("/r"), b"1".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    pair.take_b();
    // The caller gives up; the responder answers before it hears of it.
    pair.a.cancel(Exchange::Ours(first), CancelReason::TIMED_OUT);
    pair.b.respond(0, Ok(b"late".to_vec().into()), SendOptions::default()).unwrap();
    let second = pair.a.request(route("/r"), b"2".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    assert!(messages(pair.take_a()).is_empty(), "the late reply is dropped");
    pair.b.respond(1, Ok(b"right".to_vec().into()), SendOptions::default()).unwrap();
    pair.run();
    let reply = messages(pair.take_a()).pop().unwrap();
    assert_eq!(reply.exchange, Exchange::Ours(second));
    assert_eq!(reply.payload.to_vec().unwrap(), b"right");
}

#[test]
fn large_messages_spill_to_a_file_that_is_removed_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { inline_limit: 10_000, ..Limits::default() };
    let receiver = Config::stream().with_limits(limits).with_spill_dir(dir.path());
    let mut pair = Pair::connected(Config::stream().with_chunk_size(4096), receiver);
    let body = pattern(200_000, 9);
    pair.a.send_oneway(route("/file"), body.clone(), SendOptions::default()).unwrap();
    pair.step_bytes(4096 * 3);
    let progress = pair.b.progress_in(Exchange::Theirs(0)).unwrap();
    assert_eq!(progress.total, 200_000);
    assert!(progress.done > 0 && progress.done < 200_000);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a spill file exists while receiving");
    assert!(pair.b.held_bytes() <= 4096, "bytes on disk hold no credit");
    pair.run();
    let got = messages(pair.take_b()).pop().unwrap();
    assert!(matches!(got.payload, Payload::File(_)));
    assert_eq!(got.payload.to_vec().unwrap(), body);
    drop(got);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let id = pair.a.send_oneway(route("/file"), body, SendOptions::default()).unwrap();
    pair.step_bytes(4096 * 3);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    pair.a.cancel(Exchange::Ours(id), CancelReason::CANCELLED);
    pair.run();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a cancelled spill file is removed");
}

#[test]
fn bodies_stream_from_readers() {
    let mut pair = Pair::connected(Config::stream().with_chunk_size(333), Config::stream());
    let body = pattern(10_000, 5);
    pair.a
        .send_oneway(route("/r"), Body::reader(std::io::Cursor::new(body.clone()), 10_000), SendOptions::default())
        .unwrap();
    pair.run();
    assert_eq!(messages(pair.take_b())[0].payload.to_vec().unwrap(), body);
}

#[test]
fn chained_bodies_arrive_as_one_payload_whatever_the_chunk_boundaries() {
    let body = pattern(10_000, 9);
    // Cuts before, inside and after the first chunk, and at a chunk boundary.
    for cut in [0, 1, 332, 333, 334, 5_000, 9_999, 10_000] {
        let mut pair = Pair::connected(Config::stream().with_chunk_size(333), Config::stream());
        let (head, rest) = body.split_at(cut);
        let chained = Body::Chain(Bytes::copy_from_slice(head), Bytes::copy_from_slice(rest));
        assert_eq!(chained.len(), 10_000);
        pair.a.send_oneway(route("/c"), chained, SendOptions::default()).unwrap();
        pair.run();
        assert_eq!(messages(pair.take_b())[0].payload.to_vec().unwrap(), body, "cut at {cut}");
        assert_eq!(pair.a.queued_bytes(), 0, "cut at {cut}: nothing left queued");
    }
}

#[test]
fn a_short_reader_cancels_its_message() {
    let mut pair = Pair::connected(Config::stream().with_chunk_size(100), Config::stream());
    let id = pair
        .a
        .send_oneway(route("/r"), Body::reader(std::io::Cursor::new(vec![1; 250]), 1000), SendOptions::default())
        .unwrap();
    pair.run();
    assert!(pair.take_a().iter().any(|e| matches!(e,
        Event::Cancelled { exchange: Exchange::Ours(m), reason } if *m == id && *reason == CancelReason::IO)));
    assert!(messages(pair.take_b()).is_empty());
    assert!(pair.b.is_idle());
}

#[test]
fn flow_control_bounds_what_the_receiver_holds() {
    let limits = Limits { window: 64 * 1024, inline_limit: 32 * 1024, ..Limits::default() };
    let receiver = Config::stream().with_limits(limits);
    let mut pair = Pair::connected(Config::stream().with_chunk_size(4096), receiver);
    // Many in-memory messages interleaved: the reservation rule must avoid a deadlock.
    for n in 0..40u8 {
        pair.a.send_oneway(route("/m"), pattern(30_000, n), SendOptions::default()).unwrap();
    }
    let mut received = 0;
    let mut peak = 0;
    // The receiving application is slow: it takes one message per step.
    for _ in 0..10_000 {
        let moved = pair.step_bytes(4096);
        peak = peak.max(pair.b.held_bytes());
        if let Some(Event::Message(m)) = pair.b.poll_event() {
            assert_eq!(m.payload.to_vec().unwrap(), pattern(30_000, received));
            received += 1;
        }
        if !moved && received == 40 {
            break;
        }
    }
    assert_eq!(received, 40);
    assert!(peak <= 64 * 1024, "held {peak} bytes with a 64 KiB window");
}

#[test]
fn version_and_fingerprint_mismatches_name_both_sides() {
    let mut pair = Pair::new(Config::stream().with_fingerprint(0xaa), Config::stream().with_fingerprint(0xbb));
    pair.run();
    let reason = closed(&pair.take_a()).cloned().unwrap();
    assert_eq!(reason, CloseReason::Protocol(ProtocolError::Fingerprint { ours: 0xaa, theirs: 0xbb }));
    let text = reason.to_string();
    assert!(text.contains("0x00000000000000aa") && text.contains("0x00000000000000bb"), "{text}");
}

#[test]
fn a_payload_codec_mismatch_names_both_codecs_and_the_feature() {
    let postcard = Config::stream().with_codec(frame::PayloadCodec::POSTCARD);
    let bincode = Config::stream().with_codec(frame::PayloadCodec::BINCODE);
    let mut pair = Pair::new(postcard, bincode);
    pair.run();
    let reason = closed(&pair.take_a()).cloned().unwrap();
    let ours = (frame::PayloadCodec::POSTCARD, frame::PayloadCodec::BINCODE);
    assert_eq!(reason, CloseReason::Protocol(ProtocolError::Codec { ours: ours.0, theirs: ours.1 }));
    assert_eq!(
        reason.to_string(),
        "protocol error: payload codec mismatch: ours is postcard, the peer's is bincode \
         (enable or disable the netcore \"bincode\" feature on one side)"
    );
    let theirs = closed(&pair.take_b()).cloned().unwrap();
    assert_eq!(theirs, CloseReason::Protocol(ProtocolError::Codec { ours: ours.1, theirs: ours.0 }));
    // Matching codecs, either of them, open.
    for codec in [frame::PayloadCodec::POSTCARD, frame::PayloadCodec::BINCODE] {
        let mut pair = Pair::new(Config::stream().with_codec(codec), Config::stream().with_codec(codec));
        pair.run();
        assert!(pair.a.is_open() && pair.b.is_open(), "{codec:?}");
    }
}

#[test]
fn data_before_the_handshake_is_refused_with_goaway() {
    let now = Instant::now();
    let mut session = Session::new(Config::stream(), now);
    let mut bytes = BytesMut::new();
    frame::encode(Framing::Stream, &Frame::Ping { nonce: 1 }, &mut bytes).unwrap();
    session.handle_input(now, &bytes);
    assert!(matches!(
        session.poll_event(),
        Some(Event::Closed(CloseReason::Protocol(ProtocolError::ExpectedHello(0x06))))
    ));
    let mut out = BytesMut::new();
    while session.poll_transmit(now, &mut out) {}
    let mut decoder = Decoder::new(Framing::Stream, 1 << 16);
    decoder.extend(&out);
    // Our HELLO still goes out first, so the peer can tell what we are; then the GOAWAY, then nothing.
    assert!(matches!(decoder.decode(), Ok(Some(Frame::Hello(_)))));
    assert!(matches!(decoder.decode(), Ok(Some(Frame::GoAway { code: GoAwayCode::PROTOCOL, .. }))));
    assert!(matches!(decoder.decode(), Ok(None)));
}

#[test]
fn an_unknown_version_is_refused() {
    let now = Instant::now();
    let mut session = Session::new(Config::stream(), now);
    let hello = Hello::new(2, 3, 0, Limits::default());
    let mut bytes = BytesMut::new();
    frame::encode(Framing::Stream, &Frame::Hello(hello), &mut bytes).unwrap();
    session.handle_input(now, &bytes);
    let Some(Event::Closed(reason)) = session.poll_event() else { panic!("closed") };
    assert!(reason.to_string().contains("we speak 1..=1, the peer 2..=3"), "{reason}");
}

#[test]
fn keepalive_pings_then_gives_up() {
    let keepalive = Keepalive { interval: Duration::from_secs(1), max_missed: 2 };
    let config = Config::stream().with_keepalive(Some(keepalive));
    let mut pair = Pair::connected(config.clone(), config);
    pair.advance(Duration::from_millis(1001));
    pair.run();
    assert!(pair.a.is_open(), "a PING answered keeps the session alive");
    // Cut the link from b to a: a hears nothing.
    pair.b_to_a.filter = Some(Box::new(|bytes: &mut Vec<u8>| bytes.clear()));
    for _ in 0..3 {
        pair.advance(Duration::from_secs(1));
        pair.run();
    }
    let reason = CloseReason::TimedOut { deadline: Deadline::Keepalive(keepalive), after: Duration::from_secs(3) };
    assert_eq!(closed(&pair.take_a()), Some(&reason));
}

#[test]
fn eof_fails_every_open_exchange() {
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    pair.a.request(route("/r"), b"x".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    pair.a.handle_eof();
    assert_eq!(closed(&pair.take_a()), Some(&CloseReason::Disconnected));
    assert!(pair.a.is_idle());
    assert_eq!(pair.a.request(route("/r"), Bytes::new(), SendOptions::default()), Err(SendError::Closed));
}

#[test]
fn limits_refuse_too_large_and_too_many() {
    let limits = Limits { max_message: 1000, max_in_flight: 1, ..Limits::default() };
    let mut pair = Pair::connected(Config::stream().with_chunk_size(100), Config::stream().with_limits(limits));
    assert_eq!(
        pair.a.send_oneway(route("/big"), vec![0; 1001], SendOptions::default()),
        Err(SendError::TooLarge { len: 1001, max: 1000 })
    );
    // The sender respects max_in_flight: the second multi-chunk message waits for the first.
    pair.a.send_oneway(route("/a"), pattern(500, 1), SendOptions::default()).unwrap();
    pair.a.send_oneway(route("/b"), pattern(500, 2), SendOptions::default()).unwrap();
    pair.run();
    let got = messages(pair.take_b());
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].payload.to_vec().unwrap(), pattern(500, 1));
}

#[test]
fn lossy_framing_survives_damage_and_duplicates() {
    let mut pair = Pair::connected(Config::lossy(), Config::lossy());
    // Duplicate every transmission: each message must still arrive exactly once.
    pair.a_to_b.filter = Some(Box::new(|bytes: &mut Vec<u8>| {
        let copy = bytes.clone();
        bytes.extend_from_slice(&copy);
    }));
    for n in 0..5u8 {
        pair.a.send_oneway(route("/t"), pattern(600, n), SendOptions::default()).unwrap();
        pair.run();
    }
    let got = messages(pair.take_b());
    assert_eq!(got.len(), 5);
    for (n, m) in got.iter().enumerate() {
        assert_eq!(m.payload.to_vec().unwrap(), pattern(600, n as u8));
    }
    assert!(pair.b.stats().duplicates > 0);
    // Damage one frame: that request is lost; the next HEAD reveals the gap and the caller is told.
    let mut hit = false;
    pair.a_to_b.filter = Some(Box::new(move |bytes: &mut Vec<u8>| {
        if !hit && bytes.len() > 10 {
            bytes[5] ^= 0x10;
            hit = true;
        }
    }));
    let lost = pair.a.request(route("/t"), b"lost".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    pair.a.send_oneway(route("/t"), b"next".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    assert_eq!(pair.b.stats().frames_dropped, 1);
    let got = messages(pair.take_b());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.to_vec().unwrap(), b"next");
    assert!(pair.take_a().iter().any(|e| matches!(e,
        Event::Cancelled { exchange: Exchange::Ours(m), reason } if *m == lost && *reason == CancelReason::DAMAGED)));
}

#[test]
fn stream_framing_treats_an_out_of_order_exchange_as_a_protocol_error() {
    let now = Instant::now();
    let mut a = Session::new(Config::stream(), now);
    let mut b = Session::new(Config::stream(), now);
    let mut out = BytesMut::new();
    while a.poll_transmit(now, &mut out) {}
    b.handle_input(now, &out);
    while b.poll_event().is_some() {}
    let head = Head {
        xid: Xid::sender(5),
        kind: Kind::OneWay,
        priority: Priority::NORMAL,
        route: Some(Route::Id(1)),
        meta: None,
        total: 1,
        payload: Bytes::from_static(b"x"),
    };
    let mut bytes = BytesMut::new();
    frame::encode(Framing::Stream, &Frame::Head(head), &mut bytes).unwrap();
    b.handle_input(now, &bytes);
    assert!(matches!(
        b.poll_event(),
        Some(Event::Closed(CloseReason::Protocol(ProtocolError::ExchangeOrder { expected: 0, got: 5 })))
    ));
}

#[test]
fn withheld_credit_is_announced_when_nothing_is_held() {
    // Regression (found by tests/interleaving.rs): the receiver withheld less than a quarter of
    // the window while the sender waited for exactly that much to start an in-memory message.
    let limits = Limits { window: 49152, inline_limit: 38647, ..Limits::default() };
    let config = Config::stream().with_chunk_size(1).with_limits(limits);
    let mut pair = Pair::connected(config.clone(), config);
    for (n, (len, level)) in [(5959, 0), (1605, 0), (38647, 0), (2942, 0), (12288, 1)].into_iter().enumerate() {
        pair.a.send_oneway(route("/m"), pattern(len, n as u8), SendOptions::priority(Priority::new(level))).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..100 {
        let moved = pair.step();
        let before = got.len();
        got.extend(messages(pair.take_b()).into_iter().map(|m| m.payload.len().unwrap()));
        if !moved && got.len() == before {
            break;
        }
    }
    got.sort_unstable();
    assert_eq!(got, [1605, 2942, 5959, 12288, 38647]);
}

#[test]
fn a_partial_message_whose_tail_was_lost_is_dropped_after_the_stall_timeout() {
    // Lossy framing without reliable delivery: the cable is cut mid-message, with no EOF.
    let config = Config::lossy().with_keepalive(None);
    let stall = config.stall_timeout.unwrap();
    let mut pair = Pair::connected(config.clone(), config);
    let call = pair.a.request(route("/upload"), pattern(5_000, 1), SendOptions::default()).unwrap();
    for _ in 0..4 {
        pair.step_bytes(300);
    }
    assert!(pair.b.progress_in(Exchange::Theirs(0)).is_some());
    pair.a_to_b.filter = Some(Box::new(|bytes: &mut Vec<u8>| bytes.clear()));
    pair.run();
    assert!(pair.b.poll_timeout().is_some_and(|t| t <= pair.now + stall), "a stall deadline is armed");
    pair.advance(stall - Duration::from_millis(1));
    assert!(pair.b.progress_in(Exchange::Theirs(0)).is_some(), "not before the timeout");
    pair.advance(Duration::from_millis(1));
    assert_eq!(pair.b.progress_in(Exchange::Theirs(0)), None, "dropped: its slot and storage are free");
    assert!(pair.b.is_idle());
    // The sender hears CANCEL DAMAGED and its call fails.
    pair.run();
    assert!(pair.take_a().iter().any(|e| matches!(e,
        Event::Cancelled { exchange: Exchange::Ours(m), reason } if *m == call && *reason == CancelReason::DAMAGED)));
}

/// Issue 12.1: a window smaller than the chunk size once stalled every stored message forever.
#[test]
fn a_window_smaller_than_the_chunk_size_still_moves_stored_messages() {
    let dir = tempfile::tempdir().unwrap();
    for (window, len) in [(4096, 100_000), (8192, 8193), (16_383, 40_000), (16_384, 40_000)] {
        let limits = Limits { window, inline_limit: window, ..Limits::default() };
        let receiver = Config::stream().with_limits(limits).with_spill_dir(dir.path());
        let mut pair = Pair::connected(Config::stream(), receiver);
        pair.a.send_oneway(route("/store"), pattern(len, 9), SendOptions::default()).unwrap();
        pair.run();
        let got = messages(pair.take_b());
        assert_eq!(got.len(), 1, "window {window}: a {len}-byte message arrives");
        assert_eq!(got[0].payload.to_vec().unwrap(), pattern(len, 9), "window {window}");
        assert!(pair.a.is_idle() && pair.b.is_idle());
    }
}

/// The cut never goes below a quarter of the window: no trickle of tiny frames.
#[test]
fn chunks_cut_to_the_credit_are_at_least_a_quarter_window() {
    use crate::frame::{Decoder, Frame};
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { window: 4096, inline_limit: 4096, ..Limits::default() };
    let mut pair = Pair::connected(Config::stream(), Config::stream().with_limits(limits).with_spill_dir(dir.path()));
    pair.a.send_oneway(route("/store"), pattern(50_000, 1), SendOptions::default()).unwrap();
    let mut wire = BytesMut::new();
    let now = pair.now;
    let mut sizes = Vec::new();
    let mut decoder = Decoder::new(Framing::Stream, 1 << 16);
    while !pair.a.is_idle() {
        while pair.a.poll_transmit(now, &mut wire) {}
        decoder.extend(&wire);
        pair.b.handle_input(now, &wire);
        wire.clear();
        while let Ok(Some(frame)) = decoder.decode() {
            match frame {
                Frame::Head(head) => sizes.push(head.payload.len()),
                Frame::Data(data) => sizes.push(data.payload.len()),
                _ => {}
            }
        }
        while pair.b.poll_transmit(now, &mut wire) {}
        pair.a.handle_input(now, &wire);
        wire.clear();
        pair.take_b();
        pair.take_a();
    }
    assert_eq!(sizes.iter().sum::<usize>(), 50_000);
    let (last, rest) = sizes.split_last().unwrap();
    assert!(rest.iter().all(|&n| n >= 1024), "every chunk but the last is at least W/4: {sizes:?}");
    assert!(*last > 0 && sizes.iter().all(|&n| n <= 4096), "{sizes:?}");
}

/// Issue 12.2: an answer over the requester's max_message used to be dropped silently.
#[test]
fn an_answer_over_the_requesters_max_message_leaves_the_request_answerable() {
    let limits = Limits { max_message: 1000, window: 0, ..Limits::default() };
    let mut pair = Pair::connected(Config::stream().with_limits(limits), Config::stream());
    let call = pair.a.request(route("/big"), b"?".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    let Exchange::Theirs(id) = messages(pair.take_b()).pop().unwrap().exchange else { panic!("peer-opened") };
    assert_eq!(
        pair.b.respond(id, Ok(pattern(1001, 0).into()), SendOptions::default()),
        Err(SendError::TooLarge { len: 1001, max: 1000 })
    );
    pair.b.respond(id, Err(b"\x06\x00too large".to_vec().into()), SendOptions::default()).unwrap();
    pair.run();
    let reply = messages(pair.take_a()).pop().unwrap();
    assert_eq!((reply.exchange, reply.kind), (Exchange::Ours(call), Kind::Error));
}

/// An answer that fails before its HEAD (an unreadable body) cancels the exchange it answers,
/// so the requester is told at once instead of waiting for its timeout.
#[test]
fn an_answer_that_cannot_be_read_cancels_its_exchange() {
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk gone"))
        }
    }
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    let call = pair.a.request(route("/file"), b"?".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    let Exchange::Theirs(id) = messages(pair.take_b()).pop().unwrap().exchange else { panic!("peer-opened") };
    let body = Body::Reader { reader: Box::new(Broken), len: 10 };
    pair.b.respond(id, Ok(body), SendOptions::default()).unwrap();
    pair.run();
    let events = pair.take_a();
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Cancelled { exchange, reason } if *exchange == Exchange::Ours(call) && *reason == CancelReason::IO)
        ),
        "{events:?}"
    );
    let b_events = pair.take_b();
    assert!(
        b_events.iter().all(|e| !matches!(e, Event::Cancelled { exchange: Exchange::Ours(_), .. })),
        "the responder reports the failure under the peer's exchange: {b_events:?}"
    );
    assert!(pair.a.is_idle() && pair.b.is_idle());
}

fn lossy(nonce: u64) -> Config {
    Config::lossy().with_nonce(Some(nonce))
}

fn reliable_opt(on: bool) -> Option<Reliability> {
    on.then(Reliability::default)
}

fn keepalive_opt(on: bool) -> Option<Keepalive> {
    on.then_some(Keepalive { interval: Duration::from_secs(1), max_missed: 3 })
}

/// One call each way: `from` asks, the peer answers.
fn call_works(pair: &mut Pair, a_asks: bool) -> bool {
    let (asker, answerer) = if a_asks { (&mut pair.a, &mut pair.b) } else { (&mut pair.b, &mut pair.a) };
    let Ok(call) = asker.request(route("/r"), b"q".to_vec(), SendOptions::default()) else { return false };
    let _ = answerer;
    pair.run();
    let theirs = if a_asks { pair.take_b() } else { pair.take_a() };
    let Some(request) = messages(theirs).pop() else { return false };
    let Exchange::Theirs(id) = request.exchange else { return false };
    let answerer = if a_asks { &mut pair.b } else { &mut pair.a };
    answerer.respond(id, Ok(b"a".to_vec().into()), SendOptions::default()).unwrap();
    pair.run();
    let ours = if a_asks { pair.take_a() } else { pair.take_b() };
    messages(ours).iter().any(|m| m.exchange == Exchange::Ours(call))
}

#[test]
fn every_pair_of_settings_works_or_names_both() {
    // Reliable on/off × keepalive on/off on each side, both framings. When a offers reliable
    // delivery b's first HELLO is lost: a repeats its own into an open b, which is harmless
    // (§9 rule 7), and b answers a copy if it does not offer (§16.1).
    for framing in [Framing::Stream, Framing::Lossy] {
        for bits in 0..16u8 {
            let (ra, rb, ka, kb) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0);
            let config = |r: bool, k: bool, nonce: u64| {
                Config::lossy()
                    .with_framing(framing)
                    .with_reliable(reliable_opt(r))
                    .with_keepalive(keepalive_opt(k))
                    .with_nonce(Some(nonce))
            };
            let case = format!("{framing:?} a reliable {ra} keepalive {ka}, b reliable {rb} keepalive {kb}");
            let mut pair = Pair::new(config(ra, ka, 1), config(rb, kb, 2));
            if framing == Framing::Lossy && ra {
                let mut first = true;
                pair.b_to_a.filter = Some(Box::new(move |bytes: &mut Vec<u8>| {
                    if std::mem::take(&mut first) {
                        bytes.clear();
                    }
                }));
            }
            for _ in 0..30 {
                pair.run();
                pair.advance(Duration::from_millis(250));
            }
            pair.run();
            assert!(pair.a.is_open() && pair.b.is_open(), "{case}");
            let reliable = framing == Framing::Lossy && ra && rb;
            assert_eq!((pair.a.is_reliable(), pair.b.is_reliable()), (reliable, reliable), "{case}");
            assert_eq!(pair.a.offers_reliability(), framing == Framing::Lossy && ra, "{case}");
            let (a, b) = (pair.take_a(), pair.take_b());
            assert!(closed(&a).is_none() && closed(&b).is_none(), "{case}: {a:?} {b:?}");
            assert!(call_works(&mut pair, true) && call_works(&mut pair, false), "{case}");
            // Quiet for a while: pings answered, HELLO repetitions over, nothing closes.
            for _ in 0..40 {
                pair.advance(Duration::from_millis(250));
                pair.run();
            }
            assert!(pair.a.is_open() && pair.b.is_open(), "{case}");
            assert!(call_works(&mut pair, true), "{case}");
        }
    }
}

#[test]
fn a_hello_copy_is_harmless_and_a_new_nonce_is_a_restart() {
    let mut pair = Pair::connected(lossy(1), lossy(2));
    // A copy of a's HELLO (the line duplicating it): ignored.
    let copy = pair.b.peer().unwrap().clone();
    let mut bytes = BytesMut::new();
    frame::encode(Framing::Lossy, &Frame::Hello(copy.clone()), &mut bytes).unwrap();
    pair.b.handle_input(pair.now, &bytes);
    assert!(pair.b.is_open() && pair.take_b().is_empty());
    // The same nonce with other content is a protocol error.
    let mut fed = Pair::connected(lossy(1), lossy(2));
    let mut bytes = BytesMut::new();
    frame::encode(Framing::Lossy, &Frame::Hello(Hello { fingerprint: 9, ..copy.clone() }), &mut bytes).unwrap();
    fed.b.handle_input(fed.now, &bytes);
    assert_eq!(closed(&fed.take_b()), Some(&CloseReason::Protocol(ProtocolError::DuplicateHello)));
    // On the stream framing any second HELLO is a protocol error (a restart is a new connection).
    let mut stream = Pair::connected(Config::stream().with_nonce(Some(1)), Config::stream().with_nonce(Some(2)));
    let mut bytes = BytesMut::new();
    frame::encode(Framing::Stream, &Frame::Hello(copy.with_nonce(3)), &mut bytes).unwrap();
    stream.b.handle_input(stream.now, &bytes);
    assert_eq!(closed(&stream.take_b()), Some(&CloseReason::Protocol(ProtocolError::DuplicateHello)));
}

#[test]
fn a_restarted_peer_ends_the_session_and_a_successor_answers_it() {
    let mut pair = Pair::connected(lossy(1), lossy(2));
    // b has a call pending at a, a has one at b.
    pair.b.request(route("/slow"), b"x".to_vec(), SendOptions::default()).unwrap();
    pair.a.request(route("/slow"), b"y".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    pair.take_a();
    pair.take_b();
    // a restarts: a new process, a new nonce; the old one's bytes are gone.
    pair.a = Session::new(lossy(3), pair.now);
    pair.step();
    let events = pair.take_b();
    assert_eq!(closed(&events), Some(&CloseReason::PeerRestarted), "{events:?}");
    assert!(pair.b.is_closed());
    let mut out = BytesMut::new();
    assert!(!pair.b.poll_transmit(pair.now, &mut out), "no GOAWAY to the new peer");
    let next = pair.b.successor(pair.now, 4).expect("a successor");
    assert!(pair.b.successor(pair.now, 5).is_none(), "only one");
    pair.b = next;
    assert!(matches!(pair.b.poll_event(), Some(Event::Connected(h)) if h.nonce == Some(3)));
    pair.run();
    assert!(pair.a.is_open() && pair.b.is_open());
    // b's session had exchanges the peer may have seen, so its successor has a new nonce; a,
    // which has exchanged nothing yet, takes it in place: no restart of its own (no echo).
    let a_events = pair.take_a();
    assert!(matches!(&a_events[..], [Event::Connected(h)] if h.nonce == Some(4)), "{a_events:?}");
    assert!(call_works(&mut pair, true) && call_works(&mut pair, false));
    for _ in 0..10 {
        pair.advance(Duration::from_secs(1));
        pair.run();
    }
    assert!(pair.a.is_open() && pair.b.is_open());
}

#[test]
fn a_stale_hello_is_replaced_by_the_live_one() {
    // b's line holds a HELLO of a dead session of a (nonce 1) and a PING of it; the live a
    // (nonce 5) starts later and has not heard b yet.
    let now = Instant::now();
    let mut b = Session::new(lossy(2), now);
    let mut stale = BytesMut::new();
    let Frame::Hello(dead) = Frame::Hello(Session::new(lossy(1), now).our_hello()) else { unreachable!() };
    frame::encode(Framing::Lossy, &Frame::Hello(dead), &mut stale).unwrap();
    frame::encode(Framing::Lossy, &Frame::Ping { nonce: 7 }, &mut stale).unwrap();
    b.handle_input(now, &stale[3..]); // the first bytes were cleared with the port's input
    b.handle_input(now, &stale);
    assert!(b.is_open(), "b cannot tell a stale HELLO from a live one");
    let mut pair = Pair::with_sessions(Session::new(lossy(5), now), b, now);
    pair.run();
    // b had exchanged nothing with the stale session: it adopts the live HELLO in place.
    let events = pair.take_b();
    assert!(closed(&events).is_none(), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::Connected(h) if h.nonce == Some(5))), "{events:?}");
    assert_eq!(pair.b.peer().unwrap().nonce, Some(5));
    assert!(pair.a.is_open() && pair.b.is_open());
    assert!(call_works(&mut pair, true) && call_works(&mut pair, false));
}

#[test]
fn keepalive_does_not_cut_the_handshake_short_and_waiting_has_no_deadline() {
    // Lossy profile: keepalive 1 s × (3 + 1); the handshake timeout is 10 s and alone applies.
    let now = Instant::now();
    let mut session = Session::new(lossy(1), now);
    session.handle_timeout(now + Duration::from_secs(5));
    assert!(!session.is_closed(), "closed after 5 s of a 10 s handshake");
    session.handle_timeout(now + Duration::from_secs(10));
    let events: Vec<_> = std::iter::from_fn(|| session.poll_event()).collect();
    assert!(
        matches!(closed(&events), Some(CloseReason::TimedOut { deadline: Deadline::Handshake, after }) if *after == Duration::from_secs(10)),
        "{events:?}"
    );
    // Waiting for the peer: no deadline at all until a byte arrives.
    let mut waiting = Session::new(lossy(1).wait_for_peer(), now);
    assert_eq!(waiting.poll_timeout(), None);
    waiting.handle_timeout(now + Duration::from_secs(3600));
    assert!(!waiting.is_closed());
    let later = now + Duration::from_secs(3600);
    waiting.handle_input(later, &[0x55]);
    assert_eq!(waiting.poll_timeout(), Some(later + Duration::from_secs(10)));
    // A HELLO an hour late opens it, and it answers with its HELLO again (the first went nowhere).
    let mut pair = Pair::with_sessions(waiting, Session::new(lossy(2), later), later);
    let mut first = true;
    pair.a_to_b.filter = Some(Box::new(move |bytes: &mut Vec<u8>| {
        if std::mem::take(&mut first) {
            bytes.clear(); // the HELLO sent an hour ago, to nobody
        }
    }));
    pair.run();
    assert!(pair.a.is_open() && pair.b.is_open());
}

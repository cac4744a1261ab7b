//! The session's counters, queues, credit and PING round trip against known traffic.

use std::time::Duration;

use bytes::BytesMut;

use super::*;
use crate::frame::Priority;
use crate::sim::Pair;

fn echo_all(pair: &mut Pair) -> usize {
    let mut answered = 0;
    for event in pair.take_b() {
        if let Event::Message(Incoming { exchange: Exchange::Theirs(id), payload: Payload::Memory(bytes), .. }) = event
        {
            pair.b.respond(id, Ok(Body::Bytes(bytes)), SendOptions::default()).unwrap();
            answered += 1;
        }
    }
    answered
}

#[test]
fn messages_and_bytes_count_known_traffic() {
    const N: u64 = 10;
    const K: usize = 3000;
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    let before = pair.a.stats();
    for _ in 0..N {
        pair.a.request(Route::Name("/echo".into()), vec![9u8; K], SendOptions::default()).unwrap();
    }
    assert_eq!(pair.a.queues().outgoing, N as usize);
    assert_eq!(pair.a.queues().outgoing_bytes, N * K as u64);
    pair.run();
    assert_eq!(pair.a.queues().awaiting_answer, N as usize);
    assert_eq!(pair.b.queues().events, N as usize, "delivered, not yet taken");
    assert_eq!(echo_all(&mut pair), N as usize);
    assert_eq!(pair.b.queues().unanswered, 0);
    pair.run();
    let (a, b) = (pair.a.stats(), pair.b.stats());
    assert_eq!(a.messages_out, N);
    assert_eq!(a.messages_in, N);
    assert_eq!(b.messages_in, N);
    assert_eq!(b.messages_out, N);
    assert!(a.bytes_out - before.bytes_out >= N * K as u64);
    assert_eq!(a.bytes_out, b.bytes_in, "every byte sent was received");
    assert_eq!(a.frames_out, b.frames_in);
    assert_eq!((a.cancels_sent, a.cancels_received, a.frames_dropped), (0, 0, 0));
    let untaken = Queues { events: 2 * N as usize, ..Queues::default() };
    assert_eq!(pair.a.queues(), untaken, "only events, untaken: each request's Sent and its answer");
}

#[test]
fn credit_is_reported_both_ways() {
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    let window = Config::stream().limits.window;
    assert_eq!(pair.a.credit(), Credit { send: Some(window), recv: Some(window) });
    // More than a quarter of the window, so that taking it announces new credit (§5.5).
    let len = window / 2;
    pair.a.send_oneway(Route::Name("/sink".into()), vec![1u8; len as usize], SendOptions::default()).unwrap();
    pair.run();
    assert_eq!(pair.a.credit().send, Some(window - len));
    assert_eq!(pair.b.credit().recv, Some(window - len));
    pair.take_b();
    pair.run();
    assert_eq!(pair.a.credit().send, Some(window), "taken, its credit returned");
    assert_eq!(pair.b.credit().recv, Some(window));

    let lossy = Pair::connected(Config::lossy(), Config::lossy());
    assert_eq!(lossy.a.credit(), Credit { send: None, recv: None }, "§5.5: no credit on the lossy framing");
    let unopened = Session::new(Config::stream(), std::time::Instant::now());
    assert_eq!(unopened.credit(), Credit::default());
}

#[test]
fn cancels_count_on_both_sides() {
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    let id = pair.a.request(Route::Name("/slow".into()), vec![1u8; 10], SendOptions::default()).unwrap();
    pair.run();
    assert!(pair.a.cancel(Exchange::Ours(id), CancelReason::TIMED_OUT));
    pair.run();
    assert_eq!(pair.a.stats().cancels_sent, 1);
    assert_eq!(pair.b.stats().cancels_received, 1);
    assert_eq!(pair.b.stats().cancels_sent, 0);
}

/// A peer that ignores our `max_in_flight` of 2 (a well-behaved one holds its requests back).
#[test]
fn refusals_over_max_in_flight_are_counted() {
    let now = Instant::now();
    let config = Config::stream().with_limits(Limits { max_in_flight: 2, ..Limits::default() });
    let mut session = Session::new(config, now);
    let mut wire = BytesMut::new();
    frame::encode(frame::Framing::Stream, &Frame::Hello(Hello::new(1, 1, 0, Limits::default())), &mut wire).unwrap();
    for id in 0..5 {
        let head = Head {
            xid: Xid { id, opened_by_receiver: false },
            kind: Kind::Request,
            priority: Priority::default(),
            route: Some(Route::Name("/r".into())),
            meta: None,
            total: 1,
            payload: bytes::Bytes::from_static(b"x"),
        };
        frame::encode(frame::Framing::Stream, &Frame::Head(head), &mut wire).unwrap();
    }
    session.handle_input(now, &wire);
    let mut out = BytesMut::new();
    while session.poll_transmit(now, &mut out) {}
    let stats = session.stats();
    assert_eq!(stats.refused, 3, "{stats:?}");
    assert_eq!(stats.cancels_sent, 3, "each refusal is a CANCEL REFUSED");
    assert_eq!(stats.messages_in, 2);
    assert_eq!(session.queues().unanswered, 2);
}

#[test]
fn a_ping_measures_the_round_trip() {
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    assert_eq!(pair.a.stats().last_rtt, None);
    let nonce = pair.a.ping().expect("open");
    let (mut there, mut back) = (BytesMut::new(), BytesMut::new());
    let mut now = pair.now;
    while pair.a.poll_transmit(now, &mut there) {}
    now += Duration::from_millis(4);
    pair.b.handle_input(now, &there);
    while pair.b.poll_transmit(now, &mut back) {}
    now += Duration::from_millis(6);
    pair.a.handle_input(now, &back);
    assert_eq!(pair.a.last_pong(), Some((nonce, Duration::from_millis(10))));
    assert_eq!(pair.a.stats().last_rtt, Some(Duration::from_millis(10)));
    assert_eq!(pair.a.stats().pings_sent, 1);
    assert_eq!(pair.b.stats().last_rtt, None, "b answered; it measured nothing");

    // A PONG of an older PING measures nothing: only the latest one sent is timed.
    let first = pair.a.ping().unwrap();
    let second = pair.a.ping().unwrap();
    assert!(second > first);
    pair.run();
    assert_eq!(pair.a.last_pong().map(|(n, _)| n), Some(second));
    pair.a.close("done");
    assert_eq!(pair.a.ping(), None, "a closed session sends no PING");
}

#[test]
fn damaged_frames_count_with_their_bytes() {
    let mut pair = Pair::connected(Config::lossy(), Config::lossy());
    assert_eq!(pair.b.stats().bytes_discarded, 0);
    let mut wire = BytesMut::new();
    crate::frame::encode(crate::frame::Framing::Lossy, &Frame::Ping { nonce: 9 }, &mut wire).unwrap();
    let at = wire.len() / 2;
    wire[at] = if wire[at] == 0xff { 0xfe } else { wire[at].wrapping_add(1).max(1) };
    let encoded = wire.iter().filter(|b| **b != 0).count() as u64;
    pair.b.handle_input(pair.now, &wire);
    let b = pair.b.stats();
    assert_eq!(b.frames_dropped, 1);
    assert_eq!(b.bytes_discarded, encoded, "the frame's bytes, its delimiters aside");
    assert!(pair.b.is_open());
}

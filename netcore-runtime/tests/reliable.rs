//! Reliable delivery on the lossy framing (docs/PROTOCOL.md §16), on the deterministic two-peer
//! simulation: calls complete over a noisy line, handlers never run twice, and the option is
//! negotiated in the HELLO without disturbing peers that do not offer it.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use netcore_runtime::faults::{FaultPlan, SeedGuard};
use netcore_runtime::frame::{Frame, Framing, Kind, Limits};
use netcore_runtime::session::{
    Body, CloseReason, Config, Deadline, Event, Exchange, MessageId, ProtocolError, Reliability, SendOptions,
};
use netcore_runtime::sim::Pair;
use netcore_runtime::Route;
use support::*;

fn reliable_config(chunk: usize) -> Config {
    Config::lossy().with_chunk_size(chunk).with_reliable(Some(Reliability::default()))
}

/// What a run of calls over a noisy link did.
#[derive(Debug, Default)]
struct Outcome {
    correct: usize,
    wrong: usize,
    failed: usize,
    handler_runs: usize,
    repeated_handlers: usize,
    fake_time: Duration,
    bytes: u64,
    payload: u64,
    retransmitted: u64,
    damaged_frames: u64,
}

/// Runs `calls` request/response pairs from a to b with `outstanding` in flight, over links
/// damaged by `plan` (each direction with its own seed). Time only moves while both sides wait
/// for a timer.
fn calls_over(seed: u64, calls: usize, outstanding: usize, config: Config, plan: FaultPlan) -> Outcome {
    let mut pair = Pair::new(config.clone(), config);
    pair.a_to_b.filter = Some(plan.clone().with_seed(seed).link_filter());
    pair.b_to_a.filter = Some(plan.with_seed(seed ^ 0x5eed).link_filter());
    let start = pair.now;
    let mut out = Outcome::default();
    let mut expected: HashMap<MessageId, Vec<u8>> = HashMap::new();
    let mut runs: HashMap<u32, u32> = HashMap::new();
    let mut issued = 0;
    while out.correct + out.wrong + out.failed < calls {
        while pair.a.is_open() && expected.len() < outstanding && issued < calls {
            // 1 to 100 bytes: most fit one frame, some take several chunks.
            let len = 1 + (issued * 37 % 100);
            let payload = pattern(len, issued as u8);
            let id = pair.a.request(Route::Id(1), payload.clone(), SendOptions::default()).unwrap();
            out.payload += len as u64 * 2;
            expected.insert(id, payload);
            issued += 1;
        }
        let moved = pair.step();
        for event in pair.take_b() {
            match event {
                Event::Message(m) => {
                    let Exchange::Theirs(id) = m.exchange else { continue };
                    *runs.entry(id).or_default() += 1;
                    let mut answer = m.payload.to_vec().unwrap();
                    answer.reverse();
                    pair.b.respond(id, Ok(Body::from(answer)), SendOptions::default()).unwrap();
                }
                Event::Closed(reason) => panic!(
                    "b closed: {reason} after {:?}; a {:?} b {:?} a sent {:?}",
                    pair.now - start,
                    pair.a.stats(),
                    pair.b.stats(),
                    pair.a.is_closed()
                ),
                _ => {}
            }
        }
        for event in pair.take_a() {
            match event {
                Event::Message(m) => {
                    let Exchange::Ours(id) = m.exchange else { continue };
                    let mut sent = expected.remove(&id).expect("one answer per call");
                    sent.reverse();
                    if m.kind == Kind::Response && m.payload.to_vec().unwrap() == sent {
                        out.correct += 1;
                    } else {
                        out.wrong += 1;
                    }
                }
                Event::Cancelled { exchange: Exchange::Ours(id), .. } => {
                    expected.remove(&id);
                    out.failed += 1;
                }
                Event::Closed(reason) => panic!("a closed: {reason}"),
                _ => {}
            }
        }
        if !moved {
            let next = [pair.a.poll_timeout(), pair.b.poll_timeout()].into_iter().flatten().min();
            let next = next.expect("something is pending, so a timer must be set");
            pair.advance(next.saturating_duration_since(pair.now));
        }
    }
    out.handler_runs = runs.len();
    out.repeated_handlers = runs.values().filter(|&&n| n > 1).count();
    out.fake_time = pair.now - start;
    out.bytes = pair.a_to_b.carried + pair.b_to_a.carried;
    out.retransmitted = pair.a.stats().retransmitted + pair.b.stats().retransmitted;
    out.damaged_frames = pair.a.stats().frames_dropped + pair.b.stats().frames_dropped;
    assert!(pair.a.is_reliable() && pair.b.is_reliable());
    out
}

#[test]
fn ten_thousand_calls_over_a_noisy_serial_line() {
    let seed = netcore_runtime::faults::seeds(1).next().unwrap();
    let _guard = SeedGuard::new("10 000 calls over a noisy line", seed);
    let calls = 10_000;
    // 1 % of bytes lost, 0.1 % of bits flipped, 0.1 % of bytes duplicated, both ways, from the
    // first byte of the handshake on.
    let started = std::time::Instant::now();
    let out = calls_over(seed, calls, 8, reliable_config(32), FaultPlan::serial_noise(0));
    let rate = out.correct as f64 / calls as f64;
    eprintln!(
        "{calls} calls over a line losing 1 % of bytes, flipping 0.1 % of bits, duplicating 0.1 % of bytes: \
         {} correct ({:.2} %), {} wrong, {} failed; {} handlers run, {} more than once; \
         {} frames damaged, {} retransmitted; {} payload bytes in {} wire bytes; {:?} of link time \
         (in {:?})",
        out.correct,
        rate * 100.0,
        out.wrong,
        out.failed,
        out.handler_runs,
        out.repeated_handlers,
        out.damaged_frames,
        out.retransmitted,
        out.payload,
        out.bytes,
        out.fake_time,
        started.elapsed()
    );
    assert!(rate >= 0.9999, "{out:?}");
    assert_eq!(out.wrong, 0);
    assert_eq!(out.repeated_handlers, 0, "a handler ran twice");
    assert_eq!(out.handler_runs, out.correct + out.failed);
}

#[test]
fn other_seeds_and_a_harsher_line() {
    for seed in netcore_runtime::faults::seeds(5) {
        let _guard = SeedGuard::new("harsh line", seed);
        // Twice the loss, inserted noise bytes too, small windows; a patient sender.
        let plan = FaultPlan::new(0).with_drop_bytes(0.02).with_flip_bits(0.0005).with_insert_bytes(0.002);
        let reliable = Reliability::default()
            .with_window(4 + seed as u8)
            .with_rto(Duration::from_millis(200), Duration::from_millis(50), Duration::from_secs(1))
            .with_give_up(Duration::from_secs(120));
        // Pings are lost too: more of them may go unanswered before the peer counts as gone.
        let keepalive = netcore_runtime::session::Keepalive { interval: Duration::from_secs(1), max_missed: 10 };
        let config = Config::lossy().with_chunk_size(24).with_reliable(Some(reliable)).with_keepalive(Some(keepalive));
        let out = calls_over(seed + 100, 300, 4, config, plan);
        assert_eq!((out.correct, out.wrong, out.repeated_handlers), (300, 0, 0), "seed {seed}: {out:?}");
    }
}

#[test]
fn a_lost_hello_is_repeated_until_answered() {
    // Each side's first two transmissions vanish: both HELLOs are lost at first.
    let mut pair = Pair::new(reliable_config(64), reliable_config(64));
    for link in [&mut pair.a_to_b, &mut pair.b_to_a] {
        let mut lost = 2;
        link.filter = Some(Box::new(move |bytes: &mut Vec<u8>| {
            if lost > 0 {
                lost -= 1;
                bytes.clear();
            }
        }));
    }
    pair.run();
    assert!(!pair.a.is_open());
    for _ in 0..10 {
        pair.advance(Duration::from_millis(500));
        pair.run();
    }
    assert!(pair.a.is_open() && pair.b.is_open());
    assert!(pair.a.is_reliable() && pair.b.is_reliable());
    pair.a.send_oneway(Route::Id(1), b"after".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    assert!(pair.take_b().iter().any(|e| matches!(e, Event::Message(_))));
}

#[test]
fn one_lost_hello_one_open_side() {
    // Only a's HELLOs are lost (its first, and the one answering b's, §9): b is handshaking while
    // a is open and already sends a request.
    let mut pair = Pair::new(reliable_config(64), reliable_config(64));
    let mut lost = 2;
    pair.a_to_b.filter = Some(Box::new(move |bytes: &mut Vec<u8>| {
        if lost > 0 {
            lost -= 1;
            bytes.clear();
        }
    }));
    pair.run();
    assert!(pair.a.is_open() && !pair.b.is_open());
    pair.a.request(Route::Id(1), b"early".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    for _ in 0..10 {
        pair.advance(Duration::from_millis(500));
        pair.run();
    }
    let got: Vec<_> = pair.take_b().into_iter().filter(|e| matches!(e, Event::Message(_))).collect();
    assert_eq!(got.len(), 1, "the early request arrives once the handshake completes");
}

#[test]
fn negotiation_falls_back_without_the_offer() {
    // One side offers, the other does not: plain v1 lossy framing, both ways.
    let mut pair = Pair::new(reliable_config(64), Config::lossy());
    pair.run();
    assert!(pair.a.is_open() && pair.b.is_open());
    assert!(!pair.a.is_reliable() && !pair.b.is_reliable());
    pair.a.send_oneway(Route::Id(1), pattern(500, 1), SendOptions::default()).unwrap();
    pair.run();
    assert_eq!(pair.take_b().iter().filter(|e| matches!(e, Event::Message(_))).count(), 1);
    // The stream framing never offers it.
    let stream = Config::stream().with_reliable(Some(Reliability::default()));
    let mut pair = Pair::new(stream.clone(), stream);
    pair.run();
    assert!(pair.a.is_open() && !pair.a.is_reliable());
}

#[test]
fn reliable_frames_without_negotiation_and_bare_frames_with_it_are_errors() {
    let mut fed = Fed::open(Config::lossy());
    fed.frames(&[Frame::Seq { seq: 0, frame: Box::new(opening(0, Kind::OneWay, 1, b"x")) }]);
    assert!(matches!(fed.closed(), Some(CloseReason::Protocol(ProtocolError::NotNegotiated(0x09)))));

    let mut fed = Fed::handshaking(reliable_config(64));
    let hello = hello(Limits { max_frame: 1024, ..Limits::default() }, 0);
    let Frame::Hello(h) = hello else { unreachable!() };
    fed.frames(&[Frame::Hello(h.with_reliable(16))]);
    assert!(fed.session.is_reliable());
    fed.frames(&[opening(0, Kind::OneWay, 1, b"x")]);
    assert!(matches!(fed.closed(), Some(CloseReason::Protocol(ProtocolError::Unsequenced(0x02)))));

    let mut fed = Fed::handshaking(reliable_config(64));
    let Frame::Hello(h) = hello_frame() else { unreachable!() };
    fed.frames(&[Frame::Hello(h.with_reliable(16)), Frame::Ack { next: 5, received: 0 }]);
    assert!(matches!(fed.closed(), Some(CloseReason::Protocol(ProtocolError::BadAck { next: 5, .. }))));
}

fn hello_frame() -> Frame {
    hello(Limits { max_frame: 1024, ..Limits::default() }, 0)
}

#[test]
fn a_silent_peer_is_given_up_on() {
    let config = reliable_config(64).with_keepalive(None);
    let mut pair = Pair::new(config.clone(), config);
    pair.run();
    pair.b_to_a.filter = Some(Box::new(|bytes: &mut Vec<u8>| bytes.clear()));
    pair.a.send_oneway(Route::Id(1), b"into the void".to_vec(), SendOptions::default()).unwrap();
    let start = pair.now;
    while !pair.a.is_closed() {
        pair.run();
        let next = pair.a.poll_timeout().expect("a retransmission timer");
        pair.advance(next - pair.now);
    }
    let given_up = pair.now - start;
    assert_eq!(given_up, Reliability::default().give_up);
    let retransmitted = pair.a.stats().retransmitted;
    assert!((5..=20).contains(&retransmitted), "{retransmitted} retransmissions with backoff");
    let events = pair.take_a();
    let Some(reason) = events.iter().find_map(|e| if let Event::Closed(r) = e { Some(r) } else { None }) else {
        panic!("{events:?}")
    };
    assert_eq!(*reason, CloseReason::TimedOut { deadline: Deadline::GiveUp, after: given_up });
    assert_eq!(reason.to_string(), "a frame unacknowledged for 30 s: reliable-delivery give-up (Reliability::give_up)");
}

#[test]
fn the_window_bounds_what_is_in_flight() {
    let window = 8u8;
    let config = Config::lossy().with_chunk_size(16).with_reliable(Some(Reliability::default().with_window(window)));
    let mut pair = Pair::new(config.clone(), config);
    pair.run();
    pair.a.send_oneway(Route::Id(1), pattern(16 * 40, 3), SendOptions::default()).unwrap();
    // Before any ACK, a sends exactly one window of SEQ frames.
    let mut out = bytes::BytesMut::new();
    while pair.a.poll_transmit(pair.now, &mut out) {}
    let mut decoder = netcore_runtime::frame::Decoder::new(Framing::Lossy, 4096);
    decoder.extend(&out);
    let mut seqs = 0;
    while let Ok(Some(frame)) = decoder.decode() {
        seqs += usize::from(matches!(frame, Frame::Seq { .. }));
    }
    assert_eq!(seqs, usize::from(window));
    // The first of them is lost; b holds the rest until it is sent again.
    let first_end = out.iter().skip(1).position(|&b| b == 0).unwrap() + 2;
    pair.b.handle_input(pair.now, &out[first_end..]);
    for _ in 0..20 {
        pair.run();
        pair.advance(Duration::from_millis(500));
    }
    let got: Vec<_> =
        pair.take_b().into_iter().filter_map(|e| if let Event::Message(m) = e { Some(m) } else { None }).collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.to_vec().unwrap(), pattern(16 * 40, 3));
    assert!(pair.a.stats().retransmitted >= 1);
}

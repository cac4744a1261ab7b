//! Faults and hostile input against the sans-IO core (frames and sessions): nothing lost beyond the
//! damaged frame, nothing hangs, nothing panics. Numbered as in the issue "Faults and hostile
//! input"; the driver-level cases are in the workspace's `tests/faults.rs`, memory figures in
//! `memory.rs`. Randomized cases print their seed on failure (`NETCORE_FAULT_SEED` reruns one).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use netcore_runtime::faults::{self, single_fault, Fault, FaultPlan, Rng, SeedGuard};
use netcore_runtime::frame::{
    CancelReason, Decoder, Frame, FrameError, Framing, GoAwayCode, Head, Kind, Limits, Priority, Route, Xid,
};
use netcore_runtime::session::{
    Body, CloseReason, Config, Deadline, Event, Exchange, Keepalive, Payload, ProtocolError, SendOptions, Session,
};
use netcore_runtime::sim::Pair;
use support::*;

/// A realistic mix of frames as one side of a serial link sends them.
fn traffic() -> Vec<Frame> {
    let mut frames = vec![Frame::Ping { nonce: 1 }, Frame::Pong { nonce: 9 }];
    for id in 0..6u32 {
        frames.push(opening(id, Kind::Request, 16, &pattern(16, id as u8)));
    }
    frames.push(opening(6, Kind::OneWay, 700, &pattern(240, 6)));
    frames.push(data(6, 240, false, &pattern(240, 7)));
    frames.push(data(6, 480, true, &pattern(220, 8)));
    frames.push(Frame::Cancel { xid: Xid::receiver(3), reason: CancelReason::TIMED_OUT });
    frames.push(answer(2, b"a reply"));
    frames.push(Frame::GoAway { code: GoAwayCode::NORMAL, message: "bye".into() });
    frames
}

/// Decodes a whole byte stream; damage is counted and skipped (lossy) or ends decoding (stream).
fn decode_all(framing: Framing, bytes: &[u8], max_body: usize) -> (Vec<Frame>, usize, Option<FrameError>) {
    let mut decoder = Decoder::new(framing, max_body);
    decoder.extend(bytes);
    let (mut frames, mut damaged) = (Vec::new(), 0);
    loop {
        match decoder.decode() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, damaged, None),
            Err(err) if framing == Framing::Lossy => {
                assert!(err.is_damage(), "random damage is never an intact but malformed frame: {err}");
                damaged += 1;
            }
            Err(err) => {
                assert!(decoder.buffered() <= max_body + 10, "buffered {} bytes", decoder.buffered());
                return (frames, damaged, Some(err));
            }
        }
    }
}

/// How many of `sent` are missing from `got`, checking that `got` is `sent` with some frames
/// removed: nothing forged, nothing reordered.
fn frames_lost(sent: &[Frame], got: &[Frame]) -> usize {
    let mut rest = sent.iter();
    for frame in got {
        assert!(rest.any(|s| s == frame), "a frame that was never sent was accepted: {frame:?}");
    }
    sent.len() - got.len()
}

// 1. A bit flip in a payload or a length field is detected before the length is trusted; at most
// the damaged frame is lost; a deleted or inserted byte costs at most one frame (lossy framing).
#[test]
fn one_byte_fault_costs_at_most_one_frame_on_the_lossy_framing() {
    let sent = traffic();
    let clean = wire(Framing::Lossy, &sent);
    let mut lost_by_kind: HashMap<&str, (u64, u64)> = HashMap::new();
    let faults = 20_000;
    for seed in faults::seeds(faults) {
        let _guard = SeedGuard::new("lossy single fault", seed);
        let mut bytes = clean.clone();
        let fault = single_fault(seed, &mut bytes);
        let (got, _, _) = decode_all(Framing::Lossy, &bytes, 1024);
        let lost = frames_lost(&sent, &got);
        assert!(lost <= 1, "{fault:?} cost {lost} frames");
        let kind = match fault {
            Fault::Flip { .. } => "bit flip",
            Fault::Delete { .. } => "deleted byte",
            Fault::Insert { .. } => "inserted byte",
            Fault::Duplicate { .. } => "duplicated byte",
        };
        let entry = lost_by_kind.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += lost as u64;
    }
    let total: u64 = lost_by_kind.values().map(|(_, lost)| lost).sum();
    eprintln!(
        "lossy framing: {} single-byte faults over {} frames ({} bytes): {:.3} frames lost per fault",
        faults,
        sent.len(),
        clean.len(),
        total as f64 / faults as f64
    );
    let mut kinds: Vec<_> = lost_by_kind.into_iter().collect();
    kinds.sort();
    for (kind, (n, lost)) in kinds {
        eprintln!("  {kind}: {n} faults, {:.3} frames lost per fault, never more than 1", lost as f64 / n as f64);
    }
}

#[test]
fn one_byte_fault_on_the_stream_framing_is_detected_and_fatal() {
    let sent = traffic();
    let clean = wire(Framing::Stream, &sent);
    let (mut detected, mut waiting) = (0, 0);
    for seed in faults::seeds(5_000) {
        let _guard = SeedGuard::new("stream single fault", seed);
        let mut bytes = clean.clone();
        single_fault(seed, &mut bytes);
        let (got, _, err) = decode_all(Framing::Stream, &bytes, 1024);
        frames_lost(&sent, &got);
        match err {
            Some(_) => detected += 1,
            // A length prefix made longer waits for bytes that will not fit; a deleted byte at the
            // very end leaves a frame incomplete. Either way nothing wrong was accepted.
            None => waiting += 1,
        }
    }
    eprintln!("stream framing: 5000 single-byte faults: {detected} detected at once, {waiting} waiting for more bytes");
    assert!(detected > 4500);
}

#[test]
fn a_flipped_length_is_checked_before_it_is_trusted() {
    // Stream prefix: a flip to a huge length fails before a byte of the body is buffered.
    let mut bytes = wire(Framing::Stream, &[opening(0, Kind::Request, 3, b"abc")]);
    bytes[0] |= 0x80;
    bytes.splice(1..1, [0xff, 0xff, 0xff, 0x7f]);
    let mut decoder = Decoder::new(Framing::Stream, 1024);
    decoder.extend(&bytes);
    assert!(matches!(decoder.decode(), Err(FrameError::TooLarge { .. })));
    // HEAD total: every single-bit flip of the body is caught by the CRC, total included.
    let head = Frame::Head(Head {
        xid: Xid::sender(0),
        kind: Kind::OneWay,
        priority: Priority::LOW,
        route: Some(Route::Id(1)),
        meta: None,
        total: 5000,
        payload: Bytes::from_static(b"first"),
    });
    let clean = wire(Framing::Stream, &[head]);
    for at in 1..clean.len() {
        for bit in 0..8 {
            let mut bytes = clean.clone();
            bytes[at] ^= 1 << bit;
            let mut decoder = Decoder::new(Framing::Stream, 1024);
            decoder.extend(&bytes);
            assert!(matches!(decoder.decode(), Err(FrameError::BadCrc { .. })), "flip at {at}.{bit}");
        }
    }
}

// 2. Noise, fake sync bytes and garbage between frames are skipped and never accepted as a frame.
#[test]
fn garbage_between_frames_is_skipped_and_never_accepted() {
    let sent = traffic();
    let mut junk_frames = 0;
    for seed in faults::seeds(1_000) {
        let _guard = SeedGuard::new("garbage between frames", seed);
        let mut rng = Rng::new(seed);
        let mut bytes = Vec::new();
        for frame in &sent {
            // Noise, runs of zeros (fake sync), and fake frames: real ones cut short or with a
            // body whose CRC is wrong.
            for _ in 0..rng.below(4) {
                match rng.below(4) {
                    0 => bytes.extend((0..rng.below(40)).map(|_| rng.byte())),
                    1 => bytes.extend(std::iter::repeat_n(0, rng.below(5) as usize + 1)),
                    2 => {
                        let real = wire(Framing::Lossy, std::slice::from_ref(frame));
                        bytes.extend_from_slice(&real[..1 + rng.below(real.len() as u64 - 2) as usize]);
                        bytes.push(0);
                    }
                    _ => {
                        let fields: Vec<u8> = (0..rng.below(30) + 1).map(|_| rng.byte()).collect();
                        let mut fake = body(&fields);
                        let last = fake.len() - 1;
                        fake[last] ^= 1;
                        bytes.extend(framed_body(Framing::Lossy, &fake));
                    }
                }
                junk_frames += 1;
            }
            bytes.extend(wire(Framing::Lossy, std::slice::from_ref(frame)));
        }
        let (got, _, _) = decode_all(Framing::Lossy, &bytes, 1024);
        assert_eq!(got, sent, "every real frame, and only those");
    }
    eprintln!("garbage: {junk_frames} pieces of noise and fake frames skipped, none accepted");
}

#[test]
fn a_session_handshakes_and_talks_through_line_noise() {
    let mut pair = Pair::new(Config::lossy(), Config::lossy());
    // Noise before and between every transmission, with zeros in it.
    let mut rng = Rng::new(5);
    pair.a_to_b.filter = Some(Box::new(move |bytes: &mut Vec<u8>| {
        let noise: Vec<u8> = (0..rng.below(30)).map(|_| if rng.chance(0.2) { 0 } else { rng.byte() }).collect();
        bytes.splice(0..0, noise);
    }));
    pair.run();
    assert!(pair.a.is_open() && pair.b.is_open());
    pair.take_b();
    for n in 0..20u8 {
        pair.a.send_oneway(Route::Id(1), pattern(300, n), SendOptions::default()).unwrap();
        pair.run();
    }
    let got: Vec<_> =
        pair.take_b().into_iter().filter_map(|e| if let Event::Message(m) = e { Some(m) } else { None }).collect();
    assert_eq!(got.len(), 20);
    assert!(got.iter().enumerate().all(|(n, m)| m.payload.to_vec().unwrap() == pattern(300, n as u8)));
    assert!(pair.b.stats().frames_dropped > 0, "the noise was seen and dropped");
}

#[test]
fn garbage_on_the_stream_framing_closes_cleanly() {
    let mut fed = Fed::open(Config::stream());
    fed.input(&[0x05, 0x13, 0x37, 0x00, 0xff, 0x01]);
    assert!(matches!(fed.closed(), Some(CloseReason::Protocol(ProtocolError::Frame(FrameError::BadCrc { .. })))));
    assert_eq!(fed.goaway_sent().map(|(code, _)| code), Some(GoAwayCode::PROTOCOL));
}

// 3. Duplicated frames are delivered once; a handler runs at most once per request.
#[test]
fn duplicated_frames_and_bytes_never_run_a_handler_twice() {
    for seed in faults::seeds(20) {
        let _guard = SeedGuard::new("duplicates", seed);
        let config = Config::lossy().with_chunk_size(64);
        let mut pair = Pair::new(config.clone(), config);
        pair.run();
        // Whole transmissions repeated, and single bytes duplicated.
        let mut rng = Rng::new(seed);
        let mut dup = FaultPlan::new(seed).with_duplicate_bytes(0.002).mangler();
        pair.a_to_b.filter = Some(Box::new(move |bytes: &mut Vec<u8>| {
            // The whole transmission again, or a random part of it.
            let from = rng.below(bytes.len() as u64) as usize;
            let copy = bytes[from..].to_vec();
            bytes.extend_from_slice(&copy);
            dup.mangle(bytes);
        }));
        let mut calls = Vec::new();
        for n in 0..40u8 {
            let len = if n % 4 == 0 { 200 } else { 12 };
            calls.push(pair.a.request(Route::Id(2), pattern(len, n), SendOptions::default()).unwrap());
        }
        let mut runs: HashMap<u32, u32> = HashMap::new();
        let mut answers: HashMap<_, u32> = HashMap::new();
        for _ in 0..50 {
            pair.run();
            for event in pair.take_b() {
                if let Event::Message(m) = event {
                    let Exchange::Theirs(id) = m.exchange else { continue };
                    *runs.entry(id).or_default() += 1;
                    pair.b.respond(id, Ok(Body::from(m.payload.to_vec().unwrap())), SendOptions::default()).unwrap();
                }
            }
            for event in pair.take_a() {
                if let Event::Message(m) = event {
                    *answers.entry(m.exchange).or_default() += 1;
                }
            }
        }
        assert!(runs.values().all(|&n| n == 1), "a handler ran twice: {runs:?}");
        assert!(answers.values().all(|&n| n == 1), "a call was answered twice");
        assert!(runs.len() >= 20, "most requests arrive: {}", runs.len());
        // 40 messages in 70 frames were sent; duplicates came on top.
        let stats = pair.b.stats();
        assert!(stats.frames_in > 70, "{stats:?}");
    }
}

#[test]
fn a_duplicated_frame_on_the_stream_framing_is_a_protocol_error() {
    let mut fed = Fed::open(Config::stream());
    let request = opening(0, Kind::Request, 2, b"hi");
    fed.frames(&[request.clone(), request]);
    assert_eq!(fed.messages().len(), 1, "delivered once");
    assert!(matches!(fed.closed(), Some(CloseReason::Protocol(ProtocolError::ExchangeOrder { expected: 1, got: 0 }))));
}

// 4. EOF at any byte of a frame fails every pending call promptly with a disconnect error.
#[test]
fn eof_at_any_byte_fails_every_pending_call() {
    for framing in [Framing::Stream, Framing::Lossy] {
        let config = Config::stream().with_framing(framing).with_chunk_size(100);
        // What b sends after the handshake: three answers, one of them in several chunks.
        let script = |pair: &mut Pair| {
            pair.run();
            for n in 0..3u8 {
                pair.a.request(Route::Id(3), vec![n], SendOptions::default()).unwrap();
            }
            pair.run();
            pair.take_a();
            pair.take_b();
            pair.b.respond(0, Ok(Body::from(pattern(20, 0))), SendOptions::default()).unwrap();
            pair.b.respond(1, Ok(Body::from(pattern(450, 1))), SendOptions::default()).unwrap();
            pair.b.respond(2, Ok(Body::from(pattern(20, 2))), SendOptions::default()).unwrap();
        };
        let mut pair = Pair::new(config.clone(), config.clone());
        script(&mut pair);
        let mut answer_bytes = bytes::BytesMut::new();
        while pair.b.poll_transmit(pair.now, &mut answer_bytes) {}
        for cut in 0..answer_bytes.len() {
            let mut pair = Pair::new(config.clone(), config.clone());
            script(&mut pair);
            let mut fresh = bytes::BytesMut::new();
            while pair.b.poll_transmit(pair.now, &mut fresh) {}
            assert_eq!(fresh, answer_bytes, "the simulation is deterministic");
            pair.a.handle_input(pair.now, &answer_bytes[..cut]);
            pair.a.handle_eof();
            let events = pair.take_a();
            let answered = events.iter().filter(|e| matches!(e, Event::Message(_))).count();
            assert!(answered < 3, "{framing:?} cut at {cut}");
            assert!(
                matches!(events.last(), Some(Event::Closed(CloseReason::Disconnected))),
                "{framing:?} cut at {cut}: {events:?}"
            );
            assert!(pair.a.is_idle(), "nothing left pending after EOF");
            assert!(pair.a.poll_timeout().is_none(), "no timer left");
        }
    }
}

// 5. Hostile lengths, counts beyond the bytes present, offsets past the total, totals that
// disagree: rejected before any allocation of the claimed size, no integer wrap.
#[test]
fn hostile_lengths_are_refused_before_allocation() {
    // A length prefix of 2^64-1.
    let mut fed = Fed::open(Config::stream());
    fed.input(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert!(matches!(fed.closed(), Some(CloseReason::Protocol(ProtocolError::Frame(FrameError::TooLarge { .. })))));
    assert_eq!(fed.goaway_sent().map(|(code, _)| code), Some(GoAwayCode::LIMIT));

    for framing in [Framing::Stream, Framing::Lossy] {
        let config = Config::stream().with_framing(framing).with_limits(small_limits());
        // A total of 2^64-2 (2^64-1 is malformed, §5.2), and one just above max_message:
        // CANCEL TOO_LARGE, nothing kept.
        let mut fed = Fed::open(config.clone());
        fed.frames(&[opening(0, Kind::OneWay, u64::MAX - 1, b"x"), opening(1, Kind::Request, (1 << 20) + 1, b"y")]);
        assert_eq!(
            fed.cancels_sent(),
            vec![(Xid::receiver(0), CancelReason::TOO_LARGE), (Xid::receiver(1), CancelReason::TOO_LARGE)]
        );
        // Later chunks of the refused messages are dropped as unknown, even at offsets near 2^64.
        fed.frames(&[data(0, 1, false, b"z"), data(0, u64::MAX - 1, true, b"z")]);
        assert!(fed.session.is_open() && fed.session.is_idle());
        assert_eq!(fed.session.held_bytes(), 0);

        // Route-name and meta lengths beyond the body.
        for fields in [
            [&[0x02u8, 0x03, 0x00][..], &varint(u64::MAX), b"abc"].concat(),
            [&[0x02u8, 0x07, 0x00][..], &varint(3), b"abc", &varint(1 << 40), b"m"].concat(),
        ] {
            let mut fed = Fed::open(config.clone());
            fed.input(&framed_body(framing, &body(&fields)));
            assert!(
                matches!(fed.closed(), Some(CloseReason::Protocol(ProtocolError::Frame(FrameError::Truncated)))),
                "{framing:?}: {:?}",
                fed.events
            );
        }

        // A DATA whose offset plus length wraps past 2^64.
        let mut fed = Fed::open(config.clone());
        let fields = [&[0x03u8, 0x00, 0x00][..], &varint(u64::MAX), b"ab"].concat();
        fed.input(&framed_body(framing, &body(&fields)));
        assert!(matches!(
            fed.closed(),
            Some(CloseReason::Protocol(ProtocolError::Frame(FrameError::Invalid { frame: "DATA", field: "offset" })))
        ));
    }
}

#[test]
fn offsets_past_the_total_and_disagreeing_ends_are_refused() {
    // (frame after HEAD(total 100, 10 bytes), expected outcome on stream, on lossy)
    let cases: [(Frame, bool); 4] = [
        (data(0, 50, false, b"gap"), true),   // offset beyond what arrived
        (data(0, 10, false, &[1; 95]), true), // past the total
        (data(0, 10, true, &[1; 20]), true),  // END before the total
        (data(0, 10, false, &[1; 90]), true), // reaches the total without END
    ];
    for (frame, _) in cases {
        let stream = {
            let mut fed = Fed::open(Config::stream());
            fed.frames(&[opening(0, Kind::OneWay, 100, &[0; 10]), frame.clone()]);
            fed
        };
        assert!(
            matches!(
                stream.closed(),
                Some(CloseReason::Protocol(ProtocolError::Offset { .. } | ProtocolError::Total { .. }))
            ),
            "{frame:?}: {:?}",
            stream.events
        );
        let mut lossy = Fed::open(Config::lossy());
        lossy.frames(&[opening(0, Kind::OneWay, 100, &[0; 10]), frame.clone()]);
        assert_eq!(lossy.cancels_sent(), vec![(Xid::receiver(0), CancelReason::DAMAGED)], "{frame:?}");
        assert!(lossy.session.is_open() && lossy.session.is_idle());
        // The link is still good.
        lossy.frames(&[opening(1, Kind::OneWay, 2, b"ok")]);
        assert_eq!(lossy.messages().len(), 1);
    }
}

// 6. Too many messages in flight, half-sent floods, sparse or repeated chunks, floods of cancels
// for unknown ids, empty chunks or pings: refused or closed, the rest unaffected.
#[test]
fn a_half_sent_flood_is_refused_and_the_session_survives() {
    for framing in [Framing::Stream, Framing::Lossy] {
        let limits = small_limits();
        let mut fed = Fed::open(Config::stream().with_framing(framing).with_limits(limits));
        let n = 100_000u32;
        for batch in (0..n).collect::<Vec<_>>().chunks(1000) {
            let frames: Vec<Frame> =
                batch.iter().map(|&id| opening(id, Kind::OneWay, limits.inline_limit, &[id as u8])).collect();
            fed.frames(&frames);
        }
        let refused = fed.cancels_sent().iter().filter(|(_, r)| *r == CancelReason::REFUSED).count();
        assert_eq!(refused, (n - limits.max_in_flight) as usize, "{framing:?}");
        assert!(fed.session.is_open());
        // Single-frame messages still get through; the partial ones hold one byte each.
        fed.frames(&[opening(n, Kind::OneWay, 2, b"ok")]);
        assert_eq!(fed.messages().len(), 1);
        assert_eq!(fed.session.progress_in(Exchange::Theirs(0)).map(|p| p.done), Some(1));
    }
}

#[test]
fn a_peer_that_floods_and_does_not_read_is_closed() {
    // Pings whose pongs are never read, and refusals nobody reads: GOAWAY LIMIT, not unbounded queues.
    let pings: Vec<Frame> = (0..5000).map(|nonce| Frame::Ping { nonce }).collect();
    let refused: Vec<Frame> = (0..5000).map(|id| opening(id, Kind::OneWay, 100, b"x")).collect();
    for flood in [pings, refused] {
        let mut fed = Fed::open(Config::lossy().with_limits(small_limits()));
        let bytes = wire(Framing::Lossy, &flood);
        fed.session.handle_input(fed.now, &bytes);
        fed.events_only();
        assert!(matches!(fed.closed(), Some(CloseReason::Protocol(ProtocolError::ControlFlood))), "{:?}", fed.events);
        fed.drain();
        assert_eq!(fed.goaway_sent().map(|(code, _)| code), Some(GoAwayCode::LIMIT));
        assert!(fed.sent.len() <= 4097, "the queue was bounded: {} frames", fed.sent.len());
    }
}

#[test]
fn pings_and_cancels_for_unknown_ids_cost_nothing() {
    // Far beyond the default noise budget (§8.5, which closes with GOAWAY ABUSE): raised here to
    // show such frames are never answered or reported, whatever their number.
    let config = Config::stream().with_abuse_limits(Duration::from_secs(1), 1024, u32::MAX);
    let mut fed = Fed::open(config);
    let cancels: Vec<Frame> = (0..100_000u32)
        .map(|i| Frame::Cancel {
            xid: Xid { id: i.wrapping_mul(2_654_435_761), opened_by_receiver: i % 2 == 0 },
            reason: CancelReason(i as u8),
        })
        .collect();
    fed.frames(&cancels);
    assert!(fed.sent.is_empty(), "a CANCEL is never answered");
    assert!(fed.events.is_empty(), "unknown exchanges are not reported");
    let pings: Vec<Frame> = (0..100_000).map(|nonce| Frame::Ping { nonce }).collect();
    for batch in pings.chunks(1000) {
        fed.frames(batch);
    }
    assert_eq!(fed.sent.len(), 100_000, "every ping answered");
    assert!(fed.session.is_open() && fed.session.is_idle());
}

#[test]
fn sparse_repeated_and_empty_chunks() {
    // Lossy: a repeated chunk is a duplicate, a sparse one damages its message only.
    let mut fed = Fed::open(Config::lossy());
    fed.frames(&[
        opening(0, Kind::OneWay, 30, &[1; 10]),
        data(0, 10, false, &[2; 10]),
        data(0, 10, false, &[2; 10]),
        data(0, 0, false, &[1; 10]),
        data(0, 20, true, &[3; 10]),
        opening(1, Kind::OneWay, 30, &[1; 10]),
        data(1, 25, true, &[3; 5]),
    ]);
    let got = fed.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.to_vec().unwrap(), [[1; 10], [2; 10], [3; 10]].concat());
    assert_eq!(fed.cancels_sent(), vec![(Xid::receiver(1), CancelReason::DAMAGED)]);
    // An empty DATA is malformed (§5.3) on both framings: the peer broke the rules.
    for framing in [Framing::Stream, Framing::Lossy] {
        let mut fed = Fed::open(Config::stream().with_framing(framing));
        fed.frames(&[opening(0, Kind::OneWay, 30, &[1; 10])]);
        fed.input(&framed_body(framing, &body(&[0x03, 0x00, 0x00, 0x0a])));
        assert!(matches!(
            fed.closed(),
            Some(CloseReason::Protocol(ProtocolError::Frame(FrameError::Invalid { frame: "DATA", .. })))
        ));
        assert_eq!(fed.goaway_sent().map(|(code, _)| code), Some(GoAwayCode::PROTOCOL));
    }
}

// 7. A message id reused while in flight, a reply after its call timed out: never delivered to
// the wrong caller.
#[test]
fn a_reused_id_is_refused_or_dropped() {
    let mut stream = Fed::open(Config::stream());
    stream.frames(&[opening(0, Kind::Request, 20, &[1; 10]), opening(0, Kind::Request, 5, b"other")]);
    assert!(matches!(stream.closed(), Some(CloseReason::Protocol(ProtocolError::ExchangeOrder { .. }))));
    assert!(stream.messages().is_empty());

    let mut lossy = Fed::open(Config::lossy());
    lossy.frames(&[
        opening(0, Kind::Request, 20, &[1; 10]),
        opening(0, Kind::Request, 5, b"other"),
        data(0, 10, true, &[2; 10]),
    ]);
    let got = lossy.messages();
    assert_eq!(got.len(), 1, "the second HEAD with id 0 is a duplicate");
    assert_eq!(got[0].payload.to_vec().unwrap(), [[1; 10], [2; 10]].concat());
}

#[test]
fn replies_reach_only_their_own_call() {
    for framing in [Framing::Stream, Framing::Lossy] {
        let mut fed = Fed::open(Config::stream().with_framing(framing));
        let first = fed.session.request(Route::Id(1), b"1".to_vec(), SendOptions::default()).unwrap();
        fed.drain();
        // The call times out; its reply comes late, and another call is waiting.
        fed.session.cancel(Exchange::Ours(first), CancelReason::TIMED_OUT);
        let second = fed.session.request(Route::Id(1), b"2".to_vec(), SendOptions::default()).unwrap();
        fed.drain();
        // Answers to exchanges never opened, the timed-out one, then the right one, then a repeat.
        fed.frames(&[answer(7, b"never asked"), answer(0, b"late"), answer(1, b"right"), answer(1, b"again")]);
        let got = fed.messages();
        assert_eq!(got.len(), 1, "{framing:?}");
        assert_eq!(got[0].exchange, Exchange::Ours(second));
        assert_eq!(got[0].payload.to_vec().unwrap(), b"right");
        assert!(fed.session.is_open(), "late and unknown answers are dropped silently");
    }
}

// 8. A peer that sends one byte every 10 s: deadlines fire, buffers stay bounded.
#[test]
fn a_byte_every_ten_seconds_trips_the_keepalive() {
    let keepalive = Keepalive { interval: Duration::from_secs(1), max_missed: 3 };
    let mut fed = Fed::open(Config::lossy().with_keepalive(Some(keepalive)));
    let opened = fed.now;
    let drip = wire(Framing::Lossy, &[opening(0, Kind::Request, 300, &[7; 300])]);
    for byte in &drip {
        fed.input(std::slice::from_ref(byte));
        for _ in 0..10 {
            fed.advance(Duration::from_secs(1));
        }
        if fed.session.is_closed() {
            break;
        }
        assert!(fed.session.stats().bytes_in < 20, "still open after {} bytes", fed.session.stats().bytes_in);
    }
    let closed_at = fed.now - opened;
    let Some(CloseReason::TimedOut { deadline: Deadline::Keepalive(k), after }) = fed.closed() else {
        panic!("{:?}", fed.closed())
    };
    assert_eq!((*k, *after), (keepalive, Duration::from_secs(4)));
    assert!(closed_at <= Duration::from_secs(10), "closed after {closed_at:?}");
    let pings = fed.sent.iter().filter(|f| matches!(f, Frame::Ping { .. })).count();
    assert_eq!(pings, 3);
    let text = "peer silent for 4 s: keepalive deadline (1 s interval × 3 missed + 1)";
    assert_eq!(fed.closed().unwrap().to_string(), text);
    assert_eq!(fed.goaway_sent(), Some((GoAwayCode::TIMEOUT, text.to_string())));
}

#[test]
fn a_dripped_handshake_times_out() {
    let mut fed = Fed::handshaking(Config::stream());
    let hello = wire(Framing::Stream, &[hello(Limits::default(), 0)]);
    for byte in &hello {
        fed.input(std::slice::from_ref(byte));
        fed.advance(Duration::from_secs(10));
        if fed.session.is_closed() {
            break;
        }
    }
    let reason = CloseReason::TimedOut { deadline: Deadline::Handshake, after: Duration::from_secs(10) };
    assert_eq!(fed.closed(), Some(&reason));
    let text = "handshake timed out: no HELLO from the peer within 10 s (Config::handshake_timeout)";
    assert_eq!(reason.to_string(), text);
    assert_eq!(
        fed.goaway_sent(),
        Some((GoAwayCode::TIMEOUT, text.to_string())),
        "the GOAWAY says handshake, not keepalive"
    );
    assert!(fed.session.stats().bytes_in <= 2);
}

// 9. File-backed reception interrupted by cancel, disconnect or a full disk: the temporary file is
// removed and never looks complete.
fn spill_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|entries| entries.count()).unwrap_or(0)
}

#[test]
fn interrupted_spills_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { inline_limit: 1000, ..Limits::default() };
    for interruption in ["cancel by the sender", "cancel by the receiver", "damage", "eof", "goaway"] {
        let receiver = Config::lossy().with_limits(limits).with_spill_dir(dir.path());
        let mut pair = Pair::new(Config::lossy(), receiver);
        pair.run();
        let id = pair.a.send_oneway(Route::Id(9), pattern(20_000, 1), SendOptions::default()).unwrap();
        for _ in 0..10 {
            pair.step_bytes(256);
        }
        assert_eq!(spill_files(dir.path()), 1, "{interruption}: spilling");
        match interruption {
            "cancel by the sender" => {
                pair.a.cancel(Exchange::Ours(id), CancelReason::CANCELLED);
            }
            "cancel by the receiver" => {
                pair.b.cancel(Exchange::Theirs(0), CancelReason::IO);
            }
            "damage" => {
                // One chunk lost on the way: the message is damaged and dropped (§5.3).
                let mut first = true;
                pair.a_to_b.filter = Some(Box::new(move |bytes: &mut Vec<u8>| {
                    if std::mem::take(&mut first) {
                        bytes.clear();
                    }
                }));
                pair.step_bytes(256);
            }
            "eof" => pair.b.handle_eof(),
            _ => pair.a.close("bye"),
        }
        pair.run();
        assert_eq!(spill_files(dir.path()), 0, "{interruption}: the spill file is removed");
        assert!(!pair.take_b().iter().any(|e| matches!(e, Event::Message(_))), "{interruption}: nothing delivered");
    }
}

#[test]
fn storage_that_cannot_be_created_refuses_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-there");
    let limits = Limits { inline_limit: 1000, ..Limits::default() };
    let mut pair = Pair::new(Config::lossy(), Config::lossy().with_limits(limits).with_spill_dir(&missing));
    pair.run();
    let id = pair.a.request(Route::Id(9), pattern(5000, 1), SendOptions::default()).unwrap();
    pair.run();
    let events = pair.take_a();
    assert!(events.iter().any(|e| matches!(e,
        Event::Cancelled { exchange: Exchange::Ours(m), reason } if *m == id && *reason == CancelReason::IO)));
    assert!(pair.b.is_open() && pair.b.is_idle());
}

/// Runs in a child process whose file-size limit makes writes fail after 64 KiB, as a full disk
/// does (SIGXFSZ ignored, so the write returns EFBIG). Started by `a_full_disk_...` below.
#[test]
fn full_disk_child() {
    let Ok(dir) = std::env::var("NETCORE_FULL_DISK_DIR") else { return };
    let limits = Limits { inline_limit: 1000, ..Limits::default() };
    let receiver = Config::stream().with_limits(limits).with_spill_dir(&dir);
    let mut pair = Pair::new(Config::stream().with_chunk_size(4096), receiver);
    pair.run();
    let big = pair.a.send_oneway(Route::Id(9), pattern(1 << 20, 1), SendOptions::default()).unwrap();
    let mut saw_file = false;
    for _ in 0..1000 {
        if !pair.step_bytes(4096) {
            break;
        }
        saw_file |= spill_files(dir.as_ref()) == 1;
    }
    assert!(saw_file, "the message was being spilled");
    let events = pair.take_a();
    assert!(
        events.iter().any(|e| matches!(e,
            Event::Cancelled { exchange: Exchange::Ours(m), reason } if *m == big && *reason == CancelReason::IO)),
        "{events:?}"
    );
    assert!(!pair.take_b().iter().any(|e| matches!(e, Event::Message(_))), "an incomplete file is never delivered");
    assert_eq!(spill_files(dir.as_ref()), 0, "the partial file is removed");
    // Small messages still get through.
    pair.a.send_oneway(Route::Id(9), b"small".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    assert_eq!(pair.take_b().iter().filter(|e| matches!(e, Event::Message(_))).count(), 1);
    println!("full disk child: ok");
}

#[cfg(unix)]
#[test]
fn a_full_disk_refuses_the_message_and_removes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 128 && exec \"$0\" --exact full_disk_child --nocapture --test-threads 1")
        .arg(exe)
        .env("NETCORE_FULL_DISK_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("full disk child: ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(spill_files(dir.path()), 0);
}

// 10. Schema fingerprint mismatch, data before the handshake, an unknown version: a clear error
// naming both sides' values, on both sides.
#[test]
fn handshake_failures_name_both_sides() {
    let mut pair = Pair::new(Config::lossy().with_fingerprint(0xaa), Config::lossy().with_fingerprint(0xbb));
    pair.run();
    let a = pair.take_a();
    let b = pair.take_b();
    let (a, b) = (a.last().unwrap(), b.last().unwrap());
    assert!(matches!(a, Event::Closed(CloseReason::Protocol(ProtocolError::Fingerprint { ours: 0xaa, theirs: 0xbb }))));
    assert!(matches!(b, Event::Closed(CloseReason::Protocol(ProtocolError::Fingerprint { ours: 0xbb, theirs: 0xaa }))));

    // A peer that only sees the other's GOAWAY (its own check disabled: fingerprint 0 is untyped).
    let mut fed = Fed::handshaking(Config::stream().with_fingerprint(0x1234));
    let peer = netcore_runtime::frame::Hello::new(2, 3, 0x5678, Limits::default());
    fed.frames(&[Frame::Hello(peer)]);
    let Some(CloseReason::Protocol(err)) = fed.closed() else { panic!("{:?}", fed.events) };
    assert_eq!(err.to_string(), "no common protocol version: we speak 1..=1, the peer 2..=3");
    let (code, message) = fed.goaway_sent().unwrap();
    assert_eq!(
        (code, message.as_str()),
        (GoAwayCode::VERSION, "no common protocol version: we speak 1..=1, the peer 2..=3")
    );

    let mut fed = Fed::handshaking(Config::stream());
    fed.frames(&[opening(0, Kind::Request, 1, b"x")]);
    assert_eq!(fed.closed().unwrap().to_string(), "protocol error: expected HELLO, received frame type 0x02");
    assert!(matches!(fed.sent.first(), Some(Frame::Hello(_))), "our HELLO still goes first");
}

// 12. Disconnects at random points leave nothing behind (sans-IO; the driver soak is in the
// workspace's tests/faults.rs, the memory check in memory.rs).
pub fn disconnect_at_random(seed: u64, dir: &std::path::Path) {
    let mut rng = Rng::new(seed);
    let framing = if rng.chance(0.5) { Framing::Stream } else { Framing::Lossy };
    let limits = Limits { inline_limit: 2000, ..Limits::default() };
    let config = Config::stream().with_framing(framing).with_chunk_size(200).with_limits(limits).with_spill_dir(dir);
    let mut pair = Pair::new(config.clone(), config);
    if rng.chance(0.3) {
        pair.a_to_b.filter = Some(FaultPlan::serial_noise(seed).link_filter());
    }
    let mut open_calls = 0;
    for n in 0..rng.below(6) + 1 {
        let len = [10, 150, 900, 5000][rng.below(4) as usize];
        if rng.chance(0.5) {
            pair.a.request(Route::Id(1), pattern(len, n as u8), SendOptions::default()).unwrap();
            open_calls += 1;
        } else {
            pair.b.send_oneway(Route::Id(2), pattern(len, n as u8), SendOptions::default()).unwrap();
        }
    }
    random_steps(&mut pair, &mut rng);
    // The cable is cut: each side learns it at its own time.
    pair.a.handle_eof();
    if rng.chance(0.5) {
        pair.step();
    }
    pair.b.handle_eof();
    assert!(pair.a.is_closed() && pair.b.is_closed());
    let events = [pair.take_a(), pair.take_b()];
    let _ = open_calls;
    assert!(pair.a.is_idle() && pair.b.is_idle());
    assert!(pair.a.poll_timeout().is_none() && pair.b.poll_timeout().is_none());
    // Messages already delivered may hold files; dropping them removes them.
    drop(events);
    assert_eq!(spill_files(dir), 0, "a spill file outlived its session");
}

#[test]
fn ten_thousand_disconnects_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let mut count = 0;
    for seed in faults::seeds(10_000) {
        let _guard = SeedGuard::new("random disconnect", seed);
        disconnect_at_random(seed, dir.path());
        count += 1;
    }
    eprintln!("{count} disconnects at random points in {:?}: no file left", started.elapsed());
}

#[test]
fn payload_files_are_handed_over_complete() {
    // The positive case of 9: a spilled message that completes is a file with every byte.
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { inline_limit: 1000, ..Limits::default() };
    let mut pair = Pair::new(Config::lossy(), Config::lossy().with_limits(limits).with_spill_dir(dir.path()));
    pair.run();
    pair.a.send_oneway(Route::Id(9), pattern(5000, 3), SendOptions::default()).unwrap();
    pair.run();
    let message = pair.take_b().into_iter().find_map(|e| if let Event::Message(m) = e { Some(m) } else { None });
    let message = message.unwrap();
    assert!(matches!(message.payload, Payload::File(_)));
    assert_eq!(message.payload.to_vec().unwrap(), pattern(5000, 3));
    drop(message);
    assert_eq!(spill_files(dir.path()), 0);
    let _ = Session::new(Config::lossy(), pair.now);
}

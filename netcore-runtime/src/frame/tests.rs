//! Codec tests: wire round trips, splitting, and damage on both framings (docs/PROTOCOL.md §3–§5).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

const FRAMINGS: [Framing; 2] = [Framing::Stream, Framing::Lossy];

/// Large enough for every frame built here.
const MAX_BODY: usize = 64 * 1024;

fn encode_all(framing: Framing, frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for frame in frames {
        encode(framing, frame, &mut out).unwrap();
    }
    out.to_vec()
}

/// Decodes until the decoder needs more bytes. A stream error is final, so decoding stops there.
fn drain(decoder: &mut Decoder) -> Vec<Result<Frame, FrameError>> {
    let mut out = Vec::new();
    loop {
        match decoder.decode() {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => return out,
            Err(err) => {
                let last = matches!(decoder, Decoder::Stream(_));
                out.push(Err(err));
                if last {
                    return out;
                }
            }
        }
    }
}

fn decode_bytes(framing: Framing, max_body: usize, bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
    let mut decoder = Decoder::new(framing, max_body);
    decoder.extend(bytes);
    drain(&mut decoder)
}

fn frames_of(results: &[Result<Frame, FrameError>]) -> Vec<Frame> {
    results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect()
}

fn limits() -> Limits {
    Limits { max_frame: 1024, max_message: 1 << 40, inline_limit: 1 << 20, window: 0, max_in_flight: 16 }
}

fn head(kind: Kind, route: Option<Route>, meta: Option<&'static [u8]>, total: u64, payload: &'static [u8]) -> Frame {
    Frame::Head(Head {
        xid: Xid { id: 7, opened_by_receiver: !kind.opens_exchange() },
        kind,
        priority: Priority::HIGH,
        route,
        meta: meta.map(Bytes::from_static),
        total,
        payload: Bytes::from_static(payload),
    })
}

/// One or more frames of every type, including the edge cases of each field.
fn sample_frames() -> Vec<(&'static str, Frame)> {
    let long: &'static [u8] = Box::leak(vec![0u8; 700].into_boxed_slice());
    vec![
        (
            "HELLO",
            Frame::Hello(Hello {
                version_min: 1,
                version_max: 3,
                fingerprint: 0xdead_beef_0000_0001,
                limits: limits(),
                reliable: None,
                nonce: None,
                codec: PayloadCodec::POSTCARD,
                methods: None,
                open: false,
            }),
        ),
        (
            "HELLO with extreme limits",
            Frame::Hello(Hello {
                version_min: 0,
                version_max: 255,
                fingerprint: u64::MAX,
                limits: Limits {
                    max_frame: u32::MAX,
                    max_message: u64::MAX,
                    inline_limit: 0,
                    window: u64::MAX,
                    max_in_flight: 0,
                },
                reliable: Some(128),
                nonce: Some(u64::MAX),
                codec: PayloadCodec(0xff),
                methods: Some(vec![(0, 0), (u32::MAX, u64::MAX)].into()),
                open: true,
            }),
        ),
        ("HEAD request, route id, complete", head(Kind::Request, Some(Route::Id(route_id("/echo"))), None, 3, b"abc")),
        ("HEAD one-way, route name, complete", head(Kind::OneWay, Some(Route::Name("/log".into())), None, 2, b"hi")),
        (
            "HEAD request, route name, meta, partial",
            head(Kind::Request, Some(Route::Name("/up".into())), Some(b"m"), 9, b"a"),
        ),
        ("HEAD response, meta, complete", head(Kind::Response, None, Some(b"\0meta\0"), 4, b"\0\0\0\0")),
        ("HEAD error, partial, huge total", head(Kind::Error, None, None, u64::MAX - 1, b"e")),
        ("HEAD request, open length", head(Kind::Request, Some(Route::Id(7)), None, OPEN_TOTAL, b"ab")),
        ("HEAD response, open length, no payload yet", head(Kind::Response, None, Some(b"m"), OPEN_TOTAL, b"")),
        ("HEAD response, empty payload", head(Kind::Response, None, None, 0, b"")),
        ("HEAD partial without payload", head(Kind::OneWay, Some(Route::Id(0)), Some(b""), 1000, b"")),
        ("HEAD with a 700-byte payload of zeros", head(Kind::OneWay, Some(Route::Id(1)), None, 700, long)),
        (
            "DATA",
            Frame::Data(Data { xid: Xid::receiver(3), offset: 1, end: false, payload: Bytes::from_static(b"xyz") }),
        ),
        (
            "DATA with END",
            Frame::Data(Data {
                xid: Xid::sender(u32::MAX),
                offset: 1 << 40,
                end: true,
                payload: Bytes::from_static(b"\0"),
            }),
        ),
        (
            "DATA, empty, END (the end of an open-length message)",
            Frame::Data(Data { xid: Xid::receiver(4), offset: 9, end: true, payload: Bytes::new() }),
        ),
        (
            "DATA at the last offset",
            Frame::Data(Data {
                xid: Xid::sender(0),
                offset: u64::MAX - 1,
                end: true,
                payload: Bytes::from_static(b"z"),
            }),
        ),
        ("CANCEL", Frame::Cancel { xid: Xid::receiver(9), reason: CancelReason::TIMED_OUT }),
        ("CANCEL with an unknown reason", Frame::Cancel { xid: Xid::sender(0), reason: CancelReason(200) }),
        ("CREDIT", Frame::Credit { limit: 4 << 20 }),
        ("CREDIT zero", Frame::Credit { limit: 0 }),
        ("PING", Frame::Ping { nonce: 1 }),
        ("PING max", Frame::Ping { nonce: u64::MAX }),
        ("PONG", Frame::Pong { nonce: 300 }),
        ("GOAWAY", Frame::GoAway { code: GoAwayCode::PROTOCOL, message: "bad frame: ü".into() }),
        ("GOAWAY empty", Frame::GoAway { code: GoAwayCode(99), message: String::new() }),
        ("extension", Frame::Extension { ty: FrameType(0x80), body: Bytes::from_static(b"\x00\x01ext") }),
        ("extension, empty", Frame::Extension { ty: FrameType(0xff), body: Bytes::new() }),
    ]
}

#[test]
fn every_frame_type_round_trips_on_both_framings() {
    for (name, frame) in sample_frames() {
        let mut body = Vec::new();
        encode_body(&frame, &mut body).unwrap();
        assert_eq!(encoded_body_len(&frame), body.len(), "{name}: encoded_body_len");
        assert_eq!(body[0], frame.frame_type().0, "{name}: type byte");
        assert_eq!(decode_body(body.into()), Ok(frame.clone()), "{name}: body");
        for framing in FRAMINGS {
            let wire = encode_all(framing, std::slice::from_ref(&frame));
            let mut decoder = Decoder::new(framing, MAX_BODY);
            decoder.extend(&wire);
            assert_eq!(decoder.decode(), Ok(Some(frame.clone())), "{name} on {framing:?}");
            assert_eq!(decoder.decode(), Ok(None), "{name} on {framing:?}: nothing more");
            assert_eq!(decoder.buffered(), 0, "{name} on {framing:?}: all bytes consumed");
        }
    }
}

#[test]
fn lossy_frames_carry_zeros_only_as_delimiters() {
    for (name, frame) in sample_frames() {
        let wire = encode_all(Framing::Lossy, std::slice::from_ref(&frame));
        assert_eq!(wire[0], 0, "{name}");
        assert_eq!(wire[wire.len() - 1], 0, "{name}");
        assert!(!wire[1..wire.len() - 1].contains(&0), "{name}: zero inside the COBS body");
    }
}

#[test]
fn wire_vectors() {
    // PING 1: type 0x06, varint 1, CRC32 of [06 01] little-endian; stream prefix 6.
    let crc = crc32fast::hash(&[0x06, 0x01]).to_le_bytes();
    let ping = Frame::Ping { nonce: 1 };
    let stream = encode_all(Framing::Stream, std::slice::from_ref(&ping));
    assert_eq!(stream, [&[6, 0x06, 0x01][..], &crc].concat());
    // The body holds no zero here unless the CRC does; COBS then is one block.
    let body = [&[0x06, 0x01][..], &crc].concat();
    let lossy = encode_all(Framing::Lossy, std::slice::from_ref(&ping));
    if !body.contains(&0) {
        assert_eq!(lossy, [&[0, 7][..], &body, &[0]].concat());
    }
    assert_eq!(decode_bytes(Framing::Lossy, 64, &lossy), [Ok(ping)]);
}

// ---- Strategies ----

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn text() -> impl Strategy<Value = String> {
    "(?s).{0,24}"
}

fn xid() -> impl Strategy<Value = Xid> {
    (any::<u32>(), any::<bool>()).prop_map(|(id, opened_by_receiver)| Xid { id, opened_by_receiver })
}

fn varint_value() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..200, any::<u64>(), Just(u64::MAX)]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Request), Just(Kind::Response), Just(Kind::Error), Just(Kind::OneWay)]
}

fn arb_head() -> impl Strategy<Value = Head> {
    let route = prop_oneof![any::<u32>().prop_map(Route::Id), text().prop_map(Route::Name)];
    let extra = prop_oneof![Just(0u64), 1u64..300, 1u64..=u64::MAX - 1024];
    (any::<u32>(), kind(), 0u8..8, route, prop::option::of(bytes(40)), bytes(600), extra).prop_map(
        |(id, kind, level, route, meta, payload, extra)| Head {
            xid: Xid { id, opened_by_receiver: !kind.opens_exchange() },
            kind,
            priority: Priority::new(level),
            route: kind.opens_exchange().then_some(route),
            meta,
            total: payload.len() as u64 + extra,
            payload,
        },
    )
}

fn arb_data() -> impl Strategy<Value = Data> {
    (xid(), varint_value(), any::<bool>(), prop::collection::vec(any::<u8>(), 1..600)).prop_map(
        |(xid, offset, end, payload)| Data {
            xid,
            offset: offset.min(u64::MAX - payload.len() as u64),
            end,
            payload: payload.into(),
        },
    )
}

fn arb_hello() -> impl Strategy<Value = Hello> {
    let limits = (any::<u32>(), varint_value(), varint_value(), varint_value(), any::<u32>()).prop_map(
        |(max_frame, max_message, inline_limit, window, max_in_flight)| Limits {
            max_frame,
            max_message,
            inline_limit,
            window,
            max_in_flight,
        },
    );
    let reliable = prop_oneof![Just(None), (1..=128u8).prop_map(Some)];
    let nonce = prop_oneof![Just(None), any::<u64>().prop_map(Some)];
    let methods = prop_oneof![
        Just(None),
        proptest::collection::vec((any::<u32>(), any::<u64>()), 0..20).prop_map(|m| Some(m.into()))
    ];
    (any::<u8>(), any::<u8>(), any::<u64>(), limits, reliable, nonce, any::<u8>(), methods, any::<bool>()).prop_map(
        |(version_min, version_max, fingerprint, limits, reliable, nonce, codec, methods, open)| Hello {
            version_min,
            version_max,
            fingerprint,
            limits,
            reliable,
            nonce,
            codec: PayloadCodec(codec),
            methods,
            open,
        },
    )
}

/// Any frame the encoder accepts, with fields that survive a round trip.
fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        1 => arb_hello().prop_map(Frame::Hello),
        3 => arb_head().prop_map(Frame::Head),
        3 => arb_data().prop_map(Frame::Data),
        1 => (xid(), any::<u8>()).prop_map(|(xid, r)| Frame::Cancel { xid, reason: CancelReason(r) }),
        1 => varint_value().prop_map(|limit| Frame::Credit { limit }),
        1 => varint_value().prop_map(|nonce| Frame::Ping { nonce }),
        1 => varint_value().prop_map(|nonce| Frame::Pong { nonce }),
        1 => (any::<u8>(), text()).prop_map(|(c, message)| Frame::GoAway { code: GoAwayCode(c), message }),
        1 => (0x80u8..=0xff, bytes(300)).prop_map(|(ty, body)| Frame::Extension { ty: FrameType(ty), body }),
    ]
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![Just(Framing::Stream), Just(Framing::Lossy)]
}

/// Feeds `wire` cut at `cuts` (positions, in any order) and decodes after every piece.
fn decode_in_pieces(framing: Framing, max_body: usize, wire: &[u8], cuts: &[usize]) -> Vec<Result<Frame, FrameError>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    cuts.push(wire.len());
    cuts.sort_unstable();
    let mut decoder = Decoder::new(framing, max_body);
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts {
        decoder.extend(&wire[start..cut]);
        start = cut;
        out.extend(drain(&mut decoder));
    }
    out
}

proptest! {
    #[test]
    fn encoded_body_len_matches_encode_body(frame in arb_frame()) {
        let mut body = Vec::new();
        encode_body(&frame, &mut body).unwrap();
        prop_assert_eq!(encoded_body_len(&frame), body.len());
        prop_assert_eq!(decode_body(body.into()), Ok(frame));
    }

    #[test]
    fn any_split_decodes_to_the_same_frames(
        framing in framing(),
        frames in prop::collection::vec(arb_frame(), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        let wire = encode_all(framing, &frames);
        let got = decode_in_pieces(framing, MAX_BODY, &wire, &cuts);
        let want: Vec<_> = frames.into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn byte_by_byte_decodes_to_the_same_frames(framing in framing(), frames in prop::collection::vec(arb_frame(), 1..4)) {
        let wire = encode_all(framing, &frames);
        let cuts: Vec<usize> = (0..wire.len()).collect();
        let got = decode_in_pieces(framing, MAX_BODY, &wire, &cuts);
        prop_assert_eq!(got, frames.into_iter().map(Ok).collect::<Vec<_>>());
    }

    /// Random noise between frames (zeros included) is dropped and never taken for a frame.
    #[test]
    fn lossy_noise_between_frames_is_skipped(
        frames in prop::collection::vec(arb_frame(), 1..6),
        noise in prop::collection::vec(prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..80), 6),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut wire = noise[0].clone();
        for (frame, noise) in frames.iter().zip(&noise[1..]) {
            wire.extend(encode_all(Framing::Lossy, std::slice::from_ref(frame)));
            wire.extend(noise);
        }
        let got = decode_in_pieces(Framing::Lossy, MAX_BODY, &wire, &cuts);
        for result in &got {
            if let Err(err) = result {
                prop_assert!(err.is_damage(), "noise reported as {:?}", err);
            }
        }
        prop_assert_eq!(frames_of(&got), frames);
    }

    /// One deleted, inserted or replaced byte inside one frame of a sequence costs that frame only.
    #[test]
    fn lossy_damage_costs_at_most_the_damaged_frame(
        frames in prop::collection::vec(arb_frame(), 2..6),
        victim in any::<prop::sample::Index>(),
        position in any::<prop::sample::Index>(),
        op in 0u8..3,
        byte in any::<u8>(),
    ) {
        let victim = victim.index(frames.len());
        let mut wire = Vec::new();
        let mut damaged = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let mut encoded = encode_all(Framing::Lossy, std::slice::from_ref(frame));
            if i == victim {
                let at = position.index(encoded.len());
                match op {
                    0 => { encoded.remove(at); }
                    1 => encoded.insert(at, byte),
                    _ => encoded[at] = byte,
                }
                damaged = encoded.clone();
            }
            wire.extend(encoded);
        }
        let got = decode_bytes(Framing::Lossy, MAX_BODY, &wire);
        let mut want = frames.clone();
        if frames_of(&got).len() < frames.len() {
            want.remove(victim);
        }
        prop_assert_eq!(frames_of(&got), want, "damaged frame bytes {:?}", damaged);
        prop_assert!(got.iter().all(|r| r.as_ref().err().is_none_or(FrameError::is_damage)));
    }
}

// ---- Damage: exhaustive single-byte and single-bit faults ----

/// Small frames of several types for the exhaustive damage tests.
fn victims() -> Vec<Frame> {
    vec![
        Frame::Ping { nonce: 0x1234 },
        Frame::Credit { limit: 1 << 20 },
        Frame::Cancel { xid: Xid::receiver(2), reason: CancelReason::DAMAGED },
        head(Kind::Request, Some(Route::Name("/a".into())), Some(b"\0"), 5, b"\0\x01\0"),
        Frame::Data(Data { xid: Xid::sender(1), offset: 3, end: true, payload: Bytes::from_static(b"\0\0x\0") }),
        Frame::GoAway { code: GoAwayCode::NORMAL, message: "bye".into() },
        Frame::Hello(Hello::new(1, 1, 0, limits()).with_reliable(16)),
        Frame::Extension { ty: FrameType(0x81), body: Bytes::from_static(b"\0") },
    ]
}

fn flips(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..bytes.len() * 8).map(move |bit| {
        let mut flipped = bytes.to_vec();
        flipped[bit / 8] ^= 1 << (bit % 8);
        flipped
    })
}

#[test]
fn stream_bit_flips_never_yield_a_frame() {
    let next = Frame::Pong { nonce: 42 };
    let max_body = 256;
    for victim in victims() {
        let wire = encode_all(Framing::Stream, std::slice::from_ref(&victim));
        for (bit, flipped) in flips(&wire).enumerate() {
            let mut decoder = Decoder::new(Framing::Stream, max_body);
            decoder.extend(&flipped);
            match decoder.decode() {
                Err(_) => continue,
                Ok(Some(frame)) => panic!("{victim:?} bit {bit}: decoded {frame:?}"),
                // A longer length prefix waits for more bytes: whatever follows, no frame comes out.
                Ok(None) => {}
            }
            let mut more = encode_all(Framing::Stream, std::slice::from_ref(&next));
            more.extend(std::iter::repeat_n(0x55, max_body + 16));
            let mut result = Ok(None);
            for piece in more.chunks(7) {
                decoder.extend(piece);
                result = decoder.decode();
                assert!(!matches!(result, Ok(Some(_))), "{victim:?} bit {bit}: decoded {result:?}");
                if result.is_err() {
                    break;
                }
            }
            assert!(result.is_err(), "{victim:?} bit {bit}: a body of at most {max_body} bytes was never rejected");
        }
    }
}

#[test]
fn lossy_bit_flips_cost_one_frame_and_the_next_decodes() {
    let before = Frame::Ping { nonce: 1 };
    let after = Frame::Pong { nonce: 2 };
    for victim in victims() {
        let wire = encode_all(Framing::Lossy, std::slice::from_ref(&victim));
        for (bit, flipped) in flips(&wire).enumerate() {
            let mut input = encode_all(Framing::Lossy, std::slice::from_ref(&before));
            input.extend(&flipped);
            input.extend(encode_all(Framing::Lossy, std::slice::from_ref(&after)));
            let got = decode_bytes(Framing::Lossy, 256, &input);
            let errors: Vec<_> = got.iter().filter_map(|r| r.as_ref().err()).collect();
            let frames = frames_of(&got);
            // A flipped delimiter alone loses nothing: the neighbour's delimiter takes over.
            let delimiter = bit / 8 == 0 || bit / 8 == wire.len() - 1;
            if delimiter && frames.len() == 3 {
                assert_eq!(frames, [before.clone(), victim.clone(), after.clone()], "{victim:?} bit {bit}");
                continue;
            }
            assert_eq!(frames, [before.clone(), after.clone()], "{victim:?} bit {bit}");
            assert!(!errors.is_empty(), "{victim:?} bit {bit}: damage not reported");
            assert!(errors.iter().all(|e| e.is_damage()), "{victim:?} bit {bit}: {errors:?}");
        }
    }
}

/// Every deletion, insertion and bit flip at every position of a small lossy frame loses at
/// most that frame, and never produces a frame that was not sent.
#[test]
fn lossy_exhaustive_single_faults_lose_at_most_one_frame() {
    let before = Frame::Credit { limit: 77 };
    let after = Frame::Ping { nonce: 9 };
    for victim in victims() {
        let wire = encode_all(Framing::Lossy, std::slice::from_ref(&victim));
        let mut damaged: Vec<(String, Vec<u8>)> = Vec::new();
        for at in 0..=wire.len() {
            if at < wire.len() {
                let mut deleted = wire.clone();
                deleted.remove(at);
                damaged.push((format!("delete {at}"), deleted));
            }
            let original = wire.get(at).copied().unwrap_or(0x55);
            for byte in [0x00, 0x01, 0x02, 0x7f, 0xfe, 0xff, original] {
                let mut inserted = wire.clone();
                inserted.insert(at, byte);
                damaged.push((format!("insert {byte:#04x} at {at}"), inserted));
            }
        }
        damaged.extend(flips(&wire).enumerate().map(|(bit, f)| (format!("flip bit {bit}"), f)));
        for (fault, bytes) in damaged {
            let mut input = encode_all(Framing::Lossy, std::slice::from_ref(&before));
            input.extend(&bytes);
            input.extend(encode_all(Framing::Lossy, std::slice::from_ref(&after)));
            for piece in [usize::MAX, 1, 3] {
                let got = if piece == usize::MAX {
                    decode_bytes(Framing::Lossy, 256, &input)
                } else {
                    let cuts: Vec<usize> = (0..input.len()).step_by(piece).collect();
                    decode_in_pieces(Framing::Lossy, 256, &input, &cuts)
                };
                let frames = frames_of(&got);
                let expected = [before.clone(), victim.clone(), after.clone()];
                let lost = if frames == expected {
                    0
                } else {
                    assert_eq!(frames, [before.clone(), after.clone()], "{victim:?}: {fault}");
                    1
                };
                assert!(lost <= 1);
                assert!(got.iter().all(|r| r.as_ref().err().is_none_or(FrameError::is_damage)), "{victim:?}: {fault}");
            }
        }
    }
}

#[test]
fn lossy_over_long_run_is_dropped_and_the_next_frame_decodes() {
    let max_body = 1024;
    let limit = lossy::max_encoded_len(max_body);
    let before = Frame::Ping { nonce: 1 };
    let after = Frame::Data(Data { xid: Xid::sender(0), offset: 0, end: true, payload: Bytes::from_static(b"ok") });
    for noise_byte in [0xff, 0x01, 0x42] {
        let mut input = encode_all(Framing::Lossy, std::slice::from_ref(&before));
        input.extend(std::iter::repeat_n(noise_byte, 100 * 1024));
        input.extend(encode_all(Framing::Lossy, std::slice::from_ref(&after)));
        for piece in [input.len(), 1, 100, 4096] {
            let mut decoder = Decoder::new(Framing::Lossy, max_body);
            let mut got = Vec::new();
            for chunk in input.chunks(piece) {
                decoder.extend(chunk);
                got.extend(drain(&mut decoder));
                assert!(decoder.buffered() <= limit, "{} bytes buffered, piece {piece}", decoder.buffered());
            }
            assert_eq!(frames_of(&got), [before.clone(), after.clone()], "piece {piece}");
            let errors: Vec<_> = got.iter().filter_map(|r| r.as_ref().err()).collect();
            assert!(!errors.is_empty(), "the over-long run is reported, piece {piece}");
            assert!(errors.iter().all(|e| matches!(e, FrameError::TooLarge { .. })), "{errors:?}");
        }
    }
}

#[test]
fn lossy_noise_is_never_a_frame() {
    // Fake delimiters, short runs and stray bytes between and around frames.
    let frames = [Frame::Ping { nonce: 5 }, Frame::Credit { limit: 1 }];
    let noises: [&[u8]; 7] =
        [b"", b"\0", b"\0\0\0\0", b"\x01\x01\x01", b"\xff\x00\xff", b"\x05\x06\x07\x08\x09\x00", b"\x02\x06\x00\x01"];
    for noise in noises {
        let mut input = noise.to_vec();
        for frame in &frames {
            input.extend(encode_all(Framing::Lossy, std::slice::from_ref(frame)));
            input.extend(noise);
        }
        let got = decode_bytes(Framing::Lossy, 256, &input);
        assert_eq!(frames_of(&got), frames, "noise {noise:?}");
        assert!(got.iter().all(|r| r.as_ref().err().is_none_or(FrameError::is_damage)), "noise {noise:?}");
    }
}

// ---- Hostile stream length prefixes ----

#[test]
fn stream_hostile_length_prefix_is_rejected_before_the_body() {
    let max_body = 1 << 16;
    let mut near_max = vec![0xff; 9];
    near_max.push(0x01);
    let mut just_over = Vec::new();
    crate::varint::put(&mut just_over, max_body as u64 + 1);
    let cases: Vec<(&str, Vec<u8>, FrameError)> = vec![
        ("u64::MAX", near_max, FrameError::TooLarge { len: u64::MAX, max: max_body as u64 }),
        ("max_body + 1", just_over, FrameError::TooLarge { len: max_body as u64 + 1, max: max_body as u64 }),
        ("11-byte varint", vec![0xff; 11], FrameError::BadLengthPrefix),
        ("overflowing 10th byte", [&[0xff; 9][..], &[0x02]].concat(), FrameError::BadLengthPrefix),
        ("non-minimal", vec![0x85, 0x00], FrameError::BadLengthPrefix),
        ("shorter than a body", vec![4], FrameError::ShortLength(4)),
        ("zero", vec![0], FrameError::ShortLength(0)),
    ];
    for (name, prefix, want) in cases {
        // Byte by byte: the error comes as soon as the prefix is known to be bad.
        let mut decoder = Decoder::new(Framing::Stream, max_body);
        let mut result = Ok(None);
        for (i, &byte) in prefix.iter().enumerate() {
            decoder.extend(&[byte]);
            result = decoder.decode();
            if result.is_err() {
                assert!(i < 11, "{name}");
                break;
            }
            assert_eq!(result, Ok(None), "{name}: byte {i}");
        }
        assert_eq!(result, Err(want.clone()), "{name}");
        assert!(decoder.buffered() <= 11, "{name}: {} bytes buffered", decoder.buffered());
        // The error is final, whatever follows.
        decoder.extend(&[0x55; 64]);
        assert_eq!(decoder.decode(), Err(want), "{name}: error is sticky");
    }
}

#[test]
fn stream_large_legal_length_waits_without_buffering_ahead() {
    let max_body = 1 << 20;
    let mut decoder = Decoder::new(Framing::Stream, max_body);
    let mut prefix = Vec::new();
    crate::varint::put(&mut prefix, max_body as u64);
    decoder.extend(&prefix);
    decoder.extend(&[0x06]);
    assert_eq!(decoder.decode(), Ok(None));
    assert_eq!(decoder.buffered(), prefix.len() + 1);
}

// ---- Issue 12: the exact lossy size rule of §4.2, and named errors ----

/// An extension frame whose body is `len` bytes and holds no 0x00 (CRC included).
fn zero_free_extension(len: usize) -> Frame {
    (0u8..=255)
        .map(|seed| Frame::Extension { ty: FrameType(0x80), body: Bytes::from(vec![seed | 1; len - 5]) })
        .find(|frame| {
            let mut body = Vec::new();
            encode_body(frame, &mut body).unwrap();
            !body.contains(&0)
        })
        .expect("some fill byte gives a CRC without zeros")
}

#[test]
fn lossy_receiver_takes_bodies_up_to_max_frame_and_drops_longer_ones() {
    let max = 1024;
    for len in [1023, 1024] {
        let got = decode_bytes(Framing::Lossy, max, &encode_all(Framing::Lossy, &[zero_free_extension(len)]));
        assert!(matches!(&got[..], [Ok(Frame::Extension { .. })]), "{len}: {got:?}");
    }
    for len in 1025..=1028 {
        // With a 0x00 every 100 bytes the run is len + 1 bytes: it fits L_enc(1024) = 1029, the
        // body does not fit max_frame, and that is damage too.
        let fill = (0..len - 5).map(|i| if i % 100 == 0 { 0 } else { 0x22 }).collect::<Vec<u8>>();
        let frame = Frame::Extension { ty: FrameType(0x80), body: Bytes::from(fill) };
        let mut run = BytesMut::new();
        encode(Framing::Lossy, &frame, &mut run).unwrap();
        assert!(run.len() - 2 <= lossy::max_encoded_len(max), "{len}: run of {}", run.len() - 2);
        let wire = encode_all(Framing::Lossy, &[frame, zero_free_extension(100)]);
        let got = decode_bytes(Framing::Lossy, max, &wire);
        assert_eq!(got[0], Err(FrameError::TooLarge { len: len as u64, max: max as u64 }), "{len}");
        assert!(matches!(got[1], Ok(Frame::Extension { .. })), "{len}: the next frame is intact");
    }
}

#[test]
fn lossy_receiver_buffers_at_most_l_enc_bytes_of_a_run() {
    let max = 1024;
    let l_enc = lossy::max_encoded_len(max);
    assert_eq!(l_enc, 1029);
    let mut decoder = Decoder::new(Framing::Lossy, max);
    decoder.extend(&[0]);
    decoder.extend(&vec![0x11; l_enc]);
    assert_eq!(decoder.decode(), Ok(None), "a run of exactly L_enc bytes may still be a frame");
    decoder.extend(&[0x11]);
    assert_eq!(decoder.decode(), Err(FrameError::TooLarge { len: l_enc as u64 + 1, max: l_enc as u64 }));
    assert_eq!(decoder.buffered(), 0, "the run is discarded, not buffered");
    decoder.extend(&vec![0x11; 5000]);
    assert_eq!(decoder.decode(), Ok(None), "one dropped frame is reported once");
    let mut good = encode_all(Framing::Lossy, &[Frame::Ping { nonce: 3 }]);
    good.remove(0);
    decoder.extend(&good);
    assert_eq!(decoder.decode(), Ok(None), "the rest of the long run ends at the next 0x00");
    decoder.extend(&encode_all(Framing::Lossy, &[Frame::Ping { nonce: 4 }]));
    assert_eq!(decoder.decode(), Ok(Some(Frame::Ping { nonce: 4 })));
}

#[test]
fn an_exchange_id_above_u32_has_a_named_error() {
    let mut fields = vec![0x04];
    crate::varint::put(&mut fields, (1u64 << 32) << 1);
    fields.push(0);
    let crc = crc32fast::hash(&fields);
    fields.extend(crc.to_le_bytes());
    assert_eq!(decode_body(Bytes::from(fields)), Err(FrameError::ExchangeIdTooLarge(1 << 32)));
}

#[test]
fn a_zero_length_prefix_suggests_the_lossy_framing() {
    let err = decode_bytes(Framing::Stream, 1024, &[0]).pop().unwrap().unwrap_err();
    assert_eq!(err, FrameError::ShortLength(0));
    assert!(err.to_string().contains("lossy"), "{err}");
}

/// The HELLO of `sample_frames` with `option` (tag, length, value) after its v1 fields.
fn hello_with_option(option: &[u8]) -> Bytes {
    let mut body = Vec::new();
    encode_body(&sample_frames()[0].1, &mut body).unwrap();
    body.truncate(body.len() - CRC_LEN);
    body.extend_from_slice(option);
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body.into()
}

#[test]
fn a_methods_table_that_is_too_long_or_malformed_is_ignored() {
    let methods = |option: &[u8]| match decode_body(hello_with_option(option)).unwrap() {
        Frame::Hello(hello) => hello.methods.map(|m| m.to_vec()),
        other => panic!("{other:?}"),
    };
    let entry = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
    let mut one = vec![HELLO_OPTION_METHODS, 13, 1];
    one.extend_from_slice(&entry);
    assert_eq!(methods(&one), Some(vec![(1, 2)]));
    assert_eq!(methods(&[HELLO_OPTION_METHODS, 1, 0]), Some(vec![]), "an empty table is a table");
    // A count that does not match the entries, a partial entry, a byte after them.
    let mut wrong_count = one.clone();
    wrong_count[2] = 2;
    assert_eq!(methods(&wrong_count), None);
    assert_eq!(
        methods(&one[..one.len() - 1].iter().copied().map(|b| if b == 13 { 12 } else { b }).collect::<Vec<_>>()),
        None
    );
    let mut trailing = one.clone();
    trailing[1] = 14;
    trailing.push(0);
    assert_eq!(methods(&trailing), None);
    // 1025 entries: above MAX_METHODS.
    let mut long = vec![HELLO_OPTION_METHODS];
    let value_len = 2 + 12 * (MAX_METHODS + 1);
    crate::varint::put(&mut long, value_len as u64);
    crate::varint::put(&mut long, MAX_METHODS as u64 + 1);
    long.extend(std::iter::repeat_n(entry, MAX_METHODS + 1).flatten());
    assert_eq!(methods(&long), None);
    // The other fields read as without the option.
    let Frame::Hello(read) = decode_body(hello_with_option(&long)).unwrap() else { unreachable!() };
    assert_eq!(Frame::Hello(read), sample_frames()[0].1);
}

/// Frames a user can build but the decoder would refuse are an error naming the rule (and its
/// limit), with nothing written, on every encoder (docs/PROTOCOL.md §5).
#[test]
fn unencodable_frames_are_errors() {
    let hello = Hello::new(1, 1, 0, Limits::default());
    let cases: Vec<(Frame, &str, &str)> = vec![
        (Frame::Hello(Hello { reliable: Some(0), ..hello.clone() }), "HELLO", "outside 1 to 128"),
        (Frame::Hello(Hello { reliable: Some(129), ..hello.clone() }), "HELLO", "129 frames"),
        (
            Frame::Hello(Hello { methods: Some(vec![(1, 2); MAX_METHODS + 1].into()), ..hello }),
            "HELLO",
            "limit of 1024",
        ),
        (head(Kind::Request, Some(Route::Id(1)), None, 2, b"abc"), "HEAD", "longer than its total of 2"),
        (head(Kind::Request, None, None, 3, b"abc"), "HEAD", "needs a route"),
        (head(Kind::Response, Some(Route::Id(1)), None, 3, b"abc"), "HEAD", "carries no route"),
        (
            Frame::Data(Data { xid: Xid::sender(1), offset: 0, end: false, payload: Bytes::new() }),
            "DATA",
            "at least one byte",
        ),
        (head(Kind::Error, None, None, OPEN_TOTAL, b"e"), "HEAD", "never open-length"),
        (Frame::Seq { seq: 0, frame: Box::new(Frame::Ping { nonce: 1 }) }, "SEQ", "HEAD, DATA or CANCEL"),
        (Frame::Extension { ty: FrameType(0x10), body: Bytes::new() }, "extension", "0x10"),
    ];
    for (frame, name, says) in cases {
        let err = check(&frame).expect_err(name);
        assert!(matches!(&err, FrameError::Unencodable { frame, .. } if *frame == name), "{err:?}");
        assert!(err.to_string().contains(says), "{name}: {err}");
        let mut body = Vec::new();
        assert_eq!(encode_body(&frame, &mut body), Err(err.clone()));
        assert!(body.is_empty(), "{name}: nothing written");
        for framing in FRAMINGS {
            let mut wire = BytesMut::new();
            assert_eq!(encode(framing, &frame, &mut wire), Err(err.clone()));
            assert!(wire.is_empty(), "{name}: nothing written");
        }
    }
}

/// §5.2: an open-length HEAD is total 0 without END; a total of 2^64−1 and an open ERROR are
/// malformed. §5.3: an empty DATA is malformed without END.
#[test]
fn open_length_wire_rules() {
    let mut body = Vec::new();
    encode_body(&head(Kind::OneWay, Some(Route::Id(1)), None, OPEN_TOTAL, b"x"), &mut body).unwrap();
    // type, flags (ONEWAY, HIGH, no END), xid 7, route id, total 0, payload, crc
    assert_eq!(&body[..9], &[0x02, 3 << 3 | 5 << 5, 14, 1, 0, 0, 0, 0x00, b'x']);
    let decoded = decode_body(Bytes::from(body)).unwrap();
    assert!(matches!(&decoded, Frame::Head(h) if h.is_open() && !h.is_complete()));

    let raw = |fields: &[u8]| {
        let mut body = fields.to_vec();
        body.extend_from_slice(&crc32fast::hash(fields).to_le_bytes());
        decode_body(Bytes::from(body))
    };
    // ERROR (kind 2) with total 0 and no END.
    assert!(raw(&[0x02, 2 << 3, 0x01, 0x00, b'e']).is_err());
    assert!(matches!(raw(&[0x02, 1 << 3, 0x01, 0x00, b'r']), Ok(Frame::Head(h)) if h.is_open()));
    // A total of 2^64−1.
    let mut huge = vec![0x02, 3 << 3, 0x00, 1, 0, 0, 0];
    crate::varint::put(&mut huge, u64::MAX);
    huge.push(b'x');
    assert!(raw(&huge).is_err());
    // DATA without a byte: only with END.
    assert!(raw(&[0x03, 0x00, 0x00, 0x05]).is_err());
    assert!(matches!(raw(&[0x03, 0x01, 0x00, 0x05]), Ok(Frame::Data(Data { end: true, offset: 5, .. }))));
}

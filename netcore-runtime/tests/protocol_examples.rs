//! The worked examples of docs/PROTOCOL.md §11, §16.6, §17.5 and §17.6 and the overhead figures of §12,
//! byte for byte.
//!
//! Every frame is built with the public API, encoded, and compared with a hex string that also
//! appears verbatim in the document (`document_quotes_every_example` checks that), so the
//! specification cannot drift from the code: if a test here fails, the document is wrong.
// With `--features bincode` the postcard vectors (and the types only they decode) go unused.
#![cfg_attr(feature = "bincode", allow(dead_code))]

use bytes::{Bytes, BytesMut};
use netcore_runtime::frame::{
    encode, route_id, CancelReason, Data, Decoder, Frame, Framing, GoAwayCode, Head, Hello, Kind, Limits, PayloadCodec,
    Priority, Route, Xid,
};

// §11.1 HELLO, default limits, fingerprint 0x0123456789abcdef.
const HELLO_STREAM: &str =
    "20 01 4e 43 01 01 ef cd ab 89 67 45 23 01 80 80 04 80 80 80 80 04 80 80 10 80 80 20 40 da 75 01 81";
const HELLO_LOSSY: &str =
    "00 21 01 4e 43 01 01 ef cd ab 89 67 45 23 01 80 80 04 80 80 80 80 04 80 80 10 80 80 20 40 da 75 01 81 00";
// §11.2 REQUEST "/sensor/read", exchange 0, payload 00 01 … 0f.
const REQUEST_STREAM: &str = "1b 02 61 00 85 cf 24 e1 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f a2 81 66 24";
const REQUEST_LOSSY: &str = "00 03 02 61 05 85 cf 24 e1 14 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f a2 81 66 24 00";
// §11.3 RESPONSE to exchange 0, payload a0 a1 … af.
const RESPONSE_STREAM: &str = "17 02 69 01 a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af 5a bb 4c 68";
const RESPONSE_LOSSY: &str = "00 18 02 69 01 a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af 5a bb 4c 68 00";
// §11.4 A 40000-byte REQUEST "/log/upload", exchange 1, priority 1, in 16384-byte chunks:
// header bytes (length prefix included) and CRC of each frame; payload byte i is i mod 256.
const LARGE_HEAD_HEADER: &str = "8e 80 01 02 20 02 48 89 ff 29 c0 b8 02";
const LARGE_HEAD_CRC: &str = "d3 e5 fa 8d";
const LARGE_DATA1_HEADER: &str = "8a 80 01 03 00 02 80 80 01";
const LARGE_DATA1_CRC: &str = "ed f7 56 6f";
const LARGE_DATA2_HEADER: &str = "ca 38 03 01 02 80 80 02";
const LARGE_DATA2_CRC: &str = "9d 2f 8d 76";
// §11.5 CANCEL of exchange 1 by its opener, TIMED_OUT.
const CANCEL_STREAM: &str = "07 04 02 01 da 23 79 bd";
const CANCEL_LOSSY: &str = "00 08 04 02 01 da 23 79 bd 00";
// §11.6 Further frames.
const ONEWAY_NAME_STREAM: &str = "0d 02 bb 04 03 6c 6f 67 68 69 8b 38 ed da";
const CREDIT_STREAM: &str = "09 05 80 80 c0 02 b4 63 5a 27";
const PING_STREAM: &str = "06 06 01 ef 85 84 60";
const PONG_STREAM: &str = "06 07 01 ae b4 9f 79";
const GOAWAY_STREAM: &str = "09 08 00 62 79 65 fa f4 24 7e";
const GOAWAY_LOSSY: &str = "00 02 08 08 62 79 65 fa f4 24 7e 00";
// §16.6 Reliable delivery: HELLO with the RELIABLE option, a SEQ, two ACKs (lossy framing).
const HELLO_RELIABLE_LOSSY: &str =
    "00 24 01 4e 43 01 01 ef cd ab 89 67 45 23 01 80 80 04 80 80 80 80 04 80 80 10 80 80 20 40 01 01 20 ee af a7 79 00";
const SEQ_REQUEST_LOSSY: &str =
    "00 02 09 03 02 61 05 85 cf 24 e1 14 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f d0 a8 89 36 00";
const ACK_BITMAP_LOSSY: &str = "00 08 0a 05 0a 9f 41 74 6f 00";
const ACK_EMPTY_LOSSY: &str = "00 07 0a 01 e3 ca 31 cc 00";

// §5.1/§9 HELLO of §11.1 with the NONCE option, nonce 0x1122334455667788.
const HELLO_NONCE_STREAM: &str = "2a 01 4e 43 01 01 ef cd ab 89 67 45 23 01 80 80 04 80 80 80 80 04 80 80 10 80 80 20 40 02 08 88 77 66 55 44 33 22 11 d6 4c 7d 34";
const HELLO_NONCE_LOSSY: &str = "00 2b 01 4e 43 01 01 ef cd ab 89 67 45 23 01 80 80 04 80 80 80 80 04 80 80 10 80 80 20 40 02 08 88 77 66 55 44 33 22 11 d6 4c 7d 34 00";
// §5.1/§14 HELLO of §11.1 announcing the bincode payload codec (option `03 01 01`).
const HELLO_CODEC_STREAM: &str =
    "23 01 4e 43 01 01 ef cd ab 89 67 45 23 01 80 80 04 80 80 80 80 04 80 80 10 80 80 20 40 03 01 01 de 6b 4a 36";
// §5.1/§15 HELLO of §11.1 with a METHODS table: /sensor/read with hash 0x1122334455667788 and
// /sensor/reset with hash 0x0123456789abcdef.
const HELLO_METHODS_STREAM: &str = "3b 01 4e 43 01 01 ef cd ab 89 67 45 23 01 80 80 04 80 80 80 80 04 80 80 10 80 80 20 40 04 19 02 85 cf 24 e1 88 77 66 55 44 33 22 11 80 49 f0 67 ef cd ab 89 67 45 23 01 ba 35 76 39";
const HELLO_METHODS_LOSSY: &str = "00 3c 01 4e 43 01 01 ef cd ab 89 67 45 23 01 80 80 04 80 80 80 80 04 80 80 10 80 80 20 40 04 19 02 85 cf 24 e1 88 77 66 55 44 33 22 11 80 49 f0 67 ef cd ab 89 67 45 23 01 ba 35 76 39 00";

// §14.1 postcard payloads, one per rule, then the arguments and results of schemas/users.ncs.
const PC_U8: &str = "c8";
const PC_U16: &str = "ac 02";
const PC_U64_MAX: &str = "ff ff ff ff ff ff ff ff ff 01";
const PC_I8: &str = "fe";
const PC_I32: &str = "03";
const PC_I64_MIN: &str = "ff ff ff ff ff ff ff ff ff 01";
const PC_F32: &str = "00 00 c0 3f";
const PC_F64: &str = "00 00 00 00 00 00 f8 bf";
const PC_BOOL: &str = "01";
const PC_STRING: &str = "03 68 c3 a9";
const PC_BYTES: &str = "03 00 01 ff";
const PC_NONE: &str = "00";
const PC_SOME: &str = "01 07";
const PC_LIST: &str = "03 01 ac 02 00";
const PC_MAP: &str = "02 01 61 01 01 62 02";
const PC_UNIT: &str = "";
const PC_GET_ARGS: &str = "07";
const PC_CREATE_ARGS: &str = "03 41 64 61 01 0a 61 64 61 40 65 78 2e 6f 72 67";
const PC_GET_RESULT: &str = "01 07 03 41 64 61 00 02 05 61 64 6d 69 6e 02 6f 70 80 d0 95 ff bc 31";
const PC_STATUS_ACTIVE: &str = "00";
const PC_STATUS_SUSPENDED: &str = "01 04 73 70 61 6d 01 80 d0 95 ff bc 31";
const PC_STATUS_DELETED: &str = "02 2a";

// §17.5 Resumable uploads: the offset query, its answer, the resumed upload.
const RESUME_QUERY_STREAM: &str = "45 02 67 00 10 2f 5f 6e 65 74 63 6f 72 65 2f 72 65 73 75 6d 65 2c 01 09 6e 63 2d 72 65 73 75 6d 65 20 30 30 31 31 32 32 33 33 34 34 35 35 36 36 37 37 38 38 39 39 61 61 62 62 63 63 64 64 65 65 66 66 14 14 a7 8f";
const RESUME_QUERY_LOSSY: &str = "00 03 02 67 43 10 2f 5f 6e 65 74 63 6f 72 65 2f 72 65 73 75 6d 65 2c 01 09 6e 63 2d 72 65 73 75 6d 65 20 30 30 31 31 32 32 33 33 34 34 35 35 36 36 37 37 38 38 39 39 61 61 62 62 63 63 64 64 65 65 66 66 14 14 a7 8f 00";
const RESUME_ANSWER_STREAM: &str =
    "21 02 6d 01 19 02 09 6e 63 2d 6f 66 66 73 65 74 01 36 08 6e 63 2d 74 6f 74 61 6c 02 31 30 c9 91 d2 b7";
const RESUMED_UPLOAD_STREAM: &str = "58 02 67 02 07 2f 75 70 6c 6f 61 64 44 03 09 6e 63 2d 6f 66 66 73 65 74 01 36 09 6e 63 2d 72 65 73 75 6d 65 20 30 30 31 31 32 32 33 33 34 34 35 35 36 36 37 37 38 38 39 39 61 61 62 62 63 63 64 64 65 65 66 66 08 6e 63 2d 74 6f 74 61 6c 02 31 30 36 37 38 39 4c 8e cd 8d";

// §5.1 HELLO of §11.1 with the OPEN option (`05 00`).
const HELLO_OPEN_STREAM: &str =
    "22 01 4e 43 01 01 ef cd ab 89 67 45 23 01 80 80 04 80 80 80 80 04 80 80 10 80 80 20 40 05 00 9d cf 16 67";
// §11.7 An open-length RESPONSE to exchange 0: HEAD with `ab`, DATA `cd`, an empty END DATA.
const OPEN_HEAD_STREAM: &str = "0a 02 68 01 00 61 62 d3 01 ae 32";
const OPEN_DATA_STREAM: &str = "0a 03 00 01 02 63 64 23 fd 61 88";
const OPEN_END_STREAM: &str = "08 03 01 01 04 9d ef 45 2c";
const OPEN_END_LOSSY: &str = "00 09 03 01 01 04 9d ef 45 2c 00";
// §17.6 Resumable downloads: a window request from offset 6 and its answer.
const DOWNLOAD_REQUEST_STREAM: &str = "2a 02 67 02 04 2f 6c 6f 67 1d 02 09 6e 63 2d 6c 65 6e 67 74 68 05 36 35 35 33 36 09 6e 63 2d 6f 66 66 73 65 74 01 36 78 6d 72 98";
const DOWNLOAD_ANSWER_STREAM: &str =
    "25 02 6d 03 19 02 09 6e 63 2d 6f 66 66 73 65 74 01 36 08 6e 63 2d 74 6f 74 61 6c 02 31 30 36 37 38 39 dc 9c ea 91";

const ALL: &[&str] = &[
    HELLO_OPEN_STREAM,
    OPEN_HEAD_STREAM,
    OPEN_DATA_STREAM,
    OPEN_END_STREAM,
    OPEN_END_LOSSY,
    DOWNLOAD_REQUEST_STREAM,
    DOWNLOAD_ANSWER_STREAM,
    RESUME_QUERY_STREAM,
    RESUME_QUERY_LOSSY,
    RESUME_ANSWER_STREAM,
    RESUMED_UPLOAD_STREAM,
    HELLO_NONCE_STREAM,
    HELLO_NONCE_LOSSY,
    HELLO_CODEC_STREAM,
    HELLO_METHODS_STREAM,
    HELLO_METHODS_LOSSY,
    PC_U8,
    PC_U16,
    PC_U64_MAX,
    PC_I8,
    PC_I32,
    PC_I64_MIN,
    PC_F32,
    PC_F64,
    PC_BOOL,
    PC_STRING,
    PC_BYTES,
    PC_NONE,
    PC_SOME,
    PC_LIST,
    PC_MAP,
    PC_GET_ARGS,
    PC_CREATE_ARGS,
    PC_GET_RESULT,
    PC_STATUS_ACTIVE,
    PC_STATUS_SUSPENDED,
    PC_STATUS_DELETED,
    HELLO_STREAM,
    HELLO_LOSSY,
    REQUEST_STREAM,
    REQUEST_LOSSY,
    RESPONSE_STREAM,
    RESPONSE_LOSSY,
    LARGE_HEAD_HEADER,
    LARGE_HEAD_CRC,
    LARGE_DATA1_HEADER,
    LARGE_DATA1_CRC,
    LARGE_DATA2_HEADER,
    LARGE_DATA2_CRC,
    CANCEL_STREAM,
    CANCEL_LOSSY,
    ONEWAY_NAME_STREAM,
    CREDIT_STREAM,
    PING_STREAM,
    PONG_STREAM,
    GOAWAY_STREAM,
    GOAWAY_LOSSY,
    HELLO_RELIABLE_LOSSY,
    SEQ_REQUEST_LOSSY,
    ACK_BITMAP_LOSSY,
    ACK_EMPTY_LOSSY,
];

fn unhex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|b| u8::from_str_radix(b, 16).expect("hex byte")).collect()
}

fn encoded(framing: Framing, frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(framing, frame, &mut out).unwrap();
    out.to_vec()
}

fn decoded(framing: Framing, bytes: &[u8]) -> Frame {
    let mut decoder = Decoder::new(framing, Limits::default().max_frame as usize);
    decoder.extend(bytes);
    let frame = decoder.decode().expect("valid frame").expect("complete frame");
    assert_eq!(decoder.decode(), Ok(None), "exactly one frame");
    frame
}

/// Encodes `frame`, compares it with `hex`, and decodes `hex` back to `frame`.
fn check(framing: Framing, frame: &Frame, hex: &str) {
    let bytes = unhex(hex);
    assert_eq!(encoded(framing, frame), bytes, "{framing:?} encoding of {frame:?}");
    assert_eq!(&decoded(framing, &bytes), frame, "{framing:?} decoding of {hex}");
}

/// CRC-32/ISO-HDLC written out from its definition (§3): reflected polynomial 0xEDB88320
/// (0x04C11DB7 reversed), initial value and final XOR 0xFFFFFFFF.
fn crc32_reference(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn hello() -> Frame {
    // No options: no reliable window, no nonce, the postcard codec, no methods table.
    Frame::Hello(Hello::new(1, 1, 0x0123_4567_89ab_cdef, Limits::default()))
}

/// `hello` with one field cleared (`Hello` is `#[non_exhaustive]`: no struct update syntax).
fn without(hello: &Hello, clear: impl FnOnce(&mut Hello)) -> Hello {
    let mut hello = hello.clone();
    clear(&mut hello);
    hello
}

fn request() -> Frame {
    Frame::Head(Head {
        xid: Xid::sender(0),
        kind: Kind::Request,
        priority: Priority::NORMAL,
        route: Some(Route::Id(route_id("/sensor/read"))),
        meta: None,
        total: 16,
        payload: Bytes::from((0x00..0x10).collect::<Vec<u8>>()),
    })
}

fn response() -> Frame {
    Frame::Head(Head {
        xid: Xid::receiver(0),
        kind: Kind::Response,
        priority: Priority::NORMAL,
        route: None,
        meta: None,
        total: 16,
        payload: Bytes::from((0xa0..0xb0).collect::<Vec<u8>>()),
    })
}

#[test]
fn hello_with_default_limits() {
    check(Framing::Stream, &hello(), HELLO_STREAM);
    check(Framing::Lossy, &hello(), HELLO_LOSSY);
}

#[test]
fn small_request_and_response() {
    assert_eq!(route_id("/sensor/read"), 0xe124_cf85);
    check(Framing::Stream, &request(), REQUEST_STREAM);
    check(Framing::Lossy, &request(), REQUEST_LOSSY);
    check(Framing::Stream, &response(), RESPONSE_STREAM);
    check(Framing::Lossy, &response(), RESPONSE_LOSSY);
}

#[test]
fn large_message_in_chunks() {
    assert_eq!(route_id("/log/upload"), 0x29ff_8948);
    let payload = Bytes::from((0..40_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    let frames = [
        (
            Frame::Head(Head {
                xid: Xid::sender(1),
                kind: Kind::Request,
                priority: Priority::LOW,
                route: Some(Route::Id(route_id("/log/upload"))),
                meta: None,
                total: 40_000,
                payload: payload.slice(0..16_384),
            }),
            LARGE_HEAD_HEADER,
            0..16_384,
            LARGE_HEAD_CRC,
            16_401,
        ),
        (
            Frame::Data(Data {
                xid: Xid::sender(1),
                offset: 16_384,
                end: false,
                payload: payload.slice(16_384..32_768),
            }),
            LARGE_DATA1_HEADER,
            16_384..32_768,
            LARGE_DATA1_CRC,
            16_397,
        ),
        (
            Frame::Data(Data { xid: Xid::sender(1), offset: 32_768, end: true, payload: payload.slice(32_768..) }),
            LARGE_DATA2_HEADER,
            32_768..40_000,
            LARGE_DATA2_CRC,
            7_244,
        ),
    ];
    for (frame, header, range, crc, len) in frames {
        let bytes = encoded(Framing::Stream, &frame);
        let (header, crc) = (unhex(header), unhex(crc));
        assert_eq!(bytes.len(), len);
        assert_eq!(&bytes[..header.len()], &header[..], "header of {range:?}");
        assert_eq!(&bytes[header.len()..len - 4], &payload[range.clone()], "payload of {range:?}");
        assert_eq!(&bytes[len - 4..], &crc[..], "crc of {range:?}");
        assert_eq!(decoded(Framing::Stream, &bytes), frame);
    }
}

#[test]
fn cancel() {
    let frame = Frame::Cancel { xid: Xid::sender(1), reason: CancelReason::TIMED_OUT };
    check(Framing::Stream, &frame, CANCEL_STREAM);
    check(Framing::Lossy, &frame, CANCEL_LOSSY);
}

#[test]
fn further_frames() {
    let oneway = Frame::Head(Head {
        xid: Xid::sender(2),
        kind: Kind::OneWay,
        priority: Priority::HIGH,
        route: Some(Route::Name("log".into())),
        meta: None,
        total: 2,
        payload: Bytes::from_static(b"hi"),
    });
    check(Framing::Stream, &oneway, ONEWAY_NAME_STREAM);
    check(Framing::Stream, &Frame::Credit { limit: 5 << 20 }, CREDIT_STREAM);
    check(Framing::Stream, &Frame::Ping { nonce: 1 }, PING_STREAM);
    check(Framing::Stream, &Frame::Pong { nonce: 1 }, PONG_STREAM);
    let goaway = Frame::GoAway { code: GoAwayCode::NORMAL, message: "bye".into() };
    check(Framing::Stream, &goaway, GOAWAY_STREAM);
    check(Framing::Lossy, &goaway, GOAWAY_LOSSY);
}

#[test]
fn crc_covers_type_byte_to_last_payload_byte() {
    assert_eq!(crc32_reference(b"123456789"), 0xcbf4_3926, "check value of CRC-32/ISO-HDLC");
    // Stream examples: one length-prefix byte, then the body; the CRC is the body's last 4 bytes,
    // little endian, over everything before it.
    for hex in [HELLO_STREAM, REQUEST_STREAM, RESPONSE_STREAM, CANCEL_STREAM, CREDIT_STREAM, GOAWAY_STREAM] {
        let bytes = unhex(hex);
        let body = &bytes[1..];
        assert_eq!(usize::from(bytes[0]), body.len(), "length prefix of {hex}");
        let (covered, crc) = body.split_at(body.len() - 4);
        assert_eq!(crc32_reference(covered).to_le_bytes(), crc, "crc of {hex}");
    }
}

#[test]
fn route_id_vectors() {
    assert_eq!(route_id(""), 0x811c_9dc5);
    assert_eq!(route_id("a"), 0xe40c_292c);
    assert_eq!(route_id("/sensor/read"), 0xe124_cf85);
    assert_eq!(Route::Name("/sensor/read".into()).id(), route_id("/sensor/read"));
}

#[test]
fn overhead_table() {
    // §12: bytes on the wire for a 16-byte payload, and the overhead beyond the payload.
    let rows = [(REQUEST_STREAM, 28, 12), (REQUEST_LOSSY, 30, 14), (RESPONSE_STREAM, 24, 8), (RESPONSE_LOSSY, 26, 10)];
    for (hex, wire, overhead) in rows {
        assert_eq!(unhex(hex).len(), wire, "{hex}");
        assert_eq!(wire - 16, overhead);
    }
}

#[test]
fn document_quotes_every_example() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(path).expect("docs/PROTOCOL.md next to the workspace");
    for hex in ALL {
        assert!(doc.contains(hex), "docs/PROTOCOL.md does not quote {hex}");
    }
}

#[test]
fn reliable_delivery_frames() {
    let Frame::Hello(plain) = hello() else { unreachable!() };
    check(Framing::Lossy, &Frame::Hello(plain.with_reliable(32)), HELLO_RELIABLE_LOSSY);
    check(Framing::Lossy, &Frame::Seq { seq: 0, frame: Box::new(request()) }, SEQ_REQUEST_LOSSY);
    check(Framing::Lossy, &Frame::Ack { next: 5, received: 0b1010 }, ACK_BITMAP_LOSSY);
    check(Framing::Lossy, &Frame::Ack { next: 1, received: 0 }, ACK_EMPTY_LOSSY);
    // The SEQ body is the HEAD's body with `09 00` before it and its own CRC.
    let seq = unhex(SEQ_REQUEST_LOSSY);
    assert_eq!(seq.len(), unhex(REQUEST_LOSSY).len() + 2);
}

#[test]
fn hello_with_a_nonce() {
    let Frame::Hello(plain) = hello() else { unreachable!() };
    let with = Frame::Hello(plain.clone().with_nonce(0x1122_3344_5566_7788));
    check(Framing::Stream, &with, HELLO_NONCE_STREAM);
    check(Framing::Lossy, &with, HELLO_NONCE_LOSSY);
    // The option is 10 bytes after the v1 fields: tag 02, length 08, the nonce u64le.
    assert_eq!(unhex(HELLO_NONCE_STREAM).len(), unhex(HELLO_STREAM).len() + 10);
    // A receiver that knows no option reads the same v1 HELLO; one that knows it, the nonce.
    let Frame::Hello(read) = decoded(Framing::Stream, &unhex(HELLO_NONCE_STREAM)) else { unreachable!() };
    assert_eq!((read.nonce, without(&read, |h| h.nonce = None)), (Some(0x1122_3344_5566_7788), plain));
}

#[test]
fn hello_with_the_codec_option() {
    let Frame::Hello(plain) = hello() else { unreachable!() };
    let with = Frame::Hello(plain.clone().with_codec(PayloadCodec::BINCODE));
    check(Framing::Stream, &with, HELLO_CODEC_STREAM);
    // The option is 3 bytes: tag 03, length 01, the codec; postcard sends none.
    assert_eq!(unhex(HELLO_CODEC_STREAM).len(), unhex(HELLO_STREAM).len() + 3);
    assert_eq!(
        encoded(Framing::Stream, &Frame::Hello(plain.clone().with_codec(PayloadCodec::POSTCARD))),
        unhex(HELLO_STREAM)
    );
    let Frame::Hello(read) = decoded(Framing::Stream, &unhex(HELLO_CODEC_STREAM)) else { unreachable!() };
    assert_eq!(read.codec, PayloadCodec::BINCODE);
    let Frame::Hello(read) = decoded(Framing::Stream, &unhex(HELLO_STREAM)) else { unreachable!() };
    assert_eq!(read.codec, PayloadCodec::POSTCARD, "no option is postcard");
}

#[test]
fn hello_with_the_methods_option() {
    let Frame::Hello(plain) = hello() else { unreachable!() };
    let table = [(route_id("/sensor/read"), 0x1122_3344_5566_7788), (route_id("/sensor/reset"), 0x0123_4567_89ab_cdef)];
    let with = Frame::Hello(plain.clone().with_methods(table.to_vec()));
    check(Framing::Stream, &with, HELLO_METHODS_STREAM);
    check(Framing::Lossy, &with, HELLO_METHODS_LOSSY);
    // Tag 04, length 0x19, count 02, then 12 bytes an entry: the route id u32le, the hash u64le.
    assert_eq!(unhex(HELLO_METHODS_STREAM).len(), unhex(HELLO_STREAM).len() + 3 + 2 * 12);
    assert_eq!((route_id("/sensor/read"), route_id("/sensor/reset")), (0xe124_cf85, 0x67f0_4980));
    let Frame::Hello(read) = decoded(Framing::Stream, &unhex(HELLO_METHODS_STREAM)) else { unreachable!() };
    assert_eq!((read.methods.as_deref(), without(&read, |h| h.methods = None)), (Some(&table[..]), plain));
}

/// §5.1: the HELLO a 20-method service's endpoint sends, with its METHODS table.
#[test]
fn hello_size_of_a_twenty_method_service() {
    let Frame::Hello(plain) = hello() else { unreachable!() };
    let table: Vec<(u32, u64)> = (0..20).map(|i| (route_id(&format!("/svc/method{i}")), u64::MAX - i)).collect();
    let size = |framing, hello: &Hello| encoded(framing, &Frame::Hello(hello.clone())).len();
    let with = plain.clone().with_methods(table);
    let (without, with_stream, with_lossy) =
        (size(Framing::Stream, &plain), size(Framing::Stream, &with), size(Framing::Lossy, &with));
    println!(
        "HELLO: {without} bytes; with a 20-method METHODS table {with_stream} bytes (stream), {with_lossy} (lossy)"
    );
    // Tag, a 2-byte length (0xf1 = 241), the count, 20 × 12 bytes; the frame's length prefix
    // grows to 2 bytes too.
    assert_eq!(with_stream, without + 1 + 2 + 1 + 240 + 1);
}

/// §14.1: the types of schemas/users.ncs (common.ncs's Timestamp) as the schema compiler emits them.
mod users {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Timestamp {
        pub millis: u64,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct User {
        pub id: u32,
        pub name: String,
        pub email: Option<String>,
        pub tags: Vec<String>,
        pub created: Timestamp,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub enum UserStatus {
        Active,
        Suspended { reason: String, until: Option<Timestamp> },
        Deleted(u64),
    }
}

/// Checks that `value` encodes to `hex` with postcard and that `hex` decodes back to `value`.
#[cfg(not(feature = "bincode"))]
fn postcard<T>(value: T, hex: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    use netcore_runtime::codec;
    assert_eq!(codec::encode(&value).unwrap(), unhex(hex), "{value:?}");
    assert_eq!(codec::decode::<T>(&unhex(hex)).unwrap(), value, "{hex}");
}

#[test]
#[cfg(not(feature = "bincode"))]
fn postcard_payloads() {
    use std::collections::BTreeMap;
    use users::*;
    postcard(200u8, PC_U8);
    postcard(300u16, PC_U16);
    postcard(u64::MAX, PC_U64_MAX);
    postcard(-2i8, PC_I8);
    postcard(-2i32, PC_I32);
    postcard(i64::MIN, PC_I64_MIN);
    postcard(1.5f32, PC_F32);
    postcard(-1.5f64, PC_F64);
    postcard(true, PC_BOOL);
    postcard("hé".to_string(), PC_STRING);
    postcard(vec![0u8, 1, 0xff], PC_BYTES);
    postcard(None::<u32>, PC_NONE);
    postcard(Some(7u32), PC_SOME);
    postcard(vec![1u32, 300, 0], PC_LIST);
    postcard(BTreeMap::from([("a".to_string(), 1u32), ("b".to_string(), 2)]), PC_MAP);
    postcard((), PC_UNIT);
    // Arguments travel as one tuple: `get(7)`, `create("Ada", Some("ada@ex.org"))`.
    postcard((7u32,), PC_GET_ARGS);
    postcard(("Ada".to_string(), Some("ada@ex.org".to_string())), PC_CREATE_ARGS);
    // The result of `get`: option<User>; 1700000000000 ms is `80 d0 95 ff bc 31`.
    let created = || Timestamp { millis: 1_700_000_000_000 };
    let ada =
        User { id: 7, name: "Ada".into(), email: None, tags: vec!["admin".into(), "op".into()], created: created() };
    postcard(Some(ada), PC_GET_RESULT);
    postcard(UserStatus::Active, PC_STATUS_ACTIVE);
    postcard(UserStatus::Suspended { reason: "spam".into(), until: Some(created()) }, PC_STATUS_SUSPENDED);
    postcard(UserStatus::Deleted(42), PC_STATUS_DELETED);
}

/// §17.5: the token of the examples.
const TOKEN: &str = "00112233445566778899aabbccddeeff";

/// §15 metadata: `varint count ‖ (varint len ‖ name ‖ varint len ‖ value)*`, names sorted.
fn headers(pairs: &[(&str, &str)]) -> Bytes {
    let mut out = vec![pairs.len() as u8];
    for (name, value) in pairs {
        for field in [name, value] {
            out.push(field.len() as u8);
            out.extend_from_slice(field.as_bytes());
        }
    }
    out.into()
}

fn resume_query() -> Frame {
    Frame::Head(Head {
        xid: Xid::sender(0),
        kind: Kind::Request,
        priority: Priority::NORMAL,
        route: Some(Route::Name("/_netcore/resume".into())),
        meta: Some(headers(&[("nc-resume", TOKEN)])),
        total: 0,
        payload: Bytes::new(),
    })
}

fn resume_answer() -> Frame {
    Frame::Head(Head {
        xid: Xid::receiver(0),
        kind: Kind::Response,
        priority: Priority::NORMAL,
        route: None,
        meta: Some(headers(&[("nc-offset", "6"), ("nc-total", "10")])),
        total: 0,
        payload: Bytes::new(),
    })
}

fn resumed_upload() -> Frame {
    Frame::Head(Head {
        xid: Xid::sender(1),
        kind: Kind::Request,
        priority: Priority::NORMAL,
        route: Some(Route::Name("/upload".into())),
        meta: Some(headers(&[("nc-offset", "6"), ("nc-resume", TOKEN), ("nc-total", "10")])),
        total: 4,
        payload: Bytes::from_static(b"6789"),
    })
}

#[test]
fn resumable_upload_frames() {
    check(Framing::Stream, &resume_query(), RESUME_QUERY_STREAM);
    check(Framing::Lossy, &resume_query(), RESUME_QUERY_LOSSY);
    check(Framing::Stream, &resume_answer(), RESUME_ANSWER_STREAM);
    check(Framing::Stream, &resumed_upload(), RESUMED_UPLOAD_STREAM);
    // The token as the endpoint writes it: 32 lowercase hex digits of its 16 bytes.
    assert_eq!(TOKEN.len(), 32);
}

fn download_request() -> Frame {
    Frame::Head(Head {
        xid: Xid::sender(1),
        kind: Kind::Request,
        priority: Priority::NORMAL,
        route: Some(Route::Name("/log".into())),
        meta: Some(headers(&[("nc-length", "65536"), ("nc-offset", "6")])),
        total: 0,
        payload: Bytes::new(),
    })
}

fn download_answer() -> Frame {
    Frame::Head(Head {
        xid: Xid::receiver(1),
        kind: Kind::Response,
        priority: Priority::NORMAL,
        route: None,
        meta: Some(headers(&[("nc-offset", "6"), ("nc-total", "10")])),
        total: 4,
        payload: Bytes::from_static(b"6789"),
    })
}

#[test]
fn resumable_download_frames() {
    check(Framing::Stream, &download_request(), DOWNLOAD_REQUEST_STREAM);
    check(Framing::Stream, &download_answer(), DOWNLOAD_ANSWER_STREAM);
}

/// §5.1 the OPEN option, §11.7 an open-length message: HEAD with total 0 and no END, DATA, and
/// an empty DATA with END.
#[test]
fn open_length_message() {
    let Frame::Hello(mut hello) = hello() else { unreachable!() };
    hello.open = true;
    check(Framing::Stream, &Frame::Hello(hello), HELLO_OPEN_STREAM);
    let head = Frame::Head(Head {
        xid: Xid::receiver(0),
        kind: Kind::Response,
        priority: Priority::NORMAL,
        route: None,
        meta: None,
        total: netcore_runtime::frame::OPEN_TOTAL,
        payload: Bytes::from_static(b"ab"),
    });
    check(Framing::Stream, &head, OPEN_HEAD_STREAM);
    let data = Frame::Data(Data { xid: Xid::receiver(0), offset: 2, end: false, payload: Bytes::from_static(b"cd") });
    check(Framing::Stream, &data, OPEN_DATA_STREAM);
    let end = Frame::Data(Data { xid: Xid::receiver(0), offset: 4, end: true, payload: Bytes::new() });
    check(Framing::Stream, &end, OPEN_END_STREAM);
    check(Framing::Lossy, &end, OPEN_END_LOSSY);
}

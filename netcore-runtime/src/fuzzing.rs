//! Entry points of the fuzz targets in `fuzz/`, kept here so a unit test runs them too.
//!
//! Each function takes arbitrary bytes and must not panic. Where one panics on purpose, the
//! message names the invariant that broke: that is a bug in the codec or the session, not in the
//! input. The first input byte is a selector (piece sizes, limits, mode); the rest is fed.
//!
//! Not part of the API: no stability promise.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::frame::{self, decode_body, encode_body, encoded_body_len, lossy, Decoder, Frame, Framing, Hello, Limits};
use crate::session::{
    Body, Config, Event, Exchange, Incoming, Keepalive, Payload, Reliability, SendOptions, Session, StoreOp,
    PROTOCOL_VERSION,
};
use crate::{varint, Kind, Route};

/// Body limits the decoder targets choose from (selector bits 6–7).
const MAX_BODIES: [usize; 4] = [64, 300, 4096, 64 * 1024];

/// Flow-control windows the session target chooses from (selector bits 6–7); 0 is no credit.
const WINDOWS: [u64; 4] = [0, 256, 4096, 1 << 20];

/// Rounds of `poll_transmit`/`poll_event` after which a session is taken to livelock.
const SETTLE_ROUNDS: usize = 10_000;

/// Feeds `data` to a stream-framing decoder in pieces; checks each decoded frame by re-encoding.
///
/// Also decodes `data` as one bare body (with its CRC fixed up, see [`frame_body`]).
pub fn stream_decoder(data: &[u8]) {
    decode_pieces(Framing::Stream, data);
    if let Some((_, rest)) = data.split_first() {
        frame_body(rest);
    }
}

/// Feeds `data` to a lossy-framing (COBS) decoder in pieces; checks each decoded frame by re-encoding.
pub fn lossy_decoder(data: &[u8]) {
    decode_pieces(Framing::Lossy, data);
}

/// Decodes `data` followed by its CRC32 as one frame body: the field parsers without the CRC wall.
///
/// A decoded frame must re-encode to the same bytes, except for the parts the specification lets
/// a receiver normalise: HELLO's trailing fields of later versions and GOAWAY's invalid UTF-8.
pub fn frame_body(data: &[u8]) {
    let mut body = data.to_vec();
    body.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    let Ok(frame) = decode_body(Bytes::from(body.clone())) else { return };
    let again = check_reencode(&frame);
    let exact = match &frame {
        Frame::Hello(hello) => {
            // The v1 fields are exact; options after them are read leniently (§5.1).
            let mut v1 = Vec::new();
            encode_body(
                &Frame::Hello(Hello {
                    reliable: None,
                    nonce: None,
                    codec: frame::PayloadCodec::POSTCARD,
                    methods: None,
                    open: false,
                    ..hello.clone()
                }),
                &mut v1,
            )
            .expect("a decoded or well-formed frame encodes");
            let fields = &v1[..v1.len() - frame::CRC_LEN];
            assert!(data.starts_with(fields), "HELLO {frame:?} re-encodes to other leading fields");
            false
        }
        Frame::GoAway { .. } => std::str::from_utf8(&data[2..]).is_ok(),
        _ => true,
    };
    if exact {
        assert_eq!(again, body, "{frame:?} has a second encoding");
    }
}

/// Feeds `data` to a fresh [`Session`] on each framing, after a valid HELLO from the peer, and
/// drains it with `poll_transmit`/`poll_event` after every piece, then runs its timers and EOF.
///
/// Selector bit 5 chooses how the rest is read: raw bytes for the link, or records
/// `len ‖ fields` that become frame bodies with a correct CRC (so that fuzzing reaches the
/// session instead of the CRC check). Checks that every frame the session sends decodes, that
/// the session settles, and that it never holds more received payload than its window.
pub fn session(data: &[u8]) {
    for framing in [Framing::Stream, Framing::Lossy] {
        run_session(framing, false, data);
    }
    run_session(Framing::Lossy, true, data);
}

/// Feeds `data` to a fresh [`Session`] that has not heard its peer yet: the handshake of §9, with
/// HELLOs, options (§5.1), versions, fingerprints and limits taken from the input.
///
/// Selector bit 0 chooses the framing, bit 1 whether this side offers reliable delivery (§16),
/// bit 2 a non-zero fingerprint of its own, bit 3 whether the rest is raw link bytes or records
/// `len ‖ fields` that become frame bodies with a correct CRC; in record mode, bit 4 makes each
/// record a HELLO (the type byte and magic are prepended). Bits 5–7 seed the piece sizes. Checks
/// that every frame the session sends decodes, that it settles, that once open it agrees with the
/// peer's HELLO, and that its handshake deadline always ends the handshake.
pub fn handshake(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else { return };
    let framing = if selector & 1 == 0 { Framing::Stream } else { Framing::Lossy };
    let reliable = selector & 2 != 0;
    let config = Config::stream()
        .with_framing(framing)
        .with_fingerprint(if selector & 4 != 0 { 0x00c0_ffee } else { 0 })
        .with_reliable(reliable.then(Reliability::default));
    let now = Instant::now();
    let session = Session::new(config, now);
    let mut h = Harness {
        session,
        sent: Decoder::new(framing, 1 << 20),
        window: 0,
        now,
        report: Report::default(),
        streams: Default::default(),
        stored: Default::default(),
        finished: Default::default(),
    };
    let link = match selector & 8 != 0 {
        false => input.to_vec(),
        true if selector & 0x10 != 0 => {
            // Each record is the fields of a HELLO after its magic.
            let mut hellos = Vec::new();
            let mut rest = input;
            while let Some((&len, tail)) = rest.split_first() {
                let (fields, tail) = tail.split_at(usize::from(len).min(tail.len()));
                let body = [&[frame::FrameType::HELLO.0, b'N', b'C'][..], fields].concat();
                match u8::try_from(body.len()) {
                    Ok(len) if len < 0x80 => hellos.push(len),
                    _ => hellos.extend_from_slice(&(0x8000 | body.len() as u16).to_be_bytes()),
                }
                hellos.extend_from_slice(&body);
                rest = tail;
            }
            records(framing, &hellos)
        }
        true => records(framing, input),
    };
    h.settle();
    for piece in pieces(&link, selector >> 5) {
        h.session.handle_input(h.now, piece);
        h.settle();
        if let Some(peer) = h.session.peer() {
            assert!(h.session.is_open() || h.session.is_closed());
            assert!(peer.version_min <= PROTOCOL_VERSION && PROTOCOL_VERSION <= peer.version_max);
            if h.session.is_open() {
                let negotiated = reliable && framing == Framing::Lossy && peer.reliable.is_some();
                assert_eq!(h.session.is_reliable(), negotiated, "reliable delivery iff both offered it");
            }
        }
    }
    // The handshake deadline (10 s) ends any handshake still waiting.
    for _ in 0..3 {
        h.now += Duration::from_secs(5);
        if h.session.poll_timeout().is_some_and(|t| t <= h.now) {
            h.session.handle_timeout(h.now);
        }
        h.settle();
    }
    assert!(h.session.is_open() || h.session.is_closed(), "the handshake deadline was not enforced");
}

/// The payload codecs (docs/PROTOCOL.md §14) on arbitrary bytes, decoded as nested types shaped
/// like the generated ones of `schemas/telemetry.ncs` (structs, enums with data, maps, lists,
/// options, strings, floats): postcard always, bincode too with the `bincode` feature. A value
/// that decodes must encode to bytes that decode and encode again to the same bytes; the decoder
/// must never allocate beyond its limit or panic.
///
/// The types are deliberately not recursive: the depth bound for recursive types has its own
/// tests in `codec`.
#[cfg(feature = "tokio")]
pub fn codec(data: &[u8]) {
    macro_rules! with_codec {
        ($codec:path) => {{
            use $codec as c;
            fn again<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) {
                let bytes = c::encode(value).expect("a decoded value encodes");
                let back: T = c::decode(&bytes).expect("an encoded value decodes");
                assert_eq!(c::encode(&back).expect("encodes"), bytes, "a second round trip changes the bytes");
            }
            if let Ok(value) = c::decode::<codec_types::Frame>(data) {
                again(&value);
            }
            if let Ok(value) = c::decode::<Vec<codec_types::Reading>>(data) {
                again(&value);
            }
            if let Ok(value) = c::decode::<(codec_types::Command, Option<String>, u128)>(data) {
                again(&value);
            }
        }};
    }
    with_codec!(crate::codec::postcard);
    #[cfg(feature = "bincode")]
    with_codec!(crate::codec::bincode);
}

/// The result-stream record reader (docs/PROTOCOL.md §15, result streams) on arbitrary bytes,
/// in chunks of 1 to 64 bytes (selector bits 0–5), with the items' decode limit or without it
/// (bit 6). Chunk boundaries must not change what is read; a stream read to a clean end must
/// be exactly its records, re-encoded (so no byte is skipped and no header is read two ways);
/// nothing read is larger than the input.
#[cfg(feature = "tokio")]
pub fn result_records(data: &[u8]) {
    use crate::typed::records::{decode_records, put_data};
    let Some((&selector, rest)) = data.split_first() else { return };
    let (piece, limited) = (1 + usize::from(selector & 0x3f), selector & 0x40 != 0);
    let input = Bytes::copy_from_slice(rest);
    let whole = decode_records(vec![input.clone()], limited);
    let pieces = rest.chunks(piece).map(Bytes::copy_from_slice).collect();
    assert_eq!(decode_records(pieces, limited), whole, "chunk boundaries changed what was read");
    let read: usize = whole.records.iter().map(Vec::len).sum();
    assert!(read <= rest.len(), "{read} bytes of records read from {} bytes", rest.len());
    if !whole.broken && whole.trailer.is_none() {
        let mut again = BytesMut::new();
        for record in &whole.records {
            put_data(&mut again, record);
        }
        assert_eq!(&again[..], rest, "a cleanly ended stream is not exactly its records");
    }
}

/// One type (a schema-generated one, in `fuzz/fuzz_targets/schema_types.rs`) on arbitrary bytes,
/// through postcard and, with the `bincode` feature, bincode too (docs/PROTOCOL.md §14). A value
/// that decodes must encode; its bytes must decode to an equal value (equal bytes again, which
/// also holds for a NaN that `PartialEq` calls unequal). Returns how many codecs decoded `data`.
///
/// The allocation bound is the caller's to measure (a global allocator belongs to a binary).
#[cfg(feature = "tokio")]
pub fn schema_type<T>(data: &[u8]) -> usize
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    macro_rules! with_codec {
        ($codec:path) => {{
            use $codec as c;
            match c::decode::<T>(data) {
                Ok(value) => {
                    let bytes = c::encode(&value).expect("a decoded value encodes");
                    let back: T = c::decode(&bytes).expect("a re-encoded value decodes");
                    // A NaN is unequal to itself: compare values only where equality is reflexive.
                    #[allow(clippy::eq_op)]
                    if value == value {
                        assert_eq!(back, value, "a re-encoded value decodes to another value");
                    }
                    assert_eq!(c::encode(&back).expect("encodes"), bytes, "a second round trip changes the bytes");
                    1
                }
                Err(_) => 0,
            }
        }};
    }
    let decoded = with_codec!(crate::codec::postcard);
    #[cfg(feature = "bincode")]
    let decoded = decoded + with_codec!(crate::codec::bincode);
    decoded
}

#[cfg(feature = "tokio")]
mod codec_types {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Reading {
        sensor: String,
        value: f64,
        at: (i64, u32),
        flags: [bool; 3],
        unit: char,
    }

    #[derive(Serialize, Deserialize)]
    pub enum Command {
        Reboot,
        SetRate { hz: u32 },
        Calibrate(String, f32),
        Flash { offset: u32, block: Vec<u8> },
    }

    type Table = BTreeMap<u8, Option<i32>>;

    #[derive(Serialize, Deserialize)]
    pub struct Frame {
        id: u64,
        readings: Vec<Reading>,
        commands: Vec<Option<Command>>,
        settings: BTreeMap<String, Vec<(i16, String)>>,
        nested: Option<Vec<Vec<Table>>>,
    }
}

/// What a decoder or session run did, for tests to check that a fixed input reaches its target.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Report {
    frames: usize,
    errors: usize,
    messages: usize,
    closed: bool,
}

/// Cuts `input` into pieces of 1 to 64 bytes drawn from a generator seeded with `seed`; seed 0
/// gives the whole input at once.
fn pieces(input: &[u8], seed: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = input;
    let mut state = u32::from(seed);
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = if seed == 0 {
            rest.len()
        } else {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as usize % 64 + 1
        };
        let (piece, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        Some(piece)
    })
}

fn decode_pieces(framing: Framing, data: &[u8]) -> Report {
    let mut report = Report::default();
    let Some((&selector, input)) = data.split_first() else { return report };
    let max_body = MAX_BODIES[usize::from(selector >> 6)];
    let mut decoder = Decoder::new(framing, max_body);
    for piece in pieces(input, selector & 0x3f) {
        decoder.extend(piece);
        loop {
            match decoder.decode() {
                Ok(Some(frame)) => {
                    report.frames += 1;
                    let body = check_reencode(&frame);
                    assert!(body.len() <= max_body || is_normalised(&frame), "{frame:?} decoded beyond max_body");
                }
                Ok(None) => break,
                Err(err) => {
                    report.errors += 1;
                    if framing == Framing::Stream {
                        assert_eq!(decoder.decode(), Err(err), "a stream decoder error is final");
                        return report;
                    }
                }
            }
        }
        // Waiting for more bytes never holds more than one maximal frame.
        let bound = match framing {
            Framing::Stream => varint::MAX_LEN + max_body,
            Framing::Lossy => lossy::max_encoded_len(max_body),
        };
        assert!(decoder.buffered() <= bound, "{} bytes buffered, bound {bound}", decoder.buffered());
    }
    report
}

/// Whether re-encoding `frame` may give a longer body than the one it was decoded from.
fn is_normalised(frame: &Frame) -> bool {
    matches!(frame, Frame::GoAway { .. })
}

/// Re-encodes a decoded frame, checks it decodes to itself on every path, and returns its body.
fn check_reencode(frame: &Frame) -> Vec<u8> {
    let mut body = Vec::new();
    encode_body(frame, &mut body).expect("a decoded or well-formed frame encodes");
    assert_eq!(body.len(), encoded_body_len(frame), "encoded_body_len disagrees with encode_body for {frame:?}");
    assert_eq!(decode_body(Bytes::from(body.clone())).as_ref(), Ok(frame), "body round trip");
    for framing in [Framing::Stream, Framing::Lossy] {
        let mut wire = BytesMut::new();
        frame::encode(framing, frame, &mut wire).expect("a decoded or well-formed frame encodes");
        // The tightest limit that admits this frame.
        let mut decoder = Decoder::new(framing, body.len());
        decoder.extend(&wire);
        assert_eq!(decoder.decode().as_ref(), Ok(&Some(frame.clone())), "{framing:?} round trip");
        assert_eq!(decoder.decode(), Ok(None), "{framing:?}: one frame, one decode");
        assert_eq!(decoder.buffered(), 0, "{framing:?}: bytes left over");
    }
    body
}

/// Appends `body` to `out` framed for `framing`, with an independent COBS encoder for the lossy one.
fn frame_raw(framing: Framing, body: &[u8], out: &mut Vec<u8>) {
    match framing {
        Framing::Stream => {
            varint::put(out, body.len() as u64);
            out.extend_from_slice(body);
        }
        Framing::Lossy => {
            out.push(0);
            let mut code_at = out.len();
            out.push(0);
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
            out.push(0);
        }
    }
}

/// Turns records `len ‖ fields` into frames with a correct CRC; a short last record takes what is
/// left. `len` is one byte below 0x80, else two bytes big-endian with the top bit cleared.
fn records(framing: Framing, mut input: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    while let Some((&first, mut rest)) = input.split_first() {
        let mut len = usize::from(first);
        if first >= 0x80 {
            let Some((&second, tail)) = rest.split_first() else { break };
            len = usize::from(first & 0x7f) << 8 | usize::from(second);
            rest = tail;
        }
        let (fields, rest) = rest.split_at(len.min(rest.len()));
        let mut body = fields.to_vec();
        body.extend_from_slice(&crc32fast::hash(fields).to_le_bytes());
        frame_raw(framing, &body, &mut wire);
        input = rest;
    }
    wire
}

/// The session under test and a decoder checking everything it sends.
struct Harness {
    session: Session,
    sent: Decoder,
    window: u64,
    now: Instant,
    report: Report,
    /// Streamed messages being read (§8.3): bytes announced and bytes seen so far.
    streams: std::collections::HashMap<Exchange, (u64, u64)>,
    /// Messages in the caller's storage (§8.4): bytes announced and bytes stored so far, and
    /// the stored length of those finished.
    stored: std::collections::HashMap<Exchange, (u64, u64)>,
    finished: std::collections::HashMap<Exchange, u64>,
}

impl Harness {
    /// Drains the session until it has nothing more to send or report.
    fn settle(&mut self) {
        for _ in 0..SETTLE_ROUNDS {
            let mut out = BytesMut::new();
            while self.session.poll_transmit(self.now, &mut out) {}
            self.sent.extend(&out);
            loop {
                match self.sent.decode() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(err) => panic!("the session sent a frame that does not decode: {err}"),
                }
            }
            let mut busy = !out.is_empty();
            busy |= self.store();
            while let Some(event) = self.session.poll_event() {
                busy = true;
                self.on_event(event);
            }
            self.check();
            if !busy {
                return;
            }
        }
        panic!("the session did not settle within {SETTLE_ROUNDS} rounds");
    }

    /// Stands in for a storage: counts the bytes it is given and finishes what is complete.
    fn store(&mut self) -> bool {
        let mut busy = false;
        while let Some(op) = self.session.poll_store() {
            busy = true;
            match op {
                StoreOp::Begin { exchange, total } => {
                    assert!(self.stored.insert(exchange, (total, 0)).is_none(), "one storage per message");
                }
                StoreOp::Write { exchange, bytes } => {
                    let (total, seen) = self.stored.get_mut(&exchange).expect("a write follows its begin");
                    *seen += bytes.len() as u64;
                    assert!(*seen <= *total, "{seen} of {total} bytes stored");
                    self.session.consumed(bytes.len() as u64);
                }
                StoreOp::Finish { exchange } => {
                    let (total, seen) = self.stored.remove(&exchange).expect("a finish follows its begin");
                    assert_eq!(seen, total, "finished with every byte");
                    if self.session.store_finished(exchange) {
                        self.finished.insert(exchange, seen);
                    }
                }
                StoreOp::Discard { exchange } => {
                    self.stored.remove(&exchange);
                    self.finished.remove(&exchange);
                }
            }
        }
        busy
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Message(Incoming { exchange, kind, payload: Payload::Streamed { total }, .. }) => {
                assert!(self.streams.insert(exchange, (total, 0)).is_none(), "a stream starts once");
                if let (Exchange::Theirs(id), Kind::Request) = (exchange, kind) {
                    // Answer before the payload is in, as a streaming handler may (§6).
                    let _ = self.session.respond(id, Ok(Body::from(vec![0x5b; 300])), SendOptions::default());
                }
            }
            Event::Chunk { exchange, bytes, end } => {
                let (total, seen) = self.streams.get_mut(&exchange).expect("a chunk follows its stream's start");
                *seen += bytes.len() as u64;
                // An open-length message (§5.2) ends at its END, whatever it brought.
                let open = *total == crate::frame::OPEN_TOTAL;
                assert!(*seen <= *total && (open || (*seen == *total) == end), "{seen} of {total} bytes, end {end}");
                if end {
                    self.streams.remove(&exchange);
                    self.report.messages += 1;
                }
                self.session.consumed(bytes.len() as u64);
            }
            Event::Cancelled { exchange, .. } => {
                self.streams.remove(&exchange);
            }
            Event::Message(message) => {
                self.report.messages += 1;
                match message.payload {
                    Payload::Memory(_) => {}
                    Payload::Stored { total } => {
                        let stored = self.finished.remove(&message.exchange);
                        assert_eq!(stored, Some(total), "a stored message has every byte stored");
                    }
                    other => panic!("a message arrives in memory or stored, not {other:?}"),
                }
                if let (Exchange::Theirs(id), Kind::Request) = (message.exchange, message.kind) {
                    // Answer with a few chunks' worth, so the scheduler has work.
                    let answer = Body::from(vec![0xa5; 700]);
                    let _ = self.session.respond(id, Ok(answer), SendOptions::default());
                }
            }
            Event::Closed(_) => self.report.closed = true,
            _ => {}
        }
    }

    fn check(&self) {
        // §5.5: a peer cannot make us hold more than the window, plus (§8.1) the bytes of
        // open-length messages reassembled in memory, whose credit went back as they arrived and
        // is held again once they are complete: at most `max_in_flight` of them, each within
        // `min(inline_limit, max_message)`. (After a flow-control violation the session is
        // closed and the count includes the refused frame.)
        if self.window > 0 && !self.session.is_closed() {
            let held = self.session.held_bytes();
            let limits = self.session.config().limits;
            let open = u64::from(limits.max_in_flight) * limits.inline_limit.min(limits.max_message);
            assert!(
                held <= self.window + open,
                "holding {held} bytes against a window of {} (+{open} open)",
                self.window
            );
        }
    }
}

/// One session on `framing`, with reliable delivery (§16) offered by both sides or by neither.
fn run_session(framing: Framing, reliable: bool, data: &[u8]) -> Report {
    let Some((&selector, input)) = data.split_first() else { return Report::default() };
    let window = WINDOWS[usize::from(selector >> 6)];
    let limits = Limits { max_frame: 1024, max_message: 1 << 16, inline_limit: 512, window, max_in_flight: 4 };
    let config = Config::stream()
        .with_framing(framing)
        .with_limits(limits)
        .with_chunk_size(200)
        .with_keepalive(Some(Keepalive { interval: Duration::from_secs(1), max_missed: 2 }))
        .with_reliable(reliable.then(|| Reliability::default().with_window(8)));
    let now = Instant::now();
    let mut session = Session::new(config, now);
    // Half the routes are read as streams (§8.3), the others reassembled.
    session.stream_when(|route| route.id() % 2 == 1);
    // The session may override the window (the lossy framing uses no credit, §5.5).
    let window = session.config().limits.window;
    let mut h = Harness {
        session,
        sent: Decoder::new(framing, 1 << 20),
        window,
        now,
        report: Report::default(),
        streams: Default::default(),
        stored: Default::default(),
        finished: Default::default(),
    };

    // The payload codec of this build, so that the session opens with `--features bincode` too.
    let mut hello = Hello::new(PROTOCOL_VERSION, PROTOCOL_VERSION, 0, Limits { max_frame: 1024, ..Limits::default() })
        .with_codec(frame::PayloadCodec::COMPILED);
    if reliable {
        hello = hello.with_reliable(8);
    }
    // Open-length messages (§5.2) in effect, so that the input's open HEADs are taken.
    hello.open = true;
    let mut wire = BytesMut::new();
    frame::encode(framing, &Frame::Hello(hello), &mut wire).expect("a decoded or well-formed frame encodes");
    h.session.handle_input(now, &wire);
    h.settle();
    assert!(h.session.is_open(), "a valid HELLO opens the session");
    assert!(h.session.open_length());
    assert_eq!(h.session.is_reliable(), reliable);
    // Our own traffic, so that the peer's CANCEL, CREDIT and answers find something to act on.
    let route = Route::Name("/fuzz".into());
    // Selector bit 0 (also a seed of the piece sizes) has its answer streamed (§6, §8.3).
    let stream_answer = SendOptions::default().with_stream_answer(selector & 1 != 0);
    let _ = h.session.request(route.clone(), vec![0x5a; 900], stream_answer);
    let _ = h.session.send_oneway(route, &b"one way"[..], SendOptions::default());
    h.settle();

    let structured = selector & 0x20 != 0;
    let link = if structured { records(framing, input) } else { input.to_vec() };
    for piece in pieces(&link, selector & 0x1f) {
        h.session.handle_input(h.now, piece);
        h.settle();
    }
    // Let the keepalive run out, then the link end.
    for _ in 0..4 {
        h.now += Duration::from_millis(1500);
        if h.session.poll_timeout().is_some_and(|t| t <= h.now) {
            h.session.handle_timeout(h.now);
        }
        h.settle();
    }
    h.session.handle_eof();
    h.settle();
    assert!(h.session.is_closed(), "EOF closes the session");
    h.report
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::frame::{CancelReason, Data, Head, Priority, Xid};

    fn body_fields(frame: &Frame) -> Vec<u8> {
        let mut body = Vec::new();
        encode_body(frame, &mut body).expect("a decoded or well-formed frame encodes");
        body.truncate(body.len() - frame::CRC_LEN);
        body
    }

    fn framed(selector: u8, framing: Framing, frames: &[Frame]) -> Vec<u8> {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&[selector]);
        for frame in frames {
            frame::encode(framing, frame, &mut wire).expect("a decoded or well-formed frame encodes");
        }
        wire.to_vec()
    }

    fn sample() -> Vec<Frame> {
        vec![
            Frame::Ping { nonce: 3 },
            Frame::Head(Head {
                xid: Xid::sender(0),
                kind: Kind::Request,
                priority: Priority::HIGH,
                route: Some(Route::Name("/echo".into())),
                meta: None,
                total: 5,
                payload: Bytes::from_static(b"hello"),
            }),
            Frame::Head(Head {
                xid: Xid::sender(1),
                kind: Kind::OneWay,
                priority: Priority::LOW,
                route: Some(Route::Id(9)),
                meta: Some(Bytes::from_static(b"m")),
                total: 600,
                payload: Bytes::from(vec![1; 100]),
            }),
            Frame::Data(Data { xid: Xid::sender(1), offset: 100, end: true, payload: Bytes::from(vec![2; 500]) }),
            Frame::Credit { limit: 1 << 30 },
            Frame::Cancel { xid: Xid::receiver(0), reason: CancelReason::CANCELLED },
            Frame::GoAway { code: frame::GoAwayCode::NORMAL, message: "done".into() },
        ]
    }

    /// Records `len ‖ fields` for the structured session mode.
    fn records_of(frames: &[Frame]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            let fields = body_fields(frame);
            match u8::try_from(fields.len()) {
                Ok(len) if len < 0x80 => out.push(len),
                _ => out.extend_from_slice(&(0x8000 | u16::try_from(fields.len()).unwrap()).to_be_bytes()),
            }
            out.extend(fields);
        }
        out
    }

    #[test]
    fn independent_cobs_matches_the_codec() {
        for frame in sample() {
            let mut body = Vec::new();
            encode_body(&frame, &mut body).expect("a decoded or well-formed frame encodes");
            let mut ours = Vec::new();
            frame_raw(Framing::Lossy, &body, &mut ours);
            let mut theirs = BytesMut::new();
            frame::encode(Framing::Lossy, &frame, &mut theirs).expect("a decoded or well-formed frame encodes");
            assert_eq!(ours, theirs.to_vec(), "{frame:?}");
        }
    }

    #[test]
    fn decoders_decode_valid_input() {
        let frames = sample();
        for selector in [0xc0, 0xc1, 0xff, 0x80, 0x87] {
            for framing in [Framing::Stream, Framing::Lossy] {
                let report = decode_pieces(framing, &framed(selector, framing, &frames));
                assert_eq!(report.frames, frames.len(), "{framing:?}, selector {selector:#04x}");
                assert_eq!(report.errors, 0);
            }
        }
        // A body limit of 64 bytes rejects the large HEAD and DATA frames: lossy skips them.
        let report = decode_pieces(Framing::Lossy, &framed(0x05, Framing::Lossy, &frames));
        assert_eq!((report.frames, report.errors), (frames.len() - 2, 2));
        stream_decoder(&framed(0xc0, Framing::Stream, &frames));
        lossy_decoder(&framed(0xc0, Framing::Lossy, &frames));
    }

    #[test]
    fn frame_body_accepts_every_sample() {
        for frame in sample() {
            frame_body(&body_fields(&frame));
        }
        let hello = Hello::new(1, 2, 5, Limits::default()).with_reliable(100);
        let mut fields = body_fields(&Frame::Hello(hello));
        fields.extend_from_slice(b"fields of version 2");
        frame_body(&fields);
        frame_body(&[0x08, 0x01, 0xff, 0xfe]);
    }

    #[test]
    fn session_delivers_structured_input() {
        let frames = sample();
        for (selector, window) in [(0x20u8, 0u64), (0x61, 256), (0xa3, 4096), (0xff, 1 << 20)] {
            assert_eq!(WINDOWS[usize::from(selector >> 6)], window);
            let mut data = vec![selector];
            data.extend(records_of(&frames));
            for framing in [Framing::Stream, Framing::Lossy] {
                let report = run_session(framing, false, &data);
                // The 256-byte window refuses the 600-byte message: only the request arrives.
                // The lossy framing uses no credit, so both arrive there.
                let want = if window == 256 && framing == Framing::Stream { 1 } else { 2 };
                assert_eq!(report.messages, want, "{framing:?}, selector {selector:#04x}: {report:?}");
                assert!(report.closed);
            }
            session(&data);
        }
    }

    #[test]
    fn session_takes_open_length_input() {
        // An open request reassembled (even route), an open one-way streamed (odd route), and an
        // open answer to the session's own request, each ending with an empty END DATA (§5.2, §5.3).
        let head = |xid, kind, route, payload: &'static [u8]| {
            Frame::Head(Head {
                xid,
                kind,
                priority: Priority::NORMAL,
                route,
                meta: None,
                total: crate::frame::OPEN_TOTAL,
                payload: Bytes::from_static(payload),
            })
        };
        let data = |xid, offset, end, payload: &'static [u8]| {
            Frame::Data(Data { xid, offset, end, payload: Bytes::from_static(payload) })
        };
        let frames = vec![
            head(Xid::sender(0), Kind::Request, Some(Route::Id(2)), b"ab"),
            head(Xid::sender(1), Kind::OneWay, Some(Route::Id(3)), b""),
            data(Xid::sender(0), 2, false, b"cd"),
            data(Xid::sender(1), 0, false, b"xyz"),
            head(Xid::receiver(0), Kind::Response, None, b"r"),
            data(Xid::sender(0), 4, true, b""),
            data(Xid::sender(1), 3, true, b""),
            data(Xid::receiver(0), 1, true, b""),
            Frame::GoAway { code: frame::GoAwayCode::NORMAL, message: "done".into() },
        ];
        // Bit 0: the answer reassembled, or streamed.
        for selector in [0xe0u8, 0xe1] {
            let mut data = vec![selector];
            data.extend(records_of(&frames));
            for framing in [Framing::Stream, Framing::Lossy] {
                let report = run_session(framing, false, &data);
                assert_eq!(report.messages, 3, "{framing:?}, selector {selector:#04x}: {report:?}");
            }
            session(&data);
        }
    }

    #[test]
    fn session_takes_raw_frames() {
        for framing in [Framing::Stream, Framing::Lossy] {
            let report = run_session(framing, false, &framed(0x80, framing, &sample()));
            assert_eq!(report.messages, 2, "{framing:?}: {report:?}");
        }
    }

    #[test]
    fn handshake_reaches_every_outcome() {
        let mut hello = Hello::new(1, 1, 0, Limits::default());
        let fields = |hello: &Hello| body_fields(&Frame::Hello(hello.clone()))[3..].to_vec();
        let record = |fields: Vec<u8>| [vec![fields.len() as u8], fields].concat();
        // Open (with and without reliable delivery), version and fingerprint mismatches, limits.
        for (selector, hello) in [
            (0x18u8, hello.clone()),
            (0x1b, hello.clone().with_reliable(8)),
            (0x1c, Hello::new(1, 1, 0xbad, Limits::default())),
            (0x19, Hello::new(2, 9, 0, Limits::default())),
            (0x18, Hello::new(1, 1, 0, Limits { max_in_flight: 0, ..Limits::default() })),
        ] {
            handshake(&[vec![selector], record(fields(&hello))].concat());
        }
        hello.reliable = Some(128);
        let mut twice = record(fields(&hello));
        twice.extend(twice.clone());
        handshake(&[vec![0x1b], twice].concat());
        handshake(&[0x00]);
        handshake(&[0x0a, 3, 6, 1]);
        handshake(&[0xff; 64]);
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn codec_round_trips_and_refuses() {
        codec(&[]);
        codec(&[0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        codec(&[0x01, 0x02, 0x61, 0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, 0x02, 0x04]);
        codec(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        codec(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn schema_type_round_trips_and_refuses() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Reading {
            sensor: String,
            value: f64,
        }
        let reading = crate::codec::postcard::encode(&Reading { sensor: "t".into(), value: 1.5 }).unwrap();
        // A one-byte length, a byte, a little-endian f64: postcard and bincode spell it alike.
        assert_eq!(schema_type::<Reading>(&reading), if cfg!(feature = "bincode") { 2 } else { 1 });
        let nan = crate::codec::postcard::encode(&Reading { sensor: String::new(), value: f64::NAN }).unwrap();
        assert!(schema_type::<Reading>(&nan) >= 1);
        assert_eq!(schema_type::<Reading>(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 0);
        assert_eq!(schema_type::<Vec<Reading>>(&[]), 0);
    }

    #[test]
    fn fixed_hostile_inputs() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\0",
            b"\xff",
            &[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0x3f; 300],
            &[0xc1, 0x00, 0x00, 0x05, 0x06, 0x01, 0x00],
            // Records: an empty body, a bare type byte, a HEAD with a truncated route.
            &[0x20, 0x00, 0x01, 0x02, 0x03, 0x02, 0x00, 0x00],
            &[0x25, 0x02, 0x03, 0x01, 0x02, 0x04, 0x00, 0x01, 0x01, 0xff],
        ];
        for input in inputs {
            stream_decoder(input);
            lossy_decoder(input);
            frame_body(input);
            session(input);
            handshake(input);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn decoders_never_panic(data in prop::collection::vec(any::<u8>(), 0..4096)) {
            stream_decoder(&data);
            lossy_decoder(&data);
            frame_body(&data);
        }

        #[test]
        fn session_never_panics(data in prop::collection::vec(any::<u8>(), 0..4096)) {
            session(&data);
        }

        #[test]
        fn handshake_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
            handshake(&data);
        }

        #[test]
        fn session_never_panics_on_valid_frames_in_any_order(
            selector in any::<u8>(),
            order in prop::collection::vec(0..7usize, 0..24),
        ) {
            let sample = sample();
            let frames: Vec<Frame> = order.iter().map(|&i| sample[i].clone()).collect();
            let mut data = vec![selector | 0x20];
            data.extend(records_of(&frames));
            session(&data);
        }
    }
}

//! Property: any set of messages, with any priorities, chunk sizes, limits and read boundaries,
//! sent both ways at once through encoder → byte stream → decoder, arrives once each and intact,
//! whether the receiver reassembles it or reads it as a stream (docs/PROTOCOL.md §8.3).

use std::collections::HashMap;

use netcore::session::{Config, Event, Exchange, Payload, SendOptions};
use netcore::sim::Pair;
use netcore::{Framing, Limits, Priority, Route};
use proptest::prelude::*;

/// A payload that names itself: its first 4 bytes are its tag, the rest a pattern seeded by it.
fn payload(tag: u32, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len.max(4)).map(|i| (i as u32).wrapping_mul(7).wrapping_add(tag) as u8).collect();
    bytes[..4].copy_from_slice(&tag.to_le_bytes());
    bytes
}

#[derive(Debug, Clone)]
struct Msg {
    len: usize,
    priority: u8,
    request: bool,
    /// Sent to the route the receiver reads as a stream.
    streamed: bool,
}

fn msg() -> impl Strategy<Value = Msg> {
    (0usize..40_000, 0u8..8, any::<bool>(), any::<bool>()).prop_map(|(len, priority, request, streamed)| Msg {
        len,
        priority,
        request,
        streamed,
    })
}

const STREAMED: &str = "/s";

/// What one side has received: whole messages by tag, and the streams it is reading.
#[derive(Default)]
struct Received {
    got: HashMap<u32, usize>,
    reading: HashMap<Exchange, (bool, Vec<u8>)>,
}

fn config(framing: Framing, chunk: usize, window: u64, inline: u64) -> Config {
    let base = match framing {
        Framing::Stream => Config::stream(),
        Framing::Lossy => Config::lossy(),
    };
    let limits = Limits { window, inline_limit: inline, ..base.limits };
    base.with_chunk_size(chunk).with_limits(limits).with_keepalive(None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn every_message_arrives_once_and_intact(
        from_a in prop::collection::vec(msg(), 1..10),
        from_b in prop::collection::vec(msg(), 0..6),
        chunk in 1usize..20_000,
        piece in 1usize..3_000,
        lossy in any::<bool>(),
        // 4096 and 8192 are below most chunk sizes drawn: stored messages are cut to the credit (§5.5).
        window in prop::sample::select(vec![0u64, 4096, 8192, 48 * 1024, 1 << 20]),
        inline in 1_000u64..40_000,
    ) {
        let framing = if lossy { Framing::Lossy } else { Framing::Stream };
        let inline = if window == 0 { inline } else { inline.min(window) };
        let mut pair = Pair::new(config(framing, chunk, window, inline), config(framing, chunk, window, inline));
        for session in [&mut pair.a, &mut pair.b] {
            session.stream_when(|route| route.id() == netcore::route_id(STREAMED));
        }
        pair.a_to_b.piece = piece;
        pair.b_to_a.piece = piece.max(1) / 2 + 1;
        let mut expected_at_b = HashMap::new();
        let mut expected_at_a = HashMap::new();
        for (i, m) in from_a.iter().enumerate() {
            let tag = i as u32;
            send(&mut pair.a, tag, m);
            expected_at_b.insert(tag, m.len.max(4));
        }
        for (i, m) in from_b.iter().enumerate() {
            let tag = 1000 + i as u32;
            send(&mut pair.b, tag, m);
            expected_at_a.insert(tag, m.len.max(4));
        }
        let mut at_b = Received::default();
        let mut at_a = Received::default();
        for _ in 0..100_000 {
            let moved = pair.step_bytes(8 * 1024);
            let delivered_b = drain(&mut pair.b, &mut pair.b_handoff, &mut at_b)?;
            let delivered_a = drain(&mut pair.a, &mut pair.a_handoff, &mut at_a)?;
            if !moved && !delivered_a && !delivered_b {
                break;
            }
        }
        prop_assert!(at_b.reading.is_empty() && at_a.reading.is_empty(), "a stream never ended");
        prop_assert_eq!(at_b.got, expected_at_b);
        prop_assert_eq!(at_a.got, expected_at_a);
    }
}

fn send(session: &mut netcore::Session, tag: u32, m: &Msg) {
    let route = Route::Id(netcore::route_id(if m.streamed { STREAMED } else { "/p" }));
    let opts = SendOptions::priority(Priority::new(m.priority));
    let body = payload(tag, m.len);
    if m.request {
        session.request(route, body, opts).unwrap();
    } else {
        session.send_oneway(route, body, opts).unwrap();
    }
}

/// Takes every event, checks each message, answers requests with an empty response; reads
/// streams as their chunks come, returning their credit at once. Stored messages come with what
/// the simulator's storage kept.
fn drain(
    session: &mut netcore::Session,
    handoff: &mut netcore::sim::Handoff,
    received: &mut Received,
) -> Result<bool, TestCaseError> {
    let mut any = false;
    handoff.store(session);
    while let Some(event) = session.poll_event() {
        any = true;
        match handoff.finish(event) {
            Event::Message(m) if matches!(m.payload, Payload::Streamed { .. }) => {
                let request = m.kind == netcore::Kind::Request;
                prop_assert!(
                    received.reading.insert(m.exchange, (request, Vec::new())).is_none(),
                    "a stream began twice"
                );
            }
            Event::Chunk { exchange, bytes, end } => {
                session.consumed(bytes.len() as u64);
                let Some((_, so_far)) = received.reading.get_mut(&exchange) else {
                    return Err(TestCaseError::fail("a chunk outside any stream"));
                };
                so_far.extend_from_slice(&bytes);
                if end {
                    let (request, bytes) = received.reading.remove(&exchange).expect("present");
                    check(session, &mut received.got, exchange, request, bytes)?;
                }
            }
            Event::Message(m) => {
                let request = m.kind == netcore::Kind::Request;
                check(session, &mut received.got, m.exchange, request, m.payload.to_vec().unwrap())?;
            }
            Event::Closed(reason) => prop_assert!(false, "session closed: {}", reason),
            Event::Cancelled { exchange, reason } => prop_assert!(false, "{:?} cancelled: {:?}", exchange, reason),
            _ => {}
        }
    }
    Ok(any)
}

/// Checks a whole message from the peer, counts it, and answers it if it is a request.
fn check(
    session: &mut netcore::Session,
    got: &mut HashMap<u32, usize>,
    exchange: Exchange,
    request: bool,
    bytes: Vec<u8>,
) -> Result<(), TestCaseError> {
    let Exchange::Theirs(id) = exchange else { return Ok(()) };
    let tag = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    prop_assert_eq!(&bytes, &payload(tag, bytes.len()), "message {} damaged", tag);
    prop_assert!(got.insert(tag, bytes.len()).is_none(), "message {} delivered twice", tag);
    if request {
        session.respond(id, Ok(Vec::new().into()), SendOptions::default()).unwrap();
    }
    Ok(())
}

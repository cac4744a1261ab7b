//! Property: any set of messages, with any priorities, chunk sizes, limits and read boundaries,
//! sent both ways at once through encoder → byte stream → decoder, arrives once each and intact.

use std::collections::HashMap;

use netcore::session::{Config, Event, Exchange, SendOptions};
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
}

fn msg() -> impl Strategy<Value = Msg> {
    (0usize..40_000, 0u8..8, any::<bool>()).prop_map(|(len, priority, request)| Msg { len, priority, request })
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
        window in prop::sample::select(vec![0u64, 48 * 1024, 1 << 20]),
        inline in 1_000u64..40_000,
    ) {
        let framing = if lossy { Framing::Lossy } else { Framing::Stream };
        let inline = if window == 0 { inline } else { inline.min(window) };
        let mut pair = Pair::new(config(framing, chunk, window, inline), config(framing, chunk, window, inline));
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
        let mut got_b = HashMap::new();
        let mut got_a = HashMap::new();
        for _ in 0..100_000 {
            let moved = pair.step_bytes(8 * 1024);
            let delivered_b = drain(&mut pair.b, &mut got_b)?;
            let delivered_a = drain(&mut pair.a, &mut got_a)?;
            if !moved && !delivered_a && !delivered_b {
                break;
            }
        }
        prop_assert_eq!(got_b, expected_at_b);
        prop_assert_eq!(got_a, expected_at_a);
    }
}

fn send(session: &mut netcore::Session, tag: u32, m: &Msg) {
    let route = Route::Id(netcore::route_id("/p"));
    let opts = SendOptions::priority(Priority::new(m.priority));
    let body = payload(tag, m.len);
    if m.request {
        session.request(route, body, opts).unwrap();
    } else {
        session.send_oneway(route, body, opts).unwrap();
    }
}

/// Takes every event, checks each message, answers requests with an empty response.
fn drain(session: &mut netcore::Session, got: &mut HashMap<u32, usize>) -> Result<bool, TestCaseError> {
    let mut any = false;
    while let Some(event) = session.poll_event() {
        any = true;
        match event {
            Event::Message(m) => {
                let bytes = m.payload.to_vec().unwrap();
                if let Exchange::Theirs(id) = m.exchange {
                    let tag = u32::from_le_bytes(bytes[..4].try_into().unwrap());
                    prop_assert_eq!(&bytes, &payload(tag, bytes.len()), "message {} damaged", tag);
                    prop_assert!(got.insert(tag, bytes.len()).is_none(), "message {} delivered twice", tag);
                    if m.kind == netcore::Kind::Request {
                        session.respond(id, Ok(Vec::new().into()), SendOptions::default()).unwrap();
                    }
                }
            }
            Event::Closed(reason) => prop_assert!(false, "session closed: {}", reason),
            Event::Cancelled { exchange, reason } => prop_assert!(false, "{:?} cancelled: {:?}", exchange, reason),
            _ => {}
        }
    }
    Ok(any)
}

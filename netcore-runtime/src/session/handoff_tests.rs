//! The core hands storage and body reading to its caller (docs/PROTOCOL.md §7, §8.4): driven by
//! hand here, without the simulator's handoff, to check what it asks and what it holds.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::sim::Pair;

fn route() -> Route {
    Route::Name("/r".into())
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(3)).collect()
}

/// Moves what `a` can send now to `b`, without serving demands or storage.
fn carry(pair: &mut Pair) {
    let mut out = BytesMut::new();
    while pair.a.poll_transmit(pair.now, &mut out) {}
    pair.b.handle_input(pair.now, &out);
    out.clear();
    while pair.b.poll_transmit(pair.now, &mut out) {}
    pair.a.handle_input(pair.now, &out);
}

#[test]
fn memory_bodies_ask_for_nothing() {
    let mut pair = Pair::connected(Config::stream(), Config::stream());
    pair.a.send_oneway(route(), pattern(100_000), SendOptions::default()).unwrap();
    carry(&mut pair);
    assert!(pair.a.poll_demand().is_none(), "a memory body is sliced, never asked for");
}

#[test]
fn supplied_bodies_are_asked_for_in_order_a_little_ahead() {
    let mut pair = Pair::connected(Config::stream().with_chunk_size(4096), Config::stream());
    let body = pattern(200_000);
    let id = pair.a.send_oneway(route(), Body::Supplied { len: body.len() as u64 }, SendOptions::default()).unwrap();
    let mut next = 0u64;
    let mut asked = Vec::new();
    for _ in 0..1000 {
        carry(&mut pair);
        while let Some(demand) = pair.a.poll_demand() {
            asked.push(demand);
        }
        if asked.is_empty() {
            break;
        }
        for demand in asked.drain(..) {
            match demand {
                Demand::Read { message, offset, len } => {
                    assert_eq!((message, offset), (id, next), "asked in order");
                    assert!(len <= 4096, "one chunk at a time");
                    let sent = pair.a.progress_out(id).map_or(body.len() as u64, |p| p.done);
                    assert!(offset + len as u64 - sent <= READ_AHEAD + 4096, "asked at most ahead");
                    let bytes = Bytes::copy_from_slice(&body[offset as usize..offset as usize + len]);
                    assert!(pair.a.supply(message, offset, bytes));
                    next += len as u64;
                }
                Demand::Release { message } => assert_eq!(message, id),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(next, body.len() as u64);
    let got = pair.take_b().into_iter().find_map(|e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    });
    assert_eq!(got.unwrap().payload.to_vec().unwrap(), body);
}

#[test]
fn bytes_out_of_order_are_refused_and_a_failed_source_cancels() {
    let mut pair = Pair::connected(Config::stream().with_chunk_size(1000), Config::stream());
    let id = pair.a.send_oneway(route(), Body::Supplied { len: 5000 }, SendOptions::default()).unwrap();
    assert!(!pair.a.supply(id, 1000, Bytes::from(vec![0; 1000])), "not the next bytes");
    assert!(pair.a.supply(id, 0, Bytes::from(vec![0; 1000])));
    assert!(pair.a.supply_failed(id, 1000));
    pair.run();
    let events = pair.take_a();
    assert!(events.iter().any(|e| matches!(e,
        Event::Cancelled { exchange: Exchange::Ours(m), reason } if *m == id && *reason == CancelReason::IO)));
    assert!(!pair.a.supply(id, 1000, Bytes::from(vec![0; 1000])), "the message is gone");
}

#[test]
fn stored_bytes_hold_their_credit_until_consumed_and_complete_when_finished() {
    let limits = Limits { inline_limit: 1000, window: 64 * 1024, ..Limits::default() };
    let mut pair = Pair::connected(Config::stream().with_chunk_size(4096), Config::stream().with_limits(limits));
    let body = pattern(40_000);
    pair.a.send_oneway(route(), body.clone(), SendOptions::default()).unwrap();
    carry(&mut pair);
    let mut stored = Vec::new();
    let mut finished = None;
    while let Some(op) = pair.b.poll_store() {
        match op {
            StoreOp::Begin { exchange, total } => assert_eq!((exchange, total), (Exchange::Theirs(0), 40_000)),
            StoreOp::Write { bytes, .. } => stored.extend_from_slice(&bytes),
            StoreOp::Finish { exchange } => finished = Some(exchange),
            StoreOp::Discard { .. } => panic!("nothing is discarded"),
        }
    }
    assert_eq!(stored, body, "every byte handed to the storage, in order");
    assert_eq!(pair.b.held_bytes(), 40_000, "stored bytes hold their credit until consumed");
    assert!(pair.take_b().is_empty(), "no message before the storage finishes");
    pair.b.consumed(40_000);
    assert_eq!(pair.b.held_bytes(), 0);
    assert!(pair.b.store_finished(finished.unwrap()));
    let events = pair.b.poll_event();
    assert!(matches!(events, Some(Event::Message(Incoming { payload: Payload::Stored { total: 40_000 }, .. }))));
}

#[test]
fn a_failed_storage_cancels_with_io_and_a_cancel_discards() {
    let limits = Limits { inline_limit: 1000, ..Limits::default() };
    let mut pair = Pair::connected(Config::stream().with_chunk_size(1000), Config::stream().with_limits(limits));
    let call = pair.a.request(route(), pattern(10_000), SendOptions::default()).unwrap();
    let mut out = BytesMut::new();
    assert!(pair.a.poll_transmit(pair.now, &mut out));
    pair.b.handle_input(pair.now, &out);
    assert!(matches!(pair.b.poll_store(), Some(StoreOp::Begin { .. })));
    assert!(pair.b.store_failed(Exchange::Theirs(0)));
    assert!(!pair.b.store_failed(Exchange::Theirs(0)), "once");
    pair.run();
    assert!(pair.take_a().iter().any(|e| matches!(e,
        Event::Cancelled { exchange: Exchange::Ours(m), reason } if *m == call && *reason == CancelReason::IO)));

    let id = pair.a.send_oneway(route(), pattern(10_000), SendOptions::default()).unwrap();
    out.clear();
    assert!(pair.a.poll_transmit(pair.now, &mut out));
    pair.b.handle_input(pair.now, &out);
    while pair.b.poll_store().is_some() {}
    pair.a.cancel(Exchange::Ours(id), CancelReason::CANCELLED);
    carry(&mut pair);
    let ops: Vec<StoreOp> = std::iter::from_fn(|| pair.b.poll_store()).collect();
    assert!(matches!(ops.as_slice(), [StoreOp::Discard { exchange: Exchange::Theirs(1) }]), "{ops:?}");
}

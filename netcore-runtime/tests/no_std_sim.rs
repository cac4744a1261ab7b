//! Two sessions of the core as a board builds it (`--no-default-features`: `#![no_std]` with
//! `alloc`, `time::Instant` a count of microseconds) driven through the simulator: a handshake,
//! a request and its answer, a message above the inline limit through the simulator's in-memory
//! storage, a typed value through the payload codec (postcard, feature `codec`), and a keepalive
//! deadline on the plain clock. CI runs it as
//! `cargo test -p netcore-runtime --no-default-features --test no_std_sim`, and with
//! `--features codec` for the typed exchange; it runs in the default build too, where `Instant` is
//! std's.

use netcore_runtime::session::{Config, Event, Exchange, Keepalive, Payload, SendOptions};
use netcore_runtime::sim::Pair;
use netcore_runtime::{Limits, Route};
use std::time::Duration;

fn messages(events: Vec<Event>) -> Vec<netcore_runtime::session::Incoming> {
    events.into_iter().filter_map(|e| if let Event::Message(m) = e { Some(m) } else { None }).collect()
}

fn bytes(payload: &Payload) -> Vec<u8> {
    match payload {
        Payload::Memory(bytes) => bytes.to_vec(),
        #[cfg(feature = "tokio")]
        Payload::File(file) => std::fs::read(file.path()).unwrap(),
        other => panic!("a payload in memory or stored, not {other:?}"),
    }
}

#[test]
fn two_board_sessions_call_each_other_through_the_sim() {
    let limits = Limits { inline_limit: 1024, ..Limits::default() };
    let board = Config::lossy().with_limits(limits).with_chunk_size(200);
    let mut pair = Pair::new(Config::lossy(), board);
    pair.a_to_b.piece = 7; // a UART's FIFO worth at a time
    pair.run();
    assert!(pair.a.is_open() && pair.b.is_open());
    assert!(pair.take_b().iter().any(|e| matches!(e, Event::Connected(_))));
    pair.take_a();

    let call = pair.a.request(Route::Name("/sensor".into()), b"read".to_vec(), SendOptions::default()).unwrap();
    pair.run();
    let request = messages(pair.take_b()).pop().expect("the board got the request");
    assert_eq!(bytes(&request.payload), b"read");
    let Exchange::Theirs(id) = request.exchange else { panic!("opened by the host") };
    pair.b.respond(id, Ok(b"21.5".to_vec().into()), SendOptions::default()).unwrap();
    pair.run();
    let reply = messages(pair.take_a()).pop().expect("the host got the answer");
    assert_eq!((reply.exchange, bytes(&reply.payload)), (Exchange::Ours(call), b"21.5".to_vec()));

    // Above the board's inline limit: handed to the simulator's storage as it arrives.
    let image: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    pair.a.send_oneway(Route::Name("/firmware".into()), image.clone(), SendOptions::default()).unwrap();
    pair.run();
    assert_eq!(pair.b_handoff.began, 1, "stored, not kept in the session");
    let got = messages(pair.take_b()).pop().expect("the image arrived");
    assert_eq!(bytes(&got.payload), image);
    assert!(pair.a.is_idle() && pair.b.is_idle());
}

/// What a board reports, as both sides declare it.
#[cfg(feature = "codec")]
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Reading {
    sensor: String,
    at_us: u64,
    celsius: f32,
    samples: Vec<i16>,
}

#[cfg(feature = "codec")]
#[test]
fn two_board_sessions_exchange_a_typed_value_through_the_codec() {
    use netcore_runtime::codec::{self, CodecError};

    let board = Config::lossy().with_chunk_size(200);
    let mut pair = Pair::new(Config::lossy(), board);
    pair.a_to_b.piece = 7;
    pair.run();
    pair.take_a();
    pair.take_b();

    // The host asks for a reading with a typed argument (which sensor, how many samples).
    let args = codec::encode(&("t0", 3u8)).unwrap();
    pair.a.request(Route::Name("/sensor/read".into()), args, SendOptions::default()).unwrap();
    pair.run();
    let request = messages(pair.take_b()).pop().expect("the board got the request");
    let (sensor, count): (String, u8) = codec::decode(&bytes(&request.payload)).unwrap();
    assert_eq!((sensor.as_str(), count), ("t0", 3));

    // The board answers with a struct, encoded with postcard by the no_std codec seam.
    let reading =
        Reading { sensor, at_us: 1_700_000, celsius: 21.5, samples: vec![-3, 0, 300][..count as usize].to_vec() };
    let Exchange::Theirs(id) = request.exchange else { panic!("opened by the host") };
    let encoded = codec::encode(&reading).unwrap();
    pair.b.respond(id, Ok(encoded.clone().into()), SendOptions::default()).unwrap();
    pair.run();
    let reply = messages(pair.take_a()).pop().expect("the host got the answer");
    let got = bytes(&reply.payload);
    assert_eq!(got, encoded, "the payload crosses the link byte for byte");
    assert_eq!(codec::decode::<Reading>(&got).unwrap(), reading);

    // The same bounds as on the host: a truncated or longer payload is an error, not a value.
    assert!(matches!(codec::decode::<Reading>(&got[..got.len() - 1]), Err(CodecError::Decode(_))));
    let mut longer = got.clone();
    longer.push(0);
    assert!(matches!(codec::decode::<Reading>(&longer), Err(CodecError::Trailing(1))));
    assert!(pair.a.is_idle() && pair.b.is_idle());
}

#[test]
fn deadlines_run_on_the_callers_clock() {
    let keepalive = Keepalive { interval: Duration::from_secs(1), max_missed: 2 };
    let mut pair = Pair::new(Config::lossy().with_keepalive(Some(keepalive)), Config::lossy());
    pair.run();
    pair.take_a();
    // The board stops answering: the host gives up after (max_missed + 1) intervals.
    pair.b_to_a.filter = Some(Box::new(|bytes: &mut Vec<u8>| bytes.clear()));
    for _ in 0..10 {
        pair.advance(Duration::from_millis(500));
        pair.run();
    }
    assert!(pair.a.is_closed());
    assert!(pair.take_a().iter().any(|e| matches!(e, Event::Closed(reason) if reason.is_timeout())));
}

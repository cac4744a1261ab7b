//! Throughput of the wire core against the two floors it cannot beat: a memcpy and a CRC32 pass.
//!
//! - `baseline`: `copy_from_slice` and `crc32fast::hash` over 1 MiB.
//! - `frame`: encode + decode of one DATA frame, stream and lossy framing.
//! - `message`: a whole one-way message through two connected sans-IO sessions (stream framing),
//!   CREDIT frames fed back so the sender never stalls.
//!
//! After criterion's report, a summary line per message size relates the message throughput to
//! the baselines. Run with `cargo bench -p netcore-runtime --bench codec`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkGroup, Criterion, Throughput};
use netcore_runtime::frame::{encode, stream::StreamDecoder, Data, Decoder, Frame, Framing, Xid};
use netcore_runtime::session::{Config, Event, Payload, SendOptions, Session};
use netcore_runtime::{Limits, Route};

const MIB: usize = 1 << 20;
const MAX_BODY: usize = 64 * 1024;

/// Deterministic, non-zero-heavy filler (so COBS and CRC see realistic bytes).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect()
}

fn tuned<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(30);
    group
}

fn label(len: usize) -> String {
    match len {
        n if n >= MIB => format!("{} MiB", n / MIB),
        n if n >= 1024 => format!("{} KiB", n / 1024),
        n => format!("{n} B"),
    }
}

// ---- baseline ---------------------------------------------------------------------------------

fn bench_baseline(c: &mut Criterion) {
    let src = pattern(MIB);
    let mut dst = vec![0u8; MIB];
    let mut group = tuned(c, "baseline");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("memcpy 1 MiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    group.bench_function("crc32fast 1 MiB", |b| b.iter(|| crc32fast::hash(black_box(&src))));
    group.finish();
}

// ---- frame ------------------------------------------------------------------------------------

fn data_frame(len: usize) -> Frame {
    Frame::Data(Data { xid: Xid::sender(7), offset: 123_456, end: false, payload: Bytes::from(pattern(len)) })
}

/// Encodes `frame` and decodes it again; the stream decoder takes the encoded buffer without a copy.
fn round_trip(framing: Framing, frame: &Frame, out: &mut BytesMut, decoder: &mut Decoder) -> Frame {
    encode(framing, frame, out).expect("the bench frames are well-formed");
    match decoder {
        Decoder::Stream(d) => d.feed(out.split()),
        Decoder::Lossy(_) => {
            decoder.extend(out);
            out.clear();
        }
    }
    decoder.decode().expect("valid frame").expect("complete frame")
}

fn bench_frame(c: &mut Criterion) {
    let mut group = tuned(c, "frame");
    for (framing, len) in
        [(Framing::Stream, 64), (Framing::Stream, 16 * 1024), (Framing::Lossy, 64), (Framing::Lossy, 1024)]
    {
        let frame = data_frame(len);
        let mut out = BytesMut::with_capacity(2 * len + 64);
        let mut decoder = match framing {
            Framing::Stream => Decoder::Stream(StreamDecoder::new(MAX_BODY)),
            Framing::Lossy => Decoder::new(Framing::Lossy, MAX_BODY),
        };
        assert_eq!(round_trip(framing, &frame, &mut out, &mut decoder), frame);
        group.throughput(Throughput::Bytes(len as u64));
        let name = format!("{} DATA {}", if framing == Framing::Stream { "stream" } else { "lossy" }, label(len));
        group.bench_function(name, |b| b.iter(|| round_trip(framing, black_box(&frame), &mut out, &mut decoder)));
    }
    group.finish();
}

// ---- message ----------------------------------------------------------------------------------

/// Two connected sessions on the stream framing and the wire buffer between them.
/// The stream profile with room to reassemble the 1 MiB message in memory: this bench measures the
/// core's in-memory path (the default limits would send it to a spill file).
fn in_memory() -> Config {
    let limits = Limits { inline_limit: 2 << 20, window: 4 << 20, ..Limits::default() };
    Config::stream().with_limits(limits)
}

struct Link {
    tx: Session,
    rx: Session,
    now: Instant,
    wire: BytesMut,
}

impl Link {
    /// Exchanges HELLOs and drains the `Connected` events.
    fn connected() -> Self {
        let now = Instant::now();
        let mut link = Link {
            tx: Session::new(in_memory(), now),
            rx: Session::new(in_memory(), now),
            now,
            wire: BytesMut::with_capacity(2 * MIB),
        };
        link.pump_forward();
        link.pump_back();
        for session in [&mut link.tx, &mut link.rx] {
            assert!(session.is_open());
            while let Some(event) = session.poll_event() {
                assert!(matches!(event, Event::Connected(_)), "unexpected {event:?}");
            }
        }
        link
    }

    /// Everything the sender has to say, handed to the receiver in one read.
    fn pump_forward(&mut self) -> bool {
        self.wire.clear();
        while self.tx.poll_transmit(self.now, &mut self.wire) {}
        if self.wire.is_empty() {
            return false;
        }
        self.rx.handle_input(self.now, &self.wire);
        true
    }

    /// The receiver's control frames (HELLO, CREDIT) back to the sender.
    fn pump_back(&mut self) -> bool {
        self.wire.clear();
        while self.rx.poll_transmit(self.now, &mut self.wire) {}
        if self.wire.is_empty() {
            return false;
        }
        self.tx.handle_input(self.now, &self.wire);
        true
    }

    /// Sends one message and returns the length of what arrived.
    fn send(&mut self, payload: &Bytes) -> usize {
        self.tx.send_oneway(Route::Id(1), payload.clone(), SendOptions::default()).expect("open session");
        let mut arrived = None;
        loop {
            let moved = self.pump_forward();
            // Taking the message releases its credit; the CREDIT frame goes out with pump_back.
            while let Some(event) = self.rx.poll_event() {
                if let Event::Message(message) = event {
                    let Payload::Memory(bytes) = message.payload else { panic!("message spilled to a file") };
                    arrived = Some(bytes.len());
                }
            }
            let credited = self.pump_back();
            while self.tx.poll_event().is_some() {}
            if let Some(len) = arrived {
                return len;
            }
            assert!(moved || credited, "link stalled before the message arrived");
        }
    }
}

fn bench_message(c: &mut Criterion) {
    let mut group = tuned(c, "message");
    for len in [64, MIB] {
        let payload = Bytes::from(pattern(len));
        let mut link = Link::connected();
        assert_eq!(link.send(&payload), len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(label(len), |b| b.iter(|| link.send(black_box(&payload))));
    }
    group.finish();
}

// ---- summary ----------------------------------------------------------------------------------

/// Bytes per second of `f`, which processes `bytes` per call, over about `budget` of calls.
fn rate(bytes: usize, budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let probe = Instant::now();
    f();
    let once = probe.elapsed().max(Duration::from_nanos(20));
    let iterations = (budget.as_secs_f64() / once.as_secs_f64()).clamp(10.0, 10_000_000.0) as u64;
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    (bytes as u64 * iterations) as f64 / start.elapsed().as_secs_f64()
}

fn summary() {
    const BUDGET: Duration = Duration::from_millis(500);
    let src = pattern(MIB);
    let mut dst = vec![0u8; MIB];
    let memcpy = rate(MIB, BUDGET, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    });
    let crc = rate(MIB, BUDGET, || {
        black_box(crc32fast::hash(black_box(&src)));
    });
    println!();
    println!("baseline: memcpy {:.2} GB/s, crc32fast {:.2} GB/s", memcpy / 1e9, crc / 1e9);
    for len in [64, MIB] {
        let payload = Bytes::from(pattern(len));
        let mut link = Link::connected();
        let message = rate(len, BUDGET, || {
            black_box(link.send(black_box(&payload)));
        });
        println!(
            "message {}: {:.2} GB/s = {:.3} x crc32fast, {:.3} x memcpy",
            label(len),
            message / 1e9,
            message / crc,
            message / memcpy
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_baseline(&mut c);
    bench_frame(&mut c);
    bench_message(&mut c);
    // `cargo test --benches` runs each benchmark once without `--bench`: skip the timed summary there.
    if std::env::args().any(|arg| arg == "--bench") {
        summary();
    }
    Criterion::default().configure_from_args().final_summary();
}

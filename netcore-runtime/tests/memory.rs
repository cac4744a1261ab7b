//! Peak memory under hostile input, measured with a counting allocator, against the budget the
//! limits promise (docs/PROTOCOL.md §8). The allocator counts the whole process, so the cases run
//! one after the other in a single test, with no other test thread allocating meanwhile.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use netcore_runtime::faults::{FaultPlan, Rng};
use netcore_runtime::frame::{self, Frame, Framing, Head, Hello, Kind, Limits, Priority, Route, Xid};
use netcore_runtime::session::{Config, SendOptions, Session, PROTOCOL_VERSION};
use netcore_runtime::sim::Pair;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size > layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::SeqCst) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::SeqCst);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn memory_under_hostile_input() {
    hostile_lengths_allocate_nothing_of_their_claim();
    a_half_sent_flood_stays_within_the_budget();
    disconnects_leak_no_memory();
}

/// Runs `f` and returns its result with the peak bytes allocated above what was live at the start.
fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let result = f();
    (result, PEAK.load(Ordering::SeqCst) - base)
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn open(config: Config, now: Instant) -> Session {
    let framing = config.framing;
    let mut session = Session::new(config, now);
    let mut wire = BytesMut::new();
    // The payload codec of this build, so that the session opens with `--features bincode` too.
    let hello = Hello::new(PROTOCOL_VERSION, PROTOCOL_VERSION, 0, Limits { max_frame: 1024, ..Limits::default() })
        .with_codec(frame::PayloadCodec::COMPILED);
    frame::encode(framing, &Frame::Hello(hello), &mut wire).unwrap();
    session.handle_input(now, &wire);
    drain(&mut session, now);
    assert!(session.is_open());
    session
}

/// The peer reads everything; returns the number of events.
fn drain(session: &mut Session, now: Instant) -> usize {
    let mut out = BytesMut::new();
    while session.poll_transmit(now, &mut out) {
        out.clear();
    }
    std::iter::from_fn(|| session.poll_event()).count()
}

fn head(id: u32, total: u64, payload: &[u8]) -> Frame {
    Frame::Head(Head {
        xid: Xid::sender(id),
        kind: Kind::OneWay,
        priority: Priority::NORMAL,
        route: Some(Route::Id(1)),
        meta: None,
        total,
        payload: Bytes::copy_from_slice(payload),
    })
}

// 5. Hostile lengths: nothing of the claimed size is allocated.
fn hostile_lengths_allocate_nothing_of_their_claim() {
    let now = Instant::now();
    let limits = Limits::default();
    let mut report = Vec::new();
    for framing in [Framing::Stream, Framing::Lossy] {
        let config = Config::stream().with_framing(framing);
        // Each HEAD claims the largest in-memory total (1 MiB) or more and brings 1 byte.
        let mut wire = BytesMut::new();
        for (id, total) in
            [(0, limits.inline_limit), (1, limits.max_message), (2, u64::MAX - 1), (3, limits.inline_limit)]
        {
            frame::encode(framing, &head(id, total, b"x"), &mut wire).unwrap();
        }
        let mut session = open(config, now);
        let ((), peak) = peak_during(|| {
            session.handle_input(now, &wire);
            drain(&mut session, now);
        });
        assert!(session.is_open());
        report.push(format!("{framing:?}: 4 HEADs claiming 1 MiB, 1 GiB, 2^64-2, 1 MiB: peak {}", kib(peak)));
        assert!(peak < 64 * 1024, "{framing:?}: peak {peak} bytes");
    }
    // A stream length prefix of 2^64-1.
    let mut session = open(Config::stream(), now);
    let ((), peak) = peak_during(|| {
        session.handle_input(now, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        drain(&mut session, now);
    });
    assert!(session.is_closed());
    report.push(format!("stream length prefix 2^64-1: closed, peak {}", kib(peak)));
    assert!(peak < 16 * 1024);
    // The payload codec (postcard, LEB128 lengths): a sequence claiming 2^21 u64 (16 MiB, the
    // decode limit) or 2^60 elements in 3 or 9 bytes.
    for claim in [1u64 << 21, 1 << 60] {
        let mut input = Vec::new();
        let mut rest = claim;
        while rest >= 0x80 {
            input.push(rest as u8 | 0x80);
            rest >>= 7;
        }
        input.push(rest as u8);
        let (result, peak) = peak_during(|| netcore_runtime::codec::decode::<Vec<u64>>(&input));
        assert!(result.is_err());
        report.push(format!(
            "codec: Vec<u64> claiming {claim} elements in {} bytes: error, peak {}",
            input.len(),
            kib(peak)
        ));
        assert!(peak <= (1 << 20) + 4096, "serde preallocates at most 1 MiB: peak {peak}");
    }
    // A string claiming 8 MiB (half the decode limit) in 4 or 5 bytes, spelled for each codec
    // (postcard's LEB128, bincode's 0xfc + u32), through the codec of this build, alone and as a
    // struct's field: bincode's own string path allocates the claim before reading it (found by
    // the `schema_types` fuzz target).
    let claim = 8u32 << 20;
    let leb128 = vec![0x80, 0x80, 0x80, 0x04];
    let bincode = [&[0xfc][..], &claim.to_le_bytes()].concat();
    for (spelling, input) in [("LEB128", leb128), ("bincode varint", bincode)] {
        let (string, peak_string) = peak_during(|| netcore_runtime::codec::decode::<String>(&input));
        let (field, peak_field) = peak_during(|| netcore_runtime::codec::decode::<(String, u32)>(&input));
        assert!(string.is_err() && field.is_err());
        let peak = peak_string.max(peak_field);
        report.push(format!(
            "codec ({}): a string claiming {claim} bytes ({spelling}): error, peak {}",
            netcore_runtime::codec::CODEC.name(),
            kib(peak)
        ));
        assert!(peak < 64 * 1024, "{spelling}: peak {peak} bytes");
    }
    for line in report {
        eprintln!("hostile lengths: {line}");
    }
}

// 6. A flood of half-sent messages stays within max_in_flight × inline_limit, and far below.
fn a_half_sent_flood_stays_within_the_budget() {
    let now = Instant::now();
    let limits = Limits::default();
    let budget = limits.max_in_flight as u64 * limits.inline_limit;
    for framing in [Framing::Stream, Framing::Lossy] {
        let mut session = open(Config::stream().with_framing(framing), now);
        let mut wire = BytesMut::new();
        let n = 100_000u32;
        let (refused, peak) = peak_during(|| {
            let mut refused = 0;
            for id in 0..n {
                // Each claims 1 MiB and sends 16 bytes of it.
                frame::encode(framing, &head(id, limits.inline_limit, &[id as u8; 16]), &mut wire).unwrap();
                if wire.len() > 4096 {
                    session.handle_input(now, &wire);
                    wire.clear();
                    refused += drain(&mut session, now);
                }
            }
            session.handle_input(now, &wire);
            refused + drain(&mut session, now)
        });
        assert!(session.is_open());
        assert_eq!(refused, 0, "refusals go to the peer, not the application");
        eprintln!(
            "half-sent flood, {framing:?}: {n} messages of 1 MiB claimed, 16 bytes sent each: peak {} against a budget of {} MiB",
            kib(peak),
            budget >> 20
        );
        assert!((peak as u64) < budget / 100, "peak {peak}");
    }
}

// 12. Disconnects at random points leak no memory: after the sessions are gone, what was
// allocated is freed.
fn disconnects_leak_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    // Warm up lazily initialised state (thread locals, the temp dir's first file).
    soak(0..20, dir.path());
    let before = CURRENT.load(Ordering::SeqCst);
    let ((), peak) = peak_during(|| soak(20..2_020, dir.path()));
    let after = CURRENT.load(Ordering::SeqCst);
    eprintln!("2000 random disconnects: {} live before, {} after, peak {} above", kib(before), kib(after), kib(peak));
    assert!(after <= before + 1024, "leaked {} bytes", after.saturating_sub(before));
}

fn soak(seeds: std::ops::Range<u64>, dir: &std::path::Path) {
    for seed in seeds {
        let _guard = netcore_runtime::faults::SeedGuard::new("memory soak", seed);
        let mut rng = Rng::new(seed);
        let framing = if rng.chance(0.5) { Framing::Stream } else { Framing::Lossy };
        let limits = Limits { inline_limit: 2000, ..Limits::default() };
        let config =
            Config::stream().with_framing(framing).with_chunk_size(200).with_limits(limits).with_spill_dir(dir);
        let mut pair = Pair::new(config.clone(), config);
        if rng.chance(0.3) {
            pair.a_to_b.filter = Some(FaultPlan::serial_noise(seed).link_filter());
        }
        for n in 0..rng.below(6) + 1 {
            let len = [10, 150, 900, 5000][rng.below(4) as usize];
            let _ = pair.a.request(Route::Id(1), vec![n as u8; len], SendOptions::default());
        }
        support::random_steps(&mut pair, &mut rng);
        pair.a.handle_eof();
        pair.b.handle_eof();
        pair.take_a();
        pair.take_b();
    }
}

//! netcore side by side with tarpc and a raw length-prefixed TCP floor, in one run on one machine.
//!
//! ```text
//! cargo bench --bench compare               # every workload in full (under 5 minutes on 2 cores)
//! cargo bench --bench compare -- --quick    # CI: every workload briefly; checks the harness, not the figures
//! cargo bench --bench compare -- --only hol,bulk --systems netcore   # a subset, e.g. under a profiler
//! cargo bench --bench compare -- --only wire_bytes_small_call_typed   # one typed call's bytes (postcard)
//! cargo bench --bench compare --features bincode -- --only wire_bytes_small_call_typed   # with bincode
//! ```
//!
//! Each workload runs against three systems over loopback TCP: `raw_tcp` (a u32-length-prefixed
//! ping-pong/copy on tokio, the floor), `tarpc` (its serde transport, bincode, length-delimited
//! frames) and `netcore`. Server and client run on separate one-thread tokio runtimes: two devices
//! with a core each. TCP_NODELAY is set on every socket of every system.
//!
//! ```text
//!   workload ─▶ for each system: fresh server runtime + client runtime ─▶ samples ─▶ figure
//!                                                                                    │
//!   table on stdout ◀── targets (ratios within this run) ◀── target/netcore-bench/compare.json
//! ```
//!
//! `recv_file_peak_rss_mib` runs the receiver in a child process (this binary re-executed with
//! `--child-recv-file`), which prints its peak resident memory (VmHWM) when the message is stored.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io::{self, BufRead, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use netcore::endpoint::{EndpointEvent, Response};
use netcore::session::{Body, Config, Payload};
use netcore::transport::Paced;
use netcore::{CallOptions, Connection, Endpoint, Limits, Priority, Route};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

const MIB: usize = 1 << 20;
/// Payload of the small calls (request and reply).
const SMALL: usize = 32;
/// Payload of a serial-link command.
const COMMAND: usize = 16;
/// 115 200 baud, 8N1.
const SERIAL_RATE: u64 = 11_520;
/// Bytes read or buffered at once by the raw floor (netcore's driver reads 64 KiB too).
const RAW_BUFFER: usize = 64 * 1024;
/// Requests up to this size are echoed by the raw server; larger ones are counted and discarded.
const RAW_ECHO_MAX: usize = 64 * 1024;
/// tarpc's length-delimited frames default to 8 MiB; a 256 MiB argument needs more.
const TARPC_MAX_FRAME: usize = 1 << 30;

/// What one run measures, and how long it takes.
struct Plan {
    quick: bool,
    rtt_warmup: usize,
    rtt_calls: usize,
    callers: usize,
    callers_warmup: Duration,
    callers_time: Duration,
    bulk_bytes: usize,
    bulk_runs: usize,
    hol_rounds: usize,
    recv_file_bytes: u64,
    serial_upload: usize,
    serial_window: Duration,
    stream_items: u64,
}

impl Plan {
    fn full() -> Self {
        Plan {
            quick: false,
            rtt_warmup: 2_000,
            rtt_calls: 20_000,
            callers: 64,
            callers_warmup: Duration::from_millis(500),
            callers_time: Duration::from_secs(3),
            bulk_bytes: 256 * MIB,
            bulk_runs: 5,
            hol_rounds: 3,
            recv_file_bytes: 1 << 30,
            serial_upload: MIB,
            serial_window: Duration::from_secs(15),
            stream_items: 1_000_000,
        }
    }

    fn quick() -> Self {
        Plan {
            quick: true,
            rtt_warmup: 100,
            rtt_calls: 500,
            callers_warmup: Duration::from_millis(50),
            callers_time: Duration::from_millis(300),
            bulk_bytes: 16 * MIB,
            bulk_runs: 1,
            hol_rounds: 1,
            recv_file_bytes: 64 << 20,
            serial_upload: 32 * 1024,
            serial_window: Duration::from_millis(1_500),
            stream_items: 20_000,
            ..Plan::full()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    RawTcp,
    Tarpc,
    Netcore,
}

impl System {
    /// The systems to run: all three, or those named by `--systems a,b` (for profiling one).
    fn chosen() -> Vec<System> {
        let args: Vec<String> = std::env::args().collect();
        let names = args.iter().position(|a| a == "--systems").and_then(|i| args.get(i + 1));
        [System::RawTcp, System::Tarpc, System::Netcore]
            .into_iter()
            .filter(|s| names.is_none_or(|names| names.split(',').any(|n| n == s.name())))
            .collect()
    }

    fn name(self) -> &'static str {
        match self {
            System::RawTcp => "raw_tcp",
            System::Tarpc => "tarpc",
            System::Netcore => "netcore",
        }
    }
}

/// One workload's figures: a value per system that ran it.
struct Entry {
    name: &'static str,
    unit: &'static str,
    values: BTreeMap<&'static str, f64>,
}

impl Entry {
    fn new(name: &'static str, unit: &'static str) -> Self {
        Entry { name, unit, values: BTreeMap::new() }
    }

    fn set(&mut self, system: System, value: f64) {
        self.values.insert(system.name(), value);
    }

    fn get(&self, system: System) -> Option<f64> {
        self.values.get(system.name()).copied()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--child-recv-file") {
        child_recv_file();
        return;
    }
    let plan = if args.iter().any(|a| a == "--quick") { Plan::quick() } else { Plan::full() };
    let started = Instant::now();
    let machine = machine();
    println!(
        "netcore compare: {} mode on {}, payload codec {}",
        if plan.quick { "quick" } else { "full" },
        machine["summary"].as_str().unwrap_or("?"),
        netcore::codec::CODEC.name()
    );

    // `--only a,b`: run only the workloads whose names start with one of these (for profiling).
    let only: Vec<String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|prefix| name.starts_with(prefix.as_str()));

    let mut notes: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    let mut behind_share = BTreeMap::new();
    if wanted("rtt_p50_us") || wanted("rtt_p99_us") {
        let (p50, p99) = rtt(&plan);
        entries.extend([p50, p99]);
    }
    if wanted("calls_per_s_64") {
        entries.push(calls_per_s(&plan));
    }
    // Every workload that shares the bulk payload, so each can also be asked for on its own.
    let bulk_workloads =
        ["bulk_mib_s", "bulk_typed_mib_s", "download_streamed_mib_s", "bulk_stored_mib_s", "hol_p99_us"];
    if bulk_workloads.iter().any(|name| wanted(name)) {
        let data = pattern(plan.bulk_bytes);
        let mut untyped = None;
        if wanted("bulk_mib_s") {
            let entry = bulk(&plan, &data, &mut notes);
            untyped = entry.get(System::Netcore);
            entries.push(entry);
        }
        if wanted("bulk_typed_mib_s") {
            let entry = bulk_typed(&plan, &data, &mut notes);
            if let (Some(typed), Some(untyped)) = (entry.get(System::Netcore), untyped) {
                notes.push(format!(
                    "bulk_typed_mib_s: a stream<bytes> method runs at {:.2}x the untyped streaming route \
                     (bulk_mib_s, netcore) in this run",
                    typed / untyped
                ));
            }
            entries.push(entry);
        }
        if wanted("download_streamed_mib_s") {
            let entry = download_streamed(&plan, &data);
            if let (Some(down), Some(up)) = (entry.get(System::Netcore), untyped) {
                notes.push(format!(
                    "download_streamed_mib_s: a streamed answer (call_stream, Response::stream) runs at {down:.1} MiB/s, \
                     {:.2}x the streaming upload route (bulk_mib_s, netcore {up:.1} MiB/s) in this run",
                    down / up
                ));
            }
            entries.push(entry);
        }
        if wanted("bulk_stored_mib_s") {
            entries.push(bulk_stored(&plan, &data, &mut notes));
        }
        if wanted("hol_p99_us") {
            let (entry, share) = hol(&plan, &data, &mut notes);
            entries.push(entry);
            behind_share = share;
        }
    }
    if wanted("recv_file_peak_rss_mib") {
        entries.push(recv_file(&plan, &mut notes));
    }
    if wanted("wire_bytes_small_call") {
        entries.push(wire_bytes(&mut notes));
    }
    if wanted("wire_bytes_small_call_typed") {
        entries.push(wire_bytes_typed(&mut notes));
    }
    if wanted("stream_items_per_s") {
        entries.push(stream_items(&plan, &mut notes));
    }
    if wanted("serial_hol_p99_ms") {
        entries.push(serial(&plan, &mut notes));
    }
    let total = started.elapsed();

    let targets = judge(&entries, &behind_share);
    print_table(&entries, &targets, plan.quick);
    for note in &notes {
        println!("  note: {note}");
    }
    println!("  total time: {:.1} s", total.as_secs_f64());
    let path = write_json(&plan, &entries, &targets, &notes, machine, total);
    println!("  wrote {}", path.display());
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

/// `rtt_p50_us`, `rtt_p99_us`: one caller, 32-byte request and reply, one call at a time.
fn rtt(plan: &Plan) -> (Entry, Entry) {
    let mut p50 = Entry::new("rtt_p50_us", "us");
    let mut p99 = Entry::new("rtt_p99_us", "us");
    for system in System::chosen() {
        let peers = Peers::new();
        let addr = peers.serve(system);
        let (warmup, calls) = (plan.rtt_warmup, plan.rtt_calls);
        let mut samples = peers.run(async move {
            let client = Client::connect(system, tcp(addr).await, RawMode::Direct).await;
            let payload = Bytes::from(vec![0x5a; SMALL]);
            for _ in 0..warmup {
                client.echo(&payload, Priority::NORMAL).await;
            }
            let mut samples = Vec::with_capacity(calls);
            for _ in 0..calls {
                let asked = Instant::now();
                client.echo(&payload, Priority::NORMAL).await;
                samples.push(asked.elapsed());
            }
            samples
        });
        p50.set(system, micros(quantile(&mut samples, 0.50)));
        p99.set(system, micros(quantile(&mut samples, 0.99)));
    }
    (p50, p99)
}

/// `calls_per_s_64`: 64 concurrent callers on one connection, 32-byte calls, for a fixed time.
fn calls_per_s(plan: &Plan) -> Entry {
    let mut entry = Entry::new("calls_per_s_64", "calls/s");
    for system in System::chosen() {
        let peers = Peers::new();
        let addr = peers.serve(system);
        let (callers, warmup, time) = (plan.callers, plan.callers_warmup, plan.callers_time);
        let rate = peers.run(async move {
            let client = Client::connect(system, tcp(addr).await, RawMode::Pipelined).await;
            burst(&client, callers, warmup).await;
            burst(&client, callers, time).await
        });
        entry.set(system, rate.round());
    }
    entry
}

/// Calls per second of `callers` tasks calling back to back for `time`.
async fn burst(client: &Client, callers: usize, time: Duration) -> f64 {
    let payload = Bytes::from(vec![0x5a; SMALL]);
    let start = Instant::now();
    let end = start + time;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (client, payload) = (client.clone(), payload.clone());
            tokio::spawn(async move {
                let mut calls = 0u64;
                while Instant::now() < end {
                    client.echo(&payload, Priority::NORMAL).await;
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let mut calls = 0;
    for task in tasks {
        calls += task.await.expect("caller task");
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

/// `bulk_mib_s`: one large payload, end to end until the receiver has it all (median of runs).
/// Each receiver consumes the bytes as they arrive: raw_tcp counts them, netcore's handler reads
/// them from its [`BodyStream`](netcore::endpoint::BodyStream), tarpc decodes the whole message.
fn bulk(plan: &Plan, data: &Bytes, notes: &mut Vec<String>) -> Entry {
    bulk_into(Entry::new("bulk_mib_s", "MiB/s"), System::chosen(), "/sink", plan, data, notes)
}

/// `bulk_typed_mib_s` (netcore only): the same payload as the `stream<bytes>` argument of a typed
/// method (`Bench::sink`), read by its handler as it arrives, as `/sink` reads it untyped.
fn bulk_typed(plan: &Plan, data: &Bytes, notes: &mut Vec<String>) -> Entry {
    let netcore = System::chosen().into_iter().filter(|s| *s == System::Netcore).collect();
    bulk_into(Entry::new("bulk_typed_mib_s", "MiB/s"), netcore, TYPED_SINK, plan, data, notes)
}

/// The typed method `bulk_typed_mib_s` sends to.
const TYPED_SINK: &str = "/bench/sink";

/// The typed service of `bulk_typed_mib_s`.
#[netcore::service(prefix = "/bench")]
trait Bench {
    /// Reads `data` as it arrives; its length.
    async fn sink(&self, tag: u32, data: netcore::endpoint::BodyStream) -> u64;
    /// Reads `readings` as they are decoded; how many.
    async fn readings(&self, tag: u32, readings: netcore::typed::Items<Reading>) -> u64;
    /// One reading, one-way: counted in `READINGS`.
    #[netcore(event)]
    async fn reading(&self, reading: Reading);
    /// How many one-way readings arrived so far.
    async fn counted(&self) -> u64;
    /// Pushes `n` readings to the caller, server to client.
    async fn push(&self, n: u64) -> netcore::Stream<Reading>;
}

/// A small typed item (`stream_items_per_s`).
#[derive(serde::Serialize, serde::Deserialize, netcore::Schema)]
struct Reading {
    at: u64,
    value: i32,
}

/// One-way readings the server counted.
static READINGS: AtomicU64 = AtomicU64::new(0);

struct BenchSink;

impl Bench for BenchSink {
    async fn sink(&self, _tag: u32, mut data: netcore::endpoint::BodyStream) -> Result<u64, netcore::HandlerError> {
        while data.chunk().await?.is_some() {}
        Ok(data.received())
    }

    async fn readings(
        &self,
        _tag: u32,
        mut readings: netcore::typed::Items<Reading>,
    ) -> Result<u64, netcore::HandlerError> {
        while let Some(reading) = readings.next().await {
            std::hint::black_box(reading?.value);
        }
        Ok(readings.count())
    }

    async fn reading(&self, reading: Reading) -> Result<(), netcore::HandlerError> {
        std::hint::black_box(reading.at);
        READINGS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn counted(&self) -> Result<u64, netcore::HandlerError> {
        Ok(READINGS.load(Ordering::Relaxed))
    }

    async fn push(&self, n: u64) -> Result<netcore::Stream<Reading>, netcore::HandlerError> {
        Ok(netcore::Stream::iter((0..n).map(|i| Reading { at: i, value: (i % 1000) as i32 })))
    }
}

/// `stream_items_per_s` (netcore only): `plan.stream_items` small typed items (`Reading`, about 5
/// bytes encoded) pushed server to client over TCP as one call's `-> stream<Reading>` result,
/// decoded one by one by the client as they arrive. Noted beside it: the same count client to
/// server as one call's `stream<Reading>` argument, and as one-way typed events, timed until the
/// server has counted them all (polled with a small call).
fn stream_items(plan: &Plan, notes: &mut Vec<String>) -> Entry {
    let mut entry = Entry::new("stream_items_per_s", "items/s");
    if !System::chosen().contains(&System::Netcore) {
        return entry;
    }
    let peers = Peers::new();
    let addr = peers.serve(System::Netcore);
    let n = plan.stream_items;
    let (pushed, streamed, oneway) = peers.run(async move {
        let Client::Netcore(conn) = Client::connect(System::Netcore, tcp(addr).await, RawMode::Direct).await else {
            unreachable!("a netcore client")
        };
        let client = BenchClient::new(conn);
        let pull = |count: u64| {
            let client = client.clone();
            async move {
                let mut items = client.push(count).await.expect("netcore result stream");
                let mut got = 0u64;
                while let Some(reading) = items.next().await {
                    std::hint::black_box(reading.expect("netcore pushed reading").value);
                    got += 1;
                }
                got
            }
        };
        assert_eq!(pull(100).await, 100, "warm-up");
        let started = Instant::now();
        assert_eq!(pull(n).await, n, "items lost");
        let pushed = started.elapsed();
        let readings = move || (0..n).map(|i| Reading { at: i, value: (i % 1000) as i32 });
        assert_eq!(client.readings(0, readings().take(100)).await.expect("warm-up"), 100);
        let started = Instant::now();
        let count = client.readings(1, readings()).await.expect("netcore stream of items");
        let streamed = started.elapsed();
        assert_eq!(count, n, "items lost");
        let before = client.counted().await.expect("counted");
        let started = Instant::now();
        for reading in readings() {
            client.reading(reading).await.expect("netcore one-way reading");
        }
        while client.counted().await.expect("counted") < before + n {
            tokio::task::yield_now().await;
        }
        (pushed, streamed, started.elapsed())
    });
    let rate = |took: Duration| n as f64 / took.as_secs_f64();
    entry.set(System::Netcore, round1(rate(pushed)));
    notes.push(format!(
        "stream_items_per_s: {n} items pushed server to client in one -> stream<Reading> call {:.0} items/s; \
         client to server as one stream<Reading> argument {:.0} items/s; the same count as one-way events \
         {:.0} items/s (pushed {:.2}x the events)",
        rate(pushed),
        rate(streamed),
        rate(oneway),
        rate(pushed) / rate(oneway)
    ));
    entry
}

/// The body `/download` streams (`download_streamed_mib_s`), set before the run.
static DOWNLOAD: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();

/// `download_streamed_mib_s` (netcore only): the bulk payload the other way, as a streamed answer:
/// `Connection::call_stream` to `/download`, whose handler answers `Response::stream` with an
/// `OpenBody` fed 64 KiB slices of it, read by the caller chunk by chunk as it arrives (median of
/// runs, as `bulk_mib_s`).
fn download_streamed(plan: &Plan, data: &Bytes) -> Entry {
    let mut entry = Entry::new("download_streamed_mib_s", "MiB/s");
    if !System::chosen().contains(&System::Netcore) {
        return entry;
    }
    let _ = DOWNLOAD.set(data.clone());
    let peers = Peers::new();
    let addr = peers.serve(System::Netcore);
    let Client::Netcore(conn) =
        peers.run(async move { Client::connect(System::Netcore, tcp(addr).await, RawMode::Direct).await })
    else {
        unreachable!("a netcore client")
    };
    let mut rates = Vec::new();
    for _ in 0..plan.bulk_runs {
        let conn = conn.clone();
        let expected = DOWNLOAD.get().map_or(0, |d| d.len() as u64);
        rates.push(peers.run(async move {
            let started = Instant::now();
            let reply =
                conn.call_stream("/download", Bytes::new(), CallOptions::new()).await.expect("netcore download");
            let mut body = reply.into_body();
            let mut received = 0u64;
            while let Some(chunk) = body.chunk().await.expect("netcore download body") {
                received += chunk.len() as u64;
            }
            let took = started.elapsed();
            assert_eq!(received, expected, "netcore lost bytes of the download");
            received as f64 / MIB as f64 / took.as_secs_f64()
        }));
    }
    entry.set(System::Netcore, round1(median(&mut rates)));
    entry
}

/// `bulk_stored_mib_s` (netcore only, not one of the issue's workloads): the same payload into a
/// route that is not streamed, so the receiver stores it in a spill file (it is above the
/// in-memory limit) before the handler runs: the cost of keeping it.
fn bulk_stored(plan: &Plan, data: &Bytes, notes: &mut Vec<String>) -> Entry {
    let netcore = System::chosen().into_iter().filter(|s| *s == System::Netcore).collect();
    bulk_into(Entry::new("bulk_stored_mib_s", "MiB/s"), netcore, "/store", plan, data, notes)
}

/// The systems take turns, one transfer each per round, so that a slow spell of the machine
/// falls on all of them rather than on whichever ran then; each gets the median of its rounds.
/// Also notes the CPU time the sending thread spent per transfer, a steadier figure than the rate
/// on a shared machine.
fn bulk_into(
    mut entry: Entry,
    systems: Vec<System>,
    route: &'static str,
    plan: &Plan,
    data: &Bytes,
    notes: &mut Vec<String>,
) -> Entry {
    let connected: Vec<(System, Peers, Client)> = systems
        .into_iter()
        .map(|system| {
            let peers = Peers::new();
            let addr = peers.serve(system);
            let client = peers.run(async move {
                let client = Client::connect(system, tcp(addr).await, RawMode::Pipelined).await;
                client.echo(&Bytes::from(vec![1; SMALL]), Priority::NORMAL).await;
                client
            });
            (system, peers, client)
        })
        .collect();
    let mut rates: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut sender_cpu: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for _ in 0..plan.bulk_runs {
        for (system, peers, client) in &connected {
            let (system, client, data) = (*system, client.clone(), data.clone());
            let (rate, cpu_ms) = peers.run(async move {
                // tarpc takes its argument by value: the copy is made before the clock starts.
                let body = client.bulk_body(&data);
                let (started, cpu_before) = (Instant::now(), thread_cpu_ns());
                let received = client.sink_to(route, body, Priority::LOW).await;
                let (took, cpu_after) = (started.elapsed(), thread_cpu_ns());
                assert_eq!(received, data.len() as u64, "{} lost bytes", system.name());
                let cpu_ms = cpu_before.zip(cpu_after).map(|(b, a)| (a - b) as f64 / 1e6);
                (data.len() as f64 / MIB as f64 / took.as_secs_f64(), cpu_ms)
            });
            rates.entry(system.name()).or_default().push(rate);
            sender_cpu.entry(system.name()).or_default().extend(cpu_ms);
        }
    }
    for (system, _, _) in &connected {
        entry.set(*system, round1(median(rates.get_mut(system.name()).expect("every system ran"))));
    }
    let cpu: Vec<String> = sender_cpu
        .iter_mut()
        .filter(|(_, samples)| !samples.is_empty())
        .map(|(name, samples)| format!("{name} {:.0} ms", median(samples)))
        .collect();
    if !cpu.is_empty() {
        let size = data.len() / MIB;
        notes.push(format!(
            "{}: CPU time of the sending thread per {size} MiB transfer (median): {}",
            entry.name,
            cpu.join(", ")
        ));
    }
    entry
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// CPU time of the calling thread so far, in nanoseconds (Linux: `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// `hol_p99_us`: small calls every millisecond while a large call is in flight on the same
/// connection. Also returns, per system, the share of small calls that completed only after the
/// large call did: the evidence that they queued behind it.
fn hol(plan: &Plan, data: &Bytes, notes: &mut Vec<String>) -> (Entry, BTreeMap<&'static str, f64>) {
    let mut entry = Entry::new("hol_p99_us", "us");
    let mut behind_share = BTreeMap::new();
    for system in System::chosen() {
        let peers = Peers::new();
        let addr = peers.serve(system);
        let (data, rounds, size) = (data.clone(), plan.hol_rounds, data.len());
        let (mut samples, mut transfers, behind) = peers.run(async move {
            let client = Client::connect(system, tcp(addr).await, RawMode::Pipelined).await;
            let payload = Bytes::from(vec![0x5a; SMALL]);
            for _ in 0..100 {
                client.echo(&payload, Priority::NORMAL).await;
            }
            let (mut samples, mut transfers, mut behind) = (Vec::new(), Vec::new(), 0);
            for _ in 0..rounds {
                let body = client.bulk_body(&data);
                let large = tokio::spawn({
                    let client = client.clone();
                    async move {
                        let started = Instant::now();
                        let received = client.sink(body, Priority::LOW).await;
                        (received, started, Instant::now())
                    }
                });
                let mut tick = tokio::time::interval(Duration::from_millis(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut small = Vec::new();
                while !large.is_finished() {
                    tick.tick().await;
                    let (client, payload) = (client.clone(), payload.clone());
                    small.push(tokio::spawn(async move {
                        let asked = Instant::now();
                        client.echo(&payload, Priority::NORMAL).await;
                        (asked.elapsed(), Instant::now())
                    }));
                }
                let (received, started, finished) = large.await.expect("large call task");
                assert_eq!(received, data.len() as u64);
                transfers.push(finished - started);
                for call in small {
                    let (rtt, done) = call.await.expect("small call task");
                    samples.push(rtt);
                    behind += usize::from(done >= finished);
                }
            }
            (samples, transfers, behind)
        });
        let p99 = quantile(&mut samples, 0.99);
        let transfer = quantile(&mut transfers, 0.5);
        let share = behind as f64 / samples.len() as f64;
        entry.set(system, micros(p99).round());
        behind_share.insert(system.name(), share);
        notes.push(format!(
            "hol_p99_us {}: {} small calls during {} transfer(s) of {} MiB taking {:.0} ms (median); p99 {:.0} us; \
             {:.0}% of them completed only after the large call",
            system.name(),
            samples.len(),
            transfers.len(),
            size / MIB,
            transfer.as_secs_f64() * 1e3,
            micros(p99),
            share * 100.0
        ));
    }
    (entry, behind_share)
}

/// `recv_file_peak_rss_mib`: peak RSS of a child process receiving a large message into a file.
fn recv_file(plan: &Plan, notes: &mut Vec<String>) -> Entry {
    let mut entry = Entry::new("recv_file_peak_rss_mib", "MiB");
    if !System::chosen().contains(&System::Netcore) {
        return entry;
    }
    let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("--child-recv-file")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the receiving child");
    let mut lines = io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut next_line = move || lines.next().expect("the child printed a line").expect("readable");
    let port: u16 = next_line().strip_prefix("port ").expect("port line").parse().expect("a port");
    let size = plan.recv_file_bytes;
    let peers = Peers::new();
    let took = peers.run(async move {
        let client = Endpoint::builder().build().expect("client endpoint");
        let conn = client.connect_tcp(("127.0.0.1", port)).await.expect("connect to the child");
        conn.ready().await.expect("handshake");
        let started = Instant::now();
        let body = Body::reader(PatternReader::new(size), size);
        let opts = CallOptions::default().priority(Priority::LOW);
        let reply = conn.call_with(Route::Name("/sink".into()), body, opts).await.expect("file call");
        let took = started.elapsed();
        assert_eq!(reply_u64(&reply.bytes().expect("reply")), size);
        conn.close().await;
        took
    });
    let report = next_line();
    let status = child.wait().expect("child exit");
    assert!(status.success(), "the receiving child failed: {status}");
    let field = |name: &str| -> u64 {
        let word = report.split_whitespace().skip_while(|w| *w != name).nth(1);
        word.and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("child report lacks {name}: {report}"))
    };
    assert_eq!(field("received"), size, "the child received everything");
    assert_eq!(field("in_file"), 1, "the message was stored in a file");
    entry.set(System::Netcore, round1(field("vmhwm_kib") as f64 / 1024.0));
    notes.push(format!(
        "recv_file_peak_rss_mib: {} MiB message streamed from a generator (Body::reader) into the child's \
         spill file (inline_limit 1 MiB) in {:.2} s; VmHWM of the receiving process{}",
        size >> 20,
        took.as_secs_f64(),
        if plan.quick { "; quick mode uses 64 MiB instead of 1 GiB" } else { "" }
    ));
    entry
}

/// The receiving child of `recv_file`: prints `port N`, serves one message into a file, waits for
/// the peer to close, then prints `received N in_file 0|1 vmhwm_kib N`.
fn child_recv_file() {
    let runtime = runtime("child");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("spill dir");
        // The window may not be smaller than the inline limit (the peer refuses such a HELLO).
        let window = Limits::default().window.max(MIB as u64);
        let limits = Limits { inline_limit: MIB as u64, max_message: 4 << 30, window, ..Limits::default() };
        let config = Config::stream().with_limits(limits).with_spill_dir(dir.path());
        let (got_tx, mut got) = mpsc::unbounded_channel();
        let server = Endpoint::builder()
            .config(config)
            .route("/sink", move |req| {
                let got_tx = got_tx.clone();
                async move {
                    let len = req.payload().len()?;
                    let _ = got_tx.send((len, matches!(req.payload(), Payload::File(_))));
                    Ok(Response::bytes(len.to_le_bytes().to_vec()))
                }
            })
            .build()
            .expect("child endpoint");
        let mut events = server.events();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("port {}", listener.local_addr().expect("addr").port());
        tokio::spawn({
            let server = server.clone();
            async move { server.serve_tcp(listener).await }
        });
        let (received, in_file) = got.recv().await.expect("a message");
        let closed = async { while !matches!(events.recv().await, Ok(EndpointEvent::Disconnect { .. }) | Err(_)) {} };
        let _ = tokio::time::timeout(Duration::from_secs(30), closed).await;
        println!("received {received} in_file {} vmhwm_kib {}", u8::from(in_file), vm_hwm_kib());
    });
}

/// `wire_bytes_small_call`: bytes on the wire, both directions, for one 32-byte call and its
/// reply, counted under each client's transport after the handshake and one warm-up call.
fn wire_bytes(notes: &mut Vec<String>) -> Entry {
    let mut entry = Entry::new("wire_bytes_small_call", "bytes");
    let mut parts = Vec::new();
    for system in System::chosen() {
        let peers = Peers::new();
        let addr = peers.serve(system);
        let (sent, received) = peers.run(async move {
            let counted = Counted::new(tcp(addr).await);
            let (written, read) = (counted.written.clone(), counted.read.clone());
            let client = Client::connect(system, counted, RawMode::Direct).await;
            let payload = Bytes::from(vec![0x5a; SMALL]);
            client.echo(&payload, Priority::NORMAL).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let before = (written.load(Ordering::SeqCst), read.load(Ordering::SeqCst));
            client.echo(&payload, Priority::NORMAL).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            (written.load(Ordering::SeqCst) - before.0, read.load(Ordering::SeqCst) - before.1)
        });
        entry.set(system, (sent + received) as f64);
        parts.push(format!("{} {sent}+{received}", system.name()));
    }
    notes.push(format!(
        "wire_bytes_small_call (request+reply bytes, framing included; HELLO and a warm-up call excluded): {}",
        parts.join(", ")
    ));
    entry
}

/// `wire_bytes_small_call_typed`: bytes on the wire, both directions, for one typed call of the
/// client generated from schemas/users.ncs (`Users.get(7)`, answered with a `User`) through the
/// payload codec of this build (postcard, or bincode with `--features bincode`), counted under the
/// client's transport after the handshake and one warm-up call. netcore only: the other systems
/// have no client generated from the schema.
fn wire_bytes_typed(notes: &mut Vec<String>) -> Entry {
    let mut entry = Entry::new("wire_bytes_small_call_typed", "bytes");
    let peers = Peers::new();
    let listener = peers.listener();
    let addr = listener.local_addr().expect("addr");
    peers.server.spawn(async move {
        let listener = TcpListener::from_std(listener).expect("listener");
        let endpoint = Endpoint::builder()
            .blueprint(users::UsersServer::blueprint(users::Accounts))
            .build()
            .expect("typed server");
        let _ = endpoint.serve_tcp(listener).await;
    });
    let (sent, received, user) = peers.run(async move {
        let counted = Counted::new(tcp(addr).await);
        let (written, read) = (counted.written.clone(), counted.read.clone());
        let conn = Endpoint::builder().build().expect("client endpoint").connect(counted, "bench typed client");
        conn.ready().await.expect("handshake");
        let client = users::UsersClient::new(conn);
        client.get(7).await.expect("warm-up call");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = (written.load(Ordering::SeqCst), read.load(Ordering::SeqCst));
        let user = client.get(7).await.expect("typed call").expect("user 7 exists");
        tokio::time::sleep(Duration::from_millis(50)).await;
        (written.load(Ordering::SeqCst) - before.0, read.load(Ordering::SeqCst) - before.1, user)
    });
    let request = netcore::codec::encode(&(7u32,)).expect("encode").len();
    let reply = netcore::codec::encode(&Some(user)).expect("encode").len();
    entry.set(System::Netcore, (sent + received) as f64);
    notes.push(format!(
        "wire_bytes_small_call_typed (Users.get(7) -> User, codec {}; request+reply bytes, framing included; \
         HELLO and a warm-up call excluded): netcore {sent}+{received} (payloads {request}+{reply})",
        netcore::codec::CODEC.name()
    ));
    entry
}

/// The service of schemas/users.ncs, for `wire_bytes_small_call_typed`.
mod users {
    pub use netcore_example_schemas::users::*;

    /// Answers `get(7)` with a small user, everything else with a default.
    pub struct Accounts;

    impl Users for Accounts {
        async fn get(&self, id: u32) -> Result<Option<User>, netcore::HandlerError> {
            Ok((id == 7).then(|| User {
                id,
                name: "Ada".into(),
                email: None,
                tags: vec!["admin".into()],
                created: Timestamp { millis: 1_700_000_000_000 },
            }))
        }
        async fn create(&self, _name: String, _email: Option<String>) -> Result<u32, netcore::HandlerError> {
            Ok(1)
        }
        async fn list(&self, _prefix: String, _limit: u32) -> Result<Vec<User>, netcore::HandlerError> {
            Ok(Vec::new())
        }
        async fn status(&self, _id: u32) -> Result<UserStatus, netcore::HandlerError> {
            Ok(UserStatus::Active)
        }
        async fn delete(&self, _id: u32) -> Result<bool, netcore::HandlerError> {
            Ok(false)
        }
        async fn changed(&self, _id: u32) -> Result<(), netcore::HandlerError> {
            Ok(())
        }
    }
}

/// `serial_hol_p99_ms`: an emulated 115 200-baud link (both directions paced to 11 520 bytes/s),
/// 16-byte commands while an upload runs. netcore and tarpc run at once, each on its own link.
fn serial(plan: &Plan, notes: &mut Vec<String>) -> Entry {
    let mut entry = Entry::new("serial_hol_p99_ms", "ms");
    let results = std::thread::scope(|scope| {
        let runs: Vec<_> = [System::Netcore, System::Tarpc]
            .into_iter()
            .filter(|system| System::chosen().contains(system))
            .map(|system| scope.spawn(move || (system, serial_one(system, plan))))
            .collect();
        runs.into_iter().map(|run| run.join().expect("serial run")).collect::<Vec<_>>()
    });
    for (system, (mut samples, upload)) in results {
        let p99 = quantile(&mut samples, 0.99);
        entry.set(system, round1(p99.as_secs_f64() * 1e3));
        let upload = match upload {
            Some(took) => format!("upload completed in {:.1} s", took.as_secs_f64()),
            None => "upload cancelled after the sampling window".to_owned(),
        };
        notes.push(format!(
            "serial_hol_p99_ms {}: {} commands issued in {:.1} s, median {:.1} ms, p99 {:.1} ms; {upload}",
            system.name(),
            samples.len(),
            plan.serial_window.as_secs_f64(),
            quantile(&mut samples, 0.5).as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
        ));
    }
    notes.push(format!(
        "serial_hol_p99_ms: {} KiB upload at low priority; commands at normal priority every 60-100 ms; \
         netcore uses Config::lossy() (COBS framing, 256-byte chunks); raw_tcp does not run it{}",
        plan.serial_upload / 1024,
        if plan.quick { "; quick mode uses 32 KiB instead of 1 MiB" } else { "" }
    ));
    entry
}

/// One system on the emulated serial link: the commands' round trips, and the upload's time if
/// it completed (netcore's is cancelled once the window has been sampled; tarpc's must finish).
fn serial_one(system: System, plan: &Plan) -> (Vec<Duration>, Option<Duration>) {
    let peers = Peers::new();
    let listener = peers.listener();
    let addr = listener.local_addr().expect("addr");
    peers.server.spawn(async move {
        let listener = TcpListener::from_std(listener).expect("listener");
        let (stream, _) = listener.accept().await.expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        let link = Paced::new(stream, SERIAL_RATE);
        match system {
            System::Netcore => {
                netcore_server(Config::lossy()).connect_with(link, "serial server", Config::lossy());
            }
            _ => rpc::serve_io(link).await,
        }
    });
    let (upload_bytes, window) = (plan.serial_upload, plan.serial_window);
    peers.run(async move {
        let link = Paced::new(tcp(addr).await, SERIAL_RATE);
        let client = match system {
            System::Netcore => {
                let conn =
                    Endpoint::builder().build().expect("client").connect_with(link, "serial client", Config::lossy());
                conn.ready().await.expect("handshake");
                Client::Netcore(conn)
            }
            _ => Client::connect(system, link, RawMode::Direct).await,
        };
        let payload = Bytes::from(vec![0x5a; COMMAND]);
        client.echo(&payload, Priority::NORMAL).await;
        let body = client.bulk_body(&pattern(upload_bytes));
        let upload = tokio::spawn({
            let client = client.clone();
            async move {
                let started = Instant::now();
                let received = client.sink(body, Priority::LOW).await;
                assert_eq!(received, upload_bytes as u64);
                started.elapsed()
            }
        });
        // Let the upload start before sampling.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let start = Instant::now();
        let mut jitter = Jitter(0x9e37_79b9_7f4a_7c15);
        let mut commands = Vec::new();
        while start.elapsed() < window && !upload.is_finished() {
            let (client, payload) = (client.clone(), payload.clone());
            commands.push(tokio::spawn(async move {
                let asked = Instant::now();
                client.echo(&payload, Priority::NORMAL).await;
                asked.elapsed()
            }));
            tokio::time::sleep(Duration::from_millis(60 + jitter.next() % 40)).await;
        }
        let mut samples = Vec::new();
        for command in commands {
            samples.push(command.await.expect("command task"));
        }
        let upload = if system == System::Netcore && !upload.is_finished() {
            upload.abort();
            None
        } else {
            Some(upload.await.expect("upload task"))
        };
        (samples, upload)
    })
}

// ---------------------------------------------------------------------------------------------
// Peers, clients and servers
// ---------------------------------------------------------------------------------------------

/// A server and a client, each on its own one-thread runtime: two devices with a core each.
struct Peers {
    server: Runtime,
    client: Runtime,
}

impl Peers {
    fn new() -> Self {
        Peers { server: runtime("server"), client: runtime("client") }
    }

    fn listener(&self) -> std::net::TcpListener {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        listener
    }

    /// Starts `system`'s server on the server runtime; its address.
    fn serve(&self, system: System) -> SocketAddr {
        let listener = self.listener();
        let addr = listener.local_addr().expect("addr");
        self.server.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            match system {
                System::RawTcp => raw::serve(listener).await,
                System::Tarpc => rpc::serve(listener).await,
                System::Netcore => {
                    let _ = netcore_server(Config::stream()).serve_tcp(listener).await;
                }
            }
        });
        addr
    }

    /// Runs `work` as a task of the client runtime (on its worker thread) and waits for it.
    fn run<F>(&self, work: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.client.block_on(self.client.spawn(work)).expect("client task")
    }
}

fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

fn netcore_server(config: Config) -> Endpoint {
    Endpoint::builder()
        .config(config)
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        // Answers with the length only: a large payload stays where the runtime stored it.
        // Reads the payload as it arrives and answers with its length, as raw_tcp's server does.
        .streaming_route("/sink", |_req, mut body| async move {
            let mut received = 0u64;
            while let Some(chunk) = body.chunk().await? {
                received += chunk.len() as u64;
            }
            Ok(Response::bytes(received.to_le_bytes().to_vec()))
        })
        // Streams DOWNLOAD back as an open-length answer, 64 KiB at a time (download_streamed_mib_s).
        .route("/download", |_req| async move {
            let data = DOWNLOAD.get().cloned().unwrap_or_default();
            let (tx, body) = netcore::OpenBody::channel(8);
            tokio::spawn(async move {
                for at in (0..data.len()).step_by(64 * 1024) {
                    if tx.send(data.slice(at..(at + 64 * 1024).min(data.len()))).await.is_err() {
                        return;
                    }
                }
            });
            Ok(Response::stream(body))
        })
        .blueprint(BenchServer::blueprint(BenchSink))
        // Answers with the length only: a large payload stays where the runtime stored it.
        .route("/store", |req| async move { Ok(Response::bytes(req.payload().len()?.to_le_bytes().to_vec())) })
        .build()
        .expect("server endpoint")
}

/// Byte streams the clients run over.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// How the raw floor calls: one call at a time on the socket (the latency floor), or through a
/// writer and a reader task so concurrent calls are pipelined (answers come back in order).
#[derive(Clone, Copy)]
enum RawMode {
    Direct,
    Pipelined,
}

/// A connected client of one system.
#[derive(Clone)]
enum Client {
    RawDirect(Arc<tokio::sync::Mutex<Box<dyn Io>>>),
    RawPipelined(mpsc::UnboundedSender<raw::Call>),
    Tarpc(rpc::BenchClient),
    Netcore(Connection),
}

/// A large payload as each system takes it.
enum BulkBody {
    Shared(Bytes),
    Owned(Vec<u8>),
}

impl Client {
    async fn connect(system: System, io: impl Io, raw: RawMode) -> Client {
        match system {
            System::RawTcp => match raw {
                RawMode::Direct => Client::RawDirect(Arc::new(tokio::sync::Mutex::new(Box::new(io)))),
                RawMode::Pipelined => Client::RawPipelined(raw::pipeline(io)),
            },
            System::Tarpc => Client::Tarpc(rpc::client(io)),
            System::Netcore => {
                let conn = Endpoint::builder().build().expect("client endpoint").connect(io, "bench client");
                conn.ready().await.expect("handshake");
                Client::Netcore(conn)
            }
        }
    }

    /// Calls the echo route; checks the reply has the request's length.
    async fn echo(&self, payload: &Bytes, priority: Priority) {
        let len = match self {
            Client::RawDirect(io) => {
                let mut io = io.lock().await;
                let mut frame = Vec::with_capacity(4 + payload.len());
                frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                frame.extend_from_slice(payload);
                io.write_all(&frame).await.expect("raw write");
                raw::read_frame(&mut *io).await.expect("raw read").len()
            }
            Client::RawPipelined(calls) => raw::call(calls, payload.clone()).await.len(),
            Client::Tarpc(client) => {
                let data = serde_bytes::ByteBuf::from(payload.to_vec());
                client.echo(rpc::context(), data).await.expect("tarpc echo").len()
            }
            Client::Netcore(conn) => {
                let opts = CallOptions::default().priority(priority);
                let reply = conn.call_with(Route::Name("/echo".into()), payload.clone(), opts).await;
                reply.expect("netcore echo").bytes().expect("reply").len()
            }
        };
        assert_eq!(len, payload.len(), "echo length");
    }

    /// The form of a large payload this client sends; build it before timing the call.
    fn bulk_body(&self, data: &Bytes) -> BulkBody {
        match self {
            Client::Tarpc(_) => BulkBody::Owned(data.to_vec()),
            _ => BulkBody::Shared(data.clone()),
        }
    }

    /// Sends a large payload; the byte count the receiver reports.
    async fn sink(&self, body: BulkBody, priority: Priority) -> u64 {
        self.sink_to("/sink", body, priority).await
    }

    /// Sends a large payload to a netcore `route` (other systems have one sink); the byte count
    /// the receiver reports.
    async fn sink_to(&self, route: &str, body: BulkBody, priority: Priority) -> u64 {
        match (self, body) {
            (Client::RawDirect(io), BulkBody::Shared(data)) => {
                let mut io = io.lock().await;
                io.write_all(&(data.len() as u32).to_le_bytes()).await.expect("raw write");
                io.write_all(&data).await.expect("raw write");
                reply_u64(&raw::read_frame(&mut *io).await.expect("raw read"))
            }
            (Client::RawPipelined(calls), BulkBody::Shared(data)) => reply_u64(&raw::call(calls, data).await),
            (Client::Tarpc(client), BulkBody::Owned(data)) => {
                client.sink(rpc::context(), serde_bytes::ByteBuf::from(data)).await.expect("tarpc sink")
            }
            (Client::Netcore(conn), BulkBody::Shared(data)) if route == TYPED_SINK => {
                let client = BenchClient::new(conn.clone()).with(CallOptions::new().priority(priority));
                client.sink(7, Body::Bytes(data)).await.expect("netcore typed sink")
            }
            (Client::Netcore(conn), BulkBody::Shared(data)) => {
                let opts = CallOptions::default().priority(priority);
                let reply = conn.call_with(Route::Name(route.into()), Body::Bytes(data), opts).await;
                reply_u64(&reply.expect("netcore sink").bytes().expect("reply"))
            }
            _ => unreachable!("bulk_body matches the client"),
        }
    }
}

fn reply_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("an 8-byte count"))
}

/// The floor: u32 little-endian length, then the payload; answers come back in request order.
mod raw {
    use super::*;

    /// A pipelined call: the frame's header and payload, and where its answer goes.
    pub struct Call {
        header: [u8; 4],
        body: Bytes,
        reply: oneshot::Sender<Bytes>,
    }

    pub async fn call(calls: &mpsc::UnboundedSender<Call>, body: Bytes) -> Bytes {
        let (reply, answer) = oneshot::channel();
        let header = (body.len() as u32).to_le_bytes();
        calls.send(Call { header, body, reply }).expect("raw writer alive");
        answer.await.expect("raw answer")
    }

    /// Starts a writer and a reader task over `io`; calls are written in order, answers matched
    /// in order.
    pub fn pipeline(io: impl Io) -> mpsc::UnboundedSender<Call> {
        let (reader, writer) = tokio::io::split(io);
        let (calls, mut queue) = mpsc::unbounded_channel::<Call>();
        let waiting = Arc::new(Mutex::new(VecDeque::<oneshot::Sender<Bytes>>::new()));
        tokio::spawn({
            let waiting = waiting.clone();
            async move {
                let mut writer = BufWriter::with_capacity(RAW_BUFFER, writer);
                while let Some(first) = queue.recv().await {
                    let mut next = Some(first);
                    while let Some(call) = next {
                        waiting.lock().expect("not poisoned").push_back(call.reply);
                        writer.write_all(&call.header).await?;
                        writer.write_all(&call.body).await?;
                        next = queue.try_recv().ok();
                    }
                    writer.flush().await?;
                }
                io::Result::Ok(())
            }
        });
        tokio::spawn(async move {
            let mut reader = BufReader::with_capacity(RAW_BUFFER, reader);
            while let Ok(answer) = read_frame(&mut reader).await {
                let Some(reply) = waiting.lock().expect("not poisoned").pop_front() else { break };
                let _ = reply.send(answer);
            }
        });
        calls
    }

    pub async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> io::Result<Bytes> {
        let mut header = [0u8; 4];
        io.read_exact(&mut header).await?;
        let mut body = vec![0u8; u32::from_le_bytes(header) as usize];
        io.read_exact(&mut body).await?;
        Ok(body.into())
    }

    pub async fn serve(listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).expect("nodelay");
            tokio::spawn(serve_one(stream));
        }
    }

    /// Echoes small requests, counts large ones; answers are flushed when no request is buffered.
    async fn serve_one(stream: TcpStream) -> io::Result<()> {
        let (reader, writer) = stream.into_split();
        let mut reader = BufReader::with_capacity(RAW_BUFFER, reader);
        let mut writer = BufWriter::with_capacity(RAW_BUFFER, writer);
        let mut buf = vec![0u8; RAW_BUFFER];
        loop {
            let mut header = [0u8; 4];
            if reader.read_exact(&mut header).await.is_err() {
                return Ok(());
            }
            let len = u32::from_le_bytes(header) as usize;
            if len <= RAW_ECHO_MAX {
                reader.read_exact(&mut buf[..len]).await?;
                writer.write_all(&header).await?;
                writer.write_all(&buf[..len]).await?;
            } else {
                let mut left = len;
                while left > 0 {
                    let n = reader.read(&mut buf[..left.min(RAW_BUFFER)]).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    left -= n;
                }
                writer.write_all(&8u32.to_le_bytes()).await?;
                writer.write_all(&(len as u64).to_le_bytes()).await?;
            }
            if reader.buffer().is_empty() {
                writer.flush().await?;
            }
        }
    }
}

/// tarpc with its serde transport: bincode over length-delimited frames.
mod rpc {
    use serde_bytes::ByteBuf;
    use tarpc::server::{BaseChannel, Channel};
    use tarpc::tokio_serde::formats::Bincode;
    use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};

    use super::*;

    #[tarpc::service]
    pub trait Bench {
        /// Answers with the request.
        async fn echo(data: ByteBuf) -> ByteBuf;
        /// Answers with the request's length.
        async fn sink(data: ByteBuf) -> u64;
    }

    #[derive(Clone)]
    struct Server;

    impl Bench for Server {
        async fn echo(self, _: tarpc::context::Context, data: ByteBuf) -> ByteBuf {
            data
        }

        async fn sink(self, _: tarpc::context::Context, data: ByteBuf) -> u64 {
            data.len() as u64
        }
    }

    fn framed<IO: Io>(io: IO) -> Framed<IO, LengthDelimitedCodec> {
        LengthDelimitedCodec::builder().max_frame_length(TARPC_MAX_FRAME).new_framed(io)
    }

    /// A context whose deadline outlives the slowest workload (the serial upload).
    pub fn context() -> tarpc::context::Context {
        let mut context = tarpc::context::current();
        context.deadline = Instant::now() + Duration::from_secs(600);
        context
    }

    pub fn client(io: impl Io) -> BenchClient {
        let transport = tarpc::serde_transport::new(framed(io), Bincode::default());
        BenchClient::new(tarpc::client::Config::default(), transport).spawn()
    }

    /// Serves one connection, each request on its own task (as tarpc's README does).
    pub async fn serve_io(io: impl Io) {
        let transport = tarpc::serde_transport::new(framed(io), Bincode::default());
        BaseChannel::with_defaults(transport)
            .execute(Server.serve())
            .for_each(|response| async move {
                tokio::spawn(response);
            })
            .await;
    }

    pub async fn serve(listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).expect("nodelay");
            tokio::spawn(serve_io(stream));
        }
    }
}

/// Counts the bytes read and written through a stream.
struct Counted<IO> {
    io: IO,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl<IO> Counted<IO> {
    fn new(io: IO) -> Self {
        Counted { io, read: Default::default(), written: Default::default() }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            self.read.fetch_add((buf.filled().len() - before) as u64, Ordering::SeqCst);
        }
        poll
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.written.fetch_add(n as u64, Ordering::SeqCst);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Yields `len` bytes of a repeating pattern, so a large body never exists in memory.
struct PatternReader {
    left: u64,
    offset: usize,
    block: Bytes,
}

impl PatternReader {
    fn new(len: u64) -> Self {
        PatternReader { left: len, offset: 0, block: pattern(64 * 1024) }
    }
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        let mut done = 0;
        while done < n {
            let take = (n - done).min(self.block.len() - self.offset);
            buf[done..done + take].copy_from_slice(&self.block[self.offset..self.offset + take]);
            self.offset = (self.offset + take) % self.block.len();
            done += take;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// `len` bytes that are not all alike (and are really in memory, unlike zeroed pages).
fn pattern(len: usize) -> Bytes {
    (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8).collect::<Vec<u8>>().into()
}

/// A small xorshift for the spacing of serial commands.
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Figures, targets and output
// ---------------------------------------------------------------------------------------------

/// The `q` quantile (nearest rank) of `samples`, which it sorts.
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_unstable();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

fn micros(d: Duration) -> f64 {
    round1(d.as_secs_f64() * 1e6)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Peak resident set of this process, from /proc/self/status.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// One target of the issue, checked on this run's figures.
struct Target {
    workload: &'static str,
    rule: &'static str,
    met: Option<bool>,
    detail: String,
}

fn judge(entries: &[Entry], hol_behind_share: &BTreeMap<&'static str, f64>) -> Vec<Target> {
    let values = |name: &str| match entries.iter().find(|e| e.name == name) {
        Some(e) => (e.get(System::RawTcp), e.get(System::Tarpc), e.get(System::Netcore)),
        None => (None, None, None),
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_owned(),
    };
    let mut targets = Vec::new();

    let (raw, tarpc, nc) = values("rtt_p50_us");
    targets.push(Target {
        workload: "rtt_p50_us",
        rule: "netcore <= tarpc and <= 1.5 x raw_tcp",
        met: nc.zip(tarpc).zip(raw).map(|((n, t), r)| n <= t && n <= 1.5 * r),
        detail: format!("netcore/tarpc {}, netcore/raw_tcp {}", ratio(nc, tarpc), ratio(nc, raw)),
    });
    let (_, tarpc, nc) = values("calls_per_s_64");
    targets.push(Target {
        workload: "calls_per_s_64",
        rule: "netcore >= 1.5 x tarpc",
        met: nc.zip(tarpc).map(|(n, t)| n >= 1.5 * t),
        detail: format!("netcore/tarpc {}", ratio(nc, tarpc)),
    });
    let (raw, _, nc) = values("bulk_mib_s");
    targets.push(Target {
        workload: "bulk_mib_s",
        rule: "netcore >= 0.8 x raw_tcp",
        met: nc.zip(raw).map(|(n, r)| n >= 0.8 * r),
        detail: format!("netcore/raw_tcp {}", ratio(nc, raw)),
    });
    let (_, _, nc) = values("hol_p99_us");
    let behind = |system: System| {
        hol_behind_share.get(system.name()).map_or("-".to_owned(), |share| format!("{:.0}%", share * 100.0))
    };
    targets.push(Target {
        workload: "hol_p99_us",
        rule: "netcore <= 2000 us; tarpc's bounded below by the large transfer",
        met: nc.map(|n| n <= 2_000.0),
        detail: format!(
            "small calls that finished only after the large call: tarpc {}, raw_tcp {}, netcore {}",
            behind(System::Tarpc),
            behind(System::RawTcp),
            behind(System::Netcore)
        ),
    });
    let (_, _, nc) = values("recv_file_peak_rss_mib");
    targets.push(Target {
        workload: "recv_file_peak_rss_mib",
        rule: "<= 64 MiB for a 1 GiB message",
        met: nc.map(|n| n <= 64.0),
        detail: String::new(),
    });
    let (_, tarpc, nc) = values("wire_bytes_small_call");
    targets.push(Target {
        workload: "wire_bytes_small_call",
        rule: "netcore <= tarpc",
        met: nc.zip(tarpc).map(|(n, t)| n <= t),
        detail: format!("netcore/tarpc {}", ratio(nc, tarpc)),
    });
    let (_, _, nc) = values("serial_hol_p99_ms");
    targets.push(Target {
        workload: "serial_hol_p99_ms",
        rule: "netcore <= 60 ms",
        met: nc.map(|n| n <= 60.0),
        detail: String::new(),
    });
    targets
}

fn format_value(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(v) if v.fract() == 0.0 || v.abs() >= 10_000.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn print_table(entries: &[Entry], targets: &[Target], quick: bool) {
    println!();
    println!(
        "{:<28} {:>12} {:>12} {:>12}  {:<8} {:<8} target",
        "workload", "raw_tcp", "tarpc", "netcore", "unit", "verdict"
    );
    for entry in entries {
        let target = targets.iter().find(|t| t.workload == entry.name);
        let verdict = match target.and_then(|t| t.met) {
            _ if quick => "n/a",
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "-",
        };
        println!(
            "{:<28} {:>12} {:>12} {:>12}  {:<8} {:<8} {}",
            entry.name,
            format_value(entry.get(System::RawTcp)),
            format_value(entry.get(System::Tarpc)),
            format_value(entry.get(System::Netcore)),
            entry.unit,
            verdict,
            target.map_or(String::new(), |t| if t.detail.is_empty() {
                t.rule.to_owned()
            } else {
                format!("{} ({})", t.rule, t.detail)
            }),
        );
    }
    if quick {
        println!("  (quick mode: short runs that check the harness works; figures are not judged)");
    }
}

/// Where the JSON goes: `<target dir>/netcore-bench/compare.json`, the target dir being the one
/// this binary was built in (`<target>/<profile>/deps/compare-*`).
fn json_path() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let target = exe.as_deref().and_then(|p| p.ancestors().nth(3)).map(PathBuf::from);
    target.unwrap_or_else(|| PathBuf::from("target")).join("netcore-bench").join("compare.json")
}

fn write_json(
    plan: &Plan,
    entries: &[Entry],
    targets: &[Target],
    notes: &[String],
    machine: Value,
    total: Duration,
) -> PathBuf {
    let workloads: serde_json::Map<String, Value> = entries
        .iter()
        .map(|entry| {
            let mut fields: serde_json::Map<String, Value> =
                entry.values.iter().map(|(system, value)| (system.to_string(), json!(value))).collect();
            fields.insert("unit".into(), json!(entry.unit));
            (entry.name.to_string(), Value::Object(fields))
        })
        .collect();
    let targets: Vec<Value> = targets
        .iter()
        .map(|t| json!({"workload": t.workload, "rule": t.rule, "met": t.met, "detail": t.detail}))
        .collect();
    let report = json!({
        "workloads": workloads,
        "mode": if plan.quick { "quick" } else { "full" },
        "targets_judged": !plan.quick,
        "targets": targets,
        "notes": notes,
        "machine": machine,
        "total_seconds": round1(total.as_secs_f64()),
        "command": if plan.quick {
            "cargo bench --bench compare -- --quick"
        } else {
            "cargo bench --bench compare"
        },
    });
    let path = json_path();
    std::fs::create_dir_all(path.parent().expect("a directory")).expect("create the output directory");
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json") + "\n").expect("write the JSON");
    path
}

/// What the run ran on.
fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown cpu".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next().and_then(|k| k.parse::<u64>().ok()))
        .map_or(0.0, |kib| round1(kib as f64 / 1024.0 / 1024.0));
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    json!({
        "cpu": cpu,
        "cores": cores,
        "memory_gib": mem_gib,
        "kernel": kernel,
        "summary": format!("{cpu}, {cores} cores, {mem_gib} GiB, Linux {kernel}"),
    })
}

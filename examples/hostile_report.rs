//! Every attack of issue 11 ("No peer can exhaust an endpoint") against a fresh server with
//! default settings, each for a few seconds, and one table of what it cost the server.
//!
//! ```text
//! cargo run --release --example hostile_report            # 3 s per attack
//! HOSTILE_SECS=10 cargo run --release --example hostile_report
//! ```
//!
//! The server is this program run as a child (`--server`), so its memory, CPU time and
//! descriptors are read from `/proc/<pid>/{status,stat,fd}` and its spill files from a private
//! temporary directory. While each attack runs, a legitimate client calls `/echo` every 10 ms;
//! its success rate and latencies are in the table. Linux only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use netcore::endpoint::Response;
use netcore::frame::{CancelReason, Data, Frame, FrameType, Head, Hello, Kind, Limits, Priority, Route, Xid};
use netcore::{Body, Endpoint};

const PORT_MARK: &str = "hostile-report-port=";

fn main() {
    if std::env::args().any(|a| a == "--server") {
        return server();
    }
    let secs: u64 = std::env::var("HOSTILE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let attacks: &[(&str, Attack)] = &[
        ("idle connections (300, half without HELLO)", idle_flood),
        ("16 conns x 64 HEADs claiming 1 GiB", spill_claims),
        ("never-reading peer, 64 x 1 MiB replies", never_reading),
        ("HELLO window 1, inline 0", tiny_window),
        ("HEAD+CANCEL rapid reset", rapid_reset),
        ("1 GiB to a typed and a JSON route", huge_to_decoding_routes),
        ("dribbled frame (16 conns, 1 B / 50 ms)", dribble),
        ("unfinished large messages (16 x 64)", unfinished),
        ("CREDIT / unknown DATA / extension floods", floods),
        ("connect/close churn", churn),
    ];
    println!("{} s per attack; server: default Config and EndpointBuilder settings\n", secs);
    println!(
        "{:<44} {:>9} {:>9} {:>7} {:>10} {:>11} {:>8} {:>8} {:>8}  attacker disconnected",
        "attack", "peak RSS", "RSS after", "CPU s", "spill peak", "fds pk/aft", "legit ok", "p50", "p99"
    );
    for (name, attack) in attacks {
        let row = run(attack, Duration::from_secs(secs));
        println!(
            "{:<44} {:>6} MiB {:>6} MiB {:>7.2} {:>6} MiB {:>5}/{:<5} {:>7.2}% {:>5.1} ms {:>5.1} ms  {}",
            name,
            row.peak_rss >> 20,
            row.rss_after >> 20,
            row.cpu,
            row.spill_peak >> 20,
            row.fds_peak,
            row.fds_after,
            row.ok_rate * 100.0,
            row.p50.as_secs_f64() * 1e3,
            row.p99.as_secs_f64() * 1e3,
            row.disconnected
        );
    }
}

// ---- The server ----

fn server() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let typed = netcore::typed::route(Arc::new(()), 0, |_, (n,): (u32,)| async move { Ok(n + 1) });
        let endpoint = Endpoint::builder()
            .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
            .route("/big", |req| async move { Ok(Response::bytes(vec![7u8; req.text()?.parse().unwrap_or(0)])) })
            .route("/json", |req| async move { Response::json(&req.json::<Vec<u32>>()?.len()) })
            .decode_limit("/json", 16 << 20)
            .route_service("/typed", typed)
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{PORT_MARK}{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { endpoint.serve_tcp(listener).await });
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await.unwrap().unwrap();
    });
}

struct Server {
    child: Child,
    addr: SocketAddr,
    spill: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let spill = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("--server")
            .env("TMPDIR", spill.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port: u16 = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix(PORT_MARK).map(|p| p.trim().parse().unwrap()))
            .expect("the server prints its port");
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, addr: ([127, 0, 0, 1], port).into(), spill }
    }

    fn proc(&self, file: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.child.id())).unwrap_or_default()
    }

    fn rss(&self) -> u64 {
        let status = self.proc("status");
        let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
        kb.and_then(|kb| kb.parse::<u64>().ok()).unwrap_or(0) << 10
    }

    /// User plus system CPU seconds (clock ticks of 1/100 s).
    fn cpu(&self) -> f64 {
        let stat = self.proc("stat");
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<u64> = after_name.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        // After the name: state (not a number, skipped), then ppid… utime is field 14 overall.
        fields.get(10..12).map_or(0.0, |t| (t[0] + t[1]) as f64 / 100.0)
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map(|d| d.count()).unwrap_or(0)
    }

    fn spill_bytes(&self) -> u64 {
        let entries = std::fs::read_dir(self.spill.path()).into_iter().flatten().flatten();
        entries.filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- One run ----

struct Row {
    peak_rss: u64,
    rss_after: u64,
    cpu: f64,
    spill_peak: u64,
    fds_peak: usize,
    fds_after: usize,
    ok_rate: f64,
    p50: Duration,
    p99: Duration,
    disconnected: String,
}

/// What an attack leaves behind when its time is up: the connections to watch for a close.
type Attack = fn(SocketAddr, Instant, &AtomicBool) -> Vec<TcpStream>;

fn run(attack: &Attack, duration: Duration) -> Row {
    let server = Arc::new(Server::start());
    let stop = Arc::new(AtomicBool::new(false));
    let (peak_rss, spill_peak, fds_peak) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sampler = {
        let (server, stop, peak_rss, spill_peak, fds_peak) =
            (server.clone(), stop.clone(), peak_rss.clone(), spill_peak.clone(), fds_peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak_rss.fetch_max(server.rss(), Ordering::Relaxed);
                spill_peak.fetch_max(server.spill_bytes(), Ordering::Relaxed);
                fds_peak.fetch_max(server.fds() as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let latencies = Arc::new(Mutex::new((0usize, Vec::new())));
    let legit = {
        let (addr, stop, latencies) = (server.addr, stop.clone(), latencies.clone());
        std::thread::spawn(move || legit_client(addr, &stop, &latencies))
    };
    let started = Instant::now();
    let attack_stop = AtomicBool::new(false);
    let watched = std::thread::scope(|scope| {
        let attacking = scope.spawn(|| attack(server.addr, started + duration, &attack_stop));
        std::thread::sleep(duration.saturating_sub(started.elapsed()));
        attack_stop.store(true, Ordering::Relaxed);
        attacking.join().unwrap()
    });
    let disconnected = closed_by_server(&watched, started);
    stop.store(true, Ordering::Relaxed);
    legit.join().unwrap();
    sampler.join().unwrap();
    drop(watched);
    std::thread::sleep(Duration::from_millis(1000));
    let (attempts, mut times) = std::mem::take(&mut *latencies.lock().unwrap());
    times.sort();
    let pct = |p: f64| times.get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1))).copied();
    Row {
        peak_rss: peak_rss.load(Ordering::Relaxed),
        rss_after: server.rss(),
        cpu: server.cpu(),
        spill_peak: spill_peak.load(Ordering::Relaxed),
        fds_peak: fds_peak.load(Ordering::Relaxed) as usize,
        fds_after: server.fds(),
        ok_rate: if attempts == 0 { 0.0 } else { times.len() as f64 / attempts as f64 },
        p50: pct(0.5).unwrap_or_default(),
        p99: pct(0.99).unwrap_or_default(),
        disconnected,
    }
}

/// A netcore client calling `/echo` every 10 ms: (attempts, latencies of correct answers).
fn legit_client(addr: SocketAddr, stop: &AtomicBool, out: &Mutex<(usize, Vec<Duration>)>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = Endpoint::builder().build().unwrap();
        let Ok(conn) = client.connect_tcp(addr).await else { return };
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let payload = n.to_le_bytes().repeat(8);
            let started = Instant::now();
            let reply = tokio::time::timeout(Duration::from_secs(2), conn.call("/echo", payload.clone())).await;
            let correct = matches!(&reply, Ok(Ok(r)) if r.bytes().map(|b| b[..] == payload[..]).unwrap_or(false));
            {
                let mut out = out.lock().unwrap();
                out.0 += 1;
                if correct {
                    out.1.push(started.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// How many of the attacker's connections the server closed, and when the first one was.
fn closed_by_server(streams: &[TcpStream], started: Instant) -> String {
    if streams.is_empty() {
        return "n/a".into();
    }
    let mut closed = 0;
    for mut stream in streams {
        stream.set_nonblocking(true).unwrap();
        // Read what the server sent (its HELLO, a GOAWAY): closed if the end of the stream
        // follows, open if the read would block.
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break closed += 1,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break closed += 1,
            }
        }
    }
    match closed {
        0 => format!("no (0/{} within {:.0} s)", streams.len(), started.elapsed().as_secs_f64()),
        n => format!("{n}/{} closed within {:.1} s", streams.len(), started.elapsed().as_secs_f64()),
    }
}

// ---- Raw frames ----

fn wire(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    netcore::frame::stream::encode(frame, &mut out).expect("the report builds well-formed frames");
    out
}

fn hello(limits: Limits) -> BytesMut {
    wire(&Frame::Hello(Hello::new(1, 1, 0, limits)))
}

fn connect(addr: SocketAddr, limits: Option<Limits>) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).ok()?;
    if let Some(limits) = limits {
        stream.write_all(&hello(limits)).ok()?;
    }
    Some(stream)
}

fn request(id: u32, route: &str, total: u64, payload: Bytes) -> Frame {
    Frame::Head(Head {
        xid: Xid::sender(id),
        kind: Kind::Request,
        priority: Priority::NORMAL,
        route: Some(Route::Name(route.into())),
        meta: None,
        total,
        payload,
    })
}

/// Reads and drops whatever arrives, so the server is never blocked on us (for floods).
fn drain(stream: &TcpStream) {
    let mut reader = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    });
}

// ---- The attacks ----

fn idle_flood(addr: SocketAddr, _until: Instant, _stop: &AtomicBool) -> Vec<TcpStream> {
    (0..300).filter_map(|i| connect(addr, (i % 2 == 0).then(Limits::default))).collect()
}

fn spill_claims(addr: SocketAddr, _until: Instant, _stop: &AtomicBool) -> Vec<TcpStream> {
    let mut streams: Vec<TcpStream> = (0..16).filter_map(|_| connect(addr, Some(Limits::default()))).collect();
    for stream in &mut streams {
        drain(stream);
        for id in 0..64 {
            let _ = stream.write_all(&wire(&request(id, "/echo", 1 << 30, Bytes::from_static(&[0; 16]))));
        }
    }
    streams
}

fn never_reading(addr: SocketAddr, _until: Instant, _stop: &AtomicBool) -> Vec<TcpStream> {
    let Some(mut stream) = connect(addr, Some(Limits { window: 0, ..Limits::default() })) else { return vec![] };
    for id in 0..64 {
        let _ = stream.write_all(&wire(&request(id, "/big", 7, Bytes::from_static(b"1048576"))));
    }
    vec![stream]
}

fn tiny_window(addr: SocketAddr, until: Instant, stop: &AtomicBool) -> Vec<TcpStream> {
    // At most 4096 answers of 64 KiB (256 MiB) are asked for: until the session bounds what it
    // queues for a peer that grants no credit, more would only measure this machine's swap.
    let limits = Limits { window: 1, inline_limit: 0, ..Limits::default() };
    let Some(mut stream) = connect(addr, Some(limits)) else { return vec![] };
    drain(&stream);
    let mut id = 0;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) && id < 4096 {
        if stream.write_all(&wire(&request(id, "/big", 5, Bytes::from_static(b"65536")))).is_err() {
            break;
        }
        id += 1;
        if id % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    vec![stream]
}

fn rapid_reset(addr: SocketAddr, until: Instant, stop: &AtomicBool) -> Vec<TcpStream> {
    let Some(mut stream) = connect(addr, Some(Limits::default())) else { return vec![] };
    drain(&stream);
    let mut id = 0;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let mut batch = BytesMut::new();
        for _ in 0..64 {
            batch.extend_from_slice(&wire(&request(id, "/echo", 2, Bytes::from_static(b"hi"))));
            batch.extend_from_slice(&wire(&Frame::Cancel { xid: Xid::sender(id), reason: CancelReason::CANCELLED }));
            id += 1;
        }
        if stream.write_all(&batch).is_err() {
            break;
        }
    }
    vec![stream]
}

fn huge_to_decoding_routes(addr: SocketAddr, until: Instant, stop: &AtomicBool) -> Vec<TcpStream> {
    // Real clients, as a user would send it: a 1 GiB body read lazily from a reader of zeros.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = Endpoint::builder().build().unwrap();
        let Ok(conn) = client.connect_tcp(addr).await else { return };
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            for route in ["/typed", "/json"] {
                let body = Body::reader(std::io::repeat(0), 1 << 30);
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.call(route, body)).await;
            }
        }
    });
    vec![]
}

fn dribble(addr: SocketAddr, until: Instant, stop: &AtomicBool) -> Vec<TcpStream> {
    let mut streams: Vec<TcpStream> = (0..16).filter_map(|_| connect(addr, Some(Limits::default()))).collect();
    for stream in &mut streams {
        drain(stream);
        let _ = stream.write_all(&[0xe0, 0xd4, 0x03]); // a frame of 60 000 bytes follows…
    }
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        for stream in &mut streams {
            let _ = stream.write_all(&[0]); // …one byte at a time
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    streams
}

fn unfinished(addr: SocketAddr, _until: Instant, _stop: &AtomicBool) -> Vec<TcpStream> {
    let mut streams: Vec<TcpStream> = (0..16).filter_map(|_| connect(addr, Some(Limits::default()))).collect();
    let chunk = Bytes::from(vec![0u8; 8 << 10]);
    for stream in &mut streams {
        drain(stream);
        for id in 0..64 {
            let _ = stream.write_all(&wire(&request(id, "/echo", 1 << 30, chunk.clone())));
        }
    }
    streams
}

fn floods(addr: SocketAddr, until: Instant, stop: &AtomicBool) -> Vec<TcpStream> {
    let frames = [
        wire(&Frame::Credit { limit: 1 << 40 }),
        wire(&Frame::Data(Data {
            xid: Xid::sender(999),
            offset: 0,
            end: false,
            payload: Bytes::from_static(&[0; 32]),
        })),
        wire(&Frame::Extension { ty: FrameType(0x80), body: Bytes::from_static(&[0; 32]) }),
    ];
    let mut streams: Vec<TcpStream> = (0..3).filter_map(|_| connect(addr, Some(Limits::default()))).collect();
    streams.iter().for_each(drain);
    let batches: Vec<BytesMut> = frames.iter().map(|f| f.repeat(256).as_slice().into()).collect();
    let mut alive = [true; 3];
    while Instant::now() < until && !stop.load(Ordering::Relaxed) && alive.iter().any(|a| *a) {
        for (i, stream) in streams.iter_mut().enumerate() {
            alive[i] = alive[i] && stream.write_all(&batches[i]).is_ok();
        }
    }
    streams
}

fn churn(addr: SocketAddr, until: Instant, stop: &AtomicBool) -> Vec<TcpStream> {
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        if let Some(stream) = connect(addr, Some(Limits::default())) {
            drop(stream);
        }
    }
    vec![]
}

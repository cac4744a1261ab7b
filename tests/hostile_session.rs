//! What a hostile peer can make one connection of an endpoint hold or do (issue 11.2, 11.3, 11.7;
//! docs/PROTOCOL.md §8.5), over real loopback TCP. The server runs in a child process so that its
//! memory (`VmRSS`) and CPU time are measured, not assumed; the attacker speaks raw frames built
//! with the public encoder; a legitimate client on another connection keeps calling throughout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use netcore::endpoint::Response;
use netcore::frame::stream::StreamDecoder;
use netcore::frame::{self, CancelReason, Data, Frame, FrameType, Framing, GoAwayCode, Head, Hello, Kind, Limits};
use netcore::frame::{Priority, Route, Xid};
use netcore::session::Config;
use netcore::Endpoint;

const CHILD_ENV: &str = "NETCORE_HOSTILE_SESSION_CHILD";
const PORT_MARK: &str = "netcore-child-port=";
const BIG: usize = 1 << 20;

/// Not a test of its own: the server the tests below run in a child process.
#[test]
#[ignore = "child process of the tests in this file"]
fn child_server() {
    assert_eq!(std::env::var(CHILD_ENV).as_deref(), Ok("1"), "run by its parent test only");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let server = Endpoint::builder()
            .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
            .route("/big", |_req| async move { Ok(Response::bytes(vec![0x42; BIG])) })
            .route("/slow", |_req| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Response::bytes(b"slow".to_vec()))
            })
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{PORT_MARK}{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { server.serve_tcp(listener).await });
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await.unwrap().unwrap();
    });
}

struct ChildServer {
    child: Child,
    addr: SocketAddr,
}

impl ChildServer {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "child_server", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port: u16 = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.split_once(PORT_MARK).map(|(_, port)| port.trim().parse().unwrap()))
            .expect("the child server prints its port");
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, addr: ([127, 0, 0, 1], port).into() }
    }

    /// The child's resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Runs `attack` on a blocking thread and samples the child's memory meanwhile: what the
    /// attack returned and the peak growth of `VmRSS` in KiB.
    async fn peak_growth<T: Send + 'static>(&self, attack: impl FnOnce() -> T + Send + 'static) -> (T, u64) {
        let before = self.rss_kib();
        let attack = tokio::task::spawn_blocking(attack);
        let mut peak = before;
        while !attack.is_finished() {
            peak = peak.max(self.rss_kib());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let result = attack.await.unwrap();
        (result, peak.max(self.rss_kib()) - before)
    }

    /// The child's CPU time so far (user + system).
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // The fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A legitimate client calling `/echo` on its own connection until told to stop: the number of
/// correct answers and the slowest call.
struct Witness {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u32, Duration)>,
}

impl Witness {
    async fn start(addr: SocketAddr) -> Self {
        let client = Endpoint::builder().build().unwrap();
        let conn = client.connect_tcp(addr).await.unwrap();
        conn.ready().await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            let (mut ok, mut worst) = (0, Duration::ZERO);
            for n in 0u32.. {
                if flag.load(Ordering::Relaxed) && n > 0 {
                    break;
                }
                let started = Instant::now();
                let body = n.to_le_bytes().to_vec();
                let reply = tokio::time::timeout(Duration::from_secs(10), conn.call("/echo", body.clone())).await;
                let reply = reply.expect("the legitimate call is answered within 10 s").expect("the call succeeds");
                assert_eq!(reply.bytes().unwrap(), body, "a correct answer");
                worst = worst.max(started.elapsed());
                ok += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, worst)
        });
        Self { stop, task }
    }

    async fn finish(self) -> (u32, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// A raw attacker: a socket it writes frames to, and a thread reading what the server sends.
struct Attacker {
    stream: TcpStream,
    received: Arc<Mutex<Vec<Frame>>>,
    closed: Arc<AtomicBool>,
}

impl Attacker {
    /// Connects and sends a HELLO announcing `limits`; reads everything the server sends if
    /// `read` (else never reads a byte).
    fn connect(addr: SocketAddr, limits: Limits, read: bool) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        if read {
            let (mut reader, received, closed) = (stream.try_clone().unwrap(), received.clone(), closed.clone());
            std::thread::spawn(move || {
                let mut decoder = StreamDecoder::new(1 << 24);
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = reader.read(&mut buf) {
                    decoder.extend(&buf[..n]);
                    let mut got = received.lock().unwrap();
                    while let Ok(Some(frame)) = decoder.decode() {
                        // Keep what tells the story; payload-carrying frames are only counted.
                        got.push(match frame {
                            Frame::Head(head) => Frame::Head(Head { payload: Bytes::new(), ..head }),
                            Frame::Data(data) => Frame::Data(Data { payload: Bytes::new(), ..data }),
                            other => other,
                        });
                    }
                }
                closed.store(true, Ordering::Relaxed);
            });
        }
        let mut attacker = Self { stream, received, closed };
        attacker.send(&[Frame::Hello(Hello::new(1, 1, 0, limits))]);
        attacker
    }

    /// Writes frames; `false` once the server closed the connection.
    fn send(&mut self, frames: &[Frame]) -> bool {
        let mut wire = BytesMut::new();
        for frame in frames {
            frame::encode(Framing::Stream, frame, &mut wire).unwrap();
        }
        self.stream.write_all(&wire).is_ok()
    }

    fn goaway(&self) -> Option<(GoAwayCode, String)> {
        self.received.lock().unwrap().iter().find_map(|f| match f {
            Frame::GoAway { code, message } => Some((*code, message.clone())),
            _ => None,
        })
    }

    fn count(&self, pred: impl Fn(&Frame) -> bool) -> usize {
        self.received.lock().unwrap().iter().filter(|f| pred(f)).count()
    }

    /// Sends `batch` from `make` over and over until the server closes (or `limit` passes);
    /// returns the frames sent.
    fn flood(&mut self, limit: Duration, mut make: impl FnMut(u64) -> Frame) -> u64 {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < limit && !self.closed.load(Ordering::Relaxed) && self.goaway().is_none() {
            let frames: Vec<Frame> = (0..4096).map(|i| make(n + i)).collect();
            n += 4096;
            if !self.send(&frames) {
                break;
            }
        }
        n
    }
}

fn request(id: u32, route: &str) -> Frame {
    Frame::Head(Head {
        xid: Xid { id, opened_by_receiver: false },
        kind: Kind::Request,
        priority: Priority::default(),
        route: Some(Route::Name(route.into())),
        meta: None,
        total: 0,
        payload: Bytes::new(),
    })
}

/// Waits (bounded) until `done` holds.
async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while !done() && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Asks for 1 MiB answers at `rate` per second for `duration`, from a peer that `limits`
/// describe and that reads its socket if `read`: the server's memory growth in KiB and CPU time.
async fn ask_for_big_answers(
    server: &ChildServer,
    limits: Limits,
    read: bool,
    rate: u32,
    duration: Duration,
) -> (Attacker, u64, Duration) {
    let cpu_before = server.cpu();
    let addr = server.addr;
    let (attacker, grown) = server
        .peak_growth(move || {
            let mut attacker = Attacker::connect(addr, limits, read);
            let started = Instant::now();
            let mut id = 0;
            while started.elapsed() < duration {
                if !attacker.send(&[request(id, "/big")]) {
                    break;
                }
                id += 1;
                std::thread::sleep(Duration::from_secs(1) / rate);
            }
            attacker
        })
        .await;
    (attacker, grown, server.cpu() - cpu_before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_costs_at_most_the_send_budget() {
    let server = ChildServer::start();
    let witness = Witness::start(server.addr).await;
    // 200 requests a second for 1 MiB answers, 4 s, never reading a byte: 800 MiB asked for.
    let (attacker, grown, cpu) =
        ask_for_big_answers(&server, Limits::default(), false, 200, Duration::from_secs(4)).await;
    let (ok, worst) = witness.finish().await;
    eprintln!(
        "never reads: server RSS grew {} MiB, CPU {cpu:?}; witness {ok} correct answers, worst {worst:?}",
        grown >> 10
    );
    // The send budget (4 MiB, up to twice that) and the kernel's socket buffers; before the
    // bound this grew by about 100 MiB a second.
    assert!(grown < 48 << 10, "the server grew by {} MiB", grown >> 10);
    assert!(ok > 10, "the legitimate client was served");
    drop(attacker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_one_byte_costs_at_most_the_send_budget_and_no_cpu() {
    let server = ChildServer::start();
    let witness = Witness::start(server.addr).await;
    let stingy = Limits { window: 1, inline_limit: 0, ..Limits::default() };
    let (attacker, grown, cpu) = ask_for_big_answers(&server, stingy, true, 200, Duration::from_secs(4)).await;
    let (ok, worst) = witness.finish().await;
    let refused = attacker.count(|f| matches!(f, Frame::Cancel { reason: CancelReason::REFUSED, .. }));
    let chunks = attacker.count(|f| matches!(f, Frame::Head(_) | Frame::Data(_)));
    eprintln!(
        "window of 1 byte: server RSS grew {} MiB, CPU {cpu:?}; {chunks} chunks, {refused} requests refused; \
         witness {ok} correct answers, worst {worst:?}",
        grown >> 10
    );
    assert!(grown < 48 << 10, "the server grew by {} MiB", grown >> 10);
    // Before the fix the scheduler rescanned every blocked answer on every send: 12 s of CPU in 12 s.
    assert!(cpu < Duration::from_secs(2), "the server spent {cpu:?} of CPU");
    assert!(refused > 0, "requests beyond max_in_flight are refused (§8.1)");
    assert!(ok > 10, "the legitimate client was served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_closed_with_goaway_abuse() {
    let server = ChildServer::start();
    let witness = Witness::start(server.addr).await;
    let rss_before = server.rss_kib();
    let addr = server.addr;
    let attacker = tokio::task::spawn_blocking(move || {
        let mut attacker = Attacker::connect(addr, Limits::default(), true);
        let started = Instant::now();
        let mut id = 0u32;
        let sent = attacker.flood(Duration::from_secs(10), |n| match n % 2 {
            0 => request(id, "/slow"),
            _ => {
                id += 1;
                Frame::Cancel { xid: Xid { id: id - 1, opened_by_receiver: false }, reason: CancelReason::CANCELLED }
            }
        });
        (attacker, sent, started.elapsed())
    });
    let (attacker, sent, took) = attacker.await.unwrap();
    assert!(wait_until(Duration::from_secs(5), || attacker.goaway().is_some()).await, "a GOAWAY");
    let grown = server.rss_kib().saturating_sub(rss_before);
    let (ok, worst) = witness.finish().await;
    let (code, message) = attacker.goaway().unwrap();
    eprintln!(
        "rapid reset: {sent} frames in {took:?}, then GOAWAY {code:?} {message:?}; server RSS grew {} KiB; \
         witness {ok} correct answers, worst {worst:?}",
        grown
    );
    assert_eq!(code, GoAwayCode::ABUSE);
    assert!(message.contains("max_resets"), "{message}");
    assert!(grown < 32 << 10, "the server grew by {grown} KiB");
    assert!(ok > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_frames_needing_no_answer_are_closed_with_goaway_abuse() {
    let server = ChildServer::start();
    let witness = Witness::start(server.addr).await;
    type Make = fn(u64) -> Frame;
    let floods: [(&str, Make); 5] = [
        ("CREDIT", |n| Frame::Credit { limit: n }),
        ("PING", |n| Frame::Ping { nonce: n }),
        ("CANCEL", |n| Frame::Cancel { xid: Xid { id: n as u32, opened_by_receiver: true }, reason: CancelReason(0) }),
        ("DATA for an unknown exchange", |n| {
            Frame::Data(Data {
                xid: Xid { id: 1_000_000 + n as u32, opened_by_receiver: false },
                offset: 0,
                end: true,
                payload: Bytes::from_static(&[0; 64]),
            })
        }),
        ("extension", |_| Frame::Extension { ty: FrameType(0x99), body: Bytes::from_static(&[0; 32]) }),
    ];
    let rss_before = server.rss_kib();
    for (name, make) in floods {
        let addr = server.addr;
        let attacker = tokio::task::spawn_blocking(move || {
            let mut attacker = Attacker::connect(addr, Limits::default(), true);
            let started = Instant::now();
            let sent = attacker.flood(Duration::from_secs(10), make);
            (attacker, sent, started.elapsed())
        });
        let (attacker, sent, took) = attacker.await.unwrap();
        assert!(wait_until(Duration::from_secs(5), || attacker.goaway().is_some()).await, "{name}: a GOAWAY");
        let (code, message) = attacker.goaway().unwrap();
        eprintln!("{name} flood: {sent} frames in {took:?}, then GOAWAY {code:?} {message:?}");
        if name == "PING" && code == GoAwayCode::LIMIT {
            // Each PING queues a PONG: one read's worth of them (64 KiB of 3-byte PINGs) may
            // overflow the control queue (4096, §8.1) before the noise budget (10 000) is spent.
            assert!(message.contains("control frame queue"), "{message}");
            continue;
        }
        assert_eq!(code, GoAwayCode::ABUSE, "{name}");
        assert!(message.contains("max_noise"), "{name}: {message}");
    }
    let grown = server.rss_kib().saturating_sub(rss_before);
    let (ok, worst) = witness.finish().await;
    eprintln!("floods: server RSS grew {grown} KiB; witness {ok} correct answers, worst {worst:?}");
    assert!(grown < 32 << 10, "the server grew by {grown} KiB");
    assert!(ok > 0);
}

/// The bounds do not get in the way of a legitimate client at full speed: concurrent calls beyond
/// `max_in_flight`, and bulk answers beyond the send budget, all answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legitimate_client_at_full_speed_trips_nothing() {
    let server = ChildServer::start();
    let client = Endpoint::builder().config(Config::stream()).build().unwrap();
    let conn = client.connect_tcp(server.addr).await.unwrap();
    let calls = (0..300u32).map(|n| {
        let conn = conn.clone();
        async move {
            let route = if n % 10 == 0 { "/big" } else { "/echo" };
            let reply = conn.call(route, n.to_le_bytes().to_vec()).await.unwrap();
            let bytes = reply.bytes().unwrap();
            match route {
                "/big" => assert_eq!(bytes.len(), BIG),
                _ => assert_eq!(bytes, n.to_le_bytes().to_vec()),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(calls)).await.expect("all answered");
    let slow = (0..200).map(|_| conn.call("/slow", Vec::new()));
    let replies = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(slow)).await.unwrap();
    assert!(replies.into_iter().all(|r| r.is_ok()), "200 concurrent slow calls, none refused");
}

/// Issue 11.3: one-way messages are not answered, so `max_in_flight` does not count them once
/// complete; a flood of them to a slow route is pushed back on the transport instead: with every
/// handler slot taken the server stops reading, and the attacker's writes slow to its pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_flood_to_a_slow_route_is_pushed_back_on_the_transport() {
    let server = ChildServer::start();
    let witness = Witness::start(server.addr).await;
    let addr = server.addr;
    let ((attacker, sent, took), grown) = server
        .peak_growth(move || {
            let mut attacker = Attacker::connect(addr, Limits::default(), true);
            attacker.stream.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
            let started = Instant::now();
            let sent = attacker.flood(Duration::from_secs(5), |n| {
                let Frame::Head(head) = request(n as u32, "/slow") else { unreachable!() };
                Frame::Head(Head { kind: Kind::OneWay, ..head })
            });
            (attacker, sent, started.elapsed())
        })
        .await;
    let (ok, worst) = witness.finish().await;
    eprintln!(
        "one-way flood: {sent} frames in {took:?}, GOAWAY {:?}; server RSS grew {grown} KiB at the peak; \
         witness {ok} correct answers, worst {worst:?}",
        attacker.goaway()
    );
    // Unhindered, the same loop writes millions of frames a second (see the floods above); the
    // server takes them at the pace its 256 handler slots free, plus what socket buffers hold.
    let rate = sent as f64 / took.as_secs_f64();
    assert!(rate < 1e6, "{rate:.0} frames/s: the server did not push back");
    assert!(grown < 48 << 10, "the server grew by {grown} KiB");
    assert!(ok > 10, "the legitimate client was served");
}

//! What a hostile, broken or merely slow peer can make an endpoint hold (issue 11), over real
//! loopback TCP. The descriptor cases run a server in a child process under a lowered
//! `RLIMIT_NOFILE` (util-linux `prlimit`), so they are fast and leave this process alone.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use netcore::endpoint::Response;
use netcore::frame::stream::StreamDecoder;
use netcore::frame::{CancelReason, Frame, GoAwayCode, Head, Hello, Kind, Limits, Priority, Route, Xid};
use netcore::session::Config;
use netcore::Endpoint;

fn echo_server() -> netcore::endpoint::EndpointBuilder {
    Endpoint::builder().route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
}

// ---- A raw peer that speaks frames by hand ----

/// A TCP peer that writes frames of its choosing: it has sent its HELLO.
struct RawPeer {
    stream: StdTcpStream,
    next_id: u32,
}

impl RawPeer {
    fn connect(addr: std::net::SocketAddr) -> Self {
        let stream = StdTcpStream::connect(addr).unwrap();
        let mut peer = Self { stream, next_id: 0 };
        peer.send(&Frame::Hello(Hello::new(1, 1, 0, Limits::default())));
        peer
    }

    fn send(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        netcore::frame::stream::encode(frame, &mut out).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    /// Opens a request to `route` claiming `total` bytes, sending only its first `first`.
    fn head(&mut self, route: &str, total: u64, first: usize) {
        let head = Head {
            xid: Xid::sender(self.next_id),
            kind: Kind::Request,
            priority: Priority::NORMAL,
            route: Some(Route::Name(route.into())),
            meta: None,
            total,
            payload: Bytes::from(vec![0u8; first]),
        };
        self.next_id += 1;
        self.send(&Frame::Head(head));
    }

    /// The frames received within `wait`.
    fn frames_within(&mut self, wait: Duration) -> Vec<Frame> {
        self.stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let (mut wire, deadline) = (Vec::new(), Instant::now() + wait);
        let mut buf = [0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => wire.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let mut decoder = StreamDecoder::new(1 << 20);
        decoder.extend(&wire);
        std::iter::from_fn(|| decoder.decode().ok().flatten()).collect()
    }
}

fn cancels(frames: &[Frame], reason: CancelReason) -> usize {
    frames.iter().filter(|f| matches!(f, Frame::Cancel { reason: r, .. } if *r == reason)).count()
}

async fn serve(endpoint: &Endpoint) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = endpoint.clone();
    tokio::spawn(async move { server.serve_tcp(listener).await });
    addr
}

/// The frames a peer sent before closing (or until 5 s pass).
fn frames_until_close(mut stream: StdTcpStream) -> Vec<Frame> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut wire = Vec::new();
    let _ = stream.read_to_end(&mut wire);
    let mut decoder = StreamDecoder::new(1 << 20);
    decoder.extend(&wire);
    std::iter::from_fn(|| decoder.decode().ok().flatten()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_with_goaway_limit() {
    let server = echo_server().max_connections(3).build().unwrap();
    let addr = serve(&server).await;
    let client = Endpoint::builder().build().unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        let conn = client.connect_tcp(addr).await.unwrap();
        conn.ready().await.unwrap();
        held.push(conn);
    }
    let refused = tokio::task::spawn_blocking(move || frames_until_close(StdTcpStream::connect(addr).unwrap()));
    let frames = refused.await.unwrap();
    assert!(matches!(frames.first(), Some(Frame::Hello(_))), "{frames:?}");
    let Some(Frame::GoAway { code, message }) = frames.last() else { panic!("{frames:?}") };
    assert_eq!(*code, GoAwayCode::LIMIT);
    assert!(message.contains("at most 3 connections"), "{message}");
    // The connections it serves are unaffected, and a freed slot is served again.
    assert_eq!(&held[0].call("/echo", b"x".to_vec()).await.unwrap().bytes().unwrap()[..], b"x");
    held.pop().unwrap().close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.connections().len() >= 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let conn = client.connect_tcp(addr).await.unwrap();
    assert_eq!(&conn.call("/echo", b"y".to_vec()).await.unwrap().bytes().unwrap()[..], b"y");
}

/// `serve_tcp_py` shares `serve_tcp`'s accept loop: the same cap, but a refused Python peer is
/// closed without a byte (its wire has no GOAWAY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_connections_beyond_the_cap_are_closed_without_a_word() {
    let server = echo_server().max_connections(2).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_tcp_py(listener).await });
    let client = Endpoint::builder().build().unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(client.connect_tcp_py(addr).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.connections().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = tokio::task::spawn_blocking(move || {
        let mut stream = StdTcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut wire = Vec::new();
        stream.read_to_end(&mut wire).map(|_| wire)
    });
    assert_eq!(refused.await.unwrap().expect("closed within 5 s"), b"");
    assert_eq!(&held[0].call("/echo", b"x".to_vec()).await.unwrap().bytes().unwrap()[..], b"x");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_handshake_close_churn_leaves_no_connection_listed() {
    let server = echo_server().build().unwrap();
    let addr = serve(&server).await;
    let client = Endpoint::builder().build().unwrap();
    for _ in 0..1000 {
        let conn = client.connect_tcp(addr).await.unwrap();
        conn.ready().await.unwrap();
        conn.close().await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(server.connections().is_empty() && client.connections().is_empty()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((server.connections().len(), client.connections().len()), (0, 0), "closed connections stay listed");
}

// ---- The accept loop under a descriptor limit, in a child process ----

const CHILD_ENV: &str = "NETCORE_HOSTILE_CHILD";
/// Printed by the child before its port (libtest may print its own text before it on the line).
const PORT_MARK: &str = "netcore-child-port=";

/// Not a test of its own: the server that `the_accept_loop_survives_running_out_of_descriptors`
/// runs in a child process under `prlimit --nofile=64`. Prints its port, serves until stdin closes.
#[test]
#[ignore = "child process of the_accept_loop_survives_running_out_of_descriptors"]
fn child_server() {
    assert_eq!(std::env::var(CHILD_ENV).as_deref(), Ok("1"), "run by its parent test only");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let server = echo_server().config(Config::stream()).build().unwrap();
        let addr = serve(&server).await;
        println!("{PORT_MARK}{}", addr.port());
        // Until the parent closes our stdin.
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await.unwrap().unwrap();
    });
}

struct ChildServer {
    child: Child,
    port: u16,
}

impl ChildServer {
    fn start(nofile: u32) -> Self {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new("prlimit")
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg(exe)
            .args(["--ignored", "--exact", "child_server", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("prlimit (util-linux) runs the child server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.split_once(PORT_MARK).map(|(_, port)| port.trim().parse().unwrap()))
            .expect("the child server prints its port");
        // Keep reading what the child prints, so that it never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, port }
    }

    fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map(|d| d.count()).unwrap_or(0)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accept_loop_survives_running_out_of_descriptors() {
    let server = ChildServer::start(64);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], server.port).into();
    // prlimit execs the test binary, so the pid is the server's own.
    let before = server.open_descriptors();
    // Far more idle connections than the child has descriptors: its accept() fails with EMFILE.
    let idle: Vec<StdTcpStream> = (0..100).filter_map(|_| StdTcpStream::connect(addr).ok()).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = server.open_descriptors();
    drop(idle);
    // Once descriptors are free again, new clients are served: the loop did not end.
    let client = Endpoint::builder().build().unwrap();
    let started = Instant::now();
    let reply = loop {
        let attempt = async { client.connect_tcp(addr).await.ok()?.call("/echo", b"alive".to_vec()).await.ok() };
        if let Ok(Some(reply)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            break reply;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the server never served again");
    };
    assert_eq!(&reply.bytes().unwrap()[..], b"alive");
    let recovered = started.elapsed();
    // Every descriptor the idle flood took is given back: nothing leaked.
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open_descriptors() > before + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = server.open_descriptors();
    assert!(after <= before + 2, "{after} descriptors open after the flood, {before} before it");
    eprintln!("descriptors: {before} at start, {peak} at the peak, {after} after; served again after {recovered:?}");
}

// ---- Issue 11.4: spill files under one budget per endpoint ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spill_files_stay_within_the_endpoint_budget() {
    let server = ChildServer::start(256);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], server.port).into();
    let before = server.open_descriptors();
    // 16 connections × 64 HEADs, each claiming 1 MiB (above inline_limit: one spill file each).
    let (attackers, refused) = tokio::task::spawn_blocking(move || {
        let mut attackers: Vec<RawPeer> = (0..16).map(|_| RawPeer::connect(addr)).collect();
        for peer in &mut attackers {
            for _ in 0..64 {
                peer.head("/echo", 1 << 20, 1);
            }
        }
        let refused: usize = attackers
            .iter_mut()
            .map(|peer| cancels(&peer.frames_within(Duration::from_millis(300)), CancelReason::STORAGE_FULL))
            .sum();
        (attackers, refused)
    })
    .await
    .unwrap();
    let held = server.open_descriptors();
    // The default budget: 64 files in all, whatever the number of connections.
    assert_eq!(refused, 16 * 64 - 64, "HEADs beyond the 64-file budget are refused with CANCEL STORAGE_FULL");
    assert!(held <= before + 16 + 64 + 2, "{held} descriptors with the budget full, {before} before");
    // The endpoint still serves: small calls as ever; a large one is refused, with the reason named.
    let client = Endpoint::builder().build().unwrap();
    let conn = client.connect_tcp(addr).await.unwrap();
    assert_eq!(&conn.call("/echo", b"small".to_vec()).await.unwrap().bytes().unwrap()[..], b"small");
    let err = conn.call("/echo", vec![1u8; 1 << 20]).await.unwrap_err();
    assert_eq!(err, netcore::endpoint::CallError::Cancelled(CancelReason::STORAGE_FULL));
    assert!(err.to_string().contains("spill budget for large messages is full"), "{err}");
    // Once the attackers are gone, their reservations are given back.
    drop(attackers);
    let started = Instant::now();
    loop {
        match conn.call("/echo", vec![2u8; 1 << 20]).await {
            Ok(reply) => break assert_eq!(reply.bytes().unwrap().len(), 1 << 20),
            Err(err) => assert!(started.elapsed() < Duration::from_secs(10), "budget never freed: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("descriptors: {before} at start, {held} with the spill budget full; {refused} HEADs refused");
}

// ---- Issue 11.5: a decoding route's limit applies at the HEAD ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoding_routes_refuse_oversized_requests_at_their_head() {
    let config = Config::stream();
    let budget = config.spill_budget.clone();
    let typed = netcore::typed::route(std::sync::Arc::new(()), 0, |_, (n,): (u32,)| async move { Ok(n + 1) });
    let server = echo_server()
        .config(config)
        .route_service("/typed", typed)
        .route("/json", |req| async move { Response::json(&req.json::<Vec<u32>>()?.len()) })
        .decode_limit("/json", 1 << 20)
        .build()
        .unwrap();
    let addr = serve(&server).await;
    // A raw peer claims 1 GiB for each and sends one byte: answered at once, nothing stored.
    let frames = tokio::task::spawn_blocking(move || {
        let mut peer = RawPeer::connect(addr);
        peer.head("/typed", 1 << 30, 1);
        peer.head("/json", 1 << 30, 1);
        let frames = peer.frames_within(Duration::from_millis(500));
        (frames, budget.in_use())
    })
    .await
    .unwrap();
    let (frames, spilled) = frames;
    assert_eq!(spilled, (0, 0), "nothing was stored for the refused requests");
    let errors: Vec<String> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Head(head) if head.kind == Kind::Error => {
                assert_eq!(u16::from_le_bytes([head.payload[0], head.payload[1]]), 6, "ERROR TOO_LARGE");
                Some(String::from_utf8_lossy(&head.payload[2..]).into_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        errors,
        [
            "request to /typed of 1073741824 bytes exceeds the route's decode limit of 16777216 bytes",
            "request to /json of 1073741824 bytes exceeds the route's decode limit of 1048576 bytes",
        ]
    );
    // A real client gets the same answer as a typed error, long before its 20 MiB could be sent,
    // and the endpoint serves on.
    let client = Endpoint::builder().build().unwrap();
    let conn = client.connect_tcp(addr).await.unwrap();
    let started = Instant::now();
    let err = conn.call("/json", vec![b' '; 20 << 20]).await.unwrap_err();
    let netcore::endpoint::CallError::Remote(err) = err else { panic!("{err}") };
    assert_eq!(err.code, netcore::endpoint::ErrorCode::TOO_LARGE);
    assert!(err.message.contains("/json of 20971520 bytes"), "{}", err.message);
    let refused_after = started.elapsed();
    let reply = conn.call("/json", b"[1,2,3]".to_vec()).await.unwrap();
    assert_eq!(reply.json::<usize>().unwrap(), 3);
    assert_eq!(&conn.call("/echo", b"still".to_vec()).await.unwrap().bytes().unwrap()[..], b"still");
    eprintln!("a 20 MiB request to a 1 MiB route refused after {refused_after:?}");
}

// ---- Issue 11.6: everything expires ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_dribbling_and_stalled_peers_expire_and_live_idle_peers_stay() {
    let keepalive = netcore::session::Keepalive { interval: Duration::from_secs(1), max_missed: 3 };
    let config = Config::stream()
        .with_keepalive(Some(keepalive))
        .with_stall_timeout(Some(Duration::from_secs(1)))
        .with_frame_timeout(Some(Duration::from_secs(1)));
    let budget = config.spill_budget.clone();
    let server = echo_server().config(config).build().unwrap();
    let addr = serve(&server).await;
    // A live client that makes no call for longer than the keepalive deadline.
    let client = Endpoint::builder().build().unwrap();
    let idle = client.connect_tcp(addr).await.unwrap();
    idle.ready().await.unwrap();
    let attacks = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        // Dribbled: a frame's length prefix says 60 000 bytes; one byte per 50 ms follows.
        let mut dribbler = RawPeer::connect(addr);
        dribbler.stream.write_all(&[0xe0, 0xd4, 0x03]).unwrap(); // varint 60 000
        let dribble = std::thread::spawn(move || {
            let mut sent = 0;
            while dribbler.stream.write_all(&[0]).is_ok() && started.elapsed() < Duration::from_secs(8) {
                sent += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (sent, started.elapsed())
        });
        // Stalled: a 1 MiB request (a spill file) whose rest never comes; and a silent peer.
        let mut staller = RawPeer::connect(addr);
        staller.head("/echo", 1 << 20, 100);
        let stalled = staller.frames_within(Duration::from_millis(2500));
        let spilled_after_stall = budget.in_use();
        let silent = RawPeer::connect(addr);
        let silent_frames = frames_until_close(silent.stream);
        let silent_after = started.elapsed();
        (dribble.join().unwrap(), stalled, spilled_after_stall, silent_frames, silent_after)
    });
    let ((dribbled, dribble_cut), stalled, spilled, silent, silent_after) = attacks.await.unwrap();
    // The dribbler is cut off after about the frame deadline (its writes start failing).
    assert!(dribbled < 60 && dribble_cut < Duration::from_secs(4), "{dribbled} bytes over {dribble_cut:?}");
    // The stalled message is cancelled and its spill file given back.
    assert_eq!(cancels(&stalled, CancelReason::TIMED_OUT), 1, "{stalled:?}");
    assert_eq!(spilled, (0, 0));
    // The silent peer is let go by keepalive: (3 + 1) × 1 s.
    let Some(Frame::GoAway { code, message }) = silent.last() else { panic!("{silent:?}") };
    assert_eq!(*code, GoAwayCode::TIMEOUT);
    assert!(message.contains("keepalive"), "{message}");
    assert!(silent_after < Duration::from_secs(8), "{silent_after:?}");
    // The live idle client answered the PINGs all along and is still served.
    assert_eq!(&idle.call("/echo", b"alive".to_vec()).await.unwrap().bytes().unwrap()[..], b"alive");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.connections().len() > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.connections().len(), 1, "only the live client is left");
    eprintln!("dribbler cut after {dribble_cut:?} ({dribbled} bytes), silent peer after {silent_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dribbled_frame_is_cut_off_with_goaway_timeout_naming_the_frame_deadline() {
    let config = Config::stream().with_frame_timeout(Some(Duration::from_millis(500)));
    let server = echo_server().config(config).build().unwrap();
    let addr = serve(&server).await;
    let frames = tokio::task::spawn_blocking(move || {
        let mut peer = RawPeer::connect(addr);
        peer.stream.write_all(&[0xe0, 0xd4, 0x03, 0]).unwrap();
        frames_until_close(peer.stream)
    })
    .await
    .unwrap();
    let Some(Frame::GoAway { code, message }) = frames.last() else { panic!("{frames:?}") };
    assert_eq!(*code, GoAwayCode::TIMEOUT);
    assert!(message.contains("frame deadline (Config::frame_timeout)"), "{message}");
}

//! Field links (issue 10): a board and a host on one line, either restarting at any time, one
//! starting long before the other, the line holding bytes of dead sessions, settings that differ.
//!
//! Most tests run in-process on paused time over a simulated line: the board keeps its end, and a
//! host "process" is an endpoint on a fresh end spliced onto the line; killing it cuts the splice
//! (the board sees silence, as on a serial line). Two tests run real child processes on a
//! pseudo-terminal pair, killed with SIGKILL and started again 100 times: the host, then the board.
//! Over TCP, a "process" is an endpoint on a runtime of its own, killed by dropping the runtime:
//! a server restarted on its port, reconnected to by `keep_connected`, and a restarted client.

use std::time::Duration;

use bytes::BytesMut;
use netcore::endpoint::{CallError, EndpointEvent, Response};
use netcore::frame::{self, Frame, Framing, GoAwayCode, Hello, Limits};
use netcore::session::{CloseReason, Config, Deadline, Reliability};
use netcore::{Connection, Endpoint, LinkState};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn board(config: Config) -> Endpoint {
    Endpoint::builder()
        .config(config)
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .build()
        .unwrap()
}

fn host(config: Config) -> Endpoint {
    Endpoint::builder()
        .config(config)
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .route("/never", |_req| async move {
            std::future::pending::<()>().await;
            Ok(Response::text(""))
        })
        .build()
        .unwrap()
}

/// The board's end of a line onto which host ends are spliced, one at a time.
struct Line {
    hosts: mpsc::UnboundedSender<Option<DuplexStream>>,
    stale: mpsc::UnboundedSender<Vec<u8>>,
}

impl Line {
    /// A line and the board's end of it.
    fn new() -> (Line, DuplexStream) {
        let (board_end, mut line_end) = tokio::io::duplex(1 << 16);
        let (hosts, mut host_rx) = mpsc::unbounded_channel::<Option<DuplexStream>>();
        let (stale, mut stale_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            let mut host: Option<DuplexStream> = None;
            let (mut from_board, mut from_host) = (vec![0u8; 4096], vec![0u8; 4096]);
            loop {
                tokio::select! {
                    next = host_rx.recv() => match next {
                        Some(next) => host = next,
                        None => return,
                    },
                    Some(bytes) = stale_rx.recv() => {
                        if let Some(h) = &mut host { let _ = h.write_all(&bytes).await; }
                    }
                    n = line_end.read(&mut from_board) => match n {
                        Ok(n) if n > 0 => if let Some(h) = &mut host {
                            // Nobody listening: the bytes are lost, as on a serial line.
                            if h.write_all(&from_board[..n]).await.is_err() { host = None; }
                        },
                        _ => return,
                    },
                    n = async { host.as_mut().unwrap().read(&mut from_host).await }, if host.is_some() => match n {
                        Ok(n) if n > 0 => { let _ = line_end.write_all(&from_host[..n]).await; }
                        _ => host = None,
                    },
                }
            }
        });
        (Line { hosts, stale }, board_end)
    }

    /// Starts a host process on the line: `stale` bytes first (what the line still holds), then
    /// the live line.
    fn attach(&self, endpoint: &Endpoint, config: Config, stale: &[u8]) -> Connection {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        self.hosts.send(Some(theirs)).unwrap();
        if !stale.is_empty() {
            self.stale.send(stale.to_vec()).unwrap();
        }
        endpoint.connect_with(ours, "host", config)
    }

    /// Kills the host hard: it vanishes from the line without a word.
    fn kill(&self) {
        self.hosts.send(None).unwrap();
    }
}

fn waiting() -> Config {
    Config::lossy().wait_for_peer()
}

async fn echo(conn: &Connection, what: &[u8]) -> Result<Vec<u8>, CallError> {
    Ok(conn.call("/echo", what.to_vec()).await?.bytes()?.to_vec())
}

async fn next_event(events: &mut tokio::sync::broadcast::Receiver<EndpointEvent>, want: &str) -> EndpointEvent {
    timeout(LIMIT, async {
        loop {
            let event = events.recv().await.unwrap();
            if format!("{event:?}").starts_with(want) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {want} event"))
}

/// What an attempt that outlived its own timeout counts as.
fn late() -> CallError {
    CallError::TimedOut { route: "/echo".into(), after: Duration::from_secs(5) }
}

#[tokio::test(start_paused = true)]
async fn a_board_waits_for_a_host_that_starts_much_later() {
    // Without waiting, the 10 s handshake timeout holds (keepalive's 1 s × 4 does not cut it short).
    let (_line, end) = Line::new();
    let impatient = board(Config::lossy()).connect(end, "board");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(impatient.state(), LinkState::Connecting, "gave up before the handshake timeout");
    let err = timeout(LIMIT, impatient.ready()).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, CallError::Disconnected(CloseReason::TimedOut { deadline: Deadline::Handshake, .. })),
        "{err}"
    );

    // Waiting: a host ten minutes late is answered, and calls go both ways.
    let (line, end) = Line::new();
    let b = board(waiting());
    let mut events = b.events();
    let board_conn = b.connect(end, "board");
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(board_conn.state(), LinkState::Connecting);
    let started = Instant::now();
    let h = host(waiting());
    let host_conn = line.attach(&h, waiting(), &[]);
    timeout(LIMIT, host_conn.ready()).await.unwrap().unwrap();
    next_event(&mut events, "Connect").await;
    assert_eq!(echo(&host_conn, b"up").await.unwrap(), b"up");
    assert_eq!(echo(&board_conn, b"down").await.unwrap(), b"down");
    assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_host_restarted_mid_call_fails_the_call_at_once_and_the_next_one_works() {
    for reliable in [false, true] {
        let config = waiting().with_reliable(reliable.then(Reliability::default));
        let (line, end) = Line::new();
        let b = board(config.clone());
        let mut events = b.events();
        let board_conn = b.connect(end, "board");
        let first = line.attach(&host(config.clone()), config.clone(), &[]);
        assert_eq!(echo(&first, b"1").await.unwrap(), b"1");
        assert_eq!(board_conn.is_reliable(), reliable);
        // The board calls the host and waits; the host is killed and started again at once.
        let pending = tokio::spawn({
            let conn = board_conn.clone();
            async move { conn.call("/never", b"x".to_vec()).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        line.kill();
        let restarted = Instant::now();
        let second = line.attach(&host(config.clone()), config.clone(), &[]);
        let err = timeout(LIMIT, pending).await.unwrap().unwrap().unwrap_err();
        assert_eq!(err, CallError::Disconnected(CloseReason::PeerRestarted), "reliable {reliable}");
        assert!(err.to_string().contains("peer restarted"), "{err}");
        next_event(&mut events, "PeerRestarted").await;
        assert_eq!(echo(&second, b"2").await.unwrap(), b"2");
        assert_eq!(echo(&board_conn, b"3").await.unwrap(), b"3");
        // Paused time: only airtime-free work happened, no timer was waited for.
        assert!(restarted.elapsed() < Duration::from_millis(100), "reliable {reliable}: {:?}", restarted.elapsed());
        assert_eq!(board_conn.is_reliable(), reliable);
    }
}

/// What a dead session of the board left in the line: its HELLO (nonce 99), a PING, a GOAWAY.
fn stale_bytes(goaway: bool) -> Vec<u8> {
    let limits = Config::lossy().limits;
    let mut out = BytesMut::new();
    let hello = Hello::new(1, 1, 0, Limits { window: 0, ..limits }).with_nonce(99);
    frame::encode(Framing::Lossy, &Frame::Hello(hello), &mut out).unwrap();
    frame::encode(Framing::Lossy, &Frame::Ping { nonce: 4 }, &mut out).unwrap();
    if goaway {
        let message = "no traffic within the keepalive deadline".into();
        frame::encode(Framing::Lossy, &Frame::GoAway { code: GoAwayCode::TIMEOUT, message }, &mut out).unwrap();
    }
    // The port was opened in the middle of a frame: its first bytes are gone.
    let mut bytes = vec![0x17, 0x42];
    bytes.extend_from_slice(&out);
    bytes
}

#[tokio::test(start_paused = true)]
async fn stale_bytes_of_a_dead_session_do_not_stop_a_late_host() {
    for (goaway, host_config) in [(false, Config::lossy()), (true, waiting())] {
        let (line, end) = Line::new();
        let board_conn = board(waiting()).connect(end, "board");
        tokio::time::sleep(Duration::from_secs(30)).await;
        let h = host(host_config.clone());
        let conn = line.attach(&h, host_config, &stale_bytes(goaway));
        // The stale HELLO may be taken first; the live board's answer replaces it (a restart).
        let reply = timeout(LIMIT, async {
            loop {
                match timeout(Duration::from_secs(5), echo(&conn, b"live")).await.unwrap_or_else(|_| Err(late())) {
                    Ok(reply) => return reply,
                    Err(CallError::Disconnected(CloseReason::PeerRestarted | CloseReason::Peer { .. })) => {}
                    Err(other) => panic!("goaway {goaway}: {other}"),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(reply, b"live");
        assert_eq!(echo(&board_conn, b"back").await.unwrap(), b"back");
        assert_ne!(conn.state(), LinkState::Connecting);
        let LinkState::Open(peer) = conn.state() else { panic!("open") };
        assert_ne!(peer.nonce, Some(99), "the live board, not the dead session");
    }
}

#[tokio::test(start_paused = true)]
async fn mixed_reliable_settings_work_and_say_so() {
    for (board_reliable, host_reliable) in [(true, false), (false, true), (true, true), (false, false)] {
        let with = |on: bool| Config::lossy().with_reliable(on.then(Reliability::default));
        let (line, end) = Line::new();
        let board_conn = board(with(board_reliable)).connect(end, "board");
        let conn = line.attach(&host(with(host_reliable)), with(host_reliable), &[]);
        let case = format!("board {board_reliable}, host {host_reliable}");
        assert_eq!(echo(&conn, b"a").await.unwrap(), b"a", "{case}");
        // Long enough for every HELLO repetition and keepalive round.
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(echo(&board_conn, b"b").await.unwrap(), b"b", "{case}");
        let both = board_reliable && host_reliable;
        assert_eq!((board_conn.is_reliable(), conn.is_reliable()), (both, both), "{case}");
    }
}

/// Real-process restarts on a pseudo-terminal pair: how many hosts `a_host_process_killed_on_a_pty_is_replaced`
/// kills and replaces. 100 take about 4 s of real time on 2 busy cores, most of it the
/// children's start-up.
#[cfg(unix)]
const PTY_RESTARTS: u64 = 100;

/// How many boards `a_board_process_restarted_mid_call_is_replaced` kills and replaces.
#[cfg(unix)]
const PTY_BOARD_RESTARTS: u64 = 100;

/// The line's airtime of a restart's first exchange at 115 200 baud 8N1: two HELLOs (47 bytes
/// each on the lossy framing with a nonce) and a tagged call and its reply (about 20 bytes each).
/// A pty does not pace, so the real airtime is far less; the bound allows for a paced line.
#[cfg(unix)]
const FIRST_EXCHANGE_AIRTIME: Duration = Duration::from_micros(134 * 10 * 1_000_000 / 115_200);

/// An endpoint of one process instance of the pty tests: `/who` answers its instance number,
/// `/echo` echoes (the tag a peer's call carries), `/never` never answers, `/sink` takes anything.
fn instance_endpoint(instance: &str, config: Config) -> Endpoint {
    let tag = instance.to_owned();
    Endpoint::builder()
        .config(config)
        .route("/who", move |_req| std::future::ready(Ok(Response::text(tag.clone()))))
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .route("/sink", |req| async move { Ok(Response::text(req.bytes()?.len().to_string())) })
        .route("/never", |_req| async move {
            std::future::pending::<()>().await;
            Ok(Response::text(""))
        })
        .build()
        .unwrap()
}

/// The child process of the pty tests: a host (`NETCORE_FIELD_HOST_PTY`) or a board
/// (`NETCORE_FIELD_BOARD_PTY`) on that pty, instance `NETCORE_FIELD_INSTANCE`. Once its first
/// call (tagged with its instance number) is answered it prints
/// `@up <instance> <reply> <micros since it opened the port> <peer nonce>`; a host with
/// `NETCORE_FIELD_UPLOAD` set then uploads 256 KiB bodies until it is killed.
#[cfg(unix)]
#[tokio::test]
async fn field_pty_process() {
    let (path, role) = match std::env::var("NETCORE_FIELD_HOST_PTY") {
        Ok(path) => (Ok(path), "host"),
        Err(_) => (std::env::var("NETCORE_FIELD_BOARD_PTY"), "board"),
    };
    let Ok(path) = path else { return };
    let instance = std::env::var("NETCORE_FIELD_INSTANCE").unwrap();
    let endpoint = instance_endpoint(&instance, waiting());
    let opened = std::time::Instant::now();
    let conn = endpoint.connect_serial(&path, 115_200).unwrap();
    let peer = conn.ready().await.unwrap();
    let reply = conn.call("/echo", instance.clone().into_bytes()).await.unwrap().text().unwrap();
    let micros = opened.elapsed().as_micros();
    println!("@up {instance} {reply} {micros} {}", peer.nonce.unwrap_or(0));
    if role == "host" && std::env::var("NETCORE_FIELD_UPLOAD").is_ok() {
        let body = bytes::Bytes::from(vec![0x5a; 256 << 10]);
        while conn.call("/sink", body.clone()).await.is_ok() {}
    }
    std::future::pending::<()>().await;
}

/// A child of the pty tests, killed (SIGKILL) when dropped, and the `@up` line it printed.
#[cfg(unix)]
struct Instance {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

#[cfg(unix)]
impl Instance {
    fn spawn(role: &str, path: &str, instance: u64, upload: bool) -> Instance {
        let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "field_pty_process", "--nocapture", "--test-threads", "1"])
            .env(format!("NETCORE_FIELD_{role}_PTY"), path)
            .env("NETCORE_FIELD_INSTANCE", instance.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if upload {
            command.env("NETCORE_FIELD_UPLOAD", "1");
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        Instance { child, lines: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)) }
    }

    /// Waits (bounded) for the `@up` line: the reply its tagged call got, the first call's
    /// latency, and the nonce of the peer it shook hands with.
    async fn up(&mut self) -> (String, Duration, u64) {
        let line = timeout(Duration::from_secs(20), async {
            loop {
                let line = self.lines.next_line().await.unwrap().expect("the child ended before its first call");
                // After libtest's own `test field_pty_process ... ` on the same line.
                if let Some(at) = line.find("@up ") {
                    return line[at..].to_owned();
                }
            }
        })
        .await
        .expect("no first call within 20 s");
        let fields: Vec<&str> = line.split(' ').collect();
        (fields[2].to_owned(), Duration::from_micros(fields[3].parse().unwrap()), fields[4].parse().unwrap())
    }

    /// SIGKILL, and reaped.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A pty pair: the master as a netcore transport for this process, the slave's path for the
/// children, and the slave itself, kept open so that the master never sees a hang-up between two
/// children.
#[cfg(unix)]
fn pty() -> (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static, String, serialport::TTYPort) {
    use serialport::SerialPort;
    let (mut master, slave) = serialport::TTYPort::pair().unwrap();
    let path = slave.name().unwrap();
    master.set_timeout(Duration::from_millis(100)).unwrap();
    let reader = master.try_clone_native().unwrap();
    (netcore::transport::serial::from_port(reader, master).unwrap(), path, slave)
}

/// A reproducible pseudo-random sequence (xorshift64) for the moments of the kills.
struct Moments(u64);

impl Moments {
    fn below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        max.mul_f64((self.0 % 1000) as f64 / 1000.0)
    }
}

fn max_and_median(mut latencies: Vec<Duration>) -> (Duration, Duration) {
    latencies.sort();
    (*latencies.last().unwrap(), latencies[latencies.len() / 2])
}

/// Fails on any event that says a HELLO was refused or a session broke the protocol.
#[cfg(unix)]
fn watch_protocol(endpoint: &Endpoint) -> tokio::task::JoinHandle<()> {
    let mut events = endpoint.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            let text = format!("{event:?}");
            assert!(!text.contains("DuplicateHello") && !text.contains("Protocol"), "{text}");
        }
    })
}

#[cfg(unix)]
#[tokio::test]
async fn a_host_process_killed_on_a_pty_is_replaced() {
    let (io, path, slave) = pty();
    let b = instance_endpoint("board", waiting());
    let mut events = b.events();
    let protocol = watch_protocol(&b);
    let conn = b.connect_with(io, "pty board", waiting());
    let mut moments = Moments(0x9e37_79b9_7f4a_7c15);
    let (mut latencies, mut nonces) = (Vec::new(), std::collections::HashSet::new());
    let mut pending: Option<tokio::task::JoinHandle<Result<(), CallError>>> = None;
    let started = std::time::Instant::now();
    for instance in 0..PTY_RESTARTS {
        // Now and then a host killed at once, most likely before or during its handshake.
        if instance % 10 == 5 {
            let early = Instance::spawn("HOST", &path, 1000 + instance, false);
            tokio::time::sleep(moments.below(Duration::from_millis(30))).await;
            early.kill().await;
        }
        // Three kinds of moment, in turn: with a call of the board's to the host pending, in
        // the middle of the host's upload, while idle.
        let upload = instance % 3 == 1;
        let mut host = Instance::spawn("HOST", &path, instance, upload);
        let (reply, latency, nonce) = host.up().await;
        assert_eq!(reply, instance.to_string(), "host {instance}'s call answered with another instance's tag");
        assert!(nonces.insert(nonce), "host {instance} shook hands with a board session it had seen before");
        assert!(
            latency < Duration::from_millis(100) + FIRST_EXCHANGE_AIRTIME,
            "host {instance}: first call after {latency:?}"
        );
        latencies.push(latency);
        if instance > 0 {
            next_event(&mut events, "PeerRestarted").await;
        }
        if let Some(pending) = pending.take() {
            let err = timeout(Duration::from_secs(20), pending).await.unwrap().unwrap().unwrap_err();
            assert_eq!(err, CallError::Disconnected(CloseReason::PeerRestarted), "before host {instance}");
        }
        let who = timeout(Duration::from_secs(5), conn.call("/who", Vec::new())).await.unwrap().unwrap();
        assert_eq!(who.text().unwrap(), instance.to_string(), "the board's call answered by a dead host");
        if instance % 3 == 0 {
            let conn = conn.clone();
            pending = Some(tokio::spawn(async move { conn.call("/never", b"x".to_vec()).await.map(|_| ()) }));
        }
        tokio::time::sleep(moments.below(Duration::from_millis(40))).await;
        host.kill().await;
    }
    let elapsed = started.elapsed();
    let (max, median) = max_and_median(latencies);
    eprintln!(
        "{PTY_RESTARTS} host processes killed (SIGKILL) and replaced in {elapsed:.1?}; first call after the \
         restart: max {max:?}, median {median:?} (bound 100 ms + {FIRST_EXCHANGE_AIRTIME:?} airtime)"
    );
    assert!(!matches!(conn.state(), LinkState::Closed(_)), "{:?}", conn.state());
    protocol.abort();
    drop(slave);
}

#[cfg(unix)]
#[tokio::test]
async fn a_board_process_restarted_mid_call_is_replaced() {
    let (io, path, slave) = pty();
    let h = instance_endpoint("host", waiting());
    // When each new board's HELLO was taken: the PeerRestarted event, stamped as it comes.
    let (restarted, mut restarts) = mpsc::unbounded_channel();
    let mut events = h.events();
    let stamps = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if matches!(event, EndpointEvent::PeerRestarted { .. }) {
                let _ = restarted.send(std::time::Instant::now());
            }
        }
    });
    let protocol = watch_protocol(&h);
    let conn = h.connect_with(io, "pty host", waiting());
    let mut moments = Moments(0x2545_f491_4f6c_dd1d);
    let mut latencies = Vec::new();
    let mut pending: Option<tokio::task::JoinHandle<Result<(), CallError>>> = None;
    for instance in 0..PTY_BOARD_RESTARTS {
        let mut board = Instance::spawn("BOARD", &path, instance, false);
        let back = match instance {
            0 => {
                timeout(Duration::from_secs(20), conn.ready()).await.unwrap().unwrap();
                None
            }
            _ => Some(timeout(Duration::from_secs(20), restarts.recv()).await.unwrap().unwrap()),
        };
        // The first call of ours after the board is back: answered by the new board.
        let who = timeout(Duration::from_secs(5), conn.call("/who", Vec::new())).await.unwrap().unwrap();
        assert_eq!(who.text().unwrap(), instance.to_string(), "our call answered by a dead board");
        if let Some(back) = back {
            let latency = back.elapsed();
            assert!(latency < Duration::from_millis(100) + FIRST_EXCHANGE_AIRTIME, "board {instance}: {latency:?}");
            latencies.push(latency);
        }
        if let Some(pending) = pending.take() {
            let err = timeout(Duration::from_secs(20), pending).await.unwrap().unwrap().unwrap_err();
            assert_eq!(err, CallError::Disconnected(CloseReason::PeerRestarted), "before board {instance}");
        }
        let (reply, ..) = board.up().await;
        assert_eq!(reply, instance.to_string(), "board {instance}'s call answered with another instance's tag");
        // Killed with a call of ours pending.
        let call = conn.clone();
        pending = Some(tokio::spawn(async move { call.call("/never", b"x".to_vec()).await.map(|_| ()) }));
        tokio::time::sleep(Duration::from_millis(1) + moments.below(Duration::from_millis(20))).await;
        board.kill().await;
    }
    let (max, median) = max_and_median(latencies);
    eprintln!(
        "{PTY_BOARD_RESTARTS} board processes killed mid-call and replaced; our first call after the new \
         board's HELLO: max {max:?}, median {median:?} (bound 100 ms + {FIRST_EXCHANGE_AIRTIME:?} airtime)"
    );
    assert!(!matches!(conn.state(), LinkState::Closed(_)), "{:?}", conn.state());
    stamps.abort();
    protocol.abort();
    drop(slave);
}

#[tokio::test(start_paused = true)]
async fn mismatched_framings_fail_at_once_naming_both() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let lossy = board(Config::lossy()).connect(a, "lossy");
    let stream = host(Config::stream()).connect(b, "stream");
    let started = Instant::now();
    for (conn, side) in [(&lossy, "lossy"), (&stream, "stream")] {
        let err = timeout(LIMIT, conn.ready()).await.unwrap().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Config::lossy"), "{side}: {text}");
        if side == "lossy" {
            assert!(text.contains("Config::stream"), "{side}: {text}");
        }
    }
    assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
}

/// A process of its own for the TCP restart tests: an endpoint on a runtime of its own, whose
/// tasks (drivers, accept loop) and sockets all go at once when it is killed, as with a process
/// killed with SIGKILL: no GOAWAY, the kernel closes the sockets.
struct TcpProcess {
    runtime: Option<tokio::runtime::Runtime>,
}

impl TcpProcess {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        Self { runtime: Some(runtime) }
    }

    /// Runs `work` on this process's runtime.
    async fn run<T: Send + 'static>(&self, work: impl std::future::Future<Output = T> + Send + 'static) -> T {
        self.runtime.as_ref().unwrap().spawn(work).await.unwrap()
    }

    /// A server answering `/who` with `instance`, listening on `addr` (port 0: any).
    async fn serve(instance: u64, addr: std::net::SocketAddr) -> (TcpProcess, std::net::SocketAddr) {
        let process = TcpProcess::new();
        let addr = process
            .run(async move {
                // The port of a killed server is taken again at once (SO_REUSEADDR), retried for
                // a moment: a child process of another test, forked while the killed server's
                // listener was open, holds a copy of it until it execs.
                let started = std::time::Instant::now();
                let listener = loop {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    socket.set_reuseaddr(true).unwrap();
                    match socket.bind(addr).and_then(|()| socket.listen(64)) {
                        Ok(listener) => break listener,
                        Err(err) if started.elapsed() < Duration::from_secs(5) => {
                            assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(err) => panic!("port {addr} still taken after 5 s: {err}"),
                    }
                };
                let addr = listener.local_addr().unwrap();
                let server = instance_endpoint(&instance.to_string(), Config::stream());
                tokio::spawn(async move { server.serve_tcp(listener).await });
                addr
            })
            .await;
        (process, addr)
    }

    /// SIGKILL: every task dropped, every socket closed, nothing sent.
    async fn kill(mut self) {
        let runtime = self.runtime.take().unwrap();
        tokio::task::spawn_blocking(move || drop(runtime)).await.unwrap();
    }
}

/// How many times the TCP restart tests restart the server or the client.
const TCP_RESTARTS: u64 = 20;

/// How long a pending call may take to fail once the peer's process is gone: the socket closes at
/// once, so anything near a keepalive deadline means the closing went unnoticed.
const AT_ONCE: Duration = Duration::from_secs(2);

/// Held by each TCP restart test: the other one's outgoing connections take ephemeral ports, one
/// of which could be the port a restarted server binds again.
static TCP_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_tcp_server_restarted_on_its_port_is_reconnected_to() {
    let _ports = TCP_PORTS.lock().await;
    let (mut server, addr) = TcpProcess::serve(0, "127.0.0.1:0".parse().unwrap()).await;
    let client = instance_endpoint("client", Config::stream());
    let link =
        netcore::connection::keep_connected(&client, "tcp", Config::stream(), Duration::from_millis(10), move || {
            tokio::net::TcpStream::connect(addr)
        });
    let mut conn = timeout(LIMIT, link.connected()).await.unwrap();
    let (mut failed_after, mut back_after) = (Vec::new(), Vec::new());
    for instance in 1..=TCP_RESTARTS {
        assert_eq!(conn.call("/who", Vec::new()).await.unwrap().text().unwrap(), (instance - 1).to_string());
        let pending = tokio::spawn({
            let conn = conn.clone();
            async move { conn.call("/never", b"x".to_vec()).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let killed = std::time::Instant::now();
        server.kill().await;
        // Pending calls fail at once, with a disconnect error.
        let err = timeout(AT_ONCE, pending).await.expect("a pending call outlived its server").unwrap().unwrap_err();
        assert!(err.is_disconnected(), "{err}");
        failed_after.push(killed.elapsed());
        // New calls on the dead connection fail too.
        assert!(conn.call("/who", Vec::new()).await.unwrap_err().is_disconnected());
        // A new server on the same port: the client reconnects, and its first call works.
        let started;
        (server, started) = (TcpProcess::serve(instance, addr).await.0, std::time::Instant::now());
        let next = timeout(LIMIT, link.connected()).await.expect("no reconnection");
        assert_ne!(next.id(), conn.id());
        conn = next;
        let who = timeout(LIMIT, conn.call("/who", Vec::new())).await.unwrap().unwrap();
        assert_eq!(who.text().unwrap(), instance.to_string(), "answered by a dead server");
        back_after.push(started.elapsed());
    }
    let ((fail_max, fail_median), (back_max, back_median)) = (max_and_median(failed_after), max_and_median(back_after));
    eprintln!(
        "{TCP_RESTARTS} server restarts: pending call failed after max {fail_max:?} (median {fail_median:?}); \
         first call answered max {back_max:?} (median {back_median:?}) after the new server started (retry 10 ms)"
    );
    server.kill().await;
}

#[tokio::test]
async fn a_tcp_server_sees_a_restarted_client_as_a_new_connection() {
    let _ports = TCP_PORTS.lock().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = instance_endpoint("server", Config::stream());
    let mut events = server.events();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve_tcp(listener).await }
    });
    let mut old: Option<Connection> = None;
    for instance in 0..TCP_RESTARTS {
        let client = TcpProcess::new();
        let tag = instance.to_string();
        let reply = client
            .run(async move {
                let endpoint = instance_endpoint(&tag, Config::stream());
                let conn = endpoint.connect_tcp(addr).await.unwrap();
                let reply = conn.call("/echo", tag.into_bytes()).await.unwrap().text().unwrap();
                // The endpoint lives on in the process, until it is killed.
                tokio::spawn(async move {
                    let _keep = (endpoint, conn);
                    std::future::pending::<()>().await
                });
                reply
            })
            .await;
        assert_eq!(reply, instance.to_string(), "the client's first call");
        let EndpointEvent::Connect { connection } = next_event(&mut events, "Connect").await else { unreachable!() };
        if let Some(old) = &old {
            assert_ne!(connection.id(), old.id(), "a restarted client is a new connection");
            let err = old.call("/who", Vec::new()).await.unwrap_err();
            assert!(err.is_disconnected(), "the old connection's calls fail: {err}");
        }
        let who = timeout(LIMIT, connection.call("/who", Vec::new())).await.unwrap().unwrap();
        assert_eq!(who.text().unwrap(), instance.to_string(), "answered by a dead client");
        // Killed with a call of the server's pending: it fails at once.
        let pending = tokio::spawn({
            let connection = connection.clone();
            async move { connection.call("/never", b"x".to_vec()).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        client.kill().await;
        let err = timeout(AT_ONCE, pending).await.expect("a pending call outlived its client").unwrap().unwrap_err();
        assert!(err.is_disconnected(), "{err}");
        next_event(&mut events, "Disconnect").await;
        old = Some(connection);
    }
}

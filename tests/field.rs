//! Field links (issue 10): a board and a host on one line, either restarting at any time, one
//! starting long before the other, the line holding bytes of dead sessions, settings that differ.
//!
//! Most tests run in-process on paused time over a simulated line: the board keeps its end, and a
//! host "process" is an endpoint on a fresh end spliced onto the line; killing it cuts the splice
//! (the board sees silence, as on a serial line). One test runs the host as a real child process
//! on a pseudo-terminal pair, killed with SIGKILL and started again.

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
    frame::encode(Framing::Lossy, &Frame::Hello(hello), &mut out);
    frame::encode(Framing::Lossy, &Frame::Ping { nonce: 4 }, &mut out);
    if goaway {
        let message = "no traffic within the keepalive deadline".into();
        frame::encode(Framing::Lossy, &Frame::GoAway { code: GoAwayCode::TIMEOUT, message }, &mut out);
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

/// The host of `a_host_process_killed_on_a_pty_is_replaced`: runs only as that test's child.
#[cfg(unix)]
#[tokio::test]
async fn field_host_process() {
    let Ok(path) = std::env::var("NETCORE_FIELD_HOST_PTY") else { return };
    let h = host(waiting());
    let conn = h.connect_serial(&path, 115_200).unwrap();
    conn.ready().await.unwrap();
    println!("host ready");
    std::future::pending::<()>().await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_host_process_killed_on_a_pty_is_replaced() {
    use serialport::SerialPort;
    use std::process::{Child, Command, Stdio};

    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let spawn_host = |path: &str| {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "field_host_process", "--nocapture", "--test-threads", "1"])
            .env("NETCORE_FIELD_HOST_PTY", path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Kill(child)
    };
    let (mut master, slave) = serialport::TTYPort::pair().unwrap();
    let path = slave.name().unwrap();
    master.set_timeout(Duration::from_millis(100)).unwrap();
    let reader = master.try_clone_native().unwrap();
    let io = netcore::transport::serial::from_port(reader, master).unwrap();
    let b = board(waiting());
    let mut events = b.events();
    let conn = b.connect_with(io, "pty board", waiting());

    let first = spawn_host(&path);
    timeout(Duration::from_secs(20), conn.ready()).await.unwrap().unwrap();
    assert_eq!(echo(&conn, b"1").await.unwrap(), b"1");
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("/never", b"x".to_vec()).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(first); // SIGKILL
    let _second = spawn_host(&path);
    let err = timeout(Duration::from_secs(20), pending).await.unwrap().unwrap().unwrap_err();
    assert_eq!(err, CallError::Disconnected(CloseReason::PeerRestarted));
    next_event(&mut events, "PeerRestarted").await;
    let reply = timeout(Duration::from_secs(5), echo(&conn, b"2")).await.unwrap().unwrap();
    assert_eq!(reply, b"2");
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

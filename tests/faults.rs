//! Faults and hostile peers against the tokio driver and the Endpoint, through `FaultyIo`:
//! nothing hangs, nothing leaks, errors are typed. Numbered as in the issue "Faults and hostile
//! input"; the sans-IO cases are in `netcore-runtime/tests/wire_faults.rs`. Time is paused, so
//! deadlines of seconds take no real time. Randomized cases print their seed on failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use netcore::endpoint::{CallError, Response};
use netcore::faults::{self, FaultPlan, FaultyIo, Rng, SeedGuard};
use netcore::frame::{self, Frame, Framing, Hello, Limits};
use netcore::session::{CloseReason, Config, Deadline, Keepalive, ProtocolError, PROTOCOL_VERSION};
use netcore::{CallOptions, Connection, Endpoint, GoAwayCode, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn server(config: Config) -> Endpoint {
    Endpoint::builder()
        .config(config)
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .route("/big", |req| async move { Ok(Response::bytes(vec![7u8; req.text()?.parse().unwrap_or(0)])) })
        .route("/sleep", |req| async move {
            let ms: u64 = req.text()?.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Response::text(format!("slept {ms}")))
        })
        .build()
        .unwrap()
}

fn client(config: Config) -> Endpoint {
    Endpoint::builder().config(config).build().unwrap()
}

fn keepalive(interval_ms: u64, max_missed: u32) -> Option<Keepalive> {
    Some(Keepalive { interval: Duration::from_millis(interval_ms), max_missed })
}

/// Waits (in paused time: instantly unless something is still running) until the drivers of
/// `links` have let go of their transports (`closed()` returns only then) and `endpoint` lists
/// no connection.
async fn drivers_gone(endpoint: &Endpoint, links: &[&Connection]) -> bool {
    tokio::time::timeout(Duration::from_secs(600), async {
        for link in links {
            link.closed().await;
        }
        while !endpoint.connections().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The transports are released just before the tasks return: let them return.
        tokio::time::sleep(Duration::from_millis(10)).await;
    })
    .await
    .is_ok()
}

// 4. EOF at any byte of a frame fails every pending call promptly with a disconnect error.
#[tokio::test(start_paused = true)]
async fn eof_at_every_byte_of_the_replies_fails_pending_calls() {
    let config = Config::stream().with_chunk_size(64);
    // The server sends about 250 bytes in all (HELLO and three replies); cut at each of them and
    // beyond.
    let total = 300;
    let mut outcomes = [0usize; 2];
    for cut in 0..total {
        let _guard = SeedGuard::new("eof at byte", cut);
        let (a, b) = tokio::io::duplex(1 << 16);
        let srv = server(config.clone());
        let served = srv.connect(b, "server");
        let cli = client(config.clone());
        let conn = cli.connect(FaultyIo::new(a, FaultPlan::new(0).with_truncate_after(cut)), "client");
        let started = Instant::now();
        let replies = tokio::time::timeout(Duration::from_secs(5), calls(&conn)).await.expect("no call hangs");
        assert!(started.elapsed() < Duration::from_secs(1), "failed promptly, not by a timer");
        // A cut beyond the last byte is no cut: close that link ourselves.
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.close()).await;
        for reply in replies {
            match reply {
                Ok(()) => outcomes[0] += 1,
                Err(err) => {
                    assert!(err.is_disconnected(), "cut at {cut}: {err}");
                    outcomes[1] += 1;
                }
            }
        }
        assert!(drivers_gone(&cli, &[&conn]).await, "the client's driver ended");
        assert!(drivers_gone(&srv, &[&served]).await, "the server's driver ended");
    }
    eprintln!(
        "EOF at each of {total} byte positions: {} calls answered, {} failed as disconnected",
        outcomes[0], outcomes[1]
    );
}

/// Three concurrent calls, one with a reply of several chunks.
async fn calls(conn: &Connection) -> Vec<Result<(), CallError>> {
    let one = conn.call("/echo", b"one".to_vec());
    let big = conn.call("/big", b"150".to_vec());
    let three = conn.call("/echo", b"three".to_vec());
    let (one, big, three) = tokio::join!(one, big, three);
    vec![
        one.map(|r| assert_eq!(&r.bytes().unwrap()[..], b"one")),
        big.map(|r| assert_eq!(r.bytes().unwrap().len(), 150)),
        three.map(|r| assert_eq!(&r.bytes().unwrap()[..], b"three")),
    ]
}

// 6. A peer that floods pings and never reads is closed; the rest of the endpoint is unaffected.
#[tokio::test(start_paused = true)]
async fn a_flooding_peer_is_closed_and_others_are_unaffected() {
    let srv = server(Config::stream());
    let (good_a, good_b) = tokio::io::duplex(1 << 16);
    srv.connect(good_b, "good");
    let good = client(Config::stream()).connect(good_a, "good client");
    good.ready().await.unwrap();

    let (mut hostile, victim) = tokio::io::duplex(4096);
    let flooded = srv.connect(victim, "flooded");
    let mut wire = BytesMut::new();
    frame::encode(Framing::Stream, &Frame::Hello(Hello::new(1, 1, 0, Limits::default())), &mut wire).unwrap();
    for nonce in 0..20_000 {
        frame::encode(Framing::Stream, &Frame::Ping { nonce }, &mut wire).unwrap();
    }
    // Write the flood without ever reading the pongs; the server stops reading us once it has
    // closed, so the write may not finish.
    let _ = tokio::time::timeout(Duration::from_secs(5), hostile.write_all(&wire)).await;
    assert_eq!(flooded.closed().await, CloseReason::Protocol(ProtocolError::ControlFlood));
    tokio::time::timeout(Duration::from_secs(60), async {
        while srv.connections().len() > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the flooded connection's driver ended");
    // It was told why, as far as it read.
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), hostile.read_to_end(&mut got)).await;
    assert!(!got.is_empty());
    let reply = good.call("/echo", b"still here".to_vec()).await.unwrap();
    assert_eq!(&reply.bytes().unwrap()[..], b"still here");
}

// 7. A reply after its call timed out never reaches another caller.
#[tokio::test(start_paused = true)]
async fn a_late_reply_never_reaches_the_next_call() {
    let srv = server(Config::stream());
    let (a, b) = tokio::io::duplex(1 << 16);
    srv.connect(b, "server");
    let conn = client(Config::stream()).connect(a, "client");
    let opts = CallOptions::default().timeout(Duration::from_millis(50));
    let err = conn.call_with(Route::Name("/sleep".into()), b"100".to_vec(), opts).await.unwrap_err();
    assert_eq!(err, CallError::TimedOut { route: "/sleep".into(), after: Duration::from_millis(50) });
    // The next call is answered with its own reply, while the late one would be due.
    let next = conn.call("/sleep", b"80".to_vec()).await.unwrap();
    assert_eq!(next.text().unwrap(), "slept 80");
    let again = conn.call("/echo", b"mine".to_vec()).await.unwrap();
    assert_eq!(&again.bytes().unwrap()[..], b"mine");
}

// 8. A peer that sends one byte every 10 s, or never reads: deadlines fire, buffers stay bounded,
// and the driver ends.
#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_is_timed_out_and_released() {
    let (a, mut never_reads) = tokio::io::duplex(1024);
    let cli = client(Config::stream().with_keepalive(keepalive(1000, 3)));
    let conn = cli.connect(a, "never reads");
    // The peer says HELLO, then neither reads nor writes: our 1 MiB call fills the pipe.
    let mut wire = BytesMut::new();
    frame::encode(Framing::Stream, &Frame::Hello(Hello::new(1, 1, 0, Limits::default())), &mut wire).unwrap();
    never_reads.write_all(&wire).await.unwrap();
    conn.ready().await.unwrap();
    let call = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("/echo", vec![1u8; 1 << 20]).await }
    });
    let started = Instant::now();
    let reason = conn.closed().await;
    assert!(matches!(reason, CloseReason::TimedOut { deadline: Deadline::Keepalive(_), .. }), "{reason}");
    let detected = started.elapsed();
    assert!(call.await.unwrap().unwrap_err().is_disconnected());
    assert!(drivers_gone(&cli, &[&conn]).await, "the driver gives up writing to a peer that never reads");
    eprintln!("a peer that never reads: closed after {detected:?}, driver released after {:?}", started.elapsed());
    assert!(started.elapsed() <= Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn a_byte_every_ten_seconds_fails_calls_on_time() {
    let (a, mut peer) = tokio::io::duplex(1 << 16);
    let cli = client(Config::stream().with_keepalive(keepalive(1000, 3)));
    let conn = cli.connect(a, "dripping");
    // The peer's HELLO arrives whole, then its frames drip one byte every 10 s.
    let mut wire = BytesMut::new();
    frame::encode(Framing::Stream, &Frame::Hello(Hello::new(1, 1, 0, Limits::default())), &mut wire).unwrap();
    peer.write_all(&wire).await.unwrap();
    conn.ready().await.unwrap();
    let dripper = tokio::spawn(async move {
        for n in 0u8.. {
            if peer.write_all(&[n | 0x80]).await.is_err() {
                return;
            }
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(10), peer.read(&mut sink)).await;
        }
    });
    let opts = CallOptions::default().timeout(Duration::from_secs(2));
    let started = Instant::now();
    let err = conn.call_with(Route::Name("/x".into()), b"x".to_vec(), opts).await.unwrap_err();
    assert_eq!(err, CallError::TimedOut { route: "/x".into(), after: Duration::from_secs(2) });
    assert!(started.elapsed() <= Duration::from_secs(3));
    let reason = conn.closed().await;
    assert!(matches!(reason, CloseReason::TimedOut { deadline: Deadline::Keepalive(_), .. }), "{reason}");
    assert!(started.elapsed() <= Duration::from_secs(5), "closed after {:?}", started.elapsed());
    assert!(drivers_gone(&cli, &[&conn]).await);
    dripper.abort();
}

// 10. Fingerprint mismatch, data before the handshake, an unknown version: a clear error naming
// both sides' values, on each side.
#[tokio::test(start_paused = true)]
async fn handshake_errors_name_both_sides_at_the_driver() {
    let srv = server(Config::stream().with_fingerprint(0x1111));
    let (a, b) = tokio::io::duplex(4096);
    let server_side = srv.connect(b, "server");
    let client_side = client(Config::stream().with_fingerprint(0x2222)).connect(a, "client");
    for (conn, ours, theirs) in [(&client_side, 0x2222, 0x1111), (&server_side, 0x1111, 0x2222)] {
        let err = conn.ready().await.unwrap_err();
        let CallError::Disconnected(CloseReason::Protocol(ProtocolError::Fingerprint { ours: o, theirs: t })) = err
        else {
            panic!("{err}")
        };
        assert_eq!((o, t), (ours, theirs));
        assert!(err.to_string().contains("0x0000000000001111") && err.to_string().contains("0x0000000000002222"));
    }

    for (what, hello) in [
        ("version", Hello::new(7, 9, 0, Limits::default())),
        ("data first", Hello::new(PROTOCOL_VERSION, PROTOCOL_VERSION, 0, Limits::default())),
    ] {
        let (a, mut peer) = tokio::io::duplex(4096);
        let conn = client(Config::stream()).connect(a, "client");
        let mut wire = BytesMut::new();
        if what == "data first" {
            frame::encode(Framing::Stream, &Frame::Ping { nonce: 1 }, &mut wire).unwrap();
        }
        frame::encode(Framing::Stream, &Frame::Hello(hello), &mut wire).unwrap();
        peer.write_all(&wire).await.unwrap();
        let err = conn.ready().await.unwrap_err().to_string();
        let expected = match what {
            "version" => "we speak 1..=1, the peer 7..=9",
            _ => "expected HELLO, received frame type 0x06",
        };
        assert!(err.contains(expected), "{what}: {err}");
        // The peer is told why, after our HELLO.
        let (code, message) = goaway_after_hello(&mut peer).await;
        assert_eq!(code, if what == "version" { GoAwayCode::VERSION } else { GoAwayCode::PROTOCOL });
        assert!(message.contains(expected));
    }
}

// A peer that never says HELLO: the handshake deadline closes the link, and every message, ours
// and the GOAWAY's, says it was the handshake's deadline, not keepalive's.
#[tokio::test(start_paused = true)]
async fn a_peer_that_never_says_hello_fails_the_handshake_deadline() {
    let (a, mut peer) = tokio::io::duplex(4096);
    let conn = client(Config::stream()).connect(a, "mute");
    let started = Instant::now();
    let err = conn.ready().await.unwrap_err();
    assert_eq!(started.elapsed(), Config::stream().handshake_timeout);
    let text = "handshake timed out: no HELLO from the peer within 10 s (Config::handshake_timeout)";
    assert_eq!(err.to_string(), format!("disconnected: {text}"));
    let reason = conn.closed().await;
    assert_eq!(reason, CloseReason::TimedOut { deadline: Deadline::Handshake, after: Duration::from_secs(10) });
    let (code, message) = goaway_after_hello(&mut peer).await;
    assert_eq!((code, message.as_str()), (GoAwayCode::TIMEOUT, text));
}

/// Reads what a closed connection sent its raw peer: its HELLO, then the GOAWAY's code and text.
async fn goaway_after_hello(peer: &mut tokio::io::DuplexStream) -> (GoAwayCode, String) {
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    let mut decoder = frame::Decoder::new(Framing::Stream, 1 << 16);
    decoder.extend(&got);
    assert!(matches!(decoder.decode(), Ok(Some(Frame::Hello(_)))));
    let Ok(Some(Frame::GoAway { code, message })) = decoder.decode() else { panic!("no GOAWAY in {got:?}") };
    (code, message)
}

// The keepalive deadline, at the driver, says keepalive and how long the peer was silent.
#[tokio::test(start_paused = true)]
async fn a_silent_peer_fails_the_keepalive_deadline_and_says_so() {
    let (a, mut peer) = tokio::io::duplex(1 << 16);
    let conn = client(Config::stream().with_keepalive(keepalive(1000, 3))).connect(a, "silent");
    let mut wire = BytesMut::new();
    frame::encode(Framing::Stream, &Frame::Hello(Hello::new(1, 1, 0, Limits::default())), &mut wire).unwrap();
    peer.write_all(&wire).await.unwrap();
    conn.ready().await.unwrap();
    let pending = conn.call("/echo", b"x".to_vec()).await.unwrap_err();
    let text = "peer silent for 4 s: keepalive deadline (1 s interval × 3 missed + 1)";
    assert_eq!(pending.to_string(), format!("disconnected: {text}"));
    assert!(pending.is_disconnected() && !pending.is_timeout());
    assert!(conn.closed().await.is_timeout());
}

// 11. Serial silence (a cable pulled, no EOF): keepalive detects it within the configured number of
// missed pings; calls fail; the endpoint connects again when the port comes back.
#[tokio::test(start_paused = true)]
async fn a_pulled_serial_cable_is_detected_and_the_port_reconnects() {
    let interval = Duration::from_millis(500);
    let config = Config::lossy().with_keepalive(Some(Keepalive { interval, max_missed: 3 }));
    let board = server(config.clone());
    let host = client(config.clone());
    let (a, b) = tokio::io::duplex(1 << 16);
    board.connect(b, "board");
    let link = FaultyIo::new(a, FaultPlan::new(0));
    let cable = link.cable();
    let conn = host.connect(link, "serial host");
    assert_eq!(&conn.call("/echo", b"hi".to_vec()).await.unwrap().bytes().unwrap()[..], b"hi");

    cable.pull();
    let pulled = Instant::now();
    let pending = conn.call("/sleep", b"10".to_vec()).await.unwrap_err();
    let detected = pulled.elapsed();
    let keepalive = Deadline::Keepalive(Keepalive { interval, max_missed: 3 });
    assert!(
        matches!(&pending, CallError::Disconnected(CloseReason::TimedOut { deadline, .. }) if *deadline == keepalive),
        "{pending}"
    );
    // (max_missed + 1) intervals of silence, measured from the last frame heard.
    assert!(detected <= interval * 4 + Duration::from_millis(50), "detected after {detected:?}");
    eprintln!("silent serial peer (keepalive {interval:?} x 3 missed): call failed after {detected:?}");
    assert!(drivers_gone(&host, &[&conn]).await);
    cable.replug();

    // The port comes back: connect again on the same endpoints.
    let (a, b) = tokio::io::duplex(1 << 16);
    board.connect(b, "board again");
    let again = host.connect(a, "serial host again");
    assert_eq!(&again.call("/echo", b"back".to_vec()).await.unwrap().bytes().unwrap()[..], b"back");
}

#[tokio::test(start_paused = true)]
async fn keep_connected_reopens_the_port_when_it_comes_back() {
    use std::sync::atomic::AtomicBool;
    let interval = Duration::from_millis(500);
    let config = Config::lossy().with_keepalive(Some(Keepalive { interval, max_missed: 3 }));
    let board = server(config.clone());
    let host = client(config.clone());
    // The "port": present or not; each open makes a new link to the board, and keeps its cable.
    let present = Arc::new(AtomicBool::new(true));
    let cable = Arc::new(std::sync::Mutex::new(None));
    let open = {
        let (present, cable, board) = (present.clone(), cable.clone(), board.clone());
        move || {
            let result = if present.load(Ordering::SeqCst) {
                let (a, b) = tokio::io::duplex(1 << 16);
                board.connect(b, "board");
                let link = FaultyIo::new(a, FaultPlan::new(0));
                *cable.lock().unwrap() = Some(link.cable());
                Ok(link)
            } else {
                Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such device"))
            };
            std::future::ready(result)
        }
    };
    let link = netcore::connection::keep_connected(&host, "serial", config, Duration::from_millis(200), open);
    let conn = link.connected().await;
    assert_eq!(&conn.call("/echo", b"1".to_vec()).await.unwrap().bytes().unwrap()[..], b"1");

    // Unplugged: silence, then the device node disappears for 3 s.
    cable.lock().unwrap().as_ref().unwrap().pull();
    present.store(false, Ordering::SeqCst);
    let unplugged = Instant::now();
    let err = conn.call("/echo", b"2".to_vec()).await.unwrap_err();
    assert!(
        matches!(err, CallError::Disconnected(CloseReason::TimedOut { deadline: Deadline::Keepalive(_), .. })),
        "{err}"
    );
    let detected = unplugged.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = link.attempts();
    assert!(attempts >= 10, "it kept trying while the port was gone: {attempts}");
    present.store(true, Ordering::SeqCst);
    let plugged = Instant::now();
    let again = link.connected().await;
    let reconnected = plugged.elapsed();
    assert_ne!(again.id(), conn.id());
    assert_eq!(&again.call("/echo", b"3".to_vec()).await.unwrap().bytes().unwrap()[..], b"3");
    eprintln!("unplugged: detected after {detected:?}; replugged: connected again after {reconnected:?}");
    assert!(reconnected <= Duration::from_millis(300));
    // Shutting the endpoint down stops the reconnection loop.
    host.shutdown().await;
    assert!(drivers_gone(&host, &[&conn, &again]).await);
}

// Reliable delivery (docs/PROTOCOL.md §16) through the driver: calls over a noisy line both ways.
#[tokio::test(start_paused = true)]
async fn calls_complete_over_a_noisy_line_with_reliable_delivery() {
    let keepalive = Some(Keepalive { interval: Duration::from_secs(1), max_missed: 10 });
    let config = Config::lossy()
        .with_chunk_size(32)
        .with_reliable(Some(netcore::session::Reliability::default()))
        .with_keepalive(keepalive);
    let board = server(config.clone());
    let host = client(config);
    let (a, b) = tokio::io::duplex(1 << 16);
    board.connect(FaultyIo::new(b, FaultPlan::serial_noise(1).with_split_reads(16)), "board");
    let conn = host.connect(FaultyIo::new(a, FaultPlan::serial_noise(2).with_split_reads(16)), "host");
    let calls = (0..300u32).map(|n| {
        let conn = conn.clone();
        tokio::spawn(async move {
            let body = vec![n as u8; 1 + n as usize % 90];
            let reply = conn.call("/echo", body.clone()).await?;
            Ok::<_, CallError>(reply.bytes().unwrap() == body)
        })
    });
    let mut correct = 0;
    for call in calls {
        correct += usize::from(call.await.unwrap().unwrap());
    }
    assert_eq!(correct, 300);
}

// 12. Disconnects at random points leave no task, file or connection behind.
#[test]
fn random_disconnects_leave_nothing_behind() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let count = 2_000;
    let started = std::time::Instant::now();
    let answered = Arc::new(AtomicUsize::new(0));
    runtime.block_on(async {
        for seed in faults::seeds(count) {
            let _guard = SeedGuard::new("driver disconnect", seed);
            disconnect_once(seed, dir.path(), &answered).await;
        }
    });
    let alive = runtime.metrics().num_alive_tasks();
    assert_eq!(alive, 0, "tasks left behind");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "spill files left behind");
    eprintln!(
        "{count} driver-level disconnects at random points in {:?}: {} calls answered, 0 tasks and 0 files left",
        started.elapsed(),
        answered.load(Ordering::Relaxed)
    );
}

async fn disconnect_once(seed: u64, dir: &std::path::Path, answered: &AtomicUsize) {
    let mut rng = Rng::new(seed);
    let lossy = rng.chance(0.5);
    let limits = Limits { inline_limit: 1000, ..Limits::default() };
    let base = if lossy { Config::lossy() } else { Config::stream().with_chunk_size(256) };
    let config = base.with_limits(limits).with_spill_dir(dir).with_keepalive(keepalive(1000, 2));
    let srv = server(config.clone());
    let cli = client(config);
    let (a, b) = tokio::io::duplex(4096);
    let at = rng.below(6000);
    let plan = match rng.below(4) {
        0 => FaultPlan::new(seed).with_truncate_after(at),
        1 => FaultPlan::new(seed).with_reset_after(at),
        2 => FaultPlan::new(seed).with_half_close_after(at),
        _ => FaultPlan::new(seed).with_stall_after(at),
    }
    .with_split_reads(1 + rng.below(64) as usize);
    let (a, b): (Box<dyn Io>, Box<dyn Io>) = if rng.chance(0.5) {
        (Box::new(FaultyIo::new(a, plan)), Box::new(b))
    } else {
        (Box::new(a), Box::new(FaultyIo::new(b, plan)))
    };
    let served = srv.connect(b, "server");
    let conn = cli.connect(a, "client");
    let mut calls = Vec::new();
    for n in 0..1 + rng.below(4) {
        let conn = conn.clone();
        let size = [3, 500, 2500][rng.below(3) as usize];
        let (route, body) =
            if rng.chance(0.5) { ("/echo", vec![n as u8; size]) } else { ("/big", size.to_string().into_bytes()) };
        calls.push(tokio::spawn(async move { conn.call(route, body).await }));
    }
    for call in calls {
        match tokio::time::timeout(Duration::from_secs(60), call).await.expect("a call hung").unwrap() {
            Ok(_) => {
                answered.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => assert!(err.is_disconnected() || matches!(err, CallError::Cancelled(_)), "{err}"),
        }
    }
    // Whatever survived is closed now, like an application that gives up.
    tokio::time::timeout(Duration::from_secs(60), conn.close()).await.expect("close completes");
    assert!(drivers_gone(&cli, &[&conn]).await && drivers_gone(&srv, &[&served]).await, "a driver outlived its link");
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

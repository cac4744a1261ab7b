//! The Endpoint over real transports: duplex, TCP, Unix sockets, blocking functions, pty serial.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netcore::endpoint::{Blueprint, CallError, EndpointEvent, ErrorCode, EventKind, HandlerError, Response};
use netcore::session::{Config, Payload};
use netcore::{CallOptions, Endpoint, Limits, Priority, Route};

fn echo_server() -> Endpoint {
    Endpoint::builder()
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .route("/len", |req| async move { Ok(Response::text(req.bytes()?.len().to_string())) })
        .route("/sleep", |req| async move {
            let ms: u64 = req.text()?.parse().map_err(|_| HandlerError::bad_request("ms"))?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Response::text("slept"))
        })
        .build()
        .unwrap()
}

fn client() -> Endpoint {
    Endpoint::builder().build().unwrap()
}

/// A connected (client connection, server endpoint) pair over an in-memory duplex.
fn duplex_pair(server: &Endpoint) -> netcore::Connection {
    let (a, b) = tokio::io::duplex(256 * 1024);
    server.connect(b, "duplex server side");
    client().connect(a, "duplex client side")
}

#[tokio::test]
async fn concurrent_calls_on_one_connection() {
    let server = echo_server();
    let conn = duplex_pair(&server);
    conn.ready().await.unwrap();
    let calls = (0..200u32).map(|n| {
        let conn = conn.clone();
        tokio::spawn(async move { conn.call("/echo", n.to_le_bytes().to_vec()).await.unwrap().bytes().unwrap() })
    });
    for (n, call) in calls.enumerate() {
        assert_eq!(&call.await.unwrap()[..], &(n as u32).to_le_bytes());
    }
}

#[tokio::test]
async fn unknown_routes_and_handler_errors_reach_the_caller() {
    let server = Endpoint::builder()
        .route("/fail", |_req| async move { Err::<Response, _>(HandlerError::handler("boom")) })
        .route("/panic", |_req| async move { panic!("handler bug") })
        .build()
        .unwrap();
    let conn = duplex_pair(&server);
    let err = conn.call("/nowhere", b"x".to_vec()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Remote(e) if e.code == ErrorCode::NOT_FOUND && e.message.contains("/nowhere")),
        "{err}"
    );
    let err = conn.call("/fail", b"x".to_vec()).await.unwrap_err();
    assert_eq!(err, CallError::Remote(HandlerError::handler("boom")));
    let err = conn.call("/panic", b"x".to_vec()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Remote(e) if e.code == ErrorCode::INTERNAL && e.message.contains("handler bug")),
        "{err}"
    );
    // The connection survives all of it.
    assert!(conn.call("/fail", Vec::new()).await.is_err());
}

#[tokio::test]
async fn a_small_call_completes_during_a_64_mib_transfer() {
    let server = echo_server();
    let (a, b) = tokio::io::duplex(64 * 1024);
    server.connect(b, "server");
    let conn = client().connect(a, "client");
    let big = vec![7u8; 64 << 20];
    let bulk = {
        let conn = conn.clone();
        tokio::spawn(async move {
            let opts = CallOptions::default().priority(Priority::LOW);
            conn.call_with(Route::Name("/len".into()), big, opts).await.unwrap().text().unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!bulk.is_finished(), "the transfer is still running");
    let started = std::time::Instant::now();
    let small = conn.call("/echo", b"tiny".to_vec()).await.unwrap();
    let small_took = started.elapsed();
    assert_eq!(&small.bytes().unwrap()[..], b"tiny");
    assert!(!bulk.is_finished(), "the small call did not wait for the transfer");
    assert_eq!(bulk.await.unwrap(), (64 << 20).to_string());
    eprintln!("small call during the transfer took {small_took:?}");
}

#[tokio::test]
async fn dropping_a_call_cancels_the_remote_handler() {
    let finished = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let (f, c) = (finished.clone(), cancelled.clone());
    let server = Endpoint::builder()
        .route("/slow", move |_req| {
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok(Response::empty())
            }
        })
        .on(EventKind::Cancel, move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let conn = duplex_pair(&server);
    let call = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("/slow", Vec::new()).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    call.abort();
    tokio::time::timeout(Duration::from_secs(5), async {
        while cancelled.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the server hears of the cancel");
    assert_eq!(finished.load(Ordering::SeqCst), 0, "the handler was aborted");
    assert_eq!(&conn.call("/slow-not-registered", Vec::new()).await.unwrap_err().to_string()[..14], "remote error: ");
}

#[tokio::test]
async fn a_timeout_fails_the_call_and_cancels_the_handler() {
    let server = echo_server();
    let mut events = server.events();
    let conn = duplex_pair(&server);
    let opts = CallOptions::default().timeout(Duration::from_millis(50));
    let err = conn.call_with(Route::Name("/sleep".into()), b"10000".to_vec(), opts).await.unwrap_err();
    assert_eq!(err, CallError::TimedOut { route: "/sleep".into(), after: Duration::from_millis(50) });
    assert_eq!(err.to_string(), "call to /sleep timed out after 50 ms (the call's timeout)");
    let cancel = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let EndpointEvent::Cancel { reason, .. } = events.recv().await.unwrap() {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(cancel, netcore::CancelReason::TIMED_OUT);
}

#[tokio::test]
async fn a_vanished_peer_fails_pending_calls_promptly() {
    // client <-> proxy <-> server; killing the proxy is a cable pulled mid-message.
    let server = echo_server();
    let (a, mut proxy_a) = tokio::io::duplex(64 * 1024);
    let (mut proxy_b, b) = tokio::io::duplex(64 * 1024);
    server.connect(b, "server");
    let proxy = tokio::spawn(async move { tokio::io::copy_bidirectional(&mut proxy_a, &mut proxy_b).await });
    let conn = client().connect(a, "client");
    conn.ready().await.unwrap();
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("/sleep", b"60000".to_vec()).await }
    });
    let upload = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("/len", vec![1u8; 32 << 20]).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    proxy.abort();
    let err = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap().unwrap_err();
    assert!(err.is_disconnected(), "{err}");
    let err = tokio::time::timeout(Duration::from_secs(5), upload).await.unwrap().unwrap().unwrap_err();
    assert!(err.is_disconnected(), "{err}");
}

#[tokio::test]
async fn blueprints_hooks_middleware_and_error_handler() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let users = Blueprint::new("/user")
        .route("/get", |req| async move {
            let name = req.extensions().get::<String>().cloned().unwrap_or_default();
            Ok(Response::text(format!("user {} for {name}", req.text()?)))
        })
        .route("/fail", |_req| async move { Err::<Response, _>(HandlerError::handler("no such user")) });
    let l1 = log.clone();
    let l2 = log.clone();
    let server = Endpoint::builder()
        .blueprint(users)
        .before_request(move |req| {
            l1.lock().unwrap().push(format!("before {}", req.route()));
            let who = req.headers().get("auth").cloned().ok_or_else(|| HandlerError::new(ErrorCode(401), "no auth"))?;
            req.extensions_mut().insert(who);
            Ok(())
        })
        .after_request(move |info, resp| {
            l2.lock().unwrap().push(format!("after {}", info.route));
            resp.headers_mut().insert("server".into(), "netcore".into());
        })
        .on_error(|info, err| {
            if err.message == "no such user" {
                Ok(Response::text(format!("fallback for {}", info.route)))
            } else {
                Err(err)
            }
        })
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(200)))
        .build()
        .unwrap();
    let conn = duplex_pair(&server);
    let opts = CallOptions::default().header("auth", "alice");
    let reply = conn.call_with(Route::Name("/user/get".into()), b"42".to_vec(), opts.clone()).await.unwrap();
    assert_eq!(reply.text().unwrap(), "user 42 for alice");
    assert_eq!(reply.headers().get("server").map(String::as_str), Some("netcore"));
    let reply = conn.call_with(Route::Name("/user/fail".into()), Vec::new(), opts).await.unwrap();
    assert_eq!(reply.text().unwrap(), "fallback for /user/fail");
    let err = conn.call("/user/get", b"1".to_vec()).await.unwrap_err();
    assert!(matches!(&err, CallError::Remote(e) if e.code == ErrorCode(401)), "{err}");
    // Route lookup comes first: an unknown route is NOT_FOUND, not the hook's 401, and the hook
    // does not run for it.
    let err = conn.call("/user/nowhere", b"1".to_vec()).await.unwrap_err();
    assert!(matches!(&err, CallError::Remote(e) if e.code == ErrorCode::NOT_FOUND), "{err}");
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        ["before /user/get", "after /user/get", "before /user/fail", "after /user/fail", "before /user/get"]
    );
}

#[tokio::test]
async fn middleware_timeouts_become_timeout_errors() {
    let server = Endpoint::builder()
        .route("/slow", |_req| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(Response::empty())
        })
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(30)))
        .build()
        .unwrap();
    let conn = duplex_pair(&server);
    let err = conn.call("/slow", Vec::new()).await.unwrap_err();
    assert!(matches!(&err, CallError::Remote(e) if e.code == ErrorCode::TIMEOUT), "{err}");
}

#[test]
fn route_collisions_and_duplicates_are_build_errors() {
    let dup = Endpoint::builder()
        .route("/a", |_r| async { Ok(Response::empty()) })
        .route("/a", |_r| async { Ok(Response::empty()) });
    assert!(matches!(dup.build(), Err(netcore::endpoint::BuildError::DuplicateRoute(r)) if r == "/a"));
}

#[tokio::test]
async fn default_handler_gets_unknown_routes_by_name() {
    let server = Endpoint::builder()
        .default_handler(|req| async move { Ok(Response::text(format!("default got {}", req.route()))) })
        .build()
        .unwrap();
    let conn = duplex_pair(&server);
    assert_eq!(conn.call("/whatever", Vec::new()).await.unwrap().text().unwrap(), "default got /whatever");
}

#[tokio::test]
async fn either_side_can_call_the_other() {
    let server = Endpoint::builder()
        .route("/ask-back", |req| async move {
            let answer =
                req.connection().call("/whoami", Vec::new()).await.map_err(|e| HandlerError::handler(e.to_string()))?;
            Ok(Response::text(format!("client says {}", answer.text().unwrap())))
        })
        .build()
        .unwrap();
    let client =
        Endpoint::builder().route("/whoami", |_req| async { Ok(Response::text("the client")) }).build().unwrap();
    let (a, b) = tokio::io::duplex(4096);
    server.connect(b, "server");
    let conn = client.connect(a, "client");
    assert_eq!(conn.call("/ask-back", Vec::new()).await.unwrap().text().unwrap(), "client says the client");
}

#[tokio::test]
async fn many_clients_on_one_tcp_server_each_answered_on_its_own_connection() {
    let server = Endpoint::builder()
        .route("/who", |req| async move { Ok(Response::text(req.connection_id().0.to_string())) })
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve_tcp(listener).await }
    });
    let mut ids = std::collections::HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..20 {
        let conn = client().connect_tcp(addr).await.unwrap();
        let a = conn.call("/who", Vec::new()).await.unwrap().text().unwrap();
        let b = conn.call("/who", Vec::new()).await.unwrap().text().unwrap();
        assert_eq!(a, b, "one connection, one identity");
        ids.insert(a);
        clients.push(conn);
    }
    assert_eq!(ids.len(), 20);
    assert_eq!(server.connections().len(), 20);
    server.shutdown().await;
    serving.await.unwrap().unwrap();
    for conn in clients {
        assert!(matches!(conn.closed().await, netcore::session::CloseReason::Peer { .. }));
    }
}

#[cfg(unix)]
#[tokio::test]
async fn unix_socket_transport() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netcore.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = echo_server();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve_unix(listener).await }
    });
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let conn = client().connect(stream, "unix");
    assert_eq!(&conn.call("/echo", b"over unix".to_vec()).await.unwrap().bytes().unwrap()[..], b"over unix");
}

#[tokio::test]
async fn blocking_function_pair_transport() {
    // The user gives only recv and send; here they are the two ends of std's in-process pipes.
    let (server_io, client_recv, client_send) = {
        let (to_client_tx, to_client_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let (to_server_tx, to_server_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let server_io =
            netcore::transport::BlockingIo::new(channel_recv(to_server_rx), channel_send(to_client_tx)).unwrap();
        (server_io, channel_recv(to_client_rx), channel_send(to_server_tx))
    };
    echo_server().connect(server_io, "fn pair server");
    let client_io = netcore::transport::BlockingIo::new(client_recv, client_send).unwrap();
    let conn = client().connect(client_io, "fn pair client");
    assert_eq!(&conn.call("/echo", vec![9u8; 100_000]).await.unwrap().bytes().unwrap()[..], &vec![9u8; 100_000][..]);
}

fn channel_recv(rx: std::sync::mpsc::Receiver<Vec<u8>>) -> impl FnMut(&mut [u8]) -> std::io::Result<usize> + Send {
    let mut pending = Vec::new();
    move |buf| {
        if pending.is_empty() {
            match rx.recv() {
                Ok(bytes) => pending = bytes,
                Err(_) => return Ok(0),
            }
        }
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        pending.drain(..n);
        Ok(n)
    }
}

fn channel_send(tx: std::sync::mpsc::Sender<Vec<u8>>) -> impl FnMut(&[u8]) -> std::io::Result<()> + Send {
    move |bytes| tx.send(bytes.to_vec()).map_err(|_| std::io::ErrorKind::BrokenPipe.into())
}

#[cfg(unix)]
#[tokio::test]
async fn serial_link_on_a_pseudo_terminal_pair() {
    let (a, b) = netcore::transport::serial::pty_pair().unwrap();
    echo_server().connect_with(b, "pty board", Config::lossy());
    let conn = client().connect_with(a, "pty host", Config::lossy());
    let reply = conn.call("/echo", vec![0x00, 0x01, 0xff, 0x00, 0x7e]).await.unwrap();
    assert_eq!(&reply.bytes().unwrap()[..], &[0x00, 0x01, 0xff, 0x00, 0x7e]);
    let reply = conn.call("/len", vec![3u8; 20_000]).await.unwrap();
    assert_eq!(reply.text().unwrap(), "20000");
}

#[tokio::test]
async fn file_backed_reception_above_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { inline_limit: 64 * 1024, ..Limits::default() };
    let server = Endpoint::builder()
        .config(Config::stream().with_limits(limits).with_spill_dir(dir.path()))
        .route("/store", |req| async move {
            let on_disk = matches!(req.payload(), Payload::File(_));
            let len = req.payload().len()?;
            Ok(Response::text(format!("{on_disk} {len}")))
        })
        .build()
        .unwrap();
    let conn = duplex_pair(&server);
    let (progress_tx, progress) = tokio::sync::watch::channel(netcore::session::Progress { done: 0, total: 0 });
    let opts = CallOptions::default().progress(progress_tx);
    let reply = conn.call_with(Route::Name("/store".into()), vec![5u8; 3 << 20], opts).await.unwrap();
    assert_eq!(reply.text().unwrap(), "true 3145728");
    assert_eq!(progress.borrow().total, 3 << 20, "progress was reported");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the spill file went with the request");
}

#[tokio::test]
async fn scheduler_and_cache_and_lifecycle_events() {
    let ticks = Arc::new(AtomicUsize::new(0));
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    let server = Endpoint::builder().on(EventKind::Start, move |_| e.lock().unwrap().push("start")).build().unwrap();
    server.start();
    server.start();
    assert_eq!(*events.lock().unwrap(), ["start"], "start fires once");
    let t = ticks.clone();
    let periodic = server.scheduler().every(Duration::from_millis(10), move || {
        let t = t.clone();
        async move {
            t.fetch_add(1, Ordering::SeqCst);
        }
    });
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let once = server.scheduler().after(Duration::from_millis(30), async move {
        f.fetch_add(1, Ordering::SeqCst);
    });
    let f2 = fired.clone();
    let cancelled = server.scheduler().after(Duration::from_millis(30), async move {
        f2.fetch_add(100, Ordering::SeqCst);
    });
    cancelled.cancel();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert!(!once.is_cancelled());
    let seen = ticks.load(Ordering::SeqCst);
    assert!(seen >= 3, "ticked {seen} times");
    periodic.cancel();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let after_cancel = ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ticks.load(Ordering::SeqCst), after_cancel, "a cancelled task does not run");

    server.cache().insert("user:1", String::from("alice"), Some(Duration::from_millis(40)));
    assert_eq!(server.cache().get::<String>("user:1").as_deref(), Some("alice"));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(server.cache().get::<String>("user:1"), None);
}

#[tokio::test]
async fn a_fingerprint_mismatch_is_a_clear_error_at_connect() {
    let server = Endpoint::builder().config(Config::stream().with_fingerprint(0x1111)).build().unwrap();
    let client = Endpoint::builder().config(Config::stream().with_fingerprint(0x2222)).build().unwrap();
    let (a, b) = tokio::io::duplex(4096);
    server.connect(b, "server");
    let err = client.connect(a, "client").ready().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("0x0000000000002222") && text.contains("0x0000000000001111"), "{text}");
}

#[tokio::test]
async fn graceful_shutdown_drains_calls_in_flight() {
    let server = echo_server();
    let conn = duplex_pair(&server);
    conn.ready().await.unwrap();
    let slow = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("/sleep", b"100".to_vec()).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.shutdown().await;
    assert_eq!(slow.await.unwrap().unwrap().text().unwrap(), "slept", "the call in flight finished");
    assert!(conn.call("/echo", Vec::new()).await.unwrap_err().is_disconnected());
}

#[tokio::test(start_paused = true)]
async fn keepalive_detects_a_silent_peer() {
    // The peer says HELLO and then nothing more: a pulled cable with no EOF. (Before the HELLO
    // only the handshake deadline applies, §10.)
    let (a, mut silent) = tokio::io::duplex(4096);
    let mut hello = bytes::BytesMut::new();
    let limits = Limits::default();
    netcore::frame::encode(
        netcore::Framing::Stream,
        &netcore::frame::Frame::Hello(netcore::frame::Hello::new(1, 1, 0, limits)),
        &mut hello,
    )
    .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut silent, &hello).await.unwrap();
    let keepalive = netcore::session::Keepalive { interval: Duration::from_secs(1), max_missed: 3 };
    let config = Config::stream().with_keepalive(Some(keepalive));
    let conn = client().connect_with(a, "silent", config);
    let call = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("/x", Vec::new()).await }
    });
    let started = tokio::time::Instant::now();
    let reason = conn.closed().await;
    let keepalive = netcore::session::Deadline::Keepalive(keepalive);
    assert!(
        matches!(&reason, netcore::session::CloseReason::TimedOut { deadline, .. } if *deadline == keepalive),
        "{reason}"
    );
    assert!(started.elapsed() <= Duration::from_secs(5), "1 s × (3 missed + 1), not later");
    assert!(call.await.unwrap().unwrap_err().is_disconnected());
}

#[tokio::test]
async fn one_way_handlers_that_held_every_slot_let_the_rest_run_when_they_finish() {
    // 300 one-way messages to a handler that waits: 256 run (the per-connection handler limit),
    // the rest wait with the peer's credit. When the handlers finish, the waiting ones must run
    // even though the peer, out of credit, sends nothing more that would wake the connection.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let (g, h) = (gate.clone(), handled.clone());
    let server = Endpoint::builder()
        .route("/wait", move |_req| {
            let (gate, handled) = (g.clone(), h.clone());
            async move {
                let _permit = gate.acquire().await.expect("gate open");
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(Response::empty())
            }
        })
        .build()
        .unwrap();
    let conn = duplex_pair(&server);
    conn.ready().await.unwrap();
    let sends = tokio::spawn({
        let conn = conn.clone();
        async move {
            for _ in 0..300 {
                conn.notify("/wait", vec![7u8; 4096]).await.unwrap();
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    gate.add_permits(1_000);
    tokio::time::timeout(Duration::from_secs(10), sends).await.expect("the sender got its credit back").unwrap();
    for _ in 0..1_000 {
        if handled.load(Ordering::SeqCst) == 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handled.load(Ordering::SeqCst), 300);
}

#[tokio::test]
async fn a_refused_tcp_connection_names_the_address() {
    // A port that was just free: nothing listens on it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let err = client().connect_tcp(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().starts_with(&format!("cannot connect to {addr}: ")), "{err}");
    assert!(format!("{err:?}").contains(&addr.to_string()), "the Debug form `main` prints names it too: {err:?}");
}

#[tokio::test]
async fn an_unknown_route_called_by_id_is_named_by_the_caller() {
    let conn = duplex_pair(&echo_server());
    let route = "/board/read";
    let method = netcore::typed::MethodSpec {
        route: netcore::route_id(route),
        name: route,
        hash: 0,
        priority: None,
        timeout_ms: None,
        context: false,
    };
    let err = netcore::typed::call::<_, f64>(&conn, method, &CallOptions::default(), &()).await.unwrap_err();
    assert!(matches!(&err, CallError::Remote(e) if e.code == ErrorCode::NOT_FOUND), "{err}");
    let id = netcore::route_id(route);
    assert_eq!(
        err.to_string(),
        format!("remote error: NOT_FOUND: no route /board/read (route id #{id:08x}); the peer does not serve it")
    );
}

#[tokio::test]
async fn handlers_reach_the_endpoint_cache() {
    let server = Endpoint::builder()
        .route("/visit", |req| async move {
            let visits = req.cache().get::<u64>("visits").unwrap_or(0) + 1;
            req.cache().insert("visits", visits, None);
            Ok(Response::text(visits.to_string()))
        })
        .build()
        .unwrap();
    let conn = duplex_pair(&server);
    for n in 1..=3u64 {
        assert_eq!(conn.call("/visit", Vec::new()).await.unwrap().text().unwrap(), n.to_string());
    }
    assert_eq!(server.cache().get::<u64>("visits"), Some(3), "the handlers' cache is the endpoint's");
}

#[tokio::test]
async fn cached_routes_answer_a_repeated_payload_without_the_handler() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (r1, r2) = (runs.clone(), runs.clone());
    let server = Endpoint::builder()
        .route("/square", move |req| {
            let runs = r1.clone();
            async move {
                let n = runs.fetch_add(1, Ordering::SeqCst);
                let x: u64 = req.text()?.parse().map_err(|_| HandlerError::bad_request("a number"))?;
                Ok(Response::text(format!("{} (run {n})", x * x)).with_header("computed", n.to_string()))
            }
        })
        .route("/fails", move |_req| {
            let runs = r2.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Err::<Response, _>(HandlerError::handler("not cached"))
            }
        })
        .cache_responses("/square", Duration::from_secs(3600))
        .cache_responses("/fails", Duration::from_secs(3600))
        .build()
        .unwrap();
    let conn = duplex_pair(&server);
    let first = conn.call("/square", b"7".to_vec()).await.unwrap();
    assert_eq!(first.text().unwrap(), "49 (run 0)");
    let again = conn.call("/square", b"7".to_vec()).await.unwrap();
    assert_eq!(again.text().unwrap(), "49 (run 0)", "the stored answer");
    assert_eq!(again.headers().get("computed").map(String::as_str), Some("0"), "with its headers");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Another payload is another key.
    assert_eq!(conn.call("/square", b"8".to_vec()).await.unwrap().text().unwrap(), "64 (run 1)");
    // Errors are not kept.
    for _ in 0..2 {
        assert!(conn.call("/fails", Vec::new()).await.is_err());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    // Removing everything from the endpoint's cache drops the stored answers too.
    server.cache().clear();
    assert_eq!(conn.call("/square", b"7".to_vec()).await.unwrap().text().unwrap(), "49 (run 4)");
}

#[test]
fn cached_routes_must_exist_and_store_their_requests() {
    let err = Endpoint::builder().cache_responses("/nowhere", Duration::from_secs(1)).build().unwrap_err();
    assert_eq!(err, netcore::endpoint::BuildError::UnknownRoute("/nowhere".into()));
    let err = Endpoint::builder()
        .streaming_route("/upload", |_req, _body| async move { Ok(Response::empty()) })
        .cache_responses("/upload", Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("\"/upload\" streams its requests"), "{err}");
}

#[tokio::test]
async fn call_and_call_with_take_the_same_routes() {
    let conn = duplex_pair(&echo_server());
    let id = Route::Id(netcore::route_id("/echo"));
    let name = String::from("/echo");
    let opts = CallOptions::default;
    let replies = [
        conn.call("/echo", b"a".to_vec()).await.unwrap(),
        conn.call(&name, b"b".to_vec()).await.unwrap(),
        conn.call(id.clone(), b"c".to_vec()).await.unwrap(),
        conn.call_with("/echo", b"d".to_vec(), opts()).await.unwrap(),
        conn.call_with(name.clone(), b"e".to_vec(), opts()).await.unwrap(),
        conn.call_with(id, b"f".to_vec(), opts()).await.unwrap(),
    ];
    let texts: Vec<String> = replies.iter().map(|r| r.text().unwrap()).collect();
    assert_eq!(texts, ["a", "b", "c", "d", "e", "f"]);
    conn.notify("/echo", b"g".to_vec()).await.unwrap();
    conn.notify_with(&name, b"h".to_vec(), opts()).await.unwrap();
}

#[test]
fn limits_are_found_where_config_is() {
    let limits = netcore::session::Limits { max_frame: 4096, ..netcore::session::Limits::default() };
    let config = Config::stream().with_limits(limits);
    assert_eq!(config.limits.max_frame, 4096);
}

//! Streams from server to client (`-> stream<T>`, `-> stream<bytes>`) and both ways, through both
//! front ends (a schema client against a macro server and the other way round), over duplex, TCP
//! and a paced pty: round trips, an error mid-stream, cancelling from either end, a slow consumer,
//! client sources of unknown length.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use netcore::endpoint::{BodyStream, ErrorCode};
use netcore::session::Config;
use netcore::typed::{ByteStream, Incoming, Items, Stream};
use netcore::{CallError, Context, Endpoint, HandlerError};
use tokio::sync::mpsc;

use from_schema::Reading;
use netcore_example_schemas::streams as from_schema;

mod from_macro {
    use super::Reading;

    /// The same service as `schemas/streams.ncs`, declared with the macro.
    #[netcore::service(prefix = "/board")]
    pub trait Board {
        async fn subscribe(&self, sensor: String, count: u64) -> netcore::Stream<Reading>;
        async fn flaky(&self, ok: u64) -> netcore::Stream<Reading>;
        #[netcore(priority = 1)]
        async fn log(&self, name: String, len: u64) -> netcore::ByteStream;
        async fn echo(
            &self,
            cx: &netcore::Context,
            factor: f64,
            readings: netcore::typed::Items<Reading>,
        ) -> netcore::Stream<Reading>;
        async fn mirror(&self, data: netcore::endpoint::BodyStream) -> netcore::ByteStream;
    }
}

/// The bytes of log `name` at `offset`.
fn log_byte(name: &str, offset: u64) -> u8 {
    (offset % 251) as u8 ^ name.len() as u8
}

fn reading(sensor: &str, seq: u64) -> Reading {
    Reading { sensor: sensor.to_owned(), seq, value: seq as f64 * 0.5 }
}

/// The implementation both traits delegate to; tells the test how each producer ended.
#[derive(Clone)]
struct Svc {
    /// `(sensor, items sent)` when a subscription's producer stopped because its caller went away.
    stopped: mpsc::UnboundedSender<(String, u64)>,
    /// Items a subscription's producer handed on, for the slow-consumer bound.
    produced: Arc<AtomicU64>,
    /// The route, when an echo's context said it was called off.
    called_off: mpsc::UnboundedSender<String>,
}

impl Svc {
    fn subscribe(&self, sensor: String, count: u64) -> Stream<Reading> {
        let (tx, stream) = Stream::channel(4);
        let (stopped, produced) = (self.stopped.clone(), self.produced.clone());
        tokio::spawn(async move {
            let mut seq = 0;
            while count == 0 || seq < count {
                if tx.send(reading(&sensor, seq)).await.is_err() {
                    let _ = stopped.send((sensor, seq));
                    return;
                }
                produced.fetch_add(1, Ordering::SeqCst);
                seq += 1;
            }
        });
        stream
    }

    fn flaky(&self, ok: u64) -> Stream<Reading> {
        let items = futures::stream::iter(0..=ok).map(move |seq| match seq < ok {
            true => Ok(reading("flaky", seq)),
            false => Err(HandlerError::new(ErrorCode::UNAVAILABLE, format!("sensor lost after {ok} readings"))),
        });
        Stream::try_new(items)
    }

    fn log(&self, name: String, len: u64) -> Result<ByteStream, HandlerError> {
        if name == "missing" {
            return Err(HandlerError::new(ErrorCode::NOT_FOUND, "no log named missing"));
        }
        let chunk = 4096u64;
        let chunks = futures::stream::iter((0..len.div_ceil(chunk)).map(move |i| {
            let bytes: Vec<u8> = (i * chunk..((i + 1) * chunk).min(len)).map(|at| log_byte(&name, at)).collect();
            Ok::<_, HandlerError>(bytes::Bytes::from(bytes))
        }));
        Ok(ByteStream::new(chunks))
    }

    fn echo(&self, cx: &Context, factor: f64, readings: Items<Reading>) -> Stream<Reading> {
        assert_eq!(cx.route(), "/board/echo");
        // Told when the exchange is called off, also after this handler returned its stream.
        let (cancellation, called_off) = (cx.cancellation(), self.called_off.clone());
        tokio::spawn(async move {
            cancellation.cancelled().await;
            let _ = called_off.send("/board/echo".to_owned());
        });
        let scaled = readings.into_stream().map(move |r| r.map(|r| Reading { value: r.value * factor, ..r }));
        if factor == 0.0 {
            // Answers the first three and ends, while the request may still be coming.
            return Stream::try_new(scaled.take(3));
        }
        Stream::try_new(scaled)
    }

    fn mirror(&self, data: BodyStream) -> ByteStream {
        ByteStream::new(data)
    }
}

struct Macro(Svc);

impl from_macro::Board for Macro {
    async fn subscribe(&self, sensor: String, count: u64) -> Result<Stream<Reading>, HandlerError> {
        Ok(self.0.subscribe(sensor, count))
    }
    async fn flaky(&self, ok: u64) -> Result<Stream<Reading>, HandlerError> {
        Ok(self.0.flaky(ok))
    }
    async fn log(&self, name: String, len: u64) -> Result<ByteStream, HandlerError> {
        self.0.log(name, len)
    }
    async fn echo(&self, cx: &Context, factor: f64, readings: Items<Reading>) -> Result<Stream<Reading>, HandlerError> {
        Ok(self.0.echo(cx, factor, readings))
    }
    async fn mirror(&self, data: BodyStream) -> Result<ByteStream, HandlerError> {
        Ok(self.0.mirror(data))
    }
}

struct Schema(Svc);

impl from_schema::Board for Schema {
    async fn subscribe(&self, sensor: String, count: u64) -> Result<Stream<Reading>, HandlerError> {
        Ok(self.0.subscribe(sensor, count))
    }
    async fn flaky(&self, ok: u64) -> Result<Stream<Reading>, HandlerError> {
        Ok(self.0.flaky(ok))
    }
    async fn log(&self, name: String, len: u64) -> Result<ByteStream, HandlerError> {
        self.0.log(name, len)
    }
    async fn echo(&self, cx: &Context, factor: f64, readings: Items<Reading>) -> Result<Stream<Reading>, HandlerError> {
        Ok(self.0.echo(cx, factor, readings))
    }
    async fn mirror(&self, data: BodyStream) -> Result<ByteStream, HandlerError> {
        Ok(self.0.mirror(data))
    }
}

struct Observed {
    stopped: mpsc::UnboundedReceiver<(String, u64)>,
    produced: Arc<AtomicU64>,
    called_off: mpsc::UnboundedReceiver<String>,
}

fn svc() -> (Svc, Observed) {
    let (stopped, stopped_rx) = mpsc::unbounded_channel();
    let (called_off, called_off_rx) = mpsc::unbounded_channel();
    let produced = Arc::new(AtomicU64::new(0));
    (
        Svc { stopped, produced: produced.clone(), called_off },
        Observed { stopped: stopped_rx, produced, called_off: called_off_rx },
    )
}

fn endpoints(blueprint: netcore::Blueprint, config: Config) -> (Endpoint, Endpoint) {
    let server = Endpoint::builder().config(config.clone()).blueprint(blueprint).build().unwrap();
    let client = Endpoint::builder().config(config).build().unwrap();
    (server, client)
}

/// A client connection to `blueprint` over an in-memory pipe of `pipe` bytes.
fn link(blueprint: netcore::Blueprint, config: Config, pipe: usize) -> (netcore::Connection, Endpoint) {
    let (server, client) = endpoints(blueprint, config);
    let (a, b) = tokio::io::duplex(pipe);
    server.connect(b, "server");
    (client.connect(a, "client"), server)
}

/// The same over TCP on the loopback.
async fn link_tcp(blueprint: netcore::Blueprint) -> netcore::Connection {
    let (server, client) = endpoints(blueprint, Config::stream());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { server.serve_tcp(listener).await });
    client.connect_tcp(addr).await.unwrap()
}

async fn all<T: serde::de::DeserializeOwned>(mut items: Incoming<T>) -> Result<Vec<T>, CallError> {
    let mut out = Vec::new();
    while let Some(item) = items.next().await {
        out.push(item?);
    }
    Ok(out)
}

/// Round trips of every method, with the client of front end `$client`.
macro_rules! round_trips {
    ($client:ty, $conn:expr) => {{
        let board = <$client>::new($conn);
        // Items, in order, and the empty stream.
        let readings = all(board.subscribe("t0".into(), 500).await.unwrap()).await.unwrap();
        assert_eq!(readings, (0..500).map(|seq| reading("t0", seq)).collect::<Vec<_>>());
        assert!(all(board.echo(1.0, Vec::new()).await.unwrap()).await.unwrap().is_empty(), "an empty stream");
        // An error mid-stream: the items before it, then the handler's error, typed.
        let mut flaky = board.flaky(3).await.unwrap();
        for seq in 0..3 {
            assert_eq!(flaky.next().await.unwrap().unwrap(), reading("flaky", seq));
        }
        match flaky.next().await {
            Some(Err(CallError::Remote(err))) => {
                assert_eq!((err.code, err.message.as_str()), (ErrorCode::UNAVAILABLE, "sensor lost after 3 readings"))
            }
            other => panic!("expected the handler's error, got {other:?}"),
        }
        assert!(flaky.next().await.is_none());
        // A failure before the stream started is the call's error.
        let err = board.log("missing".into(), 10).await.unwrap_err();
        assert!(matches!(&err, CallError::Remote(e) if e.code == ErrorCode::NOT_FOUND), "{err:?}");
        // Bytes: 1 MiB of a log, and an empty one.
        let log = board.log("boot".into(), 1 << 20).await.unwrap().bytes().await.unwrap();
        assert_eq!(log.len(), 1 << 20);
        assert!(log.iter().enumerate().all(|(at, b)| *b == log_byte("boot", at as u64)));
        assert!(board.log("none".into(), 0).await.unwrap().bytes().await.unwrap().is_empty());
        // Both ways: items from a repeatable iterator and from an async stream of unknown length.
        let sent: Vec<Reading> = (0..300).map(|seq| reading("e", seq)).collect();
        let echoed = all(board.echo(2.0, sent.clone()).await.unwrap()).await.unwrap();
        let doubled: Vec<Reading> = sent.iter().map(|r| Reading { value: r.value * 2.0, ..r.clone() }).collect();
        assert_eq!(echoed, doubled);
        let (tx, rx) = mpsc::channel(4);
        let source = netcore::typed::from_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let mut echoed = board.echo(3.0, source).await.unwrap();
        for seq in 0..50 {
            // Each item comes back before the next is sent: the answer streams while the request does.
            tx.send(reading("u", seq)).await.unwrap();
            assert_eq!(echoed.next().await.unwrap().unwrap().value, seq as f64 * 0.5 * 3.0);
        }
        drop(tx);
        assert!(echoed.next().await.is_none(), "the source's end ends the echo");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let mirrored = board.mirror(data.clone()).await.unwrap().bytes().await.unwrap();
        assert_eq!(mirrored, data);
    }};
}

#[tokio::test]
async fn schema_client_round_trips_with_a_macro_server_over_duplex() {
    let (svc, _seen) = svc();
    let (conn, _server) = link(from_macro::BoardServer::blueprint(Macro(svc)), Config::stream(), 64 * 1024);
    round_trips!(from_schema::BoardClient, conn);
}

#[tokio::test]
async fn macro_client_round_trips_with_a_schema_server_over_tcp() {
    let (svc, _seen) = svc();
    let conn = link_tcp(from_schema::BoardServer::blueprint(Schema(svc))).await;
    round_trips!(from_macro::BoardClient, conn);
}

#[test]
fn both_front_ends_declare_the_same_methods() {
    assert_eq!(from_schema::BoardServer::fingerprint(), from_macro::BoardServer::fingerprint());
    assert_eq!(from_schema::BoardServer::echo_hash(), from_macro::BoardServer::echo_hash());
    assert_eq!(from_schema::BoardServer::log_hash(), from_macro::BoardServer::log_hash());
}

/// A paced pty pair (unix): the board on the slave side, the host on the master side, both paced
/// to `rate` bytes/s as a UART would be.
#[cfg(unix)]
fn pty_link(blueprint: netcore::Blueprint, rate: u64) -> (netcore::Connection, Endpoint) {
    use serialport::SerialPort;
    let (mut master, mut slave) = serialport::TTYPort::pair().unwrap();
    master.set_timeout(Duration::from_millis(100)).unwrap();
    slave.set_timeout(Duration::from_millis(100)).unwrap();
    let (master_reader, slave_reader) = (master.try_clone_native().unwrap(), slave.try_clone_native().unwrap());
    let host_io =
        netcore::transport::Paced::new(netcore::transport::serial::from_port(master_reader, master).unwrap(), rate);
    let board_io =
        netcore::transport::Paced::new(netcore::transport::serial::from_port(slave_reader, slave).unwrap(), rate);
    let (server, client) = endpoints(blueprint, Config::lossy());
    server.connect(board_io, "board");
    (client.connect(host_io, "host"), server)
}

#[cfg(unix)]
#[tokio::test]
async fn subscriptions_and_downloads_cross_a_paced_pty() {
    let (svc, _seen) = svc();
    let (conn, _board) = pty_link(from_macro::BoardServer::blueprint(Macro(svc)), 11_520);
    let board = from_schema::BoardClient::new(conn);
    let readings = all(board.subscribe("uart".into(), 40).await.unwrap()).await.unwrap();
    assert_eq!(readings, (0..40).map(|seq| reading("uart", seq)).collect::<Vec<_>>());
    let log = board.log("uart".into(), 8 * 1024).await.unwrap().bytes().await.unwrap();
    assert!(log.len() == 8 * 1024 && log.iter().enumerate().all(|(at, b)| *b == log_byte("uart", at as u64)));
    let mut flaky = board.flaky(2).await.unwrap();
    assert!(flaky.next().await.unwrap().is_ok() && flaky.next().await.unwrap().is_ok());
    assert!(matches!(flaky.next().await, Some(Err(CallError::Remote(_)))));
}

#[tokio::test]
async fn dropping_the_client_end_stops_the_producer() {
    for schema_client in [true, false] {
        let (svc, mut seen) = svc();
        let (conn, _server) = link(from_schema::BoardServer::blueprint(Schema(svc)), Config::stream(), 64 * 1024);
        let mut readings = if schema_client {
            from_schema::BoardClient::new(conn.clone()).subscribe("forever".into(), 0).await.unwrap()
        } else {
            from_macro::BoardClient::new(conn.clone()).subscribe("forever".into(), 0).await.unwrap()
        };
        for seq in 0..10 {
            assert_eq!(readings.next().await.unwrap().unwrap().seq, seq);
        }
        drop(readings);
        // The exchange is cancelled both ways: the handler's producer sees its reader go away.
        let (sensor, sent) = seen.stopped.recv().await.unwrap();
        assert_eq!(sensor, "forever");
        assert!(sent >= 10, "{sent}");
        // The connection stays usable.
        let again = all(from_schema::BoardClient::new(conn).subscribe("t".into(), 3).await.unwrap()).await.unwrap();
        assert_eq!(again.len(), 3);
    }
}

/// A transport that fails once `cut` is set: the link breaking under a stream.
struct Cut<IO> {
    io: IO,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Cut<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.cut.load(Ordering::SeqCst) {
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Cut<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.cut.load(Ordering::SeqCst) {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_link_breaking_mid_stream_is_an_error_not_an_end() {
    for bytes in [false, true] {
        let (svc, _seen) = svc();
        let (server, client) = endpoints(from_macro::BoardServer::blueprint(Macro(svc)), Config::stream());
        let (a, b) = tokio::io::duplex(64 * 1024);
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        server.connect(Cut { io: b, cut: cut.clone() }, "server");
        let board = from_schema::BoardClient::new(client.connect(a, "client"));
        let end = if bytes {
            let mut log = board.log("big".into(), 1 << 40).await.unwrap();
            assert!(log.chunk().await.unwrap().is_some());
            cut.store(true, Ordering::SeqCst);
            loop {
                match log.chunk().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("a cut download ended as if complete after {} bytes", log.received()),
                    Err(err) => break err,
                }
            }
        } else {
            let mut readings = board.subscribe("forever".into(), 0).await.unwrap();
            assert!(readings.next().await.unwrap().is_ok());
            cut.store(true, Ordering::SeqCst);
            loop {
                match readings.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => break err,
                    None => panic!("a cut stream ended as if complete after {} items", readings.count()),
                }
            }
        };
        println!("cut under a {} stream: {end}", if bytes { "byte" } else { "item" });
    }
}

#[tokio::test]
async fn a_slow_consumer_bounds_what_the_producer_runs_ahead() {
    const WINDOW: u64 = 64 * 1024;
    let limits = netcore::Limits { window: WINDOW, inline_limit: 16 * 1024, ..netcore::Limits::default() };
    let (svc, seen) = svc();
    let pipe = 16 * 1024;
    let (conn, _server) =
        link(from_macro::BoardServer::blueprint(Macro(svc)), Config::stream().with_limits(limits), pipe);
    let mut readings = from_schema::BoardClient::new(conn).subscribe("slow".into(), 0).await.unwrap();
    let item = netcore::codec::encode(&reading("slow", 1 << 40)).unwrap().len() as u64 + 1;
    let mut ahead_max = 0;
    for read in 1..=20_000u64 {
        assert!(readings.next().await.unwrap().is_ok());
        if read % 500 == 0 {
            // Let the producer run as far ahead as credit allows.
            tokio::time::sleep(Duration::from_millis(5)).await;
            ahead_max = ahead_max.max(seen.produced.load(Ordering::SeqCst).saturating_sub(read) * item);
        }
    }
    // Produced but unread: the window, the pipe, a read buffer (64 KiB) of frame overhead, what the
    // session asked ahead of the link (SUPPLY_AHEAD), one gathered chunk of records (16 KiB) and the
    // producer's channel (4 items), as tests/streamed_replies.rs bounds an untyped download.
    let bound = WINDOW + pipe as u64 + 64 * 1024 + netcore::session::SUPPLY_AHEAD + 16 * 1024 + 4 * item;
    println!("producer ahead of a slow consumer by at most {ahead_max} bytes (bound {bound})");
    assert!(ahead_max <= bound, "the producer ran {ahead_max} bytes ahead");
}

/// An endless source of readings for a bidirectional call, and the sender that feeds it.
fn endless() -> (mpsc::Sender<Reading>, netcore::typed::FromStream<impl futures::Stream<Item = Reading> + Send>) {
    let (tx, rx) = mpsc::channel(4);
    let source = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (tx, netcore::typed::from_stream(source))
}

#[tokio::test]
async fn a_bidirectional_call_is_cancelled_both_ways_from_either_end() {
    let (svc, mut seen) = svc();
    let (conn, _server) = link(from_schema::BoardServer::blueprint(Schema(svc)), Config::stream(), 64 * 1024);
    let board = from_macro::BoardClient::new(conn);
    // The client drops its end of the answer: its request stops too (its source is dropped), and
    // the handler's context says the exchange was called off.
    let (tx, source) = endless();
    let mut echoed = board.echo(1.0, source).await.unwrap();
    for seq in 0..5 {
        tx.send(reading("c", seq)).await.unwrap();
        assert_eq!(echoed.next().await.unwrap().unwrap().seq, seq);
    }
    drop(echoed);
    tx.closed().await;
    assert_eq!(seen.called_off.recv().await.unwrap(), "/board/echo");
    // The handler ends its answer early: the rest of the request is not sent.
    let (tx, source) = endless();
    let mut echoed = board.echo(0.0, source).await.unwrap();
    let feeder = tokio::spawn(async move {
        let mut sent = 0;
        while tx.send(reading("h", sent)).await.is_ok() {
            sent += 1;
        }
        sent
    });
    for seq in 0..3 {
        assert_eq!(echoed.next().await.unwrap().unwrap().seq, seq);
    }
    assert!(echoed.next().await.is_none(), "the handler's end is the answer's end");
    let sent = feeder.await.unwrap();
    // An answer that ended is not called off.
    assert!(seen.called_off.try_recv().is_err());
    println!("the client's source stopped after {sent} items, the handler having answered 3");
    // The connection is still usable.
    assert_eq!(all(board.subscribe("after".into(), 2).await.unwrap()).await.unwrap().len(), 2);
}

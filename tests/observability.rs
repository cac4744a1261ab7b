//! `Connection::stats`, `Endpoint::stats` and the runtime's `tracing` events, against traffic
//! whose counts are known (README "Observability").

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::BytesMut;
use netcore::frame::lossy::LossyDecoder;
use netcore::frame::{self, Frame, Framing, Hello, Limits};
use netcore::session::Config;
use netcore::session::Reliability;
use netcore::{CallError, CallOptions, Connection, Endpoint, Response, Route};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// An echo server and a client endpoint linked in process; the server's handle and the client's.
fn pair() -> (Endpoint, Connection, Endpoint, Connection) {
    let server = Endpoint::builder()
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .route("/never", |_req| async move { std::future::pending().await })
        .build()
        .unwrap();
    let client = Endpoint::builder().build().unwrap();
    let (a, b) = tokio::io::duplex(256 * 1024);
    let server_end = server.connect(a, "server end");
    let client_end = client.connect(b, "client end");
    (server, server_end, client, client_end)
}

#[tokio::test]
async fn counters_match_known_traffic() {
    const N: u64 = 20;
    const K: usize = 1000;
    let (server, server_end, client, link) = pair();
    for _ in 0..N {
        link.call("/echo", vec![7u8; K]).await.unwrap();
    }
    let ours = link.stats().await;
    assert!(ours.running);
    assert_eq!(ours.sessions, 1);
    assert_eq!(ours.counters.messages_out, N, "{ours:?}");
    assert_eq!(ours.counters.messages_in, N, "{ours:?}");
    assert!(ours.counters.bytes_out >= N * K as u64, "{ours:?}");
    assert!(ours.counters.bytes_in >= N * K as u64, "{ours:?}");
    assert!(ours.counters.frames_out > N, "HELLO and N requests: {ours:?}");
    assert_eq!(ours.counters.frames_dropped, 0);
    assert_eq!(ours.counters.cancels_sent, 0);
    assert_eq!(ours.pending_calls, 0);
    assert!(ours.credit.send.is_some() && ours.credit.recv.is_some(), "the stream framing uses credit: {ours:?}");
    // Every answer has arrived, so the server has counted every request.
    let theirs = server_end.stats().await;
    assert_eq!(theirs.counters.messages_in, N);
    assert_eq!(theirs.counters.messages_out, N);
    assert_eq!(theirs.counters.frames_in, ours.counters.frames_out, "nothing in flight either way");

    let rtt = link.ping().await.unwrap();
    let after = link.stats().await;
    assert_eq!(after.counters.last_rtt, Some(rtt));
    assert_eq!(after.counters.pings_sent, 1);

    let total = client.stats().await;
    assert_eq!((total.live, total.closed), (1, 0));
    assert_eq!(total.counters.messages_out, N);
    assert_eq!(total.counters.last_rtt, Some(rtt));

    link.close().await;
    let closed = link.stats().await;
    assert!(!closed.running);
    assert_eq!(closed.counters.messages_out, N);
    // The server's end closes when the GOAWAY arrives; then only the totals remain.
    server_end.closed().await;
    let served = server.stats().await;
    assert_eq!((served.live, served.closed), (0, 1), "{served:?}");
    assert_eq!(served.counters.messages_in, N);
    assert_eq!(served.counters.messages_out, N);
    let total = client.stats().await;
    assert_eq!((total.live, total.closed), (0, 1));
    assert_eq!(total.counters.messages_out, N, "a closed connection's counters stay in the totals");
}

#[tokio::test]
async fn a_timed_out_call_counts_a_cancel_on_both_sides() {
    let (_server, server_end, _client, link) = pair();
    let opts = CallOptions::default().timeout(Duration::from_millis(20));
    let err = link.call_with(Route::Name("/never".into()), vec![1u8; 10], opts).await.unwrap_err();
    assert!(matches!(err, CallError::TimedOut { .. }), "{err}");
    // The CANCEL is a control frame: it goes before this call's HEAD, and the server reads it
    // first, so once this answer is in, the server has counted the cancel.
    link.call("/echo", vec![2u8; 10]).await.unwrap();
    let ours = link.stats().await;
    assert_eq!(ours.counters.cancels_sent, 1, "{ours:?}");
    assert_eq!(ours.counters.cancels_received, 0);
    let theirs = server_end.stats().await;
    assert_eq!(theirs.counters.cancels_received, 1, "{theirs:?}");
    assert_eq!(theirs.counters.cancels_sent, 0);
    assert_eq!(theirs.running_handlers, 0, "the cancelled handler was aborted");
}

/// A raw peer on the lossy framing: our HELLO, one damaged frame, then a PING whose PONG shows
/// that everything before it was read.
#[tokio::test]
async fn a_damaged_frame_counts_once_and_is_traced() {
    let records = Captured::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(records.layer()));
    let endpoint = Endpoint::builder().build().unwrap();
    let (ours, mut raw) = tokio::io::duplex(64 * 1024);
    let link = endpoint.connect_with(ours, "lossy link", Config::lossy().with_keepalive(None));
    let mut wire = BytesMut::new();
    let limits = Limits { window: 0, ..Limits::default() };
    frame::encode(Framing::Lossy, &Frame::Hello(Hello::new(1, 1, 0, limits)), &mut wire).unwrap();
    let mut damaged = BytesMut::new();
    frame::encode(Framing::Lossy, &Frame::Ping { nonce: 7 }, &mut damaged).unwrap();
    let at = damaged.len() / 2;
    damaged[at] = if damaged[at] == 0xff { 0xfe } else { damaged[at].wrapping_add(1).max(1) };
    wire.extend_from_slice(&damaged);
    frame::encode(Framing::Lossy, &Frame::Ping { nonce: 42 }, &mut wire).unwrap();
    raw.write_all(&wire).await.unwrap();
    read_until_pong(&mut raw, 42).await;

    let stats = link.stats().await;
    assert_eq!(stats.counters.frames_dropped, 1, "{stats:?}");
    assert!(stats.counters.bytes_discarded > 0, "{stats:?}");
    assert!(stats.credit.send.is_none() && stats.credit.recv.is_none(), "no credit on the lossy framing");
    let resync = records.find("damaged frames dropped; resynchronised at the next delimiter");
    assert_eq!(resync.level, Level::DEBUG);
    assert_eq!(resync.fields["frames"], "1");
    assert_eq!(resync.spans["label"], "lossy link");
}

/// Reads the peer's frames until a PONG with `nonce`.
async fn read_until_pong(raw: &mut DuplexStream, nonce: u64) {
    let mut decoder = LossyDecoder::new(64 * 1024);
    let mut buffer = [0u8; 4096];
    loop {
        while let Ok(Some(frame)) = decoder.decode() {
            if frame == (Frame::Pong { nonce }) {
                return;
            }
        }
        let n = raw.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the link ended before the PONG");
        decoder.extend(&buffer[..n]);
    }
}

/// A transport that loses the first write carrying a sequenced HEAD (reliable delivery, §16),
/// as a noisy serial line would.
struct LosesOneHead<T> {
    inner: T,
    lost: bool,
}

impl<T: AsyncRead + Unpin> AsyncRead for LosesOneHead<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LosesOneHead<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if !self.lost {
            // The lossy driver writes one frame at a time.
            let mut decoder = LossyDecoder::new(64 * 1024);
            decoder.extend(buf);
            if let Ok(Some(Frame::Seq { frame, .. })) = decoder.decode() {
                if matches!(*frame, Frame::Head(_)) {
                    self.lost = true;
                    return Poll::Ready(Ok(buf.len()));
                }
            }
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test(start_paused = true)]
async fn a_retransmission_counts_and_is_traced() {
    let records = Captured::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(records.layer()));
    let config = Config::lossy().with_reliable(Some(Reliability::default()));
    let server = Endpoint::builder()
        .config(config.clone())
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .build()
        .unwrap();
    let client = Endpoint::builder().config(config).build().unwrap();
    let (a, b) = tokio::io::duplex(64 * 1024);
    server.connect(a, "server end");
    let link = client.connect(LosesOneHead { inner: b, lost: false }, "noisy client end");
    link.ready().await.unwrap();
    assert!(link.is_reliable());
    let reply = link.call("/echo", vec![5u8; 100]).await.unwrap();
    assert_eq!(reply.bytes().unwrap().len(), 100, "the lost HEAD was sent again");
    let stats = link.stats().await;
    assert!(stats.counters.retransmitted >= 1, "{stats:?}");
    let retransmitted = records.all("retransmitted");
    assert!(!retransmitted.is_empty(), "{:#?}", records.0.lock().unwrap());
    assert_eq!(retransmitted[0].level, Level::DEBUG);
    assert_eq!(retransmitted[0].spans["label"], "noisy client end");
}

#[tokio::test]
async fn handshake_and_goaway_are_traced() {
    let records = Captured::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(records.layer()));
    let (_server, server_end, _client, link) = pair();
    link.ready().await.unwrap();
    server_end.ready().await.unwrap();
    link.close().await;
    server_end.closed().await;

    let handshakes = records.all("handshake done");
    assert_eq!(handshakes.len(), 2, "one on each side: {handshakes:?}");
    for done in &handshakes {
        assert_eq!(done.level, Level::INFO);
        for hello in ["ours", "theirs"] {
            assert!(done.fields[hello].starts_with("v1..=1 fingerprint"), "{done:?}");
            assert!(done.fields[hello].contains("nonce"), "{done:?}");
        }
        assert_ne!(done.fields["ours"], done.fields["theirs"], "two sessions, two nonces");
        assert!(!done.spans["peer"].is_empty(), "the span names the peer once its HELLO is in");
    }
    let labels: Vec<&str> = handshakes.iter().map(|r| r.spans["label"].as_str()).collect();
    assert!(labels.contains(&"client end") && labels.contains(&"server end"), "{labels:?}");

    let sent = records.find("goaway sent: closed by the application");
    assert_eq!(sent.fields["code"], "NORMAL");
    assert_eq!(sent.spans["label"], "client end");
    assert_eq!(sent.spans["id"], link.id().0.to_string());
    let received = records.find("goaway received");
    assert_eq!(received.fields["code"], "NORMAL");
    assert_eq!(received.fields["reason"], "closed by the application");
    assert_eq!(received.spans["label"], "server end");
}

#[tokio::test]
async fn a_failed_handshake_is_traced_with_the_reason() {
    let records = Captured::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(records.layer()));
    let one = Endpoint::builder().config(Config::stream().with_fingerprint(1)).build().unwrap();
    let two = Endpoint::builder().config(Config::stream().with_fingerprint(2)).build().unwrap();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let first = one.connect(a, "one");
    let second = two.connect(b, "two");
    assert!(first.ready().await.is_err() && second.ready().await.is_err());
    first.closed().await;
    second.closed().await;
    let failed = records.all("handshake failed");
    assert!(!failed.is_empty(), "{:#?}", records.0.lock().unwrap());
    for event in &failed {
        assert_eq!(event.level, Level::WARN);
        assert!(event.fields["reason"].contains("fingerprint"), "{event:?}");
        assert!(event.fields["ours"].starts_with("v1..=1 fingerprint"), "{event:?}");
    }
    assert!(records.all("handshake done").is_empty());
}

#[tokio::test]
async fn a_handler_panic_is_traced_with_its_route() {
    let records = Captured::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(records.layer()));
    let server = Endpoint::builder()
        .route("/boom", |_req| async move {
            if true {
                panic!("on purpose");
            }
            Ok(Response::text("never"))
        })
        .build()
        .unwrap();
    let client = Endpoint::builder().build().unwrap();
    let (a, b) = tokio::io::duplex(64 * 1024);
    server.connect(a, "server end");
    let link = client.connect(b, "client end");
    let err = link.call("/boom", &b"x"[..]).await.unwrap_err();
    assert!(err.to_string().contains("on purpose"), "{err}");
    let panic = records.find("handler panicked");
    assert_eq!(panic.level, Level::ERROR);
    assert_eq!(panic.fields["route"], "/boom");
    assert_eq!(panic.fields["panic"], "on purpose");
    assert_eq!(panic.spans["label"], "server end");
}

/// One event as the capturing layer saw it.
#[derive(Debug, Clone)]
struct Logged {
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
    /// The fields of the spans it happened in, outermost first (inner ones win).
    spans: BTreeMap<String, String>,
}

/// A tiny `tracing` layer that keeps every event with its spans' fields.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Logged>>>);

impl Captured {
    fn layer(&self) -> CaptureLayer {
        CaptureLayer(self.clone())
    }

    fn all(&self, message: &str) -> Vec<Logged> {
        self.0.lock().unwrap().iter().filter(|r| r.message == message).cloned().collect()
    }

    fn find(&self, message: &str) -> Logged {
        let all = self.all(message);
        assert_eq!(all.len(), 1, "one {message:?} expected, got {:#?}", self.0.lock().unwrap());
        all.into_iter().next().unwrap()
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

struct CaptureLayer(Captured);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CaptureLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut spans = BTreeMap::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(own) = span.extensions().get::<Fields>() {
                    spans.extend(own.0.clone());
                }
            }
        }
        let message = fields.0.remove("message").unwrap_or_default();
        let record = Logged { level: *event.metadata().level(), message, fields: fields.0, spans };
        self.0 .0.lock().unwrap().push(record);
    }
}

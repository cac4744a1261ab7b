//! The request context in typed handlers, per-call control on generated clients and
//! `stream<bytes>` arguments, through both front ends: a schema client against a macro server and
//! the other way round.

use std::time::Duration;

use netcore::endpoint::BodyStream;
use netcore::session::Config;
use netcore::{CallError, CallOptions, Context, Endpoint, HandlerError};
use tokio::sync::mpsc;

use netcore_example_schemas::account as from_schema;

mod from_macro {
    use super::from_schema::{Recorded, Sample, Seen, Stored};

    /// The same service as `schemas/account.ncs`, declared with the macro.
    #[netcore::service(prefix = "/account")]
    pub trait Account {
        async fn whoami(&self, cx: &netcore::Context) -> String;
        #[netcore(priority = 2)]
        async fn inspect(&self, cx: &netcore::Context, name: String) -> Seen;
        async fn add_callers(&self, cx: &netcore::Context, x: u32) -> u32;
        async fn wait_forever(&self, cx: &netcore::Context) -> u32;
        async fn store(&self, blob: Vec<u8>) -> u64;
        #[netcore(priority = 1)]
        async fn upload(&self, cx: &netcore::Context, name: String, image: netcore::endpoint::BodyStream) -> Stored;
        async fn check(&self, fail_after: u64, image: netcore::endpoint::BodyStream) -> u64;
        async fn record(&self, series: String, samples: netcore::typed::Items<Sample>) -> Recorded;
        #[netcore(event)]
        async fn ping(&self, cx: &netcore::Context, n: u32);
    }
}

use from_schema::{CallerClient, Recorded, Sample, Seen, Stored};
use netcore::typed::Items;

/// Who a `before_request` hook found the caller to be.
struct User(String);

/// The implementation both traits delegate to.
#[derive(Clone)]
struct Svc {
    pings: mpsc::UnboundedSender<(u32, Option<String>)>,
    started: mpsc::UnboundedSender<()>,
    cancelled: mpsc::UnboundedSender<()>,
    /// How each upload's stream ended when it did not end complete.
    stopped: mpsc::UnboundedSender<String>,
}

struct Observed {
    stopped: mpsc::UnboundedReceiver<String>,
    pings: mpsc::UnboundedReceiver<(u32, Option<String>)>,
    started: mpsc::UnboundedReceiver<()>,
    cancelled: mpsc::UnboundedReceiver<()>,
}

fn svc() -> (Svc, Observed) {
    let (pings, pings_rx) = mpsc::unbounded_channel();
    let (started, started_rx) = mpsc::unbounded_channel();
    let (cancelled, cancelled_rx) = mpsc::unbounded_channel();
    let (stopped, stopped_rx) = mpsc::unbounded_channel();
    (
        Svc { pings, started, cancelled, stopped },
        Observed { pings: pings_rx, started: started_rx, cancelled: cancelled_rx, stopped: stopped_rx },
    )
}

impl Svc {
    fn whoami(&self, cx: &Context) -> Result<String, HandlerError> {
        cx.extensions().get::<User>().map(|user| user.0.clone()).ok_or_else(|| HandlerError::handler("no user"))
    }

    fn inspect(&self, cx: &Context, name: String) -> Seen {
        Seen {
            header: cx.header(&name).map(str::to_owned),
            priority: cx.priority().level(),
            has_deadline: cx.deadline().is_some(),
        }
    }

    async fn add_callers(&self, cx: &Context, x: u32) -> Result<u32, HandlerError> {
        // The caller serves `Caller` on its side of the same connection.
        let number = CallerClient::new(cx.connection().clone())
            .number()
            .await
            .map_err(|err| HandlerError::handler(format!("calling back: {err}")))?;
        Ok(number + x)
    }

    async fn wait_forever(&self, cx: &Context) -> Result<u32, HandlerError> {
        let (cancellation, cancelled) = (cx.cancellation(), self.cancelled.clone());
        tokio::spawn(async move {
            cancellation.cancelled().await;
            let _ = cancelled.send(());
        });
        let _ = self.started.send(());
        std::future::pending().await
    }

    /// Reads the image chunk by chunk. `stall` stops reading after the first chunk and waits to
    /// be called off.
    async fn upload(&self, cx: &Context, name: String, mut image: BodyStream) -> Result<Stored, HandlerError> {
        let (mut crc, mut chunks) = (crc32fast::Hasher::new(), 0u32);
        // Told if the exchange is called off before this handler answers.
        let (cancellation, stopped, label) = (cx.cancellation(), self.stopped.clone(), name.clone());
        tokio::spawn(async move {
            cancellation.cancelled().await;
            let _ = stopped.send(format!("{label}: called off"));
        });
        loop {
            match image.chunk().await {
                Ok(Some(chunk)) => {
                    crc.update(&chunk);
                    chunks += 1;
                    if name == "stall" {
                        let _ = self.started.send(());
                        std::future::pending::<()>().await;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    let _ = self.stopped.send(format!("{name}: {err}"));
                    return Err(err.into());
                }
            }
        }
        Ok(Stored { name, len: image.received(), crc: crc.finalize(), chunks })
    }

    async fn check(&self, fail_after: u64, mut image: BodyStream) -> Result<u64, HandlerError> {
        while let Some(chunk) = image.chunk().await? {
            if fail_after > 0 && image.received() >= fail_after {
                return Err(HandlerError::handler(format!(
                    "bad image at byte {}",
                    image.received() - chunk.len() as u64
                )));
            }
        }
        Ok(image.received())
    }

    /// Sums the samples as they are decoded; an error is reported on `stopped` and answered.
    async fn record(&self, series: String, mut samples: Items<Sample>) -> Result<Recorded, HandlerError> {
        let (mut sum, mut last_at) = (0i64, 0u64);
        while let Some(sample) = samples.next().await {
            let sample = sample.inspect_err(|err| {
                let _ = self.stopped.send(format!("{series}: {}", err.message));
            })?;
            if sample.label.as_deref() == Some("no") {
                return Err(HandlerError::handler(format!("unexpected label at {}", sample.at)));
            }
            sum += i64::from(sample.value);
            last_at = sample.at;
        }
        Ok(Recorded { series, count: samples.count(), sum, last_at })
    }

    fn ping(&self, cx: &Context, n: u32) {
        let _ = self.pings.send((n, cx.header("from").map(str::to_owned)));
    }
}

impl from_schema::Account for Svc {
    async fn record(&self, series: String, samples: Items<Sample>) -> Result<Recorded, HandlerError> {
        Svc::record(self, series, samples).await
    }
    async fn upload(&self, cx: &Context, name: String, image: BodyStream) -> Result<Stored, HandlerError> {
        Svc::upload(self, cx, name, image).await
    }
    async fn check(&self, fail_after: u64, image: BodyStream) -> Result<u64, HandlerError> {
        Svc::check(self, fail_after, image).await
    }
    async fn whoami(&self, cx: &Context) -> Result<String, HandlerError> {
        Svc::whoami(self, cx)
    }
    async fn inspect(&self, cx: &Context, name: String) -> Result<Seen, HandlerError> {
        Ok(Svc::inspect(self, cx, name))
    }
    async fn add_callers(&self, cx: &Context, x: u32) -> Result<u32, HandlerError> {
        Svc::add_callers(self, cx, x).await
    }
    async fn wait_forever(&self, cx: &Context) -> Result<u32, HandlerError> {
        Svc::wait_forever(self, cx).await
    }
    async fn store(&self, blob: Vec<u8>) -> Result<u64, HandlerError> {
        Ok(blob.len() as u64)
    }
    async fn ping(&self, cx: &Context, n: u32) -> Result<(), HandlerError> {
        Svc::ping(self, cx, n);
        Ok(())
    }
}

impl from_macro::Account for Svc {
    async fn record(&self, series: String, samples: Items<Sample>) -> Result<Recorded, HandlerError> {
        Svc::record(self, series, samples).await
    }
    async fn upload(&self, cx: &Context, name: String, image: BodyStream) -> Result<Stored, HandlerError> {
        Svc::upload(self, cx, name, image).await
    }
    async fn check(&self, fail_after: u64, image: BodyStream) -> Result<u64, HandlerError> {
        Svc::check(self, fail_after, image).await
    }
    async fn whoami(&self, cx: &Context) -> Result<String, HandlerError> {
        Svc::whoami(self, cx)
    }
    async fn inspect(&self, cx: &Context, name: String) -> Result<Seen, HandlerError> {
        Ok(Svc::inspect(self, cx, name))
    }
    async fn add_callers(&self, cx: &Context, x: u32) -> Result<u32, HandlerError> {
        Svc::add_callers(self, cx, x).await
    }
    async fn wait_forever(&self, cx: &Context) -> Result<u32, HandlerError> {
        Svc::wait_forever(self, cx).await
    }
    async fn store(&self, blob: Vec<u8>) -> Result<u64, HandlerError> {
        Ok(blob.len() as u64)
    }
    async fn ping(&self, cx: &Context, n: u32) -> Result<(), HandlerError> {
        Svc::ping(self, cx, n);
        Ok(())
    }
}

/// The caller's side of the callback.
struct Number(u32);

impl from_schema::Caller for Number {
    async fn number(&self) -> Result<u32, HandlerError> {
        Ok(self.0)
    }
}

/// A server serving `blueprint` behind a token check, and a client serving `Caller`, over duplex.
fn link(blueprint: netcore::Blueprint) -> netcore::Connection {
    let (server, client) = endpoints(blueprint);
    let (a, b) = tokio::io::duplex(64 * 1024);
    server.connect(b, "server");
    client.connect(a, "client")
}

/// The same over TCP on the loopback.
async fn link_tcp(blueprint: netcore::Blueprint) -> netcore::Connection {
    let (server, client) = endpoints(blueprint);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { server.serve_tcp(listener).await });
    client.connect_tcp(addr).await.unwrap()
}

fn endpoints(blueprint: netcore::Blueprint) -> (Endpoint, Endpoint) {
    let server = Endpoint::builder()
        .blueprint(blueprint)
        .before_request(|request| match request.headers().get("token").map(String::as_str) {
            Some("secret") => {
                request.extensions_mut().insert(User("alice".into()));
                Ok(())
            }
            _ => Err(HandlerError::handler(format!("{}: no valid token", request.route()))),
        })
        .build()
        .unwrap();
    let client = Endpoint::builder()
        .config(Config::stream())
        .blueprint(from_schema::CallerServer::blueprint(Number(40)))
        .build()
        .unwrap();
    (server, client)
}

fn token() -> CallOptions {
    CallOptions::new().header("token", "secret")
}

/// Everything, with the client of front end `$client` against the server `$blueprint`.
macro_rules! scenario {
    ($client:ty, $blueprint:expr) => {{
        let (svc, mut seen) = svc();
        let conn = link($blueprint(svc));
        let plain = <$client>::new(conn.clone());
        // The hook refuses a call without the token…
        let err = plain.whoami().await.unwrap_err();
        assert!(
            matches!(&err, CallError::Remote(e) if e.message == "/account/whoami: no valid token"),
            "{err:?}"
        );
        // …and a client given it per call passes, the hook's extension reaching the handler.
        let account = plain.with(token());
        assert_eq!(account.whoami().await.unwrap(), "alice");

        // Declared options are the defaults: priority 2, no timeout.
        let seen_default = account.inspect("token".into()).await.unwrap();
        assert_eq!(seen_default, Seen { header: Some("secret".into()), priority: 2, has_deadline: false });
        // Per-call options win: priority, headers and a timeout the handler sees as a deadline.
        let urgent = plain.with(token().priority(7).header("x-trace", "abc").timeout(Duration::from_secs(30)));
        let seen_urgent = urgent.inspect("x-trace".into()).await.unwrap();
        assert_eq!(seen_urgent, Seen { header: Some("abc".into()), priority: 7, has_deadline: true });

        // A handler calls its caller back over the same connection.
        assert_eq!(account.add_callers(2).await.unwrap(), 42);

        // Events get the context too.
        plain.with(token().header("from", "board-7")).ping(5).await.unwrap();
        assert_eq!(seen.pings.recv().await, Some((5, Some("board-7".to_owned()))));

        // Dropping a call tells the work its handler spawned.
        {
            let call = account.wait_forever();
            tokio::pin!(call);
            tokio::select! {
                result = &mut call => panic!("wait_forever answered: {result:?}"),
                started = seen.started.recv() => assert_eq!(started, Some(())),
            }
        }
        assert_eq!(seen.cancelled.recv().await, Some(()));

        // Arguments over the codec's limit fail at once, naming the method, the size and the limit.
        let blob = vec![0u8; 20 << 20];
        let err = account.store(blob).await.unwrap_err();
        let limit = netcore::codec::DECODE_LIMIT as u64;
        match &err {
            CallError::TooLarge { method, size, limit: l } => {
                assert_eq!((method.as_str(), *l), ("/account/store", limit));
                assert!(*size > 20 << 20, "{size}");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("/account/store") && text.contains(&limit.to_string()), "{text}");
        // Nothing was sent: the connection carries on.
        assert_eq!(account.store(vec![1, 2, 3]).await.unwrap(), 3);
    }};
}

#[tokio::test]
async fn a_schema_client_uses_context_and_call_options_on_a_macro_server() {
    scenario!(from_schema::AccountClient, from_macro::AccountServer::blueprint);
}

#[tokio::test]
async fn a_macro_client_uses_context_and_call_options_on_a_schema_server() {
    scenario!(from_macro::AccountClient, from_schema::AccountServer::blueprint);
}

#[test]
fn context_is_not_part_of_the_fingerprint_or_hashes() {
    assert_eq!(from_schema::AccountServer::fingerprint(), from_macro::AccountServer::fingerprint());
    assert_eq!(from_schema::AccountServer::add_callers_hash(), from_macro::AccountServer::add_callers_hash());
}

/// A source that fails after `left` bytes, as a disk error would.
struct Failing {
    left: usize,
}

impl std::io::Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("the disk failed"));
        }
        let n = buf.len().min(self.left);
        buf[..n].fill(0x5a);
        self.left -= n;
        Ok(n)
    }
}

/// `stream<bytes>` arguments, with the client of front end `$client` against `$blueprint` over
/// the link `$link` makes.
macro_rules! streams {
    ($client:ty, $blueprint:expr, $link:expr) => {{
        let (svc, mut seen) = svc();
        let conn = $link($blueprint(svc)).await;
        let account = <$client>::new(conn.clone()).with(token());

        // 20 MiB, over the decode limit that whole typed arguments have, from memory: streamed
        // to the handler in chunks, the other argument decoded first.
        let image: Vec<u8> = (0..20u32 << 20).map(|i| (i.wrapping_mul(7) % 251) as u8).collect();
        let stored = account.upload("fw.bin".into(), image.clone()).await.unwrap();
        assert_eq!((stored.name.as_str(), stored.len, stored.crc), ("fw.bin", image.len() as u64, crc32fast::hash(&image)));
        assert!(stored.chunks > 1, "{} chunk(s)", stored.chunks);

        // From a file on disk, read as it is sent.
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, &image[..5 << 20]).unwrap();
        let stored = account.upload("disk".into(), netcore::Body::file(file.path()).unwrap()).await.unwrap();
        assert_eq!((stored.len, stored.crc), (5 << 20, crc32fast::hash(&image[..5 << 20])));

        // Of a length not known in advance: an open-length message, from a stream of chunks and
        // from an AsyncRead.
        let chunks: Vec<std::io::Result<bytes::Bytes>> =
            image[..3 << 20].chunks(100_000).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
        let open = netcore::OpenBody::from_stream(futures::stream::iter(chunks));
        let stored = account.upload("open".into(), open).await.unwrap();
        assert_eq!((stored.len, stored.crc), (3 << 20, crc32fast::hash(&image[..3 << 20])));
        let reader = std::io::Cursor::new(image[..1 << 20].to_vec());
        let stored = account.upload("reader".into(), netcore::OpenBody::from_reader(reader)).await.unwrap();
        assert_eq!((stored.len, stored.crc), (1 << 20, crc32fast::hash(&image[..1 << 20])));

        // An empty stream.
        assert_eq!(account.check(0, Vec::new()).await.unwrap(), 0);

        // The handler fails mid-stream: the caller gets its typed error, and stops sending.
        let err = account.check(1 << 20, image.clone()).await.unwrap_err();
        assert!(matches!(&err, CallError::Remote(e) if e.message.starts_with("bad image at byte")), "{err:?}");
        assert_eq!(account.check(0, vec![1, 2, 3]).await.unwrap(), 3);

        // The caller's source fails mid-stream: the call fails, and the handler never sees a
        // complete stream (it reads an error, or is called off with the exchange).
        let err = account.upload("broken".into(), netcore::Body::reader(Failing { left: 3 << 20 }, 8 << 20)).await;
        assert!(err.is_err(), "{err:?}");
        let report = seen.stopped.recv().await.unwrap();
        assert!(
            report.starts_with("broken: ") && (report.contains("stopped after") || report.ends_with("called off")),
            "{report} ({err:?})"
        );

        // The caller drops the call mid-stream: the handler is called off.
        {
            let call = account.upload("stall".into(), image.clone());
            tokio::pin!(call);
            tokio::select! {
                result = &mut call => panic!("a stalled upload answered: {result:?}"),
                started = seen.started.recv() => assert_eq!(started, Some(())),
            }
        }
        assert_eq!(seen.stopped.recv().await.as_deref(), Some("stall: called off"));
        // The connection carries on.
        assert_eq!(account.check(0, vec![1]).await.unwrap(), 1);
    }};
}

#[tokio::test]
async fn schema_client_streams_bytes_to_a_macro_server_over_duplex() {
    streams!(from_schema::AccountClient, from_macro::AccountServer::blueprint, |bp| async move { link(bp) });
}

#[tokio::test]
async fn macro_client_streams_bytes_to_a_schema_server_over_tcp() {
    streams!(from_macro::AccountClient, from_schema::AccountServer::blueprint, link_tcp);
}

#[tokio::test]
async fn a_stream_route_refuses_a_malformed_argument_header() {
    let (svc, _seen) = svc();
    let conn = link(from_schema::AccountServer::blueprint(svc));
    let route = netcore::Route::Id(netcore::route_id("/account/check"));
    let opts = || token();
    // A length over the decode limit, refused before any of it is read.
    let mut huge = Vec::new();
    huge.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x01]); // 2^28
    let err = conn.call_with(route.clone(), huge, opts()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Remote(e) if e.code == netcore::ErrorCode::TOO_LARGE && e.message.contains("/account/check")),
        "{err:?}"
    );
    // A payload that ends inside the arguments.
    let err = conn.call_with(route.clone(), vec![9, 1], opts()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Remote(e) if e.code == netcore::ErrorCode::BAD_REQUEST && e.message.contains("ends inside")),
        "{err:?}"
    );
    // Arguments that do not decode.
    let err = conn.call_with(route, vec![1, 0xff], opts()).await.unwrap_err();
    assert!(matches!(&err, CallError::Remote(e) if e.code == netcore::ErrorCode::BAD_REQUEST), "{err:?}");
}

mod slow {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use netcore::endpoint::BodyStream;
    use netcore::HandlerError;

    /// A reader slower than the link.
    #[netcore::service(prefix = "/slow")]
    pub trait Slow {
        async fn read(&self, label: String, data: BodyStream) -> u64;
        async fn items(&self, data: netcore::typed::Items<u64>) -> u64;
    }

    pub struct Reader(pub Arc<AtomicU64>);

    impl Slow for Reader {
        async fn read(&self, _label: String, mut data: BodyStream) -> Result<u64, HandlerError> {
            while let Some(chunk) = data.chunk().await? {
                self.0.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
            Ok(data.received())
        }

        /// Counts the bytes of the items it decoded (each `u64::MAX`: 11 bytes framed), pausing
        /// every 100 items.
        async fn items(&self, mut data: netcore::typed::Items<u64>) -> Result<u64, HandlerError> {
            while let Some(item) = data.next().await {
                assert_eq!(item?, u64::MAX);
                self.0.fetch_add(ITEM, Ordering::SeqCst);
                if data.count() % 100 == 0 {
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
            Ok(data.count())
        }
    }

    /// The framed size of a `u64::MAX` item: its length (1 byte) and its encoding.
    pub const ITEM: u64 = 1 + 10;
}

#[tokio::test]
async fn a_slow_typed_reader_slows_the_typed_sender_down() {
    slow_reader(false).await
}

#[tokio::test]
async fn a_slow_reader_of_typed_items_slows_the_sender_down() {
    slow_reader(true).await
}

/// Whether the typed sender stays within the window of a slow reader, of a `stream<bytes>` or of
/// a `stream<u64>` (`items`).
async fn slow_reader(items: bool) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    const WINDOW: u64 = 128 * 1024;
    const UPLOAD: usize = 4 << 20;
    let limits = netcore::Limits { window: WINDOW, inline_limit: 32 * 1024, ..netcore::Limits::default() };
    let read = Arc::new(AtomicU64::new(0));
    let server = Endpoint::builder()
        .config(Config::stream().with_limits(limits))
        .blueprint(slow::SlowServer::blueprint(slow::Reader(read.clone())))
        .build()
        .unwrap();
    let client = Endpoint::builder().config(Config::stream().with_limits(limits)).build().unwrap();
    let duplex = 16 * 1024;
    let (a, b) = tokio::io::duplex(duplex);
    server.connect(b, "server");
    let conn = client.connect(a, "client");
    let (progress_tx, mut progress) = tokio::sync::watch::channel(netcore::session::Progress { done: 0, total: 0 });
    let call = tokio::spawn(async move {
        let client = slow::SlowClient::new(conn).with(CallOptions::new().progress(progress_tx));
        if items {
            let n = UPLOAD as u64 / slow::ITEM;
            return client.items((0..n).map(|_| u64::MAX)).await.map(|count| count * slow::ITEM);
        }
        client.read("image".into(), vec![0x42; UPLOAD]).await
    });
    let mut ahead_max = 0;
    while progress.changed().await.is_ok() {
        // The arguments' header (1 byte) is sent first, not read as items.
        let sent = progress.borrow().done.saturating_sub(u64::from(items)).min(UPLOAD as u64);
        ahead_max = ahead_max.max(sent.saturating_sub(read.load(Ordering::SeqCst)));
    }
    let upload = if items { UPLOAD as u64 / slow::ITEM * slow::ITEM } else { UPLOAD as u64 };
    assert_eq!(call.await.unwrap().unwrap(), upload);
    assert_eq!(read.load(Ordering::SeqCst), upload);
    // Sent but unread: at most the window, the pipe, and a read buffer (64 KiB) of frame overhead,
    // as for an untyped streaming route (tests/streaming.rs).
    let bound = WINDOW + duplex as u64 + 64 * 1024 + 16 * 1024;
    println!("typed sender (items: {items}) ahead of the reader by at most {ahead_max} bytes (bound {bound}, upload {UPLOAD})");
    assert!(ahead_max <= bound, "the typed sender ran {ahead_max} bytes ahead of a slow reader");
}

/// The samples of a recording: `n` small items, some with a label.
fn samples(n: u64) -> impl Iterator<Item = Sample> + Clone + Send + 'static {
    (0..n).map(|i| Sample { at: i * 10, value: (i % 201) as i32 - 100, label: (i % 7 == 0).then(|| "ok".to_owned()) })
}

/// `stream<T>` arguments, with the client of front end `$client` against `$blueprint`.
macro_rules! items {
    ($client:ty, $blueprint:expr) => {{
        let (svc, mut seen) = svc();
        let account = <$client>::new(link($blueprint(svc))).with(token());
        // 10 000 small items (a few bytes each), decoded one by one on the other side: many of
        // them split across the message's chunks (the first frame holds at most the inline limit).
        const N: u64 = 10_000;
        let want: i64 = samples(N).map(|s| i64::from(s.value)).sum();
        let recorded = account.record("temps".into(), samples(N)).await.unwrap();
        assert_eq!(recorded, Recorded { series: "temps".into(), count: N, sum: want, last_at: (N - 1) * 10 });
        // Larger items, each across several chunks.
        let big = (0..40u64).map(|i| Sample { at: i, value: 1, label: Some("ok".repeat(20_000)) });
        let recorded = account.record("big".into(), big.collect::<Vec<_>>()).await.unwrap();
        assert_eq!((recorded.count, recorded.sum, recorded.last_at), (40, 40, 39));
        // No items.
        let recorded = account.record("none".into(), Vec::new()).await.unwrap();
        assert_eq!((recorded.count, recorded.sum), (0, 0));
        // The handler fails on an item: the caller gets its error.
        let bad = vec![Sample { at: 1, value: 1, label: Some("no".into()) }];
        let err = account.record("bad".into(), bad).await.unwrap_err();
        assert!(matches!(&err, CallError::Remote(e) if e.message.contains("unexpected label")), "{err:?}");
        assert!(seen.stopped.try_recv().is_err(), "no stream error was reported");
    }};
}

#[tokio::test]
async fn schema_client_streams_typed_items_to_a_macro_server() {
    items!(from_schema::AccountClient, from_macro::AccountServer::blueprint);
}

#[tokio::test]
async fn macro_client_streams_typed_items_to_a_schema_server() {
    items!(from_macro::AccountClient, from_schema::AccountServer::blueprint);
}

/// A `record` payload, framed as docs/PROTOCOL.md §15 says, from its series and item bytes.
fn record_payload(series: &str, items: &[u8]) -> Vec<u8> {
    let args = netcore::codec::encode(&(series,)).unwrap();
    let mut payload = vec![args.len() as u8];
    payload.extend_from_slice(&args);
    payload.extend_from_slice(items);
    payload
}

#[tokio::test]
async fn a_truncated_or_malformed_item_is_an_error_to_the_handler() {
    let (svc, mut seen) = svc();
    let conn = link(from_macro::AccountServer::blueprint(svc));
    let route = netcore::Route::Id(netcore::route_id("/account/record"));
    let item = netcore::codec::encode(&Sample { at: 5, value: -2, label: None }).unwrap();
    let mut one = vec![item.len() as u8];
    one.extend_from_slice(&item);
    // The hand-made framing is what the client sends: one whole item is a complete stream.
    let ok = conn.call_with(route.clone(), record_payload("one", &one), token()).await.unwrap();
    let recorded: Recorded = ok.decode().unwrap();
    assert_eq!((recorded.count, recorded.sum, recorded.last_at), (1, -2, 5));

    // The payload ends inside the second item: an error, never a complete stream of one item.
    let mut cut = one.clone();
    cut.extend_from_slice(&one[..one.len() - 1]);
    let err = conn.call_with(route.clone(), record_payload("cut", &cut), token()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Remote(e) if e.code == netcore::ErrorCode::BAD_REQUEST
            && e.message.contains("/account/record") && e.message.contains("ends inside item 1")),
        "{err:?}"
    );
    let report = seen.stopped.recv().await.unwrap();
    assert!(report.starts_with("cut: "), "{report}");

    // The payload ends inside an item's length.
    let mut cut = one.clone();
    cut.push(0x80);
    let err = conn.call_with(route.clone(), record_payload("len", &cut), token()).await.unwrap_err();
    assert!(matches!(&err, CallError::Remote(e) if e.message.contains("ends inside item 1")), "{err:?}");
    seen.stopped.recv().await.unwrap();

    // An item length over the decode limit.
    let err = conn
        .call_with(route.clone(), record_payload("huge", &[0x80, 0x80, 0x80, 0x80, 0x01]), token())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Remote(e) if e.code == netcore::ErrorCode::TOO_LARGE
            && e.message.contains("item 0 of /account/record") && e.message.contains("decode limit")),
        "{err:?}"
    );
    seen.stopped.recv().await.unwrap();

    // An item that does not decode (a bool of 7 where the option's tag goes).
    let mut bad = item.clone();
    *bad.last_mut().unwrap() = 7;
    let mut framed = vec![bad.len() as u8];
    framed.extend_from_slice(&bad);
    let err = conn.call_with(route, record_payload("bad", &framed), token()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Remote(e) if e.message.contains("item 0 of /account/record does not decode")),
        "{err:?}"
    );
}

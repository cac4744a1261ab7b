//! Resumable uploads and downloads (issue 10 item 4, docs/PROTOCOL.md §17): an upload cut by a
//! replug, a restart or a cancelled exchange continues from the offset the receiver confirms; a
//! download, from the offset the downloader wrote.

use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use netcore::endpoint::{CallError, ErrorCode, Response, ResumeLimits, DOWNLOAD_WINDOW};
use netcore::session::Config;
use netcore::transport::Paced;
use netcore::{CallOptions, CancelReason, Connection, Endpoint, Resumable};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

/// Counts the bytes written through it.
struct Counting<IO> {
    inner: IO,
    count: Arc<AtomicU64>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counting<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counting<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.count.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A receiver whose `/upload` answers with the CRC32 and length of the file it got.
fn receiver(config: Config, limits: ResumeLimits) -> Endpoint {
    Endpoint::builder()
        .config(config)
        .resume_limits(limits)
        .resumable_route("/upload", |req| async move {
            let netcore::Payload::File(file) = req.payload() else {
                return Err(netcore::HandlerError::handler("not stored in a file"));
            };
            let got = std::fs::read(file.path())?;
            Ok(Response::text(format!("{} {:08x}", got.len(), crc32fast::hash(&got))))
        })
        .build()
        .unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// One plug of a serial cable: both ends paced at 115 200 baud 8N1, the sender's writes counted.
/// Aborting the relay task pulls the cable: both ends see their transport end.
fn plug(
    tx: &Endpoint,
    rx: &Endpoint,
    counted: &Arc<AtomicU64>,
) -> (Connection, Connection, tokio::task::JoinHandle<()>) {
    let rate = Paced::<()>::uart_rate(115_200);
    let (sender_end, mut relay_a) = tokio::io::duplex(4096);
    let (mut relay_b, receiver_end) = tokio::io::duplex(4096);
    let relay = tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut relay_a, &mut relay_b).await;
    });
    let sender_io = Counting { inner: Paced::new(sender_end, rate), count: counted.clone() };
    let received = rx.connect_with(Paced::new(receiver_end, rate), "cable", Config::lossy());
    (tx.connect_with(sender_io, "cable", Config::lossy()), received, relay)
}

#[tokio::test(start_paused = true)]
async fn a_16_mib_upload_at_115200_baud_survives_three_replugs() {
    const TOTAL: usize = 16 << 20;
    let data = pattern(TOTAL);
    let want = format!("{TOTAL} {:08x}", crc32fast::hash(&data));
    let rx = receiver(Config::lossy(), ResumeLimits::default());
    let tx = Endpoint::builder().config(Config::lossy()).build().unwrap();
    let body = Resumable::bytes(data);
    let wire = Arc::new(AtomicU64::new(0));
    let (progress, mut watch_rx) = watch::channel(netcore::session::Progress { done: 0, total: 0 });
    let (mut payload_sent, mut cuts) = (0u64, 0);
    let started = tokio::time::Instant::now();
    let reply = loop {
        let (conn, _, relay) = plug(&tx, &rx, &wire);
        conn.ready().await.unwrap();
        let cut_at = (cuts + 1) * TOTAL as u64 / 4;
        let cutter = tokio::spawn({
            let (body, mut watch_rx) = (body.clone(), watch_rx.clone());
            async move {
                if cuts < 3 {
                    let _ = watch_rx.wait_for(|p| body.offset() + p.done >= cut_at).await;
                    relay.abort();
                }
            }
        });
        let result = conn.upload("/upload", &body, CallOptions::default().progress(progress.clone())).await;
        cutter.abort();
        watch_rx.borrow_and_update();
        match result {
            Ok(reply) => {
                payload_sent += TOTAL as u64 - body.offset();
                break reply;
            }
            Err(CallError::Interrupted { token, confirmed, sent, total, cause }) => {
                assert_eq!((token, total), (body.token(), TOTAL as u64));
                assert!(cause.is_disconnected(), "{cause}");
                assert_eq!(confirmed, body.offset());
                payload_sent += sent - confirmed;
                cuts += 1;
                assert!(cuts <= 3, "cut {cuts} times");
            }
            Err(err) => panic!("upload failed: {err}"),
        }
    };
    assert_eq!(reply.text().unwrap(), want);
    assert_eq!(cuts, 3);
    let wire = wire.load(Ordering::Relaxed);
    eprintln!(
        "16 MiB upload, 3 replugs: payload bytes sent {payload_sent} = {:.4}× 16 MiB; wire bytes (frames, COBS, \
         handshakes, queries) {wire} = {:.4}×; {:.0} s of airtime",
        payload_sent as f64 / TOTAL as f64,
        wire as f64 / TOTAL as f64,
        started.elapsed().as_secs_f64()
    );
    assert!(payload_sent as f64 <= 1.05 * TOTAL as f64, "{payload_sent}");
}

/// A body whose first reading fails after `good` bytes (the sender's disk, say), so the upload
/// is cancelled part way with CANCEL IO, leaving a partial upload with the receiver.
fn failing_once(data: Vec<u8>, good: usize) -> Resumable {
    let failed = Arc::new(AtomicBool::new(false));
    let data: Arc<[u8]> = data.into();
    Resumable::reader_at(data.len() as u64, move |offset| {
        let rest = data[offset as usize..].to_vec();
        let first = !failed.swap(true, Ordering::Relaxed);
        let reader: Box<dyn Read + Send> = match first {
            true => Box::new(std::io::Cursor::new(rest[..good].to_vec()).chain(Failing)),
            false => Box::new(std::io::Cursor::new(rest)),
        };
        Ok(reader)
    })
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
}

#[tokio::test(start_paused = true)]
async fn partial_uploads_are_bounded_and_expire() {
    let limits = ResumeLimits::default().with_max_partials(1).with_keep_for(Duration::from_secs(60));
    let rx = receiver(Config::stream(), limits);
    let tx = Endpoint::builder().config(Config::stream().with_chunk_size(1024)).build().unwrap();
    // A pipe much smaller than the 40 000 bytes sent before the sender's failure: the receiver
    // takes the request before its CANCEL arrives (a request cancelled before it was taken is
    // withdrawn, §8.5, and would leave nothing to resume).
    let (a, b) = tokio::io::duplex(4096);
    rx.connect(b, "rx");
    let conn = tx.connect(a, "tx");
    let data = pattern(100_000);
    let want = format!("{} {:08x}", data.len(), crc32fast::hash(&data));

    // Cut by the sender's own failure: interrupted, and the receiver keeps what came.
    let first = failing_once(data.clone(), 40_000);
    let err = conn.upload("/upload", &first, CallOptions::default()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Interrupted { cause, .. } if **cause == CallError::Cancelled(CancelReason::IO)),
        "{err}"
    );
    assert_eq!(err.resume_token(), Some(first.token()));
    assert!(err.to_string().contains("upload the same Resumable again"), "{err}");

    // The one slot is taken: another upload is refused, naming the limit.
    let other = Resumable::bytes(data.clone());
    let err = conn.upload("/upload", &other, CallOptions::default()).await.unwrap_err();
    match &err {
        CallError::Remote(e) => {
            assert_eq!(e.code, ErrorCode::UNAVAILABLE);
            assert!(e.message.contains("ResumeLimits::max_partials"), "{e}");
        }
        _ => panic!("{err}"),
    }

    // Resumed: only the rest is sent.
    let reply = conn.upload("/upload", &first, CallOptions::default()).await.unwrap();
    assert_eq!(reply.text().unwrap(), want);
    assert!(first.offset() >= 30_000 && first.offset() <= 40_000, "resumed from {}", first.offset());

    // A partial left longer than keep_for is gone: the next attempt starts from 0.
    let second = failing_once(data.clone(), 40_000);
    conn.upload("/upload", &second, CallOptions::default()).await.unwrap_err();
    tokio::time::sleep(Duration::from_secs(61)).await;
    let reply = conn.upload("/upload", &second, CallOptions::default()).await.unwrap();
    assert_eq!(reply.text().unwrap(), want);
    assert_eq!(second.offset(), 0);

    // A resume header that lies about the offset is refused with RESUME, naming what is held.
    let lie = CallOptions::default()
        .header("nc-resume", "00112233445566778899aabbccddeeff")
        .header("nc-offset", "6")
        .header("nc-total", "10");
    let err = conn.call_with(netcore::Route::Name("/upload".into()), b"6789".to_vec(), lie).await.unwrap_err();
    match &err {
        CallError::Remote(e) => {
            assert_eq!(e.code, ErrorCode::RESUME);
            assert!(e.message.contains("holds nothing"), "{e}");
        }
        _ => panic!("{err}"),
    }
}

/// Counts the bytes read through it: what a download route handed over to be sent.
struct Tally<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_4_mib_download_at_115200_baud_survives_three_replugs() {
    const TOTAL: usize = 4 << 20;
    let data = bytes::Bytes::from(pattern(TOTAL));
    let served = Arc::new(AtomicU64::new(0));
    let server = Endpoint::builder()
        .config(Config::lossy())
        .download_route("/log", {
            let (data, served) = (data.clone(), served.clone());
            move |_req| {
                let (data, count) = (data.clone(), served.clone());
                async move {
                    Ok(Resumable::reader_at(data.len() as u64, move |offset| {
                        let inner = std::io::Cursor::new(data.slice(offset as usize..));
                        Ok(Tally { inner, count: count.clone() })
                    }))
                }
            }
        })
        .build()
        .unwrap();
    let client = Endpoint::builder().config(Config::lossy()).build().unwrap();
    let wire = Arc::new(AtomicU64::new(0));
    let (mut got, mut cuts) = (Vec::new(), 0);
    let started = tokio::time::Instant::now();
    loop {
        let (_, conn, relay) = plug(&server, &client, &wire);
        conn.ready().await.unwrap();
        // Pulled out 97.3 s into each of the first three plugs: in the middle of a window.
        let cutter = tokio::spawn(async move {
            if cuts < 3 {
                tokio::time::sleep(Duration::from_millis(97_300)).await;
                relay.abort();
            }
        });
        let from = got.len() as u64;
        let result = conn.download("/log", from, &mut got, CallOptions::default()).await;
        cutter.abort();
        match result {
            Ok(total) => {
                assert_eq!(total, TOTAL as u64);
                break;
            }
            Err(CallError::DownloadInterrupted { received, total, cause }) => {
                assert!(cause.is_disconnected(), "{cause}");
                assert_eq!((received, total), (got.len() as u64, Some(TOTAL as u64)));
                assert!(received > from, "no progress in a plug");
                cuts += 1;
                assert!(cuts <= 3, "cut {cuts} times");
            }
            Err(err) => panic!("download failed: {err}"),
        }
    }
    assert_eq!(cuts, 3);
    assert!(got == data, "the downloaded body differs");
    let (served, wire) = (served.load(Ordering::Relaxed), wire.load(Ordering::Relaxed));
    eprintln!(
        "4 MiB download, 3 replugs: payload bytes sent {served} = {:.4}× 4 MiB; wire bytes (frames, COBS, \
         handshakes, window requests) {wire} = {:.4}×; {:.0} s of airtime",
        served as f64 / TOTAL as f64,
        wire as f64 / TOTAL as f64,
        started.elapsed().as_secs_f64()
    );
    // What a cut costs is the window in flight, at most.
    assert!(served <= TOTAL as u64 + 3 * DOWNLOAD_WINDOW, "{served}");
}

#[tokio::test(start_paused = true)]
async fn a_download_resumes_from_any_offset_and_refuses_one_past_the_end() {
    let data = bytes::Bytes::from(pattern(200_000));
    let server = Endpoint::builder()
        .download_route("/log", {
            let data = data.clone();
            move |_req| std::future::ready(Ok(Resumable::bytes(data.clone())))
        })
        .route("/plain", |_req| async move { Ok(Response::text("not a download")) })
        .build()
        .unwrap();
    let (a, b) = tokio::io::duplex(1 << 16);
    server.connect(b, "server");
    let conn = Endpoint::builder().build().unwrap().connect(a, "client");
    // Continued from what a file already holds: only the rest is asked for.
    let mut got = data[..150_000].to_vec();
    assert_eq!(conn.download("/log", 150_000, &mut got, CallOptions::default()).await.unwrap(), 200_000);
    assert!(got == data);
    // At the end: one empty window.
    assert_eq!(conn.download("/log", 200_000, &mut Vec::new(), CallOptions::default()).await.unwrap(), 200_000);
    // Past the end: ERROR RESUME, naming the length.
    let err = conn.download("/log", 200_001, &mut Vec::new(), CallOptions::default()).await.unwrap_err();
    match &err {
        CallError::Remote(e) => {
            assert_eq!(e.code, ErrorCode::RESUME);
            assert!(e.message.contains("of a body of 200000 bytes"), "{e}");
        }
        _ => panic!("{err}"),
    }
    // A route that is not a download route is named as such.
    let err = conn.download("/plain", 0, &mut Vec::new(), CallOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("not a download route"), "{err}");
    // A malformed offset is a bad request.
    let bad = CallOptions::default().header("nc-offset", "01");
    let err = conn.call_with(netcore::Route::Name("/log".into()), Vec::new(), bad).await.unwrap_err();
    assert!(matches!(&err, CallError::Remote(e) if e.code == ErrorCode::BAD_REQUEST), "{err}");
}

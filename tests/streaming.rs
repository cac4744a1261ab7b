//! Streaming routes: request payloads handed to the handler as they arrive, never stored whole.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netcore::endpoint::{Blueprint, BodyStream, HandlerError, Response};
use netcore::session::{Config, Payload, Progress};
use netcore::{CallOptions, Endpoint, Limits, Route};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add((i >> 12) as u8)).collect()
}

/// FNV-1a of everything the stream yields, and its length.
async fn digest(body: &mut BodyStream) -> Result<(u64, u64), HandlerError> {
    let (mut hash, mut len) = (0xcbf2_9ce4_8422_2325u64, 0u64);
    while let Some(chunk) = body.chunk().await? {
        for byte in chunk.iter() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
        len += chunk.len() as u64;
    }
    Ok((hash, len))
}

fn digest_of(bytes: &[u8]) -> (u64, u64) {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    (hash, bytes.len() as u64)
}

fn digest_reply(digest: (u64, u64)) -> Response {
    Response::text(format!("{} {}", digest.0, digest.1))
}

/// A connected client over an in-memory duplex of `capacity` bytes each way.
fn connect(server: &Endpoint, capacity: usize) -> netcore::Connection {
    let (a, b) = tokio::io::duplex(capacity);
    server.connect(b, "server side");
    Endpoint::builder().build().unwrap().connect(a, "client side")
}

#[tokio::test]
async fn a_large_upload_is_read_as_it_arrives_and_never_stored() {
    let spill = tempfile::tempdir().unwrap();
    let limits = Limits { inline_limit: 64 * 1024, ..Limits::default() };
    let first_chunk_seen_at = Arc::new(Mutex::new(None));
    let seen = first_chunk_seen_at.clone();
    let server = Endpoint::builder()
        .config(Config::stream().with_limits(limits).with_spill_dir(spill.path()))
        .streaming_route("/upload", move |req, mut body| {
            let seen = seen.clone();
            async move {
                assert!(matches!(req.payload(), Payload::Streamed { total } if *total == body.len()));
                let first = body.chunk().await?.expect("a first chunk");
                *seen.lock().unwrap() = Some((first.len() as u64, body.len()));
                let (hash_of_rest, len) = digest(&mut body).await?;
                Ok(digest_reply((hash_of_rest, first.len() as u64 + len)))
            }
        })
        .build()
        .unwrap();
    let conn = connect(&server, 256 * 1024);
    let payload = pattern(8 << 20);
    let upload = tokio::spawn({
        let conn = conn.clone();
        let payload = payload.clone();
        async move { conn.call("/upload", payload).await.unwrap().text().unwrap() }
    });
    // While the upload runs, nothing lands in the spill directory.
    while !upload.is_finished() {
        assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0, "a streamed payload is never stored");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let answer = upload.await.unwrap();
    let (first_len, total) = first_chunk_seen_at.lock().unwrap().expect("the handler ran");
    assert!(first_len < total, "the handler had the first chunk before the rest arrived");
    assert_eq!(total, payload.len() as u64);
    let rest = digest_of(&payload[first_len as usize..]);
    assert_eq!(answer, format!("{} {}", rest.0, payload.len()));
}

#[tokio::test]
async fn a_slow_reader_slows_the_sender_down() {
    const WINDOW: u64 = 128 * 1024;
    const UPLOAD: usize = 4 << 20;
    let limits = Limits { window: WINDOW, inline_limit: 32 * 1024, ..Limits::default() };
    let read = Arc::new(AtomicU64::new(0));
    let r = read.clone();
    let server = Endpoint::builder()
        .config(Config::stream().with_limits(limits))
        .streaming_route("/slow", move |_req, mut body| {
            let read = r.clone();
            async move {
                while let Some(chunk) = body.chunk().await? {
                    read.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
                Ok(Response::empty())
            }
        })
        .build()
        .unwrap();
    let duplex = 16 * 1024;
    let conn = connect(&server, duplex);
    let (progress_tx, mut progress) = tokio::sync::watch::channel(Progress { done: 0, total: 0 });
    let call = tokio::spawn({
        let conn = conn.clone();
        let opts = CallOptions::default().progress(progress_tx);
        async move { conn.call_with(Route::Name("/slow".into()), pattern(UPLOAD), opts).await }
    });
    let mut ahead_max = 0;
    while progress.changed().await.is_ok() {
        let sent = progress.borrow().done.min(UPLOAD as u64);
        ahead_max = ahead_max.max(sent.saturating_sub(read.load(Ordering::SeqCst)));
    }
    call.await.unwrap().unwrap();
    assert_eq!(read.load(Ordering::SeqCst), UPLOAD as u64);
    // Sent but unread: at most the window, the pipe, and a read buffer (64 KiB) of frame overhead.
    let bound = WINDOW + duplex as u64 + 64 * 1024 + 16 * 1024;
    println!("sender ahead of the reader by at most {ahead_max} bytes (bound {bound}, upload {UPLOAD})");
    assert!(ahead_max <= bound, "the sender ran {ahead_max} bytes ahead of a slow reader");
}

#[tokio::test]
async fn a_handler_that_answers_early_discards_the_rest_and_the_link_stays_usable() {
    let server = Endpoint::builder()
        .streaming_route("/peek", |_req, mut body| async move {
            let first = body.chunk().await?.unwrap_or_default();
            Ok(Response::bytes(first.slice(..4)))
        })
        .streaming_route("/count", |_req, mut body| async move { Ok(digest_reply(digest(&mut body).await?)) })
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .build()
        .unwrap();
    let conn = connect(&server, 64 * 1024);
    for _ in 0..3 {
        // Each early answer leaves megabytes in flight that the server must discard and credit.
        let reply = conn.call("/peek", pattern(2 << 20)).await.unwrap();
        assert_eq!(&reply.bytes().unwrap()[..], &pattern(4)[..]);
    }
    let echo = conn.call("/echo", b"still here".to_vec()).await.unwrap();
    assert_eq!(echo.text().unwrap(), "still here");
    let payload = pattern(3 << 20);
    let counted = tokio::time::timeout(Duration::from_secs(20), conn.call("/count", payload.clone())).await;
    let expected = digest_of(&payload);
    assert_eq!(counted.expect("no credit was lost").unwrap().text().unwrap(), format!("{} {}", expected.0, expected.1));
}

#[tokio::test]
async fn a_stream_cut_by_a_vanished_peer_ends_with_an_error() {
    let outcome = Arc::new(Mutex::new(None));
    let started = Arc::new(tokio::sync::Notify::new());
    let (o, s) = (outcome.clone(), started.clone());
    let server = Endpoint::builder()
        .streaming_route("/log", move |_req, mut body| {
            let (outcome, started) = (o.clone(), s.clone());
            async move {
                let first = body.chunk().await;
                started.notify_one();
                let result = match first {
                    Ok(_) => digest(&mut body).await,
                    Err(err) => Err(err.into()),
                };
                *outcome.lock().unwrap() = Some((result.map_err(|e| e.to_string()), body.received(), body.len()));
                Ok(Response::empty())
            }
        })
        .build()
        .unwrap();
    // client <-> proxy <-> server; aborting the proxy pulls the cable mid-message.
    let (a, mut proxy_a) = tokio::io::duplex(64 * 1024);
    let (mut proxy_b, b) = tokio::io::duplex(64 * 1024);
    server.connect(b, "server");
    let proxy = tokio::spawn(async move { tokio::io::copy_bidirectional(&mut proxy_a, &mut proxy_b).await });
    let conn = Endpoint::builder().build().unwrap().connect(a, "client");
    conn.ready().await.unwrap();
    // A one-way message: its handler is not aborted when the link goes, so it sees the cut.
    let _sending = tokio::spawn(async move { conn.notify("/log", pattern(32 << 20)).await });
    started.notified().await;
    proxy.abort();
    for _ in 0..500 {
        if outcome.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (result, received, total) = outcome.lock().unwrap().clone().expect("the handler finished");
    let err = result.expect_err("a cut stream is an error, not a short payload");
    assert!(received < total, "{received} of {total}");
    assert!(err.contains(&format!("after {received} of {total} bytes")), "{err}");
}

#[tokio::test]
async fn blueprints_hooks_and_small_payloads_on_streaming_routes() {
    let firmware = Blueprint::new("/fw").streaming_route("/write", |req, body| async move {
        let who = req.extensions().get::<String>().cloned().unwrap_or_default();
        let bytes = body.bytes().await?;
        Ok(Response::text(format!("{who}:{}", bytes.len())))
    });
    let server = Endpoint::builder()
        .blueprint(firmware)
        .before_request(|req| {
            req.extensions_mut().insert("hooked".to_string());
            Ok(())
        })
        .build()
        .unwrap();
    let conn = connect(&server, 64 * 1024);
    for len in [0, 1, 100, 70_000] {
        let reply = conn.call("/fw/write", pattern(len)).await.unwrap();
        assert_eq!(reply.text().unwrap(), format!("hooked:{len}"));
    }
    // By route id too, as the typed layer calls.
    let opts = CallOptions::default();
    let reply = conn.call_with(Route::Id(netcore::route_id("/fw/write")), pattern(5), opts).await.unwrap();
    assert_eq!(reply.text().unwrap(), "hooked:5");
}

#[tokio::test]
async fn a_stored_payload_reads_as_a_stream_of_one_chunk() {
    let server = Endpoint::builder()
        .route("/plain", |mut req| async move {
            let mut body = req.body_stream()?;
            Ok(digest_reply(digest(&mut body).await?))
        })
        .build()
        .unwrap();
    let conn = connect(&server, 64 * 1024);
    let payload = pattern(10_000);
    let expected = digest_of(&payload);
    let reply = conn.call("/plain", payload).await.unwrap();
    assert_eq!(reply.text().unwrap(), format!("{} {}", expected.0, expected.1));
}

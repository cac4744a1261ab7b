//! Streamed answers (`Connection::call_stream`, `Response::stream`) and open-length bodies
//! (`OpenBody`): round trips, bidirectional exchanges, cancel from either end, a slow reader's
//! bound, a failing producer, a peer without open-length messages (docs/PROTOCOL.md §5.2, §6,
//! §8.3).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use netcore::endpoint::{BodyStream, ErrorCode, Response};
use netcore::session::Config;
use netcore::{CallError, CallOptions, Endpoint, Limits, OpenBody};
use tokio::sync::oneshot;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed).wrapping_add((i >> 12) as u8)).collect()
}

/// FNV-1a of everything the stream yields, and its length.
async fn digest(body: &mut BodyStream) -> io::Result<(u64, u64)> {
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

fn connect(server: &Endpoint, client: Config, capacity: usize) -> netcore::Connection {
    let (a, b) = tokio::io::duplex(capacity);
    server.connect(b, "server side");
    Endpoint::builder().config(client).build().unwrap().connect(a, "client side")
}

/// A server whose `/download` answers `len` bytes of `pattern(len, 1)` streamed, 64 KiB at a time.
fn download_server(config: Config) -> Endpoint {
    Endpoint::builder()
        .config(config)
        .route("/download", |req| async move {
            let len: usize = req.text()?.parse().unwrap_or(0);
            let (tx, body) = OpenBody::channel(4);
            tokio::spawn(async move {
                let all = Bytes::from(pattern(len, 1));
                for at in (0..len).step_by(64 * 1024) {
                    if tx.send(all.slice(at..(at + 64 * 1024).min(len))).await.is_err() {
                        return;
                    }
                }
            });
            Ok(Response::stream(body).with_header("kind", "download"))
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_20_mib_streamed_answer_over_duplex() {
    let server = download_server(Config::stream());
    let conn = connect(&server, Config::stream(), 256 * 1024);
    let len = 20 << 20;
    let mut reply = conn.call_stream("/download", len.to_string().into_bytes(), CallOptions::new()).await.unwrap();
    assert_eq!(reply.headers().get("kind").map(String::as_str), Some("download"));
    assert!(reply.body_mut().is_open());
    let got = digest(reply.body_mut()).await.unwrap();
    assert_eq!(got, digest_of(&pattern(len, 1)));
    // The connection is idle and usable afterwards.
    let again = conn.call_stream("/download", &b"10"[..], CallOptions::new()).await.unwrap();
    assert_eq!(again.into_body().bytes().await.unwrap(), pattern(10, 1));
}

#[tokio::test]
async fn a_20_mib_streamed_answer_over_tcp() {
    let server = download_server(Config::stream());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_tcp(listener).await });
    let conn = Endpoint::builder().build().unwrap().connect_tcp(addr).await.unwrap();
    let len = 20 << 20;
    let reply = conn.call_stream("/download", len.to_string().into_bytes(), CallOptions::new()).await.unwrap();
    let mut body = reply.into_body();
    assert_eq!(digest(&mut body).await.unwrap(), digest_of(&pattern(len, 1)));
}

#[tokio::test]
async fn an_empty_streamed_answer_ends_cleanly() {
    let server = download_server(Config::stream());
    let conn = connect(&server, Config::stream(), 64 * 1024);
    let reply = conn.call_stream("/download", &b"0"[..], CallOptions::new()).await.unwrap();
    assert_eq!(reply.into_body().bytes().await.unwrap(), Bytes::new());
}

#[tokio::test]
async fn an_open_request_body_reaches_a_streaming_route_and_a_plain_one() {
    let server = Endpoint::builder()
        .streaming_route("/sum", |_req, mut body| async move {
            let (hash, len) = digest(&mut body).await?;
            Ok(Response::text(format!("{hash} {len}")))
        })
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .build()
        .unwrap();
    let conn = connect(&server, Config::stream(), 64 * 1024);
    let payload = pattern(3 << 20, 2);
    let items: Vec<io::Result<Bytes>> = payload.chunks(50_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let body = OpenBody::from_stream(futures::stream::iter(items));
    let answer = conn.call("/sum", body).await.unwrap().text().unwrap();
    let (hash, len) = digest_of(&payload);
    assert_eq!(answer, format!("{hash} {len}"));
    // Reassembled at a route that is not streamed (within the inline limit).
    let (tx, body) = OpenBody::channel(2);
    tokio::spawn(async move {
        tx.send(Bytes::from_static(b"hello ")).await.unwrap();
        tx.send(Bytes::from_static(b"world")).await.unwrap();
    });
    assert_eq!(conn.call("/echo", body).await.unwrap().bytes().unwrap(), &b"hello world"[..]);
}

#[tokio::test]
async fn bidirectional_echo_answers_item_by_item_while_the_request_arrives() {
    let server = Endpoint::builder()
        .streaming_route("/echo", |_req, mut body| async move {
            let (tx, answer) = OpenBody::channel(4);
            tokio::spawn(async move {
                while let Ok(Some(chunk)) = body.chunk().await {
                    let upper = Bytes::from(chunk.to_ascii_uppercase());
                    if tx.send(upper).await.is_err() {
                        return;
                    }
                }
            });
            Ok(Response::stream(answer))
        })
        .build()
        .unwrap();
    let conn = connect(&server, Config::stream(), 64 * 1024);
    let (tx, request) = OpenBody::channel(1);
    let mut reply = conn.call_stream("/echo", request, CallOptions::new()).await.unwrap();
    // Each item's echo comes back before the next item is sent: the request is still open.
    for word in ["alpha", "beta", "gamma"] {
        tx.send(Bytes::from(word)).await.unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < word.len() {
            echoed.extend_from_slice(&reply.body_mut().chunk().await.unwrap().expect("an echo"));
        }
        assert_eq!(echoed, word.to_ascii_uppercase().as_bytes());
    }
    drop(tx);
    assert_eq!(reply.body_mut().chunk().await.unwrap(), None, "the answer ends after the request");
}

#[tokio::test]
async fn dropping_the_reader_mid_stream_stops_the_producer() {
    let (closed_tx, closed_rx) = oneshot::channel();
    let closed_tx = Arc::new(std::sync::Mutex::new(Some(closed_tx)));
    let server = Endpoint::builder()
        .route("/forever", move |_req| {
            let closed_tx = closed_tx.clone();
            async move {
                let (tx, body) = OpenBody::channel(2);
                tokio::spawn(async move {
                    let mut sent = 0u64;
                    while tx.send(Bytes::from(vec![7u8; 16 * 1024])).await.is_ok() {
                        sent += 1;
                    }
                    assert!(tx.is_closed());
                    if let Some(done) = closed_tx.lock().unwrap().take() {
                        let _ = done.send(sent);
                    }
                });
                Ok(Response::stream(body))
            }
        })
        .build()
        .unwrap();
    let conn = connect(&server, Config::stream(), 64 * 1024);
    let mut reply = conn.call_stream("/forever", Bytes::new(), CallOptions::new()).await.unwrap();
    for _ in 0..10 {
        reply.body_mut().chunk().await.unwrap().expect("a chunk");
    }
    drop(reply);
    let sent = tokio::time::timeout(Duration::from_secs(10), closed_rx).await.expect("the producer stopped").unwrap();
    assert!(sent >= 1);
    // The connection goes on.
    let reply = conn.call_stream("/forever", Bytes::new(), CallOptions::new()).await.unwrap();
    drop(reply);
}

#[tokio::test]
async fn a_producer_failure_mid_stream_is_an_error_for_the_reader() {
    let server = Endpoint::builder()
        .route("/broken", |_req| async move {
            let (tx, body) = OpenBody::channel(2);
            tokio::spawn(async move {
                tx.send(Bytes::from(vec![1u8; 100_000])).await.unwrap();
                tx.fail("the sensor went away");
            });
            Ok(Response::stream(body))
        })
        .route("/broken-stream", |_req| async move {
            let items = vec![Ok(Bytes::from_static(b"some")), Err(io::Error::other("disk read failed"))];
            Ok(Response::stream(OpenBody::from_stream(futures::stream::iter(items))))
        })
        .build()
        .unwrap();
    let conn = connect(&server, Config::stream(), 64 * 1024);
    for route in ["/broken", "/broken-stream"] {
        let mut body = conn.call_stream(route, Bytes::new(), CallOptions::new()).await.unwrap().into_body();
        let err = digest(&mut body).await.expect_err("a stream that stops short is an error");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{route}: {err}");
    }
}

#[tokio::test]
async fn the_caller_cancelling_is_seen_by_the_handler_as_closed() {
    let (seen_tx, seen_rx) = oneshot::channel();
    let seen_tx = Arc::new(std::sync::Mutex::new(Some(seen_tx)));
    let server = Endpoint::builder()
        .route("/sub", move |_req| {
            let seen_tx = seen_tx.clone();
            async move {
                let (tx, body) = OpenBody::channel(1);
                tokio::spawn(async move {
                    tx.send(Bytes::from_static(b"tick")).await.unwrap();
                    // Nothing more for a while: the producer waits for the caller to go.
                    tx.closed().await;
                    if let Some(done) = seen_tx.lock().unwrap().take() {
                        let _ = done.send(());
                    }
                });
                Ok(Response::stream(body))
            }
        })
        .build()
        .unwrap();
    let conn = connect(&server, Config::stream(), 64 * 1024);
    let mut body = conn.call_stream("/sub", Bytes::new(), CallOptions::new()).await.unwrap().into_body();
    assert_eq!(body.chunk().await.unwrap().unwrap(), &b"tick"[..]);
    drop(body);
    tokio::time::timeout(Duration::from_secs(10), seen_rx).await.expect("the handler's sender saw closed").unwrap();
}

#[tokio::test]
async fn a_slow_reader_holds_at_most_the_window_and_the_pipe() {
    const WINDOW: u64 = 128 * 1024;
    const TOTAL: u64 = 4 << 20;
    let limits = Limits { window: WINDOW, inline_limit: 32 * 1024, ..Limits::default() };
    let produced = Arc::new(AtomicU64::new(0));
    let p = produced.clone();
    let server = Endpoint::builder()
        .config(Config::stream().with_limits(limits))
        .route("/download", move |_req| {
            let produced = p.clone();
            async move {
                let (tx, body) = OpenBody::channel(1);
                tokio::spawn(async move {
                    while produced.load(Ordering::SeqCst) < TOTAL {
                        if tx.send(Bytes::from(vec![3u8; 16 * 1024])).await.is_err() {
                            return;
                        }
                        produced.fetch_add(16 * 1024, Ordering::SeqCst);
                    }
                });
                Ok(Response::stream(body))
            }
        })
        .build()
        .unwrap();
    let duplex = 16 * 1024;
    let conn = connect(&server, Config::stream().with_limits(limits), duplex);
    let mut body = conn.call_stream("/download", Bytes::new(), CallOptions::new()).await.unwrap().into_body();
    let (mut read, mut ahead_max) = (0u64, 0u64);
    while let Some(chunk) = body.chunk().await.unwrap() {
        read += chunk.len() as u64;
        ahead_max = ahead_max.max(produced.load(Ordering::SeqCst).saturating_sub(read));
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
    assert_eq!(read, TOTAL);
    // Produced but unread: the window, the pipe, a read buffer (64 KiB) of frame overhead, what
    // the session keeps supplied ahead of the link (below 2 × 64 KiB) and the producer's channel
    // (one 16 KiB item plus the one being sent).
    let bound = WINDOW + duplex as u64 + 64 * 1024 + 2 * 64 * 1024 + 2 * 16 * 1024;
    println!("producer ahead of the reader by at most {ahead_max} bytes (bound {bound}, total {TOTAL})");
    assert!(ahead_max <= bound, "the producer ran {ahead_max} bytes ahead of a slow reader");
}

#[tokio::test]
async fn a_peer_without_open_length_messages() {
    let streamed_answer_tried = Arc::new(AtomicBool::new(false));
    let tried = streamed_answer_tried.clone();
    let server = Endpoint::builder()
        .config(Config::stream().with_open_length(false))
        .route("/download", move |_req| {
            let tried = tried.clone();
            async move {
                tried.store(true, Ordering::SeqCst);
                let (tx, body) = OpenBody::channel(1);
                drop(tx);
                Ok(Response::stream(body))
            }
        })
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .build()
        .unwrap();
    let conn = connect(&server, Config::stream(), 64 * 1024);
    conn.ready().await.unwrap();
    // Our open body is refused locally, naming the reason.
    let (_tx, body) = OpenBody::channel(1);
    let err = conn.call("/echo", body).await.unwrap_err();
    assert!(err.to_string().contains("HELLO option OPEN"), "{err}");
    // Its open answer becomes ERROR UNAVAILABLE.
    match conn.call_stream("/download", Bytes::new(), CallOptions::new()).await {
        Err(CallError::Remote(err)) => {
            assert_eq!(err.code, ErrorCode::UNAVAILABLE);
            assert!(err.message.contains("HELLO option OPEN"), "{}", err.message);
        }
        other => panic!("expected ERROR UNAVAILABLE, got {other:?}"),
    }
    assert!(streamed_answer_tried.load(Ordering::SeqCst));
    // A known-length answer still streams to us (our choice, nothing on the wire).
    let reply = conn.call_stream("/echo", &b"plain"[..], CallOptions::new()).await.unwrap();
    assert_eq!(reply.into_body().bytes().await.unwrap(), &b"plain"[..]);
}

#[tokio::test]
async fn an_open_one_way_whose_handler_stops_reading_is_called_off() {
    let server = Endpoint::builder()
        .streaming_route("/first-chunk", |_req, mut body| async move {
            // Reads one chunk and drops the rest: nothing will ever answer a one-way message.
            let _ = body.chunk().await;
            Ok(Response::empty())
        })
        .build()
        .unwrap();
    let conn = connect(&server, Config::stream(), 64 * 1024);
    let (tx, body) = OpenBody::channel(2);
    let sent = tokio::spawn(async move { conn.notify("/first-chunk", body).await });
    let mut chunks = 0u64;
    let chunk = Bytes::from(vec![7u8; 16 * 1024]);
    // Without the CANCEL the sender would go on for ever; with it, `send` fails.
    while tx.send(chunk.clone()).await.is_ok() {
        chunks += 1;
        assert!(chunks < 100_000, "still sending after {chunks} chunks of 16 KiB: never called off");
    }
    let outcome = sent.await.unwrap();
    assert!(matches!(outcome, Err(netcore::CallError::Cancelled(_))), "{outcome:?} after {chunks} chunks");
}

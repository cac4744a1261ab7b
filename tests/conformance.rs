//! Regressions for what an independent implementation of docs/PROTOCOL.md found (issue 12), at the
//! endpoint level: a raw peer built on the public frame codec talks to a real `Endpoint`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use netcore::endpoint::{CallError, ErrorCode, Response};
use netcore::frame::stream::StreamDecoder;
use netcore::frame::{self, Frame, Framing, Head, Hello, Kind, Limits, Priority, Route, Xid};
use netcore::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A peer that speaks frames by hand.
struct RawPeer {
    io: DuplexStream,
    decoder: StreamDecoder,
    next_id: u32,
}

impl RawPeer {
    /// Connects to `server` and exchanges HELLOs; `limits` are what this peer announces.
    async fn connect(server: &Endpoint, limits: Limits) -> Self {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        server.connect(theirs, "raw peer");
        let mut peer = Self { io: ours, decoder: StreamDecoder::new(1 << 20), next_id: 0 };
        peer.send(&[Frame::Hello(Hello::new(1, 1, 0, limits))]).await;
        assert!(matches!(peer.next().await, Frame::Hello(_)));
        peer
    }

    async fn send(&mut self, frames: &[Frame]) {
        let mut wire = BytesMut::new();
        for frame in frames {
            frame::encode(Framing::Stream, frame, &mut wire).unwrap();
        }
        self.io.write_all(&wire).await.unwrap();
    }

    /// A complete request in one HEAD; returns its exchange id.
    async fn request(&mut self, route: &str, priority: u8, meta: Option<Bytes>, payload: &[u8]) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let head = Head {
            xid: Xid { id, opened_by_receiver: false },
            kind: Kind::Request,
            priority: Priority::new(priority),
            route: Some(Route::Name(route.into())),
            meta,
            total: payload.len() as u64,
            payload: Bytes::copy_from_slice(payload),
        };
        self.send(&[Frame::Head(head)]).await;
        id
    }

    /// The next frame from the endpoint (PINGs and CREDITs included), within 10 s.
    async fn next(&mut self) -> Frame {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(frame) = self.decoder.decode().unwrap() {
                    return frame;
                }
                let mut buf = [0u8; 16 * 1024];
                let n = self.io.read(&mut buf).await.unwrap();
                assert!(n > 0, "the endpoint closed the link");
                self.decoder.extend(&buf[..n]);
            }
        })
        .await
        .expect("a frame within 10 s")
    }

    /// The HEAD answering exchange `id`, skipping other frames; also returns the payload bytes of
    /// other exchanges' answers that arrived before it.
    async fn answer_head(&mut self, id: u32) -> (Head, usize) {
        let mut others = 0;
        loop {
            match self.next().await {
                Frame::Head(head) if head.xid.id == id && head.xid.opened_by_receiver => return (head, others),
                Frame::Head(head) => others += head.payload.len(),
                Frame::Data(data) => others += data.payload.len(),
                _ => {}
            }
        }
    }
}

fn server() -> Endpoint {
    Endpoint::builder()
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .route("/urgent-answer", |req| async move { Ok(Response::bytes(req.bytes()?).with_priority(Priority::new(6))) })
        .route("/download", |req| async move {
            let len: usize = req.text()?.parse().unwrap_or(0);
            Ok(Response::bytes(vec![0x5a; len]))
        })
        .build()
        .unwrap()
}

/// Issue 12.3: answers go out at the request's priority unless the handler sets another (§7).
#[tokio::test]
async fn answers_inherit_the_requests_priority() {
    let server = server();
    let mut peer = RawPeer::connect(&server, Limits { window: 0, ..Limits::default() }).await;
    for priority in [0, 3, 5, 7] {
        let id = peer.request("/echo", priority, None, b"x").await;
        let (head, _) = peer.answer_head(id).await;
        assert_eq!((head.kind, head.priority.level()), (Kind::Response, priority));
    }
    let id = peer.request("/urgent-answer", 1, None, b"x").await;
    let (head, _) = peer.answer_head(id).await;
    assert_eq!(head.priority.level(), 6, "the handler's choice wins");
    let id = peer.request("/nowhere", 7, None, b"x").await;
    let (head, _) = peer.answer_head(id).await;
    assert_eq!((head.kind, head.priority.level()), (Kind::Error, 7), "errors inherit it too");
}

/// Issue 12.3: an urgent call's reply overtakes large replies already in flight.
#[tokio::test]
async fn an_urgent_reply_overtakes_bulk_replies_in_flight() {
    let server = server();
    let mut peer = RawPeer::connect(&server, Limits { window: 0, ..Limits::default() }).await;
    for _ in 0..16 {
        peer.request("/download", 0, None, b"262144").await;
    }
    // Wait until the bulk replies are flowing, then ask for something urgent.
    while !matches!(peer.next().await, Frame::Data(_)) {}
    let id = peer.request("/echo", 7, None, b"now").await;
    let (head, bulk_before) = peer.answer_head(id).await;
    assert_eq!(&head.payload[..], b"now");
    // What was already written or batched (the 64 KiB pipe, one 64 KiB write batch) plus about
    // one chunk; at the bulk replies' level, round robin over 16 of them would add 16 chunks.
    eprintln!("bulk reply bytes read before the urgent reply: {bulk_before}");
    assert!(bulk_before < 200 * 1024, "{bulk_before} bytes of bulk replies went first");
}

/// Issue 12.2: an answer over the requester's max_message is refused promptly, naming both sizes.
#[tokio::test]
async fn an_answer_over_the_callers_max_message_fails_the_call_at_once() {
    let server = server();
    let limits = Limits { max_message: 4096, inline_limit: 4096, ..Limits::default() };
    let client = Endpoint::builder().config(netcore::session::Config::stream().with_limits(limits)).build().unwrap();
    let (a, b) = tokio::io::duplex(64 * 1024);
    server.connect(b, "server");
    let conn = client.connect(a, "client");
    let started = std::time::Instant::now();
    let err = conn.call("/download", b"5000".to_vec()).await.unwrap_err();
    let CallError::Remote(err) = &err else { panic!("{err}") };
    assert_eq!(err.code, ErrorCode::TOO_LARGE);
    assert!(err.message.contains("5000") && err.message.contains("4096"), "{}", err.message);
    assert!(started.elapsed() < Duration::from_secs(5), "not after a timeout");
    let reply = conn.call("/download", b"4096".to_vec()).await.unwrap();
    assert_eq!(reply.bytes().unwrap().len(), 4096, "the connection is still good");
}

/// Issue 12.5: a receiver takes headers in any order, the last of duplicate names, and an empty
/// block as no headers (§15).
#[tokio::test]
async fn header_blocks_are_read_as_section_15_says() {
    let server = Endpoint::builder()
        .route("/headers", |req| async move {
            let pairs: Vec<String> = req.headers().iter().map(|(k, v)| format!("{k}={v}")).collect();
            Ok(Response::text(pairs.join(",")))
        })
        .build()
        .unwrap();
    let mut peer = RawPeer::connect(&server, Limits { window: 0, ..Limits::default() }).await;
    let block = |pairs: &[(&str, &str)]| {
        let mut out = vec![pairs.len() as u8];
        for (k, v) in pairs {
            out.extend([k.len() as u8]);
            out.extend(k.as_bytes());
            out.extend([v.len() as u8]);
            out.extend(v.as_bytes());
        }
        Some(Bytes::from(out))
    };
    let cases: [(Option<Bytes>, &str); 3] = [
        (block(&[("z", "1"), ("a", "2")]), "a=2,z=1"),
        (block(&[("k", "first"), ("k", "last")]), "k=last"),
        (block(&[]), ""),
    ];
    for (meta, expected) in cases {
        let id = peer.request("/headers", 3, meta, b"").await;
        let (head, _) = peer.answer_head(id).await;
        assert_eq!(head.kind, Kind::Response);
        assert_eq!(String::from_utf8_lossy(&head.payload), expected);
    }
}

//! `Connection::close` returns only once the GOAWAY is on the transport (docs/PROTOCOL.md §10):
//! a process that exits right after it must not cut the GOAWAY off. A raw peer checks the bytes.

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures::FutureExt;
use netcore::frame::stream::StreamDecoder;
use netcore::frame::{self, Frame, Framing, GoAwayCode, Hello, Limits};
use netcore::Endpoint;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Rounds of each test, so that a scheduling order that hides the race in one does not hide it
/// in all (with the old `close`, which returned on `LinkState::Closed`, every round failed).
const ROUNDS: usize = 50;

/// A transport whose every other write is not ready at once, as on a busy machine: the driver
/// task yields between publishing the close and writing the GOAWAY.
struct Hesitant<T> {
    inner: T,
    ready: bool,
}

impl<T> Hesitant<T> {
    fn new(inner: T) -> Self {
        Self { inner, ready: false }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Hesitant<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Hesitant<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.ready = !self.ready;
        if !self.ready {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn hello() -> BytesMut {
    let mut wire = BytesMut::new();
    frame::encode(Framing::Stream, &Frame::Hello(Hello::new(1, 1, 0, Limits::default())), &mut wire).unwrap();
    wire
}

/// The frames in `bytes`; every byte must belong to a complete frame.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = StreamDecoder::new(1 << 20);
    decoder.extend(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode().expect("well-formed frames") {
        frames.push(frame);
    }
    assert_eq!(decoder.buffered(), 0, "a partial frame after {frames:?}");
    frames
}

fn assert_ends_with_goaway(bytes: &[u8], round: usize) {
    let frames = frames(bytes);
    match frames.last() {
        Some(Frame::GoAway { code, .. }) => assert_eq!(*code, GoAwayCode::NORMAL, "round {round}"),
        _ => panic!("round {round}: no GOAWAY when close returned, only {frames:?}"),
    }
}

// Each round runs in a task of its own: the round's task and the driver then take turns in the
// run queue like any two tasks, instead of the test's future waiting until the driver is idle.

#[tokio::test]
async fn close_returns_after_the_goaway_is_written_and_the_writer_shut_down() {
    for round in 0..ROUNDS {
        tokio::spawn(async move {
            let client = Endpoint::builder().build().unwrap();
            let (ours, mut peer) = tokio::io::duplex(1 << 16);
            let conn = client.connect(Hesitant::new(ours), "raw peer");
            peer.write_all(&hello()).await.unwrap();
            conn.ready().await.unwrap();
            conn.close().await;
            // Only what is already in the pipe: each read is polled once, without yielding.
            let mut received = Vec::new();
            let mut buf = [0u8; 4096];
            let eof = loop {
                match peer.read(&mut buf).now_or_never() {
                    Some(Ok(0)) => break true,
                    Some(Ok(n)) => received.extend_from_slice(&buf[..n]),
                    Some(Err(err)) => panic!("round {round}: {err}"),
                    None => break false,
                }
            };
            assert_ends_with_goaway(&received, round);
            assert!(eof, "round {round}: the writer was not shut down when close returned");
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_process_stopping_after_close_has_sent_its_goaway_over_tcp() {
    for round in 0..ROUNDS {
        tokio::spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (socket, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
            let (mut peer, _) = accepted.unwrap();
            let client = Endpoint::builder().build().unwrap();
            let conn = client.connect(Hesitant::new(socket.unwrap()), "tcp raw peer");
            peer.write_all(&hello()).await.unwrap();
            conn.ready().await.unwrap();
            conn.close().await;
            // A blocking read holds the runtime's only thread, so the driver cannot run any more,
            // as in a process that exits: what arrives was sent before `close` returned.
            let peer = peer.into_std().unwrap();
            peer.set_nonblocking(false).unwrap();
            peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut received = Vec::new();
            let ended = (&peer).read_to_end(&mut received);
            assert_ends_with_goaway(&received, round);
            assert!(ended.is_ok(), "round {round}: no FIN after the GOAWAY: {ended:?}");
        })
        .await
        .unwrap();
    }
}

//! A pair of blocking `recv`/`send` functions as an async byte stream (the Python original's
//! "give me recv and send"). Each function runs on its own thread and blocks in it; the threads and
//! the async side meet through small bounded channels, so nothing polls or spins.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Chunks in flight between a thread and the async side, each way.
const CHANNEL_DEPTH: usize = 8;
/// Largest read asked of `recv` at once.
const READ_SIZE: usize = 4096;

/// An async byte stream over blocking functions. Created with [`BlockingIo::new`].
pub struct BlockingIo {
    incoming: mpsc::Receiver<io::Result<Bytes>>,
    leftover: Bytes,
    outgoing: PollSender<Bytes>,
    eof: bool,
}

impl std::fmt::Debug for BlockingIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingIo").field("eof", &self.eof).finish_non_exhaustive()
    }
}

impl BlockingIo {
    /// Runs `recv` and `send` on two threads.
    ///
    /// `recv` fills a buffer and returns how many bytes it read; `Ok(0)` is end of stream. Errors of
    /// kind `TimedOut`, `WouldBlock` and `Interrupted` are retried (serial ports time out when
    /// idle), and give the thread a chance to notice the stream was dropped. `send` writes all of
    /// its bytes or fails. Must be called inside a tokio runtime.
    pub fn new<R, W>(recv: R, send: W) -> io::Result<Self>
    where
        R: FnMut(&mut [u8]) -> io::Result<usize> + Send + 'static,
        W: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
    {
        let (in_tx, incoming) = mpsc::channel(CHANNEL_DEPTH);
        let (outgoing, out_rx) = mpsc::channel(CHANNEL_DEPTH);
        std::thread::Builder::new().name("netcore-recv".into()).spawn(move || receive_loop(recv, in_tx))?;
        std::thread::Builder::new().name("netcore-send".into()).spawn(move || send_loop(send, out_rx))?;
        Ok(Self { incoming, leftover: Bytes::new(), outgoing: PollSender::new(outgoing), eof: false })
    }
}

fn receive_loop(mut recv: impl FnMut(&mut [u8]) -> io::Result<usize>, tx: mpsc::Sender<io::Result<Bytes>>) {
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let chunk = match recv(&mut buf) {
            Ok(0) => Ok(Bytes::new()),
            Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                if tx.is_closed() {
                    return;
                }
                continue;
            }
            Err(e) => Err(e),
        };
        let last = !matches!(&chunk, Ok(bytes) if !bytes.is_empty());
        if tx.blocking_send(chunk).is_err() || last {
            return;
        }
    }
}

fn send_loop(mut send: impl FnMut(&[u8]) -> io::Result<()>, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(bytes) = rx.blocking_recv() {
        if send(&bytes).is_err() {
            return;
        }
    }
}

impl AsyncRead for BlockingIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        while self.leftover.is_empty() && !self.eof {
            match ready!(self.incoming.poll_recv(cx)) {
                Some(Ok(bytes)) if !bytes.is_empty() => self.leftover = bytes,
                Some(Err(e)) => {
                    self.eof = true;
                    return Poll::Ready(Err(e));
                }
                _ => self.eof = true,
            }
        }
        let n = self.leftover.len().min(buf.remaining());
        buf.put_slice(&self.leftover[..n]);
        self.leftover.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for BlockingIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let broken = || io::Error::new(io::ErrorKind::BrokenPipe, "the send function failed or returned");
        ready!(self.outgoing.poll_reserve(cx)).map_err(|_| broken())?;
        self.outgoing.send_item(Bytes::copy_from_slice(buf)).map_err(|_| broken())?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outgoing.close();
        Poll::Ready(Ok(()))
    }
}

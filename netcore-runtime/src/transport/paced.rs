//! A transport that releases written bytes no faster than a line rate, to emulate a serial link
//! (115 200 baud 8N1 is 11 520 bytes/s) over a fast one, or to share a link politely.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Bytes written in one go at most: a UART-sized burst, so pacing stays smooth.
const BURST: usize = 64;

/// Wraps a byte stream and paces its writes to `rate` bytes per second. Reads are untouched.
#[derive(Debug)]
pub struct Paced<IO> {
    inner: IO,
    rate: u64,
    /// When the line is free again.
    free_at: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl<IO> Paced<IO> {
    /// Paces `inner`'s writes to `rate` bytes per second (at least 1).
    pub fn new(inner: IO, rate: u64) -> Self {
        let now = Instant::now();
        Self { inner, rate: rate.max(1), free_at: now, sleep: Box::pin(tokio::time::sleep_until(now)) }
    }

    /// The bytes-per-second rate of a UART at `baud` with 8N1 framing.
    pub const fn uart_rate(baud: u64) -> u64 {
        baud / 10
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Paced<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Paced<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let now = Instant::now();
        if self.free_at > now {
            let free_at = self.free_at;
            self.sleep.as_mut().reset(free_at);
            ready!(self.sleep.as_mut().poll(cx));
        }
        let burst = buf.len().min(BURST);
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..burst]))?;
        let airtime = Duration::from_nanos(n as u64 * 1_000_000_000 / self.rate);
        // Timers fire late (tokio's resolution is 1 ms): keep counting from when the line should
        // have been free, unless it really was idle, or the lateness would lower the rate.
        let idle = now.saturating_duration_since(self.free_at) > airtime;
        self.free_at = if idle { now } else { self.free_at } + airtime;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_take_their_airtime() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut paced = Paced::new(a, 1000);
        let start = Instant::now();
        paced.write_all(&[7u8; 500]).await.unwrap();
        paced.write_all(&[7u8; 500]).await.unwrap();
        // The last burst is written at once; the line is busy until its airtime ends.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(930) && elapsed <= Duration::from_millis(1000), "{elapsed:?}");
        let mut got = vec![0u8; 1000];
        b.read_exact(&mut got).await.unwrap();
    }
}

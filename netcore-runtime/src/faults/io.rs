//! [`FaultyIo`]: a plan's faults applied to a real async byte stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::{FaultCounts, FaultPlan, Mangler, Rng};

/// Bytes read from the inner stream at once.
const READ_CHUNK: usize = 4096;

/// Pulls and replugs the cable of a [`FaultyIo`]: while pulled, reads wait (no EOF, no error) and
/// writes vanish, as on a serial line whose cable is out. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cable {
    state: Arc<CableState>,
}

#[derive(Debug, Default)]
struct CableState {
    pulled: AtomicBool,
    reader: Mutex<Option<Waker>>,
}

impl Cable {
    /// Pulls the cable: the link goes silent.
    pub fn pull(&self) {
        self.state.pulled.store(true, Ordering::SeqCst);
    }

    /// Plugs it back: bytes flow again; those sent while it was out are lost.
    pub fn replug(&self) {
        self.state.pulled.store(false, Ordering::SeqCst);
        if let Some(waker) = self.state.reader.lock().expect("never poisoned").take() {
            waker.wake();
        }
    }

    /// Whether the cable is out.
    pub fn is_pulled(&self) -> bool {
        self.state.pulled.load(Ordering::SeqCst)
    }

    fn park(&self, cx: &Context<'_>) {
        *self.state.reader.lock().expect("never poisoned") = Some(cx.waker().clone());
    }
}

/// Wraps a byte stream and applies a [`FaultPlan`] to it: byte faults, split, delayed and
/// `Pending` reads, and silence, EOF, half-close or reset after a number of bytes. Byte faults
/// damage what is read; to damage what is written, wrap the peer's end too.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # use netcore_runtime as netcore;
/// use netcore::faults::{FaultPlan, FaultyIo};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let (a, mut b) = tokio::io::duplex(1024);
/// let mut faulty = FaultyIo::new(a, FaultPlan::new(1).with_split_reads(3).with_truncate_after(10));
/// b.write_all(b"hello, faulty world").await.unwrap();
/// let mut got = Vec::new();
/// faulty.read_to_end(&mut got).await.unwrap();
/// assert_eq!(got, b"hello, fau");
/// # }
/// ```
#[derive(Debug)]
pub struct FaultyIo<IO> {
    inner: IO,
    plan: FaultPlan,
    mangler: Mangler,
    /// Timing choices (splits, pending, delays), apart from the byte faults.
    timing: Rng,
    /// Damaged bytes not yet read.
    ready: Vec<u8>,
    ready_from: usize,
    /// Bytes handed to the reader, and written to the inner stream.
    delivered: u64,
    written: u64,
    inner_eof: bool,
    write_closed: bool,
    /// The pause and `Pending` of the current read were decided.
    decided: bool,
    delay: Option<Pin<Box<Sleep>>>,
    cable: Cable,
}

impl<IO> FaultyIo<IO> {
    /// Applies `plan` to `inner`.
    pub fn new(inner: IO, plan: FaultPlan) -> Self {
        Self {
            inner,
            mangler: plan.mangler(),
            timing: Rng::new(plan.seed ^ 0x005e_ed0f_71e5),
            plan,
            ready: Vec::new(),
            ready_from: 0,
            delivered: 0,
            written: 0,
            inner_eof: false,
            write_closed: false,
            decided: false,
            delay: None,
            cable: Cable::default(),
        }
    }

    /// The cable of this stream, to pull and replug it.
    pub fn cable(&self) -> Cable {
        self.cable.clone()
    }

    /// Byte faults applied so far to what was read.
    pub fn counts(&self) -> FaultCounts {
        self.mangler.counts()
    }

    /// Bytes handed to the reader so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> IO {
        self.inner
    }

    fn is_reset(&self) -> bool {
        self.plan.reset_after.is_some_and(|n| self.delivered + self.written >= n)
    }

    fn is_silent(&self) -> bool {
        self.cable.is_pulled() || self.plan.stall_after.is_some_and(|n| self.delivered >= n)
    }

    /// Most bytes the next read may deliver before a planned event.
    fn read_budget(&self) -> u64 {
        let mut budget = u64::MAX;
        for n in [self.plan.stall_after, self.plan.truncate_after].into_iter().flatten() {
            budget = budget.min(n.saturating_sub(self.delivered));
        }
        if let Some(n) = self.plan.reset_after {
            budget = budget.min(n.saturating_sub(self.delivered + self.written));
        }
        budget
    }
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "fault injection: connection reset")
}

impl<IO: AsyncRead + Unpin> AsyncRead for FaultyIo<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.is_reset() {
            return Poll::Ready(Err(reset()));
        }
        if this.is_silent() {
            this.cable.park(cx);
            // What arrives meanwhile falls on the floor, as it would with the cable out.
            while !this.inner_eof {
                let mut raw = [0u8; READ_CHUNK];
                let mut raw_buf = ReadBuf::new(&mut raw);
                match Pin::new(&mut this.inner).poll_read(cx, &mut raw_buf) {
                    Poll::Ready(Ok(())) if raw_buf.filled().is_empty() => this.inner_eof = true,
                    Poll::Ready(Ok(())) => {}
                    _ => break,
                }
            }
            this.ready.clear();
            this.ready_from = 0;
            // Replugged between the check and the park: do not sleep forever.
            if !this.is_silent() {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        if this.plan.truncate_after.is_some_and(|n| this.delivered >= n) {
            return Poll::Ready(Ok(()));
        }
        if !this.decided {
            this.decided = true;
            if let Some((p, pause)) = this.plan.delay {
                if this.timing.chance(p) {
                    this.delay = Some(Box::pin(tokio::time::sleep(pause)));
                }
            }
            if this.timing.chance(this.plan.pending) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if let Some(delay) = &mut this.delay {
            if delay.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.delay = None;
        }
        while this.ready_from == this.ready.len() && !this.inner_eof {
            let mut raw = [0u8; READ_CHUNK];
            let mut raw_buf = ReadBuf::new(&mut raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut raw_buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Ready(Ok(())) if raw_buf.filled().is_empty() => this.inner_eof = true,
                Poll::Ready(Ok(())) => {
                    this.ready.clear();
                    this.ready_from = 0;
                    this.mangler.mangle_into(raw_buf.filled(), &mut this.ready);
                }
            }
        }
        let available = this.ready.len() - this.ready_from;
        if available == 0 {
            return Poll::Ready(Ok(())); // EOF
        }
        let mut n = available.min(buf.remaining());
        if this.plan.split_reads > 0 {
            n = n.min(1 + this.timing.below(this.plan.split_reads as u64) as usize);
        }
        n = n.min(usize::try_from(this.read_budget()).unwrap_or(usize::MAX));
        buf.put_slice(&this.ready[this.ready_from..this.ready_from + n]);
        this.ready_from += n;
        this.delivered += n as u64;
        this.decided = false;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FaultyIo<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.is_reset() {
            return Poll::Ready(Err(reset()));
        }
        if this.write_closed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "fault injection: write side closed")));
        }
        if this.is_silent() {
            return Poll::Ready(Ok(buf.len()));
        }
        let mut budget = u64::MAX;
        if let Some(n) = this.plan.half_close_after {
            budget = n.saturating_sub(this.written);
            if budget == 0 {
                std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                this.write_closed = true;
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "fault injection: half-closed")));
            }
        }
        if let Some(n) = this.plan.reset_after {
            budget = budget.min(n.saturating_sub(this.delivered + this.written));
        }
        let len = buf.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..len]))?;
        this.written += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_silent() || self.write_closed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_closed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn read_all<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        io.read_to_end(&mut got).await?;
        Ok(got)
    }

    #[tokio::test]
    async fn split_pending_and_delayed_reads_keep_the_bytes() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let plan = FaultPlan::new(9).with_split_reads(5).with_pending(0.5);
        let mut faulty = FaultyIo::new(a, plan);
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        b.write_all(&data).await.unwrap();
        drop(b);
        assert_eq!(read_all(&mut faulty).await.unwrap(), data);
    }

    #[tokio::test(start_paused = true)]
    async fn delays_take_their_time() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut faulty = FaultyIo::new(a, FaultPlan::new(1).with_delay(1.0, Duration::from_secs(10)));
        b.write_all(b"x").await.unwrap();
        let start = tokio::time::Instant::now();
        let mut one = [0u8; 1];
        faulty.read_exact(&mut one).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test]
    async fn byte_faults_match_the_mangler() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let plan = FaultPlan::serial_noise(5).with_split_reads(7);
        let mut faulty = FaultyIo::new(a, plan.clone());
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 13) as u8).collect();
        let writer = tokio::spawn(async move {
            for piece in data.chunks(333) {
                b.write_all(piece).await.unwrap();
            }
        });
        let got = read_all(&mut faulty).await.unwrap();
        writer.await.unwrap();
        let mut expected: Vec<u8> = (0..20_000u32).map(|i| (i * 13) as u8).collect();
        plan.mangler().mangle(&mut expected);
        assert_eq!(got, expected, "the damage does not depend on how reads are cut");
    }

    #[tokio::test]
    async fn truncate_half_close_and_reset() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut faulty = FaultyIo::new(a, FaultPlan::new(0).with_reset_after(6));
        b.write_all(b"0123456789").await.unwrap();
        let mut four = [0u8; 4];
        faulty.read_exact(&mut four).await.unwrap();
        assert_eq!(faulty.write(b"abcdef").await.unwrap(), 2, "the reset budget is shared");
        let err = faulty.read(&mut four).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(faulty.write(b"x").await.unwrap_err().kind(), io::ErrorKind::ConnectionReset);

        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut faulty = FaultyIo::new(a, FaultPlan::new(0).with_half_close_after(3));
        faulty.write_all(b"abc").await.unwrap();
        assert_eq!(faulty.write(b"d").await.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(read_all(&mut b).await.unwrap(), b"abc", "the peer reads EOF");
        // Reads still work after the half-close.
        b.write_all(b"back").await.unwrap();
        let mut back = [0u8; 4];
        faulty.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pulled_cable_is_silent_until_replugged() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut faulty = FaultyIo::new(a, FaultPlan::new(0));
        let cable = faulty.cable();
        cable.pull();
        b.write_all(b"lost?").await.unwrap();
        assert_eq!(faulty.write(b"vanishes").await.unwrap(), 8);
        let mut buf = [0u8; 5];
        let waited = tokio::time::timeout(Duration::from_secs(60), faulty.read(&mut buf)).await;
        assert!(waited.is_err(), "no EOF, no error: silence");
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 5];
            faulty.read_exact(&mut buf).await.unwrap();
            buf
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        cable.replug();
        b.write_all(b"found").await.unwrap();
        assert_eq!(&reader.await.unwrap(), b"found", "what was sent while the cable was out is lost");
        assert_eq!(read_all(&mut b).await.unwrap(), b"", "what was written while the cable was out vanished");
    }

    #[tokio::test(start_paused = true)]
    async fn stall_after_goes_silent() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut faulty = FaultyIo::new(a, FaultPlan::new(0).with_stall_after(3));
        b.write_all(b"abcdef").await.unwrap();
        let mut three = [0u8; 3];
        faulty.read_exact(&mut three).await.unwrap();
        let mut more = [0u8; 1];
        assert!(tokio::time::timeout(Duration::from_secs(60), faulty.read(&mut more)).await.is_err());
    }
}

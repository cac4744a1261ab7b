//! Streamed request payloads: read chunk by chunk as they arrive, never stored whole.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::connection::{AnswerGuard, CreditReturn};
use crate::frame::OPEN_TOTAL;

/// The payload of a request to a streaming route
/// ([`EndpointBuilder::streaming_route`](super::EndpointBuilder::streaming_route)), read as it
/// arrives. Each chunk's flow-control credit goes back to the peer once it is read here, so the
/// peer sends only as fast as the handler reads, and at most one window is ever buffered.
///
/// Dropping the stream early discards the rest of the payload as it arrives. A handler may answer
/// before it has read everything: the peer then stops sending the rest (docs/PROTOCOL.md §6).
#[derive(Debug)]
pub struct BodyStream {
    chunks: mpsc::UnboundedReceiver<Bytes>,
    total: u64,
    received: u64,
    credit: Option<CreditReturn>,
    finished: bool,
    /// Bytes at the payload's start that are not part of this stream (a typed method's arguments,
    /// docs/PROTOCOL.md §15): counted in `received` and `total`, not in `len()`/`received()`.
    skip: u64,
    /// Bytes already taken from the channel (and credited) that come next.
    front: Option<Bytes>,
    /// A streamed answer's: cancels its exchange if this stream goes before the end.
    guard: Option<AnswerGuard>,
}

impl BodyStream {
    pub(crate) fn new(chunks: mpsc::UnboundedReceiver<Bytes>, total: u64, credit: CreditReturn) -> Self {
        Self { chunks, total, received: 0, credit: Some(credit), finished: false, skip: 0, front: None, guard: None }
    }

    /// With the guard that cancels a streamed answer's exchange when this stream is dropped
    /// before its end.
    pub(crate) fn with_guard(mut self, guard: AnswerGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Whether the payload is open-length (docs/PROTOCOL.md §5.2): its length is known only at
    /// its end, and [`len`](Self::len) is `u64::MAX` until then.
    pub fn is_open(&self) -> bool {
        self.total == OPEN_TOTAL
    }

    /// A stream of bytes already in memory, as one chunk.
    pub fn from_bytes(bytes: Bytes) -> Self {
        let (tx, chunks) = mpsc::unbounded_channel();
        let total = bytes.len() as u64;
        if !bytes.is_empty() {
            let _ = tx.send(bytes);
        }
        Self { chunks, total, received: 0, credit: None, finished: false, skip: 0, front: None, guard: None }
    }

    /// A stream of bytes in memory, as the given chunks.
    #[cfg(test)]
    pub(crate) fn from_chunks(chunks: Vec<Bytes>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let total = chunks.iter().map(|c| c.len() as u64).sum();
        for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
            let _ = tx.send(chunk);
        }
        Self { chunks: rx, total, received: 0, credit: None, finished: false, skip: 0, front: None, guard: None }
    }

    /// The payload's length, as the sender announced it (`u64::MAX` for an open-length payload
    /// before its end, [`is_open`](Self::is_open)).
    pub fn len(&self) -> u64 {
        self.total - self.skip
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes read so far.
    pub fn received(&self) -> u64 {
        self.received - self.skip - self.front.as_ref().map_or(0, |front| front.len() as u64)
    }

    /// The rest of the payload after its first `skip` bytes, of which `front` (already read
    /// here) are the ones that follow: what a typed method's `stream<bytes>` argument is.
    pub(crate) fn after(mut self, skip: u64, front: Bytes) -> Self {
        self.skip = skip;
        self.front = (!front.is_empty()).then_some(front);
        self
    }

    /// The next chunk; `None` after the last one. An error means the payload stopped short: the
    /// peer cancelled the message or the connection closed.
    pub async fn chunk(&mut self) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// Reads the whole payload into memory.
    pub async fn bytes(mut self) -> io::Result<Bytes> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    /// Writes the whole payload to `writer` (a file, a socket, a flash programmer); the number of
    /// bytes written.
    pub async fn copy_to<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<u64> {
        let start = self.received;
        while let Some(chunk) = self.chunk().await? {
            writer.write_all(&chunk).await?;
        }
        writer.flush().await?;
        Ok(self.received - start)
    }

    /// A chunk already received and not yet read, without waiting: an interrupted resumable
    /// upload stores these too, since they arrived intact (docs/PROTOCOL.md §17.3).
    pub(crate) fn try_chunk(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.try_recv().ok()?;
        self.received += chunk.len() as u64;
        self.give_back(chunk.len());
        Some(chunk)
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if let Some(front) = self.front.take() {
            return Poll::Ready(Ok(Some(front)));
        }
        if self.finished {
            return Poll::Ready(Ok(None));
        }
        match ready!(self.chunks.poll_recv(cx)) {
            // The driver marks an open-length payload's end with an empty chunk.
            Some(chunk) if chunk.is_empty() && self.total == OPEN_TOTAL => {
                self.finished = true;
                self.total = self.received;
                if let Some(guard) = self.guard.take() {
                    guard.disarm();
                }
                Poll::Ready(Ok(None))
            }
            Some(chunk) => {
                self.received += chunk.len() as u64;
                self.give_back(chunk.len());
                Poll::Ready(Ok(Some(chunk)))
            }
            None => {
                self.finished = true;
                // Ended, cleanly or not: the exchange is over either way.
                if let Some(guard) = self.guard.take() {
                    guard.disarm();
                }
                if self.received == self.total {
                    return Poll::Ready(Ok(None));
                }
                if self.total == OPEN_TOTAL {
                    let message = format!(
                        "the open-length payload stopped after {} bytes without its end: the peer cancelled it or the connection closed",
                        self.received - self.skip
                    );
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, message)));
                }
                let message = format!(
                    "the payload stopped after {} of {} bytes: the peer cancelled it or the connection closed",
                    self.received - self.skip,
                    self.total - self.skip
                );
                Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, message)))
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        if let Some(credit) = &self.credit {
            credit.give(bytes as u64);
        }
    }
}

impl Stream for BodyStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx).map(Result::transpose)
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        // Chunks nobody will read still hold the peer's credit: hand it back.
        self.chunks.close();
        while let Ok(chunk) = self.chunks.try_recv() {
            self.give_back(chunk.len());
        }
    }
}

//! Outgoing bodies of unknown length ([`OpenBody`]), sent as open-length messages
//! (docs/PROTOCOL.md §5.2), and the driver's side of them.
//!
//! The session asks for an open body's bytes one piece at a time ("up to N bytes",
//! [`Demand::Read`](crate::session::Demand::Read)); a small task per body pulls the next item
//! from the body's stream when asked, off the connection's task, and hands it back. Nothing is
//! pulled ahead of what the session asked for, so a slow link slows the producer down (through
//! the peer's credit) and memory stays bounded: the sender's channel, plus what the session asked
//! ahead ([`SUPPLY_AHEAD`](crate::session::SUPPLY_AHEAD)).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::session::{Body, MessageId};

/// An outgoing body of unknown length: its bytes come from a stream as the link takes them and
/// the message ends with the stream (an open-length message, docs/PROTOCOL.md §5.2). Give it to
/// [`Connection::call_with`](super::Connection::call_with),
/// [`Connection::notify_with`](super::Connection::notify_with) or
/// [`Response::stream`](crate::Response::stream).
///
/// Only a peer that offered open-length messages (HELLO option OPEN) takes one: sending it to
/// another fails at once, naming the reason. An item that is an error ends the message as failed:
/// the peer sees CANCEL IO and its reader an error, never a shorter message that looks complete.
///
/// ```
/// # use netcore_runtime as netcore;
/// # async fn demo() {
/// let (tx, body) = netcore::OpenBody::channel(4);
/// tokio::spawn(async move {
///     for line in ["first\n", "second\n"] {
///         if tx.send(bytes::Bytes::from(line)).await.is_err() {
///             return; // the peer went away
///         }
///     }
///     // Dropping the sender ends the message.
/// });
/// let _body: netcore::Body = body.into();
/// # }
/// ```
pub struct OpenBody {
    items: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
}

impl fmt::Debug for OpenBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenBody").finish_non_exhaustive()
    }
}

impl OpenBody {
    /// A body fed through a channel holding up to `buffer` items (at least 1): the sender waits
    /// while the channel is full, that is while the link does not take the bytes.
    pub fn channel(buffer: usize) -> (OpenBodySender, OpenBody) {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let failed = Arc::new(Mutex::new(None));
        let items = Channel { rx, failed: failed.clone(), done: false };
        (OpenBodySender { tx, failed }, OpenBody { items: Box::pin(items) })
    }

    /// A body made of a stream's items, in order; an error item fails the message (CANCEL IO).
    /// Empty items are skipped.
    pub fn from_stream(stream: impl Stream<Item = io::Result<Bytes>> + Send + 'static) -> Self {
        OpenBody { items: Box::pin(stream) }
    }

    /// The bytes of `reader` (a pipe, a socket, a file still growing), read in chunks of up to
    /// 64 KiB as the link takes them, to its end of file; a read error fails the message.
    pub fn from_reader(reader: impl tokio::io::AsyncRead + Send + Unpin + 'static) -> Self {
        Self::from_stream(reader_chunks(reader, 64 * 1024))
    }

    /// The same body with `head` sent before its first byte (the typed layer's argument header,
    /// docs/PROTOCOL.md §15).
    pub(crate) fn prepend(self, head: Bytes) -> OpenBody {
        OpenBody { items: Box::pin(futures_util::stream::once(async move { Ok(head) }).chain(self.items)) }
    }

    /// The open body that `body` carries, if it is one ([`Body::Open`] made from an `OpenBody`).
    pub(crate) fn from_body(body: Body) -> Result<OpenBody, Body> {
        match body {
            Body::Open(Some(source)) => match source.downcast::<OpenBody>() {
                Ok(open) => Ok(*open),
                Err(source) => Err(Body::Open(Some(source))),
            },
            other => Err(other),
        }
    }

    /// The next non-empty item; `None` at the end.
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            match self.items.next().await? {
                Ok(bytes) if bytes.is_empty() => continue,
                item => return Some(item),
            }
        }
    }
}

impl From<OpenBody> for Body {
    fn from(body: OpenBody) -> Self {
        Body::open_with(body)
    }
}

/// The bytes of `reader` to its end of file, in chunks of up to `chunk` bytes, read as they are
/// asked for; the first read error is the last item.
pub(crate) fn reader_chunks(
    reader: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    chunk: usize,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(reader), move |state| async move {
        use tokio::io::AsyncReadExt;
        let mut reader = state?;
        let mut buf = bytes::BytesMut::with_capacity(chunk);
        match reader.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(reader))),
            Err(err) => Some((Err(err), None)),
        }
    })
}

/// The error of [`OpenBodySender::send`]: the exchange is gone (the peer cancelled it or read
/// no further, the message failed, or the connection closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the open-length body's exchange is closed: the peer cancelled it or the connection ended")]
pub struct Closed;

/// The producing side of [`OpenBody::channel`]. Dropping it ends the message normally, after
/// the bytes sent before; [`fail`](Self::fail) ends it as failed.
#[derive(Debug)]
pub struct OpenBodySender {
    tx: mpsc::Sender<io::Result<Bytes>>,
    failed: Arc<Mutex<Option<String>>>,
}

impl OpenBodySender {
    /// Sends the next bytes; waits while the channel is full (the link is slower than the
    /// producer). `Err(Closed)` once the exchange is gone: stop producing.
    pub async fn send(&self, bytes: Bytes) -> Result<(), Closed> {
        self.tx.send(Ok(bytes)).await.map_err(|_| Closed)
    }

    /// Ends the message as failed, after the bytes sent before: the peer sees CANCEL IO and its
    /// reader an error. `reason` goes to this side's diagnostics (the wire carries only the
    /// CANCEL).
    pub fn fail(self, reason: impl Into<String>) {
        *self.failed.lock().expect("never poisoned: no panics under the lock") = Some(reason.into());
    }

    /// Resolves when the exchange is gone (the peer cancelled it, the message failed, or the
    /// connection closed): a producer waiting for items of its own can stop then.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Whether the exchange is gone ([`closed`](Self::closed)).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The consuming side of [`OpenBody::channel`] as a stream: the sender's items, then an error
/// if the sender failed the body.
struct Channel {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    failed: Arc<Mutex<Option<String>>>,
    done: bool,
}

impl Stream for Channel {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) => {
                self.done = true;
                let failed = self.failed.lock().expect("never poisoned: no panics under the lock").take();
                Poll::Ready(failed.map(|reason| Err(io::Error::other(reason))))
            }
            other => other,
        }
    }
}

/// What an open body's task hands the driver back.
pub(crate) enum Pulled {
    /// The next bytes, at most what was asked.
    Bytes(Bytes),
    /// The body ended.
    End,
    /// The body failed.
    Failed(io::Error),
}

/// One open body's task: waits for a read ("up to `len` bytes at `offset`"), pulls the body's
/// next item, answers with its first `len` bytes (keeping the rest for the next read). Ends, and
/// drops the body (its sender then sees `closed()`), when the driver drops the request channel
/// (the message was sent, cancelled or failed) or after the body's end.
pub(crate) async fn pull(
    message: MessageId,
    mut body: OpenBody,
    mut reads: mpsc::UnboundedReceiver<(u64, usize)>,
    answer: impl Fn(MessageId, u64, Pulled) -> bool,
) {
    let mut rest = Bytes::new();
    while let Some((offset, len)) = reads.recv().await {
        if rest.is_empty() {
            let item = tokio::select! {
                item = body.next() => item,
                // The message is gone meanwhile: drop the body now.
                None = reads.recv() => return,
            };
            match item {
                Some(Ok(bytes)) => rest = bytes,
                Some(Err(err)) => {
                    answer(message, offset, Pulled::Failed(err));
                    return;
                }
                None => {
                    answer(message, offset, Pulled::End);
                    return;
                }
            }
        }
        let piece = rest.split_to(len.clamp(1, rest.len()));
        if !answer(message, offset, Pulled::Bytes(piece)) {
            return;
        }
    }
}

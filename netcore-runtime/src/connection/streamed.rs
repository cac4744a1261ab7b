//! Streamed answers to our calls ([`Connection::call_stream`]): the answer's bytes are read as
//! they arrive ([`BodyStream`]), never stored whole, with its credit returned as they are read
//! (docs/PROTOCOL.md §6, §8.3).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{CallOptions, Connection, CreditReturn, Shared};
use crate::endpoint::{BodyStream, CallError, Headers};
use crate::frame::{CancelReason, Route};
use crate::session::{Body, Payload};

/// Where the driver puts a streamed answer's chunks.
#[derive(Debug, Clone)]
pub(crate) struct AnswerFeed(pub(crate) mpsc::UnboundedSender<Bytes>);

/// The answer to [`Connection::call_stream`]: its headers at once, its body as it arrives.
///
/// Dropping it, or the [`BodyStream`] taken from it, before the body's end cancels the exchange
/// both ways (CANCEL CANCELLED): the responder's producer sees its
/// [`OpenBodySender`](super::OpenBodySender) closed. A body that stops short (the responder
/// failed or cancelled, the connection closed) ends with an error from
/// [`BodyStream::chunk`], never as a shorter complete body.
#[derive(Debug)]
pub struct StreamedReply {
    headers: Headers,
    body: BodyStream,
}

impl StreamedReply {
    /// The answer's headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The answer's body, to read chunk by chunk.
    pub fn body_mut(&mut self) -> &mut BodyStream {
        &mut self.body
    }

    /// The answer's body.
    pub fn into_body(self) -> BodyStream {
        self.body
    }
}

/// Cancels a streamed answer's exchange when its reader goes before the end.
pub(crate) struct AnswerGuard {
    shared: Arc<Shared>,
    token: u64,
    armed: bool,
}

impl std::fmt::Debug for AnswerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerGuard").field("connection", &self.shared.id).field("token", &self.token).finish()
    }
}

impl AnswerGuard {
    /// The body ended (cleanly or not): nothing left to cancel.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for AnswerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.shared
            .dropped
            .lock()
            .expect("never poisoned: no panics under the lock")
            .push((self.token, CancelReason::CANCELLED));
        self.shared.wake.notify_one();
    }
}

impl Connection {
    /// Calls `route` and reads the answer as it arrives: resolves when the answer starts (its
    /// HEAD), with its headers and a [`BodyStream`] of its bytes, whose flow-control credit goes
    /// back as they are read, so a slow reader slows the responder down and at most a window is
    /// held here. An ERROR answer is `Err(CallError::Remote(..))` as for
    /// [`call_with`](Self::call_with). `body` may be an [`OpenBody`](super::OpenBody): the request
    /// then goes on while the answer streams in (a bidirectional exchange), until the answer
    /// ends. The answer may be of known length or open-length (`Response::stream`).
    ///
    /// `opts.timeout` bounds the wait for the answer's start, not its body.
    pub async fn call_stream(
        &self,
        route: impl Into<Route>,
        body: impl Into<Body>,
        mut opts: CallOptions,
    ) -> Result<StreamedReply, CallError> {
        let (tx, chunks) = mpsc::unbounded_channel();
        opts.stream_answer = Some(AnswerFeed(tx));
        let token = self.shared.next_token.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reply = self.call_token(token, route.into(), None, body.into(), opts).await?;
        let headers = reply.headers().clone();
        let body = match reply.into_payload() {
            Payload::Streamed { total } => {
                let guard = AnswerGuard { shared: self.shared.clone(), token, armed: true };
                BodyStream::new(chunks, total, CreditReturn(self.shared.clone())).with_guard(guard)
            }
            Payload::Memory(bytes) => BodyStream::from_bytes(bytes),
            other => {
                let bytes = other
                    .to_vec()
                    .map_err(|e| CallError::Io(crate::endpoint::ErrorSource::context("cannot read the answer", e)))?;
                BodyStream::from_bytes(bytes.into())
            }
        };
        Ok(StreamedReply { headers, body })
    }
}

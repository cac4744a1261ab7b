//! The driver's side of outgoing bodies read from a source ([`Body::Reader`](crate::Body::Reader)):
//! the session asks for bytes ([`Demand`]) a little ahead of the link and this reads them on
//! tokio's blocking threads, one reader per message, so a slow file or reader never stalls the
//! connection's task. Memory bodies never come here.
//!
//! Bounds: a reader has at most what the session asked ahead ([`crate::session::SUPPLY_AHEAD`],
//! or two chunks) requested or in flight at once.

use std::collections::HashMap;
use std::io::Read;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::open::{pull, OpenBody, Pulled};
use crate::session::{Demand, MessageId, Session};

/// One body's reader: a task that waits for requests (idle, it holds no thread, and a paused
/// test clock can advance) and reads each on a blocking thread. Dropping the sender ends it.
async fn read(
    message: MessageId,
    mut reader: Box<dyn Read + Send>,
    mut reads: mpsc::UnboundedReceiver<(u64, usize)>,
    supplied: mpsc::UnboundedSender<Supplied>,
) {
    while let Some(first) = reads.recv().await {
        // Every request queued meanwhile is read in the same blocking call.
        let mut batch = vec![first];
        while let Ok(more) = reads.try_recv() {
            batch.push(more);
        }
        let done = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(batch.len());
            for (offset, len) in batch {
                let mut buf = BytesMut::zeroed(len);
                let bytes = reader.read_exact(&mut buf).map(|()| buf.freeze());
                let failed = bytes.is_err();
                out.push(Supplied { message, offset, bytes, end: false });
                if failed {
                    break;
                }
            }
            (reader, out)
        })
        .await;
        // A reader that panicked fails its message like one that erred.
        let Ok((back, out)) = done else {
            let bytes = Err(std::io::Error::other("the body's reader panicked"));
            let _ = supplied.send(Supplied { message, offset: 0, bytes, end: false });
            return;
        };
        for piece in out {
            let failed = piece.bytes.is_err();
            if supplied.send(piece).is_err() || failed {
                return;
            }
        }
        reader = back;
    }
}

/// What a reader produced.
pub(crate) struct Supplied {
    message: MessageId,
    offset: u64,
    bytes: std::io::Result<Bytes>,
    /// An open-length body ended at `offset` (`bytes` is empty then).
    end: bool,
}

/// The sources being read for one connection.
pub(crate) struct Bodies {
    readers: HashMap<MessageId, mpsc::UnboundedSender<(u64, usize)>>,
    supplied_tx: mpsc::UnboundedSender<Supplied>,
    supplied: mpsc::UnboundedReceiver<Supplied>,
}

impl Bodies {
    pub(crate) fn new() -> Self {
        let (supplied_tx, supplied) = mpsc::unbounded_channel();
        Self { readers: HashMap::new(), supplied_tx, supplied }
    }

    /// Acts on every request the session has queued.
    pub(crate) fn pump(&mut self, session: &mut Session) {
        while let Some(demand) = session.poll_demand() {
            match demand {
                Demand::Reader { message, reader } => self.start(message, reader),
                Demand::Read { message, offset, len } => {
                    let asked = self.readers.get(&message).is_some_and(|reader| reader.send((offset, len)).is_ok());
                    if !asked {
                        // A body supplied by nobody here (`Body::Supplied` handed to a
                        // connection), or a reader that failed and ended.
                        session.supply_failed(message, offset);
                    }
                }
                // Dropping the sender ends the reader, which drops the source.
                Demand::Release { message } => drop(self.readers.remove(&message)),
                Demand::Source { message, source } => match source.downcast::<OpenBody>() {
                    Ok(body) => self.start_open(message, *body),
                    // A source of the caller's own kind: nobody here supplies it.
                    Err(_) => drop(session.supply_failed(message, 0)),
                },
            }
        }
    }

    /// An open-length body's task (connection/open.rs), answering the session's "up to" reads.
    fn start_open(&mut self, message: MessageId, body: OpenBody) {
        let (reads, rx) = mpsc::unbounded_channel::<(u64, usize)>();
        let supplied = self.supplied_tx.clone();
        let answer = move |message, offset, pulled| {
            let (bytes, end) = match pulled {
                Pulled::Bytes(bytes) => (Ok(bytes), false),
                Pulled::End => (Ok(Bytes::new()), true),
                Pulled::Failed(err) => (Err(err), false),
            };
            supplied.send(Supplied { message, offset, bytes, end }).is_ok()
        };
        tokio::spawn(pull(message, body, rx, answer));
        self.readers.insert(message, reads);
    }

    fn start(&mut self, message: MessageId, reader: Box<dyn Read + Send>) {
        let (reads, rx) = mpsc::unbounded_channel::<(u64, usize)>();
        tokio::spawn(read(message, reader, rx, self.supplied_tx.clone()));
        self.readers.insert(message, reads);
    }

    /// The next bytes read.
    pub(crate) async fn next(&mut self) -> Supplied {
        // `Bodies` holds a sender itself: the channel never closes.
        self.supplied.recv().await.expect("the bodies hold a sender")
    }

    /// Hands bytes read to the session.
    pub(crate) fn apply(&mut self, supplied: Supplied, session: &mut Session) {
        match supplied.bytes {
            Ok(_) if supplied.end => drop(session.supply_end(supplied.message, supplied.offset)),
            // `false`: the message is gone; its release is on its way or done.
            Ok(bytes) => drop(session.supply(supplied.message, supplied.offset, bytes)),
            Err(err) => {
                tracing::debug!(message = ?supplied.message, offset = supplied.offset, error = %err, "outgoing body failed: CANCEL IO");
                self.readers.remove(&supplied.message);
                session.supply_failed(supplied.message, supplied.offset);
            }
        }
    }

    /// Drops every source (the session ended), and what their tasks read and had not handed
    /// over yet: a successor session numbers its messages from 0 again, so bytes of an old
    /// body would otherwise be taken by the new message of the same id.
    pub(crate) fn clear(&mut self) {
        self.readers.clear();
        (self.supplied_tx, self.supplied) = mpsc::unbounded_channel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Route;
    use crate::session::{Body, Config, SendOptions};
    use crate::sim::Pair;

    fn open_oneway(pair: &mut Pair, item: &'static [u8]) -> MessageId {
        let body = OpenBody::from_stream(futures_util::stream::iter([Ok(Bytes::from_static(item))]));
        pair.a.send_oneway(Route::Name("/x".into()), Body::from(body), SendOptions::default()).unwrap()
    }

    #[tokio::test]
    async fn bytes_read_for_an_ended_session_never_reach_its_successor() {
        let mut bodies = Bodies::new();
        let mut old = Pair::connected(Config::stream(), Config::stream());
        let first = open_oneway(&mut old, b"old");
        bodies.pump(&mut old.a);
        // The old body's bytes are read, not yet handed over, when its session ends.
        while bodies.supplied.is_empty() {
            tokio::task::yield_now().await;
        }
        bodies.clear();
        let mut new = Pair::connected(Config::stream(), Config::stream());
        let second = open_oneway(&mut new, b"new");
        assert_eq!(first, second, "a new session numbers its messages from 0 again");
        bodies.pump(&mut new.a);
        let supplied = bodies.next().await;
        assert_eq!(supplied.bytes.as_ref().ok().map(|b| &b[..]), Some(&b"new"[..]));
    }
}

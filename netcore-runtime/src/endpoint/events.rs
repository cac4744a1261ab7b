//! Endpoint events: subscribe with a callback, or as a stream (a broadcast receiver).

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::connection::{Connection, ConnectionEvent, ConnectionId};
use crate::frame::CancelReason;
use crate::session::CloseReason;

/// Something that happened on an endpoint.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EndpointEvent {
    /// The endpoint started.
    Start,
    /// The endpoint is shutting down.
    Stop,
    /// A peer connected: a connection completed its handshake, the first time or again after
    /// [`PeerRestarted`](Self::PeerRestarted) or [`PeerLost`](Self::PeerLost).
    Connect {
        /// The connection.
        connection: Connection,
    },
    /// The peer restarted (a HELLO with a new nonce, docs/PROTOCOL.md §9): the calls pending on
    /// the connection failed with [`CloseReason::PeerRestarted`] and its handlers were aborted;
    /// a new session on the same connection answers the new peer, and
    /// [`Connect`](Self::Connect) follows once it is open.
    PeerRestarted {
        /// Which connection.
        connection: ConnectionId,
    },
    /// On a connection that waits for its peer (`Config::wait_for_peer`): the session ended
    /// (the peer went silent, said GOAWAY or broke the protocol) and the connection now waits for
    /// the next peer; [`Connect`](Self::Connect) follows when one says HELLO.
    PeerLost {
        /// Which connection.
        connection: ConnectionId,
        /// Why the session ended.
        reason: CloseReason,
    },
    /// A connection closed.
    Disconnect {
        /// Which.
        connection: ConnectionId,
        /// Why.
        reason: CloseReason,
    },
    /// A request or one-way message reached a handler.
    Request {
        /// On which connection.
        connection: ConnectionId,
        /// Its route.
        route: Arc<str>,
    },
    /// A handler finished.
    Response {
        /// On which connection.
        connection: ConnectionId,
        /// The request's route.
        route: Arc<str>,
        /// Whether it succeeded.
        ok: bool,
    },
    /// The peer cancelled one of its requests.
    Cancel {
        /// On which connection.
        connection: ConnectionId,
        /// The peer's exchange id.
        exchange: u32,
        /// Why.
        reason: CancelReason,
    },
    /// A handler failed.
    Error {
        /// On which connection.
        connection: ConnectionId,
        /// The request's route.
        route: Arc<str>,
        /// What went wrong.
        message: String,
    },
}

/// The kinds of [`EndpointEvent`], to subscribe to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// [`EndpointEvent::Start`]
    Start,
    /// [`EndpointEvent::Stop`]
    Stop,
    /// [`EndpointEvent::Connect`]
    Connect,
    /// [`EndpointEvent::PeerRestarted`]
    PeerRestarted,
    /// [`EndpointEvent::PeerLost`]
    PeerLost,
    /// [`EndpointEvent::Disconnect`]
    Disconnect,
    /// [`EndpointEvent::Request`]
    Request,
    /// [`EndpointEvent::Response`]
    Response,
    /// [`EndpointEvent::Cancel`]
    Cancel,
    /// [`EndpointEvent::Error`]
    Error,
}

impl EndpointEvent {
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            EndpointEvent::Start => EventKind::Start,
            EndpointEvent::Stop => EventKind::Stop,
            EndpointEvent::Connect { .. } => EventKind::Connect,
            EndpointEvent::PeerRestarted { .. } => EventKind::PeerRestarted,
            EndpointEvent::PeerLost { .. } => EventKind::PeerLost,
            EndpointEvent::Disconnect { .. } => EventKind::Disconnect,
            EndpointEvent::Request { .. } => EventKind::Request,
            EndpointEvent::Response { .. } => EventKind::Response,
            EndpointEvent::Cancel { .. } => EventKind::Cancel,
            EndpointEvent::Error { .. } => EventKind::Error,
        }
    }
}

impl From<ConnectionEvent> for EndpointEvent {
    fn from(event: ConnectionEvent) -> Self {
        match event {
            ConnectionEvent::Connect { connection } => EndpointEvent::Connect { connection },
            ConnectionEvent::PeerRestarted { connection } => EndpointEvent::PeerRestarted { connection },
            ConnectionEvent::PeerLost { connection, reason } => EndpointEvent::PeerLost { connection, reason },
            ConnectionEvent::Disconnect { connection, reason } => EndpointEvent::Disconnect { connection, reason },
            ConnectionEvent::Cancel { connection, exchange, reason } => {
                EndpointEvent::Cancel { connection, exchange, reason }
            }
        }
    }
}

pub(crate) type Callback = Arc<dyn Fn(&EndpointEvent) + Send + Sync>;

/// Events buffered for stream subscribers; a subscriber that falls further behind loses the oldest
/// (it is told how many with `RecvError::Lagged`), so a slow subscriber never holds memory.
const STREAM_DEPTH: usize = 1024;

pub(crate) struct Events {
    callbacks: Vec<(EventKind, Callback)>,
    stream: broadcast::Sender<EndpointEvent>,
}

impl Events {
    pub(crate) fn new(callbacks: Vec<(EventKind, Callback)>) -> Self {
        Self { callbacks, stream: broadcast::channel(STREAM_DEPTH).0 }
    }

    pub(crate) fn emit(&self, event: EndpointEvent) {
        let kind = event.kind();
        for (wanted, callback) in &self.callbacks {
            if *wanted == kind {
                callback(&event);
            }
        }
        let _ = self.stream.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<EndpointEvent> {
        self.stream.subscribe()
    }
}

//! Statistics of a connection ([`Connection::stats`](super::Connection::stats)) and of an endpoint
//! ([`Endpoint::stats`](crate::Endpoint::stats)).
//!
//! The counters are the sans-IO session's own ([`Stats`]): the driver counts nothing twice, it
//! only adds up the sessions a link carried (a link that waits for its peer, `Config::wait_for_peer`,
//! or whose peer restarted, starts a new session on the same transport) and adds what only it
//! knows: its pending calls, running handlers and unwritten bytes.

use std::time::Duration;

use tokio::sync::oneshot;

use super::{CallError, ConnectionId};
use crate::session::{Credit, Queues, Session, Stats};

/// A snapshot of one connection: traffic counters, flow-control credit and queue depths.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use netcore_runtime::{Endpoint, Response};
///
/// let server = Endpoint::builder()
///     .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
///     .build()
///     .unwrap();
/// let client = Endpoint::builder().build().unwrap();
/// let (a, b) = tokio::io::duplex(64 * 1024);
/// server.connect(a, "server end");
/// let link = client.connect(b, "client end");
/// for _ in 0..3 {
///     link.call("/echo", vec![7u8; 100]).await.unwrap();
/// }
/// let stats = link.stats().await;
/// assert_eq!(stats.counters.messages_out, 3);
/// assert!(stats.counters.bytes_out >= 300);
/// println!("rtt {:?}, in flight {}", link.ping().await.ok(), stats.pending_calls);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// The connection's id within its endpoint.
    pub id: ConnectionId,
    /// What it runs over ([`Connection::label`](super::Connection::label)).
    pub label: String,
    /// Whether the link was still running when the snapshot was taken.
    pub running: bool,
    /// Sessions the link has carried: 1, plus one per peer restart or new peer (§9, §10).
    pub sessions: u64,
    /// The session counters, added up over those sessions: frames, bytes and messages each
    /// way, damaged frames (`frames_dropped`), duplicates, retransmissions, cancels, and the
    /// latest PING round trip (`last_rtt`, see [`Connection::ping`](super::Connection::ping)).
    pub counters: Stats,
    /// The flow-control credit each way now (§5.5); `None` both ways once closed.
    pub credit: Credit,
    /// The session's queues now; all empty once closed.
    pub queues: Queues,
    /// Our calls awaiting their reply.
    pub pending_calls: usize,
    /// Handlers of the peer's requests running now.
    pub running_handlers: usize,
    /// Requests of the peer whose handler waits for the send budget (`Config::send_budget`, §8.5).
    pub deferred_requests: usize,
    /// Bytes given by the session and not yet written to the transport.
    pub unwritten_bytes: usize,
}

impl ConnectionStats {
    /// A connection that has counted nothing yet (a Python link counts only its queues).
    pub(crate) fn empty(id: ConnectionId, label: &str) -> Self {
        ConnectionStats {
            id,
            label: label.to_owned(),
            running: true,
            sessions: 0,
            counters: Stats::default(),
            credit: Credit::default(),
            queues: Queues::default(),
            pending_calls: 0,
            running_handlers: 0,
            deferred_requests: 0,
            unwritten_bytes: 0,
        }
    }
}

/// The sum over an endpoint's connections ([`Endpoint::stats`](crate::Endpoint::stats)): the
/// counters of the live ones plus the totals of those closed since the endpoint was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Connections running now (a closed one still writing its last bytes included).
    pub live: usize,
    /// Connections that have ended.
    pub closed: u64,
    /// The counters of every connection, live and closed, added up; `last_rtt` is the largest
    /// of the live connections'.
    pub counters: Stats,
    /// The queues of the live connections, added up.
    pub queues: Queues,
    /// Calls awaiting their reply on the live connections.
    pub pending_calls: usize,
    /// Handlers running on the live connections.
    pub running_handlers: usize,
    /// Requests waiting for the send budget on the live connections.
    pub deferred_requests: usize,
    /// Bytes not yet written on the live connections.
    pub unwritten_bytes: usize,
}

impl EndpointStats {
    /// Adds a live connection's snapshot.
    pub(crate) fn add_live(&mut self, stats: &ConnectionStats) {
        self.live += 1;
        let rtt = self.counters.last_rtt.max(stats.counters.last_rtt);
        add_counters(&mut self.counters, &stats.counters);
        self.counters.last_rtt = rtt;
        let (q, s) = (&mut self.queues, &stats.queues);
        q.outgoing += s.outgoing;
        q.outgoing_bytes += s.outgoing_bytes;
        q.control += s.control;
        q.incoming += s.incoming;
        q.awaiting_answer += s.awaiting_answer;
        q.unanswered += s.unanswered;
        q.events += s.events;
        q.unacked += s.unacked;
        self.pending_calls += stats.pending_calls;
        self.running_handlers += stats.running_handlers;
        self.deferred_requests += stats.deferred_requests;
        self.unwritten_bytes += stats.unwritten_bytes;
    }

    /// Adds the totals of the closed connections.
    pub(crate) fn add_closed(&mut self, closed: &Retired) {
        self.closed += closed.count;
        let rtt = self.counters.last_rtt;
        add_counters(&mut self.counters, &closed.counters);
        self.counters.last_rtt = rtt;
    }
}

/// The totals of an endpoint's closed connections.
#[derive(Debug, Default)]
pub(crate) struct Retired {
    count: u64,
    counters: Stats,
}

impl Retired {
    pub(crate) fn add(&mut self, stats: &ConnectionStats) {
        self.count += 1;
        add_counters(&mut self.counters, &stats.counters);
    }
}

/// Adds `later`'s counts to `total`; the RTT is `later`'s if it measured one.
fn add_counters(total: &mut Stats, later: &Stats) {
    total.frames_in += later.frames_in;
    total.frames_out += later.frames_out;
    total.bytes_in += later.bytes_in;
    total.bytes_out += later.bytes_out;
    total.frames_dropped += later.frames_dropped;
    total.duplicates += later.duplicates;
    total.retransmitted += later.retransmitted;
    total.messages_in += later.messages_in;
    total.messages_out += later.messages_out;
    total.cancels_sent += later.cancels_sent;
    total.cancels_received += later.cancels_received;
    total.refused += later.refused;
    total.bytes_discarded += later.bytes_discarded;
    total.pings_sent += later.pings_sent;
    total.last_rtt = later.last_rtt.or(total.last_rtt);
}

/// What a driver keeps for its statistics: the counters of the sessions its link carried before
/// the current one, and the [`Connection::ping`](super::Connection::ping)s awaiting their PONG.
#[derive(Default)]
pub(crate) struct Carry {
    ended: Stats,
    sessions: u64,
    pings: Vec<(u64, oneshot::Sender<Result<Duration, CallError>>)>,
}

impl Carry {
    /// The session the link carried until now ends; its successor takes over.
    pub(crate) fn retire(&mut self, session: &Session) {
        add_counters(&mut self.ended, &session.stats());
        self.sessions += 1;
        // Their PONGs will not come: the next session numbers its PINGs anew. Dropped, the
        // callers see the link's state.
        self.pings.clear();
    }

    /// The counters of every session so far, the current one included.
    pub(crate) fn counters(&self, session: &Session) -> (u64, Stats) {
        let mut total = self.ended;
        add_counters(&mut total, &session.stats());
        (self.sessions + 1, total)
    }

    /// Sends a PING for `reply`, which gets its round-trip time, or `closed` if the session
    /// is not open.
    pub(crate) fn ping(
        &mut self,
        session: &mut Session,
        reply: oneshot::Sender<Result<Duration, CallError>>,
        closed: impl FnOnce() -> CallError,
    ) {
        match session.ping() {
            Some(nonce) => self.pings.push((nonce, reply)),
            None => {
                let _ = reply.send(Err(closed()));
            }
        }
    }

    /// Answers the pings whose PONG (or a later PING's) arrived. Cheap with none waiting.
    pub(crate) fn answer_pings(&mut self, session: &Session) {
        if self.pings.is_empty() {
            return;
        }
        let Some((answered, rtt)) = session.last_pong() else { return };
        let (done, waiting) = std::mem::take(&mut self.pings).into_iter().partition(|(nonce, _)| *nonce <= answered);
        self.pings = waiting;
        for (_, reply) in done {
            let _ = reply.send(Ok(rtt));
        }
    }
}

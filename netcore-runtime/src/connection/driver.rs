//! The per-connection task: a loop around the sans-IO session (STYLE §1). It writes what
//! `poll_transmit` gives, reads into `handle_input`, sleeps until `poll_timeout`, and turns events
//! into replies for waiting calls and tasks for incoming requests.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::bodies::Bodies;
use super::headers::{decode_headers, encode_headers};
use super::stats::{Carry, ConnectionStats};
use super::storage::Storage;
use super::{trace, Command, Connection, ConnectionId, CreditReturn, LinkState, Shared};
use super::{BodyStream, CallError, ErrorCode, HandlerError, PayloadSlot, Reply, Request, Response};
use crate::frame::{CancelReason, Kind, Priority, Route};
use crate::session::{
    Body, CloseReason, Config, Event, Exchange, Incoming, MessageId, Payload, Progress, SendError, SendOptions, Session,
};

/// What a connection reports to its owner (the endpoint turns these into
/// [`EndpointEvent`](crate::EndpointEvent)s of the same names).
#[derive(Debug, Clone)]
pub(crate) enum ConnectionEvent {
    /// The handshake completed, the first time or again after a lost or restarted peer.
    Connect { connection: Connection },
    /// The peer restarted (§9 rule 7).
    PeerRestarted { connection: ConnectionId },
    /// The session ended and the connection waits for the next peer (`Config::wait_for_peer`).
    PeerLost { connection: ConnectionId, reason: CloseReason },
    /// The connection closed.
    Disconnect { connection: ConnectionId, reason: CloseReason },
    /// The peer cancelled one of its requests.
    Cancel { connection: ConnectionId, exchange: u32, reason: CancelReason },
}

/// What the owner of connections (the endpoint) provides to them: the routes' names and
/// handlers, and where their events go.
pub(crate) trait Dispatch: Send + Sync + 'static {
    /// The name under which a route is registered, or the best name for an unknown one.
    fn route_name(&self, route: &Route) -> Arc<str>;
    /// Whether requests to this route are streamed to their handler.
    fn streams(&self, route: &Route) -> bool;
    /// The largest payload this route takes, if it decodes its payload whole (§8.4).
    fn max_payload(&self, route: &Route) -> Option<u64>;
    /// Runs the handler chain for a request or one-way message.
    fn handle(
        self: Arc<Self>,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, HandlerError>> + Send>>;
    /// Reports an event to the endpoint's subscribers.
    fn emit(&self, event: ConnectionEvent);
    /// Forgets a closed connection, adding its last statistics to the endpoint's totals.
    fn detach(&self, id: ConnectionId, stats: &ConnectionStats);
}

/// Bytes gathered from `poll_transmit` before a write on a reliable stream. On a lossy (serial)
/// link frames are taken one at a time: what is handed to a slow link is committed, and the
/// scheduler must stay free to put an urgent frame next (§7).
const WRITE_BATCH: usize = 64 * 1024;
/// Bytes read at once.
const READ_BUFFER: usize = 64 * 1024;
/// Request handlers running at once on one connection; beyond it, events wait (and with them the
/// peer's flow-control credit), which is how a slow application pushes back on its peer.
const MAX_HANDLERS: usize = 256;
/// Commands waiting for the driver.
const COMMAND_DEPTH: usize = 64;
/// How long a closed connection keeps trying to write its last bytes (the GOAWAY) to a peer that
/// does not read them, before it lets go of the transport.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts the driver task for `io` and returns the connection's handle.
pub(crate) fn spawn<IO>(
    io: IO,
    config: Config,
    id: ConnectionId,
    label: String,
    dispatch: Arc<dyn Dispatch>,
) -> Connection
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (commands, command_rx) = mpsc::channel(COMMAND_DEPTH);
    let (state_tx, state) = watch::channel(LinkState::Connecting);
    let (released_tx, released) = watch::channel(false);
    let span = trace::connection_span(id.0, &label);
    let shared = Shared::new(id, label, commands, state, released, None);
    let connection = Connection { shared: shared.clone() };
    let (done_tx, done_rx) = mpsc::channel(MAX_HANDLERS);
    let session = new_session(&config, &dispatch);
    let config_spill_dir = config.spill_dir.clone();
    let driver = Driver {
        config,
        rearm: false,
        session,
        shared,
        dispatch,
        state: state_tx,
        released: released_tx,
        pending: HashMap::new(),
        tokens: HashMap::new(),
        notifies: HashMap::new(),
        handlers: HashMap::new(),
        streams: HashMap::new(),
        answers: HashMap::new(),
        handler_slots: Arc::new(Semaphore::new(MAX_HANDLERS)),
        slot_blocked: false,
        deferred: Default::default(),
        done_tx,
        closing: false,
        carry: Carry::default(),
        counters: trace::Counters::default(),
        unwritten: 0,
        storage: Storage::new(config_spill_dir),
        bodies: Bodies::new(),
    };
    tokio::spawn(tracing::Instrument::instrument(driver.run(io, command_rx, done_rx), span));
    connection
}

/// A session with a fresh nonce (docs/PROTOCOL.md §9 rule 7), streaming the routes that stream
/// and refusing at their HEAD requests over their route's decode limit (§8.4).
fn new_session(config: &Config, dispatch: &Arc<dyn Dispatch>) -> Session {
    let config = config.clone().with_nonce(Some(draw_nonce()));
    let mut session = Session::new(config, Instant::now().into_std());
    let routes = dispatch.clone();
    session.stream_when(move |route| routes.streams(route));
    let routes = dispatch.clone();
    session.limit_when(move |route| routes.max_payload(route));
    session
}

/// A random session nonce. The sans-IO core draws no randomness, so the driver does: std's
/// `RandomState` is keyed from the operating system's random source once per thread, and the
/// wall clock, the process id and a counter make two draws differ within a process and between
/// a process and its restarted self.
pub(crate) fn draw_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static DRAWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(DRAWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    hasher.write_u128(since_epoch.as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

struct PendingCall {
    token: u64,
    reply: oneshot::Sender<Result<Reply, CallError>>,
    progress: Option<watch::Sender<Progress>>,
}

/// A finished handler: the exchange, the request's priority and what the handler returned.
type HandlerResult = (u32, Priority, Result<Response, HandlerError>);

/// A request ready for its handler: deferred while the send budget is full (§8.5).
struct Prepared {
    exchange: u32,
    wants_reply: bool,
    priority: Priority,
    request: Request,
    header_error: Option<HandlerError>,
}

/// A running handler's slot: however the handler ends (answered, failed, aborted by a CANCEL),
/// freeing it wakes the driver, which may have events waiting for a slot.
struct Slot {
    _permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.wake.notify_one();
    }
}

struct Driver {
    /// The configuration each new session starts from (with a nonce of its own).
    config: Config,
    /// The session ended and the link waits for the next peer (`Config::wait_for_peer`): once
    /// its last bytes are out, a new session starts on the same transport.
    rearm: bool,
    session: Session,
    shared: Arc<Shared>,
    dispatch: Arc<dyn Dispatch>,
    state: watch::Sender<LinkState>,
    /// Set once the last bytes are flushed and the writer shut down, or given up on.
    released: watch::Sender<bool>,
    /// Our calls awaiting their reply.
    pending: HashMap<MessageId, PendingCall>,
    tokens: HashMap<u64, MessageId>,
    /// Our one-way messages until their last byte is sent.
    notifies: HashMap<MessageId, oneshot::Sender<Result<(), CallError>>>,
    /// Running handlers of the peer's requests, by exchange id.
    handlers: HashMap<u32, AbortHandle>,
    /// Streamed payloads being fed to their handlers, by exchange id.
    streams: HashMap<u32, Feed>,
    /// Streamed answers to our calls (`Connection::call_stream`), from their start to their
    /// end: where their chunks go, and the call's token (a dropped reader cancels by it).
    answers: HashMap<MessageId, (Feed, u64)>,
    handler_slots: Arc<Semaphore>,
    /// The last drain stopped at a request for want of a handler slot: the socket is not read
    /// until one frees, so the session's queue holds at most one read's worth of frames.
    slot_blocked: bool,
    /// Requests received while the send budget was full (`Config::send_budget`, §8.5), in
    /// order; their handlers start as it drains. At most `max_in_flight`, which the session
    /// enforces by refusing the excess.
    deferred: std::collections::VecDeque<Prepared>,
    done_tx: mpsc::Sender<HandlerResult>,
    /// A graceful close was asked for: refuse new calls, close when idle.
    closing: bool,
    /// The counters of the sessions before this one, and pings awaiting their PONG.
    carry: Carry,
    /// The counters last reported as `tracing` events.
    counters: trace::Counters,
    /// Bytes in the loop's output buffer, as of the last turn of the loop.
    unwritten: usize,
    /// Spill files of large incoming messages, written off this task.
    storage: Storage,
    /// Sources of outgoing bodies, read off this task.
    bodies: Bodies,
}

impl Driver {
    async fn run<IO>(mut self, io: IO, mut commands: mpsc::Receiver<Command>, mut done: mpsc::Receiver<HandlerResult>)
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(io);
        let mut output = BytesMut::new();
        let mut reading = true;
        let mut linger = None;
        let batch = match self.session.config().framing {
            crate::frame::Framing::Stream => WRITE_BATCH,
            crate::frame::Framing::Lossy => 1,
        };
        loop {
            // Storage operations go before the events: a stored message completes after its writes.
            self.pump_handoff();
            if self.drain_events() {
                // Let the handlers read the chunks just handed to them before the next read: the
                // read buffer they point into is then free to reuse, and their credit returns.
                tokio::task::yield_now().await;
            }
            if self.rearm && self.session.is_closed() {
                // §10: waiting for the peer, the link outlives the session. The next session
                // starts at once, so that a call made now waits for the next peer instead of
                // failing on the ended session; what the ended one still had to say (its GOAWAY)
                // goes out first.
                while self.session.poll_transmit(Instant::now().into_std(), &mut output) {}
                self.retire_session();
                self.session = new_session(&self.config, &self.dispatch);
                self.rearm = false;
                linger = None;
            }
            if self.closing && self.session.is_idle() && self.handlers.is_empty() && !self.session.is_closed() {
                // Control frames already queued (the CANCEL of a call dropped just before
                // close()) go out ahead of the GOAWAY.
                while self.session.poll_transmit(Instant::now().into_std(), &mut output) {}
                self.session.close("closed by the application");
                continue;
            }
            if output.is_empty() {
                self.pump_handoff();
                while output.len() < batch && self.session.poll_transmit(Instant::now().into_std(), &mut output) {}
                self.report_progress();
                self.counters.observe(&self.session);
            }
            if self.session.is_closed() && output.is_empty() {
                break;
            }
            self.unwritten = output.len();
            let deadline = match self.session.is_closed() {
                true => Some(*linger.get_or_insert_with(|| Instant::now() + LINGER)),
                false => self.session.poll_timeout().map(Instant::from_std),
            };
            tokio::select! {
                written = writer.write(&output), if !output.is_empty() => match written {
                    Ok(n) if n > 0 => {
                        let _ = output.split_to(n);
                    }
                    _ => {
                        output.clear();
                        self.session.handle_eof();
                    }
                },
                read = read_into(&mut reader, self.session.input_buffer()), if reading && !self.slot_blocked => match read {
                    Ok(n) if n > 0 => {
                        self.session.handle_buffered(Instant::now().into_std(), n);
                        self.report_progress();
                        self.observe_input();
                    }
                    _ => {
                        reading = false;
                        self.session.handle_eof();
                    }
                },
                Some(command) = commands.recv() => {
                    self.handle_command(command);
                    // With other calls in flight, let their callers run first and take every
                    // command they queued, so their frames share one write (one syscall).
                    if self.pending.len() > 1 {
                        tokio::task::yield_now().await;
                    }
                    while let Ok(command) = commands.try_recv() {
                        self.handle_command(command);
                    }
                }
                Some((id, priority, result)) = done.recv() => self.respond(id, priority, result),
                report = self.storage.report() => self.storage.apply(report, &mut self.session),
                supplied = self.bodies.next() => self.bodies.apply(supplied, &mut self.session),
                () = self.shared.wake.notified() => {
                    // Commands sent before a drop must be seen before the drop is processed.
                    while let Ok(command) = commands.try_recv() {
                        self.handle_command(command);
                    }
                    self.cancel_dropped();
                    self.session.consumed(self.shared.consumed.swap(0, std::sync::atomic::Ordering::Relaxed));
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    if self.session.is_closed() {
                        break; // the peer did not take our last bytes in time
                    }
                    self.session.handle_timeout(Instant::now().into_std());
                    self.counters.observe(&self.session);
                }
            }
        }
        // From here on the handle reads the last statistics; commands are no longer answered.
        let last = self.snapshot(output.len(), false);
        self.shared.set_final_stats(last.clone());
        drop(commands);
        // `LinkState::Closed` was published when the session closed, before the GOAWAY was
        // written; `Connection::closed` waits for this point instead (§10).
        let _ = tokio::time::timeout(LINGER, async {
            writer.flush().await?;
            writer.shutdown().await
        })
        .await;
        self.dispatch.detach(self.shared.id, &last);
        self.released.send_replace(true);
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Call { token, route, body, opts, reply } => {
                if self.closing {
                    let _ = reply.send(Err(CallError::Disconnected(CloseReason::Local)));
                    return;
                }
                let answer = opts.stream_answer.clone();
                let send = SendOptions::priority(opts.priority)
                    .with_meta(encode_headers(&opts.headers))
                    .with_stream_answer(answer.is_some());
                match self.session.request(route, body, send) {
                    Ok(message) => {
                        if let Some(answer) = answer {
                            self.answers
                                .insert(message, (Feed { tx: answer.0, open: false, cancel_unread: false }, token));
                        }
                        self.tokens.insert(token, message);
                        self.pending.insert(message, PendingCall { token, reply, progress: opts.progress });
                    }
                    Err(err) => {
                        let _ = reply.send(Err(self.send_error(err)));
                    }
                }
            }
            Command::Notify { route, body, opts, done } => {
                let send = SendOptions::priority(opts.priority).with_meta(encode_headers(&opts.headers));
                match self.session.send_oneway(route, body, send) {
                    Ok(message) => {
                        self.notifies.insert(message, done);
                    }
                    Err(err) => {
                        let _ = done.send(Err(self.send_error(err)));
                    }
                }
            }
            Command::Close => {
                // A call dropped (timed out) just before close() still sends its CANCEL, ahead of
                // the GOAWAY: the peer learns why its handler's answer is no longer wanted.
                self.cancel_dropped();
                self.closing = true;
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.snapshot(self.unwritten, true));
            }
            Command::Ping(reply) => {
                let error = self.send_error(SendError::Closed);
                self.carry.ping(&mut self.session, reply, || error);
            }
        }
    }

    /// The connection's statistics now (`unwritten` bytes wait in the loop's output buffer).
    fn snapshot(&self, unwritten: usize, running: bool) -> ConnectionStats {
        let (sessions, counters) = self.carry.counters(&self.session);
        ConnectionStats {
            sessions,
            counters,
            running,
            credit: self.session.credit(),
            queues: self.session.queues(),
            pending_calls: self.pending.len(),
            running_handlers: MAX_HANDLERS - self.handler_slots.available_permits(),
            deferred_requests: self.deferred.len(),
            unwritten_bytes: unwritten,
            ..ConnectionStats::empty(self.shared.id, &self.shared.label)
        }
    }

    /// The session the link carried ends and another takes over: its counters are kept.
    fn retire_session(&mut self) {
        self.counters.observe(&self.session);
        self.carry.retire(&self.session);
        self.counters.reset();
    }

    /// After bytes were read: PONGs answer pings, counters may have moved.
    fn observe_input(&mut self) {
        self.carry.answer_pings(&self.session);
        self.counters.observe(&self.session);
    }

    /// A call made just as the link closed fails like the calls that were pending then.
    fn send_error(&self, err: SendError) -> CallError {
        match (err, &*self.state.borrow()) {
            (SendError::Closed, LinkState::Closed(reason)) => CallError::Disconnected(reason.clone()),
            (SendError::Closed, _) => CallError::Disconnected(CloseReason::Disconnected),
            (err, _) => err.into(),
        }
    }

    fn cancel_dropped(&mut self) {
        let dropped = std::mem::take(&mut *self.shared.dropped.lock().expect("never poisoned"));
        for (token, reason) in dropped {
            if let Some(message) = self.tokens.remove(&token) {
                self.pending.remove(&message);
                self.answers.remove(&message);
                let found = self.session.cancel(Exchange::Ours(message), reason);
                trace::call_dropped(reason, found);
            }
        }
    }

    /// Acts on the session's events in order. A request waits (and every event behind it) while
    /// all handler slots are taken; a streamed payload's chunks never wait for a slot, since the
    /// handlers holding the slots may be the ones reading them.
    /// Whether it fed chunks to a streamed payload's reader.
    ///
    /// While the send budget is full (§8.5) a request is prepared but its handler deferred: the
    /// events behind it go on, since the budget drains only as the peer reads and grants
    /// credit, which must never wait for a handler.
    fn drain_events(&mut self) -> bool {
        let mut fed = false;
        self.slot_blocked = false;
        let mut at = 0;
        while at < self.deferred.len() {
            if self.session.send_budget_full(self.deferred[at].priority) {
                at += 1;
                continue;
            }
            if self.handler_slots.available_permits() == 0 {
                self.slot_blocked = true;
                return fed;
            }
            let prepared = self.deferred.remove(at).expect("in range");
            self.run_handler(prepared);
        }
        loop {
            let next = match self.session.peek_event() {
                Some(Event::Message(m)) if matches!(m.exchange, Exchange::Theirs(_)) => Some((m.kind, m.priority)),
                _ => None,
            };
            let defer = matches!(next, Some((Kind::Request, priority)) if self.session.send_budget_full(priority));
            if next.is_some() && !defer && self.handler_slots.available_permits() == 0 {
                trace::handlers_full(MAX_HANDLERS);
                self.slot_blocked = true;
                break;
            }
            let Some(event) = self.session.poll_event() else { break };
            // A stored message's payload is its spill file from here on.
            match self.storage.fill(event) {
                Event::Message(message @ Incoming { exchange: Exchange::Theirs(exchange), .. }) if defer => {
                    trace::deferred(exchange);
                    let prepared = self.prepare(exchange, message);
                    self.deferred.push_back(prepared);
                }
                event => {
                    fed |= matches!(event, Event::Chunk { .. });
                    self.handle_event(event);
                }
            }
        }
        fed
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Connected(hello) => {
                let restarted = matches!(&*self.state.borrow(), LinkState::Open(_));
                if restarted {
                    // §9 rule 7: the peer restarted before any exchange; its HELLO was adopted.
                    self.dispatch.emit(ConnectionEvent::PeerRestarted { connection: self.shared.id });
                }
                trace::connected(&self.session, &hello, restarted);
                self.shared.reliable.store(self.session.is_reliable(), std::sync::atomic::Ordering::Relaxed);
                self.state.send_replace(LinkState::Open(hello));
                self.dispatch.emit(ConnectionEvent::Connect { connection: self.connection() });
            }
            Event::Message(message) => match message.exchange {
                Exchange::Ours(id) => self.complete_call(id, message),
                Exchange::Theirs(id) => self.start_handler(id, message),
            },
            Event::Chunk { exchange, bytes, end } => self.feed_stream(exchange, bytes, end),
            Event::Sent(id) => {
                if let Some(done) = self.notifies.remove(&id) {
                    let _ = done.send(Ok(()));
                }
            }
            Event::Oversized { id, route, total, limit, priority } => {
                let route = self.dispatch.route_name(&route);
                trace::oversized(&route, total, limit);
                let message =
                    format!("request to {route} of {total} bytes exceeds the route's decode limit of {limit} bytes");
                self.answer(id, priority, Err(HandlerError::new(ErrorCode::TOO_LARGE, message)));
            }
            Event::Cancelled { exchange: Exchange::Ours(id), reason } => {
                trace::cancelled(Exchange::Ours(id), reason);
                self.storage.discard(Exchange::Ours(id), &mut self.session);
                if let Some(call) = self.pending.remove(&id) {
                    self.tokens.remove(&call.token);
                    let _ = call.reply.send(Err(CallError::Cancelled(reason)));
                }
                // A streamed answer stops short: its reader gets an error.
                if let Some((_, token)) = self.answers.remove(&id) {
                    self.tokens.remove(&token);
                }
                if let Some(done) = self.notifies.remove(&id) {
                    let _ = done.send(Err(CallError::Cancelled(reason)));
                }
            }
            Event::Cancelled { exchange: Exchange::Theirs(id), reason } => {
                trace::cancelled(Exchange::Theirs(id), reason);
                self.streams.remove(&id);
                self.storage.discard(Exchange::Theirs(id), &mut self.session);
                self.deferred.retain(|prepared| prepared.exchange != id);
                if let Some(handler) = self.handlers.remove(&id) {
                    handler.abort();
                }
                self.dispatch.emit(ConnectionEvent::Cancel { connection: self.shared.id, exchange: id, reason });
            }
            Event::Closed(CloseReason::PeerRestarted) => {
                // §9 rule 7: the peer restarted. Everything of the old session fails at once, and
                // its successor, which already accepted the new HELLO, takes over the transport;
                // its events (Connected first) follow in this same drain.
                self.fail_calls(CloseReason::PeerRestarted);
                trace::closed(&self.session, &CloseReason::PeerRestarted, false);
                self.dispatch.emit(ConnectionEvent::PeerRestarted { connection: self.shared.id });
                if let Some(next) = self.session.successor(Instant::now().into_std(), draw_nonce()) {
                    self.retire_session();
                    self.session = next;
                    self.state.send_replace(LinkState::Connecting);
                }
            }
            Event::Closed(reason) if self.waits_again(&reason) => {
                trace::closed(&self.session, &reason, matches!(&*self.state.borrow(), LinkState::Connecting));
                trace::waiting_again(&reason);
                self.fail_calls(reason.clone());
                self.rearm = true;
                self.state.send_replace(LinkState::Connecting);
                self.dispatch.emit(ConnectionEvent::PeerLost { connection: self.shared.id, reason });
            }
            Event::Closed(reason) => {
                trace::closed(&self.session, &reason, matches!(&*self.state.borrow(), LinkState::Connecting));
                self.fail_everything(reason)
            }
        }
    }

    /// Moves the handoff queues of the session to the storage and the body readers.
    fn pump_handoff(&mut self) {
        self.storage.pump(&mut self.session);
        self.bodies.pump(&mut self.session);
    }

    fn complete_call(&mut self, id: MessageId, message: Incoming) {
        let Some(call) = self.pending.remove(&id) else { return };
        match (&message.payload, self.answers.get_mut(&id)) {
            // Streamed from here on: the token stays until its end, for a reader that drops it.
            (Payload::Streamed { total }, Some((feed, _))) => feed.open = *total == crate::frame::OPEN_TOTAL,
            _ => {
                self.answers.remove(&id);
                self.tokens.remove(&call.token);
            }
        }
        let headers = decode_headers(message.meta.as_ref()).unwrap_or_default();
        let result = match message.kind {
            Kind::Error => Err(CallError::Remote(error_from_payload(&message.payload))),
            _ => Ok(Reply { headers, payload: PayloadSlot::new(message.payload) }),
        };
        let _ = call.reply.send(result);
    }

    /// Hands a streamed chunk to its handler's [`BodyStream`]; one nobody will read gives its
    /// credit back at once.
    fn feed_stream(&mut self, exchange: Exchange, bytes: bytes::Bytes, end: bool) {
        let len = bytes.len() as u64;
        let feed = match exchange {
            Exchange::Theirs(id) => self.streams.get(&id),
            Exchange::Ours(id) => self.answers.get(&id).map(|(feed, _)| feed),
        };
        let unread = feed.is_none_or(|feed| feed.send(bytes, end).is_err());
        let abandoned = unread && !end && feed.is_some_and(|feed| feed.cancel_unread);
        if unread {
            self.session.consumed(len);
        }
        if let (true, Exchange::Theirs(id)) = (abandoned, exchange) {
            // An open one-way whose handler stopped reading: the peer would send forever.
            self.streams.remove(&id);
            self.session.cancel(exchange, CancelReason::CANCELLED);
            return;
        }
        if end {
            match exchange {
                Exchange::Theirs(id) => drop(self.streams.remove(&id)),
                Exchange::Ours(id) => {
                    if let Some((_, token)) = self.answers.remove(&id) {
                        self.tokens.remove(&token);
                    }
                }
            }
        }
    }

    fn start_handler(&mut self, exchange: u32, message: Incoming) {
        let prepared = self.prepare(exchange, message);
        self.run_handler(prepared);
    }

    /// The request a handler gets; a streamed payload's chunks are fed to it from now on.
    fn prepare(&mut self, exchange: u32, message: Incoming) -> Prepared {
        let wants_reply = message.kind == Kind::Request;
        let priority = message.priority;
        let route = message.route.unwrap_or(Route::Id(0));
        let body = match message.payload {
            Payload::Streamed { total } => {
                let (tx, chunks) = mpsc::unbounded_channel();
                let open = total == crate::frame::OPEN_TOTAL;
                self.streams.insert(exchange, Feed { tx, open, cancel_unread: open && !wants_reply });
                Some(BodyStream::new(chunks, total, CreditReturn(self.shared.clone())))
            }
            _ => None,
        };
        let request = Request {
            route: self.dispatch.route_name(&route),
            route_id: route.id(),
            exchange: wants_reply.then_some(exchange),
            headers: Default::default(),
            payload: PayloadSlot::new(message.payload),
            body,
            priority: message.priority,
            connection: self.connection(),
            extensions: Default::default(),
            #[cfg(feature = "cache")]
            cache: None,
        };
        let (request, header_error) = match decode_headers(message.meta.as_ref()) {
            Ok(headers) => (Request { headers, ..request }, None),
            Err(err) => (request, Some(HandlerError::bad_request(err))),
        };
        Prepared { exchange, wants_reply, priority, request, header_error }
    }

    fn run_handler(&mut self, prepared: Prepared) {
        let Prepared { exchange, wants_reply, priority, request, header_error } = prepared;
        let slot = self.handler_slots.clone().try_acquire_owned().expect("drain_events checked a slot is free");
        // Named in a panic's event, if anyone listens (no cost otherwise).
        let route = tracing::enabled!(tracing::Level::ERROR).then(|| request.route.clone());
        let handler = match header_error {
            Some(err) => Box::pin(std::future::ready(Err(err))),
            None => self.dispatch.clone().handle(request),
        };
        // Most handlers answer without waiting: poll once here and answer at once, without a task.
        let mut handler = Box::pin(AssertUnwindSafe(handler).catch_unwind());
        let mut first_poll = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(result) = handler.as_mut().poll(&mut first_poll) {
            drop(slot);
            if wants_reply {
                self.answer(exchange, priority, result.unwrap_or_else(|panic| panicked(panic, route.as_deref())));
            }
            return;
        }
        let done = self.done_tx.clone();
        // Events may be waiting for the slot: freeing it, even by an abort, wakes the driver.
        let slot = Slot { _permit: slot, shared: self.shared.clone() };
        let task = tokio::spawn(tracing::Instrument::in_current_span(async move {
            let result = handler.await.unwrap_or_else(|panic| panicked(panic, route.as_deref()));
            drop(slot);
            if wants_reply {
                let _ = done.send((exchange, priority, result)).await;
            }
        }));
        if wants_reply {
            self.handlers.insert(exchange, task.abort_handle());
        }
    }

    fn respond(&mut self, exchange: u32, priority: Priority, result: Result<Response, HandlerError>) {
        if self.handlers.remove(&exchange).is_none() {
            return; // cancelled meanwhile
        }
        self.answer(exchange, priority, result);
    }

    /// Answers at the request's priority unless the handler chose another (§7).
    fn answer(&mut self, exchange: u32, priority: Priority, result: Result<Response, HandlerError>) {
        let (result, headers, priority) = match result {
            Ok(response) => (
                Ok(response.body.unwrap_or_else(|| Body::Bytes(Default::default()))),
                response.headers,
                response.priority.unwrap_or(priority),
            ),
            Err(err) => (Err(Body::from(err.to_payload())), Default::default(), priority),
        };
        let opts = SendOptions::priority(priority).with_meta(encode_headers(&headers));
        // A closed session or a cancelled exchange has no one left to answer: nothing to do then.
        // §8.1: if the requester cannot take the answer, tell it why, naming both sizes.
        let sent = self.session.respond(exchange, result, opts);
        if let Err(SendError::OpenLengthNotOffered) = sent {
            // §5.1: a streamed answer (`Response::stream`) to a peer without OPEN.
            let message =
                format!("cannot stream the answer to exchange {exchange}: {}", SendError::OpenLengthNotOffered);
            let refusal = Body::from(HandlerError::new(ErrorCode::UNAVAILABLE, message).to_payload());
            if self.session.respond(exchange, Err(refusal), SendOptions::priority(priority)).is_err() {
                self.session.cancel(Exchange::Theirs(exchange), CancelReason::CANCELLED);
            }
            return;
        }
        if let Err(SendError::TooLarge { len, max }) = sent {
            trace::answer_too_large(exchange, len, max);
            let message = format!("answer of {len} bytes exceeds the requester's max_message of {max} bytes");
            let refusal = Body::from(HandlerError::new(ErrorCode::TOO_LARGE, message).to_payload());
            if self.session.respond(exchange, Err(refusal), SendOptions::priority(priority)).is_err() {
                self.session.cancel(Exchange::Theirs(exchange), CancelReason::TOO_LARGE);
            }
        }
    }

    /// Whether the link waits for the next peer after a session that ended this way (§10): the
    /// peer went silent, left, or broke the protocol; not when the application closed or the
    /// transport ended.
    fn waits_again(&self, reason: &CloseReason) -> bool {
        let ended_by_peer = !matches!(reason, CloseReason::Local | CloseReason::Disconnected);
        self.config.wait_for_peer && ended_by_peer && !self.closing
    }

    fn fail_everything(&mut self, reason: CloseReason) {
        self.fail_calls(reason.clone());
        self.state.send_replace(LinkState::Closed(reason.clone()));
        self.dispatch.emit(ConnectionEvent::Disconnect { connection: self.shared.id, reason });
    }

    /// Fails every pending call and one-way message and aborts every handler of the session that
    /// ended (§10).
    fn fail_calls(&mut self, reason: CloseReason) {
        for (_, call) in self.pending.drain() {
            let _ = call.reply.send(Err(CallError::Disconnected(reason.clone())));
        }
        self.tokens.clear();
        for (_, done) in self.notifies.drain() {
            let _ = done.send(Err(CallError::Disconnected(reason.clone())));
        }
        for (_, handler) in self.handlers.drain() {
            handler.abort();
        }
        self.deferred.clear();
        self.streams.clear();
        self.answers.clear();
        self.storage.clear();
        self.bodies.clear();
        self.shared.reliable.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    fn report_progress(&self) {
        for (id, call) in &self.pending {
            let Some(progress) = &call.progress else { continue };
            let now = self.session.progress_out(*id).or_else(|| self.session.progress_in(Exchange::Ours(*id)));
            if let Some(now) = now {
                progress.send_if_modified(|old| std::mem::replace(old, now) != now);
            }
        }
    }

    fn connection(&self) -> Connection {
        Connection { shared: self.shared.clone() }
    }
}

/// Where a streamed payload's chunks go: its reader's [`BodyStream`]. An open-length payload's
/// end is marked with an empty chunk (its reader cannot tell it from the announced total), so
/// that a stream that stops short is never taken for a complete one.
struct Feed {
    tx: mpsc::UnboundedSender<bytes::Bytes>,
    open: bool,
    /// An open-length one-way message: nothing answers it, so once its reader is gone the rest
    /// would flow forever; it is called off instead.
    cancel_unread: bool,
}

impl Feed {
    fn send(&self, bytes: bytes::Bytes, end: bool) -> Result<(), ()> {
        if !bytes.is_empty() {
            self.tx.send(bytes).map_err(drop)?;
        }
        if end && self.open {
            self.tx.send(bytes::Bytes::new()).map_err(drop)?;
        }
        Ok(())
    }
}

/// A handler's panic as the INTERNAL error its caller receives; `route` is known if someone
/// listens to `tracing` events.
fn panicked(panic: Box<dyn std::any::Any + Send>, route: Option<&str>) -> Result<Response, HandlerError> {
    let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    let what = what.unwrap_or_default();
    trace::handler_panic(route.unwrap_or("?"), &what);
    Err(HandlerError::new(ErrorCode::INTERNAL, format!("handler panicked: {what}")))
}

fn error_from_payload(payload: &Payload) -> HandlerError {
    match payload {
        Payload::Memory(bytes) => HandlerError::from_payload(bytes),
        Payload::File(_) | Payload::Stored { .. } | Payload::Streamed { .. } => {
            HandlerError::new(ErrorCode::INTERNAL, "error payload too large")
        }
    }
}

/// Reads from the link straight into the session's receive buffer (no intermediate copy).
async fn read_into<R: AsyncRead + Unpin>(reader: &mut R, buffer: &mut BytesMut) -> std::io::Result<usize> {
    buffer.reserve(READ_BUFFER);
    reader.read_buf(buffer).await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

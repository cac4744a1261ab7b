//! The sans-IO protocol session (docs/PROTOCOL.md §6–§10).
//!
//! A [`Session`] is one side of one connection. Drive it like this, in any order, from one task:
//!
//! 1. [`handle_input`](Session::handle_input) with bytes read from the link;
//! 2. [`poll_transmit`](Session::poll_transmit) until it returns `false`, and write what it gave;
//! 3. [`poll_event`](Session::poll_event) until `None`, and act on the events;
//! 4. sleep until [`poll_timeout`](Session::poll_timeout), then call
//!    [`handle_timeout`](Session::handle_timeout).
//!
//! and, when the caller stores large messages or supplies bodies itself (docs/PROTOCOL.md §8.4):
//!
//! 5. [`poll_store`](Session::poll_store) until `None`, before the events, and store what it gives
//!    (returning the bytes' credit with [`consumed`](Session::consumed) once stored);
//! 6. [`poll_demand`](Session::poll_demand) until `None`, and [`supply`](Session::supply) the bytes
//!    asked for when they are read.
//!
//! Every method takes the current time from the caller; nothing here reads a clock or does I/O:
//! spill files and `Body::Reader`s are the caller's ([`StoreOp`], [`Demand`]).

#[allow(unused_imports)]
use crate::prelude::*;

mod abuse;
mod config;
mod credit;
mod error;
mod event;
mod handoff;
mod inbox;
mod liveness;
mod outbox;
mod reliable;
mod spill;

use alloc::collections::VecDeque;

use crate::collections::{HashMap, HashSet};
use crate::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

/// What a [`Config`] announces and enforces ([`Config::limits`]); the same type as
/// [`frame::Limits`], here so that it is found where `Config` is.
pub use crate::frame::Limits;
pub use config::{Config, Keepalive, Reliability};
pub use error::{ProtocolError, SendError};
#[cfg(feature = "tokio")] // for the endpoint's call errors
pub(crate) use event::Millis;
pub use event::{Body, CloseReason, Deadline, Event, Exchange, Incoming, MessageId, Payload, Progress, SendOptions};
pub use handoff::{Demand, StoreOp, READ_AHEAD, SUPPLY_AHEAD};
pub use spill::{SpillBudget, DEFAULT_SPILL_BYTES, DEFAULT_SPILL_FILES};

use crate::frame::{self, CancelReason, Data, Decoder, Frame, GoAwayCode, Head, Hello, Kind, Priority, Route, Xid};
use abuse::Budget;
use credit::RecvCredit;
use inbox::{Arrival, Inbox};
pub use inbox::{SizePolicy, StreamPolicy};
use liveness::Liveness;
use outbox::{Outbox, Scheduled};
use reliable::Reliable;

/// The protocol version this implementation speaks (§9).
pub const PROTOCOL_VERSION: u8 = 1;

/// Control frames queued beyond this mean the peer provokes answers faster than it reads them.
const CONTROL_QUEUE_LIMIT: usize = 4096;

/// What each CANCEL we send adds to the peer's noise allowance (§8.5): the chunks of the exchange
/// already on their way, a default window (512 KiB) of 16 KiB chunks.
const CANCEL_EARNS: u64 = 32;

/// An exchange from this side's point of view: its id and whether we opened it (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    id: u32,
    ours: bool,
}

impl Key {
    /// The wire form in a frame we send.
    fn to_xid(self) -> Xid {
        Xid { id: self.id, opened_by_receiver: !self.ours }
    }

    /// The exchange a frame we received refers to.
    fn from_xid(xid: Xid) -> Self {
        Key { id: xid.id, ours: xid.opened_by_receiver }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Open,
    Closed,
}

/// Counters for diagnostics and tests, since the session started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Frames decoded.
    pub frames_in: u64,
    /// Frames encoded.
    pub frames_out: u64,
    /// Bytes handed to `handle_input`.
    pub bytes_in: u64,
    /// Bytes produced by `poll_transmit`.
    pub bytes_out: u64,
    /// Damaged frames dropped (lossy framing).
    pub frames_dropped: u64,
    /// Duplicate messages and chunks ignored (lossy framing).
    pub duplicates: u64,
    /// SEQ frames sent again (reliable delivery, §16).
    pub retransmitted: u64,
    /// Messages delivered to the application: requests, one-way messages and answers (a
    /// streamed one when it begins).
    pub messages_in: u64,
    /// Messages whose last byte was sent: requests, one-way messages and answers.
    pub messages_out: u64,
    /// CANCEL frames sent (§5.4), whatever their reason.
    pub cancels_sent: u64,
    /// CANCEL frames received.
    pub cancels_received: u64,
    /// Exchanges of the peer refused with CANCEL REFUSED for `max_in_flight` (§8.1); they
    /// count in `cancels_sent` too.
    pub refused: u64,
    /// Bytes the lossy decoder dropped: damaged and oversized frames and noise between frames
    /// (§4.2); 0 on the stream framing.
    pub bytes_discarded: u64,
    /// PING frames sent: keepalive's and [`Session::ping`]'s.
    pub pings_sent: u64,
    /// The round-trip time of the latest PING answered by its PONG, from the PING's
    /// `poll_transmit` to the PONG's `handle_input`.
    pub last_rtt: Option<Duration>,
}

/// How much waits where inside a session: a snapshot for diagnostics ([`Session::queues`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Queues {
    /// Outgoing messages (ours and answers) not yet completely sent.
    pub outgoing: usize,
    /// Payload bytes they hold in memory ([`Session::queued_bytes`]).
    pub outgoing_bytes: u64,
    /// Control frames waiting to be sent.
    pub control: usize,
    /// Incoming messages being reassembled or streamed.
    pub incoming: usize,
    /// Our requests whose answer has not fully arrived.
    pub awaiting_answer: usize,
    /// Requests of the peer delivered and not yet answered.
    pub unanswered: usize,
    /// Events the application has not taken yet.
    pub events: usize,
    /// Sequenced frames sent and not yet acknowledged (reliable delivery, §16).
    pub unacked: usize,
}

/// The flow-control credit of a session at one moment (§5.5): `None` where no credit applies
/// (a window of 0, always on the lossy framing, or before the handshake).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credit {
    /// Payload bytes the peer still allows us to send.
    pub send: Option<u64>,
    /// Payload bytes we still allow the peer to send.
    pub recv: Option<u64>,
}

/// One side of a connection: handshake, exchanges, scheduling, reassembly, flow control, liveness.
pub struct Session {
    config: Config,
    state: State,
    decoder: Decoder,
    peer: Option<Hello>,
    /// Control frames, sent before any message chunk, in order.
    control: VecDeque<Frame>,
    outbox: Outbox,
    inbox: Inbox,
    recv_credit: RecvCredit,
    /// Our requests whose answer has not fully arrived: exchange id to handle, and back.
    awaiting: HashMap<u32, MessageId>,
    awaiting_by_message: HashMap<MessageId, u32>,
    /// Requests of the peer delivered to the application and not yet answered.
    unanswered: HashSet<u32>,
    /// Our requests whose answer is delivered streamed (`SendOptions::stream_answer`), until
    /// the answer is complete or the exchange ends.
    stream_answers: HashSet<MessageId>,
    /// Those of `unanswered` whose `Event::Message` the application has not taken yet: a CANCEL
    /// withdraws them from the queue, so no handler ever starts for them.
    undelivered: HashSet<u32>,
    /// Requests the peer cancelled before their answer (§8.5, `Config::max_resets`).
    resets: Budget,
    /// Frames of the peer that need no answer (§8.5, `Config::max_noise`).
    noise: Budget,
    /// Id the peer's next opening HEAD must carry (§6).
    next_theirs: u32,
    /// Events with the credit released when the application takes them.
    events: VecDeque<(Event, u64)>,
    liveness: Liveness,
    /// Reliable delivery, once both HELLOs offered it (§16).
    reliable: Option<Reliable>,
    /// With reliable delivery offered: when to send our HELLO again, and until when, while the
    /// peer may not have it (§16.1).
    hello_retry: Option<(Instant, Instant)>,
    /// The HELLO with a new nonce that ended this session: the restarted peer's (§9).
    restart_hello: Option<Hello>,
    /// Whether an exchange was opened, by either side: until then a peer's restart costs nothing
    /// and its new HELLO is adopted in place (§9 rule 7).
    exchanged: bool,
    /// Since when the bytes of an unfinished frame have been waiting for the rest (§10).
    frame_started: Option<Instant>,
    stats: Stats,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session").field("state", &self.state).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Session {
    /// A session that starts by sending its HELLO.
    pub fn new(mut config: Config, now: Instant) -> Self {
        let tolerant = config.framing == frame::Framing::Lossy;
        if tolerant {
            // §5.5: on a lossy link lost or duplicated frames would corrupt the credit accounting.
            config.limits.window = 0;
        }
        let limits = config.limits;
        let offer = config.reliable.as_ref().filter(|_| tolerant);
        let hello_retry = offer.map(|r| (now + r.rto_initial, now + config.handshake_timeout));
        let mut session = Self {
            decoder: Decoder::new(config.framing, limits.max_frame as usize),
            inbox: Inbox::new(limits, config.spill_budget.clone(), tolerant),
            recv_credit: RecvCredit::new(limits.window, limits.inline_limit.min(limits.max_message)),
            liveness: Liveness::new(now, config.handshake_timeout, config.keepalive, config.wait_for_peer),
            state: State::Handshaking,
            peer: None,
            control: VecDeque::new(),
            outbox: Outbox::default(),
            awaiting: HashMap::new(),
            awaiting_by_message: HashMap::new(),
            unanswered: HashSet::new(),
            stream_answers: HashSet::new(),
            undelivered: HashSet::new(),
            resets: Budget::new(config.max_resets, config.abuse_window),
            noise: Budget::new(config.max_noise, config.abuse_window),
            next_theirs: 0,
            events: VecDeque::new(),
            reliable: None,
            hello_retry,
            restart_hello: None,
            exchanged: false,
            frame_started: None,
            stats: Stats::default(),
            config,
        };
        session.control.push_back(Frame::Hello(session.our_hello()));
        session
    }

    /// After [`CloseReason::PeerRestarted`]: the session that answers the restarted peer, on the
    /// same link, at once (docs/PROTOCOL.md §9). It has accepted the peer's new HELLO (its
    /// `Connected` event, or its handshake error, is its first event), queued its own HELLO, and
    /// holds the bytes that followed that HELLO; this session's exchanges, chunks and timers are
    /// gone with it. It keeps this session's configuration; its nonce is `fresh_nonce` (drawn by
    /// the caller) when exchanges were opened in this session, which the peer may have seen (a
    /// stale HELLO accepted first: the live peer is then in session with us and must start anew
    /// too), and this session's nonce otherwise. `None` if this session did not end by a restart.
    ///
    /// A new `Session` rather than a reset of this one, so that no per-session state can survive
    /// by mistake; the caller moves its own per-session state (pending calls, handlers) over
    /// the same way.
    pub fn successor(&mut self, now: Instant, fresh_nonce: u64) -> Option<Session> {
        let hello = self.restart_hello.take()?;
        let mut config = self.config.clone();
        if self.exchanged {
            config.nonce = Some(fresh_nonce);
        }
        let mut next = Session::new(config, now);
        if let Some(policy) = self.inbox.take_stream_policy() {
            next.inbox.set_stream_policy(policy);
        }
        if let Some(policy) = self.inbox.take_size_policy() {
            next.inbox.set_size_policy(policy);
        }
        next.stats.frames_in += 1;
        next.liveness.heard(now);
        if let Err(err) = next.handle_hello(hello, now) {
            next.fail(err);
        }
        let rest = core::mem::take(self.decoder.buffer_mut());
        next.handle_input(now, &rest);
        Some(next)
    }

    /// The HELLO this side sends (§5.1).
    fn our_hello(&self) -> Hello {
        let offer = self.config.reliable.as_ref().filter(|_| self.config.framing == frame::Framing::Lossy);
        Hello {
            version_min: PROTOCOL_VERSION,
            version_max: PROTOCOL_VERSION,
            fingerprint: self.config.fingerprint,
            limits: self.config.limits,
            reliable: offer.map(Reliability::window),
            nonce: self.config.nonce,
            codec: self.config.codec,
            // §5.1: no table is sent rather than one the peer would ignore.
            methods: Some(self.config.methods.clone()).filter(|m| !m.is_empty() && m.len() <= frame::MAX_METHODS),
            open: self.config.open_length,
        }
    }

    /// Whether open-length messages are in effect (§5.1 option OPEN, §5.2): both HELLOs offer
    /// them. `false` before the handshake.
    pub fn open_length(&self) -> bool {
        self.config.open_length && self.peer.as_ref().is_some_and(|peer| peer.open)
    }

    /// Whether this side offers reliable delivery (§16.1): configured, on the lossy framing. It is
    /// in use only if the peer offers it too ([`is_reliable`](Self::is_reliable)).
    pub fn offers_reliability(&self) -> bool {
        self.offers_reliable()
    }

    /// Whether this side offers reliable delivery: configured, on the lossy framing (§16).
    fn offers_reliable(&self) -> bool {
        self.config.reliable.is_some() && self.config.framing == frame::Framing::Lossy
    }

    /// Whether reliable delivery (§16) is in use on this connection.
    pub fn is_reliable(&self) -> bool {
        self.reliable.is_some()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The peer's HELLO, once the handshake completed.
    pub fn peer(&self) -> Option<&Hello> {
        self.peer.as_ref()
    }

    /// Whether the handshake completed and the session is not closed.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the session is closed (a final GOAWAY may still wait in [`poll_transmit`](Self::poll_transmit)).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether no message is queued, being received or awaiting an answer.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty() && self.inbox.len() == 0 && self.awaiting.is_empty() && self.unanswered.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats { bytes_discarded: self.decoder.discarded_bytes(), last_rtt: self.liveness.rtt(), ..self.stats }
    }

    /// The queues' depths now.
    pub fn queues(&self) -> Queues {
        Queues {
            outgoing: self.outbox.len(),
            outgoing_bytes: self.outbox.queued_bytes(0),
            control: self.control.len(),
            incoming: self.inbox.len(),
            awaiting_answer: self.awaiting.len(),
            unanswered: self.unanswered.len(),
            events: self.events.len(),
            unacked: self.reliable.as_ref().map_or(0, Reliable::unacked),
        }
    }

    /// The flow-control credit now, both ways (§5.5).
    pub fn credit(&self) -> Credit {
        let open = self.peer.is_some();
        Credit {
            send: self.outbox.credit.remaining().filter(|_| open),
            recv: self.recv_credit.remaining().filter(|_| open),
        }
    }

    /// The HELLO this side sends (§5.1).
    pub fn hello(&self) -> Hello {
        self.our_hello()
    }

    /// Queues a PING (§5.6) and returns its nonce; its PONG sets [`Stats::last_rtt`]. Nothing is
    /// queued on a session that is not open (`None`).
    pub fn ping(&mut self) -> Option<u64> {
        if self.state != State::Open {
            return None;
        }
        let nonce = self.liveness.next_nonce();
        self.push_control(Frame::Ping { nonce });
        Some(nonce)
    }

    /// The nonce and round-trip time of the latest PING answered, if any.
    pub fn last_pong(&self) -> Option<(u64, Duration)> {
        self.liveness.last_pong()
    }

    /// Payload bytes held in memory by queued outgoing messages, answers and calls, whole until
    /// each one's last byte is sent: what [`Config::send_budget`] is compared with (§8.5).
    pub fn queued_bytes(&self) -> u64 {
        self.outbox.queued_bytes(0)
    }

    /// Whether a request at `priority` must wait for the send budget (§8.5): a driver then starts
    /// no handler for it until this turns false. True when [`queued_bytes`](Self::queued_bytes)
    /// reached [`Config::send_budget`] and an eighth of it is queued at `priority` or above, so
    /// an urgent request still overtakes a budget filled by bulk answers (§7), and the queue
    /// stays below twice the budget (plus the answers of handlers already running).
    pub fn send_budget_full(&self, priority: Priority) -> bool {
        let budget = self.config.send_budget;
        self.outbox.queued_bytes(0) >= budget && self.outbox.queued_bytes(priority.level()) >= budget.div_ceil(8)
    }

    /// Payload bytes received and not yet released to the peer's credit.
    pub fn held_bytes(&self) -> u64 {
        self.recv_credit.held()
    }

    /// Queues a request; its answer arrives as an [`Event::Message`] with [`Exchange::Ours`].
    /// With [`SendOptions::stream_answer`] the answer is delivered streamed, and our request
    /// stays open (its rest is sent) until the answer is complete (§6).
    pub fn request(&mut self, route: Route, body: impl Into<Body>, opts: SendOptions) -> Result<MessageId, SendError> {
        let stream = opts.stream_answer;
        let message = self.submit(Kind::Request, Some(route), body.into(), opts, None)?;
        if stream {
            self.stream_answers.insert(message);
        }
        Ok(message)
    }

    /// Queues a one-way message.
    pub fn send_oneway(
        &mut self,
        route: Route,
        body: impl Into<Body>,
        opts: SendOptions,
    ) -> Result<MessageId, SendError> {
        self.submit(Kind::OneWay, Some(route), body.into(), opts, None)
    }

    /// Answers the peer's request `id` with a response (`Ok`) or an error (`Err`).
    pub fn respond(&mut self, id: u32, result: Result<Body, Body>, opts: SendOptions) -> Result<MessageId, SendError> {
        if self.state == State::Closed {
            return Err(SendError::Closed);
        }
        if !self.unanswered.contains(&id) {
            return Err(SendError::UnknownExchange(id));
        }
        let (kind, body) = match result {
            Ok(body) => (Kind::Response, body),
            Err(body) => (Kind::Error, body),
        };
        // §8.1: an answer over the requester's max_message leaves the request unanswered, so the
        // application can still answer it with an error (or cancel it) instead of going silent.
        self.check_size(&body)?;
        self.unanswered.remove(&id);
        self.submit(kind, None, body, opts, Some(Key { id, ours: false }))
    }

    /// Refuses a message over the peer's `max_message` before anything is queued (§8.1), and an
    /// open-length one to a peer that did not offer them (§5.1).
    fn check_size(&self, body: &Body) -> Result<(), SendError> {
        if body.is_open() && (!self.config.open_length || self.peer.as_ref().is_some_and(|peer| !peer.open)) {
            return Err(SendError::OpenLengthNotOffered);
        }
        match &self.peer {
            Some(peer) if body.len() > peer.limits.max_message => {
                Err(SendError::TooLarge { len: body.len(), max: peer.limits.max_message })
            }
            _ => Ok(()),
        }
    }

    fn submit(
        &mut self,
        kind: Kind,
        route: Option<Route>,
        body: Body,
        opts: SendOptions,
        key: Option<Key>,
    ) -> Result<MessageId, SendError> {
        if self.state == State::Closed {
            return Err(SendError::Closed);
        }
        self.check_size(&body)?;
        Ok(self.outbox.push(kind, route, body, opts, key, self.config.chunk_size))
    }

    /// The next operation for the caller's storage of large incoming messages ([`StoreOp`]).
    /// Take them before the events.
    pub fn poll_store(&mut self) -> Option<StoreOp> {
        self.inbox.poll_store()
    }

    /// The caller's storage of `exchange` failed (it could not be created, written or
    /// finished): the message is dropped and the peer told with CANCEL IO; a call of ours whose
    /// answer it was fails with [`Event::Cancelled`]. `false` if the session no longer stores
    /// it (cancelled or closed meanwhile).
    pub fn store_failed(&mut self, exchange: Exchange) -> bool {
        let Some(key) = self.inbox.stored_key(exchange) else { return false };
        let arrival = self.inbox.store_failed(key);
        self.handle_arrival(arrival);
        true
    }

    /// The caller's storage has every byte of `exchange` ([`StoreOp::Finish`]): its
    /// [`Event::Message`] with [`Payload::Stored`] follows. `false` if the session no longer
    /// stores it (cancelled or closed meanwhile: discard the storage).
    pub fn store_finished(&mut self, exchange: Exchange) -> bool {
        let Some(arrival) = self.inbox.stored_key(exchange).and_then(|key| self.inbox.store_finished(key)) else {
            return false;
        };
        self.handle_arrival(arrival);
        true
    }

    /// The next request for the bytes of an outgoing body the caller supplies ([`Demand`]).
    pub fn poll_demand(&mut self) -> Option<Demand> {
        self.outbox.poll_demand()
    }

    /// Bytes of `message`'s supplied body at `offset`, as a [`Demand::Read`] asked. `false` (and
    /// ignored) when the message is gone or they are not the bytes expected next.
    pub fn supply(&mut self, message: MessageId, offset: u64, bytes: Bytes) -> bool {
        self.outbox.supply(message, offset, bytes)
    }

    /// `message`'s open-length body ([`Body::Open`]) ends at `offset`, the end of the bytes
    /// supplied: once they are sent, its last DATA carries END (§5.3). `false` (and ignored)
    /// when the message is gone, is not open-length, or `offset` is not where its bytes end.
    pub fn supply_end(&mut self, message: MessageId, offset: u64) -> bool {
        self.outbox.supply_end(message, offset)
    }

    /// The source of `message`'s body failed at `offset` (an error, or it ended early): once
    /// the bytes before it are sent, the message is cancelled with CANCEL IO
    /// ([`Event::Cancelled`]). `false` when the message is gone.
    pub fn supply_failed(&mut self, message: MessageId, offset: u64) -> bool {
        self.outbox.supply_failed(message, offset)
    }

    /// Abandons an exchange in both directions and tells the peer if it knows of it (§5.4).
    /// Returns whether there was anything to cancel.
    pub fn cancel(&mut self, exchange: Exchange, reason: CancelReason) -> bool {
        let key = match exchange {
            Exchange::Ours(message) => {
                let queued = self.outbox.cancel(message);
                let awaited = self.unawait_message(message).map(|id| Key { id, ours: true });
                // The peer knows the exchange once its HEAD went out.
                match queued.flatten().or(awaited) {
                    Some(key) => key,
                    None => return queued.is_some(),
                }
            }
            Exchange::Theirs(id) => {
                let key = Key { id, ours: false };
                let responding = self.outbox.cancel_exchange(key).is_some();
                let known = self.unanswered.remove(&id) | self.inbox.cancel(key) | responding;
                if !known {
                    return false;
                }
                key
            }
        };
        self.inbox.cancel(key);
        self.release_inbox_credit();
        self.push_control(Frame::Cancel { xid: key.to_xid(), reason });
        // §8.5: chunks of it may be on their way; dropping them is not the peer's noise.
        self.noise.earn(CANCEL_EARNS);
        true
    }

    /// Forgets that we await the answer of exchange `id`; the peer no longer counts it (§8.1).
    fn unawait(&mut self, id: u32) -> Option<MessageId> {
        let message = self.awaiting.remove(&id)?;
        self.awaiting_by_message.remove(&message);
        self.stream_answers.remove(&message);
        self.outbox.settle_request();
        Some(message)
    }

    /// [`unawait`](Self::unawait) by message; returns the exchange id.
    fn unawait_message(&mut self, message: MessageId) -> Option<u32> {
        let id = *self.awaiting_by_message.get(&message)?;
        self.unawait(id);
        Some(id)
    }

    /// Bytes sent of an outgoing message, while it is being sent.
    pub fn progress_out(&self, message: MessageId) -> Option<Progress> {
        self.outbox.progress(message).map(|(done, total)| Progress { done, total })
    }

    /// Bytes received of an incoming message, while it is being received.
    pub fn progress_in(&self, exchange: Exchange) -> Option<Progress> {
        let key = match exchange {
            Exchange::Ours(message) => Key { id: *self.awaiting_by_message.get(&message)?, ours: true },
            Exchange::Theirs(id) => Key { id, ours: false },
        };
        self.inbox.progress(key).map(|(done, total)| Progress { done, total })
    }

    /// Closes the session in an orderly way: a GOAWAY NORMAL is queued; every open exchange fails.
    pub fn close(&mut self, message: &str) {
        self.close_with(CloseReason::Local, Some((GoAwayCode::NORMAL, message.to_owned())));
    }

    /// The transport ended: every open exchange fails with [`CloseReason::Disconnected`].
    pub fn handle_eof(&mut self) {
        self.close_with(CloseReason::Disconnected, None);
    }

    /// Feeds bytes read from the link.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.stats.bytes_in += bytes.len() as u64;
        if !bytes.is_empty() {
            self.liveness.received(now);
        }
        self.decoder.extend(bytes);
        self.drain_decoder(now);
    }

    /// The buffer bytes from the link may be read into directly, saving a copy; then call
    /// [`handle_buffered`](Self::handle_buffered) with how many were appended.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        self.decoder.buffer_mut()
    }

    /// Processes `appended` bytes the caller read into [`input_buffer`](Self::input_buffer).
    pub fn handle_buffered(&mut self, now: Instant, appended: usize) {
        if self.state == State::Closed {
            self.decoder.buffer_mut().clear();
            return;
        }
        self.stats.bytes_in += appended as u64;
        if appended > 0 {
            self.liveness.received(now);
        }
        self.drain_decoder(now);
    }

    fn drain_decoder(&mut self, now: Instant) {
        while self.state != State::Closed {
            match self.decoder.decode() {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    self.frame_started = None;
                    self.stats.frames_in += 1;
                    self.liveness.heard(now);
                    if let Err(err) = self.handle_frame(frame, now) {
                        self.fail(err);
                    }
                }
                // §4.2: on the lossy framing damage costs the damaged frame only.
                Err(err) if err.is_damage() && self.config.framing == frame::Framing::Lossy => {
                    self.stats.frames_dropped += 1;
                }
                Err(err) => self.fail(err.into()),
            }
        }
        // §10: the frame deadline runs from the first byte of a frame not yet complete.
        if self.decoder.buffered() == 0 {
            self.frame_started = None;
        } else if self.frame_started.is_none() {
            self.frame_started = Some(now);
        }
        if self.credit_blocked() {
            // The peer may be waiting for credit we hold: its partial messages are not stalled.
            self.inbox.touch_all(now);
        }
    }

    fn handle_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ProtocolError> {
        if self.state == State::Handshaking {
            return match frame {
                Frame::Hello(hello) => self.handle_hello(hello, now),
                // §3.1: an ignorable extension may come before the HELLO.
                Frame::Extension { .. } => Ok(()),
                // §9, §10: on a lossy link, frames before the HELLO may be what a dead session left
                // in the line (or the open peer's, whose HELLO was lost): dropped, even a GOAWAY.
                _ if self.config.framing == frame::Framing::Lossy => Ok(()),
                Frame::GoAway { code, message } => {
                    self.close_with(CloseReason::Peer { code, message }, None);
                    Ok(())
                }
                other => Err(ProtocolError::ExpectedHello(other.frame_type().0)),
            };
        }
        if let Some(reliable) = &mut self.reliable {
            if matches!(frame, Frame::Seq { .. } | Frame::Ack { .. } | Frame::Pong { .. }) {
                // §16.1: only an open peer sends these, so it has our HELLO.
                self.hello_retry = None;
            }
            match frame {
                Frame::Seq { seq, frame } => {
                    for frame in reliable.receive(seq, *frame) {
                        self.handle_open_frame(frame, now)?;
                        if self.state == State::Closed {
                            break;
                        }
                    }
                    return Ok(());
                }
                Frame::Ack { next, received } => return reliable.on_ack(next, received, now),
                // §16: under reliable delivery these only travel inside SEQ.
                ref bare if frame::is_sequenced(bare) => return Err(ProtocolError::Unsequenced(bare.frame_type().0)),
                _ => {}
            }
        }
        self.handle_open_frame(frame, now)
    }

    /// A frame on an open connection, taken out of its SEQ if it came in one.
    fn handle_open_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ProtocolError> {
        match frame {
            Frame::Hello(hello) => self.handle_another_hello(hello)?,
            Frame::Seq { .. } | Frame::Ack { .. } => return Err(ProtocolError::NotNegotiated(frame.frame_type().0)),
            Frame::Head(head) => self.handle_head(head, now)?,
            Frame::Data(data) => self.handle_data(data, now)?,
            Frame::Cancel { xid, reason } => {
                self.count_noise(now)?;
                self.stats.cancels_received += 1;
                self.handle_cancel(Key::from_xid(xid), reason, now)
            }
            Frame::Credit { limit } => {
                self.count_noise(now)?;
                self.outbox.raise_credit(limit)
            }
            Frame::Ping { nonce } => {
                self.count_noise(now)?;
                self.push_control(Frame::Pong { nonce })
            }
            Frame::Pong { nonce } => {
                self.count_noise(now)?;
                self.liveness.pong(nonce, now);
            }
            Frame::Extension { .. } => self.count_noise(now)?,
            Frame::GoAway { code, message } => self.close_with(CloseReason::Peer { code, message }, None),
        }
        Ok(())
    }

    /// A HELLO on an open connection (§9 rule 5).
    fn handle_another_hello(&mut self, hello: Hello) -> Result<(), ProtocolError> {
        let peer = self.peer.as_ref().expect("open sessions know their peer");
        if self.config.framing == frame::Framing::Stream {
            // A stream carries one session: a restarted peer comes on a new connection.
            return Err(ProtocolError::DuplicateHello);
        }
        if *peer == hello {
            // §9, §16.1: a copy of the HELLO accepted (the peer repeating it, or the line
            // duplicating it) is harmless, whatever either side offered. Not answered (two open
            // sides answering each other's copies would echo HELLOs forever), except by a side
            // that does not use reliable delivery to a peer that offered it: that peer repeats
            // only until it has our HELLO (§16.1), so ours was lost.
            if hello.reliable.is_some() && self.reliable.is_none() {
                let ours = self.our_hello();
                self.push_control(Frame::Hello(ours));
            }
            return Ok(());
        }
        if hello.nonce == peer.nonce {
            // Same session, other content: the peer broke the rules.
            return Err(ProtocolError::DuplicateHello);
        }
        if !self.exchanged && (Hello { nonce: peer.nonce, ..hello.clone() }) == *peer {
            // §9 rule 7: a restart before any exchange loses nothing: the new HELLO is adopted in
            // place and answered with ours (the new peer has not heard it). This is also what
            // stops two sides from restarting each other forever after a stale HELLO: the side
            // whose successor has exchanged nothing yet adopts instead of starting anew.
            self.peer = Some(hello.clone());
            let ours = self.our_hello();
            self.push_control(Frame::Hello(ours));
            self.events.push_back((Event::Connected(hello), 0));
            return Ok(());
        }
        // §9: another nonce is another session of the peer: it restarted. This session ends at
        // once, with no GOAWAY (the new peer would take it as its own end); `successor` answers.
        self.restart_hello = Some(hello);
        self.close_with(CloseReason::PeerRestarted, None);
        self.control.clear();
        Ok(())
    }

    fn handle_hello(&mut self, hello: Hello, now: Instant) -> Result<(), ProtocolError> {
        let (ours_min, ours_max) = (PROTOCOL_VERSION, PROTOCOL_VERSION);
        if hello.version_min > ours_max || hello.version_max < ours_min {
            return Err(ProtocolError::Version {
                ours_min,
                ours_max,
                theirs_min: hello.version_min,
                theirs_max: hello.version_max,
            });
        }
        if hello.codec != self.config.codec {
            return Err(ProtocolError::Codec { ours: self.config.codec, theirs: hello.codec });
        }
        let ours = self.config.fingerprint;
        if ours != 0 && hello.fingerprint != 0 && ours != hello.fingerprint {
            return Err(ProtocolError::Fingerprint { ours, theirs: hello.fingerprint });
        }
        check_peer_limits(&hello.limits)?;
        self.hello_retry = None;
        if let (Some(ours), Some(theirs), true) = (&self.config.reliable, hello.reliable, self.offers_reliable()) {
            self.reliable = Some(Reliable::new(ours.clone(), theirs));
            self.inbox.set_lossless();
            // §16.1: our HELLO may be lost while the peer's arrived; repeat it until the peer shows
            // it is open.
            self.hello_retry = Some((now + ours.rto_initial, now + self.config.handshake_timeout));
        }
        self.outbox.credit.open(hello.limits.window);
        if self.config.framing == frame::Framing::Lossy && !self.control.iter().any(|f| matches!(f, Frame::Hello(_))) {
            // §9: our HELLO went out before the peer's arrived, maybe before the peer listened
            // (a board waiting for its host, a peer just restarted): answer it once with ours.
            // The peer ignores it if it had it (a copy of the HELLO it accepted).
            let ours = self.our_hello();
            self.control.push_front(Frame::Hello(ours));
        }
        self.state = State::Open;
        self.liveness.opened(now);
        self.peer = Some(hello.clone());
        self.events.push_back((Event::Connected(hello), 0));
        Ok(())
    }

    fn handle_head(&mut self, head: Head, now: Instant) -> Result<(), ProtocolError> {
        self.recv_credit.receive(head.payload.len())?;
        let key = Key::from_xid(head.xid);
        if head.is_open() && !self.open_length() {
            // §5.2: malformed unless both HELLOs offered OPEN; on the lossy framing dropped like
            // a damaged frame.
            if self.config.framing != frame::Framing::Lossy {
                return Err(ProtocolError::OpenLengthNotNegotiated(key.id));
            }
            self.stats.frames_dropped += 1;
            self.release(head.payload.len() as u64);
            return Ok(());
        }
        let exchange = if head.kind.opens_exchange() {
            if !self.accept_exchange_id(head.xid.id)? {
                self.stats.duplicates += 1;
                self.release(head.payload.len() as u64);
                return Ok(());
            }
            self.exchanged = true;
            // §8.1: every request counts until it is answered, every message while partial.
            let counted = head.kind == Kind::Request || !head.is_complete();
            if counted && self.peer_in_flight() >= self.config.limits.max_in_flight as usize {
                self.release(head.payload.len() as u64);
                self.stats.refused += 1;
                self.push_control(Frame::Cancel { xid: key.to_xid(), reason: CancelReason::REFUSED });
                return Ok(());
            }
            Exchange::Theirs(key.id)
        } else {
            match self.awaiting.get(&key.id) {
                Some(message) => Exchange::Ours(*message),
                // §6: a late or unknown answer is dropped, never delivered to another caller.
                None => {
                    self.count_noise(now)?;
                    self.release(head.payload.len() as u64);
                    return Ok(());
                }
            }
        };
        let stream_answer = matches!(exchange, Exchange::Ours(m) if self.stream_answers.contains(&m));
        let arrival = self.inbox.head(key, exchange, head, now, stream_answer)?;
        self.handle_arrival(arrival);
        Ok(())
    }

    /// What the peer has in flight toward our `max_in_flight` (§8.1): its requests not yet
    /// answered, and every message being reassembled. At most `max_in_flight` of each, so
    /// counting the overlap (streamed requests) costs no more than that.
    fn peer_in_flight(&self) -> usize {
        let complete = self.unanswered.iter().filter(|id| !self.inbox.contains(Key { id: **id, ours: false })).count();
        self.inbox.len() + complete
    }

    /// Counts a frame that needs no answer against `Config::max_noise` (§8.5).
    fn count_noise(&mut self, now: Instant) -> Result<(), ProtocolError> {
        self.noise.spend(now).map_err(|count| ProtocolError::Noise { count, window: self.noise.window() })
    }

    /// Checks an opening HEAD's id against the sequence (§6); `false` for a duplicate to ignore.
    fn accept_exchange_id(&mut self, id: u32) -> Result<bool, ProtocolError> {
        let expected = self.next_theirs;
        if id != expected {
            if self.config.framing != frame::Framing::Lossy {
                return Err(ProtocolError::ExchangeOrder { expected, got: id });
            }
            if (id.wrapping_sub(expected) as i32) < 0 {
                return Ok(false);
            }
            // HEADs were lost: tell the peer those exchanges are dead.
            let skipped = id.wrapping_sub(expected).min(self.config.limits.max_in_flight);
            for n in 0..skipped {
                let xid = Key { id: expected.wrapping_add(n), ours: false }.to_xid();
                self.push_control(Frame::Cancel { xid, reason: CancelReason::DAMAGED });
            }
        }
        self.next_theirs = id.wrapping_add(1);
        Ok(true)
    }

    fn handle_data(&mut self, data: Data, now: Instant) -> Result<(), ProtocolError> {
        self.recv_credit.receive(data.payload.len())?;
        let key = Key::from_xid(data.xid);
        if !self.inbox.contains(key) {
            // Unknown, cancelled or finished: dropped by the inbox, counted here (§8.5).
            self.count_noise(now)?;
        }
        let arrival = self.inbox.data(key, data, now)?;
        self.handle_arrival(arrival);
        Ok(())
    }

    fn handle_arrival(&mut self, arrival: Arrival) {
        self.release_inbox_credit();
        match arrival {
            Arrival::Nothing => {}
            Arrival::Complete { message, held } => self.deliver(message, held, true),
            Arrival::Begin { message, first, end } => {
                let exchange = message.exchange;
                self.deliver(message, 0, end);
                if end || !first.is_empty() {
                    self.events.push_back((Event::Chunk { exchange, bytes: first, end }, 0));
                }
            }
            Arrival::Chunk { exchange, bytes, end } => {
                self.events.push_back((Event::Chunk { exchange, bytes, end }, 0));
                if let (Exchange::Ours(handle), true) = (exchange, end) {
                    self.answer_complete(handle);
                }
            }
            Arrival::Oversized { key, head, limit } => match head.kind {
                Kind::Request => {
                    // The requester is answered (an ERROR naming the limit), not cancelled: it
                    // then calls off the rest of its request itself (§6).
                    self.unanswered.insert(key.id);
                    let route = head.route.unwrap_or(Route::Id(0));
                    let event =
                        Event::Oversized { id: key.id, route, total: head.total, limit, priority: head.priority };
                    self.events.push_back((event, 0));
                }
                _ => self.push_control(Frame::Cancel { xid: key.to_xid(), reason: CancelReason::TOO_LARGE }),
            },
            Arrival::Rejected { key, reason, seen } => {
                self.push_control(Frame::Cancel { xid: key.to_xid(), reason });
                if key.ours {
                    if let Some(message) = self.unawait(key.id) {
                        // The CANCEL ends the whole exchange (§5.4): what remains of our request
                        // (an open one still being supplied, §6) is not sent either.
                        self.outbox.cancel(message);
                        self.events.push_back((Event::Cancelled { exchange: Exchange::Ours(message), reason }, 0));
                    }
                } else if seen {
                    // The application is reading this message as a stream: it must learn of its end.
                    self.unanswered.remove(&key.id);
                    self.events.push_back((Event::Cancelled { exchange: Exchange::Theirs(key.id), reason }, 0));
                }
            }
        }
    }

    /// Queues a message (or a streamed message's start) for the application. `complete`: every
    /// byte of it is in (a streamed answer's end completes it later, `answer_complete`).
    fn deliver(&mut self, message: Incoming, held: u64, complete: bool) {
        match message.exchange {
            Exchange::Ours(handle) if complete => self.answer_complete(handle),
            Exchange::Ours(_) => {}
            Exchange::Theirs(id) if message.kind == Kind::Request => {
                self.unanswered.insert(id);
                self.undelivered.insert(id);
            }
            Exchange::Theirs(_) => {}
        }
        self.stats.messages_in += 1;
        self.events.push_back((Event::Message(message), held));
    }

    /// The answer to our request `handle` is complete. If it came before our request's last byte
    /// went, the rest is not sent (§6): a request stays open while its answer streams in
    /// (bidirectional exchanges), and ends with it.
    fn answer_complete(&mut self, handle: MessageId) {
        if let Some(id) = self.unawait_message(handle) {
            if self.outbox.cancel(handle).is_some() {
                let xid = Key { id, ours: true }.to_xid();
                self.push_control(Frame::Cancel { xid, reason: CancelReason::CANCELLED });
            }
        }
    }

    /// Removes the queued events of the peer's request `id` (its `Event::Message`, and the
    /// `Event::Chunk`s of a streamed one), returning their credit.
    fn withdraw(&mut self, id: u32) {
        let mut freed = 0;
        let mut stored = false;
        self.events.retain(|(event, held)| match event {
            Event::Message(m) if m.exchange == Exchange::Theirs(id) => {
                freed += held;
                stored |= matches!(m.payload, Payload::Stored { .. });
                false
            }
            Event::Chunk { exchange: Exchange::Theirs(theirs), bytes, .. } if *theirs == id => {
                freed += bytes.len() as u64;
                false
            }
            _ => true,
        });
        if stored {
            // A stored message withdrawn before the application took it: its storage goes too.
            self.inbox.discard_stored(Exchange::Theirs(id));
        }
        if freed > 0 {
            self.release(freed);
        }
    }

    fn handle_cancel(&mut self, key: Key, reason: CancelReason, now: Instant) {
        let sending = self.outbox.cancel_exchange(key);
        let streamed = self.inbox.is_streamed(key);
        self.inbox.cancel(key);
        self.release_inbox_credit();
        let exchange = if key.ours {
            let awaited = self.unawait(key.id);
            awaited.or(sending).map(Exchange::Ours)
        } else {
            let unanswered = self.unanswered.remove(&key.id);
            if unanswered {
                // §8.5: a request cancelled before its answer is work done for nothing.
                if let Err(count) = self.resets.spend(now) {
                    let window = self.resets.window();
                    return self.fail(ProtocolError::Resets { count, window });
                }
                if self.undelivered.remove(&key.id) {
                    // Its handler never started: withdraw it; the application never hears of it.
                    self.withdraw(key.id);
                    return;
                }
            }
            let known = unanswered | sending.is_some() | streamed;
            known.then_some(Exchange::Theirs(key.id))
        };
        if let Some(exchange) = exchange {
            self.events.push_back((Event::Cancelled { exchange, reason }, 0));
        }
    }

    /// Appends at most one frame to `out`; `false` when there is nothing to send now.
    ///
    /// Under reliable delivery (§16) an ACK goes first, then control frames, then frames due for
    /// retransmission, then new chunks while the window has room.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut) -> bool {
        let start = out.len();
        let framing = self.config.framing;
        if let Some(ack) = self.reliable.as_mut().and_then(Reliable::take_ack) {
            frame::encode_valid(framing, &ack, out);
        } else if let Some(wire) = self.control.is_empty().then(|| self.retransmission(now)).flatten() {
            out.extend_from_slice(&wire);
            self.stats.retransmitted += 1;
        } else {
            let window_open = self.reliable.as_ref().is_none_or(Reliable::can_send);
            let Some(frame) = self.next_frame(window_open) else {
                // Control frames waited for the window; a retransmission may still go.
                let Some(wire) = self.retransmission(now) else { return false };
                out.extend_from_slice(&wire);
                self.stats.retransmitted += 1;
                self.stats.frames_out += 1;
                self.stats.bytes_out += (out.len() - start) as u64;
                return true;
            };
            self.note_sent(&frame, now);
            match &mut self.reliable {
                Some(reliable) if frame::is_sequenced(&frame) => {
                    let seq = reliable.next_seq();
                    frame::encode_valid(framing, &Frame::Seq { seq, frame: Box::new(frame) }, out);
                    reliable.sent(Bytes::copy_from_slice(&out[start..]), now);
                }
                _ => frame::encode_valid(framing, &frame, out),
            }
        }
        self.stats.frames_out += 1;
        self.stats.bytes_out += (out.len() - start) as u64;
        true
    }

    /// Counts a frame going out for the first time.
    fn note_sent(&mut self, frame: &Frame, now: Instant) {
        match frame {
            Frame::Cancel { .. } => self.stats.cancels_sent += 1,
            Frame::Ping { nonce } => {
                self.stats.pings_sent += 1;
                self.liveness.ping_sent(*nonce, now);
            }
            _ => {}
        }
    }

    fn retransmission(&mut self, now: Instant) -> Option<Bytes> {
        self.reliable.as_mut()?.retransmit(now)
    }

    /// The next control frame or chunk. With `window_open` false, only frames that travel outside
    /// SEQ (§16) may go.
    fn next_frame(&mut self, window_open: bool) -> Option<Frame> {
        let sequenced = self.reliable.is_some();
        let at = self.control.iter().position(|f| window_open || !sequenced || !frame::is_sequenced(f));
        if let Some(frame) = at.and_then(|at| self.control.remove(at)) {
            return Some(frame);
        }
        if self.state != State::Open || !window_open {
            return None;
        }
        let peer = self.peer.as_ref().expect("open sessions know their peer").limits;
        let open_length = self.open_length();
        loop {
            match self.outbox.next(&peer, self.config.chunk_size, open_length)? {
                Scheduled::Frame { frame, finished } => {
                    // §8.5: the peer's CREDIT answers our payload.
                    self.noise.earn(1);
                    if let Frame::Head(head) = &frame {
                        self.exchanged |= head.kind.opens_exchange();
                        self.note_opened(head, finished);
                    }
                    if let Some(message) = finished {
                        self.stats.messages_out += 1;
                        self.events.push_back((Event::Sent(message), 0));
                    }
                    return Some(frame);
                }
                Scheduled::Failed { id, key, reason } => {
                    let exchange = match key {
                        Some(Key { id: theirs, ours: false }) => Exchange::Theirs(theirs),
                        _ => Exchange::Ours(id),
                    };
                    self.unawait_message(id);
                    self.events.push_back((Event::Cancelled { exchange, reason }, 0));
                    if let Some(key) = key {
                        return Some(Frame::Cancel { xid: key.to_xid(), reason });
                    }
                }
            }
        }
    }

    /// A request's HEAD went out: from now on its answer is awaited under the exchange id.
    fn note_opened(&mut self, head: &Head, finished: Option<MessageId>) {
        if head.kind != Kind::Request {
            return;
        }
        if let Some(message) = self.outbox.message_of(Key { id: head.xid.id, ours: true }).or(finished) {
            self.awaiting.insert(head.xid.id, message);
            self.awaiting_by_message.insert(message, head.xid.id);
        }
    }

    /// Streams the payloads of incoming requests and one-way messages whose route `policy`
    /// accepts: each is delivered as an [`Event::Message`] with [`Payload::Streamed`] as soon as
    /// its HEAD arrives, then as [`Event::Chunk`]s, without being stored. The application returns
    /// the chunks' credit with [`consumed`](Self::consumed), which is how a slow reader slows
    /// its peer down (§5.5). Replies to our own requests are streamed only when the request asked
    /// for it ([`SendOptions::stream_answer`]).
    pub fn stream_when(&mut self, policy: impl Fn(&Route) -> bool + Send + 'static) {
        self.inbox.set_stream_policy(Box::new(policy));
    }

    /// Refuses incoming requests and one-way messages whose announced total exceeds the limit
    /// `policy` gives for their route, at their HEAD, before a byte of them is stored: a
    /// request is reported as an [`Event::Oversized`] for the application to answer (the
    /// endpoint answers ERROR TOO_LARGE naming the route, the size and the limit), a one-way
    /// message is cancelled with CANCEL TOO_LARGE. Routes with `None` have no limit of their own
    /// (docs/PROTOCOL.md §8.4).
    pub fn limit_when(&mut self, policy: impl Fn(&Route) -> Option<u64> + Send + 'static) {
        self.inbox.set_size_policy(Box::new(policy));
    }

    /// The application is done with `bytes` bytes of streamed chunks: their flow-control credit
    /// goes back to the peer. Every chunk's length must be returned once, whether it was read,
    /// discarded, or belonged to a message cancelled meanwhile.
    /// More than is held is ignored: credit the peer never used cannot be returned.
    pub fn consumed(&mut self, bytes: u64) {
        self.release(bytes.min(self.recv_credit.held()));
    }

    /// The next event without taking it.
    pub fn peek_event(&self) -> Option<&Event> {
        self.events.front().map(|(event, _)| event)
    }

    /// The next event, in order. Taking a message releases its flow-control credit.
    pub fn poll_event(&mut self) -> Option<Event> {
        let (event, held) = self.events.pop_front()?;
        if let Event::Message(Incoming { exchange: Exchange::Theirs(id), .. }) = &event {
            self.undelivered.remove(id);
        }
        if held > 0 {
            self.release(held);
        }
        Some(event)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        [
            self.liveness.deadline(),
            self.reliable.as_ref().and_then(Reliable::deadline),
            self.hello_retry.map(|(at, _)| at),
            self.stall_timeout().and_then(|timeout| self.inbox.stall_deadline(timeout)),
            self.frame_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The stall timeout, on every framing: a lost tail (lossy framing) or a peer that stops
    /// sending (any framing) would otherwise hold a partial message until the connection closes.
    /// Under reliable delivery a chunk may be late by as long as its sender keeps retrying, so
    /// the timeout is at least the give-up time (§16.3).
    fn stall_timeout(&self) -> Option<Duration> {
        let give_up = self.reliable.as_ref().and(self.config.reliable.as_ref()).map(|r| r.give_up);
        self.config.stall_timeout.map(|timeout| give_up.map_or(timeout, |give_up| timeout.max(give_up)))
    }

    /// Why a stalled message is cancelled: on the lossy framing without reliable delivery its tail
    /// was lost (DAMAGED, §8.2); elsewhere the peer stopped sending it (TIMED_OUT).
    fn stall_reason(&self) -> CancelReason {
        match self.config.framing == frame::Framing::Lossy && self.reliable.is_none() {
            true => CancelReason::DAMAGED,
            false => CancelReason::TIMED_OUT,
        }
    }

    /// Whether the peer may be out of credit because of bytes we hold: then its partial messages
    /// wait for us, not the other way round, and their stall clocks restart (§8.2).
    fn credit_blocked(&self) -> bool {
        let window = self.config.limits.window;
        window > 0 && self.recv_credit.held() + u64::from(self.config.limits.max_frame) >= window
    }

    /// When the frame being received must be complete (stream framing only: on the lossy
    /// framing an unfinished run costs at most `max_frame` bytes and ends at the next delimiter).
    fn frame_deadline(&self) -> Option<Instant> {
        let timeout = self.config.frame_timeout.filter(|_| self.config.framing == frame::Framing::Stream)?;
        Some(self.frame_started? + timeout)
    }

    /// Runs the timers due at `now`: keepalive pings, retransmissions, stalled partial messages,
    /// and the silence and handshake deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if let Some(at) = self.frame_deadline().filter(|at| *at <= now) {
            let started = at - self.config.frame_timeout.unwrap_or_default();
            return self.time_out(Deadline::Frame, now.saturating_duration_since(started));
        }
        if let Some(timeout) = self.stall_timeout() {
            if self.credit_blocked() {
                self.inbox.touch_all(now);
            }
            let reason = self.stall_reason();
            for arrival in self.inbox.expire_stalled(now, timeout, reason) {
                self.handle_arrival(arrival);
            }
        }
        if let Some((at, until)) = self.hello_retry {
            if at <= now {
                // §16.1: our HELLO may have been lost; say it again until the peer shows it has it.
                if !self.control.iter().any(|f| matches!(f, Frame::Hello(_))) {
                    let ours = self.our_hello();
                    self.push_control(Frame::Hello(ours));
                }
                let interval = self.config.reliable.as_ref().map_or(Duration::from_millis(500), |r| r.rto_initial);
                self.hello_retry = (now < until).then_some((now + interval, until));
            }
        }
        if let Some(reliable) = &mut self.reliable {
            if let Err(after) = reliable.on_timeout(now) {
                return self.time_out(Deadline::GiveUp, after);
            }
        }
        match self.liveness.on_timeout(now) {
            liveness::Due::Nothing => {}
            liveness::Due::Ping(nonce) => self.push_control(Frame::Ping { nonce }),
            liveness::Due::Dead(deadline, after) => self.time_out(deadline, after),
        }
    }

    /// Closes with GOAWAY TIMEOUT, its text naming the limit that fired like the close reason.
    fn time_out(&mut self, deadline: Deadline, after: Duration) {
        let reason = CloseReason::TimedOut { deadline, after };
        let text = reason.to_string();
        self.close_with(reason, Some((GoAwayCode::TIMEOUT, text)));
    }

    fn release(&mut self, bytes: u64) {
        self.recv_credit.release(bytes);
        if let Some(limit) = self.recv_credit.poll_update() {
            self.push_control(Frame::Credit { limit });
        }
    }

    fn release_inbox_credit(&mut self) {
        let released = self.inbox.take_released();
        let withheld = self.inbox.take_withheld();
        if withheld > 0 {
            self.recv_credit.release(released);
            self.recv_credit.withhold(withheld);
        } else if released > 0 {
            self.release(released);
        }
    }

    fn push_control(&mut self, frame: Frame) {
        if self.state == State::Closed {
            return;
        }
        if self.control.len() >= CONTROL_QUEUE_LIMIT {
            self.fail(ProtocolError::ControlFlood);
            return;
        }
        self.control.push_back(frame);
    }

    fn fail(&mut self, err: ProtocolError) {
        let goaway = (err.goaway_code(), err.to_string());
        self.close_with(CloseReason::Protocol(err), Some(goaway));
    }

    fn close_with(&mut self, reason: CloseReason, goaway: Option<(GoAwayCode, String)>) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        // §10: GOAWAY is the last frame sent; nothing queued before it matters any more, except
        // our HELLO, which lets the peer diagnose a version or fingerprint mismatch itself.
        self.control.retain(|frame| matches!(frame, Frame::Hello(_)));
        if let Some((code, message)) = goaway {
            self.control.push_back(Frame::GoAway { code, message });
        }
        self.outbox.clear();
        self.inbox.clear();
        self.reliable = None;
        self.hello_retry = None;
        self.awaiting.clear();
        self.awaiting_by_message.clear();
        self.unanswered.clear();
        self.undelivered.clear();
        self.stream_answers.clear();
        self.events.push_back((Event::Closed(reason), 0));
    }
}

/// The smallest `max_frame` that leaves room for a HEAD with a short route and one payload byte.
const MIN_PEER_FRAME: u32 = 64;

fn check_peer_limits(limits: &Limits) -> Result<(), ProtocolError> {
    if limits.max_frame < MIN_PEER_FRAME {
        return Err(ProtocolError::PeerLimits("max_frame below 64 bytes"));
    }
    if limits.max_in_flight == 0 {
        return Err(ProtocolError::PeerLimits("max_in_flight of 0"));
    }
    if limits.window > 0 && limits.window < limits.inline_limit.min(limits.max_message) {
        return Err(ProtocolError::PeerLimits(
            "window below min(inline_limit, max_message): in-memory messages could never start",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod handoff_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod open_tests;
#[cfg(test)]
mod stats_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

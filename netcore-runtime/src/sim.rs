//! A deterministic two-peer simulation: two [`Session`]s joined by in-memory links, on a fake clock.
//!
//! For tests of anything built on the session (this crate's, and yours): no sockets, no threads,
//! no real time. Each link can cut the byte stream into pieces of a chosen size and pass it
//! through a filter that damages, drops or duplicates bytes.
//!
//! Each peer has a [`Handoff`]: the sim's stand-in for a driver's storage and body readers. It
//! does in place, on the caller's thread, what a tokio driver does on blocking threads: large
//! incoming messages go to spill files (with the `tokio` feature; in memory without it) and
//! reader bodies are read as the session asks, so the sessions run byte for byte as they would
//! under a driver.
//!
//! ```
//! # use netcore_runtime as netcore;
//! use netcore::session::{Config, Event, SendOptions};
//! use netcore::{sim::Pair, Route};
//!
//! let mut pair = Pair::new(Config::stream(), Config::stream());
//! pair.a.request(Route::Name("/echo".into()), b"hi".to_vec(), SendOptions::default()).unwrap();
//! pair.run();
//! let request = pair.take_b().into_iter().find_map(|e| match e {
//!     Event::Message(m) => Some(m),
//!     _ => None,
//! });
//! assert_eq!(request.unwrap().payload.to_vec().unwrap(), b"hi");
//! ```

#[allow(unused_imports)]
use crate::prelude::*;

use crate::collections::HashMap;
use crate::time::{Duration, Instant};

use bytes::BytesMut;

use crate::session::{Config, Demand, Event, Exchange, Incoming, MessageId, Payload, Session, StoreOp};

/// A filter applied to the bytes of one transmission on a link.
pub type LinkFilter = Box<dyn FnMut(&mut Vec<u8>)>;

/// One direction of the simulated wire.
#[derive(Default)]
pub struct Link {
    /// Largest piece handed to the receiver at once; 0 for everything at once.
    pub piece: usize,
    /// Applied to each transmission before delivery.
    pub filter: Option<LinkFilter>,
    /// Bytes carried so far (after the filter).
    pub carried: u64,
}

/// Two sessions, `a` and `b`, and the links between them.
pub struct Pair {
    /// The first peer.
    pub a: Session,
    /// The second peer.
    pub b: Session,
    /// Link from `a` to `b`.
    pub a_to_b: Link,
    /// Link from `b` to `a`.
    pub b_to_a: Link,
    /// The fake clock.
    pub now: Instant,
    /// `a`'s storage and body readers.
    pub a_handoff: Handoff,
    /// `b`'s storage and body readers.
    pub b_handoff: Handoff,
}

/// One peer's storage of large incoming messages and readers of outgoing bodies, run in place
/// ([`StoreOp`], [`Demand`]).
#[derive(Default)]
pub struct Handoff {
    stored: HashMap<Exchange, Stored>,
    /// Complete payloads whose `Event::Message` is on its way.
    finished: HashMap<Exchange, Payload>,
    #[cfg(feature = "std")]
    readers: HashMap<MessageId, Box<dyn std::io::Read + Send>>,
    /// Open-length bodies (`Body::Open`): what the test fed them, and the read outstanding.
    open: HashMap<MessageId, OpenFeed>,
    /// Messages whose storage began, for tests.
    pub began: u64,
}

/// An open-length body's bytes in the simulation, fed by the test with [`Handoff::feed`] and
/// ended with [`Handoff::end`].
#[derive(Default)]
struct OpenFeed {
    queue: alloc::collections::VecDeque<bytes::Bytes>,
    ended: bool,
    /// The `Demand::Read` waiting: offset and most bytes.
    want: Option<(u64, usize)>,
}

enum Stored {
    #[cfg(not(feature = "tokio"))]
    Memory(Vec<u8>),
    #[cfg(feature = "tokio")]
    File(crate::connection::storage::SpillFile),
}

impl Handoff {
    /// Messages being stored now.
    pub fn storing(&self) -> usize {
        self.stored.len()
    }

    /// Carries out `session`'s storage operations; written bytes' credit goes back at once.
    pub fn store(&mut self, session: &mut Session) {
        while let Some(op) = session.poll_store() {
            match op {
                StoreOp::Begin { exchange, .. } => {
                    self.began += 1;
                    #[cfg(feature = "tokio")]
                    let stored = crate::connection::storage::SpillFile::create(session.config().spill_dir.as_deref())
                        .map(Stored::File);
                    #[cfg(not(feature = "tokio"))]
                    let stored: Result<Stored, ()> = Ok(Stored::Memory(Vec::new()));
                    match stored {
                        Ok(stored) => drop(self.stored.insert(exchange, stored)),
                        Err(_) => drop(session.store_failed(exchange)),
                    }
                }
                StoreOp::Write { exchange, bytes } => {
                    session.consumed(bytes.len() as u64);
                    let written = match self.stored.get_mut(&exchange) {
                        #[cfg(not(feature = "tokio"))]
                        Some(Stored::Memory(buf)) => {
                            buf.extend_from_slice(&bytes);
                            true
                        }
                        #[cfg(feature = "tokio")]
                        Some(Stored::File(file)) => file.write(&bytes).is_ok(),
                        None => true,
                    };
                    if !written {
                        self.stored.remove(&exchange);
                        session.store_failed(exchange);
                    }
                }
                StoreOp::Finish { exchange } => {
                    let payload = match self.stored.remove(&exchange) {
                        #[cfg(not(feature = "tokio"))]
                        Some(Stored::Memory(buf)) => Some(Payload::Memory(buf.into())),
                        #[cfg(feature = "tokio")]
                        Some(Stored::File(file)) => file.finish().ok().map(Payload::File),
                        None => None,
                    };
                    match payload {
                        Some(payload) if session.store_finished(exchange) => {
                            self.finished.insert(exchange, payload);
                        }
                        Some(_) => {}
                        None => drop(session.store_failed(exchange)),
                    }
                }
                StoreOp::Discard { exchange } => {
                    self.stored.remove(&exchange);
                    self.finished.remove(&exchange);
                }
            }
        }
    }

    /// Answers `session`'s requests for body bytes by reading its readers.
    pub fn serve(&mut self, session: &mut Session) {
        while let Some(demand) = session.poll_demand() {
            match demand {
                #[cfg(feature = "std")]
                Demand::Reader { message, reader } => drop(self.readers.insert(message, reader)),
                Demand::Source { message, .. } => drop(self.open.insert(message, OpenFeed::default())),
                Demand::Read { message, offset, len } if self.open.contains_key(&message) => {
                    self.open.get_mut(&message).expect("checked").want = Some((offset, len));
                    self.answer_open(session, message);
                }
                Demand::Read { message, offset, len } => match self.read(message, len) {
                    Some(bytes) => drop(session.supply(message, offset, bytes)),
                    None => drop(session.supply_failed(message, offset)),
                },
                Demand::Release { message } => self.release(message),
            }
        }
    }

    /// Feeds bytes to the open-length body `message` (queued as `Body::open_with(..)`): they are
    /// supplied as the session asks for them.
    pub fn feed(&mut self, session: &mut Session, message: MessageId, bytes: impl Into<bytes::Bytes>) {
        self.serve(session);
        if let Some(feed) = self.open.get_mut(&message) {
            let bytes = bytes.into();
            if !bytes.is_empty() {
                feed.queue.push_back(bytes);
            }
            self.answer_open(session, message);
        }
        self.serve(session);
    }

    /// Ends the open-length body `message` after the bytes fed.
    pub fn end(&mut self, session: &mut Session, message: MessageId) {
        self.serve(session);
        if let Some(feed) = self.open.get_mut(&message) {
            feed.ended = true;
            self.answer_open(session, message);
        }
        self.serve(session);
    }

    /// Answers an open-length body's outstanding read from what was fed, if anything.
    fn answer_open(&mut self, session: &mut Session, message: MessageId) {
        let Some(feed) = self.open.get_mut(&message) else { return };
        let Some((offset, len)) = feed.want else { return };
        if let Some(front) = feed.queue.front_mut() {
            let bytes = front.split_to(len.min(front.len()));
            if front.is_empty() {
                feed.queue.pop_front();
            }
            feed.want = None;
            session.supply(message, offset, bytes);
        } else if feed.ended {
            feed.want = None;
            session.supply_end(message, offset);
        }
    }

    #[cfg(feature = "std")]
    fn read(&mut self, message: MessageId, len: usize) -> Option<bytes::Bytes> {
        let mut buf = vec![0; len];
        self.readers.get_mut(&message)?.read_exact(&mut buf).ok()?;
        Some(buf.into())
    }

    /// Without std there are no readers: a supplied body fails.
    #[cfg(not(feature = "std"))]
    fn read(&mut self, _message: MessageId, _len: usize) -> Option<bytes::Bytes> {
        None
    }

    fn release(&mut self, _message: MessageId) {
        self.open.remove(&_message);
        #[cfg(feature = "std")]
        self.readers.remove(&_message);
    }

    /// An event as a driver would hand it on: a stored message with what was stored (a file
    /// with the `tokio` feature, bytes in memory without).
    pub fn finish(&mut self, event: Event) -> Event {
        match event {
            Event::Message(message @ Incoming { payload: Payload::Stored { .. }, .. }) => {
                match self.finished.remove(&message.exchange) {
                    Some(payload) => Event::Message(Incoming { payload, ..message }),
                    None => Event::Message(message),
                }
            }
            event => event,
        }
    }
}

impl Pair {
    /// Two new sessions; nothing is exchanged until [`step`](Self::step) or [`run`](Self::run).
    pub fn new(a: Config, b: Config) -> Self {
        // Without std the clock starts at 0 µs; either way only differences matter.
        #[cfg(feature = "std")]
        let now = Instant::now();
        #[cfg(not(feature = "std"))]
        let now = Instant::from_micros(0);
        Self::with_sessions(Session::new(a, now), Session::new(b, now), now)
    }

    /// Two new sessions with their handshake done and its events taken; panics if either side
    /// did not open (a test's premise, as with [`new`](Self::new)'s configurations).
    pub fn connected(a: Config, b: Config) -> Self {
        let mut pair = Self::new(a, b);
        pair.run();
        assert!(pair.a.is_open() && pair.b.is_open(), "the handshake did not open both sessions");
        pair.take_a();
        pair.take_b();
        pair
    }

    /// A pair of sessions made elsewhere, on a clock at `now`.
    pub fn with_sessions(a: Session, b: Session, now: Instant) -> Self {
        Self {
            a,
            b,
            a_to_b: Link::default(),
            b_to_a: Link::default(),
            now,
            a_handoff: Handoff::default(),
            b_handoff: Handoff::default(),
        }
    }

    /// Moves at most `budget` bytes each way (whole frames; at least one frame if any is ready).
    /// Returns whether anything moved. Events wait in the sessions until taken, as in a real
    /// application: a message's flow-control credit returns only when it is taken.
    pub fn step_bytes(&mut self, budget: usize) -> bool {
        let (a, b) = ((&mut self.a, &mut self.a_handoff), (&mut self.b, &mut self.b_handoff));
        let moved_ab = transfer(a, b, &mut self.a_to_b, self.now, budget);
        let (a, b) = ((&mut self.a, &mut self.a_handoff), (&mut self.b, &mut self.b_handoff));
        let moved_ba = transfer(b, a, &mut self.b_to_a, self.now, budget);
        moved_ab || moved_ba
    }

    /// Moves everything ready each way once.
    pub fn step(&mut self) -> bool {
        self.step_bytes(usize::MAX)
    }

    /// Steps until neither side has anything to send. Panics after a million steps (a livelock).
    pub fn run(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("simulation did not settle");
    }

    /// Advances the clock and fires both sessions' due timers.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        for (session, handoff) in [(&mut self.a, &mut self.a_handoff), (&mut self.b, &mut self.b_handoff)] {
            if session.poll_timeout().is_some_and(|t| t <= self.now) {
                session.handle_timeout(self.now);
                handoff.store(session);
            }
        }
    }

    /// Takes the events `a` produced so far (stored messages with what was stored).
    pub fn take_a(&mut self) -> Vec<Event> {
        take(&mut self.a, &mut self.a_handoff)
    }

    /// Takes the events `b` produced so far (stored messages with what was stored).
    pub fn take_b(&mut self) -> Vec<Event> {
        take(&mut self.b, &mut self.b_handoff)
    }
}

fn take(session: &mut Session, handoff: &mut Handoff) -> Vec<Event> {
    handoff.store(session);
    let mut events = Vec::new();
    while let Some(event) = session.poll_event() {
        events.push(handoff.finish(event));
    }
    events
}

fn transfer(
    (from, from_handoff): (&mut Session, &mut Handoff),
    (to, to_handoff): (&mut Session, &mut Handoff),
    link: &mut Link,
    now: Instant,
    budget: usize,
) -> bool {
    let mut out = BytesMut::new();
    from_handoff.store(from);
    loop {
        from_handoff.serve(from);
        if out.len() >= budget || !from.poll_transmit(now, &mut out) {
            break;
        }
    }
    if out.is_empty() {
        return false;
    }
    let mut bytes = out.to_vec();
    if let Some(filter) = &mut link.filter {
        filter(&mut bytes);
    }
    link.carried += bytes.len() as u64;
    let piece = if link.piece == 0 { bytes.len().max(1) } else { link.piece };
    for chunk in bytes.chunks(piece) {
        to.handle_input(now, chunk);
    }
    to_handoff.store(to);
    true
}

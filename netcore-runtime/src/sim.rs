//! A deterministic two-peer simulation: two [`Session`]s joined by in-memory links, on a fake clock.
//!
//! For tests of anything built on the session (this crate's, and yours): no sockets, no threads,
//! no real time. Each link can cut the byte stream into pieces of a chosen size and pass it
//! through a filter that damages, drops or duplicates bytes.
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

use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::session::{Config, Event, Session};

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
}

impl Pair {
    /// Two new sessions; nothing is exchanged until [`step`](Self::step) or [`run`](Self::run).
    pub fn new(a: Config, b: Config) -> Self {
        let now = Instant::now();
        Self { a: Session::new(a, now), b: Session::new(b, now), a_to_b: Link::default(), b_to_a: Link::default(), now }
    }

    /// Moves at most `budget` bytes each way (whole frames; at least one frame if any is ready).
    /// Returns whether anything moved. Events wait in the sessions until taken, as in a real
    /// application: a message's flow-control credit returns only when it is taken.
    pub fn step_bytes(&mut self, budget: usize) -> bool {
        let moved_ab = transfer(&mut self.a, &mut self.b, &mut self.a_to_b, self.now, budget);
        let moved_ba = transfer(&mut self.b, &mut self.a, &mut self.b_to_a, self.now, budget);
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
        for session in [&mut self.a, &mut self.b] {
            if session.poll_timeout().is_some_and(|t| t <= self.now) {
                session.handle_timeout(self.now);
            }
        }
    }

    /// Takes the events `a` produced so far.
    pub fn take_a(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.a.poll_event()).collect()
    }

    /// Takes the events `b` produced so far.
    pub fn take_b(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.b.poll_event()).collect()
    }
}

fn transfer(from: &mut Session, to: &mut Session, link: &mut Link, now: Instant, budget: usize) -> bool {
    let mut out = BytesMut::new();
    while out.len() < budget && from.poll_transmit(now, &mut out) {}
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
    true
}

//! netcore's runtime.
//!
//! This crate is the protocol core of netcore: a sans-IO implementation of the wire protocol in
//! `docs/PROTOCOL.md`. It takes bytes and an explicit `now`, and gives bytes to write, received
//! messages, events and the next deadline. It never reads a clock, opens a socket or spawns a task,
//! so every behaviour is deterministic and testable without I/O (the tokio drivers sit on top).
//!
//! ```text
//!   Session::send ─▶ scheduler ─▶ frame encoder ─▶ poll_transmit ─▶ bytes to the link
//!                   (priority,                                          │
//!                    round robin)                                       ▼
//!   poll_event ◀── reassembly ◀── frame decoder ◀── handle_input ◀── bytes from the link
//!                 (memory/file)
//! ```
//!
//! - [`frame`]: frame bodies, CRC32 and the two framings (length-prefixed and COBS).
//! - [`session`]: handshake, exchanges, chunk scheduling, reassembly, cancellation, flow control
//!   and keepalive.
//!
//! What it is not: a transport. Reading and writing the bytes, and waking at the deadline, is the
//! caller's job.
#![deny(missing_docs)]

#[cfg(feature = "tokio")]
pub mod codec;
#[cfg(feature = "tokio")]
pub mod compat;
#[cfg(feature = "tokio")]
pub mod connection;
#[cfg(feature = "tokio")]
pub mod endpoint;
pub mod faults;
pub mod frame;
pub mod layout;
pub mod session;
pub mod sim;
#[cfg(feature = "tokio")]
pub mod transport;
#[cfg(feature = "tokio")]
pub mod typed;
mod varint;

#[doc(hidden)]
pub mod fuzzing;

pub use frame::{route_id, CancelReason, Framing, GoAwayCode, Kind, Limits, Priority, Route};
pub use session::{Body, Config, Event, Payload, Session, SpillBudget};

#[cfg(feature = "tokio")]
pub use connection::{CallOptions, Connection, ConnectionId, LinkState};
#[cfg(feature = "tokio")]
pub use endpoint::{
    Blueprint, CallError, Endpoint, EndpointEvent, ErrorCode, EventKind, HandlerError, Reply, Request, Response,
    Resumable, ResumeToken,
};
#[cfg(feature = "tokio")]
pub use typed::{Cancellation, Context};

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
//! What it is not: a transport, or storage. Reading and writing the bytes, waking at the
//! deadline, storing large incoming messages and reading outgoing bodies from their sources is
//! the caller's job ([`session::StoreOp`], [`session::Demand`]; the tokio driver does them on
//! blocking threads).
//!
//! Without the default `std` feature the core builds as `#![no_std]` with `alloc`, for a board:
//! [`time::Instant`] is then a count of microseconds the caller reads from its own timer. The
//! `codec` feature adds the payload codec seam (`codec`, postcard) to that build, so a board
//! encodes and decodes typed payloads as the host does.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without `std` the core (frame, session, varint, sim, layout, and codec with the `codec`
// feature) builds with `core` and `alloc` only, for a board; any use of std there is then a
// compile error (CI checks it).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

/// What std's prelude has and core's lacks, for the modules that also build without std.
#[allow(unused_imports)]
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::boxed::Box;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
    pub(crate) use alloc::{format, vec};
}

mod collections;

#[cfg(feature = "codec")]
#[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
pub mod codec;
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub mod compat;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod connection;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod endpoint;
#[cfg(all(feature = "std", feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod faults;
pub mod frame;
/// Type layouts, which fingerprints and method hashes hash (docs/PROTOCOL.md §9, §15; docs/TYPED.md):
/// the `netcore-layout` crate, which the code generators share without building this one.
pub mod layout {
    pub use netcore_layout::*;
}
pub mod session;
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod sim;
pub mod time;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod transport;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod typed;
mod varint;

// The layers, each using only those below it (the `layering` tests keep `connection` from
// naming `endpoint` again, and the sans-IO core from naming either):
//
//   frame, session (sans-IO)  <-  connection  <-  endpoint  <-  typed
//
// `connection` drives one session on a transport and owns the call-level types (Request,
// Response, Reply, the errors, headers, BodyStream); it hands incoming requests and its events
// to a `connection::Dispatch`, which the endpoint implements. `time` and `varint` serve every
// layer, `codec` and `cache` the layers above the core.
#[cfg(feature = "cache")]
mod cache;
#[cfg(all(test, feature = "std"))]
mod layering;

/// The fuzz targets' entry points (with `--cfg fuzzing`, which cargo fuzz sets, or the `testing`
/// feature for the regression replay in tests/fuzz_regressions.rs).
#[cfg(any(fuzzing, feature = "testing"))]
#[doc(hidden)]
#[cfg(feature = "std")]
pub mod fuzzing;

pub use frame::{route_id, CancelReason, Framing, GoAwayCode, Kind, Limits, Priority, Route};
pub use session::{Body, Event, Payload, Session, SpillBudget};

/// The old second path of [`session::Config`], the one documented path of a connection's
/// configuration.
#[doc(hidden)]
#[deprecated(since = "0.1.0", note = "use `session::Config` (`netcore::session::Config`), its one documented path")]
pub type Config = session::Config;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use connection::{
    CallOptions, Connection, ConnectionId, ConnectionStats, EndpointStats, LinkState, OpenBody, OpenBodySender,
    StreamedReply,
};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use endpoint::{
    Blueprint, CallError, Endpoint, EndpointEvent, ErrorCode, EventKind, HandlerError, Reply, Request, Response,
    Resumable, ResumeToken,
};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use typed::{ByteStream, Cancellation, Context, Stream};

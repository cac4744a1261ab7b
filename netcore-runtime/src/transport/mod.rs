//! Byte transports for the connection driver: anything `AsyncRead + AsyncWrite` (TCP, Unix
//! sockets, `tokio::io::duplex`), a pair of blocking functions, and serial ports.

mod blocking;
mod paced;
#[cfg(feature = "serial")]
#[cfg_attr(docsrs, doc(cfg(feature = "serial")))]
pub mod serial;

pub use blocking::BlockingIo;
pub use paced::Paced;

/// An in-memory connected pair of byte streams, for tests and demos.
pub fn memory_pair(buffer: usize) -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
    tokio::io::duplex(buffer)
}

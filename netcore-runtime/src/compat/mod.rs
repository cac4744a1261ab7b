//! Speaking to peers that are not netcore: wires other than docs/PROTOCOL.md's.
//!
//! - [`py`]: the wire of the Python framework Netcore 0.1.3 (PyPI `netcore`), docs/COMPAT.md.

pub mod py;

//! netcore: typed calls between two devices over one connection.
#![deny(missing_docs)]
pub use netcore_runtime::*;

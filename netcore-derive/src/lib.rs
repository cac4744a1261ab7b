//! The `#[netcore::service]` attribute macro. It lands with the typed layer (see the README).
#![deny(missing_docs)]

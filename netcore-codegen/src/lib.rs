//! netcore's service model and emitter. It lands with the typed layer (see the README).
#![deny(missing_docs)]

//! The workspace's example schemas as Rust: what `netcore_codegen` generates from `users.ncs` and
//! `telemetry.ncs` (both import `common.ncs`), for the examples and tests of the `netcore` package.
//!
//! An application does the same in its own `build.rs` and includes the output with
//! [`netcore::include_schema!`].
#![allow(missing_docs)] // generated items carry the schema's doc comments; not every field has one

/// `users.ncs`: the Python paper's users blueprint, typed, under `/user`.
pub mod users {
    netcore::include_schema!("users");
}

/// `telemetry.ncs`: the demo's device service.
pub mod telemetry {
    netcore::include_schema!("telemetry");
}

/// `account.ncs`: a typed service with a request context and a `stream<bytes>` upload.
pub mod account {
    netcore::include_schema!("account");
}

/// `streams.ncs`: results streamed to the client (`-> stream<T>`, `-> stream<bytes>`), and streams
/// both ways.
pub mod streams {
    netcore::include_schema!("streams");
}

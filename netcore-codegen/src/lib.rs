//! netcore's typed layer: one model, one emitter, two front ends.
//!
//! ```text
//! schemas/*.ncs ─ schema::parse_file ─┐
//!                                     ├─▶ model::Schema ─▶ validate ─▶ emit ─▶ Rust tokens
//! #[netcore::service] trait ─ (netcore-derive lowers it) ─┘
//! ```
//!
//! Build scripts use [`compile`] (or [`Builder`]) to turn schema files into Rust in `OUT_DIR`,
//! included with `netcore::include_schema!`. The `#[netcore::service]` macro lowers a Rust trait
//! into the same [`model`] and calls the same [`emit`] functions, so a service declared either way
//! generates the same client, server trait and fingerprint.
#![deny(missing_docs)]

mod build;
pub mod compat;
pub mod emit;
pub mod fmt;
pub mod model;
pub mod schema;
pub mod validate;

pub use build::{compile, generate, load, render, Builder, Error};
pub use compat::{compat, Change, Impact};
pub use schema::SchemaError;

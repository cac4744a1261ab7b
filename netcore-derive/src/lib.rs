//! The `#[netcore::service]` attribute macro.
//!
//! A thin front end: it parses the trait with syn, lowers it into netcore-codegen's model, checks
//! it with the same validation as schema files, and emits through the same emitter. Every problem
//! is reported as a spanned compile error that says what to write instead; the macro never panics.
//!
//! ```text
//! #[netcore::service(prefix = "/user")] trait ─ lower ─▶ model::Service ─ validate ─ emit ─▶ tokens
//! ```
#![deny(missing_docs)]

mod layout;
mod lower;

use proc_macro::TokenStream;

/// Declares a typed service on a trait of `async fn(&self, …) -> T` methods.
///
/// Generates, in place of the trait: the server trait of the same name (each method returning
/// `Result<T, netcore::HandlerError>`), `NameClient` (each method returning
/// `Result<T, netcore::CallError>`) and `NameServer::blueprint(impl)` to register an
/// implementation. Options: `#[netcore::service(prefix = "/user")]` on the trait (default
/// `"/TraitName"`), and `#[netcore(priority = 0..=7, timeout_ms = N)]` or `#[netcore(event)]`
/// (one-way) on a method. A schema file declaring the same service generates the same items; the
/// guide is docs/TYPED.md (`netcore::docs::typed`).
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    lower::expand(attr.into(), item.into()).into()
}

/// Derives `netcore::layout::Schema`: the layout (fields in order with their types, variants in
/// order with their payloads) that service fingerprints hash. Put it next to serde's derives on
/// every struct and enum a service method reaches, so that the service fingerprint covers its
/// fields and variants; the schema compiler adds it to its types.
#[proc_macro_derive(Schema)]
pub fn derive_schema(item: TokenStream) -> TokenStream {
    layout::expand(item.into()).into()
}

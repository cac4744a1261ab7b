//! netcore's wire identities, shared by the runtime and the code generators without either
//! depending on the other: route ids ([`route_id`], docs/PROTOCOL.md §5.2) and type layouts.
//! `netcore-runtime` re-exports this crate as `netcore_runtime::layout` (and `route_id` at its
//! root); `netcore-codegen`, and through it the `#[netcore::service]` macro, use it at compile
//! time, so a proc macro does not build the runtime.
//!
//! # Type layouts
//!
//! Type layouts, which fingerprints hash (docs/PROTOCOL.md §9, docs/TYPED.md): a canonical text
//! for every type a method reaches, fields in order with their types, variants in order with
//! their payloads, recursively. Generated code describes its types through [`Schema`]
//! (`#[derive(netcore::Schema)]`, which the schema compiler also emits); the schema compiler's
//! model describes the same types through the same [`Layout`] calls, so both agree byte for byte.
//!
//! ```text
//! Name{a:u32,b:list<string>}         a struct        Name(u32,string)   a tuple struct
//! Name[A|B(u64)|C{x:option<@Name>}]  an enum         @Name              a type described before
//! call get(u32)->option<User{…}>     a method        event changed(u32)->()
//! ```
//!
//! A named type is spelled out the first time a method's layout reaches it and written `@Name`
//! after, so recursive types end. Names are the types' own (no module path), as in schema files.

#![deny(missing_docs)]
// Without `std` (on by default) this builds with `core` and `alloc` only, as the runtime's sans-IO
// core does for a board.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

#[allow(unused_imports)]
use alloc::{borrow::ToOwned, boxed::Box, format, string::String, string::ToString, vec, vec::Vec};

use alloc::collections::{BTreeMap, VecDeque};

/// The compact id of a route name: 32-bit FNV-1a of its UTF-8 bytes (docs/PROTOCOL.md §5.2).
pub const fn route_id(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}

/// A type with a netcore layout: what its values look like on the wire. Derive it with
/// `#[derive(netcore::Schema)]` next to serde's derives.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no netcore layout, so a service fingerprint cannot cover it",
    label = "used in a service method here",
    note = "add `#[derive(netcore::Schema)]` to the declaration of `{Self}` (next to its serde derives)"
)]
pub trait Schema {
    /// Appends this type's layout.
    fn describe(layout: &mut Layout);

    /// Whether this is `u8`, so that `Vec<u8>` is `bytes` as in schema files.
    #[doc(hidden)]
    const IS_U8: bool = false;
}

/// A layout being written: the canonical text and the named types it already holds.
#[derive(Debug, Default)]
pub struct Layout {
    text: String,
    seen: Vec<String>,
    /// For each open struct, tuple or enum: whether an item was written, its separator, its end.
    open: Vec<(bool, char, char)>,
}

impl Layout {
    /// An empty layout.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text.
    pub fn into_text(self) -> String {
        self.text
    }

    /// A type without parts: `u32`, `string`, `bytes`, `()`, …
    pub fn scalar(&mut self, name: &str) {
        self.text.push_str(name);
    }

    /// A generic type such as `option<T>` or `map<K,V>`: `name<`, the arguments, `>`.
    pub fn generic(&mut self, name: &str, arguments: &[&dyn Fn(&mut Self)]) {
        self.text.push_str(name);
        self.text.push('<');
        for (i, argument) in arguments.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            argument(self);
        }
        self.text.push('>');
    }

    /// A named type: `name` and its body the first time, `@name` after.
    pub fn named(&mut self, name: &str, body: impl FnOnce(&mut Self)) {
        if self.seen.iter().any(|seen| seen == name) {
            self.text.push('@');
            self.text.push_str(name);
            return;
        }
        self.seen.push(name.to_owned());
        self.text.push_str(name);
        body(self);
    }

    fn begin(&mut self, open: char, separator: char, close: char) {
        self.text.push(open);
        self.open.push((false, separator, close));
    }

    fn item(&mut self) {
        if let Some((written, separator, _)) = self.open.last_mut() {
            if core::mem::replace(written, true) {
                self.text.push(*separator);
            }
        }
    }

    /// Opens named fields: `{`.
    pub fn begin_struct(&mut self) {
        self.begin('{', ',', '}');
    }

    /// Opens unnamed values: `(`.
    pub fn begin_tuple(&mut self) {
        self.begin('(', ',', ')');
    }

    /// Opens variants: `[`.
    pub fn begin_enum(&mut self) {
        self.begin('[', '|', ']');
    }

    /// A named field; its type's layout follows.
    pub fn field(&mut self, name: &str) {
        self.item();
        self.text.push_str(name);
        self.text.push(':');
    }

    /// An unnamed value; its type's layout follows.
    pub fn element(&mut self) {
        self.item();
    }

    /// A variant; its payload (nothing, a tuple or a struct) follows.
    pub fn variant(&mut self, name: &str) {
        self.item();
        self.text.push_str(name);
    }

    /// Closes what the last `begin_*` opened.
    pub fn end(&mut self) {
        if let Some((_, _, close)) = self.open.pop() {
            self.text.push(close);
        }
    }

    /// Starts a method's layout: `call name(` or `event name(`; each argument is an
    /// [`element`](Self::element), then [`returns`](Self::returns) and the result's layout.
    /// Named types are spelled out again in each method, so each method's layout stands alone.
    pub fn method(&mut self, event: bool, name: &str) {
        self.seen.clear();
        self.text.push_str(if event { "event " } else { "call " });
        self.text.push_str(name);
        self.begin_tuple();
    }

    /// Ends a method's arguments: `)->`; the result's layout follows.
    pub fn returns(&mut self) {
        self.end();
        self.text.push_str("->");
    }
}

/// The canonical text of a service, from its methods' layouts (in any order): what
/// [`service_fingerprint`] hashes.
pub fn service_canonical(name: &str, prefix: &str, mut methods: Vec<String>) -> String {
    methods.sort();
    format!("service {name} {prefix} {{{}}}", methods.join(";"))
}

/// A service's fingerprint (docs/PROTOCOL.md §9): FNV-1a 64 of [`service_canonical`], each
/// method's layout written by one of `methods` (what generated code passes).
pub fn service_fingerprint(name: &str, prefix: &str, methods: &[fn(&mut Layout)]) -> u64 {
    let methods = methods.iter().map(|describe| method_layout(*describe)).collect();
    fnv1a64(service_canonical(name, prefix, methods).as_bytes())
}

/// The layout of one method, written by `describe`.
pub fn method_layout(describe: fn(&mut Layout)) -> String {
    let mut layout = Layout::new();
    describe(&mut layout);
    layout.into_text()
}

/// A method's layout hash (docs/PROTOCOL.md §15): FNV-1a 64 of its layout, written by `describe`.
/// What a METHODS table (§5.1) announces for the method's route.
pub fn method_hash(describe: fn(&mut Layout)) -> u64 {
    fnv1a64(method_layout(describe).as_bytes())
}

/// Fails to compile, at the type, for a type without a layout (generated code calls it).
#[doc(hidden)]
pub fn assert_schema<T: Schema + ?Sized>() {}

/// 64-bit FNV-1a.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

macro_rules! scalars {
    ($($ty:ty => $name:literal),* $(,)?) => {$(
        impl Schema for $ty {
            fn describe(layout: &mut Layout) {
                layout.scalar($name);
            }
        }
    )*};
}

scalars! {
    bool => "bool", u16 => "u16", u32 => "u32", u64 => "u64", u128 => "u128", usize => "u64",
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", i128 => "i128", isize => "i64",
    f32 => "f32", f64 => "f64", char => "char", String => "string", () => "()", bytes::Bytes => "bytes",
}

impl Schema for u8 {
    fn describe(layout: &mut Layout) {
        layout.scalar("u8");
    }
    const IS_U8: bool = true;
}

impl<T: Schema + ?Sized> Schema for Box<T> {
    fn describe(layout: &mut Layout) {
        T::describe(layout);
    }
}

impl<T: Schema> Schema for Option<T> {
    fn describe(layout: &mut Layout) {
        layout.generic("option", &[&T::describe]);
    }
}

impl<T: Schema> Schema for Vec<T> {
    fn describe(layout: &mut Layout) {
        if T::IS_U8 {
            layout.scalar("bytes");
        } else {
            layout.generic("list", &[&T::describe]);
        }
    }
}

impl<T: Schema> Schema for VecDeque<T> {
    fn describe(layout: &mut Layout) {
        Vec::<T>::describe(layout);
    }
}

impl<K: Schema, V: Schema> Schema for BTreeMap<K, V> {
    fn describe(layout: &mut Layout) {
        layout.generic("map", &[&K::describe, &V::describe]);
    }
}

#[cfg(feature = "std")]
impl<K: Schema, V: Schema, S> Schema for std::collections::HashMap<K, V, S> {
    fn describe(layout: &mut Layout) {
        BTreeMap::<K, V>::describe(layout);
    }
}

impl<T: Schema, const N: usize> Schema for [T; N] {
    fn describe(layout: &mut Layout) {
        layout.scalar(&format!("[{N}]"));
        T::describe(layout);
    }
}

macro_rules! tuples {
    ($(($($t:ident),+))*) => {$(
        impl<$($t: Schema),+> Schema for ($($t,)+) {
            fn describe(layout: &mut Layout) {
                layout.begin_tuple();
                $(layout.element(); $t::describe(layout);)+
                layout.end();
            }
        }
    )*};
}

tuples! { (A) (A, B) (A, B, C) (A, B, C, D) (A, B, C, D, E) (A, B, C, D, E, F) }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_ids_match_the_spec_vectors() {
        // docs/PROTOCOL.md §5.2, "Routes".
        for (name, id) in
            [("", 0x811c_9dc5), ("a", 0xe40c_292c), ("/sensor/read", 0xe124_cf85), ("/log/upload", 0x29ff_8948)]
        {
            assert_eq!(route_id(name), id, "{name:?}");
        }
        const AT_COMPILE_TIME: u32 = route_id("/sensor/read");
        assert_eq!(AT_COMPILE_TIME, 0xe124_cf85);
    }

    struct Tree;
    impl Schema for Tree {
        fn describe(layout: &mut Layout) {
            layout.named("Tree", |layout| {
                layout.begin_enum();
                layout.variant("Leaf");
                layout.variant("Node");
                layout.begin_tuple();
                layout.element();
                Vec::<Tree>::describe(layout);
                layout.end();
                layout.end();
            });
        }
    }

    fn text<T: Schema>() -> String {
        let mut layout = Layout::new();
        T::describe(&mut layout);
        layout.into_text()
    }

    #[test]
    fn canonical_texts() {
        assert_eq!(text::<Vec<u8>>(), "bytes");
        assert_eq!(text::<Vec<u16>>(), "list<u16>");
        assert_eq!(text::<std::collections::HashMap<String, Option<u32>>>(), "map<string,option<u32>>");
        assert_eq!(text::<(u8, String)>(), "(u8,string)");
        // Recursion ends at the back-reference.
        assert_eq!(text::<Tree>(), "Tree[Leaf|Node(list<@Tree>)]");
        let method = method_layout(|l| {
            l.method(false, "get");
            l.element();
            u32::describe(l);
            l.element();
            Tree::describe(l);
            l.returns();
            Option::<Tree>::describe(l);
        });
        assert_eq!(method, "call get(u32,Tree[Leaf|Node(list<@Tree>)])->option<@Tree>");
    }
}

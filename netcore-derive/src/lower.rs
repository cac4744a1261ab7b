//! Lowers a Rust trait into the shared model (STYLE §4), gathering every error.

use netcore_codegen::model::{self, Arg, Method, MethodKind, MethodOptions, Origin, Service, Type, TypeRef};
use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::spanned::Spanned;
use syn::{Error, FnArg, GenericArgument, ItemTrait, LitInt, LitStr, Pat, PathArguments, ReturnType, TraitItem};

/// Expands the attribute; on errors, emits them and the user's trait unchanged, so one mistake
/// does not cascade into errors about missing items.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item_trait: ItemTrait = match syn::parse2(item.clone()) {
        Ok(item_trait) => item_trait,
        Err(_) => {
            let err = Error::new_spanned(&item, "#[netcore::service] goes on a trait of `async fn(&self, …)` methods");
            return err.into_compile_error();
        }
    };
    match lower(attr, &item_trait) {
        Ok(service) => netcore_codegen::emit::emit_service(&service),
        Err(err) => {
            let err = err.into_compile_error();
            let item_trait = without_netcore_attributes(item_trait);
            quote! { #err #item_trait }
        }
    }
}

/// The user's trait minus our method attributes, which mean nothing to rustc on their own.
fn without_netcore_attributes(mut item: ItemTrait) -> ItemTrait {
    for trait_item in &mut item.items {
        if let TraitItem::Fn(f) = trait_item {
            f.attrs.retain(|attr| !attr.path().is_ident("netcore"));
        }
    }
    item
}

struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, err: Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }
}

fn lower(attr: TokenStream, item: &ItemTrait) -> Result<Service, Error> {
    let mut errors = Errors(None);
    let name = item.ident.to_string();
    let mut prefix = format!("/{name}");
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("prefix") {
            prefix = meta.value()?.parse::<LitStr>()?.value();
            Ok(())
        } else {
            Err(meta.error("unknown option; the only one is `prefix = \"/path\"`"))
        }
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, attr) {
        errors.push(err);
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.push(Error::new_spanned(&item.generics, "generic services are not supported; use concrete types"));
    }
    if let Some(unsafety) = &item.unsafety {
        errors.push(Error::new_spanned(unsafety, "a service trait cannot be `unsafe`"));
    }
    if let Some(auto) = &item.modifiers.auto_token {
        errors.push(Error::new_spanned(auto, "a service trait cannot be `auto`"));
    }
    if !item.supertraits.is_empty() {
        errors.push(Error::new_spanned(
            &item.supertraits,
            "service traits take no supertraits; the generated trait is `Send + Sync + 'static`",
        ));
    }
    let mut methods = Vec::new();
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(f) => match lower_method(f) {
                Ok(method) => methods.push(method),
                Err(err) => errors.push(err),
            },
            other => errors.push(Error::new_spanned(other, "a service trait contains only `async fn` methods")),
        }
    }
    let service = Service {
        name,
        prefix,
        docs: docs(&item.attrs),
        methods,
        visibility: Some(item.vis.to_token_stream()),
        origin: Origin::Rust(item.ident.span()),
    };
    for diagnostic in netcore_codegen::validate::validate(
        &model::Schema { types: Vec::new(), services: vec![service.clone()] },
        false,
    ) {
        let span = match diagnostic.origin {
            Origin::Rust(span) => span,
            Origin::Schema { .. } => item.ident.span(),
        };
        errors.push(Error::new(span, diagnostic.message));
    }
    match errors.0 {
        Some(err) => Err(err),
        None => Ok(service),
    }
}

fn lower_method(f: &syn::TraitItemFn) -> Result<Method, Error> {
    let mut errors = Errors(None);
    let sig = &f.sig;
    let mut options = MethodOptions::default();
    let mut kind = MethodKind::Call;
    for attr in &f.attrs {
        if attr.path().is_ident("doc") {
            continue;
        }
        if !attr.path().is_ident("netcore") {
            errors.push(Error::new_spanned(attr, "only doc comments and #[netcore(...)] go on service methods"));
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("event") {
                kind = MethodKind::Event;
            } else if meta.path.is_ident("priority") {
                let lit: LitInt = meta.value()?.parse()?;
                match lit.base10_parse::<u8>() {
                    Ok(p) if p <= 7 => options.priority = Some(p),
                    _ => return Err(Error::new_spanned(lit, "priority must be 0 to 7")),
                }
            } else if meta.path.is_ident("timeout_ms") {
                options.timeout_ms = Some(meta.value()?.parse::<LitInt>()?.base10_parse()?);
            } else {
                return Err(meta.error("unknown option; expected `priority = 0..=7`, `timeout_ms = N` or `event`"));
            }
            Ok(())
        });
        if let Err(err) = parsed {
            errors.push(err);
        }
    }
    if sig.asyncness.is_none() {
        errors.push(Error::new_spanned(
            sig.fn_token,
            "service methods must be `async fn`; write `async fn name(&self, …)`",
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(Error::new_spanned(constness, "service methods cannot be `const`"));
    }
    if let syn::Safety::Unsafe(unsafety) = &sig.safety {
        errors.push(Error::new_spanned(unsafety, "service methods cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        errors.push(Error::new_spanned(abi, "service methods cannot have an ABI"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(Error::new_spanned(&sig.generics, "generic methods are not supported; use concrete types"));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(Error::new_spanned(variadic, "variadic methods are not supported"));
    }
    if let Some(body) = &f.default {
        errors.push(Error::new_spanned(body, "service methods have no body here; implement them on your type"));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if matches!(r.kind, syn::ReceiverKind::Reference(_, _, None)) && r.mutability.is_none() => {}
        Some(FnArg::Receiver(r)) => errors.push(Error::new_spanned(
            r,
            "take `&self`: one service value answers many requests at once, so it is shared, not moved or borrowed mutably",
        )),
        _ => errors.push(Error::new_spanned(&sig.ident, "add `&self` as the first parameter")),
    }
    let mut args = Vec::new();
    for (position, input) in inputs.enumerate() {
        let FnArg::Typed(pat_type) = input else { continue };
        match context_param(&pat_type.ty) {
            Some(ContextParam::Shared) if position == 0 => {
                options.context = true;
                continue;
            }
            Some(ContextParam::Shared) => {
                errors.push(Error::new_spanned(
                    pat_type,
                    "the context parameter goes first, right after `&self`: `async fn name(&self, cx: &netcore::Context, …)`",
                ));
                continue;
            }
            Some(ContextParam::Other) => {
                errors.push(Error::new_spanned(
                    &pat_type.ty,
                    "the request context is borrowed, not owned or mutable: write `cx: &netcore::Context` right after `&self`",
                ));
                continue;
            }
            None => {}
        }
        let name = match &*pat_type.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() && !p.ident.to_string().starts_with("r#") => {
                p.ident.to_string()
            }
            other => {
                errors.push(Error::new_spanned(other, "use a plain argument name"));
                continue;
            }
        };
        if let Some(spelling) = stream_spelling(&pat_type.ty).filter(|s| s.is_result()) {
            errors.push(Error::new_spanned(
                &pat_type.ty,
                format!(
                    "`{}` is what a handler returns (a stream result); a stream argument is read as it arrives: \
                     write `{}`",
                    spelling.name(),
                    spelling.other()
                ),
            ));
            continue;
        }
        match lower_type(&pat_type.ty) {
            Ok(ty) => args.push(Arg {
                name,
                ty: TypeRef { ty, rust: Some(pat_type.ty.to_token_stream()) },
                origin: Origin::Rust(pat_type.span()),
            }),
            Err(err) => errors.push(err),
        }
    }
    let returns = match &sig.output {
        ReturnType::Default => TypeRef { ty: Type::Unit, rust: None },
        ReturnType::Type(_, ty) if stream_spelling(ty).is_some_and(|s| !s.is_result()) => {
            let spelling = stream_spelling(ty).expect("checked");
            errors.push(Error::new_spanned(
                ty,
                format!(
                    "`{}` is how a handler reads a stream argument; a stream result is sent by the handler: \
                     write `-> {}`",
                    spelling.name(),
                    spelling.other()
                ),
            ));
            TypeRef::from(Type::Unit)
        }
        ReturnType::Type(_, ty) => match lower_type(ty) {
            Ok(lowered) => TypeRef { ty: lowered, rust: Some(ty.to_token_stream()) },
            Err(err) => {
                errors.push(err);
                TypeRef::from(Type::Unit)
            }
        },
    };
    if kind == MethodKind::Event && matches!(returns.ty, Type::Stream(_)) {
        errors.push(Error::new_spanned(
            &sig.output,
            "events are one-way and cannot return a stream; make it a call (drop `#[netcore(event)]`)",
        ));
    } else if kind == MethodKind::Event && returns.ty != Type::Unit {
        errors.push(Error::new_spanned(&sig.output, "events are one-way and return nothing; remove the return type"));
    }
    let name = sig.ident.to_string();
    if name.starts_with("r#") {
        errors.push(Error::new_spanned(&sig.ident, "raw identifiers cannot name a route; rename the method"));
    }
    match errors.0 {
        Some(err) => Err(err),
        None => Ok(Method {
            name,
            docs: docs(&f.attrs),
            kind,
            args,
            returns,
            options,
            origin: Origin::Rust(sig.ident.span()),
        }),
    }
}

/// How a stream type is spelled: the reading side (an argument) or the sending side (a result).
#[derive(Debug, Clone, Copy)]
enum StreamSpelling {
    /// `BodyStream`: a `stream<bytes>` argument.
    BodyStream,
    /// `Items<T>`: a `stream<T>` argument.
    Items,
    /// `ByteStream`: a `-> stream<bytes>` result.
    ByteStream,
    /// `Stream<T>`: a `-> stream<T>` result.
    Stream,
}

impl StreamSpelling {
    fn is_result(self) -> bool {
        matches!(self, Self::ByteStream | Self::Stream)
    }

    fn name(self) -> &'static str {
        match self {
            Self::BodyStream => "BodyStream",
            Self::Items => "Items<T>",
            Self::ByteStream => "ByteStream",
            Self::Stream => "Stream<T>",
        }
    }

    /// What to write in the other position.
    fn other(self) -> &'static str {
        match self {
            Self::BodyStream => "netcore::ByteStream",
            Self::Items => "netcore::Stream<T>",
            Self::ByteStream => "netcore::endpoint::BodyStream",
            Self::Stream => "netcore::typed::Items<T>",
        }
    }
}

/// Which stream type `ty` names, if any (by its last path segment, as [`lower_path`] reads it).
fn stream_spelling(ty: &syn::Type) -> Option<StreamSpelling> {
    let syn::Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    let generic = !matches!(last.arguments, PathArguments::None);
    Some(match (last.ident.to_string().as_str(), generic) {
        ("BodyStream", false) => StreamSpelling::BodyStream,
        ("ByteStream", false) => StreamSpelling::ByteStream,
        ("Items", true) => StreamSpelling::Items,
        ("Stream", true) => StreamSpelling::Stream,
        _ => return None,
    })
}

/// How a parameter's type names the request context, if it does.
enum ContextParam {
    /// `&Context` or `&netcore::Context`: the context parameter.
    Shared,
    /// `&mut Context`, or `netcore::Context` by value: a mistake.
    Other,
}

/// `&Context` (any path ending in `Context`) is the context; so is `netcore::Context` written
/// any other way, which is an error. A bare `Context` by value stays a user type.
fn context_param(ty: &syn::Type) -> Option<ContextParam> {
    fn path_is_context(ty: &syn::Type, require_netcore: bool) -> bool {
        let syn::Type::Path(path) = ty else { return false };
        let segments: Vec<String> = path.path.segments.iter().map(|s| s.ident.to_string()).collect();
        match segments.as_slice() {
            [.., last] if last != "Context" => false,
            [_] => !require_netcore,
            [.., krate, _] => krate == "netcore",
            [] => false,
        }
    }
    match ty {
        syn::Type::Reference(reference) if path_is_context(&reference.elem, false) => {
            Some(if reference.mutability.is_some() { ContextParam::Other } else { ContextParam::Shared })
        }
        other if path_is_context(other, true) => Some(ContextParam::Other),
        _ => None,
    }
}

/// The canonical form of a Rust type, or a spanned error saying what to write instead.
fn lower_type(ty: &syn::Type) -> Result<Type, Error> {
    match ty {
        syn::Type::Paren(inner) => lower_type(&inner.elem),
        syn::Type::Group(inner) => lower_type(&inner.elem),
        syn::Type::Tuple(tuple) if tuple.elems.is_empty() => Ok(Type::Unit),
        syn::Type::Tuple(tuple) => Err(Error::new_spanned(tuple, "tuples are not supported; use a struct with named fields")),
        syn::Type::Reference(reference) => Err(Error::new_spanned(
            reference,
            "arguments and results cross the wire and must be owned: write `String` for `&str`, `Vec<T>` for `&[T]`, `T` for `&T`",
        )),
        syn::Type::Slice(slice) => Err(Error::new_spanned(slice, "slices are not supported; use `Vec<T>`")),
        syn::Type::Array(array) => Err(Error::new_spanned(array, "arrays are not supported; use `Vec<T>`")),
        syn::Type::ImplTrait(t) => Err(Error::new_spanned(t, "`impl Trait` is not supported; use a concrete type")),
        syn::Type::TraitObject(t) => Err(Error::new_spanned(t, "trait objects are not supported; use a concrete type")),
        syn::Type::Path(path) if path.qself.is_none() => lower_path(path),
        other => Err(Error::new_spanned(other, "this type cannot cross the wire; use an owned serde type")),
    }
}

fn lower_path(path: &syn::TypePath) -> Result<Type, Error> {
    let last = path.path.segments.last().ok_or_else(|| Error::new_spanned(path, "empty type path"))?;
    let name = last.ident.to_string();
    let generic_args: Vec<&syn::Type> = match &last.arguments {
        PathArguments::None => Vec::new(),
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .map(|arg| match arg {
                GenericArgument::Type(ty) => Ok(ty),
                other => Err(Error::new_spanned(other, "only type arguments are supported here")),
            })
            .collect::<Result<_, _>>()?,
        PathArguments::Parenthesized(args) => {
            return Err(Error::new_spanned(args, "function types cannot cross the wire"));
        }
    };
    let scalar = match name.as_str() {
        "String" => Some(Type::String),
        // A `stream<bytes>` argument, as the handler reads it (validation checks where it goes).
        "BodyStream" => Some(Type::Stream(Box::new(Type::Bytes))),
        // A `-> stream<bytes>` result, as the handler sends it.
        "ByteStream" => Some(Type::Stream(Box::new(Type::Bytes))),
        "Bytes" => Some(Type::Bytes),
        other => Type::scalar(other).filter(|_| name != "string" && name != "bytes"),
    };
    if let Some(instead) = not_in_schema_language(&name).filter(|_| generic_args.is_empty()) {
        return Err(Error::new_spanned(
            path,
            format!(
                "`{name}` is not supported: the schema language has no such type, so a peer built from a schema \
                 could not declare it; {instead}"
            ),
        ));
    }
    match (name.as_str(), &generic_args[..]) {
        (_, []) if scalar.is_some() => Ok(scalar.expect("checked")),
        ("Result", [ok, _]) => Err(Error::new_spanned(
            path,
            format!(
                "the trait declares what a call returns on success: write `-> {}` here; the impl's method returns \
                 `Result<{0}, HandlerError>`, and a caller gets `Result<{0}, CallError>`",
                ok.to_token_stream()
            ),
        )),
        ("HashSet" | "BTreeSet" | "IndexSet" | "LinkedList" | "BinaryHeap", _) => Err(Error::new_spanned(
            path,
            format!(
                "`{name}` is not supported; the collections are `Vec<T>` and `VecDeque<T>` (a list), \
                 `HashMap<K, V>` and `BTreeMap<K, V>` (a map) and `Option<T>`: use `Vec<T>` for a set"
            ),
        )),
        ("Items", [inner]) => match lower_type(inner)? {
            Type::Bytes => Err(Error::new_spanned(
                path,
                "a stream of bytes is `netcore::endpoint::BodyStream` (`stream<bytes>`, sent as it is), not `Items<bytes>`",
            )),
            item => Ok(Type::Stream(Box::new(item))),
        },
        ("Stream", [inner]) => match lower_type(inner)? {
            Type::Bytes => Err(Error::new_spanned(
                path,
                "a stream of bytes is `netcore::ByteStream` (`-> stream<bytes>`, sent as it is), not `Stream<bytes>`",
            )),
            item => Ok(Type::Stream(Box::new(item))),
        },
        ("Vec", [inner]) if is_u8(inner) => Ok(Type::Bytes),
        ("Vec" | "VecDeque", [inner]) => Ok(Type::List(Box::new(lower_type(inner)?))),
        ("Option", [inner]) => Ok(Type::Option(Box::new(lower_type(inner)?))),
        ("Box", [inner]) => lower_type(inner),
        ("HashMap" | "BTreeMap", [k, v]) => Ok(Type::Map(Box::new(lower_type(k)?), Box::new(lower_type(v)?))),
        (_, []) => Ok(Type::Named(name)),
        _ => Err(Error::new_spanned(
            path,
            "generic user types are not supported; use a concrete type (the generic types that cross the wire \
             are `Vec<T>`, `VecDeque<T>`, `Option<T>`, `Box<T>`, `HashMap<K, V>` and `BTreeMap<K, V>`)",
        )),
    }
}

/// What to write instead of a Rust type that serde could carry but the schema language cannot
/// express (docs/TYPED.md): both front ends refuse it, so either side can be declared either way.
fn not_in_schema_language(name: &str) -> Option<&'static str> {
    Some(match name {
        "u128" | "i128" => "its integers go up to 64 bits: use `u64`/`i64`, two of them, or `Vec<u8>`",
        "char" => "use `String` for text or `u32` for a code point",
        _ => return None,
    })
}

fn is_u8(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none() && p.path.is_ident("u8"))
}

fn docs(attrs: &[syn::Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

//! The one emitter: model to Rust tokens. Generated code reaches the runtime only through
//! `::netcore::…` paths (and `::netcore::__private`), never the prelude, so it compiles under
//! `#![no_implicit_prelude]`.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use crate::model::*;

/// Everything a schema declares: its types, then its services.
pub fn emit_schema(schema: &Schema) -> TokenStream {
    let types = schema.types.iter().map(emit_type);
    let services = schema.services.iter().map(|service| emit_service_in(service, Some(&schema.types)));
    quote! { #(#types)* #(#services)* }
}

/// One service: the server trait `Name`, the client `NameClient` and the glue `NameServer`; its
/// user types are Rust types with `Schema` impls (the macro's case).
pub fn emit_service(service: &Service) -> TokenStream {
    emit_service_in(service, None)
}

/// One service, with `types` the declarations of all its user types when they are known (a
/// schema's case): its method hashes are then computed here, not at run time.
pub fn emit_service_in(service: &Service, types: Option<&[TypeDef]>) -> TokenStream {
    let vis = service.visibility.clone().unwrap_or_else(|| quote!(pub));
    let server_trait = emit_server_trait(service, &vis);
    let client = emit_client(service, &vis);
    let server = emit_server(service, &vis, types);
    let checks = emit_wire_type_checks(service);
    quote! { #server_trait #client #server #checks }
}

fn emit_server_trait(service: &Service, vis: &TokenStream) -> TokenStream {
    let name = ident(&service.name);
    let docs = doc_attrs(&service.docs);
    let methods = service.methods.iter().map(|method| {
        let docs = doc_attrs(&method.docs);
        let fn_name = ident(&method.name);
        let args = method.args.iter().map(|arg| {
            let arg_name = ident(&arg.name);
            let ty = rust_type(&arg.ty);
            quote! { #arg_name: #ty }
        });
        let ret = result_type(&method.returns);
        let cx = method.options.context.then(|| quote!(cx: &::netcore::Context,));
        quote! {
            #docs
            fn #fn_name(&self, #cx #(#args),*) -> impl ::core::future::Future<
                Output = ::core::result::Result<#ret, ::netcore::HandlerError>
            > + ::core::marker::Send;
        }
    });
    quote! {
        #docs
        #vis trait #name: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#methods)*
        }
    }
}

fn emit_client(service: &Service, vis: &TokenStream) -> TokenStream {
    let client = format_ident!("{}Client", service.name);
    let summary =
        format!(" Typed client of [`{}`]: one async method per call, over a [`::netcore::Connection`].", service.name);
    let server = format_ident!("{}Server", service.name);
    let methods = service.methods.iter().map(|method| {
        let docs = doc_attrs(&method.docs);
        let fn_name = ident(&method.name);
        let names: Vec<Ident> = tuple_args(method).iter().map(|a| ident(&a.name)).collect();
        let types: Vec<TokenStream> = tuple_args(method).iter().map(|a| rust_type(&a.ty)).collect();
        let path = service.route(method);
        let route = Literal::u32_suffixed(netcore_layout::route_id(&path));
        let priority = option_literal(method.options.priority.map(Literal::u8_suffixed));
        let timeout = option_literal(method.options.timeout_ms.map(Literal::u64_suffixed));
        let ret = client_result(&method.returns);
        let hash_fn = hash_fn(method);
        let context = method.options.context;
        let spec = quote! {
            ::netcore::__private::MethodSpec {
                route: #route, name: #path, hash: #server::#hash_fn(), priority: #priority, timeout_ms: #timeout,
                context: #context,
            }
        };
        if let Some(stream) = stream_arg(method).filter(|arg| !is_byte_stream(&arg.ty.ty)) {
            let stream_ty = rust_type(&stream.ty);
            let stream = ident(&stream.name);
            return quote! {
                #docs
                pub async fn #fn_name(
                    &self, #(#names: #types,)*
                    #stream: impl ::netcore::typed::ItemSource<<#stream_ty as ::netcore::__private::ItemsOf>::Item>,
                ) -> ::core::result::Result<#ret, ::netcore::CallError> {
                    ::netcore::__private::call_items(
                        &self.connection, #spec, &self.options, &(#(#names,)*), #stream,
                    ).await
                }
            };
        }
        if let Some(stream) = stream_arg(method) {
            let stream = ident(&stream.name);
            return quote! {
                #docs
                pub async fn #fn_name(
                    &self, #(#names: #types,)* #stream: impl ::core::convert::Into<::netcore::Body>,
                ) -> ::core::result::Result<#ret, ::netcore::CallError> {
                    ::netcore::__private::call_stream(
                        &self.connection, #spec, &self.options, &(#(#names,)*), ::core::convert::Into::into(#stream),
                    ).await
                }
            };
        }
        match method.kind {
            MethodKind::Call => quote! {
                #docs
                pub async fn #fn_name(&self, #(#names: #types),*) -> ::core::result::Result<#ret, ::netcore::CallError> {
                    ::netcore::__private::call(&self.connection, #spec, &self.options, &(#(#names,)*)).await
                }
            },
            MethodKind::Event => quote! {
                #docs
                pub async fn #fn_name(&self, #(#names: #types),*) -> ::core::result::Result<(), ::netcore::CallError> {
                    ::netcore::__private::notify(&self.connection, #spec, &self.options, &(#(#names,)*)).await
                }
            },
        }
    });
    quote! {
        #[doc = #summary]
        #[derive(::core::fmt::Debug, ::core::clone::Clone)]
        #vis struct #client {
            connection: ::netcore::Connection,
            options: ::netcore::CallOptions,
        }

        impl #client {
            /// The service's schema fingerprint (docs/PROTOCOL.md §9), the same as the server's.
            pub fn fingerprint() -> u64 {
                #server::fingerprint()
            }

            /// A client calling over `connection`, each method with its declared options.
            pub fn new(connection: ::netcore::Connection) -> Self {
                Self { connection, options: ::core::default::Default::default() }
            }

            /// A client over the same connection whose calls use `options`: its priority and
            /// timeout where set (the methods' declared ones otherwise), its headers and progress.
            pub fn with(&self, options: ::netcore::CallOptions) -> Self {
                Self { connection: <::netcore::Connection as ::core::clone::Clone>::clone(&self.connection), options }
            }

            /// The connection calls go over.
            pub fn connection(&self) -> &::netcore::Connection {
                &self.connection
            }

            #(#methods)*
        }
    }
}

fn emit_server(service: &Service, vis: &TokenStream, types: Option<&[TypeDef]>) -> TokenStream {
    let name = ident(&service.name);
    let server = format_ident!("{}Server", service.name);
    let summary = format!(" Registers an implementation of [`{}`] on an endpoint.", service.name);
    let fingerprint = emit_fingerprint_fn(service);
    let hashes = service.methods.iter().map(|method| emit_hash_fn(service, method, types));
    let prefix = &service.prefix;
    let routes = service.methods.iter().map(|method| {
        let fn_name = ident(&method.name);
        let path = format!("/{}", method.name);
        let names: Vec<Ident> = tuple_args(method).iter().map(|a| ident(&a.name)).collect();
        let types: Vec<TokenStream> = tuple_args(method).iter().map(|a| rust_type(&a.ty)).collect();
        let hash_fn = hash_fn(method);
        if let Some(stream) = stream_arg(method) {
            let stream_ty = rust_type(&stream.ty);
            let stream = ident(&stream.name);
            let cx = method.options.context.then(|| quote!(&cx,));
            return quote! {
                .route_service(#path, ::netcore::__private::stream_route(
                    <::netcore::__private::Arc<S> as ::core::clone::Clone>::clone(&service),
                    Self::#hash_fn(),
                    |service: ::netcore::__private::Arc<S>, cx: ::netcore::Context, (#(#names,)*): (#(#types,)*),
                     #stream: #stream_ty| async move {
                        let _ = &cx;
                        service.#fn_name(#cx #(#names,)* #stream).await
                    },
                ))
            };
        }
        if method.options.context {
            return quote! {
                .route_service(#path, ::netcore::__private::route_cx(
                    <::netcore::__private::Arc<S> as ::core::clone::Clone>::clone(&service),
                    Self::#hash_fn(),
                    |service: ::netcore::__private::Arc<S>, cx: ::netcore::Context, (#(#names,)*): (#(#types,)*)| async move {
                        service.#fn_name(&cx, #(#names),*).await
                    },
                ))
            };
        }
        quote! {
            .route_service(#path, ::netcore::__private::route(
                <::netcore::__private::Arc<S> as ::core::clone::Clone>::clone(&service),
                Self::#hash_fn(),
                |service: ::netcore::__private::Arc<S>, (#(#names,)*): (#(#types,)*)| async move {
                    service.#fn_name(#(#names),*).await
                },
            ))
        }
    });
    quote! {
        #[doc = #summary]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy)]
        #vis struct #server;

        impl #server {
            #fingerprint
            #(#hashes)*
            /// The route prefix of its methods.
            pub const PREFIX: &'static str = #prefix;

            /// A blueprint with one route per method, to register with `EndpointBuilder::blueprint`.
            pub fn blueprint<S: #name>(service: S) -> ::netcore::Blueprint {
                let service = ::netcore::__private::Arc::new(service);
                ::netcore::Blueprint::new(#prefix) #(#routes)*
            }
        }
    }
}

/// The name of a method's layout hash function on the server: `{method}_hash`.
fn hash_fn(method: &Method) -> Ident {
    format_ident!("{}_hash", method.name)
}

/// `{method}_hash()`: the method's layout hash (docs/PROTOCOL.md §15), a constant when `types`
/// declares every user type (a schema), else computed once from the types' `Schema` impls.
fn emit_hash_fn(service: &Service, method: &Method, types: Option<&[TypeDef]>) -> TokenStream {
    let hash_fn = hash_fn(method);
    let doc = format!(
        " The layout hash of `{}` (docs/PROTOCOL.md §15), announced in the METHODS table (§5.1).",
        service.route(method)
    );
    let body = match types {
        Some(types) => {
            let hash = Literal::u64_suffixed(fnv1a64(service.method_layout(method, types).as_bytes()));
            quote! { #hash }
        }
        None => {
            let describe = method_describe(method);
            quote! {
                static HASH: ::netcore::__private::OnceLock<u64> = ::netcore::__private::OnceLock::new();
                *HASH.get_or_init(|| ::netcore::layout::method_hash(#describe))
            }
        }
    };
    quote! {
        #[doc = #doc]
        pub fn #hash_fn() -> u64 {
            #body
        }
    }
}

/// A closure writing a method's layout, user types included through their `Schema` impls
/// (`netcore::layout`).
fn method_describe(method: &Method) -> TokenStream {
    let event = method.kind == MethodKind::Event;
    let fn_name = &method.name;
    let args = method.args.iter().map(|a| rust_type(&a.ty));
    let ret = result_type(&method.returns);
    quote! {
        |layout: &mut ::netcore::layout::Layout| {
            layout.method(#event, #fn_name);
            #( layout.element(); <#args as ::netcore::layout::Schema>::describe(layout); )*
            layout.returns();
            <#ret as ::netcore::layout::Schema>::describe(layout);
        }
    }
}

/// `fingerprint()`: the service's name, prefix and every method's layout, user types included
/// through their `Schema` impls (`netcore::layout`), hashed when called.
fn emit_fingerprint_fn(service: &Service) -> TokenStream {
    let (name, prefix) = (&service.name, &service.prefix);
    let methods = service.methods.iter().map(method_describe);
    quote! {
        /// The service's schema fingerprint (docs/PROTOCOL.md §9): its name, prefix and the layout
        /// of every method, the fields and variants of every type it reaches included.
        pub fn fingerprint() -> u64 {
            ::netcore::layout::service_fingerprint(#name, #prefix, &[#(#methods),*])
        }
    }
}

/// For types written in Rust, checks spanned on the type itself, so a type that cannot go on the
/// wire, or has no layout for the fingerprint, is reported where the user wrote it.
fn emit_wire_type_checks(service: &Service) -> TokenStream {
    let checks =
        service.methods.iter().flat_map(|m| m.args.iter().map(|a| &a.ty).chain([&m.returns])).filter_map(|ty| {
            let tokens = ty.rust.as_ref()?;
            let span = tokens.clone().into_iter().next().map_or_else(Span::call_site, |t| t.span());
            if is_byte_stream(&ty.ty) {
                // Not encoded: its bytes follow the other arguments as they are.
                return Some(quote_spanned! {span=> ::netcore::__private::assert_schema::<#tokens>(); });
            }
            if matches!(ty.ty, Type::Stream(_)) {
                // Its items are encoded one by one.
                return Some(quote_spanned! {span=>
                    ::netcore::__private::assert_items_wire::<#tokens>();
                    ::netcore::__private::assert_schema::<#tokens>();
                });
            }
            Some(quote_spanned! {span=>
                ::netcore::__private::assert_wire_type::<#tokens>();
                ::netcore::__private::assert_schema::<#tokens>();
            })
        });
    let checks: Vec<TokenStream> = checks.collect();
    if checks.is_empty() {
        return TokenStream::new();
    }
    quote! {
        const _: fn() = || { #(#checks)* };
    }
}

/// A user type with serde derives through netcore's re-export.
pub fn emit_type(def: &TypeDef) -> TokenStream {
    let name = ident(&def.name);
    let docs = doc_attrs(&def.docs);
    let derives = quote! {
        #[derive(
            ::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq,
            ::netcore::__private::serde::Serialize, ::netcore::__private::serde::Deserialize,
            ::netcore::Schema
        )]
        #[serde(crate = "::netcore::__private::serde")]
    };
    match &def.kind {
        TypeDefKind::Struct(fields) => {
            let fields = fields.iter().map(|f| emit_field(f, true));
            quote! { #docs #derives pub struct #name { #(#fields,)* } }
        }
        TypeDefKind::Enum(variants) => {
            let variants = variants.iter().map(|v| {
                let vname = ident(&v.name);
                let docs = doc_attrs(&v.docs);
                match &v.fields {
                    VariantFields::Unit => quote! { #docs #vname },
                    VariantFields::Tuple(types) => {
                        let types = types.iter().map(canonical_type);
                        quote! { #docs #vname(#(#types),*) }
                    }
                    VariantFields::Struct(fields) => {
                        let fields = fields.iter().map(|f| emit_field(f, false));
                        quote! { #docs #vname { #(#fields,)* } }
                    }
                }
            });
            quote! { #docs #derives pub enum #name { #(#variants,)* } }
        }
    }
}

/// What a user type looks like, for its `Schema` impl: from a schema's [`TypeDef`] or from the
/// Rust item `#[derive(netcore::Schema)]` is on.
#[derive(Debug, Clone)]
pub enum LayoutDef {
    /// A struct.
    Struct(Payload),
    /// An enum: its variants in order.
    Enum(Vec<(String, Payload)>),
}

/// The fields of a struct or an enum variant, each with its Rust type.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Nothing.
    Unit,
    /// Unnamed values.
    Tuple(Vec<TokenStream>),
    /// Named fields.
    Struct(Vec<(String, TokenStream)>),
}

/// `impl netcore::layout::Schema for #name` describing `def` (docs/TYPED.md), the same layout
/// the model gives the schema type ([`TypeDef::describe_body`]).
pub fn emit_layout_impl(name: &Ident, def: &LayoutDef) -> TokenStream {
    fn payload(payload: &Payload) -> TokenStream {
        match payload {
            Payload::Unit => TokenStream::new(),
            Payload::Tuple(types) => quote! {
                layout.begin_tuple();
                #( layout.element(); <#types as ::netcore::layout::Schema>::describe(layout); )*
                layout.end();
            },
            Payload::Struct(fields) => {
                let (names, types): (Vec<&String>, Vec<&TokenStream>) = fields.iter().map(|(n, t)| (n, t)).unzip();
                quote! {
                    layout.begin_struct();
                    #( layout.field(#names); <#types as ::netcore::layout::Schema>::describe(layout); )*
                    layout.end();
                }
            }
        }
    }
    let body = match def {
        LayoutDef::Struct(fields) => payload(fields),
        LayoutDef::Enum(variants) => {
            let variants = variants.iter().map(|(vname, fields)| {
                let fields = payload(fields);
                quote! { layout.variant(#vname); #fields }
            });
            quote! { layout.begin_enum(); #(#variants)* layout.end(); }
        }
    };
    let name_str = name.to_string();
    quote! {
        impl ::netcore::layout::Schema for #name {
            fn describe(layout: &mut ::netcore::layout::Layout) {
                layout.named(#name_str, |layout: &mut ::netcore::layout::Layout| { #body });
            }
        }
    }
}

fn emit_field(field: &Field, public: bool) -> TokenStream {
    let name = ident(&field.name);
    let docs = doc_attrs(&field.docs);
    let ty = canonical_type(&field.ty);
    let vis = public.then(|| quote!(pub));
    quote! { #docs #vis #name: #ty }
}

fn rust_type(ty: &TypeRef) -> TokenStream {
    ty.rust.clone().unwrap_or_else(|| canonical_type(&ty.ty))
}

/// What a handler returns: a stream result is sent as the handler produces it
/// (`netcore::typed::Stream<T>` or `ByteStream`); other types as [`rust_type`].
fn result_type(ty: &TypeRef) -> TokenStream {
    match (&ty.rust, &ty.ty) {
        (Some(rust), _) => rust.clone(),
        (None, Type::Stream(inner)) if **inner == Type::Bytes => quote!(::netcore::typed::ByteStream),
        (None, Type::Stream(inner)) => {
            let inner = canonical_type(inner);
            quote!(::netcore::typed::Stream<#inner>)
        }
        (None, other) => canonical_type(other),
    }
}

/// What a client's call returns: a stream result is read as it arrives
/// (`netcore::typed::Incoming<T>` or `IncomingBytes`); other types as [`rust_type`].
fn client_result(ty: &TypeRef) -> TokenStream {
    match (&ty.rust, &ty.ty) {
        (_, Type::Stream(inner)) if **inner == Type::Bytes => quote!(::netcore::typed::IncomingBytes),
        (Some(rust), Type::Stream(_)) => {
            quote!(::netcore::typed::Incoming<<#rust as ::netcore::__private::ItemsOf>::Item>)
        }
        (None, Type::Stream(inner)) => {
            let inner = canonical_type(inner);
            quote!(::netcore::typed::Incoming<#inner>)
        }
        _ => rust_type(ty),
    }
}

/// The Rust spelling of a canonical type.
pub fn canonical_type(ty: &Type) -> TokenStream {
    match ty {
        Type::Unit => quote!(()),
        Type::Bool => quote!(bool),
        Type::U8 => quote!(u8),
        Type::U16 => quote!(u16),
        Type::U32 => quote!(u32),
        Type::U64 => quote!(u64),
        Type::I8 => quote!(i8),
        Type::I16 => quote!(i16),
        Type::I32 => quote!(i32),
        Type::I64 => quote!(i64),
        Type::F32 => quote!(f32),
        Type::F64 => quote!(f64),
        Type::String => quote!(::std::string::String),
        Type::Bytes => quote!(::std::vec::Vec<u8>),
        Type::Option(inner) => {
            let inner = canonical_type(inner);
            quote!(::core::option::Option<#inner>)
        }
        Type::List(inner) => {
            let inner = canonical_type(inner);
            quote!(::std::vec::Vec<#inner>)
        }
        Type::Map(k, v) => {
            let (k, v) = (canonical_type(k), canonical_type(v));
            quote!(::std::collections::BTreeMap<#k, #v>)
        }
        Type::Named(name) => {
            let name = ident(name);
            quote!(#name)
        }
        // The handler reads a stream as it arrives: its bytes, or its items decoded one by one.
        Type::Stream(inner) if **inner == Type::Bytes => quote!(::netcore::endpoint::BodyStream),
        Type::Stream(inner) => {
            let inner = canonical_type(inner);
            quote!(::netcore::typed::Items<#inner>)
        }
    }
}

/// The method's last argument, if it is a stream.
fn stream_arg(method: &Method) -> Option<&Arg> {
    method.stream_arg()
}

/// Whether `ty` is `stream<bytes>`, sent as it is (the other streams are of encoded items).
fn is_byte_stream(ty: &Type) -> bool {
    matches!(ty, Type::Stream(inner) if **inner == Type::Bytes)
}

/// The arguments that travel encoded together, in the tuple: all but a trailing stream.
fn tuple_args(method: &Method) -> &[Arg] {
    match stream_arg(method) {
        Some(_) => &method.args[..method.args.len() - 1],
        None => &method.args,
    }
}

fn doc_attrs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|line| {
        let line = format!(" {}", line.trim_start());
        quote!(#[doc = #line])
    });
    quote!(#(#lines)*)
}

fn option_literal(value: Option<Literal>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

fn ident(name: &str) -> Ident {
    Ident::new(name, Span::call_site())
}

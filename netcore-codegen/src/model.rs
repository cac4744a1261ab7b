//! The intermediate model both front ends produce and the emitter consumes (STYLE §4).
//!
//! Every node carries its [`Origin`] so that validation errors point into the schema file
//! (file:line:column) or at the macro input (a span).

use netcore_layout::Layout;
use proc_macro2::{Span, TokenStream};

/// Where a model node was declared.
#[derive(Debug, Clone)]
pub enum Origin {
    /// In a schema file.
    Schema {
        /// The file.
        file: std::path::PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// In Rust source given to the macro.
    Rust(Span),
}

/// A whole declaration: user types and services.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Types declared in the schema (the macro uses the user's own Rust types instead).
    pub types: Vec<TypeDef>,
    /// Services.
    pub services: Vec<Service>,
}

/// A service: a named set of methods under a route prefix.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its name, e.g. `Users`; generated items are `Users`, `UsersClient`, `UsersServer`.
    pub name: String,
    /// Route prefix, e.g. `/user`; method routes are `{prefix}/{method}`.
    pub prefix: String,
    /// Doc comment lines.
    pub docs: Vec<String>,
    /// Methods, in declaration order.
    pub methods: Vec<Method>,
    /// Visibility of the generated items as written in Rust (`pub` when `None`).
    pub visibility: Option<TokenStream>,
    /// Where it was declared.
    pub origin: Origin,
}

/// Whether a method expects an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    /// A request with a response.
    Call,
    /// A one-way message.
    Event,
}

/// Per-method options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MethodOptions {
    /// Scheduling class 0..=7 of the call.
    pub priority: Option<u8>,
    /// Client-side timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Whether the handler takes the request's context (`cx: &netcore::Context` after `&self` in
    /// the macro, `@context` in a schema). Not on the wire and not in any hash: a client sends
    /// such a method its timeout as a header, so the handler knows its deadline.
    pub context: bool,
}

/// A method of a service.
#[derive(Debug, Clone)]
pub struct Method {
    /// Its name (snake_case).
    pub name: String,
    /// Doc comment lines.
    pub docs: Vec<String>,
    /// Call or event.
    pub kind: MethodKind,
    /// Arguments, in order.
    pub args: Vec<Arg>,
    /// What a call returns ([`Type::Unit`] for nothing).
    pub returns: TypeRef,
    /// Options.
    pub options: MethodOptions,
    /// Where it was declared.
    pub origin: Origin,
}

/// An argument.
#[derive(Debug, Clone)]
pub struct Arg {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: TypeRef,
    /// Where it was declared.
    pub origin: Origin,
}

/// A type as used in a signature: its canonical form, and the Rust tokens it was written with (from
/// the macro), which the emitter reproduces exactly so the user's impl matches the generated trait.
#[derive(Debug, Clone)]
pub struct TypeRef {
    /// The canonical type (what the fingerprint covers).
    pub ty: Type,
    /// The type as written in Rust, if it came from Rust.
    pub rust: Option<TokenStream>,
}

impl From<Type> for TypeRef {
    fn from(ty: Type) -> Self {
        Self { ty, rust: None }
    }
}

/// Canonical types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// Nothing: `()`.
    Unit,
    /// `bool`
    Bool,
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// UTF-8 text.
    String,
    /// A byte string.
    Bytes,
    /// An optional value.
    Option(Box<Type>),
    /// A list.
    List(Box<Type>),
    /// A map with ordered keys.
    Map(Box<Type>, Box<Type>),
    /// A user type, by name.
    Named(String),
    /// A stream of items, sent as they come and never held whole: `stream<bytes>` or `stream<T>`, only
    /// as a call's last argument (client to server), as its result (server to client), or both
    /// (bidirectional) (docs/TYPED.md).
    Stream(Box<Type>),
}

/// A user type declared in a schema.
#[derive(Debug, Clone)]
pub struct TypeDef {
    /// Its name (CamelCase).
    pub name: String,
    /// Doc comment lines.
    pub docs: Vec<String>,
    /// Struct or enum.
    pub kind: TypeDefKind,
    /// Where it was declared.
    pub origin: Origin,
}

/// The shape of a user type.
#[derive(Debug, Clone)]
pub enum TypeDefKind {
    /// A struct with named fields.
    Struct(Vec<Field>),
    /// An enum whose variants may carry data.
    Enum(Vec<Variant>),
}

/// A named field.
#[derive(Debug, Clone)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Doc comment lines.
    pub docs: Vec<String>,
    /// Its type.
    pub ty: Type,
    /// Where it was declared.
    pub origin: Origin,
}

/// An enum variant.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Its name.
    pub name: String,
    /// Doc comment lines.
    pub docs: Vec<String>,
    /// What it carries.
    pub fields: VariantFields,
    /// Where it was declared.
    pub origin: Origin,
}

/// What an enum variant carries.
#[derive(Debug, Clone)]
pub enum VariantFields {
    /// Nothing.
    Unit,
    /// Unnamed values.
    Tuple(Vec<Type>),
    /// Named fields.
    Struct(Vec<Field>),
}

impl Type {
    /// The canonical spelling, as in schema files: `u32`, `string`, `list<T>`, `option<T>`, …
    pub fn canonical(&self) -> String {
        match self {
            Type::Unit => "()".into(),
            Type::Bool => "bool".into(),
            Type::U8 => "u8".into(),
            Type::U16 => "u16".into(),
            Type::U32 => "u32".into(),
            Type::U64 => "u64".into(),
            Type::I8 => "i8".into(),
            Type::I16 => "i16".into(),
            Type::I32 => "i32".into(),
            Type::I64 => "i64".into(),
            Type::F32 => "f32".into(),
            Type::F64 => "f64".into(),
            Type::String => "string".into(),
            Type::Bytes => "bytes".into(),
            Type::Option(t) => format!("option<{}>", t.canonical()),
            Type::List(t) => format!("list<{}>", t.canonical()),
            Type::Map(k, v) => format!("map<{},{}>", k.canonical(), v.canonical()),
            Type::Named(name) => name.clone(),
            Type::Stream(t) => format!("stream<{}>", t.canonical()),
        }
    }

    /// The scalar named `word` in schema syntax, if it is one.
    pub fn scalar(word: &str) -> Option<Type> {
        Some(match word {
            "bool" => Type::Bool,
            "u8" => Type::U8,
            "u16" => Type::U16,
            "u32" => Type::U32,
            "u64" => Type::U64,
            "i8" => Type::I8,
            "i16" => Type::I16,
            "i32" => Type::I32,
            "i64" => Type::I64,
            "f32" => Type::F32,
            "f64" => Type::F64,
            "string" => Type::String,
            "bytes" => Type::Bytes,
            _ => return None,
        })
    }
}

impl Method {
    /// The last argument, if it is a stream (client to server).
    pub fn stream_arg(&self) -> Option<&Arg> {
        self.args.last().filter(|arg| matches!(arg.ty.ty, Type::Stream(_)))
    }

    /// The item type of the result, if the result is a stream (server to client).
    pub fn stream_result(&self) -> Option<&Type> {
        match &self.returns.ty {
            Type::Stream(item) => Some(item),
            _ => None,
        }
    }

    /// Whether streams go both ways: a stream last argument and a stream result.
    pub fn is_bidirectional(&self) -> bool {
        self.stream_arg().is_some() && self.stream_result().is_some()
    }
}

impl Service {
    /// The route of a method: `{prefix}/{method}`.
    pub fn route(&self, method: &Method) -> String {
        format!("{}/{}", self.prefix, method.name)
    }

    /// The layout of a method (see `netcore::layout`): its kind, name, argument types and result
    /// type, every user type spelled out from `types`. Argument names, docs and options are left
    /// out because they do not affect the wire; field and variant names are in, since they say what
    /// a position means. A type not in `types` (a macro's user type) is only its name.
    pub fn method_layout(&self, method: &Method, types: &[TypeDef]) -> String {
        let mut layout = Layout::new();
        layout.method(method.kind == MethodKind::Event, &method.name);
        for arg in &method.args {
            layout.element();
            arg.ty.ty.describe(types, &mut layout);
        }
        layout.returns();
        method.returns.ty.describe(types, &mut layout);
        layout.into_text()
    }

    /// The canonical text the fingerprint hashes: the name, the prefix and every method's layout,
    /// sorted; the same text generated code computes from its types' `Schema` impls.
    pub fn canonical(&self, types: &[TypeDef]) -> String {
        let methods = self.methods.iter().map(|m| self.method_layout(m, types)).collect();
        netcore_layout::service_canonical(&self.name, &self.prefix, methods)
    }

    /// The service's schema fingerprint (docs/PROTOCOL.md §9): FNV-1a 64 of [`canonical`](Self::canonical).
    pub fn fingerprint(&self, types: &[TypeDef]) -> u64 {
        fnv1a64(self.canonical(types).as_bytes())
    }
}

impl Type {
    /// Appends this type's layout, with the user types of `types` spelled out.
    pub fn describe(&self, types: &[TypeDef], layout: &mut Layout) {
        match self {
            Type::Option(inner) => layout.generic("option", &[&|l: &mut Layout| inner.describe(types, l)]),
            Type::List(inner) => layout.generic("list", &[&|l: &mut Layout| inner.describe(types, l)]),
            Type::Stream(inner) => layout.generic("stream", &[&|l: &mut Layout| inner.describe(types, l)]),
            Type::Map(k, v) => {
                layout.generic("map", &[&|l: &mut Layout| k.describe(types, l), &|l: &mut Layout| v.describe(types, l)])
            }
            Type::Named(name) => match types.iter().find(|def| &def.name == name) {
                Some(def) => layout.named(name, |layout| def.describe_body(types, layout)),
                None => layout.named(name, |_| {}),
            },
            scalar => layout.scalar(&scalar.canonical()),
        }
    }
}

impl TypeDef {
    /// Appends the body of this type's layout (what follows its name), as `#[derive(netcore::Schema)]`
    /// writes it for the Rust type the emitter generates.
    pub fn describe_body(&self, types: &[TypeDef], layout: &mut Layout) {
        let fields = |layout: &mut Layout, fields: &[Field]| {
            layout.begin_struct();
            for field in fields {
                layout.field(&field.name);
                field.ty.describe(types, layout);
            }
            layout.end();
        };
        match &self.kind {
            TypeDefKind::Struct(list) => fields(layout, list),
            TypeDefKind::Enum(variants) => {
                layout.begin_enum();
                for variant in variants {
                    layout.variant(&variant.name);
                    match &variant.fields {
                        VariantFields::Unit => {}
                        VariantFields::Tuple(types_) => {
                            layout.begin_tuple();
                            for ty in types_ {
                                layout.element();
                                ty.describe(types, layout);
                            }
                            layout.end();
                        }
                        VariantFields::Struct(list) => fields(layout, list),
                    }
                }
                layout.end();
            }
        }
    }
}

pub use netcore_layout::fnv1a64;

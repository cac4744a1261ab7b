//! Checks on the model, shared by both front ends. Every problem is reported, not just the first.

use std::collections::{HashMap, HashSet};

use crate::model::*;

/// One problem, where it was declared.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Where.
    pub origin: Origin,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Method names the generated client already uses.
const RESERVED_METHODS: &[&str] = &["new", "connection", "with"];

const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "Self",
    "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become",
    "box", "do", "final", "gen", "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Checks a model. `resolve_names`: named types must be declared in the schema (schema files);
/// the macro passes `false`, its named types being the user's Rust types.
pub fn validate(schema: &Schema, resolve_names: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let report = &mut |origin: &Origin, message: String| out.push(Diagnostic { origin: origin.clone(), message });
    check_types(schema, resolve_names, report);
    check_services(schema, resolve_names, report);
    out
}

type Report<'a> = &'a mut dyn FnMut(&Origin, String);

fn check_types(schema: &Schema, resolve_names: bool, report: Report<'_>) {
    let declared: HashMap<&str, &TypeDef> = schema.types.iter().map(|t| (t.name.as_str(), t)).collect();

    let mut type_names = HashSet::new();
    for def in &schema.types {
        check_ident(&def.name, &def.origin, report);
        if !type_names.insert(&def.name) {
            report(&def.origin, format!("type `{}` is declared twice", def.name));
        }
        let check_ty = |ty: &Type, origin: &Origin, report: Report<'_>| {
            if resolve_names {
                check_resolved(ty, origin, &declared, report);
            }
        };
        match &def.kind {
            TypeDefKind::Struct(fields) => {
                unique(fields.iter().map(|f| (&f.name, &f.origin)), "field", report);
                for field in fields {
                    check_ident(&field.name, &field.origin, report);
                    check_ty(&field.ty, &field.origin, report);
                }
            }
            TypeDefKind::Enum(variants) => {
                unique(variants.iter().map(|v| (&v.name, &v.origin)), "variant", report);
                for variant in variants {
                    check_ident(&variant.name, &variant.origin, report);
                    match &variant.fields {
                        VariantFields::Unit => {}
                        VariantFields::Tuple(types) => types.iter().for_each(|t| check_ty(t, &variant.origin, report)),
                        VariantFields::Struct(fields) => {
                            unique(fields.iter().map(|f| (&f.name, &f.origin)), "field", report);
                            fields.iter().for_each(|f| check_ty(&f.ty, &f.origin, report));
                        }
                    }
                }
            }
        }
        if resolve_names && contains_inline(def, &def.name, &declared, &mut HashSet::new()) {
            report(
                &def.origin,
                format!(
                    "type `{}` contains itself; put a list<…> or map<…> in between to give it a finite size",
                    def.name
                ),
            );
        }
    }
}

fn check_services(schema: &Schema, resolve_names: bool, report: Report<'_>) {
    let declared: HashMap<&str, &TypeDef> = schema.types.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut service_names = HashSet::new();
    let mut routes: HashMap<u32, String> = HashMap::new();
    for service in &schema.services {
        check_ident(&service.name, &service.origin, report);
        if !service_names.insert(&service.name) {
            report(&service.origin, format!("service `{}` is declared twice", service.name));
        }
        if !(service.prefix.is_empty() || service.prefix.starts_with('/')) || service.prefix.ends_with('/') {
            report(
                &service.origin,
                format!("route prefix {:?} must start with `/` and not end with one, like \"/user\"", service.prefix),
            );
        }
        unique(service.methods.iter().map(|m| (&m.name, &m.origin)), "method", report);
        for method in &service.methods {
            check_ident(&method.name, &method.origin, report);
            if RESERVED_METHODS.contains(&method.name.as_str()) {
                report(
                    &method.origin,
                    format!("method name `{}` clashes with the generated client's; rename it", method.name),
                );
            }
            if method.kind == MethodKind::Event && matches!(method.returns.ty, Type::Stream(_)) {
                report(
                    &method.origin,
                    "events are one-way and cannot return a stream; make it an `rpc` (a call)".into(),
                );
            } else if method.kind == MethodKind::Event && method.returns.ty != Type::Unit {
                report(
                    &method.origin,
                    "events are one-way and return nothing; make it a call or drop the return type".into(),
                );
            }
            if method.options.priority.is_some_and(|p| p > 7) {
                report(&method.origin, "priority must be 0 to 7".into());
            }
            for (i, arg) in method.args.iter().enumerate() {
                check_ident(&arg.name, &arg.origin, report);
                check_stream_arg(method, i, &arg.ty.ty, &arg.origin, report);
                if resolve_names {
                    check_resolved(&arg.ty.ty, &arg.origin, &declared, report);
                }
            }
            if resolve_names {
                check_resolved(&method.returns.ty, &method.origin, &declared, report);
            }
            check_stream_result(&method.returns.ty, &method.origin, report);
            let route = service.route(method);
            let id = netcore_layout::route_id(&route);
            if let Some(other) = routes.insert(id, route.clone()) {
                report(
                    &method.origin,
                    format!("route {route} has the same route id {id:#010x} as {other}; rename one"),
                );
            }
        }
    }
}

/// A stream (`stream<bytes>` or `stream<T>`) is allowed only as the last argument of a call, and not
/// inside another type.
fn check_stream_arg(method: &Method, position: usize, ty: &Type, origin: &Origin, report: Report<'_>) {
    match ty {
        Type::Stream(inner) => {
            if method.kind == MethodKind::Event {
                report(origin, "events cannot carry a stream; make it an `rpc` (a call)".into());
            } else if position + 1 != method.args.len() {
                report(origin, "a stream goes last: move it after the other arguments".into());
            }
            if contains_stream(inner) {
                report(origin, "a stream cannot be inside another type; use it as the last argument itself".into());
            }
        }
        other if contains_stream(other) => {
            report(origin, "a stream cannot be inside another type; use it as the last argument itself".into())
        }
        _ => {}
    }
}

/// A stream result (`-> stream<bytes>` or `-> stream<T>`) is the result itself, not inside another
/// type. (An event returns nothing, which its own check says.)
fn check_stream_result(ty: &Type, origin: &Origin, report: Report<'_>) {
    let nested = match ty {
        Type::Stream(inner) => contains_stream(inner),
        other => contains_stream(other),
    };
    if nested {
        report(origin, "a stream cannot be inside another type; return the stream itself: `-> stream<T>`".into());
    }
}

fn contains_stream(ty: &Type) -> bool {
    match ty {
        Type::Stream(_) => true,
        Type::Option(t) | Type::List(t) => contains_stream(t),
        Type::Map(k, v) => contains_stream(k) || contains_stream(v),
        _ => false,
    }
}

fn unique<'a>(items: impl Iterator<Item = (&'a String, &'a Origin)>, what: &str, report: Report<'_>) {
    let mut seen = HashSet::new();
    for (name, origin) in items {
        if !seen.insert(name) {
            report(origin, format!("{what} `{name}` is declared twice"));
        }
    }
}

fn check_ident(name: &str, origin: &Origin, report: Report<'_>) {
    if RUST_KEYWORDS.contains(&name) {
        report(origin, format!("`{name}` is a Rust keyword and cannot name generated code; rename it"));
    }
}

fn check_resolved(ty: &Type, origin: &Origin, declared: &HashMap<&str, &TypeDef>, report: Report<'_>) {
    match ty {
        Type::Named(name) if !declared.contains_key(name.as_str()) => {
            report(
                origin,
                format!("unknown type `{name}`; declare it with `struct {name} {{ … }}` or import its file"),
            );
        }
        Type::Option(t) | Type::List(t) => check_resolved(t, origin, declared, report),
        Type::Map(k, v) => {
            check_resolved(k, origin, declared, report);
            check_resolved(v, origin, declared, report);
        }
        _ => {}
    }
}

/// Whether `def` contains `target` by value (not behind a list or map).
fn contains_inline(
    def: &TypeDef,
    target: &str,
    declared: &HashMap<&str, &TypeDef>,
    visiting: &mut HashSet<String>,
) -> bool {
    if !visiting.insert(def.name.clone()) {
        return false;
    }
    let types: Vec<&Type> = match &def.kind {
        TypeDefKind::Struct(fields) => fields.iter().map(|f| &f.ty).collect(),
        TypeDefKind::Enum(variants) => variants
            .iter()
            .flat_map(|v| match &v.fields {
                VariantFields::Unit => Vec::new(),
                VariantFields::Tuple(types) => types.iter().collect(),
                VariantFields::Struct(fields) => fields.iter().map(|f| &f.ty).collect(),
            })
            .collect(),
    };
    types.into_iter().any(|ty| {
        inline_named(ty).is_some_and(|name| {
            name == target || declared.get(name).is_some_and(|inner| contains_inline(inner, target, declared, visiting))
        })
    })
}

fn inline_named(ty: &Type) -> Option<&str> {
    match ty {
        Type::Named(name) => Some(name),
        Type::Option(inner) => inline_named(inner),
        _ => None,
    }
}

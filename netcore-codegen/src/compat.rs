//! What changed between two declarations of the same services, and what it breaks (docs/TYPED.md,
//! "Evolving a service").
//!
//! [`compat`] compares an old and a new [`Schema`] and lists every difference, each classified by
//! what it does to a peer still built from the old declaration: [`Impact::Compatible`] when every
//! call the old peer makes or serves keeps working, [`Impact::Breaking`] when some call stops
//! working (the route moves, or the method's layout, and with it its hash, changes). Every change
//! that is not [`Impact::Cosmetic`] also changes the service fingerprint, so in strict mode (one
//! fingerprint for the whole connection) it refuses the connection.

use std::collections::BTreeSet;
use std::fmt;

use crate::model::*;

/// How a change affects a peer built from the old declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impact {
    /// Not seen on the wire nor by any check: docs, argument names, options, method order.
    Cosmetic,
    /// Old peers keep working; the service fingerprint changes (strict mode refuses it).
    Compatible,
    /// Some call between an old and a new peer stops working.
    Breaking,
}

/// One difference between the old and the new declaration.
#[derive(Debug, Clone)]
pub struct Change {
    /// What it does to old peers.
    pub impact: Impact,
    /// What changed, e.g. ``field `email` added to struct `User` ``; for a breaking change, which
    /// methods it breaks.
    pub message: String,
    /// Where the changed item is declared in the old declaration, if it is there.
    pub old: Option<Origin>,
    /// Where it is declared in the new declaration, if it is there.
    pub new: Option<Origin>,
}

impl Change {
    /// The origin to point at: in the new declaration if the item is still there, else in the old.
    pub fn origin(&self) -> Option<&Origin> {
        self.new.as_ref().or(self.old.as_ref())
    }

    /// True for [`Impact::Breaking`].
    pub fn is_breaking(&self) -> bool {
        self.impact == Impact::Breaking
    }
}

impl fmt::Display for Change {
    /// `file:line:col: breaking: message` (the origin as a schema position, or `macro input`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.origin() {
            Some(Origin::Schema { file, line, column }) => write!(f, "{}:{line}:{column}: ", file.display())?,
            Some(Origin::Rust(_)) => f.write_str("macro input: ")?,
            None => {}
        }
        let impact = match self.impact {
            Impact::Cosmetic => "cosmetic",
            Impact::Compatible => "compatible",
            Impact::Breaking => "breaking",
        };
        write!(f, "{impact}: {}", self.message)
    }
}

/// Lists every difference between `old` and `new`, services first (in the new declaration's
/// order, then removed ones), then types. Services are matched by name, or by prefix when a name
/// is gone (a rename); methods, fields and variants by name. An empty list means the two
/// declarations are the same, docs included.
pub fn compat(old: &Schema, new: &Schema) -> Vec<Change> {
    let mut out = Vec::new();
    let mut matched_old = BTreeSet::new();
    for service in &new.services {
        let found = old.services.iter().position(|s| s.name == service.name).or_else(|| {
            old.services
                .iter()
                .position(|s| s.prefix == service.prefix && !new.services.iter().any(|n| n.name == s.name))
        });
        match found {
            Some(index) => {
                matched_old.insert(index);
                services(&old.services[index], service, old, new, &mut out);
            }
            None => out.push(Change {
                impact: Impact::Compatible,
                message: format!("service `{}` added", service.name),
                old: None,
                new: Some(service.origin.clone()),
            }),
        }
    }
    for (index, service) in old.services.iter().enumerate() {
        if !matched_old.contains(&index) {
            out.push(Change {
                impact: Impact::Breaking,
                message: format!("service `{}` removed: every call to it fails", service.name),
                old: Some(service.origin.clone()),
                new: None,
            });
        }
    }
    types(old, new, &mut out);
    out
}

fn services(old: &Service, new: &Service, old_schema: &Schema, new_schema: &Schema, out: &mut Vec<Change>) {
    let at = |impact, message: String| Change {
        impact,
        message,
        old: Some(old.origin.clone()),
        new: Some(new.origin.clone()),
    };
    if old.name != new.name {
        out.push(at(
            Impact::Compatible,
            format!(
                "service `{}` renamed to `{}` (same prefix: routes and method hashes unchanged)",
                old.name, new.name
            ),
        ));
    }
    if old.prefix != new.prefix {
        out.push(at(
            Impact::Breaking,
            format!(
                "prefix of `{}` changed from `{}` to `{}`: every route id changes, every call fails",
                new.name, old.prefix, new.prefix
            ),
        ));
    }
    if old.docs != new.docs {
        out.push(at(Impact::Cosmetic, format!("docs of service `{}` changed", new.name)));
    }
    let old_order: Vec<&str> = old.methods.iter().map(|m| m.name.as_str()).collect();
    let new_order: Vec<&str> =
        new.methods.iter().map(|m| m.name.as_str()).filter(|name| old_order.contains(name)).collect();
    let kept: Vec<&str> = old_order.iter().copied().filter(|name| new_order.contains(name)).collect();
    if kept != new_order {
        out.push(at(Impact::Cosmetic, format!("methods of `{}` reordered", new.name)));
    }
    for method in &new.methods {
        let route = new.route(method);
        match old.methods.iter().find(|m| m.name == method.name) {
            Some(before) => methods(old, before, new, method, old_schema, new_schema, out),
            None => out.push(Change {
                impact: Impact::Compatible,
                message: format!("method `{route}` added (old peers do not call it; calling it on one fails)"),
                old: None,
                new: Some(method.origin.clone()),
            }),
        }
    }
    for method in &old.methods {
        if !new.methods.iter().any(|m| m.name == method.name) {
            out.push(Change {
                impact: Impact::Breaking,
                message: format!("method `{}` removed: old peers calling it fail", old.route(method)),
                old: Some(method.origin.clone()),
                new: None,
            });
        }
    }
}

fn methods(
    old_service: &Service,
    old: &Method,
    new_service: &Service,
    new: &Method,
    old_schema: &Schema,
    new_schema: &Schema,
    out: &mut Vec<Change>,
) {
    let route = new_service.route(new);
    let start = out.len();
    let mut push = |impact, message: String| {
        out.push(Change { impact, message, old: Some(old.origin.clone()), new: Some(new.origin.clone()) })
    };
    if old.kind != new.kind {
        let kind = |k| if k == MethodKind::Call { "a call" } else { "an event" };
        push(Impact::Breaking, format!("method `{route}` changed from {} to {}", kind(old.kind), kind(new.kind)));
    }
    if old.args.len() != new.args.len() {
        push(
            Impact::Breaking,
            format!("method `{route}` takes {} arguments instead of {}", new.args.len(), old.args.len()),
        );
    }
    for (a, b) in old.args.iter().zip(&new.args) {
        if a.ty.ty != b.ty.ty {
            push(
                Impact::Breaking,
                format!(
                    "argument `{}` of `{route}` changed from `{}` to `{}`",
                    b.name,
                    a.ty.ty.canonical(),
                    b.ty.ty.canonical()
                ),
            );
        } else if a.name != b.name {
            push(Impact::Cosmetic, format!("argument `{}` of `{route}` renamed to `{}`", a.name, b.name));
        }
    }
    if old.returns.ty != new.returns.ty {
        push(
            Impact::Breaking,
            format!(
                "result of `{route}` changed from `{}` to `{}`",
                old.returns.ty.canonical(),
                new.returns.ty.canonical()
            ),
        );
    }
    if old.options != new.options {
        push(Impact::Cosmetic, format!("options (priority, timeout, context) of `{route}` changed"));
    }
    if old.docs != new.docs {
        push(Impact::Cosmetic, format!("docs of `{route}` changed"));
    }
    let direct_breaking = out[start..].iter().any(Change::is_breaking);
    let layout_changed =
        old_service.method_layout(old, &old_schema.types) != new_service.method_layout(new, &new_schema.types);
    if layout_changed && !direct_breaking {
        let mut reached = BTreeSet::new();
        for ty in new.args.iter().map(|a| &a.ty.ty).chain([&new.returns.ty]) {
            reach(ty, &new_schema.types, &mut reached);
        }
        let changed: Vec<String> = reached
            .into_iter()
            .filter(|name| {
                let find = |types: &[TypeDef]| types.iter().find(|t| &t.name == name).map(|t| layout_of(t, types));
                find(&old_schema.types) != find(&new_schema.types)
            })
            .map(|name| format!("`{name}`"))
            .collect();
        out.push(Change {
            impact: Impact::Breaking,
            message: format!(
                "layout of `{route}` changed through the types it reaches ({}): its hash differs, calls between \
                 old and new peers fail",
                changed.join(", ")
            ),
            old: Some(old.origin.clone()),
            new: Some(new.origin.clone()),
        });
    }
}

/// The layout of a type's body, to compare two versions of it.
fn layout_of(def: &TypeDef, types: &[TypeDef]) -> String {
    let mut layout = netcore_layout::Layout::new();
    def.describe_body(types, &mut layout);
    layout.into_text()
}

/// Adds the user types `ty` reaches, transitively.
fn reach(ty: &Type, types: &[TypeDef], out: &mut BTreeSet<String>) {
    match ty {
        Type::Option(inner) | Type::List(inner) | Type::Stream(inner) => reach(inner, types, out),
        Type::Map(k, v) => {
            reach(k, types, out);
            reach(v, types, out);
        }
        Type::Named(name) => {
            if !out.insert(name.clone()) {
                return;
            }
            let Some(def) = types.iter().find(|t| &t.name == name) else { return };
            let fields = |fields: &[Field], out: &mut BTreeSet<String>| {
                for field in fields {
                    reach(&field.ty, types, out);
                }
            };
            match &def.kind {
                TypeDefKind::Struct(list) => fields(list, out),
                TypeDefKind::Enum(variants) => {
                    for variant in variants {
                        match &variant.fields {
                            VariantFields::Unit => {}
                            VariantFields::Tuple(list) => list.iter().for_each(|ty| reach(ty, types, out)),
                            VariantFields::Struct(list) => fields(list, out),
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// The methods (routes) of `schema` that reach type `name`.
fn users_of(name: &str, schema: &Schema) -> Vec<String> {
    let mut routes = Vec::new();
    for service in &schema.services {
        for method in &service.methods {
            let mut reached = BTreeSet::new();
            for ty in method.args.iter().map(|a| &a.ty.ty).chain([&method.returns.ty]) {
                reach(ty, &schema.types, &mut reached);
            }
            if reached.contains(name) {
                routes.push(format!("`{}`", service.route(method)));
            }
        }
    }
    routes
}

/// The impact of a change to a type the old methods `users` reach, and its message: breaking iff
/// some old method reaches it.
fn on_users(users: &[String], message: String, unused: &str) -> (Impact, String) {
    if users.is_empty() {
        (Impact::Compatible, format!("{message}{unused}"))
    } else {
        (Impact::Breaking, format!("{message}: breaks {}", users.join(", ")))
    }
}

fn types(old: &Schema, new: &Schema, out: &mut Vec<Change>) {
    // A type gone from the old declaration whose body reappears under a new name is a rename.
    let renamed_from = |def: &TypeDef| {
        old.types.iter().find(|o| {
            !new.types.iter().any(|n| n.name == o.name)
                && layout_of(o, &old.types) == layout_of(def, &new.types)
                && std::mem::discriminant(&o.kind) == std::mem::discriminant(&def.kind)
        })
    };
    for def in &new.types {
        let users = users_of(&def.name, old);
        let impact = if users.is_empty() { Impact::Compatible } else { Impact::Breaking };
        let breaks = |message: String| on_users(&users, message, " (no method of the old declaration uses it)").1;
        let before = match old.types.iter().find(|t| t.name == def.name) {
            Some(before) => before,
            None => {
                match renamed_from(def) {
                    Some(before) => {
                        let (impact, message) = on_users(
                            &users_of(&before.name, old),
                            format!("type `{}` renamed to `{}` (names are in layouts)", before.name, def.name),
                            "",
                        );
                        out.push(Change {
                            impact,
                            message,
                            old: Some(before.origin.clone()),
                            new: Some(def.origin.clone()),
                        });
                    }
                    None => out.push(Change {
                        impact: Impact::Compatible,
                        message: format!("type `{}` added", def.name),
                        old: None,
                        new: Some(def.origin.clone()),
                    }),
                }
                continue;
            }
        };
        if before.docs != def.docs {
            out.push(Change {
                impact: Impact::Cosmetic,
                message: format!("docs of type `{}` changed", def.name),
                old: Some(before.origin.clone()),
                new: Some(def.origin.clone()),
            });
        }
        match (&before.kind, &def.kind) {
            (TypeDefKind::Struct(a), TypeDefKind::Struct(b)) => {
                let a: Vec<Member<'_>> = a.iter().map(Member::field).collect();
                let b: Vec<Member<'_>> = b.iter().map(Member::field).collect();
                members("field", &format!("struct `{}`", def.name), &a, &b, impact, &breaks, out);
            }
            (TypeDefKind::Enum(a), TypeDefKind::Enum(b)) => {
                let a: Vec<Member<'_>> = a.iter().map(Member::variant).collect();
                let b: Vec<Member<'_>> = b.iter().map(Member::variant).collect();
                members("variant", &format!("enum `{}`", def.name), &a, &b, impact, &breaks, out);
            }
            _ => out.push(Change {
                impact,
                message: breaks(format!("type `{}` changed between a struct and an enum", def.name)),
                old: Some(before.origin.clone()),
                new: Some(def.origin.clone()),
            }),
        }
    }
    for def in &old.types {
        let renamed = new.types.iter().any(|n| renamed_from(n).is_some_and(|o| o.name == def.name));
        if !renamed && !new.types.iter().any(|n| n.name == def.name) {
            let (impact, message) = on_users(&users_of(&def.name, old), format!("type `{}` removed", def.name), "");
            out.push(Change { impact, message, old: Some(def.origin.clone()), new: None });
        }
    }
}

/// A field or a variant, reduced to what comparing them needs.
struct Member<'a> {
    name: &'a str,
    /// Its type or payload, canonical.
    shape: String,
    docs: &'a [String],
    origin: &'a Origin,
}

impl<'a> Member<'a> {
    fn field(field: &'a Field) -> Self {
        Self { name: &field.name, shape: field.ty.canonical(), docs: &field.docs, origin: &field.origin }
    }

    fn variant(variant: &'a Variant) -> Self {
        let list = |types: &mut dyn Iterator<Item = String>| types.collect::<Vec<_>>().join(",");
        let shape = match &variant.fields {
            VariantFields::Unit => String::new(),
            VariantFields::Tuple(types) => format!("({})", list(&mut types.iter().map(Type::canonical))),
            VariantFields::Struct(fields) => {
                format!("{{{}}}", list(&mut fields.iter().map(|f| format!("{}:{}", f.name, f.ty.canonical()))))
            }
        };
        Self { name: &variant.name, shape, docs: &variant.docs, origin: &variant.origin }
    }
}

/// Compares the fields (or variants) of one type. Positions matter on the wire (postcard and
/// bincode write fields in order and variants by index), so reordering is a change of its own.
fn members(
    what: &str,
    owner: &str,
    old: &[Member<'_>],
    new: &[Member<'_>],
    impact: Impact,
    breaks: &dyn Fn(String) -> String,
    out: &mut Vec<Change>,
) {
    let change = |impact, message, old: Option<&Origin>, new: Option<&Origin>| Change {
        impact,
        message,
        old: old.cloned(),
        new: new.cloned(),
    };
    let in_old = |name: &str| old.iter().position(|m| m.name == name);
    let in_new = |name: &str| new.iter().position(|m| m.name == name);
    // A rename: same position, same shape, the old name gone and the new one new.
    let renamed = |i: usize| {
        old.get(i).zip(new.get(i)).filter(|(a, b)| {
            a.name != b.name && a.shape == b.shape && in_new(a.name).is_none() && in_old(b.name).is_none()
        })
    };
    for (i, member) in new.iter().enumerate() {
        match in_old(member.name) {
            Some(j) => {
                let before = &old[j];
                if before.shape != member.shape {
                    out.push(change(
                        impact,
                        breaks(format!(
                            "{what} `{}` of {owner} changed from `{}` to `{}`",
                            member.name, before.shape, member.shape
                        )),
                        Some(before.origin),
                        Some(member.origin),
                    ));
                }
                if before.docs != member.docs {
                    out.push(change(
                        Impact::Cosmetic,
                        format!("docs of {what} `{}` of {owner} changed", member.name),
                        Some(before.origin),
                        Some(member.origin),
                    ));
                }
            }
            None => match renamed(i) {
                Some((before, _)) => out.push(change(
                    impact,
                    breaks(format!("{what} `{}` of {owner} renamed to `{}`", before.name, member.name)),
                    Some(before.origin),
                    Some(member.origin),
                )),
                None => out.push(change(
                    impact,
                    breaks(format!("{what} `{}` added to {owner}", member.name)),
                    None,
                    Some(member.origin),
                )),
            },
        }
    }
    for (i, member) in old.iter().enumerate() {
        if in_new(member.name).is_none() && renamed(i).is_none() {
            out.push(change(
                impact,
                breaks(format!("{what} `{}` removed from {owner}", member.name)),
                Some(member.origin),
                None,
            ));
        }
    }
    // Reordering: the members both have, in a different relative order.
    let kept_old: Vec<&str> = old.iter().map(|m| m.name).filter(|n| in_new(n).is_some()).collect();
    let kept_new: Vec<&str> = new.iter().map(|m| m.name).filter(|n| in_old(n).is_some()).collect();
    if kept_old != kept_new {
        let moved =
            kept_new.iter().zip(&kept_old).find(|(a, b)| a != b).and_then(|(a, _)| new.iter().find(|m| m.name == *a));
        out.push(change(
            impact,
            breaks(format!("{what}s of {owner} reordered (positions are on the wire)")),
            None,
            moved.map(|m| m.origin),
        ));
    }
}

//! JSON ⇄ payload bytes through the schema model, with no compile step.
//!
//! ```text
//! serde_json::Value ─ Types::check ─▶ Typed ─ impl Serialize ─▶ codec::encode ─▶ bytes
//! bytes ─ codec::decode_seed(Decode { ty }) ─ impl DeserializeSeed ─▶ serde_json::Value
//! ```
//!
//! [`Typed`] calls the serializer's methods exactly as the serde derives of the generated types do
//! (structs field by field, enums by variant index, `bytes` as a sequence of `u8` like `Vec<u8>`,
//! maps in key order like `BTreeMap`, arguments as a tuple), so any serde codec behind
//! `netcore_runtime::codec` gives the generated client's bytes. Nothing here knows the codec.

use std::collections::HashMap;
use std::fmt;

use netcore_codegen::model::{Method, Schema, Type, TypeDefKind, VariantFields};
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{
    SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple, SerializeTupleVariant,
    Serializer,
};
use serde::Serialize;
use serde_json::{Map, Number, Value};

/// A JSON value that does not fit the schema: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// The path to the value, e.g. `id` or `user.created.millis` or `tags[2]`.
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FitError {}

/// A user type with its names made `'static`, as serde's struct and enum methods want them.
/// Names are leaked once per schema load: the command loads one schema per run.
#[derive(Debug)]
enum Def {
    Struct { name: &'static str, fields: Vec<(&'static str, Type)>, names: &'static [&'static str] },
    Enum { name: &'static str, variants: Vec<VariantDef>, names: &'static [&'static str] },
}

#[derive(Debug)]
struct VariantDef {
    name: &'static str,
    shape: VariantShape,
}

#[derive(Debug)]
enum VariantShape {
    Unit,
    Tuple(Vec<Type>),
    Struct(Vec<(&'static str, Type)>, &'static [&'static str]),
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_names(names: Vec<&'static str>) -> &'static [&'static str] {
    Box::leak(names.into_boxed_slice())
}

fn fields_of(fields: &[netcore_codegen::model::Field]) -> (Vec<(&'static str, Type)>, &'static [&'static str]) {
    let fields: Vec<(&'static str, Type)> = fields.iter().map(|f| (leak(&f.name), f.ty.clone())).collect();
    let names = leak_names(fields.iter().map(|(n, _)| *n).collect());
    (fields, names)
}

/// The user types of a validated schema, by name.
#[derive(Debug, Default)]
pub struct Types {
    defs: HashMap<String, Def>,
}

impl Types {
    /// The types a schema declares (validated: every named type resolves).
    pub fn new(schema: &Schema) -> Self {
        let defs = schema
            .types
            .iter()
            .map(|def| {
                let name = leak(&def.name);
                let made = match &def.kind {
                    TypeDefKind::Struct(fields) => {
                        let (fields, names) = fields_of(fields);
                        Def::Struct { name, fields, names }
                    }
                    TypeDefKind::Enum(variants) => {
                        let variants: Vec<VariantDef> = variants
                            .iter()
                            .map(|v| VariantDef {
                                name: leak(&v.name),
                                shape: match &v.fields {
                                    VariantFields::Unit => VariantShape::Unit,
                                    VariantFields::Tuple(types) => VariantShape::Tuple(types.clone()),
                                    VariantFields::Struct(fields) => {
                                        let (fields, names) = fields_of(fields);
                                        VariantShape::Struct(fields, names)
                                    }
                                },
                            })
                            .collect();
                        let names = leak_names(variants.iter().map(|v| v.name).collect());
                        Def::Enum { name, variants, names }
                    }
                };
                (def.name.clone(), made)
            })
            .collect();
        Self { defs }
    }

    fn def(&self, name: &str) -> &Def {
        self.defs.get(name).expect("a validated schema declares every named type")
    }

    /// Checks `value` against `ty`, giving a value that serializes like the generated type.
    #[cfg(test)]
    pub fn check(&self, ty: &Type, value: &Value) -> Result<Typed, FitError> {
        self.fit(ty, value, &mut Vec::new())
    }

    /// The arguments of `method` from JSON: an object by argument name, an array in order, or
    /// nothing (`null`, `{}` or `[]`) for a method without arguments. Serializes as the tuple the
    /// generated client sends.
    pub fn check_args(&self, method: &Method, value: &Value) -> Result<Typed, FitError> {
        let args = &method.args;
        let fail = |path: &str, message: String| Err(FitError { path: path.into(), message });
        let values: Vec<&Value> = match value {
            Value::Null if args.is_empty() => Vec::new(),
            Value::Object(map) => {
                if let Some(unknown) = map.keys().find(|k| !args.iter().any(|a| &a.name == *k)) {
                    let names: Vec<&str> = args.iter().map(|a| a.name.as_str()).collect();
                    return fail(unknown, format!("no such argument; `{}` takes ({})", method.name, names.join(", ")));
                }
                let mut values = Vec::new();
                for arg in args {
                    match map.get(&arg.name) {
                        Some(v) => values.push(v),
                        None if matches!(arg.ty.ty, Type::Option(_)) => values.push(&Value::Null),
                        None => return fail(&arg.name, format!("missing argument of type {}", arg.ty.ty.canonical())),
                    }
                }
                values
            }
            Value::Array(items) if items.len() == args.len() => items.iter().collect(),
            Value::Array(items) => {
                return fail("", format!("`{}` takes {} arguments, {} given", method.name, args.len(), items.len()))
            }
            other => return fail("", format!("arguments are a JSON object by name or an array, not {}", kind(other))),
        };
        let mut out = Vec::with_capacity(args.len());
        for (arg, v) in args.iter().zip(values) {
            let mut path = vec![arg.name.clone()];
            out.push(self.fit(&arg.ty.ty, v, &mut path)?);
        }
        Ok(if out.is_empty() { Typed::Unit } else { Typed::Tuple(out) })
    }

    fn fit(&self, ty: &Type, value: &Value, path: &mut Vec<String>) -> Result<Typed, FitError> {
        let mismatch = |path: &[String]| FitError {
            path: render_path(path),
            message: format!("expected {}, found {}", ty.canonical(), describe(value)),
        };
        macro_rules! int {
            ($variant:ident, $t:ty) => {{
                let n = match value {
                    Value::Number(n) => n,
                    _ => return Err(mismatch(path)),
                };
                let fits = n
                    .as_u64()
                    .and_then(|n| <$t>::try_from(n).ok())
                    .or_else(|| n.as_i64().and_then(|n| <$t>::try_from(n).ok()));
                match fits {
                    Some(v) => Typed::$variant(v),
                    None => {
                        return Err(FitError {
                            path: render_path(path),
                            message: format!("{n} does not fit in {}", ty.canonical()),
                        })
                    }
                }
            }};
        }
        Ok(match ty {
            Type::Stream(_) => {
                return Err(FitError {
                    path: render_path(path),
                    message: format!("a {} argument cannot be given on the command line", ty.canonical()),
                })
            }
            Type::Unit => match value {
                Value::Null => Typed::Unit,
                _ => return Err(mismatch(path)),
            },
            Type::Bool => Typed::Bool(value.as_bool().ok_or_else(|| mismatch(path))?),
            Type::U8 => int!(U8, u8),
            Type::U16 => int!(U16, u16),
            Type::U32 => int!(U32, u32),
            Type::U64 => int!(U64, u64),
            Type::I8 => int!(I8, i8),
            Type::I16 => int!(I16, i16),
            Type::I32 => int!(I32, i32),
            Type::I64 => int!(I64, i64),
            Type::F32 => Typed::F32(value.as_f64().ok_or_else(|| mismatch(path))? as f32),
            Type::F64 => Typed::F64(value.as_f64().ok_or_else(|| mismatch(path))?),
            Type::String => Typed::Str(value.as_str().ok_or_else(|| mismatch(path))?.to_owned()),
            Type::Bytes => match value {
                // Text is taken as its UTF-8 bytes; an array gives the bytes one by one.
                Value::String(s) => Typed::Bytes(s.as_bytes().to_vec()),
                Value::Array(items) => {
                    let mut bytes = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        path.push(format!("[{i}]"));
                        match item.as_u64().and_then(|b| u8::try_from(b).ok()) {
                            Some(b) => bytes.push(b),
                            None => {
                                let err = FitError {
                                    path: render_path(path),
                                    message: format!("expected a byte 0..=255, found {}", describe(item)),
                                };
                                return Err(err);
                            }
                        }
                        path.pop();
                    }
                    Typed::Bytes(bytes)
                }
                _ => return Err(mismatch(path)),
            },
            Type::Option(inner) => match value {
                Value::Null => Typed::None,
                v => Typed::Some(Box::new(self.fit(inner, v, path)?)),
            },
            Type::List(inner) => {
                let items = value.as_array().ok_or_else(|| mismatch(path))?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    out.push(self.fit(inner, item, path)?);
                    path.pop();
                }
                Typed::Seq(out)
            }
            Type::Map(k, v_ty) => {
                // An object (keys are text, parsed as the key type) or a list of [key, value] pairs.
                let pairs: Vec<(Value, &Value)> = match value {
                    Value::Object(map) => map.iter().map(|(key, v)| (key_from_text(k, key), v)).collect(),
                    Value::Array(items) => {
                        let mut pairs = Vec::new();
                        for (i, item) in items.iter().enumerate() {
                            match item.as_array().map(Vec::as_slice) {
                                Some([key, v]) => pairs.push((key.clone(), v)),
                                _ => {
                                    path.push(format!("[{i}]"));
                                    let err = FitError {
                                        path: render_path(path),
                                        message: format!("expected a [key, value] pair, found {}", describe(item)),
                                    };
                                    return Err(err);
                                }
                            }
                        }
                        pairs
                    }
                    _ => return Err(mismatch(path)),
                };
                let mut out = Vec::with_capacity(pairs.len());
                for (key, v) in pairs {
                    path.push(format!("[{}]", key_text(&key)));
                    let key = self.fit(k, &key, path)?;
                    let v = self.fit(v_ty, v, path)?;
                    path.pop();
                    out.push((key, v));
                }
                // BTreeMap order: by the key's Ord; a later duplicate replaces an earlier one.
                out.sort_by(|a, b| a.0.cmp_key(&b.0));
                out.dedup_by(|later, earlier| {
                    let same = later.0.cmp_key(&earlier.0) == std::cmp::Ordering::Equal;
                    if same {
                        std::mem::swap(later, earlier);
                    }
                    same
                });
                Typed::Map(out)
            }
            Type::Named(name) => match self.def(name) {
                Def::Struct { name, fields, .. } => {
                    let map = value.as_object().ok_or_else(|| mismatch(path))?;
                    Typed::Struct(name, self.fit_fields(fields, map, path)?)
                }
                Def::Enum { name, variants, .. } => {
                    let (tag, body) = match value {
                        Value::String(tag) => (tag.as_str(), None),
                        Value::Object(map) if map.len() == 1 => {
                            let (tag, body) = map.iter().next().expect("one entry");
                            (tag.as_str(), Some(body))
                        }
                        _ => {
                            return Err(FitError {
                                path: render_path(path),
                                message: format!(
                                    "expected {name}: \"Variant\" or {{\"Variant\": …}}, found {}",
                                    describe(value)
                                ),
                            })
                        }
                    };
                    let Some(index) = variants.iter().position(|v| v.name == tag) else {
                        let names: Vec<&str> = variants.iter().map(|v| v.name).collect();
                        return Err(FitError {
                            path: render_path(path),
                            message: format!("`{tag}` is not a variant of {name} ({})", names.join(", ")),
                        });
                    };
                    let variant = &variants[index];
                    path.push(variant.name.to_owned());
                    let body = body.unwrap_or(&Value::Null);
                    let shape = match &variant.shape {
                        VariantShape::Unit => match body {
                            Value::Null => VariantBody::Unit,
                            _ => return Err(FitError { path: render_path(path), message: "carries no value".into() }),
                        },
                        VariantShape::Tuple(types) if types.len() == 1 => {
                            VariantBody::Newtype(Box::new(self.fit(&types[0], body, path)?))
                        }
                        VariantShape::Tuple(types) => {
                            let items = match body {
                                Value::Array(items) if items.len() == types.len() => items,
                                _ => {
                                    return Err(FitError {
                                        path: render_path(path),
                                        message: format!(
                                            "expected an array of {} values, found {}",
                                            types.len(),
                                            describe(body)
                                        ),
                                    })
                                }
                            };
                            let mut out = Vec::new();
                            for (i, (t, item)) in types.iter().zip(items).enumerate() {
                                path.push(format!("[{i}]"));
                                out.push(self.fit(t, item, path)?);
                                path.pop();
                            }
                            VariantBody::Tuple(out)
                        }
                        VariantShape::Struct(fields, _) => {
                            let map = body.as_object().ok_or_else(|| FitError {
                                path: render_path(path),
                                message: format!("expected an object of fields, found {}", describe(body)),
                            })?;
                            VariantBody::Struct(self.fit_fields(fields, map, path)?)
                        }
                    };
                    path.pop();
                    Typed::Variant { ty: name, index: index as u32, name: variant.name, body: shape }
                }
            },
        })
    }

    fn fit_fields(
        &self,
        fields: &[(&'static str, Type)],
        map: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Vec<(&'static str, Typed)>, FitError> {
        if let Some(unknown) = map.keys().find(|k| !fields.iter().any(|(n, _)| n == k)) {
            path.push(unknown.clone());
            let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
            return Err(FitError {
                path: render_path(path),
                message: format!("no such field (fields: {})", names.join(", ")),
            });
        }
        let mut out = Vec::with_capacity(fields.len());
        for (name, ty) in fields {
            path.push((*name).to_owned());
            let value = match map.get(*name) {
                Some(v) => v,
                // Like serde's derive: a missing optional field is `None`.
                None if matches!(ty, Type::Option(_)) => &Value::Null,
                None => {
                    return Err(FitError {
                        path: render_path(path),
                        message: format!("missing field of type {}", ty.canonical()),
                    })
                }
            };
            out.push((*name, self.fit(ty, value, path)?));
            path.pop();
        }
        Ok(out)
    }

    /// A seed decoding a payload of type `ty` to JSON.
    pub fn decoder<'a>(&'a self, ty: &'a Type) -> Decode<'a> {
        Decode { types: self, ty }
    }

    /// A default value of `ty` (zero, empty, `None`, the first variant with default fields), for
    /// `netcore serve --mock`.
    pub fn default_of(&self, ty: &Type) -> Typed {
        match ty {
            Type::Unit => Typed::Unit,
            Type::Bool => Typed::Bool(false),
            Type::U8 => Typed::U8(0),
            Type::U16 => Typed::U16(0),
            Type::U32 => Typed::U32(0),
            Type::U64 => Typed::U64(0),
            Type::I8 => Typed::I8(0),
            Type::I16 => Typed::I16(0),
            Type::I32 => Typed::I32(0),
            Type::I64 => Typed::I64(0),
            Type::F32 => Typed::F32(0.0),
            Type::F64 => Typed::F64(0.0),
            Type::String => Typed::Str(String::new()),
            Type::Bytes | Type::Stream(_) => Typed::Bytes(Vec::new()),
            Type::Option(_) => Typed::None,
            Type::List(_) => Typed::Seq(Vec::new()),
            Type::Map(..) => Typed::Map(Vec::new()),
            Type::Named(name) => match self.def(name) {
                Def::Struct { name, fields, .. } => {
                    Typed::Struct(name, fields.iter().map(|(n, t)| (*n, self.default_of(t))).collect())
                }
                Def::Enum { name, variants, .. } => {
                    // Validation does not allow an enum without variants.
                    let first = &variants[0];
                    let body = match &first.shape {
                        VariantShape::Unit => VariantBody::Unit,
                        VariantShape::Tuple(types) if types.len() == 1 => {
                            VariantBody::Newtype(Box::new(self.default_of(&types[0])))
                        }
                        VariantShape::Tuple(types) => {
                            VariantBody::Tuple(types.iter().map(|t| self.default_of(t)).collect())
                        }
                        VariantShape::Struct(fields, _) => {
                            VariantBody::Struct(fields.iter().map(|(n, t)| (*n, self.default_of(t))).collect())
                        }
                    };
                    Typed::Variant { ty: name, index: 0, name: first.name, body }
                }
            },
        }
    }
}

fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn describe(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 40 {
        let mut at = 37;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push('…');
    }
    format!("{} {text}", kind(value))
}

/// A JSON object key as a value of the map's key type: text stays text, numbers and booleans parse.
fn key_from_text(ty: &Type, key: &str) -> Value {
    match ty {
        Type::String | Type::Bytes => Value::String(key.to_owned()),
        _ => serde_json::from_str(key).unwrap_or_else(|_| Value::String(key.to_owned())),
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON value checked against a schema type: serializes as the generated Rust type does.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// `()`, or a method without arguments.
    Unit,
    /// `bool`
    Bool(bool),
    /// `u8`
    U8(u8),
    /// `u16`
    U16(u16),
    /// `u32`
    U32(u32),
    /// `u64`
    U64(u64),
    /// `i8`
    I8(i8),
    /// `i16`
    I16(i16),
    /// `i32`
    I32(i32),
    /// `i64`
    I64(i64),
    /// `f32`
    F32(f32),
    /// `f64`
    F64(f64),
    /// `string`
    Str(String),
    /// `bytes`: a `Vec<u8>`, a sequence of `u8`.
    Bytes(Vec<u8>),
    /// `option<T>` absent.
    None,
    /// `option<T>` present.
    Some(Box<Typed>),
    /// `list<T>`
    Seq(Vec<Typed>),
    /// `map<K, V>`, in key order.
    Map(Vec<(Typed, Typed)>),
    /// A struct's fields, in declaration order.
    Struct(&'static str, Vec<(&'static str, Typed)>),
    /// An enum variant.
    Variant { ty: &'static str, index: u32, name: &'static str, body: VariantBody },
    /// A method's arguments.
    Tuple(Vec<Typed>),
}

/// What an enum variant carries.
#[derive(Debug, Clone, PartialEq)]
pub enum VariantBody {
    /// Nothing.
    Unit,
    /// One unnamed value.
    Newtype(Box<Typed>),
    /// Several unnamed values.
    Tuple(Vec<Typed>),
    /// Named fields.
    Struct(Vec<(&'static str, Typed)>),
}

impl Typed {
    /// Key order as `BTreeMap` has it for the key types a map may have.
    fn cmp_key(&self, other: &Typed) -> std::cmp::Ordering {
        use Typed::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (U8(a), U8(b)) => a.cmp(b),
            (U16(a), U16(b)) => a.cmp(b),
            (U32(a), U32(b)) => a.cmp(b),
            (U64(a), U64(b)) => a.cmp(b),
            (I8(a), I8(b)) => a.cmp(b),
            (I16(a), I16(b)) => a.cmp(b),
            (I32(a), I32(b)) => a.cmp(b),
            (I64(a), I64(b)) => a.cmp(b),
            (F32(a), F32(b)) => a.total_cmp(b),
            (F64(a), F64(b)) => a.total_cmp(b),
            (Str(a), Str(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => a.cmp_key(b),
            (Seq(a), Seq(b)) | (Tuple(a), Tuple(b)) => {
                a.iter().zip(b).map(|(x, y)| x.cmp_key(y)).find(|o| o.is_ne()).unwrap_or(a.len().cmp(&b.len()))
            }
            (Variant { index: a, .. }, Variant { index: b, .. }) => a.cmp(b),
            _ => std::cmp::Ordering::Equal,
        }
    }
}

impl Serialize for Typed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Typed::Unit => s.serialize_unit(),
            Typed::Bool(v) => s.serialize_bool(*v),
            Typed::U8(v) => s.serialize_u8(*v),
            Typed::U16(v) => s.serialize_u16(*v),
            Typed::U32(v) => s.serialize_u32(*v),
            Typed::U64(v) => s.serialize_u64(*v),
            Typed::I8(v) => s.serialize_i8(*v),
            Typed::I16(v) => s.serialize_i16(*v),
            Typed::I32(v) => s.serialize_i32(*v),
            Typed::I64(v) => s.serialize_i64(*v),
            Typed::F32(v) => s.serialize_f32(*v),
            Typed::F64(v) => s.serialize_f64(*v),
            Typed::Str(v) => s.serialize_str(v),
            // `Vec<u8>` serializes as a sequence of `u8`, not with `serialize_bytes`.
            Typed::Bytes(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for b in v {
                    seq.serialize_element(b)?;
                }
                seq.end()
            }
            Typed::None => s.serialize_none(),
            Typed::Some(v) => s.serialize_some(v.as_ref()),
            Typed::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Typed::Map(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Typed::Struct(name, fields) => {
                let mut st = s.serialize_struct(name, fields.len())?;
                for (field, v) in fields {
                    st.serialize_field(field, v)?;
                }
                st.end()
            }
            Typed::Variant { ty, index, name, body } => match body {
                VariantBody::Unit => s.serialize_unit_variant(ty, *index, name),
                VariantBody::Newtype(v) => s.serialize_newtype_variant(ty, *index, name, v.as_ref()),
                VariantBody::Tuple(items) => {
                    let mut tv = s.serialize_tuple_variant(ty, *index, name, items.len())?;
                    for item in items {
                        tv.serialize_field(item)?;
                    }
                    tv.end()
                }
                VariantBody::Struct(fields) => {
                    let mut sv = s.serialize_struct_variant(ty, *index, name, fields.len())?;
                    for (field, v) in fields {
                        sv.serialize_field(field, v)?;
                    }
                    sv.end()
                }
            },
            Typed::Tuple(items) => {
                let mut tuple = s.serialize_tuple(items.len())?;
                for item in items {
                    tuple.serialize_element(item)?;
                }
                tuple.end()
            }
        }
    }
}

/// Decodes the arguments of a method (the tuple the generated client sends) to a JSON object by
/// argument name, for `dump` and `tap`.
#[derive(Clone, Copy)]
pub struct DecodeArgs<'a> {
    types: &'a Types,
    method: &'a Method,
}

impl Types {
    /// A seed decoding the arguments of `method` to a JSON object by name.
    pub fn args_decoder<'a>(&'a self, method: &'a Method) -> DecodeArgs<'a> {
        DecodeArgs { types: self, method }
    }
}

impl<'de> DeserializeSeed<'de> for DecodeArgs<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.method.args.is_empty() {
            d.deserialize_unit(ArgsVisitor(self))
        } else {
            d.deserialize_tuple(self.method.args.len(), ArgsVisitor(self))
        }
    }
}

struct ArgsVisitor<'a>(DecodeArgs<'a>);

impl<'de> Visitor<'de> for ArgsVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} argument(s) of `{}`", self.0.method.args.len(), self.0.method.name)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Object(Map::new()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        for (i, arg) in self.0.method.args.iter().enumerate() {
            let value = seq
                .next_element_seed(self.0.types.decoder(&arg.ty.ty))?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            out.insert(arg.name.clone(), value);
        }
        Ok(Value::Object(out))
    }
}

/// Decodes a value of a schema type to JSON, calling the deserializer as the generated type's
/// derive does (so non-self-describing codecs work): enums as externally tagged JSON, `bytes` as
/// an array of numbers, maps as objects (non-text keys as their JSON text).
#[derive(Clone, Copy)]
pub struct Decode<'a> {
    types: &'a Types,
    ty: &'a Type,
}

impl<'a> Decode<'a> {
    fn of(&self, ty: &'a Type) -> Decode<'a> {
        Decode { types: self.types, ty }
    }
}

impl<'de> DeserializeSeed<'de> for Decode<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let visitor = JsonVisitor { seed: self };
        match self.ty {
            Type::Unit => d.deserialize_unit(visitor),
            Type::Bool => d.deserialize_bool(visitor),
            Type::U8 => d.deserialize_u8(visitor),
            Type::U16 => d.deserialize_u16(visitor),
            Type::U32 => d.deserialize_u32(visitor),
            Type::U64 => d.deserialize_u64(visitor),
            Type::I8 => d.deserialize_i8(visitor),
            Type::I16 => d.deserialize_i16(visitor),
            Type::I32 => d.deserialize_i32(visitor),
            Type::I64 => d.deserialize_i64(visitor),
            Type::F32 => d.deserialize_f32(visitor),
            Type::F64 => d.deserialize_f64(visitor),
            Type::String => d.deserialize_string(visitor),
            Type::Bytes | Type::List(_) | Type::Stream(_) => d.deserialize_seq(visitor),
            Type::Option(_) => d.deserialize_option(visitor),
            Type::Map(..) => d.deserialize_map(visitor),
            Type::Named(name) => match self.types.def(name) {
                Def::Struct { name, names, .. } => d.deserialize_struct(name, names, visitor),
                Def::Enum { name, names, .. } => d.deserialize_enum(name, names, visitor),
            },
        }
    }
}

struct JsonVisitor<'a> {
    seed: Decode<'a>,
}

macro_rules! visit_number {
    ($($method:ident($t:ty)),*) => {$(
        fn $method<E: de::Error>(self, v: $t) -> Result<Value, E> {
            Ok(Value::from(v))
        }
    )*};
}

impl<'de> Visitor<'de> for JsonVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value of type {}", self.seed.ty.canonical())
    }

    visit_number!(
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64)
    );

    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Value, E> {
        // Through the shortest decimal form of the f32, so 21.5f32 prints 21.5, not 21.5000…
        let text = v.to_string();
        Ok(text.parse::<f64>().ok().and_then(Number::from_f64).map_or(Value::Null, Value::Number))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Array(v.iter().map(|b| Value::from(*b)).collect()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.seed.ty {
            Type::Option(inner) => self.seed.of(inner).deserialize(d),
            _ => Err(de::Error::invalid_type(de::Unexpected::Option, &self)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        match self.seed.ty {
            Type::Bytes => {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(Value::from(b));
                }
                Ok(Value::Array(out))
            }
            Type::List(inner) => {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element_seed(self.seed.of(inner))? {
                    out.push(v);
                }
                Ok(Value::Array(out))
            }
            Type::Named(name) => match self.seed.types.def(name) {
                Def::Struct { fields, .. } => FieldsVisitor { seed: self.seed, fields }.visit_seq(seq),
                Def::Enum { .. } => Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
            },
            _ => Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        match self.seed.ty {
            Type::Map(k, v) => {
                let mut out = Map::new();
                while let Some(key) = map.next_key_seed(self.seed.of(k))? {
                    let value = map.next_value_seed(self.seed.of(v))?;
                    out.insert(key_text(&key), value);
                }
                Ok(Value::Object(out))
            }
            // A self-describing codec may give a struct as a map of field names.
            Type::Named(name) => match self.seed.types.def(name) {
                Def::Struct { fields, .. } => FieldsVisitor { seed: self.seed, fields }.visit_map(map),
                Def::Enum { .. } => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
            },
            _ => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let Type::Named(name) = self.seed.ty else {
            return Err(de::Error::invalid_type(de::Unexpected::Enum, &self));
        };
        let Def::Enum { variants, .. } = self.seed.types.def(name) else {
            return Err(de::Error::invalid_type(de::Unexpected::Enum, &self));
        };
        let (index, access) = data.variant_seed(VariantIndex { variants })?;
        let variant = &variants[index];
        let body = match &variant.shape {
            VariantShape::Unit => {
                access.unit_variant()?;
                return Ok(Value::String(variant.name.to_owned()));
            }
            VariantShape::Tuple(types) if types.len() == 1 => access.newtype_variant_seed(self.seed.of(&types[0]))?,
            VariantShape::Tuple(types) => access.tuple_variant(types.len(), TupleVisitor { seed: self.seed, types })?,
            VariantShape::Struct(fields, names) => {
                access.struct_variant(names, FieldsVisitor { seed: self.seed, fields })?
            }
        };
        let mut out = Map::new();
        out.insert(variant.name.to_owned(), body);
        Ok(Value::Object(out))
    }
}

/// Reads a variant's identifier: its index (compact codecs) or its name (self-describing ones).
struct VariantIndex<'a> {
    variants: &'a [VariantDef],
}

impl<'de> DeserializeSeed<'de> for VariantIndex<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for VariantIndex<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a variant index below {}", self.variants.len())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        usize::try_from(v)
            .ok()
            .filter(|&i| i < self.variants.len())
            .ok_or_else(|| de::Error::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.variants.iter().position(|x| x.name == v).ok_or_else(|| {
            de::Error::unknown_variant(v, &[]) // the names are in the schema; the codec's message suffices
        })
    }
}

struct TupleVisitor<'a> {
    seed: Decode<'a>,
    types: &'a [Type],
}

impl<'de> Visitor<'de> for TupleVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} values", self.types.len())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        for (i, ty) in self.types.iter().enumerate() {
            out.push(seq.next_element_seed(self.seed.of(ty))?.ok_or_else(|| de::Error::invalid_length(i, &self))?);
        }
        Ok(Value::Array(out))
    }
}

struct FieldsVisitor<'a> {
    seed: Decode<'a>,
    fields: &'a [(&'static str, Type)],
}

impl<'de> Visitor<'de> for FieldsVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} fields", self.fields.len())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        for (i, (field, ty)) in self.fields.iter().enumerate() {
            let v = seq.next_element_seed(self.seed.of(ty))?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
            out.insert((*field).to_owned(), v);
        }
        Ok(Value::Object(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match self.fields.iter().find(|(n, _)| *n == key) {
                Some((_, ty)) => {
                    let v = map.next_value_seed(self.seed.of(ty))?;
                    out.insert(key, v);
                }
                None => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    //! Every type shape of `schemas/*.ncs`: the walker's bytes equal the generated types' bytes.

    use std::collections::BTreeMap;
    use std::path::Path;

    use netcore_runtime::codec;
    use serde::Serialize;
    use serde_json::json;

    use super::*;

    #[allow(dead_code)]
    mod users {
        netcore::include_schema!("users");
    }

    #[allow(dead_code)]
    mod telemetry {
        netcore::include_schema!("telemetry");
    }

    fn load(stem: &str) -> (Schema, Types) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas").join(format!("{stem}.ncs"));
        let (schema, _) = netcore_codegen::load(&path).expect("the example schemas are valid");
        let types = Types::new(&schema);
        (schema, types)
    }

    fn ty(text: &str) -> Type {
        // Only the shapes the tests use.
        match text {
            "User" | "UserStatus" | "Reading" | "Command" | "Timestamp" => Type::Named(text.into()),
            "option<User>" => Type::Option(Box::new(Type::Named("User".into()))),
            "list<Reading>" => Type::List(Box::new(Type::Named("Reading".into()))),
            "map<string,string>" => Type::Map(Box::new(Type::String), Box::new(Type::String)),
            other => Type::scalar(other).expect("a scalar"),
        }
    }

    /// The generated value's JSON (serde_json of the derives) fits the schema type, encodes to
    /// the same bytes through the codec, also serializes to the same JSON (a self-describing
    /// serializer sees the same calls), and decodes back to that JSON.
    fn same<T: Serialize>(types: &Types, ty: &Type, generated: &T) {
        let expected = codec::encode(generated).unwrap();
        let json = serde_json::to_value(generated).unwrap();
        let typed = types.check(ty, &json).unwrap_or_else(|e| panic!("{}: {e}", ty.canonical()));
        assert_eq!(codec::encode(&typed).unwrap(), expected, "{} from {json}", ty.canonical());
        assert_eq!(serde_json::to_value(&typed).unwrap(), json, "{}", ty.canonical());
        let back = codec::decode_seed(types.decoder(ty), &expected).unwrap();
        assert_eq!(back, json, "{}", ty.canonical());
    }

    fn user(email: Option<&str>, tags: &[&str]) -> users::User {
        users::User {
            id: 7,
            name: "Ada".into(),
            email: email.map(Into::into),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created: users::Timestamp { millis: 1_700_000_000_123 },
        }
    }

    #[test]
    fn users_shapes_encode_like_the_generated_types() {
        let (_, types) = load("users");
        same(&types, &ty("User"), &user(Some("ada@example.com"), &["admin", "ops"]));
        same(&types, &ty("User"), &user(None, &[]));
        same(&types, &ty("option<User>"), &Some(user(None, &["x"])));
        same(&types, &ty("option<User>"), &None::<users::User>);
        same(&types, &ty("UserStatus"), &users::UserStatus::Active);
        same(
            &types,
            &ty("UserStatus"),
            &users::UserStatus::Suspended { reason: "spam".into(), until: Some(users::Timestamp { millis: u64::MAX }) },
        );
        same(&types, &ty("UserStatus"), &users::UserStatus::Suspended { reason: String::new(), until: None });
        same(&types, &ty("UserStatus"), &users::UserStatus::Deleted(300));
        for n in [0u32, 1, 127, 128, 250, 251, 65_535, 65_536, u32::MAX] {
            same(&types, &ty("u32"), &n);
        }
        same(&types, &ty("bool"), &true);
    }

    #[test]
    fn telemetry_shapes_encode_like_the_generated_types() {
        let (_, types) = load("telemetry");
        let reading = |sensor: &str, value: f64| telemetry::Reading {
            sensor: sensor.into(),
            value,
            at: telemetry::Timestamp { millis: 42 },
        };
        same(&types, &ty("list<Reading>"), &vec![reading("temp", 21.5), reading("ütf-8 ✓", -0.1)]);
        same(&types, &ty("list<Reading>"), &Vec::<telemetry::Reading>::new());
        same(&types, &ty("Command"), &telemetry::Command::Reboot);
        same(&types, &ty("Command"), &telemetry::Command::SetRate { hz: 1000 });
        same(&types, &ty("Command"), &telemetry::Command::Calibrate("gyro".into(), 0.25));
        let settings: BTreeMap<String, String> =
            [("rate", "10"), ("mode", "fast"), ("a", "")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        same(&types, &ty("map<string,string>"), &settings);
        same(&types, &ty("bytes"), &vec![0u8, 1, 255, 128]);
        same(&types, &ty("f64"), &1.0e-300f64);
        same(&types, &ty("f32"), &3.25f32);
    }

    #[test]
    fn arguments_decode_back_to_an_object_by_name() {
        let (schema, types) = load("users");
        let users = &schema.services[0];
        for (name, args) in [
            ("get", json!({"id": 7})),
            ("create", json!({"name": "Ada", "email": null})),
            ("list", json!({"prefix": "a", "limit": 3})),
        ] {
            let method = users.methods.iter().find(|m| m.name == name).unwrap();
            let bytes = codec::encode(&types.check_args(method, &args).unwrap()).unwrap();
            assert_eq!(codec::decode_seed(types.args_decoder(method), &bytes).unwrap(), args, "{name}");
            assert!(codec::decode_seed(types.args_decoder(method), &bytes[..bytes.len() - 1]).is_err(), "{name}");
        }
    }

    #[test]
    fn arguments_encode_as_the_generated_clients_tuple() {
        let (schema, types) = load("users");
        let users = &schema.services[0];
        let method = |name: &str| users.methods.iter().find(|m| m.name == name).unwrap();
        let args = types.check_args(method("get"), &json!({"id": 7})).unwrap();
        assert_eq!(codec::encode(&args).unwrap(), codec::encode(&(7u32,)).unwrap());
        let args = types.check_args(method("create"), &json!(["Ada", "ada@example.com"])).unwrap();
        assert_eq!(
            codec::encode(&args).unwrap(),
            codec::encode(&("Ada".to_string(), Some("ada@example.com".to_string()))).unwrap()
        );
        // A missing optional argument is None, like a missing optional field.
        let args = types.check_args(method("create"), &json!({"name": "Ada"})).unwrap();
        assert_eq!(codec::encode(&args).unwrap(), codec::encode(&("Ada".to_string(), None::<String>)).unwrap());
        let (schema, types) = load("telemetry");
        let read_all = schema.services[0].methods.iter().find(|m| m.name == "read_all").unwrap();
        for none in [json!(null), json!({}), json!([])] {
            let args = types.check_args(read_all, &none).unwrap();
            assert_eq!(codec::encode(&args).unwrap(), codec::encode(&()).unwrap());
        }
        let command = schema.services[0].methods.iter().find(|m| m.name == "command").unwrap();
        let args = types.check_args(command, &json!({"command": {"SetRate": {"hz": 5}}})).unwrap();
        assert_eq!(codec::encode(&args).unwrap(), codec::encode(&(telemetry::Command::SetRate { hz: 5 },)).unwrap());
    }

    #[test]
    fn values_that_do_not_fit_name_the_field() {
        let (schema, types) = load("users");
        let users = &schema.services[0];
        let get = users.methods.iter().find(|m| m.name == "get").unwrap();
        let cases = [
            (
                ty("User"),
                json!({"id": 1, "name": "a", "tags": [], "created": {"millis": "soon"}}),
                "`created.millis`: expected u64, found a string \"soon\"",
            ),
            (
                ty("User"),
                json!({"id": 1, "name": "a", "tags": ["ok", 3], "created": {"millis": 1}}),
                "`tags[1]`: expected string, found a number 3",
            ),
            (
                ty("User"),
                json!({"id": 1, "tags": [], "created": {"millis": 1}}),
                "`name`: missing field of type string",
            ),
            (
                ty("User"),
                json!({"id": 1, "nmae": "a"}),
                "`nmae`: no such field (fields: id, name, email, tags, created)",
            ),
            (ty("UserStatus"), json!("Gone"), "`Gone` is not a variant of UserStatus (Active, Suspended, Deleted)"),
            (ty("UserStatus"), json!({"Deleted": -1}), "`Deleted`: -1 does not fit in u64"),
            (ty("u32"), json!(4_294_967_296u64), "4294967296 does not fit in u32"),
        ];
        for (ty, value, message) in cases {
            assert_eq!(types.check(&ty, &value).unwrap_err().to_string(), message, "{value}");
        }
        let err = types.check_args(get, &json!({"id": -3})).unwrap_err();
        assert_eq!(err.to_string(), "`id`: -3 does not fit in u32");
        let err = types.check_args(get, &json!({"user": 3})).unwrap_err();
        assert_eq!(err.to_string(), "`user`: no such argument; `get` takes (id)");
    }

    #[test]
    fn a_truncated_answer_is_an_error() {
        let (_, types) = load("users");
        let bytes = codec::encode(&Some(user(None, &["x"]))).unwrap();
        assert!(codec::decode_seed(types.decoder(&ty("option<User>")), &bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(codec::decode_seed(types.decoder(&ty("option<User>")), &longer).is_err());
    }
}

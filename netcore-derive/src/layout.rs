//! `#[derive(netcore::Schema)]`: lowers a struct or enum into the emitter's [`LayoutDef`] and
//! emits its `Schema` impl through netcore-codegen (STYLE §4).

use netcore_codegen::emit::{emit_layout_impl, LayoutDef, Payload};
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Data, DeriveInput, Error, Fields};

pub(crate) fn expand(item: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(item) {
        Ok(input) => input,
        Err(err) => return err.into_compile_error(),
    };
    match lower(&input) {
        Ok(def) => emit_layout_impl(&input.ident, &def),
        Err(err) => err.into_compile_error(),
    }
}

fn lower(input: &DeriveInput) -> Result<LayoutDef, Error> {
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        return Err(Error::new_spanned(
            &input.generics,
            "generic types have no single layout; derive `netcore::Schema` on a concrete type",
        ));
    }
    let mut refused: Option<Error> = None;
    let fields: Vec<&Fields> = match &input.data {
        Data::Struct(data) => vec![&data.fields],
        Data::Enum(data) => data.variants.iter().map(|v| &v.fields).collect(),
        Data::Union(_) => Vec::new(),
    };
    for field in fields.into_iter().flat_map(|fields| fields.iter()) {
        for err in not_in_schema_language(field.ty.to_token_stream()) {
            match &mut refused {
                Some(all) => all.combine(err),
                None => refused = Some(err),
            }
        }
    }
    if let Some(err) = refused {
        return Err(err);
    }
    match &input.data {
        Data::Struct(data) => Ok(LayoutDef::Struct(payload(&data.fields))),
        Data::Enum(data) => {
            Ok(LayoutDef::Enum(data.variants.iter().map(|v| (v.ident.to_string(), payload(&v.fields))).collect()))
        }
        Data::Union(data) => {
            Err(Error::new_spanned(data.union_token, "unions cannot cross the wire; use an enum or a struct"))
        }
    }
}

fn payload(fields: &Fields) -> Payload {
    match fields {
        Fields::Unit => Payload::Unit,
        Fields::Unnamed(fields) => Payload::Tuple(fields.unnamed.iter().map(|f| f.ty.to_token_stream()).collect()),
        Fields::Named(fields) => Payload::Struct(
            fields
                .named
                .iter()
                .map(|f| (f.ident.as_ref().map(ToString::to_string).unwrap_or_default(), f.ty.to_token_stream()))
                .collect(),
        ),
    }
}

/// Errors for the types a field's type mentions that the schema language does not have (`u128`,
/// `i128`, `char`, also inside `Vec<…>` and the like): the service macro refuses them in method
/// signatures, and a schema could not declare them, so user types refuse them too.
fn not_in_schema_language(tokens: TokenStream) -> Vec<Error> {
    let mut out = Vec::new();
    for tree in tokens {
        match tree {
            proc_macro2::TokenTree::Ident(ident) => {
                let instead = match ident.to_string().as_str() {
                    "u128" | "i128" => "its integers go up to 64 bits: use `u64`/`i64`, two of them, or `Vec<u8>`",
                    "char" => "use `String` for text or `u32` for a code point",
                    _ => continue,
                };
                let message = format!(
                    "`{ident}` is not supported: the schema language has no such type, so a peer built from a \
                     schema could not declare it; {instead}"
                );
                out.push(Error::new(ident.span(), message));
            }
            proc_macro2::TokenTree::Group(group) => out.extend(not_in_schema_language(group.stream())),
            _ => {}
        }
    }
    out
}

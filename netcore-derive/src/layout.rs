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

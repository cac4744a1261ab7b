//! Recursive-descent parser of one schema file (grammar in docs/SCHEMA.md).

use std::path::{Path, PathBuf};

use super::lexer::{Tok, Token};
use super::SchemaError;
use crate::model::*;

/// What one file declares, and the files it imports.
pub(crate) struct Parsed {
    pub schema: Schema,
    pub imports: Vec<(String, usize, usize)>,
}

pub(crate) struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    file: &'a Path,
    source: &'a str,
}

type PResult<T> = Result<T, SchemaError>;

impl<'a> Parser<'a> {
    pub(crate) fn new(tokens: Vec<Token>, file: &'a Path, source: &'a str) -> Self {
        Self { tokens, pos: 0, file, source }
    }

    pub(crate) fn parse_file(mut self) -> PResult<Parsed> {
        let mut parsed = Parsed { schema: Schema::default(), imports: Vec::new() };
        loop {
            let docs = self.docs();
            let token = self.peek().clone();
            match &token.tok {
                Tok::Eof if docs.is_empty() => return Ok(parsed),
                Tok::Ident(word) if word == "import" => {
                    self.pos += 1;
                    let path = self.string("a quoted file name after `import`")?;
                    self.punct(';')?;
                    parsed.imports.push((path, token.line, token.column));
                }
                Tok::Ident(word) if word == "struct" => {
                    self.pos += 1;
                    let def = self.structure(docs, &token)?;
                    parsed.schema.types.push(def);
                }
                Tok::Ident(word) if word == "enum" => {
                    self.pos += 1;
                    let def = self.enumeration(docs, &token)?;
                    parsed.schema.types.push(def);
                }
                Tok::Ident(word) if word == "service" => {
                    self.pos += 1;
                    let service = self.service(docs, &token)?;
                    parsed.schema.services.push(service);
                }
                _ => return Err(self.error_at(&token, "expected `import`, `struct`, `enum` or `service`")),
            }
        }
    }

    fn structure(&mut self, docs: Vec<String>, at: &Token) -> PResult<TypeDef> {
        let name = self.ident("a struct name")?;
        self.punct('{')?;
        let fields = self.fields('}')?;
        Ok(TypeDef { name, docs, kind: TypeDefKind::Struct(fields), origin: self.origin(at) })
    }

    fn fields(&mut self, close: char) -> PResult<Vec<Field>> {
        let mut fields = Vec::new();
        loop {
            let docs = self.docs();
            if self.eat_punct(close) {
                return Ok(fields);
            }
            let at = self.peek().clone();
            let name = self.ident("a field name")?;
            self.punct(':')?;
            let ty = self.ty()?;
            fields.push(Field { name, docs, ty, origin: self.origin(&at) });
            if !self.eat_punct(',') {
                self.punct(close)?;
                return Ok(fields);
            }
        }
    }

    fn enumeration(&mut self, docs: Vec<String>, at: &Token) -> PResult<TypeDef> {
        let name = self.ident("an enum name")?;
        self.punct('{')?;
        let mut variants = Vec::new();
        loop {
            let vdocs = self.docs();
            if self.eat_punct('}') {
                break;
            }
            let vat = self.peek().clone();
            let vname = self.ident("a variant name")?;
            let fields = if self.eat_punct('(') {
                let mut types = Vec::new();
                while !self.eat_punct(')') {
                    types.push(self.ty()?);
                    if !self.eat_punct(',') {
                        self.punct(')')?;
                        break;
                    }
                }
                VariantFields::Tuple(types)
            } else if self.eat_punct('{') {
                VariantFields::Struct(self.fields('}')?)
            } else {
                VariantFields::Unit
            };
            variants.push(Variant { name: vname, docs: vdocs, fields, origin: self.origin(&vat) });
            if !self.eat_punct(',') {
                self.punct('}')?;
                break;
            }
        }
        Ok(TypeDef { name, docs, kind: TypeDefKind::Enum(variants), origin: self.origin(at) })
    }

    fn service(&mut self, docs: Vec<String>, at: &Token) -> PResult<Service> {
        let name = self.ident("a service name")?;
        let mut prefix = format!("/{name}");
        while self.eat_punct('@') {
            let option_at = self.peek().clone();
            let option = self.ident("a service option")?;
            self.punct('(')?;
            match option.as_str() {
                "prefix" => prefix = self.string("a quoted route prefix such as \"/user\"")?,
                _ => {
                    return Err(
                        self.error_at(&option_at, &format!("unknown service option `@{option}`; expected `@prefix`"))
                    )
                }
            }
            self.punct(')')?;
        }
        self.punct('{')?;
        let mut methods = Vec::new();
        loop {
            let mdocs = self.docs();
            if self.eat_punct('}') {
                break;
            }
            methods.push(self.method(mdocs)?);
        }
        Ok(Service { name, prefix, docs, methods, visibility: None, origin: self.origin(at) })
    }

    fn method(&mut self, docs: Vec<String>) -> PResult<Method> {
        let at = self.peek().clone();
        let kind = match &at.tok {
            Tok::Ident(w) if w == "rpc" => MethodKind::Call,
            Tok::Ident(w) if w == "event" => MethodKind::Event,
            _ => return Err(self.error_at(&at, "expected `rpc` or `event`")),
        };
        self.pos += 1;
        let name_at = self.peek().clone();
        let name = self.ident("a method name")?;
        self.punct('(')?;
        let mut args = Vec::new();
        while !self.eat_punct(')') {
            let arg_at = self.peek().clone();
            let arg = self.ident("an argument name")?;
            self.punct(':')?;
            let ty = self.ty()?;
            args.push(Arg { name: arg, ty: ty.into(), origin: self.origin(&arg_at) });
            if !self.eat_punct(',') {
                self.punct(')')?;
                break;
            }
        }
        let returns = if matches!(self.peek().tok, Tok::Arrow) {
            let arrow = self.peek().clone();
            self.pos += 1;
            if kind == MethodKind::Event {
                return Err(self.error_at(&arrow, "events are one-way and return nothing; use `rpc` for a call"));
            }
            self.ty()?
        } else {
            Type::Unit
        };
        let mut options = MethodOptions::default();
        while self.eat_punct('@') {
            let option_at = self.peek().clone();
            let option = self.ident("a method option")?;
            if option == "context" {
                // `@context`, a flag: the handler takes the request's context (docs/TYPED.md).
                options.context = true;
                continue;
            }
            self.punct('(')?;
            let value_at = self.peek().clone();
            let value = self.int("a number")?;
            self.punct(')')?;
            match option.as_str() {
                "priority" if value <= 7 => options.priority = Some(value as u8),
                "priority" => return Err(self.error_at(&value_at, "priority must be 0 to 7")),
                "timeout_ms" => options.timeout_ms = Some(value),
                _ => {
                    let message = format!(
                        "unknown method option `@{option}`; expected `@priority(0..7)`, `@timeout_ms(N)` or `@context`"
                    );
                    return Err(self.error_at(&option_at, &message));
                }
            }
        }
        self.punct(';')?;
        Ok(Method { name, docs, kind, args, returns: returns.into(), options, origin: self.origin(&name_at) })
    }

    fn ty(&mut self) -> PResult<Type> {
        let at = self.peek().clone();
        let word = self.ident("a type")?;
        let mut ty = match word.as_str() {
            "option" | "list" | "stream" => {
                self.punct('<')?;
                let inner = Box::new(self.ty()?);
                self.punct('>')?;
                match word.as_str() {
                    "option" => Type::Option(inner),
                    "list" => Type::List(inner),
                    _ => Type::Stream(inner),
                }
            }
            "map" => {
                self.punct('<')?;
                let key = self.ty()?;
                self.punct(',')?;
                let value = self.ty()?;
                self.punct('>')?;
                Type::Map(Box::new(key), Box::new(value))
            }
            other => match Type::scalar(other) {
                Some(scalar) => scalar,
                None if other.starts_with(|c: char| c.is_ascii_uppercase()) => Type::Named(other.to_string()),
                None => {
                    let message = format!(
                        "unknown type `{other}`; expected a scalar (bool, u8..u64, i8..i64, f32, f64, string, bytes), \
                         option<T>, list<T>, map<K, V> or a declared type name"
                    );
                    return Err(self.error_at(&at, &message));
                }
            },
        };
        while self.eat_punct('?') {
            ty = Type::Option(Box::new(ty));
        }
        Ok(ty)
    }

    fn docs(&mut self) -> Vec<String> {
        let mut docs = Vec::new();
        while let Tok::Doc(text) = &self.peek().tok {
            docs.push(text.clone());
            self.pos += 1;
        }
        docs
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.peek().tok == Tok::Punct(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn punct(&mut self, c: char) -> PResult<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            let token = self.peek().clone();
            Err(self.error_at(&token, &format!("expected `{c}`")))
        }
    }

    fn ident(&mut self, what: &str) -> PResult<String> {
        let token = self.peek().clone();
        match token.tok {
            Tok::Ident(word) => {
                self.pos += 1;
                Ok(word)
            }
            _ => Err(self.error_at(&token, &format!("expected {what}"))),
        }
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        let token = self.peek().clone();
        match token.tok {
            Tok::Str(text) => {
                self.pos += 1;
                Ok(text)
            }
            _ => Err(self.error_at(&token, &format!("expected {what}"))),
        }
    }

    fn int(&mut self, what: &str) -> PResult<u64> {
        let token = self.peek().clone();
        match token.tok {
            Tok::Int(value) => {
                self.pos += 1;
                Ok(value)
            }
            _ => Err(self.error_at(&token, &format!("expected {what}"))),
        }
    }

    fn origin(&self, at: &Token) -> Origin {
        Origin::Schema { file: self.file.to_path_buf(), line: at.line, column: at.column }
    }

    fn error_at(&self, at: &Token, message: &str) -> SchemaError {
        let found = match &at.tok {
            Tok::Ident(w) => format!(", found `{w}`"),
            Tok::Str(s) => format!(", found \"{s}\""),
            Tok::Int(n) => format!(", found {n}"),
            Tok::Doc(_) => ", found a doc comment".into(),
            Tok::Punct(c) => format!(", found `{c}`"),
            Tok::Arrow => ", found `->`".into(),
            Tok::Eof => ", found the end of the file".into(),
        };
        SchemaError::new(PathBuf::from(self.file), self.source, at.line, at.column, format!("{message}{found}"))
    }
}

//! Recursive-descent parser of one schema file (grammar in docs/TYPED.md).
//!
//! Errors do not stop it: each is recorded and the parser skips to the next place it can resume
//! (the next field or variant after a `,`, the next method after a `;`, the next top-level item),
//! so that one run reports every error of a file, as validation does. A missing `,` or `;`
//! between two items that parse is reported as such and parsing goes on as if it were there.

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
    /// Every error found so far, in the order of the file.
    errors: Vec<SchemaError>,
}

type PResult<T> = Result<T, SchemaError>;

impl<'a> Parser<'a> {
    pub(crate) fn new(tokens: Vec<Token>, file: &'a Path, source: &'a str) -> Self {
        Self { tokens, pos: 0, file, source, errors: Vec::new() }
    }

    /// The file's declarations, or every error found in it (in the order of the file).
    pub(crate) fn parse_file(mut self) -> Result<Parsed, Vec<SchemaError>> {
        let mut parsed = Parsed { schema: Schema::default(), imports: Vec::new() };
        loop {
            let start = self.pos;
            let docs = self.docs();
            let token = self.peek().clone();
            let item = match &token.tok {
                Tok::Eof if docs.is_empty() => break,
                Tok::Ident(word) if word == "import" => {
                    self.pos += 1;
                    self.string("a quoted file name after `import`").and_then(|path| {
                        self.punct(';')?;
                        parsed.imports.push((path, token.line, token.column));
                        Ok(())
                    })
                }
                Tok::Ident(word) if word == "struct" => {
                    self.pos += 1;
                    self.structure(docs, &token).map(|def| parsed.schema.types.push(def))
                }
                Tok::Ident(word) if word == "enum" => {
                    self.pos += 1;
                    self.enumeration(docs, &token).map(|def| parsed.schema.types.push(def))
                }
                Tok::Ident(word) if word == "service" => {
                    self.pos += 1;
                    self.service(docs, &token).map(|service| parsed.schema.services.push(service))
                }
                _ => Err(self.error_at(&token, "expected `import`, `struct`, `enum` or `service`")),
            };
            if let Err(err) = item {
                self.errors.push(err);
                self.skip_item(start);
            }
        }
        if self.errors.is_empty() {
            Ok(parsed)
        } else {
            Err(self.errors)
        }
    }

    /// After an error in the top-level item that began at token `start`: skips to the next
    /// `import`, `struct`, `enum` or `service` outside the item's braces, or to the end.
    fn skip_item(&mut self, start: usize) {
        let braces = |tok: &Tok| match tok {
            Tok::Punct('{') => 1,
            Tok::Punct('}') => -1,
            _ => 0,
        };
        let mut depth: i64 = self.tokens[start..self.pos.min(self.tokens.len())].iter().map(|t| braces(&t.tok)).sum();
        if self.pos == start {
            self.pos += 1; // the item's first token is the error: never stay on it
        }
        loop {
            let tok = &self.peek().tok;
            match tok {
                Tok::Eof => return,
                Tok::Ident(word) if depth <= 0 && matches!(word.as_str(), "import" | "struct" | "enum" | "service") => {
                    return
                }
                _ => depth += braces(tok),
            }
            self.pos += 1;
        }
    }

    /// After an error inside a list: skips to the next `stop` outside brackets (not consumed), or
    /// to the bracket that closes the list (not consumed), or to the end.
    fn skip_to(&mut self, stop: char) {
        let mut depth = 0usize;
        loop {
            match self.peek().tok {
                Tok::Eof => return,
                Tok::Punct(c) if depth == 0 && c == stop => return,
                Tok::Punct('{' | '(' | '<') => depth += 1,
                Tok::Punct('}' | ')' | '>') if depth == 0 => return,
                Tok::Punct('}' | ')' | '>') => depth -= 1,
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// After an error in a method: skips past its `;`, or to the service's `}` (not consumed), or
    /// to the end. Parentheses and angle brackets are not counted: an error inside them is often
    /// an unbalanced one.
    fn skip_method(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.peek().tok {
                Tok::Eof => return,
                Tok::Punct(';') if depth == 0 => {
                    self.pos += 1;
                    return;
                }
                Tok::Punct('}') if depth == 0 => return,
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => depth -= 1,
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// After an element of a `,`-separated list closed by `close`: whether another element
    /// follows. A `,` is eaten; `close` is eaten and ends the list; a name where the `,` should be
    /// is reported as a missing comma, and the list goes on (`what` names the elements).
    fn separator(&mut self, close: char, what: &str) -> PResult<bool> {
        if self.eat_punct(',') {
            return Ok(true);
        }
        if self.eat_punct(close) {
            return Ok(false);
        }
        let token = self.peek().clone();
        match &token.tok {
            Tok::Ident(word) => {
                let message = format!("missing `,` before `{word}`: separate {what} with commas");
                self.errors.push(self.error_plain(&token, message));
                Ok(true)
            }
            Tok::Doc(_) => {
                let message = format!("missing `,` before this doc comment: separate {what} with commas");
                self.errors.push(self.error_plain(&token, message));
                Ok(true)
            }
            Tok::Eof => Err(self.error_at(&token, &format!("expected `{close}`"))),
            _ => Err(self.error_at(&token, &format!("expected `,` or `{close}`"))),
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
            let field = self.ident("a field name").and_then(|name| {
                self.punct(':')?;
                Ok(Field { name, docs, ty: self.ty()?, origin: self.origin(&at) })
            });
            let more = match field {
                Ok(field) => {
                    fields.push(field);
                    self.separator(close, "fields")
                }
                Err(err) => {
                    self.errors.push(err);
                    Ok(self.recover_element(close))
                }
            };
            if !more? {
                return Ok(fields);
            }
        }
    }

    /// After an error in an element of a `,`-separated list closed by `close`: skips the rest of
    /// the element; whether another element follows (a `,` was found: eaten), or the list is
    /// over (its `close` eaten, or left for the caller if another bracket or the end came first).
    fn recover_element(&mut self, close: char) -> bool {
        self.skip_to(',');
        let more = self.eat_punct(',');
        if !more {
            self.eat_punct(close);
        }
        more
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
            let more = match self.variant(vdocs, &vat) {
                Ok(variant) => {
                    variants.push(variant);
                    self.separator('}', "variants")?
                }
                Err(err) => {
                    self.errors.push(err);
                    self.recover_element('}')
                }
            };
            if !more {
                break;
            }
        }
        Ok(TypeDef { name, docs, kind: TypeDefKind::Enum(variants), origin: self.origin(at) })
    }

    fn variant(&mut self, docs: Vec<String>, at: &Token) -> PResult<Variant> {
        let name = self.ident("a variant name")?;
        let fields = if self.eat_punct('(') {
            let mut types = Vec::new();
            // A trailing comma is allowed, as in fields and arguments.
            while !self.eat_punct(')') {
                types.push(self.ty()?);
                if !self.separator(')', "the variant's types")? {
                    break;
                }
            }
            VariantFields::Tuple(types)
        } else if self.eat_punct('{') {
            VariantFields::Struct(self.fields('}')?)
        } else {
            VariantFields::Unit
        };
        Ok(Variant { name, docs, fields, origin: self.origin(at) })
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
            if matches!(self.peek().tok, Tok::Eof) {
                let token = self.peek().clone();
                return Err(self.error_at(&token, "expected `}`"));
            }
            match self.method(mdocs) {
                Ok(method) => methods.push(method),
                Err(err) => {
                    self.errors.push(err);
                    self.skip_method();
                }
            }
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
        // A trailing comma is allowed, as in fields.
        while !self.eat_punct(')') {
            let arg_at = self.peek().clone();
            let arg = self.ident("an argument name")?;
            self.punct(':')?;
            let ty = self.ty()?;
            args.push(Arg { name: arg, ty: ty.into(), origin: self.origin(&arg_at) });
            if !self.separator(')', "arguments")? {
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
        match &self.peek().tok {
            Tok::Punct(';') => self.pos += 1,
            // The method is whole: say what is missing and go on with the next one.
            Tok::Ident(word) if word == "rpc" || word == "event" => {
                let token = self.peek().clone();
                let message = format!("missing `;` before `{word}`: end each method with `;`");
                self.errors.push(self.error_plain(&token, message));
            }
            Tok::Punct('}') | Tok::Doc(_) => {
                let token = self.peek().clone();
                self.errors
                    .push(self.error_plain(&token, "missing `;` after the method: end each method with `;`".into()));
            }
            _ => self.punct(';')?,
        }
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
                None if matches!(other, "u128" | "i128" | "char" | "usize" | "isize") => {
                    let instead = match other {
                        "u128" | "i128" => "integers go up to 64 bits: use u64 or i64, two of them, or bytes",
                        "char" => "use string for text or u32 for a code point",
                        _ => "use u64 or i64 (the wire sizes do not depend on the platform)",
                    };
                    let message = format!("`{other}` is not in the schema language; {instead}");
                    return Err(self.error_at(&at, &message));
                }
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

    fn error_plain(&self, at: &Token, message: String) -> SchemaError {
        SchemaError::new(PathBuf::from(self.file), self.source, at.line, at.column, message)
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// (line, column, message) of every error of `src`, in order.
    fn errors(src: &str) -> Vec<(usize, usize, String)> {
        match super::super::parse_str_all(src, Path::new("t.ncs")) {
            Ok(_) => Vec::new(),
            Err(all) => all.into_iter().map(|e| (e.line, e.column, e.message)).collect(),
        }
    }

    #[test]
    fn every_error_of_a_file_is_reported() {
        let src = "struct A { a: u33, b: u32 }\n\
                   struct B { x: u32, y: }\n\
                   enum E { One, (u8), Three }\n\
                   service S {\n  rpc ok() -> u32;\n  rpc bad(x) -> u32;\n  rpc fine(y: u8);\n  rpc worse() -> list<;\n}\n\
                   trait T {}\n\
                   struct C { z: i128 }\n";
        let found = errors(src);
        let at: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(at, [(1, 15), (2, 23), (3, 15), (6, 12), (8, 23), (10, 1), (11, 15)], "{found:#?}");
        let needles = [
            "unknown type `u33`",
            "expected a type, found `}`",
            "expected a variant name, found `(`",
            "expected `:`, found `)`",
            "expected a type, found `;`",
            "expected `import`, `struct`, `enum` or `service`, found `trait`",
            "`i128` is not in the schema language; integers go up to 64 bits",
        ];
        for ((_, _, message), needle) in found.iter().zip(needles) {
            assert!(message.contains(needle), "{message:?} should say {needle:?}");
        }
    }

    #[test]
    fn a_missing_comma_or_semicolon_is_reported_as_such() {
        let found = errors("struct P {\n  x: u32\n  unit: bool,\n}\nenum M { Fast Slow }\nservice S { rpc a(x: u32 y: u32) -> u32 rpc b(); }\n");
        let expect = [
            (3, 3, "missing `,` before `unit`: separate fields with commas"),
            (5, 15, "missing `,` before `Slow`: separate variants with commas"),
            (6, 26, "missing `,` before `y`: separate arguments with commas"),
            (6, 41, "missing `;` before `rpc`: end each method with `;`"),
        ];
        let expect: Vec<(usize, usize, String)> = expect.iter().map(|&(l, c, m)| (l, c, m.to_owned())).collect();
        assert_eq!(found, expect);
        assert!(!found.iter().any(|(_, _, m)| m.contains("expected `}`")), "{found:#?}");
    }

    #[test]
    fn parse_str_keeps_the_first_error() {
        let err = super::super::parse_str("struct A { a: u33 }\nstruct B { b: u34 }", Path::new("t.ncs")).unwrap_err();
        assert_eq!((err.line, err.column), (1, 15));
        assert!(err.message.contains("u33"), "{err}");
    }
}

//! Canonical formatting of the schema language (the `netcore fmt` command), comments kept.
//!
//! ```text
//! source ─ schema::parse_str (syntax check, the parser's own errors)
//!        ─ lexer, keeping comments ─▶ tokens + comments ─▶ printer ─▶ canonical source
//! ```
//!
//! The printer walks the tokens by the grammar and decides every space and line break itself:
//! four spaces per brace level, one item per line, `name: type`, `map<K, V>`, `T?`, a trailing
//! comma after every field and variant, none inside parentheses, one blank line between top-level
//! items and at most one (where the source had one) between members. Comments stay where they
//! were: one on a line of its own stays on its own line before what follows it; one after code on
//! the same line stays after that code, at the end of the output line. Formatting keeps the model
//! (every name, type, doc line and option) and is idempotent: `format(format(x)) == format(x)`.

use std::path::Path;

use crate::schema::lexer::{lex_keeping, Comment, Tok, Token};
use crate::schema::{parse_str, SchemaError};

/// Formats schema source canonically; `file` names it in errors. Source that does not parse is
/// an error, the one the compiler reports.
///
/// ```
/// let messy = "struct  Point{x:i32 ,y : i32}  // a point\nservice Geo @prefix(\"/geo\"){rpc near(p:Point)->list<Point>;}";
/// let tidy = netcore_codegen::fmt::format_str(messy, "geo.ncs".as_ref()).unwrap();
/// assert_eq!(tidy, "\
/// struct Point {
///     x: i32,
///     y: i32,
/// } // a point
///
/// service Geo @prefix(\"/geo\") {
///     rpc near(p: Point) -> list<Point>;
/// }
/// ");
/// ```
pub fn format_str(source: &str, file: &Path) -> Result<String, SchemaError> {
    parse_str(source, file)?;
    let error = |line, column, message| SchemaError::new(file.to_path_buf(), source, line, column, message);
    let mut comments = Vec::new();
    let tokens = lex_keeping(source, error, Some(&mut comments))?;
    let mut printer = Printer::new(tokens, comments);
    match printer.file() {
        Ok(()) => Ok(printer.out),
        Err(at) => {
            let token = &printer.tokens[at.min(printer.tokens.len() - 1)];
            Err(error(token.line, token.column, "the formatter does not expect this token here".into()))
        }
    }
}

/// Formats a schema file (its imports are not followed: each file is formatted on its own).
pub fn format_file(path: &Path) -> Result<String, SchemaError> {
    let source = std::fs::read_to_string(path)
        .map_err(|err| SchemaError::new(path.to_path_buf(), "", 1, 1, format!("cannot read the schema: {err}")))?;
    format_str(&source, path)
}

/// Whether a blank line goes before an element.
#[derive(Clone, Copy)]
enum Blank {
    /// Always (between top-level items).
    Always,
    /// Never (after `{`, before `}`, between a doc and its item).
    Never,
    /// Where the source has one.
    Source,
}

/// A comment, where it goes, and whether the source has a blank line before it.
#[derive(Debug)]
struct Note {
    text: String,
    blank_before: bool,
}

/// The index of the token the printer stopped at.
type Stop = usize;

struct Printer {
    tokens: Vec<Token>,
    /// Comments on lines of their own before token `i`.
    leading: Vec<Vec<Note>>,
    /// Comments after token `i` on the line where it ends.
    trailing: Vec<Vec<Note>>,
    /// Whether the source has a blank line before token `i` (after its leading comments).
    blank_before: Vec<bool>,
    pos: usize,
    out: String,
    indent: usize,
    /// The output line being built, without its indentation.
    line: String,
    /// Line comments to write at the end of the current output line.
    deferred: Vec<String>,
}

impl Printer {
    fn new(tokens: Vec<Token>, comments: Vec<Comment>) -> Self {
        let n = tokens.len();
        let mut leading: Vec<Vec<Note>> = (0..n).map(|_| Vec::new()).collect();
        let mut trailing: Vec<Vec<Note>> = (0..n).map(|_| Vec::new()).collect();
        let mut blank_before = vec![false; n];
        let mut comments = comments.into_iter().peekable();
        // The line where the last element (token or comment) ends, and the last token's line.
        let (mut end_line, mut token_line) = (0usize, None::<usize>);
        for (i, token) in tokens.iter().enumerate() {
            while let Some(comment) = comments.next_if(|c| (c.line, c.column) < (token.line, token.column)) {
                let text = comment.text.trim_end().to_string();
                let note = Note { blank_before: end_line > 0 && comment.line > end_line + 1, text };
                end_line = comment.line + comment.text.matches('\n').count();
                match token_line {
                    Some(line) if line == comment.line && i > 0 => trailing[i - 1].push(note),
                    _ => leading[i].push(note),
                }
            }
            blank_before[i] = end_line > 0 && token.line > end_line + 1;
            end_line = token.line;
            token_line = Some(token.line);
        }
        Self {
            tokens,
            leading,
            trailing,
            blank_before,
            pos: 0,
            out: String::new(),
            indent: 0,
            line: String::new(),
            deferred: Vec::new(),
        }
    }

    fn tok(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn is_punct(&self, c: char) -> bool {
        *self.tok() == Tok::Punct(c)
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.tok(), Tok::Ident(w) if w == word)
    }

    /// Whether a blank line should go before something with `policy` and `source` (the source's
    /// own blank line); never at the start of the output or right after an opening brace.
    fn blank(&mut self, policy: Blank, source: bool) {
        let wanted = match policy {
            Blank::Always => true,
            Blank::Never => false,
            Blank::Source => source,
        };
        if wanted && !self.out.is_empty() && !self.out.ends_with("\n\n") && !self.out.ends_with("{\n") {
            self.out.push('\n');
        }
    }

    fn end_line(&mut self) {
        if self.line.is_empty() && self.deferred.is_empty() {
            return;
        }
        let mut text = std::mem::take(&mut self.line);
        for comment in self.deferred.drain(..) {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&comment);
        }
        self.write_line(&text);
    }

    fn write_line(&mut self, text: &str) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Starts a line with the current token: its leading comments first, each on a line of its
    /// own; `first` decides the blank line before the first of them (or the token if none),
    /// `token` the one between the last comment and the token.
    fn line_start(&mut self, first: Blank, token: Blank) {
        self.end_line();
        let i = self.pos;
        let notes = std::mem::take(&mut self.leading[i]);
        let had = !notes.is_empty();
        for (k, note) in notes.into_iter().enumerate() {
            self.blank(if k == 0 { first } else { Blank::Source }, note.blank_before);
            self.write_line(&note.text);
        }
        self.blank(if had { token } else { first }, self.blank_before[i]);
    }

    /// Writes the current token as `text`, with a space before it if `space` and the line is not
    /// empty; its comments go inline (block) or at the end of the line (line comments).
    fn put(&mut self, text: &str, space: bool) {
        let i = self.pos;
        for note in std::mem::take(&mut self.leading[i]) {
            self.inline(note.text);
        }
        if space && !self.line.is_empty() {
            self.line.push(' ');
        }
        self.line.push_str(text);
        for note in std::mem::take(&mut self.trailing[i]) {
            self.inline(note.text);
        }
        self.pos += 1;
    }

    /// A comment in the middle of a line: a block comment stays there, a line comment moves to
    /// the end of the line.
    fn inline(&mut self, text: String) {
        if text.starts_with("/*") {
            if !self.line.is_empty() {
                self.line.push(' ');
            }
            self.line.push_str(&text);
        } else {
            self.deferred.push(text);
        }
    }

    /// Drops the current token (a comma the canonical form leaves out), keeping its comments.
    fn skip(&mut self) {
        let i = self.pos;
        let leading = std::mem::take(&mut self.leading[i]);
        let trailing = std::mem::take(&mut self.trailing[i]);
        for note in leading.into_iter().chain(trailing) {
            self.inline(note.text);
        }
        self.pos += 1;
    }

    fn punct(&mut self, c: char, space: bool) -> Result<(), Stop> {
        if !self.is_punct(c) {
            return Err(self.pos);
        }
        self.put(&c.to_string(), space);
        Ok(())
    }

    fn ident(&mut self, space: bool) -> Result<(), Stop> {
        let Tok::Ident(word) = self.tok().clone() else { return Err(self.pos) };
        self.put(&word, space);
        Ok(())
    }

    fn file(&mut self) -> Result<(), Stop> {
        let mut previous_import = None;
        loop {
            if *self.tok() == Tok::Eof {
                // Comments after the last item; no blank line at the end.
                self.end_line();
                for (k, note) in std::mem::take(&mut self.leading[self.pos]).into_iter().enumerate() {
                    self.blank(
                        if k == 0 && previous_import.is_none() { Blank::Never } else { Blank::Source },
                        note.blank_before,
                    );
                    self.write_line(&note.text);
                }
                return Ok(());
            }
            let import = self.is_word("import");
            let first = match previous_import {
                None => Blank::Never,
                Some(true) if import => Blank::Never,
                Some(_) => Blank::Always,
            };
            previous_import = Some(import);
            self.docs(first)?;
            match self.tok().clone() {
                Tok::Ident(w) if w == "import" => {
                    self.put("import", false);
                    let Tok::Str(path) = self.tok().clone() else { return Err(self.pos) };
                    self.put(&quote(&path), true);
                    self.punct(';', false)?;
                }
                Tok::Ident(w) if w == "struct" => {
                    self.put("struct", false);
                    self.ident(true)?;
                    self.punct('{', true)?;
                    self.block(|p| p.field())?;
                }
                Tok::Ident(w) if w == "enum" => {
                    self.put("enum", false);
                    self.ident(true)?;
                    self.punct('{', true)?;
                    self.block(|p| p.variant())?;
                }
                Tok::Ident(w) if w == "service" => {
                    self.put("service", false);
                    self.ident(true)?;
                    while self.is_punct('@') {
                        self.put("@", true);
                        self.ident(false)?;
                        self.punct('(', false)?;
                        let Tok::Str(text) = self.tok().clone() else { return Err(self.pos) };
                        self.put(&quote(&text), false);
                        self.punct(')', false)?;
                    }
                    self.punct('{', true)?;
                    self.block(|p| p.method())?;
                }
                _ => return Err(self.pos),
            }
            self.end_line();
        }
    }

    /// Doc comments, each on its own line, then the start of the line of what they document.
    fn docs(&mut self, first: Blank) -> Result<(), Stop> {
        let mut policy = first;
        while let Tok::Doc(text) = self.tok().clone() {
            self.line_start(policy, Blank::Source);
            self.put(&if text.is_empty() { "///".to_string() } else { format!("/// {text}") }, false);
            self.end_line();
            policy = Blank::Never;
        }
        self.line_start(policy, Blank::Source);
        Ok(())
    }

    /// The members of a braced block after its `{`, one a line, then its `}`; `{}` when empty.
    fn block(&mut self, member: impl Fn(&mut Self) -> Result<(), Stop>) -> Result<(), Stop> {
        if self.is_punct('}') && self.leading[self.pos].is_empty() && self.deferred.is_empty() {
            return self.punct('}', false);
        }
        self.end_line();
        self.indent += 1;
        let mut first = Blank::Never;
        loop {
            if self.is_punct('}') {
                self.line_start(Blank::Never, Blank::Never);
                self.end_line();
                self.indent -= 1;
                return self.punct('}', false);
            }
            if *self.tok() == Tok::Eof {
                return Err(self.pos);
            }
            self.docs(first)?;
            if self.is_punct('}') {
                // Doc lines before `}` document nothing (the parser drops them); they stay.
                continue;
            }
            member(self)?;
            self.end_line();
            first = Blank::Source;
        }
    }

    /// `name: type` and its comma.
    fn field(&mut self) -> Result<(), Stop> {
        self.ident(false)?;
        self.punct(':', false)?;
        self.ty(true)?;
        self.comma();
        Ok(())
    }

    /// A comma after a field or variant: the source's, or one added.
    fn comma(&mut self) {
        if self.is_punct(',') {
            self.put(",", false);
        } else {
            self.line.push(',');
        }
    }

    fn variant(&mut self) -> Result<(), Stop> {
        self.ident(false)?;
        if self.is_punct('(') {
            self.put("(", false);
            self.list(')', |p, space| p.ty(space))?;
        } else if self.is_punct('{') {
            if self.has_notes_until_close() {
                self.put("{", true);
                self.block(|p| p.field())?;
            } else {
                self.put("{", true);
                if self.is_punct('}') {
                    self.put("}", false);
                } else {
                    self.list('}', |p, space| {
                        p.ident(space)?;
                        p.punct(':', false)?;
                        p.ty(true)
                    })?;
                    // `{ a: u32 }`: a space inside the braces.
                    let close = self.line.pop();
                    self.line.push(' ');
                    self.line.extend(close);
                }
            }
        }
        self.comma();
        Ok(())
    }

    /// Whether anything from the current `{` to its `}` has a comment or a doc (then the braces
    /// take lines of their own).
    fn has_notes_until_close(&self) -> bool {
        let mut depth = 0usize;
        for i in self.pos..self.tokens.len() {
            if !self.leading[i].is_empty() || !self.trailing[i].is_empty() && i > self.pos {
                return true;
            }
            match &self.tokens[i].tok {
                Tok::Doc(_) => return true,
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => {
                    depth -= 1;
                    if depth == 0 {
                        return false;
                    }
                }
                Tok::Eof => return false,
                _ => {}
            }
        }
        false
    }

    /// Items separated by `, ` up to `close` (a trailing comma dropped), then `close`. The first
    /// item gets no space before it; `{`-lists get one (see [`variant`](Self::variant)).
    fn list(&mut self, close: char, item: impl Fn(&mut Self, bool) -> Result<(), Stop>) -> Result<(), Stop> {
        let mut first = true;
        loop {
            if self.is_punct(close) {
                return self.punct(close, false);
            }
            item(self, !first || close == '}')?;
            first = false;
            if self.is_punct(',') {
                if self.tokens.get(self.pos + 1).is_some_and(|t| t.tok == Tok::Punct(close)) {
                    self.skip();
                } else {
                    self.put(",", false);
                }
            } else if !self.is_punct(close) {
                return Err(self.pos);
            }
        }
    }

    fn method(&mut self) -> Result<(), Stop> {
        if !self.is_word("rpc") && !self.is_word("event") {
            return Err(self.pos);
        }
        self.ident(false)?;
        self.ident(true)?;
        self.punct('(', false)?;
        self.list(')', |p, space| {
            p.ident(space)?;
            p.punct(':', false)?;
            p.ty(true)
        })?;
        if *self.tok() == Tok::Arrow {
            self.put("->", true);
            self.ty(true)?;
        }
        while self.is_punct('@') {
            self.put("@", true);
            self.ident(false)?;
            // `@priority(3)`, `@timeout_ms(1500)`; a flag such as `@context` has no value.
            if self.is_punct('(') {
                self.punct('(', false)?;
                let Tok::Int(value) = *self.tok() else { return Err(self.pos) };
                self.put(&value.to_string(), false);
                self.punct(')', false)?;
            }
        }
        self.punct(';', false)
    }

    fn ty(&mut self, space: bool) -> Result<(), Stop> {
        self.ident(space)?;
        if self.is_punct('<') {
            self.put("<", false);
            self.ty(false)?;
            if self.is_punct(',') {
                self.put(",", false);
                self.ty(true)?;
            }
            self.punct('>', false)?;
        }
        while self.is_punct('?') {
            self.put("?", false);
        }
        Ok(())
    }
}

/// A string literal as the lexer reads it back.
fn quote(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::model::{Schema, TypeDefKind, VariantFields};

    /// Everything of a model except origins: what formatting must keep.
    fn summary(schema: &Schema) -> String {
        let mut out = String::new();
        for def in &schema.types {
            out += &format!("type {} {:?}\n", def.name, def.docs);
            match &def.kind {
                TypeDefKind::Struct(fields) => {
                    for f in fields {
                        out += &format!("  field {} {} {:?}\n", f.name, f.ty.canonical(), f.docs);
                    }
                }
                TypeDefKind::Enum(variants) => {
                    for v in variants {
                        out += &format!("  variant {} {:?}", v.name, v.docs);
                        match &v.fields {
                            VariantFields::Unit => {}
                            VariantFields::Tuple(types) => {
                                for t in types {
                                    out += &format!(" {}", t.canonical());
                                }
                            }
                            VariantFields::Struct(fields) => {
                                for f in fields {
                                    out += &format!(" {}: {} {:?}", f.name, f.ty.canonical(), f.docs);
                                }
                            }
                        }
                        out += "\n";
                    }
                }
            }
        }
        for s in &schema.services {
            out += &format!("service {} {} {:?}\n", s.name, s.prefix, s.docs);
            for m in &s.methods {
                let args: Vec<String> = m.args.iter().map(|a| format!("{}: {}", a.name, a.ty.ty.canonical())).collect();
                out += &format!(
                    "  {:?} {}({}) -> {} {:?} {:?} {} {:?}\n",
                    m.kind,
                    m.name,
                    args.join(", "),
                    m.returns.ty.canonical(),
                    m.options.priority,
                    m.options.timeout_ms,
                    m.options.context,
                    m.docs
                );
            }
        }
        out
    }

    fn check(source: &str, file: &Path) -> String {
        let once = format_str(source, file).unwrap_or_else(|e| panic!("{e}"));
        let twice = format_str(&once, file).unwrap_or_else(|e| panic!("reformatting:\n{once}\n{e}"));
        assert_eq!(twice, once, "formatting is not idempotent");
        let before = summary(&parse_str(source, file).unwrap());
        let after = summary(&parse_str(&once, file).unwrap());
        assert_eq!(after, before, "formatting changed the model:\n{once}");
        let comments = |text: &str| {
            let mut comments = Vec::new();
            lex_keeping(text, |l, c, m| SchemaError::new(file.into(), text, l, c, m), Some(&mut comments)).unwrap();
            comments.into_iter().map(|c| c.text.trim_end().to_string()).collect::<Vec<_>>()
        };
        assert_eq!(comments(&once), comments(source), "formatting lost or reordered comments:\n{once}");
        once
    }

    #[test]
    fn the_example_schemas_are_formatted_and_stay_so() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "ncs") {
                let source = std::fs::read_to_string(&path).unwrap();
                let formatted = check(&source, &path);
                assert_eq!(formatted, source, "{} is not in canonical form", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 3, "found {seen} schemas in {}", dir.display());
    }

    #[test]
    fn a_messy_schema_is_tidied_keeping_comments_and_model() {
        let messy = "  // header comment\n\n\n import \"common.ncs\" ;import \"b.ncs\";\n\
            /// A point.\n///\n///   Indented doc.\nstruct Point{x:i32 , /* inline */ y : i32?? // why\n}\n\
            enum Shape{Dot,Circle(Point,f64,),Box{ lo: Point,hi:Point,}, Labeled {\n  /// the text\n  text: string }}\n\
            service  Geo@prefix(\"/g\\\"eo\"){\n\n\n  // a comment before a method\n  rpc near ( p : Point , \
            within : map< string,list<u8> >, ) -> list<Point> @priority( 3 )@timeout_ms(1_500);\n\n\n\
            event moved(p:Point)  ;  // trailing\n /* block\n    on two lines */\n}\nstruct Empty {}\n// the end\n";
        let tidy = check(messy, Path::new("messy.ncs"));
        let expected = "\
// header comment

import \"common.ncs\";
import \"b.ncs\";

/// A point.
///
///   Indented doc.
struct Point {
    x: i32, /* inline */
    y: i32??, // why
}

enum Shape {
    Dot,
    Circle(Point, f64),
    Box { lo: Point, hi: Point },
    Labeled {
        /// the text
        text: string,
    },
}

service Geo @prefix(\"/g\\\"eo\") {
    // a comment before a method
    rpc near(p: Point, within: map<string, list<u8>>) -> list<Point> @priority(3) @timeout_ms(1500);

    event moved(p: Point); // trailing
    /* block
    on two lines */
}

struct Empty {}
// the end
";
        assert_eq!(tidy, expected);
    }

    /// Each example schema with its tokens and comments re-joined by random spacing (spaces, line
    /// breaks, none where the tokens allow) formats back to itself.
    #[test]
    fn respaced_example_schemas_format_back_to_canonical_form() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "ncs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let error = |l, c, m| SchemaError::new(path.clone(), &source, l, c, m);
            let mut comments = Vec::new();
            let tokens = lex_keeping(&source, error, Some(&mut comments)).unwrap();
            // (line, column, text, kind): kind 0 a token, 1 a doc or line comment (ends its line),
            // 2 a word or number (needs a space before another).
            let mut items: Vec<(usize, usize, String, u8)> = comments
                .iter()
                .map(|c| (c.line, c.column, c.text.trim_end().to_string(), u8::from(c.text.starts_with("//"))))
                .collect();
            for token in &tokens {
                let (text, kind) = match &token.tok {
                    Tok::Ident(w) => (w.clone(), 2),
                    Tok::Int(n) => (n.to_string(), 2),
                    Tok::Str(t) => (quote(t), 0),
                    Tok::Doc(t) => (format!("/// {t}"), 1),
                    Tok::Punct(c) => (c.to_string(), 0),
                    Tok::Arrow => ("->".into(), 0),
                    Tok::Eof => continue,
                };
                items.push((token.line, token.column, text, kind));
            }
            items.sort();
            let mut state = 0x9e37_79b9u32;
            for round in 0..50 {
                let mut out = String::new();
                let mut previous: Option<&(usize, usize, String, u8)> = None;
                for item in &items {
                    if let Some(prev) = previous {
                        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345 + round);
                        let pick = (state >> 16) % 4;
                        let prev_end = prev.0 + prev.2.matches('\n').count();
                        let comment = comments.iter().any(|c| (c.line, c.column) == (item.0, item.1));
                        let separator = if prev.3 == 1 || item.2.starts_with("///") {
                            "\n"
                        } else if comment && item.0 == prev_end {
                            " " // a comment after code stays on its line
                        } else if prev.3 == 2 && item.3 == 2 {
                            [" ", "\n", "  ", " \n  "][pick as usize]
                        } else {
                            ["", " ", "\n", "\n    "][pick as usize]
                        };
                        if item.0 > prev_end + 1 {
                            out.push_str("\n\n"); // the source's blank line
                        } else {
                            out.push_str(separator);
                        }
                    }
                    out.push_str(&item.2);
                    previous = Some(item);
                }
                out.push('\n');
                let formatted = check(&out, &path);
                assert_eq!(formatted, source, "{} respaced (round {round}):\n{out}", path.display());
            }
        }
    }

    #[test]
    fn what_does_not_parse_is_the_parsers_error() {
        let err = format_str("struct A { x: u32 ", Path::new("bad.ncs")).unwrap_err();
        assert_eq!((err.line, err.file.as_path()), (1, Path::new("bad.ncs")));
        assert!(format_str("", Path::new("empty.ncs")).unwrap().is_empty());
    }
}

//! Tokens of the schema language, with their positions.

use super::SchemaError;

/// A token's kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Int(u64),
    /// A `///` comment line, without the slashes.
    Doc(String),
    Punct(char),
    Arrow,
    Eof,
}

/// A token and where it starts (1-based).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub line: usize,
    pub column: usize,
}

pub(crate) fn lex(src: &str, err: impl Fn(usize, usize, String) -> SchemaError) -> Result<Vec<Token>, SchemaError> {
    lex_keeping(src, err, None)
}

/// A comment the parser skips (`//…` or `/*…*/`, not a `///` doc), kept for the formatter: its
/// whole text and where it starts (1-based).
#[derive(Debug, Clone)]
pub(crate) struct Comment {
    pub text: String,
    pub line: usize,
    pub column: usize,
}

/// [`lex`], also collecting the comments into `comments` when given.
pub(crate) fn lex_keeping(
    src: &str,
    err: impl Fn(usize, usize, String) -> SchemaError,
    mut comments: Option<&mut Vec<Comment>>,
) -> Result<Vec<Token>, SchemaError> {
    let chars: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let mut out = Vec::new();
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    macro_rules! at {
        ($n:expr) => {
            chars.get(i + $n).copied()
        };
    }
    while i < chars.len() {
        let c = chars[i];
        let (start, start_line, start_col) = (i, line, col);
        if c.is_whitespace() {
            bump!();
        } else if c == '/' && at!(1) == Some('/') {
            let doc = at!(2) == Some('/') && at!(3) != Some('/');
            let mut text = String::new();
            while i < chars.len() && chars[i] != '\n' {
                text.push(chars[i]);
                bump!();
            }
            if doc {
                let body = text.trim_start_matches('/');
                let body = body.strip_prefix(' ').unwrap_or(body);
                out.push(Token { tok: Tok::Doc(body.to_string()), line: start_line, column: start_col });
            } else if let Some(comments) = comments.as_deref_mut() {
                comments.push(Comment { text, line: start_line, column: start_col });
            }
        } else if c == '/' && at!(1) == Some('*') {
            bump!();
            bump!();
            loop {
                if i >= chars.len() {
                    return Err(err(start_line, start_col, "unterminated block comment".into()));
                }
                if chars[i] == '*' && at!(1) == Some('/') {
                    bump!();
                    bump!();
                    break;
                }
                bump!();
            }
            if let Some(comments) = comments.as_deref_mut() {
                comments.push(Comment { text: chars[start..i].iter().collect(), line: start_line, column: start_col });
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut word = String::new();
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                word.push(chars[i]);
                bump!();
            }
            out.push(Token { tok: Tok::Ident(word), line: start_line, column: start_col });
        } else if c.is_ascii_digit() {
            let mut digits = String::new();
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                if chars[i] != '_' {
                    digits.push(chars[i]);
                }
                bump!();
            }
            let value =
                digits.parse().map_err(|_| err(start_line, start_col, format!("number {digits} is too large")))?;
            out.push(Token { tok: Tok::Int(value), line: start_line, column: start_col });
        } else if c == '"' {
            bump!();
            let mut text = String::new();
            loop {
                match chars.get(i) {
                    None | Some('\n') => return Err(err(start_line, start_col, "unterminated string".into())),
                    Some('"') => {
                        bump!();
                        break;
                    }
                    Some('\\') => {
                        bump!();
                        match chars.get(i) {
                            Some('"') => text.push('"'),
                            Some('\\') => text.push('\\'),
                            Some('n') => text.push('\n'),
                            _ => return Err(err(line, col, "unknown escape; use \\\" \\\\ or \\n".into())),
                        }
                        bump!();
                    }
                    Some(&ch) => {
                        text.push(ch);
                        bump!();
                    }
                }
            }
            out.push(Token { tok: Tok::Str(text), line: start_line, column: start_col });
        } else if c == '-' && at!(1) == Some('>') {
            bump!();
            bump!();
            out.push(Token { tok: Tok::Arrow, line: start_line, column: start_col });
        } else if "{}()<>,;:?@=".contains(c) {
            bump!();
            out.push(Token { tok: Tok::Punct(c), line: start_line, column: start_col });
        } else {
            return Err(err(start_line, start_col, format!("unexpected character {c:?}")));
        }
    }
    out.push(Token { tok: Tok::Eof, line, column: col });
    Ok(out)
}

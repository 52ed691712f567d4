//! The tokenizer: a byte-level port of Calico's `tokenizer.AppendTokens`, with byte offsets.
//!
//! Calico tokenizes the whole input before parsing, so a lexical error anywhere wins over a
//! grammar error earlier in the input; this module keeps that order.

use crate::ParseError;

/// Calico's `MaxLabelLength`.
pub const MAX_LABEL_LENGTH: usize = 512;

/// Token kinds, named as Calico's `stringer` prints them (`TokLabel`, `TokEOF`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Label,
    StringLiteral,
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    In,
    Not,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    All,
    Has,
    LParen,
    RParen,
    And,
    Or,
    Global,
    Eof,
}

impl Kind {
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            Kind::Label => "TokLabel",
            Kind::StringLiteral => "TokStringLiteral",
            Kind::LBrace => "TokLBrace",
            Kind::RBrace => "TokRBrace",
            Kind::Comma => "TokComma",
            Kind::Eq => "TokEq",
            Kind::Ne => "TokNe",
            Kind::In => "TokIn",
            Kind::Not => "TokNot",
            Kind::NotIn => "TokNotIn",
            Kind::Contains => "TokContains",
            Kind::StartsWith => "TokStartsWith",
            Kind::EndsWith => "TokEndsWith",
            Kind::All => "TokAll",
            Kind::Has => "TokHas",
            Kind::LParen => "TokLParen",
            Kind::RParen => "TokRParen",
            Kind::And => "TokAnd",
            Kind::Or => "TokOr",
            Kind::Global => "TokGlobal",
            Kind::Eof => "TokEOF",
        }
    }
}

/// One token: kind, byte offset of its first byte, and the byte range of its value
/// (label name, string contents, or the identifier inside `has(...)`; empty otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub kind: Kind,
    pub pos: u32,
    pub start: u32,
    pub end: u32,
}

impl Token {
    pub(crate) fn value<'a>(&self, input: &'a str) -> &'a str {
        &input[self.start as usize..self.end as usize]
    }

    /// Go's `Token.String()`: `Kind(value)`.
    pub(crate) fn go_string(&self, input: &str, out: &mut String) {
        out.push_str(self.kind.go_name());
        out.push('(');
        out.push_str(self.value(input));
        out.push(')');
    }
}

#[inline]
pub(crate) fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'/' || c == b'-'
}

/// True if `s` is a valid label name (Calico's `tokenizer.ValidLabel`).
pub fn valid_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_LABEL_LENGTH && s.bytes().all(is_ident_byte)
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

#[inline]
fn word_boundary(b: &[u8], i: usize) -> bool {
    i >= b.len() || !is_ident_byte(b[i])
}

/// `cutPrefixCheckBreak`: the word, then a word boundary. Returns the end offset.
#[inline]
fn cut_word(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    if b[i..].starts_with(word) && word_boundary(b, i + word.len()) {
        Some(i + word.len())
    } else {
        None
    }
}

/// `cutMultiWordPrefixCheckBreak`: each word followed by optional whitespace, then a boundary.
#[inline]
fn cut_two_words(b: &[u8], i: usize, w1: &[u8], w2: &[u8]) -> Option<usize> {
    if !b[i..].starts_with(w1) {
        return None;
    }
    let j = skip_ws(b, i + w1.len());
    if !b[j..].starts_with(w2) {
        return None;
    }
    let k = skip_ws(b, j + w2.len());
    if word_boundary(b, k) {
        Some(k)
    } else {
        None
    }
}

/// `cutIdentifier`: returns the end of the identifier starting at `i`, or Calico's error.
#[inline]
fn cut_identifier(input: &str, i: usize) -> Result<usize, ParseError> {
    let b = input.as_bytes();
    let mut j = i;
    while j < b.len() && is_ident_byte(b[j]) {
        j += 1;
    }
    if j - i > MAX_LABEL_LENGTH {
        Err(ParseError::new(
            i,
            format!("label too long: {}", &input[i..j]),
        ))
    } else if j == i {
        Err(ParseError::new(i, "expected identifier"))
    } else {
        Ok(j)
    }
}

/// Tokenizes `input` into `out` (cleared first). The last token is always `Eof`.
pub(crate) fn tokenize(input: &str, out: &mut Vec<Token>) -> Result<(), ParseError> {
    out.clear();
    let b = input.as_bytes();
    if b.len() > u32::MAX as usize {
        return Err(ParseError::new(0, "selector too long"));
    }
    let tok = |kind, pos: usize, start: usize, end: usize| Token {
        kind,
        pos: pos as u32,
        start: start as u32,
        end: end as u32,
    };
    let mut i = 0usize;
    loop {
        i = skip_ws(b, i);
        if i >= b.len() {
            out.push(tok(Kind::Eof, b.len(), b.len(), b.len()));
            return Ok(());
        }
        let last_is_label = matches!(out.last(), Some(t) if t.kind == Kind::Label);
        let p = i;
        match b[i] {
            b'(' => {
                out.push(tok(Kind::LParen, p, p, p));
                i += 1;
            }
            b')' => {
                out.push(tok(Kind::RParen, p, p, p));
                i += 1;
            }
            q @ (b'"' | b'\'') => match memchr::memchr(q, &b[i + 1..]) {
                Some(n) => {
                    out.push(tok(Kind::StringLiteral, p, p + 1, p + 1 + n));
                    i = p + 2 + n;
                }
                None => return Err(ParseError::new(p, "unterminated string")),
            },
            b'{' => {
                out.push(tok(Kind::LBrace, p, p, p));
                i += 1;
            }
            b'}' => {
                out.push(tok(Kind::RBrace, p, p, p));
                i += 1;
            }
            b',' => {
                out.push(tok(Kind::Comma, p, p, p));
                i += 1;
            }
            b'=' => {
                if b.get(i + 1) == Some(&b'=') {
                    out.push(tok(Kind::Eq, p, p, p));
                    i += 2;
                } else {
                    return Err(ParseError::new(p, "expected =="));
                }
            }
            b'!' => {
                if b.get(i + 1) == Some(&b'=') {
                    out.push(tok(Kind::Ne, p, p, p));
                    i += 2;
                } else {
                    out.push(tok(Kind::Not, p, p, p));
                    i += 1;
                }
            }
            b'&' => {
                if b.get(i + 1) == Some(&b'&') {
                    out.push(tok(Kind::And, p, p, p));
                    i += 2;
                } else {
                    return Err(ParseError::new(p, "expected &&"));
                }
            }
            b'|' => {
                if b.get(i + 1) == Some(&b'|') {
                    out.push(tok(Kind::Or, p, p, p));
                    i += 2;
                } else {
                    return Err(ParseError::new(p, "expected ||"));
                }
            }
            _ => {
                if last_is_label {
                    let (kind, end) = if let Some(e) = cut_word(b, i, b"contains") {
                        (Kind::Contains, e)
                    } else if let Some(e) = cut_two_words(b, i, b"starts", b"with") {
                        (Kind::StartsWith, e)
                    } else if let Some(e) = cut_two_words(b, i, b"ends", b"with") {
                        (Kind::EndsWith, e)
                    } else if let Some(e) = cut_two_words(b, i, b"not", b"in") {
                        (Kind::NotIn, e)
                    } else if let Some(e) = cut_word(b, i, b"in") {
                        (Kind::In, e)
                    } else {
                        let label = out.last().expect("label token").value(input);
                        return Err(ParseError::new(
                            p,
                            format!("expected operator after label {}", go_quote(label)),
                        ));
                    };
                    out.push(tok(kind, p, p, p));
                    i = end;
                } else if b[i..].starts_with(b"has(") {
                    let s = skip_ws(b, i + 4);
                    let e = cut_identifier(input, s)?;
                    let c = skip_ws(b, e);
                    if b.get(c) == Some(&b')') {
                        out.push(tok(Kind::Has, p, s, e));
                        i = c + 1;
                    } else {
                        return Err(ParseError::new(c, "no closing ')' after has("));
                    }
                } else if b[i..].starts_with(b"all(") {
                    let c = skip_ws(b, i + 4);
                    if b.get(c) == Some(&b')') {
                        out.push(tok(Kind::All, p, p, p));
                        i = c + 1;
                    } else {
                        return Err(ParseError::new(c, "no closing ')' after all("));
                    }
                } else if b[i..].starts_with(b"global(") {
                    let c = skip_ws(b, i + 7);
                    if b.get(c) == Some(&b')') {
                        out.push(tok(Kind::Global, p, p, p));
                        i = c + 1;
                    } else {
                        return Err(ParseError::new(c, "no closing ')' after global("));
                    }
                } else {
                    let e = cut_identifier(input, i)?;
                    out.push(tok(Kind::Label, p, p, e));
                    i = e;
                }
            }
        }
    }
}

/// Go's `%q` for a label. Labels are always `[A-Za-z0-9_./-]`, so plain double quotes suffice.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    out.push_str(s);
    out.push('"');
    out
}

//! A strict JSON reader (RFC 8259) that yields the same location-carrying [`Node`] tree as
//! [`crate::yaml`], much faster than reading JSON as YAML, and able to hand over the resources of
//! a big document one at a time.
//!
//! Locations follow the YAML reader exactly: 1-based line, 1-based column counted in characters,
//! `\r\n` and a lone `\r` end a line, a leading byte order mark takes no column; a string node is
//! at its opening quote, a collection at its bracket. Strings are quoted scalars (`plain: false`);
//! numbers, `true`, `false` and `null` are plain scalars with their source text, as the YAML
//! reader gives them. Duplicate keys are kept, in order.
//!
//! [`scan`] checks the whole text and finds the document's shape without building anything; the
//! builders then cannot fail on text `scan` accepted.

use std::borrow::Cow;

use crate::yaml::{Loc, Node, SyntaxError, Value};

/// Deepest nesting accepted (the YAML reader's limit).
const MAX_DEPTH: usize = 256;

/// What the single JSON value of a text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Only whitespace.
    Empty,
    /// An array: its elements are the resources.
    Array,
    /// An object whose first `kind` is `List` or ends in `List` and whose first `items` is an
    /// array: the elements of that array are the resources.
    List,
    /// Anything else (one resource, or something to report).
    Other,
}

/// Checks that `text` is one JSON value and says what it is.
pub fn scan(text: &str) -> Result<Shape, SyntaxError> {
    let mut r = Reader::new(text);
    r.ws();
    let shape = match r.peek() {
        None => return Ok(Shape::Empty),
        Some(b'[') => {
            r.skip_value(0)?;
            Shape::Array
        }
        Some(b'{') => {
            // The top level is walked here (not skipped) to find its first `kind` and `items`.
            let (mut kind, mut items): (Option<String>, Option<bool>) = (None, None);
            r.members(0, |r| {
                let key = r.string_key()?;
                r.colon()?;
                match key.as_str() {
                    "kind" if kind.is_none() => {
                        kind = Some(match r.peek() {
                            Some(b'{' | b'[') => {
                                r.skip_value(1)?;
                                String::new()
                            }
                            _ => match r.value(1)?.value {
                                Value::Scalar { text, .. } => text.into_owned(),
                                _ => String::new(),
                            },
                        })
                    }
                    "items" if items.is_none() => {
                        items = Some(r.peek() == Some(b'['));
                        r.skip_value(1)?;
                    }
                    _ => r.skip_value(1)?,
                }
                Ok(())
            })?;
            let list = kind.is_some_and(|k| k.ends_with("List"));
            if list && items == Some(true) {
                Shape::List
            } else {
                Shape::Other
            }
        }
        Some(_) => {
            r.skip_value(0)?;
            Shape::Other
        }
    };
    r.ws();
    if r.pos < r.b.len() {
        return Err(r.error("unexpected text after the JSON value"));
    }
    Ok(shape)
}

/// The single value of a text that [`scan`] accepted (`None` if the text is only whitespace).
pub fn parse(text: &str) -> Result<Option<Node<'_>>, SyntaxError> {
    let mut r = Reader::new(text);
    r.ws();
    if r.peek().is_none() {
        return Ok(None);
    }
    r.value(0).map(Some)
}

/// Calls `f` with each resource of a text whose shape [`scan`] found to be [`Shape::Array`] or
/// [`Shape::List`], one at a time, so only one resource's tree exists at once.
pub fn for_each_item<'t>(text: &'t str, mut f: impl FnMut(Node<'t>)) -> Result<(), SyntaxError> {
    let mut r = Reader::new(text);
    r.ws();
    match r.peek() {
        Some(b'[') => r.elements(&mut f),
        Some(b'{') => {
            // The first `items` array holds the resources; everything else is skipped.
            let mut done = false;
            r.members(0, |r| {
                let key = r.string_key()?;
                r.colon()?;
                if key == "items" && !done && r.peek() == Some(b'[') {
                    done = true;
                    r.elements(&mut f)
                } else {
                    r.skip_value(1)
                }
            })
        }
        _ => Err(r.error("expected an array or an object")),
    }
}

/// Byte classes inside a string: 0 = ordinary, 1 = stop (`"`, `\` or a control character).
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The first index from `i` on of a quote, a backslash or a control character (or `b.len()`), eight
/// bytes at a time.
#[inline]
fn find_stop(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let q = x ^ (ONES * u64::from(b'"'));
        let e = x ^ (ONES * u64::from(b'\\'));
        // Zero bytes of `q` and `e`, bytes of `x` below 0x20; the lowest flag is exact.
        let m = ((q.wrapping_sub(ONES) & !q)
            | (e.wrapping_sub(ONES) & !e)
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !STRING_STOP[b[i] as usize] {
        i += 1;
    }
    i
}

struct Reader<'t> {
    text: &'t str,
    b: &'t [u8],
    pos: usize,
    line: u32,
    line_start: usize,
    /// The text is ASCII, so a column is a byte distance.
    ascii: bool,
    /// For non-ASCII text: characters between `line_start` and `col_pos` (a cache, so columns
    /// cost O(n) over a forward pass).
    col_pos: usize,
    col_chars: u32,
    /// Children of the collections being built (each collection then takes its own exactly
    /// sized vector from the end of these).
    items: Vec<Node<'t>>,
    entries: Vec<(Node<'t>, Node<'t>)>,
}

impl<'t> Reader<'t> {
    fn new(text: &'t str) -> Reader<'t> {
        let start = if text.starts_with('\u{feff}') { 3 } else { 0 };
        Reader {
            text,
            b: text.as_bytes(),
            pos: start,
            line: 1,
            line_start: start,
            ascii: text.is_ascii(),
            col_pos: start,
            col_chars: 0,
            items: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn loc_at(&mut self, pos: usize) -> Loc {
        let column = if self.ascii {
            (pos - self.line_start) as u32 + 1
        } else {
            if self.col_pos < self.line_start || self.col_pos > pos {
                self.col_pos = self.line_start;
                self.col_chars = 0;
            }
            let n = self.b[self.col_pos..pos]
                .iter()
                .filter(|&&c| (c as i8) >= -0x40)
                .count();
            self.col_chars += n as u32;
            self.col_pos = pos;
            self.col_chars + 1
        };
        Loc {
            line: self.line,
            column,
        }
    }

    fn loc(&mut self) -> Loc {
        self.loc_at(self.pos)
    }

    fn error(&mut self, message: &str) -> SyntaxError {
        let message = match self.text[self.pos.min(self.b.len())..].chars().next() {
            Some(c) => format!("{message}, found {c:?}"),
            None => format!("{message}, found the end of the text"),
        };
        SyntaxError {
            loc: self.loc(),
            message,
        }
    }

    /// Skips whitespace, counting lines.
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            match c {
                b' ' | b'\t' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                }
                b'\r' => {
                    self.pos += 1;
                    if self.b.get(self.pos) == Some(&b'\n') {
                        self.pos += 1;
                    }
                    self.line += 1;
                    self.line_start = self.pos;
                }
                _ => break,
            }
        }
    }

    fn colon(&mut self) -> Result<(), SyntaxError> {
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.error("expected ':' after an object key"));
        }
        self.pos += 1;
        self.ws();
        Ok(())
    }

    /// After a member or element: true at the closing bracket (consumed), false after a comma.
    fn comma_or_end(&mut self, close: u8) -> Result<bool, SyntaxError> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ if close == b'}' => Err(self.error("expected ',' or '}' in an object")),
            _ => Err(self.error("expected ',' or ']' in an array")),
        }
    }

    /// Walks the object or array whose bracket is at `pos` (nested `depth` deep), calling
    /// `member` at each member (after whitespace): for an object it must read the key, the
    /// colon and the value, for an array the value. Leaves `pos` after the closing bracket.
    #[inline(always)]
    fn members(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self) -> Result<(), SyntaxError>,
    ) -> Result<(), SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        let close = if self.peek() == Some(b'{') {
            b'}'
        } else {
            b']'
        };
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            member(self)?;
            if self.comma_or_end(close)? {
                return Ok(());
            }
        }
    }

    /// Each element of the array at `pos`, built and handed to `f` one at a time.
    fn elements(&mut self, f: &mut impl FnMut(Node<'t>)) -> Result<(), SyntaxError> {
        self.members(0, |r| {
            let node = r.value(1)?;
            f(node);
            Ok(())
        })
    }

    /// Scans a string whose opening quote is at `pos`; returns the byte range of its contents
    /// and whether it has escapes, leaving `pos` after the closing quote.
    #[inline]
    fn string_span(&mut self) -> Result<(usize, usize, bool), SyntaxError> {
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = find_stop(self.b, i);
            match self.b.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok((start, i, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.b.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            self.pos = i;
                            self.unicode_escape()?;
                            i = self.pos;
                        }
                        _ => {
                            self.pos = i;
                            return Err(self.error("invalid escape in a string"));
                        }
                    }
                }
                Some(_) => {
                    self.pos = i;
                    return Err(self.error("control character in a string (escape it)"));
                }
                None => {
                    self.pos = self.b.len();
                    return Err(self.error("unterminated string"));
                }
            }
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, SyntaxError> {
        let digits = self.b.get(at..at + 4).and_then(|h| {
            let s = std::str::from_utf8(h).ok()?;
            if s.bytes().all(|c| c.is_ascii_hexdigit()) {
                u32::from_str_radix(s, 16).ok()
            } else {
                None
            }
        });
        digits.ok_or_else(|| self.error("invalid \\u escape (expected 4 hex digits)"))
    }

    /// Decodes a `\uXXXX` escape (with its low surrogate, if any) at `pos`, leaving `pos` after it.
    fn unicode_escape(&mut self) -> Result<char, SyntaxError> {
        let hi = self.hex4(self.pos + 2)?;
        if (0xD800..0xDC00).contains(&hi) {
            if self.b.get(self.pos + 6..self.pos + 8) == Some(b"\\u") {
                let lo = self.hex4(self.pos + 8)?;
                if (0xDC00..0xE000).contains(&lo) {
                    self.pos += 12;
                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    return Ok(char::from_u32(c).expect("valid surrogate pair"));
                }
            }
            return Err(self.error("unpaired surrogate in a \\u escape"));
        }
        match char::from_u32(hi) {
            Some(c) => {
                self.pos += 6;
                Ok(c)
            }
            None => Err(self.error("unpaired surrogate in a \\u escape")),
        }
    }

    /// The contents of a string scanned by `string_span`, escapes decoded.
    fn decode(&mut self, start: usize, end: usize, escaped: bool) -> Cow<'t, str> {
        let text: &'t str = self.text;
        if !escaped {
            return Cow::Borrowed(&text[start..end]);
        }
        let mut out = String::with_capacity(end - start);
        let mut i = start;
        while i < end {
            let j = self.b[i..end]
                .iter()
                .position(|&c| c == b'\\')
                .map_or(end, |p| i + p);
            out.push_str(&self.text[i..j]);
            if j == end {
                break;
            }
            let (c, len) = match self.b[j + 1] {
                b'"' => ('"', 2),
                b'\\' => ('\\', 2),
                b'/' => ('/', 2),
                b'b' => ('\u{8}', 2),
                b'f' => ('\u{c}', 2),
                b'n' => ('\n', 2),
                b'r' => ('\r', 2),
                b't' => ('\t', 2),
                _ => {
                    // `\u`, validated by `string_span`.
                    let saved = self.pos;
                    self.pos = j;
                    let c = self.unicode_escape().expect("validated escape");
                    let len = self.pos - j;
                    self.pos = saved;
                    (c, len)
                }
            };
            out.push(c);
            i = j + len;
        }
        Cow::Owned(out)
    }

    fn string_key(&mut self) -> Result<String, SyntaxError> {
        let (s, e, esc) = self.string_key_span()?;
        Ok(self.decode(s, e, esc).into_owned())
    }

    /// The key string at `pos` (see [`Self::string_span`]), or an error if there is none.
    fn string_key_span(&mut self) -> Result<(usize, usize, bool), SyntaxError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        self.string_span()
    }

    /// A number, `true`, `false` or `null` at `pos`: its end.
    fn literal_end(&mut self) -> Result<usize, SyntaxError> {
        let b = self.b;
        let p = self.pos;
        for word in [&b"true"[..], b"false", b"null"] {
            if b[p..].starts_with(word) {
                return Ok(p + word.len());
            }
        }
        // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        let digits = |mut i: usize| {
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            (i, i > s)
        };
        let mut i = p;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(i).0,
            _ => return Err(self.error("expected a JSON value")),
        }
        if b.get(i) == Some(&b'.') {
            let (j, ok) = digits(i + 1);
            if !ok {
                self.pos = i + 1;
                return Err(self.error("expected a digit after '.'"));
            }
            i = j;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let (j, ok) = digits(i);
            if !ok {
                self.pos = i;
                return Err(self.error("expected a digit in the exponent"));
            }
            i = j;
        }
        Ok(i)
    }

    /// Skips one value at `pos` (after whitespace), checking it.
    fn skip_value(&mut self, depth: usize) -> Result<(), SyntaxError> {
        match self.peek() {
            Some(b'"') => {
                self.string_span()?;
            }
            Some(b'{') => self.members(depth, |r| {
                r.string_key_span()?;
                r.colon()?;
                r.skip_value(depth + 1)
            })?,
            Some(b'[') => self.members(depth, |r| r.skip_value(depth + 1))?,
            _ => self.pos = self.literal_end()?,
        }
        Ok(())
    }

    /// Builds the node of one value at `pos` (after whitespace).
    fn value(&mut self, depth: usize) -> Result<Node<'t>, SyntaxError> {
        let loc = self.loc();
        let value = match self.peek() {
            Some(b'"') => {
                let (s, e, esc) = self.string_span()?;
                Value::Scalar {
                    text: self.decode(s, e, esc),
                    plain: false,
                }
            }
            // The builder keeps its own loops (not `members`): it is the hot path of a load,
            // and the closure-based walk measured ~10% slower here.
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("nesting too deep"));
                }
                self.pos += 1;
                self.ws();
                let mark = self.entries.len();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.ws();
                        if self.peek() != Some(b'"') {
                            return Err(self.error("expected a string key"));
                        }
                        let key = self.value(depth + 1)?;
                        self.colon()?;
                        let v = self.value(depth + 1)?;
                        self.entries.push((key, v));
                        if self.comma_or_end(b'}')? {
                            break;
                        }
                    }
                }
                Value::Map(self.entries.split_off(mark))
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("nesting too deep"));
                }
                self.pos += 1;
                self.ws();
                let mark = self.items.len();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.ws();
                        let item = self.value(depth + 1)?;
                        self.items.push(item);
                        if self.comma_or_end(b']')? {
                            break;
                        }
                    }
                }
                Value::Seq(self.items.split_off(mark))
            }
            _ => {
                let end = self.literal_end()?;
                let source: &'t str = self.text;
                let text = Cow::Borrowed(&source[self.pos..end]);
                self.pos = end;
                Value::Scalar { text, plain: true }
            }
        };
        Ok(Node { loc, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    fn same_as_yaml(text: &str) {
        let yaml = parse_documents(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
        scan(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
        let json = parse(text).unwrap();
        assert_eq!(json.into_iter().collect::<Vec<_>>(), yaml, "{text:?}");
    }

    #[test]
    fn trees_and_locations_match_the_yaml_reader() {
        for t in [
            "{}",
            "[]",
            "{\"a\": 1, \"b\": [true, false, null, -1.5e3, \"x\"]}",
            "{\"kind\":\"Tier\",\"metadata\":{\"name\":\"t\"},\"spec\":{\"order\":[1]}}",
            "\n\n  {\"a\" : \n  [ 1 ,\n\t2 ] , \"c\":{}}\n",
            "{\"é😀\": \"ü\", \"k\": [\"x\", {\"ü\": 1}]}",
            "{\"a\": \"\\u00e9\\n\\\"\\/\\\\ \\ud83d\\ude00 z\"}",
            "\u{feff}{\"a\": 1}",
            "{\"a\": 1}\r\n",
            "{\r\n\"a\": 1,\r\n\"b\": 2}",
            "[{\"a\": 1}, {\"a\": 1, \"a\": 2}]",
            "\"scalar\"",
            "42",
        ] {
            same_as_yaml(t);
        }
    }

    #[test]
    fn string_stops() {
        for s in [
            "",
            "a",
            "abcdefgh",
            "abcdefghijklmnop",
            "aé😀bcdefghijk",
            "ünïcødé strings",
        ] {
            for stop in ["\"", "\\", "\n", "\u{1}", "\u{1f}"] {
                for at in 0..=s.len() {
                    if !s.is_char_boundary(at) {
                        continue;
                    }
                    let t = format!("{}{stop}{} ", &s[..at], &s[at..]);
                    assert_eq!(find_stop(t.as_bytes(), 0), at, "{t:?}");
                }
            }
            assert_eq!(find_stop(s.as_bytes(), 0), s.len());
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(scan("  ").unwrap(), Shape::Empty);
        assert_eq!(scan("[1]").unwrap(), Shape::Array);
        assert_eq!(
            scan("{\"items\": [1], \"kind\": \"PodList\"}").unwrap(),
            Shape::List
        );
        assert_eq!(
            scan("{\"items\": {}, \"kind\": \"List\"}").unwrap(),
            Shape::Other
        );
        assert_eq!(scan("{\"kind\": \"Tier\"}").unwrap(), Shape::Other);
        let mut got = Vec::new();
        for_each_item(
            "{\"items\": [{\"a\": 1},\n 2], \"kind\": \"List\", \"items\": [3]}",
            |n| got.push(n),
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].loc, Loc { line: 2, column: 2 });
    }

    #[test]
    fn errors_are_located() {
        for (text, line, column) in [
            ("{\"a\": 1,}", 1, 9),
            ("{\"a\" 1}", 1, 6),
            ("[1 2]", 1, 4),
            ("{\"a\": tru}", 1, 7),
            ("{\"a\": \"x\ny\"}", 1, 9),
            ("{\"a\": \"\\x\"}", 1, 8),
            ("{\"a\": 01}", 1, 8),
            ("{\"a\": 1}\n{}", 2, 1),
            ("\n  [1,\n   -]", 3, 4),
            ("{\"a\": \"é\\q\"}", 1, 9),
            ("[\"\\ud800\"]", 1, 3),
            ("{\"a\": [1", 1, 9),
        ] {
            let e = scan(text).unwrap_err();
            assert_eq!(
                (e.loc.line, e.loc.column),
                (line, column),
                "{text:?}: {e:?}"
            );
        }
        let deep = "[".repeat(300) + &"]".repeat(300);
        assert!(scan(&deep).unwrap_err().message.contains("too deep"));
    }
}

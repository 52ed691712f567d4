//! Calico's label selector language, complete and fast.
//!
//! * [`parse`] accepts and rejects exactly what Calico's Go parser does (spec
//!   `selectors.md`), with Calico's error messages plus a byte offset ([`ParseError`]).
//! * [`Selector::canonical`] is Calico's `String()`, [`Selector::uid`] its `UniqueID()`
//!   (`s:` + unpadded base64url of SHA-224 of `s:` + canonical), which names ipsets.
//! * [`Selector::matches`] evaluates against any [`Labels`] implementation, with the
//!   "absent label" rules of `!=` and `not in`.
//! * [`Selector::label_restrictions`] is Calico's `LabelRestrictions()`.
//! * [`compiled`] interns label keys and values and compiles selectors to a small program over
//!   integer IDs (no allocation and no string hashing per evaluation); [`index::SelectorIndex`]
//!   answers "which of these label maps match selector S" through posting lists.
//! * [`reference`] is the pest grammar, the validating definition the fast parser is tested
//!   against.
//!
//! ```
//! use std::collections::BTreeMap;
//! let sel = selector_lang::parse("app == 'web' && env in {'prod', 'dev'}").unwrap();
//! assert_eq!(sel.canonical(), r#"(app == "web" && env in {"dev", "prod"})"#);
//! let labels: BTreeMap<String, String> =
//!     [("app".into(), "web".into()), ("env".into(), "dev".into())].into();
//! assert!(sel.matches(&labels));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

mod ast;
pub mod compiled;
pub mod index;
mod lexer;
mod parser;
pub mod reference;

pub use ast::{LabelRestriction, Node};
pub use compiled::{CompiledLabels, CompiledSelector, LabelColumns, LabelTable};
pub use index::SelectorIndex;
pub use lexer::{valid_label, MAX_LABEL_LENGTH};

/// A read-only view of a label map. Implemented for the std maps; policy-ir implements it for
/// layered endpoint labels (own labels over profile labels over implicit labels).
pub trait Labels {
    fn get(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

impl Labels for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn get(&self, key: &str) -> Option<&str> {
        (**self).get(key)
    }
}

/// A parse error: byte offset into the selector and Calico's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct ParseError {
    /// Byte offset of the offending token (or of the point where the tokenizer failed);
    /// the input length for "unexpected end" errors.
    pub offset: usize,
    /// Calico's error message, e.g. `expected string`.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        ParseError {
            offset,
            message: message.into(),
        }
    }

    /// Renders the error for people: the message, the selector on its own line, and a caret
    /// under the offending byte. Control characters in the selector are shown as `\n`, `\t`,
    /// ... with the caret moved accordingly.
    pub fn render(&self, selector: &str) -> String {
        let mut line = String::new();
        let mut caret_col = None;
        let mut col = 0usize;
        for (i, ch) in selector.char_indices() {
            if caret_col.is_none() && i >= self.offset {
                caret_col = Some(col);
            }
            let shown: String = if ch.is_control() {
                ch.escape_default().collect()
            } else {
                ch.to_string()
            };
            col += shown.chars().count();
            line.push_str(&shown);
        }
        let caret_col = caret_col.unwrap_or(col);
        format!(
            "error: {} (at byte {})\n  {}\n  {}^",
            self.message,
            self.offset,
            line,
            " ".repeat(caret_col)
        )
    }
}

/// A parsed selector: its AST, canonical string and UID.
#[derive(Debug, Clone)]
pub struct Selector {
    root: Node,
    canonical: String,
    uid: String,
}

/// Parses a selector with the fast parser (empty or blank input = `all()`).
pub fn parse(input: &str) -> Result<Selector, ParseError> {
    let root = parser::parse_node(input)?;
    // The canonical form is about as long as the input.
    Ok(Selector::with_capacity(root, input.len() + 16))
}

/// Calico's `selector.Normalise`: trims Unicode whitespace, parses and returns the canonical
/// form, or the trimmed input unchanged if it does not parse.
pub fn normalise(input: &str) -> String {
    let t = input.trim();
    match parse(t) {
        Ok(s) => s.canonical,
        Err(_) => t.to_owned(),
    }
}

/// `s:` + unpadded base64url of SHA-224 of `s:` + canonical (Calico's `MakeUniqueID("s", ..)`).
pub fn make_unique_id(prefix: &str, content: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha224};
    let mut h = Sha224::new();
    h.update(prefix.as_bytes());
    h.update(b":");
    h.update(content.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(prefix.len() + 1 + 38);
    out.push_str(prefix);
    out.push(':');
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(digest, &mut out);
    out
}

impl Selector {
    /// Builds a selector from an AST (computes canonical form and UID).
    pub fn from_node(root: Node) -> Selector {
        Self::with_capacity(root, 64)
    }

    fn with_capacity(root: Node, capacity: usize) -> Selector {
        let mut canonical = String::with_capacity(capacity);
        root.write_canonical(&mut canonical);
        let uid = make_unique_id("s", &canonical);
        Selector {
            root,
            canonical,
            uid,
        }
    }

    /// `all()`.
    pub fn all() -> Selector {
        Selector::from_node(Node::All)
    }

    /// Calico's canonical string (`Selector.String()`).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// `s:` + base64url(SHA-224("s:" + canonical)), unpadded; 40 characters.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The AST.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Evaluates the selector against a label map.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        self.root.eval(labels)
    }

    /// Calico's `LabelRestrictions()`: for each label, what any match requires of it.
    pub fn label_restrictions(&self) -> BTreeMap<String, LabelRestriction> {
        self.root.label_restrictions()
    }
}

impl PartialEq for Selector {
    /// Calico's `Selector.Equal`: same UID.
    fn eq(&self, other: &Self) -> bool {
        self.uid == other.uid
    }
}
impl Eq for Selector {}

impl std::hash::Hash for Selector {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.uid.hash(state)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl std::str::FromStr for Selector {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

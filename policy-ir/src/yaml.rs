//! A YAML document tree that keeps every node's line and column, built from the event
//! stream of serde-saphyr's parser (`serde_saphyr::granit_parser`). `*.json` files are read by
//! [`crate::json`] into the same tree (falling back to this reader when they are not strict
//! JSON, since JSON used to be read as YAML flow style).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node<'t> {
    pub loc: Loc,
    pub value: Value<'t>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'t> {
    /// A scalar; `plain` is false for quoted and block scalars (which are always strings). The
    /// text borrows from the source where it can.
    Scalar {
        text: Cow<'t, str>,
        plain: bool,
    },
    Seq(Vec<Node<'t>>),
    Map(Vec<(Node<'t>, Node<'t>)>),
}

impl<'t> Node<'t> {
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(&**text, "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value of key `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node<'t>> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The location of the node at field path `path` below this one (`spec.ingress[0].action`;
    /// empty = this node), see [`Node::find`].
    pub fn locate(&self, path: &str) -> Option<Loc> {
        self.find(path).map(|n| n.loc)
    }

    /// The node at field path `path` below this one (empty = this node). Keys may contain dots
    /// (`metadata.labels.example.com/x`); a key that occurs twice resolves to its last
    /// occurrence, the one deserialisation keeps.
    pub fn find(&self, path: &str) -> Option<&Node<'t>> {
        if path.is_empty() {
            return Some(self);
        }
        if let Some(rest) = path.strip_prefix('[') {
            let close = rest.find(']')?;
            let i: usize = rest[..close].parse().ok()?;
            return self.item(i)?.find_rest(&rest[close + 1..]);
        }
        let Value::Map(entries) = &self.value else {
            return None;
        };
        entries.iter().rev().find_map(|(k, v)| {
            let after = path.strip_prefix(k.as_str()?)?;
            if after.is_empty() || after.starts_with(['.', '[']) {
                v.find_rest(after)
            } else {
                None
            }
        })
    }

    fn find_rest(&self, after: &str) -> Option<&Node<'t>> {
        self.find(after.strip_prefix('.').unwrap_or(after))
    }

    /// Item `i` of a sequence.
    pub fn item(&self, i: usize) -> Option<&Node<'t>> {
        match &self.value {
            Value::Seq(items) => items.get(i),
            _ => None,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A syntax error in the YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub loc: Loc,
    pub message: String,
}

fn loc_of(m: &serde_saphyr::granit_parser::Marker) -> Loc {
    Loc {
        line: m.line() as u32,
        column: m.col() as u32 + 1,
    }
}

/// `f` of field path `path` (`spec.ingress[0].source.selector`), else of its nearest parent
/// path for which `f` has an answer (`spec.ingress[0].source`, `spec.ingress[0]`, ...).
pub fn at_nearest_parent<T>(path: &str, mut f: impl FnMut(&str) -> Option<T>) -> Option<T> {
    let mut p = path;
    loop {
        if let Some(t) = f(p) {
            return Some(t);
        }
        p = &p[..p.rfind(['.', '['])?];
    }
}

/// Parses every document of a YAML (or JSON) stream. Empty documents are skipped.
pub fn parse_documents<'t>(text: &'t str) -> Result<Vec<Node<'t>>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    // Stack of open collections: (start loc, anchor, items or map entries, pending key).
    enum Open<'t> {
        Seq(Loc, usize, Vec<Node<'t>>),
        Map(Loc, usize, Vec<(Node<'t>, Node<'t>)>, Option<Node<'t>>),
    }
    let mut stack: Vec<Open<'t>> = Vec::new();
    let mut anchors: HashMap<usize, Node<'t>> = HashMap::new();
    let mut depth_guard = 0usize;

    // Places a finished node into its parent, or returns it when it is a document root.
    fn place<'t>(stack: &mut [Open<'t>], node: Node<'t>) -> Option<Node<'t>> {
        match stack.last_mut() {
            None => Some(node),
            Some(Open::Seq(_, _, items)) => {
                items.push(node);
                None
            }
            Some(Open::Map(_, _, entries, pending)) => {
                match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => entries.push((key, node)),
                }
                None
            }
        }
    }

    let mut root: Option<Node<'t>> = None;
    while let Some(ev) = parser.next_event() {
        let (event, span) = ev.map_err(|e| SyntaxError {
            loc: loc_of(e.marker()),
            message: e.info().to_string(),
        })?;
        let loc = loc_of(&span.start);
        let finished: Option<Node<'t>> = match event {
            Event::StreamStart => None,
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                root = None;
                anchors.clear();
                None
            }
            Event::DocumentEnd => {
                if let Some(r) = root.take() {
                    if !r.is_null() {
                        docs.push(r);
                    }
                }
                None
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(n) => {
                    let mut n = n.clone();
                    n.loc = loc;
                    Some(n)
                }
                None => {
                    return Err(SyntaxError {
                        loc,
                        message: "unknown alias".into(),
                    })
                }
            },
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Node {
                    loc,
                    value: Value::Scalar {
                        text,
                        plain: matches!(style, ScalarStyle::Plain),
                    },
                };
                if anchor != 0 {
                    anchors.insert(anchor, node.clone());
                }
                Some(node)
            }
            Event::SequenceStart(_, anchor, _) => {
                depth_guard += 1;
                if depth_guard > 256 {
                    return Err(SyntaxError {
                        loc,
                        message: "nesting too deep".into(),
                    });
                }
                stack.push(Open::Seq(loc, anchor, Vec::new()));
                None
            }
            Event::MappingStart(_, anchor, _) => {
                depth_guard += 1;
                if depth_guard > 256 {
                    return Err(SyntaxError {
                        loc,
                        message: "nesting too deep".into(),
                    });
                }
                stack.push(Open::Map(loc, anchor, Vec::new(), None));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth_guard = depth_guard.saturating_sub(1);
                let (node, anchor) = match stack.pop() {
                    Some(Open::Seq(l, a, items)) => (
                        Node {
                            loc: l,
                            value: Value::Seq(items),
                        },
                        a,
                    ),
                    Some(Open::Map(l, a, entries, _)) => (
                        Node {
                            loc: l,
                            value: Value::Map(entries),
                        },
                        a,
                    ),
                    None => {
                        return Err(SyntaxError {
                            loc,
                            message: "unbalanced collection end".into(),
                        })
                    }
                };
                if anchor != 0 {
                    anchors.insert(anchor, node.clone());
                }
                Some(node)
            }
            _ => None,
        };
        if let Some(node) = finished {
            if let Some(r) = place(&mut stack, node) {
                root = Some(r);
            }
        }
    }
    if let Some(r) = root.take() {
        if !r.is_null() {
            docs.push(r);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_locations_and_documents() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - 'y'\n---\n[1, 2]\n").unwrap();
        assert_eq!(docs.len(), 2);
        let b = docs[0].get("b").unwrap();
        match &b.value {
            Value::Seq(items) => {
                assert_eq!(items[1].loc, Loc { line: 4, column: 5 });
                assert_eq!(
                    items[1].value,
                    Value::Scalar {
                        text: "y".into(),
                        plain: false
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(docs[1].loc.line, 6);
    }

    #[test]
    fn json_and_errors() {
        let docs = parse_documents("{\"kind\": \"Tier\", \"n\": [1]}").unwrap();
        assert_eq!(docs[0].get("kind").unwrap().as_str(), Some("Tier"));
        let err = parse_documents("a: [1, 2\nb: c").unwrap_err();
        assert!(err.loc.line >= 1, "{err:?}");
    }

    #[test]
    fn aliases_resolve() {
        let docs = parse_documents("x: &a {k: v}\ny: *a\n").unwrap();
        assert_eq!(
            docs[0].get("y").unwrap().get("k").unwrap().as_str(),
            Some("v")
        );
    }
}

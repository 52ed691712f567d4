//! A serde `Deserializer` over [`Node`] trees. It records where every field path was found,
//! reports unknown fields (with a "did you mean" hint) without stopping, and attaches the path and
//! location of the innermost failing node to type errors.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::yaml::{Loc, Node, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    pub message: String,
    pub path: Option<String>,
    pub loc: Option<Loc>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            path: None,
            loc: None,
        }
    }
}

impl DeError {
    fn at(mut self, path: Path<'_>, loc: Loc) -> Self {
        if self.loc.is_none() {
            self.loc = Some(loc);
            self.path = Some(path.render());
        }
        self
    }
}

/// An issue that does not stop deserialisation (unknown fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftIssue {
    pub path: String,
    pub loc: Loc,
    pub message: String,
}

/// Shared state of one resource's deserialisation.
#[derive(Default)]
pub struct Ctx {
    /// When false, unknown fields are ignored silently (Kubernetes Pods and Namespaces carry many
    /// fields Brindle does not use).
    pub strict: bool,
    /// When true, `locations` is filled (costly: one path string per node). Otherwise ask the
    /// tree ([`Node::locate`]) for the few places needed.
    pub record: bool,
    pub issues: RefCell<Vec<SoftIssue>>,
    /// Where each field path was found (`spec.ingress[0].source.selector` → 12:17), if `record`.
    pub locations: RefCell<HashMap<String, Loc>>,
}

impl Ctx {
    pub fn new(strict: bool) -> Ctx {
        Ctx {
            strict,
            ..Default::default()
        }
    }

    /// A context that also records the location of every field path it visits.
    pub fn recording(strict: bool) -> Ctx {
        Ctx {
            strict,
            record: true,
            ..Default::default()
        }
    }
}

/// Deserialises `T` from `node`, whose field path is `path` (empty for a document root).
pub fn from_node<'a, T: Deserialize<'a>>(
    node: &'a Node<'a>,
    path: &str,
    ctx: &Ctx,
) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: Path::Root(path),
        ctx,
    })
}

/// A field path, kept as a chain of borrowed segments on the stack while descending and turned
/// into text only when needed (an error, an unknown field, a recording context).
#[derive(Clone, Copy)]
enum Path<'p> {
    Root(&'p str),
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    fn write(&self, out: &mut String) {
        match self {
            Path::Root(p) => out.push_str(p),
            Path::Key(parent, key) => {
                parent.write(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, i) => {
                use std::fmt::Write;
                parent.write(out);
                let _ = write!(out, "[{i}]");
            }
        }
    }
}

pub struct NodeDe<'a, 'p, 'c> {
    node: &'a Node<'a>,
    path: Path<'p>,
    ctx: &'c Ctx,
}

/// Levenshtein distance, for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    let b: Vec<char> = b.chars().flat_map(char::to_lowercase).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate, if close enough to be a plausible typo.
pub fn did_you_mean<'x>(word: &str, candidates: &[&'x str]) -> Option<&'x str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

impl<'a> NodeDe<'a, '_, '_> {
    #[inline]
    fn record(&self) {
        if self.ctx.record {
            self.ctx
                .locations
                .borrow_mut()
                .insert(self.path.render(), self.node.loc);
        }
    }

    fn err(&self, msg: String) -> DeError {
        DeError {
            message: msg,
            path: Some(self.path.render()),
            loc: Some(self.node.loc),
        }
    }

    fn scalar(&self, what: &str) -> Result<&'a str, DeError> {
        match &self.node.value {
            Value::Scalar { text, .. } => Ok(text),
            _ => Err(self.err(format!("expected {what}, found {}", self.node.kind_name()))),
        }
    }

    fn parse_num<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        let s = self.scalar(what)?;
        let t = s.trim();
        let t = t.strip_prefix('+').unwrap_or(t);
        t.parse::<T>()
            .map_err(|_| self.err(format!("expected {what}, found {s:?}")))
    }

    fn map_entries(&self) -> Result<&'a [(Node<'a>, Node<'a>)], DeError> {
        match &self.node.value {
            Value::Map(entries) => Ok(entries),
            _ if self.node.is_null() => Ok(&[]),
            _ => Err(self.err(format!(
                "expected a mapping, found {}",
                self.node.kind_name()
            ))),
        }
    }
}

macro_rules! de_num {
    ($name:ident, $ty:ty, $visit:ident, $what:expr) => {
        fn $name<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            self.record();
            let n: $ty = self.parse_num($what)?;
            let (p, l) = (self.path, self.node.loc);
            v.$visit(n).map_err(|e: DeError| e.at(p, l))
        }
    };
}

impl<'de, 'a: 'de> de::Deserializer<'de> for NodeDe<'a, '_, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.record();
        let (p, l) = (self.path, self.node.loc);
        let r = match &self.node.value {
            Value::Scalar { text, plain } => {
                if *plain {
                    if self.node.is_null() {
                        v.visit_unit()
                    } else if matches!(&**text, "true" | "True" | "TRUE") {
                        v.visit_bool(true)
                    } else if matches!(&**text, "false" | "False" | "FALSE") {
                        v.visit_bool(false)
                    } else if let Ok(n) = text.parse::<u64>() {
                        v.visit_u64(n)
                    } else if let Ok(n) = text.parse::<i64>() {
                        v.visit_i64(n)
                    } else if let (true, Ok(f)) = (
                        text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.'),
                        text.parse::<f64>(),
                    ) {
                        v.visit_f64(f)
                    } else {
                        v.visit_borrowed_str(text)
                    }
                } else {
                    v.visit_borrowed_str(text)
                }
            }
            Value::Seq(_) => return self.deserialize_seq(v),
            Value::Map(_) => return self.deserialize_map(v),
        };
        r.map_err(|e: DeError| e.at(p, l))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.record();
        let s = self.scalar("true or false")?;
        let b = match s {
            "true" | "True" | "TRUE" => true,
            "false" | "False" | "FALSE" => false,
            _ => return Err(self.err(format!("expected true or false, found {s:?}"))),
        };
        let (p, l) = (self.path, self.node.loc);
        v.visit_bool(b).map_err(|e: DeError| e.at(p, l))
    }

    de_num!(deserialize_u8, u8, visit_u8, "an integer 0..=255");
    de_num!(deserialize_u16, u16, visit_u16, "an integer 0..=65535");
    de_num!(deserialize_u32, u32, visit_u32, "a non-negative integer");
    de_num!(deserialize_u64, u64, visit_u64, "a non-negative integer");
    de_num!(deserialize_i8, i8, visit_i8, "an integer");
    de_num!(deserialize_i16, i16, visit_i16, "an integer");
    de_num!(deserialize_i32, i32, visit_i32, "an integer");
    de_num!(deserialize_i64, i64, visit_i64, "an integer");
    de_num!(deserialize_f32, f32, visit_f32, "a number");
    de_num!(deserialize_f64, f64, visit_f64, "a number");

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.record();
        let s = self.scalar("a string")?;
        let (p, l) = (self.path, self.node.loc);
        v.visit_borrowed_str(s).map_err(|e: DeError| e.at(p, l))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            self.record();
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.record();
        v.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.record();
        let (p, l) = (self.path, self.node.loc);
        let items: &'a [Node<'a>] = match &self.node.value {
            Value::Seq(items) => items,
            _ if self.node.is_null() => &[],
            _ => return Err(self.err(format!("expected a list, found {}", self.node.kind_name()))),
        };
        v.visit_seq(SeqDe {
            items: items.iter().enumerate(),
            path: self.path,
            ctx: self.ctx,
        })
        .map_err(|e: DeError| e.at(p, l))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.record();
        let (p, l) = (self.path, self.node.loc);
        let entries = self.map_entries()?;
        v.visit_map(MapDe {
            entries: entries.iter(),
            fields: None,
            record: self.ctx.record,
            value: None,
            path: self.path,
            ctx: self.ctx,
        })
        .map_err(|e: DeError| e.at(p, l))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.record();
        let (p, l) = (self.path, self.node.loc);
        let entries = self.map_entries()?;
        if self.ctx.strict {
            for (k, _) in entries {
                let key = k.as_str().unwrap_or("");
                if fields.contains(&key) {
                    continue;
                }
                let hint = match did_you_mean(key, fields) {
                    Some(c) => format!(" (did you mean `{c}`?)"),
                    None => {
                        let mut list: Vec<&str> = fields.to_vec();
                        list.sort_unstable();
                        format!("; expected one of {}", list.join(", "))
                    }
                };
                self.ctx.issues.borrow_mut().push(SoftIssue {
                    path: Path::Key(&self.path, key).render(),
                    loc: k.loc,
                    message: format!("unknown field `{key}`{hint}"),
                });
            }
        }
        v.visit_map(MapDe {
            entries: entries.iter(),
            fields: Some(fields),
            record: self.ctx.record,
            value: None,
            path: self.path,
            ctx: self.ctx,
        })
        .map_err(|e: DeError| e.at(p, l))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.record();
        let (p, l) = (self.path, self.node.loc);
        match &self.node.value {
            Value::Scalar { text, .. } => v
                .visit_enum((&**text).into_deserializer())
                .map_err(|e: DeError| e.at(p, l)),
            _ => Err(self.err(format!(
                "expected one of the names, found {}",
                self.node.kind_name()
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_u64(v)
    }

    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_i64(v)
    }
}

struct SeqDe<'a, 'p, 'c> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node<'a>>>,
    path: Path<'p>,
    ctx: &'c Ctx,
}

impl<'de, 'a: 'de> SeqAccess<'de> for SeqDe<'a, '_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => seed
                .deserialize(NodeDe {
                    node,
                    path: Path::Index(&self.path, i),
                    ctx: self.ctx,
                })
                .map(Some),
        }
    }
}

struct MapDe<'a, 'p, 'c> {
    entries: std::slice::Iter<'a, (Node<'a>, Node<'a>)>,
    /// A struct's fields: other keys are skipped (and were reported as unknown). Skipping
    /// matters only for non-scalar keys and for a recording context: a derived struct ignores
    /// unknown names itself.
    fields: Option<&'static [&'static str]>,
    record: bool,
    value: Option<(&'a Node<'a>, &'a str)>,
    path: Path<'p>,
    ctx: &'c Ctx,
}

impl<'de, 'a: 'de> MapAccess<'de> for MapDe<'a, '_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        for (k, val) in self.entries.by_ref() {
            let key = match k.as_str() {
                Some(key) => key,
                None if self.fields.is_some() => continue,
                None => "",
            };
            if self.record && self.fields.is_some_and(|f| !f.contains(&key)) {
                continue;
            }
            self.value = Some((val, key));
            return seed
                .deserialize(NodeDe {
                    node: k,
                    path: Path::Key(&self.path, key),
                    ctx: self.ctx,
                })
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (node, key) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value without key"))?;
        seed.deserialize(NodeDe {
            node,
            path: Path::Key(&self.path, key),
            ctx: self.ctx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct T {
        name: String,
        #[serde(default)]
        ports: Vec<u16>,
        inner: Option<Inner>,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        selector: String,
    }

    #[test]
    fn unknown_fields_and_type_errors_carry_places() {
        let docs = parse_documents("name: x\nprots: [1]\ninner:\n  selectr: a\n").unwrap();
        let ctx = Ctx::new(true);
        let err = from_node::<T>(&docs[0], "", &ctx).unwrap_err();
        assert!(err.message.contains("missing field `selector`"), "{err:?}");
        assert_eq!(err.path.as_deref(), Some("inner"));
        let issues = ctx.issues.borrow();
        assert_eq!(issues.len(), 2);
        assert_eq!(
            issues[0].message,
            "unknown field `prots` (did you mean `ports`?)"
        );
        assert_eq!(issues[0].loc, Loc { line: 2, column: 1 });
        assert_eq!(issues[1].path, "inner.selectr");

        let docs = parse_documents("name: x\nports: [1, 99999]\n").unwrap();
        let err = from_node::<T>(&docs[0], "", &Ctx::new(true)).unwrap_err();
        assert_eq!(err.path.as_deref(), Some("ports[1]"));
        assert_eq!(
            err.loc,
            Some(Loc {
                line: 2,
                column: 12
            })
        );
    }
}

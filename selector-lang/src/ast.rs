//! The selector AST, its canonical printing (Calico's `String()`), evaluation and label
//! restrictions. Every recursive walk runs under [`grow`], so arbitrarily deep selectors (as
//! Go's growable stacks allow) never overflow the thread stack.

use std::collections::BTreeMap;

use crate::Labels;

/// Runs `f` with at least 64 KiB of stack left, switching to a fresh heap-allocated 1 MiB
/// segment when needed.
#[inline]
pub(crate) fn grow<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
}

/// Like [`grow`], but only checks the stack every 16 levels of `depth` (a few KiB of frames
/// fit easily in the 64 KiB red zone), which keeps shallow walks free of the check.
#[inline(always)]
fn grow_at<R>(depth: u32, f: impl FnOnce() -> R) -> R {
    if depth % 16 == 15 {
        grow(f)
    } else {
        f()
    }
}

/// One node of a parsed selector. Parentheses make no node; `!` parity is already collapsed
/// for consecutive `!`s, but `!(!x)` stays `Not(Not(x))` exactly as in Calico.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `all()`
    All,
    /// `global()` (matches everything at this level)
    Global,
    /// `has(k)`
    Has(String),
    /// `k == v`
    Eq(String, String),
    /// `k != v`
    Ne(String, String),
    /// `k contains v`
    Contains(String, String),
    /// `k starts with v`
    StartsWith(String, String),
    /// `k ends with v`
    EndsWith(String, String),
    /// `k in {..}`: values sorted byte-wise and de-duplicated.
    In(String, Vec<String>),
    /// `k not in {..}`: values sorted byte-wise and de-duplicated.
    NotIn(String, Vec<String>),
    /// `!x`
    Not(Box<Node>),
    /// `(a && b && ..)`, at least two operands.
    And(Vec<Node>),
    /// `(a || b || ..)`, at least two operands.
    Or(Vec<Node>),
}

impl Drop for Node {
    fn drop(&mut self) {
        // Deep trees are dropped with stack growth instead of overflowing.
        match self {
            Node::Not(inner) => {
                let inner = std::mem::replace(&mut **inner, Node::All);
                grow(move || drop(inner));
            }
            Node::And(v) | Node::Or(v) => {
                let v = std::mem::take(v);
                grow(move || drop(v));
            }
            _ => {}
        }
    }
}

/// Sorts byte-wise and de-duplicates (Calico's `ConvertToStringSetInPlace`).
pub(crate) fn to_set(mut v: Vec<String>) -> Vec<String> {
    if v.len() > 1 {
        v.sort_unstable();
        v.dedup();
    }
    v
}

fn push_quoted(out: &mut String, s: &str) {
    let q = if s.contains('"') { '\'' } else { '"' };
    out.push(q);
    out.push_str(s);
    out.push(q);
}

fn push_set(out: &mut String, k: &str, op: &str, vals: &[String]) {
    out.push_str(k);
    out.push(' ');
    out.push_str(op);
    out.push_str(" {");
    for (i, v) in vals.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_quoted(out, v);
    }
    out.push('}');
}

impl Node {
    /// Appends Calico's canonical form of this node.
    pub fn write_canonical(&self, out: &mut String) {
        self.write_c(out, 0)
    }

    fn write_c(&self, out: &mut String, depth: u32) {
        match self {
            Node::All => out.push_str("all()"),
            Node::Global => out.push_str("global()"),
            Node::Has(k) => {
                out.push_str("has(");
                out.push_str(k);
                out.push(')');
            }
            Node::Eq(k, v) => {
                out.push_str(k);
                out.push_str(" == ");
                push_quoted(out, v);
            }
            Node::Ne(k, v) => {
                out.push_str(k);
                out.push_str(" != ");
                push_quoted(out, v);
            }
            Node::Contains(k, v) => {
                out.push_str(k);
                out.push_str(" contains ");
                push_quoted(out, v);
            }
            Node::StartsWith(k, v) => {
                out.push_str(k);
                out.push_str(" starts with ");
                push_quoted(out, v);
            }
            Node::EndsWith(k, v) => {
                out.push_str(k);
                out.push_str(" ends with ");
                push_quoted(out, v);
            }
            Node::In(k, vals) => push_set(out, k, "in", vals),
            Node::NotIn(k, vals) => push_set(out, k, "not in", vals),
            Node::Not(inner) => {
                out.push('!');
                grow_at(depth, || inner.write_c(out, depth + 1));
            }
            Node::And(ops) | Node::Or(ops) => {
                let sep = if matches!(self, Node::And(_)) {
                    " && "
                } else {
                    " || "
                };
                out.push('(');
                for (i, op) in ops.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    grow_at(depth, || op.write_c(out, depth + 1));
                }
                out.push(')');
            }
        }
    }

    /// Evaluates against a label map, with Calico's rules for absent labels.
    pub fn eval<L: Labels + ?Sized>(&self, l: &L) -> bool {
        self.eval_d(l, 0)
    }

    fn eval_d<L: Labels + ?Sized>(&self, l: &L, depth: u32) -> bool {
        match self {
            Node::All | Node::Global => true,
            Node::Has(k) => l.get(k).is_some(),
            Node::Eq(k, v) => l.get(k) == Some(v.as_str()),
            Node::Ne(k, v) => l.get(k) != Some(v.as_str()),
            Node::Contains(k, v) => l.get(k).is_some_and(|x| x.contains(v.as_str())),
            Node::StartsWith(k, v) => l.get(k).is_some_and(|x| x.starts_with(v.as_str())),
            Node::EndsWith(k, v) => l.get(k).is_some_and(|x| x.ends_with(v.as_str())),
            Node::In(k, vals) => l
                .get(k)
                .is_some_and(|x| vals.binary_search_by(|p| p.as_str().cmp(x)).is_ok()),
            Node::NotIn(k, vals) => l
                .get(k)
                .is_none_or(|x| vals.binary_search_by(|p| p.as_str().cmp(x)).is_err()),
            Node::Not(inner) => !grow_at(depth, || inner.eval_d(l, depth + 1)),
            Node::And(ops) => ops
                .iter()
                .all(|o| grow_at(depth, || o.eval_d(l, depth + 1))),
            Node::Or(ops) => ops
                .iter()
                .any(|o| grow_at(depth, || o.eval_d(l, depth + 1))),
        }
    }

    /// Calico's `LabelRestrictions()` for this node.
    pub fn label_restrictions(&self) -> BTreeMap<String, LabelRestriction> {
        let mut m = BTreeMap::new();
        match self {
            Node::Has(k) | Node::Contains(k, _) | Node::StartsWith(k, _) | Node::EndsWith(k, _) => {
                m.insert(k.clone(), LabelRestriction::present(None));
            }
            Node::Eq(k, v) => {
                m.insert(k.clone(), LabelRestriction::present(Some(vec![v.clone()])));
            }
            Node::In(k, vals) => {
                // Calico's empty set is a nil slice: "no value restriction".
                let vals = if vals.is_empty() {
                    None
                } else {
                    Some(vals.clone())
                };
                m.insert(k.clone(), LabelRestriction::present(vals));
            }
            Node::Not(inner) => {
                if let Node::Has(k) = &**inner {
                    m.insert(
                        k.clone(),
                        LabelRestriction {
                            must_be_absent: true,
                            ..LabelRestriction::default()
                        },
                    );
                }
            }
            Node::And(ops) => {
                for op in ops {
                    for (k, r) in grow(|| op.label_restrictions()) {
                        let base = m.entry(k).or_default();
                        base.must_be_present |= r.must_be_present;
                        base.must_be_absent |= r.must_be_absent;
                        match (&mut base.must_have_one_of_values, r.must_have_one_of_values) {
                            (None, other) => base.must_have_one_of_values = other,
                            (Some(a), Some(b)) => a.retain(|x| b.binary_search(x).is_ok()),
                            (Some(_), None) => {}
                        }
                    }
                }
            }
            Node::Or(ops) => {
                m = grow(|| ops[0].label_restrictions());
                for op in &ops[1..] {
                    let other = grow(|| op.label_restrictions());
                    m.retain(|k, r| {
                        let o = other.get(k).cloned().unwrap_or_default();
                        r.must_be_present = r.must_be_present && o.must_be_present;
                        if !r.must_be_present {
                            r.must_have_one_of_values = None;
                        } else {
                            match (&mut r.must_have_one_of_values, o.must_have_one_of_values) {
                                (Some(a), Some(b)) => {
                                    a.extend(b);
                                    a.sort_unstable();
                                    a.dedup();
                                }
                                (slot, _) => *slot = None,
                            }
                        }
                        r.must_be_absent = r.must_be_absent && o.must_be_absent;
                        r.must_be_present || r.must_be_absent
                    });
                }
            }
            Node::All | Node::Global | Node::Ne(..) | Node::NotIn(..) => {}
        }
        m
    }
}

/// What a selector requires of one label (Calico's `LabelRestriction`): a lower bound, used for
/// indexing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelRestriction {
    /// The label must be present (e.g. `has(k)`, `k == "v"`).
    pub must_be_present: bool,
    /// The label must be absent (`!has(k)`).
    pub must_be_absent: bool,
    /// `None`: no value restriction. `Some(vals)` (sorted): the value must be one of `vals`;
    /// `Some([])` means the selector cannot match anything.
    pub must_have_one_of_values: Option<Vec<String>>,
}

impl LabelRestriction {
    fn present(vals: Option<Vec<String>>) -> Self {
        LabelRestriction {
            must_be_present: true,
            must_be_absent: false,
            must_have_one_of_values: vals,
        }
    }
}

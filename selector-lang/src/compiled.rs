//! Compiled evaluation: label keys and values are interned into integer IDs by a
//! [`LabelTable`]; label maps are compiled once into [`CompiledLabels`] (a dense vector indexed
//! by key ID, or a sorted `(key, value)` array when the key space is sparse), and selectors into
//! a [`CompiledSelector`], a short linear program with forward jumps for `&&`/`||`
//! short-circuiting. [`CompiledSelector::matches`] does no allocation and no string hashing;
//! only `contains` / `starts with` / `ends with` look at string bytes.
//!
//! ```
//! use selector_lang::{parse, LabelTable};
//! let mut table = LabelTable::new();
//! let sel = table.compile_selector(&parse("app == 'web' && !has(canary)").unwrap());
//! let web = table.compile_labels([("app", "web"), ("env", "prod")]);
//! let canary = table.compile_labels([("app", "web"), ("canary", "")]);
//! assert!(sel.matches(&web, &table));
//! assert!(!sel.matches(&canary, &table));
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ast::{grow, Node};
use crate::Selector;

/// Marks "no value" in the dense representation.
const NONE: u32 = u32::MAX;

static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Default, Clone)]
struct Interner {
    map: HashMap<Box<str>, u32>,
    strs: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = u32::try_from(self.strs.len()).expect("fewer than 2^32-1 interned strings");
        assert!(id != NONE, "interner full");
        self.strs.push(s.into());
        self.map.insert(s.into(), id);
        id
    }
    fn get(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }
}

/// Interns label keys and values (separately; key IDs stay small and dense). Compiled label
/// maps and compiled selectors are only meaningful with the table that produced them; mixing
/// tables panics.
#[derive(Debug, Clone)]
pub struct LabelTable {
    id: u64,
    keys: Interner,
    values: Interner,
}

impl Default for LabelTable {
    fn default() -> Self {
        Self::new()
    }
}

impl LabelTable {
    pub fn new() -> Self {
        LabelTable {
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            keys: Interner::default(),
            values: Interner::default(),
        }
    }

    pub fn intern_key(&mut self, k: &str) -> u32 {
        self.keys.intern(k)
    }
    pub fn intern_value(&mut self, v: &str) -> u32 {
        self.values.intern(v)
    }
    pub fn key_id(&self, k: &str) -> Option<u32> {
        self.keys.get(k)
    }
    pub fn value_id(&self, v: &str) -> Option<u32> {
        self.values.get(v)
    }
    /// The key with this ID. Panics on an ID this table did not hand out.
    pub fn key(&self, id: u32) -> &str {
        &self.keys.strs[id as usize]
    }
    /// The value with this ID. Panics on an ID this table did not hand out.
    pub fn value(&self, id: u32) -> &str {
        &self.values.strs[id as usize]
    }
    /// Number of distinct keys interned so far.
    pub fn key_count(&self) -> usize {
        self.keys.strs.len()
    }

    /// Compiles a label map (any `(key, value)` pairs; a repeated key keeps its last value).
    pub fn compile_labels<I, K, V>(&mut self, labels: I) -> CompiledLabels
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut pairs: Vec<(u32, u32)> = labels
            .into_iter()
            .map(|(k, v)| (self.intern_key(k.as_ref()), self.intern_value(v.as_ref())))
            .collect();
        // Stable sort keeps insertion order among equal keys; keep the last one.
        pairs.sort_by_key(|p| p.0);
        let mut dedup: Vec<(u32, u32)> = Vec::with_capacity(pairs.len());
        for p in pairs {
            match dedup.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => dedup.push(p),
            }
        }
        let span = dedup.last().map_or(0, |p| p.0 as usize + 1);
        let repr = if span <= (4 * dedup.len()).max(32) {
            let mut dense = vec![NONE; span];
            for &(k, v) in &dedup {
                dense[k as usize] = v;
            }
            Repr::Dense(dense.into_boxed_slice())
        } else {
            Repr::Sparse(dedup.into_boxed_slice())
        };
        CompiledLabels {
            table: self.id,
            repr,
        }
    }

    /// Compiles a selector to a program over this table's IDs (interning its keys and values).
    pub fn compile_selector(&mut self, sel: &Selector) -> CompiledSelector {
        let mut c = CompiledSelector {
            table: self.id,
            prog: Vec::new(),
            sets: Vec::new(),
            needles: Vec::new(),
            restrictions: Vec::new(),
            impossible: false,
        };
        self.emit(sel.root(), &mut c);
        for (k, r) in sel.label_restrictions() {
            if !r.must_be_present {
                continue;
            }
            let vals = r.must_have_one_of_values.map(|vs| {
                let mut ids: Vec<u32> = vs.iter().map(|v| self.intern_value(v)).collect();
                ids.sort_unstable();
                ids
            });
            if matches!(&vals, Some(v) if v.is_empty()) {
                c.impossible = true;
            }
            let k = self.intern_key(&k);
            c.restrictions.push((k, vals));
        }
        c
    }

    fn set_ids(&mut self, vals: &[String], c: &mut CompiledSelector) -> (u32, u32) {
        let start = c.sets.len() as u32;
        let mut ids: Vec<u32> = vals.iter().map(|v| self.intern_value(v)).collect();
        ids.sort_unstable();
        c.sets.extend(ids);
        (start, vals.len() as u32)
    }

    fn needle(s: &str, c: &mut CompiledSelector) -> u32 {
        c.needles.push(s.into());
        (c.needles.len() - 1) as u32
    }

    fn emit(&mut self, n: &Node, c: &mut CompiledSelector) {
        let inst = match n {
            Node::All | Node::Global => Inst::True,
            Node::Has(k) => Inst::Has(self.intern_key(k)),
            Node::Eq(k, v) => Inst::Eq(self.intern_key(k), self.intern_value(v)),
            Node::Ne(k, v) => Inst::Ne(self.intern_key(k), self.intern_value(v)),
            Node::Contains(k, v) => Inst::Contains(self.intern_key(k), Self::needle(v, c)),
            Node::StartsWith(k, v) => Inst::StartsWith(self.intern_key(k), Self::needle(v, c)),
            Node::EndsWith(k, v) => Inst::EndsWith(self.intern_key(k), Self::needle(v, c)),
            Node::In(k, vals) => {
                let k = self.intern_key(k);
                let (s, l) = self.set_ids(vals, c);
                Inst::In(k, s, l)
            }
            Node::NotIn(k, vals) => {
                let k = self.intern_key(k);
                let (s, l) = self.set_ids(vals, c);
                Inst::NotIn(k, s, l)
            }
            Node::Not(inner) => {
                grow(|| self.emit(inner, c));
                Inst::Not
            }
            Node::And(ops) | Node::Or(ops) => {
                let is_and = matches!(n, Node::And(_));
                let mut fixups = Vec::with_capacity(ops.len() - 1);
                for (i, op) in ops.iter().enumerate() {
                    grow(|| self.emit(op, c));
                    if i + 1 < ops.len() {
                        fixups.push(c.prog.len());
                        c.prog.push(if is_and {
                            Inst::JumpIfFalse(0)
                        } else {
                            Inst::JumpIfTrue(0)
                        });
                    }
                }
                let end = c.prog.len() as u32;
                for f in fixups {
                    c.prog[f] = match c.prog[f] {
                        Inst::JumpIfFalse(_) => Inst::JumpIfFalse(end),
                        _ => Inst::JumpIfTrue(end),
                    };
                }
                return;
            }
        };
        c.prog.push(inst);
    }
}

#[derive(Debug, Clone)]
enum Repr {
    /// Value ID per key ID (`NONE` where absent), up to the largest key present.
    Dense(Box<[u32]>),
    /// `(key, value)` sorted by key.
    Sparse(Box<[(u32, u32)]>),
}

/// A label map compiled against a [`LabelTable`].
#[derive(Debug, Clone)]
pub struct CompiledLabels {
    table: u64,
    repr: Repr,
}

impl CompiledLabels {
    /// The value ID of `key`, if present.
    #[inline]
    pub fn get(&self, key: u32) -> Option<u32> {
        match &self.repr {
            Repr::Dense(d) => match d.get(key as usize) {
                Some(&v) if v != NONE => Some(v),
                _ => None,
            },
            Repr::Sparse(s) => {
                if s.len() <= 16 {
                    s.iter().find(|p| p.0 == key).map(|p| p.1)
                } else {
                    s.binary_search_by_key(&key, |p| p.0).ok().map(|i| s[i].1)
                }
            }
        }
    }

    /// The `(key ID, value ID)` pairs, in key-ID order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let (d, s): (&[u32], &[(u32, u32)]) = match &self.repr {
            Repr::Dense(d) => (d, &[]),
            Repr::Sparse(s) => (&[], s),
        };
        d.iter()
            .enumerate()
            .filter(|(_, &v)| v != NONE)
            .map(|(k, &v)| (k as u32, v))
            .chain(s.iter().copied())
    }
}

#[derive(Debug, Clone, Copy)]
enum Inst {
    True,
    Has(u32),
    Eq(u32, u32),
    Ne(u32, u32),
    /// key, start and length in `sets` (sorted value IDs)
    In(u32, u32, u32),
    NotIn(u32, u32, u32),
    /// key, index in `needles`
    Contains(u32, u32),
    StartsWith(u32, u32),
    EndsWith(u32, u32),
    Not,
    JumpIfFalse(u32),
    JumpIfTrue(u32),
}

/// A selector compiled against a [`LabelTable`].
#[derive(Debug, Clone)]
pub struct CompiledSelector {
    table: u64,
    prog: Vec<Inst>,
    sets: Vec<u32>,
    needles: Vec<Box<str>>,
    /// Labels that must be present, with the value IDs they must have one of (sorted), if known.
    pub(crate) restrictions: Vec<(u32, Option<Vec<u32>>)>,
    /// Some label must have one of zero values: the selector matches nothing.
    pub(crate) impossible: bool,
}

#[inline]
fn in_set(set: &[u32], v: u32) -> bool {
    if set.len() <= 8 {
        set.contains(&v)
    } else {
        set.binary_search(&v).is_ok()
    }
}

impl CompiledSelector {
    /// Evaluates against a compiled label map of the same table. Allocation-free.
    #[inline]
    pub fn matches(&self, l: &CompiledLabels, table: &LabelTable) -> bool {
        assert!(
            self.table == table.id && l.table == table.id,
            "compiled selector, labels and table must come from the same LabelTable"
        );
        self.eval(l, table)
    }

    #[inline]
    pub(crate) fn eval(&self, l: &CompiledLabels, table: &LabelTable) -> bool {
        let prog = &self.prog[..];
        let mut acc = true;
        let mut pc = 0usize;
        while let Some(inst) = prog.get(pc) {
            acc = match *inst {
                Inst::True => true,
                Inst::Has(k) => l.get(k).is_some(),
                Inst::Eq(k, v) => l.get(k) == Some(v),
                Inst::Ne(k, v) => l.get(k) != Some(v),
                Inst::In(k, s, n) => match l.get(k) {
                    Some(v) => in_set(&self.sets[s as usize..(s + n) as usize], v),
                    None => false,
                },
                Inst::NotIn(k, s, n) => match l.get(k) {
                    Some(v) => !in_set(&self.sets[s as usize..(s + n) as usize], v),
                    None => true,
                },
                Inst::Contains(k, n) => l
                    .get(k)
                    .is_some_and(|v| table.value(v).contains(&*self.needles[n as usize])),
                Inst::StartsWith(k, n) => l
                    .get(k)
                    .is_some_and(|v| table.value(v).starts_with(&*self.needles[n as usize])),
                Inst::EndsWith(k, n) => l
                    .get(k)
                    .is_some_and(|v| table.value(v).ends_with(&*self.needles[n as usize])),
                Inst::Not => !acc,
                Inst::JumpIfFalse(t) => {
                    if !acc {
                        pc = t as usize;
                        continue;
                    }
                    acc
                }
                Inst::JumpIfTrue(t) => {
                    if acc {
                        pc = t as usize;
                        continue;
                    }
                    acc
                }
            };
            pc += 1;
        }
        acc
    }

    pub(crate) fn same_table(&self, t: &LabelTable) -> bool {
        self.table == t.id
    }

    /// True if the label restrictions prove the selector matches nothing
    /// (e.g. `a == "x" && a == "y"`).
    pub fn is_impossible(&self) -> bool {
        self.impossible
    }
}

//! Compiled evaluation: label keys and values are interned into integer IDs by a
//! [`LabelTable`]; label maps are compiled once into [`CompiledLabels`] (a dense vector indexed
//! by key ID, or a sorted `(key, value)` array when the key space is sparse), and selectors into
//! a [`CompiledSelector`], a branching program: one instruction per leaf test, each naming
//! where to continue when it is true and when it is false (`!` swaps the targets, `&&` / `||`
//! chain them, so short-circuiting costs nothing extra). [`CompiledSelector::matches`] does no
//! allocation and no string hashing; only `contains` / `starts with` / `ends with` look at
//! string bytes.
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

/// A word-at-a-time multiplicative hash (FxHash style) for the interner and the index's
/// posting maps: keys are short strings and small integers hashed millions of times when a
/// large cluster is indexed; SipHash showed up in profiles. Not DoS-resistant, which is fine
/// for label maps the user supplies locally.
#[derive(Clone, Copy, Default)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

#[derive(Debug, Default, Clone)]
struct Interner {
    map: FastMap<Box<str>, u32>,
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
        let dense_ok = span <= (4 * dedup.len()).max(32);
        let repr = if dense_ok {
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
            entry: 0,
            sets: Vec::new(),
            needles: Vec::new(),
            plan: Plan::Scan,
            exact: false,
            impossible: false,
        };
        c.entry = self.emit(sel.root(), ACCEPT, REJECT, &mut c);
        c.plan = self.plan(sel.root());
        c.exact = is_exact(sel.root());
        c.impossible = sel
            .label_restrictions()
            .values()
            .any(|r| matches!(&r.must_have_one_of_values, Some(v) if v.is_empty()));
        c
    }

    fn plan(&mut self, n: &Node) -> Plan {
        match n {
            Node::Has(k) | Node::Contains(k, _) | Node::StartsWith(k, _) | Node::EndsWith(k, _) => {
                Plan::Key(self.intern_key(k))
            }
            Node::Eq(k, v) => Plan::Values(self.intern_key(k), vec![self.intern_value(v)]),
            Node::In(_, vals) if vals.is_empty() => Plan::Nothing,
            Node::In(k, vals) => {
                let k = self.intern_key(k);
                Plan::Values(k, vals.iter().map(|v| self.intern_value(v)).collect())
            }
            Node::And(ops) => Plan::And(ops.iter().map(|o| grow(|| self.plan(o))).collect()),
            Node::Or(ops) => Plan::Or(ops.iter().map(|o| grow(|| self.plan(o))).collect()),
            Node::All | Node::Global | Node::Ne(..) | Node::NotIn(..) | Node::Not(_) => Plan::Scan,
        }
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

    /// Compiles `n` so that evaluation continues at `on_true` / `on_false` (instruction
    /// indices or [`ACCEPT`] / [`REJECT`]); returns the entry instruction. `!` swaps the two
    /// targets, `&&` and `||` chain their operands, so only leaves become instructions.
    fn emit(&mut self, n: &Node, on_true: u32, on_false: u32, c: &mut CompiledSelector) -> u32 {
        let op = match n {
            Node::All | Node::Global => Op::True,
            Node::Has(k) => Op::Has(self.intern_key(k)),
            Node::Eq(k, v) => Op::Eq(self.intern_key(k), self.intern_value(v)),
            Node::Ne(k, v) => Op::Ne(self.intern_key(k), self.intern_value(v)),
            Node::Contains(k, v) => Op::Contains(self.intern_key(k), Self::needle(v, c)),
            Node::StartsWith(k, v) => Op::StartsWith(self.intern_key(k), Self::needle(v, c)),
            Node::EndsWith(k, v) => Op::EndsWith(self.intern_key(k), Self::needle(v, c)),
            Node::In(k, vals) => {
                let k = self.intern_key(k);
                let (s, l) = self.set_ids(vals, c);
                Op::In(k, s, l)
            }
            Node::NotIn(k, vals) => {
                let k = self.intern_key(k);
                let (s, l) = self.set_ids(vals, c);
                Op::NotIn(k, s, l)
            }
            Node::Not(inner) => return grow(|| self.emit(inner, on_false, on_true, c)),
            Node::And(ops) => {
                let mut next = on_true;
                for op in ops.iter().rev() {
                    next = grow(|| self.emit(op, next, on_false, c));
                }
                return next;
            }
            Node::Or(ops) => {
                let mut next = on_false;
                for op in ops.iter().rev() {
                    next = grow(|| self.emit(op, on_true, next, c));
                }
                return next;
            }
        };
        let id = u32::try_from(c.prog.len())
            .ok()
            .filter(|&id| id < REJECT)
            .expect("selector program too large");
        c.prog.push(Inst {
            op,
            on_true,
            on_false,
        });
        id
    }
}

/// Evaluation targets past the end of the program.
const ACCEPT: u32 = u32::MAX;
const REJECT: u32 = u32::MAX - 1;

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
        (0..self.key_span())
            .filter_map(|k| self.get(k).map(|v| (k, v)))
            .chain(match &self.repr {
                Repr::Sparse(s) => s.iter().copied(),
                _ => [].iter().copied(),
            })
    }

    fn key_span(&self) -> u32 {
        match &self.repr {
            Repr::Dense(d) => d.len() as u32,
            Repr::Sparse(_) => 0,
        }
    }
}

/// Where a selector's matches can be found: a superset of them, in terms of posting lists.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// Any map may match.
    Scan,
    /// Only maps with this key.
    Key(u32),
    /// Only maps with this key and one of these values.
    Values(u32, Vec<u32>),
    /// No map matches (`k in {}`).
    Nothing,
    /// Candidates of any one operand suffice.
    And(Vec<Plan>),
    /// Union of the operands' candidates.
    Or(Vec<Plan>),
}

/// True if the candidates of the node's plan are exactly its matches.
fn is_exact(n: &Node) -> bool {
    match n {
        Node::Has(_) | Node::Eq(..) => true,
        Node::In(_, vals) => !vals.is_empty(),
        Node::Or(ops) => ops.iter().all(|o| grow(|| is_exact(o))),
        _ => false,
    }
}

/// One test on a label; the branching program continues at `on_true` or `on_false`.
#[derive(Debug, Clone, Copy)]
struct Inst {
    op: Op,
    on_true: u32,
    on_false: u32,
}

#[derive(Debug, Clone, Copy)]
enum Op {
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
}

/// A selector compiled against a [`LabelTable`].
#[derive(Debug, Clone)]
pub struct CompiledSelector {
    table: u64,
    prog: Vec<Inst>,
    entry: u32,
    sets: Vec<u32>,
    needles: Vec<Box<str>>,
    /// How the index finds candidates (see [`crate::index`]).
    pub(crate) plan: Plan,
    /// The plan's candidates are exactly the matches (no verification needed).
    pub(crate) exact: bool,
    /// Some label must have one of zero values: the selector matches nothing.
    pub(crate) impossible: bool,
}

#[inline]
fn in_set(set: &[u32], v: u32) -> bool {
    if set.len() <= 8 {
        set.iter().fold(false, |a, &x| a | (x == v))
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
        // One monomorphic copy of the interpreter per label representation, so the lookup in
        // the inner loop is a plain indexed load (dense) or a short scan (sparse).
        match &l.repr {
            Repr::Dense(d) => self.run(table, |k| match d.get(k as usize) {
                Some(&v) if v != NONE => Some(v),
                _ => None,
            }),
            Repr::Sparse(_) => self.run(table, |k| l.get(k)),
        }
    }

    #[inline(always)]
    fn run(&self, table: &LabelTable, get: impl Fn(u32) -> Option<u32>) -> bool {
        let prog = &self.prog[..];
        let mut pc = self.entry;
        while pc < REJECT {
            let inst = &prog[pc as usize];
            let r = match inst.op {
                Op::True => true,
                Op::Has(k) => get(k).is_some(),
                Op::Eq(k, v) => get(k) == Some(v),
                Op::Ne(k, v) => get(k) != Some(v),
                Op::In(k, s, n) => match get(k) {
                    Some(v) => in_set(&self.sets[s as usize..(s + n) as usize], v),
                    None => false,
                },
                Op::NotIn(k, s, n) => match get(k) {
                    Some(v) => !in_set(&self.sets[s as usize..(s + n) as usize], v),
                    None => true,
                },
                Op::Contains(k, n) => {
                    get(k).is_some_and(|v| table.value(v).contains(&*self.needles[n as usize]))
                }
                Op::StartsWith(k, n) => {
                    get(k).is_some_and(|v| table.value(v).starts_with(&*self.needles[n as usize]))
                }
                Op::EndsWith(k, n) => {
                    get(k).is_some_and(|v| table.value(v).ends_with(&*self.needles[n as usize]))
                }
            };
            pc = if r { inst.on_true } else { inst.on_false };
        }
        pc == ACCEPT
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

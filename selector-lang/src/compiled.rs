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

    /// Compiles many label maps into one [`LabelColumns`]: row `i` is the `i`-th map.
    pub fn compile_label_columns<'a, M>(&self, maps: M) -> LabelColumns
    where
        M: IntoIterator<Item = &'a CompiledLabels>,
    {
        let mut columns = LabelColumns::new(self);
        for (row, m) in maps.into_iter().enumerate() {
            columns.set_row(row, m);
        }
        columns
    }

    /// Compiles a selector to a program over this table's IDs (interning its keys and values).
    pub fn compile_selector(&mut self, sel: &Selector) -> CompiledSelector {
        let mut c = CompiledSelector {
            table: self.id,
            prog: Vec::new(),
            entry: 0,
            sets: Vec::new(),
            needles: Vec::new(),
            truth: None,
            plan: Plan::Scan,
            exact: false,
            impossible: false,
        };
        c.entry = self.emit(sel.root(), ACCEPT, REJECT, &mut c);
        c.truth = TruthTable::build(sel.root(), &c.prog, &c.sets);
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

/// Many compiled label maps stored by key: one column of value IDs per key ID. Evaluating one
/// selector against every row reads only its own keys' columns, front to back, instead of
/// chasing one heap block per map; that is what "which of these maps match S" needs.
#[derive(Debug, Clone)]
pub struct LabelColumns {
    table: u64,
    rows: usize,
    columns: Vec<Column>,
}

#[derive(Debug, Clone)]
enum Column {
    /// Value ID per row up to the last row written (`NONE` where absent), and how many are set.
    Dense { values: Vec<u32>, set: usize },
    /// `(row, value)` sorted by row, for keys few rows have (empty: no row has the key).
    Sparse(Vec<(u32, u32)>),
}

impl Column {
    /// A key held by fewer than one row in this many (of the rows up to its last) is stored
    /// sparsely. Density is judged against the column's own extent, so a key the first rows
    /// have and later rows lack stays sparse, and rows added later cost nothing here.
    const SPARSE_RATIO: usize = 16;

    #[inline(always)]
    fn get(&self, row: usize) -> Option<u32> {
        match self {
            Column::Dense { values, .. } => values.get(row).copied().filter(|&v| v != NONE),
            Column::Sparse(cells) => cells
                .binary_search_by_key(&(row as u32), |c| c.0)
                .ok()
                .map(|i| cells[i].1),
        }
    }

    fn set(&mut self, row: usize, v: u32) {
        if let Column::Dense { values, set } = self {
            if row < values.len() {
                *set += usize::from(values[row] == NONE);
                values[row] = v;
                return;
            }
            if (*set + 1) * Self::SPARSE_RATIO < row + 1 {
                // Too far out for its count: back to sparse.
                let cells = (0..values.len())
                    .filter(|&r| values[r] != NONE)
                    .map(|r| (r as u32, values[r]))
                    .collect();
                *self = Column::Sparse(cells);
            } else {
                values.resize(row + 1, NONE);
                values[row] = v;
                *set += 1;
                return;
            }
        }
        let Column::Sparse(cells) = self else {
            unreachable!("dense columns returned above")
        };
        match cells.binary_search_by_key(&(row as u32), |c| c.0) {
            Ok(i) => cells[i].1 = v,
            Err(i) => cells.insert(i, (row as u32, v)),
        }
        let extent = cells.last().map_or(0, |c| c.0 as usize + 1);
        if cells.len() * Self::SPARSE_RATIO >= extent {
            let mut values = vec![NONE; extent];
            for &(r, v) in cells.iter() {
                values[r as usize] = v;
            }
            *self = Column::Dense {
                set: cells.len(),
                values,
            };
        }
    }

    fn clear(&mut self, row: usize) {
        match self {
            Column::Dense { values, set } => {
                if let Some(v) = values.get_mut(row).filter(|v| **v != NONE) {
                    *v = NONE;
                    *set -= 1;
                }
            }
            Column::Sparse(cells) => {
                if let Ok(i) = cells.binary_search_by_key(&(row as u32), |c| c.0) {
                    cells.remove(i);
                }
            }
        }
    }
}

impl LabelColumns {
    /// No rows, for maps compiled by `table`; grow it with [`Self::set_row`].
    pub fn new(table: &LabelTable) -> Self {
        LabelColumns {
            table: table.id,
            rows: 0,
            columns: Vec::new(),
        }
    }

    /// Makes the empty (new or cleared) row `row` hold `labels`; rows up to it are added,
    /// empty.
    pub fn set_row(&mut self, row: usize, labels: &CompiledLabels) {
        assert_eq!(
            labels.table, self.table,
            "labels compiled by another LabelTable"
        );
        self.rows = self.rows.max(row + 1);
        for (k, v) in labels.iter() {
            if self.columns.len() <= k as usize {
                self.columns
                    .resize_with(k as usize + 1, || Column::Sparse(Vec::new()));
            }
            self.columns[k as usize].set(row, v);
        }
    }

    /// Empties row `row`, whose labels are `old`.
    pub fn clear_row(&mut self, row: usize, old: &CompiledLabels) {
        for (k, _) in old.iter() {
            if let Some(c) = self.columns.get_mut(k as usize) {
                c.clear(row);
            }
        }
    }

    /// Number of rows (label maps).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True if there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The value ID of `key` in `row`, if present.
    #[inline(always)]
    pub fn get(&self, row: usize, key: u32) -> Option<u32> {
        self.columns.get(key as usize)?.get(row)
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Small selectors also as a truth table over their distinct leaf tests: evaluating every
    /// leaf and looking the result up has no data-dependent branches, which beats the
    /// short-circuiting program when outcomes vary from map to map (see [`TruthTable`]).
    truth: Option<TruthTable>,
    /// How the index finds candidates (see [`crate::index`]).
    pub(crate) plan: Plan,
    /// The plan's candidates are exactly the matches (no verification needed).
    pub(crate) exact: bool,
    /// Some label must have one of zero values: the selector matches nothing.
    pub(crate) impossible: bool,
}

/// Substring test for label values and needles, which are short: a first-byte scan beats
/// `str::contains`, whose two-way searcher spends longer on setup than on these searches.
#[inline]
fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    match n.split_first() {
        None => true,
        Some((&first, rest)) => {
            h.len() >= n.len()
                && h[..=h.len() - n.len()]
                    .iter()
                    .enumerate()
                    .any(|(i, &b)| b == first && &h[i + 1..i + n.len()] == rest)
        }
    }
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

    /// Evaluates against row `row` of `columns` (same result as [`Self::matches`] on that
    /// row's map). Allocation-free.
    #[inline]
    pub fn matches_row(&self, columns: &LabelColumns, row: usize, table: &LabelTable) -> bool {
        assert!(
            self.table == table.id && columns.table == table.id,
            "compiled selector, columns and table must come from the same LabelTable"
        );
        assert!(row < columns.rows, "row {row} out of range");
        self.eval_row(columns, row, table)
    }

    /// [`Self::matches_row`] without the checks, for the index (which checked once).
    #[inline]
    pub(crate) fn eval_row(&self, columns: &LabelColumns, row: usize, table: &LabelTable) -> bool {
        self.run(table, |k| columns.get(row, k))
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
        if let Some(t) = &self.truth {
            let mut bits = 0usize;
            for (i, leaf) in t.leaves.iter().enumerate() {
                let v = get(leaf.key).unwrap_or(NONE);
                let extra = &t.extra[leaf.extra.0 as usize..leaf.extra.1 as usize];
                let hit = (v == leaf.value) | extra.iter().fold(false, |a, &x| a | (x == v));
                bits |= usize::from(hit ^ leaf.negate) << i;
            }
            if !t.strings.is_empty() && !bit(&t.decided, bits) {
                let fast = t.leaves.len();
                for (i, op) in t.strings.iter().enumerate() {
                    bits |= usize::from(self.test(*op, table, &get)) << (fast + i);
                }
            }
            return bit(&t.rows, bits);
        }
        let prog = &self.prog[..];
        let mut pc = self.entry;
        while pc < REJECT {
            let inst = &prog[pc as usize];
            pc = if self.test(inst.op, table, &get) {
                inst.on_true
            } else {
                inst.on_false
            };
        }
        pc == ACCEPT
    }

    #[inline(always)]
    fn test(&self, op: Op, table: &LabelTable, get: &impl Fn(u32) -> Option<u32>) -> bool {
        match op {
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
                get(k).is_some_and(|v| contains(table.value(v), &self.needles[n as usize]))
            }
            Op::StartsWith(k, n) => {
                get(k).is_some_and(|v| table.value(v).starts_with(&*self.needles[n as usize]))
            }
            Op::EndsWith(k, n) => {
                get(k).is_some_and(|v| table.value(v).ends_with(&*self.needles[n as usize]))
            }
        }
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

/// A selector with at most [`TruthTable::MAX_LEAVES`] distinct leaf tests, as the list of those
/// tests and the selector's value for each combination of their outcomes (bit `i` of the row
/// index is leaf `i`).
#[derive(Debug, Clone)]
struct TruthTable {
    /// The non-string tests: bits `0..leaves.len()` of a row index.
    leaves: Vec<Leaf>,
    /// Value IDs of `in` sets beyond their first, sliced by [`Leaf::extra`].
    extra: Vec<u32>,
    /// The string tests (`contains`, `starts with`, `ends with`): the bits after `leaves`.
    strings: Vec<Op>,
    /// The selector's value per row index.
    rows: [u64; 4],
    /// Per combination of the non-string bits: whether the value is the same for every
    /// outcome of the string tests, which then need not run (they are the slow ones).
    decided: [u64; 4],
}

/// Every non-string test in one branch-free shape: "the key's value (or `NONE` when absent)
/// is `value` or one of `extra`", negated or not. `has(k)` is "not NONE", `k != v` is
/// "not v" (true when absent), `all()` is "not in {}" with an unused value.
#[derive(Debug, Clone, Copy)]
struct Leaf {
    key: u32,
    value: u32,
    extra: (u32, u32),
    negate: bool,
}

/// A value ID no table hands out (IDs count up from 0), for tests that need no value.
const NO_VALUE: u32 = u32::MAX - 1;

fn bit(table: &[u64; 4], i: usize) -> bool {
    table[i / 64] >> (i % 64) & 1 == 1
}

fn set_bit(table: &mut [u64; 4], i: usize) {
    table[i / 64] |= 1 << (i % 64);
}

impl TruthTable {
    const MAX_LEAVES: usize = 8;

    /// `prog` holds one instruction per leaf of `root`, in the order `emit` created them;
    /// `sets` are the program's `in` sets.
    fn build(root: &Node, prog: &[Inst], sets: &[u32]) -> Option<TruthTable> {
        let is_string =
            |op: &Op| matches!(op, Op::Contains(..) | Op::StartsWith(..) | Op::EndsWith(..));
        // Distinct tests, non-string ones first (duplicates share a bit).
        let mut ops: Vec<Op> = Vec::new();
        for string_pass in [false, true] {
            for inst in prog {
                if is_string(&inst.op) == string_pass && !ops.contains(&inst.op) {
                    ops.push(inst.op);
                }
            }
        }
        if ops.len() > Self::MAX_LEAVES {
            return None;
        }
        let fast = ops.iter().filter(|op| !is_string(op)).count();
        let order = leaf_order(root, prog, &ops);
        let mut rows = [0u64; 4];
        for bits in 0..(1usize << ops.len()) {
            let mut next = 0;
            if eval_with(root, &order, &mut next, bits) {
                set_bit(&mut rows, bits);
            }
        }
        let mut decided = [0u64; 4];
        for low in 0..(1usize << fast) {
            let first = bit(&rows, low);
            if (0..(1usize << (ops.len() - fast)))
                .all(|high| bit(&rows, low | high << fast) == first)
            {
                set_bit(&mut decided, low);
            }
        }
        let mut extra: Vec<u32> = Vec::new();
        let leaves = ops[..fast]
            .iter()
            .map(|op| {
                let (key, vals, negate) = match op {
                    Op::True => (0, &[][..], true),
                    Op::Has(k) => (*k, &[NONE][..], true),
                    Op::Eq(k, v) => (*k, std::slice::from_ref(v), false),
                    Op::Ne(k, v) => (*k, std::slice::from_ref(v), true),
                    Op::In(k, st, n) => (*k, &sets[*st as usize..(st + n) as usize], false),
                    Op::NotIn(k, st, n) => (*k, &sets[*st as usize..(st + n) as usize], true),
                    Op::Contains(..) | Op::StartsWith(..) | Op::EndsWith(..) => {
                        unreachable!("string tests come after the others")
                    }
                };
                let (value, rest) = vals
                    .split_first()
                    .map_or((NO_VALUE, &[][..]), |(v, r)| (*v, r));
                let start = extra.len() as u32;
                extra.extend_from_slice(rest);
                Leaf {
                    key,
                    value,
                    extra: (start, extra.len() as u32),
                    negate,
                }
            })
            .collect();
        Some(TruthTable {
            leaves,
            extra,
            strings: ops[fast..].to_vec(),
            rows,
            decided,
        })
    }
}

/// For each AST leaf in evaluation (left to right) order, the index of its test in `ops`.
/// `emit` creates the instructions of And/Or operands from the last to the first (`Not` is
/// transparent), so the instruction of the `j`-th leaf from the left is `prog[len - 1 - j]`.
fn leaf_order(root: &Node, prog: &[Inst], ops: &[Op]) -> Vec<usize> {
    debug_assert_eq!(count_leaves(root), prog.len());
    prog.iter()
        .rev()
        .map(|inst| {
            ops.iter()
                .position(|op| *op == inst.op)
                .expect("every test has a bit")
        })
        .collect()
}

fn count_leaves(n: &Node) -> usize {
    match n {
        Node::Not(inner) => grow(|| count_leaves(inner)),
        Node::And(ops) | Node::Or(ops) => ops.iter().map(|o| grow(|| count_leaves(o))).sum(),
        _ => 1,
    }
}

/// Evaluates `n` with leaf outcomes taken from `bits` (leaf `order[next]` for the next AST leaf
/// from the left); every leaf is visited so the numbering stays aligned.
fn eval_with(n: &Node, order: &[usize], next: &mut usize, bits: usize) -> bool {
    match n {
        Node::Not(inner) => !grow(|| eval_with(inner, order, next, bits)),
        Node::And(ops) => ops.iter().fold(true, |acc, o| {
            grow(|| eval_with(o, order, next, bits)) & acc
        }),
        Node::Or(ops) => ops.iter().fold(false, |acc, o| {
            grow(|| eval_with(o, order, next, bits)) | acc
        }),
        _ => {
            let leaf = order[*next];
            *next += 1;
            bits >> leaf & 1 == 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Column;

    #[test]
    fn columns_stay_sparse_for_keys_early_rows_had() {
        let mut c = Column::Sparse(Vec::new());
        c.set(0, 7);
        c.set(1, 8);
        assert!(matches!(c, Column::Dense { set: 2, .. }), "{c:?}");
        // A row far beyond the column's extent: two of 1,001 rows is sparse again.
        c.set(1000, 9);
        assert!(
            matches!(&c, Column::Sparse(cells) if cells.len() == 3),
            "{c:?}"
        );
        assert_eq!(
            (c.get(0), c.get(1), c.get(500), c.get(1000)),
            (Some(7), Some(8), None, Some(9))
        );
        c.clear(1);
        assert_eq!(c.get(1), None);
    }
}

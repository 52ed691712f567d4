//! An inverted index over label maps: "which of these label maps match selector S".
//!
//! Each label map gets an ID (`usize`). The index keeps, per key ID, the list of maps that have
//! the key and, per (key, value), the list of maps with that value. A query walks the
//! selector's plan, built from the same facts as Calico's label restrictions: `k == v` and
//! `k in {..}` use the value lists of `k` (disjoint, since a map has one value per key);
//! `has(k)`, `contains`, `starts with` and `ends with` use the key list; `&&` takes its cheapest
//! operand; `||` takes the union of its operands (de-duplicated with a bitmap) and needs every
//! operand to have a plan; `!`, `!=`, `not in`, `all()` and `global()` have none, and a selector
//! without a plan (or whose candidates would be as many as the maps) falls back to scanning all
//! maps. Candidates are verified with the compiled program, except when the plan is exact
//! (`has`, `==`, non-empty `in`, and `||` of those). A selector whose restrictions are
//! contradictory (`a == "x" && a == "y"`) or `k in {}` yields nothing without looking.
//!
//! Maps can be inserted, replaced and removed at any time; compiled selectors stay valid because
//! interned IDs never change. To compute membership deltas on a relabel, keep the old
//! [`CompiledLabels`] returned by [`SelectorIndex::set`] and evaluate the affected selectors on
//! old and new labels.
//!
//! ```
//! use selector_lang::{parse, SelectorIndex};
//! let mut idx = SelectorIndex::new();
//! let web = idx.insert([("app", "web"), ("env", "prod")]);
//! let db = idx.insert([("app", "db"), ("env", "prod")]);
//! let sel = idx.compile(&parse("env == 'prod' && app in {'db', 'cache'}").unwrap());
//! assert_eq!(idx.matches(&sel).collect::<Vec<_>>(), vec![db]);
//! idx.set(web, [("app", "cache")]); // relabel
//! let mut m: Vec<usize> = idx.matches(&sel).collect();
//! m.sort();
//! assert_eq!(m, vec![db]); // `web` lost env=prod
//! ```

use crate::compiled::{CompiledLabels, CompiledSelector, FastMap, LabelColumns, LabelTable, Plan};
use crate::Selector;

#[derive(Debug, Default, Clone)]
struct KeyPostings {
    all: Vec<u32>,
    by_value: FastMap<u32, Vec<u32>>,
}

fn remove_from(list: &mut Vec<u32>, id: u32) {
    if let Some(p) = list.iter().position(|&x| x == id) {
        list.swap_remove(p);
    }
}

/// Label maps indexed by key and (key, value); see the module documentation.
#[derive(Debug, Clone)]
pub struct SelectorIndex {
    table: LabelTable,
    slots: Vec<Option<CompiledLabels>>,
    /// The same labels stored by key, which is what scans and candidate checks read.
    columns: LabelColumns,
    live: usize,
    postings: Vec<KeyPostings>,
}

impl Default for SelectorIndex {
    fn default() -> Self {
        let table = LabelTable::new();
        SelectorIndex {
            columns: LabelColumns::new(&table),
            table,
            slots: Vec::new(),
            live: 0,
            postings: Vec::new(),
        }
    }
}

impl SelectorIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an index whose IDs are the positions in `maps`.
    pub fn from_label_maps<I, M, K, V>(maps: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut idx = Self::new();
        for m in maps {
            idx.insert(m);
        }
        idx
    }

    /// The label table (interner) shared by the maps and the selectors compiled here.
    pub fn table(&self) -> &LabelTable {
        &self.table
    }

    /// Compiles a selector against this index's label table.
    pub fn compile(&mut self, sel: &Selector) -> CompiledSelector {
        self.table.compile_selector(sel)
    }

    /// Adds a label map under the next free ID (one past the largest ID ever used).
    pub fn insert<I, K, V>(&mut self, labels: I) -> usize
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let id = self.slots.len();
        self.set(id, labels);
        id
    }

    /// Sets the labels of map `id` (inserting it if absent); returns the previous labels.
    pub fn set<I, K, V>(&mut self, id: usize, labels: I) -> Option<CompiledLabels>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let compiled = self.table.compile_labels(labels);
        let old = self.remove(id);
        assert!(id < u32::MAX as usize, "label map IDs must fit in u32");
        for (k, v) in compiled.iter() {
            if self.postings.len() <= k as usize {
                self.postings
                    .resize_with(k as usize + 1, KeyPostings::default);
            }
            let kp = &mut self.postings[k as usize];
            kp.all.push(id as u32);
            kp.by_value.entry(v).or_default().push(id as u32);
        }
        if self.slots.len() <= id {
            self.slots.resize_with(id + 1, || None);
        }
        self.columns.set_row(id, &compiled);
        self.slots[id] = Some(compiled);
        self.live += 1;
        old
    }

    /// Removes map `id`; returns its labels if it was present.
    pub fn remove(&mut self, id: usize) -> Option<CompiledLabels> {
        let old = self.slots.get_mut(id)?.take()?;
        self.columns.clear_row(id, &old);
        for (k, v) in old.iter() {
            let kp = &mut self.postings[k as usize];
            remove_from(&mut kp.all, id as u32);
            if let Some(list) = kp.by_value.get_mut(&v) {
                remove_from(list, id as u32);
                if list.is_empty() {
                    kp.by_value.remove(&v);
                }
            }
        }
        self.live -= 1;
        Some(old)
    }

    /// The compiled labels of map `id`.
    pub fn get(&self, id: usize) -> Option<&CompiledLabels> {
        self.slots.get(id)?.as_ref()
    }

    /// Number of maps in the index.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// True if map `id` matches.
    pub fn matches_one(&self, sel: &CompiledSelector, id: usize) -> bool {
        self.get(id).is_some_and(|l| sel.matches(l, &self.table))
    }

    /// The IDs of all maps matching `sel` (compiled by [`Self::compile`]), in no particular
    /// order, each exactly once.
    pub fn matches<'a>(&'a self, sel: &'a CompiledSelector) -> Matches<'a> {
        // Checked once here rather than per candidate.
        // Candidates come from the cheapest operand of each `&&` and the union of all operands
        // of each `||`; `None` means "scan".
        assert!(
            sel.same_table(&self.table),
            "selector was compiled against another LabelTable; use SelectorIndex::compile"
        );
        let src = if sel.impossible {
            Source::Lists(Vec::new(), None)
        } else {
            match self.resolve(&sel.plan) {
                // A candidate set as large as the index is no better than a scan.
                Some(c) if c.cost < self.live => {
                    let seen = if c.disjoint {
                        None
                    } else {
                        Some(vec![0u64; self.slots.len().div_ceil(64)])
                    };
                    Source::Lists(c.lists, seen)
                }
                _ => Source::Scan,
            }
        };
        let verify = !(sel.exact && matches!(src, Source::Lists(..)));
        Matches {
            idx: self,
            sel,
            src,
            verify,
            list: 0,
            pos: 0,
        }
    }
}

struct Candidates<'a> {
    cost: usize,
    lists: Vec<&'a [u32]>,
    /// No ID occurs twice across `lists`.
    disjoint: bool,
}

impl SelectorIndex {
    fn resolve<'a>(&'a self, plan: &Plan) -> Option<Candidates<'a>> {
        let lists: Vec<&'a [u32]> = match plan {
            Plan::Scan => return None,
            Plan::Nothing => Vec::new(),
            Plan::Key(k) => self
                .postings
                .get(*k as usize)
                .map(|kp| vec![&kp.all[..]])
                .unwrap_or_default(),
            // A map has one value per key, so the value lists of one key are disjoint.
            Plan::Values(k, vs) => match self.postings.get(*k as usize) {
                Some(kp) => vs
                    .iter()
                    .filter_map(|v| kp.by_value.get(v).map(|l| &l[..]))
                    .collect(),
                None => Vec::new(),
            },
            Plan::And(ops) => {
                return ops
                    .iter()
                    .filter_map(|o| self.resolve(o))
                    .min_by_key(|c| c.cost)
            }
            Plan::Or(ops) => {
                let mut all = Candidates {
                    cost: 0,
                    lists: Vec::new(),
                    disjoint: ops.len() <= 1,
                };
                for o in ops {
                    let c = self.resolve(o)?;
                    all.cost += c.cost;
                    all.disjoint &= c.disjoint;
                    all.lists.extend(c.lists);
                }
                return Some(all);
            }
        };
        Some(Candidates {
            cost: lists.iter().map(|l| l.len()).sum(),
            lists,
            disjoint: true,
        })
    }
}

enum Source<'a> {
    Scan,
    /// Posting lists to walk, and a bitmap of IDs already returned when they may overlap.
    Lists(Vec<&'a [u32]>, Option<Vec<u64>>),
}

/// Iterator returned by [`SelectorIndex::matches`].
pub struct Matches<'a> {
    idx: &'a SelectorIndex,
    sel: &'a CompiledSelector,
    src: Source<'a>,
    verify: bool,
    list: usize,
    pos: usize,
}

impl Iterator for Matches<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let table = &self.idx.table;
        let columns = &self.idx.columns;
        match &mut self.src {
            Source::Scan => {
                while self.pos < self.idx.slots.len() {
                    let id = self.pos;
                    self.pos += 1;
                    if self.idx.slots[id].is_some() && self.sel.eval_row(columns, id, table) {
                        return Some(id);
                    }
                }
                None
            }
            Source::Lists(lists, seen) => {
                while let Some(list) = lists.get(self.list) {
                    while let Some(&id) = list.get(self.pos) {
                        self.pos += 1;
                        if let Some(seen) = seen {
                            let (w, b) = (id as usize / 64, 1u64 << (id % 64));
                            if seen[w] & b != 0 {
                                continue;
                            }
                            seen[w] |= b;
                        }
                        if !self.verify {
                            return Some(id as usize);
                        }
                        // Posting lists only hold live maps.
                        if self.sel.eval_row(columns, id as usize, table) {
                            return Some(id as usize);
                        }
                    }
                    self.list += 1;
                    self.pos = 0;
                }
                None
            }
        }
    }
}

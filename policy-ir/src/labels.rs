//! The incremental label index: which entities (endpoints, network sets) each registered selector
//! matches. Built on selector-lang's [`SelectorIndex`]; adding, removing or relabelling one entity,
//! or adding/removing a selector, returns membership deltas without a rebuild.
//!
//! A relabel only re-evaluates the selectors that could change: each selector is filed under one
//! label it requires (under each allowed `(key, value)` when its values are restricted, else under
//! the key), and selectors requiring no label at all (`all()`, `!has(x)`, `a != 'b'`) are always
//! checked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use selector_lang::{Selector, SelectorIndex};

/// A change of membership: `entity` joined (`added`) or left selector `uid`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delta {
    pub uid: String,
    pub entity: usize,
    pub added: bool,
}

enum Trigger {
    Scan,
    Key(String),
    Values(String, Vec<String>),
}

struct Entry {
    uid: String,
    selector: Selector,
    members: HashSet<usize>,
    refs: usize,
    trigger: Trigger,
}

/// A word-at-a-time multiplicative hash (FxHash style): label keys and values are short strings
/// hashed millions of times at scale, and byte-at-a-time FNV showed up in profiles.
#[derive(Clone, Copy, Default)]
pub struct Fnv(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Fnv {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl std::hash::Hasher for Fnv {
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

type FnvMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// Per label key: selectors filed under the key, and per value.
#[derive(Default)]
struct KeyBucket {
    any: Vec<u32>,
    by_value: FnvMap<String, Vec<u32>>,
    count: usize,
    value_count: FnvMap<String, usize>,
}

/// See the module documentation. Relabels are evaluated on the selectors' own AST against the
/// new labels; selector-lang's [`SelectorIndex`] (used for the initial membership of a new
/// selector) is brought up to date lazily, before the next selector is added.
#[derive(Default)]
pub struct LabelIndex {
    idx: SelectorIndex,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_uid: HashMap<String, u32>,
    keys: FnvMap<String, KeyBucket>,
    scan: Vec<u32>,
    /// Labels of every entity (own copy, for old/new comparison on relabel).
    labels: Vec<Option<Arc<BTreeMap<String, String>>>>,
    /// Entities whose labels changed since the SelectorIndex was last synced.
    dirty: Vec<usize>,
}

fn remove_slot(list: &mut Vec<u32>, slot: u32) {
    if let Some(p) = list.iter().position(|x| *x == slot) {
        list.swap_remove(p);
    }
}

impl LabelIndex {
    pub fn new() -> LabelIndex {
        LabelIndex::default()
    }

    /// Number of distinct selectors registered.
    pub fn selector_count(&self) -> usize {
        self.by_uid.len()
    }

    pub fn entity_count(&self) -> usize {
        self.labels.iter().filter(|l| l.is_some()).count()
    }

    fn sync(&mut self) {
        for id in std::mem::take(&mut self.dirty) {
            match self.labels.get(id).and_then(|l| l.as_ref()) {
                Some(l) => {
                    self.idx.set(id, l.iter());
                }
                None => {
                    self.idx.remove(id);
                }
            }
        }
    }

    fn count(&mut self, labels: &BTreeMap<String, String>, up: bool) {
        for (k, v) in labels {
            // One lookup on the common path (key already known).
            let b = match self.keys.get_mut(k.as_str()) {
                Some(b) => b,
                None => self.keys.entry(k.clone()).or_default(),
            };
            if up {
                b.count += 1;
                match b.value_count.get_mut(v.as_str()) {
                    Some(c) => *c += 1,
                    None => {
                        b.value_count.insert(v.clone(), 1);
                    }
                }
            } else {
                b.count = b.count.saturating_sub(1);
                if let Some(c) = b.value_count.get_mut(v.as_str()) {
                    *c = c.saturating_sub(1);
                }
            }
        }
    }

    /// Registers a selector (reference counted); returns its members when it is new.
    pub fn add_selector(&mut self, sel: &Selector) -> Vec<usize> {
        if let Some(&slot) = self.by_uid.get(sel.uid()) {
            if let Some(e) = self.slots[slot as usize].as_mut() {
                e.refs += 1;
            }
            return Vec::new();
        }
        self.sync();
        let compiled = self.idx.compile(sel);
        let members: HashSet<usize> = self.idx.matches(&compiled).collect();
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let mut best: Option<(String, Option<Vec<String>>)> = None;
        let mut best_cost = usize::MAX;
        for (k, r) in sel.label_restrictions() {
            if !r.must_be_present {
                continue;
            }
            // Cost: how many entities carry the label (values), i.e. how many relabels would
            // re-check this selector.
            let b = self.keys.get(&k);
            let cost = match &r.must_have_one_of_values {
                None => b.map_or(0, |b| b.count).saturating_mul(4).saturating_add(1),
                Some(vals) => vals
                    .iter()
                    .map(|v| b.and_then(|b| b.value_count.get(v)).copied().unwrap_or(0) + 1)
                    .sum(),
            };
            if cost < best_cost {
                best_cost = cost;
                best = Some((k, r.must_have_one_of_values));
            }
        }
        let trigger = match best {
            None => {
                self.scan.push(slot);
                Trigger::Scan
            }
            Some((k, None)) => {
                self.keys.entry(k.clone()).or_default().any.push(slot);
                Trigger::Key(k)
            }
            Some((k, Some(vals))) => {
                let b = self.keys.entry(k.clone()).or_default();
                for v in &vals {
                    b.by_value.entry(v.clone()).or_default().push(slot);
                }
                Trigger::Values(k, vals)
            }
        };
        let out: Vec<usize> = members.iter().copied().collect();
        self.by_uid.insert(sel.uid().to_string(), slot);
        self.slots[slot as usize] = Some(Entry {
            uid: sel.uid().to_string(),
            selector: sel.clone(),
            members,
            refs: 1,
            trigger,
        });
        out
    }

    /// Drops one reference to a selector; returns its former members when it is gone.
    pub fn remove_selector(&mut self, uid: &str) -> Vec<usize> {
        let Some(&slot) = self.by_uid.get(uid) else {
            return Vec::new();
        };
        let e = self.slots[slot as usize].as_mut().expect("live slot");
        e.refs -= 1;
        if e.refs > 0 {
            return Vec::new();
        }
        let e = self.slots[slot as usize].take().expect("live slot");
        self.by_uid.remove(uid);
        self.free.push(slot);
        match &e.trigger {
            Trigger::Scan => remove_slot(&mut self.scan, slot),
            Trigger::Key(k) => {
                if let Some(b) = self.keys.get_mut(k) {
                    remove_slot(&mut b.any, slot)
                }
            }
            Trigger::Values(k, vals) => {
                if let Some(b) = self.keys.get_mut(k) {
                    for v in vals {
                        if let Some(l) = b.by_value.get_mut(v) {
                            remove_slot(l, slot)
                        }
                    }
                }
            }
        }
        let mut m: Vec<usize> = e.members.into_iter().collect();
        m.sort_unstable();
        m
    }

    fn candidates(&self, labels: &BTreeMap<String, String>, out: &mut Vec<u32>) {
        for (k, v) in labels {
            if let Some(b) = self.keys.get(k) {
                out.extend_from_slice(&b.any);
                if let Some(l) = b.by_value.get(v) {
                    out.extend_from_slice(l);
                }
            }
        }
    }

    /// Sets the labels of `entity` (adding it if new) and returns the membership deltas.
    pub fn upsert(&mut self, entity: usize, labels: &BTreeMap<String, String>) -> Vec<Delta> {
        self.upsert_shared(entity, Arc::new(labels.clone()))
    }

    /// [`Self::upsert`] with labels shared with the caller (no copy).
    pub fn upsert_shared(
        &mut self,
        entity: usize,
        labels: Arc<BTreeMap<String, String>>,
    ) -> Vec<Delta> {
        if self.labels.len() <= entity {
            self.labels.resize_with(entity + 1, || None);
        }
        let old = self.labels[entity].take();
        if old.is_none() && self.by_uid.is_empty() {
            // Bulk load before any selector: no deltas possible; straight into the
            // SelectorIndex.
            self.count(&labels, true);
            self.idx.set(entity, labels.iter());
            self.labels[entity] = Some(labels);
            return Vec::new();
        }
        let mut cands = Vec::new();
        if let Some(old) = &old {
            self.count(old, false);
            self.candidates(old, &mut cands);
        }
        self.count(&labels, true);
        self.candidates(&labels, &mut cands);
        cands.extend_from_slice(&self.scan);
        cands.sort_unstable();
        cands.dedup();
        let mut deltas = Vec::new();
        for slot in cands {
            let Some(e) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            let now = e.selector.matches(&*labels);
            let was = e.members.contains(&entity);
            if now != was {
                if now {
                    e.members.insert(entity);
                } else {
                    e.members.remove(&entity);
                }
                deltas.push(Delta {
                    uid: e.uid.clone(),
                    entity,
                    added: now,
                });
            }
        }
        if old.is_none() && self.by_uid.is_empty() {
            // Bulk load before any selector: straight into the SelectorIndex.
            self.idx.set(entity, labels.iter());
        } else {
            self.dirty.push(entity);
        }
        self.labels[entity] = Some(labels);
        deltas.sort();
        deltas
    }

    /// Removes `entity`; returns the memberships it left.
    pub fn remove(&mut self, entity: usize) -> Vec<Delta> {
        let Some(old) = self.labels.get_mut(entity).and_then(Option::take) else {
            return Vec::new();
        };
        self.count(&old, false);
        let mut cands = Vec::new();
        self.candidates(&old, &mut cands);
        cands.extend_from_slice(&self.scan);
        cands.sort_unstable();
        cands.dedup();
        let mut deltas = Vec::new();
        for slot in cands {
            let Some(e) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            if e.members.remove(&entity) {
                deltas.push(Delta {
                    uid: e.uid.clone(),
                    entity,
                    added: false,
                });
            }
        }
        self.dirty.push(entity);
        deltas.sort();
        deltas
    }

    fn entry(&self, uid: &str) -> Option<&Entry> {
        let slot = *self.by_uid.get(uid)?;
        self.slots[slot as usize].as_ref()
    }

    /// Current members of a registered selector (sorted).
    pub fn members(&self, uid: &str) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .entry(uid)
            .map(|e| e.members.iter().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// The slot of a registered selector, for repeated [`Self::is_member_slot`] checks.
    pub fn slot(&self, uid: &str) -> Option<u32> {
        self.by_uid.get(uid).copied()
    }

    pub fn is_member_slot(&self, slot: u32, entity: usize) -> bool {
        self.slots
            .get(slot as usize)
            .and_then(|e| e.as_ref())
            .is_some_and(|e| e.members.contains(&entity))
    }

    pub fn is_member(&self, uid: &str, entity: usize) -> bool {
        self.entry(uid).is_some_and(|e| e.members.contains(&entity))
    }

    pub fn selector(&self, uid: &str) -> Option<&Selector> {
        self.entry(uid).map(|e| &e.selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::labels;

    fn brute(sel: &Selector, ents: &BTreeMap<usize, BTreeMap<String, String>>) -> Vec<usize> {
        ents.iter()
            .filter(|(_, l)| sel.matches(*l))
            .map(|(i, _)| *i)
            .collect()
    }

    #[test]
    fn deltas_on_relabel_add_remove() {
        let mut li = LabelIndex::new();
        let a = selector_lang::parse("app == 'web'").unwrap();
        let b = selector_lang::parse("!has(app)").unwrap();
        li.upsert(0, &labels(&[("app", "web")]));
        li.upsert(1, &labels(&[("app", "db")]));
        assert_eq!(li.add_selector(&a), vec![0]);
        let mut m = li.add_selector(&b);
        m.sort();
        assert!(m.is_empty());
        let d = li.upsert(1, &labels(&[("app", "web")]));
        assert_eq!(
            d,
            vec![Delta {
                uid: a.uid().into(),
                entity: 1,
                added: true
            }]
        );
        let d = li.upsert(0, &labels(&[("tier", "x")]));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.contains(&Delta {
            uid: b.uid().into(),
            entity: 0,
            added: true
        }));
        let d = li.remove(0);
        assert_eq!(d.len(), 1);
        assert_eq!(li.members(a.uid()), vec![1]);
        assert_eq!(li.remove_selector(a.uid()), vec![1]);
        assert!(li.members(a.uid()).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn incremental_equals_brute_force(ops in proptest::collection::vec((0usize..6, 0usize..3, 0usize..3), 1..40)) {
            let sels: Vec<Selector> = ["a == '0'", "a in {'1', '2'}", "has(b)", "!has(a)", "a != '1' && b == '0'", "all()"]
                .iter().map(|s| selector_lang::parse(s).unwrap()).collect();
            let mut li = LabelIndex::new();
            for s in &sels { li.add_selector(s); }
            let mut ents: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
            for (id, a, b) in ops {
                if a == 2 && b == 2 {
                    li.remove(id);
                    ents.remove(&id);
                } else {
                    let mut l = BTreeMap::new();
                    if a < 2 { l.insert("a".to_string(), (a + b).to_string()); }
                    if b < 2 { l.insert("b".to_string(), b.to_string()); }
                    li.upsert(id, &l);
                    ents.insert(id, l);
                }
                for s in &sels {
                    proptest::prop_assert_eq!(li.members(s.uid()), brute(s, &ents));
                }
            }
        }
    }
}

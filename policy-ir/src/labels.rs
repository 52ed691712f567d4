//! The incremental label index: which entities (endpoints, network sets) each registered selector
//! matches. Built on selector-lang's [`SelectorIndex`]; adding, removing or relabelling one entity,
//! or adding/removing a selector, returns membership deltas without a rebuild.
//!
//! A relabel only re-evaluates the selectors that could change: each selector is filed under one
//! label it requires (under each allowed `(key, value)` when its values are restricted, else under
//! the key), and selectors requiring no label at all (`all()`, `!has(x)`, `a != 'b'`) are always
//! checked.

use std::collections::{BTreeMap, HashMap, HashSet};

use selector_lang::{CompiledSelector, Selector, SelectorIndex};

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
    selector: Selector,
    compiled: CompiledSelector,
    members: HashSet<usize>,
    refs: usize,
    trigger: Trigger,
}

#[derive(Default)]
pub struct LabelIndex {
    idx: SelectorIndex,
    sels: HashMap<String, Entry>,
    by_key: HashMap<String, Vec<String>>,
    by_value: HashMap<(String, String), Vec<String>>,
    scan: Vec<String>,
    /// How many entities carry each key and each (key, value): to file selectors under their
    /// most selective label.
    key_count: HashMap<String, usize>,
    value_count: HashMap<(String, String), usize>,
}

fn remove_uid(list: &mut Vec<String>, uid: &str) {
    if let Some(p) = list.iter().position(|x| x == uid) {
        list.swap_remove(p);
    }
}

impl LabelIndex {
    pub fn new() -> LabelIndex {
        LabelIndex::default()
    }

    /// Number of distinct selectors registered.
    pub fn selector_count(&self) -> usize {
        self.sels.len()
    }

    pub fn entity_count(&self) -> usize {
        self.idx.len()
    }

    /// Registers a selector (reference counted); returns its members when it is new.
    pub fn add_selector(&mut self, sel: &Selector) -> Vec<usize> {
        let uid = sel.uid().to_string();
        if let Some(e) = self.sels.get_mut(&uid) {
            e.refs += 1;
            return Vec::new();
        }
        let compiled = self.idx.compile(sel);
        let members: HashSet<usize> = self.idx.matches(&compiled).collect();
        let restrictions = sel.label_restrictions();
        let mut best: Option<(String, Option<Vec<String>>)> = None;
        let mut best_cost = usize::MAX;
        for (k, r) in restrictions {
            if !r.must_be_present {
                continue;
            }
            // Cost: how many entities carry the label (values), i.e. how many relabels
            // would re-check this selector.
            let cost = match &r.must_have_one_of_values {
                None => self.key_count.get(&k).copied().unwrap_or(0).saturating_mul(4).saturating_add(1),
                Some(vals) => vals
                    .iter()
                    .map(|v| self.value_count.get(&(k.clone(), v.clone())).copied().unwrap_or(0) + 1)
                    .sum(),
            };
            if cost < best_cost {
                best_cost = cost;
                best = Some((k, r.must_have_one_of_values));
            }
        }
        let trigger = match best {
            None => {
                self.scan.push(uid.clone());
                Trigger::Scan
            }
            Some((k, None)) => {
                self.by_key.entry(k.clone()).or_default().push(uid.clone());
                Trigger::Key(k)
            }
            Some((k, Some(vals))) => {
                for v in &vals {
                    self.by_value
                        .entry((k.clone(), v.clone()))
                        .or_default()
                        .push(uid.clone());
                }
                Trigger::Values(k, vals)
            }
        };
        let out: Vec<usize> = members.iter().copied().collect();
        self.sels.insert(
            uid,
            Entry {
                selector: sel.clone(),
                compiled,
                members,
                refs: 1,
                trigger,
            },
        );
        out
    }

    /// Drops one reference to a selector; returns its former members when it is gone.
    pub fn remove_selector(&mut self, uid: &str) -> Vec<usize> {
        let Some(e) = self.sels.get_mut(uid) else {
            return Vec::new();
        };
        e.refs -= 1;
        if e.refs > 0 {
            return Vec::new();
        }
        let e = self.sels.remove(uid).expect("present");
        match &e.trigger {
            Trigger::Scan => remove_uid(&mut self.scan, uid),
            Trigger::Key(k) => {
                if let Some(l) = self.by_key.get_mut(k) {
                    remove_uid(l, uid)
                }
            }
            Trigger::Values(k, vals) => {
                for v in vals {
                    if let Some(l) = self.by_value.get_mut(&(k.clone(), v.clone())) {
                        remove_uid(l, uid)
                    }
                }
            }
        }
        e.members.into_iter().collect()
    }

    fn candidates(&self, labels: &[(String, String)], out: &mut HashSet<String>) {
        for (k, v) in labels {
            if let Some(l) = self.by_key.get(k) {
                out.extend(l.iter().cloned());
            }
            if let Some(l) = self.by_value.get(&(k.clone(), v.clone())) {
                out.extend(l.iter().cloned());
            }
        }
    }

    /// Sets the labels of `entity` (adding it if new) and returns the membership deltas.
    pub fn upsert(&mut self, entity: usize, labels: &BTreeMap<String, String>) -> Vec<Delta> {
        let old = self.idx.set(entity, labels.iter());
        if let Some(old) = &old {
            let t = self.idx.table();
            for (k, v) in old.iter() {
                let (k, v) = (t.key(k).to_string(), t.value(v).to_string());
                if let Some(c) = self.key_count.get_mut(&k) {
                    *c = c.saturating_sub(1);
                }
                if let Some(c) = self.value_count.get_mut(&(k, v)) {
                    *c = c.saturating_sub(1);
                }
            }
        }
        for (k, v) in labels {
            *self.key_count.entry(k.clone()).or_default() += 1;
            *self.value_count.entry((k.clone(), v.clone())).or_default() += 1;
        }
        let mut pairs: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(old) = &old {
            let t = self.idx.table();
            pairs.extend(
                old.iter()
                    .map(|(k, v)| (t.key(k).to_string(), t.value(v).to_string())),
            );
        }
        let mut cands = HashSet::new();
        self.candidates(&pairs, &mut cands);
        cands.extend(self.scan.iter().cloned());
        let mut deltas = Vec::new();
        for uid in cands {
            let now = self.idx.matches_one(&self.sels[&uid].compiled, entity);
            let e = self.sels.get_mut(&uid).expect("registered");
            let was = e.members.contains(&entity);
            if now != was {
                if now {
                    e.members.insert(entity);
                } else {
                    e.members.remove(&entity);
                }
                deltas.push(Delta {
                    uid,
                    entity,
                    added: now,
                });
            }
        }
        deltas.sort();
        deltas
    }

    /// Removes `entity`; returns the memberships it left.
    pub fn remove(&mut self, entity: usize) -> Vec<Delta> {
        let Some(old) = self.idx.remove(entity) else {
            return Vec::new();
        };
        let t = self.idx.table();
        let pairs: Vec<(String, String)> = old
            .iter()
            .map(|(k, v)| (t.key(k).to_string(), t.value(v).to_string()))
            .collect();
        for (k, v) in &pairs {
            if let Some(c) = self.key_count.get_mut(k) {
                *c = c.saturating_sub(1);
            }
            if let Some(c) = self.value_count.get_mut(&(k.clone(), v.clone())) {
                *c = c.saturating_sub(1);
            }
        }
        let mut cands = HashSet::new();
        self.candidates(&pairs, &mut cands);
        cands.extend(self.scan.iter().cloned());
        let mut deltas = Vec::new();
        for uid in cands {
            let e = self.sels.get_mut(&uid).expect("registered");
            if e.members.remove(&entity) {
                deltas.push(Delta {
                    uid,
                    entity,
                    added: false,
                });
            }
        }
        deltas.sort();
        deltas
    }

    /// Current members of a registered selector (sorted).
    pub fn members(&self, uid: &str) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .sels
            .get(uid)
            .map(|e| e.members.iter().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    pub fn is_member(&self, uid: &str, entity: usize) -> bool {
        self.sels
            .get(uid)
            .is_some_and(|e| e.members.contains(&entity))
    }

    pub fn selector(&self, uid: &str) -> Option<&Selector> {
        self.sels.get(uid).map(|e| &e.selector)
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

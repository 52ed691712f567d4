//! The difference between desired and current state, and the minimal writes that close it
//! (`felix-iptables.md` §6): ipset creates/updates first, then one `iptables-restore --noflush`
//! payload per table with only the chains that changed, then deletions of stale sets.
//!
//! Pure: data in, data and text out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::state::{
    is_old_insert, is_our_chain, is_our_set, normalise_member, Current, CurrentRule, Desired,
    DesiredRule,
};

/// One line of a rule-level diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleLine {
    /// `" "` unchanged, `"+"` added, `"-"` removed.
    pub op: String,
    /// The rule hash (`None` for a foreign or hash-less rule).
    pub hash: Option<String>,
    /// `-A <chain> …` text (desired text for `+`, kernel text otherwise).
    pub text: String,
}

/// A chain to create, rewrite or delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainPlan {
    pub chain: String,
    /// `added`, `changed` or `removed`.
    pub change: String,
    /// The rule diff (all `+` for an added chain, all `-` for a removed one).
    pub rules: Vec<RuleLine>,
    /// Desired rules (what the payload writes); empty for a removed chain.
    #[serde(skip)]
    pub desired: Vec<DesiredRule>,
}

/// Our rules in a kernel chain (hooks) that are not as they should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookPlan {
    pub chain: String,
    /// Our rules currently there, deleted by value (kernel text).
    pub remove: Vec<String>,
    /// Rules inserted at the top, in final order (desired text).
    pub insert: Vec<DesiredRule>,
    /// Rules appended, in order.
    pub append: Vec<DesiredRule>,
}

/// Everything to change in one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TablePlan {
    pub table: String,
    pub chains: Vec<ChainPlan>,
    pub hooks: Vec<HookPlan>,
}

/// Change to one ipset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetPlan {
    pub name: String,
    /// `create`, `update`, `recreate` (size changed: temp set + swap), `retype` (type changed:
    /// refused, the kernel cannot swap sets of different types) or `destroy`.
    pub change: String,
    pub set_type: String,
    pub maxelem: u32,
    pub add: Vec<String>,
    pub del: Vec<String>,
    /// For `recreate`: all members the new set gets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// For `recreate`: the temporary set's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp: Option<String>,
}

/// The whole difference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub tables: Vec<TablePlan>,
    pub ipsets: Vec<SetPlan>,
}

impl Plan {
    /// Nothing would change.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.ipsets.is_empty()
    }

    /// Counts for summaries: (chains added, changed, removed, hook chains, sets touched).
    pub fn counts(&self) -> PlanCounts {
        let mut c = PlanCounts::default();
        for t in &self.tables {
            for ch in &t.chains {
                match ch.change.as_str() {
                    "added" => c.chains_added += 1,
                    "changed" => c.chains_changed += 1,
                    _ => c.chains_removed += 1,
                }
            }
            c.hook_chains += t.hooks.len();
        }
        for s in &self.ipsets {
            c.sets += 1;
            c.set_members_added += s.add.len();
            c.set_members_removed += s.del.len();
        }
        c
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanCounts {
    pub chains_added: usize,
    pub chains_changed: usize,
    pub chains_removed: usize,
    pub hook_chains: usize,
    pub sets: usize,
    pub set_members_added: usize,
    pub set_members_removed: usize,
}

fn desired_line(chain: &str, r: &DesiredRule) -> RuleLine {
    RuleLine {
        op: "+".into(),
        hash: Some(r.hash.clone()),
        text: format!("-A {chain} {}", r.body),
    }
}

fn current_line(op: &str, chain: &str, r: &CurrentRule) -> RuleLine {
    RuleLine {
        op: op.into(),
        hash: r.hash.clone(),
        text: format!("-A {chain} {}", r.raw),
    }
}

/// Computes what must change for `current` to become `desired`.
pub fn compute(desired: &Desired, current: &Current) -> Plan {
    compute_hinted(desired, current, &BTreeSet::new())
}

/// [`compute`], told that the sets named in `unchanged_sets` are known to hold exactly their
/// desired members (a long-running applier knows this when they did not change since its last
/// successful write), so their members need not be compared again.
pub fn compute_hinted(
    desired: &Desired,
    current: &Current,
    unchanged_sets: &BTreeSet<&str>,
) -> Plan {
    let mut plan = Plan::default();
    let empty_table = Default::default();
    let table_names: BTreeSet<&String> = desired
        .tables
        .keys()
        .chain(
            current
                .tables
                .iter()
                .filter_map(|(name, t)| t.chains.keys().any(|c| is_our_chain(c)).then_some(name)),
        )
        .collect();
    // Kernel traversal order for a stable, readable plan.
    let order = |t: &str| match t {
        "raw" => 0,
        "mangle" => 1,
        "nat" => 2,
        "filter" => 3,
        _ => 4,
    };
    let mut table_names: Vec<&String> = table_names.into_iter().collect();
    table_names.sort_by_key(|t| (order(t), (*t).clone()));
    let empty_desired = Default::default();
    for tname in table_names {
        let want = desired.tables.get(tname).unwrap_or(&empty_desired);
        let have = current.tables.get(tname).unwrap_or(&empty_table);
        let mut tp = TablePlan {
            table: tname.clone(),
            chains: Vec::new(),
            hooks: Vec::new(),
        };
        for (name, rules) in &want.chains {
            match have.chains.get(name) {
                None => tp.chains.push(ChainPlan {
                    chain: name.clone(),
                    change: "added".into(),
                    rules: rules.iter().map(|r| desired_line(name, r)).collect(),
                    desired: rules.clone(),
                }),
                Some(cur) => {
                    let want_h: Vec<Option<&str>> =
                        rules.iter().map(|r| Some(r.hash.as_str())).collect();
                    let have_h: Vec<Option<&str>> =
                        cur.rules.iter().map(|r| r.hash.as_deref()).collect();
                    if want_h != have_h {
                        tp.chains.push(ChainPlan {
                            chain: name.clone(),
                            change: "changed".into(),
                            rules: rule_diff(name, rules, &cur.rules),
                            desired: rules.clone(),
                        });
                    }
                }
            }
        }
        for (name, cur) in &have.chains {
            if is_our_chain(name) && !want.chains.contains_key(name) {
                tp.chains.push(ChainPlan {
                    chain: name.clone(),
                    change: "removed".into(),
                    rules: cur
                        .rules
                        .iter()
                        .map(|r| current_line("-", name, r))
                        .collect(),
                    desired: Vec::new(),
                });
            }
        }
        // Hooks: every non-ours chain that has our rules now or should have them.
        let mut hook_chains: BTreeSet<&str> = want
            .inserts
            .iter()
            .chain(&want.appends)
            .map(|(c, _)| c.as_str())
            .collect();
        for (name, cur) in &have.chains {
            if !is_our_chain(name) && cur.rules.iter().any(is_ours) {
                hook_chains.insert(name);
            }
        }
        for chain in hook_chains {
            let inserts: Vec<DesiredRule> = want
                .inserts
                .iter()
                .filter(|(c, _)| c == chain)
                .map(|(_, r)| r.clone())
                .collect();
            let appends: Vec<DesiredRule> = want
                .appends
                .iter()
                .filter(|(c, _)| c == chain)
                .map(|(_, r)| r.clone())
                .collect();
            let cur_rules: &[CurrentRule] = have
                .chains
                .get(chain)
                .map(|c| c.rules.as_slice())
                .unwrap_or(&[]);
            // Expected: our inserts, then the foreign rules as they are, then our appends.
            let foreign = cur_rules.iter().filter(|r| !is_ours(r)).count();
            let expected: Vec<Option<&str>> = inserts
                .iter()
                .map(|r| Some(r.hash.as_str()))
                .chain(std::iter::repeat_n(None, foreign))
                .chain(appends.iter().map(|r| Some(r.hash.as_str())))
                .collect();
            let actual: Vec<Option<&str>> = cur_rules
                .iter()
                .map(|r| {
                    if is_ours(r) {
                        Some(r.hash.as_deref().unwrap_or("OLD INSERT RULE"))
                    } else {
                        None
                    }
                })
                .collect();
            if expected != actual {
                tp.hooks.push(HookPlan {
                    chain: chain.to_string(),
                    remove: cur_rules
                        .iter()
                        .filter(|r| is_ours(r))
                        .map(|r| r.raw.clone())
                        .collect(),
                    insert: inserts,
                    append: appends,
                });
            }
        }
        if !tp.chains.is_empty() || !tp.hooks.is_empty() {
            plan.tables.push(tp);
        }
    }
    plan.ipsets = set_plans(desired, current, unchanged_sets);
    plan
}

/// A rule of a kernel chain that belongs to us: a `cali:` hash or an old-style bare jump.
fn is_ours(r: &CurrentRule) -> bool {
    r.hash.is_some() || is_old_insert(&r.raw)
}

fn rule_diff(chain: &str, want: &[DesiredRule], have: &[CurrentRule]) -> Vec<RuleLine> {
    let old: Vec<String> = have
        .iter()
        .map(|r| r.hash.clone().unwrap_or_else(|| format!("\0{}", r.raw)))
        .collect();
    let new: Vec<String> = want.iter().map(|r| r.hash.clone()).collect();
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, &old, &new);
    let mut out = Vec::new();
    for op in ops {
        for change in op.iter_changes(&old, &new) {
            match change.tag() {
                similar::ChangeTag::Equal => {
                    let i = change.old_index().expect("equal has old index");
                    out.push(current_line(" ", chain, &have[i]));
                }
                similar::ChangeTag::Delete => {
                    let i = change.old_index().expect("delete has old index");
                    out.push(current_line("-", chain, &have[i]));
                }
                similar::ChangeTag::Insert => {
                    let i = change.new_index().expect("insert has new index");
                    out.push(desired_line(chain, &want[i]));
                }
            }
        }
    }
    out
}

/// [`normalise_member`] without allocating.
fn member_key<'a>(set_type: &str, m: &'a str) -> &'a str {
    let m = m.trim();
    if set_type == "hash:net" {
        m.strip_suffix("/32").unwrap_or(m)
    } else {
        m
    }
}

fn set_plans(
    desired: &Desired,
    current: &Current,
    unchanged_sets: &BTreeSet<&str>,
) -> Vec<SetPlan> {
    let mut out = Vec::new();
    let mut temp_n = 0usize;
    let mut next_temp = || loop {
        let name = format!("cali4t{temp_n}");
        temp_n += 1;
        if !current.ipsets.contains_key(&name) {
            return name;
        }
    };
    let wanted: BTreeSet<&str> = desired.ipsets.iter().map(|s| s.name.as_str()).collect();
    for s in &desired.ipsets {
        let cur = current.ipsets.get(&s.name);
        if cur.is_some() && unchanged_sets.contains(s.name.as_str()) {
            continue;
        }
        // Fast path (the common case on a busy node: hundreds of thousands of members, few
        // changes): same metadata and every desired member present, no allocation.
        if let Some(cur) = cur {
            if cur.set_type == s.set_type
                && cur.maxelem == s.maxelem
                && cur.members.len() == s.members.len()
                && s.members
                    .iter()
                    .all(|m| cur.members.contains(member_key(&s.set_type, m)))
            {
                continue;
            }
        }
        if let Some(cur) = cur.filter(|c| c.set_type == s.set_type && c.maxelem == s.maxelem) {
            // Member update: diff by borrowed keys; only the changes are allocated.
            let want: std::collections::HashSet<&str> = s
                .members
                .iter()
                .map(|m| member_key(&s.set_type, m))
                .collect();
            let mut add: Vec<String> = want
                .iter()
                .filter(|m| !cur.members.contains(**m))
                .map(|m| m.to_string())
                .collect();
            add.sort();
            let del: Vec<String> = cur
                .members
                .iter()
                .filter(|m| !want.contains(m.as_str()))
                .cloned()
                .collect();
            if !add.is_empty() || !del.is_empty() {
                out.push(SetPlan {
                    name: s.name.clone(),
                    change: "update".into(),
                    set_type: s.set_type.clone(),
                    maxelem: s.maxelem,
                    add,
                    del,
                    members: Vec::new(),
                    temp: None,
                });
            }
            continue;
        }
        let members: BTreeSet<String> = s
            .members
            .iter()
            .map(|m| normalise_member(&s.set_type, m))
            .collect();
        match cur {
            None => out.push(SetPlan {
                name: s.name.clone(),
                change: "create".into(),
                set_type: s.set_type.clone(),
                maxelem: s.maxelem,
                add: members.into_iter().collect(),
                del: Vec::new(),
                members: Vec::new(),
                temp: None,
            }),
            Some(cur) if cur.set_type != s.set_type || cur.maxelem != s.maxelem => {
                // The kernel swaps only sets of the same type; a type change under the same
                // name cannot be done in place while rules reference the set.
                let change = if cur.set_type == s.set_type {
                    "recreate"
                } else {
                    "retype"
                };
                out.push(SetPlan {
                    name: s.name.clone(),
                    change: change.into(),
                    set_type: s.set_type.clone(),
                    maxelem: s.maxelem,
                    add: members.difference(&cur.members).cloned().collect(),
                    del: cur.members.difference(&members).cloned().collect(),
                    members: members.into_iter().collect(),
                    temp: Some(next_temp()),
                })
            }
            Some(_) => unreachable!("same-metadata sets are handled above"),
        }
    }
    for (name, cur) in &current.ipsets {
        if is_our_set(name) && !wanted.contains(name.as_str()) {
            out.push(SetPlan {
                name: name.clone(),
                change: "destroy".into(),
                set_type: cur.set_type.clone(),
                maxelem: cur.maxelem,
                add: Vec::new(),
                del: cur.members.iter().cloned().collect(),
                members: Vec::new(),
                temp: None,
            });
        }
    }
    out
}

/// The `ipset restore` input run before the tables: creates, member updates, temp + swap.
pub fn ipset_payload(plan: &Plan) -> String {
    let mut out = String::new();
    for s in &plan.ipsets {
        match s.change.as_str() {
            "create" => {
                let _ = writeln!(
                    out,
                    "create {} {} family inet maxelem {}",
                    s.name, s.set_type, s.maxelem
                );
                for m in &s.add {
                    let _ = writeln!(out, "add {} {}", s.name, m);
                }
            }
            "update" => {
                for m in &s.del {
                    let _ = writeln!(out, "del {} {} -exist", s.name, m);
                }
                for m in &s.add {
                    let _ = writeln!(out, "add {} {} -exist", s.name, m);
                }
            }
            "recreate" => {
                let temp = s.temp.as_deref().expect("recreate has a temp set");
                let _ = writeln!(
                    out,
                    "create {temp} {} family inet maxelem {}",
                    s.set_type, s.maxelem
                );
                for m in &s.members {
                    let _ = writeln!(out, "add {temp} {m}");
                }
                let _ = writeln!(out, "swap {} {temp}", s.name);
            }
            _ => {}
        }
    }
    out
}

/// Sets to destroy after the tables were written (stale sets and swapped-out temporaries).
pub fn ipset_destroys(plan: &Plan) -> Vec<String> {
    plan.ipsets
        .iter()
        .filter_map(|s| match s.change.as_str() {
            "destroy" => Some(s.name.clone()),
            "recreate" => s.temp.clone(),
            _ => None,
        })
        .collect()
}

/// The `iptables-restore --noflush` payload for one table: forward references (create or flush)
/// for new, rewritten and doomed chains; the rewritten chains' rules; hook rules deleted by value
/// and re-inserted/appended; stale chains deleted last. Only chains that changed appear.
pub fn table_payload(tp: &TablePlan) -> String {
    let mut out = format!("*{}\n", tp.table);
    for c in &tp.chains {
        let _ = writeln!(out, ":{} - [0:0]", c.chain);
    }
    for c in &tp.chains {
        for r in &c.desired {
            let _ = writeln!(out, "-A {} {}", c.chain, r.body);
        }
    }
    for h in &tp.hooks {
        for raw in &h.remove {
            let _ = writeln!(out, "-D {} {}", h.chain, raw);
        }
        for (i, r) in h.insert.iter().enumerate() {
            let _ = writeln!(out, "-I {} {} {}", h.chain, i + 1, r.body);
        }
        for r in &h.append {
            let _ = writeln!(out, "-A {} {}", h.chain, r.body);
        }
    }
    for c in tp.chains.iter().filter(|c| c.change == "removed") {
        let _ = writeln!(out, "-X {}", c.chain);
    }
    out.push_str("COMMIT\n");
    out
}

/// Colours for [`render_text`].
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// A unified, human-readable rendering of the plan.
pub fn render_text(plan: &Plan, desired_name: &str, current_name: &str, style: Style) -> String {
    let mut out = String::new();
    let minus = |s: &str| style.paint("31", s);
    let plus = |s: &str| style.paint("32", s);
    let head = |s: &str| style.paint("1;36", s);
    let _ = writeln!(out, "{}", style.paint("1", &format!("--- {current_name}")));
    let _ = writeln!(out, "{}", style.paint("1", &format!("+++ {desired_name}")));
    if plan.is_empty() {
        out.push_str("no changes\n");
        return out;
    }
    for s in &plan.ipsets {
        let title = match s.change.as_str() {
            "create" => format!("@@ ipset {} {} (new) @@", s.name, s.set_type),
            "update" => format!("@@ ipset {} {} (members) @@", s.name, s.set_type),
            "recreate" => format!(
                "@@ ipset {} {} maxelem {} (type/size changed: rebuilt in {} and swapped) @@",
                s.name,
                s.set_type,
                s.maxelem,
                s.temp.as_deref().unwrap_or("?")
            ),
            "retype" => format!(
                "@@ ipset {} now {} (type changed: cannot be applied in place) @@",
                s.name, s.set_type
            ),
            _ => format!("@@ ipset {} {} (stale: destroyed) @@", s.name, s.set_type),
        };
        let _ = writeln!(out, "{}", head(&title));
        for m in &s.del {
            let _ = writeln!(out, "{}", minus(&format!("-{m}")));
        }
        for m in &s.add {
            let _ = writeln!(out, "{}", plus(&format!("+{m}")));
        }
    }
    for t in &plan.tables {
        let _ = writeln!(out, "{}", style.paint("1", &format!("*{}", t.table)));
        for h in &t.hooks {
            let _ = writeln!(out, "{}", head(&format!("@@ hook rules in {} @@", h.chain)));
            for raw in &h.remove {
                let _ = writeln!(out, "{}", minus(&format!("--A {} {}", h.chain, raw)));
            }
            for (i, r) in h.insert.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{}",
                    plus(&format!("+-I {} {} {}", h.chain, i + 1, r.body))
                );
            }
            for r in &h.append {
                let _ = writeln!(out, "{}", plus(&format!("+-A {} {}", h.chain, r.body)));
            }
        }
        for c in &t.chains {
            let (a, d) = c
                .rules
                .iter()
                .fold((0, 0), |(a, d), l| match l.op.as_str() {
                    "+" => (a + 1, d),
                    "-" => (a, d + 1),
                    _ => (a, d),
                });
            let _ = writeln!(
                out,
                "{}",
                head(&format!(
                    "@@ chain {} ({}: +{a} -{d}) @@",
                    c.chain, c.change
                ))
            );
            for l in &c.rules {
                let line = format!("{}{}", l.op, l.text);
                let _ = writeln!(
                    out,
                    "{}",
                    match l.op.as_str() {
                        "+" => plus(&line),
                        "-" => minus(&line),
                        _ => line,
                    }
                );
            }
        }
    }
    let c = plan.counts();
    let _ = writeln!(
        out,
        "chains: {} added, {} changed, {} removed; hook chains: {}; ipsets: {} (+{} -{} members)",
        c.chains_added,
        c.chains_changed,
        c.chains_removed,
        c.hook_chains,
        c.sets,
        c.set_members_added,
        c.set_members_removed
    );
    out
}

/// Per-table rewritten chain names, for reports and tests.
pub fn chains_written(plan: &Plan) -> BTreeMap<String, Vec<String>> {
    plan.tables
        .iter()
        .map(|t| {
            (
                t.table.clone(),
                t.chains.iter().map(|c| c.chain.clone()).collect(),
            )
        })
        .collect()
}

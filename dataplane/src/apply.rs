//! Writing a plan into a kernel (the current namespace or a named one).

use std::time::Instant;

use serde::Serialize;

use crate::error::{DataplaneError, Result};
use crate::netns::Target;
use crate::plan::{compute, ipset_destroys, ipset_payload, table_payload, Plan};
use crate::state::{read_current, Desired};

/// What an apply did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub plan: Plan,
    /// Bytes fed to `ipset restore` plus all `iptables-restore` payloads.
    pub payload_bytes: usize,
    /// Tables written (one `iptables-restore` each).
    pub tables_written: Vec<String>,
    pub sets_destroyed: Vec<String>,
    /// Wall time of the writes (not the read-back), in microseconds.
    pub write_micros: u128,
}

/// `iptables-restore` flags: keep other chains, wait for the xtables lock (10 s, probing every
/// 50 ms) as Felix does.
pub const RESTORE_ARGS: [&str; 5] = ["--noflush", "--wait", "10", "--wait-interval", "50000"];

/// Reads the target's state, computes the plan and writes it. Every table payload is first
/// checked with `iptables-restore --test`, so a payload the kernel would reject is refused before
/// anything (ipsets included) is written. Each table is then one atomic `iptables-restore`.
pub fn apply(target: &Target, desired: &Desired) -> Result<ApplyReport> {
    let current = read_current(target)?;
    let plan = compute(desired, &current);
    apply_plan(target, plan)
}

/// Writes an already computed plan (see [`apply`]).
pub fn apply_plan(target: &Target, plan: Plan) -> Result<ApplyReport> {
    let start = Instant::now();
    let mut report = ApplyReport {
        payload_bytes: 0,
        tables_written: Vec::new(),
        sets_destroyed: Vec::new(),
        write_micros: 0,
        plan,
    };
    if report.plan.is_empty() {
        return Ok(report);
    }
    if let Some(s) = report.plan.ipsets.iter().find(|s| s.change == "retype") {
        return Err(DataplaneError::Refused(format!(
            "ipset {} exists with another type than {}: the kernel cannot swap sets of different \
             types; remove the rules using it and the set, then apply again",
            s.name, s.set_type
        )));
    }
    let payloads: Vec<(String, String)> = report
        .plan
        .tables
        .iter()
        .map(|t| (t.table.clone(), table_payload(t)))
        .collect();
    // Dry-run every table first: nothing is written if any payload is bad. New ipsets do not
    // exist yet, so a payload referencing one is only checked once they are created below.
    let sets_ready = report.plan.ipsets.iter().all(|s| s.change != "create");
    if sets_ready {
        for (table, p) in &payloads {
            restore(target, table, p, true)?;
        }
    }
    let ipsets = ipset_payload(&report.plan);
    if !ipsets.is_empty() {
        report.payload_bytes += ipsets.len();
        target.run("ipset", &["restore"], Some(&ipsets))?;
    }
    if !sets_ready {
        for (table, p) in &payloads {
            if let Err(e) = restore(target, table, p, true) {
                // Take back the sets this apply created; nothing else was written yet.
                for s in report.plan.ipsets.iter().filter(|s| s.change == "create") {
                    let _ = target.run("ipset", &["destroy", &s.name], None);
                }
                return Err(e);
            }
        }
    }
    for (table, p) in &payloads {
        report.payload_bytes += p.len();
        restore(target, table, p, false)?;
        report.tables_written.push(table.clone());
    }
    for set in ipset_destroys(&report.plan) {
        target.run("ipset", &["destroy", &set], None)?;
        report.sets_destroyed.push(set);
    }
    report.write_micros = start.elapsed().as_micros();
    Ok(report)
}

/// iptables-restore names the failing payload line (`Error occurred at line: N` or `line N
/// failed`); quote it so the report says which rule was refused.
fn with_failing_line(stderr: &str, payload: &str) -> String {
    let n = stderr
        .split("line: ")
        .nth(1)
        .or_else(|| stderr.split("line ").nth(1))
        .and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<usize>()
                .ok()
        });
    match n.and_then(|n| payload.lines().nth(n.wrapping_sub(1)).map(|l| (n, l))) {
        Some((n, line)) => format!("{stderr}\npayload line {n}: {line}"),
        None => stderr.to_string(),
    }
}

fn restore(target: &Target, table: &str, payload: &str, test: bool) -> Result<()> {
    let mut args: Vec<&str> = RESTORE_ARGS.to_vec();
    if test {
        args.push("--test");
    }
    target
        .run("iptables-restore", &args, Some(payload))
        .map(|_| ())
        .map_err(|e| match e {
            DataplaneError::Command { stderr, .. } => DataplaneError::Restore {
                table: table.to_string(),
                stderr: with_failing_line(&stderr, payload),
            },
            other => other,
        })
}

/// A long-running applier that, like Felix, remembers what it believes the kernel holds, so a
/// steady-state update (a relabel, a policy edit) costs only the writes, not a full
/// `iptables-save` read-back. Call [`Applier::resync`] to re-read (periodically, or to find drift).
#[derive(Debug)]
pub struct Applier {
    target: Target,
    cache: Option<crate::state::Current>,
    /// Fingerprints of the desired ipsets of the last successful apply (valid while `cache`
    /// is): set name → hash of type, size and members.
    last_sets: std::collections::BTreeMap<String, u64>,
}

impl Applier {
    pub fn new(target: Target) -> Applier {
        Applier {
            target,
            cache: None,
            last_sets: Default::default(),
        }
    }

    /// Forget the cached state; the next apply reads the kernel again.
    pub fn resync(&mut self) {
        self.cache = None;
        self.last_sets.clear();
    }

    /// Plans against the cached state (reading the kernel if there is none) and writes. On a
    /// failed write the cache is dropped, so the next apply starts from a fresh read.
    pub fn apply(&mut self, desired: &Desired) -> Result<ApplyReport> {
        let last_sets = std::mem::take(&mut self.last_sets);
        let current = match self.cache.take() {
            Some(c) => c,
            None => read_current(&self.target)?,
        };
        // Sets whose desired contents did not change since the last successful write hold
        // exactly those members (as far as this applier believes; `resync` re-reads).
        let prints: Vec<(&str, u64)> = desired
            .ipsets
            .iter()
            .map(|s| (s.name.as_str(), fingerprint(s)))
            .collect();
        let unchanged: std::collections::BTreeSet<&str> = prints
            .iter()
            .filter(|(name, h)| last_sets.get(*name) == Some(h))
            .map(|(name, _)| *name)
            .collect();
        let plan = crate::plan::compute_hinted(desired, &current, &unchanged);
        let report = apply_plan(&self.target, plan)?;
        self.cache = Some(believed(current, desired, &report.plan));
        self.last_sets = prints
            .into_iter()
            .map(|(n, h)| (n.to_string(), h))
            .collect();
        Ok(report)
    }
}

fn fingerprint(s: &crate::state::DesiredSet) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.set_type.hash(&mut h);
    s.maxelem.hash(&mut h);
    s.members.hash(&mut h);
    h.finish()
}

/// The state after `plan` was written successfully onto `current`.
fn believed(
    mut current: crate::state::Current,
    desired: &Desired,
    plan: &Plan,
) -> crate::state::Current {
    use crate::state::{CurrentChain, CurrentRule, CurrentSet};
    let to_current = |r: &crate::state::DesiredRule| CurrentRule {
        hash: Some(r.hash.clone()),
        raw: r.body.clone(),
    };
    for tp in &plan.tables {
        let table = current.tables.entry(tp.table.clone()).or_default();
        for c in &tp.chains {
            if c.change == "removed" {
                table.chains.remove(&c.chain);
            } else {
                table.chains.insert(
                    c.chain.clone(),
                    CurrentChain {
                        policy: None,
                        rules: c.desired.iter().map(to_current).collect(),
                    },
                );
            }
        }
        for h in &tp.hooks {
            let chain = table.chains.entry(h.chain.clone()).or_default();
            let foreign: Vec<CurrentRule> = chain
                .rules
                .iter()
                .filter(|r| r.hash.is_none() && !crate::state::is_old_insert(&r.raw))
                .cloned()
                .collect();
            chain.rules = h
                .insert
                .iter()
                .map(to_current)
                .chain(foreign)
                .chain(h.append.iter().map(to_current))
                .collect();
        }
    }
    for s in &plan.ipsets {
        match s.change.as_str() {
            "destroy" => {
                current.ipsets.remove(&s.name);
            }
            "update" if current.ipsets.contains_key(&s.name) => {
                let set = current.ipsets.get_mut(&s.name).expect("checked");
                for m in &s.del {
                    set.members.remove(m);
                }
                set.members.extend(s.add.iter().cloned());
            }
            _ => {
                let members = desired
                    .ipsets
                    .iter()
                    .find(|d| d.name == s.name)
                    .map(|d| {
                        d.members
                            .iter()
                            .map(|m| crate::state::normalise_member(&d.set_type, m))
                            .collect()
                    })
                    .unwrap_or_default();
                current.ipsets.insert(
                    s.name.clone(),
                    CurrentSet {
                        name: s.name.clone(),
                        set_type: s.set_type.clone(),
                        maxelem: s.maxelem,
                        members,
                    },
                );
            }
        }
    }
    current
}

//! iptables-backend: IR → `iptables-restore` / `ipset restore` text, plus a parser for
//! `iptables-save` text and a packet simulator that runs a parsed ruleset.
//!
//! Pure: no processes, no I/O. [`render`] turns a [`policy_ir::ir::NodeIr`] into a [`Ruleset`]
//! shaped like Felix's `cali-*` chain graph (see `felix-iptables.md` and the project's
//! decisions); [`save::parse_save`] reads rules back; [`sim`] follows a packet through them.

use std::collections::BTreeMap;
use std::fmt;

pub mod graph;
pub mod hash;
mod matches;
mod render;
pub mod save;
pub mod sim;
pub mod trace;

pub use render::{render, MARK_ACCEPT, MARK_ALL, MARK_PASS, MARK_SCRATCH0};

/// Errors of this crate. Positions are 1-based line and column in the parsed text.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BackendError {
    #[error("line {line}, column {column}: {message}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("line {line}, column {column}: option `{option}`: {message}")]
    BadOption {
        line: usize,
        column: usize,
        option: String,
        message: String,
    },
    #[error("chain `{chain}` in table {table}: {message}")]
    Graph {
        table: String,
        chain: String,
        message: String,
    },
    #[error("simulation: {0}")]
    Sim(String),
}

/// The four iptables tables Brindle writes, in packet-traversal order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Table {
    Raw,
    Mangle,
    Nat,
    Filter,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Raw, Table::Mangle, Table::Nat, Table::Filter];

    pub fn name(self) -> &'static str {
        match self {
            Table::Raw => "raw",
            Table::Mangle => "mangle",
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }

    pub fn from_name(s: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == s)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rendered rule. `hash` is the 16-character chained hash (without `cali:`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rule {
    pub hash: String,
    /// Extra comments after the hash comment (already sanitised).
    pub comments: Vec<String>,
    /// Match fragments in long-option form, e.g. `-p tcp -m multiport --destination-ports 80`.
    pub matches: String,
    /// Action fragment, e.g. `--jump DROP`, `--goto cali-fw-cali1`; empty for a comment-only rule.
    pub action: String,
}

impl Rule {
    /// The rule body after `-A <chain> ` (hash comment first).
    pub fn body(&self) -> String {
        let mut s = String::with_capacity(64 + self.matches.len() + self.action.len());
        self.write_body(&mut s);
        s
    }

    fn write_body(&self, s: &mut String) {
        s.push_str("-m comment --comment \"cali:");
        s.push_str(&self.hash);
        s.push('"');
        for c in &self.comments {
            s.push_str(" -m comment --comment \"");
            s.push_str(c);
            s.push('"');
        }
        if !self.matches.is_empty() {
            s.push(' ');
            s.push_str(&self.matches);
        }
        if !self.action.is_empty() {
            s.push(' ');
            s.push_str(&self.action);
        }
    }

    /// The `-A <chain> -m comment --comment "cali:HASH" …` line.
    pub fn line(&self, chain: &str) -> String {
        format!("-A {chain} {}", self.body())
    }

    /// The chain this rule jumps or goes to, if any (`--jump X` / `--goto X` with X not a
    /// built-in target).
    pub fn target_chain(&self) -> Option<&str> {
        let mut it = self.action.split_whitespace();
        let verb = it.next()?;
        let target = it.next()?;
        if (verb == "--jump" || verb == "--goto") && !is_builtin_target(target) {
            Some(target)
        } else {
            None
        }
    }

    pub fn is_goto(&self) -> bool {
        self.action.starts_with("--goto ")
    }
}

/// Targets that are not user chains.
pub fn is_builtin_target(t: &str) -> bool {
    matches!(
        t,
        "ACCEPT"
            | "DROP"
            | "RETURN"
            | "REJECT"
            | "MARK"
            | "LOG"
            | "NFLOG"
            | "MASQUERADE"
            | "SNAT"
            | "DNAT"
            | "NOTRACK"
            | "CT"
            | "TRACE"
            | "QUEUE"
            | "NFQUEUE"
            | "CONNMARK"
            | "DSCP"
            | "REDIRECT"
    )
}

/// The rules of one table: Brindle's own chains plus hook rules placed in kernel chains.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct TableRules {
    /// Brindle's chains (`cali-…`), by name.
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// Rules inserted at the top of kernel chains, in final order.
    pub inserts: Vec<(String, Rule)>,
    /// Rules appended to kernel chains, in order.
    pub appends: Vec<(String, Rule)>,
}

/// One `ipset` to create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IpSetSpec {
    /// Kernel name (`cali40…`, ≤ 31 characters).
    pub name: String,
    /// `hash:net` or `hash:ip,port`.
    pub set_type: String,
    /// Members in `ipset add` syntax (`10.0.0.0/24`, `10.0.0.1,tcp:8080`).
    pub members: Vec<String>,
    pub maxelem: u32,
}

/// Everything one node's dataplane needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Ruleset {
    pub tables: BTreeMap<Table, TableRules>,
    /// Sets sorted by name.
    pub ipsets: Vec<IpSetSpec>,
}

impl Ruleset {
    /// A full `iptables-restore --noflush` payload for one table: declares (creates or flushes)
    /// every `cali-` chain, appends their rules, inserts the hook rules at the top of their kernel
    /// chains (`-I <chain> <n>`) and appends the append rules, then `COMMIT`.
    pub fn restore_payload(&self, table: Table) -> String {
        let size: usize = self
            .tables
            .get(&table)
            .map(|t| {
                t.chains
                    .iter()
                    .map(|(n, r)| r.len() * (n.len() + 100) + n.len() + 10)
                    .sum()
            })
            .unwrap_or(0);
        let mut out = String::with_capacity(size + 1024);
        out.push('*');
        out.push_str(table.name());
        out.push('\n');
        let Some(t) = self.tables.get(&table) else {
            out.push_str("COMMIT\n");
            return out;
        };
        for name in t.chains.keys() {
            out.push(':');
            out.push_str(name);
            out.push_str(" - [0:0]\n");
        }
        for (name, rules) in &t.chains {
            for r in rules {
                out.push_str("-A ");
                out.push_str(name);
                out.push(' ');
                r.write_body(&mut out);
                out.push('\n');
            }
        }
        let mut pos: BTreeMap<&str, usize> = BTreeMap::new();
        for (chain, r) in &t.inserts {
            let n = pos.entry(chain.as_str()).or_insert(0);
            *n += 1;
            out.push_str(&format!("-I {chain} {n} {}\n", r.body()));
        }
        for (chain, r) in &t.appends {
            out.push_str(&r.line(chain));
            out.push('\n');
        }
        out.push_str("COMMIT\n");
        out
    }

    /// All four tables in one `iptables-restore` file (raw, mangle, nat, filter).
    pub fn combined_restore_payload(&self) -> String {
        let mut out = String::from("# Generated by brindle\n");
        for t in Table::ALL {
            out.push_str(&self.restore_payload(t));
        }
        out
    }

    /// An `ipset restore` payload creating every set and adding its members.
    pub fn ipset_restore_payload(&self) -> String {
        let mut out = String::new();
        for s in &self.ipsets {
            out.push_str(&format!(
                "create {} {} family inet maxelem {}\n",
                s.name, s.set_type, s.maxelem
            ));
            for m in &s.members {
                out.push_str(&format!("add {} {}\n", s.name, m));
            }
        }
        out
    }

    /// A human-readable view: per table, hook rules then each chain with its rules.
    pub fn readable(&self) -> String {
        let mut out = String::new();
        for (table, t) in &self.tables {
            out.push_str(&format!("== table {table} ==\n"));
            for (chain, r) in &t.inserts {
                out.push_str(&format!("  [hook, insert] {chain}: {}\n", describe(r)));
            }
            for (chain, r) in &t.appends {
                out.push_str(&format!("  [hook, append] {chain}: {}\n", describe(r)));
            }
            for (name, rules) in &t.chains {
                out.push_str(&format!("  {name} ({} rules)\n", rules.len()));
                for (i, r) in rules.iter().enumerate() {
                    out.push_str(&format!("    {:>3}. {}\n", i + 1, describe(r)));
                }
            }
        }
        if !self.ipsets.is_empty() {
            out.push_str("== ipsets ==\n");
            for s in &self.ipsets {
                out.push_str(&format!(
                    "  {} {} ({} members): {}\n",
                    s.name,
                    s.set_type,
                    s.members.len(),
                    s.members.join(" ")
                ));
            }
        }
        out
    }

    /// Total number of rules (chains, inserts and appends) over all tables.
    pub fn rule_count(&self) -> usize {
        self.tables
            .values()
            .map(|t| {
                t.chains.values().map(Vec::len).sum::<usize>() + t.inserts.len() + t.appends.len()
            })
            .sum()
    }
}

/// Parse an address or CIDR (`10.0.0.1`, `10.0.0.0/8`).
pub(crate) fn save_net(s: &str) -> Option<ipnet::Ipv4Net> {
    if s.contains('/') {
        s.parse::<ipnet::Ipv4Net>().ok().map(|n| n.trunc())
    } else {
        s.parse::<std::net::Ipv4Addr>()
            .ok()
            .and_then(|a| ipnet::Ipv4Net::new(a, 32).ok())
    }
}

fn describe(r: &Rule) -> String {
    let mut parts = Vec::new();
    for c in &r.comments {
        parts.push(format!("/* {c} */"));
    }
    if !r.matches.is_empty() {
        parts.push(r.matches.clone());
    }
    if !r.action.is_empty() {
        parts.push(r.action.clone());
    }
    format!("[{}] {}", r.hash, parts.join(" "))
}

//! What the kernel should hold ([`Desired`]) and what it holds ([`Current`]), and how the current
//! state is read: `iptables-save` and `ipset save` in the target namespace, or a saved dump.
//!
//! Reading follows Felix (`felix-iptables.md` §6.1): a line scan that keeps, per chain, each
//! rule's text and its `cali:` hash. It deliberately does not parse match options: foreign rules
//! (Docker, kube-proxy, an admin's) may use any iptables extension, and they only need to be
//! recognised as foreign and left alone. (`iptables_backend::save::parse_save`, the simulator's
//! full parser, rejects options it does not model, so it cannot read an arbitrary host.)

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::{DataplaneError, Result};
use crate::netns::Target;

/// One of Brindle's rules: its hash and the text after `-A <chain> `.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredRule {
    pub hash: String,
    pub body: String,
}

/// Brindle's rules for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DesiredTable {
    /// `cali-` chains by name.
    pub chains: BTreeMap<String, Vec<DesiredRule>>,
    /// (kernel chain, rule) inserted at the top, in final order.
    pub inserts: Vec<(String, DesiredRule)>,
    /// (kernel chain, rule) appended after everything else.
    pub appends: Vec<(String, DesiredRule)>,
}

/// One desired ipset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredSet {
    pub name: String,
    pub set_type: String,
    pub maxelem: u32,
    pub members: Vec<String>,
}

/// Everything Brindle wants in one kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// By table name (`raw`, `mangle`, `nat`, `filter`).
    pub tables: BTreeMap<String, DesiredTable>,
    pub ipsets: Vec<DesiredSet>,
}

/// A rule as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrentRule {
    /// The first `cali:` hash comment, if any.
    pub hash: Option<String>,
    /// The text after `-A <chain> ` as `iptables-save` printed it.
    pub raw: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CurrentChain {
    /// Policy of a kernel chain (`ACCEPT`), `None` for user chains.
    pub policy: Option<String>,
    pub rules: Vec<CurrentRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CurrentTable {
    pub chains: BTreeMap<String, CurrentChain>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrentSet {
    pub name: String,
    pub set_type: String,
    pub maxelem: u32,
    /// Normalised members (see [`normalise_member`]).
    pub members: BTreeSet<String>,
}

/// What a kernel holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Current {
    pub tables: BTreeMap<String, CurrentTable>,
    pub ipsets: BTreeMap<String, CurrentSet>,
}

/// Chain-name prefixes Felix (and so Brindle) owns.
pub const OUR_CHAIN_PREFIXES: [&str; 8] = [
    "cali-", "califw-", "calitw-", "califh-", "calith-", "calipi-", "calipo-", "felix-",
];

/// Whether a chain is ours (stale ones are deleted).
pub fn is_our_chain(name: &str) -> bool {
    OUR_CHAIN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether an ipset is ours: `cali40…` (IPv4 sets) or `cali4t…` (temporary sets for swaps).
pub fn is_our_set(name: &str) -> bool {
    name.starts_with("cali40") || name.starts_with("cali4t")
}

/// The form `ipset save` prints a member in: `hash:net` /32s lose their suffix.
pub fn normalise_member(set_type: &str, member: &str) -> String {
    let m = member.trim();
    if set_type == "hash:net" {
        if let Some(ip) = m.strip_suffix("/32") {
            return ip.to_string();
        }
    }
    m.to_string()
}

/// The first `cali:` hash comment in a rule's text (Felix's `--comment "?cali:([a-zA-Z0-9_-]+)"?`).
pub fn rule_hash(raw: &str) -> Option<String> {
    let mut rest = raw;
    while let Some(i) = rest.find("--comment ") {
        let after = &rest[i + "--comment ".len()..];
        let after = after.strip_prefix('"').unwrap_or(after);
        if let Some(h) = after.strip_prefix("cali:") {
            let hash: String = h
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if !hash.is_empty() {
                return Some(hash);
            }
        }
        rest = after;
    }
    None
}

/// Whether a rule without a hash is one of ours from an older version (a bare jump to our chain).
pub fn is_old_insert(raw: &str) -> bool {
    let toks: Vec<&str> = raw.split_whitespace().collect();
    toks.windows(2)
        .any(|w| matches!(w[0], "-j" | "--jump" | "-g" | "--goto") && is_our_chain(w[1]))
}

fn dump_err(source: &str, line: usize, column: usize, field: &str, msg: &str) -> DataplaneError {
    DataplaneError::Dump {
        source_name: source.to_string(),
        line,
        column,
        field: field.to_string(),
        message: msg.to_string(),
    }
}

/// Parses a dump: `iptables-save` text, optionally mixed with `ipset save` lines (`create …`,
/// `add …`), e.g. the output of `{ iptables-save; ipset save; } > dump`. `source` names it in
/// errors.
pub fn parse_dump(text: &str, source: &str) -> Result<Current> {
    let mut cur = Current::default();
    let mut table: Option<String> = None;
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let indent = line.len() - line.trim_start().len();
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        if l.starts_with('#') {
            if l.contains("is incompatible") {
                return Err(dump_err(
                    source,
                    lineno,
                    1,
                    "table",
                    l.trim_start_matches("# "),
                ));
            }
            continue;
        }
        if let Some(t) = l.strip_prefix('*') {
            if t.is_empty() || t.contains(char::is_whitespace) {
                return Err(dump_err(
                    source,
                    lineno,
                    indent + 2,
                    "table",
                    "bad table name",
                ));
            }
            cur.tables.entry(t.to_string()).or_default();
            table = Some(t.to_string());
            continue;
        }
        if l == "COMMIT" {
            if table.take().is_none() {
                return Err(dump_err(
                    source,
                    lineno,
                    indent + 1,
                    "COMMIT",
                    "COMMIT outside a table",
                ));
            }
            continue;
        }
        if l.starts_with("create ") || l.starts_with("add ") {
            if table.is_some() {
                return Err(dump_err(
                    source,
                    lineno,
                    indent + 1,
                    "ipset",
                    "ipset line inside an iptables table (missing COMMIT?)",
                ));
            }
            parse_ipset_line(&mut cur, l, source, lineno, indent)?;
            continue;
        }
        let Some(tname) = table.clone() else {
            return Err(dump_err(
                source,
                lineno,
                indent + 1,
                "line",
                "expected `*table`, `create` or `add`",
            ));
        };
        let t = cur.tables.get_mut(&tname).expect("table exists");
        if let Some(decl) = l.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            let Some(name) = parts.next() else {
                return Err(dump_err(
                    source,
                    lineno,
                    indent + 2,
                    "chain",
                    "chain name missing",
                ));
            };
            let policy = parts.next().filter(|p| *p != "-").map(str::to_string);
            t.chains.entry(name.to_string()).or_default().policy = policy;
            continue;
        }
        if let Some(rest) = l.strip_prefix("-A ") {
            let rest = rest.trim_start();
            let (chain, body) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if chain.is_empty() {
                return Err(dump_err(
                    source,
                    lineno,
                    indent + 4,
                    "chain",
                    "chain name missing",
                ));
            }
            let body = body.trim().to_string();
            t.chains
                .entry(chain.to_string())
                .or_default()
                .rules
                .push(CurrentRule {
                    hash: rule_hash(&body),
                    raw: body,
                });
            continue;
        }
        return Err(dump_err(
            source,
            lineno,
            indent + 1,
            "line",
            &format!("unexpected `{}`", l.split_whitespace().next().unwrap_or(l)),
        ));
    }
    if table.is_some() {
        return Err(dump_err(
            source,
            text.lines().count(),
            1,
            "COMMIT",
            "table not terminated by COMMIT",
        ));
    }
    Ok(cur)
}

fn parse_ipset_line(
    cur: &mut Current,
    l: &str,
    source: &str,
    lineno: usize,
    indent: usize,
) -> Result<()> {
    let toks: Vec<&str> = l.split_whitespace().collect();
    let col_of = |i: usize| -> usize {
        // 1-based column of token i within the original line.
        let mut pos = 0;
        for (k, t) in toks.iter().enumerate() {
            let at = l[pos..].find(t).map(|o| o + pos).unwrap_or(pos);
            if k == i {
                return indent + at + 1;
            }
            pos = at + t.len();
        }
        indent + l.len() + 1
    };
    match toks[0] {
        "create" => {
            if toks.len() < 3 {
                return Err(dump_err(
                    source,
                    lineno,
                    col_of(toks.len()),
                    "create",
                    "expected `create NAME TYPE …`",
                ));
            }
            let name = toks[1].to_string();
            let mut maxelem = 65536;
            if let Some(i) = toks.iter().position(|t| *t == "maxelem") {
                maxelem = toks
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        dump_err(
                            source,
                            lineno,
                            col_of(i + 1),
                            "maxelem",
                            "expected a number",
                        )
                    })?;
            }
            cur.ipsets.insert(
                name.clone(),
                CurrentSet {
                    name,
                    set_type: toks[2].to_string(),
                    maxelem,
                    members: BTreeSet::new(),
                },
            );
        }
        _ => {
            if toks.len() < 3 {
                return Err(dump_err(
                    source,
                    lineno,
                    col_of(toks.len()),
                    "add",
                    "expected `add NAME MEMBER`",
                ));
            }
            let Some(set) = cur.ipsets.get_mut(toks[1]) else {
                return Err(dump_err(
                    source,
                    lineno,
                    col_of(1),
                    "add",
                    &format!("set `{}` not created before", toks[1]),
                ));
            };
            let m = normalise_member(&set.set_type, toks[2]);
            set.members.insert(m);
        }
    }
    Ok(())
}

/// Reads the live state of `target`: `iptables-save` (nf_tables backend) and `ipset save`.
pub fn read_current(target: &Target) -> Result<Current> {
    let save = retry(|| target.run("iptables-save", &[], None))?;
    let sets = retry(|| target.run("ipset", &["save"], None))?;
    let mut text = save;
    text.push('\n');
    text.push_str(&sets);
    parse_dump(&text, "iptables-save + ipset save")
}

/// Felix retries reads 3 times (100 ms, doubling).
fn retry<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut delay = std::time::Duration::from_millis(100);
    let mut last = None;
    for _ in 0..3 {
        match f() {
            Ok(v) => return Ok(v),
            Err(e @ DataplaneError::Spawn { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(delay);
        delay *= 2;
    }
    Err(last.expect("at least one attempt"))
}

impl Desired {
    /// What iptables-backend rendered for a node, in the form the planner compares.
    pub fn from_ruleset(rs: &iptables_backend::Ruleset) -> Desired {
        let conv = |r: &iptables_backend::Rule| DesiredRule {
            hash: r.hash.clone(),
            body: r.body(),
        };
        let tables = rs
            .tables
            .iter()
            .map(|(t, rules)| {
                let table = DesiredTable {
                    chains: rules
                        .chains
                        .iter()
                        .map(|(name, rs)| (name.clone(), rs.iter().map(conv).collect()))
                        .collect(),
                    inserts: rules
                        .inserts
                        .iter()
                        .map(|(c, r)| (c.clone(), conv(r)))
                        .collect(),
                    appends: rules
                        .appends
                        .iter()
                        .map(|(c, r)| (c.clone(), conv(r)))
                        .collect(),
                };
                (t.name().to_string(), table)
            })
            .collect();
        let ipsets = rs
            .ipsets
            .iter()
            .map(|s| DesiredSet {
                name: s.name.clone(),
                set_type: s.set_type.clone(),
                maxelem: s.maxelem,
                members: s.members.clone(),
            })
            .collect();
        Desired { tables, ipsets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_save_output_with_foreign_rules_and_ipsets() {
        let text =
            "# Generated by iptables-save v1.8.9 (nf_tables)\n*filter\n:INPUT ACCEPT [0:0]\n\
:DOCKER - [0:0]\n:cali-INPUT - [0:0]\n\
-A INPUT -m comment --comment \"cali:Cz_u1IQiXIMmKD4c\" -j cali-INPUT\n\
-A INPUT -m physdev --physdev-is-bridged -j ACCEPT\n\
-A INPUT -j cali-old\n\
-A cali-INPUT -m comment --comment cali:abc-_9 -m comment --comment \"x y\" -j ACCEPT\n\
COMMIT\ncreate cali40s:a hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12\n\
add cali40s:a 10.0.0.1\nadd cali40s:a 10.1.0.0/16\n";
        let c = parse_dump(text, "t").unwrap();
        let f = &c.tables["filter"];
        assert_eq!(f.chains["INPUT"].policy.as_deref(), Some("ACCEPT"));
        assert_eq!(f.chains["DOCKER"].policy, None);
        let input = &f.chains["INPUT"].rules;
        assert_eq!(input[0].hash.as_deref(), Some("Cz_u1IQiXIMmKD4c"));
        assert_eq!(input[1].hash, None);
        assert_eq!(input[1].raw, "-m physdev --physdev-is-bridged -j ACCEPT");
        assert!(is_old_insert(&input[2].raw));
        assert!(!is_old_insert(&input[1].raw));
        assert_eq!(
            f.chains["cali-INPUT"].rules[0].hash.as_deref(),
            Some("abc-_9")
        );
        let s = &c.ipsets["cali40s:a"];
        assert_eq!(s.maxelem, 1048576);
        assert_eq!(s.set_type, "hash:net");
        assert!(s.members.contains("10.0.0.1") && s.members.contains("10.1.0.0/16"));
    }

    #[test]
    fn dump_errors_name_line_column_and_field() {
        let e = parse_dump("*filter\n:INPUT ACCEPT\n-X INPUT\nCOMMIT\n", "dump.txt").unwrap_err();
        assert_eq!(e.to_string(), "dump.txt:3:1: line: unexpected `-X`");
        let e = parse_dump("create s hash:net maxelem x\n", "d").unwrap_err();
        assert_eq!(e.to_string(), "d:1:27: maxelem: expected a number");
        let e = parse_dump("add nope 1.2.3.4\n", "d").unwrap_err();
        assert!(e.to_string().starts_with("d:1:5: add:"), "{e}");
        let e = parse_dump("*filter\n-A INPUT -j DROP\n", "d").unwrap_err();
        assert!(e.to_string().contains("COMMIT"), "{e}");
    }

    #[test]
    fn members_normalise_like_ipset_save() {
        assert_eq!(normalise_member("hash:net", "10.0.0.1/32"), "10.0.0.1");
        assert_eq!(normalise_member("hash:net", "10.0.0.0/24"), "10.0.0.0/24");
        assert_eq!(
            normalise_member("hash:ip,port", "10.0.0.1,tcp:80"),
            "10.0.0.1,tcp:80"
        );
    }
}

//! nft-backend: IR → `nft -f` text (the iptables chain graph as one nftables table).
//!
//! Pure: no processes, no I/O. [`render`] asks `iptables-backend` for the node's chain graph
//! (there is only one graph builder in Brindle) and translates it into nftables as
//! `felix-iptables.md` §7 describes: one `ip calico` table, every chain prefixed with its layer
//! (`raw-`, `mangle-`, `nat-`, `filter-`), base chains with the §7 hooks and priorities carrying
//! the hook rules, ipsets as nftables sets (`:` → `-`), and the workload dispatch trees replaced
//! by two verdict maps. Rule hashes are chained per chain as in §5.1 over the nft rule body.
//! Anything that cannot be translated is an [`NftError`] naming the chain and rule.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use iptables_backend::{Ruleset, Table};
use policy_ir::ir::NodeIr;

pub mod listing;
mod translate;

pub use translate::translate_rule_text;

/// Name of Brindle's table (family `ip`).
pub const TABLE: &str = "calico";
/// Longest rule comment nftables stores.
pub const MAX_COMMENT: usize = 128;
/// Verdict map (and chain) dispatching packets from workload interfaces.
pub const FROM_WL_DISPATCH: &str = "filter-cali-from-wl-dispatch";
/// Verdict map (and chain) dispatching packets to workload interfaces.
pub const TO_WL_DISPATCH: &str = "filter-cali-to-wl-dispatch";

/// Why a ruleset could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NftError {
    /// One rule uses a construct with no nftables translation here.
    #[error("{layer} chain `{chain}`, rule {index} (cali:{hash}) `{rule}`: {message}")]
    Rule {
        layer: &'static str,
        chain: String,
        /// 1-based position in the chain.
        index: usize,
        hash: String,
        rule: String,
        message: String,
    },
    /// A name that nftables cannot take as an unquoted identifier.
    #[error("{what} name `{name}` is not a valid nftables identifier")]
    Name { what: &'static str, name: String },
    /// An ipset that cannot become an nftables set.
    #[error("set `{set}`: {message}")]
    Set { set: String, message: String },
    /// A workload dispatch tree not of the shape §4.1 describes.
    #[error("dispatch chain `{chain}`: {message}")]
    Dispatch { chain: String, message: String },
    /// A hook rule in a kernel chain §7 has no base chain for.
    #[error("no nftables base chain for {layer} {chain}")]
    BaseChain { layer: &'static str, chain: String },
}

/// Hook, type and priority of a base chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// `filter`, `nat` or `route`.
    pub chain_type: &'static str,
    /// `prerouting`, `input`, `forward`, `output`, `postrouting`.
    pub hook: &'static str,
    /// Priority as written (`raw`, `mangle`, `dstnat`, `srcnat + 10`, `filter`, or a number).
    pub priority: &'static str,
}

/// One nftables rule. `hash` is the 16-character chained hash (without `cali:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    pub hash: String,
    /// Extra comments (sanitised), written after `cali:<hash>;`.
    pub comments: Vec<String>,
    /// The rule body: match clauses, `counter`, action (what is hashed).
    pub body: String,
}

impl NftRule {
    /// The comment text: `cali:<hash>;` then the comments, at most [`MAX_COMMENT`] bytes.
    pub fn comment(&self) -> String {
        let mut c = format!("cali:{};", self.hash);
        for (i, x) in self.comments.iter().enumerate() {
            c.push_str(if i == 0 { " " } else { "; " });
            c.push_str(x);
        }
        c.truncate(MAX_COMMENT);
        c
    }

    /// `<body> comment "<comment>"`.
    pub fn text(&self) -> String {
        format!("{} comment \"{}\"", self.body, self.comment())
    }
}

/// One chain of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftChain {
    /// Layer-prefixed name (`filter-cali-FORWARD`).
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<NftRule>,
}

/// Element type of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// `ipv4_addr` with `flags interval` (from `hash:net`).
    Net,
    /// `ipv4_addr . inet_proto . inet_service` (from `hash:ip,port`).
    IpProtoPort,
    /// `inet_service` with `flags interval`: a port list shared by several rules (`tcp dport
    /// @cali-ports-80_443`), used instead of Felix's anonymous `{ 80, 443 }` in rulesets of more
    /// than [`SHARED_PORT_SETS_ABOVE`] rules: the kernel names each anonymous set by scanning
    /// the table's sets, so loading grows with their square (a 50,000-rule node with 20,000
    /// anonymous port sets took 50 s in `nft -f`, 1.2 s with 50 shared sets).
    Ports,
}

/// Rulesets with more rules than this name their multi-entry port lists as shared sets
/// ([`SetKind::Ports`]); smaller ones keep Felix's anonymous sets byte for byte.
pub const SHARED_PORT_SETS_ABOVE: usize = 5_000;

/// One named set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftSet {
    /// nft name: the ipset name with `:` replaced by `-`.
    pub name: String,
    /// The ipset it stands for (empty for [`SetKind::Ports`], which have none).
    pub ipset: String,
    pub kind: SetKind,
    /// Elements in nft syntax (`10.0.0.0/8`, `10.0.0.1 . tcp . 8080`); CIDRs are aggregated.
    pub elements: Vec<String>,
}

/// One `ifname : verdict` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftMap {
    pub name: String,
    /// (interface, verdict) — e.g. (`cali1234`, `goto filter-cali-fw-cali1234`).
    pub elements: Vec<(String, String)>,
}

/// Everything one node's nftables dataplane needs: one `ip calico` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NftRuleset {
    chains: BTreeMap<String, NftChain>,
    sets: Vec<NftSet>,
    maps: Vec<NftMap>,
}

impl NftRuleset {
    /// All chains by nft name.
    pub fn chains(&self) -> &BTreeMap<String, NftChain> {
        &self.chains
    }

    pub fn chain(&self, name: &str) -> Option<&NftChain> {
        self.chains.get(name)
    }

    /// Rules of one chain (empty if the chain does not exist).
    pub fn rules(&self, chain: &str) -> &[NftRule] {
        self.chains.get(chain).map(|c| &c.rules[..]).unwrap_or(&[])
    }

    pub fn sets(&self) -> &[NftSet] {
        &self.sets
    }

    pub fn maps(&self) -> &[NftMap] {
        &self.maps
    }

    /// Total number of rules over all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }

    /// A complete `nft -f` script that atomically replaces Brindle's table: it creates the table
    /// if missing, deletes it, and declares it again with chains, sets, maps and rules. One
    /// `nft -f` run is one transaction, so loading it never leaves a half-written table, and
    /// loading it twice gives the same state.
    pub fn payload(&self) -> String {
        let size: usize = self
            .chains
            .values()
            .flat_map(|c| c.rules.iter())
            .map(|r| r.body.len() + 80 + 40)
            .sum::<usize>()
            + self
                .sets
                .iter()
                .map(|s| s.elements.iter().map(|e| e.len() + 2).sum::<usize>() + 120)
                .sum::<usize>();
        let mut out = String::with_capacity(size + 4096);
        out.push_str("#!/usr/sbin/nft -f\n# Generated by brindle\n");
        let _ = writeln!(out, "table ip {TABLE}");
        let _ = writeln!(out, "delete table ip {TABLE}");
        let _ = writeln!(out, "add table ip {TABLE}");
        let ordered = self.ordered_chains();
        for c in &ordered {
            match &c.base {
                Some(b) => {
                    let _ = writeln!(
                        out,
                        "add chain ip {TABLE} {} {{ type {} hook {} priority {} ; policy accept ; }}",
                        c.name, b.chain_type, b.hook, b.priority
                    );
                }
                None => {
                    let _ = writeln!(out, "add chain ip {TABLE} {}", c.name);
                }
            }
        }
        for s in &self.sets {
            let decl = match s.kind {
                SetKind::Net => "type ipv4_addr ; flags interval ; auto-merge ;",
                SetKind::IpProtoPort => "type ipv4_addr . inet_proto . inet_service ;",
                SetKind::Ports => "type inet_service ; flags interval ;",
            };
            let _ = writeln!(out, "add set ip {TABLE} {} {{ {decl} }}", s.name);
            for chunk in s.elements.chunks(4096) {
                let _ = writeln!(
                    out,
                    "add element ip {TABLE} {} {{ {} }}",
                    s.name,
                    chunk.join(", ")
                );
            }
        }
        for m in &self.maps {
            let _ = writeln!(
                out,
                "add map ip {TABLE} {} {{ type ifname : verdict ; }}",
                m.name
            );
            for chunk in m.elements.chunks(4096) {
                let els: Vec<String> = chunk
                    .iter()
                    .map(|(k, v)| format!("\"{k}\" : {v}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "add element ip {TABLE} {} {{ {} }}",
                    m.name,
                    els.join(", ")
                );
            }
        }
        for c in &ordered {
            for r in &c.rules {
                let _ = writeln!(
                    out,
                    "add rule ip {TABLE} {} {} comment \"{}\"",
                    c.name,
                    r.body,
                    r.comment()
                );
            }
        }
        out
    }

    /// An `nft -f` script removing Brindle's table (creating it first so it never fails).
    pub fn delete_payload() -> String {
        format!("table ip {TABLE}\ndelete table ip {TABLE}\n")
    }

    /// Base chains first (raw, mangle, nat, filter; hook order), then the others by name.
    fn ordered_chains(&self) -> Vec<&NftChain> {
        let mut base: Vec<&NftChain> = self.chains.values().filter(|c| c.base.is_some()).collect();
        base.sort_by_key(|c| base_order(&c.name));
        base.extend(self.chains.values().filter(|c| c.base.is_none()));
        base
    }

    /// A human-readable view: each chain with its rules.
    pub fn readable(&self) -> String {
        let mut out = String::new();
        for c in self.ordered_chains() {
            let _ = writeln!(out, "{} ({} rules)", c.name, c.rules.len());
            for (i, r) in c.rules.iter().enumerate() {
                let _ = writeln!(out, "  {:>3}. {}", i + 1, r.text());
            }
        }
        out
    }
}

fn base_order(name: &str) -> (usize, usize) {
    let (layer, kernel) = name.split_once('-').unwrap_or((name, ""));
    let l = ["raw", "mangle", "nat", "filter"]
        .iter()
        .position(|x| *x == layer)
        .unwrap_or(9);
    let k = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
        .iter()
        .position(|x| *x == kernel)
        .unwrap_or(9);
    (l, k)
}

/// The §7 base chain of a kernel chain in a layer.
pub fn base_chain(table: Table, kernel_chain: &str) -> Option<BaseChain> {
    let (chain_type, priority) = match (table, kernel_chain) {
        (Table::Raw, "PREROUTING" | "OUTPUT") => ("filter", "raw"),
        (Table::Mangle, "OUTPUT") => ("route", "mangle"),
        (Table::Mangle, "PREROUTING" | "INPUT" | "FORWARD" | "POSTROUTING") => ("filter", "mangle"),
        (Table::Nat, "PREROUTING") => ("nat", "dstnat"),
        // nft 1.0 only accepts the symbolic dstnat/srcnat at prerouting/postrouting; the same
        // numbers are written out elsewhere.
        (Table::Nat, "INPUT") => ("nat", "-100"),
        (Table::Nat, "OUTPUT") => ("nat", "110"),
        (Table::Nat, "POSTROUTING") => ("nat", "srcnat + 10"),
        (Table::Filter, "INPUT" | "FORWARD" | "OUTPUT") => ("filter", "filter"),
        _ => return None,
    };
    let hook = match kernel_chain {
        "PREROUTING" => "prerouting",
        "INPUT" => "input",
        "FORWARD" => "forward",
        "OUTPUT" => "output",
        "POSTROUTING" => "postrouting",
        _ => return None,
    };
    Some(BaseChain {
        chain_type,
        hook,
        priority,
    })
}

/// The nft name of an iptables chain in a layer: `<layer>-<chain>`.
pub fn chain_name(table: Table, chain: &str) -> String {
    format!("{}-{chain}", table.name())
}

/// The nft name of an ipset: `:` replaced by `-`.
pub fn set_name(ipset: &str) -> String {
    ipset.replace(':', "-")
}

/// Whether nft's scanner reads `s` as one unquoted identifier.
pub fn is_identifier(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && it.all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c))
        && s.len() <= 255
}

/// Chained rule hashes over nft rule bodies (§5.1, nft variant): `h0 = SHA-224(chain)`,
/// `h_i = SHA-224(h_{i-1} || body_i)`, 16 characters of unpadded base64url.
pub fn rule_hashes<'a, I>(chain: &str, bodies: I) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    iptables_backend::hash::rule_hashes(chain, bodies)
}

/// Render a node's IR as one nftables table.
pub fn render(ir: &NodeIr) -> Result<NftRuleset, NftError> {
    translate_ruleset(&iptables_backend::render(ir))
}

/// Translate an iptables-backend ruleset into nftables.
pub fn translate_ruleset(rs: &Ruleset) -> Result<NftRuleset, NftError> {
    translate::translate(rs)
}

#[cfg(test)]
mod tests;

//! iptables rule text (as iptables-backend renders it) → nftables rule bodies, and the whole
//! ruleset → [`NftRuleset`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::Ipv4Net;
use iptables_backend::save::{parse_rule, Match, SetDir, Target};
use iptables_backend::{Rule, Ruleset, Table, TableRules};

use crate::{
    base_chain, chain_name, is_identifier, rule_hashes, set_name, NftChain, NftError, NftMap,
    NftRule, NftRuleset, NftSet, SetKind, FROM_WL_DISPATCH, TO_WL_DISPATCH,
};

/// ipset name → (nft set name, kind).
type SetIndex = BTreeMap<String, (String, SetKind)>;

/// Options `save::parse_rule` accepts but skips, whose meaning this translation would lose.
const LOSSY_OPTIONS: &[&str] = &[
    "--loose",
    "--accept-local",
    "--limit-iface-out",
    "--limit-iface-in",
    "--random-fully",
    "--random",
    "--persistent",
    "--log-uid",
    "--log-tcp-sequence",
    "--log-tcp-options",
    "--log-ip-options",
    "--notrack",
    "--limit",
    "--limit-burst",
    "--reject-with",
    "--to-ports",
    "--zone",
    "--set-dscp",
    "--set-dscp-class",
    "--mode",
    "--every",
    "--packet",
    "--probability",
];

/// `-m` modules with a translation.
const MODULES: &[&str] = &[
    "comment",
    "mark",
    "conntrack",
    "state",
    "set",
    "multiport",
    "icmp",
    "rpfilter",
    "addrtype",
    "tcp",
    "udp",
];

/// Shell-style tokens (double quotes, backslash escapes) with 1-based columns.
fn tokenize(text: &str) -> Result<Vec<(String, usize)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut tok = String::new();
        while i < chars.len() && !chars[i].is_whitespace() {
            if chars[i] == '"' {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quoted string".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') if i + 1 < chars.len() => {
                            tok.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(c) => {
                            tok.push(*c);
                            i += 1;
                        }
                    }
                }
            } else {
                tok.push(chars[i]);
                i += 1;
            }
        }
        out.push((tok, start + 1));
    }
    Ok(out)
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        33 => "dccp".into(),
        n => n.to_string(),
    }
}

fn net_text(n: &Ipv4Net) -> String {
    if n.prefix_len() == 32 {
        n.addr().to_string()
    } else {
        n.trunc().to_string()
    }
}

fn hex0(v: u32) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

fn iface_text(name: &str) -> Result<String, String> {
    let (base, wild) = match name.strip_suffix('+') {
        Some(b) => (b, true),
        None => (name, false),
    };
    if base.is_empty()
        || base.len() > 15
        || !base
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"\\*+".contains(c))
    {
        return Err(format!("interface name `{name}` cannot be written for nft"));
    }
    Ok(if wild {
        format!("\"{base}*\"")
    } else {
        format!("\"{base}\"")
    })
}

fn port_items(ranges: &[(u16, u16)]) -> Vec<String> {
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect()
}

/// How port lists of more than one entry are written: Felix's anonymous sets, or (in large
/// rulesets, see [`SetKind::Ports`]) shared named sets whose name spells the list
/// (`cali-ports-80_8000-8100`), so the same list is always the same set.
#[derive(Default)]
struct PortSets {
    shared: bool,
    sets: RefCell<BTreeMap<String, Vec<String>>>,
}

impl PortSets {
    /// The match operand for `ranges`: the port, `{ a, b-c }`, or `@` and the list's set.
    fn operand(&self, ranges: &[(u16, u16)]) -> String {
        let items = port_items(ranges);
        if items.len() == 1 {
            return items[0].clone();
        }
        if !self.shared {
            return format!("{{ {} }}", items.join(", "));
        }
        let name = format!("cali-ports-{}", items.join("_"));
        self.sets.borrow_mut().entry(name.clone()).or_insert(items);
        format!("@{name}")
    }

    fn into_sets(self) -> impl Iterator<Item = NftSet> {
        self.sets
            .into_inner()
            .into_iter()
            .map(|(name, elements)| NftSet {
                name,
                ipset: String::new(),
                kind: SetKind::Ports,
                elements,
            })
    }
}

fn ct_states(states: &[String], neg: bool) -> Result<String, String> {
    let up: Vec<String> = states.iter().map(|s| s.to_ascii_uppercase()).collect();
    let status: Vec<&str> = up
        .iter()
        .filter_map(|s| match s.as_str() {
            "DNAT" => Some("dnat"),
            "SNAT" => Some("snat"),
            _ => None,
        })
        .collect();
    if !status.is_empty() {
        if status.len() != up.len() || status.len() > 1 {
            return Err(format!("conntrack states `{}`", states.join(",")));
        }
        // `ct status` is a bit field: test the bit, not the whole value.
        return Ok(if neg {
            format!("ct status & {} == 0", status[0])
        } else {
            format!("ct status {}", status[0])
        });
    }
    let mut names = Vec::new();
    for s in &up {
        match s.as_str() {
            "NEW" | "ESTABLISHED" | "RELATED" | "INVALID" | "UNTRACKED" => {
                names.push(s.to_ascii_lowercase())
            }
            _ => return Err(format!("conntrack state `{s}`")),
        }
    }
    Ok(if neg {
        if names.len() == 1 {
            format!("ct state & {} == 0", names[0])
        } else {
            format!("ct state & ({}) == 0", names.join(" | "))
        }
    } else {
        format!("ct state {}", names.join(","))
    })
}

fn addr_type(t: &str) -> Result<String, String> {
    let l = t.to_ascii_lowercase();
    match l.as_str() {
        "local" | "unicast" | "broadcast" | "anycast" | "multicast" | "blackhole"
        | "unreachable" | "prohibit" => Ok(l),
        _ => Err(format!("address type `{t}`")),
    }
}

/// Translation of one rule, given the layer, the chains that exist in it and the sets.
struct RuleCx<'a> {
    layer: Table,
    chains: &'a BTreeSet<String>,
    sets: &'a SetIndex,
    port_sets: &'a PortSets,
}

impl RuleCx<'_> {
    fn target_chain(&self, c: &str) -> Result<String, String> {
        if !self.chains.contains(c) {
            return Err(format!("target chain `{c}` does not exist in this layer"));
        }
        Ok(chain_name(self.layer, c))
    }

    /// `matches` and `action` of an iptables rule → nft rule body.
    fn body(&self, matches: &str, action: &str) -> Result<String, String> {
        let mut text = String::with_capacity(matches.len() + action.len() + 1);
        text.push_str(matches);
        if !action.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(action);
        }
        let tokens = tokenize(&text)?;
        let mut validmark = false;
        let mut rpfilter = false;
        let mut invert = false;
        for (k, (t, _)) in tokens.iter().enumerate() {
            if LOSSY_OPTIONS.contains(&t.as_str()) || t.starts_with("--nflog") {
                return Err(format!("option `{t}` has no nftables translation here"));
            }
            match t.as_str() {
                "-m" | "--match" => {
                    let m = tokens.get(k + 1).map(|x| x.0.as_str()).unwrap_or("");
                    if !MODULES.contains(&m) {
                        return Err(format!("match module `{m}` has no nftables translation"));
                    }
                    rpfilter |= m == "rpfilter";
                }
                "--validmark" => validmark = true,
                "--invert" => invert = true,
                _ => {}
            }
        }
        if rpfilter && !invert {
            return Err("rpfilter without --invert".into());
        }
        let parsed = parse_rule(&tokens, 1, text.clone()).map_err(|e| e.to_string())?;
        let mut parts: Vec<String> = Vec::new();
        let mut proto: Option<u8> = None;
        for m in &parsed.matches {
            parts.push(self.match_text(m, &mut proto, validmark)?);
        }
        let act = self.action_text(&parsed.target)?;
        let mut body = parts.join(" ");
        match act {
            Some(a) => {
                if !body.is_empty() {
                    body.push(' ');
                }
                body.push_str("counter ");
                body.push_str(&a);
            }
            None if body.is_empty() => body.push_str("continue"),
            None => {}
        }
        Ok(body)
    }

    fn match_text(
        &self,
        m: &Match,
        proto: &mut Option<u8>,
        validmark: bool,
    ) -> Result<String, String> {
        let ne = |neg: bool| if neg { "!= " } else { "" };
        Ok(match m {
            Match::Protocol { neg, proto: p } => {
                if *p == 0 {
                    return Err("protocol `all` as a match".into());
                }
                if !neg {
                    *proto = Some(*p);
                }
                format!("meta l4proto {}{}", ne(*neg), proto_name(*p))
            }
            Match::Source { neg, net } => format!("ip saddr {}{}", ne(*neg), net_text(net)),
            Match::Destination { neg, net } => format!("ip daddr {}{}", ne(*neg), net_text(net)),
            Match::InInterface { neg, name } => {
                format!("iifname {}{}", ne(*neg), iface_text(name)?)
            }
            Match::OutInterface { neg, name } => {
                format!("oifname {}{}", ne(*neg), iface_text(name)?)
            }
            Match::Mark { neg, value, mask } => {
                let op = if *neg { "!=" } else { "==" };
                if *mask == u32::MAX {
                    format!("meta mark {op} {}", hex0(*value))
                } else {
                    format!("meta mark & {} {op} {}", hex0(*mask), hex0(*value))
                }
            }
            Match::Conntrack { neg, states } => ct_states(states, *neg)?,
            Match::Set { neg, name, dirs } => {
                let (nft, kind) = self
                    .sets
                    .get(name)
                    .ok_or_else(|| format!("set `{name}` is not declared"))?;
                let side = |d: &SetDir| match d {
                    SetDir::Src => ("saddr", "sport"),
                    SetDir::Dst => ("daddr", "dport"),
                };
                let key = match (kind, &dirs[..]) {
                    (SetKind::Net, [d]) => format!("ip {}", side(d).0),
                    (SetKind::IpProtoPort, [a, b]) if a == b => {
                        let (addr, port) = side(a);
                        format!("ip {addr} . meta l4proto . th {port}")
                    }
                    _ => {
                        return Err(format!(
                            "set `{name}` ({kind:?}) matched with {} direction(s)",
                            dirs.len()
                        ))
                    }
                };
                format!("{key} {}@{nft}", ne(*neg))
            }
            Match::Ports {
                neg,
                source,
                ranges,
            } => {
                let l4 = match *proto {
                    Some(6) => "tcp",
                    Some(17) => "udp",
                    Some(132) => "sctp",
                    Some(136 | 33) => "th",
                    _ => return Err("port match without a tcp/udp/sctp protocol".into()),
                };
                let dir = if *source { "sport" } else { "dport" };
                format!("{l4} {dir} {}{}", ne(*neg), self.port_sets.operand(ranges))
            }
            Match::Icmp {
                neg,
                icmp_type,
                code,
            } => {
                if *icmp_type == 255 {
                    return Err("ICMP type `any`".into());
                }
                match (code, neg) {
                    (None, false) => format!("icmp type {icmp_type}"),
                    (None, true) => format!("icmp type != {icmp_type}"),
                    (Some(c), false) => format!("icmp type {icmp_type} icmp code {c}"),
                    (Some(c), true) => format!("icmp type . icmp code != {{ {icmp_type} . {c} }}"),
                }
            }
            Match::Rpfilter { .. } => {
                // `-m rpfilter --invert`: the reverse-path lookup finds no output interface.
                if validmark {
                    "fib saddr . mark . iif oif 0".into()
                } else {
                    "fib saddr . iif oif 0".into()
                }
            }
            Match::AddrType {
                neg,
                source,
                addr_type: t,
            } => format!(
                "fib {} type {}{}",
                if *source { "saddr" } else { "daddr" },
                ne(*neg),
                addr_type(t)?
            ),
            Match::Always(m) => return Err(format!("match `{m}` has no nftables translation")),
        })
    }

    fn action_text(&self, t: &Target) -> Result<Option<String>, String> {
        Ok(Some(match t {
            Target::None => return Ok(None),
            Target::Accept => "accept".into(),
            Target::Drop => "drop".into(),
            Target::Reject => "reject".into(),
            Target::Return => "return".into(),
            Target::Jump(c) => format!("jump {}", self.target_chain(c)?),
            Target::Goto(c) => format!("goto {}", self.target_chain(c)?),
            Target::Mark { value, mask, xor } => {
                let (v, m) = (*value, *mask);
                if m == 0 {
                    return Err("MARK without a mark value".into());
                }
                if m == u32::MAX && !xor {
                    format!("meta mark set {}", hex0(v))
                } else if v == m {
                    format!("meta mark set mark or {v:#x}")
                } else if v == 0 {
                    format!("meta mark set mark & {:#x}", !m)
                } else if *xor || v & !m == 0 {
                    format!("meta mark set mark & {:#x} ^ {v:#x}", !m)
                } else {
                    format!("meta mark set mark & {:#x} | {v:#x}", !m)
                }
            }
            Target::Log { prefix } => {
                if prefix.contains(['"', '\\']) || prefix.chars().any(|c| c.is_control()) {
                    return Err(format!("log prefix `{prefix}` cannot be quoted"));
                }
                format!("log prefix \"{prefix}\" level info")
            }
            Target::Masquerade => "masquerade".into(),
            Target::Snat(a) if !a.is_empty() => format!("snat to {a}"),
            Target::Dnat(a) if !a.is_empty() => format!("dnat to {a}"),
            Target::Continue(x) if x == "NOTRACK" => "notrack".into(),
            other => {
                return Err(format!(
                    "target `{}` has no nftables translation",
                    other.describe()
                ))
            }
        }))
    }
}

/// Translate one iptables rule's match and action fragments into an nft rule body, for tests
/// and tools. `chains` are the iptables chain names of `layer` that jumps may target; `sets` are
/// the declared sets. Port lists are written as Felix does (`{ 80, 443 }`).
pub fn translate_rule_text(
    layer: Table,
    matches: &str,
    action: &str,
    chains: &BTreeSet<String>,
    sets: &[NftSet],
) -> Result<String, String> {
    let index: SetIndex = sets
        .iter()
        .map(|s| (s.ipset.clone(), (s.name.clone(), s.kind)))
        .collect();
    RuleCx {
        layer,
        chains,
        sets: &index,
        port_sets: &PortSets::default(),
    }
    .body(matches, action)
}

fn sanitize(c: &str) -> String {
    c.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || " _@%+=:,./-".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect()
}

fn sets(rs: &Ruleset) -> Result<Vec<NftSet>, NftError> {
    let mut out: Vec<NftSet> = Vec::new();
    let mut names = BTreeSet::new();
    for s in &rs.ipsets {
        let name = set_name(&s.name);
        let err = |message: String| NftError::Set {
            set: s.name.clone(),
            message,
        };
        if !is_identifier(&name) {
            return Err(NftError::Name { what: "set", name });
        }
        if !names.insert(name.clone()) {
            return Err(err(format!("nft name `{name}` is taken by another set")));
        }
        let (kind, elements) = match s.set_type.as_str() {
            "hash:net" | "hash:ip" => {
                let nets = s
                    .members
                    .iter()
                    .map(|m| {
                        crate::translate::parse_net(m)
                            .ok_or_else(|| err(format!("member `{m}` is not an IPv4 address")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let els = Ipv4Net::aggregate(&nets).iter().map(net_text).collect();
                (SetKind::Net, els)
            }
            "hash:ip,port" => {
                let els = s
                    .members
                    .iter()
                    .map(|m| {
                        let bad = || err(format!("member `{m}` is not `ip,proto:port`"));
                        let (ip, pp) = m.split_once(',').ok_or_else(bad)?;
                        let (proto, port) = pp.split_once(':').ok_or_else(bad)?;
                        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad())?;
                        let port: u16 = port.parse().map_err(|_| bad())?;
                        if !matches!(proto, "tcp" | "udp" | "sctp") {
                            return Err(bad());
                        }
                        Ok(format!("{ip} . {proto} . {port}"))
                    })
                    .collect::<Result<Vec<_>, NftError>>()?;
                let mut els = els;
                els.sort();
                els.dedup();
                (SetKind::IpProtoPort, els)
            }
            other => return Err(err(format!("ipset type `{other}` has no nftables form"))),
        };
        out.push(NftSet {
            name,
            ipset: s.name.clone(),
            kind,
            elements,
        });
    }
    Ok(out)
}

pub(crate) fn parse_net(s: &str) -> Option<Ipv4Net> {
    if s.contains('/') {
        s.parse::<Ipv4Net>().ok().map(|n| n.trunc())
    } else {
        s.parse::<std::net::Ipv4Addr>()
            .ok()
            .and_then(|a| Ipv4Net::new(a, 32).ok())
    }
}

fn is_unknown_interface_drop(r: &Rule) -> bool {
    r.matches.is_empty() && r.action == "--jump DROP" && r.comments == ["Unknown interface"]
}

/// Map elements (interface, endpoint chain) and the child chains they replace.
type Flattened = (Vec<(String, String)>, Vec<String>);

/// Flatten Felix's shallow dispatch tree rooted at `root` into (interface, endpoint chain)
/// pairs; returns them with the names of the child chains the map replaces.
fn flatten_dispatch(t: &TableRules, root: &str, flag: &str) -> Result<Flattened, NftError> {
    let err = |chain: &str, message: String| NftError::Dispatch {
        chain: chain.to_string(),
        message,
    };
    let mut elements: Vec<(String, String)> = Vec::new();
    let mut children = Vec::new();
    let mut walk = |chain: &str, allow_children: bool, children: &mut Vec<String>| {
        let rules = t
            .chains
            .get(chain)
            .ok_or_else(|| err(chain, "missing".into()))?;
        let Some((last, body)) = rules.split_last() else {
            return Err(err(chain, "no \"Unknown interface\" drop rule".into()));
        };
        if !is_unknown_interface_drop(last) {
            return Err(err(
                chain,
                "last rule is not the \"Unknown interface\" drop".into(),
            ));
        }
        let mut subs = Vec::new();
        for r in body {
            let m: Vec<&str> = r.matches.split_whitespace().collect();
            let a: Vec<&str> = r.action.split_whitespace().collect();
            let (name, target) = match (&m[..], &a[..]) {
                ([f, name], ["--goto", target]) if *f == flag && r.comments.is_empty() => {
                    (*name, *target)
                }
                _ => {
                    return Err(err(
                        chain,
                        format!("rule cali:{} is not an interface goto", r.hash),
                    ))
                }
            };
            if let Some(prefix) = name.strip_suffix('+') {
                if !allow_children || !target.starts_with(&format!("{root}-")) {
                    return Err(err(
                        chain,
                        format!("prefix rule `{prefix}+` does not lead to a child of {root}"),
                    ));
                }
                subs.push(target.to_string());
            } else {
                elements.push((name.to_string(), target.to_string()));
            }
        }
        children.extend(subs.iter().cloned());
        Ok(subs)
    };
    let subs = walk(root, true, &mut children)?;
    for c in subs {
        walk(&c, false, &mut Vec::new())?;
    }
    let mut seen = BTreeSet::new();
    for (n, _) in &elements {
        if !seen.insert(n.clone()) {
            return Err(err(root, format!("interface `{n}` appears twice")));
        }
    }
    elements.sort();
    Ok((elements, children))
}

fn hashed(name: &str, rules: Vec<(Vec<String>, String)>) -> Vec<NftRule> {
    let hashes = rule_hashes(name, rules.iter().map(|(_, b)| b.as_str()));
    rules
        .into_iter()
        .zip(hashes)
        .map(|((comments, body), hash)| NftRule {
            hash,
            comments,
            body,
        })
        .collect()
}

pub(crate) fn translate<'a>(rs: &'a Ruleset) -> Result<NftRuleset, NftError> {
    let mut sets = sets(rs)?;
    let port_sets = PortSets {
        shared: rs.rule_count() > crate::SHARED_PORT_SETS_ABOVE,
        ..PortSets::default()
    };
    let index: SetIndex = sets
        .iter()
        .map(|s| (s.ipset.clone(), (s.name.clone(), s.kind)))
        .collect();
    let mut chains: BTreeMap<String, NftChain> = BTreeMap::new();
    let mut maps = Vec::new();
    for (&layer, t) in &rs.tables {
        let mut skip: BTreeSet<String> = BTreeSet::new();
        if layer == Table::Filter {
            for (root, flag, verb, nft) in [
                (
                    "cali-from-wl-dispatch",
                    "--in-interface",
                    "iifname",
                    FROM_WL_DISPATCH,
                ),
                (
                    "cali-to-wl-dispatch",
                    "--out-interface",
                    "oifname",
                    TO_WL_DISPATCH,
                ),
            ] {
                if !t.chains.contains_key(root) {
                    continue;
                }
                let (elements, children) = flatten_dispatch(t, root, flag)?;
                let mut map_elements = Vec::new();
                for (iface, target) in elements {
                    if !t.chains.contains_key(&target) {
                        return Err(NftError::Dispatch {
                            chain: root.into(),
                            message: format!("endpoint chain `{target}` does not exist"),
                        });
                    }
                    iface_text(&iface).map_err(|message| NftError::Dispatch {
                        chain: root.into(),
                        message,
                    })?;
                    map_elements.push((iface, format!("goto {}", chain_name(layer, &target))));
                }
                maps.push(NftMap {
                    name: nft.to_string(),
                    elements: map_elements,
                });
                skip.extend(children);
                skip.insert(root.to_string());
                let rules = vec![
                    (Vec::new(), format!("{verb} vmap @{nft}")),
                    (vec!["Unknown interface".to_string()], "counter drop".into()),
                ];
                chains.insert(
                    nft.to_string(),
                    NftChain {
                        name: nft.to_string(),
                        base: None,
                        rules: hashed(nft, rules),
                    },
                );
            }
        }
        let known: BTreeSet<String> = t
            .chains
            .keys()
            .filter(|c| !skip.contains(*c) || c.ends_with("-wl-dispatch"))
            .cloned()
            .collect();
        let cx = RuleCx {
            layer,
            chains: &known,
            sets: &index,
            port_sets: &port_sets,
        };
        // Endpoint chains repeat the same rule text many times: translate each text once.
        let mut cache: HashMap<(&'a str, &'a str), String> = HashMap::new();
        let mut translate_rules = |chain: &str, rules: &mut dyn Iterator<Item = &'a Rule>| {
            let mut out = Vec::new();
            for (i, r) in rules.enumerate() {
                let key = (r.matches.as_str(), r.action.as_str());
                let comments: Vec<String> = r.comments.iter().map(|c| sanitize(c)).collect();
                if let Some(b) = cache.get(&key) {
                    out.push((comments, b.clone()));
                    continue;
                }
                let body = cx
                    .body(&r.matches, &r.action)
                    .map_err(|message| NftError::Rule {
                        layer: layer.name(),
                        chain: chain.to_string(),
                        index: i + 1,
                        hash: r.hash.clone(),
                        rule: format!("{} {}", r.matches, r.action).trim().to_string(),
                        message,
                    })?;
                cache.insert(key, body.clone());
                out.push((comments, body));
            }
            Ok::<_, NftError>(out)
        };
        for (name, rules) in &t.chains {
            if skip.contains(name) {
                continue;
            }
            let nft = chain_name(layer, name);
            if !is_identifier(&nft) {
                return Err(NftError::Name {
                    what: "chain",
                    name: nft,
                });
            }
            let body = translate_rules(name, &mut rules.iter())?;
            chains.insert(
                nft.clone(),
                NftChain {
                    rules: hashed(&nft, body),
                    name: nft,
                    base: None,
                },
            );
        }
        // Hook rules: inserts (in order) then appends, per kernel chain.
        let mut hooks: BTreeMap<&str, Vec<&Rule>> = BTreeMap::new();
        for (k, r) in t.inserts.iter().chain(t.appends.iter()) {
            hooks.entry(k.as_str()).or_default().push(r);
        }
        for (kernel, rules) in hooks {
            let base = base_chain(layer, kernel).ok_or_else(|| NftError::BaseChain {
                layer: layer.name(),
                chain: kernel.into(),
            })?;
            let nft = chain_name(layer, kernel);
            let body = translate_rules(kernel, &mut rules.into_iter())?;
            chains.insert(
                nft.clone(),
                NftChain {
                    rules: hashed(&nft, body),
                    name: nft,
                    base: Some(base),
                },
            );
        }
    }
    sets.extend(port_sets.into_sets());
    Ok(NftRuleset { chains, sets, maps })
}

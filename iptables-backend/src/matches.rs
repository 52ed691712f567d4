//! Rendering of one `RuleIr`'s criteria into iptables match fragments (§3.3), with the project's
//! expansion strategy instead of Felix's match blocks: OR-lists (several positive CIDRs, more
//! than one 15-slot port split, named ports ORed with ports) become one iptables rule per
//! combination while the product stays small; larger positive CIDR lists and negated CIDR lists
//! with more than one entry become `hash:net` ipsets.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use policy_ir::ir::{IcmpMatch, MatchSide, PortRange, RuleIr};

use crate::hash::{ipset_name, make_unique_id};

/// Largest number of iptables rules one rule's positive CIDR lists may expand into before the
/// CIDRs are moved into ipsets.
pub const MAX_CIDR_EXPANSION: usize = 16;

/// Slots of one `-m multiport` match.
const MULTIPORT_SLOTS: usize = 15;

/// A CIDR list that had to become a set: its ID and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrSet {
    pub id: String,
    pub members: Vec<Ipv4Net>,
}

/// Result of rendering a rule's criteria.
#[derive(Debug, Default)]
pub struct RenderedMatch {
    /// One match string per alternative; the rule matches when any alternative does. Empty if
    /// the rule can never match (e.g. `notNets: [0.0.0.0/0]`).
    pub alternatives: Vec<String>,
}

pub fn cidr_set_id(nets: &[Ipv4Net]) -> String {
    let mut v: Vec<String> = nets.iter().map(|n| n.trunc().to_string()).collect();
    v.sort();
    v.dedup();
    make_unique_id("c", &v.join(","))
}

/// Split a port list into multiport groups of at most 15 slots (a range costs two).
pub fn split_ports(ports: &[PortRange]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut used = 0;
    for p in ports {
        let (text, cost) = if p.first == p.last {
            (p.first.to_string(), 1)
        } else {
            (format!("{}:{}", p.first, p.last), 2)
        };
        if used + cost > MULTIPORT_SLOTS {
            out.push(cur.join(","));
            cur.clear();
            used = 0;
        }
        cur.push(text);
        used += cost;
    }
    if !cur.is_empty() {
        out.push(cur.join(","));
    }
    out
}

fn icmp_text(m: &IcmpMatch) -> String {
    match m.code {
        Some(c) => format!("{}/{}", m.icmp_type, c),
        None => m.icmp_type.to_string(),
    }
}

fn is_catch_all(n: &Ipv4Net) -> bool {
    n.prefix_len() == 0
}

struct Side<'a> {
    net_alts: Vec<String>,
    port_alts: Vec<String>,
    m: &'a MatchSide,
}

/// Render the criteria of `r`. `set_name` maps an IR set ID to its kernel name; CIDR sets
/// created here are pushed to `sets`.
pub fn render_match(r: &RuleIr, sets: &mut BTreeMap<String, CidrSet>) -> RenderedMatch {
    // A negated catch-all can never match.
    if r.source.not_nets.iter().any(is_catch_all) || r.destination.not_nets.iter().any(is_catch_all)
    {
        return RenderedMatch::default();
    }
    let proto = r.protocol.map(|p| p.iptables_name());
    let mut src_nets: Vec<Ipv4Net> = r.source.nets.iter().map(|n| n.trunc()).collect();
    let mut dst_nets: Vec<Ipv4Net> = r.destination.nets.iter().map(|n| n.trunc()).collect();
    for v in [&mut src_nets, &mut dst_nets] {
        if v.iter().any(is_catch_all) {
            v.clear();
        }
        v.sort();
        v.dedup();
    }
    let product = src_nets.len().max(1) * dst_nets.len().max(1);
    let use_sets = product > MAX_CIDR_EXPANSION;

    let mut net_alts = |nets: &[Ipv4Net], dir: &str, flag: &str| -> Vec<String> {
        if nets.is_empty() {
            vec![String::new()]
        } else if nets.len() == 1 {
            vec![format!("{flag} {}", nets[0])]
        } else if use_sets {
            let id = cidr_set_id(nets);
            sets.entry(id.clone()).or_insert_with(|| CidrSet {
                id: id.clone(),
                members: nets.to_vec(),
            });
            vec![format!("-m set --match-set {} {dir}", ipset_name(&id))]
        } else {
            nets.iter().map(|n| format!("{flag} {n}")).collect()
        }
    };
    let src_net_alts = net_alts(&src_nets, "src", "--source");
    let dst_net_alts = net_alts(&dst_nets, "dst", "--destination");

    let port_alts = |m: &MatchSide, dir: &str, flag: &str| -> Vec<String> {
        let mut v: Vec<String> = split_ports(&m.ports)
            .into_iter()
            .map(|s| format!("-m multiport --{flag}-ports {s}"))
            .collect();
        for s in &m.named_port_sets {
            v.push(format!("-m set --match-set {} {dir},{dir}", ipset_name(s)));
        }
        if v.is_empty() {
            v.push(String::new());
        }
        v
    };
    let src = Side {
        net_alts: src_net_alts,
        port_alts: port_alts(&r.source, "src", "source"),
        m: &r.source,
    };
    let dst = Side {
        net_alts: dst_net_alts,
        port_alts: port_alts(&r.destination, "dst", "destination"),
        m: &r.destination,
    };

    // The fixed tail (negations), identical for every alternative.
    let mut tail: Vec<String> = Vec::new();
    if let Some(icmp) = &r.icmp {
        tail.push(format!("-m icmp --icmp-type {}", icmp_text(icmp)));
    }
    if let Some(p) = r.not_protocol {
        tail.push(format!("! -p {}", p.iptables_name()));
    }
    // iptables allows one `--source`/`--destination` per rule, negated or not: a single negated
    // CIDR can use the flag only when the positive nets of that side are not flags themselves.
    let positive_net_is_flag = |nets: &[Ipv4Net]| nets.len() == 1 || (nets.len() > 1 && !use_sets);
    let src_flag_taken = positive_net_is_flag(&src_nets);
    let dst_flag_taken = positive_net_is_flag(&dst_nets);
    for (side, dir, flag, pflag, flag_taken) in [
        (&src, "src", "--source", "source", src_flag_taken),
        (&dst, "dst", "--destination", "destination", dst_flag_taken),
    ] {
        let mut not_nets: Vec<Ipv4Net> = side.m.not_nets.iter().map(|n| n.trunc()).collect();
        not_nets.sort();
        not_nets.dedup();
        if not_nets.len() == 1 && !flag_taken {
            tail.push(format!("! {flag} {}", not_nets[0]));
        }
        for s in &side.m.not_ipsets {
            tail.push(format!("-m set ! --match-set {} {dir}", ipset_name(s)));
        }
        if not_nets.len() > 1 || (not_nets.len() == 1 && flag_taken) {
            let id = cidr_set_id(&not_nets);
            sets.entry(id.clone()).or_insert_with(|| CidrSet {
                id: id.clone(),
                members: not_nets.clone(),
            });
            tail.push(format!("-m set ! --match-set {} {dir}", ipset_name(&id)));
        }
        for split in split_ports(&side.m.not_ports) {
            tail.push(format!("-m multiport ! --{pflag}-ports {split}"));
        }
        for s in &side.m.not_named_port_sets {
            tail.push(format!(
                "-m set ! --match-set {} {dir},{dir}",
                ipset_name(s)
            ));
        }
    }
    if let Some(icmp) = &r.not_icmp {
        tail.push(format!("-m icmp ! --icmp-type {}", icmp_text(icmp)));
    }

    let mut alternatives = Vec::new();
    for sn in &src.net_alts {
        for sp in &src.port_alts {
            for dn in &dst.net_alts {
                for dp in &dst.port_alts {
                    let mut parts: Vec<&str> = Vec::new();
                    let p_frag = proto.as_ref().map(|p| format!("-p {p}"));
                    if let Some(p) = &p_frag {
                        parts.push(p);
                    }
                    parts.push(sn);
                    let src_sets: Vec<String> = src
                        .m
                        .ipsets
                        .iter()
                        .map(|s| format!("-m set --match-set {} src", ipset_name(s)))
                        .collect();
                    parts.extend(src_sets.iter().map(String::as_str));
                    parts.push(sp);
                    parts.push(dn);
                    let dst_sets: Vec<String> = dst
                        .m
                        .ipsets
                        .iter()
                        .map(|s| format!("-m set --match-set {} dst", ipset_name(s)))
                        .collect();
                    parts.extend(dst_sets.iter().map(String::as_str));
                    parts.push(dp);
                    parts.extend(tail.iter().map(String::as_str));
                    let text = parts
                        .into_iter()
                        .filter(|p| !p.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ");
                    alternatives.push(text);
                }
            }
        }
    }
    RenderedMatch { alternatives }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_ir::ir::{Protocol, RuleAction, RuleOrigin};

    fn rule() -> RuleIr {
        RuleIr {
            action: RuleAction::Allow,
            protocol: None,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            source: MatchSide::default(),
            destination: MatchSide::default(),
            origin: RuleOrigin {
                index: 0,
                text: String::new(),
            },
        }
    }

    fn pr(first: u16, last: u16) -> PortRange {
        PortRange { first, last }
    }

    #[test]
    fn port_split_15_slots() {
        let ports: Vec<PortRange> = (1..=8).map(|i| pr(i * 10, i * 10 + 1)).collect();
        let s = split_ports(&ports);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], "10:11,20:21,30:31,40:41,50:51,60:61,70:71");
        assert_eq!(s[1], "80:81");
        let singles: Vec<PortRange> = (1..=15).map(|i| pr(i, i)).collect();
        assert_eq!(split_ports(&singles).len(), 1);
        let singles: Vec<PortRange> = (1..=16).map(|i| pr(i, i)).collect();
        assert_eq!(
            split_ports(&singles),
            ["1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", "16"]
        );
    }

    #[test]
    fn fragment_order_and_expansion() {
        let mut r = rule();
        r.protocol = Some(Protocol::Tcp);
        r.source.nets = vec![
            "10.0.0.0/24".parse().unwrap(),
            "10.0.1.0/24".parse().unwrap(),
        ];
        r.source.ipsets = vec!["s:abc".into()];
        r.destination.ports = vec![pr(80, 80), pr(443, 443)];
        r.destination.not_nets = vec!["10.9.0.0/16".parse().unwrap()];
        let mut sets = BTreeMap::new();
        let m = render_match(&r, &mut sets);
        assert_eq!(
            m.alternatives,
            [
                "-p tcp --source 10.0.0.0/24 -m set --match-set cali40s:abc src -m multiport --destination-ports 80,443 ! --destination 10.9.0.0/16",
                "-p tcp --source 10.0.1.0/24 -m set --match-set cali40s:abc src -m multiport --destination-ports 80,443 ! --destination 10.9.0.0/16",
            ]
        );
        assert!(sets.is_empty());
    }

    #[test]
    fn many_cidrs_and_negated_lists_become_sets() {
        let mut r = rule();
        r.source.nets = (0..20)
            .map(|i| format!("10.{i}.0.0/16").parse().unwrap())
            .collect();
        r.destination.not_nets = vec![
            "192.168.0.0/16".parse().unwrap(),
            "172.16.0.0/12".parse().unwrap(),
        ];
        let mut sets = BTreeMap::new();
        let m = render_match(&r, &mut sets);
        assert_eq!(m.alternatives.len(), 1);
        assert_eq!(sets.len(), 2);
        let a = &m.alternatives[0];
        assert!(a.starts_with("-m set --match-set cali40c:"), "{a}");
        assert!(
            a.contains(" dst") && a.contains("! --match-set cali40c:"),
            "{a}"
        );
    }

    #[test]
    fn negated_catch_all_never_matches() {
        let mut r = rule();
        r.source.not_nets = vec!["0.0.0.0/0".parse().unwrap()];
        assert!(render_match(&r, &mut BTreeMap::new())
            .alternatives
            .is_empty());
    }

    #[test]
    fn named_ports_or_ports() {
        let mut r = rule();
        r.protocol = Some(Protocol::Tcp);
        r.destination.ports = vec![pr(8080, 8080)];
        r.destination.named_port_sets = vec!["n:xyz".into()];
        let m = render_match(&r, &mut BTreeMap::new());
        assert_eq!(
            m.alternatives,
            [
                "-p tcp -m multiport --destination-ports 8080",
                "-p tcp -m set --match-set cali40n:xyz dst,dst"
            ]
        );
    }
}

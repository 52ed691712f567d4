//! Translation validation against the IR's own semantics: for random node IRs and random
//! packets, the simulator run over the *rendered text* gives the verdict that evaluating the IR
//! directly (tiers, policies, Pass, Log, profiles, default drops) gives.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use iptables_backend::save::parse_save;
use iptables_backend::sim::{IpSets, Packet, PathKind, SimVerdict, Simulator};
use iptables_backend::{graph, render};
use policy_ir::ir::*;
use proptest::prelude::*;

const NETS: [&str; 8] = [
    "10.0.0.0/8",
    "10.0.0.0/24",
    "10.0.0.1/32",
    "10.0.0.2/31",
    "10.0.1.0/24",
    "192.168.0.0/16",
    "0.0.0.0/0",
    "10.0.0.4/30",
];

fn ep_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i as u8 + 1)
}

const PROTOS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp];

fn net_list() -> impl Strategy<Value = Vec<Ipv4Net>> {
    prop_oneof![
        3 => Just(vec![]),
        2 => prop::collection::vec(prop::sample::select(&NETS[..]), 1..4)
            .prop_map(|v| v.into_iter().map(|s| s.parse().unwrap()).collect()),
        1 => prop::collection::vec(prop::sample::select(&NETS[..]), 1..20)
            .prop_map(|v| v.into_iter().map(|s| s.parse().unwrap()).collect()),
    ]
}

fn ports() -> impl Strategy<Value = Vec<PortRange>> {
    prop_oneof![
        3 => Just(vec![]),
        2 => prop::collection::vec((1u16..6, 0u16..3), 1..20).prop_map(|v| v
            .into_iter()
            .map(|(a, w)| PortRange { first: a * 10, last: a * 10 + w })
            .collect()),
    ]
}

fn side(has_ports: bool, nsets: usize) -> impl Strategy<Value = MatchSide> {
    let sets = prop::collection::vec(0..nsets, 0..2);
    let nsets_s = prop::collection::vec(0..nsets, 0..2);
    (
        net_list(),
        net_list(),
        sets,
        nsets_s,
        ports(),
        ports(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(nets, not_nets, sets, not_sets, p, np, named, not_named)| MatchSide {
                nets,
                not_nets,
                ipsets: sets.into_iter().map(|i| format!("s:set{i}")).collect(),
                not_ipsets: not_sets.into_iter().map(|i| format!("s:set{i}")).collect(),
                ports: if has_ports { p } else { vec![] },
                not_ports: if has_ports { np } else { vec![] },
                named_port_sets: if has_ports && named {
                    vec!["n:np0".into()]
                } else {
                    vec![]
                },
                not_named_port_sets: if has_ports && not_named && !named {
                    vec!["n:np0".into()]
                } else {
                    vec![]
                },
            },
        )
}

fn rule_strategy(nsets: usize) -> impl Strategy<Value = RuleIr> {
    let action = prop::sample::select(vec![
        RuleAction::Allow,
        RuleAction::Allow,
        RuleAction::Deny,
        RuleAction::Pass,
        RuleAction::Log,
    ]);
    (
        action,
        prop::option::of(0usize..3),
        any::<bool>(),
        prop::option::of(0u8..2),
    )
        .prop_flat_map(move |(action, proto, not_proto, icmp)| {
            let protocol = proto.map(|i| PROTOS[i]);
            let has_ports = matches!(protocol, Some(Protocol::Tcp | Protocol::Udp));
            (side(has_ports, nsets), side(has_ports, nsets)).prop_map(
                move |(source, destination)| RuleIr {
                    action,
                    protocol,
                    not_protocol: if not_proto && protocol.is_none() {
                        Some(Protocol::Udp)
                    } else {
                        None
                    },
                    icmp: if protocol == Some(Protocol::Icmp) {
                        icmp.map(|t| IcmpMatch {
                            icmp_type: t * 8,
                            code: None,
                        })
                    } else {
                        None
                    },
                    not_icmp: None,
                    source,
                    destination,
                    origin: RuleOrigin {
                        index: 0,
                        text: String::new(),
                    },
                },
            )
        })
}

fn ir_strategy() -> impl Strategy<Value = NodeIr> {
    let nwl = 1usize..5;
    nwl.prop_flat_map(|nwl| {
        let nsets = 3;
        let policies = prop::collection::vec(
            (
                prop::collection::vec(rule_strategy(nsets), 0..4),
                prop::collection::vec(rule_strategy(nsets), 0..4),
            ),
            0..4,
        );
        let profiles = prop::collection::vec(
            (
                prop::collection::vec(rule_strategy(nsets), 0..3),
                prop::collection::vec(rule_strategy(nsets), 0..3),
            ),
            0..3,
        );
        let set_members =
            prop::collection::vec(prop::collection::btree_set(0usize..6, 0..4), nsets);
        let named_members = prop::collection::btree_set((0usize..6, 0usize..2, 1u16..6), 0..4);
        // Per workload and direction: tiers as (policy indexes, default pass?) and profiles.
        let attach = prop::collection::vec(
            (
                prop::collection::vec(
                    (prop::collection::vec(0usize..4, 0..3), any::<bool>()),
                    0..3,
                ),
                prop::collection::vec(0usize..3, 0..3),
            ),
            nwl * 2,
        );
        (
            Just(nwl),
            policies,
            profiles,
            set_members,
            named_members,
            attach,
        )
    })
    .prop_map(
        |(nwl, policies, profiles, set_members, named_members, attach)| {
            let mut ir = NodeIr {
                node: "n".into(),
                ..Default::default()
            };
            let pids: Vec<PolicyId> = (0..policies.len())
                .map(|i| PolicyId {
                    kind: PolicyKind::GlobalNetworkPolicy,
                    namespace: None,
                    name: format!("p{i}"),
                })
                .collect();
            for (i, (inb, outb)) in policies.into_iter().enumerate() {
                ir.policies.insert(
                    pids[i].clone(),
                    PolicyIr {
                        id: pids[i].clone(),
                        tier: "t".into(),
                        inbound: inb,
                        outbound: outb,
                    },
                );
            }
            let prof_names: Vec<String> = (0..profiles.len()).map(|i| format!("prof{i}")).collect();
            for (i, (inb, outb)) in profiles.into_iter().enumerate() {
                ir.profiles.insert(
                    prof_names[i].clone(),
                    ProfileIr {
                        name: prof_names[i].clone(),
                        inbound: inb,
                        outbound: outb,
                    },
                );
            }
            for (i, m) in set_members.into_iter().enumerate() {
                let mut nets: BTreeSet<Ipv4Net> = m
                    .into_iter()
                    .map(|k| Ipv4Net::new(ep_ip(k), 32).unwrap())
                    .collect();
                if i == 2 {
                    nets.insert("192.168.0.0/24".parse().unwrap());
                }
                let id = format!("s:set{i}");
                ir.ipsets.insert(
                    id.clone(),
                    IpSetIr {
                        id,
                        description: String::new(),
                        members: IpSetMembers::Nets(nets),
                    },
                );
            }
            ir.ipsets.insert(
                "n:np0".into(),
                IpSetIr {
                    id: "n:np0".into(),
                    description: String::new(),
                    members: IpSetMembers::IpPorts(
                        named_members
                            .into_iter()
                            .map(|(k, p, port)| {
                                (ep_ip(k), [Protocol::Tcp, Protocol::Udp][p], port * 10)
                            })
                            .collect(),
                    ),
                },
            );
            let mk = |(tiers, profs): &(Vec<(Vec<usize>, bool)>, Vec<usize>)| EndpointPolicyIr {
                tiers: tiers
                    .iter()
                    .enumerate()
                    .filter_map(|(ti, (pols, pass))| {
                        let pols: Vec<PolicyId> =
                            pols.iter().filter_map(|i| pids.get(*i).cloned()).collect();
                        if pols.is_empty() {
                            return None;
                        }
                        Some(TierIr {
                            name: format!("tier{ti}"),
                            default_action: if *pass {
                                TierDefaultAction::Pass
                            } else {
                                TierDefaultAction::Deny
                            },
                            policies: pols,
                        })
                    })
                    .collect(),
                profiles: profs
                    .iter()
                    .filter_map(|i| prof_names.get(*i).cloned())
                    .collect(),
            };
            for w in 0..nwl {
                ir.workloads.push(WorkloadEndpointIr {
                    id: EndpointId {
                        namespace: Some("ns".into()),
                        name: format!("w{w}"),
                    },
                    interface: format!("cali{w:02x}"),
                    addrs: vec![Ipv4Net::new(ep_ip(w), 32).unwrap()],
                    admin_up: true,
                    ingress: mk(&attach[w * 2]),
                    egress: mk(&attach[w * 2 + 1]),
                });
            }
            ir
        },
    )
}

// ---- The IR-level reference evaluation ----

fn set_has_net(ir: &NodeIr, id: &str, a: Ipv4Addr) -> bool {
    match &ir.ipsets[id].members {
        IpSetMembers::Nets(n) => n.iter().any(|n| n.contains(&a)),
        IpSetMembers::IpPorts(_) => false,
    }
}

fn set_has_port(ir: &NodeIr, id: &str, a: Ipv4Addr, proto: u8, port: Option<u16>) -> bool {
    match (&ir.ipsets[id].members, port) {
        (IpSetMembers::IpPorts(m), Some(port)) => m
            .iter()
            .any(|(ip, p, pt)| *ip == a && p.number() == proto && *pt == port),
        _ => false,
    }
}

fn side_matches(ir: &NodeIr, s: &MatchSide, a: Ipv4Addr, proto: u8, port: Option<u16>) -> bool {
    let in_range =
        |v: &[PortRange]| port.is_some_and(|p| v.iter().any(|r| r.first <= p && p <= r.last));
    (s.nets.is_empty() || s.nets.iter().any(|n| n.contains(&a)))
        && !s.not_nets.iter().any(|n| n.contains(&a))
        && s.ipsets.iter().all(|i| set_has_net(ir, i, a))
        && !s.not_ipsets.iter().any(|i| set_has_net(ir, i, a))
        && ((s.ports.is_empty() && s.named_port_sets.is_empty())
            || in_range(&s.ports)
            || s.named_port_sets
                .iter()
                .any(|i| set_has_port(ir, i, a, proto, port)))
        && (s.not_ports.is_empty() || (port.is_some() && !in_range(&s.not_ports)))
        && (s.not_named_port_sets.is_empty()
            || (port.is_some()
                && !s
                    .not_named_port_sets
                    .iter()
                    .any(|i| set_has_port(ir, i, a, proto, port))))
}

fn rule_matches(ir: &NodeIr, r: &RuleIr, p: &Packet) -> bool {
    r.protocol.is_none_or(|x| x.number() == p.protocol)
        && r.not_protocol.is_none_or(|x| x.number() != p.protocol)
        && r.icmp.is_none_or(|m| {
            p.icmp
                .is_some_and(|(t, c)| t == m.icmp_type && m.code.is_none_or(|x| x == c))
        })
        && side_matches(ir, &r.source, p.src, p.protocol, p.src_port)
        && side_matches(ir, &r.destination, p.dst, p.protocol, p.dst_port)
}

enum Decision {
    Allow,
    Deny,
    Pass,
    None,
}

fn eval_rules(ir: &NodeIr, rules: &[RuleIr], p: &Packet) -> Decision {
    for r in rules {
        if rule_matches(ir, r, p) {
            match r.action {
                RuleAction::Allow => return Decision::Allow,
                RuleAction::Deny => return Decision::Deny,
                RuleAction::Pass => return Decision::Pass,
                RuleAction::Log => {}
            }
        }
    }
    Decision::None
}

fn eval_endpoint(ir: &NodeIr, pol: &EndpointPolicyIr, ingress: bool, p: &Packet) -> bool {
    'tiers: for t in &pol.tiers {
        for id in &t.policies {
            let pi = &ir.policies[id];
            match eval_rules(ir, if ingress { &pi.inbound } else { &pi.outbound }, p) {
                Decision::Allow => return true,
                Decision::Deny => return false,
                Decision::Pass => continue 'tiers,
                Decision::None => {}
            }
        }
        if t.default_action == TierDefaultAction::Deny {
            return false;
        }
    }
    for name in &pol.profiles {
        let pr = &ir.profiles[name];
        match eval_rules(ir, if ingress { &pr.inbound } else { &pr.outbound }, p) {
            Decision::Allow => return true,
            Decision::Deny => return false,
            // A Pass in a profile ends that profile; the next one is tried.
            Decision::Pass | Decision::None => {}
        }
    }
    false
}

fn packets(nwl: usize) -> Vec<(Packet, Option<usize>, Option<usize>)> {
    let mut out = Vec::new();
    let mut srcs: Vec<(Ipv4Addr, Option<usize>)> = (0..nwl).map(|i| (ep_ip(i), Some(i))).collect();
    srcs.push(("192.168.0.7".parse().unwrap(), None));
    srcs.push(("10.0.0.200".parse().unwrap(), None));
    for &(src, si) in &srcs {
        for &(dst, di) in &srcs {
            if si.is_none() && di.is_none() {
                continue;
            }
            for (proto, port) in [(6u8, 10u16), (6, 21), (17, 30), (17, 52), (6, 1000), (1, 0)] {
                for icmp_t in [0u8, 8] {
                    if proto != 1 && icmp_t == 8 {
                        continue;
                    }
                    let mut p = Packet::new(src, dst, proto, Some(port));
                    if proto == 1 {
                        p.icmp = Some((icmp_t, 0));
                    } else {
                        p.src_port = Some(port / 2 * 2);
                    }
                    p.in_iface = Some(
                        si.map(|i| format!("cali{i:02x}"))
                            .unwrap_or_else(|| "eth0".into()),
                    );
                    p.out_iface = Some(
                        di.map(|i| format!("cali{i:02x}"))
                            .unwrap_or_else(|| "eth0".into()),
                    );
                    out.push((p, si, di));
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn simulated_rendering_agrees_with_ir_semantics(ir in ir_strategy()) {
        let rs = render(&ir);
        let problems = graph::check(&rs);
        prop_assert!(problems.is_empty(), "{:?}", problems);
        let saved = parse_save(&rs.combined_restore_payload()).unwrap();
        let sets = IpSets::parse_restore(&rs.ipset_restore_payload()).unwrap();
        let sim = Simulator::new(&saved, &sets);
        let index: BTreeMap<usize, &WorkloadEndpointIr> = ir.workloads.iter().enumerate().collect();
        for (p, si, di) in packets(ir.workloads.len()) {
            let egress_ok = si.is_none_or(|i| eval_endpoint(&ir, &index[&i].egress, false, &p));
            let ingress_ok = di.is_none_or(|i| eval_endpoint(&ir, &index[&i].ingress, true, &p));
            let want = if egress_ok && ingress_ok { SimVerdict::Accept } else { SimVerdict::Drop };
            let got = sim.run(&p, PathKind::Forward).unwrap();
            prop_assert_eq!(got.verdict, want, "packet {:?}\nsteps {:#?}", p, got.steps);
        }
    }
}

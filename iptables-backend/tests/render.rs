//! Rendering from hand-built IR: Felix's hash vectors for the chains whose shape Brindle shares,
//! graph checks, and simulation of the rendered text.

mod common;

use common::*;

use iptables_backend::save::parse_save;
use iptables_backend::sim::{IpSets, Packet, PathKind, SimVerdict, Simulator};
use iptables_backend::{graph, render, Rule, Ruleset, Table};
use policy_ir::ir::*;

fn hashes(rules: &[Rule]) -> Vec<&str> {
    rules.iter().map(|r| r.hash.as_str()).collect()
}

fn chain<'a>(rs: &'a Ruleset, t: Table, name: &str) -> &'a Vec<Rule> {
    rs.tables[&t]
        .chains
        .get(name)
        .unwrap_or_else(|| panic!("{t} chain {name} missing"))
}

#[test]
fn static_chains_match_felix_hashes() {
    let rs = render(&example_ir());
    // Felix's examples use a fourth mark bit (ALL = 0xf000000); with Brindle's three bits the
    // first rule clears 0x6000000, so the chain's hashes differ from §1.6 from rule 1 on.
    let fwd: Vec<String> = chain(&rs, Table::Filter, "cali-FORWARD")
        .iter()
        .map(|r| format!("{} {}", r.matches, r.action).trim().to_string())
        .collect();
    assert_eq!(
        fwd,
        [
            "--jump MARK --set-mark 0/0x6000000",
            "-m mark --mark 0/0x1000000 --jump cali-from-hep-forward",
            "--in-interface cali+ --jump cali-from-wl-dispatch",
            "--out-interface cali+ --jump cali-to-wl-dispatch",
            "--jump cali-to-hep-forward",
            "--jump cali-cidr-block",
        ]
    );
    assert_eq!(
        hashes(chain(&rs, Table::Filter, "cali-wl-to-host")),
        ["Ee9Sbo10IpVujdIY", "eFOMW3jAdcq1gnVZ"]
    );
    assert_eq!(
        &hashes(chain(&rs, Table::Filter, "cali-OUTPUT"))[..2],
        ["YQSSJIsRcHjFbXaI", "KRjBsKsBcFBYKCEw"]
    );
    assert_eq!(
        hashes(chain(&rs, Table::Mangle, "cali-PREROUTING")),
        [
            "6BJqBjBC7crtA-7-",
            "nE3PUa5RSRqBBvwx",
            "Qfb1Vya_-BMZ-BSP",
            "Od2Nkd4ONprB5zMO"
        ]
    );
    assert_eq!(
        hashes(chain(&rs, Table::Nat, "cali-POSTROUTING")),
        ["Z-c7XtVd2Bq7s_hA", "nYKhEzDlr11Jccal"]
    );
    assert_eq!(
        hashes(chain(&rs, Table::Nat, "cali-PREROUTING")),
        ["r6XmIziWUJsdOK6Z"]
    );
    let nat = chain(&rs, Table::Nat, "cali-nat-outgoing");
    assert_eq!(
        nat[0].line("cali-nat-outgoing"),
        "-A cali-nat-outgoing -m comment --comment \"cali:Dw4T8UWPnCLxRJiI\" -m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst --jump MASQUERADE"
    );
    let f = &rs.tables[&Table::Filter];
    let fwd_appends: Vec<&str> = f.appends.iter().map(|(_, r)| r.hash.as_str()).collect();
    assert_eq!(fwd_appends, ["eEpJhAtjPch0oSS7", "QhwVJ_XEYFSFrw3q"]);
    let ins: Vec<(&str, &str)> = f
        .inserts
        .iter()
        .map(|(c, r)| (c.as_str(), r.hash.as_str()))
        .collect();
    assert_eq!(
        ins,
        [
            ("INPUT", "Cz_u1IQiXIMmKD4c"),
            ("FORWARD", "wUHhoiAYhphO9Mso"),
            ("OUTPUT", "tVnHkvAo15HuiPy0")
        ]
    );
    let raw = &rs.tables[&Table::Raw];
    assert_eq!(raw.inserts[0].1.hash, "6gwbT8clXdHdC1b1");
}

#[test]
fn dispatch_tree_matches_felix_example() {
    let rs = render(&example_ir());
    let text = |name: &str| -> Vec<String> {
        chain(&rs, Table::Filter, name)
            .iter()
            .map(|r| r.line(name))
            .collect()
    };
    assert_eq!(
        text("cali-from-wl-dispatch"),
        [
            "-A cali-from-wl-dispatch -m comment --comment \"cali:Yh5wCMuzvxmT5wwj\" --in-interface cali1234 --goto cali-fw-cali1234",
            "-A cali-from-wl-dispatch -m comment --comment \"cali:oLQN72lnJ9vvkip_\" --in-interface cali2+ --goto cali-from-wl-dispatch-2",
            "-A cali-from-wl-dispatch -m comment --comment \"cali:GCV6b2hHRROgIoun\" -m comment --comment \"Unknown interface\" --jump DROP",
        ]
    );
    assert_eq!(
        hashes(chain(&rs, Table::Filter, "cali-to-wl-dispatch-2")),
        ["LvSajaovb2Ml753o", "fwiQukdC0GUlwyda", "y9W45Ac6x2uqir6b"]
    );
    assert_eq!(
        hashes(chain(&rs, Table::Filter, "cali-from-wl-dispatch-2")),
        ["KivDpTAEVLhGdZn-", "4KP4ICZxqBg9qJgR", "FbcdzWaIcya7klcw"]
    );
}

#[test]
fn policy_chain_matches_felix_example() {
    let rs = render(&example_ir());
    let name = "cali-pi-gnp/allow-web";
    let lines: Vec<String> = chain(&rs, Table::Filter, name)
        .iter()
        .map(|r| r.line(name))
        .collect();
    assert_eq!(
        lines,
        [
            "-A cali-pi-gnp/allow-web -m comment --comment \"cali:OgR2b1PNgGmBZ15r\" -m comment --comment \"GlobalNetworkPolicy allow-web ingress\" -p tcp -m set --match-set cali40s:rV61RKD1Q8wo61pyeB0j2rw src -m multiport --destination-ports 80,443 --jump MARK --set-mark 0x1000000/0x1000000",
            "-A cali-pi-gnp/allow-web -m comment --comment \"cali:2Pydo2tZQuRnHCNA\" -m mark --mark 0x1000000/0x1000000 --jump RETURN",
            "-A cali-pi-gnp/allow-web -m comment --comment \"cali:Rs3B2PSKzHd8UBMR\" -p udp --jump MARK --set-mark 0x2000000/0x2000000",
            "-A cali-pi-gnp/allow-web -m comment --comment \"cali:Y-K3SgwRM7GU92fN\" -m mark --mark 0x2000000/0x2000000 --jump RETURN",
            "-A cali-pi-gnp/allow-web -m comment --comment \"cali:WhPyO7kH5Xkfn_ty\" --source 10.0.0.0/8 --jump LOG --log-prefix \"calico-packet: \" --log-level 5",
            "-A cali-pi-gnp/allow-web -m comment --comment \"cali:zwIqHXA0N7QSSKcg\" --source 10.0.0.0/8 --jump DROP",
        ]
    );
}

#[test]
fn endpoint_chain_shape() {
    let rs = render(&example_ir());
    let tw = chain(&rs, Table::Filter, "cali-tw-cali1234");
    // The first two rules are the same as Felix's (§2.2 example), hashes included.
    assert_eq!(&hashes(tw)[..2], ["1pP47gk_8pyVarO3", "KttutfyOi13aOyl_"]);
    let bodies: Vec<String> = tw
        .iter()
        .map(|r| format!("{:?} {} {}", r.comments, r.matches, r.action))
        .collect();
    assert_eq!(
        bodies,
        [
            "[] -m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
            "[] -m conntrack --ctstate INVALID --jump DROP",
            "[]  --jump MARK --set-mark 0/0x1000000",
            "[\"Start of tier default\"]  --jump MARK --set-mark 0/0x2000000",
            "[] -m mark --mark 0/0x2000000 --jump cali-pi-gnp/allow-web",
            "[\"Return if policy accepted\"] -m mark --mark 0x1000000/0x1000000 --jump RETURN",
            "[\"End of tier default. Drop if no policies passed packet\"] -m mark --mark 0/0x2000000 --jump DROP",
            "[]  --jump cali-pri-kns.default",
            "[\"Return if profile accepted\"] -m mark --mark 0x1000000/0x1000000 --jump RETURN",
            "[\"Drop if no profiles matched\"]  --jump DROP",
        ]
    );
    let fw = chain(&rs, Table::Filter, "cali-fw-cali1234");
    assert!(fw
        .iter()
        .any(|r| r.matches == "-p 4" && r.action == "--jump DROP"));
}

#[test]
fn graph_is_sound_and_unused_chains_pruned() {
    let rs = render(&example_ir());
    let problems = graph::check(&rs);
    assert!(problems.is_empty(), "{problems:?}");
    // The egress policy chain is never referenced (no endpoint has egress policy), so it is not
    // written, exactly as Felix's reference counting does.
    assert!(!rs.tables[&Table::Filter]
        .chains
        .contains_key("cali-po-gnp/allow-web"));
    // Policy chains are not copied into mangle unless a host endpoint needs them.
    assert!(!rs.tables[&Table::Mangle]
        .chains
        .contains_key("cali-pi-gnp/allow-web"));
    for t in rs.tables.values() {
        for name in t.chains.keys() {
            assert!(name.len() <= 28, "{name}");
        }
    }
    for s in &rs.ipsets {
        assert!(s.name.len() <= 31, "{}", s.name);
    }
}

fn simulate(
    rs: &Ruleset,
    src: &str,
    dst: &str,
    proto: u8,
    port: u16,
    i: &str,
    o: &str,
) -> SimVerdict {
    let text = rs.combined_restore_payload();
    let saved = parse_save(&text).unwrap();
    let sets = IpSets::parse_restore(&rs.ipset_restore_payload()).unwrap();
    let sim = Simulator::new(&saved, &sets);
    let mut p = Packet::new(
        src.parse().unwrap(),
        dst.parse().unwrap(),
        proto,
        Some(port),
    );
    p.in_iface = Some(i.into());
    p.out_iface = Some(o.into());
    sim.run(&p, PathKind::Forward).unwrap().verdict
}

#[test]
fn simulated_verdicts_follow_policy() {
    let rs = render(&example_ir());
    // Source in the role==db set, TCP 443 → allowed by allow-web (and the source's profile).
    assert_eq!(
        simulate(
            &rs,
            "10.65.0.2",
            "10.65.0.1",
            6,
            443,
            "cali2333",
            "cali1234"
        ),
        SimVerdict::Accept
    );
    // Same source, TCP 22: nothing in allow-web matches except the 10/8 deny → drop.
    assert_eq!(
        simulate(&rs, "10.65.0.2", "10.65.0.1", 6, 22, "cali2333", "cali1234"),
        SimVerdict::Drop
    );
    // UDP → pass → profile kns.default allows.
    assert_eq!(
        simulate(
            &rs,
            "10.65.0.3",
            "10.65.0.1",
            17,
            53,
            "cali2444",
            "cali1234"
        ),
        SimVerdict::Accept
    );
    // TCP 443 from outside 10/8 and not in the set: end of tier drop.
    assert_eq!(
        simulate(&rs, "192.168.1.1", "10.65.0.1", 6, 443, "eth0", "cali1234"),
        SimVerdict::Drop
    );
    // To the other workloads (profile only): allowed.
    assert_eq!(
        simulate(&rs, "192.168.1.1", "10.65.0.2", 6, 443, "eth0", "cali2333"),
        SimVerdict::Accept
    );
    // Unknown workload interface: dispatch drop.
    assert_eq!(
        simulate(&rs, "192.168.1.1", "10.65.0.9", 6, 443, "eth0", "cali9999"),
        SimVerdict::Drop
    );
    // IPIP from a workload is dropped by the egress chain.
    assert_eq!(
        simulate(&rs, "10.65.0.2", "1.1.1.1", 4, 0, "cali2333", "eth0"),
        SimVerdict::Drop
    );
}

#[test]
fn long_names_hashed_and_host_endpoints() {
    let mut ir = example_ir();
    let long = PolicyId {
        kind: PolicyKind::NetworkPolicy,
        namespace: Some("a-rather-long-namespace".into()),
        name: "and-an-even-longer-policy-name".into(),
    };
    ir.policies.insert(
        long.clone(),
        PolicyIr {
            id: long.clone(),
            tier: "default".into(),
            inbound: vec![rule(RuleAction::Allow)],
            outbound: vec![rule(RuleAction::Deny)],
        },
    );
    let pol = EndpointPolicyIr {
        tiers: vec![TierIr {
            name: "default".into(),
            default_action: TierDefaultAction::Deny,
            policies: vec![long.clone()],
        }],
        profiles: vec![],
    };
    ir.host_endpoints = vec![
        HostEndpointIr {
            id: EndpointId {
                namespace: None,
                name: "n1-eth0".into(),
            },
            interface: "eth0".into(),
            addrs: vec!["192.168.0.1/32".parse().unwrap()],
            ingress: pol.clone(),
            egress: pol.clone(),
        },
        HostEndpointIr {
            id: EndpointId {
                namespace: None,
                name: "n1-all".into(),
            },
            interface: "*".into(),
            addrs: vec![],
            ingress: pol.clone(),
            egress: pol,
        },
    ];
    let rs = render(&ir);
    assert!(graph::check(&rs).is_empty(), "{:?}", graph::check(&rs));
    let f = &rs.tables[&Table::Filter];
    let hashed: Vec<&String> = f
        .chains
        .keys()
        .filter(|k| k.starts_with("cali-pi-_"))
        .collect();
    assert_eq!(hashed.len(), 1, "{:?}", f.chains.keys().collect::<Vec<_>>());
    assert_eq!(hashed[0].len(), 28);
    assert!(f.chains.contains_key("cali-fh-any-interface-at-all"));
    let fh = &f.chains["cali-fh-eth0"];
    assert!(fh.iter().any(|r| r.action == "--jump cali-failsafe-in"));
    let from = &f.chains["cali-from-host-endpoint"];
    assert_eq!(
        from.last().unwrap().action,
        "--goto cali-fh-any-interface-at-all"
    );
    // Mangle carries the egress host-endpoint chain, with its policy chain and failsafe-out.
    let m = &rs.tables[&Table::Mangle];
    assert!(m.chains.contains_key("cali-th-eth0"));
    assert!(m.chains.contains_key("cali-failsafe-out"));
    assert!(m.chains.keys().any(|k| k.starts_with("cali-po-_")));
    // Simulate SSH to the host (failsafe) and something else (policy allows all ingress).
    let saved = parse_save(&rs.combined_restore_payload()).unwrap();
    let sets = IpSets::parse_restore(&rs.ipset_restore_payload()).unwrap();
    let sim = Simulator::new(&saved, &sets);
    let mut p = Packet::new(
        "192.168.0.9".parse().unwrap(),
        "192.168.0.1".parse().unwrap(),
        6,
        Some(22),
    );
    p.in_iface = Some("eth0".into());
    assert_eq!(
        sim.run(&p, PathKind::Input).unwrap().verdict,
        SimVerdict::Accept
    );
    // Output from the host: the egress policy denies everything except failsafe-out ports.
    let mut p = Packet::new(
        "192.168.0.1".parse().unwrap(),
        "192.168.0.9".parse().unwrap(),
        6,
        Some(8080),
    );
    p.out_iface = Some("eth0".into());
    assert_eq!(
        sim.run(&p, PathKind::Output).unwrap().verdict,
        SimVerdict::Drop
    );
    p.dst_port = Some(2379);
    assert_eq!(
        sim.run(&p, PathKind::Output).unwrap().verdict,
        SimVerdict::Accept
    );
    // Host to a local workload is not policed by the wildcard HEP.
    p.out_iface = Some("cali2333".into());
    p.dst_port = Some(8080);
    assert_eq!(
        sim.run(&p, PathKind::Output).unwrap().verdict,
        SimVerdict::Accept
    );
}

#[test]
fn admin_down_endpoint_is_a_single_drop() {
    let mut ir = example_ir();
    ir.workloads[1].admin_up = false;
    let rs = render(&ir);
    for prefix in ["cali-tw-", "cali-fw-"] {
        let name = format!("{prefix}cali2333");
        let c = chain(&rs, Table::Filter, &name);
        assert_eq!(c.len(), 1, "{name}");
        assert_eq!(c[0].comments, ["Endpoint admin disabled"]);
        assert_eq!(c[0].action, "--jump DROP");
    }
    assert_eq!(
        simulate(&rs, "10.65.0.1", "10.65.0.2", 6, 80, "cali1234", "cali2333"),
        SimVerdict::Drop
    );
}

use std::collections::{BTreeMap, BTreeSet};

use iptables_backend::{IpSetSpec, Rule, Ruleset, Table, TableRules};
use policy_ir::ir::*;

use super::*;

fn hashes(chain: &str, bodies: &[&str]) -> Vec<String> {
    rule_hashes(chain, bodies.iter().copied())
}

#[test]
fn nft_hash_vectors() {
    // §5.1: `filter-FORWARD: "counter drop"`.
    assert_eq!(
        hashes("filter-FORWARD", &["counter drop"]),
        ["DCGauXoHP5A9-AIO"]
    );
    // §7 example: the hook rule and the dispatch chain.
    assert_eq!(
        hashes("filter-FORWARD", &["counter jump filter-cali-FORWARD"]),
        ["dpfqBgJrpRwlrqw1"]
    );
    assert_eq!(
        hashes(
            TO_WL_DISPATCH,
            &["oifname vmap @filter-cali-to-wl-dispatch", "counter drop"]
        ),
        ["ljtHSLJQhigspPd1", "zeZtiiPDsE6BwqUG"]
    );
}

fn tx(layer: Table, matches: &str, action: &str) -> Result<String, String> {
    let chains: BTreeSet<String> = ["cali-pi-gnp/allow-web", "cali-pri-kns.default"]
        .into_iter()
        .map(String::from)
        .collect();
    let sets = vec![
        NftSet {
            name: "cali40s-rV61RKD1Q8wo61pyeB0j2rw".into(),
            ipset: "cali40s:rV61RKD1Q8wo61pyeB0j2rw".into(),
            kind: SetKind::Net,
            elements: vec![],
        },
        NftSet {
            name: "cali40n-v1r2STTlO7TacjeCimdhkpV".into(),
            ipset: "cali40n:v1r2STTlO7TacjeCimdhkpV".into(),
            kind: SetKind::IpProtoPort,
            elements: vec![],
        },
    ];
    translate_rule_text(layer, matches, action, &chains, &sets)
}

fn f(matches: &str, action: &str) -> String {
    tx(Table::Filter, matches, action).unwrap_or_else(|e| panic!("{matches} {action}: {e}"))
}

#[test]
fn mark_translations() {
    assert_eq!(
        f("", "--jump MARK --set-mark 0x1000000/0x1000000"),
        "counter meta mark set mark or 0x1000000"
    );
    assert_eq!(
        f("", "--jump MARK --set-mark 0/0x3000000"),
        "counter meta mark set mark & 0xfcffffff"
    );
    assert_eq!(
        f("", "--jump MARK --set-mark 0x0/0xc000000"),
        "counter meta mark set mark & 0xf3ffffff"
    );
    assert_eq!(
        f("", "--jump MARK --set-mark 0x4000000/0x6000000"),
        "counter meta mark set mark & 0xf9ffffff ^ 0x4000000"
    );
    assert_eq!(
        f("-m mark --mark 0/0x2000000", "--jump cali-pi-gnp/allow-web"),
        "meta mark & 0x2000000 == 0 counter jump filter-cali-pi-gnp/allow-web"
    );
    assert_eq!(
        f("-m mark --mark 0x1000000/0x1000000", "--jump RETURN"),
        "meta mark & 0x1000000 == 0x1000000 counter return"
    );
    assert_eq!(
        f("-m mark ! --mark 0/0x3000000", "--jump RETURN"),
        "meta mark & 0x3000000 != 0 counter return"
    );
}

#[test]
fn match_translations() {
    // The §7 example rule, byte for byte (its hash is the §7 vector).
    let b = f(
        "-p tcp -m set --match-set cali40s:rV61RKD1Q8wo61pyeB0j2rw src -m multiport --destination-ports 80,443",
        "--jump MARK --set-mark 0x1000000/0x1000000",
    );
    assert_eq!(
        b,
        "meta l4proto tcp ip saddr @cali40s-rV61RKD1Q8wo61pyeB0j2rw tcp dport { 80, 443 } counter meta mark set mark or 0x1000000"
    );
    assert_eq!(
        hashes("filter-cali-pi-gnp/allow-web", &[&b]),
        ["VLlvdpOvZmxOn6jk"]
    );
    assert_eq!(
        f(
            "-m conntrack --ctstate RELATED,ESTABLISHED",
            "--jump ACCEPT"
        ),
        "ct state related,established counter accept"
    );
    assert_eq!(
        f("-m conntrack --ctstate INVALID", "--jump DROP"),
        "ct state invalid counter drop"
    );
    assert_eq!(
        f("-m conntrack ! --ctstate DNAT", "--jump RETURN"),
        "ct status & dnat == 0 counter return"
    );
    assert_eq!(
        f("-m conntrack --ctstate DNAT", "--jump RETURN"),
        "ct status dnat counter return"
    );
    assert_eq!(
        f("--in-interface cali+", "--goto cali-pri-kns.default"),
        "iifname \"cali*\" counter goto filter-cali-pri-kns.default"
    );
    assert_eq!(
        f("--out-interface cali12", "--jump RETURN"),
        "oifname \"cali12\" counter return"
    );
    assert_eq!(
        tx(
            Table::Raw,
            "-m mark --mark 0x4000000/0x4000000 -m rpfilter --invert --validmark",
            "--jump DROP"
        )
        .unwrap(),
        "meta mark & 0x4000000 == 0x4000000 fib saddr . mark . iif oif 0 counter drop"
    );
    assert_eq!(
        f(
            "-p tcp -m set --match-set cali40n:v1r2STTlO7TacjeCimdhkpV dst,dst",
            "--jump DROP"
        ),
        "meta l4proto tcp ip daddr . meta l4proto . th dport @cali40n-v1r2STTlO7TacjeCimdhkpV counter drop"
    );
    assert_eq!(
        f(
            "--source 10.0.0.0/8 ! --destination 10.1.2.3 -m set ! --match-set cali40s:rV61RKD1Q8wo61pyeB0j2rw dst",
            "--jump LOG --log-prefix \"calico-packet: \" --log-level 5"
        ),
        "ip saddr 10.0.0.0/8 ip daddr != 10.1.2.3 ip daddr != @cali40s-rV61RKD1Q8wo61pyeB0j2rw counter log prefix \"calico-packet: \" level info"
    );
    assert_eq!(
        f(
            "-p udp -m multiport --source-ports 10:12,53 -m multiport ! --destination-ports 9",
            "--jump ACCEPT"
        ),
        "meta l4proto udp udp sport { 10-12, 53 } udp dport != 9 counter accept"
    );
    assert_eq!(
        f("-p icmp -m icmp --icmp-type 8/0 ! -p 4", "--jump ACCEPT"),
        "meta l4proto icmp icmp type 8 icmp code 0 meta l4proto != 4 counter accept"
    );
    assert_eq!(
        f("-p icmp -m icmp ! --icmp-type 8/0", "--jump ACCEPT"),
        "meta l4proto icmp icmp type . icmp code != { 8 . 0 } counter accept"
    );
    assert_eq!(
        tx(
            Table::Nat,
            "-m set --match-set cali40s:rV61RKD1Q8wo61pyeB0j2rw src",
            "--jump MASQUERADE"
        )
        .unwrap(),
        "ip saddr @cali40s-rV61RKD1Q8wo61pyeB0j2rw counter masquerade"
    );
    assert_eq!(
        f("-p 4 -m addrtype --dst-type LOCAL", "--jump ACCEPT"),
        "meta l4proto 4 fib daddr type local counter accept"
    );
    // A comment-only rule and a bare action.
    assert_eq!(f("", ""), "continue");
    assert_eq!(f("", "--jump DROP"), "counter drop");
}

#[test]
fn untranslatable_constructs_are_errors() {
    for (m, a) in [
        ("-m limit --limit 5/sec", "--jump ACCEPT"),
        ("", "--jump NFLOG --nflog-group 1"),
        ("-m multiport --destination-ports 80", "--jump ACCEPT"),
        ("-m set --match-set cali40s:nope src", "--jump ACCEPT"),
        ("", "--jump cali-no-such-chain"),
        ("", "--jump MASQUERADE --random-fully"),
        (
            "-m set --match-set cali40s:rV61RKD1Q8wo61pyeB0j2rw src,src",
            "--jump ACCEPT",
        ),
    ] {
        assert!(tx(Table::Filter, m, a).is_err(), "{m} {a}");
    }
    // Through the ruleset: the error names layer, chain and rule.
    let mut rs = Ruleset::default();
    let mut t = TableRules::default();
    t.chains.insert(
        "cali-x".into(),
        vec![
            Rule {
                hash: "aaaaaaaaaaaaaaaa".into(),
                comments: vec![],
                matches: String::new(),
                action: "--jump ACCEPT".into(),
            },
            Rule {
                hash: "bbbbbbbbbbbbbbbb".into(),
                comments: vec![],
                matches: "-m statistic --mode random --probability 0.5".into(),
                action: "--jump DROP".into(),
            },
        ],
    );
    rs.tables.insert(Table::Filter, t);
    let e = translate_ruleset(&rs).unwrap_err();
    match &e {
        NftError::Rule {
            layer,
            chain,
            index,
            hash,
            ..
        } => {
            assert_eq!(
                (*layer, chain.as_str(), *index, hash.as_str()),
                ("filter", "cali-x", 2, "bbbbbbbbbbbbbbbb")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("cali-x"), "{e}");
}

fn ep(iface: &str, ip: &str) -> WorkloadEndpointIr {
    let pol = EndpointPolicyIr {
        tiers: vec![],
        profiles: vec!["open".into()],
    };
    WorkloadEndpointIr {
        id: EndpointId {
            namespace: Some("default".into()),
            name: iface.into(),
        },
        interface: iface.into(),
        addrs: vec![format!("{ip}/32").parse().unwrap()],
        admin_up: true,
        ingress: pol.clone(),
        egress: pol,
    }
}

fn three_workloads() -> NodeIr {
    let allow = RuleIr {
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
    };
    let mut profiles = BTreeMap::new();
    profiles.insert(
        "open".to_string(),
        ProfileIr {
            name: "open".into(),
            inbound: vec![allow.clone()],
            outbound: vec![allow],
        },
    );
    NodeIr {
        node: "n1".into(),
        workloads: vec![
            ep("cali1234", "10.65.0.1"),
            ep("cali2333", "10.65.0.2"),
            ep("cali2444", "10.65.0.3"),
        ],
        profiles,
        ..Default::default()
    }
}

#[test]
fn verdict_maps_replace_the_dispatch_trees() {
    let ir = three_workloads();
    // The iptables graph has a child chain for the `cali2` bucket …
    let ipt = iptables_backend::render(&ir);
    assert!(ipt.tables[&Table::Filter]
        .chains
        .contains_key("cali-from-wl-dispatch-2"));
    let nft = render(&ir).unwrap();
    // … the nft table has none, and the two maps instead.
    assert!(!nft.chains().keys().any(|c| c.contains("wl-dispatch-")));
    assert_eq!(nft.maps().len(), 2);
    let from = nft
        .maps()
        .iter()
        .find(|m| m.name == FROM_WL_DISPATCH)
        .unwrap();
    assert_eq!(
        from.elements,
        [
            ("cali1234".into(), "goto filter-cali-fw-cali1234".into()),
            ("cali2333".into(), "goto filter-cali-fw-cali2333".into()),
            ("cali2444".into(), "goto filter-cali-fw-cali2444".into()),
        ]
    );
    let to = nft.rules(TO_WL_DISPATCH);
    assert_eq!(to.len(), 2);
    assert_eq!(to[0].body, "oifname vmap @filter-cali-to-wl-dispatch");
    assert_eq!(to[0].hash, "ljtHSLJQhigspPd1");
    assert_eq!(
        to[1].text(),
        "counter drop comment \"cali:zeZtiiPDsE6BwqUG; Unknown interface\""
    );
    let p = nft.payload();
    assert!(
        p.contains("add map ip calico filter-cali-to-wl-dispatch { type ifname : verdict ; }\n")
    );
    assert!(
        p.contains("\"cali2444\" : goto filter-cali-tw-cali2444"),
        "{p}"
    );
    assert!(p.contains(
        "add rule ip calico filter-FORWARD counter jump filter-cali-FORWARD comment \"cali:dpfqBgJrpRwlrqw1;\"\n"
    ));
    // Other chains still jump to the dispatch chains.
    assert!(nft
        .rules("filter-cali-FORWARD")
        .iter()
        .any(|r| r.body == "iifname \"cali*\" counter jump filter-cali-from-wl-dispatch"));
    // No workloads: empty maps, the drop remains.
    let empty = render(&NodeIr::default()).unwrap();
    assert!(empty.maps().iter().all(|m| m.elements.is_empty()));
    assert_eq!(empty.rules(FROM_WL_DISPATCH).len(), 2);
}

#[test]
fn base_chains_hook_rules_and_payload_shape() {
    let nft = render(&three_workloads()).unwrap();
    let fwd = nft.chain("filter-FORWARD").unwrap();
    assert_eq!(
        fwd.base,
        Some(BaseChain {
            chain_type: "filter",
            hook: "forward",
            priority: "filter"
        })
    );
    // Insert first, then the two append rules.
    assert_eq!(fwd.rules.len(), 3);
    assert_eq!(
        fwd.rules[1].comments,
        ["Policy explicitly accepted packet."]
    );
    assert_eq!(
        nft.chain("nat-POSTROUTING")
            .unwrap()
            .base
            .as_ref()
            .unwrap()
            .priority,
        "srcnat + 10"
    );
    assert_eq!(
        nft.chain("raw-PREROUTING")
            .unwrap()
            .base
            .as_ref()
            .unwrap()
            .priority,
        "raw"
    );
    // Every jump target is a declared chain of the same layer.
    for c in nft.chains().values() {
        for r in &c.rules {
            for verb in ["jump ", "goto "] {
                if let Some(i) = r.body.find(verb) {
                    let t = r.body[i + verb.len()..].split_whitespace().next().unwrap();
                    assert!(nft.chain(t).is_some(), "{} -> {t}", c.name);
                    assert_eq!(t.split('-').next(), c.name.split('-').next());
                }
            }
        }
    }
    let p = nft.payload();
    let lines: Vec<&str> = p.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        &lines[..3],
        [
            "table ip calico",
            "delete table ip calico",
            "add table ip calico"
        ]
    );
    assert_eq!(
        p.lines().filter(|l| l.starts_with("add rule ")).count(),
        nft.rule_count()
    );
}

#[test]
fn sets_are_renamed_and_aggregated() {
    let rs = Ruleset {
        ipsets: vec![
            IpSetSpec {
                name: "cali40s:abc".into(),
                set_type: "hash:net".into(),
                members: vec![
                    "10.0.0.0/8".into(),
                    "10.1.0.0/16".into(),
                    "192.168.1.1/32".into(),
                    "0.0.0.0/1".into(),
                ],
                maxelem: 1024,
            },
            IpSetSpec {
                name: "cali40n:xyz".into(),
                set_type: "hash:ip,port".into(),
                members: vec!["10.65.0.2,tcp:8080".into()],
                maxelem: 1024,
            },
        ],
        ..Default::default()
    };
    let nft = translate_ruleset(&rs).unwrap();
    assert_eq!(nft.sets()[0].name, "cali40s-abc");
    assert_eq!(nft.sets()[0].elements, ["0.0.0.0/1", "192.168.1.1"]);
    assert_eq!(nft.sets()[1].elements, ["10.65.0.2 . tcp . 8080"]);
    let p = nft.payload();
    assert!(p.contains(
        "add set ip calico cali40n-xyz { type ipv4_addr . inet_proto . inet_service ; }\n"
    ));
    assert!(p.contains("add element ip calico cali40s-abc { 0.0.0.0/1, 192.168.1.1 }\n"));
}

#[test]
fn port_lists_become_shared_named_sets() {
    let rule = |matches: &str| Rule {
        hash: "h".into(),
        comments: Vec::new(),
        matches: matches.into(),
        action: "--jump ACCEPT".into(),
    };
    let mut filter = TableRules::default();
    // Enough rules to be over the threshold; port lists in the first two chains.
    filter.chains.insert(
        "cali-filler".into(),
        (0..SHARED_PORT_SETS_ABOVE)
            .map(|i| rule(&format!("-p tcp -m multiport --destination-ports {i},9")))
            .collect(),
    );
    filter.chains.insert(
        "cali-a".into(),
        vec![
            rule("-p tcp -m multiport --destination-ports 80,8000:8100"),
            rule("-p udp -m multiport --destination-ports 53"),
        ],
    );
    filter.chains.insert(
        "cali-b".into(),
        vec![
            rule("-p udp -m multiport --source-ports 80,8000:8100"),
            rule("-p tcp -m multiport ! --destination-ports 22,443"),
        ],
    );
    let mut rs = Ruleset::default();
    rs.tables.insert(Table::Filter, filter);
    let nft = translate_ruleset(&rs).unwrap();
    let ports: Vec<(&str, &[String])> = nft
        .sets()
        .iter()
        .filter(|s| s.kind == SetKind::Ports && !s.name.ends_with("_9"))
        .map(|s| (s.name.as_str(), &s.elements[..]))
        .collect();
    // One set per distinct list, shared by every rule using it; single ports stay inline.
    assert_eq!(
        ports,
        [
            (
                "cali-ports-22_443",
                &["22".to_string(), "443".to_string()][..]
            ),
            (
                "cali-ports-80_8000-8100",
                &["80".to_string(), "8000-8100".to_string()][..]
            ),
        ]
    );
    let bodies: Vec<&str> = nft
        .chains()
        .values()
        .flat_map(|c| c.rules.iter().map(|r| r.body.as_str()))
        .collect();
    assert!(bodies.contains(&"meta l4proto tcp tcp dport @cali-ports-80_8000-8100 counter accept"));
    assert!(bodies.contains(&"meta l4proto udp udp sport @cali-ports-80_8000-8100 counter accept"));
    assert!(bodies.contains(&"meta l4proto tcp tcp dport != @cali-ports-22_443 counter accept"));
    assert!(bodies.contains(&"meta l4proto udp udp dport 53 counter accept"));
    let p = nft.payload();
    assert!(p.contains(
        "add set ip calico cali-ports-80_8000-8100 { type inet_service ; flags interval ; }\n\
         add element ip calico cali-ports-80_8000-8100 { 80, 8000-8100 }\n"
    ));
    // Below the threshold the same rules keep Felix's anonymous sets.
    let mut small = rs.clone();
    small
        .tables
        .get_mut(&Table::Filter)
        .unwrap()
        .chains
        .remove("cali-filler");
    let nft = translate_ruleset(&small).unwrap();
    assert!(nft.sets().iter().all(|s| s.kind != SetKind::Ports));
    assert!(nft
        .chains()
        .values()
        .flat_map(|c| c.rules.iter())
        .any(|r| r.body == "meta l4proto tcp tcp dport { 80, 8000-8100 } counter accept"));
}

//! Real-kernel checks: the rendered payloads load into a fresh network namespace with
//! `ipset restore` and `iptables-restore`, and what `iptables-save` reads back parses into the
//! same chains with the same rule hashes, and simulates to the same verdicts.
//! Needs root (CI runs as root); every namespace is removed by a Drop guard.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use iptables_backend::save::parse_save;
use iptables_backend::sim::{IpSets, Packet, PathKind, Simulator};
use iptables_backend::{render, Table};
use policy_ir::ir::*;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!(
            "ipt-k{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        Netns(name)
    }

    fn run(&self, prog: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, prog])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn loaded_ir() -> NodeIr {
    let mut ir = example_ir();
    // Exercise more match kinds: many CIDRs (ipset), negated lists, named ports, ICMP, ranges.
    let mut r = rule(RuleAction::Allow);
    r.protocol = Some(Protocol::Tcp);
    r.source.nets = (0..20)
        .map(|i| format!("10.{i}.0.0/16").parse().unwrap())
        .collect();
    r.source.not_nets = vec![
        "10.1.2.0/24".parse().unwrap(),
        "10.3.4.0/24".parse().unwrap(),
    ];
    r.destination.ports = (1..=20)
        .map(|p| PortRange {
            first: p * 100,
            last: p * 100 + 5,
        })
        .collect();
    let mut icmp = rule(RuleAction::Allow);
    icmp.protocol = Some(Protocol::Icmp);
    icmp.icmp = Some(IcmpMatch {
        icmp_type: 8,
        code: Some(0),
    });
    let mut np = rule(RuleAction::Deny);
    np.protocol = Some(Protocol::Tcp);
    np.destination.named_port_sets = vec!["n:v1r2STTlO7TacjeCimdhkpVVM3zO_Bl2xCq5fw".into()];
    np.not_protocol = None;
    let p = ir.profiles.get_mut("kns.default").unwrap();
    p.inbound.splice(0..0, [r, icmp, np]);
    ir.ipsets.insert(
        "n:v1r2STTlO7TacjeCimdhkpVVM3zO_Bl2xCq5fw".into(),
        IpSetIr {
            id: "n:v1r2STTlO7TacjeCimdhkpVVM3zO_Bl2xCq5fw".into(),
            description: "named port http".into(),
            members: IpSetMembers::IpPorts(
                [("10.65.0.2".parse().unwrap(), Protocol::Tcp, 8080)]
                    .into_iter()
                    .collect(),
            ),
        },
    );
    ir
}

#[test]
fn payloads_load_into_a_fresh_namespace_and_read_back_identically() {
    let ir = loaded_ir();
    let rs = render(&ir);
    let ns = Netns::new();
    let (ok, _, err) = ns.run("ipset", &["restore"], &rs.ipset_restore_payload());
    assert!(ok, "ipset restore failed: {err}");
    let (ok, _, err) = ns.run("iptables-restore", &[], &rs.combined_restore_payload());
    assert!(ok, "iptables-restore failed: {err}");
    // Reloading the filter table with --noflush (the apply path) is accepted too.
    let (ok, _, err) = ns.run(
        "iptables-restore",
        &["--noflush", "--test"],
        &rs.restore_payload(Table::Filter),
    );
    assert!(ok, "iptables-restore --noflush --test failed: {err}");

    let (ok, saved_text, err) = ns.run("iptables-save", &[], "");
    assert!(ok, "{err}");
    let saved = parse_save(&saved_text).unwrap_or_else(|e| panic!("{e}\n{saved_text}"));
    for (table, t) in &rs.tables {
        let st = &saved.tables[table.name()];
        for (name, rules) in &t.chains {
            let got: Vec<Option<String>> = st.chains[name]
                .rules
                .iter()
                .map(|r| r.hash.clone())
                .collect();
            let want: Vec<Option<String>> = rules.iter().map(|r| Some(r.hash.clone())).collect();
            assert_eq!(got, want, "{table} {name}");
        }
        for (k, r) in &t.inserts {
            assert!(
                st.chains[k]
                    .rules
                    .iter()
                    .any(|x| x.hash.as_deref() == Some(&r.hash)),
                "{k}"
            );
        }
    }
    let (ok, set_text, err) = ns.run("ipset", &["save"], "");
    assert!(ok, "{err}");
    let kernel_sets = IpSets::parse_restore(&set_text).unwrap();

    // The simulator gives the same verdicts on the kernel's own save text as on ours.
    let ours = parse_save(&rs.combined_restore_payload()).unwrap();
    let our_sets = IpSets::parse_restore(&rs.ipset_restore_payload()).unwrap();
    let sim_ours = Simulator::new(&ours, &our_sets);
    let sim_kernel = Simulator::new(&saved, &kernel_sets);
    let mut compared = 0;
    let mut accepted = 0;
    for (src, i) in [
        ("10.65.0.2", "cali2333"),
        ("10.4.9.9", "eth0"),
        ("10.1.2.3", "eth0"),
        ("192.168.3.3", "eth0"),
    ] {
        for (dst, o) in [
            ("10.65.0.1", "cali1234"),
            ("10.65.0.2", "cali2333"),
            ("10.65.0.3", "cali2444"),
        ] {
            for (proto, port) in [
                (6u8, 443u16),
                (6, 22),
                (6, 8080),
                (6, 1003),
                (17, 53),
                (1, 0),
            ] {
                let mut p = Packet::new(
                    src.parse().unwrap(),
                    dst.parse().unwrap(),
                    proto,
                    Some(port),
                );
                p.in_iface = Some(i.into());
                p.out_iface = Some(o.into());
                let a = sim_ours.run(&p, PathKind::Forward).unwrap();
                let b = sim_kernel.run(&p, PathKind::Forward).unwrap();
                assert_eq!(a.verdict, b.verdict, "{p:?}");
                // Rule hits agree one for one (the kernel text also declares the kernel chains,
                // whose policies show up as extra "policy ACCEPT" steps).
                let hits = |r: &iptables_backend::sim::SimResult| -> Vec<Option<String>> {
                    r.steps
                        .iter()
                        .filter(|s| s.rule > 0)
                        .map(|s| s.hash.clone())
                        .collect()
                };
                assert_eq!(hits(&a), hits(&b), "{p:?}");
                compared += 1;
                accepted += usize::from(a.verdict == iptables_backend::sim::SimVerdict::Accept);
            }
        }
    }
    assert!(accepted > 0 && accepted < compared, "{accepted}/{compared}");
}

#[test]
fn host_endpoint_payload_loads() {
    let mut ir = example_ir();
    ir.host_endpoints = vec![HostEndpointIr {
        id: EndpointId {
            namespace: None,
            name: "h".into(),
        },
        interface: "*".into(),
        addrs: vec![],
        ingress: EndpointPolicyIr {
            tiers: vec![],
            profiles: vec!["kns.default".into()],
        },
        egress: EndpointPolicyIr {
            tiers: vec![],
            profiles: vec![],
        },
    }];
    let rs = render(&ir);
    let ns = Netns::new();
    let (ok, _, err) = ns.run("ipset", &["restore"], &rs.ipset_restore_payload());
    assert!(ok, "{err}");
    let (ok, _, err) = ns.run("iptables-restore", &[], &rs.combined_restore_payload());
    assert!(ok, "{err}\n{}", rs.combined_restore_payload());
    let (_, text, _) = ns.run("iptables-save", &["-t", "mangle"], "");
    assert!(text.contains(":cali-th-any-interface-at-all"), "{text}");
}

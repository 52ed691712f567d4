//! Golden cases: every `golden/cases/<name>/input.yaml` is compiled for each of its nodes and
//! the `iptables-restore` and `ipset restore` payloads are pinned as insta snapshots in
//! `golden/cases/<name>/expected/`. Review changes with `cargo insta review`.
//!
//! Each case is also probed exhaustively: every ordered pair of its endpoints (plus an outside
//! address) × a set of protocols/ports is traced through the simulated rules of the nodes
//! involved and must get the oracle's verdict, with no exceptions (failsafe ports, host -> local
//! workload and workload -> own host are part of the oracle, see ARCHITECTURE.md, policy-ir).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use iptables_backend::trace::{trace, NodeRules, TraceEnd};
use iptables_backend::{graph, render};
use policy_ir::ir::{NodeIr, Protocol};
use policy_ir::oracle::{DecidedBy, Probe};
use policy_ir::Model;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

fn cases() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(cases_dir())
        .expect("golden/cases")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("input.yaml").is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    v.sort();
    v
}

fn load(dir: &Path) -> Model {
    Model::load(&[dir.join("input.yaml")]).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Nodes with at least one endpoint, and their IR.
fn node_irs(model: &Model) -> BTreeMap<String, NodeIr> {
    model
        .nodes()
        .into_iter()
        .map(|n| {
            let ir = model.node_ir(&n);
            (n, ir)
        })
        .filter(|(_, ir)| !ir.workloads.is_empty() || !ir.host_endpoints.is_empty())
        .collect()
}

#[test]
fn golden_snapshots() {
    let all = cases();
    assert!(
        all.len() >= 11,
        "expected the golden cases, found {}",
        all.len()
    );
    for (name, dir) in all {
        let model = load(&dir);
        let irs = node_irs(&model);
        assert!(!irs.is_empty(), "case {name}: no node has endpoints");
        for (node, ir) in irs {
            let rs = render(&ir);
            let problems = graph::check(&rs);
            assert!(problems.is_empty(), "case {name} node {node}: {problems:?}");
            let mut settings = insta::Settings::clone_current();
            settings.set_snapshot_path(dir.join("expected"));
            settings.set_prepend_module_to_snapshot(false);
            settings.set_omit_expression(true);
            settings.set_description(format!("golden case {name}, node {node}"));
            settings.bind(|| {
                insta::assert_snapshot!(
                    format!("{node}.iptables.rules"),
                    rs.combined_restore_payload()
                );
                insta::assert_snapshot!(format!("{node}.ipsets.rules"), rs.ipset_restore_payload());
            });
        }
    }
}

/// An endpoint of a case, as the oracle names it and as the tracer sees it.
struct Ep {
    spec: String,
    end: TraceEnd,
}

fn endpoints(irs: &BTreeMap<String, NodeIr>) -> Vec<Ep> {
    let mut v = Vec::new();
    for (node, ir) in irs {
        for w in &ir.workloads {
            let Some(a) = w.addrs.first() else { continue };
            v.push(Ep {
                spec: w.id.to_string(),
                end: TraceEnd::Workload {
                    node: node.clone(),
                    iface: w.interface.clone(),
                    ip: a.addr(),
                },
            });
        }
        for h in &ir.host_endpoints {
            let Some(a) = h.addrs.first() else { continue };
            v.push(Ep {
                spec: a.addr().to_string(),
                end: TraceEnd::Host {
                    node: node.clone(),
                    iface: h.interface.clone(),
                    ip: a.addr(),
                },
            });
        }
    }
    v.push(Ep {
        spec: "198.51.100.7".into(),
        end: TraceEnd::External {
            ip: "198.51.100.7".parse().unwrap(),
        },
    });
    v
}

const PROBES: [(Protocol, Option<u16>); 14] = [
    (Protocol::Tcp, Some(22)),
    (Protocol::Tcp, Some(23)),
    (Protocol::Tcp, Some(80)),
    (Protocol::Tcp, Some(443)),
    (Protocol::Tcp, Some(3306)),
    (Protocol::Tcp, Some(5432)),
    (Protocol::Tcp, Some(8080)),
    (Protocol::Tcp, Some(9090)),
    (Protocol::Tcp, Some(9100)),
    (Protocol::Udp, Some(53)),
    (Protocol::Udp, Some(123)),
    (Protocol::Udp, Some(5000)),
    (Protocol::Icmp, None),
    (Protocol::Sctp, Some(80)),
];

#[test]
fn golden_cases_agree_with_the_oracle_on_every_pair() {
    let mut total = 0;
    let mut allowed = 0;
    let mut disagreements = Vec::new();
    // Probes the oracle decides by a host rule (failsafe port, host -> local workload,
    // DefaultEndpointToHostAction), by kind: they must agree like all others.
    let mut host_rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, dir) in cases() {
        let model = load(&dir);
        let irs = node_irs(&model);
        let mut nodes = BTreeMap::new();
        for (n, ir) in &irs {
            nodes.insert(n.clone(), NodeRules::new(ir).expect("render"));
        }
        let eps = endpoints(&irs);
        // The 300-endpoint case is probed on a sample of pairs to keep the test quick.
        let stride = if eps.len() > 40 { 37 } else { 1 };
        for (i, a) in eps.iter().enumerate() {
            for (j, b) in eps.iter().enumerate() {
                if i == j || !(i * eps.len() + j).is_multiple_of(stride) {
                    continue;
                }
                if matches!(a.end, TraceEnd::External { .. })
                    && matches!(b.end, TraceEnd::External { .. })
                {
                    continue;
                }
                if let (TraceEnd::Host { node: x, .. }, TraceEnd::Host { node: y, .. }) =
                    (&a.end, &b.end)
                {
                    if x == y {
                        continue;
                    }
                }
                for (proto, port) in PROBES {
                    let probe = Probe {
                        from: a.spec.clone(),
                        to: b.spec.clone(),
                        protocol: proto,
                        port,
                    };
                    let want = model
                        .verdict(&probe)
                        .unwrap_or_else(|e| panic!("{name}: oracle {probe:?}: {e}"));
                    let want_allow = matches!(want.verdict, policy_ir::oracle::Verdict::Allow);
                    let got = trace(&nodes, &a.end, &b.end, proto.number(), port)
                        .unwrap_or_else(|e| panic!("{name}: trace {probe:?}: {e}"));
                    total += 1;
                    allowed += usize::from(got.allowed);
                    for side in [&want.egress, &want.ingress] {
                        if matches!(
                            side.decided_by,
                            DecidedBy::Failsafe
                                | DecidedBy::HostToLocalWorkload
                                | DecidedBy::DefaultEndpointToHostAction
                        ) {
                            host_rules
                                .entry(format!("{:?}", side.decided_by))
                                .or_default()
                                .push(format!(
                                    "{name}: {} -> {} {proto:?}/{port:?}",
                                    a.spec, b.spec
                                ));
                        }
                    }
                    if got.allowed != want_allow {
                        disagreements.push(format!(
                            "{name}: {} -> {} {:?}/{:?}: oracle {}, simulated {} (last rule {:?})",
                            a.spec,
                            b.spec,
                            proto,
                            port,
                            if want_allow { "allow" } else { "deny" },
                            if got.allowed { "allow" } else { "deny" },
                            got.path.last().map(|s| format!(
                                "{} {} #{} {}",
                                s.node, s.chain, s.rule, s.action
                            ))
                        ));
                    }
                }
            }
        }
    }
    let counts: Vec<String> = host_rules
        .iter()
        .map(|(k, v)| format!("{k} {}", v.len()))
        .collect();
    eprintln!(
        "golden probes: {total} traced, {allowed} allowed, {} disagreements; decided by host rules: {}",
        disagreements.len(),
        counts.join(", ")
    );
    assert!(
        total > 1000 && allowed > 0 && allowed < total,
        "{allowed}/{total}"
    );
    // The failsafe probes of the host-endpoint case (inbound SSH, outbound DNS) are allowed by
    // the oracle's failsafe rule, not left as exceptions.
    let failsafe = host_rules.get("Failsafe").cloned().unwrap_or_default();
    for p in [
        "host-endpoint-failsafe: 192.168.50.1 -> 198.51.100.7 Udp/Some(53)",
        "host-endpoint-failsafe: 198.51.100.7 -> 192.168.50.1 Tcp/Some(22)",
    ] {
        assert!(
            failsafe.iter().any(|f| f == p),
            "{p} not decided by failsafe: {failsafe:?}"
        );
    }
    assert!(
        disagreements.is_empty(),
        "{} of {total} probes disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

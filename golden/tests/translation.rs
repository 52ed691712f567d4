//! Translation validation against the oracle: random Calico resources (tiers, global and
//! namespaced policies, profiles, workloads on two nodes, a network set) are loaded through
//! policy-ir, rendered, and every probe between their endpoints is traced through the simulated
//! rules; the result must equal `Model::verdict` for the same probe. Every pair is probed,
//! same-node host/workload pairs included (failsafe ports, host -> local workload and
//! workload -> own host with each DefaultEndpointToHostAction are part of the oracle).

use std::collections::BTreeMap;
use std::fmt::Write;

use iptables_backend::trace::{trace, NodeRules, TraceEnd};
use policy_ir::ir::Protocol;
use policy_ir::oracle::{Probe, Verdict};
use policy_ir::Model;
use proptest::prelude::*;

const APPS: [&str; 3] = ["web", "db", "cache"];
const NAMESPACES: [&str; 2] = ["alpha", "beta"];
const SELECTORS: [&str; 7] = [
    "all()",
    "app == 'web'",
    "app == 'db'",
    "app != 'web'",
    "has(tier)",
    "app in {'db', 'cache'}",
    "!has(app)",
];
const NETS: [&str; 5] = [
    "10.90.0.0/16",
    "10.90.1.0/24",
    "10.90.1.1/32",
    "198.51.100.0/24",
    "0.0.0.0/0",
];
const PORTS: [&str; 6] = ["80", "443", "5432", "8000:8100", "22", "http"];

#[derive(Debug, Clone)]
struct GenRule {
    action: usize,
    proto: Option<usize>,
    src_sel: Option<usize>,
    dst_sel: Option<usize>,
    src_nets: Vec<usize>,
    not_dst_nets: Vec<usize>,
    ports: Vec<usize>,
    not_ports: Vec<usize>,
}

fn rule_s() -> impl Strategy<Value = GenRule> {
    (
        0usize..5,
        prop::option::of(0usize..3),
        prop::option::weighted(0.4, 0..SELECTORS.len()),
        prop::option::weighted(0.2, 0..SELECTORS.len()),
        prop::collection::vec(0..NETS.len(), 0..3),
        prop::collection::vec(0..NETS.len() - 1, 0..2),
        prop::collection::vec(0..PORTS.len(), 0..3),
        prop::collection::vec(0..PORTS.len(), 0..2),
    )
        .prop_map(
            |(action, proto, src_sel, dst_sel, src_nets, not_dst_nets, ports, not_ports)| GenRule {
                action,
                proto,
                src_sel,
                dst_sel,
                src_nets,
                not_dst_nets,
                ports,
                not_ports,
            },
        )
}

fn render_rule(r: &GenRule, out: &mut String) {
    let action = ["Allow", "Allow", "Deny", "Pass", "Log"][r.action];
    let _ = writeln!(out, "  - action: {action}");
    let proto = r.proto.map(|p| ["TCP", "UDP", "ICMP"][p]);
    if let Some(p) = proto {
        let _ = writeln!(out, "    protocol: {p}");
    }
    let ported = matches!(proto, Some("TCP" | "UDP"));
    let mut src = String::new();
    if let Some(s) = r.src_sel {
        let _ = writeln!(src, "      selector: \"{}\"", SELECTORS[s]);
    }
    if !r.src_nets.is_empty() {
        let nets: Vec<&str> = r.src_nets.iter().map(|i| NETS[*i]).collect();
        let _ = writeln!(src, "      nets: [{}]", nets.join(", "));
    }
    if !src.is_empty() {
        let _ = write!(out, "    source:\n{src}");
    }
    let mut dst = String::new();
    if let Some(s) = r.dst_sel {
        let _ = writeln!(dst, "      selector: \"{}\"", SELECTORS[s]);
    }
    if !r.not_dst_nets.is_empty() {
        let nets: Vec<&str> = r.not_dst_nets.iter().map(|i| NETS[*i]).collect();
        let _ = writeln!(dst, "      notNets: [{}]", nets.join(", "));
    }
    if ported && !r.ports.is_empty() {
        let p: Vec<String> = r
            .ports
            .iter()
            .map(|i| format!("\"{}\"", PORTS[*i]))
            .collect();
        let _ = writeln!(dst, "      ports: [{}]", p.join(", "));
    }
    if ported && !r.not_ports.is_empty() {
        let p: Vec<String> = r
            .not_ports
            .iter()
            .map(|i| format!("\"{}\"", PORTS[*i]))
            .collect();
        let _ = writeln!(dst, "      notPorts: [{}]", p.join(", "));
    }
    if !dst.is_empty() {
        let _ = write!(out, "    destination:\n{dst}");
    }
}

/// Workloads (app, namespace, node, has `tier` label), policies, profile ingress rules,
/// whether tier "security" defaults to Pass, a host endpoint per node (its `app` label), and
/// FelixConfiguration `default` (DefaultEndpointToHostAction index, failsafe ports overridden).
type World = (
    Vec<(usize, usize, usize, bool)>,
    Vec<GenPolicy>,
    Vec<GenRule>,
    bool,
    Vec<Option<usize>>,
    Option<(usize, usize)>,
);

const E2H_ACTIONS: [&str; 3] = ["Drop", "Accept", "Return"];

#[derive(Debug, Clone)]
struct GenPolicy {
    namespaced: bool,
    tier: usize,
    order: Option<u8>,
    selector: usize,
    ingress: Vec<GenRule>,
    egress: Vec<GenRule>,
}

fn policy_s() -> impl Strategy<Value = GenPolicy> {
    (
        any::<bool>(),
        0usize..2,
        prop::option::of(0u8..5),
        0..SELECTORS.len(),
        prop::collection::vec(rule_s(), 0..4),
        prop::collection::vec(rule_s(), 0..3),
    )
        .prop_map(
            |(namespaced, tier, order, selector, ingress, egress)| GenPolicy {
                namespaced,
                tier,
                order,
                selector,
                ingress,
                egress,
            },
        )
}

fn world_s() -> impl Strategy<Value = World> {
    (
        // workloads: (app, namespace, node, has tier label)
        prop::collection::vec(
            (0usize..APPS.len(), 0usize..2, 0usize..2, any::<bool>()),
            2..5,
        ),
        prop::collection::vec(policy_s(), 0..5),
        prop::collection::vec(rule_s(), 0..3),
        any::<bool>(),
        prop::collection::vec(prop::option::weighted(0.6, 0usize..APPS.len()), 2),
        // FelixConfiguration: endpoint-to-host action; failsafes none / plain / with nets.
        prop::option::of((0usize..E2H_ACTIONS.len(), 0usize..3)),
    )
}

fn yaml(world: &World) -> String {
    let (wls, pols, prof_rules, security_pass, heps, felix) = world;
    let mut y = String::new();
    if let Some((action, failsafe)) = felix {
        let _ = write!(
            y,
            "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  defaultEndpointToHostAction: {}\n",
            E2H_ACTIONS[*action]
        );
        match failsafe {
            0 => {}
            1 => y.push_str("  failsafeInboundHostPorts: [{protocol: TCP, port: 5432}]\n  failsafeOutboundHostPorts: [{protocol: UDP, port: 443}]\n"),
            // Entries limited to a remote network: the source inbound, the destination outbound.
            _ => y.push_str("  failsafeInboundHostPorts: [{protocol: TCP, port: 5432, net: 10.90.1.0/24}]\n  failsafeOutboundHostPorts: [{protocol: UDP, port: 443, net: 198.51.100.0/24}, {protocol: TCP, port: 22, net: 10.90.2.0/24}]\n"),
        }
        y.push_str("---\n");
    }
    let _ = write!(
        y,
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: security\nspec:\n  order: 10\n  defaultAction: {}\n",
        if *security_pass { "Pass" } else { "Deny" }
    );
    for (i, p) in pols.iter().enumerate() {
        let tier = ["security", "default"][p.tier];
        let name = if tier == "default" {
            format!("p{i}")
        } else {
            format!("security.p{i}")
        };
        y.push_str("---\napiVersion: projectcalico.org/v3\n");
        if p.namespaced {
            let _ = write!(
                y,
                "kind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {}\n",
                NAMESPACES[i % 2]
            );
        } else {
            let _ = write!(y, "kind: GlobalNetworkPolicy\nmetadata:\n  name: {name}\n");
        }
        let _ = write!(
            y,
            "spec:\n  tier: {tier}\n  selector: \"{}\"\n",
            SELECTORS[p.selector]
        );
        if let Some(o) = p.order {
            let _ = writeln!(y, "  order: {o}");
        }
        let _ = writeln!(y, "  types: [Ingress, Egress]");
        y.push_str("  ingress:\n");
        if p.ingress.is_empty() {
            y.truncate(y.len() - "  ingress:\n".len());
            y.push_str("  ingress: []\n");
        }
        for r in &p.ingress {
            render_rule(r, &mut y);
        }
        if p.egress.is_empty() {
            y.push_str("  egress: []\n");
        } else {
            y.push_str("  egress:\n");
            for r in &p.egress {
                render_rule(r, &mut y);
            }
        }
    }
    y.push_str(
        "---\napiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: prof\nspec:\n",
    );
    if prof_rules.is_empty() {
        y.push_str("  ingress: []\n");
    } else {
        y.push_str("  ingress:\n");
        for r in prof_rules {
            render_rule(r, &mut y);
        }
    }
    y.push_str("  egress:\n  - action: Allow\n");
    for (i, (app, ns, node, tier)) in wls.iter().enumerate() {
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  name: w{i}\n  namespace: {}\n  labels:\n    app: {}\n{}spec:\n  node: node{node}\n  orchestrator: k8s\n  pod: w{i}\n  endpoint: eth0\n  interfaceName: cali{i:011}\n  ipNetworks: [10.90.1.{}/32]\n  profiles: [prof]\n  ports:\n  - name: http\n    port: {}\n    protocol: TCP\n",
            NAMESPACES[*ns],
            APPS[*app],
            if *tier { "    tier: gold\n" } else { "" },
            i + 1,
            [80, 8050, 5432][i % 3]
        );
    }
    for (n, app) in heps.iter().enumerate() {
        if let Some(app) = app {
            let _ = write!(
                y,
                "---\napiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: hep{n}\n  labels:\n    app: {}\nspec:\n  node: node{n}\n  interfaceName: eth0\n  expectedIPs: [10.90.2.{}]\n  profiles: [prof]\n",
                APPS[*app],
                n + 1
            );
        }
    }
    y
}

const PROBES: [(Protocol, Option<u16>); 7] = [
    (Protocol::Tcp, Some(22)),
    (Protocol::Tcp, Some(80)),
    (Protocol::Tcp, Some(5432)),
    (Protocol::Tcp, Some(8050)),
    (Protocol::Udp, Some(443)),
    (Protocol::Udp, Some(22)),
    (Protocol::Icmp, None),
];

proptest! {
    // 128 worlds in CI; PROPTEST_CASES=N for a deeper run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn simulator_agrees_with_oracle(world in world_s()) {
        let text = yaml(&world);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("world.yaml");
        std::fs::write(&file, &text).unwrap();
        let model = Model::load(std::slice::from_ref(&file)).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let mut nodes = BTreeMap::new();
        let mut ends = Vec::new();
        for n in model.nodes() {
            let ir = model.node_ir(&n);
            for h in &ir.host_endpoints {
                let ip = h.addrs[0].addr();
                ends.push((ip.to_string(), TraceEnd::Host { node: n.clone(), iface: h.interface.clone(), ip }));
            }
            for w in &ir.workloads {
                ends.push((w.id.to_string(), TraceEnd::Workload { node: n.clone(), iface: w.interface.clone(), ip: w.addrs[0].addr() }));
            }
            nodes.insert(n.clone(), NodeRules::new(&ir).unwrap());
        }
        ends.push(("198.51.100.9".into(), TraceEnd::External { ip: "198.51.100.9".parse().unwrap() }));
        for (a, ea) in &ends {
            for (b, eb) in &ends {
                if a == b || (matches!(ea, TraceEnd::External { .. }) && matches!(eb, TraceEnd::External { .. })) {
                    continue;
                }
                for (protocol, port) in PROBES {
                    let probe = Probe { from: a.clone(), to: b.clone(), protocol, port };
                    let want = model.verdict(&probe).map_err(|e| TestCaseError::fail(format!("oracle: {e}")))?;
                    let got = trace(&nodes, ea, eb, protocol.number(), port).unwrap();
                    prop_assert_eq!(
                        got.allowed,
                        matches!(want.verdict, Verdict::Allow),
                        "probe {:?}\noracle {:?}\ntrace {:#?}\n{}",
                        probe, want, got.path, text
                    );
                }
            }
        }
    }
}

//! iptables-backend's real rendering of a hand-written IR, applied by the dataplane into a lab
//! node and probed in the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane::apply::apply;
use dataplane::lab::probe::KernelProbe;
use dataplane::lab::{Lab, LabSpec, LabWorkload, ProbeProto};
use dataplane::plan::compute;
use dataplane::state::{read_current, Desired};
use policy_ir::ir::*;

fn allow_all(index: usize) -> RuleIr {
    RuleIr {
        action: RuleAction::Allow,
        protocol: None,
        not_protocol: None,
        icmp: None,
        not_icmp: None,
        source: MatchSide::default(),
        destination: MatchSide::default(),
        origin: RuleOrigin {
            index,
            text: "allow".into(),
        },
    }
}

fn wep(name: &str, iface: &str, ip: &str, ingress: EndpointPolicyIr) -> WorkloadEndpointIr {
    WorkloadEndpointIr {
        id: EndpointId {
            namespace: Some("shop".into()),
            name: name.into(),
        },
        interface: iface.into(),
        addrs: vec![format!("{ip}/32").parse().unwrap()],
        admin_up: true,
        ingress,
        egress: EndpointPolicyIr {
            tiers: vec![],
            profiles: vec!["allow-all".into()],
        },
    }
}

/// frontend and database on one node; policy `db` on database ingress denies TCP 3306 from the
/// frontend set, then allows everything; both carry profile allow-all.
fn node_ir(db_port: u16) -> NodeIr {
    let pid = PolicyId {
        kind: PolicyKind::GlobalNetworkPolicy,
        namespace: None,
        name: "db".into(),
    };
    let mut deny = allow_all(0);
    deny.action = RuleAction::Deny;
    deny.protocol = Some(Protocol::Tcp);
    deny.source.ipsets = vec!["s:front".into()];
    deny.destination.ports = vec![PortRange {
        first: db_port,
        last: db_port,
    }];
    let policy = PolicyIr {
        id: pid.clone(),
        tier: "default".into(),
        inbound: vec![deny, allow_all(1)],
        outbound: vec![],
    };
    let mut workloads = vec![
        wep(
            "database",
            "calidb0000001",
            "10.65.0.2",
            EndpointPolicyIr {
                tiers: vec![TierIr {
                    name: "default".into(),
                    default_action: TierDefaultAction::Deny,
                    policies: vec![pid.clone()],
                }],
                profiles: vec!["allow-all".into()],
            },
        ),
        wep(
            "frontend",
            "califront0001",
            "10.65.0.1",
            EndpointPolicyIr {
                tiers: vec![],
                profiles: vec!["allow-all".into()],
            },
        ),
    ];
    workloads.sort_by(|a, b| a.interface.cmp(&b.interface));
    NodeIr {
        node: "n1".into(),
        settings: DataplaneSettings::default(),
        workloads,
        host_endpoints: vec![],
        policies: BTreeMap::from([(pid, policy)]),
        profiles: BTreeMap::from([(
            "allow-all".to_string(),
            ProfileIr {
                name: "allow-all".into(),
                inbound: vec![allow_all(0)],
                outbound: vec![allow_all(0)],
            },
        )]),
        ipsets: BTreeMap::from([(
            "s:front".to_string(),
            IpSetIr {
                id: "s:front".into(),
                description: "role == 'frontend'".into(),
                members: IpSetMembers::Nets(BTreeSet::from(["10.65.0.1/32".parse().unwrap()])),
            },
        )]),
        ip_pools: vec![],
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn rendered_rules_apply_idempotently_and_decide_in_the_kernel() {
    let spec = LabSpec {
        nodes: vec!["n1".into()],
        workloads: vec![
            LabWorkload {
                key: "shop/frontend".into(),
                node: "n1".into(),
                interface: "califront0001".into(),
                addrs: vec![ip("10.65.0.1")],
            },
            LabWorkload {
                key: "shop/database".into(),
                node: "n1".into(),
                interface: "calidb0000001".into(),
                addrs: vec![ip("10.65.0.2")],
            },
        ],
        outside: vec![],
    };
    let mut lab = Lab::build(&spec).expect("lab");
    let node = lab.node_target("n1").unwrap();
    let want = Desired::from_ruleset(&iptables_backend::render(&node_ir(3306)));
    apply(&node, &want).expect("apply rendered rules");
    let again = compute(&want, &read_current(&node).unwrap());
    assert!(again.is_empty(), "second apply would change: {again:?}");

    let p = |s: &str, d: &str, proto, port| KernelProbe {
        src: ip(s),
        dst: ip(d),
        proto,
        port,
    };
    let probes = vec![
        p("10.65.0.1", "10.65.0.2", ProbeProto::Tcp, 3306),
        p("10.65.0.1", "10.65.0.2", ProbeProto::Tcp, 80),
        p("10.65.0.2", "10.65.0.1", ProbeProto::Tcp, 3306),
        p("10.65.0.1", "10.65.0.2", ProbeProto::Udp, 3306),
        p("10.65.0.1", "10.65.0.2", ProbeProto::Icmp, 0),
        p("10.65.0.1", "10.65.0.2", ProbeProto::Sctp, 3306),
    ];
    let expect = [false, true, true, true, true, true];
    let got = lab.run_probes(&probes, Duration::from_millis(600)).unwrap();
    for ((pr, o), e) in probes.iter().zip(&got).zip(expect) {
        assert_eq!(o.allowed, e, "{pr:?}: {o:?}");
    }

    // Policy edit (3306 → 5432): only the policy chain is rewritten; the verdicts move with it.
    let edited = Desired::from_ruleset(&iptables_backend::render(&node_ir(5432)));
    let r = apply(&node, &edited).expect("edit");
    let written = dataplane::plan::chains_written(&r.plan);
    assert_eq!(written.values().flatten().count(), 1, "{written:?}");
    assert!(
        written
            .values()
            .flatten()
            .all(|c| c.starts_with("cali-pi-")),
        "{written:?}"
    );
    lab.flush_conntrack().unwrap();
    let probes2 = vec![
        p("10.65.0.1", "10.65.0.2", ProbeProto::Tcp, 3306),
        p("10.65.0.1", "10.65.0.2", ProbeProto::Tcp, 5432),
    ];
    let got = lab
        .run_probes(&probes2, Duration::from_millis(600))
        .unwrap();
    assert!(got[0].allowed && !got[1].allowed, "{got:?}");
}

struct HandModel;

impl dataplane::lab::scenario::Scenario for HandModel {
    fn resolve(&self, spec: &str) -> Result<dataplane::lab::scenario::Resolved, String> {
        use dataplane::lab::scenario::Resolved;
        let wl = |key: &str, iface: &str, a: &str| Resolved::Workload {
            key: key.into(),
            node: "n1".into(),
            interface: Some(iface.into()),
            addrs: vec![ip(a)],
        };
        match spec {
            "shop/frontend" => Ok(wl(spec, "califront0001", "10.65.0.1")),
            "shop/database" => Ok(wl(spec, "calidb0000001", "10.65.0.2")),
            other => other
                .parse()
                .map(|addr| Resolved::Outside { addr })
                .map_err(|_| format!("no endpoint named {other}")),
        }
    }
    fn rules_for(&self, node: &str) -> Result<dataplane::lab::scenario::NodeRules, String> {
        assert_eq!(node, "n1");
        Ok(dataplane::lab::scenario::NodeRules::Iptables(
            Desired::from_ruleset(&iptables_backend::render(&node_ir(3306))),
        ))
    }
    fn oracle(
        &self,
        p: &dataplane::lab::scenario::ProbeSpec,
    ) -> Result<dataplane::lab::scenario::OracleAnswer, String> {
        // The policy above, by hand: TCP 3306 from the frontend set to the database is denied.
        let deny = p.from == "shop/frontend"
            && p.to == "shop/database"
            && p.protocol == ProbeProto::Tcp
            && p.port == Some(3306);
        Ok(dataplane::lab::scenario::OracleAnswer {
            allow: !deny,
            egress: serde_json::Value::Null,
            ingress: serde_json::Value::Null,
        })
    }
}

#[test]
fn the_scenario_runner_puts_kernel_beside_oracle_and_cleans_up() {
    use dataplane::lab::scenario::{run_scenario, LabOptions};
    use dataplane::model::probes_from_file;
    let probes = probes_from_file(
        "probes.yaml",
        "- {from: shop/frontend, to: shop/database, protocol: tcp, port: 3306}\n\
         - {from: shop/frontend, to: shop/database, protocol: tcp, port: 80}\n\
         - {from: shop/database, to: shop/frontend, protocol: udp, port: 53}\n\
         - {from: 198.51.100.9, to: shop/database, protocol: tcp, port: 3306}\n\
         - {from: shop/frontend, to: 198.51.100.9, protocol: icmp}\n\
         - {from: 198.51.100.9, to: shop/frontend, protocol: sctp, port: 9}\n",
    )
    .unwrap();
    let report = run_scenario(&HandModel, &probes, &LabOptions::default()).expect("scenario");
    let verdicts: Vec<&str> = report.probes.iter().map(|r| r.verdict.as_str()).collect();
    assert_eq!(
        verdicts,
        ["deny", "allow", "allow", "allow", "allow", "allow"]
    );
    assert_eq!(report.disagreements, 0, "{report:#?}");
    let ns = report.namespaces["n1"].clone();
    let list = dataplane::netns::Target::Current
        .run("ip", &["netns", "list"], None)
        .unwrap();
    assert!(!list.contains(&ns), "lab namespace {ns} left behind");

    // The JSON entry carries the kernel verdict as `verdict`, beside `oracle`.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["probes"][0]["verdict"], "deny");
    assert_eq!(json["probes"][0]["oracle"], "deny");
}

#[test]
fn bad_probe_input_fails_before_any_namespace_exists() {
    use dataplane::lab::scenario::{run_scenario, LabOptions};
    use dataplane::model::probes_from_file;
    let e = probes_from_file("p.yaml", "- {from: a, to: b, protocol: gre}\n").unwrap_err();
    assert!(
        e.contains("p.yaml:1:30: [0].protocol: unknown protocol \"gre\""),
        "{e}"
    );
    let probes = probes_from_file(
        "p.json",
        r#"[{"from": "shop/frontend", "to": "shop/nope", "protocol": "tcp", "port": 1}]"#,
    )
    .unwrap();
    let e = run_scenario(&HandModel, &probes, &LabOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "lab: probe 0 field `to` (shop/nope): no endpoint named shop/nope"
    );
}

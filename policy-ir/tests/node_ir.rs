//! `Model::node_ir`: only the node's endpoints and what they reference, selectors resolved to
//! IP sets with members.

use std::path::PathBuf;

use policy_ir::ir::*;
use policy_ir::Model;

fn seed() -> Model {
    Model::load(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-tenant.yaml")])
        .unwrap()
}

fn nets(s: &IpSetIr) -> Vec<String> {
    match &s.members {
        IpSetMembers::Nets(n) => n.iter().map(|x| x.to_string()).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn seed_slave2() {
    let ir = seed().node_ir("slave2");
    assert_eq!(ir.node, "slave2");
    assert_eq!(ir.workloads.len(), 1);
    let w = &ir.workloads[0];
    assert_eq!(w.interface, "cali0ef24b3");
    assert_eq!(w.addrs, vec!["172.16.1.3/32".parse().unwrap()]);
    let pid = PolicyId {
        kind: PolicyKind::GlobalNetworkPolicy,
        namespace: None,
        name: "namespace-default".into(),
    };
    assert_eq!(w.ingress.tiers.len(), 1);
    assert_eq!(w.ingress.tiers[0].name, "default");
    assert_eq!(w.ingress.tiers[0].default_action, TierDefaultAction::Deny);
    assert_eq!(w.ingress.tiers[0].policies, vec![pid.clone()]);
    assert_eq!(w.egress.tiers[0].policies, vec![pid.clone()]);
    assert_eq!(w.ingress.profiles, vec!["profile-database".to_string()]);

    let p = &ir.policies[&pid];
    assert_eq!(p.inbound.len(), 1);
    assert_eq!(p.outbound.len(), 1);
    let set_id = &p.inbound[0].source.ipsets[0];
    let set = &ir.ipsets[set_id];
    assert_eq!(set.description, "namespace == \"default\"");
    assert_eq!(
        nets(set),
        vec!["172.16.1.1/32", "172.16.1.2/32", "172.16.1.3/32"]
    );

    let prof = &ir.profiles["profile-database"];
    assert_eq!(prof.inbound.len(), 2);
    assert_eq!(prof.inbound[0].action, RuleAction::Deny);
    let allow = &prof.inbound[1];
    assert_eq!(allow.protocol, Some(Protocol::Tcp));
    assert_eq!(
        allow.destination.ports,
        vec![PortRange {
            first: 3306,
            last: 3306
        }]
    );
    let fe = &ir.ipsets[&allow.source.ipsets[0]];
    assert_eq!(nets(fe), vec!["172.16.1.1/32", "172.16.1.2/32"]);
    assert_eq!(allow.origin.index, 1);

    // Pools and their sets.
    assert_eq!(ir.ip_pools.len(), 1);
    assert_eq!(ir.ip_pools[0].ipip_mode, IpipMode::CrossSubnet);
    assert!(ir.ip_pools[0].nat_outgoing);
    assert_eq!(nets(&ir.ipsets["masq-ipam-pools"]), vec!["172.16.1.0/24"]);
}

#[test]
fn seed_slave1_holds_only_its_own() {
    let ir = seed().node_ir("slave1");
    let ifaces: Vec<&str> = ir.workloads.iter().map(|w| w.interface.as_str()).collect();
    assert_eq!(ifaces, vec!["cali0ef24b1", "cali0ef24b2"]);
    assert!(ir.profiles.is_empty(), "frontends have no profiles");
    assert_eq!(ir.policies.len(), 1);
    // The profile's frontend set is not referenced on slave1.
    assert!(ir
        .ipsets
        .values()
        .all(|s| s.description != "(namespace == \"default\" && service == \"frontend\")"));
}

#[test]
fn selector_set_ids_follow_felix() {
    let m = Model::load_str(
        "t.yaml",
        r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: p}
spec:
  selector: all()
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: "role == 'db'"}
    destination: {ports: [http]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: w, namespace: ns, labels: {role: db}}
spec:
  node: n1
  interfaceName: cali1
  ipNetworks: [10.0.0.1/32]
  ports: [{name: http, protocol: TCP, port: 8080}]
"#,
    )
    .unwrap();
    let ir = m.node_ir("n1");
    let p = ir.policies.values().next().unwrap();
    assert_eq!(
        p.inbound[0].source.ipsets,
        vec!["s:rV61RKD1Q8wo61pyeB0j2rwE3eiBOFbx0SsYKg".to_string()]
    );
    let np = &p.inbound[0].destination.named_port_sets;
    assert_eq!(np.len(), 1);
    // The destination has no selector: the named-port set is over all().
    let expect = policy_ir::resolve::named_port_set_id(
        "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug",
        Protocol::Tcp,
        "http",
    );
    assert_eq!(np[0], expect);
    match &ir.ipsets[&np[0]].members {
        IpSetMembers::IpPorts(m) => {
            assert_eq!(
                m.iter().copied().collect::<Vec<_>>(),
                vec![("10.0.0.1".parse().unwrap(), Protocol::Tcp, 8080)]
            )
        }
        other => panic!("{other:?}"),
    }
    // Felix's vector: role == "db", tcp, http.
    assert_eq!(
        policy_ir::resolve::named_port_set_id(
            "s:rV61RKD1Q8wo61pyeB0j2rwE3eiBOFbx0SsYKg",
            Protocol::Tcp,
            "http"
        ),
        "n:v1r2STTlO7TacjeCimdhkpVVM3zO_Bl2xCq5fw"
    );
}

//! Two-node traces over hand-built IR shaped like the seed tenant.

mod common;

use std::collections::BTreeMap;

use common::*;
use iptables_backend::sim::{PathKind, SimVerdict};
use iptables_backend::trace::{format_trace, trace, NodeRules, TraceEnd};
use policy_ir::ir::*;

fn seed_like() -> (NodeIr, NodeIr) {
    let allow_all = EndpointPolicyIr {
        tiers: vec![],
        profiles: vec!["allow-all".into()],
    };
    let mut prof = BTreeMap::new();
    prof.insert(
        "allow-all".to_string(),
        ProfileIr {
            name: "allow-all".into(),
            inbound: vec![rule(RuleAction::Allow)],
            outbound: vec![rule(RuleAction::Allow)],
        },
    );
    let mut s1 = NodeIr {
        node: "slave1".into(),
        profiles: prof.clone(),
        ..Default::default()
    };
    s1.workloads = vec![
        ep(
            "cali0ef24b1",
            "172.16.1.1",
            allow_all.clone(),
            allow_all.clone(),
        ),
        ep(
            "cali0ef24b2",
            "172.16.1.2",
            allow_all.clone(),
            allow_all.clone(),
        ),
    ];
    let mut tcp3306 = rule(RuleAction::Allow);
    tcp3306.protocol = Some(Protocol::Tcp);
    tcp3306.destination.ports = vec![PortRange {
        first: 3306,
        last: 3306,
    }];
    let mut s2 = NodeIr {
        node: "slave2".into(),
        ..Default::default()
    };
    s2.profiles.insert(
        "profile-database".into(),
        ProfileIr {
            name: "profile-database".into(),
            inbound: vec![rule(RuleAction::Deny), tcp3306],
            outbound: vec![rule(RuleAction::Allow)],
        },
    );
    let db = EndpointPolicyIr {
        tiers: vec![],
        profiles: vec!["profile-database".into()],
    };
    s2.workloads = vec![ep("cali0ef24b3", "172.16.1.3", db.clone(), db)];
    (s1, s2)
}

#[test]
fn frontend_to_database_is_dropped_by_the_profiles_first_rule() {
    let (s1, s2) = seed_like();
    let mut nodes = BTreeMap::new();
    nodes.insert("slave1".to_string(), NodeRules::new(&s1).unwrap());
    nodes.insert("slave2".to_string(), NodeRules::new(&s2).unwrap());
    let from = TraceEnd::Workload {
        node: "slave1".into(),
        iface: "cali0ef24b1".into(),
        ip: "172.16.1.1".parse().unwrap(),
    };
    let to = TraceEnd::Workload {
        node: "slave2".into(),
        iface: "cali0ef24b3".into(),
        ip: "172.16.1.3".parse().unwrap(),
    };
    let t = trace(&nodes, &from, &to, 6, Some(3306)).unwrap();
    assert!(!t.allowed, "{}", format_trace(&t));
    assert_eq!(t.legs.len(), 2);
    assert_eq!(t.legs[0].verdict, SimVerdict::Accept);
    assert_eq!(t.legs[1].path, PathKind::Forward);
    let last = t.path.last().unwrap();
    assert_eq!(
        (
            last.node.as_str(),
            last.table.as_str(),
            last.chain.as_str(),
            last.rule
        ),
        ("slave2", "filter", "cali-pri-profile-database", 1)
    );
    assert_eq!(last.action, "DROP");
    // The egress leg passed through the source's from-workload chain and set the accept mark.
    assert!(t
        .path
        .iter()
        .any(|s| s.node == "slave1" && s.chain == "cali-fw-cali0ef24b1"));
    assert!(t
        .path
        .iter()
        .any(|s| s.node == "slave1" && s.chain == "FORWARD" && s.action == "ACCEPT"));
    let text = format_trace(&t);
    assert!(
        text.contains("verdict: deny") && text.contains("cali-pri-profile-database"),
        "{text}"
    );

    // Between the two frontends on slave1: one Forward leg, allowed.
    let to2 = TraceEnd::Workload {
        node: "slave1".into(),
        iface: "cali0ef24b2".into(),
        ip: "172.16.1.2".parse().unwrap(),
    };
    let t = trace(&nodes, &from, &to2, 6, Some(80)).unwrap();
    assert!(t.allowed);
    assert_eq!(t.legs.len(), 1);
    assert!(t.path.iter().any(|s| s.chain == "cali-tw-cali0ef24b2"));
    // From outside to the database: only slave2's leg, still the profile's drop.
    let ext = TraceEnd::External {
        ip: "8.8.8.8".parse().unwrap(),
    };
    let t = trace(&nodes, &ext, &to, 17, Some(53)).unwrap();
    assert!(!t.allowed);
    assert_eq!(t.legs.len(), 1);
    // Database egress to the outside world is allowed by its profile.
    let t = trace(&nodes, &to, &ext, 1, None).unwrap();
    assert!(t.allowed);
    assert!(trace(&nodes, &ext, &ext, 6, Some(1)).is_err());
}

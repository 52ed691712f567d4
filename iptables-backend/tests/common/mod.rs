//! IR built by hand for the backend's tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use policy_ir::ir::*;

pub fn ep(
    iface: &str,
    ip: &str,
    ingress: EndpointPolicyIr,
    egress: EndpointPolicyIr,
) -> WorkloadEndpointIr {
    WorkloadEndpointIr {
        id: EndpointId {
            namespace: Some("default".into()),
            name: iface.into(),
        },
        interface: iface.into(),
        addrs: vec![format!("{ip}/32").parse().unwrap()],
        admin_up: true,
        ingress,
        egress,
    }
}

pub fn rule(action: RuleAction) -> RuleIr {
    RuleIr {
        action,
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

pub fn gnp(name: &str) -> PolicyId {
    PolicyId {
        kind: PolicyKind::GlobalNetworkPolicy,
        namespace: None,
        name: name.into(),
    }
}

/// Felix's allow-web example (§3.5) plus the three-interface dispatch example (§4.1).
pub fn example_ir() -> NodeIr {
    let web = gnp("allow-web");
    let sel = "s:rV61RKD1Q8wo61pyeB0j2rwE3eiBOFbx0SsYKg".to_string();
    let mut r1 = rule(RuleAction::Allow);
    r1.protocol = Some(Protocol::Tcp);
    r1.source.ipsets = vec![sel.clone()];
    r1.destination.ports = vec![
        PortRange {
            first: 80,
            last: 80,
        },
        PortRange {
            first: 443,
            last: 443,
        },
    ];
    let mut r2 = rule(RuleAction::Pass);
    r2.protocol = Some(Protocol::Udp);
    let mut r3 = rule(RuleAction::Log);
    r3.source.nets = vec!["10.0.0.0/8".parse().unwrap()];
    let mut r4 = rule(RuleAction::Deny);
    r4.source.nets = vec!["10.0.0.0/8".parse().unwrap()];
    let mut policies = BTreeMap::new();
    policies.insert(
        web.clone(),
        PolicyIr {
            id: web.clone(),
            tier: "default".into(),
            inbound: vec![r1, r2, r3, r4],
            outbound: vec![],
        },
    );
    let mut profiles = BTreeMap::new();
    profiles.insert(
        "kns.default".to_string(),
        ProfileIr {
            name: "kns.default".into(),
            inbound: vec![rule(RuleAction::Allow)],
            outbound: vec![rule(RuleAction::Allow)],
        },
    );
    let pol = EndpointPolicyIr {
        tiers: vec![TierIr {
            name: "default".into(),
            default_action: TierDefaultAction::Deny,
            policies: vec![web],
        }],
        profiles: vec!["kns.default".into()],
    };
    let prof_only = EndpointPolicyIr {
        tiers: vec![],
        profiles: vec!["kns.default".into()],
    };
    let mut ipsets = BTreeMap::new();
    ipsets.insert(
        sel.clone(),
        IpSetIr {
            id: sel,
            description: "role == \"db\"".into(),
            members: IpSetMembers::Nets(BTreeSet::from(["10.65.0.2/32".parse().unwrap()])),
        },
    );
    NodeIr {
        node: "n1".into(),
        settings: DataplaneSettings::default(),
        workloads: vec![
            ep("cali1234", "10.65.0.1", pol, prof_only.clone()),
            ep(
                "cali2333",
                "10.65.0.2",
                prof_only.clone(),
                prof_only.clone(),
            ),
            ep("cali2444", "10.65.0.3", prof_only.clone(), prof_only),
        ],
        host_endpoints: vec![],
        policies,
        profiles,
        ipsets,
        ip_pools: vec![IpPoolIr {
            cidr: "10.65.0.0/16".parse().unwrap(),
            nat_outgoing: true,
            ipip_mode: IpipMode::Never,
            disabled: false,
        }],
    }
}

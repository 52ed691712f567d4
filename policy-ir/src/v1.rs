//! The calicoctl v1 resource forms (the seed's `apiVersion: v1` objects) and their one-to-one
//! mapping onto v3 (policy-semantics.md §5).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::resources::{self as r, IntOrString, ObjectMeta};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    #[serde(default)]
    pub order: Option<f64>,
    #[serde(default)]
    pub selector: String,
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub ingress: Vec<Rule>,
    #[serde(default)]
    pub egress: Vec<Rule>,
    #[serde(default)]
    pub do_not_track: bool,
    #[serde(default, rename = "preDNAT")]
    pub pre_dnat: bool,
    #[serde(default)]
    pub apply_on_forward: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub ip_version: Option<u8>,
    #[serde(default)]
    pub protocol: Option<IntOrString>,
    #[serde(default)]
    pub not_protocol: Option<IntOrString>,
    #[serde(default)]
    pub icmp: Option<r::IcmpFields>,
    #[serde(default, rename = "notICMP")]
    pub not_icmp: Option<r::IcmpFields>,
    #[serde(default)]
    pub source: EntityRule,
    #[serde(default)]
    pub destination: EntityRule,
    /// The seed writes destination ports directly on the rule.
    #[serde(default)]
    pub ports: Vec<IntOrString>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRule {
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub not_tag: String,
    #[serde(default)]
    pub net: String,
    #[serde(default)]
    pub nets: Vec<String>,
    #[serde(default)]
    pub not_net: String,
    #[serde(default)]
    pub not_nets: Vec<String>,
    #[serde(default)]
    pub selector: String,
    #[serde(default)]
    pub not_selector: String,
    #[serde(default)]
    pub ports: Vec<IntOrString>,
    #[serde(default)]
    pub not_ports: Vec<IntOrString>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileMeta {
    #[serde(default)]
    pub name: String,
    /// Labels applied to every endpoint that uses the profile.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    #[serde(default)]
    pub ingress: Vec<Rule>,
    #[serde(default)]
    pub egress: Vec<Rule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpointMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub workload: String,
    #[serde(default)]
    pub orchestrator: String,
    #[serde(default)]
    pub node: String,
    #[serde(default, rename = "activeInstanceID")]
    pub active_instance_id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpointSpec {
    #[serde(default)]
    pub interface_name: String,
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub ip_networks: Vec<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default, rename = "ipNATs")]
    pub ip_nats: Vec<r::IpNat>,
    #[serde(default)]
    pub ports: Vec<r::EndpointPort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostEndpointMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostEndpointSpec {
    #[serde(default)]
    pub interface_name: String,
    #[serde(default, rename = "expectedIPs")]
    pub expected_ips: Vec<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolMeta {
    #[serde(default)]
    pub cidr: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolSpec {
    #[serde(default)]
    pub ipip: Option<r::IpipConfiguration>,
    #[serde(default, rename = "nat-outgoing")]
    pub nat_outgoing: bool,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerMeta {
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub node: String,
    #[serde(default, rename = "peerIP")]
    pub peer_ip: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerSpec {
    #[serde(default)]
    pub as_number: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMeta {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeBgp {
    #[serde(default)]
    pub as_number: Option<IntOrString>,
    #[serde(default, rename = "ipv4Address")]
    pub ipv4_address: String,
    #[serde(default, rename = "ipv6Address")]
    pub ipv6_address: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(default)]
    pub bgp: Option<NodeBgp>,
    #[serde(default)]
    pub orch_refs: Vec<r::OrchRef>,
}

fn meta(name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: name.to_string(),
        labels,
        ..Default::default()
    }
}

/// A bare address means a /32 (or /128).
pub fn address_to_cidr(s: &str) -> String {
    if s.contains('/') {
        s.to_string()
    } else if s.contains(':') {
        format!("{s}/128")
    } else {
        format!("{s}/32")
    }
}

fn and_selectors(parts: &[String]) -> String {
    let parts: Vec<&String> = parts.iter().filter(|p| !p.trim().is_empty()).collect();
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        _ => parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" && "),
    }
}

fn entity(e: &EntityRule, extra_ports: &[IntOrString]) -> r::EntityRule {
    let mut nets = Vec::new();
    if !e.net.is_empty() {
        nets.push(address_to_cidr(&e.net));
    }
    nets.extend(e.nets.iter().map(|n| address_to_cidr(n)));
    let mut not_nets = Vec::new();
    if !e.not_net.is_empty() {
        not_nets.push(address_to_cidr(&e.not_net));
    }
    not_nets.extend(e.not_nets.iter().map(|n| address_to_cidr(n)));
    let mut sel = Vec::new();
    if !e.tag.is_empty() {
        sel.push(format!("has({})", e.tag));
    }
    sel.push(e.selector.clone());
    let mut not_sel = Vec::new();
    if !e.not_tag.is_empty() {
        not_sel.push(format!("has({})", e.not_tag));
    }
    not_sel.push(e.not_selector.clone());
    let mut ports = e.ports.clone();
    ports.extend(extra_ports.iter().cloned());
    r::EntityRule {
        nets,
        not_nets,
        selector: and_selectors(&sel),
        not_selector: and_selectors(&not_sel),
        ports,
        not_ports: e.not_ports.clone(),
        ..Default::default()
    }
}

pub fn rule(x: &Rule) -> r::Rule {
    r::Rule {
        action: x.action.clone(),
        ip_version: x.ip_version,
        protocol: x.protocol.clone(),
        not_protocol: x.not_protocol.clone(),
        icmp: x.icmp.clone(),
        not_icmp: x.not_icmp.clone(),
        source: entity(&x.source, &[]),
        destination: entity(&x.destination, &x.ports),
        metadata: None,
    }
}

pub fn policy(m: PolicyMeta, s: PolicySpec) -> r::GlobalNetworkPolicy {
    let mut metadata = meta(&m.name, m.labels);
    metadata.annotations = m.annotations;
    r::GlobalNetworkPolicy {
        metadata,
        spec: r::GlobalNetworkPolicySpec {
            tier: "default".into(),
            order: s.order,
            selector: s.selector,
            types: s.types,
            ingress: s.ingress.iter().map(rule).collect(),
            egress: s.egress.iter().map(rule).collect(),
            do_not_track: s.do_not_track,
            pre_dnat: s.pre_dnat,
            apply_on_forward: s.apply_on_forward,
            ..Default::default()
        },
        origin: Default::default(),
    }
}

pub fn profile(m: ProfileMeta, s: ProfileSpec) -> r::Profile {
    let mut labels_to_apply = m.labels;
    for t in m.tags {
        labels_to_apply.entry(t).or_default();
    }
    r::Profile {
        metadata: meta(&m.name, BTreeMap::new()),
        spec: r::ProfileSpec {
            ingress: s.ingress.iter().map(rule).collect(),
            egress: s.egress.iter().map(rule).collect(),
            labels_to_apply,
        },
        origin: Default::default(),
    }
}

pub fn workload_endpoint(m: WorkloadEndpointMeta, s: WorkloadEndpointSpec) -> r::WorkloadEndpoint {
    r::WorkloadEndpoint {
        metadata: meta(&m.name, m.labels),
        spec: r::WorkloadEndpointSpec {
            orchestrator: m.orchestrator,
            workload: m.workload,
            node: m.node,
            ip_networks: s.ip_networks.iter().map(|n| address_to_cidr(n)).collect(),
            ip_nats: s.ip_nats,
            profiles: s.profiles,
            interface_name: s.interface_name,
            mac: s.mac,
            ports: s.ports,
            ..Default::default()
        },
        origin: Default::default(),
    }
}

pub fn host_endpoint(m: HostEndpointMeta, s: HostEndpointSpec) -> r::HostEndpoint {
    r::HostEndpoint {
        metadata: meta(&m.name, m.labels),
        spec: r::HostEndpointSpec {
            node: m.node,
            interface_name: s.interface_name,
            expected_ips: s.expected_ips,
            profiles: s.profiles,
            ports: Vec::new(),
        },
        origin: Default::default(),
    }
}

/// A resource name from a CIDR or address (`172.16.1.0/24` → `172-16-1-0-24`).
pub fn name_from_cidr(c: &str) -> String {
    c.chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
        .collect()
}

pub fn ip_pool(m: IpPoolMeta, s: IpPoolSpec) -> r::IpPool {
    let mut p = r::IpPool {
        metadata: meta(&name_from_cidr(&m.cidr), BTreeMap::new()),
        spec: r::IpPoolSpec {
            cidr: m.cidr,
            nat_outgoing: s.nat_outgoing,
            disabled: s.disabled,
            ipip: s.ipip,
            ..Default::default()
        },
        origin: Default::default(),
    };
    p.spec.ipip_mode = match p.spec.effective_ipip_mode() {
        crate::ir::IpipMode::Always => "Always".into(),
        crate::ir::IpipMode::CrossSubnet => "CrossSubnet".into(),
        crate::ir::IpipMode::Never => "Never".into(),
    };
    p
}

pub fn bgp_peer(m: BgpPeerMeta, s: BgpPeerSpec) -> r::BgpPeer {
    let node_scoped = m.scope.eq_ignore_ascii_case("node");
    let name = if node_scoped {
        format!("{}.{}", m.node, name_from_cidr(&m.peer_ip))
    } else {
        name_from_cidr(&m.peer_ip)
    };
    r::BgpPeer {
        metadata: meta(&name, BTreeMap::new()),
        spec: r::BgpPeerSpec {
            node: if node_scoped { m.node } else { String::new() },
            peer_ip: m.peer_ip,
            as_number: s.as_number,
            ..Default::default()
        },
        origin: Default::default(),
    }
}

pub fn node(m: NodeMeta, s: NodeSpec) -> r::Node {
    r::Node {
        metadata: meta(&m.name, BTreeMap::new()),
        spec: r::NodeSpec {
            bgp: s.bgp.map(|b| r::NodeBgpSpec {
                as_number: b.as_number,
                ipv4_address: b.ipv4_address,
                ipv6_address: b.ipv6_address,
                ..Default::default()
            }),
            orch_refs: s.orch_refs,
            ..Default::default()
        },
        origin: Default::default(),
    }
}

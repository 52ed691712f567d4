//! The intermediate representation the backends render: everything one node needs, as plain,
//! sorted, deterministic data. No labels or selectors survive into it: selectors are already
//! resolved to IP-set IDs with members, exactly as Felix's calculation graph hands them to its
//! rule renderer. Backends (iptables, nftables) must be able to render from this alone.
//!
//! Contract between `policy-ir` (producer) and the backends (consumers). Change it with care:
//! both sides and the golden snapshots move together.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// All a backend needs to render the dataplane of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeIr {
    /// The node's name (`spec.nodeName` / v1 `metadata.node`).
    pub node: String,
    pub settings: DataplaneSettings,
    /// Local workload endpoints, sorted by interface name (unique).
    pub workloads: Vec<WorkloadEndpointIr>,
    /// Local host endpoints, sorted by interface name; `"*"` is the wildcard host endpoint.
    pub host_endpoints: Vec<HostEndpointIr>,
    /// Every policy referenced by a local endpoint, by ID.
    pub policies: BTreeMap<PolicyId, PolicyIr>,
    /// Every profile referenced by a local endpoint, by name.
    pub profiles: BTreeMap<String, ProfileIr>,
    /// Every IP set a rendered rule refers to, by set ID (`s:…`, `n:…`, or a fixed ID such as
    /// `masq-ipam-pools`). Members are already computed.
    pub ipsets: BTreeMap<String, IpSetIr>,
    /// All enabled IPv4 pools (for NAT-outgoing and the IPIP/pool sets), sorted by CIDR.
    pub ip_pools: Vec<IpPoolIr>,
}

/// Felix configuration knobs that change rendering (FelixConfiguration, with Felix's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneSettings {
    /// Workload interface prefixes (`InterfacePrefix`, default `["cali"]`).
    pub interface_prefixes: Vec<String>,
    pub failsafe_inbound: Vec<ProtoPort>,
    pub failsafe_outbound: Vec<ProtoPort>,
    pub default_endpoint_to_host_action: EndpointToHostAction,
    /// LOG prefix (`LogPrefix`, default `calico-packet`).
    pub log_prefix: String,
    /// Maximum ipset size (`MaxIpsetSize`, default 1048576).
    pub max_ipset_size: u32,
    /// `AllowIPIPPacketsFromWorkloads` (default false).
    pub allow_ipip_from_workloads: bool,
    /// `AllowVXLANPacketsFromWorkloads` (default false).
    pub allow_vxlan_from_workloads: bool,
    /// VXLAN port used by the "Drop VXLAN encapped packets" rule (default 4789).
    pub vxlan_port: u16,
}

impl Default for DataplaneSettings {
    fn default() -> Self {
        use Protocol::{Tcp, Udp};
        let pp = |protocol, port| ProtoPort {
            protocol,
            port,
            net: None,
        };
        DataplaneSettings {
            interface_prefixes: vec!["cali".to_string()],
            failsafe_inbound: vec![
                pp(Tcp, 22),
                pp(Udp, 68),
                pp(Tcp, 179),
                pp(Tcp, 2379),
                pp(Tcp, 2380),
                pp(Tcp, 5473),
                pp(Tcp, 6443),
                pp(Tcp, 6666),
                pp(Tcp, 6667),
            ],
            failsafe_outbound: vec![
                pp(Udp, 53),
                pp(Udp, 67),
                pp(Tcp, 179),
                pp(Tcp, 2379),
                pp(Tcp, 2380),
                pp(Tcp, 5473),
                pp(Tcp, 6443),
                pp(Tcp, 6666),
                pp(Tcp, 6667),
            ],
            default_endpoint_to_host_action: EndpointToHostAction::Drop,
            log_prefix: "calico-packet".to_string(),
            max_ipset_size: 1_048_576,
            allow_ipip_from_workloads: false,
            allow_vxlan_from_workloads: false,
            vxlan_port: 4789,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProtoPort {
    pub protocol: Protocol,
    pub port: u16,
    /// Only for this remote network (source inbound, destination outbound); any if `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<Ipv4Net>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndpointToHostAction {
    Drop,
    Return,
    Accept,
}

/// Identifies a workload or host endpoint: `namespace/name` for namespaced kinds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndpointId {
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadEndpointIr {
    pub id: EndpointId,
    /// Host-side interface, e.g. `cali0ef24b1`.
    pub interface: String,
    /// The endpoint's IPv4 addresses (normally /32s).
    pub addrs: Vec<Ipv4Net>,
    /// Admin-down endpoints get single-rule drop chains.
    pub admin_up: bool,
    /// Policy applied to traffic *to* the workload (`cali-tw-…`).
    pub ingress: EndpointPolicyIr,
    /// Policy applied to traffic *from* the workload (`cali-fw-…`).
    pub egress: EndpointPolicyIr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEndpointIr {
    pub id: EndpointId,
    /// Interface name, or `"*"` for the wildcard host endpoint (`any-interface-at-all`).
    pub interface: String,
    pub addrs: Vec<Ipv4Net>,
    /// Traffic arriving from the host interface (`cali-fh-…`).
    pub ingress: EndpointPolicyIr,
    /// Traffic leaving through the host interface (`cali-th-…`).
    pub egress: EndpointPolicyIr,
}

/// What applies to one endpoint in one direction, in evaluation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EndpointPolicyIr {
    /// Tiers with at least one applying policy in this direction, in tier order.
    pub tiers: Vec<TierIr>,
    /// Profile names in the endpoint's order.
    pub profiles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierIr {
    pub name: String,
    pub default_action: TierDefaultAction,
    /// Applying policies, in policy order.
    pub policies: Vec<PolicyId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TierDefaultAction {
    Deny,
    Pass,
}

/// Felix's policy kinds, with the short names used in chain names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PolicyKind {
    /// `GlobalNetworkPolicy` (also the seed's v1 `policy`), short `gnp`.
    GlobalNetworkPolicy,
    /// `NetworkPolicy` (Calico, namespaced), short `np`.
    NetworkPolicy,
    /// Converted Kubernetes `networking.k8s.io/v1` NetworkPolicy, short `knp`.
    KubernetesNetworkPolicy,
}

impl PolicyKind {
    pub fn short_name(self) -> &'static str {
        match self {
            PolicyKind::GlobalNetworkPolicy => "gnp",
            PolicyKind::NetworkPolicy => "np",
            PolicyKind::KubernetesNetworkPolicy => "knp",
        }
    }

    /// The kind string Felix puts in a policy chain's first comment.
    pub fn kind_name(self) -> &'static str {
        match self {
            PolicyKind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            PolicyKind::NetworkPolicy | PolicyKind::KubernetesNetworkPolicy => "NetworkPolicy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyId {
    pub kind: PolicyKind,
    pub namespace: Option<String>,
    /// The policy's full name (for Kubernetes policies including the `knp.default.` prefix).
    pub name: String,
}

impl PolicyId {
    /// Felix's policy ID string, the suffix of `cali-pi-`/`cali-po-` chain names:
    /// `gnp/<name>` or `np/<namespace>/<name>`.
    pub fn chain_suffix(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind.short_name(), self.name),
            None => format!("{}/{}", self.kind.short_name(), self.name),
        }
    }

    /// `<name>` or `<namespace>/<name>`, as in chain comments and reports.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.kind_name(), self.display_name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyIr {
    pub id: PolicyId,
    pub tier: String,
    /// Ingress rules (`cali-pi-…`).
    pub inbound: Vec<RuleIr>,
    /// Egress rules (`cali-po-…`).
    pub outbound: Vec<RuleIr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileIr {
    pub name: String,
    /// Ingress rules (`cali-pri-…`).
    pub inbound: Vec<RuleIr>,
    /// Egress rules (`cali-pro-…`).
    pub outbound: Vec<RuleIr>,
}

/// One normalised rule. Every criterion present must hold; absent criteria match everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleIr {
    pub action: RuleAction,
    pub protocol: Option<Protocol>,
    pub not_protocol: Option<Protocol>,
    pub icmp: Option<IcmpMatch>,
    pub not_icmp: Option<IcmpMatch>,
    pub source: MatchSide,
    pub destination: MatchSide,
    /// Where the rule came from, for comments, `trace` and `explain`.
    pub origin: RuleOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOrigin {
    /// Index of the rule in its policy/profile direction (0-based).
    pub index: usize,
    /// A one-line human rendering of the source rule, e.g.
    /// `allow tcp from selector namespace == "default" to ports 3306`.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuleAction {
    Allow,
    Deny,
    Pass,
    Log,
}

/// Criteria on one side (source or destination) of a packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MatchSide {
    /// The address must be in one of these (empty = any).
    pub nets: Vec<Ipv4Net>,
    /// The address must be in none of these.
    pub not_nets: Vec<Ipv4Net>,
    /// The address must be a member of every one of these `hash:net` sets (selectors), by set ID.
    pub ipsets: Vec<String>,
    /// The address must be a member of none of these sets.
    pub not_ipsets: Vec<String>,
    /// The port must be in one of these ranges, or match one of `named_port_sets` (empty lists
    /// on both = any port).
    pub ports: Vec<PortRange>,
    pub not_ports: Vec<PortRange>,
    /// `hash:ip,port` sets (named ports), by set ID: the (address, protocol, port) triple must be
    /// a member of one of them (ORed with `ports`).
    pub named_port_sets: Vec<String>,
    pub not_named_port_sets: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    UdpLite,
    /// Any other IP protocol by number.
    Number(u8),
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Icmp => 1,
            Protocol::UdpLite => 136,
            Protocol::Number(n) => n,
        }
    }

    pub fn from_number(n: u8) -> Protocol {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            1 => Protocol::Icmp,
            136 => Protocol::UdpLite,
            n => Protocol::Number(n),
        }
    }

    /// Whether the protocol has ports (so `ports`/named ports may be used with it).
    pub fn has_ports(self) -> bool {
        matches!(
            self,
            Protocol::Tcp | Protocol::Udp | Protocol::Sctp | Protocol::UdpLite
        )
    }

    /// The name iptables and ipset use (`tcp`), or the number for others.
    pub fn iptables_name(self) -> String {
        match self {
            Protocol::Tcp => "tcp".into(),
            Protocol::Udp => "udp".into(),
            Protocol::Sctp => "sctp".into(),
            Protocol::Icmp => "icmp".into(),
            Protocol::UdpLite => "udplite".into(),
            Protocol::Number(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IcmpMatch {
    pub icmp_type: u8,
    pub code: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpSetIr {
    /// Set ID (`s:…` for selectors, `n:…` for named ports, fixed IDs otherwise). The kernel name
    /// is `cali40` + ID, cut to 31 characters.
    pub id: String,
    /// What the set stands for, for people (the selector's canonical form, …).
    pub description: String,
    pub members: IpSetMembers,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpSetMembers {
    /// `hash:net`: endpoint /32s and network-set CIDRs.
    Nets(BTreeSet<Ipv4Net>),
    /// `hash:ip,port`: named-port members.
    IpPorts(BTreeSet<(Ipv4Addr, Protocol, u16)>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpPoolIr {
    pub cidr: Ipv4Net,
    pub nat_outgoing: bool,
    pub ipip_mode: IpipMode,
    pub disabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpipMode {
    Never,
    Always,
    CrossSubnet,
}

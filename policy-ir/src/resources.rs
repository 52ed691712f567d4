//! Calico `projectcalico.org/v3` resources (the fields Brindle uses), with Calico's camelCase
//! field names. The calicoctl v1 and Kubernetes forms are converted into these (see [`crate::v1`]
//! and [`crate::k8s`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value written either as an integer or as a string (ports, protocols, AS numbers).
/// The v1 form `{int: 3306}` / `{str: http}` is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(n) => write!(f, "{n}"),
            IntOrString::Str(s) => f.write_str(s),
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(n) => s.serialize_i64(*n),
            IntOrString::Str(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<IntOrString, E> {
                Ok(IntOrString::Str(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<IntOrString, E> {
                Ok(IntOrString::Str(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::Str(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<IntOrString, A::Error> {
                let mut out = None;
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "int" | "intVal" => out = Some(IntOrString::Int(m.next_value::<i64>()?)),
                        "str" | "strVal" => out = Some(IntOrString::Str(m.next_value::<String>()?)),
                        "type" => {
                            let _ = m.next_value::<de::IgnoredAny>()?;
                        }
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown field `{other}`; expected `int` or `str`"
                            )))
                        }
                    }
                }
                out.ok_or_else(|| de::Error::custom("expected `int` or `str`"))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
}

/// Where a resource came from (file and position of its document), for reports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Origin {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// Positions of fields later reports point at (policy and profile rules and their
    /// selectors and ports, for lint), as `(field path, line, column)`; empty for other kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, u32, u32)>,
}

impl Origin {
    /// The `(line, column)` of `path`, or of its nearest recorded parent, or of the document.
    pub fn position(&self, path: &str) -> (u32, u32) {
        crate::yaml::at_nearest_parent(path, |p| {
            self.fields
                .iter()
                .find(|(f, _, _)| f == p)
                .map(|(_, l, c)| (*l, *c))
        })
        .unwrap_or((self.line, self.column))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

// ---------------------------------------------------------------------------------------------
// Rules

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpFields>,
    #[serde(default, rename = "notICMP", skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpFields>,
    #[serde(default)]
    pub source: EntityRule,
    #[serde(default)]
    pub destination: EntityRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RuleMetadata>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleMetadata {
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IcmpFields {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_nets: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub not_selector: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<IntOrString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<ServiceAccountMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServiceMatch>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountMatch {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub selector: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMatch {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

// ---------------------------------------------------------------------------------------------
// Policy kinds

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tier {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: TierSpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalNetworkPolicySpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    #[serde(default)]
    pub selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub do_not_track: bool,
    #[serde(
        default,
        rename = "preDNAT",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub pre_dnat: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub apply_on_forward: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performance_hints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GlobalNetworkPolicy {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: GlobalNetworkPolicySpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    #[serde(default)]
    pub selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performance_hints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkPolicy {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NetworkPolicySpec,
    /// True when converted from a Kubernetes `networking.k8s.io/v1` NetworkPolicy.
    #[serde(skip)]
    pub from_kubernetes: bool,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels_to_apply: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Profile {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ProfileSpec,
    #[serde(skip)]
    pub origin: Origin,
}

// ---------------------------------------------------------------------------------------------
// Endpoints and sets

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    pub name: String,
    #[serde(default)]
    pub protocol: Option<IntOrString>,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpNat {
    #[serde(rename = "internalIP")]
    pub internal_ip: String,
    #[serde(rename = "externalIP")]
    pub external_ip: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpointSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub orchestrator: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload: String,
    #[serde(default)]
    pub node: String,
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    #[serde(default)]
    pub ip_networks: Vec<String>,
    #[serde(default, rename = "ipNATs", skip_serializing_if = "Vec::is_empty")]
    pub ip_nats: Vec<IpNat>,
    #[serde(
        default,
        rename = "ipv4Gateway",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_gateway: String,
    #[serde(
        default,
        rename = "ipv6Gateway",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_gateway: String,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub interface_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_spoofed_source_prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WorkloadEndpoint {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: WorkloadEndpointSpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostEndpointSpec {
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub interface_name: String,
    #[serde(default, rename = "expectedIPs")]
    pub expected_ips: Vec<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostEndpoint {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HostEndpointSpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSetSpec {
    #[serde(default)]
    pub nets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_egress_domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GlobalNetworkSet {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NetworkSetSpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkSet {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NetworkSetSpec,
    #[serde(skip)]
    pub origin: Origin,
}

// ---------------------------------------------------------------------------------------------
// Routing kinds (routing.md §1)

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpipConfiguration {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolSpec {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vxlan_mode: String,
    /// `Never` (default), `Always`, `CrossSubnet`.
    #[serde(default, rename = "ipipMode", skip_serializing_if = "String::is_empty")]
    pub ipip_mode: String,
    #[serde(default)]
    pub nat_outgoing: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
    /// Default 26 for IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    /// Default `all()`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_selector: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_uses: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assignment_mode: String,
    /// Deprecated v1-style `ipip: {enabled, mode}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip: Option<IpipConfiguration>,
    /// Deprecated v1-style `nat-outgoing`.
    #[serde(
        default,
        rename = "nat-outgoing",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub nat_outgoing_v1: bool,
}

impl IpPoolSpec {
    /// The effective IPIP mode: `ipipMode`, else the deprecated `ipip` block, else `Never`.
    pub fn effective_ipip_mode(&self) -> crate::ir::IpipMode {
        use crate::ir::IpipMode;
        match self.ipip_mode.as_str() {
            "Always" => return IpipMode::Always,
            "CrossSubnet" => return IpipMode::CrossSubnet,
            "Never" => return IpipMode::Never,
            _ => {}
        }
        match &self.ipip {
            Some(c) if c.enabled => match c.mode.to_ascii_lowercase().as_str() {
                "cross-subnet" | "crosssubnet" => IpipMode::CrossSubnet,
                _ => IpipMode::Always,
            },
            _ => IpipMode::Never,
        }
    }

    pub fn effective_nat_outgoing(&self) -> bool {
        self.nat_outgoing || self.nat_outgoing_v1
    }

    pub fn effective_block_size(&self) -> u8 {
        self.block_size.unwrap_or(26)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IpPool {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: IpPoolSpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeBgpSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<IntOrString>,
    /// CIDR form `ip/prefixlen`.
    #[serde(
        default,
        rename = "ipv4Address",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_address: String,
    #[serde(
        default,
        rename = "ipv6Address",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_address: String,
    #[serde(
        default,
        rename = "ipv4IPIPTunnelAddr",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_ipip_tunnel_addr: String,
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "String::is_empty"
    )]
    pub route_reflector_cluster_id: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAddress {
    pub address: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub address_type: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrchRef {
    #[serde(default)]
    pub node_name: String,
    #[serde(default)]
    pub orchestrator: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_vxlan_tunnel_addr: String,
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        skip_serializing_if = "String::is_empty"
    )]
    pub vxlan_tunnel_mac_addr: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orch_refs: Vec<OrchRef>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Node {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeSpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPassword {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CidrEntry {
    pub cidr: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Community {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixAdvertisement {
    pub cidr: String,
    #[serde(default)]
    pub communities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpConfigurationSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_severity_screen: String,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    /// Default 64512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<IntOrString>,
    #[serde(
        default,
        rename = "serviceLoadBalancerIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_load_balancer_ips: Vec<CidrEntry>,
    #[serde(
        default,
        rename = "serviceExternalIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_external_ips: Vec<CidrEntry>,
    #[serde(
        default,
        rename = "serviceClusterIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_cluster_ips: Vec<CidrEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_password: Option<BgpPassword>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_mesh_max_restart_time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind_mode: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_interfaces: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub program_cluster_routes: String,
    #[serde(
        default,
        rename = "ipv4NormalRoutePriority",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_normal_route_priority: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_load_balancer_aggregation: String,
    #[serde(
        default,
        rename = "localWorkloadPeeringIPV4",
        skip_serializing_if = "String::is_empty"
    )]
    pub local_workload_peering_ipv4: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BgpConfiguration {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BgpConfigurationSpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_selector: String,
    #[serde(default, rename = "peerIP", skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_selector: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<IntOrString>,
    #[serde(
        default,
        rename = "localASNumber",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_as_number: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_workload_selector: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub next_hop_mode: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_original_next_hop: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_restart_time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keepalive_time: String,
    #[serde(
        default,
        rename = "numAllowedLocalASNumbers",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_allowed_local_as_numbers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reachable_by: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reverse_peering: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BgpPeer {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BgpPeerSpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockAffinitySpec {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub node: String,
    pub cidr: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deleted: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub affinity_type: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BlockAffinity {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BlockAffinitySpec,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtoPortSpec {
    #[serde(default)]
    pub protocol: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FelixConfigurationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_inbound_host_ports: Option<Vec<ProtoPortSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_outbound_host_ports: Option<Vec<ProtoPortSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint_to_host_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ipset_size: Option<u32>,
    #[serde(
        default,
        rename = "allowIPIPPacketsFromWorkloads",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_ipip_packets_from_workloads: Option<bool>,
    #[serde(
        default,
        rename = "allowVXLANPacketsFromWorkloads",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_vxlan_packets_from_workloads: Option<bool>,
    #[serde(default, rename = "vxlanPort", skip_serializing_if = "Option::is_none")]
    pub vxlan_port: Option<u16>,
    #[serde(
        default,
        rename = "ipipEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipip_enabled: Option<bool>,
    #[serde(
        default,
        rename = "vxlanEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_enabled: Option<bool>,
    #[serde(default, rename = "ipipMTU", skip_serializing_if = "Option::is_none")]
    pub ipip_mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_insert_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_mark_mask: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_filter_deny_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FelixConfiguration {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: FelixConfigurationSpec,
    #[serde(skip)]
    pub origin: Origin,
}

/// `IPAMConfig` / `IPAMConfiguration` (cluster-wide IPAM settings, routing.md §1.5). Unset
/// fields keep Calico's defaults (strictAffinity false, autoAllocateBlocks true, no limit).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_affinity: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_allocate_blocks: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_blocks_per_host: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IpamConfig {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: IpamConfigSpec,
    #[serde(skip)]
    pub origin: Origin,
}

/// One entry of an IPAM block's `attributes` (Calico's AllocationAttribute; snake_case keys).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IpamBlockAttribute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secondary: BTreeMap<String, String>,
}

/// `IPAMBlock` (Calico's AllocationBlock): `allocations[ordinal]` is an index into
/// `attributes`, or null when the address is free.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamBlockSpec {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_affinity: bool,
    #[serde(default)]
    pub allocations: Vec<Option<u64>>,
    #[serde(default)]
    pub unallocated: Vec<u32>,
    #[serde(default)]
    pub attributes: Vec<IpamBlockAttribute>,
    #[serde(default)]
    pub sequence_number: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IpamBlock {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: IpamBlockSpec,
    #[serde(skip)]
    pub origin: Origin,
}

/// Kubernetes `v1` Namespace (kept for its labels; it also yields the `kns.<name>` profile).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Namespace {
    pub metadata: ObjectMeta,
    #[serde(skip)]
    pub origin: Origin,
}

/// Every resource, v3-normalised. v1 and Kubernetes forms are already converted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub tiers: Vec<Tier>,
    pub global_network_policies: Vec<GlobalNetworkPolicy>,
    pub network_policies: Vec<NetworkPolicy>,
    pub profiles: Vec<Profile>,
    pub workload_endpoints: Vec<WorkloadEndpoint>,
    pub host_endpoints: Vec<HostEndpoint>,
    pub global_network_sets: Vec<GlobalNetworkSet>,
    pub network_sets: Vec<NetworkSet>,
    pub ip_pools: Vec<IpPool>,
    pub nodes: Vec<Node>,
    pub bgp_peers: Vec<BgpPeer>,
    pub bgp_configurations: Vec<BgpConfiguration>,
    pub block_affinities: Vec<BlockAffinity>,
    pub felix_configurations: Vec<FelixConfiguration>,
    /// Kubernetes namespaces (their labels feed `namespaceSelector`).
    pub namespaces: Vec<Namespace>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipam_configs: Vec<IpamConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipam_blocks: Vec<IpamBlock>,
    /// Where each field of the routing kinds (Node, IPPool, BGPPeer, BGPConfiguration,
    /// BlockAffinity, IPAMConfig, IPAMBlock) was found, keyed by the resource's origin
    /// (`file:line:column`), then field path (`spec.peerIP`) → (line, column). Lets consumers
    /// that check these resources further (routing-agent) point at the field.
    #[serde(skip)]
    pub field_locations: BTreeMap<String, BTreeMap<String, (u32, u32)>>,
}

impl Resources {
    /// Appends everything of `other`.
    pub fn extend(&mut self, other: Resources) {
        self.tiers.extend(other.tiers);
        self.global_network_policies
            .extend(other.global_network_policies);
        self.network_policies.extend(other.network_policies);
        self.profiles.extend(other.profiles);
        self.workload_endpoints.extend(other.workload_endpoints);
        self.host_endpoints.extend(other.host_endpoints);
        self.global_network_sets.extend(other.global_network_sets);
        self.network_sets.extend(other.network_sets);
        self.ip_pools.extend(other.ip_pools);
        self.nodes.extend(other.nodes);
        self.bgp_peers.extend(other.bgp_peers);
        self.bgp_configurations.extend(other.bgp_configurations);
        self.block_affinities.extend(other.block_affinities);
        self.felix_configurations.extend(other.felix_configurations);
        self.namespaces.extend(other.namespaces);
        self.ipam_configs.extend(other.ipam_configs);
        self.ipam_blocks.extend(other.ipam_blocks);
        self.field_locations.extend(other.field_locations);
    }
}

impl Resources {
    /// The (line, column) of `path` in the resource from `origin` (or of its nearest recorded
    /// parent field; else the resource's own position). Recorded for the routing kinds only.
    pub fn field_location(&self, origin: &Origin, path: &str) -> (u32, u32) {
        if let Some(m) = self.field_locations.get(&origin.to_string()) {
            let mut p = path;
            loop {
                if let Some(l) = m.get(p) {
                    return *l;
                }
                match p.rfind(['.', '[']) {
                    Some(i) => p = &p[..i],
                    None => break,
                }
            }
        }
        (origin.line, origin.column)
    }
}

impl IntOrString {
    /// AS numbers: `64512`, `"64512"` or dotted `"1.10"` (= 1*65536+10).
    pub fn as_number(&self) -> Option<u32> {
        match self {
            IntOrString::Int(n) => u32::try_from(*n).ok(),
            IntOrString::Str(s) => {
                if let Some((hi, lo)) = s.split_once('.') {
                    let hi: u32 = hi.parse().ok()?;
                    let lo: u32 = lo.parse().ok()?;
                    if hi > 65535 || lo > 65535 {
                        return None;
                    }
                    Some(hi * 65536 + lo)
                } else {
                    s.parse().ok()
                }
            }
        }
    }
}

//! Kubernetes objects (v1 Namespace and Pod, networking.k8s.io/v1 NetworkPolicy) and their
//! conversion into Calico resources as Calico's Kubernetes datastore does it
//! (policy-semantics.md §4).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::resources::{self as r, IntOrString, ObjectMeta};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub node_name: String,
    #[serde(default)]
    pub service_account_name: String,
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub host_network: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub name: String,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default, rename = "podIP")]
    pub pod_ip: String,
    #[serde(default, rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodIp {
    pub ip: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    #[serde(default)]
    pub pod_selector: LabelSelector,
    #[serde(default)]
    pub policy_types: Vec<String>,
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
    #[serde(default)]
    pub egress: Vec<EgressRule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    #[serde(default)]
    pub from: Vec<Peer>,
    #[serde(default)]
    pub ports: Vec<NpPort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    #[serde(default)]
    pub to: Vec<Peer>,
    #[serde(default)]
    pub ports: Vec<NpPort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub ip_block: Option<IpBlock>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    pub cidr: String,
    #[serde(default)]
    pub except: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NpPort {
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port: Option<IntOrString>,
    #[serde(default)]
    pub end_port: Option<i64>,
}

fn quote(v: &str) -> String {
    if v.contains('\'') {
        format!("\"{v}\"")
    } else {
        format!("'{v}'")
    }
}

/// A Kubernetes label selector as a Calico selector (`""` for the empty selector).
pub fn label_selector(s: &LabelSelector) -> String {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k} == {}", quote(v)))
        .collect();
    for e in &s.match_expressions {
        let set = || {
            let mut vals: Vec<String> = e.values.iter().map(|v| quote(v)).collect();
            vals.sort();
            vals.join(", ")
        };
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in {{ {} }}", e.key, set()),
            "NotIn" => format!("{} not in {{ {} }}", e.key, set()),
            "Exists" => format!("has({})", e.key),
            "DoesNotExist" => format!("! has({})", e.key),
            // Reported by validation; never matches.
            other => format!("has(invalid-operator-{other})"),
        });
    }
    parts.join(" && ")
}

const K8S_SEL: &str = "projectcalico.org/orchestrator == 'k8s'";

fn with_k8s(sel: &str) -> String {
    if sel.is_empty() {
        K8S_SEL.to_string()
    } else {
        format!("{K8S_SEL} && {sel}")
    }
}

/// Normalises a CIDR to its network address (`10.0.0.5/8` → `10.0.0.0/8`); bad input is kept as
/// is for validation to report.
pub fn normalise_cidr(c: &str) -> String {
    match c.parse::<ipnet::IpNet>() {
        Ok(n) => n.trunc().to_string(),
        Err(_) => c.to_string(),
    }
}

/// Ports grouped by protocol, in first-seen protocol order; `None` when a port is unusable.
fn port_groups(ports: &[NpPort]) -> Option<Vec<(String, Vec<IntOrString>)>> {
    let mut groups: Vec<(String, Vec<IntOrString>)> = Vec::new();
    for p in ports {
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        let entry = match &p.port {
            None => None,
            Some(IntOrString::Int(n)) => {
                if !(1..=65535).contains(n) {
                    return None;
                }
                match p.end_port {
                    Some(e) if e >= *n && e <= 65535 => Some(IntOrString::Str(format!("{n}:{e}"))),
                    Some(_) => return None,
                    None => Some(IntOrString::Int(*n)),
                }
            }
            Some(IntOrString::Str(s)) => {
                if let Ok(n) = s.parse::<i64>() {
                    if !(1..=65535).contains(&n) {
                        return None;
                    }
                    Some(IntOrString::Int(n))
                } else if s.is_empty() {
                    return None;
                } else {
                    Some(IntOrString::Str(s.clone()))
                }
            }
        };
        let idx = match groups.iter().position(|(p, _)| *p == proto) {
            Some(i) => i,
            None => {
                groups.push((proto.clone(), Vec::new()));
                groups.len() - 1
            }
        };
        match entry {
            // "every port of X": an empty port list, which absorbs the others.
            None => groups[idx].1 = vec![IntOrString::Str("*".into())],
            Some(e) => {
                if groups[idx].1.first() != Some(&IntOrString::Str("*".into())) {
                    groups[idx].1.push(e)
                }
            }
        }
    }
    for g in &mut groups {
        if g.1.first() == Some(&IntOrString::Str("*".into())) {
            g.1.clear();
        }
    }
    Some(groups)
}

fn peer_entity(p: &Peer) -> r::EntityRule {
    let mut e = r::EntityRule::default();
    if let Some(b) = &p.ip_block {
        e.nets = vec![normalise_cidr(&b.cidr)];
        e.not_nets = b.except.iter().map(|c| normalise_cidr(c)).collect();
        return e;
    }
    match (&p.pod_selector, &p.namespace_selector) {
        (Some(ps), None) => e.selector = with_k8s(&label_selector(ps)),
        (None, Some(ns)) => {
            e.selector = K8S_SEL.to_string();
            let n = label_selector(ns);
            e.namespace_selector = if n.is_empty() { "all()".into() } else { n };
        }
        (Some(ps), Some(ns)) => {
            e.selector = with_k8s(&label_selector(ps));
            let n = label_selector(ns);
            e.namespace_selector = if n.is_empty() { "all()".into() } else { n };
        }
        (None, None) => {}
    }
    e
}

fn convert_rules(peers: &[Peer], ports: &[NpPort], ingress: bool) -> Vec<r::Rule> {
    let Some(groups) = port_groups(ports) else {
        return Vec::new();
    };
    let groups: Vec<(Option<String>, Vec<IntOrString>)> = if groups.is_empty() {
        vec![(None, Vec::new())]
    } else {
        groups.into_iter().map(|(p, v)| (Some(p), v)).collect()
    };
    let peers: Vec<r::EntityRule> = if peers.is_empty() {
        vec![r::EntityRule::default()]
    } else {
        peers.iter().map(peer_entity).collect()
    };
    let mut out = Vec::new();
    for (proto, ports) in &groups {
        for peer in &peers {
            let mut rule = r::Rule {
                action: "Allow".into(),
                protocol: proto.clone().map(IntOrString::Str),
                ..Default::default()
            };
            let mut dst = r::EntityRule::default();
            if ingress {
                rule.source = peer.clone();
            } else {
                dst = peer.clone();
            }
            dst.ports = ports.clone();
            rule.destination = dst;
            out.push(rule);
        }
    }
    out
}

pub fn network_policy(meta: ObjectMeta, spec: NetworkPolicySpec) -> r::NetworkPolicy {
    let mut types: Vec<String> = spec.policy_types.clone();
    if types.is_empty() {
        types.push("Ingress".into());
        if !spec.egress.is_empty() {
            types.push("Egress".into());
        }
    }
    let ingress = spec
        .ingress
        .iter()
        .flat_map(|x| convert_rules(&x.from, &x.ports, true))
        .collect();
    let egress = spec
        .egress
        .iter()
        .flat_map(|x| convert_rules(&x.to, &x.ports, false))
        .collect();
    r::NetworkPolicy {
        metadata: ObjectMeta {
            name: format!("knp.default.{}", meta.name),
            namespace: Some(meta.namespace.clone().unwrap_or_else(|| "default".into())),
            labels: meta.labels,
            annotations: meta.annotations,
            ..Default::default()
        },
        spec: r::NetworkPolicySpec {
            tier: "default".into(),
            order: Some(1000.0),
            selector: with_k8s(&label_selector(&spec.pod_selector)),
            types,
            ingress,
            egress,
            ..Default::default()
        },
        from_kubernetes: true,
        origin: Default::default(),
    }
}

/// The `kns.<name>` profile of a namespace.
pub fn namespace_profile(name: &str, labels: &BTreeMap<String, String>) -> r::Profile {
    let mut labels_to_apply: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (format!("pcns.{k}"), v.clone()))
        .collect();
    labels_to_apply.insert("pcns.projectcalico.org/name".into(), name.to_string());
    let allow = r::Rule {
        action: "Allow".into(),
        ..Default::default()
    };
    r::Profile {
        metadata: ObjectMeta {
            name: format!("kns.{name}"),
            ..Default::default()
        },
        spec: r::ProfileSpec {
            ingress: vec![allow.clone()],
            egress: vec![allow],
            labels_to_apply,
        },
        origin: Default::default(),
    }
}

pub fn pod(meta: ObjectMeta, spec: PodSpec, status: PodStatus) -> r::WorkloadEndpoint {
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let mut ips: Vec<String> = status
        .pod_ips
        .iter()
        .map(|p| p.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    if ips.is_empty() && !status.pod_ip.is_empty() {
        ips.push(status.pod_ip.clone());
    }
    let ports = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .filter(|p| !p.name.is_empty())
        .map(|p| r::EndpointPort {
            name: p.name.clone(),
            protocol: Some(IntOrString::Str(if p.protocol.is_empty() {
                "TCP".into()
            } else {
                p.protocol.clone()
            })),
            port: p.container_port,
            host_port: None,
            host_ip: None,
        })
        .collect();
    r::WorkloadEndpoint {
        metadata: ObjectMeta {
            name: meta.name.clone(),
            namespace: Some(ns.clone()),
            labels: meta.labels,
            ..Default::default()
        },
        spec: r::WorkloadEndpointSpec {
            orchestrator: "k8s".into(),
            node: spec.node_name,
            pod: meta.name.clone(),
            endpoint: "eth0".into(),
            service_account_name: spec.service_account_name,
            ip_networks: ips.iter().map(|i| crate::v1::address_to_cidr(i)).collect(),
            profiles: vec![format!("kns.{ns}")],
            interface_name: pod_interface_name(&ns, &meta.name),
            ports,
            ..Default::default()
        },
        origin: Default::default(),
    }
}

/// Calico's host-side veth name for a pod: `cali` + the first 11 hex digits of
/// SHA-1(`<namespace>.<pod>`).
pub fn pod_interface_name(namespace: &str, pod: &str) -> String {
    let digest = sha1(format!("{namespace}.{pod}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cali{}", &hex[..11])
}

/// SHA-1 (only for interface names; not for security).
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | ((!b) & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_vector() {
        let d = sha1(b"abc");
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(pod_interface_name("a", "b").len(), 15);
    }

    #[test]
    fn selectors_from_label_selectors() {
        let s = LabelSelector {
            match_labels: [("b".to_string(), "2".to_string()), ("a".into(), "1".into())]
                .into_iter()
                .collect(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "t".into(),
                operator: "NotIn".into(),
                values: vec!["y".into(), "x".into()],
            }],
        };
        assert_eq!(
            label_selector(&s),
            "a == '1' && b == '2' && t not in { 'x', 'y' }"
        );
    }

    #[test]
    fn ports_group_by_protocol() {
        let p = |proto: Option<&str>, port: Option<IntOrString>| NpPort {
            protocol: proto.map(str::to_string),
            port,
            end_port: None,
        };
        let g = port_groups(&[
            p(None, Some(IntOrString::Int(80))),
            p(Some("UDP"), None),
            p(Some("TCP"), Some(IntOrString::Str("http".into()))),
        ])
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0].1,
            vec![IntOrString::Int(80), IntOrString::Str("http".into())]
        );
        assert!(g[1].1.is_empty());
        assert!(port_groups(&[p(None, Some(IntOrString::Int(0)))]).is_none());
    }
}

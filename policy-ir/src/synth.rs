//! A deterministic synthetic cluster: namespaces with labels, pods (as WorkloadEndpoints with
//! `kns.` profiles and named ports), Kubernetes-style and Calico policies with selectors,
//! namespace selectors, CIDRs and named ports. Used by the scale benchmark and reusable by the
//! backends (`generate` for resources, `to_json_list` for a file the loader reads).

use std::collections::BTreeMap;

use crate::resources::*;

/// Generator parameters.
#[derive(Debug, Clone)]
pub struct Params {
    pub namespaces: usize,
    pub endpoints: usize,
    pub policies: usize,
    /// Number of nodes; endpoints are spread round-robin (`node-0` … `node-{n-1}`).
    pub nodes: usize,
    pub seed: u64,
}

impl Default for Params {
    /// The benchmark's cluster: 100,000 endpoints in 1,000 namespaces, 5,000 policies, 400
    /// nodes (250 endpoints each).
    fn default() -> Self {
        Params {
            namespaces: 1000,
            endpoints: 100_000,
            policies: 5000,
            nodes: 400,
            seed: 1,
        }
    }
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const APPS: &[&str] = &[
    "web", "api", "auth", "cart", "search", "db", "cache", "queue", "worker", "metrics", "logs",
    "mail", "billing", "catalog", "gateway", "admin", "cron", "ml", "video", "chat",
];
const TIERS: &[&str] = &["frontend", "backend", "data"];
const TEAMS: &[&str] = &["red", "blue", "green", "gold", "teal"];
const ENVS: &[&str] = &["prod", "staging", "dev"];

fn labels(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn allow() -> Rule {
    Rule {
        action: "Allow".into(),
        ..Default::default()
    }
}

/// Builds the cluster.
pub fn generate(p: &Params) -> Resources {
    let mut rng = Rng(p.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut res = Resources::default();
    let ns_name = |i: usize| format!("ns-{i:04}");
    for i in 0..p.namespaces {
        res.namespaces.push(Namespace {
            metadata: ObjectMeta {
                name: ns_name(i),
                labels: labels(&[
                    ("team", TEAMS[i % TEAMS.len()].to_string()),
                    ("env", ENVS[i % ENVS.len()].to_string()),
                ]),
                ..Default::default()
            },
            origin: Origin::default(),
        });
    }
    for n in 0..p.nodes {
        res.nodes.push(Node {
            metadata: ObjectMeta {
                name: format!("node-{n}"),
                ..Default::default()
            },
            spec: NodeSpec {
                bgp: Some(NodeBgpSpec {
                    ipv4_address: format!("192.168.{}.{}/16", n / 250, n % 250 + 1),
                    ..Default::default()
                }),
                ..Default::default()
            },
            origin: Origin::default(),
        });
    }
    res.ip_pools.push(IpPool {
        metadata: ObjectMeta {
            name: "default-ipv4-ippool".into(),
            ..Default::default()
        },
        spec: IpPoolSpec {
            cidr: "10.0.0.0/8".into(),
            ipip_mode: "Always".into(),
            nat_outgoing: true,
            ..Default::default()
        },
        origin: Origin::default(),
    });
    for e in 0..p.endpoints {
        let nsi = e % p.namespaces.max(1);
        let ns = ns_name(nsi);
        let app = APPS[rng.below(APPS.len())];
        let name = format!("{app}-{e}");
        let ip = 0x0A00_0000u32 + e as u32 + 1;
        let ip = std::net::Ipv4Addr::from(ip);
        res.workload_endpoints.push(WorkloadEndpoint {
            metadata: ObjectMeta {
                name: name.clone(),
                namespace: Some(ns.clone()),
                labels: labels(&[
                    ("app", app.to_string()),
                    ("tier", TIERS[rng.below(TIERS.len())].to_string()),
                    ("version", format!("v{}", rng.below(3) + 1)),
                    (
                        "pod-template-hash",
                        format!("{:x}", rng.next() & 0xffff_ffff),
                    ),
                ]),
                ..Default::default()
            },
            spec: WorkloadEndpointSpec {
                orchestrator: "k8s".into(),
                node: format!("node-{}", e % p.nodes.max(1)),
                pod: name.clone(),
                endpoint: "eth0".into(),
                ip_networks: vec![format!("{ip}/32")],
                profiles: vec![format!("kns.{ns}")],
                interface_name: crate::k8s::pod_interface_name(&ns, &name),
                ports: vec![
                    EndpointPort {
                        name: "http".into(),
                        protocol: Some(IntOrString::Str("TCP".into())),
                        port: 8080,
                        ..Default::default()
                    },
                    EndpointPort {
                        name: "metrics".into(),
                        protocol: Some(IntOrString::Str("TCP".into())),
                        port: 9090,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            origin: Origin::default(),
        });
    }
    for i in 0..p.policies {
        let nsi = rng.below(p.namespaces.max(1));
        let ns = ns_name(nsi);
        let app = APPS[rng.below(APPS.len())];
        let peer = APPS[rng.below(APPS.len())];
        match i % 10 {
            // Kubernetes-style: ingress from pods of the namespace on a named port and a number.
            0..=4 => {
                let mut src = EntityRule {
                    selector: format!("projectcalico.org/orchestrator == 'k8s' && app == '{peer}'"),
                    ..Default::default()
                };
                if i % 10 == 1 {
                    src.namespace_selector = format!("env == '{}'", ENVS[rng.below(ENVS.len())]);
                }
                res.network_policies.push(NetworkPolicy {
                    metadata: ObjectMeta {
                        name: format!("knp.default.allow-{peer}-to-{app}-{i}"),
                        namespace: Some(ns),
                        ..Default::default()
                    },
                    spec: NetworkPolicySpec {
                        tier: "default".into(),
                        order: Some(1000.0),
                        selector: format!(
                            "projectcalico.org/orchestrator == 'k8s' && app == '{app}'"
                        ),
                        types: vec!["Ingress".into()],
                        ingress: vec![Rule {
                            protocol: Some(IntOrString::Str("TCP".into())),
                            source: src,
                            destination: EntityRule {
                                ports: vec![IntOrString::Str("http".into()), IntOrString::Int(443)],
                                ..Default::default()
                            },
                            ..allow()
                        }],
                        ..Default::default()
                    },
                    from_kubernetes: true,
                    origin: Origin::default(),
                });
            }
            // Kubernetes-style egress with an ipBlock and except.
            5 | 6 => {
                res.network_policies.push(NetworkPolicy {
                    metadata: ObjectMeta {
                        name: format!("knp.default.egress-{app}-{i}"),
                        namespace: Some(ns),
                        ..Default::default()
                    },
                    spec: NetworkPolicySpec {
                        tier: "default".into(),
                        order: Some(1000.0),
                        selector: format!("projectcalico.org/orchestrator == 'k8s' && app == '{app}' && tier in {{'backend', 'data'}}"),
                        types: vec!["Egress".into()],
                        egress: vec![Rule {
                            destination: EntityRule {
                                nets: vec![format!("172.{}.0.0/16", 16 + rng.below(16))],
                                not_nets: vec![format!("172.16.{}.0/24", rng.below(256))],
                                ..Default::default()
                            },
                            ..allow()
                        }],
                        ..Default::default()
                    },
                    from_kubernetes: true,
                    origin: Origin::default(),
                });
            }
            // Calico NetworkPolicy with a deny and an allow.
            7 | 8 => {
                res.network_policies.push(NetworkPolicy {
                    metadata: ObjectMeta {
                        name: format!("calico-{app}-{i}"),
                        namespace: Some(ns),
                        ..Default::default()
                    },
                    spec: NetworkPolicySpec {
                        order: Some((i % 7) as f64 * 10.0),
                        selector: format!("app == '{app}' && version != 'v3'"),
                        ingress: vec![
                            Rule {
                                action: "Deny".into(),
                                protocol: Some(IntOrString::Str("TCP".into())),
                                source: EntityRule {
                                    selector: format!("tier == 'frontend' && app == '{peer}'"),
                                    ..Default::default()
                                },
                                destination: EntityRule {
                                    ports: vec![IntOrString::Str("5432:5440".into())],
                                    ..Default::default()
                                },
                                ..Default::default()
                            },
                            Rule {
                                protocol: Some(IntOrString::Str("TCP".into())),
                                source: EntityRule {
                                    selector: format!("app == '{peer}'"),
                                    ..Default::default()
                                },
                                destination: EntityRule {
                                    ports: vec![IntOrString::Str("metrics".into())],
                                    ..Default::default()
                                },
                                ..allow()
                            },
                        ],
                        egress: vec![allow()],
                        ..Default::default()
                    },
                    from_kubernetes: false,
                    origin: Origin::default(),
                });
            }
            // Global policy with a namespace selector.
            _ => {
                res.global_network_policies.push(GlobalNetworkPolicy {
                    metadata: ObjectMeta {
                        name: format!("global-{app}-{i}"),
                        ..Default::default()
                    },
                    spec: GlobalNetworkPolicySpec {
                        tier: "default".into(),
                        order: Some(100.0),
                        selector: format!("app == '{app}'"),
                        namespace_selector: format!("team == '{}'", TEAMS[rng.below(TEAMS.len())]),
                        ingress: vec![Rule {
                            protocol: Some(IntOrString::Str("UDP".into())),
                            source: EntityRule {
                                namespace_selector: format!(
                                    "env == '{}'",
                                    ENVS[rng.below(ENVS.len())]
                                ),
                                ..Default::default()
                            },
                            destination: EntityRule {
                                ports: vec![IntOrString::Int(53)],
                                ..Default::default()
                            },
                            ..allow()
                        }],
                        ..Default::default()
                    },
                    origin: Origin::default(),
                });
            }
        }
    }
    crate::load::add_implied(&mut res);
    res
}

/// Appends each of `rs` as one JSON object with `apiVersion` and `kind` (keys in serde_json's
/// map order).
fn items<'a, T: serde::Serialize + 'a>(
    out: &mut Vec<u8>,
    api: &str,
    kind: &str,
    rs: impl IntoIterator<Item = &'a T>,
) {
    for r in rs {
        let mut v = serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("apiVersion".into(), api.into());
            o.insert("kind".into(), kind.into());
        }
        if out.last() != Some(&b'[') {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &v).expect("serialising to memory");
    }
}

/// The resources as one JSON `List` document that [`crate::load`] reads back (Kubernetes
/// namespaces as `v1` Namespaces, everything else in v3 form; `kns.` profiles are implied).
/// Written item by item (the same text as `json!({"apiVersion", "items", "kind"})` gives),
/// so no JSON tree of the whole cluster is built.
pub fn to_json_list(res: &Resources) -> String {
    const V3: &str = "projectcalico.org/v3";
    let mut out = Vec::new();
    out.extend_from_slice(br#"{"apiVersion":"v1","items":["#);
    items(&mut out, "v1", "Namespace", &res.namespaces);
    items(&mut out, V3, "Tier", &res.tiers);
    items(
        &mut out,
        V3,
        "GlobalNetworkPolicy",
        &res.global_network_policies,
    );
    items(&mut out, V3, "NetworkPolicy", &res.network_policies);
    let profiles = res.profiles.iter();
    items(
        &mut out,
        V3,
        "Profile",
        profiles.filter(|p| !p.metadata.name.starts_with("kns.")),
    );
    items(&mut out, V3, "WorkloadEndpoint", &res.workload_endpoints);
    items(&mut out, V3, "HostEndpoint", &res.host_endpoints);
    items(&mut out, V3, "GlobalNetworkSet", &res.global_network_sets);
    items(&mut out, V3, "NetworkSet", &res.network_sets);
    items(&mut out, V3, "IPPool", &res.ip_pools);
    items(&mut out, V3, "Node", &res.nodes);
    out.extend_from_slice(br#"],"kind":"List"}"#);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_cluster_round_trips_through_the_loader() {
        let p = Params {
            namespaces: 5,
            endpoints: 200,
            policies: 40,
            nodes: 4,
            seed: 7,
        };
        let res = generate(&p);
        assert_eq!(res.workload_endpoints.len(), 200);
        assert_eq!(
            res.global_network_policies.len() + res.network_policies.len(),
            40
        );
        assert_eq!(generate(&p), res, "deterministic");
        let text = to_json_list(&res);
        let mut l = crate::load::Loader::new();
        l.add_text("synth.json", &text);
        let back = l.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.workload_endpoints.len(), 200);
        assert_eq!(back.network_policies.len(), res.network_policies.len());
        let m = crate::Model::from_resources(res);
        let ir = m.node_ir("node-1");
        assert_eq!(ir.workloads.len(), 50);
        assert!(!ir.policies.is_empty());
        assert!(!ir.ipsets.is_empty());
    }
}

/// Synthetic node IRs built directly (no resources), shared by the backends' render benchmarks.
pub mod render_bench {
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    use ipnet::Ipv4Net;

    use crate::ir::*;

    fn bench_rule(action: RuleAction, i: usize) -> RuleIr {
        let mut r = RuleIr {
            action,
            protocol: Some(if i.is_multiple_of(2) {
                Protocol::Tcp
            } else {
                Protocol::Udp
            }),
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            source: MatchSide::default(),
            destination: MatchSide::default(),
            origin: RuleOrigin {
                index: 0,
                text: String::new(),
            },
        };
        r.source.ipsets = vec![format!("s:sel{}", i % 200)];
        r.destination.ports = vec![
            PortRange {
                first: 80 + (i % 50) as u16,
                last: 80 + (i % 50) as u16,
            },
            PortRange {
                first: 8000,
                last: 8100,
            },
        ];
        if i.is_multiple_of(3) {
            r.source.nets = vec![
                format!("10.{}.0.0/16", i % 250).parse().unwrap(),
                "192.168.0.0/16".parse().unwrap(),
            ];
        }
        r
    }

    /// A synthetic node IR for the render benchmarks: `endpoints` local workloads and `policies`
    /// policies (selector, port and CIDR rules; each endpoint references 20 policies in two tiers,
    /// every policy referenced by some endpoint). Deterministic.
    pub fn bench_node_ir(endpoints: usize, policies: usize) -> NodeIr {
        let mut ir = NodeIr {
            node: "bench".into(),
            ..Default::default()
        };
        let ids: Vec<PolicyId> = (0..policies)
            .map(|i| PolicyId {
                kind: PolicyKind::NetworkPolicy,
                namespace: Some(format!("ns{}", i % 40)),
                name: format!("policy-{i}"),
            })
            .collect();
        for (i, id) in ids.iter().enumerate() {
            ir.policies.insert(
                id.clone(),
                PolicyIr {
                    id: id.clone(),
                    tier: if i.is_multiple_of(10) {
                        "security".into()
                    } else {
                        "default".into()
                    },
                    inbound: vec![
                        bench_rule(RuleAction::Allow, i),
                        bench_rule(RuleAction::Deny, i + 1),
                    ],
                    outbound: vec![bench_rule(RuleAction::Allow, i + 2)],
                },
            );
        }
        for s in 0..200 {
            let id = format!("s:sel{s}");
            let members: BTreeSet<Ipv4Net> = (0..50)
                .map(|k| {
                    Ipv4Net::new(
                        Ipv4Addr::new(10, (s % 250) as u8, (k / 250) as u8, (k % 250) as u8 + 1),
                        32,
                    )
                    .unwrap()
                })
                .collect();
            ir.ipsets.insert(
                id.clone(),
                IpSetIr {
                    id,
                    description: String::new(),
                    members: IpSetMembers::Nets(members),
                },
            );
        }
        let per_ep = 20;
        for e in 0..endpoints {
            let pols: Vec<PolicyId> = (0..per_ep)
                .map(|k| ids[(e * per_ep + k) % policies].clone())
                .collect();
            let (sec, def): (Vec<_>, Vec<_>) = pols
                .into_iter()
                .partition(|p| ir.policies[p].tier == "security");
            let mut tiers = Vec::new();
            if !sec.is_empty() {
                tiers.push(TierIr {
                    name: "security".into(),
                    default_action: TierDefaultAction::Pass,
                    policies: sec,
                });
            }
            tiers.push(TierIr {
                name: "default".into(),
                default_action: TierDefaultAction::Deny,
                policies: def,
            });
            let pol = EndpointPolicyIr {
                tiers,
                profiles: vec![format!("kns.ns{}", e % 40)],
            };
            ir.workloads.push(WorkloadEndpointIr {
                id: EndpointId {
                    namespace: Some(format!("ns{}", e % 40)),
                    name: format!("pod-{e}"),
                },
                interface: format!("cali{:011x}", e.wrapping_mul(2654435761) % 0xff_ffff_ffff),
                addrs: vec![Ipv4Net::new(
                    Ipv4Addr::new(10, 200, (e / 250) as u8, (e % 250) as u8 + 1),
                    32,
                )
                .unwrap()],
                admin_up: true,
                ingress: pol.clone(),
                egress: pol,
            });
        }
        ir.workloads.sort_by(|a, b| a.interface.cmp(&b.interface));
        for n in 0..40 {
            let name = format!("kns.ns{n}");
            let allow = RuleIr {
                protocol: None,
                source: MatchSide::default(),
                destination: MatchSide::default(),
                ..bench_rule(RuleAction::Allow, 0)
            };
            ir.profiles.insert(
                name.clone(),
                ProfileIr {
                    name,
                    inbound: vec![allow.clone()],
                    outbound: vec![allow],
                },
            );
        }
        ir
    }
}

//! Per-node resolution: the [`NodeIr`] of one node, holding only that node's endpoints and the
//! policies, profiles and IP sets they reference.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::{IpNet, Ipv4Net};
use selector_lang::{make_unique_id, Selector};

use crate::ir::*;
use crate::model::{Direction, EntityKind, Model, Rule, Side};

/// The named-port set ID: `MakeUniqueID("n", selUID + "," + proto + "," + name)`.
pub fn named_port_set_id(sel_uid: &str, proto: Protocol, name: &str) -> String {
    make_unique_id("n", &format!("{sel_uid},{},{name}", proto.iptables_name()))
}

struct SetBuilder<'m> {
    model: &'m Model,
    sets: BTreeMap<String, IpSetIr>,
}

impl SetBuilder<'_> {
    fn selector_set(&mut self, sel: &Selector) -> String {
        let uid = sel.uid().to_string();
        if !self.sets.contains_key(&uid) {
            let mut members = BTreeSet::new();
            for i in self.model.index.members(&uid) {
                let e = &self.model.entities[i];
                for n in &e.nets {
                    members.insert(if e.kind == EntityKind::NetworkSet {
                        *n
                    } else {
                        Ipv4Net::new(n.addr(), 32).expect("/32")
                    });
                }
            }
            self.sets.insert(
                uid.clone(),
                IpSetIr {
                    id: uid.clone(),
                    description: sel.canonical().to_string(),
                    members: IpSetMembers::Nets(members),
                },
            );
        }
        uid
    }

    fn named_port_set(&mut self, sel: &Selector, proto: Protocol, name: &str) -> String {
        let id = named_port_set_id(sel.uid(), proto, name);
        if !self.sets.contains_key(&id) {
            let mut members = BTreeSet::new();
            for i in self.model.index.members(sel.uid()) {
                let e = &self.model.entities[i];
                if e.kind == EntityKind::NetworkSet {
                    continue;
                }
                for (pn, pp, port) in &e.ports {
                    if pn == name && *pp == proto {
                        for n in &e.nets {
                            members.insert((n.addr(), proto, *port));
                        }
                    }
                }
            }
            self.sets.insert(
                id.clone(),
                IpSetIr {
                    id: id.clone(),
                    description: format!(
                        "{} {} port {name}",
                        sel.canonical(),
                        proto.iptables_name()
                    ),
                    members: IpSetMembers::IpPorts(members),
                },
            );
        }
        id
    }

    fn side(&mut self, s: &Side, proto: Option<Protocol>) -> MatchSide {
        let mut m = MatchSide {
            nets: s.nets.clone(),
            not_nets: s.not_nets.clone(),
            ports: s.ports.clone(),
            not_ports: s.not_ports.clone(),
            ..Default::default()
        };
        if let Some(sel) = &s.selector {
            m.ipsets.push(self.selector_set(sel));
        }
        if let Some(sel) = &s.not_selector {
            m.not_ipsets.push(self.selector_set(sel));
        }
        if let Some(p) = proto {
            let all = Selector::all();
            let base = s.selector.as_ref().unwrap_or(&all);
            for n in &s.named_ports {
                m.named_port_sets.push(self.named_port_set(base, p, n));
            }
            for n in &s.not_named_ports {
                m.not_named_port_sets.push(self.named_port_set(&all, p, n));
            }
        }
        m
    }

    fn rules(&mut self, rules: &[Rule]) -> Vec<RuleIr> {
        rules
            .iter()
            .map(|r| RuleIr {
                action: r.action,
                protocol: r.protocol,
                not_protocol: r.not_protocol,
                icmp: r.icmp,
                not_icmp: r.not_icmp,
                source: self.side(&r.src, r.protocol),
                destination: self.side(&r.dst, r.protocol),
                origin: RuleOrigin {
                    index: r.index,
                    text: r.text.clone(),
                },
            })
            .collect()
    }
}

impl Model {
    fn endpoint_policy(
        &self,
        slots: &[Option<u32>],
        id: usize,
        dir: Direction,
        used: &mut BTreeSet<usize>,
    ) -> EndpointPolicyIr {
        let mut tiers: Vec<TierIr> = Vec::new();
        for pi in self.applying_policies_with(slots, id, dir) {
            used.insert(pi);
            let p = &self.policies[pi];
            match tiers.last_mut() {
                Some(t) if t.name == p.tier => t.policies.push(p.id.clone()),
                _ => {
                    let default_action = self
                        .tiers
                        .iter()
                        .find(|t| t.name == p.tier)
                        .map(|t| t.default_action)
                        .unwrap_or(TierDefaultAction::Deny);
                    tiers.push(TierIr {
                        name: p.tier.clone(),
                        default_action,
                        policies: vec![p.id.clone()],
                    })
                }
            }
        }
        EndpointPolicyIr {
            tiers,
            profiles: self.entities[id].profiles.clone(),
        }
    }

    /// Felix settings for `node`: FelixConfiguration `default`, overridden by `node.<node>`.
    pub fn settings(&self, node: &str) -> DataplaneSettings {
        let mut s = DataplaneSettings::default();
        let node_name = format!("node.{node}");
        for name in ["default", node_name.as_str()] {
            let Some(fc) = self
                .res
                .felix_configurations
                .iter()
                .find(|f| f.metadata.name == name)
            else {
                continue;
            };
            let c = &fc.spec;
            if let Some(p) = &c.interface_prefix {
                s.interface_prefixes = p
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect();
            }
            // Loading rejected bad protocols and nets; an IPv6 net makes an entry IPv6-only,
            // so it has no IPv4 rule.
            let conv = |l: &Vec<crate::resources::ProtoPortSpec>| {
                l.iter()
                    .filter_map(|p| {
                        let net = match p.net.as_str() {
                            "" => None,
                            n => match crate::validate::parse_net(n).ok()? {
                                ipnet::IpNet::V4(v4) => Some(v4.trunc()),
                                ipnet::IpNet::V6(_) => return None,
                            },
                        };
                        Some(ProtoPort {
                            protocol: crate::validate::parse_failsafe_protocol(&p.protocol)?,
                            port: p.port,
                            net,
                        })
                    })
                    .collect::<Vec<_>>()
            };
            if let Some(l) = &c.failsafe_inbound_host_ports {
                s.failsafe_inbound = conv(l);
            }
            if let Some(l) = &c.failsafe_outbound_host_ports {
                s.failsafe_outbound = conv(l);
            }
            if let Some(a) = &c.default_endpoint_to_host_action {
                // Loading rejected anything else.
                if let Some(a) = crate::validate::parse_endpoint_to_host_action(a) {
                    s.default_endpoint_to_host_action = a;
                }
            }
            if let Some(p) = &c.log_prefix {
                s.log_prefix = p.clone();
            }
            if let Some(m) = c.max_ipset_size {
                s.max_ipset_size = m;
            }
            if let Some(b) = c.allow_ipip_packets_from_workloads {
                s.allow_ipip_from_workloads = b;
            }
            if let Some(b) = c.allow_vxlan_packets_from_workloads {
                s.allow_vxlan_from_workloads = b;
            }
            if let Some(p) = c.vxlan_port {
                s.vxlan_port = p;
            }
        }
        s
    }

    /// The IR of one node: its endpoints (sorted by interface), and only the policies, profiles
    /// and IP sets they reference.
    pub fn node_ir(&self, node: &str) -> NodeIr {
        let mut used = BTreeSet::new();
        let mut profiles_used = BTreeSet::new();
        let mut workloads = Vec::new();
        let mut host_endpoints = Vec::new();
        let slots = self.policy_slots();
        for (i, e) in self.entities.iter().enumerate() {
            if e.node.as_deref() != Some(node) || e.kind == EntityKind::NetworkSet {
                continue;
            }
            let ingress = self.endpoint_policy(&slots, i, Direction::Ingress, &mut used);
            let egress = self.endpoint_policy(&slots, i, Direction::Egress, &mut used);
            profiles_used.extend(e.profiles.iter().cloned());
            match e.kind {
                EntityKind::Workload => workloads.push(WorkloadEndpointIr {
                    id: e.id.clone(),
                    interface: e.interface.clone(),
                    addrs: e.nets.clone(),
                    admin_up: true,
                    ingress,
                    egress,
                }),
                _ => host_endpoints.push(HostEndpointIr {
                    id: e.id.clone(),
                    interface: e.interface.clone(),
                    addrs: e.nets.clone(),
                    ingress,
                    egress,
                }),
            }
        }
        workloads.sort_by(|a, b| a.interface.cmp(&b.interface).then_with(|| a.id.cmp(&b.id)));
        workloads.dedup_by(|a, b| a.interface == b.interface);
        host_endpoints.sort_by(|a, b| a.interface.cmp(&b.interface).then_with(|| a.id.cmp(&b.id)));

        let mut sb = SetBuilder {
            model: self,
            sets: BTreeMap::new(),
        };
        let mut policies = BTreeMap::new();
        for pi in used {
            let p = &self.policies[pi];
            policies.insert(
                p.id.clone(),
                PolicyIr {
                    id: p.id.clone(),
                    tier: p.tier.clone(),
                    inbound: sb.rules(&p.ingress),
                    outbound: sb.rules(&p.egress),
                },
            );
        }
        let mut profiles = BTreeMap::new();
        for name in profiles_used {
            if let Some(p) = self.profiles.get(&name) {
                profiles.insert(
                    name.clone(),
                    ProfileIr {
                        name: name.clone(),
                        inbound: sb.rules(&p.ingress),
                        outbound: sb.rules(&p.egress),
                    },
                );
            }
        }
        let mut ipsets = sb.sets;

        let mut ip_pools: Vec<IpPoolIr> = self
            .res
            .ip_pools
            .iter()
            .filter_map(|p| match p.spec.cidr.parse::<IpNet>() {
                Ok(IpNet::V4(n)) => Some(IpPoolIr {
                    cidr: n.trunc(),
                    nat_outgoing: p.spec.effective_nat_outgoing(),
                    ipip_mode: p.spec.effective_ipip_mode(),
                    disabled: p.spec.disabled,
                }),
                _ => None,
            })
            .collect();
        ip_pools.sort_by_key(|p| p.cidr);
        if !ip_pools.is_empty() {
            ipsets.insert(
                "all-ipam-pools".into(),
                IpSetIr {
                    id: "all-ipam-pools".into(),
                    description: "all IP pools".into(),
                    members: IpSetMembers::Nets(ip_pools.iter().map(|p| p.cidr).collect()),
                },
            );
            ipsets.insert(
                "masq-ipam-pools".into(),
                IpSetIr {
                    id: "masq-ipam-pools".into(),
                    description: "IP pools with natOutgoing".into(),
                    members: IpSetMembers::Nets(
                        ip_pools
                            .iter()
                            .filter(|p| p.nat_outgoing && !p.disabled)
                            .map(|p| p.cidr)
                            .collect(),
                    ),
                },
            );
        }
        let hosts: BTreeSet<Ipv4Net> = self
            .res
            .nodes
            .iter()
            .filter_map(|n| n.spec.bgp.as_ref())
            .filter_map(|b| b.ipv4_address.split('/').next()?.parse().ok())
            .map(|a| Ipv4Net::new(a, 32).expect("/32"))
            .collect();
        if !hosts.is_empty() {
            ipsets.insert(
                "all-hosts-net".into(),
                IpSetIr {
                    id: "all-hosts-net".into(),
                    description: "all node addresses".into(),
                    members: IpSetMembers::Nets(hosts),
                },
            );
        }
        NodeIr {
            node: node.to_string(),
            settings: self.settings(node),
            workloads,
            host_endpoints,
            policies,
            profiles,
            ipsets,
            ip_pools,
        }
    }
}

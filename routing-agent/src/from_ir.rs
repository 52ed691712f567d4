//! Conversion from policy-ir's v3-normalised resources (`policy_ir::Model::resources()`, v1
//! and Kubernetes forms already converted) into the routing model. Pure.
//! Errors name the resource's file:line:column (its origin), resource and field.

use crate::model::*;
use crate::{RoutingError, RoutingErrors};
use ipnet::Ipv4Net;
use policy_ir::resources::{IntOrString, Origin, Resources};
use std::net::Ipv4Addr;
use std::path::PathBuf;

fn field_err(o: &Origin, resource: String, field: &str, message: String) -> RoutingError {
    RoutingError::Field {
        file: PathBuf::from(&o.file),
        line: o.line as u64,
        column: o.column as u64,
        resource,
        field: field.into(),
        message,
    }
}

fn secs(s: &str) -> Option<u32> {
    if s.trim().is_empty() {
        return None;
    }
    let mut total = 0u32;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u32 = num.parse().ok()?;
            num.clear();
            total += match c {
                's' => n,
                'm' => n * 60,
                'h' => n * 3600,
                _ => return None,
            };
        }
    }
    if !num.is_empty() {
        total += num.parse::<u32>().ok()?;
    }
    Some(total)
}

/// Builds the routing model from policy-ir resources.
pub fn from_resources(r: &Resources) -> Result<Model, RoutingErrors> {
    let mut m = Model::default();
    let mut errs = Vec::new();
    let asn =
        |v: &Option<IntOrString>, o: &Origin, res: &str, f: &str, errs: &mut Vec<RoutingError>| {
            v.as_ref().and_then(|a| {
                let n = a.as_number();
                if n.is_none() {
                    errs.push(field_err(
                        o,
                        res.into(),
                        f,
                        format!("`{a}` is not an AS number"),
                    ));
                }
                n
            })
        };
    for c in &r.bgp_configurations {
        let res = format!("BGPConfiguration {}", c.metadata.name);
        if c.metadata.name != "default" {
            continue;
        }
        if let Some(a) = asn(
            &c.spec.as_number,
            &c.origin,
            &res,
            "spec.asNumber",
            &mut errs,
        ) {
            m.bgp.as_num = a;
        }
        m.bgp.node_mesh = c.spec.node_to_node_mesh_enabled.unwrap_or(true);
        m.bgp.listen_port = c.spec.listen_port;
        if !c.spec.log_severity_screen.is_empty() {
            m.bgp.log_level = Some(c.spec.log_severity_screen.to_lowercase());
        }
        m.bgp.bind_node_ip = c.spec.bind_mode == "NodeIP";
        m.bgp.ignored_interfaces = c.spec.ignored_interfaces.clone();
        m.bgp.mesh_restart_time = secs(&c.spec.node_mesh_max_restart_time);
    }
    for n in &r.nodes {
        let res = format!("Node {}", n.metadata.name);
        let mut node = Node::new(&n.metadata.name, None);
        node.labels = n.metadata.labels.clone();
        if let Some(b) = &n.spec.bgp {
            if !b.ipv4_address.is_empty() {
                let parsed = if b.ipv4_address.contains('/') {
                    b.ipv4_address.parse::<Ipv4Net>().ok()
                } else {
                    b.ipv4_address
                        .parse::<Ipv4Addr>()
                        .ok()
                        .map(|a| Ipv4Net::new(a, 32).unwrap())
                };
                match parsed {
                    Some(p) => node.ipv4 = Some(p),
                    None => errs.push(field_err(
                        &n.origin,
                        res.clone(),
                        "spec.bgp.ipv4Address",
                        format!("`{}` is not IPv4 CIDR", b.ipv4_address),
                    )),
                }
            }
            node.as_num = asn(
                &b.as_number,
                &n.origin,
                &res,
                "spec.bgp.asNumber",
                &mut errs,
            );
            if !b.route_reflector_cluster_id.is_empty() {
                node.rr_cluster_id = Some(b.route_reflector_cluster_id.clone());
            }
            node.tunnel_addr = b.ipv4_ipip_tunnel_addr.parse().ok();
        }
        m.nodes.push(node);
    }
    for p in &r.ip_pools {
        let res = format!("IPPool {}", p.metadata.name);
        let Ok(cidr) = p.spec.cidr.parse::<Ipv4Net>() else {
            // IPv6 pools are not routed by this agent.
            if p.spec.cidr.contains(':') {
                continue;
            }
            errs.push(field_err(
                &p.origin,
                res,
                "spec.cidr",
                format!("`{}` is not an IPv4 CIDR", p.spec.cidr),
            ));
            continue;
        };
        let mode = match p.spec.effective_ipip_mode() {
            policy_ir::ir::IpipMode::Never => IpipMode::Never,
            policy_ir::ir::IpipMode::Always => IpipMode::Always,
            policy_ir::ir::IpipMode::CrossSubnet => IpipMode::CrossSubnet,
        };
        let mut pool = Pool::new(&p.metadata.name, cidr.trunc(), mode);
        pool.block_size = p.spec.effective_block_size();
        pool.nat_outgoing = p.spec.effective_nat_outgoing();
        pool.disabled = p.spec.disabled;
        pool.disable_bgp_export = p.spec.disable_bgp_export;
        pool.node_selector = p.spec.node_selector.clone();
        m.pools.push(pool);
    }
    for b in &r.bgp_peers {
        let res = format!("BGPPeer {}", b.metadata.name);
        let s = &b.spec;
        let mut p = BgpPeer::new(&b.metadata.name);
        p.node = Some(s.node.clone()).filter(|x| !x.is_empty());
        p.node_selector = Some(s.node_selector.clone()).filter(|x| !x.is_empty());
        p.peer_selector = Some(s.peer_selector.clone()).filter(|x| !x.is_empty());
        if !s.peer_ip.is_empty() {
            let (a, port) = match s.peer_ip.rsplit_once(':') {
                Some((a, port)) => (a, port.parse::<u16>().ok()),
                None => (s.peer_ip.as_str(), None),
            };
            match a.parse::<Ipv4Addr>() {
                Ok(a) => {
                    p.peer_ip = Some(a);
                    p.peer_port = port;
                }
                Err(_) => {
                    errs.push(field_err(
                        &b.origin,
                        res.clone(),
                        "spec.peerIP",
                        format!("`{}` is not IPv4[:port]", s.peer_ip),
                    ));
                    continue;
                }
            }
        }
        p.as_num = asn(&s.as_number, &b.origin, &res, "spec.asNumber", &mut errs);
        p.local_as = asn(
            &s.local_as_number,
            &b.origin,
            &res,
            "spec.localASNumber",
            &mut errs,
        );
        p.source_node_ip = s.source_address != "None";
        p.next_hop_mode = match s.next_hop_mode.as_str() {
            "Self" => NextHopMode::SelfHop,
            "Keep" => NextHopMode::Keep,
            _ => NextHopMode::Auto,
        };
        p.keep_original_next_hop = s.keep_original_next_hop;
        p.ttl_security = s.ttl_security.filter(|t| *t > 0);
        p.password = s
            .password
            .as_ref()
            .and_then(|pw| pw.secret_key_ref.as_ref())
            .map(|k| format!("secret:{}", k.name));
        p.max_restart_time = secs(&s.max_restart_time);
        p.keepalive_time = secs(&s.keepalive_time);
        p.num_allowed_local_as = s.num_allowed_local_as_numbers;
        p.reverse_manual = s.reverse_peering == "Manual";
        if p.peer_ip.is_none() && p.peer_selector.is_none() {
            continue; // localWorkloadSelector peers are not supported here.
        }
        if p.peer_ip.is_some() && p.as_num.is_none() {
            errs.push(field_err(
                &b.origin,
                res,
                "spec.asNumber",
                "peerIP needs asNumber".into(),
            ));
            continue;
        }
        m.peers.push(p);
    }
    for a in &r.block_affinities {
        let res = format!("BlockAffinity {}", a.metadata.name);
        if a.spec.deleted == "true"
            || (!a.spec.affinity_type.is_empty() && a.spec.affinity_type != "host")
        {
            continue;
        }
        let Ok(cidr) = a.spec.cidr.parse::<Ipv4Net>() else {
            if !a.spec.cidr.contains(':') {
                errs.push(field_err(
                    &a.origin,
                    res,
                    "spec.cidr",
                    format!("`{}` is not an IPv4 CIDR", a.spec.cidr),
                ));
            }
            continue;
        };
        let Some(state) = AffinityState::parse(&a.spec.state) else {
            errs.push(field_err(
                &a.origin,
                res,
                "spec.state",
                format!("`{}` is not a block affinity state", a.spec.state),
            ));
            continue;
        };
        m.affinities.push(BlockAffinity {
            node: a.spec.node.clone(),
            cidr: cidr.trunc(),
            state,
        });
    }
    for w in &r.workload_endpoints {
        let ips = w
            .spec
            .ip_networks
            .iter()
            .filter_map(|n| n.split('/').next().and_then(|a| a.parse::<Ipv4Addr>().ok()))
            .collect();
        m.workloads.push(Workload {
            name: format!(
                "{}/{}",
                w.metadata.namespace.as_deref().unwrap_or("default"),
                w.metadata.name
            ),
            node: w.spec.node.clone(),
            interface: w.spec.interface_name.clone(),
            ips,
        });
    }
    if !errs.is_empty() {
        return Err(RoutingErrors(errs));
    }
    crate::load::finish(&mut m);
    Ok(m)
}

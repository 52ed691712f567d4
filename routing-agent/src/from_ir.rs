//! Conversion from policy-ir's v3-normalised resources (`policy_ir::load::load_paths`, v1 and
//! Kubernetes forms already converted and validated) into the routing model. Pure.
//!
//! policy-ir already checks syntax, unknown fields, CIDRs, selectors, AS numbers, `ipipMode` and
//! the `blockSize` range; this adds the routing-specific checks (IPv4 only, `peerIP[:port]`,
//! `nextHopMode`, affinity states, ...). Errors name file:line:column of the field (from
//! `Resources::field_location`), the resource and the field.

use crate::model::*;
use crate::{RoutingError, RoutingErrors};
use ipnet::Ipv4Net;
use policy_ir::resources::{IntOrString, Origin, Resources};
use std::net::Ipv4Addr;
use std::path::PathBuf;

struct Errs<'a> {
    r: &'a Resources,
    out: Vec<RoutingError>,
}

impl Errs<'_> {
    fn push(&mut self, o: &Origin, resource: &str, field: &str, message: String) {
        let (line, column) = self.r.field_location(o, field);
        self.out.push(RoutingError::Field {
            file: PathBuf::from(&o.file),
            line: line.into(),
            column: column.into(),
            resource: resource.into(),
            field: field.into(),
            message,
        });
    }

    fn asn(&mut self, v: &Option<IntOrString>, o: &Origin, res: &str, f: &str) -> Option<u32> {
        let a = v.as_ref()?;
        let n = a.as_number();
        if n.is_none() {
            self.push(
                o,
                res,
                f,
                format!("`{a}` is not an AS number (0..4294967295 or asdot a.b)"),
            );
        }
        n
    }
}

/// `Kind "name"`, as policy-ir labels resources.
fn label(kind: &str, name: &str) -> String {
    format!("{kind} \"{name}\"")
}

/// Go-style durations as Calico writes them: "120s", "2m", "1h2m3s" (bare number = seconds).
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
    let mut e = Errs { r, out: Vec::new() };

    for n in &r.nodes {
        let res = label("Node", &n.metadata.name);
        let mut node = Node::new(&n.metadata.name, None);
        node.labels = n.metadata.labels.clone();
        if let Some(b) = &n.spec.bgp {
            let a = b.ipv4_address.trim();
            if !a.is_empty() {
                let parsed = if a.contains('/') {
                    a.parse::<Ipv4Net>().ok()
                } else {
                    a.parse::<Ipv4Addr>()
                        .ok()
                        .map(|a| Ipv4Net::new(a, 32).expect("/32"))
                };
                match parsed {
                    Some(p) => node.ipv4 = Some(p),
                    None => e.push(
                        &n.origin,
                        &res,
                        "spec.bgp.ipv4Address",
                        format!("`{a}` is not an IPv4 CIDR"),
                    ),
                }
            }
            node.as_num = e.asn(&b.as_number, &n.origin, &res, "spec.bgp.asNumber");
            let c = b.route_reflector_cluster_id.trim();
            if !c.is_empty() {
                if c.parse::<Ipv4Addr>().is_err() {
                    e.push(
                        &n.origin,
                        &res,
                        "spec.bgp.routeReflectorClusterID",
                        format!("`{c}` is not an IPv4 address"),
                    );
                }
                node.rr_cluster_id = Some(c.to_string());
            }
            let t = b.ipv4_ipip_tunnel_addr.trim();
            if !t.is_empty() {
                match t.parse::<Ipv4Addr>() {
                    Ok(a) => node.tunnel_addr = Some(a),
                    Err(_) => e.push(
                        &n.origin,
                        &res,
                        "spec.bgp.ipv4IPIPTunnelAddr",
                        format!("`{t}` is not an IPv4 address"),
                    ),
                }
            }
        }
        m.nodes.push(node);
    }

    for c in &r.bgp_configurations {
        let res = label("BGPConfiguration", &c.metadata.name);
        let name = c.metadata.name.as_str();
        if name != "default" && !name.is_empty() {
            // Per-node overrides (`node.<name>`) carry the node's listenPort.
            if let Some(node) = name.strip_prefix("node.") {
                if let (Some(port), Some(n)) = (
                    c.spec.listen_port,
                    m.nodes.iter_mut().find(|n| n.name == node),
                ) {
                    n.listen_port = Some(port);
                }
            }
            continue;
        }
        if let Some(a) = e.asn(&c.spec.as_number, &c.origin, &res, "spec.asNumber") {
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

    for p in &r.ip_pools {
        let res = label("IPPool", &p.metadata.name);
        let Ok(cidr) = p.spec.cidr.trim().parse::<Ipv4Net>() else {
            // IPv6 pools are not routed by this agent; other bad CIDRs policy-ir reports.
            if !p.spec.cidr.contains(':') {
                e.push(
                    &p.origin,
                    &res,
                    "spec.cidr",
                    format!("`{}` is not an IPv4 CIDR", p.spec.cidr),
                );
            }
            continue;
        };
        let mode = match p.spec.effective_ipip_mode() {
            policy_ir::ir::IpipMode::Never => IpipMode::Never,
            policy_ir::ir::IpipMode::Always => IpipMode::Always,
            policy_ir::ir::IpipMode::CrossSubnet => IpipMode::CrossSubnet,
        };
        let name = if p.metadata.name.is_empty() {
            &p.spec.cidr
        } else {
            &p.metadata.name
        };
        let mut pool = Pool::new(name, cidr.trunc(), mode);
        let bs = p.spec.effective_block_size();
        if !(20..=32).contains(&bs) || bs < cidr.prefix_len() {
            e.push(
                &p.origin,
                &res,
                "spec.blockSize",
                format!("{bs} must be 20..=32 and not larger than the pool"),
            );
        } else {
            pool.block_size = bs;
        }
        pool.nat_outgoing = p.spec.effective_nat_outgoing();
        pool.disabled = p.spec.disabled;
        pool.disable_bgp_export = p.spec.disable_bgp_export;
        pool.node_selector = p.spec.node_selector.trim().to_string();
        m.pools.push(pool);
    }

    for b in &r.bgp_peers {
        let res = label("BGPPeer", &b.metadata.name);
        let s = &b.spec;
        let o = &b.origin;
        let mut p = BgpPeer::new(&b.metadata.name);
        p.node = Some(s.node.clone()).filter(|x| !x.is_empty());
        p.node_selector = Some(s.node_selector.trim().to_string()).filter(|x| !x.is_empty());
        p.peer_selector = Some(s.peer_selector.trim().to_string()).filter(|x| !x.is_empty());
        if !s.peer_ip.is_empty() {
            let (a, port) = match s.peer_ip.rsplit_once(':') {
                Some((a, port)) => (a, Some(port)),
                None => (s.peer_ip.as_str(), None),
            };
            match (a.parse::<Ipv4Addr>(), port.map(str::parse::<u16>)) {
                (Ok(a), None) => p.peer_ip = Some(a),
                (Ok(a), Some(Ok(port))) => {
                    p.peer_ip = Some(a);
                    p.peer_port = Some(port);
                }
                _ => {
                    e.push(
                        o,
                        &res,
                        "spec.peerIP",
                        format!("`{}` is not IPv4[:port]", s.peer_ip),
                    );
                    continue;
                }
            }
        }
        p.as_num = e.asn(&s.as_number, o, &res, "spec.asNumber");
        p.local_as = e.asn(&s.local_as_number, o, &res, "spec.localASNumber");
        p.source_node_ip = s.source_address != "None";
        p.next_hop_mode = match s.next_hop_mode.as_str() {
            "" | "Auto" => NextHopMode::Auto,
            "Self" => NextHopMode::SelfHop,
            "Keep" => NextHopMode::Keep,
            other => {
                e.push(
                    o,
                    &res,
                    "spec.nextHopMode",
                    format!("`{other}` is not Auto, Self or Keep"),
                );
                NextHopMode::Auto
            }
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
            // localWorkloadSelector peers are not supported by this agent.
            if s.local_workload_selector.is_empty() {
                e.push(
                    o,
                    &res,
                    "spec.peerIP",
                    "one of peerIP or peerSelector is required".into(),
                );
            }
            continue;
        }
        if p.peer_ip.is_some() && p.as_num.is_none() {
            if s.as_number.is_none() {
                e.push(o, &res, "spec.asNumber", "peerIP needs asNumber".into());
            }
            continue;
        }
        m.peers.push(p);
    }

    for a in &r.block_affinities {
        let res = label("BlockAffinity", &a.metadata.name);
        if a.spec.deleted == "true"
            || (!a.spec.affinity_type.is_empty() && a.spec.affinity_type != "host")
        {
            continue;
        }
        if a.spec.node.is_empty() {
            e.push(&a.origin, &res, "spec.node", "missing node".into());
            continue;
        }
        let Ok(cidr) = a.spec.cidr.trim().parse::<Ipv4Net>() else {
            if !a.spec.cidr.contains(':') {
                e.push(
                    &a.origin,
                    &res,
                    "spec.cidr",
                    format!("`{}` is not an IPv4 CIDR", a.spec.cidr),
                );
            }
            continue;
        };
        let Some(state) = AffinityState::parse(&a.spec.state) else {
            e.push(
                &a.origin,
                &res,
                "spec.state",
                format!(
                    "`{}` is not pending, confirmed or pendingDeletion",
                    a.spec.state
                ),
            );
            continue;
        };
        m.affinities.push(BlockAffinity {
            node: a.spec.node.clone(),
            cidr: cidr.trunc(),
            state,
        });
    }

    for c in &r.ipam_configs {
        if let Some(s) = c.spec.strict_affinity {
            m.ipam.strict_affinity = s;
        }
        if let Some(s) = c.spec.auto_allocate_blocks {
            m.ipam.auto_allocate_blocks = s;
        }
        if let Some(s) = c.spec.max_blocks_per_host {
            m.ipam.max_blocks_per_host = s;
        }
    }

    for w in &r.workload_endpoints {
        // Endpoints without an interface have nothing to route to.
        if w.spec.interface_name.is_empty() {
            continue;
        }
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

    if !e.out.is_empty() {
        // By place, as policy-ir reports.
        e.out.sort_by_key(|x| match x {
            RoutingError::Field {
                file, line, column, ..
            } => (file.clone(), *line, *column),
            _ => (PathBuf::new(), 0, 0),
        });
        return Err(RoutingErrors(e.out));
    }
    finish(&mut m);
    Ok(m)
}

/// Orders the model deterministically and applies cross-resource defaults.
fn finish(model: &mut Model) {
    // Nodes that only host endpoints exist too (without BGP address).
    let hosting: Vec<String> = model.workloads.iter().map(|w| w.node.clone()).collect();
    for n in hosting {
        if !n.is_empty() && !model.nodes.iter().any(|x| x.name == n) {
            model.nodes.push(Node::new(&n, None));
        }
    }
    model.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    model.nodes.dedup_by(|a, b| a.name == b.name);
    model.pools.sort_by_key(|p| p.cidr);
    model.peers.sort_by(|a, b| a.name.cmp(&b.name));
    model
        .affinities
        .sort_by(|a, b| (a.cidr, &a.node).cmp(&(b.cidr, &b.node)));
    model.affinities.dedup();
    model.workloads.sort_by(|a, b| a.name.cmp(&b.name));
}

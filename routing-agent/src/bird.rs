//! BIRD 2 configuration of one node: a pure function of the model (routing.md §2, in BIRD 2
//! syntax as verified in §6/§7).
//!
//! Ownership split (spec decision 7, Calico v3.33): BIRD programs no-encap (`Never`) pool routes
//! and non-pool routes into the kernel; pools with IPIP (`Always`/`CrossSubnet`) are rejected by
//! the kernel export filter because the agent programs them itself (`proto 80`).

use crate::model::{
    selector_matches, AffinityState, BgpPeer, Model, NextHopMode, Node, AGENT_PROTO,
};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// Node-local rendering options (not in the datastore).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BirdOptions {
    /// `log "<file>" all;` when set.
    pub log_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerKind {
    Mesh,
    Global,
    Node,
}

impl PeerKind {
    pub fn prefix(self) -> &'static str {
        match self {
            PeerKind::Mesh => "Mesh",
            PeerKind::Global => "Global",
            PeerKind::Node => "Node",
        }
    }
}

/// One BGP session of the rendering node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peering {
    pub kind: PeerKind,
    pub ip: Ipv4Addr,
    pub port: Option<u16>,
    pub as_num: u32,
    /// The remote side's cluster ID (Calico nodes only).
    pub rr_cluster_id: String,
    pub calico_node: bool,
    pub local_as: Option<u32>,
    pub source_node_ip: bool,
    pub next_hop_mode: NextHopMode,
    pub keep_original_next_hop: bool,
    pub ttl_security: Option<u8>,
    pub password: Option<String>,
    pub restart_time: Option<u32>,
    pub keepalive_time: Option<u32>,
    pub num_allow_local_as: Option<u32>,
    pub passive: bool,
}

impl Peering {
    /// `Mesh_198_18_0_2`, `Node_10_0_0_1_port_1179`.
    pub fn name(&self) -> String {
        let mut n = format!(
            "{}_{}",
            self.kind.prefix(),
            self.ip.to_string().replace('.', "_")
        );
        if let Some(p) = self.port {
            let _ = write!(n, "_port_{p}");
        }
        n
    }
}

type Key = (Ipv4Addr, Option<u16>);

fn peering_from(
    peer: &BgpPeer,
    kind: PeerKind,
    ip: Ipv4Addr,
    port: Option<u16>,
    as_num: u32,
    cid: &str,
    calico: bool,
) -> Peering {
    Peering {
        kind,
        ip,
        port,
        as_num,
        rr_cluster_id: cid.to_string(),
        calico_node: calico,
        local_as: peer.local_as,
        source_node_ip: peer.source_node_ip,
        next_hop_mode: peer.next_hop_mode,
        keep_original_next_hop: peer.keep_original_next_hop,
        ttl_security: peer.ttl_security,
        password: peer.password.clone(),
        restart_time: peer.max_restart_time,
        keepalive_time: peer.keepalive_time,
        num_allow_local_as: peer.num_allowed_local_as,
        passive: false,
    }
}

/// The nodes a BGPPeer applies to on its local side.
fn local_side_matches(peer: &BgpPeer, node: &Node) -> bool {
    match (&peer.node, &peer.node_selector) {
        (Some(n), _) => *n == node.name,
        (None, Some(s)) => selector_matches(s, &node.labels),
        (None, None) => true,
    }
}

/// Remote peers of a BGPPeer (step B.3).
fn remote_side(model: &Model, peer: &BgpPeer, kind: PeerKind) -> Vec<(Key, Peering)> {
    let mut out = Vec::new();
    if let Some(sel) = &peer.peer_selector {
        for n in &model.nodes {
            let Some(ip) = n.ip() else { continue };
            if selector_matches(sel, &n.labels) {
                let port = n
                    .listen_port
                    .or(model.bgp.listen_port)
                    .filter(|p| *p != 179);
                let p = peering_from(peer, kind, ip, port, model.node_as(n), n.cluster_id(), true);
                out.push(((ip, port), p));
            }
        }
    } else if let (Some(ip), Some(as_num)) = (peer.peer_ip, peer.as_num) {
        let owner = model
            .nodes
            .iter()
            .find(|n| n.ip() == Some(ip) && model.node_as(n) == as_num);
        let port = peer.peer_port.or_else(|| {
            owner
                .and_then(|n| n.listen_port.or(model.bgp.listen_port))
                .filter(|p| *p != 179)
        });
        let cid = owner.map(|n| n.cluster_id()).unwrap_or("");
        out.push((
            (ip, port),
            peering_from(peer, kind, ip, port, as_num, cid, owner.is_some()),
        ));
    }
    out
}

/// All BGP sessions of `me` (steps A and B), sorted by name.
pub fn peerings(model: &Model, me: &Node) -> Vec<Peering> {
    let Some(my_ip) = me.ip() else {
        return Vec::new();
    };
    let my_cid = me.cluster_id();
    let mut out: Vec<Peering> = Vec::new();

    // Step A: mesh.
    if model.bgp.node_mesh && my_cid.is_empty() {
        for n in &model.nodes {
            let Some(ip) = n.ip() else { continue };
            if ip == my_ip || !n.cluster_id().is_empty() {
                continue;
            }
            let port = n
                .listen_port
                .or(model.bgp.listen_port)
                .filter(|p| *p != 179);
            out.push(Peering {
                kind: PeerKind::Mesh,
                ip,
                port,
                as_num: model.node_as(n),
                rr_cluster_id: String::new(),
                calico_node: true,
                local_as: None,
                source_node_ip: true,
                next_hop_mode: NextHopMode::Auto,
                keep_original_next_hop: false,
                ttl_security: None,
                password: model.bgp.mesh_password.clone(),
                restart_time: model.bgp.mesh_restart_time,
                keepalive_time: None,
                num_allow_local_as: None,
                passive: ip.to_string() > my_ip.to_string(),
            });
        }
    }

    // Step B.1: global peerings.
    let mut global: BTreeMap<Key, Peering> = BTreeMap::new();
    for p in model.peers.iter().filter(|p| p.is_global()) {
        for (k, mut v) in remote_side(model, p, PeerKind::Global) {
            v.passive = v.calico_node && v.ip.to_string() > my_ip.to_string();
            global.entry(k).or_insert(v);
        }
    }
    // Step B.2: node peerings for me.
    let mut node: BTreeMap<Key, Peering> = BTreeMap::new();
    for p in model.peers.iter().filter(|p| !p.is_global()) {
        if !local_side_matches(p, me) {
            continue;
        }
        for (k, v) in remote_side(model, p, PeerKind::Node) {
            if !global.contains_key(&k) {
                node.entry(k).or_insert(v);
            }
        }
    }
    // Step B.4: reverse peerings (me on the remote side of someone's BGPPeer).
    for p in model.peers.iter().filter(|p| !p.reverse_manual) {
        let me_remote = match (&p.peer_selector, p.peer_ip, p.as_num) {
            (Some(sel), _, _) => selector_matches(sel, &me.labels),
            (None, Some(ip), Some(asn)) => ip == my_ip && model.node_as(me) == asn,
            _ => false,
        };
        if !me_remote {
            continue;
        }
        for n in model.nodes.iter().filter(|n| local_side_matches(p, n)) {
            let Some(ip) = n.ip() else { continue };
            let port = n
                .listen_port
                .or(model.bgp.listen_port)
                .filter(|p| *p != 179);
            let k = (ip, port);
            if global.contains_key(&k) || node.contains_key(&k) {
                continue;
            }
            let v = peering_from(
                p,
                PeerKind::Node,
                ip,
                port,
                model.node_as(n),
                n.cluster_id(),
                true,
            );
            node.insert(k, v);
        }
    }
    out.extend(global.into_values());
    out.extend(node.into_values());
    out.retain(|p| p.ip != my_ip);
    out.sort_by_key(|p| p.name());
    out
}

fn debug_line(model: &Model) -> &'static str {
    match model.bgp.log_level.as_deref() {
        Some("debug") => "  debug all;\n",
        Some("none") => "",
        _ => "  debug { states };\n",
    }
}

/// The whole `bird.cfg` of `node` (single file: globals, filters, static, protocols).
pub fn render(
    model: &Model,
    node: &str,
    opts: &BirdOptions,
) -> Result<String, crate::RoutingError> {
    let me = model
        .node(node)
        .ok_or_else(|| crate::RoutingError::UnknownNode(node.to_string()))?;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# BIRD 2 configuration for node {} (generated by brindle; do not edit).",
        me.name
    );
    if let Some(f) = &opts.log_file {
        let _ = writeln!(w, "log \"{f}\" all;");
    }
    let Some(my_ip) = me.ip() else {
        let _ = writeln!(w, "# IPv4 disabled on this node (no spec.bgp.ipv4Address).");
        let _ = writeln!(w, "router id 0.0.0.1;\nprotocol device {{ scan time 2; }}");
        return Ok(s);
    };
    let my_as = model.node_as(me);
    let my_cid = me.cluster_id();
    let _ = writeln!(w, "router id {my_ip};");
    // BIRD 2 has no global `listen bgp`: the listen address/port go into `local` of the
    // template (`bindMode: NodeIP` → the node IP; `listenPort` → the port).
    let port = me.listen_port.or(model.bgp.listen_port);
    let mut local = String::from("local");
    if model.bgp.bind_node_ip {
        let _ = write!(local, " {my_ip}");
    }
    if let Some(p) = port {
        let _ = write!(local, " port {p}");
    }
    let _ = writeln!(w);

    // Own blocks (routing.md §2.4).
    let blocks: Vec<_> = model
        .blocks_of(node)
        .into_iter()
        .filter(|b| b.cidr.prefix_len() < 32 && b.state != AffinityState::PendingDeletion)
        .collect();
    let _ = writeln!(w, "function calico_aggr() {{");
    for b in blocks
        .iter()
        .filter(|b| b.state == AffinityState::Confirmed)
    {
        let _ = writeln!(w, "  if ( net = {} ) then {{ accept; }}", b.cidr);
        let _ = writeln!(w, "  if ( net ~ {} ) then {{ reject; }}", b.cidr);
    }
    let _ = writeln!(w, "}}\n");

    let _ = writeln!(
        w,
        "function calico_export_to_bgp_peers(bool internal_peer) {{"
    );
    for p in model.pools.iter().filter(|p| p.disable_bgp_export) {
        let _ = writeln!(w, "  if ( net ~ {} ) then {{ reject; }}", p.cidr);
    }
    let _ = writeln!(w, "  if ( internal_peer ) then {{");
    let _ = writeln!(w, "    if ( defined(ifname) ) then {{");
    let _ = writeln!(
        w,
        "      if ( (ifname ~ \"*.cali\") || (ifname ~ \"*.calico\") || (ifname = \"tunl0\") ) then {{ reject; }}"
    );
    let _ = writeln!(w, "    }}\n  }}");
    let _ = writeln!(
        w,
        "  if ( defined(ifname) ) then {{ if ( ifname ~ \"bpf*.cali\" ) then {{ reject; }} }}"
    );
    let _ = writeln!(w, "  calico_aggr();");
    for p in model.pools.iter().filter(|p| !p.disable_bgp_export) {
        let _ = writeln!(w, "  if ( net ~ {} ) then {{ accept; }}", p.cidr);
    }
    let _ = writeln!(w, "}}\n");

    // What BIRD learns from the kernel: the agent's proto-80 routes only when they are
    // workload /32s (borrowed IPs must be advertised); its tunnel/onlink routes are its own.
    let _ = writeln!(w, "filter calico_kernel_import {{");
    let _ = writeln!(w, "  if ( krt_source = {AGENT_PROTO} ) then {{");
    let _ = writeln!(
        w,
        "    if ( defined(ifname) ) then {{ if ( ifname ~ \"cali*\" ) then {{ accept; }} }}"
    );
    let _ = writeln!(w, "    reject;\n  }}\n  accept;\n}}\n");

    let _ = writeln!(w, "filter calico_kernel_programming {{");
    let _ = writeln!(w, "  if ( source = RTS_DEVICE ) then {{ reject; }}");
    for p in &model.pools {
        if p.agent_owns_routes() {
            let _ = writeln!(
                w,
                "  if ( net ~ {} ) then {{ reject; }}  # {:?}: routes programmed by the agent",
                p.cidr, p.ipip_mode
            );
        } else {
            let _ = writeln!(w, "  if ( net ~ {} ) then {{ accept; }}", p.cidr);
        }
    }
    let _ = writeln!(w, "  accept;\n}}\n");

    let dbg = debug_line(model);
    let _ = writeln!(
        w,
        "protocol kernel {{\n  learn;\n  persist;\n  scan time 2;\n  graceful restart;\n  merge paths on;\n  metric 0;\n  ipv4 {{ import filter calico_kernel_import; export filter calico_kernel_programming; }};\n}}\n"
    );
    let _ = writeln!(w, "protocol device {{\n{dbg}  scan time 2;\n}}\n");
    let mut ifaces = String::new();
    for i in &model.bgp.ignored_interfaces {
        let _ = write!(ifaces, "-\"{i}\", ");
    }
    let _ = writeln!(
        w,
        "protocol direct {{\n{dbg}  ipv4;\n  interface {ifaces}-\"cali*\", -\"kube-ipvs*\", \"*\";\n}}\n"
    );

    let peers = peerings(model, me);
    let _ = writeln!(w, "protocol static {{\n  ipv4;");
    for b in &blocks {
        let _ = writeln!(w, "  route {} blackhole;", b.cidr);
    }
    let _ = writeln!(w, "}}\n");

    let _ = writeln!(
        w,
        "template bgp bgp_template {{\n{dbg}  description \"Connection to BGP peer\";\n  {local} as {my_as};\n  graceful restart;\n  connect delay time 2;\n  connect retry time 5;\n  error wait time 5,30;\n}}\n"
    );
    if !my_cid.is_empty() {
        let _ = writeln!(
            w,
            "# This node is a route reflector (cluster ID {my_cid}); mesh setting ignored.\n"
        );
    }
    if peers.is_empty() {
        let _ = writeln!(w, "# No BGP peers configured.");
    }
    for p in &peers {
        render_peer(w, p, my_ip, my_as, my_cid);
    }
    Ok(s)
}

fn render_peer(w: &mut String, p: &Peering, my_ip: Ipv4Addr, my_as: u32, my_cid: &str) {
    let _ = writeln!(w, "protocol bgp {} from bgp_template {{", p.name());
    match p.ttl_security {
        Some(h) => {
            let _ = writeln!(w, "  ttl security on;\n  multihop {h};");
        }
        None => {
            let _ = writeln!(w, "  ttl security off;\n  multihop;");
        }
    }
    let _ = write!(w, "  neighbor {}", p.ip);
    if let Some(port) = p.port {
        let _ = write!(w, " port {port}");
    }
    let _ = writeln!(w, " as {};", p.as_num);
    let local = p.local_as.unwrap_or(my_as);
    if let Some(l) = p.local_as {
        let _ = writeln!(w, "  local as {l};");
    }
    if p.source_node_ip {
        let _ = writeln!(w, "  source address {my_ip};");
    }
    if p.as_num == my_as && !my_cid.is_empty() && p.rr_cluster_id != my_cid {
        let _ = writeln!(w, "  rr client;\n  rr cluster id {my_cid};");
    }
    if p.passive {
        let _ = writeln!(w, "  passive on;");
    }
    if let Some(pw) = &p.password {
        let _ = writeln!(w, "  password \"{}\";", pw.replace('"', ""));
    }
    if let Some(t) = p.restart_time {
        let _ = writeln!(w, "  graceful restart time {t};");
    }
    if let Some(t) = p.keepalive_time {
        let _ = writeln!(w, "  keepalive time {t};");
    }
    if let Some(n) = p.num_allow_local_as {
        let _ = writeln!(w, "  allow local as {n};");
    }
    let internal = p.as_num == local;
    let _ = writeln!(
        w,
        "  ipv4 {{\n    gateway recursive;\n    add paths on;\n    import all;"
    );
    let _ = writeln!(
        w,
        "    export filter {{ calico_export_to_bgp_peers({internal}); reject; }};"
    );
    match p.next_hop_mode {
        NextHopMode::SelfHop => {
            let _ = writeln!(w, "    next hop self;");
        }
        NextHopMode::Keep => {
            let _ = writeln!(w, "    next hop keep;");
        }
        NextHopMode::Auto if p.keep_original_next_hop && !internal => {
            let _ = writeln!(w, "    next hop keep;");
        }
        NextHopMode::Auto => {}
    }
    let _ = writeln!(w, "  }};\n}}\n");
}

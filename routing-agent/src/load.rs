//! Reads Calico resources (v3 `projectcalico.org/v3` YAML/JSON, and the v1 `workloadEndpoint`
//! of the seed) from files and directories into a [`Model`]. Only the kinds routing needs are
//! read (Node, IPPool, BGPPeer, BGPConfiguration, BlockAffinity, IPAMConfig(uration),
//! WorkloadEndpoint); other kinds are skipped. All errors are collected, each with
//! file:line:column, resource and field.
//!
//! This is the routing agent's own reader until policy-ir's `Model::load` exists; it does text
//! parsing only (the directory walk is the one piece of I/O, in [`load_paths`]).

use crate::model::*;
use crate::{RoutingError, RoutingErrors};
use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<S<String>>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    // v1 workloadEndpoint
    node: Option<String>,
    // v1 ipPool
    cidr: Option<S<String>>,
    workload: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NodeBgp {
    ipv4_address: Option<S<String>>,
    as_number: Option<S<AsNum>>,
    #[serde(rename = "routeReflectorClusterID")]
    route_reflector_cluster_id: Option<S<String>>,
    #[serde(rename = "ipv4IPIPTunnelAddr")]
    ipv4_ipip_tunnel_addr: Option<S<String>>,
}

/// AS numbers may be written as integers or strings ("64512", also "1.10" asdot).
#[derive(Deserialize)]
#[serde(untagged)]
enum AsNum {
    N(u64),
    S(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Password {
    Plain(String),
    Secret {
        #[serde(rename = "secretKeyRef")]
        secret_key_ref: BTreeMap<String, String>,
    },
}

/// The union of the spec fields of every kind read here.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    // Node
    bgp: Option<NodeBgp>,
    // IPPool / BlockAffinity
    cidr: Option<S<String>>,
    block_size: Option<S<u32>>,
    ipip_mode: Option<S<String>>,
    ipip: Option<V1Ipip>,
    nat_outgoing: Option<bool>,
    #[serde(rename = "nat-outgoing")]
    nat_outgoing_v1: Option<bool>,
    disabled: Option<bool>,
    #[serde(rename = "disableBGPExport")]
    disable_bgp_export: Option<bool>,
    node_selector: Option<S<String>>,
    // BGPPeer / BlockAffinity / WorkloadEndpoint
    node: Option<S<String>>,
    #[serde(rename = "peerIP")]
    peer_ip: Option<S<String>>,
    as_number: Option<S<AsNum>>,
    peer_selector: Option<S<String>>,
    #[serde(rename = "localASNumber")]
    local_as_number: Option<S<AsNum>>,
    source_address: Option<S<String>>,
    next_hop_mode: Option<S<String>>,
    keep_original_next_hop: Option<bool>,
    ttl_security: Option<u8>,
    password: Option<Password>,
    max_restart_time: Option<String>,
    keepalive_time: Option<String>,
    #[serde(rename = "numAllowedLocalASNumbers")]
    num_allowed_local_as_numbers: Option<u32>,
    reverse_peering: Option<S<String>>,
    // BGPConfiguration
    node_to_node_mesh_enabled: Option<bool>,
    listen_port: Option<u16>,
    log_severity_screen: Option<String>,
    bind_mode: Option<String>,
    ignored_interfaces: Option<Vec<String>>,
    node_mesh_max_restart_time: Option<String>,
    // BlockAffinity
    state: Option<S<String>>,
    deleted: Option<serde_json_bool::B>,
    // WorkloadEndpoint
    interface_name: Option<S<String>>,
    ip_networks: Option<Vec<S<String>>>,
    workload: Option<String>,
    pod: Option<String>,
    // IPAMConfig
    strict_affinity: Option<bool>,
    auto_allocate_blocks: Option<bool>,
    max_blocks_per_host: Option<u32>,
}

mod serde_json_bool {
    use serde::Deserialize;
    /// `deleted` is a string "true"/"false" in Calico's CRD, a bool in some dumps.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum B {
        Bool(bool),
        Str(String),
    }
    impl B {
        pub fn yes(&self) -> bool {
            match self {
                B::Bool(b) => *b,
                B::Str(s) => s == "true",
            }
        }
    }
}

#[derive(Deserialize)]
struct V1Ipip {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    kind: Option<S<String>>,
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
}

struct Ctx<'a> {
    file: &'a Path,
    line0: u64,
    errors: Vec<RoutingError>,
}

impl Ctx<'_> {
    fn field<T>(&mut self, at: &S<T>, resource: &str, field: &str, message: impl Into<String>) {
        self.errors.push(RoutingError::Field {
            file: self.file.to_path_buf(),
            line: at.referenced.line() + self.line0,
            column: at.referenced.column(),
            resource: resource.to_string(),
            field: field.to_string(),
            message: message.into(),
        });
    }
}

fn parse_as(v: &S<AsNum>, ctx: &mut Ctx, res: &str, field: &str) -> Option<u32> {
    let n = match &v.value {
        AsNum::N(n) => u32::try_from(*n).ok(),
        AsNum::S(s) => match s.split_once('.') {
            Some((hi, lo)) => match (hi.parse::<u16>(), lo.parse::<u16>()) {
                (Ok(h), Ok(l)) => Some(((h as u32) << 16) | l as u32),
                _ => None,
            },
            None => s.parse::<u32>().ok(),
        },
    };
    if n.is_none() {
        ctx.field(
            v,
            res,
            field,
            "not an AS number (0..4294967295 or asdot a.b)",
        );
    }
    n
}

fn parse_net(
    v: &S<String>,
    ctx: &mut Ctx,
    res: &str,
    field: &str,
    host_ok: bool,
) -> Option<Ipv4Net> {
    let s = v.value.trim();
    let r = if s.contains('/') {
        s.parse::<Ipv4Net>().ok()
    } else if host_ok {
        s.parse::<Ipv4Addr>()
            .ok()
            .map(|a| Ipv4Net::new(a, 32).unwrap())
    } else {
        None
    };
    match r {
        Some(n) => Some(n),
        None => {
            ctx.field(v, res, field, format!("`{s}` is not an IPv4 CIDR"));
            None
        }
    }
}

fn parse_ip(v: &S<String>, ctx: &mut Ctx, res: &str, field: &str) -> Option<Ipv4Addr> {
    match v.value.trim().parse::<Ipv4Addr>() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.field(
                v,
                res,
                field,
                format!("`{}` is not an IPv4 address", v.value),
            );
            None
        }
    }
}

fn check_selector(v: &S<String>, ctx: &mut Ctx, res: &str, field: &str) -> String {
    let s = v.value.trim().to_string();
    if !s.is_empty() {
        if let Err(e) = selector_lang::parse(&s) {
            ctx.field(v, res, field, format!("bad selector: {e}"));
        }
    }
    s
}

fn duration_secs(s: &str) -> Option<u32> {
    // "120s", "2m", "1h2m3s"
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

fn add_resource(raw: Raw, model: &mut Model, ctx: &mut Ctx) {
    let Some(kind) = raw.kind.as_ref().map(|k| k.value.clone()) else {
        return;
    };
    let name = raw
        .metadata
        .name
        .as_ref()
        .map(|n| n.value.clone())
        .unwrap_or_default();
    let res = format!("{kind} {name}");
    let spec = raw.spec;
    match kind.as_str() {
        "Node" | "node" => {
            let mut n = Node::new(&name, None);
            n.labels = raw.metadata.labels.clone();
            if let Some(bgp) = spec.bgp {
                if let Some(a) = &bgp.ipv4_address {
                    n.ipv4 = parse_net(a, ctx, &res, "spec.bgp.ipv4Address", true);
                }
                if let Some(a) = &bgp.as_number {
                    n.as_num = parse_as(a, ctx, &res, "spec.bgp.asNumber");
                }
                if let Some(c) = &bgp.route_reflector_cluster_id {
                    if !c.value.is_empty() {
                        parse_ip(c, ctx, &res, "spec.bgp.routeReflectorClusterID");
                        n.rr_cluster_id = Some(c.value.clone());
                    }
                }
                if let Some(t) = &bgp.ipv4_ipip_tunnel_addr {
                    n.tunnel_addr = parse_ip(t, ctx, &res, "spec.bgp.ipv4IPIPTunnelAddr");
                }
            }
            model.nodes.push(n);
        }
        "IPPool" | "ipPool" => {
            let mode = match (&spec.ipip_mode, &spec.ipip) {
                (Some(m), _) => match m.value.as_str() {
                    "" | "Never" => IpipMode::Never,
                    "Always" => IpipMode::Always,
                    "CrossSubnet" => IpipMode::CrossSubnet,
                    other => {
                        ctx.field(
                            m,
                            &res,
                            "spec.ipipMode",
                            format!("`{other}` is not Never, Always or CrossSubnet"),
                        );
                        IpipMode::Never
                    }
                },
                (None, Some(v1)) if v1.enabled => match v1.mode.as_deref() {
                    Some("cross-subnet") => IpipMode::CrossSubnet,
                    _ => IpipMode::Always,
                },
                _ => IpipMode::Never,
            };
            let Some(c) = spec.cidr.as_ref().or(raw.metadata.cidr.as_ref()) else {
                ctx.errors.push(RoutingError::Field {
                    file: ctx.file.to_path_buf(),
                    line: ctx.line0 + 1,
                    column: 1,
                    resource: res,
                    field: "spec.cidr".into(),
                    message: "missing".into(),
                });
                return;
            };
            let Some(cidr) = parse_net(c, ctx, &res, "spec.cidr", false) else {
                return;
            };
            let mut p = Pool::new(
                if name.is_empty() { &c.value } else { &name },
                cidr.trunc(),
                mode,
            );
            if let Some(bs) = &spec.block_size {
                if !(20..=32).contains(&bs.value) || bs.value < cidr.prefix_len() as u32 {
                    ctx.field(
                        bs,
                        &res,
                        "spec.blockSize",
                        "must be 20..=32 and not larger than the pool",
                    );
                } else {
                    p.block_size = bs.value as u8;
                }
            }
            p.nat_outgoing = spec.nat_outgoing.or(spec.nat_outgoing_v1).unwrap_or(false);
            p.disabled = spec.disabled.unwrap_or(false);
            p.disable_bgp_export = spec.disable_bgp_export.unwrap_or(false);
            if let Some(s) = &spec.node_selector {
                p.node_selector = check_selector(s, ctx, &res, "spec.nodeSelector");
            }
            model.pools.push(p);
        }
        "BGPPeer" | "bgpPeer" => {
            let mut p = BgpPeer::new(&name);
            p.node = spec
                .node
                .as_ref()
                .map(|n| n.value.clone())
                .filter(|s| !s.is_empty());
            if let Some(s) = &spec.node_selector {
                p.node_selector = Some(check_selector(s, ctx, &res, "spec.nodeSelector"));
            }
            if let Some(s) = &spec.peer_selector {
                p.peer_selector = Some(check_selector(s, ctx, &res, "spec.peerSelector"));
            }
            if let Some(ip) = &spec.peer_ip {
                let (a, port) = match ip.value.rsplit_once(':') {
                    Some((a, port)) => (a.to_string(), port.parse::<u16>().ok()),
                    None => (ip.value.clone(), None),
                };
                match a.parse::<Ipv4Addr>() {
                    Ok(a) => {
                        p.peer_ip = Some(a);
                        p.peer_port = port;
                    }
                    Err(_) => ctx.field(
                        ip,
                        &res,
                        "spec.peerIP",
                        format!("`{}` is not IPv4[:port]", ip.value),
                    ),
                }
            }
            if let Some(a) = &spec.as_number {
                p.as_num = parse_as(a, ctx, &res, "spec.asNumber");
            }
            if let Some(a) = &spec.local_as_number {
                p.local_as = parse_as(a, ctx, &res, "spec.localASNumber");
            }
            if let Some(s) = &spec.source_address {
                p.source_node_ip = s.value != "None";
            }
            if let Some(m) = &spec.next_hop_mode {
                p.next_hop_mode = match m.value.as_str() {
                    "Auto" | "" => NextHopMode::Auto,
                    "Self" => NextHopMode::SelfHop,
                    "Keep" => NextHopMode::Keep,
                    other => {
                        ctx.field(
                            m,
                            &res,
                            "spec.nextHopMode",
                            format!("`{other}` is not Auto, Self or Keep"),
                        );
                        NextHopMode::Auto
                    }
                };
            }
            p.keep_original_next_hop = spec.keep_original_next_hop.unwrap_or(false);
            p.ttl_security = spec.ttl_security.filter(|t| *t > 0);
            p.password = match &spec.password {
                Some(Password::Plain(s)) => Some(s.clone()),
                Some(Password::Secret { secret_key_ref }) => {
                    secret_key_ref.get("name").map(|n| format!("secret:{n}"))
                }
                None => None,
            };
            p.max_restart_time = spec.max_restart_time.as_deref().and_then(duration_secs);
            p.keepalive_time = spec.keepalive_time.as_deref().and_then(duration_secs);
            p.num_allowed_local_as = spec.num_allowed_local_as_numbers;
            p.reverse_manual = spec
                .reverse_peering
                .as_ref()
                .is_some_and(|r| r.value == "Manual");
            if p.peer_ip.is_none() && p.peer_selector.is_none() {
                if let Some(n) = &raw.metadata.name {
                    ctx.field(
                        n,
                        &res,
                        "spec.peerIP",
                        "one of peerIP or peerSelector is required",
                    );
                }
                return;
            }
            if p.peer_ip.is_some() && p.as_num.is_none() {
                if let Some(ip) = &spec.peer_ip {
                    ctx.field(ip, &res, "spec.asNumber", "peerIP needs asNumber");
                }
                return;
            }
            model.peers.push(p);
        }
        "BGPConfiguration" | "bgpConfiguration" => {
            if name != "default" && !name.is_empty() {
                // Per-node overrides (node.<name>) only carry listenPort/log level.
                if let Some(node) = name.strip_prefix("node.") {
                    if let (Some(port), Some(n)) = (
                        spec.listen_port,
                        model.nodes.iter_mut().find(|n| n.name == node),
                    ) {
                        n.listen_port = Some(port);
                    }
                }
                return;
            }
            if let Some(a) = &spec.as_number {
                if let Some(n) = parse_as(a, ctx, &res, "spec.asNumber") {
                    model.bgp.as_num = n;
                }
            }
            if let Some(m) = spec.node_to_node_mesh_enabled {
                model.bgp.node_mesh = m;
            }
            model.bgp.listen_port = spec.listen_port;
            model.bgp.log_level = spec.log_severity_screen.map(|s| s.to_lowercase());
            model.bgp.bind_node_ip = spec.bind_mode.as_deref() == Some("NodeIP");
            model.bgp.ignored_interfaces = spec.ignored_interfaces.unwrap_or_default();
            model.bgp.mesh_restart_time = spec
                .node_mesh_max_restart_time
                .as_deref()
                .and_then(duration_secs);
        }
        "BlockAffinity" | "blockAffinity" => {
            if spec.deleted.as_ref().is_some_and(|d| d.yes()) {
                return;
            }
            let (Some(node), Some(c)) = (&spec.node, &spec.cidr) else {
                if let Some(n) = &raw.metadata.name {
                    ctx.field(n, &res, "spec.node/spec.cidr", "both are required");
                }
                return;
            };
            let Some(cidr) = parse_net(c, ctx, &res, "spec.cidr", false) else {
                return;
            };
            let state = match &spec.state {
                Some(s) => match AffinityState::parse(&s.value) {
                    Some(st) => st,
                    None => {
                        ctx.field(
                            s,
                            &res,
                            "spec.state",
                            format!("`{}` is not pending, confirmed or pendingDeletion", s.value),
                        );
                        return;
                    }
                },
                None => AffinityState::Confirmed,
            };
            model.affinities.push(BlockAffinity {
                node: node.value.clone(),
                cidr: cidr.trunc(),
                state,
            });
        }
        "IPAMConfig" | "IPAMConfiguration" => {
            if let Some(s) = spec.strict_affinity {
                model.ipam.strict_affinity = s;
            }
            if let Some(s) = spec.auto_allocate_blocks {
                model.ipam.auto_allocate_blocks = s;
            }
            if let Some(s) = spec.max_blocks_per_host {
                model.ipam.max_blocks_per_host = s;
            }
        }
        "WorkloadEndpoint" | "workloadEndpoint" => {
            let node = spec
                .node
                .as_ref()
                .map(|n| n.value.clone())
                .or(raw.metadata.node.clone())
                .unwrap_or_default();
            let Some(iface) = &spec.interface_name else {
                return;
            };
            let mut ips = Vec::new();
            for n in spec.ip_networks.iter().flatten() {
                if let Some(net) = parse_net(n, ctx, &res, "spec.ipNetworks", true) {
                    ips.push(net.addr());
                }
            }
            let ns = raw
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let wname = if name.is_empty() {
                spec.pod
                    .clone()
                    .or(spec.workload.clone())
                    .or(raw.metadata.workload.clone())
                    .unwrap_or_default()
            } else {
                name.clone()
            };
            model.workloads.push(Workload {
                name: format!("{ns}/{wname}"),
                node,
                interface: iface.value.clone(),
                ips,
            });
        }
        _ => {}
    }
}

/// Splits a YAML stream at `---` lines, returning (first line number − 1, text).
fn split_docs(text: &str) -> Vec<(u64, String)> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut start = 0u64;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            docs.push((start, std::mem::take(&mut cur)));
            start = i as u64 + 1;
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    docs.push((start, cur));
    docs
}

/// Parses one file's text (YAML or JSON; documents may be single resources, lists of
/// resources or `kind: List` objects with `items`) into `model`.
pub fn parse_text(file: &Path, text: &str, model: &mut Model) -> Result<(), RoutingErrors> {
    let mut ctx = Ctx {
        file,
        line0: 0,
        errors: Vec::new(),
    };
    #[derive(Deserialize)]
    struct List {
        items: Vec<Raw>,
    }
    for (line0, doc) in split_docs(text) {
        ctx.line0 = line0;
        let first = doc
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        let Some(first) = first else { continue };
        let parsed: Result<Vec<Raw>, _> = if first.starts_with('-') || first.starts_with('[') {
            serde_saphyr::from_str::<Vec<Raw>>(&doc)
        } else if doc.contains("\nitems:")
            || doc.starts_with("items:")
            || first.starts_with("items:")
        {
            serde_saphyr::from_str::<List>(&doc).map(|l| l.items)
        } else {
            serde_saphyr::from_str::<Raw>(&doc).map(|r| vec![r])
        };
        match parsed {
            Ok(raws) => {
                for r in raws {
                    add_resource(r, model, &mut ctx);
                }
            }
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line() + line0, l.column()))
                    .unwrap_or((line0 + 1, 1));
                let msg = e.to_string();
                let msg = msg.lines().next().unwrap_or("").to_string();
                ctx.errors.push(RoutingError::Syntax {
                    file: file.to_path_buf(),
                    line,
                    column,
                    message: msg,
                });
            }
        }
    }
    if ctx.errors.is_empty() {
        Ok(())
    } else {
        Err(RoutingErrors(ctx.errors))
    }
}

/// Orders the model deterministically and applies cross-resource defaults.
pub fn finish(model: &mut Model) {
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

/// The files under `paths` (directories recursively, `*.yaml|*.yml|*.json`), sorted.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RoutingError> {
    let mut out = Vec::new();
    for p in paths {
        let md = std::fs::metadata(p).map_err(|source| RoutingError::Io {
            path: p.clone(),
            source,
        })?;
        if md.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|source| RoutingError::Io {
                path: p.clone(),
                source,
            })?;
            let mut sub: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            sub.sort();
            for s in sub {
                let is_dir = s.is_dir();
                let ext_ok = matches!(
                    s.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                );
                if is_dir || ext_ok {
                    out.extend(collect_files(&[s])?);
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Loads files and directories into a model (the I/O edge of this module).
pub fn load_paths(paths: &[PathBuf]) -> Result<Model, RoutingErrors> {
    let mut model = Model::default();
    let mut errors = Vec::new();
    let files = collect_files(paths).map_err(|e| RoutingErrors(vec![e]))?;
    // Nodes first, so per-node BGPConfiguration overrides find them.
    let mut texts = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(t) => texts.push((f, t)),
            Err(source) => errors.push(RoutingError::Io { path: f, source }),
        }
    }
    for (f, t) in &texts {
        if let Err(RoutingErrors(e)) = parse_text(f, t, &mut model) {
            errors.extend(e);
        }
    }
    if !errors.is_empty() {
        return Err(RoutingErrors(errors));
    }
    finish(&mut model);
    Ok(model)
}

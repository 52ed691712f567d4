//! The agent's input model: the "flattened key space" confd renders from (routing.md §1.6),
//! as plain data. Everything in the pure core (routes, BIRD config, IPAM) is a function of it.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Calico's default AS number (BGPConfiguration.asNumber).
pub const DEFAULT_AS: u32 = 64512;
/// Default IPv4 block size of a pool.
pub const DEFAULT_BLOCK_SIZE: u8 = 26;
/// Route protocol number of the routes the agent programs (Felix's `proto 80`).
pub const AGENT_PROTO: u8 = 80;
/// Route protocol number BIRD uses (`proto bird`).
pub const BIRD_PROTO: u8 = 12;
/// MTU of IPIP routes and tunl0 on a 1500-byte network.
pub const DEFAULT_IPIP_MTU: u32 = 1480;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub bgp: BgpGlobal,
    pub nodes: Vec<Node>,
    pub pools: Vec<Pool>,
    pub peers: Vec<BgpPeer>,
    pub affinities: Vec<BlockAffinity>,
    pub workloads: Vec<Workload>,
    pub ipam: IpamConfig,
}

/// `bgp/v1/global/*` (BGPConfiguration `default`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgpGlobal {
    pub as_num: u32,
    pub node_mesh: bool,
    pub listen_port: Option<u16>,
    /// `logSeverityScreen` (lower-cased): `debug` → `debug all`, `none` → nothing, else states.
    pub log_level: Option<String>,
    pub mesh_password: Option<String>,
    pub mesh_restart_time: Option<u32>,
    /// `bindMode: NodeIP` → `listen bgp address <nodeIP>`.
    pub bind_node_ip: bool,
    /// Extra interface patterns excluded from `protocol direct`.
    pub ignored_interfaces: Vec<String>,
}

impl Default for BgpGlobal {
    fn default() -> Self {
        BgpGlobal {
            as_num: DEFAULT_AS,
            node_mesh: true,
            listen_port: None,
            log_level: None,
            mesh_password: None,
            mesh_restart_time: None,
            bind_node_ip: false,
            ignored_interfaces: Vec::new(),
        }
    }
}

/// `bgp/v1/host/<node>/*` plus the node's labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// `spec.bgp.ipv4Address` in CIDR form: address = node IP, network = node subnet.
    pub ipv4: Option<Ipv4Net>,
    pub as_num: Option<u32>,
    pub rr_cluster_id: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `spec.bgp.ipv4IPIPTunnelAddr`, if the datastore already records one.
    pub tunnel_addr: Option<Ipv4Addr>,
    pub listen_port: Option<u16>,
}

impl Node {
    pub fn new(name: &str, ipv4: Option<Ipv4Net>) -> Node {
        Node {
            name: name.to_string(),
            ipv4,
            as_num: None,
            rr_cluster_id: None,
            labels: BTreeMap::new(),
            tunnel_addr: None,
            listen_port: None,
        }
    }
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.ipv4.map(|n| n.addr())
    }
    pub fn cluster_id(&self) -> &str {
        self.rr_cluster_id.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpipMode {
    Never,
    Always,
    CrossSubnet,
}

/// `v1/ipam/v4/pool/*` (IPPool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    pub cidr: Ipv4Net,
    pub block_size: u8,
    pub ipip_mode: IpipMode,
    pub nat_outgoing: bool,
    pub disabled: bool,
    pub disable_bgp_export: bool,
    /// Selector source; empty = `all()`.
    pub node_selector: String,
}

impl Pool {
    pub fn new(name: &str, cidr: Ipv4Net, ipip_mode: IpipMode) -> Pool {
        Pool {
            name: name.to_string(),
            cidr,
            block_size: DEFAULT_BLOCK_SIZE,
            ipip_mode,
            nat_outgoing: false,
            disabled: false,
            disable_bgp_export: false,
            node_selector: String::new(),
        }
    }
    /// The agent (not BIRD) programs this pool's cluster routes (Calico v3.33 split).
    pub fn agent_owns_routes(&self) -> bool {
        self.ipip_mode != IpipMode::Never
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextHopMode {
    Auto,
    SelfHop,
    Keep,
}

/// A BGPPeer resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgpPeer {
    pub name: String,
    pub node: Option<String>,
    pub node_selector: Option<String>,
    pub peer_ip: Option<Ipv4Addr>,
    pub peer_port: Option<u16>,
    pub as_num: Option<u32>,
    pub peer_selector: Option<String>,
    pub local_as: Option<u32>,
    /// `sourceAddress: UseNodeIP` (default true) vs `None`.
    pub source_node_ip: bool,
    pub next_hop_mode: NextHopMode,
    pub keep_original_next_hop: bool,
    pub ttl_security: Option<u8>,
    pub password: Option<String>,
    pub max_restart_time: Option<u32>,
    pub keepalive_time: Option<u32>,
    pub num_allowed_local_as: Option<u32>,
    /// `reversePeering: Manual`.
    pub reverse_manual: bool,
}

impl BgpPeer {
    pub fn new(name: &str) -> BgpPeer {
        BgpPeer {
            name: name.to_string(),
            node: None,
            node_selector: None,
            peer_ip: None,
            peer_port: None,
            as_num: None,
            peer_selector: None,
            local_as: None,
            source_node_ip: true,
            next_hop_mode: NextHopMode::Auto,
            keep_original_next_hop: false,
            ttl_security: None,
            password: None,
            max_restart_time: None,
            keepalive_time: None,
            num_allowed_local_as: None,
            reverse_manual: false,
        }
    }
    pub fn is_global(&self) -> bool {
        self.node.is_none() && self.node_selector.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AffinityState {
    Pending,
    Confirmed,
    PendingDeletion,
}

impl AffinityState {
    pub fn as_str(self) -> &'static str {
        match self {
            AffinityState::Pending => "pending",
            AffinityState::Confirmed => "confirmed",
            AffinityState::PendingDeletion => "pendingDeletion",
        }
    }
    pub fn parse(s: &str) -> Option<AffinityState> {
        match s {
            "" | "confirmed" => Some(AffinityState::Confirmed),
            "pending" => Some(AffinityState::Pending),
            "pendingDeletion" => Some(AffinityState::PendingDeletion),
            _ => None,
        }
    }
}

/// `ipam/v2/host/<node>/ipv4/block/<cidr>` (BlockAffinity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAffinity {
    pub node: String,
    pub cidr: Ipv4Net,
    pub state: AffinityState,
}

/// A workload endpoint as routing sees it: where it lives and which IPs it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// `namespace/name`.
    pub name: String,
    pub node: String,
    pub interface: String,
    pub ips: Vec<Ipv4Addr>,
}

/// IPAMConfig (cluster-wide).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpamConfig {
    pub strict_affinity: bool,
    pub auto_allocate_blocks: bool,
    /// 0 = no explicit limit (a safety cap of 20 applies during auto-assign).
    pub max_blocks_per_host: u32,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            strict_affinity: false,
            auto_allocate_blocks: true,
            max_blocks_per_host: 0,
        }
    }
}

/// Evaluates a selector source (empty = `all()`) against labels. Selectors are validated when
/// the model is loaded; one that does not parse matches nothing.
pub fn selector_matches(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    let s = selector.trim();
    if s.is_empty() {
        return true;
    }
    match selector_lang::parse(s) {
        Ok(sel) => sel.matches(labels),
        Err(_) => false,
    }
}

impl Model {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
    /// The effective AS of a node (its own, else the global one).
    pub fn node_as(&self, node: &Node) -> u32 {
        node.as_num.unwrap_or(self.bgp.as_num)
    }
    /// The pool containing `net`, if any (longest pool prefix wins).
    pub fn pool_of(&self, net: &Ipv4Net) -> Option<&Pool> {
        self.pools
            .iter()
            .filter(|p| p.cidr.contains(net))
            .max_by_key(|p| p.cidr.prefix_len())
    }
    pub fn pool_of_ip(&self, ip: Ipv4Addr) -> Option<&Pool> {
        self.pool_of(&Ipv4Net::new(ip, 32).expect("/32"))
    }
    /// Blocks affine to a node (any state), sorted.
    pub fn blocks_of(&self, node: &str) -> Vec<&BlockAffinity> {
        let mut v: Vec<_> = self.affinities.iter().filter(|a| a.node == node).collect();
        v.sort_by_key(|a| a.cidr);
        v
    }
    /// The owner of the block that contains `ip`, if any.
    pub fn block_owner(&self, ip: Ipv4Addr) -> Option<&BlockAffinity> {
        self.affinities
            .iter()
            .filter(|a| a.state != AffinityState::PendingDeletion && a.cidr.contains(&ip))
            .max_by_key(|a| a.cidr.prefix_len())
    }
    /// The node's tunl0 address: the recorded one, else the first address of its first block
    /// in an enabled IPIP pool (routing.md §4.6).
    pub fn tunnel_addr(&self, node: &str) -> Option<Ipv4Addr> {
        let n = self.node(node)?;
        if let Some(a) = n.tunnel_addr {
            return Some(a);
        }
        self.blocks_of(node)
            .into_iter()
            .filter(|b| b.state == AffinityState::Confirmed)
            .find(|b| {
                self.pool_of(&b.cidr)
                    .is_some_and(|p| p.ipip_mode != IpipMode::Never && !p.disabled)
            })
            .map(|b| b.cidr.network())
    }
    /// Whether any pool in use needs tunl0.
    pub fn uses_ipip(&self) -> bool {
        self.pools.iter().any(|p| p.ipip_mode != IpipMode::Never)
    }
}

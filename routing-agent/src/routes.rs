//! Desired kernel routes of one node: a pure function of the model (routing.md §3).
//!
//! Ownership follows Calico v3.33 (spec decision 7): the agent programs workload /32s, blackholes
//! for its own blocks in IPIP pools, and every remote route of IPIP `Always`/`CrossSubnet` pools
//! (`proto 80`, `onlink`). Routes of no-encap (`Never`) pools are learned over BGP and written by
//! BIRD (`proto bird`); they are listed here for display and marked [`Owner::Bird`].

use crate::model::{AffinityState, IpipMode, Model, AGENT_PROTO, BIRD_PROTO};
use ipnet::Ipv4Net;
use serde::Serialize;
use std::fmt;
use std::net::Ipv4Addr;

/// Node-local settings the datastore does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSettings {
    /// The uplink (the interface holding the node IP).
    pub uplink: String,
    /// MTU for IPIP routes and tunl0.
    pub ipip_mtu: u32,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            uplink: "eth0".into(),
            ipip_mtu: crate::model::DEFAULT_IPIP_MTU,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RouteKind {
    Blackhole,
    /// `dev X scope link`.
    Device {
        dev: String,
    },
    /// `via GW dev X [onlink]`.
    Via {
        gw: Ipv4Addr,
        dev: String,
        onlink: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Owner {
    Agent,
    Bird,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Route {
    pub dst: Ipv4Net,
    pub kind: RouteKind,
    pub proto: u8,
    pub mtu: Option<u32>,
    pub owner: Owner,
}

impl fmt::Display for Route {
    /// `ip route` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dst = if self.dst.prefix_len() == 32 {
            self.dst.addr().to_string()
        } else {
            self.dst.to_string()
        };
        let proto = match self.proto {
            BIRD_PROTO => "bird".to_string(),
            p => p.to_string(),
        };
        match &self.kind {
            RouteKind::Blackhole => write!(f, "blackhole {dst} proto {proto}")?,
            RouteKind::Device { dev } => write!(f, "{dst} dev {dev} proto {proto} scope link")?,
            RouteKind::Via { gw, dev, onlink } => {
                write!(f, "{dst} via {gw} dev {dev} proto {proto}")?;
                if *onlink {
                    write!(f, " onlink")?;
                }
            }
        }
        if let Some(m) = self.mtu {
            write!(f, " mtu {m}")?;
        }
        Ok(())
    }
}

fn host(ip: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(ip, 32).expect("/32")
}

/// The routes node `node` should have. Unknown node → only what the model implies (nothing
/// remote is reachable without a node IP, so remote routes are skipped).
pub fn desired_routes(model: &Model, node: &str, local: &LocalSettings) -> Vec<Route> {
    let mut out = Vec::new();
    let me = model.node(node);
    let my_net = me.and_then(|n| n.ipv4).map(|n| n.trunc());

    // 1. Workload /32s to their cali interfaces.
    for w in model.workloads.iter().filter(|w| w.node == node) {
        for ip in &w.ips {
            out.push(Route {
                dst: host(*ip),
                kind: RouteKind::Device {
                    dev: w.interface.clone(),
                },
                proto: AGENT_PROTO,
                mtu: None,
                owner: Owner::Agent,
            });
        }
    }

    // 2. Blackholes for own blocks (any state; /32 blocks skipped).
    for b in model.blocks_of(node) {
        if b.cidr.prefix_len() == 32 || b.state == AffinityState::PendingDeletion {
            continue;
        }
        let agent = model
            .pool_of(&b.cidr)
            .is_some_and(|p| p.agent_owns_routes());
        out.push(Route {
            dst: b.cidr,
            kind: RouteKind::Blackhole,
            proto: if agent { AGENT_PROTO } else { BIRD_PROTO },
            mtu: None,
            owner: if agent { Owner::Agent } else { Owner::Bird },
        });
    }

    // 3. Remote blocks and borrowed IPs via their owning node.
    let remote = |dst: Ipv4Net, owner_node: &str| -> Option<Route> {
        let pool = model.pool_of(&dst)?;
        let n = model.node(owner_node)?;
        let nip = n.ip()?;
        if Some(nip) == me.and_then(|m| m.ip()) {
            return None;
        }
        let tunnel = match pool.ipip_mode {
            IpipMode::Never => false,
            IpipMode::Always => true,
            IpipMode::CrossSubnet => !my_net.is_some_and(|net| net.contains(&nip)),
        };
        Some(match (pool.ipip_mode, tunnel) {
            (IpipMode::Never, _) => Route {
                dst,
                kind: RouteKind::Via {
                    gw: nip,
                    dev: local.uplink.clone(),
                    onlink: false,
                },
                proto: BIRD_PROTO,
                mtu: None,
                owner: Owner::Bird,
            },
            (_, true) => Route {
                dst,
                kind: RouteKind::Via {
                    gw: nip,
                    dev: "tunl0".into(),
                    onlink: true,
                },
                proto: AGENT_PROTO,
                mtu: Some(local.ipip_mtu),
                owner: Owner::Agent,
            },
            (_, false) => Route {
                dst,
                kind: RouteKind::Via {
                    gw: nip,
                    dev: local.uplink.clone(),
                    onlink: true,
                },
                proto: AGENT_PROTO,
                mtu: None,
                owner: Owner::Agent,
            },
        })
    };
    for b in &model.affinities {
        if b.node == node || b.state == AffinityState::PendingDeletion {
            continue;
        }
        // Pending blocks are not advertised by their owner (calico_aggr), but the agent
        // routes them from the datastore as Felix does.
        if let Some(r) = remote(b.cidr, &b.node) {
            out.push(r);
        }
    }
    for w in model.workloads.iter().filter(|w| w.node != node) {
        for ip in &w.ips {
            // Borrowed: the IP's block is owned by another node than the workload's.
            let owner = model.block_owner(*ip).map(|b| b.node.as_str());
            if owner == Some(w.node.as_str()) {
                continue;
            }
            if let Some(r) = remote(host(*ip), &w.node) {
                out.push(r);
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.dst == b.dst && a.kind == b.kind);
    out
}

/// `ip route` lines, one per route.
pub fn render_routes(routes: &[Route]) -> String {
    let mut s = String::new();
    for r in routes {
        s.push_str(&r.to_string());
        s.push('\n');
    }
    s
}

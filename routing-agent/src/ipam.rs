//! IPAM (routing.md §4): blocks, affinities, assignment, borrowing, release. Pure: the state is
//! plain data ([`IpamState`]); [`crate::store`] reads and writes it in the directory datastore.

use crate::model::{selector_matches, AffinityState, BlockAffinity, IpipMode, Model, Pool};
use crate::RoutingError;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// Safety cap on blocks per host when `maxBlocksPerHost` is 0.
pub const DEFAULT_BLOCK_CAP: u32 = 20;

/// An AllocationBlock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub cidr: Ipv4Net,
    /// `host:<node>` or none.
    pub affinity: Option<String>,
    /// Per ordinal: the handle holding it.
    pub allocations: Vec<Option<String>>,
    /// Free ordinals in allocation order (released ones go to the end).
    pub unallocated: Vec<u32>,
    pub sequence_number: u64,
}

impl Block {
    pub fn new(cidr: Ipv4Net, node: Option<&str>) -> Block {
        let n = 1u32 << (32 - cidr.prefix_len());
        Block {
            cidr,
            affinity: node.map(|n| format!("host:{n}")),
            allocations: vec![None; n as usize],
            unallocated: (0..n).collect(),
            sequence_number: 0,
        }
    }
    pub fn size(&self) -> u32 {
        self.allocations.len() as u32
    }
    pub fn used(&self) -> u32 {
        self.allocations.iter().filter(|a| a.is_some()).count() as u32
    }
    pub fn host(&self) -> Option<&str> {
        self.affinity
            .as_deref()
            .and_then(|a| a.strip_prefix("host:"))
    }
    fn ip(&self, ord: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + ord)
    }
    fn ordinal(&self, ip: Ipv4Addr) -> Option<u32> {
        self.cidr
            .contains(&ip)
            .then(|| u32::from(ip) - u32::from(self.cidr.network()))
    }
    /// Takes up to `n` free addresses from the front of `unallocated`.
    fn take(&mut self, n: u32, handle: &str) -> Vec<Ipv4Addr> {
        let k = (n as usize).min(self.unallocated.len());
        let ords: Vec<u32> = self.unallocated.drain(..k).collect();
        for o in &ords {
            self.allocations[*o as usize] = Some(handle.to_string());
        }
        if !ords.is_empty() {
            self.sequence_number += 1;
        }
        ords.into_iter().map(|o| self.ip(o)).collect()
    }
}

/// The IPAM part of the datastore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamState {
    pub blocks: BTreeMap<Ipv4Net, Block>,
    pub affinities: Vec<BlockAffinity>,
}

impl IpamState {
    /// Handle → addresses (the IPAMHandle view, derived from the blocks).
    pub fn handles(&self) -> BTreeMap<String, Vec<Ipv4Addr>> {
        let mut h: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        for b in self.blocks.values() {
            for (o, a) in b.allocations.iter().enumerate() {
                if let Some(a) = a {
                    h.entry(a.clone()).or_default().push(b.ip(o as u32));
                }
            }
        }
        h
    }
    fn affine_blocks(&self, node: &str) -> Vec<Ipv4Net> {
        let mut v: Vec<_> = self
            .affinities
            .iter()
            .filter(|a| a.node == node && a.state == AffinityState::Confirmed)
            .map(|a| a.cidr)
            .collect();
        v.sort();
        v
    }
    fn claim(&mut self, node: &str, cidr: Ipv4Net) {
        // Calico: affinity pending → block with affinity → affinity confirmed. One writer here,
        // so the final state is written directly.
        self.affinities.retain(|a| a.cidr != cidr);
        self.affinities.push(BlockAffinity {
            node: node.to_string(),
            cidr,
            state: AffinityState::Confirmed,
        });
        self.blocks.insert(cidr, Block::new(cidr, Some(node)));
    }
}

fn ipam_err(m: impl Into<String>) -> RoutingError {
    RoutingError::Ipam(m.into())
}

/// FNV-1a 32-bit hash of the host name: the start of the block search (same host ⇒ same start).
pub fn seed_for(node: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in node.as_bytes() {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// Enabled pools whose nodeSelector matches the node.
pub fn pools_for<'m>(model: &'m Model, node: &str) -> Vec<&'m Pool> {
    let labels = model
        .node(node)
        .map(|n| n.labels.clone())
        .unwrap_or_default();
    model
        .pools
        .iter()
        .filter(|p| !p.disabled && selector_matches(&p.node_selector, &labels))
        .collect()
}

fn block_limit(model: &Model) -> u32 {
    match model.ipam.max_blocks_per_host {
        0 => DEFAULT_BLOCK_CAP,
        n => n,
    }
}

/// Claims the next free block of `pool` for `node`, searching from the node's seed. Also
/// reserves the tunnel address (first address, handle `ipip-tunnel-addr-<node>`) in the node's
/// first block of an IPIP pool.
fn claim_block(state: &mut IpamState, pool: &Pool, node: &str, seed: u32) -> Option<Ipv4Net> {
    let bits = pool.block_size.saturating_sub(pool.cidr.prefix_len());
    let n: u64 = 1u64 << bits;
    let start = seed as u64 % n;
    let step = 1u64 << (32 - pool.block_size);
    let base = u32::from(pool.cidr.network()) as u64;
    for i in 0..n {
        let idx = (start + i) % n;
        let cidr = Ipv4Net::new(Ipv4Addr::from((base + idx * step) as u32), pool.block_size)
            .expect("aligned");
        if state.blocks.contains_key(&cidr) || state.affinities.iter().any(|a| a.cidr == cidr) {
            continue;
        }
        let first_ipip = pool.ipip_mode != IpipMode::Never
            && !state
                .affine_blocks(node)
                .iter()
                .any(|b| pool.cidr.contains(b));
        state.claim(node, cidr);
        if first_ipip {
            let b = state.blocks.get_mut(&cidr).expect("just claimed");
            b.take(1, &format!("ipip-tunnel-addr-{node}"));
        }
        return Some(cidr);
    }
    None
}

/// Assigns `num` addresses to `handle` on `node` (routing.md §4 steps 1–5).
pub fn auto_assign(
    model: &Model,
    state: &mut IpamState,
    node: &str,
    handle: &str,
    num: u32,
    seed: u32,
) -> Result<Vec<Ipv4Addr>, RoutingError> {
    let pools = pools_for(model, node);
    if pools.is_empty() {
        return Err(ipam_err(format!(
            "no enabled IP pool selects node `{node}`"
        )));
    }
    let in_pools = |c: &Ipv4Net| pools.iter().any(|p| p.cidr.contains(c));
    let mut got = Vec::new();
    // 2. Affine blocks first.
    for cidr in state.affine_blocks(node) {
        if got.len() as u32 >= num {
            break;
        }
        if !in_pools(&cidr) {
            continue;
        }
        let b = state
            .blocks
            .entry(cidr)
            .or_insert_with(|| Block::new(cidr, Some(node)));
        got.extend(b.take(num - got.len() as u32, handle));
    }
    // 4. Claim new blocks.
    if model.ipam.auto_allocate_blocks {
        'pools: for p in &pools {
            while (got.len() as u32) < num {
                let owned = state.affine_blocks(node).len() as u32;
                if owned >= block_limit(model) {
                    break 'pools;
                }
                let Some(cidr) = claim_block(state, p, node, seed) else {
                    continue 'pools;
                };
                let b = state.blocks.get_mut(&cidr).expect("claimed");
                got.extend(b.take(num - got.len() as u32, handle));
            }
        }
    }
    // 5. Borrow from other hosts' blocks.
    if (got.len() as u32) < num && !model.ipam.strict_affinity {
        let cidrs: Vec<Ipv4Net> = state
            .blocks
            .keys()
            .filter(|c| in_pools(c))
            .copied()
            .collect();
        for c in cidrs {
            if got.len() as u32 >= num {
                break;
            }
            let b = state.blocks.get_mut(&c).expect("listed");
            got.extend(b.take(num - got.len() as u32, handle));
        }
    }
    if (got.len() as u32) < num {
        // All-or-nothing: give back what was taken.
        for ip in &got {
            let _ = release_ip(state, *ip);
        }
        return Err(ipam_err(format!(
            "could only find {} of {num} free addresses for node `{node}`",
            got.len()
        )));
    }
    Ok(got)
}

/// Assigns one specific address (claiming its block for `node` if the block does not exist).
pub fn assign_ip(
    model: &Model,
    state: &mut IpamState,
    node: &str,
    handle: &str,
    ip: Ipv4Addr,
) -> Result<(), RoutingError> {
    let pool = model
        .pool_of_ip(ip)
        .ok_or_else(|| ipam_err(format!("{ip} is in no IP pool")))?;
    if pool.disabled {
        return Err(ipam_err(format!("pool {} is disabled", pool.name)));
    }
    let cidr = Ipv4Net::new(ip, pool.block_size).expect("len").trunc();
    if !state.blocks.contains_key(&cidr) {
        if state.affinities.iter().any(|a| a.cidr == cidr) {
            state.blocks.insert(cidr, Block::new(cidr, None));
        } else {
            state.claim(node, cidr);
        }
    }
    let b = state.blocks.get_mut(&cidr).expect("present");
    let ord = b.ordinal(ip).expect("inside");
    if let Some(h) = &b.allocations[ord as usize] {
        return Err(ipam_err(format!("{ip} is already assigned (handle {h})")));
    }
    b.allocations[ord as usize] = Some(handle.to_string());
    b.unallocated.retain(|o| *o != ord);
    b.sequence_number += 1;
    Ok(())
}

/// Releases one address; its ordinal goes to the end of the free list (reused last).
pub fn release_ip(state: &mut IpamState, ip: Ipv4Addr) -> Result<(), RoutingError> {
    let b = state
        .blocks
        .values_mut()
        .find(|b| b.cidr.contains(&ip))
        .ok_or_else(|| ipam_err(format!("{ip} is in no allocation block")))?;
    let ord = b.ordinal(ip).expect("inside");
    if b.allocations[ord as usize].take().is_none() {
        return Err(ipam_err(format!("{ip} is not assigned")));
    }
    b.unallocated.push(ord);
    b.sequence_number += 1;
    Ok(())
}

/// Releases every address of a handle.
pub fn release_handle(state: &mut IpamState, handle: &str) -> Vec<Ipv4Addr> {
    let ips = state.handles().remove(handle).unwrap_or_default();
    for ip in &ips {
        let _ = release_ip(state, *ip);
    }
    ips
}

/// `brindle ipam show`.
pub fn show(model: &Model, state: &IpamState) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "POOLS");
    for p in &model.pools {
        let blocks: Vec<_> = state
            .blocks
            .values()
            .filter(|b| p.cidr.contains(&b.cidr))
            .collect();
        let used: u32 = blocks.iter().map(|b| b.used()).sum();
        let _ = writeln!(
            s,
            "  {} {} blockSize={} ipipMode={:?}{}{} blocks={} used={}",
            p.name,
            p.cidr,
            p.block_size,
            p.ipip_mode,
            if p.disabled { " disabled" } else { "" },
            if p.nat_outgoing { " natOutgoing" } else { "" },
            blocks.len(),
            used
        );
    }
    let _ = writeln!(s, "BLOCKS");
    let mut cidrs: Vec<Ipv4Net> = state.blocks.keys().copied().collect();
    for a in &state.affinities {
        if !cidrs.contains(&a.cidr) {
            cidrs.push(a.cidr);
        }
    }
    cidrs.sort();
    for c in cidrs {
        let aff = state.affinities.iter().find(|a| a.cidr == c);
        let (used, size) = state
            .blocks
            .get(&c)
            .map(|b| (b.used(), b.size()))
            .unwrap_or((0, 1 << (32 - c.prefix_len())));
        let _ = writeln!(
            s,
            "  {c} affinity={} state={} used={used}/{size}",
            aff.map(|a| format!("host:{}", a.node))
                .unwrap_or_else(|| "none".into()),
            aff.map(|a| a.state.as_str()).unwrap_or("-"),
        );
    }
    let _ = writeln!(s, "HANDLES");
    for (h, ips) in state.handles() {
        let ips: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
        let _ = writeln!(s, "  {h} {}", ips.join(","));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Node, Pool};

    fn model() -> Model {
        let mut m = Model::default();
        m.nodes
            .push(Node::new("n1", Some("198.18.0.1/24".parse().unwrap())));
        m.nodes
            .push(Node::new("n2", Some("198.18.0.2/24".parse().unwrap())));
        let mut p = Pool::new("pods", "10.244.0.0/24".parse().unwrap(), IpipMode::Never);
        p.block_size = 28;
        m.pools.push(p);
        m
    }

    #[test]
    fn claims_block_from_seeded_start_then_fills_it() {
        let m = model();
        let mut st = IpamState::default();
        let seed = seed_for("n1");
        let ips = auto_assign(&m, &mut st, "n1", "h1", 3, seed).unwrap();
        let start = seed % 16; // 16 /28 blocks in a /24
        let block: Ipv4Net = format!("10.244.0.{}/28", start * 16).parse().unwrap();
        assert_eq!(st.affinities.len(), 1);
        assert_eq!(st.affinities[0].cidr, block);
        assert_eq!(st.affinities[0].state, AffinityState::Confirmed);
        let base = u32::from(block.network());
        assert_eq!(
            ips,
            (0..3).map(|i| Ipv4Addr::from(base + i)).collect::<Vec<_>>()
        );
        // The same host gets the same start on a fresh datastore.
        let mut st2 = IpamState::default();
        auto_assign(&m, &mut st2, "n1", "h", 1, seed_for("n1")).unwrap();
        assert_eq!(st2.affinities[0].cidr, block);
        // More addresses come from the same block before a new one is claimed.
        let more = auto_assign(&m, &mut st, "n1", "h2", 13, seed).unwrap();
        assert_eq!(more.len(), 13);
        assert_eq!(st.affinities.len(), 1);
        let next = auto_assign(&m, &mut st, "n1", "h3", 1, seed).unwrap();
        assert_eq!(st.affinities.len(), 2);
        assert!(!block.contains(&next[0]));
    }

    #[test]
    fn released_addresses_are_reused_last() {
        let m = model();
        let mut st = IpamState::default();
        let a = auto_assign(&m, &mut st, "n1", "h1", 2, 0).unwrap();
        release_ip(&mut st, a[0]).unwrap();
        assert!(release_ip(&mut st, a[0]).is_err(), "double release");
        let b = auto_assign(&m, &mut st, "n1", "h2", 1, 0).unwrap();
        assert_ne!(b[0], a[0]);
        assert_eq!(u32::from(b[0]), u32::from(a[1]) + 1);
        // Fill the rest of the block: the released one comes back last.
        let rest = auto_assign(&m, &mut st, "n1", "h3", 14, 0).unwrap();
        assert_eq!(*rest.last().unwrap(), a[0]);
        assert_eq!(release_handle(&mut st, "h3").len(), 14);
    }

    #[test]
    fn borrows_only_without_strict_affinity() {
        let mut m = model();
        m.ipam.max_blocks_per_host = 1;
        let mut st = IpamState::default();
        // n2 owns a block, n1 fills its only block.
        let n2 = auto_assign(&m, &mut st, "n2", "h2", 1, 5).unwrap();
        auto_assign(&m, &mut st, "n1", "h1", 16, 0).unwrap();
        let borrowed = auto_assign(&m, &mut st, "n1", "hb", 1, 0).unwrap();
        let n2block = st.affinities.iter().find(|a| a.node == "n2").unwrap().cidr;
        assert!(n2block.contains(&borrowed[0]), "borrowed from n2's block");
        assert_ne!(borrowed[0], n2[0]);
        // Strict affinity: no borrowing, and nothing is left half-assigned.
        m.ipam.strict_affinity = true;
        let before = st.clone();
        assert!(auto_assign(&m, &mut st, "n1", "hs", 1, 0).is_err());
        assert_eq!(st, before);
    }

    #[test]
    fn ipip_pool_reserves_tunnel_address() {
        let mut m = model();
        m.pools[0].ipip_mode = IpipMode::Always;
        let mut st = IpamState::default();
        let ips = auto_assign(&m, &mut st, "n1", "pod", 1, 0).unwrap();
        assert_eq!(ips, vec!["10.244.0.1".parse::<Ipv4Addr>().unwrap()]);
        let h = st.handles();
        assert_eq!(
            h["ipip-tunnel-addr-n1"],
            vec!["10.244.0.0".parse::<Ipv4Addr>().unwrap()]
        );
    }

    #[test]
    fn disabled_and_unselected_pools_are_not_used() {
        let mut m = model();
        m.pools[0].disabled = true;
        let mut st = IpamState::default();
        assert!(auto_assign(&m, &mut st, "n1", "h", 1, 0).is_err());
        m.pools[0].disabled = false;
        m.pools[0].node_selector = "zone == 'x'".into();
        assert!(auto_assign(&m, &mut st, "n1", "h", 1, 0).is_err());
        m.nodes[0].labels.insert("zone".into(), "x".into());
        assert!(auto_assign(&m, &mut st, "n1", "h", 1, 0).is_ok());
    }

    #[test]
    fn assign_specific_ip() {
        let m = model();
        let mut st = IpamState::default();
        let ip: Ipv4Addr = "10.244.0.37".parse().unwrap();
        assign_ip(&m, &mut st, "n2", "h", ip).unwrap();
        assert!(assign_ip(&m, &mut st, "n2", "h", ip).is_err());
        assert_eq!(
            st.affinities[0].cidr,
            "10.244.0.32/28".parse::<Ipv4Net>().unwrap()
        );
        assert_eq!(st.affinities[0].node, "n2");
        assert!(assign_ip(&m, &mut st, "n2", "h", "10.9.9.9".parse().unwrap()).is_err());
    }
}

//! `brindle trace` core: follow one packet through the rendered rules of the source node
//! (egress) and the destination node (ingress). Each node's rules go through their text form
//! (restore payload → [`crate::save::parse_save`]) so what is traced is what would be loaded.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use policy_ir::ir::NodeIr;
use serde::Serialize;

use crate::save::{parse_save, SavedRuleset};
use crate::sim::{IpSets, Packet, PathKind, SimVerdict, Simulator};
use crate::{render, BackendError, Ruleset};

/// Interface a node uses towards other nodes in traces.
pub const UPLINK: &str = "eth0";

/// One end of a traced packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TraceEnd {
    /// A workload endpoint on `node`, behind host interface `iface`.
    Workload {
        node: String,
        iface: String,
        ip: Ipv4Addr,
    },
    /// A host endpoint (the node itself) on `node`, interface `iface` (`*` = any).
    Host {
        node: String,
        iface: String,
        ip: Ipv4Addr,
    },
    /// An address that is no Calico endpoint.
    External { ip: Ipv4Addr },
}

impl TraceEnd {
    pub fn ip(&self) -> Ipv4Addr {
        match self {
            TraceEnd::Workload { ip, .. }
            | TraceEnd::Host { ip, .. }
            | TraceEnd::External { ip } => *ip,
        }
    }
    fn node(&self) -> Option<&str> {
        match self {
            TraceEnd::Workload { node, .. } | TraceEnd::Host { node, .. } => Some(node),
            TraceEnd::External { .. } => None,
        }
    }
}

/// One rule hit in a trace (the `--json` path element).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    pub node: String,
    pub table: String,
    pub chain: String,
    /// 1-based rule position in the chain (0: the chain's policy).
    pub rule: usize,
    pub comment: Option<String>,
    pub action: String,
    /// Packet mark after the rule, `0x…`.
    pub mark: String,
    /// The rule as loaded (without `-A chain`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// One node's leg of the trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceLeg {
    pub node: String,
    pub path: PathKind,
    pub in_iface: Option<String>,
    pub out_iface: Option<String>,
    pub verdict: SimVerdict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceResult {
    pub allowed: bool,
    pub legs: Vec<TraceLeg>,
    pub path: Vec<TraceStep>,
}

/// A node's rules in simulator form.
pub struct NodeRules {
    pub ruleset: Ruleset,
    pub saved: SavedRuleset,
    pub sets: IpSets,
    pub local_addrs: Vec<Ipv4Addr>,
}

impl NodeRules {
    pub fn new(ir: &NodeIr) -> Result<NodeRules, BackendError> {
        let ruleset = render(ir);
        let saved = parse_save(&ruleset.combined_restore_payload())?;
        let sets = IpSets::parse_restore(&ruleset.ipset_restore_payload())?;
        let local_addrs = ir
            .host_endpoints
            .iter()
            .flat_map(|h| h.addrs.iter().map(|a| a.addr()))
            .collect();
        Ok(NodeRules {
            ruleset,
            saved,
            sets,
            local_addrs,
        })
    }
}

/// One leg: (node, path, in interface, out interface).
type Leg = (String, PathKind, Option<String>, Option<String>);

/// The legs a packet takes.
fn legs(from: &TraceEnd, to: &TraceEnd) -> Result<Vec<Leg>, BackendError> {
    let host_iface = |i: &str| {
        if i == "*" {
            UPLINK.to_string()
        } else {
            i.to_string()
        }
    };
    let same_node = from.node().is_some() && from.node() == to.node();
    let mut v = Vec::new();
    match from {
        TraceEnd::Workload { node, iface, .. } => match to {
            TraceEnd::Workload { iface: o, .. } if same_node => v.push((
                node.clone(),
                PathKind::Forward,
                Some(iface.clone()),
                Some(o.clone()),
            )),
            TraceEnd::Host { .. } if same_node => {
                v.push((node.clone(), PathKind::Input, Some(iface.clone()), None))
            }
            _ => v.push((
                node.clone(),
                PathKind::Forward,
                Some(iface.clone()),
                Some(UPLINK.into()),
            )),
        },
        TraceEnd::Host { node, iface, .. } => match to {
            TraceEnd::Workload { iface: o, .. } if same_node => {
                v.push((node.clone(), PathKind::Output, None, Some(o.clone())))
            }
            TraceEnd::Host { .. } if same_node => {
                return Err(BackendError::Sim(
                    "source and destination are the same host".into(),
                ))
            }
            _ => v.push((
                node.clone(),
                PathKind::Output,
                None,
                Some(host_iface(iface)),
            )),
        },
        TraceEnd::External { .. } => {}
    }
    if !same_node {
        match to {
            TraceEnd::Workload { node, iface, .. } => v.push((
                node.clone(),
                PathKind::Forward,
                Some(UPLINK.into()),
                Some(iface.clone()),
            )),
            TraceEnd::Host { node, iface, .. } => {
                v.push((node.clone(), PathKind::Input, Some(host_iface(iface)), None))
            }
            TraceEnd::External { .. } => {}
        }
    }
    if v.is_empty() {
        return Err(BackendError::Sim(
            "neither end is a Calico endpoint: no node's rules apply".into(),
        ));
    }
    Ok(v)
}

/// Trace a NEW packet `from` → `to` with IP protocol `protocol` and destination `port`.
/// `nodes` holds the rules of every node involved, by node name.
pub fn trace(
    nodes: &BTreeMap<String, NodeRules>,
    from: &TraceEnd,
    to: &TraceEnd,
    protocol: u8,
    port: Option<u16>,
) -> Result<TraceResult, BackendError> {
    let mut result = TraceResult {
        allowed: true,
        legs: Vec::new(),
        path: Vec::new(),
    };
    for (node, path, i, o) in legs(from, to)? {
        let rules = nodes
            .get(&node)
            .ok_or_else(|| BackendError::Sim(format!("no rules for node `{node}`")))?;
        let mut sim = Simulator::new(&rules.saved, &rules.sets);
        sim.local_addrs = rules.local_addrs.clone();
        let mut p = Packet::new(from.ip(), to.ip(), protocol, port);
        p.in_iface = i.clone();
        p.out_iface = o.clone();
        let r = sim.run(&p, path)?;
        for s in r.steps {
            result.path.push(TraceStep {
                node: node.clone(),
                table: s.table,
                chain: s.chain,
                rule: s.rule,
                comment: s.comment,
                action: s.action,
                mark: format!("{:#x}", s.mark),
                text: s.raw,
            });
        }
        result.legs.push(TraceLeg {
            node: node.clone(),
            path,
            in_iface: i,
            out_iface: o,
            verdict: r.verdict,
        });
        if r.verdict == SimVerdict::Drop {
            result.allowed = false;
            break;
        }
    }
    Ok(result)
}

/// A readable rendering of a trace.
pub fn format_trace(t: &TraceResult) -> String {
    let mut out = String::new();
    let mut leg_iter = t.legs.iter();
    let mut current: Option<&str> = None;
    for s in &t.path {
        if current != Some(s.node.as_str()) {
            current = Some(&s.node);
            if let Some(l) = leg_iter.next() {
                out.push_str(&format!(
                    "node {} ({:?} path, in {}, out {}):\n",
                    l.node,
                    l.path,
                    l.in_iface.as_deref().unwrap_or("-"),
                    l.out_iface.as_deref().unwrap_or("-")
                ));
            }
        }
        let comment = s
            .comment
            .as_deref()
            .map(|c| format!("  /* {c} */"))
            .unwrap_or_default();
        if s.rule == 0 {
            out.push_str(&format!(
                "  {:<7} {:<28} {:<17} mark {}\n",
                s.table, s.chain, s.action, s.mark
            ));
        } else {
            out.push_str(&format!(
                "  {:<7} {:<28} #{:<3} {:<28} mark {:<10}{comment}\n",
                s.table, s.chain, s.rule, s.action, s.mark
            ));
        }
    }
    for l in leg_iter {
        out.push_str(&format!("node {}: {:?}\n", l.node, l.verdict));
    }
    out.push_str(&format!(
        "verdict: {}\n",
        if t.allowed { "allow" } else { "deny" }
    ));
    out
}

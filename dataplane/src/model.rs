//! policy-ir's [`Model`] as a lab [`Scenario`]: resolution of probe addresses, the node's rules
//! as iptables-backend renders them, and the oracle.

use policy_ir::ir::Protocol;
use policy_ir::oracle::{parse_probes, Probe, Verdict};
use policy_ir::Model;

use crate::lab::scenario::{NodeRules, OracleAnswer, ProbeSpec, Resolved, Scenario};
use crate::lab::ProbeProto;
use crate::state::Desired;

/// The rules Brindle wants on `node`: `render(node_ir(node))`, checked for a sound chain graph.
pub fn desired_for(model: &Model, node: &str) -> Result<Desired, String> {
    let nodes = model.nodes();
    if !nodes.iter().any(|n| n == node) {
        return Err(format!(
            "unknown node `{node}` (known: {})",
            nodes.join(", ")
        ));
    }
    let rs = iptables_backend::render(&model.node_ir(node));
    let problems = iptables_backend::graph::check(&rs);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(format!(
            "internal error: rendered chain graph is unsound: {}",
            list.join("; ")
        ));
    }
    Ok(Desired::from_ruleset(&rs))
}

/// Which dataplane the lab programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabBackend {
    Iptables,
    Nftables,
}

/// A loaded model, seen by the lab runner.
pub struct ModelScenario<'a> {
    pub model: &'a Model,
    pub backend: LabBackend,
}

impl<'a> ModelScenario<'a> {
    pub fn iptables(model: &'a Model) -> Self {
        ModelScenario {
            model,
            backend: LabBackend::Iptables,
        }
    }

    pub fn nftables(model: &'a Model) -> Self {
        ModelScenario {
            model,
            backend: LabBackend::Nftables,
        }
    }
}

impl Scenario for ModelScenario<'_> {
    fn resolve(&self, spec: &str) -> Result<Resolved, String> {
        let a = self
            .model
            .resolve_address(spec)
            .map_err(|e| e.to_string())?;
        match a.endpoint {
            None => Ok(Resolved::Outside { addr: a.ip }),
            Some(ep) if ep.host_endpoint => Err(format!(
                "{spec} is host endpoint {}: the lab models workload endpoints and plain \
                 addresses only",
                ep.id
            )),
            Some(ep) => Ok(Resolved::Workload {
                key: ep.id.to_string(),
                node: ep.node,
                interface: (!ep.interface.is_empty()).then_some(ep.interface),
                // The probed address first: the runner sends from / to the first one.
                addrs: std::iter::once(a.ip)
                    .chain(ep.addrs.iter().map(|n| n.addr()).filter(|x| *x != a.ip))
                    .collect(),
            }),
        }
    }

    fn rules_for(&self, node: &str) -> Result<NodeRules, String> {
        match self.backend {
            LabBackend::Iptables => desired_for(self.model, node).map(NodeRules::Iptables),
            LabBackend::Nftables => {
                // Same node check and chain-graph check as the iptables path.
                desired_for(self.model, node)?;
                let rules =
                    nft_backend::render(&self.model.node_ir(node)).map_err(|e| e.to_string())?;
                Ok(NodeRules::Nftables {
                    payload: rules.payload(),
                })
            }
        }
    }

    fn oracle(&self, probe: &ProbeSpec) -> Result<OracleAnswer, String> {
        let v = self
            .model
            .verdict(&Probe {
                from: probe.from.clone(),
                to: probe.to.clone(),
                protocol: match probe.protocol {
                    ProbeProto::Tcp => Protocol::Tcp,
                    ProbeProto::Udp => Protocol::Udp,
                    ProbeProto::Icmp => Protocol::Icmp,
                    ProbeProto::Sctp => Protocol::Sctp,
                },
                port: probe.port,
            })
            .map_err(|e| e.to_string())?;
        Ok(OracleAnswer {
            allow: v.verdict == Verdict::Allow,
            egress: serde_json::to_value(&v.egress).map_err(|e| e.to_string())?,
            ingress: serde_json::to_value(&v.ingress).map_err(|e| e.to_string())?,
        })
    }
}

/// Reads a probe file exactly as `brindle verdict` does (policy-ir's parser), keeping the
/// protocols the lab can send (tcp, udp, icmp, sctp).
pub fn probes_from_file(file: &str, text: &str) -> Result<Vec<ProbeSpec>, String> {
    let probes = parse_probes(file, text).map_err(|e| e.to_string())?;
    probes
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let protocol = match p.protocol {
                Protocol::Tcp => ProbeProto::Tcp,
                Protocol::Udp => ProbeProto::Udp,
                Protocol::Icmp => ProbeProto::Icmp,
                Protocol::Sctp => ProbeProto::Sctp,
                other => {
                    return Err(format!(
                        "{file}: [{i}].protocol: the lab cannot send {} probes (tcp, udp, icmp, sctp only)",
                        other.iptables_name()
                    ))
                }
            };
            Ok(ProbeSpec {
                from: p.from,
                to: p.to,
                protocol,
                port: p.port,
            })
        })
        .collect()
}

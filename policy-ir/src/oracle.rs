//! The reference evaluator, written from policy-semantics.md (not from any backend): for a probe
//! it decides egress at the source and ingress at the destination, and says what decided.
//!
//! Probe conventions: the source port is an unknown ephemeral port, so a rule's source `ports`
//! never match it and source `notPorts` always do; an ICMP probe is an echo request (type 8,
//! code 0).
//!
//! Host rules (Brindle's decisions, ARCHITECTURE.md, policy-ir; policy-semantics.md does not
//! cover them, Calico's documented behaviour and Felix define them): failsafe ports of host
//! endpoints are always allowed; host -> local workload traffic is policed on neither side;
//! workload -> own host traffic ends in `DefaultEndpointToHostAction` after the workload's egress
//! policy, whatever the host endpoint's ingress policy says.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::error::PolicyIrError;
use crate::ir::{
    EndpointToHostAction, PortRange, ProtoPort, Protocol, RuleAction, TierDefaultAction,
};
use crate::model::{Direction, EntityKind, Model, Rule, Side};

/// One probe: from and to are `namespace/name`, `name` or an IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub from: String,
    pub to: String,
    pub protocol: Protocol,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

/// What decided one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecidedBy {
    /// A rule of a policy.
    Policy,
    /// A rule of a profile.
    Profile,
    /// A tier applied and nothing in it decided: its default action.
    EndOfTier,
    /// Tiers passed (or none applied) and no profile rule matched.
    NoProfileMatched,
    /// The address is not a Calico endpoint: no policy, allowed.
    NotCalicoEndpoint,
    /// A failsafe port (FelixConfiguration `failsafeInboundHostPorts` /
    /// `failsafeOutboundHostPorts`) of a host endpoint: allowed whatever the policy says.
    Failsafe,
    /// Traffic from a node to a workload on the same node: policed on neither side (Felix's
    /// filter `cali-OUTPUT` returns for workload interfaces, and a workload's ingress policy
    /// runs only on forwarded traffic).
    HostToLocalWorkload,
    /// Traffic from a workload to a host endpoint of its own node: after the workload's egress
    /// policy, FelixConfiguration `defaultEndpointToHostAction` decides (`cali-wl-to-host`).
    DefaultEndpointToHostAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideVerdict {
    pub verdict: Verdict,
    pub decided_by: DecidedBy,
    /// The endpoint whose policy was evaluated (`namespace/name` or `name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// `<Kind> <namespace/name>` of the deciding policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// One line for people.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeVerdict {
    pub verdict: Verdict,
    pub egress: SideVerdict,
    pub ingress: SideVerdict,
}

/// The packet as the evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Packet {
    pub src: Ipv4Addr,
    pub src_ep: Option<usize>,
    pub dst: Ipv4Addr,
    pub dst_ep: Option<usize>,
    pub protocol: Protocol,
    pub dst_port: Option<u16>,
    pub icmp: (u8, u8),
}

fn in_ranges(p: u16, r: &[PortRange]) -> bool {
    r.iter().any(|r| r.first <= p && p <= r.last)
}

impl Model {
    fn named_port_matches(
        &self,
        ep: Option<usize>,
        proto: Protocol,
        port: u16,
        names: &[String],
    ) -> bool {
        let Some(i) = ep else { return false };
        self.entities[i]
            .ports
            .iter()
            .any(|(n, p, num)| *p == proto && *num == port && names.contains(n))
    }

    fn side_matches(
        &self,
        s: &Side,
        ip: Ipv4Addr,
        ep: Option<usize>,
        port: Option<u16>,
        pk: &Packet,
    ) -> bool {
        if !s.nets.is_empty() && !s.nets.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        if s.not_nets.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        if let Some(sel) = &s.selector {
            if !self.selector_matches_address(sel, ip, ep) {
                return false;
            }
        }
        if let Some(sel) = &s.not_selector {
            if self.selector_matches_address(sel, ip, ep) {
                return false;
            }
        }
        if let Some(names) = &s.service_account_names {
            let sa = ep.and_then(|i| self.entities[i].service_account.as_ref());
            if !sa.is_some_and(|sa| names.contains(sa)) {
                return false;
            }
        }
        if let Some(sel) = &s.service_account_selector {
            if ep.is_none() || sel.canonical() != "all()" {
                return false;
            }
        }
        let has_ports = !s.ports.is_empty() || !s.named_ports.is_empty();
        if has_ports {
            let Some(p) = port else { return false };
            let ok = in_ranges(p, &s.ports)
                || self.named_port_matches(ep, pk.protocol, p, &s.named_ports);
            if !ok {
                return false;
            }
        }
        if let Some(p) = port {
            if in_ranges(p, &s.not_ports)
                || self.named_port_matches(ep, pk.protocol, p, &s.not_named_ports)
            {
                return false;
            }
        }
        true
    }

    pub(crate) fn rule_matches(&self, r: &Rule, pk: &Packet) -> bool {
        if let Some(p) = r.protocol {
            if p != pk.protocol {
                return false;
            }
        }
        if let Some(p) = r.not_protocol {
            if p == pk.protocol {
                return false;
            }
        }
        if let Some(i) = r.icmp {
            if pk.protocol != Protocol::Icmp
                || i.icmp_type != pk.icmp.0
                || i.code.is_some_and(|c| c != pk.icmp.1)
            {
                return false;
            }
        }
        if let Some(i) = r.not_icmp {
            if pk.protocol == Protocol::Icmp
                && i.icmp_type == pk.icmp.0
                && i.code.is_none_or(|c| c == pk.icmp.1)
            {
                return false;
            }
        }
        let dport = if pk.protocol.has_ports() {
            pk.dst_port
        } else {
            None
        };
        // Source port: unknown ephemeral port.
        if !r.src.ports.is_empty() || !r.src.named_ports.is_empty() {
            return false;
        }
        let mut src = r.src.clone();
        src.not_ports.clear();
        src.not_named_ports.clear();
        self.side_matches(&src, pk.src, pk.src_ep, None, pk)
            && self.side_matches(&r.dst, pk.dst, pk.dst_ep, dport, pk)
    }

    /// Evaluates the policy of entity `id` in direction `dir` for the packet.
    pub(crate) fn evaluate(&self, id: usize, dir: Direction, pk: &Packet) -> SideVerdict {
        let e = &self.entities[id];
        let endpoint = Some(e.id.to_string());
        let applying = self.applying_policies(id, dir);
        let mut i = 0;
        while i < applying.len() {
            let tier = self.policies[applying[i]].tier.clone();
            let mut passed = false;
            let mut j = i;
            'tier: while j < applying.len() && self.policies[applying[j]].tier == tier {
                let p = &self.policies[applying[j]];
                j += 1;
                let rules = match dir {
                    Direction::Ingress => &p.ingress,
                    Direction::Egress => &p.egress,
                };
                for r in rules {
                    if !self.rule_matches(r, pk) {
                        continue;
                    }
                    match r.action {
                        RuleAction::Log => continue,
                        RuleAction::Pass => {
                            passed = true;
                            break 'tier;
                        }
                        RuleAction::Allow | RuleAction::Deny => {
                            let verdict = if r.action == RuleAction::Allow {
                                Verdict::Allow
                            } else {
                                Verdict::Deny
                            };
                            return SideVerdict {
                                verdict,
                                decided_by: DecidedBy::Policy,
                                endpoint,
                                tier: Some(tier.clone()),
                                policy: Some(p.id.to_string()),
                                profile: None,
                                rule_index: Some(r.index),
                                rule: Some(r.text.clone()),
                                reason: format!(
                                    "{:?} by {} (tier {tier}) {} rule {}: {}",
                                    verdict,
                                    p.id,
                                    dir_name(dir),
                                    r.index,
                                    r.text
                                ),
                            };
                        }
                    }
                }
            }
            while j < applying.len() && self.policies[applying[j]].tier == tier {
                j += 1;
            }
            if !passed {
                let action = self
                    .tiers
                    .iter()
                    .find(|t| t.name == tier)
                    .map(|t| t.default_action)
                    .unwrap_or(TierDefaultAction::Deny);
                if action == TierDefaultAction::Deny {
                    return SideVerdict {
                        verdict: Verdict::Deny,
                        decided_by: DecidedBy::EndOfTier,
                        endpoint,
                        tier: Some(tier.clone()),
                        policy: None,
                        profile: None,
                        rule_index: None,
                        rule: None,
                        reason: format!("Deny at end of tier {tier}: no policy in it allowed or passed the packet ({})", dir_name(dir)),
                    };
                }
            }
            i = j;
        }
        // Profiles whose Pass rule matched, so the deny below can say why they did not decide.
        let mut passed_by: Vec<String> = Vec::new();
        for name in &e.profiles {
            let Some(p) = self.profiles.get(name) else {
                continue;
            };
            let rules = match dir {
                Direction::Ingress => &p.ingress,
                Direction::Egress => &p.egress,
            };
            for r in rules {
                if !self.rule_matches(r, pk) {
                    continue;
                }
                match r.action {
                    RuleAction::Log => continue,
                    RuleAction::Pass => {
                        passed_by.push(format!("{name} rule {} passed", r.index));
                        break;
                    }
                    RuleAction::Allow | RuleAction::Deny => {
                        let verdict = if r.action == RuleAction::Allow {
                            Verdict::Allow
                        } else {
                            Verdict::Deny
                        };
                        return SideVerdict {
                            verdict,
                            decided_by: DecidedBy::Profile,
                            endpoint,
                            tier: None,
                            policy: None,
                            profile: Some(name.clone()),
                            rule_index: Some(r.index),
                            rule: Some(r.text.clone()),
                            reason: format!(
                                "{verdict:?} by Profile {name} {} rule {}: {}",
                                dir_name(dir),
                                r.index,
                                r.text
                            ),
                        };
                    }
                }
            }
        }
        SideVerdict {
            verdict: Verdict::Deny,
            decided_by: DecidedBy::NoProfileMatched,
            endpoint,
            tier: None,
            policy: None,
            profile: None,
            rule_index: None,
            rule: None,
            reason: if e.profiles.is_empty() {
                format!(
                    "Deny: no policy decided and the endpoint has no profiles ({})",
                    dir_name(dir)
                )
            } else {
                let passes = if passed_by.is_empty() {
                    String::new()
                } else {
                    format!("; {}", passed_by.join(", "))
                };
                format!(
                    "Deny: no profile matched ({}: {}{passes})",
                    dir_name(dir),
                    e.profiles.join(", ")
                )
            },
        }
    }

    /// The verdict for a probe: egress at the source, ingress at the destination.
    pub fn verdict(&self, probe: &Probe) -> Result<ProbeVerdict, PolicyIrError> {
        let from = self.resolve_address(&probe.from)?;
        let to = self.resolve_address(&probe.to)?;
        let pk = Packet {
            src: from.ip,
            src_ep: from.endpoint.as_ref().map(|e| e.entity),
            dst: to.ip,
            dst_ep: to.endpoint.as_ref().map(|e| e.entity),
            protocol: probe.protocol,
            dst_port: probe.port,
            icmp: (8, 0),
        };
        let not_ep = |dir: &str| SideVerdict {
            verdict: Verdict::Allow,
            decided_by: DecidedBy::NotCalicoEndpoint,
            endpoint: None,
            tier: None,
            policy: None,
            profile: None,
            rule_index: None,
            rule: None,
            reason: format!("Allow: the {dir} is not a Calico endpoint (no policy of its own)"),
        };
        let egress = match pk.src_ep {
            Some(i) => self
                .host_egress_rule(i, &pk)
                .unwrap_or_else(|| self.evaluate(i, Direction::Egress, &pk)),
            None => not_ep("source"),
        };
        let ingress = match pk.dst_ep {
            Some(i) => self
                .host_ingress_rule(i, &pk)
                .unwrap_or_else(|| self.evaluate(i, Direction::Ingress, &pk)),
            None => not_ep("destination"),
        };
        let verdict = if egress.verdict == Verdict::Allow && ingress.verdict == Verdict::Allow {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        Ok(ProbeVerdict {
            verdict,
            egress,
            ingress,
        })
    }
}

/// Brindle's host rules (ARCHITECTURE.md, policy-ir): what Felix does around host endpoints
/// that policy-semantics.md does not cover. Each returns `None` when the normal evaluation of
/// the endpoint's policy applies.
impl Model {
    /// Both entities are endpoints on the same node, of kinds `a` and `b`.
    fn same_node_kinds(&self, pk: &Packet, a: EntityKind, b: EntityKind) -> bool {
        let (Some(s), Some(d)) = (pk.src_ep, pk.dst_ep) else {
            return false;
        };
        let (s, d) = (&self.entities[s], &self.entities[d]);
        s.kind == a && d.kind == b && s.node.is_some() && s.node == d.node
    }

    /// The failsafe entry of `list` the packet's protocol and destination port hit, if any;
    /// `remote` is the far end (the source inbound, the destination outbound), which an
    /// entry's `net` must contain.
    fn failsafe_hit(list: &[ProtoPort], pk: &Packet, remote: Ipv4Addr) -> Option<ProtoPort> {
        let port = pk.dst_port.filter(|_| pk.protocol.has_ports())?;
        list.iter()
            .find(|f| {
                f.protocol == pk.protocol
                    && f.port == port
                    && f.net.is_none_or(|n| n.contains(&remote))
            })
            .copied()
    }

    fn failsafe_text(direction: &str, f: &ProtoPort) -> String {
        let net = f.net.map(|n| format!(" from/to {n}")).unwrap_or_default();
        format!(
            "failsafe {direction} port {}:{}{net}",
            f.protocol.iptables_name(),
            f.port
        )
    }

    fn host_verdict(
        &self,
        id: usize,
        verdict: Verdict,
        decided_by: DecidedBy,
        rule: Option<String>,
        reason: String,
    ) -> SideVerdict {
        SideVerdict {
            verdict,
            decided_by,
            endpoint: Some(self.entities[id].id.to_string()),
            tier: None,
            policy: None,
            profile: None,
            rule_index: None,
            rule,
            reason,
        }
    }

    /// Egress of entity `id` (the source) when a host rule decides it.
    fn host_egress_rule(&self, id: usize, pk: &Packet) -> Option<SideVerdict> {
        let e = &self.entities[id];
        if e.kind != EntityKind::Host {
            return None;
        }
        if self.same_node_kinds(pk, EntityKind::Host, EntityKind::Workload) {
            return Some(
                self.host_verdict(
                    id,
                    Verdict::Allow,
                    DecidedBy::HostToLocalWorkload,
                    None,
                    "Allow: traffic from the node to a local workload is not policed by host \
                 endpoint egress policy (filter cali-OUTPUT returns for workload interfaces)"
                        .into(),
                ),
            );
        }
        let settings = self.settings(e.node.as_deref().unwrap_or_default());
        let f = Self::failsafe_hit(&settings.failsafe_outbound, pk, pk.dst)?;
        let rule = Self::failsafe_text("outbound", &f);
        let reason = format!("Allow: {rule} (FelixConfiguration failsafeOutboundHostPorts), whatever the host endpoint's egress policy says");
        Some(self.host_verdict(id, Verdict::Allow, DecidedBy::Failsafe, Some(rule), reason))
    }

    /// Ingress of entity `id` (the destination) when a host rule decides it.
    fn host_ingress_rule(&self, id: usize, pk: &Packet) -> Option<SideVerdict> {
        let e = &self.entities[id];
        if self.same_node_kinds(pk, EntityKind::Host, EntityKind::Workload) {
            return Some(
                self.host_verdict(
                    id,
                    Verdict::Allow,
                    DecidedBy::HostToLocalWorkload,
                    None,
                    "Allow: a workload's ingress policy applies only to forwarded traffic, not to \
                 traffic from its own node (cali-tw- runs on FORWARD only)"
                        .into(),
                ),
            );
        }
        if e.kind != EntityKind::Host {
            return None;
        }
        let settings = self.settings(e.node.as_deref().unwrap_or_default());
        if self.same_node_kinds(pk, EntityKind::Workload, EntityKind::Host) {
            let action = settings.default_endpoint_to_host_action;
            let (verdict, what) = match action {
                EndpointToHostAction::Drop => (Verdict::Deny, "Deny"),
                EndpointToHostAction::Accept => (Verdict::Allow, "Allow"),
                EndpointToHostAction::Return => (
                    Verdict::Allow,
                    "Allow (back to the host's own INPUT chain, where Brindle installs no rules)",
                ),
            };
            let rule = format!("DefaultEndpointToHostAction {action:?}");
            let reason = format!(
                "{what}: {rule} decides traffic from a local workload to its host, after the \
                 workload's egress policy; host endpoint ingress policy does not apply"
            );
            return Some(self.host_verdict(
                id,
                verdict,
                DecidedBy::DefaultEndpointToHostAction,
                Some(rule),
                reason,
            ));
        }
        let f = Self::failsafe_hit(&settings.failsafe_inbound, pk, pk.src)?;
        let rule = Self::failsafe_text("inbound", &f);
        let reason = format!("Allow: {rule} (FelixConfiguration failsafeInboundHostPorts), whatever the host endpoint's ingress policy says");
        Some(self.host_verdict(id, Verdict::Allow, DecidedBy::Failsafe, Some(rule), reason))
    }
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

/// Parses a protocol name for probes (`tcp`, `udp`, `sctp`, `icmp`, or a number).
pub fn parse_probe_protocol(s: &str) -> Option<Protocol> {
    crate::validate::parse_protocol(&crate::resources::IntOrString::Str(s.to_string()))
}

#[derive(Deserialize)]
struct ProbeIn {
    from: String,
    to: String,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    port: Option<u16>,
}

/// Parses a JSON or YAML list of `{from, to, protocol, port}` (protocol defaults to tcp); errors
/// name the place.
pub fn parse_probes(file: &str, text: &str) -> Result<Vec<Probe>, PolicyIrError> {
    use crate::error::Diagnostic;
    use crate::yaml::Value;
    let diag = |line: u32, column: u32, field: String, message: String| {
        PolicyIrError::Invalid(vec![Diagnostic {
            file: file.to_string(),
            line,
            column,
            resource: String::new(),
            field,
            message,
        }])
    };
    let docs = crate::yaml::parse_documents(text)
        .map_err(|e| diag(e.loc.line, e.loc.column, String::new(), e.message))?;
    let mut out = Vec::new();
    for d in &docs {
        let items: Vec<&crate::yaml::Node> = match &d.value {
            Value::Seq(items) => items.iter().collect(),
            Value::Map(_) => match d.get("probes").map(|n| &n.value) {
                Some(Value::Seq(items)) => items.iter().collect(),
                _ => vec![d],
            },
            _ => {
                return Err(diag(
                    d.loc.line,
                    d.loc.column,
                    String::new(),
                    "expected a list of probes".into(),
                ))
            }
        };
        for item in items {
            let idx = out.len();
            let ctx = crate::de::Ctx::new(true);
            let p: ProbeIn =
                crate::de::from_node(item, &format!("[{idx}]"), &ctx).map_err(|e| {
                    let l = e.loc.unwrap_or(item.loc);
                    diag(l.line, l.column, e.path.unwrap_or_default(), e.message)
                })?;
            if let Some(i) = ctx.issues.borrow().first() {
                return Err(diag(
                    i.loc.line,
                    i.loc.column,
                    i.path.clone(),
                    i.message.clone(),
                ));
            }
            let proto_s = p.protocol.unwrap_or_else(|| "tcp".into());
            let protocol = parse_probe_protocol(&proto_s).ok_or_else(|| {
                let l = item.get("protocol").map(|n| n.loc).unwrap_or(item.loc);
                diag(
                    l.line,
                    l.column,
                    format!("[{idx}].protocol"),
                    format!("unknown protocol {proto_s:?}"),
                )
            })?;
            if protocol.has_ports() && p.port.is_none() {
                return Err(diag(
                    item.loc.line,
                    item.loc.column,
                    format!("[{idx}].port"),
                    format!("a {proto_s} probe needs a port"),
                ));
            }
            out.push(Probe {
                from: p.from,
                to: p.to,
                protocol,
                port: p.port,
            });
        }
    }
    Ok(out)
}

/// `tcp`, `udp`, ... as probes and reports write protocols.
pub fn protocol_name(p: Protocol) -> String {
    p.iptables_name()
}

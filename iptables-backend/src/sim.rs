//! Packet simulator: runs one packet through a parsed ruleset (raw → mangle → nat → filter, in
//! the kernel's hook order for the packet's path), with marks, ipsets, jump/goto/return,
//! multiport, conntrack state and interface wildcards. Comments are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::save::{Match, SavedRuleset, SetDir, Target};
use crate::{BackendError, IpSetSpec};

/// Conntrack state of the simulated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CtState {
    New,
    Established,
    Related,
    Invalid,
}

impl CtState {
    fn name(self) -> &'static str {
        match self {
            CtState::New => "NEW",
            CtState::Established => "ESTABLISHED",
            CtState::Related => "RELATED",
            CtState::Invalid => "INVALID",
        }
    }
}

/// Which hooks the packet crosses on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PathKind {
    /// Routed through the node (PREROUTING → FORWARD → POSTROUTING).
    Forward,
    /// Addressed to the node (PREROUTING → INPUT).
    Input,
    /// Sent by the node (OUTPUT → POSTROUTING).
    Output,
}

impl PathKind {
    pub fn hooks(self) -> &'static [(&'static str, &'static str)] {
        match self {
            PathKind::Forward => &[
                ("raw", "PREROUTING"),
                ("mangle", "PREROUTING"),
                ("nat", "PREROUTING"),
                ("mangle", "FORWARD"),
                ("filter", "FORWARD"),
                ("mangle", "POSTROUTING"),
                ("nat", "POSTROUTING"),
            ],
            PathKind::Input => &[
                ("raw", "PREROUTING"),
                ("mangle", "PREROUTING"),
                ("nat", "PREROUTING"),
                ("mangle", "INPUT"),
                ("filter", "INPUT"),
                ("nat", "INPUT"),
            ],
            PathKind::Output => &[
                ("raw", "OUTPUT"),
                ("mangle", "OUTPUT"),
                ("nat", "OUTPUT"),
                ("filter", "OUTPUT"),
                ("mangle", "POSTROUTING"),
                ("nat", "POSTROUTING"),
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub protocol: u8,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
    pub in_iface: Option<String>,
    pub out_iface: Option<String>,
    pub ct_state: CtState,
    /// Whether the connection was DNATed (`--ctstate DNAT`).
    pub dnat: bool,
    /// Whether reverse-path filtering passes (`-m rpfilter`).
    pub rpf_ok: bool,
    pub mark: u32,
}

impl Packet {
    /// A NEW packet with the given addresses and protocol/port (ICMP echo request for ICMP).
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, dst_port: Option<u16>) -> Packet {
        let has_ports = matches!(protocol, 6 | 17 | 132 | 136);
        Packet {
            src,
            dst,
            protocol,
            src_port: if has_ports { Some(40000) } else { None },
            dst_port: if has_ports { dst_port } else { None },
            icmp: if protocol == 1 { Some((8, 0)) } else { None },
            in_iface: None,
            out_iface: None,
            ct_state: CtState::New,
            dnat: false,
            rpf_ok: true,
            mark: 0,
        }
    }
}

/// Contents of the ipsets the rules refer to.
#[derive(Debug, Clone, Default)]
pub struct IpSets {
    nets: BTreeMap<String, Vec<Ipv4Net>>,
    ip_ports: BTreeMap<String, BTreeSet<(Ipv4Addr, u8, u16)>>,
}

impl IpSets {
    pub fn from_specs(specs: &[IpSetSpec]) -> Result<IpSets, BackendError> {
        let mut text = String::new();
        for s in specs {
            text.push_str(&format!("create {} {}\n", s.name, s.set_type));
            for m in &s.members {
                text.push_str(&format!("add {} {}\n", s.name, m));
            }
        }
        IpSets::parse_restore(&text)
    }

    /// Parse `ipset save` / `ipset restore` text (`create`, `add`, `COMMIT`).
    pub fn parse_restore(text: &str) -> Result<IpSets, BackendError> {
        let mut sets = IpSets::default();
        for (i, line) in text.lines().enumerate() {
            let err = |column: usize, message: &str| BackendError::Parse {
                line: i + 1,
                column,
                message: message.to_string(),
            };
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                [] | ["COMMIT"] => {}
                [c, ..] if c.starts_with('#') => {}
                ["create", name, ty, ..] => match *ty {
                    "hash:net" | "hash:ip" => {
                        sets.nets.entry(name.to_string()).or_default();
                    }
                    "hash:ip,port" => {
                        sets.ip_ports.entry(name.to_string()).or_default();
                    }
                    _ => return Err(err(line.find(ty).unwrap_or(0) + 1, "unsupported set type")),
                },
                ["add", name, member, ..] => {
                    let col = line.find(member).unwrap_or(0) + 1;
                    if let Some(v) = sets.nets.get_mut(*name) {
                        let net = crate::save_net(member).ok_or_else(|| err(col, "bad member"))?;
                        v.push(net);
                    } else if let Some(v) = sets.ip_ports.get_mut(*name) {
                        let (ip, pp) = member
                            .split_once(',')
                            .ok_or_else(|| err(col, "bad member"))?;
                        let (proto, port) =
                            pp.split_once(':').ok_or_else(|| err(col, "bad member"))?;
                        let proto = match proto {
                            "tcp" => 6,
                            "udp" => 17,
                            "sctp" => 132,
                            "udplite" => 136,
                            p => p.parse().map_err(|_| err(col, "bad protocol"))?,
                        };
                        v.insert((
                            ip.parse().map_err(|_| err(col, "bad address"))?,
                            proto,
                            port.parse().map_err(|_| err(col, "bad port"))?,
                        ));
                    } else {
                        return Err(err(5, &format!("set `{name}` not created")));
                    }
                }
                _ => return Err(err(1, "unsupported ipset command")),
            }
        }
        Ok(sets)
    }

    fn contains(&self, name: &str, dirs: &[SetDir], p: &Packet) -> Result<bool, BackendError> {
        let addr = |d: SetDir| match d {
            SetDir::Src => p.src,
            SetDir::Dst => p.dst,
        };
        if let Some(nets) = self.nets.get(name) {
            let a = addr(dirs[0]);
            return Ok(nets.iter().any(|n| n.contains(&a)));
        }
        if let Some(m) = self.ip_ports.get(name) {
            if dirs.len() < 2 {
                return Err(BackendError::Sim(format!(
                    "set {name} needs two directions"
                )));
            }
            let port = match dirs[1] {
                SetDir::Src => p.src_port,
                SetDir::Dst => p.dst_port,
            };
            return Ok(port.is_some_and(|port| m.contains(&(addr(dirs[0]), p.protocol, port))));
        }
        Err(BackendError::Sim(format!(
            "rule refers to missing ipset `{name}`"
        )))
    }
}

/// One rule the packet matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub table: String,
    pub chain: String,
    /// 1-based position of the rule in its chain (0 for a chain policy).
    pub rule: usize,
    pub hash: Option<String>,
    pub comment: Option<String>,
    pub action: String,
    /// The packet mark after the rule.
    pub mark: u32,
    pub raw: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SimVerdict {
    Accept,
    Drop,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimResult {
    pub verdict: SimVerdict,
    pub steps: Vec<Step>,
    pub mark: u32,
}

/// Runs packets through a parsed ruleset.
pub struct Simulator<'a> {
    pub rules: &'a SavedRuleset,
    pub sets: &'a IpSets,
    /// The node's own addresses (`-m addrtype --src-type LOCAL`).
    pub local_addrs: Vec<Ipv4Addr>,
}

enum Outcome {
    Accept,
    Drop,
}

const MAX_STEPS: usize = 1_000_000;

fn iface_match(pattern: &str, iface: Option<&str>) -> bool {
    let Some(iface) = iface else { return false };
    match pattern.strip_suffix('+') {
        Some(prefix) => iface.starts_with(prefix),
        None => iface == pattern,
    }
}

impl<'a> Simulator<'a> {
    pub fn new(rules: &'a SavedRuleset, sets: &'a IpSets) -> Simulator<'a> {
        Simulator {
            rules,
            sets,
            local_addrs: Vec::new(),
        }
    }

    fn matches(&self, m: &Match, p: &Packet) -> Result<bool, BackendError> {
        Ok(match m {
            Match::Protocol { neg, proto } => (*proto == 0 || *proto == p.protocol) != *neg,
            Match::Source { neg, net } => net.contains(&p.src) != *neg,
            Match::Destination { neg, net } => net.contains(&p.dst) != *neg,
            Match::InInterface { neg, name } => iface_match(name, p.in_iface.as_deref()) != *neg,
            Match::OutInterface { neg, name } => iface_match(name, p.out_iface.as_deref()) != *neg,
            Match::Mark { neg, value, mask } => ((p.mark & mask) == *value) != *neg,
            Match::Conntrack { neg, states } => {
                let hit = states
                    .iter()
                    .any(|s| s == p.ct_state.name() || (s == "DNAT" && p.dnat));
                hit != *neg
            }
            Match::Set { neg, name, dirs } => self.sets.contains(name, dirs, p)? != *neg,
            Match::Ports {
                neg,
                source,
                ranges,
            } => {
                let port = if *source { p.src_port } else { p.dst_port };
                match port {
                    // Port matches need a protocol with ports; without one the match fails
                    // whatever its negation (as the kernel's multiport does).
                    None => false,
                    Some(port) => ranges.iter().any(|(a, b)| *a <= port && port <= *b) != *neg,
                }
            }
            Match::Icmp {
                neg,
                icmp_type,
                code,
            } => match p.icmp {
                None => false,
                Some((t, c)) => {
                    let hit = *icmp_type == 255 || (t == *icmp_type && code.is_none_or(|x| x == c));
                    hit != *neg
                }
            },
            Match::Rpfilter { invert } => p.rpf_ok != *invert,
            Match::AddrType {
                neg,
                source,
                addr_type,
            } => {
                let a = if *source { p.src } else { p.dst };
                let local = self.local_addrs.contains(&a) || a.is_loopback();
                let hit = match addr_type.as_str() {
                    "LOCAL" => local,
                    "UNICAST" => !a.is_broadcast() && !a.is_multicast(),
                    _ => false,
                };
                hit != *neg
            }
            Match::Always(_) => true,
        })
    }

    /// Run the packet through one kernel chain of one table.
    fn run_hook(
        &self,
        table: &str,
        builtin: &str,
        p: &mut Packet,
        steps: &mut Vec<Step>,
    ) -> Result<Outcome, BackendError> {
        let Some(t) = self.rules.tables.get(table) else {
            return Ok(Outcome::Accept);
        };
        let Some(root) = t.chains.get(builtin) else {
            return Ok(Outcome::Accept);
        };
        let policy = |steps: &mut Vec<Step>, p: &Packet| -> Outcome {
            let pol = root.policy.clone().unwrap_or_else(|| "ACCEPT".into());
            steps.push(Step {
                table: table.into(),
                chain: builtin.into(),
                rule: 0,
                hash: None,
                comment: None,
                action: format!("policy {pol}"),
                mark: p.mark,
                raw: String::new(),
            });
            if pol == "DROP" {
                Outcome::Drop
            } else {
                Outcome::Accept
            }
        };
        let mut stack: Vec<(String, usize)> = vec![(builtin.to_string(), 0)];
        let mut budget = MAX_STEPS;
        while let Some((chain_name, idx)) = stack.pop() {
            budget = budget
                .checked_sub(1)
                .ok_or_else(|| BackendError::Sim("step limit exceeded (loop?)".into()))?;
            let chain = t.chains.get(&chain_name).ok_or_else(|| {
                BackendError::Sim(format!("jump to missing chain `{chain_name}` in {table}"))
            })?;
            let Some(rule) = chain.rules.get(idx) else {
                // Fell off the end: return to the caller (or the policy of a kernel chain).
                if stack.is_empty() {
                    return Ok(policy(steps, p));
                }
                continue;
            };
            let mut hit = true;
            for m in &rule.matches {
                if !self.matches(m, p)? {
                    hit = false;
                    break;
                }
            }
            if !hit {
                stack.push((chain_name, idx + 1));
                continue;
            }
            if let Target::Mark { value, mask, xor } = &rule.target {
                p.mark = if *xor {
                    (p.mark & !mask) ^ value
                } else {
                    (p.mark & !mask) | value
                };
            }
            steps.push(Step {
                table: table.into(),
                chain: chain_name.clone(),
                rule: idx + 1,
                hash: rule.hash.clone(),
                comment: if rule.comments.is_empty() {
                    None
                } else {
                    Some(rule.comments.join("; "))
                },
                action: rule.target.describe(),
                mark: p.mark,
                raw: rule.raw.clone(),
            });
            match &rule.target {
                Target::Accept | Target::Masquerade | Target::Snat(_) | Target::Dnat(_) => {
                    return Ok(Outcome::Accept)
                }
                Target::Drop | Target::Reject => return Ok(Outcome::Drop),
                Target::Return => {
                    if stack.is_empty() {
                        return Ok(policy(steps, p));
                    }
                }
                Target::Jump(c) => {
                    stack.push((chain_name, idx + 1));
                    stack.push((c.clone(), 0));
                }
                Target::Goto(c) => {
                    if stack.is_empty() {
                        // A goto from the kernel chain itself: returning ends in the policy.
                        stack.push((builtin.to_string(), usize::MAX));
                    }
                    stack.push((c.clone(), 0));
                }
                Target::None | Target::Mark { .. } | Target::Log { .. } | Target::Continue(_) => {
                    stack.push((chain_name, idx + 1));
                }
            }
        }
        Ok(policy(steps, p))
    }

    /// Run `packet` along `path`; the verdict is Drop as soon as any hook drops it.
    pub fn run(&self, packet: &Packet, path: PathKind) -> Result<SimResult, BackendError> {
        let mut p = packet.clone();
        let mut steps = Vec::new();
        for (table, hook) in path.hooks() {
            if let Outcome::Drop = self.run_hook(table, hook, &mut p, &mut steps)? {
                return Ok(SimResult {
                    verdict: SimVerdict::Drop,
                    steps,
                    mark: p.mark,
                });
            }
        }
        Ok(SimResult {
            verdict: SimVerdict::Accept,
            steps,
            mark: p.mark,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::save::parse_save;

    fn pkt(proto: u8, port: u16) -> Packet {
        let mut p = Packet::new(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            proto,
            Some(port),
        );
        p.in_iface = Some("cali123".into());
        p.out_iface = Some("eth0".into());
        p
    }

    const RULES: &str = "*raw\n:PREROUTING ACCEPT\n-A PREROUTING -i cali+ -j MARK --set-xmark 0x4000000/0x4000000\nCOMMIT\n\
*filter\n:FORWARD DROP [0:0]\n:cali-a - [0:0]\n:cali-b - [0:0]\n:cali-c - [0:0]\n\
-A FORWARD -m mark --mark 0x4000000/0x4000000 -j cali-a\n\
-A FORWARD -m mark --mark 0x1000000/0x1000000 -j ACCEPT\n\
-A cali-a -p tcp -m multiport --dports 80,8000:8100 -g cali-b\n\
-A cali-a -p udp -m set --match-set s1 dst -j MARK --set-mark 0x1000000/0x1000000\n\
-A cali-a -p icmp -m icmp ! --icmp-type 0 -j cali-c\n\
-A cali-b -m conntrack --ctstate NEW -j MARK --set-xmark 0x1000000/0x1000000\n\
-A cali-b -j RETURN\n-A cali-b -j DROP\n\
-A cali-c -m comment --comment \"log\" -j LOG --log-prefix \"x: \"\n-A cali-c -j MARK --set-mark 0x1000000/0x1000000\n\
COMMIT\n";

    #[test]
    fn jump_goto_return_marks_sets() {
        let rs = parse_save(RULES).unwrap();
        let sets =
            IpSets::parse_restore("create s1 hash:net family inet\nadd s1 10.0.0.0/30\nCOMMIT\n")
                .unwrap();
        let sim = Simulator::new(&rs, &sets);
        // tcp/8050 goes to cali-b (goto), gets A, RETURNs straight back to FORWARD → ACCEPT.
        let r = sim.run(&pkt(6, 8050), PathKind::Forward).unwrap();
        assert_eq!(r.verdict, SimVerdict::Accept);
        let chains: Vec<&str> = r.steps.iter().map(|s| s.chain.as_str()).collect();
        assert_eq!(
            chains,
            [
                "PREROUTING",
                "PREROUTING",
                "FORWARD",
                "cali-a",
                "cali-b",
                "cali-b",
                "FORWARD"
            ]
        );
        assert_eq!(r.mark, 0x5000000);
        // tcp/81: no rule in cali-a matches → back in FORWARD with A clear → policy DROP.
        let r = sim.run(&pkt(6, 81), PathKind::Forward).unwrap();
        assert_eq!(r.verdict, SimVerdict::Drop);
        assert_eq!(r.steps.last().unwrap().action, "policy DROP");
        // udp to a set member is accepted; outside the set it is not.
        assert_eq!(
            sim.run(&pkt(17, 53), PathKind::Forward).unwrap().verdict,
            SimVerdict::Accept
        );
        let mut p = pkt(17, 53);
        p.dst = "10.0.0.9".parse().unwrap();
        assert_eq!(
            sim.run(&p, PathKind::Forward).unwrap().verdict,
            SimVerdict::Drop
        );
        // ICMP echo request (type 8) passes `! --icmp-type 0`, LOG continues.
        let r = sim.run(&pkt(1, 0), PathKind::Forward).unwrap();
        assert_eq!(r.verdict, SimVerdict::Accept);
        assert!(r.steps.iter().any(|s| s.action.starts_with("LOG")));
        // Not from a cali interface: no scratch mark, FORWARD policy drops.
        let mut p = pkt(6, 80);
        p.in_iface = Some("eth1".into());
        assert_eq!(
            sim.run(&p, PathKind::Forward).unwrap().verdict,
            SimVerdict::Drop
        );
        // An established packet skips the NEW-only accept in cali-b.
        let mut p = pkt(6, 80);
        p.ct_state = CtState::Established;
        assert_eq!(
            sim.run(&p, PathKind::Forward).unwrap().verdict,
            SimVerdict::Drop
        );
    }

    #[test]
    fn missing_set_and_chain_are_errors() {
        let rs = parse_save("*filter\n:INPUT ACCEPT\n-A INPUT -m set --match-set nope src -j DROP\n-A INPUT -j cali-gone\nCOMMIT\n").unwrap();
        let sets = IpSets::default();
        let sim = Simulator::new(&rs, &sets);
        assert!(sim.run(&pkt(6, 1), PathKind::Input).is_err());
    }
}

//! Field checks shared by loading (which reports) and resolution (which relies on them).

use crate::error::Diagnostic;
use crate::ir::{EndpointToHostAction, PortRange, Protocol, RuleAction};
use crate::resources::{EndpointPort, EntityRule, FelixConfigurationSpec, IntOrString, Rule};
use crate::yaml::{Loc, Node};

/// Parses a selector with selector-lang. The single place policy-ir calls the parser.
pub fn parse_selector(s: &str) -> Result<selector_lang::Selector, String> {
    selector_lang::parse(s).map_err(|e| e.message)
}

pub fn parse_action(s: &str) -> Option<RuleAction> {
    match s {
        "" | "Allow" | "allow" => Some(RuleAction::Allow),
        "Deny" | "deny" => Some(RuleAction::Deny),
        "Pass" | "pass" | "next-tier" => Some(RuleAction::Pass),
        "Log" | "log" => Some(RuleAction::Log),
        _ => None,
    }
}

pub fn parse_protocol(p: &IntOrString) -> Option<Protocol> {
    match p {
        IntOrString::Int(n) => u8::try_from(*n)
            .ok()
            .filter(|n| *n >= 1)
            .map(Protocol::from_number),
        IntOrString::Str(s) => {
            let is = |name: &str| s.eq_ignore_ascii_case(name);
            if is("tcp") {
                Some(Protocol::Tcp)
            } else if is("udp") {
                Some(Protocol::Udp)
            } else if is("sctp") {
                Some(Protocol::Sctp)
            } else if is("icmp") {
                Some(Protocol::Icmp)
            } else if is("udplite") {
                Some(Protocol::UdpLite)
            } else if is("icmpv6") {
                Some(Protocol::Number(58))
            } else {
                s.parse::<u8>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(Protocol::from_number)
            }
        }
    }
}

/// FelixConfiguration `defaultEndpointToHostAction` (Calico's spelling, or Felix's upper case).
pub fn parse_endpoint_to_host_action(s: &str) -> Option<EndpointToHostAction> {
    match s {
        "Drop" | "DROP" => Some(EndpointToHostAction::Drop),
        "Accept" | "ACCEPT" => Some(EndpointToHostAction::Accept),
        "Return" | "RETURN" => Some(EndpointToHostAction::Return),
        _ => None,
    }
}

/// The protocol of a failsafe port entry: TCP (the default), UDP or SCTP, any case.
pub fn parse_failsafe_protocol(s: &str) -> Option<Protocol> {
    match s.to_ascii_lowercase().as_str() {
        "" | "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "sctp" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// A port entry: a range, or a named port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    Range(PortRange),
    Named(String),
}

fn valid_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

pub fn parse_port(p: &IntOrString) -> Result<PortSpec, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n)
            .map(|n| PortRange { first: n, last: n })
            .map(PortSpec::Range)
            .map_err(|_| format!("port {n} is out of range 0..=65535")),
        IntOrString::Str(s) => {
            let s = s.trim();
            if let Some((a, b)) = s.split_once(':') {
                let a: u16 = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad port range {s:?}: {a:?} is not a port"))?;
                let b: u16 = b
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad port range {s:?}: {b:?} is not a port"))?;
                if a > b {
                    return Err(format!("bad port range {s:?}: start is after end"));
                }
                Ok(PortSpec::Range(PortRange { first: a, last: b }))
            } else if let Ok(n) = s.parse::<i64>() {
                parse_port(&IntOrString::Int(n))
            } else if valid_port_name(s) {
                Ok(PortSpec::Named(s.to_string()))
            } else {
                Err(format!(
                    "{s:?} is not a port, a range \"lo:hi\" or a port name"
                ))
            }
        }
    }
}

pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let t = s.trim();
    if t.contains('/') {
        t.parse::<ipnet::IpNet>()
            .map_err(|_| format!("{s:?} is not a CIDR"))
    } else {
        t.parse::<std::net::IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| format!("{s:?} is not a CIDR or IP address"))
    }
}

/// Collects diagnostics for one resource.
pub struct Checker<'a> {
    pub file: &'a str,
    pub resource: &'a str,
    pub root: Loc,
    /// The resource's tree, where field paths are looked up (only when reporting).
    pub node: &'a Node<'a>,
    pub out: &'a mut Vec<Diagnostic>,
}

impl Checker<'_> {
    /// The location of `path`, or of its nearest recorded parent.
    pub fn loc(&self, path: &str) -> Loc {
        crate::yaml::at_nearest_parent(path, |p| self.node.locate(p)).unwrap_or(self.root)
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let loc = self.loc(path);
        self.out.push(Diagnostic {
            file: self.file.to_string(),
            line: loc.line,
            column: loc.column,
            resource: self.resource.to_string(),
            field: path.to_string(),
            message: message.into(),
        });
    }

    pub fn selector(&mut self, path: &str, s: &str) {
        if let Err(m) = parse_selector(s) {
            self.error(path, m);
        }
    }

    pub fn net(&mut self, path: &str, s: &str) {
        if let Err(m) = parse_net(s) {
            self.error(path, m);
        }
    }

    /// Each of `nets`, reported as `path[i]` (the path is only formatted for an error).
    pub fn nets(&mut self, path: &str, nets: &[String]) {
        for (i, n) in nets.iter().enumerate() {
            if let Err(m) = parse_net(n) {
                self.error(&format!("{path}[{i}]"), m);
            }
        }
    }

    pub fn rules(&mut self, path: &str, rules: &[Rule]) {
        for (i, r) in rules.iter().enumerate() {
            self.rule(&format!("{path}[{i}]"), r);
        }
    }

    pub fn rule(&mut self, path: &str, r: &Rule) {
        if parse_action(&r.action).is_none() {
            self.error(
                &format!("{path}.action"),
                format!(
                    "unknown action {:?}; expected Allow, Deny, Pass or Log",
                    r.action
                ),
            );
        }
        if let Some(v) = r.ip_version {
            if v != 4 && v != 6 {
                self.error(&format!("{path}.ipVersion"), "ipVersion must be 4 or 6");
            }
        }
        let mut proto = None;
        if let Some(p) = &r.protocol {
            proto = parse_protocol(p);
            if proto.is_none() {
                self.error(
                    &format!("{path}.protocol"),
                    format!("unknown protocol {:?}; expected TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255", p.to_string()),
                );
            }
        }
        if let Some(p) = &r.not_protocol {
            if parse_protocol(p).is_none() {
                self.error(
                    &format!("{path}.notProtocol"),
                    format!("unknown protocol {:?}", p.to_string()),
                );
            }
        }
        for (field, icmp) in [("icmp", &r.icmp), ("notICMP", &r.not_icmp)] {
            if let Some(i) = icmp {
                let p = format!("{path}.{field}");
                match i.icmp_type {
                    Some(t) if !(0..=254).contains(&t) => self.error(
                        &format!("{p}.type"),
                        format!("ICMP type {t} is out of range 0..=254"),
                    ),
                    None if i.code.is_some() => {
                        self.error(&format!("{p}.code"), "ICMP code given without a type")
                    }
                    _ => {}
                }
                if let Some(c) = i.code {
                    if !(0..=255).contains(&c) {
                        self.error(
                            &format!("{p}.code"),
                            format!("ICMP code {c} is out of range 0..=255"),
                        );
                    }
                }
                if !matches!(proto, Some(Protocol::Icmp) | Some(Protocol::Number(58))) {
                    self.error(&p, "ICMP criteria need protocol ICMP or ICMPv6");
                }
            }
        }
        let has_ports = |e: &EntityRule| !e.ports.is_empty() || !e.not_ports.is_empty();
        for (side, e) in [("source", &r.source), ("destination", &r.destination)] {
            let p = format!("{path}.{side}");
            self.entity(&p, e);
            if has_ports(e) && !proto.is_some_and(|p| p.has_ports()) {
                self.error(
                    &format!("{p}.ports"),
                    "ports need protocol TCP, UDP, SCTP or UDPLite",
                );
            }
        }
    }

    fn entity(&mut self, path: &str, e: &EntityRule) {
        if !e.nets.is_empty() {
            self.nets(&format!("{path}.nets"), &e.nets);
        }
        if !e.not_nets.is_empty() {
            self.nets(&format!("{path}.notNets"), &e.not_nets);
        }
        for (f, s) in [
            ("selector", &e.selector),
            ("notSelector", &e.not_selector),
            ("namespaceSelector", &e.namespace_selector),
        ] {
            if !s.is_empty() {
                self.selector(&format!("{path}.{f}"), s);
            }
        }
        for (f, ports) in [("ports", &e.ports), ("notPorts", &e.not_ports)] {
            for (i, p) in ports.iter().enumerate() {
                if let Err(m) = parse_port(p) {
                    self.error(&format!("{path}.{f}[{i}]"), m);
                }
            }
        }
        if let Some(sa) = &e.service_accounts {
            if !sa.selector.is_empty() {
                self.selector(&format!("{path}.serviceAccounts.selector"), &sa.selector);
            }
        }
    }

    pub fn endpoint_ports(&mut self, path: &str, ports: &[EndpointPort]) {
        for (i, p) in ports.iter().enumerate() {
            if !valid_port_name(&p.name) {
                self.error(
                    &format!("{path}[{i}].name"),
                    format!("{:?} is not a valid port name", p.name),
                );
            }
            let proto = p
                .protocol
                .as_ref()
                .map(parse_protocol)
                .unwrap_or(Some(Protocol::Tcp));
            if !proto.is_some_and(|p| p.has_ports()) {
                self.error(
                    &format!("{path}[{i}].protocol"),
                    "a named port needs protocol TCP, UDP or SCTP",
                );
            }
        }
    }

    /// FelixConfiguration fields the backends use.
    pub fn felix_configuration(&mut self, spec: &FelixConfigurationSpec) {
        if let Some(a) = &spec.default_endpoint_to_host_action {
            if parse_endpoint_to_host_action(a).is_none() {
                self.error(
                    "spec.defaultEndpointToHostAction",
                    format!("unknown action {a:?}; expected Drop, Accept or Return"),
                );
            }
        }
        for (field, list) in [
            (
                "spec.failsafeInboundHostPorts",
                &spec.failsafe_inbound_host_ports,
            ),
            (
                "spec.failsafeOutboundHostPorts",
                &spec.failsafe_outbound_host_ports,
            ),
        ] {
            for (i, p) in list.iter().flatten().enumerate() {
                if parse_failsafe_protocol(&p.protocol).is_none() {
                    self.error(
                        &format!("{field}[{i}].protocol"),
                        format!(
                            "unknown protocol {:?}; expected TCP, UDP or SCTP",
                            p.protocol
                        ),
                    );
                }
                if !p.net.is_empty() {
                    self.net(&format!("{field}[{i}].net"), &p.net);
                }
            }
        }
    }

    pub fn types(&mut self, path: &str, types: &[String]) {
        for (i, t) in types.iter().enumerate() {
            if t != "Ingress" && t != "Egress" {
                self.error(
                    &format!("{path}[{i}]"),
                    format!("unknown policy type {t:?}; expected Ingress or Egress"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_protocols() {
        assert_eq!(
            parse_port(&IntOrString::Str("80:90".into())),
            Ok(PortSpec::Range(PortRange {
                first: 80,
                last: 90
            }))
        );
        assert!(parse_port(&IntOrString::Str("90:80".into())).is_err());
        assert!(parse_port(&IntOrString::Int(70000)).is_err());
        assert_eq!(
            parse_port(&IntOrString::Str("http".into())),
            Ok(PortSpec::Named("http".into()))
        );
        assert!(parse_port(&IntOrString::Str("no good".into())).is_err());
        assert_eq!(
            parse_protocol(&IntOrString::Str("TCP".into())),
            Some(Protocol::Tcp)
        );
        assert_eq!(parse_protocol(&IntOrString::Int(17)), Some(Protocol::Udp));
        assert_eq!(parse_protocol(&IntOrString::Str("tcpx".into())), None);
        assert_eq!(parse_action("next-tier"), Some(RuleAction::Pass));
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("10.0.0.1").is_ok());
    }
}

//! The resolved model: endpoints with their effective labels, compiled policies in evaluation
//! order, the label index, and the per-node IR.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net};
use selector_lang::Selector;

use crate::error::PolicyIrError;
use crate::ir::*;
use crate::labels::LabelIndex;
use crate::resources::{self as r, Origin, Resources};
use crate::validate::{
    parse_action, parse_net, parse_port, parse_protocol, parse_selector, PortSpec,
};

/// What an entity of the label index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    Workload,
    Host,
    NetworkSet,
}

/// An endpoint or network set with its effective labels.
#[derive(Debug, Clone)]
pub struct Entity {
    pub kind: EntityKind,
    pub id: EndpointId,
    pub node: Option<String>,
    pub interface: String,
    /// IPv4 addresses (endpoints) or CIDRs (network sets).
    pub nets: Vec<Ipv4Net>,
    /// Own labels, over profile `labelsToApply`, plus the implicit labels (shared with the
    /// label index).
    pub labels: std::sync::Arc<BTreeMap<String, String>>,
    pub profiles: Vec<String>,
    /// Named ports: (name, protocol, number).
    pub ports: Vec<(String, Protocol, u16)>,
    pub service_account: Option<String>,
    pub origin: Origin,
}

impl selector_lang::Labels for Entity {
    fn get(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// One side of a compiled rule.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub nets: Vec<Ipv4Net>,
    pub not_nets: Vec<Ipv4Net>,
    /// The selector with its namespace scope folded in.
    pub selector: Option<Selector>,
    pub not_selector: Option<Selector>,
    pub ports: Vec<PortRange>,
    pub named_ports: Vec<String>,
    pub not_ports: Vec<PortRange>,
    pub not_named_ports: Vec<String>,
    pub service_account_names: Option<Vec<String>>,
    /// A service-account selector (not supported: never matches unless `all()`).
    pub service_account_selector: Option<Selector>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub action: RuleAction,
    pub protocol: Option<Protocol>,
    pub not_protocol: Option<Protocol>,
    pub icmp: Option<IcmpMatch>,
    pub not_icmp: Option<IcmpMatch>,
    pub src: Side,
    pub dst: Side,
    pub index: usize,
    pub text: String,
}

/// Direction of policy evaluation at an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub id: PolicyId,
    pub tier: String,
    pub order: Option<f64>,
    /// Applicability (policy selector with namespace scope).
    pub selector: Selector,
    pub ingress_applies: bool,
    pub egress_applies: bool,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub do_not_track: bool,
    pub pre_dnat: bool,
    pub apply_on_forward: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct Tier {
    pub name: String,
    pub order: Option<f64>,
    pub default_action: TierDefaultAction,
}

/// The resolved model of a set of resources.
pub struct Model {
    pub(crate) res: Resources,
    pub(crate) entities: Vec<Entity>,
    pub(crate) tiers: Vec<Tier>,
    /// In evaluation order: tier order, then policy order, then name/namespace/kind.
    pub(crate) policies: Vec<Policy>,
    pub(crate) profiles: BTreeMap<String, Profile>,
    pub(crate) namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub(crate) index: LabelIndex,
}

fn cmp_order(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    let a = a.unwrap_or(f64::INFINITY);
    let b = b.unwrap_or(f64::INFINITY);
    a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
}

fn v4_nets(list: &[String]) -> (Vec<Ipv4Net>, bool) {
    let mut out = Vec::new();
    let mut had_any = false;
    for s in list {
        if let Ok(n) = parse_net(s) {
            had_any = true;
            if let IpNet::V4(n) = n {
                out.push(n.trunc());
            }
        }
    }
    (out, had_any)
}

/// Rewrites a namespace selector onto the `pcns.` labels endpoints carry.
fn pcns(node: &selector_lang::Node) -> selector_lang::Node {
    use selector_lang::Node as N;
    let p = |k: &String| format!("pcns.{k}");
    match node {
        N::All | N::Global => N::Has("projectcalico.org/namespace".into()),
        N::Has(k) => N::Has(p(k)),
        N::Eq(k, v) => N::Eq(p(k), v.clone()),
        N::Ne(k, v) => N::Ne(p(k), v.clone()),
        N::Contains(k, v) => N::Contains(p(k), v.clone()),
        N::StartsWith(k, v) => N::StartsWith(p(k), v.clone()),
        N::EndsWith(k, v) => N::EndsWith(p(k), v.clone()),
        N::In(k, v) => N::In(p(k), v.clone()),
        N::NotIn(k, v) => N::NotIn(p(k), v.clone()),
        N::Not(x) => N::Not(Box::new(pcns(x))),
        N::And(v) => N::And(v.iter().map(pcns).collect()),
        N::Or(v) => N::Or(v.iter().map(pcns).collect()),
    }
}

fn sel_or_all(s: &str) -> Selector {
    parse_selector(s).unwrap_or_else(|_| Selector::all())
}

/// Combines a selector with its namespace scope: `namespace_selector` (rewritten to `pcns.`
/// labels) or, in a namespaced policy without one, `projectcalico.org/namespace == '<ns>'`.
pub fn scoped_selector(
    selector: &str,
    namespace_selector: &str,
    namespace: Option<&str>,
) -> Option<Selector> {
    let ns_part: Option<String> = if !namespace_selector.trim().is_empty() {
        let s = sel_or_all(namespace_selector);
        Some(Selector::from_node(pcns(s.root())).canonical().to_string())
    } else if let (Some(ns), false) = (namespace, selector.trim().is_empty()) {
        Some(format!("projectcalico.org/namespace == \"{ns}\""))
    } else {
        None
    };
    match (ns_part, selector.trim().is_empty()) {
        (None, true) => None,
        (None, false) => Some(sel_or_all(selector)),
        (Some(ns), true) => Some(sel_or_all(&ns)),
        (Some(ns), false) => {
            let sel = sel_or_all(selector);
            Some(sel_or_all(&format!("({ns}) && ({})", sel.canonical())))
        }
    }
}

fn rule_text(r: &r::Rule, action: RuleAction) -> String {
    let mut t = match action {
        RuleAction::Allow => "allow".to_string(),
        RuleAction::Deny => "deny".to_string(),
        RuleAction::Pass => "pass".to_string(),
        RuleAction::Log => "log".to_string(),
    };
    if let Some(p) = &r.protocol {
        t.push(' ');
        t.push_str(&p.to_string().to_ascii_lowercase());
    }
    if let Some(p) = &r.not_protocol {
        t.push_str(&format!(" !{}", p.to_string().to_ascii_lowercase()));
    }
    if let Some(i) = &r.icmp {
        t.push_str(&format!(" icmp type {:?} code {:?}", i.icmp_type, i.code));
    }
    let side = |e: &r::EntityRule| {
        let mut s = String::new();
        if !e.nets.is_empty() {
            s.push_str(&format!(" nets {}", e.nets.join(",")));
        }
        if !e.not_nets.is_empty() {
            s.push_str(&format!(" !nets {}", e.not_nets.join(",")));
        }
        if !e.selector.is_empty() {
            s.push_str(&format!(" selector {}", e.selector));
        }
        if !e.not_selector.is_empty() {
            s.push_str(&format!(" !selector {}", e.not_selector));
        }
        if !e.namespace_selector.is_empty() {
            s.push_str(&format!(" namespaceSelector {}", e.namespace_selector));
        }
        if !e.ports.is_empty() {
            let p: Vec<String> = e.ports.iter().map(|p| p.to_string()).collect();
            s.push_str(&format!(" ports {}", p.join(",")));
        }
        if !e.not_ports.is_empty() {
            let p: Vec<String> = e.not_ports.iter().map(|p| p.to_string()).collect();
            s.push_str(&format!(" !ports {}", p.join(",")));
        }
        s
    };
    let s = side(&r.source);
    if !s.is_empty() {
        t.push_str(" from");
        t.push_str(&s);
    }
    let d = side(&r.destination);
    if !d.is_empty() {
        t.push_str(" to");
        t.push_str(&d);
    }
    t
}

fn compile_side(e: &r::EntityRule, namespace: Option<&str>) -> Option<Side> {
    let (nets, had) = v4_nets(&e.nets);
    if had && nets.is_empty() {
        return None; // IPv6-only rule: dropped for IPv4.
    }
    let (not_nets, had_not) = v4_nets(&e.not_nets);
    if had_not && not_nets.is_empty() {
        return None;
    }
    if not_nets.iter().any(|n| n.prefix_len() == 0) {
        return None;
    }
    let mut side = Side {
        nets,
        not_nets,
        selector: scoped_selector(&e.selector, &e.namespace_selector, namespace),
        not_selector: (!e.not_selector.trim().is_empty()).then(|| sel_or_all(&e.not_selector)),
        ..Default::default()
    };
    for (list, ranges, named) in [
        (&e.ports, &mut side.ports, &mut side.named_ports),
        (&e.not_ports, &mut side.not_ports, &mut side.not_named_ports),
    ] {
        for p in list {
            match parse_port(p) {
                Ok(PortSpec::Range(r)) => ranges.push(r),
                Ok(PortSpec::Named(n)) => named.push(n),
                Err(_) => {}
            }
        }
    }
    if let Some(sa) = &e.service_accounts {
        if !sa.names.is_empty() {
            side.service_account_names = Some(sa.names.clone());
        }
        if !sa.selector.trim().is_empty() {
            side.service_account_selector = Some(sel_or_all(&sa.selector));
        }
    }
    Some(side)
}

fn icmp(i: &Option<r::IcmpFields>) -> Option<IcmpMatch> {
    i.as_ref().and_then(|i| {
        i.icmp_type.map(|t| IcmpMatch {
            icmp_type: t.clamp(0, 255) as u8,
            code: i.code.map(|c| c.clamp(0, 255) as u8),
        })
    })
}

/// Compiles the rules of one direction, dropping IPv6-only rules (indices keep their source
/// position).
pub fn compile_rules(rules: &[r::Rule], namespace: Option<&str>) -> Vec<Rule> {
    let mut out = Vec::new();
    for (index, x) in rules.iter().enumerate() {
        if x.ip_version == Some(6) {
            continue;
        }
        let Some(action) = parse_action(&x.action) else {
            continue;
        };
        let protocol = x.protocol.as_ref().and_then(parse_protocol);
        if protocol == Some(Protocol::Number(58)) {
            continue; // ICMPv6
        }
        let (Some(src), Some(dst)) = (
            compile_side(&x.source, namespace),
            compile_side(&x.destination, namespace),
        ) else {
            continue;
        };
        out.push(Rule {
            action,
            protocol,
            not_protocol: x.not_protocol.as_ref().and_then(parse_protocol),
            icmp: icmp(&x.icmp),
            not_icmp: icmp(&x.not_icmp),
            src,
            dst,
            index,
            text: rule_text(x, action),
        });
    }
    out
}

/// Effective types: explicit, else [Ingress] / [Egress] / both by which rules exist.
fn effective_types(types: &[String], has_ingress: bool, has_egress: bool) -> (bool, bool) {
    if !types.is_empty() {
        return (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        );
    }
    match (has_ingress, has_egress) {
        (false, true) => (false, true),
        (true, true) => (true, true),
        _ => (true, false),
    }
}

fn endpoint_ports(ports: &[r::EndpointPort]) -> Vec<(String, Protocol, u16)> {
    ports
        .iter()
        .filter_map(|p| {
            let proto = match &p.protocol {
                None => Protocol::Tcp,
                Some(x) => parse_protocol(x)?,
            };
            Some((p.name.clone(), proto, p.port))
        })
        .collect()
}

impl Model {
    /// Loads files/directories, validates (all errors), resolves.
    pub fn load(paths: &[PathBuf]) -> Result<Model, PolicyIrError> {
        let res = crate::load::load_paths(paths)?;
        Ok(Model::from_resources(res))
    }

    /// Loads resources from text (one file's contents) — for tests and tools.
    pub fn load_str(file: &str, text: &str) -> Result<Model, PolicyIrError> {
        let mut l = crate::load::Loader::new();
        l.add_text(file, text);
        Ok(Model::from_resources(l.finish()?))
    }

    /// Builds the model from already-validated resources.
    pub fn from_resources(mut res: Resources) -> Model {
        let timing = std::env::var_os("PIR_TIMING").is_some();
        let t0 = std::time::Instant::now();
        let lap = |what: &str| {
            if timing {
                eprintln!("  {what}: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
            }
        };
        crate::load::add_implied(&mut res);
        let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for n in &res.namespaces {
            namespaces.insert(n.metadata.name.clone(), n.metadata.labels.clone());
        }
        let mut ns_names: BTreeSet<String> = BTreeSet::new();
        for w in &res.workload_endpoints {
            if let Some(ns) = &w.metadata.namespace {
                ns_names.insert(ns.clone());
            }
        }
        for s in &res.network_sets {
            if let Some(ns) = &s.metadata.namespace {
                ns_names.insert(ns.clone());
            }
        }
        for ns in ns_names {
            namespaces.entry(ns).or_default();
        }

        let profile_labels: HashMap<&str, &BTreeMap<String, String>> = res
            .profiles
            .iter()
            .map(|p| (p.metadata.name.as_str(), &p.spec.labels_to_apply))
            .collect();
        let pcns_labels: HashMap<&str, Vec<(String, String)>> = namespaces
            .iter()
            .map(|(ns, nl)| {
                let mut v: Vec<(String, String)> = nl
                    .iter()
                    .map(|(k, v)| (format!("pcns.{k}"), v.clone()))
                    .collect();
                v.push(("pcns.projectcalico.org/name".into(), ns.clone()));
                v.push(("pcns.kubernetes.io/metadata.name".into(), ns.clone()));
                (ns.as_str(), v)
            })
            .collect();
        let effective = |own: &BTreeMap<String, String>,
                         profiles: &[String],
                         ns: Option<&str>,
                         orchestrator: &str,
                         sa: &str| {
            // Own labels win over profile labels; among profiles, in order, the first to define
            // a key wins. (Cloning `own` whole is cheaper than inserting key by key.)
            let mut l: BTreeMap<String, String> = own.clone();
            for p in profiles {
                if let Some(pl) = profile_labels.get(p.as_str()) {
                    for (k, v) in pl.iter() {
                        if !l.contains_key(k) {
                            l.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            if let Some(ns) = ns {
                l.insert("projectcalico.org/namespace".into(), ns.to_string());
                if let Some(extra) = pcns_labels.get(ns) {
                    for (k, v) in extra {
                        if !l.contains_key(k) {
                            l.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            if !orchestrator.is_empty() {
                l.insert(
                    "projectcalico.org/orchestrator".into(),
                    orchestrator.to_string(),
                );
            }
            if !sa.is_empty() {
                l.insert("projectcalico.org/serviceaccount".into(), sa.to_string());
            }
            std::sync::Arc::new(l)
        };

        let mut entities = Vec::new();
        for w in &res.workload_endpoints {
            let ns = w.metadata.namespace.as_deref();
            entities.push(Entity {
                kind: EntityKind::Workload,
                id: EndpointId {
                    namespace: w.metadata.namespace.clone(),
                    name: w.metadata.name.clone(),
                },
                node: Some(w.spec.node.clone()),
                interface: w.spec.interface_name.clone(),
                nets: v4_nets(&w.spec.ip_networks).0,
                labels: effective(
                    &w.metadata.labels,
                    &w.spec.profiles,
                    ns,
                    &w.spec.orchestrator,
                    &w.spec.service_account_name,
                ),
                profiles: w.spec.profiles.clone(),
                ports: endpoint_ports(&w.spec.ports),
                service_account: (!w.spec.service_account_name.is_empty())
                    .then(|| w.spec.service_account_name.clone()),
                origin: w.origin.clone(),
            });
        }
        for h in &res.host_endpoints {
            entities.push(Entity {
                kind: EntityKind::Host,
                id: EndpointId {
                    namespace: None,
                    name: h.metadata.name.clone(),
                },
                node: Some(h.spec.node.clone()),
                interface: if h.spec.interface_name.is_empty() {
                    "*".into()
                } else {
                    h.spec.interface_name.clone()
                },
                nets: v4_nets(&h.spec.expected_ips)
                    .0
                    .into_iter()
                    .map(|n| Ipv4Net::new(n.addr(), 32).expect("32"))
                    .collect(),
                labels: effective(&h.metadata.labels, &h.spec.profiles, None, "", ""),
                profiles: h.spec.profiles.clone(),
                ports: endpoint_ports(&h.spec.ports),
                service_account: None,
                origin: h.origin.clone(),
            });
        }
        for s in &res.global_network_sets {
            entities.push(Entity {
                kind: EntityKind::NetworkSet,
                id: EndpointId {
                    namespace: None,
                    name: s.metadata.name.clone(),
                },
                node: None,
                interface: String::new(),
                nets: v4_nets(&s.spec.nets).0,
                labels: std::sync::Arc::new(s.metadata.labels.clone()),
                profiles: Vec::new(),
                ports: Vec::new(),
                service_account: None,
                origin: s.origin.clone(),
            });
        }
        for s in &res.network_sets {
            let ns = s.metadata.namespace.as_deref();
            entities.push(Entity {
                kind: EntityKind::NetworkSet,
                id: EndpointId {
                    namespace: s.metadata.namespace.clone(),
                    name: s.metadata.name.clone(),
                },
                node: None,
                interface: String::new(),
                nets: v4_nets(&s.spec.nets).0,
                labels: effective(&s.metadata.labels, &[], ns, "", ""),
                profiles: Vec::new(),
                ports: Vec::new(),
                service_account: None,
                origin: s.origin.clone(),
            });
        }

        lap("entities");
        // Tiers.
        let mut tiers: Vec<Tier> = res
            .tiers
            .iter()
            .map(|t| Tier {
                name: t.metadata.name.clone(),
                order: t.spec.order,
                default_action: match t.spec.default_action.as_deref() {
                    Some("Pass") => TierDefaultAction::Pass,
                    _ => TierDefaultAction::Deny,
                },
            })
            .collect();
        for (name, order, action) in [
            ("kube-admin", 1000.0, TierDefaultAction::Pass),
            ("default", 1_000_000.0, TierDefaultAction::Deny),
            ("kube-baseline", 10_000_000.0, TierDefaultAction::Pass),
        ] {
            if !tiers.iter().any(|t| t.name == name) {
                tiers.push(Tier {
                    name: name.into(),
                    order: Some(order),
                    default_action: action,
                });
            }
        }
        tiers.sort_by(|a, b| cmp_order(a.order, b.order).then_with(|| a.name.cmp(&b.name)));
        let tier_pos: HashMap<String, usize> = tiers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();

        // Policies.
        let mut policies = Vec::new();
        for p in &res.global_network_policies {
            let (ing, eg) = effective_types(
                &p.spec.types,
                !p.spec.ingress.is_empty(),
                !p.spec.egress.is_empty(),
            );
            let sel = scoped_selector(
                if p.spec.selector.trim().is_empty() {
                    "all()"
                } else {
                    &p.spec.selector
                },
                &p.spec.namespace_selector,
                None,
            )
            .unwrap_or_else(Selector::all);
            policies.push(Policy {
                id: PolicyId {
                    kind: PolicyKind::GlobalNetworkPolicy,
                    namespace: None,
                    name: p.metadata.name.clone(),
                },
                tier: if p.spec.tier.is_empty() {
                    "default".into()
                } else {
                    p.spec.tier.clone()
                },
                order: p.spec.order,
                selector: sel,
                ingress_applies: ing,
                egress_applies: eg,
                ingress: compile_rules(&p.spec.ingress, None),
                egress: compile_rules(&p.spec.egress, None),
                do_not_track: p.spec.do_not_track,
                pre_dnat: p.spec.pre_dnat,
                apply_on_forward: p.spec.apply_on_forward,
                origin: p.origin.clone(),
            });
        }
        for p in &res.network_policies {
            let ns = p
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let (ing, eg) = effective_types(
                &p.spec.types,
                !p.spec.ingress.is_empty(),
                !p.spec.egress.is_empty(),
            );
            let sel = scoped_selector(
                if p.spec.selector.trim().is_empty() {
                    "all()"
                } else {
                    &p.spec.selector
                },
                "",
                Some(&ns),
            )
            .unwrap_or_else(Selector::all);
            policies.push(Policy {
                id: PolicyId {
                    kind: if p.from_kubernetes {
                        PolicyKind::KubernetesNetworkPolicy
                    } else {
                        PolicyKind::NetworkPolicy
                    },
                    namespace: Some(ns.clone()),
                    name: p.metadata.name.clone(),
                },
                tier: if p.spec.tier.is_empty() {
                    "default".into()
                } else {
                    p.spec.tier.clone()
                },
                order: p.spec.order,
                selector: sel,
                ingress_applies: ing,
                egress_applies: eg,
                ingress: compile_rules(&p.spec.ingress, Some(&ns)),
                egress: compile_rules(&p.spec.egress, Some(&ns)),
                do_not_track: false,
                pre_dnat: false,
                apply_on_forward: false,
                origin: p.origin.clone(),
            });
        }
        let kind_str = |k: PolicyKind| k.kind_name();
        policies.sort_by(|a, b| {
            let ta = tier_pos.get(&a.tier).copied().unwrap_or(usize::MAX);
            let tb = tier_pos.get(&b.tier).copied().unwrap_or(usize::MAX);
            ta.cmp(&tb)
                .then_with(|| cmp_order(a.order, b.order))
                .then_with(|| {
                    let ka = format!(
                        "{}/{}/{}",
                        a.id.name,
                        a.id.namespace.as_deref().unwrap_or(""),
                        kind_str(a.id.kind)
                    );
                    let kb = format!(
                        "{}/{}/{}",
                        b.id.name,
                        b.id.namespace.as_deref().unwrap_or(""),
                        kind_str(b.id.kind)
                    );
                    ka.cmp(&kb)
                })
        });

        let profiles: BTreeMap<String, Profile> = res
            .profiles
            .iter()
            .map(|p| {
                (
                    p.metadata.name.clone(),
                    Profile {
                        name: p.metadata.name.clone(),
                        ingress: compile_rules(&p.spec.ingress, None),
                        egress: compile_rules(&p.spec.egress, None),
                        origin: p.origin.clone(),
                    },
                )
            })
            .collect();

        lap("policies");
        // Label index: every entity, and every selector of every policy and profile.
        let mut index = LabelIndex::new();
        for (i, e) in entities.iter().enumerate() {
            index.upsert_shared(i, e.labels.clone());
        }
        lap("index entities");
        let mut model = Model {
            res,
            entities,
            tiers,
            policies,
            profiles,
            namespaces,
            index,
        };
        let mut sels: Vec<Selector> = Vec::new();
        for p in &model.policies {
            sels.push(p.selector.clone());
            for r in p.ingress.iter().chain(&p.egress) {
                sels.extend(rule_selectors(r));
            }
        }
        for p in model.profiles.values() {
            for r in p.ingress.iter().chain(&p.egress) {
                sels.extend(rule_selectors(r));
            }
        }
        for s in &sels {
            model.index.add_selector(s);
        }
        lap("index selectors");
        model
    }

    pub fn resources(&self) -> &Resources {
        &self.res
    }

    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    pub fn label_index(&self) -> &LabelIndex {
        &self.index
    }

    /// Labels of a namespace (its own, as given by the Namespace resource).
    pub fn namespace_labels(&self, ns: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(ns)
    }

    /// Nodes hosting endpoints or declared by Node resources, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut s: BTreeSet<String> = self
            .res
            .nodes
            .iter()
            .map(|n| n.metadata.name.clone())
            .collect();
        for e in &self.entities {
            if let Some(n) = &e.node {
                if !n.is_empty() {
                    s.insert(n.clone());
                }
            }
        }
        s.into_iter().collect()
    }

    /// Relabels entity `id` (own labels replaced by `labels`, implicit and profile labels kept)
    /// and returns the membership deltas of every selector.
    pub fn relabel(
        &mut self,
        id: usize,
        labels: BTreeMap<String, String>,
    ) -> Vec<crate::labels::Delta> {
        let e = &mut self.entities[id];
        let implicit: Vec<(String, String)> = e
            .labels
            .iter()
            .filter(|(k, _)| k.starts_with("projectcalico.org/") || k.starts_with("pcns."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut l = labels;
        for (k, v) in implicit {
            l.insert(k, v);
        }
        e.labels = std::sync::Arc::new(l);
        self.index
            .upsert_shared(id, self.entities[id].labels.clone())
    }

    /// Policies that apply to entity `id` in direction `dir`, in evaluation order.
    pub fn applying_policies(&self, id: usize, dir: Direction) -> Vec<usize> {
        let slots = self.policy_slots();
        self.applying_policies_with(&slots, id, dir)
    }

    /// The label-index slot of every policy's selector (in policy order).
    pub(crate) fn policy_slots(&self) -> Vec<Option<u32>> {
        self.policies
            .iter()
            .map(|p| self.index.slot(p.selector.uid()))
            .collect()
    }

    pub(crate) fn applying_policies_with(
        &self,
        slots: &[Option<u32>],
        id: usize,
        dir: Direction,
    ) -> Vec<usize> {
        let e = &self.entities[id];
        if e.kind == EntityKind::NetworkSet {
            return Vec::new();
        }
        self.policies
            .iter()
            .enumerate()
            .filter(|(_, p)| match dir {
                Direction::Ingress => p.ingress_applies,
                Direction::Egress => p.egress_applies,
            })
            .filter(|(_, p)| !(e.kind == EntityKind::Workload && (p.do_not_track || p.pre_dnat)))
            .filter(|(i, _)| slots[*i].is_some_and(|s| self.index.is_member_slot(s, id)))
            .map(|(i, _)| i)
            .collect()
    }

    /// The entity a spec names: `namespace/name`, `name`, or an IPv4 address owned by an endpoint.
    pub fn find_entity(&self, spec: &str) -> Result<Option<usize>, PolicyIrError> {
        if let Ok(ip) = spec.parse::<Ipv4Addr>() {
            return Ok(self.entity_by_ip(ip));
        }
        let is_ep = |e: &Entity| e.kind != EntityKind::NetworkSet;
        let found: Vec<usize> = if let Some((ns, name)) = spec.split_once('/') {
            self.entities
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    is_ep(e) && e.id.namespace.as_deref() == Some(ns) && e.id.name == name
                })
                .map(|(i, _)| i)
                .collect()
        } else {
            let global: Vec<usize> = self
                .entities
                .iter()
                .enumerate()
                .filter(|(_, e)| is_ep(e) && e.id.namespace.is_none() && e.id.name == spec)
                .map(|(i, _)| i)
                .collect();
            if global.is_empty() {
                self.entities
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| is_ep(e) && e.id.name == spec)
                    .map(|(i, _)| i)
                    .collect()
            } else {
                global
            }
        };
        match found.len() {
            0 => Err(PolicyIrError::UnknownAddress { spec: spec.into() }),
            1 => Ok(Some(found[0])),
            _ => Err(PolicyIrError::AmbiguousAddress {
                spec: spec.into(),
                candidates: found
                    .iter()
                    .map(|i| self.entities[*i].id.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The workload or host endpoint owning `ip`, if any.
    pub fn entity_by_ip(&self, ip: Ipv4Addr) -> Option<usize> {
        self.entities
            .iter()
            .position(|e| e.kind != EntityKind::NetworkSet && e.nets.iter().any(|n| n.addr() == ip))
    }

    /// Resolves a probe address spec.
    pub fn resolve_address(&self, spec: &str) -> Result<Address, PolicyIrError> {
        let id = self.find_entity(spec)?;
        match id {
            Some(i) => {
                let e = &self.entities[i];
                let ip = match spec.parse::<Ipv4Addr>() {
                    Ok(ip) => ip,
                    Err(_) => e
                        .nets
                        .first()
                        .map(|n| n.addr())
                        .ok_or_else(|| PolicyIrError::NoAddress { spec: spec.into() })?,
                };
                Ok(Address {
                    ip,
                    endpoint: Some(EndpointRef {
                        entity: i,
                        id: e.id.clone(),
                        host_endpoint: e.kind == EntityKind::Host,
                        node: e.node.clone().unwrap_or_default(),
                        interface: e.interface.clone(),
                        addrs: e.nets.clone(),
                    }),
                })
            }
            None => Ok(Address {
                ip: spec.parse().expect("checked in find_entity"),
                endpoint: None,
            }),
        }
    }

    /// Whether `sel` matches the packet address `ip` (owned by entity `ep`, if any): the
    /// endpoint's labels, or any network set containing the address.
    pub fn selector_matches_address(
        &self,
        sel: &Selector,
        ip: Ipv4Addr,
        ep: Option<usize>,
    ) -> bool {
        if let Some(i) = ep {
            if sel.matches(&self.entities[i]) {
                return true;
            }
        }
        self.entities.iter().any(|e| {
            e.kind == EntityKind::NetworkSet
                && e.nets.iter().any(|n| n.contains(&ip))
                && sel.matches(e)
        })
    }
}

/// Selectors a rule needs in the index.
fn rule_selectors(r: &Rule) -> Vec<Selector> {
    let mut v = Vec::new();
    for s in [&r.src, &r.dst] {
        if let Some(x) = &s.selector {
            v.push(x.clone());
        }
        if let Some(x) = &s.not_selector {
            v.push(x.clone());
        }
        // Named-port sets are over the side's selector, or all() (always for negated ones).
        if (!s.named_ports.is_empty() && s.selector.is_none()) || !s.not_named_ports.is_empty() {
            v.push(Selector::all());
        }
    }
    v
}

/// A resolved probe address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Address {
    pub ip: Ipv4Addr,
    /// The Calico endpoint owning the address, if any.
    pub endpoint: Option<EndpointRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EndpointRef {
    /// Index into [`Model::entities`].
    pub entity: usize,
    pub id: EndpointId,
    pub host_endpoint: bool,
    pub node: String,
    pub interface: String,
    pub addrs: Vec<Ipv4Net>,
}

impl Address {
    pub fn is_endpoint(&self) -> bool {
        self.endpoint.is_some()
    }
}

#[allow(dead_code)]
fn _assert_ipaddr(_: IpAddr) {}

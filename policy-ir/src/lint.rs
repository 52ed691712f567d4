//! Lint: dead (shadowed) rules, policies selecting no endpoint, selectors matching nothing,
//! profiles never reached, named ports no endpoint defines.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::ir::{PortRange, RuleAction, TierDefaultAction};
use crate::model::{Direction, EntityKind, Model, Rule, Side};
use crate::resources::Origin;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    ShadowedRule,
    PolicySelectsNothing,
    SelectorMatchesNothing,
    ProfileNeverReached,
    UnknownNamedPort,
}

impl FindingKind {
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::ShadowedRule => "shadowed-rule",
            FindingKind::PolicySelectsNothing => "policy-selects-nothing",
            FindingKind::SelectorMatchesNothing => "selector-matches-nothing",
            FindingKind::ProfileNeverReached => "profile-never-reached",
            FindingKind::UnknownNamedPort => "unknown-named-port",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub kind: FindingKind,
    /// `Profile "profile-database"`, `GlobalNetworkPolicy "namespace-default"`, ...
    pub resource: String,
    /// `spec.ingress[1]` etc. (may be empty).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file,
            self.line,
            self.column,
            self.kind.name(),
            self.resource
        )?;
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

fn ranges_within(inner: &[PortRange], outer: &[PortRange]) -> bool {
    inner
        .iter()
        .all(|r| outer.iter().any(|o| o.first <= r.first && r.last <= o.last))
}

fn subset<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.iter().all(|x| b.contains(x))
}

/// True when every packet side `narrow` matches, `wide` matches too (conservative).
fn side_covers(wide: &Side, narrow: &Side) -> bool {
    if !wide.nets.is_empty()
        && (narrow.nets.is_empty()
            || !narrow
                .nets
                .iter()
                .all(|n| wide.nets.iter().any(|w| w.contains(n))))
    {
        return false;
    }
    if !subset(&wide.not_nets, &narrow.not_nets) {
        return false;
    }
    let uid = |s: &Option<selector_lang::Selector>| s.as_ref().map(|x| x.uid().to_string());
    if wide.selector.is_some() && uid(&wide.selector) != uid(&narrow.selector) {
        return false;
    }
    if wide.not_selector.is_some() && uid(&wide.not_selector) != uid(&narrow.not_selector) {
        return false;
    }
    let wide_ports = !wide.ports.is_empty() || !wide.named_ports.is_empty();
    if wide_ports {
        let narrow_ports = !narrow.ports.is_empty() || !narrow.named_ports.is_empty();
        if !narrow_ports
            || !ranges_within(&narrow.ports, &wide.ports)
            || !subset(&narrow.named_ports, &wide.named_ports)
        {
            return false;
        }
    }
    if !subset(&wide.not_ports, &narrow.not_ports)
        || !subset(&wide.not_named_ports, &narrow.not_named_ports)
    {
        return false;
    }
    if wide.service_account_names.is_some()
        && wide.service_account_names != narrow.service_account_names
    {
        return false;
    }
    if wide.service_account_selector.is_some() {
        return false;
    }
    true
}

/// True when every packet `narrow` matches, `wide` matches too (conservative: may say false for
/// a rule that is in fact covered, never true for one that is not).
pub fn rule_covers(wide: &Rule, narrow: &Rule) -> bool {
    if let Some(p) = wide.protocol {
        if narrow.protocol != Some(p) {
            return false;
        }
    }
    if let Some(np) = wide.not_protocol {
        let ok = narrow.not_protocol == Some(np) || narrow.protocol.is_some_and(|p| p != np);
        if !ok {
            return false;
        }
    }
    if wide.icmp.is_some() && wide.icmp != narrow.icmp {
        return false;
    }
    if wide.not_icmp.is_some() && wide.not_icmp != narrow.not_icmp {
        return false;
    }
    side_covers(&wide.src, &narrow.src) && side_covers(&wide.dst, &narrow.dst)
}

fn action_name(a: RuleAction) -> &'static str {
    match a {
        RuleAction::Allow => "allow",
        RuleAction::Deny => "deny",
        RuleAction::Pass => "pass",
        RuleAction::Log => "log",
    }
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

fn shadowed(
    rules: &[Rule],
    dir: Direction,
    origin: &Origin,
    resource: &str,
    out: &mut Vec<Finding>,
) {
    for (j, r) in rules.iter().enumerate() {
        if let Some(w) = rules[..j]
            .iter()
            .find(|w| w.action != RuleAction::Log && rule_covers(w, r))
        {
            out.push(placed(
                Finding {
                file: origin.file.clone(),
                line: origin.line,
                column: origin.column,
                kind: FindingKind::ShadowedRule,
                resource: resource.to_string(),
                field: format!("spec.{}[{}]", dir_name(dir), r.index),
                message: format!(
                    "rule {} ({}) can never match: the earlier {} rule {} ({}) covers every packet it would match",
                    r.index,
                    r.text,
                    action_name(w.action),
                    w.index,
                    w.text
                ),
            },
            origin,
            ));
        }
    }
}

/// `f` placed at its field in `origin` (the rule, selector or ports it is about) when the
/// loader recorded that position, else at the resource.
fn placed(mut f: Finding, origin: &Origin) -> Finding {
    (f.line, f.column) = origin.position(&f.field);
    f
}

/// Runs every check; findings sorted by place.
pub fn lint(model: &Model) -> Vec<Finding> {
    let mut out = Vec::new();
    let endpoint = |i: usize| model.entities[i].kind != EntityKind::NetworkSet;
    let mut named_ports: BTreeSet<(String, crate::ir::Protocol)> = BTreeSet::new();
    for e in &model.entities {
        for (n, p, _) in &e.ports {
            named_ports.insert((n.clone(), *p));
        }
    }

    let rule_checks = |rules: &[Rule],
                       dir: Direction,
                       origin: &Origin,
                       resource: &str,
                       out: &mut Vec<Finding>| {
        shadowed(rules, dir, origin, resource, out);
        for r in rules {
            for (side, s) in [("source", &r.src), ("destination", &r.dst)] {
                if let Some(sel) = &s.selector {
                    if model.index.members(sel.uid()).is_empty() {
                        out.push(placed(
                            Finding {
                                file: origin.file.clone(),
                                line: origin.line,
                                column: origin.column,
                                kind: FindingKind::SelectorMatchesNothing,
                                resource: resource.to_string(),
                                field: format!(
                                    "spec.{}[{}].{side}.selector",
                                    dir_name(dir),
                                    r.index
                                ),
                                message: format!(
                                    "selector {} matches no endpoint or network set",
                                    sel.canonical()
                                ),
                            },
                            origin,
                        ));
                    }
                }
                for n in s.named_ports.iter().chain(&s.not_named_ports) {
                    let known = match r.protocol {
                        Some(p) => named_ports.contains(&(n.clone(), p)),
                        None => named_ports.iter().any(|(x, _)| x == n),
                    };
                    if !known {
                        out.push(placed(
                            Finding {
                                file: origin.file.clone(),
                                line: origin.line,
                                column: origin.column,
                                kind: FindingKind::UnknownNamedPort,
                                resource: resource.to_string(),
                                field: format!("spec.{}[{}].{side}.ports", dir_name(dir), r.index),
                                message: format!(
                                    "named port {n:?}{} is defined by no endpoint",
                                    r.protocol
                                        .map(|p| format!(" ({})", p.iptables_name()))
                                        .unwrap_or_default()
                                ),
                            },
                            origin,
                        ));
                    }
                }
            }
        }
    };

    for p in &model.policies {
        let resource = format!("{} \"{}\"", p.id.kind.kind_name(), p.id.display_name());
        rule_checks(
            &p.ingress,
            Direction::Ingress,
            &p.origin,
            &resource,
            &mut out,
        );
        rule_checks(&p.egress, Direction::Egress, &p.origin, &resource, &mut out);
        if !model
            .index
            .members(p.selector.uid())
            .into_iter()
            .any(endpoint)
        {
            out.push(placed(
                Finding {
                    file: p.origin.file.clone(),
                    line: p.origin.line,
                    column: p.origin.column,
                    kind: FindingKind::PolicySelectsNothing,
                    resource: resource.clone(),
                    field: "spec.selector".into(),
                    message: format!(
                        "the policy selects no endpoint ({})",
                        p.selector.canonical()
                    ),
                },
                &p.origin,
            ));
        }
    }

    // Which endpoints use each profile.
    for (name, prof) in &model.profiles {
        let resource = format!("Profile \"{name}\"");
        rule_checks(
            &prof.ingress,
            Direction::Ingress,
            &prof.origin,
            &resource,
            &mut out,
        );
        rule_checks(
            &prof.egress,
            Direction::Egress,
            &prof.origin,
            &resource,
            &mut out,
        );
        let users: Vec<usize> = (0..model.entities.len())
            .filter(|i| endpoint(*i) && model.entities[*i].profiles.contains(name))
            .collect();
        if users.is_empty() {
            continue;
        }
        for dir in [Direction::Ingress, Direction::Egress] {
            let mut deciders = BTreeSet::new();
            let always = users.iter().all(|&i| match deciding_tier(model, i, dir) {
                Some(d) => {
                    deciders.insert(d);
                    true
                }
                None => false,
            });
            if always {
                let names: Vec<String> = users
                    .iter()
                    .map(|i| model.entities[*i].id.to_string())
                    .collect();
                out.push(placed(
                    Finding {
                    file: prof.origin.file.clone(),
                    line: prof.origin.line,
                    column: prof.origin.column,
                    kind: FindingKind::ProfileNeverReached,
                    resource: resource.clone(),
                    field: format!("spec.{}", dir_name(dir)),
                    message: format!(
                        "never reached for {}: {} always decide(s) first for every endpoint using it ({})",
                        dir_name(dir),
                        deciders.into_iter().collect::<Vec<_>>().join(", "),
                        names.join(", ")
                    ),
                },
                &prof.origin,
                ));
            }
        }
    }
    out.sort();
    out
}

/// The first applying tier that always decides for endpoint `i` (default action Deny and no
/// Pass rule in its applying policies), as `tier T (policies ...)`.
fn deciding_tier(model: &Model, i: usize, dir: Direction) -> Option<String> {
    let applying = model.applying_policies(i, dir);
    let mut k = 0;
    while k < applying.len() {
        let tier = &model.policies[applying[k]].tier;
        let mut names = Vec::new();
        let mut can_pass = false;
        while k < applying.len() && &model.policies[applying[k]].tier == tier {
            let p = &model.policies[applying[k]];
            names.push(p.id.display_name());
            let rules = match dir {
                Direction::Ingress => &p.ingress,
                Direction::Egress => &p.egress,
            };
            can_pass |= rules.iter().any(|r| r.action == RuleAction::Pass);
            k += 1;
        }
        let default = model
            .tiers
            .iter()
            .find(|t| &t.name == tier)
            .map(|t| t.default_action)
            .unwrap_or(TierDefaultAction::Deny);
        if default == TierDefaultAction::Deny && !can_pass {
            return Some(format!("policy {} (tier {tier})", names.join(", ")));
        }
    }
    None
}

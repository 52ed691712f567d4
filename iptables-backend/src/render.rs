//! `NodeIr` → [`Ruleset`]: the static chains of raw/mangle/nat/filter, hook rules, endpoint
//! chains, policy and profile chains, dispatch trees, NAT-outgoing and failsafes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ipnet::Ipv4Net;
use policy_ir::ir::{
    EndpointPolicyIr, EndpointToHostAction, IpSetMembers, NodeIr, PolicyId, ProtoPort, RuleAction,
    RuleIr, TierDefaultAction,
};

use crate::hash::{ipset_name, length_limited_name, rule_hashes_parts};
use crate::matches::{render_match, CidrSet};
use crate::{IpSetSpec, Rule, Ruleset, Table, TableRules};

/// Accept mark bit.
pub const MARK_ACCEPT: u32 = 0x100_0000;
/// Pass mark bit.
pub const MARK_PASS: u32 = 0x200_0000;
/// Scratch / "came from a workload interface" bit.
pub const MARK_SCRATCH0: u32 = 0x400_0000;
/// All Brindle mark bits.
pub const MARK_ALL: u32 = 0x700_0000;

/// Interface key Felix uses for the wildcard host endpoint.
pub const WILDCARD_HEP_KEY: &str = "any-interface-at-all";

/// A rule before hashing.
#[derive(Debug, Clone, Default)]
struct Rb {
    comments: Vec<String>,
    matches: String,
    action: String,
}

fn rb(matches: impl Into<String>, action: impl Into<String>) -> Rb {
    Rb {
        comments: Vec::new(),
        matches: matches.into(),
        action: action.into(),
    }
}

impl Rb {
    fn comment(mut self, c: &str) -> Rb {
        self.comments.push(sanitize_comment(c));
        self
    }
}

/// Felix's comment sanitiser: characters outside `[A-Za-z0-9_ @%+=:,./-]` become `_`; at most
/// 256 bytes.
pub fn sanitize_comment(c: &str) -> String {
    let mut s: String = c
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || " _@%+=:,./-".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(256);
    s
}

fn hex(v: u32) -> String {
    format!("{v:#x}")
}
fn mark_set(bit: u32) -> String {
    format!("-m mark --mark {}/{}", hex(bit), hex(bit))
}
fn mark_clear(mask: u32) -> String {
    format!("-m mark --mark 0/{}", hex(mask))
}
fn set_mark(bit: u32) -> String {
    format!("--jump MARK --set-mark {}/{}", hex(bit), hex(bit))
}
fn clear_mark(mask: u32) -> String {
    format!("--jump MARK --set-mark 0/{}", hex(mask))
}
fn jump(chain: &str) -> String {
    format!("--jump {chain}")
}
fn goto(chain: &str) -> String {
    format!("--goto {chain}")
}
const DROP: &str = "--jump DROP";
const ACCEPT: &str = "--jump ACCEPT";
const RETURN: &str = "--jump RETURN";

fn hash_chain(hash_name: &str, rules: Vec<Rb>) -> Vec<Rule> {
    let hashes = rule_hashes_parts(
        hash_name,
        rules
            .iter()
            .map(|r| (&r.comments[..], r.matches.as_str(), r.action.as_str())),
    );
    rules
        .into_iter()
        .zip(hashes)
        .map(|(r, hash)| Rule {
            hash,
            comments: r.comments,
            matches: r.matches,
            action: r.action,
        })
        .collect()
}

/// Policy chain name: `cali-pi-`/`cali-po-` + policy ID, length-limited.
pub fn policy_chain(id: &PolicyId, ingress: bool) -> String {
    let prefix = if ingress { "cali-pi-" } else { "cali-po-" };
    length_limited_name(prefix, &id.chain_suffix())
}

/// Profile chain name: `cali-pri-`/`cali-pro-` + profile name, length-limited.
pub fn profile_chain(name: &str, ingress: bool) -> String {
    let prefix = if ingress { "cali-pri-" } else { "cali-pro-" };
    length_limited_name(prefix, name)
}

/// Endpoint chain name (`cali-tw-`, `cali-fw-`, `cali-th-`, `cali-fh-` + interface).
pub fn endpoint_chain(prefix: &str, iface: &str) -> String {
    let key = if iface == "*" {
        WILDCARD_HEP_KEY
    } else {
        iface
    };
    length_limited_name(prefix, key)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AllowAction {
    Accept,
    Return,
}

struct Renderer<'a> {
    ir: &'a NodeIr,
    cidr_sets: BTreeMap<String, CidrSet>,
}

/// Render a node's IR into its ruleset.
pub fn render(ir: &NodeIr) -> Ruleset {
    let mut r = Renderer {
        ir,
        cidr_sets: BTreeMap::new(),
    };
    let mut tables = BTreeMap::new();
    for t in Table::ALL {
        let (chains, inserts, appends) = r.table(t);
        tables.insert(t, finish_table(chains, inserts, appends));
    }
    let ipsets = r.ipsets();
    Ruleset { tables, ipsets }
}

type Hooks = Vec<(String, Rb)>;

/// Keep the chains reachable from the hook rules, and hash everything.
fn finish_table(chains: BTreeMap<String, Vec<Rb>>, inserts: Hooks, appends: Hooks) -> TableRules {
    fn target(r: &Rb) -> Option<&str> {
        let mut it = r.action.split_whitespace();
        match (it.next(), it.next()) {
            (Some("--jump" | "--goto"), Some(t)) if !crate::is_builtin_target(t) => Some(t),
            _ => None,
        }
    }
    let mut reachable: BTreeSet<String> = BTreeSet::new();
    {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = inserts
            .iter()
            .chain(appends.iter())
            .filter_map(|(_, r)| target(r))
            .collect();
        while let Some(c) = queue.pop_front() {
            if !seen.insert(c) {
                continue;
            }
            if let Some(rules) = chains.get(c) {
                queue.extend(rules.iter().filter_map(target));
            }
        }
        reachable.extend(seen.into_iter().map(str::to_string));
    }
    let mut out = TableRules::default();
    for (name, rules) in chains {
        if reachable.contains(&name) {
            let hashed = hash_chain(&name, rules);
            out.chains.insert(name, hashed);
        }
    }
    // Hook rules: hashed per kernel chain, in order (inserts under the chain's name, appends
    // under `<chain>*appends*`).
    for (list, suffix, dest) in [
        (inserts, "", &mut out.inserts),
        (appends, "*appends*", &mut out.appends),
    ] {
        let mut per: BTreeMap<String, Vec<(usize, Rb)>> = BTreeMap::new();
        for (i, (chain, r)) in list.into_iter().enumerate() {
            per.entry(chain).or_default().push((i, r));
        }
        let mut all: Vec<(usize, String, Rule)> = Vec::new();
        for (chain, rules) in per {
            let idx: Vec<usize> = rules.iter().map(|(i, _)| *i).collect();
            let hashed = hash_chain(
                &format!("{chain}{suffix}"),
                rules.into_iter().map(|(_, r)| r).collect(),
            );
            for (i, r) in idx.into_iter().zip(hashed) {
                all.push((i, chain.clone(), r));
            }
        }
        all.sort_by_key(|(i, _, _)| *i);
        dest.extend(all.into_iter().map(|(_, c, r)| (c, r)));
    }
    out
}

impl Renderer<'_> {
    fn prefixes(&self) -> &[String] {
        &self.ir.settings.interface_prefixes
    }

    fn table(&mut self, t: Table) -> (BTreeMap<String, Vec<Rb>>, Hooks, Hooks) {
        let mut chains: BTreeMap<String, Vec<Rb>> = BTreeMap::new();
        let mut inserts: Hooks = Vec::new();
        let mut appends: Hooks = Vec::new();
        let hook = |k: &str, c: &str| (k.to_string(), rb("", jump(c)));
        match t {
            Table::Raw => {
                inserts.push(hook("PREROUTING", "cali-PREROUTING"));
                inserts.push(hook("OUTPUT", "cali-OUTPUT"));
                let mut pre = vec![rb("", clear_mark(MARK_ALL))];
                for p in self.prefixes() {
                    pre.push(rb(format!("--in-interface {p}+"), set_mark(MARK_SCRATCH0)));
                }
                pre.push(rb(
                    format!(
                        "{} -m rpfilter --invert --validmark",
                        mark_set(MARK_SCRATCH0)
                    ),
                    DROP,
                ));
                pre.push(rb(
                    mark_clear(MARK_SCRATCH0),
                    jump("cali-from-host-endpoint"),
                ));
                pre.push(rb(mark_set(MARK_ACCEPT), ACCEPT));
                chains.insert("cali-PREROUTING".into(), pre);
                chains.insert(
                    "cali-OUTPUT".into(),
                    vec![
                        rb("", clear_mark(MARK_ALL)),
                        rb("", jump("cali-to-host-endpoint")),
                        rb(mark_set(MARK_ACCEPT), ACCEPT),
                    ],
                );
                // No untracked policy in the IR: the raw host-endpoint dispatch chains are empty.
                chains.insert("cali-from-host-endpoint".into(), vec![]);
                chains.insert("cali-to-host-endpoint".into(), vec![]);
            }
            Table::Mangle => {
                inserts.push(hook("PREROUTING", "cali-PREROUTING"));
                inserts.push(hook("POSTROUTING", "cali-POSTROUTING"));
                chains.insert(
                    "cali-PREROUTING".into(),
                    vec![
                        rb("-m conntrack --ctstate RELATED,ESTABLISHED", ACCEPT),
                        rb(mark_set(MARK_ACCEPT), ACCEPT),
                        rb("", jump("cali-from-host-endpoint")),
                        rb(mark_set(MARK_ACCEPT), ACCEPT)
                            .comment("Host endpoint policy accepted packet."),
                    ],
                );
                chains.insert(
                    "cali-POSTROUTING".into(),
                    vec![
                        rb(mark_set(MARK_ACCEPT), RETURN),
                        rb("", clear_mark(MARK_ALL)),
                        rb("-m conntrack --ctstate DNAT", jump("cali-to-host-endpoint")),
                        rb(mark_set(MARK_ACCEPT), RETURN)
                            .comment("Host endpoint policy accepted packet."),
                    ],
                );
                // No pre-DNAT policy in the IR.
                chains.insert("cali-from-host-endpoint".into(), vec![]);
                self.host_endpoint_chains(&mut chains, AllowAction::Return, false);
                // Policy and profile chains are only reachable in mangle through host
                // endpoints; skip rendering them otherwise (they would be pruned anyway).
                if !self.ir.host_endpoints.is_empty() {
                    self.policy_chains(&mut chains);
                }
                chains.insert(
                    "cali-failsafe-out".into(),
                    failsafe(&self.ir.settings.failsafe_outbound, false),
                );
            }
            Table::Nat => {
                inserts.push(hook("PREROUTING", "cali-PREROUTING"));
                inserts.push(hook("OUTPUT", "cali-OUTPUT"));
                inserts.push(hook("POSTROUTING", "cali-POSTROUTING"));
                chains.insert(
                    "cali-PREROUTING".into(),
                    vec![rb("", jump("cali-fip-dnat"))],
                );
                chains.insert("cali-OUTPUT".into(), vec![rb("", jump("cali-fip-dnat"))]);
                chains.insert(
                    "cali-POSTROUTING".into(),
                    vec![
                        rb("", jump("cali-fip-snat")),
                        rb("", jump("cali-nat-outgoing")),
                    ],
                );
                chains.insert("cali-fip-dnat".into(), vec![]);
                chains.insert("cali-fip-snat".into(), vec![]);
                let mut nat = Vec::new();
                if self.nat_pools().next().is_some() {
                    nat.push(rb(
                        format!(
                            "-m set --match-set {} src -m set ! --match-set {} dst",
                            ipset_name("masq-ipam-pools"),
                            ipset_name("all-ipam-pools")
                        ),
                        "--jump MASQUERADE",
                    ));
                }
                chains.insert("cali-nat-outgoing".into(), nat);
            }
            Table::Filter => {
                inserts.push(hook("INPUT", "cali-INPUT"));
                inserts.push(hook("FORWARD", "cali-FORWARD"));
                inserts.push(hook("OUTPUT", "cali-OUTPUT"));
                appends.push((
                    "FORWARD".into(),
                    rb(mark_set(MARK_ACCEPT), ACCEPT).comment("Policy explicitly accepted packet."),
                ));
                appends.push(("FORWARD".into(), rb("", set_mark(MARK_ACCEPT))));
                self.filter_static(&mut chains);
                self.workload_chains(&mut chains);
                self.host_endpoint_chains(&mut chains, AllowAction::Accept, true);
                self.policy_chains(&mut chains);
            }
        }
        (chains, inserts, appends)
    }

    fn filter_static(&self, chains: &mut BTreeMap<String, Vec<Rb>>) {
        let mut fwd = vec![
            rb("", clear_mark(MARK_ALL & !MARK_ACCEPT)),
            rb(mark_clear(MARK_ACCEPT), jump("cali-from-hep-forward")),
        ];
        for p in self.prefixes() {
            fwd.push(rb(
                format!("--in-interface {p}+"),
                jump("cali-from-wl-dispatch"),
            ));
            fwd.push(rb(
                format!("--out-interface {p}+"),
                jump("cali-to-wl-dispatch"),
            ));
        }
        fwd.push(rb("", jump("cali-to-hep-forward")));
        fwd.push(rb("", jump("cali-cidr-block")));
        chains.insert("cali-FORWARD".into(), fwd);

        let mut input = Vec::new();
        for p in self.prefixes() {
            input.push(rb(format!("--in-interface {p}+"), goto("cali-wl-to-host")));
        }
        input.push(rb(mark_set(MARK_ACCEPT), ACCEPT));
        input.push(rb("", clear_mark(MARK_ALL)));
        input.push(rb("", jump("cali-from-host-endpoint")));
        input.push(
            rb(mark_set(MARK_ACCEPT), ACCEPT).comment("Host endpoint policy accepted packet."),
        );
        chains.insert("cali-INPUT".into(), input);

        let action = match self.ir.settings.default_endpoint_to_host_action {
            EndpointToHostAction::Drop => DROP,
            EndpointToHostAction::Return => RETURN,
            EndpointToHostAction::Accept => ACCEPT,
        };
        chains.insert(
            "cali-wl-to-host".into(),
            vec![
                rb("", jump("cali-from-wl-dispatch")),
                rb("", action).comment("Configured DefaultEndpointToHostAction"),
            ],
        );

        let mut output = vec![rb(mark_set(MARK_ACCEPT), ACCEPT)];
        for p in self.prefixes() {
            output.push(rb(format!("--out-interface {p}+"), RETURN));
        }
        output.push(rb("", clear_mark(MARK_ALL)));
        output.push(rb(
            "-m conntrack ! --ctstate DNAT",
            jump("cali-to-host-endpoint"),
        ));
        output.push(
            rb(mark_set(MARK_ACCEPT), ACCEPT).comment("Host endpoint policy accepted packet."),
        );
        chains.insert("cali-OUTPUT".into(), output);

        chains.insert("cali-from-hep-forward".into(), vec![]);
        chains.insert("cali-to-hep-forward".into(), vec![]);
        chains.insert("cali-cidr-block".into(), vec![]);
        chains.insert(
            "cali-failsafe-in".into(),
            failsafe(&self.ir.settings.failsafe_inbound, true),
        );
        chains.insert(
            "cali-failsafe-out".into(),
            failsafe(&self.ir.settings.failsafe_outbound, false),
        );
    }

    fn workload_chains(&self, chains: &mut BTreeMap<String, Vec<Rb>>) {
        let ifaces: Vec<String> = self
            .ir
            .workloads
            .iter()
            .map(|w| w.interface.clone())
            .collect();
        for (root, flag, prefix) in [
            ("cali-from-wl-dispatch", "--in-interface", "cali-fw-"),
            ("cali-to-wl-dispatch", "--out-interface", "cali-tw-"),
        ] {
            let end = vec![rb("", DROP).comment("Unknown interface")];
            for (name, rules) in dispatch_tree(root, &ifaces, flag, prefix, &end) {
                chains.insert(name, rules);
            }
        }
        for w in &self.ir.workloads {
            let tw = endpoint_chain("cali-tw-", &w.interface);
            let fw = endpoint_chain("cali-fw-", &w.interface);
            if !w.admin_up {
                for c in [tw, fw] {
                    chains.insert(c, vec![rb("", DROP).comment("Endpoint admin disabled")]);
                }
                continue;
            }
            chains.insert(
                tw,
                self.endpoint_rules(&w.ingress, true, AllowAction::Accept, None, false),
            );
            chains.insert(
                fw,
                self.endpoint_rules(&w.egress, false, AllowAction::Accept, None, true),
            );
        }
    }

    /// Host-endpoint dispatch and endpoint chains. `filter` adds the from-host side (ingress),
    /// which mangle does not have (no pre-DNAT policy in the IR).
    fn host_endpoint_chains(
        &self,
        chains: &mut BTreeMap<String, Vec<Rb>>,
        allow: AllowAction,
        filter: bool,
    ) {
        let heps = &self.ir.host_endpoints;
        let wildcard = heps.iter().any(|h| h.interface == "*");
        let ifaces: Vec<String> = heps
            .iter()
            .filter(|h| h.interface != "*")
            .map(|h| h.interface.clone())
            .collect();
        if filter {
            let end = if wildcard {
                vec![rb("", goto(&endpoint_chain("cali-fh-", "*")))]
            } else {
                vec![]
            };
            for (name, rules) in dispatch_tree(
                "cali-from-host-endpoint",
                &ifaces,
                "--in-interface",
                "cali-fh-",
                &end,
            ) {
                chains.insert(name, rules);
            }
        }
        let mut end = Vec::new();
        if wildcard {
            for p in self.prefixes() {
                end.push(
                    rb(format!("--out-interface {p}+"), RETURN)
                        .comment("Skip egress WHEP policy for traffic to local workload"),
                );
            }
            end.push(rb("", goto(&endpoint_chain("cali-th-", "*"))));
        }
        for (name, rules) in dispatch_tree(
            "cali-to-host-endpoint",
            &ifaces,
            "--out-interface",
            "cali-th-",
            &end,
        ) {
            chains.insert(name, rules);
        }
        for h in heps {
            if filter {
                chains.insert(
                    endpoint_chain("cali-fh-", &h.interface),
                    self.endpoint_rules(&h.ingress, true, allow, Some("cali-failsafe-in"), false),
                );
            }
            chains.insert(
                endpoint_chain("cali-th-", &h.interface),
                self.endpoint_rules(&h.egress, false, allow, Some("cali-failsafe-out"), false),
            );
        }
    }

    /// The rule sequence of a normal endpoint chain (§2.2/§2.3 with decision 3).
    fn endpoint_rules(
        &self,
        pol: &EndpointPolicyIr,
        ingress: bool,
        allow: AllowAction,
        failsafe: Option<&str>,
        encap_drops: bool,
    ) -> Vec<Rb> {
        let s = &self.ir.settings;
        let mut v = Vec::new();
        match allow {
            AllowAction::Accept => {
                v.push(rb("-m conntrack --ctstate RELATED,ESTABLISHED", ACCEPT));
            }
            AllowAction::Return => {
                v.push(rb(
                    "-m conntrack --ctstate RELATED,ESTABLISHED",
                    set_mark(MARK_ACCEPT),
                ));
                v.push(rb("-m conntrack --ctstate RELATED,ESTABLISHED", RETURN));
            }
        }
        v.push(rb("-m conntrack --ctstate INVALID", DROP));
        if let Some(f) = failsafe {
            v.push(rb("", jump(f)));
        }
        v.push(rb("", clear_mark(MARK_ACCEPT)));
        if encap_drops {
            if !s.allow_vxlan_from_workloads {
                v.push(
                    rb(
                        format!("-p 17 -m multiport --destination-ports {}", s.vxlan_port),
                        DROP,
                    )
                    .comment("Drop VXLAN encapped packets originating in workloads"),
                );
            }
            if !s.allow_ipip_from_workloads {
                v.push(
                    rb("-p 4", DROP)
                        .comment("Drop IPinIP encapped packets originating in workloads"),
                );
            }
        }
        for tier in &pol.tiers {
            v.push(rb("", clear_mark(MARK_PASS)).comment(&format!("Start of tier {}", tier.name)));
            for id in &tier.policies {
                v.push(rb(mark_clear(MARK_PASS), jump(&policy_chain(id, ingress))));
                v.push(rb(mark_set(MARK_ACCEPT), RETURN).comment("Return if policy accepted"));
            }
            if tier.default_action == TierDefaultAction::Deny {
                v.push(rb(mark_clear(MARK_PASS), DROP).comment(&format!(
                    "End of tier {}. Drop if no policies passed packet",
                    tier.name
                )));
            }
        }
        for p in &pol.profiles {
            v.push(rb("", jump(&profile_chain(p, ingress))));
            v.push(rb(mark_set(MARK_ACCEPT), RETURN).comment("Return if profile accepted"));
        }
        v.push(rb("", DROP).comment("Drop if no profiles matched"));
        v
    }

    fn policy_chains(&mut self, chains: &mut BTreeMap<String, Vec<Rb>>) {
        let ir = self.ir;
        for (id, p) in &ir.policies {
            for ingress in [true, false] {
                let rules = if ingress { &p.inbound } else { &p.outbound };
                let comment = format!(
                    "{} {} {}",
                    id.kind.kind_name(),
                    id.display_name(),
                    if ingress { "ingress" } else { "egress" }
                );
                let prefix = LogContext {
                    tier: &p.tier,
                    kind: id.kind.short_name(),
                    name: &id.name,
                    ns_name: id.display_name(),
                };
                let body = self.rule_list(rules, &prefix, &comment);
                chains.insert(policy_chain(id, ingress), body);
            }
        }
        for (name, p) in &ir.profiles {
            for ingress in [true, false] {
                let rules = if ingress { &p.inbound } else { &p.outbound };
                let comment = format!(
                    "Profile {name} {}",
                    if ingress { "ingress" } else { "egress" }
                );
                let prefix = LogContext {
                    tier: "",
                    kind: "pro",
                    name,
                    ns_name: name.clone(),
                };
                let mut body = self.rule_list(rules, &prefix, &comment);
                if rules.iter().any(|r| r.action == RuleAction::Pass) {
                    // Tiers that passed, or an earlier profile's Pass, leave the pass bit set;
                    // without clearing it this profile's "pass set -> RETURN" would fire even
                    // when its own Pass rule does not match. Felix has that leak; we do not.
                    let mut clear = rb("", clear_mark(MARK_PASS));
                    clear.comments = std::mem::take(&mut body[0].comments);
                    body.insert(0, clear);
                }
                chains.insert(profile_chain(name, ingress), body);
            }
        }
    }

    fn rule_list(
        &mut self,
        rules: &[RuleIr],
        log: &LogContext<'_>,
        chain_comment: &str,
    ) -> Vec<Rb> {
        let mut out: Vec<Rb> = Vec::new();
        for r in rules {
            let m = render_match(r, &mut self.cidr_sets);
            if m.alternatives.is_empty() {
                continue;
            }
            match r.action {
                RuleAction::Allow | RuleAction::Pass => {
                    let bit = if r.action == RuleAction::Allow {
                        MARK_ACCEPT
                    } else {
                        MARK_PASS
                    };
                    for a in m.alternatives {
                        out.push(rb(a, set_mark(bit)));
                    }
                    out.push(rb(mark_set(bit), RETURN));
                }
                RuleAction::Deny => {
                    for a in m.alternatives {
                        out.push(rb(a, DROP));
                    }
                }
                RuleAction::Log => {
                    let prefix = log.prefix(&self.ir.settings.log_prefix);
                    for a in m.alternatives {
                        out.push(rb(
                            a,
                            format!("--jump LOG --log-prefix \"{prefix}: \" --log-level 5"),
                        ));
                    }
                }
            }
        }
        while out.last().is_some_and(|r| r.action == RETURN) {
            out.pop();
        }
        match out.first_mut() {
            Some(first) => first.comments.push(sanitize_comment(chain_comment)),
            None => out.push(Rb::default().comment(chain_comment)),
        }
        out
    }

    fn nat_pools(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        self.ir
            .ip_pools
            .iter()
            .filter(|p| p.nat_outgoing && !p.disabled)
            .map(|p| p.cidr)
    }

    fn ipsets(&self) -> Vec<IpSetSpec> {
        let maxelem = self.ir.settings.max_ipset_size;
        let mut out: BTreeMap<String, IpSetSpec> = BTreeMap::new();
        let nets = |it: &mut dyn Iterator<Item = Ipv4Net>| -> Vec<String> {
            let mut v: BTreeSet<Ipv4Net> = BTreeSet::new();
            for n in it {
                let n = n.trunc();
                if n.prefix_len() == 0 {
                    // hash:net cannot hold /0: split into two /1s as Felix does.
                    v.insert("0.0.0.0/1".parse().expect("literal"));
                    v.insert("128.0.0.0/1".parse().expect("literal"));
                } else {
                    v.insert(n);
                }
            }
            v.into_iter().map(|n| n.to_string()).collect()
        };
        for (id, set) in &self.ir.ipsets {
            let (set_type, members) = match &set.members {
                IpSetMembers::Nets(n) => ("hash:net", nets(&mut n.iter().copied())),
                IpSetMembers::IpPorts(m) => (
                    "hash:ip,port",
                    m.iter()
                        .map(|(ip, proto, port)| format!("{ip},{}:{port}", proto.iptables_name()))
                        .collect(),
                ),
            };
            let name = ipset_name(id);
            out.insert(
                name.clone(),
                IpSetSpec {
                    name,
                    set_type: set_type.into(),
                    members,
                    maxelem,
                },
            );
        }
        for (id, set) in &self.cidr_sets {
            let name = ipset_name(id);
            out.insert(
                name.clone(),
                IpSetSpec {
                    name,
                    set_type: "hash:net".into(),
                    members: nets(&mut set.members.iter().copied()),
                    maxelem,
                },
            );
        }
        if self.nat_pools().next().is_some() {
            for (id, pools) in [
                ("masq-ipam-pools", self.nat_pools().collect::<Vec<_>>()),
                (
                    "all-ipam-pools",
                    self.ir
                        .ip_pools
                        .iter()
                        .filter(|p| !p.disabled)
                        .map(|p| p.cidr)
                        .collect(),
                ),
            ] {
                let name = ipset_name(id);
                out.entry(name.clone()).or_insert(IpSetSpec {
                    name,
                    set_type: "hash:net".into(),
                    members: nets(&mut pools.into_iter()),
                    maxelem,
                });
            }
        }
        out.into_values().collect()
    }
}

struct LogContext<'a> {
    tier: &'a str,
    kind: &'a str,
    name: &'a str,
    ns_name: String,
}

impl LogContext<'_> {
    /// `LogPrefix` with `%t` tier, `%k` kind, `%n` name, `%p` namespace/name, sanitised so it
    /// can be quoted (iptables limits prefixes to 29 characters).
    fn prefix(&self, template: &str) -> String {
        let s = template
            .replace("%t", self.tier)
            .replace("%k", self.kind)
            .replace("%n", self.name)
            .replace("%p", &self.ns_name);
        let mut s: String = s
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || !c.is_ascii() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        s.truncate(27);
        s
    }
}

/// A failsafe chain: `inbound` entries match a remote `net` as source, outbound ones as
/// destination (felix-iptables.md §1.6).
fn failsafe(entries: &[ProtoPort], inbound: bool) -> Vec<Rb> {
    entries
        .iter()
        .map(|e| {
            let net = match e.net {
                Some(n) if inbound => format!(" --source {n}"),
                Some(n) => format!(" --destination {n}"),
                None => String::new(),
            };
            rb(
                format!(
                    "-p {} -m multiport --destination-ports {}{net}",
                    e.protocol.iptables_name(),
                    e.port
                ),
                ACCEPT,
            )
        })
        .collect()
}

/// Felix's shallow dispatch tree (§4.1): one level of children keyed by the character after
/// the names' common prefix. Returns the root chain and any child chains.
fn dispatch_tree(
    root: &str,
    names: &[String],
    flag: &str,
    target_prefix: &str,
    end: &[Rb],
) -> Vec<(String, Vec<Rb>)> {
    let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let common_len = match names.split_first() {
        None => 0,
        Some((first, rest)) => rest.iter().fold(first.len(), |acc, n| {
            first
                .bytes()
                .zip(n.bytes())
                .take(acc)
                .take_while(|(a, b)| a == b)
                .count()
        }),
    };
    let key = |n: &str| -> String {
        let mut cut = (common_len + 1).min(n.len());
        while !n.is_char_boundary(cut) {
            cut += 1;
        }
        n[..cut].to_string()
    };
    let mut buckets: Vec<(String, Vec<&str>)> = Vec::new();
    for n in names {
        let k = key(n);
        match buckets.last_mut() {
            Some((bk, v)) if *bk == k => v.push(n),
            _ => buckets.push((k, vec![n])),
        }
    }
    let mut out = Vec::new();
    let mut root_rules = Vec::new();
    for (k, members) in buckets {
        if members.len() == 1 {
            let n = members[0];
            root_rules.push(rb(
                format!("{flag} {n}"),
                goto(&endpoint_chain(target_prefix, n)),
            ));
        } else {
            let c = &k[common_len..];
            let child = format!("{root}-{c}");
            let mut rules: Vec<Rb> = members
                .iter()
                .map(|n| {
                    rb(
                        format!("{flag} {n}"),
                        goto(&endpoint_chain(target_prefix, n)),
                    )
                })
                .collect();
            rules.extend(end.iter().cloned());
            root_rules.push(rb(format!("{flag} {k}+"), goto(&child)));
            out.push((child, rules));
        }
    }
    root_rules.extend(end.iter().cloned());
    out.push((root.to_string(), root_rules));
    out
}

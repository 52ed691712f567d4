//! Apply benchmark in a fresh network namespace (root).
//!
//! `cargo run --release -p dataplane --example apply_bench -- [RUNS]`
//!
//! Node: 250 workload endpoints; each has one tier with 20 of the node's 1,000 applying
//! policies (3 inbound + 2 outbound rules each, selector ipsets) and a profile; 400 selector
//! ipsets with 50 members each. Measures (median of RUNS):
//! * full apply into a fresh namespace (read back + plan + ipset restore + 4 table restores);
//! * one endpoint relabel = one address moving between two selector sets (ipset-only change);
//! * one policy edit = one rule's port changed in one policy (its chain only).
//!
//! Until policy-ir's scale generator lands, the IR is synthesised here with the same shape.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use dataplane::apply::{apply, Applier};
use dataplane::netns::{unique_prefix, Netns};
use dataplane::plan::compute;
use dataplane::state::read_current;
use dataplane::state::Desired;
use policy_ir::ir::*;

const ENDPOINTS: usize = 250;
const POLICIES: usize = 1000;
const PER_ENDPOINT: usize = 20;
const SETS: usize = 400;
const MEMBERS: usize = 50;

fn rule(i: usize, action: RuleAction, set: usize, port: u16) -> RuleIr {
    RuleIr {
        action,
        protocol: Some(Protocol::Tcp),
        not_protocol: None,
        icmp: None,
        not_icmp: None,
        source: MatchSide {
            ipsets: vec![format!("s:set{set:04}")],
            ..MatchSide::default()
        },
        destination: MatchSide {
            ports: vec![PortRange {
                first: port,
                last: port,
            }],
            ..MatchSide::default()
        },
        origin: RuleOrigin {
            index: i,
            text: format!("rule {i}"),
        },
    }
}

fn pid(p: usize) -> PolicyId {
    PolicyId {
        kind: PolicyKind::NetworkPolicy,
        namespace: Some(format!("ns{:03}", p % 100)),
        name: format!("policy-{p:05}"),
    }
}

fn node_ir(edit_port: u16, moved: bool) -> NodeIr {
    let mut policies = BTreeMap::new();
    for p in 0..POLICIES {
        let port0 = if p == 0 {
            edit_port
        } else {
            8000 + (p % 50) as u16
        };
        policies.insert(
            pid(p),
            PolicyIr {
                id: pid(p),
                tier: "default".into(),
                inbound: vec![
                    rule(0, RuleAction::Allow, p % SETS, port0),
                    rule(1, RuleAction::Deny, (p * 7) % SETS, 22),
                    rule(2, RuleAction::Allow, (p * 13) % SETS, 443),
                ],
                outbound: vec![
                    rule(0, RuleAction::Allow, (p * 3) % SETS, 53),
                    rule(1, RuleAction::Allow, (p * 5) % SETS, 80),
                ],
            },
        );
    }
    let mut ipsets = BTreeMap::new();
    for s in 0..SETS {
        let mut members = BTreeSet::new();
        for m in 0..MEMBERS {
            let n = s * MEMBERS + m;
            members.insert(
                format!("10.{}.{}.{}/32", 64 + n / 65536, (n / 256) % 256, n % 256)
                    .parse()
                    .unwrap(),
            );
        }
        if s == 0 && moved {
            members.insert("10.200.0.1/32".parse().unwrap());
        }
        if s == 1 && !moved {
            members.insert("10.200.0.1/32".parse().unwrap());
        }
        ipsets.insert(
            format!("s:set{s:04}"),
            IpSetIr {
                id: format!("s:set{s:04}"),
                description: format!("set {s}"),
                members: IpSetMembers::Nets(members),
            },
        );
    }
    let mut workloads = Vec::new();
    for e in 0..ENDPOINTS {
        let tier = |off: usize| TierIr {
            name: "default".into(),
            default_action: TierDefaultAction::Deny,
            policies: (0..PER_ENDPOINT)
                .map(|k| pid((e * 4 + k + off) % POLICIES))
                .collect(),
        };
        workloads.push(WorkloadEndpointIr {
            id: EndpointId {
                namespace: Some(format!("ns{:03}", e % 100)),
                name: format!("pod-{e:04}"),
            },
            interface: format!("cali{e:011x}"),
            addrs: vec![format!("10.100.{}.{}/32", e / 256, e % 256)
                .parse()
                .unwrap()],
            admin_up: true,
            ingress: EndpointPolicyIr {
                tiers: vec![tier(0)],
                profiles: vec!["kns.default".into()],
            },
            egress: EndpointPolicyIr {
                tiers: vec![tier(1)],
                profiles: vec!["kns.default".into()],
            },
        });
    }
    NodeIr {
        node: "bench".into(),
        settings: DataplaneSettings::default(),
        workloads,
        host_endpoints: vec![],
        policies,
        profiles: BTreeMap::from([(
            "kns.default".to_string(),
            ProfileIr {
                name: "kns.default".into(),
                inbound: vec![],
                outbound: vec![],
            },
        )]),
        ipsets,
        ip_pools: vec![],
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let t = Instant::now();
    let base = Desired::from_ruleset(&iptables_backend::render(&node_ir(8000, false)));
    let render_ms = t.elapsed().as_secs_f64() * 1e3;
    let relabel = Desired::from_ruleset(&iptables_backend::render(&node_ir(8000, true)));
    let edit = Desired::from_ruleset(&iptables_backend::render(&node_ir(9999, false)));
    let rules: usize = base
        .tables
        .values()
        .map(|t| t.chains.values().map(Vec::len).sum::<usize>() + t.inserts.len() + t.appends.len())
        .sum();
    let chains: usize = base.tables.values().map(|t| t.chains.len()).sum();
    println!(
        "node: {ENDPOINTS} endpoints, {POLICIES} policies, {SETS} sets x {MEMBERS} members; {chains} chains, {rules} rules (render + convert {render_ms:.1} ms)"
    );
    let (mut full, mut full_bytes, mut rl, mut rl_bytes, mut ed, mut ed_bytes) =
        (vec![], 0, vec![], 0, vec![], 0);
    let (mut rl_chains, mut ed_chains) = (0, 0);
    let (mut oneshot, mut read) = (vec![], vec![]);
    for _ in 0..runs {
        let ns = Netns::create(&format!("{}-bench", unique_prefix())).expect("netns");
        let tg = ns.target();
        let mut agent = Applier::new(tg.clone());
        let t = Instant::now();
        let r = agent.apply(&base).expect("full apply");
        full.push(t.elapsed().as_secs_f64() * 1e3);
        full_bytes = r.payload_bytes;

        let t = Instant::now();
        let r = agent.apply(&relabel).expect("relabel");
        rl.push(t.elapsed().as_secs_f64() * 1e3);
        rl_bytes = r.payload_bytes;
        rl_chains = r.plan.tables.iter().map(|t| t.chains.len()).sum();

        let t = Instant::now();
        let r = agent.apply(&edit).expect("edit");
        ed.push(t.elapsed().as_secs_f64() * 1e3);
        ed_bytes = r.payload_bytes;
        ed_chains = r.plan.tables.iter().map(|t| t.chains.len()).sum();

        // The cached belief matches the kernel.
        let t = Instant::now();
        let cur = read_current(&tg).unwrap();
        read.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(compute(&edit, &cur).is_empty());

        // One-shot CLI path (`brindle apply`): read back + plan + write, for the relabel.
        let t = Instant::now();
        apply(&tg, &base).expect("one-shot");
        oneshot.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "full apply (fresh netns):        median {:8.1} ms  payload {full_bytes} bytes",
        median(full)
    );
    println!("relabel (ipset only, cached):    median {:8.1} ms  payload {rl_bytes} bytes, {rl_chains} chains written", median(rl));
    println!("policy edit (cached):            median {:8.1} ms  payload {ed_bytes} bytes, {ed_chains} chains written", median(ed));
    println!(
        "read-back (iptables-save+ipset): median {:8.1} ms",
        median(read)
    );
    println!(
        "one-shot apply of an edit:       median {:8.1} ms  (read-back + plan + write)",
        median(oneshot)
    );
}

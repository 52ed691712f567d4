//! Apply benchmark in fresh network namespaces (root).
//!
//! `cargo run --release -p dataplane --example apply_bench -- [RUNS]`
//!
//! The node is `node-0` of policy-ir's scale generator (`policy_ir::synth`, default parameters:
//! 100,000 endpoints in 1,000 namespaces, 5,000 policies, 400 nodes → 250 endpoints on node-0).
//! Measures, median of RUNS, each run in a fresh namespace:
//! * full apply (read back the empty kernel, plan, ipset restore, one restore per table);
//! * one endpoint relabel: a remote endpoint's `app` label changes, so node-0's selector ipsets
//!   change membership (no chain may be rewritten), applied by a long-running [`Applier`] that
//!   keeps its belief of the kernel state (as Felix does);
//! * one policy edit: rule 0 of one policy applying on node-0 flips Allow ↔ Deny (only that
//!   policy's chain may be rewritten), same applier;
//! * read-back alone, and a one-shot `brindle apply`-style apply (read + plan + write).

use std::collections::BTreeMap;
use std::time::Instant;

use dataplane::apply::{apply, Applier};
use dataplane::netns::{unique_prefix, Netns};
use dataplane::plan::compute;
use dataplane::state::{read_current, Desired};
use policy_ir::ir::RuleAction;
use policy_ir::synth::{generate, Params};
use policy_ir::Model;

fn render(ir: &policy_ir::ir::NodeIr) -> Desired {
    Desired::from_ruleset(&iptables_backend::render(ir))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let p = Params::default();
    let t = Instant::now();
    let mut model = Model::from_resources(generate(&p));
    let ir = model.node_ir("node-0");
    let base = render(&ir);
    println!(
        "cluster: {} endpoints, {} policies, {} nodes; node-0: {} workloads, {} policies, {} ipsets (model + render {:.0} ms)",
        p.endpoints,
        p.policies,
        p.nodes,
        ir.workloads.len(),
        ir.policies.len(),
        ir.ipsets.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let rules: usize = base
        .tables
        .values()
        .map(|t| t.chains.values().map(Vec::len).sum::<usize>() + t.inserts.len() + t.appends.len())
        .sum();
    let chains: usize = base.tables.values().map(|t| t.chains.len()).sum();
    let members: usize = base.ipsets.iter().map(|s| s.members.len()).sum();
    println!(
        "node-0 rules: {chains} chains, {rules} rules, {} ipsets with {members} members",
        base.ipsets.len()
    );

    // A remote endpoint whose relabel changes node-0's ipsets and nothing else.
    let apps = ["web", "api", "db", "cache", "search", "auth"];
    let mut relabel = None;
    let n = model.entities().len();
    'find: for k in 0..200usize {
        let id = (k * 7919 + 13) % n;
        let e = model.entities()[id].clone();
        if e.node.as_deref() == Some("node-0") || e.node.is_none() {
            continue;
        }
        for app in apps {
            let mut labels: BTreeMap<String, String> = e
                .labels
                .iter()
                .filter(|(k, _)| !k.starts_with("projectcalico.org/") && !k.starts_with("pcns."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if labels.get("app").map(String::as_str) == Some(app) {
                continue;
            }
            labels.insert("app".into(), app.into());
            let old = model.entities()[id].labels.clone();
            model.relabel(id, labels);
            let d = render(&model.node_ir("node-0"));
            if d.tables == base.tables && d.ipsets != base.ipsets {
                println!("relabel: endpoint {} app -> {app}", model.entities()[id].id);
                relabel = Some(d);
                break 'find;
            }
            let own: BTreeMap<String, String> = old
                .iter()
                .filter(|(k, _)| !k.starts_with("projectcalico.org/") && !k.starts_with("pcns."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            model.relabel(id, own);
        }
    }
    let relabel = relabel.expect("found a remote endpoint whose relabel changes node-0's sets");

    // One policy edit: flip rule 0 of the first policy with an inbound rule.
    let mut edited_ir = ir.clone();
    let (pid, pol) = edited_ir
        .policies
        .iter_mut()
        .find(|(_, p)| !p.inbound.is_empty())
        .expect("a policy with inbound rules");
    pol.inbound[0].action = match pol.inbound[0].action {
        RuleAction::Allow => RuleAction::Deny,
        _ => RuleAction::Allow,
    };
    println!("policy edit: {pid} inbound rule 0 action flipped");
    let edit = render(&edited_ir);

    let (mut full, mut rl, mut ed, mut read, mut oneshot) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut full_bytes, mut rl_bytes, mut ed_bytes, mut rl_chains, mut ed_chains) =
        (0, 0, 0, 0, 0);
    let mut rl_members = 0;
    let (mut rl_write, mut ed_write) = (vec![], vec![]);
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
        rl_write.push(r.write_micros as f64 / 1e3);
        rl_chains = r.plan.tables.iter().map(|t| t.chains.len()).sum();
        let c = r.plan.counts();
        rl_members = c.set_members_added + c.set_members_removed;

        let t = Instant::now();
        let r = agent.apply(&edit).expect("edit");
        ed.push(t.elapsed().as_secs_f64() * 1e3);
        ed_bytes = r.payload_bytes;
        ed_write.push(r.write_micros as f64 / 1e3);
        ed_chains = r.plan.tables.iter().map(|t| t.chains.len()).sum();

        // The applier's belief matches the kernel.
        let t = Instant::now();
        let cur = read_current(&tg).unwrap();
        read.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(
            compute(&edit, &cur).is_empty(),
            "kernel differs from the applier's belief"
        );

        // One-shot path (`brindle apply`): read back + plan + write (the edit reverted).
        let t = Instant::now();
        apply(&tg, &relabel).expect("one-shot");
        oneshot.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("runs: {runs}");
    println!(
        "full apply (fresh netns):         median {:9.1} ms  payload {full_bytes} bytes",
        median(full)
    );
    println!(
        "relabel (cached applier):         median {:9.1} ms  payload {rl_bytes} bytes, {rl_members} member changes, {rl_chains} chains written",
        median(rl)
    );
    println!(
        "policy edit (cached applier):     median {:9.1} ms  payload {ed_bytes} bytes, {ed_chains} chains written",
        median(ed)
    );
    println!(
        "  of which writes: relabel median {:.1} ms, policy edit median {:.1} ms (the rest is planning against the cached state)",
        median(rl_write),
        median(ed_write)
    );
    println!(
        "read-back (iptables-save + ipset): median {:9.1} ms",
        median(read)
    );
    println!(
        "one-shot apply (read+plan+write):  median {:9.1} ms",
        median(oneshot)
    );
}

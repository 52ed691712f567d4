//! Render benchmark on policy-ir's synthetic cluster (`policy_ir::synth`): build the model,
//! take one node's IR (250 local endpoints) and time `render` on it.
//!
//! `cargo run --release -p iptables-backend --example render_synth [ENDPOINTS POLICIES NODES RUNS]`
//! (default 100000 endpoints, 5000 policies, 400 nodes → 250 endpoints per node, 11 runs).

use std::time::Instant;

use iptables_backend::render;
use policy_ir::synth::{generate, Params};
use policy_ir::Model;

fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let d = Params::default();
    let p = Params {
        endpoints: args.first().copied().unwrap_or(d.endpoints),
        policies: args.get(1).copied().unwrap_or(d.policies),
        nodes: args.get(2).copied().unwrap_or(d.nodes),
        ..d
    };
    let runs = args.get(3).copied().unwrap_or(11);
    let t = Instant::now();
    let model = Model::from_resources(generate(&p));
    let ir = model.node_ir("node-0");
    println!(
        "cluster: {} endpoints, {} policies, {} nodes; model + node_ir in {:.1} s; node-0: {} workloads, {} policies, {} profiles, {} ipsets in its IR",
        p.endpoints,
        p.policies,
        p.nodes,
        t.elapsed().as_secs_f64(),
        ir.workloads.len(),
        ir.policies.len(),
        ir.profiles.len(),
        ir.ipsets.len()
    );
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut rules = 0;
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let c = cpu_ms();
        let rs = render(&ir);
        cpu.push(cpu_ms() - c);
        wall.push(t.elapsed().as_secs_f64() * 1000.0);
        rules = rs.rule_count();
        bytes = rs.combined_restore_payload().len() + rs.ipset_restore_payload().len();
    }
    wall.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cpu.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "render node-0: median wall {:.1} ms, median CPU {:.1} ms over {runs} runs; {rules} rules, {} KiB of payload",
        wall[runs / 2],
        cpu[runs / 2],
        bytes / 1024
    );
}

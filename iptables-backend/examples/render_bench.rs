//! Render benchmark: a synthetic node with `ENDPOINTS` local workloads and `POLICIES` policies
//! (each with selector, port and CIDR rules; each endpoint references 20 policies in two tiers,
//! every policy referenced by some endpoint). Prints the median of several renders, and how the
//! rendered size scales with the node's own endpoints.
//!
//! `cargo run --release -p iptables-backend --example render_bench [ENDPOINTS POLICIES RUNS]`

use std::collections::BTreeSet;
use std::time::Instant;

use iptables_backend::render;
use policy_ir::ir::*;

/// CPU time of this thread in ms (insensitive to other processes on the machine).
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn median_ms(ir: &NodeIr, runs: usize) -> (f64, f64, usize, usize) {
    let mut times = Vec::new();
    let mut render_times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut rules = 0;
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let c = cpu_ms();
        let rs = render(ir);
        cpu_times.push(cpu_ms() - c);
        render_times.push(t.elapsed().as_secs_f64() * 1000.0);
        let payload = rs.combined_restore_payload();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        rules = rs.rule_count();
        bytes = payload.len();
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    render_times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cpu_times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "    (render wall median {:.1} ms, render CPU-time median {:.1} ms)",
        render_times[runs / 2],
        cpu_times[runs / 2]
    );
    (render_times[runs / 2], times[runs / 2], rules, bytes)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let endpoints = args.first().copied().unwrap_or(250);
    let policies = args.get(1).copied().unwrap_or(5000);
    let runs = args.get(2).copied().unwrap_or(11);
    let ir = policy_ir::synth::render_bench::bench_node_ir(endpoints, policies);
    let (render_ms, ms, rules, bytes) = median_ms(&ir, runs);
    println!(
        "{endpoints} endpoints x {policies} policies: render median {render_ms:.1} ms, render+payload text median {ms:.1} ms over {runs} runs ({rules} rules, {} KiB)",
        bytes / 1024
    );
    // Scaling with the node's own endpoints: same policy set, fewer local endpoints (only the
    // policies they reference are in the IR, as policy-ir's node_ir hands them over).
    for eps in [25, 250] {
        let mut small = policy_ir::synth::render_bench::bench_node_ir(eps, policies);
        let used: BTreeSet<PolicyId> = small
            .workloads
            .iter()
            .flat_map(|w| w.ingress.tiers.iter().chain(w.egress.tiers.iter()))
            .flat_map(|t| t.policies.iter().cloned())
            .collect();
        small.policies.retain(|k, _| used.contains(k));
        let (render_ms, _, rules, bytes) = median_ms(&small, runs);
        println!("  {eps} local endpoints ({} referenced policies): render median {render_ms:.1} ms, {rules} rules, {} KiB", small.policies.len(), bytes / 1024);
    }
}

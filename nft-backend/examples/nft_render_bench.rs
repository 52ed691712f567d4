//! Render benchmark for the nft backend: the same synthetic node as
//! `iptables-backend/examples/render_bench.rs` (`ENDPOINTS` local workloads, `POLICIES` policies,
//! 20 policies per endpoint in two tiers; the IR builder below is copied from there). Prints the
//! median time of `nft_backend::render` (which includes iptables-backend's graph build) and of
//! building the `nft -f` payload text.
//!
//! `cargo run --release -p nft-backend --example nft_render_bench [ENDPOINTS POLICIES RUNS]`
//! (with `NFT_PAYLOAD_OUT=<file>` the payload is also written there, e.g. to time `nft -f`).

use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
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
    let (mut ipt, mut nft, mut text) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rules, mut bytes) = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let _ = iptables_backend::render(&ir);
        ipt.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let rs = nft_backend::render(&ir).expect("render");
        nft.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let payload = rs.payload();
        text.push(t.elapsed().as_secs_f64() * 1000.0);
        rules = rs.rule_count();
        bytes = payload.len();
        if let Some(path) = std::env::var_os("NFT_PAYLOAD_OUT") {
            std::fs::write(path, &payload).expect("write payload");
        }
    }
    println!(
        "{endpoints} endpoints x {policies} policies over {runs} runs: nft render median {:.1} ms (of which iptables graph {:.1} ms), payload text {:.1} ms; {rules} rules, {} KiB",
        median(nft),
        median(ipt),
        median(text),
        bytes / 1024
    );
}

//! Time from a new BlockAffinity on n1 (written to the directory datastore) until the route to
//! that block is in n2's and n3's kernels, in the 3-node namespace lab with BIRD and the agent
//! (root). Two paths: BGP (pool Never: agent → BIRD reconfigure → BGP UPDATE → BIRD kernel
//! protocol on the peers) and IPIP (pool Always: each peer's agent reads the datastore and
//! programs `via … dev tunl0`). Agents poll the datastore every 200 ms.
//!
//! cargo run --release -p routing-agent --example bench_converge [-- ROUNDS]
#[path = "../tests/common/mod.rs"]
mod common;
use common::lab::{affinity_yaml, node_yaml, pool_yaml, Lab};
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn run(mode: &str, rounds: usize) -> (f64, f64) {
    let mut lab = Lab::new(&[
        ("n1", "198.18.0.1/24"),
        ("n2", "198.18.0.2/24"),
        ("n3", "198.18.0.3/24"),
    ]);
    for n in ["n1", "n2", "n3"] {
        let ip = &lab.node(n).ip.clone();
        lab.write(
            &format!("node-{n}.yaml"),
            &node_yaml(n, &format!("{ip}/24"), "", ""),
        );
    }
    lab.write("pool.yaml", &pool_yaml(mode));
    lab.write("aff-n2.yaml", &affinity_yaml("n2", "10.244.2.0/26"));
    lab.write("aff-n3.yaml", &affinity_yaml("n3", "10.244.3.0/26"));
    lab.start_agents(true);
    let want_dev = if mode == "Never" {
        "dev eth0 proto bird"
    } else {
        "dev tunl0 proto 80"
    };
    // Warm-up: sessions established and initial routes in place.
    lab.wait_for("initial routes", 60, || {
        lab.routes("n1")
            .contains(&format!("10.244.2.0/26 via 198.18.0.2 {want_dev}"))
            && lab
                .routes("n2")
                .contains(&format!("10.244.3.0/26 via 198.18.0.3 {want_dev}"))
    });
    let mut times = Vec::new();
    for i in 0..rounds {
        let block = format!("10.244.{}.0/26", 100 + i);
        let t0 = Instant::now();
        lab.write(&format!("aff-n1-{i}.yaml"), &affinity_yaml("n1", &block));
        let needle = format!("{block} via 198.18.0.1 {want_dev}");
        let mut done = [false, false];
        while !(done[0] && done[1]) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "timeout\n{}",
                lab.dump()
            );
            for (k, n) in ["n2", "n3"].iter().enumerate() {
                if !done[k] && lab.routes(n).contains(&needle) {
                    done[k] = true;
                }
            }
        }
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let max = times.iter().cloned().fold(0.0, f64::max);
    (median(times), max)
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    for mode in ["Never", "Always"] {
        let (med, max) = run(mode, rounds);
        println!("pool {mode}: new block on n1 → route in n2 and n3 kernels: median {med:.0} ms, max {max:.0} ms over {rounds} rounds");
    }
}

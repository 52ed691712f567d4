//! BIRD config render time and size for a simulated large cluster: full mesh vs route
//! reflectors, 100 and 1,000 nodes. Prints the median of N renders of one node's config.
//!
//! cargo run --release -p routing-agent --example bench_render
use routing_agent::bird::{render, BirdOptions};
use routing_agent::model::*;
use std::time::Instant;

fn cluster(n: usize, rrs: usize) -> Model {
    let mut m = Model::default();
    m.pools.push(Pool::new(
        "pods",
        "10.0.0.0/8".parse().unwrap(),
        IpipMode::Never,
    ));
    for i in 0..n {
        let ip = format!("172.16.{}.{}/16", i / 250, i % 250 + 1);
        let mut node = Node::new(&format!("node{i:04}"), Some(ip.parse().unwrap()));
        if i < rrs {
            node.rr_cluster_id = Some("244.0.0.1".into());
            node.labels.insert("route-reflector".into(), "true".into());
        }
        m.nodes.push(node);
        m.affinities.push(BlockAffinity {
            node: format!("node{i:04}"),
            cidr: format!("10.{}.{}.0/26", i / 256, i % 256).parse().unwrap(),
            state: AffinityState::Confirmed,
        });
    }
    if rrs > 0 {
        m.bgp.node_mesh = false;
        let mut p = BgpPeer::new("rr");
        p.node_selector = Some("all()".into());
        p.peer_selector = Some("route-reflector == 'true'".into());
        m.peers.push(p);
    }
    m
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    println!(
        "| nodes | design | node rendered | sessions | config bytes | median render ms | bird -p |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &n in &[100usize, 1000] {
        for (design, rrs) in [("full mesh", 0usize), ("2 route reflectors", 2)] {
            let m = cluster(n, rrs);
            for (who, node) in [
                ("client", format!("node{:04}", n - 1)),
                ("reflector", "node0000".to_string()),
            ] {
                if rrs == 0 && who == "reflector" {
                    continue;
                }
                let who = if rrs == 0 { "any" } else { who };
                let mut times = Vec::new();
                let mut cfg = String::new();
                let reps = if n >= 1000 && rrs > 0 && who == "reflector" {
                    15
                } else {
                    21
                };
                for _ in 0..reps {
                    let t = Instant::now();
                    cfg = render(&m, &node, &BirdOptions::default()).unwrap();
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
                let sessions = cfg.matches("protocol bgp ").count();
                let t = Instant::now();
                let ok = routing_agent::birdctl::check_config(&cfg).is_ok();
                let check_ms = t.elapsed().as_secs_f64() * 1e3;
                println!(
                    "| {n} | {design} | {who} | {sessions} | {} | {:.2} | {} ({check_ms:.0} ms) |",
                    cfg.len(),
                    median(times),
                    if ok { "ok" } else { "REJECTED" }
                );
            }
        }
    }
}

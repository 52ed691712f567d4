//! Netlink reconcile cost in a fresh namespace (root): program N remote-block routes
//! (`via … dev eth0 proto 80 onlink`), then a no-op pass, then a pass where 10% changed
//! next hop and 10% disappeared. Median of 5 rounds each.
//!
//! cargo run --release -p routing-agent --example bench_reconcile
#[path = "../tests/common/mod.rs"]
mod common;
use common::Netns;
use routing_agent::netlink::Netlink;
use routing_agent::routes::{Owner, Route, RouteKind};
use std::time::Instant;

fn routes(n: usize, shift: usize) -> Vec<Route> {
    (0..n)
        .map(|i| {
            let gw_last = 2 + ((i + shift) % 200);
            Route {
                dst: ipnet::Ipv4Net::new(
                    std::net::Ipv4Addr::from(
                        u32::from(std::net::Ipv4Addr::new(10, 64, 0, 0)) + (i as u32) * 64,
                    ),
                    26,
                )
                .unwrap(),
                kind: RouteKind::Via {
                    gw: format!("198.18.0.{gw_last}").parse().unwrap(),
                    dev: "eth0".into(),
                    onlink: true,
                },
                proto: 80,
                mtu: None,
                owner: Owner::Agent,
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    println!("| routes | first programming ms | no-op pass ms | 10% changed + 10% removed ms |");
    println!("|---|---|---|---|");
    for n in [1000usize, 10000] {
        let mut first = Vec::new();
        let mut noop = Vec::new();
        let mut churn = Vec::new();
        for _ in 0..5 {
            let ns = Netns::new("brtb");
            ns.ip(&[
                "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
            ]);
            ns.ip(&["link", "set", "eth0", "up"]);
            ns.ip(&["link", "set", "peer0", "up"]);
            ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
            let (a, b, c) = ns.run(move || {
                let nl = Netlink::new().unwrap();
                let want = routes(n, 0);
                let t = Instant::now();
                let st = nl.reconcile(&want).unwrap();
                assert_eq!(st.added, n);
                let a = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                let st = nl.reconcile(&want).unwrap();
                assert_eq!(st.added + st.replaced + st.removed, 0);
                let b = t.elapsed().as_secs_f64() * 1e3;
                let mut next = routes(n, 0);
                for (i, r) in next.iter_mut().enumerate() {
                    if i % 10 == 0 {
                        if let RouteKind::Via { gw, .. } = &mut r.kind {
                            *gw = "198.18.0.250".parse().unwrap();
                        }
                    }
                }
                let next: Vec<Route> = next
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| i % 10 != 5)
                    .map(|(_, r)| r)
                    .collect();
                let t = Instant::now();
                let st = nl.reconcile(&next).unwrap();
                assert_eq!(st.replaced, n / 10);
                assert_eq!(st.removed, n / 10);
                let c = t.elapsed().as_secs_f64() * 1e3;
                (a, b, c)
            });
            first.push(a);
            noop.push(b);
            churn.push(c);
        }
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} |",
            median(first),
            median(noop),
            median(churn)
        );
    }
}

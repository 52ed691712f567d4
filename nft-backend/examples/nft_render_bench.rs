//! Render benchmark for the nft backend: the same synthetic node as
//! `iptables-backend/examples/render_bench.rs` (`ENDPOINTS` local workloads, `POLICIES` policies,
//! 20 policies per endpoint in two tiers; the IR builder below is copied from there). Prints the
//! median time of `nft_backend::render` (which includes iptables-backend's graph build) and of
//! building the `nft -f` payload text.
//!
//! `cargo run --release -p nft-backend --example nft_render_bench [ENDPOINTS POLICIES RUNS]`
//! (with `NFT_PAYLOAD_OUT=<file>` the payload is also written there, e.g. to time `nft -f`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Instant;

use ipnet::Ipv4Net;
use policy_ir::ir::*;

fn rule(action: RuleAction, i: usize) -> RuleIr {
    let mut r = RuleIr {
        action,
        protocol: Some(if i.is_multiple_of(2) {
            Protocol::Tcp
        } else {
            Protocol::Udp
        }),
        not_protocol: None,
        icmp: None,
        not_icmp: None,
        source: MatchSide::default(),
        destination: MatchSide::default(),
        origin: RuleOrigin {
            index: 0,
            text: String::new(),
        },
    };
    r.source.ipsets = vec![format!("s:sel{}", i % 200)];
    r.destination.ports = vec![
        PortRange {
            first: 80 + (i % 50) as u16,
            last: 80 + (i % 50) as u16,
        },
        PortRange {
            first: 8000,
            last: 8100,
        },
    ];
    if i.is_multiple_of(3) {
        r.source.nets = vec![
            format!("10.{}.0.0/16", i % 250).parse().unwrap(),
            "192.168.0.0/16".parse().unwrap(),
        ];
    }
    r
}

fn synth(endpoints: usize, policies: usize) -> NodeIr {
    let mut ir = NodeIr {
        node: "bench".into(),
        ..Default::default()
    };
    let ids: Vec<PolicyId> = (0..policies)
        .map(|i| PolicyId {
            kind: PolicyKind::NetworkPolicy,
            namespace: Some(format!("ns{}", i % 40)),
            name: format!("policy-{i}"),
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        ir.policies.insert(
            id.clone(),
            PolicyIr {
                id: id.clone(),
                tier: if i.is_multiple_of(10) {
                    "security".into()
                } else {
                    "default".into()
                },
                inbound: vec![rule(RuleAction::Allow, i), rule(RuleAction::Deny, i + 1)],
                outbound: vec![rule(RuleAction::Allow, i + 2)],
            },
        );
    }
    for s in 0..200 {
        let id = format!("s:sel{s}");
        let members: BTreeSet<Ipv4Net> = (0..50)
            .map(|k| {
                Ipv4Net::new(
                    Ipv4Addr::new(10, (s % 250) as u8, (k / 250) as u8, (k % 250) as u8 + 1),
                    32,
                )
                .unwrap()
            })
            .collect();
        ir.ipsets.insert(
            id.clone(),
            IpSetIr {
                id,
                description: String::new(),
                members: IpSetMembers::Nets(members),
            },
        );
    }
    let per_ep = 20;
    for e in 0..endpoints {
        let pols: Vec<PolicyId> = (0..per_ep)
            .map(|k| ids[(e * per_ep + k) % policies].clone())
            .collect();
        let (sec, def): (Vec<_>, Vec<_>) = pols
            .into_iter()
            .partition(|p| ir.policies[p].tier == "security");
        let mut tiers = Vec::new();
        if !sec.is_empty() {
            tiers.push(TierIr {
                name: "security".into(),
                default_action: TierDefaultAction::Pass,
                policies: sec,
            });
        }
        tiers.push(TierIr {
            name: "default".into(),
            default_action: TierDefaultAction::Deny,
            policies: def,
        });
        let pol = EndpointPolicyIr {
            tiers,
            profiles: vec![format!("kns.ns{}", e % 40)],
        };
        ir.workloads.push(WorkloadEndpointIr {
            id: EndpointId {
                namespace: Some(format!("ns{}", e % 40)),
                name: format!("pod-{e}"),
            },
            interface: format!("cali{:011x}", e.wrapping_mul(2654435761) % 0xff_ffff_ffff),
            addrs: vec![Ipv4Net::new(
                Ipv4Addr::new(10, 200, (e / 250) as u8, (e % 250) as u8 + 1),
                32,
            )
            .unwrap()],
            admin_up: true,
            ingress: pol.clone(),
            egress: pol,
        });
    }
    ir.workloads.sort_by(|a, b| a.interface.cmp(&b.interface));
    for n in 0..40 {
        let name = format!("kns.ns{n}");
        let allow = RuleIr {
            protocol: None,
            source: MatchSide::default(),
            destination: MatchSide::default(),
            ..rule(RuleAction::Allow, 0)
        };
        ir.profiles.insert(
            name.clone(),
            ProfileIr {
                name,
                inbound: vec![allow.clone()],
                outbound: vec![allow],
            },
        );
    }
    ir
}

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
    let ir = synth(endpoints, policies);
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

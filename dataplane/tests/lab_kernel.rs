//! Real-kernel tests of the lab testbed (root; namespaces only, removed at the end).

use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane::lab::probe::KernelProbe;
use dataplane::lab::{Lab, LabSpec, LabWorkload, ProbeProto};
use dataplane::netns::Target;

const T: Duration = Duration::from_millis(600);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn spec() -> LabSpec {
    let w = |key: &str, node: &str, iface: &str, a: &str| LabWorkload {
        key: key.into(),
        node: node.into(),
        interface: iface.into(),
        addrs: vec![ip(a)],
    };
    LabSpec {
        nodes: vec!["node-a".into(), "node-b".into()],
        workloads: vec![
            w("ns/a1", "node-a", "caliaaaa1", "10.65.0.1"),
            w("ns/a2", "node-a", "caliaaaa2", "10.65.0.2"),
            w("ns/b1", "node-b", "calibbbb1", "10.65.1.1"),
        ],
        outside: vec![ip("203.0.113.7")],
    }
}

fn probe(src: &str, dst: &str, proto: ProbeProto, port: u16) -> KernelProbe {
    KernelProbe {
        src: ip(src),
        dst: ip(dst),
        proto,
        port,
    }
}

fn lab_namespaces(prefix: &str) -> Vec<String> {
    let out = Target::Current.run("ip", &["netns", "list"], None).unwrap();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(String::from)
        .collect()
}

#[test]
fn every_protocol_flows_without_rules_and_a_hand_written_drop_changes_the_verdict() {
    let mut lab = Lab::build(&spec()).expect("build lab");
    let prefix = lab.prefix().to_string();
    assert_eq!(lab_namespaces(&prefix).len(), 1 + 2 + 3 + 1);

    let mut probes = Vec::new();
    let hosts = ["10.65.0.1", "10.65.0.2", "10.65.1.1", "203.0.113.7"];
    for s in hosts {
        for d in hosts {
            if s != d {
                probes.push(probe(s, d, ProbeProto::Tcp, 3306));
                probes.push(probe(s, d, ProbeProto::Tcp, 80));
                probes.push(probe(s, d, ProbeProto::Udp, 53));
                probes.push(probe(s, d, ProbeProto::Icmp, 0));
                probes.push(probe(s, d, ProbeProto::Sctp, 9));
            }
        }
    }
    let open = lab.run_probes(&probes, T).expect("probes");
    for (p, o) in probes.iter().zip(&open) {
        assert!(o.allowed, "{p:?} should pass with no rules: {o:?}");
    }

    // An admin's DROP on node-a: TCP 3306 and SCTP 9 towards a1 (forwarded traffic only), and
    // conntrack-INVALID drops, which an SCTP INIT with a wrong CRC32c would meet.
    let node_a = lab.node_target("node-a").unwrap();
    node_a
        .run(
            "iptables-restore",
            &["--noflush", "--wait"],
            Some(
                "*filter\n\
                 -A FORWARD -m conntrack --ctstate INVALID -j DROP\n\
                 -A FORWARD -d 10.65.0.1/32 -p tcp --dport 3306 -j DROP\n\
                 -A FORWARD -d 10.65.0.1/32 -p sctp --dport 9 -j DROP\n\
                 COMMIT\n",
            ),
        )
        .expect("hand-written rule");
    lab.flush_conntrack().unwrap();
    let after = lab.run_probes(&probes, T).expect("probes");
    for (p, o) in probes.iter().zip(&after) {
        let blocked = p.dst == ip("10.65.0.1")
            && ((p.proto == ProbeProto::Tcp && p.port == 3306)
                || (p.proto == ProbeProto::Sctp && p.port == 9));
        assert_eq!(o.allowed, !blocked, "{p:?}: {o:?}");
    }

    drop(lab);
    assert!(lab_namespaces(&prefix).is_empty(), "namespaces left behind");
}

#[test]
fn a_build_error_removes_what_was_built() {
    let mut s = spec();
    s.workloads[1].addrs = vec![ip("10.65.0.1")]; // duplicate address: rejected mid-build
    let prefix = dataplane::netns::unique_prefix();
    let err = Lab::build_named(&s, &prefix).unwrap_err();
    assert!(err.to_string().contains("10.65.0.1"), "{err}");
    assert!(lab_namespaces(&prefix).is_empty(), "left behind");
}

//! The oracle's host rules (ARCHITECTURE.md, policy-ir): failsafe ports on host endpoints,
//! host -> local workload traffic, and workload -> own host traffic ending in
//! `DefaultEndpointToHostAction`; with FelixConfiguration overrides.

use policy_ir::oracle::{DecidedBy, Probe, ProbeVerdict, Verdict};
use policy_ir::Model;

/// Two nodes, each with one workload (`open` profile: allow all) and one host endpoint on eth0
/// labelled `role: host`. `host_policy` is the GlobalNetworkPolicy for `role == 'host'`
/// (rules), `extra` more documents (FelixConfiguration).
fn world(host_policy: &str, extra: &str) -> Model {
    let mut y = String::from(
        "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: open}\nspec:\n  ingress: [{action: Allow}]\n  egress: [{action: Allow}]\n",
    );
    for (n, i) in [("n1", 1), ("n2", 2)] {
        y.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  name: w{i}\n  namespace: default\n  labels: {{app: w{i}}}\nspec:\n  node: {n}\n  interfaceName: caliw{i}\n  ipNetworks: [10.0.{i}.1/32]\n  profiles: [open]\n"
        ));
        y.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: {n}-eth0\n  labels: {{role: host}}\nspec:\n  node: {n}\n  interfaceName: eth0\n  expectedIPs: [192.168.1.{i}]\n"
        ));
    }
    y.push_str(&format!(
        "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: host}}\nspec:\n  selector: role == 'host'\n  types: [Ingress, Egress]\n{host_policy}"
    ));
    y.push_str(extra);
    Model::load_str("hosts.yaml", &y).unwrap_or_else(|e| panic!("{e}\n{y}"))
}

const DENY_ALL: &str = "  ingress: [{action: Deny}]\n  egress: [{action: Deny}]\n";
const ALLOW_ALL: &str = "  ingress: [{action: Allow}]\n  egress: [{action: Allow}]\n";

fn felix(name: &str, spec: &str) -> String {
    format!("---\napiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn probe(m: &Model, from: &str, to: &str, proto: &str, port: Option<u16>) -> ProbeVerdict {
    let p = Probe {
        from: from.into(),
        to: to.into(),
        protocol: policy_ir::oracle::parse_probe_protocol(proto).unwrap(),
        port,
    };
    m.verdict(&p).unwrap()
}

const OUTSIDE: &str = "198.51.100.7";
const H1: &str = "192.168.1.1";
const H2: &str = "192.168.1.2";

#[test]
fn default_failsafe_ports_open_whatever_the_policy() {
    let m = world(DENY_ALL, "");
    // Inbound: tcp/22 to the host endpoint's address, from anywhere.
    let v = probe(&m, OUTSIDE, H1, "tcp", Some(22));
    assert_eq!(v.verdict, Verdict::Allow, "{v:#?}");
    assert_eq!(v.ingress.decided_by, DecidedBy::Failsafe);
    assert_eq!(
        v.ingress.rule.as_deref(),
        Some("failsafe inbound port tcp:22")
    );
    assert!(v.ingress.reason.contains("failsafe inbound port tcp:22"));
    for (proto, port) in [("udp", 68), ("tcp", 179), ("tcp", 6443)] {
        let v = probe(&m, OUTSIDE, H1, proto, Some(port));
        assert_eq!(v.verdict, Verdict::Allow, "{proto}/{port}: {v:#?}");
    }
    // Not failsafe: the policy's Deny decides.
    for (proto, port) in [("tcp", 23), ("udp", 22), ("udp", 53)] {
        let v = probe(&m, OUTSIDE, H1, proto, Some(port));
        assert_eq!(v.verdict, Verdict::Deny, "{proto}/{port}: {v:#?}");
        assert_eq!(v.ingress.decided_by, DecidedBy::Policy);
    }
    assert_eq!(probe(&m, OUTSIDE, H1, "icmp", None).verdict, Verdict::Deny);
    // Outbound: udp/53 from the host endpoint's address, to anywhere.
    let v = probe(&m, H1, OUTSIDE, "udp", Some(53));
    assert_eq!(v.verdict, Verdict::Allow, "{v:#?}");
    assert_eq!(v.egress.decided_by, DecidedBy::Failsafe);
    assert_eq!(
        v.egress.rule.as_deref(),
        Some("failsafe outbound port udp:53")
    );
    // tcp/22 is inbound-only.
    let v = probe(&m, H1, OUTSIDE, "tcp", Some(22));
    assert_eq!(v.verdict, Verdict::Deny, "{v:#?}");
    assert_eq!(v.egress.decided_by, DecidedBy::Policy);
    // Host to a host on another node: each side's own failsafe list.
    let v = probe(&m, H1, H2, "tcp", Some(179));
    assert_eq!(v.verdict, Verdict::Allow, "{v:#?}");
    assert_eq!(v.egress.decided_by, DecidedBy::Failsafe);
    assert_eq!(v.ingress.decided_by, DecidedBy::Failsafe);
    let v = probe(&m, H1, H2, "udp", Some(53));
    assert_eq!(v.egress.decided_by, DecidedBy::Failsafe);
    assert_eq!(v.ingress.decided_by, DecidedBy::Policy);
    assert_eq!(v.verdict, Verdict::Deny);
    // A remote workload to the host: the workload's egress, then the failsafe.
    let v = probe(&m, "default/w2", H1, "tcp", Some(22));
    assert_eq!(v.verdict, Verdict::Allow, "{v:#?}");
    assert_eq!(v.ingress.decided_by, DecidedBy::Failsafe);
    // Failsafes are about host endpoints only: a workload's ingress is its policy.
    let m = world(
        DENY_ALL,
        &felix("default", "  failsafeInboundHostPorts: []\n"),
    );
    let v = probe(&m, OUTSIDE, "default/w1", "tcp", Some(22));
    assert_eq!(v.ingress.decided_by, DecidedBy::Profile);
}

#[test]
fn felix_configuration_overrides_failsafe_ports() {
    let fc = felix(
        "default",
        "  failsafeInboundHostPorts: [{protocol: TCP, port: 2222}]\n  failsafeOutboundHostPorts: [{protocol: UDP, port: 5353}]\n",
    );
    let m = world(DENY_ALL, &fc);
    let v = probe(&m, OUTSIDE, H1, "tcp", Some(22));
    assert_eq!(v.verdict, Verdict::Deny, "{v:#?}");
    let v = probe(&m, OUTSIDE, H1, "tcp", Some(2222));
    assert_eq!(v.verdict, Verdict::Allow, "{v:#?}");
    assert_eq!(
        v.ingress.rule.as_deref(),
        Some("failsafe inbound port tcp:2222")
    );
    assert_eq!(
        probe(&m, H1, OUTSIDE, "udp", Some(53)).verdict,
        Verdict::Deny
    );
    let v = probe(&m, H1, OUTSIDE, "udp", Some(5353));
    assert_eq!(v.verdict, Verdict::Allow, "{v:#?}");
    assert_eq!(
        v.egress.rule.as_deref(),
        Some("failsafe outbound port udp:5353")
    );
    // A per-node FelixConfiguration (`node.n2`) overrides `default` for that node only:
    // an empty list disables the failsafes there.
    let fc2 = format!(
        "{fc}{}",
        felix(
            "node.n2",
            "  failsafeInboundHostPorts: []\n  failsafeOutboundHostPorts: []\n"
        )
    );
    let m = world(DENY_ALL, &fc2);
    assert_eq!(
        probe(&m, OUTSIDE, H1, "tcp", Some(2222)).verdict,
        Verdict::Allow
    );
    let v = probe(&m, OUTSIDE, H2, "tcp", Some(2222));
    assert_eq!(v.verdict, Verdict::Deny, "{v:#?}");
    assert_eq!(v.ingress.decided_by, DecidedBy::Policy);
    assert_eq!(
        probe(&m, H2, OUTSIDE, "udp", Some(5353)).verdict,
        Verdict::Deny
    );
}

#[test]
fn host_to_local_workload_is_not_policed() {
    // The host endpoint denies all egress and the workload denies all ingress (no profile).
    let wl_deny = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: wl-deny}\nspec:\n  selector: has(app)\n  types: [Ingress]\n  ingress: [{action: Deny}]\n";
    let m = world(DENY_ALL, wl_deny);
    for (proto, port) in [("tcp", Some(80)), ("udp", Some(5000)), ("icmp", None)] {
        let v = probe(&m, H1, "default/w1", proto, port);
        assert_eq!(v.verdict, Verdict::Allow, "{proto}: {v:#?}");
        assert_eq!(v.egress.decided_by, DecidedBy::HostToLocalWorkload);
        assert_eq!(v.ingress.decided_by, DecidedBy::HostToLocalWorkload);
        assert_eq!(v.ingress.endpoint.as_deref(), Some("default/w1"));
    }
    // A workload on another node: host egress policy, then the workload's ingress policy.
    let v = probe(&m, H1, "default/w2", "tcp", Some(80));
    assert_eq!(v.verdict, Verdict::Deny, "{v:#?}");
    assert_eq!(v.egress.decided_by, DecidedBy::Policy);
    assert_eq!(v.ingress.decided_by, DecidedBy::Policy);
    // A host with allow-all egress to a remote workload that denies: the workload decides.
    let m = world(ALLOW_ALL, wl_deny);
    let v = probe(&m, H1, "default/w2", "tcp", Some(80));
    assert_eq!(v.verdict, Verdict::Deny, "{v:#?}");
    assert_eq!(v.egress.verdict, Verdict::Allow);
}

#[test]
fn workload_to_own_host_ends_in_default_endpoint_to_host_action() {
    // Default Drop, even with a host endpoint that allows all ingress and on a failsafe port.
    for host in [ALLOW_ALL, DENY_ALL] {
        let m = world(host, "");
        for (proto, port) in [("tcp", Some(80)), ("tcp", Some(22)), ("icmp", None)] {
            let v = probe(&m, "default/w1", H1, proto, port);
            assert_eq!(v.verdict, Verdict::Deny, "{proto}: {v:#?}");
            assert_eq!(v.egress.verdict, Verdict::Allow);
            assert_eq!(v.ingress.decided_by, DecidedBy::DefaultEndpointToHostAction);
            assert_eq!(
                v.ingress.rule.as_deref(),
                Some("DefaultEndpointToHostAction Drop")
            );
            assert!(v
                .ingress
                .reason
                .contains("DefaultEndpointToHostAction Drop"));
        }
        // The same workload to the other node's host: normal host endpoint policy.
        let v = probe(&m, "default/w1", H2, "tcp", Some(80));
        assert_eq!(v.ingress.decided_by, DecidedBy::Policy, "{v:#?}");
        assert_eq!(v.verdict == Verdict::Allow, host == ALLOW_ALL);
    }
    // Accept and Return allow whatever the host endpoint's ingress policy says (Return hands
    // the packet back to the host's own INPUT chain, past Calico's host endpoint chains).
    for action in ["Accept", "Return"] {
        let m = world(
            DENY_ALL,
            &felix(
                "default",
                &format!("  defaultEndpointToHostAction: {action}\n"),
            ),
        );
        let v = probe(&m, "default/w1", H1, "tcp", Some(80));
        assert_eq!(v.verdict, Verdict::Allow, "{action}: {v:#?}");
        assert_eq!(v.ingress.decided_by, DecidedBy::DefaultEndpointToHostAction);
        assert_eq!(
            v.ingress.rule,
            Some(format!("DefaultEndpointToHostAction {action}"))
        );
        // Other nodes keep their own setting: a per-node override.
        let m2 = world(
            DENY_ALL,
            &format!(
                "{}{}",
                felix(
                    "default",
                    &format!("  defaultEndpointToHostAction: {action}\n")
                ),
                felix("node.n2", "  defaultEndpointToHostAction: Drop\n")
            ),
        );
        assert_eq!(
            probe(&m2, "default/w1", H1, "tcp", Some(80)).verdict,
            Verdict::Allow
        );
        let v = probe(&m2, "default/w2", H2, "tcp", Some(80));
        assert_eq!(v.verdict, Verdict::Deny, "{v:#?}");
        assert_eq!(
            v.ingress.rule.as_deref(),
            Some("DefaultEndpointToHostAction Drop")
        );
    }
    // The workload's egress policy still runs first.
    let egress_deny = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: wl-egress}\nspec:\n  selector: app == 'w1'\n  types: [Egress]\n  egress: [{action: Deny, protocol: TCP}, {action: Allow}]\n";
    let m = world(
        ALLOW_ALL,
        &format!(
            "{egress_deny}{}",
            felix("default", "  defaultEndpointToHostAction: Accept\n")
        ),
    );
    let v = probe(&m, "default/w1", H1, "tcp", Some(80));
    assert_eq!(v.verdict, Verdict::Deny, "{v:#?}");
    assert_eq!(v.egress.decided_by, DecidedBy::Policy);
    assert_eq!(
        probe(&m, "default/w1", H1, "udp", Some(80)).verdict,
        Verdict::Allow
    );
}

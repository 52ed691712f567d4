//! The oracle on cases written from the spec (policy-semantics.md), the Kubernetes
//! NetworkPolicy documentation and Calico's policy documentation.

use policy_ir::ir::Protocol;
use policy_ir::oracle::{DecidedBy, Probe, Verdict};
use policy_ir::Model;

fn pod(ns: &str, name: &str, ip: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\nspec:\n  nodeName: n1\n  containers:\n  - name: c\n    ports:\n    - {{name: http, containerPort: 8080}}\n    - {{name: dns, containerPort: 53, protocol: UDP}}\nstatus:\n  podIP: {ip}\n---\n"
    )
}

fn ns(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\n---\n"
    )
}

fn wep(ns: &str, name: &str, ip: &str, labels: &str, profiles: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\nspec:\n  node: n1\n  interfaceName: cali{name}\n  ipNetworks: [{ip}/32]\n  profiles: [{profiles}]\n---\n"
    )
}

const ALLOW_PROFILE: &str = "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: open}\nspec:\n  ingress: [{action: Allow}]\n  egress: [{action: Allow}]\n---\n";

fn proto(p: &str) -> Protocol {
    policy_ir::oracle::parse_probe_protocol(p).unwrap()
}

/// Runs probes `(from, to, protocol, port, allowed)`.
fn check(yaml: &str, probes: &[(&str, &str, &str, Option<u16>, bool)]) -> Model {
    let m = Model::load_str("case.yaml", yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    for (from, to, p, port, want) in probes {
        let probe = Probe {
            from: from.to_string(),
            to: to.to_string(),
            protocol: proto(p),
            port: *port,
        };
        let v = m.verdict(&probe).unwrap();
        assert_eq!(
            v.verdict == Verdict::Allow,
            *want,
            "{from} -> {to} {p} {port:?}: got {v:#?}"
        );
    }
    m
}

const T: bool = true;
const F: bool = false;

#[test]
fn k8s_no_policy_allows_everything() {
    let y = format!(
        "{}{}{}",
        ns("a", ""),
        pod("a", "x", "10.0.0.1", "app: x"),
        pod("b", "z", "10.0.0.3", "app: z")
    );
    check(
        &y,
        &[
            ("a/x", "b/z", "tcp", Some(80), T),
            ("b/z", "a/x", "udp", Some(53), T),
            ("8.8.8.8", "a/x", "tcp", Some(1), T),
        ],
    );
}

#[test]
fn k8s_default_deny_ingress() {
    let y = format!(
        "{}{}{}{}",
        pod("a", "x", "10.0.0.1", "app: x"),
        pod("a", "y", "10.0.0.2", "app: y"),
        pod("b", "z", "10.0.0.3", "app: z"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny, namespace: a}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n"
    );
    let m = check(
        &y,
        &[
            ("b/z", "a/x", "tcp", Some(80), F),
            ("a/y", "a/x", "tcp", Some(80), F),
            ("a/x", "b/z", "tcp", Some(80), T),
            ("8.8.8.8", "a/x", "tcp", Some(80), F),
        ],
    );
    let v = m
        .verdict(&Probe {
            from: "b/z".into(),
            to: "a/x".into(),
            protocol: Protocol::Tcp,
            port: Some(80),
        })
        .unwrap();
    assert_eq!(v.ingress.decided_by, DecidedBy::EndOfTier);
    assert_eq!(v.egress.decided_by, DecidedBy::Profile);
    assert_eq!(v.egress.profile.as_deref(), Some("kns.b"));
}

#[test]
fn k8s_allow_from_namespace_and_peer_forms() {
    let y = format!(
        "{}{}{}{}{}{}{}",
        ns("fe", "team: fe"),
        ns("db", "team: db"),
        pod("fe", "web", "10.0.1.1", "role: web"),
        pod("fe", "cron", "10.0.1.2", "role: cron"),
        pod("db", "pg", "10.0.2.1", "app: db"),
        pod("other", "o", "10.0.3.1", "role: web"),
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-and, namespace: db}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: fe}}
      podSelector: {matchLabels: {role: web}}
    ports: [{port: 5432}]
  - from:
    - namespaceSelector: {matchLabels: {team: fe}}
    - podSelector: {matchLabels: {role: web}}
    ports: [{port: 6000}]
"#
    );
    check(
        &y,
        &[
            // One peer with both selectors: AND.
            ("fe/web", "db/pg", "tcp", Some(5432), T),
            ("fe/cron", "db/pg", "tcp", Some(5432), F),
            ("other/o", "db/pg", "tcp", Some(5432), F),
            // Two peers: OR (any pod of fe, or role=web pods of the policy's own namespace).
            ("fe/cron", "db/pg", "tcp", Some(6000), T),
            ("other/o", "db/pg", "tcp", Some(6000), F),
            // A port without protocol is TCP.
            ("fe/web", "db/pg", "udp", Some(5432), F),
            ("fe/web", "db/pg", "tcp", Some(5433), F),
        ],
    );
}

#[test]
fn k8s_namespace_selector_empty_means_all_and_metadata_name() {
    let y = format!(
        "{}{}{}{}",
        pod("a", "x", "10.0.0.1", "app: x"),
        pod("b", "z", "10.0.0.3", "app: z"),
        pod("c", "w", "10.0.0.4", "app: w"),
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: a}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: b}}}]
    ports: [{protocol: UDP, port: 53}]
  - from: [{namespaceSelector: {}}]
    ports: [{protocol: TCP, port: 80}]
"#
    );
    check(
        &y,
        &[
            ("b/z", "a/x", "udp", Some(53), T),
            ("c/w", "a/x", "udp", Some(53), F),
            ("c/w", "a/x", "tcp", Some(80), T),
            // namespaceSelector matches pods only, not outside addresses.
            ("1.2.3.4", "a/x", "tcp", Some(80), F),
        ],
    );
}

#[test]
fn k8s_egress_ipblock_except_and_deny() {
    let y = format!(
        "{}{}{}",
        pod("a", "x", "10.0.0.1", "app: x"),
        pod("a", "y", "10.0.0.2", "app: y"),
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress, namespace: a}
spec:
  podSelector: {matchLabels: {app: x}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 172.16.5.9/12, except: [172.17.0.0/16]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: a}
spec:
  podSelector: {matchLabels: {app: y}}
  policyTypes: [Egress]
"#
    );
    check(
        &y,
        &[
            ("a/x", "172.16.1.1", "tcp", Some(443), T),
            ("a/x", "172.20.0.1", "udp", Some(53), T),
            ("a/x", "172.17.3.3", "tcp", Some(443), F),
            ("a/x", "192.168.0.1", "tcp", Some(443), F),
            // Egress isolated, not ingress.
            ("a/y", "a/x", "tcp", Some(80), F),
            ("a/x", "a/y", "tcp", Some(80), F),
            ("8.8.8.8", "a/y", "tcp", Some(80), T),
        ],
    );
}

#[test]
fn k8s_named_ports_and_end_port() {
    let y = format!(
        "{}{}{}",
        pod("a", "srv", "10.0.0.1", "app: srv"),
        pod("a", "cli", "10.0.0.2", "app: cli"),
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: named, namespace: a}
spec:
  podSelector: {matchLabels: {app: srv}}
  ingress:
  - ports: [{port: http}, {protocol: UDP, port: dns}, {port: 9000, endPort: 9010}]
"#
    );
    check(
        &y,
        &[
            ("a/cli", "a/srv", "tcp", Some(8080), T),
            ("a/cli", "a/srv", "tcp", Some(80), F),
            ("a/cli", "a/srv", "udp", Some(53), T),
            ("a/cli", "a/srv", "tcp", Some(53), F),
            ("a/cli", "a/srv", "tcp", Some(9005), T),
            ("a/cli", "a/srv", "tcp", Some(9011), F),
            ("a/cli", "a/srv", "icmp", None, F),
        ],
    );
}

#[test]
fn k8s_policies_union() {
    let y = format!(
        "{}{}{}",
        pod("a", "srv", "10.0.0.1", "app: srv"),
        pod("a", "cli", "10.0.0.2", "app: cli"),
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: one, namespace: a}
spec:
  podSelector: {matchLabels: {app: srv}}
  ingress: [{ports: [{port: 80}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: two, namespace: a}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [srv, other]}]}
  ingress: [{ports: [{port: 443}]}]
"#
    );
    check(
        &y,
        &[
            ("a/cli", "a/srv", "tcp", Some(80), T),
            ("a/cli", "a/srv", "tcp", Some(443), T),
            ("a/cli", "a/srv", "tcp", Some(22), F),
        ],
    );
}

#[test]
fn calico_tiers_pass_and_default_actions() {
    let y = format!(
        "{ALLOW_PROFILE}{}{}{}{}",
        wep("a", "web", "10.0.0.1", "app: web", "open"),
        wep("a", "db", "10.0.0.2", "app: db", "open"),
        wep("a", "other", "10.0.0.3", "app: other", "open"),
        r#"apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.gate}
spec:
  tier: security
  selector: app == 'db'
  ingress:
  - action: Pass
    source: {selector: app == 'web'}
  - action: Log
  - action: Deny
    protocol: UDP
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-web-db}
spec:
  selector: app == 'db'
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: ["5000:5100"]}
"#
    );
    let m = check(
        &y,
        &[
            // Passed by the security tier, allowed by the default tier.
            ("a/web", "a/db", "tcp", Some(5050), T),
            // Passed, then the default tier does not allow: end of tier deny.
            ("a/web", "a/db", "tcp", Some(22), F),
            // Not passed; UDP denied in tier security.
            ("a/other", "a/db", "udp", Some(5050), F),
            // Not passed, nothing matched in tier security (default action Deny).
            ("a/other", "a/db", "tcp", Some(5050), F),
            // No policy applies to web: profile.
            ("a/db", "a/web", "tcp", Some(1), T),
        ],
    );
    let v = m
        .verdict(&Probe {
            from: "a/other".into(),
            to: "a/db".into(),
            protocol: Protocol::Tcp,
            port: Some(5050),
        })
        .unwrap();
    assert_eq!(v.ingress.decided_by, DecidedBy::EndOfTier);
    assert_eq!(v.ingress.tier.as_deref(), Some("security"));
    let v = m
        .verdict(&Probe {
            from: "a/web".into(),
            to: "a/db".into(),
            protocol: Protocol::Tcp,
            port: Some(5050),
        })
        .unwrap();
    assert_eq!(v.ingress.tier.as_deref(), Some("default"));
    assert_eq!(
        v.ingress.policy.as_deref(),
        Some("GlobalNetworkPolicy allow-web-db")
    );
}

#[test]
fn calico_tier_default_pass_reaches_profiles() {
    let y = format!(
        "{ALLOW_PROFILE}{}{}{}",
        wep("a", "x", "10.0.0.1", "app: x", "open"),
        wep("a", "y", "10.0.0.2", "app: y", ""),
        r#"apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: t}
spec: {order: 10, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: t.p}
spec:
  tier: t
  selector: all()
  ingress: [{action: Deny, protocol: UDP}]
  egress: [{action: Deny, protocol: UDP}]
"#
    );
    check(
        &y,
        &[
            ("a/y", "a/x", "udp", Some(1), F),
            // Egress of y: tier passes, y has no profile: denied.
            ("a/y", "a/x", "tcp", Some(1), F),
            // x -> outside: passes to the open profile.
            ("a/x", "9.9.9.9", "tcp", Some(1), T),
        ],
    );
}

#[test]
fn calico_order_ties_break_by_name_and_missing_order_is_last() {
    let y = format!(
        "{ALLOW_PROFILE}{}{}{}",
        wep("a", "x", "10.0.0.1", "app: x", "open"),
        wep("a", "y", "10.0.0.2", "app: y", "open"),
        r#"apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: b-allow}
spec:
  order: 10
  selector: app == 'x'
  ingress: [{action: Allow, protocol: TCP}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: a-deny}
spec:
  order: 10
  selector: app == 'x'
  ingress: [{action: Deny, protocol: TCP, destination: {ports: [22]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: 0-no-order}
spec:
  selector: app == 'x'
  ingress: [{action: Deny}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: z-first}
spec:
  order: 1.5
  selector: app == 'x'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [2222]}}]
"#
    );
    check(
        &y,
        &[
            ("a/y", "a/x", "tcp", Some(22), F),
            ("a/y", "a/x", "tcp", Some(80), T),
            ("a/y", "a/x", "tcp", Some(2222), T),
            // UDP: only the order-less deny matches.
            ("a/y", "a/x", "udp", Some(80), F),
        ],
    );
}

#[test]
fn calico_types_default_from_rules() {
    let y = format!(
        "{ALLOW_PROFILE}{}{}{}",
        wep("a", "x", "10.0.0.1", "app: x", "open"),
        wep("a", "y", "10.0.0.2", "app: y", "open"),
        r#"apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: egress-only}
spec:
  selector: app == 'x'
  egress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: empty}
spec:
  selector: app == 'y'
"#
    );
    check(
        &y,
        &[
            // x egress-only: egress isolated to TCP 80; ingress goes to the profile.
            ("a/x", "a/y", "tcp", Some(80), F), // y: policy "empty" defaults to Ingress: end of tier
            ("a/x", "9.9.9.9", "tcp", Some(80), T),
            ("a/x", "9.9.9.9", "tcp", Some(81), F),
            ("9.9.9.9", "a/x", "tcp", Some(81), T),
            ("a/y", "9.9.9.9", "udp", Some(81), T),
        ],
    );
}

#[test]
fn calico_selector_edge_cases_and_network_sets() {
    let y = format!(
        "{ALLOW_PROFILE}{}{}{}{}",
        wep("a", "x", "10.0.0.1", "app: x", "open"),
        wep("a", "y", "10.0.0.2", "app: y, env: prod", "open"),
        wep("a", "z", "10.0.0.3", "app: z", "open"),
        r#"apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: partners, labels: {kind: partner}}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: p}
spec:
  selector: app == 'x'
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [1]}, source: {selector: "!has(env)"}}
  - {action: Allow, protocol: TCP, destination: {ports: [2]}, source: {notSelector: "has(env)"}}
  - {action: Allow, protocol: TCP, destination: {ports: [3]}, source: {selector: "env != 'prod'"}}
  - {action: Allow, protocol: TCP, destination: {ports: [4]}, source: {selector: "kind == 'partner'"}}
  - {action: Allow, protocol: TCP, destination: {ports: [5]}, source: {nets: [10.0.0.0/24], notNets: [10.0.0.3/32]}}
"#
    );
    check(
        &y,
        &[
            ("a/z", "a/x", "tcp", Some(1), T),
            ("a/y", "a/x", "tcp", Some(1), F),
            ("7.7.7.7", "a/x", "tcp", Some(1), F), // !has(l) only matches endpoints
            ("7.7.7.7", "a/x", "tcp", Some(2), T), // notSelector admits non-Calico addresses
            ("a/y", "a/x", "tcp", Some(2), F),
            ("a/z", "a/x", "tcp", Some(3), T), // != matches endpoints lacking the label
            ("a/y", "a/x", "tcp", Some(3), F),
            ("198.51.100.7", "a/x", "tcp", Some(4), T), // network set member
            ("198.51.101.7", "a/x", "tcp", Some(4), F),
            ("a/y", "a/x", "tcp", Some(5), T),
            ("a/z", "a/x", "tcp", Some(5), F), // notNets
        ],
    );
}

#[test]
fn calico_namespaced_policy_scopes_selectors_and_inherits_profile_labels() {
    let y = format!(
        "{}{}{}{}{}",
        r#"apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: team}
spec:
  labelsToApply: {team: blue, app: from-profile}
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
"#,
        wep("a", "x", "10.0.0.1", "app: x", "team"),
        wep("a", "y", "10.0.0.2", "role: client", "team"),
        wep("b", "y", "10.0.0.3", "role: client", "team"),
        r#"apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: p, namespace: a}
spec:
  selector: team == 'blue' && app == 'x'
  ingress:
  - {action: Allow, protocol: TCP, source: {selector: "role == 'client'"}}
  - {action: Allow, protocol: UDP, source: {selector: "role == 'client'", namespaceSelector: "all()"}}
"#
    );
    check(
        &y,
        &[
            ("a/y", "a/x", "tcp", Some(80), T),
            // The rule selector is scoped to the policy's namespace.
            ("b/y", "a/x", "tcp", Some(80), F),
            // namespaceSelector all(): every namespace.
            ("b/y", "a/x", "udp", Some(80), T),
        ],
    );
}

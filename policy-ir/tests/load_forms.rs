//! Directories, JSON, lists, `kind: List`, and the routing / Felix kinds.

use std::path::PathBuf;

use policy_ir::ir::{EndpointToHostAction, IpipMode, Protocol};
use policy_ir::oracle::{Probe, Verdict};
use policy_ir::Model;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dir")
}

#[test]
fn directory_of_mixed_files() {
    let m = Model::load(&[dir()]).unwrap_or_else(|e| panic!("{e}"));
    let r = m.resources();
    assert_eq!(r.tiers.len(), 1);
    assert_eq!(r.global_network_sets.len(), 1);
    assert_eq!(r.host_endpoints.len(), 1);
    assert_eq!(r.bgp_peers.len(), 1);
    assert_eq!(r.bgp_peers[0].spec.node, "n1");
    assert_eq!(r.bgp_peers[0].spec.peer_ip, "192.168.0.254");
    assert_eq!(
        r.bgp_peers[0].spec.as_number.as_ref().unwrap().as_number(),
        Some(64513)
    );
    assert_eq!(
        r.nodes[0].spec.bgp.as_ref().unwrap().ipv4_address,
        "192.168.0.1/24"
    );
    assert_eq!(
        r.bgp_configurations[0].spec.node_to_node_mesh_enabled,
        Some(false)
    );
    assert_eq!(r.block_affinities[0].spec.cidr, "10.0.0.0/26");
    assert_eq!(r.ip_pools[0].spec.effective_ipip_mode(), IpipMode::Always);

    let ir = m.node_ir("n1");
    assert_eq!(ir.settings.log_prefix, "n1-prefix");
    assert_eq!(
        ir.settings.interface_prefixes,
        vec!["cali".to_string(), "tap".to_string()]
    );
    assert_eq!(
        ir.settings.default_endpoint_to_host_action,
        EndpointToHostAction::Accept
    );
    assert_eq!(ir.host_endpoints.len(), 1);
    let h = &ir.host_endpoints[0];
    assert_eq!(h.interface, "eth0");
    assert_eq!(h.ingress.tiers[0].name, "sec");
    assert_eq!(
        h.ingress.tiers[0].default_action,
        policy_ir::ir::TierDefaultAction::Pass
    );
    assert!(ir.ipsets.contains_key("all-hosts-net"));

    // The host endpoint denies the external network set; other sources pass to its profile.
    // (tcp/8080: tcp/22 is a default failsafe port, open whatever the policy says.)
    let p = |from: &str| Probe {
        from: from.into(),
        to: "n1-eth0".into(),
        protocol: Protocol::Tcp,
        port: Some(8080),
    };
    assert_eq!(
        m.verdict(&p("198.51.100.9")).unwrap().verdict,
        Verdict::Deny
    );
    let ssh = Probe {
        port: Some(22),
        ..p("198.51.100.9")
    };
    assert_eq!(m.verdict(&ssh).unwrap().verdict, Verdict::Allow);
    assert_eq!(
        m.verdict(&p("203.0.113.9")).unwrap().verdict,
        Verdict::Allow
    );
    assert_eq!(
        m.verdict(&p("192.168.0.1"))
            .unwrap()
            .ingress
            .endpoint
            .as_deref(),
        Some("n1-eth0")
    );
}

#[test]
fn pods_get_interfaces_named_ports_and_namespace_profiles() {
    let m = Model::load_str(
        "pods.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}, uid: abc, annotations: {x: y}}
spec:
  nodeName: n2
  restartPolicy: Always
  containers:
  - name: web
    image: nginx
    ports: [{name: http, containerPort: 80}, {containerPort: 81}]
status: {phase: Running, podIP: 10.1.0.5, podIPs: [{ip: 10.1.0.5}]}
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet, namespace: shop}
spec: {nodeName: n2, hostNetwork: true, containers: [{name: c}]}
"#,
    )
    .unwrap();
    let r = m.resources();
    assert_eq!(
        r.workload_endpoints.len(),
        1,
        "host-networked pods are not endpoints"
    );
    let w = &r.workload_endpoints[0];
    assert_eq!(w.spec.interface_name.len(), 15);
    assert!(w.spec.interface_name.starts_with("cali"));
    assert_eq!(w.spec.profiles, vec!["kns.shop".to_string()]);
    assert_eq!(w.spec.ports.len(), 1);
    assert!(r.profiles.iter().any(|p| p.metadata.name == "kns.shop"));
    let ir = m.node_ir("n2");
    assert_eq!(ir.workloads[0].addrs, vec!["10.1.0.5/32".parse().unwrap()]);
    assert_eq!(ir.profiles["kns.shop"].inbound.len(), 1);
}

#[test]
fn syntax_errors_and_non_resources_are_located() {
    let err = Model::load_str("s.yaml", "a: [1, 2\nb: c\n").err().unwrap();
    let d = err.diagnostics();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].file, "s.yaml");
    assert!(d[0].message.starts_with("invalid YAML/JSON"), "{}", d[0]);
    let err = Model::load_str("s.yaml", "- 1\n- kind: Tier\n  apiVersion: projectcalico.org/v3\n  metadata: {name: t}\n  spec: {order: [1]}\n").err().unwrap();
    let text = err.to_string();
    assert!(
        text.contains("s.yaml:1:3: expected a resource (a mapping), found a scalar"),
        "{text}"
    );
    assert!(
        text.contains("s.yaml:5:17: Tier \"t\" spec.order: expected a number, found a list"),
        "{text}"
    );
}

#[test]
fn felix_configuration_values_are_checked() {
    let text = "apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  defaultEndpointToHostAction: accept
  failsafeInboundHostPorts:
  - {protocol: TCP, port: 22, net: 10.0.0.0/33}
  - {protocol: ICMP, port: 1}
";
    let err = Model::load_str("felix.yaml", text).err().unwrap();
    let text = err.to_string();
    for want in [
        "felix.yaml:6:32: FelixConfiguration \"default\" spec.defaultEndpointToHostAction: unknown action \"accept\"; expected Drop, Accept or Return",
        "felix.yaml:8:36: FelixConfiguration \"default\" spec.failsafeInboundHostPorts[0].net:",
        "felix.yaml:9:16: FelixConfiguration \"default\" spec.failsafeInboundHostPorts[1].protocol: unknown protocol \"ICMP\"; expected TCP, UDP or SCTP",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(err.diagnostics().len(), 3, "{text}");
}

#[test]
fn failsafe_nets_reach_the_ir() {
    let m = Model::load_str(
        "felix.yaml",
        "apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  defaultEndpointToHostAction: Return
  failsafeInboundHostPorts:
  - {protocol: tcp, port: 22, net: 10.1.2.3/16}
  - {port: 2222, net: \"2001:db8::/32\"}
  failsafeOutboundHostPorts:
  - {protocol: UDP, port: 53}
",
    )
    .unwrap();
    let s = m.settings("any-node");
    assert_eq!(
        s.default_endpoint_to_host_action,
        policy_ir::ir::EndpointToHostAction::Return
    );
    // The IPv6-only entry has no IPv4 rule; nets are truncated to their network.
    assert_eq!(s.failsafe_inbound.len(), 1);
    assert_eq!(
        s.failsafe_inbound[0].net,
        Some("10.1.0.0/16".parse().unwrap())
    );
    assert_eq!(s.failsafe_outbound[0].net, None);
}

//! Pure-core tests: routes and BIRD configs from the spec's examples (routing.md §2.5, §2.6,
//! §3.2), golden files under tests/golden (regenerate with BLESS=1 after reviewing a diff),
//! and every rendered config checked by the real `bird -p`.

use routing_agent::bird::{self, BirdOptions, PeerKind};
use routing_agent::load;
use routing_agent::model::Model;
use routing_agent::routes::{self, LocalSettings};
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn model(name: &str) -> Model {
    load::load_paths(&[data(name)]).unwrap_or_else(|e| panic!("{e}"))
}

fn golden(name: &str, actual: &str) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&p, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        actual,
        want,
        "golden {} differs (BLESS=1 to regenerate)",
        p.display()
    );
}

fn routes_text(m: &Model, node: &str) -> String {
    routes::render_routes(&routes::desired_routes(m, node, &LocalSettings::default()))
}

#[test]
fn ipip_always_routes_match_spec_table() {
    let m = model("mesh3.yaml");
    let r = routes_text(&m, "n1");
    // §3.2 Always row, own block, workload /32s, borrowed IP.
    assert_eq!(
        r,
        "blackhole 10.244.1.0/26 proto 80\n\
         10.244.1.1 dev cali00000000001 proto 80 scope link\n\
         10.244.2.0/26 via 198.18.0.2 dev tunl0 proto 80 onlink mtu 1480\n\
         10.244.2.5 dev cali00000000005 proto 80 scope link\n\
         10.244.3.0/26 via 198.18.0.3 dev tunl0 proto 80 onlink mtu 1480\n"
    );
    // On n2 (owner of the block the borrowed IP came from) and n3: /32 via n1.
    let r2 = routes_text(&m, "n2");
    assert!(
        r2.contains("10.244.2.5 via 198.18.0.1 dev tunl0 proto 80 onlink mtu 1480\n"),
        "{r2}"
    );
    assert!(r2.contains("blackhole 10.244.2.0/26 proto 80\n"), "{r2}");
    let r3 = routes_text(&m, "n3");
    assert!(r3.contains("10.244.2.5 via 198.18.0.1 dev tunl0"), "{r3}");
    assert!(
        !r3.contains("10.244.1.1"),
        "n1's own-block workload needs no /32 elsewhere: {r3}"
    );
    golden("mesh3-n1.routes", &r);
}

#[test]
fn never_pool_routes_belong_to_bird() {
    let m = model("rr.yaml");
    let r = routes_text(&m, "n1");
    assert_eq!(
        r,
        "blackhole 10.244.1.0/26 proto bird\n10.244.2.0/26 via 198.18.0.2 dev eth0 proto bird\n"
    );
    let agent: Vec<_> = routes::desired_routes(&m, "n1", &LocalSettings::default())
        .into_iter()
        .filter(|r| r.owner == routes::Owner::Agent)
        .collect();
    assert!(agent.is_empty());
}

#[test]
fn cross_subnet_uses_tunl0_only_across_subnets() {
    let mut m = model("mesh3.yaml");
    m.pools[0].ipip_mode = routing_agent::model::IpipMode::CrossSubnet;
    // n3 moves to another subnet.
    m.nodes[2].ipv4 = Some("198.18.1.3/24".parse().unwrap());
    let r = routes_text(&m, "n1");
    assert!(
        r.contains("10.244.2.0/26 via 198.18.0.2 dev eth0 proto 80 onlink\n"),
        "{r}"
    );
    assert!(
        r.contains("10.244.3.0/26 via 198.18.1.3 dev tunl0 proto 80 onlink mtu 1480\n"),
        "{r}"
    );
    let r3 = routes_text(&m, "n3");
    assert!(
        r3.contains("10.244.1.0/26 via 198.18.0.1 dev tunl0"),
        "{r3}"
    );
    assert!(
        r3.contains("10.244.2.0/26 via 198.18.0.2 dev tunl0"),
        "{r3}"
    );
}

#[test]
fn pending_deletion_and_removed_nodes_produce_no_routes() {
    let mut m = model("mesh3.yaml");
    m.nodes.retain(|n| n.name != "n3");
    let r = routes_text(&m, "n1");
    assert!(!r.contains("10.244.3.0/26"), "{r}");
    m.affinities[1].state = routing_agent::model::AffinityState::PendingDeletion;
    let r = routes_text(&m, "n1");
    assert!(!r.contains("10.244.2.0/26"), "{r}");
}

#[test]
fn mesh_config_matches_spec_example() {
    let m = model("mesh3.yaml");
    let n1 = bird::render(&m, "n1", &BirdOptions::default()).unwrap();
    assert!(n1.contains("router id 198.18.0.1;"));
    assert!(n1.contains("  route 10.244.1.0/26 blackhole;"));
    assert!(n1.contains("  if ( net = 10.244.1.0/26 ) then { accept; }"));
    assert!(n1.contains("  if ( net ~ 10.244.0.0/16 ) then { reject; }  # Always"));
    assert!(n1.contains("  local as 64512;"));
    // n1 is the lowest IP: both sessions passive.
    let me = m.node("n1").unwrap();
    let p = bird::peerings(&m, me);
    let names: Vec<_> = p.iter().map(|p| (p.name(), p.passive)).collect();
    assert_eq!(
        names,
        vec![
            ("Mesh_198_18_0_2".to_string(), true),
            ("Mesh_198_18_0_3".to_string(), true)
        ]
    );
    // n2: active towards .1, passive towards .3; n3: both active.
    let p2 = bird::peerings(&m, m.node("n2").unwrap());
    assert_eq!(
        p2.iter().map(|p| p.passive).collect::<Vec<_>>(),
        vec![false, true]
    );
    let p3 = bird::peerings(&m, m.node("n3").unwrap());
    assert_eq!(
        p3.iter().map(|p| p.passive).collect::<Vec<_>>(),
        vec![false, false]
    );
    golden("mesh3-n1.cfg", &n1);
    for n in ["n1", "n2", "n3"] {
        let c = bird::render(&m, n, &BirdOptions::default()).unwrap();
        routing_agent::birdctl::check_config(&c).unwrap_or_else(|e| panic!("{n}: {e}\n{c}"));
    }
}

#[test]
fn passive_uses_string_order() {
    let mut m = model("mesh3.yaml");
    m.nodes[0].ipv4 = Some("10.0.0.10/24".parse().unwrap());
    m.nodes[1].ipv4 = Some("10.0.0.9/24".parse().unwrap());
    let p = bird::peerings(&m, m.node("n2").unwrap());
    // "10.0.0.10" < "10.0.0.9" as strings, so n2 (.9) dials .10.
    let to10 = p.iter().find(|p| p.ip.to_string() == "10.0.0.10").unwrap();
    assert!(!to10.passive);
}

#[test]
fn route_reflector_config_matches_spec_example() {
    let m = model("rr.yaml");
    let rr = bird::render(&m, "n3", &BirdOptions::default()).unwrap();
    let p = bird::peerings(&m, m.node("n3").unwrap());
    assert_eq!(
        p.iter().map(|p| (p.name(), p.kind)).collect::<Vec<_>>(),
        vec![
            ("Node_198_18_0_1".to_string(), PeerKind::Node),
            ("Node_198_18_0_2".to_string(), PeerKind::Node)
        ]
    );
    assert_eq!(
        rr.matches("rr client;\n  rr cluster id 244.0.0.1;").count(),
        2,
        "{rr}"
    );
    assert!(!rr.contains("Mesh_"));
    let c1 = bird::render(&m, "n1", &BirdOptions::default()).unwrap();
    let p1 = bird::peerings(&m, m.node("n1").unwrap());
    assert_eq!(p1.len(), 1);
    assert_eq!(p1[0].name(), "Node_198_18_0_3");
    assert!(!p1[0].passive);
    assert!(!c1.contains("rr client"));
    assert!(
        c1.contains("  if ( net ~ 10.244.0.0/16 ) then { accept; }\n  accept;\n}"),
        "{c1}"
    );
    golden("rr-n3.cfg", &rr);
    golden("rr-n1.cfg", &c1);
    for c in [&rr, &c1] {
        routing_agent::birdctl::check_config(c).unwrap_or_else(|e| panic!("{e}\n{c}"));
    }
}

#[test]
fn two_reflectors_same_cluster_peer_plainly() {
    let mut m = model("rr.yaml");
    m.nodes[1].rr_cluster_id = Some("244.0.0.1".into());
    m.nodes[1]
        .labels
        .insert("route-reflector".into(), "true".into());
    let c = bird::render(&m, "n3", &BirdOptions::default()).unwrap();
    let block = c.split("protocol bgp Node_198_18_0_2").nth(1).unwrap();
    let block = block.split("\n}\n").next().unwrap();
    assert!(!block.contains("rr client"), "{block}");
    let block1 = c.split("protocol bgp Node_198_18_0_1").nth(1).unwrap();
    assert!(block1.split("\n}\n").next().unwrap().contains("rr client"));
}

#[test]
fn tor_ebgp_and_node_scoped_peer() {
    let m = model("tor.yaml");
    let c1 = bird::render(&m, "n1", &BirdOptions::default()).unwrap();
    let c2 = bird::render(&m, "n2", &BirdOptions::default()).unwrap();
    assert!(c1.contains("protocol bgp Global_198_18_0_254 from bgp_template"));
    assert!(c1.contains("neighbor 198.18.0.254 as 65001;"));
    assert!(c1.contains("calico_export_to_bgp_peers(false)"));
    assert!(c1.contains("next hop keep;"), "keepOriginalNextHop on eBGP");
    assert!(c1.contains("local as 63400;"));
    assert!(!c1.contains("Node_198_18_1_254"));
    assert!(c2.contains("protocol bgp Node_198_18_1_254_port_1179 from bgp_template"));
    assert!(c2.contains("neighbor 198.18.1.254 port 1179 as 65002;"));
    assert!(c2.contains("ttl security on;\n  multihop 1;"));
    assert!(c2.contains("next hop self;"));
    // n2's block is pending: blackhole yes, aggregation no.
    assert!(c2.contains("route 10.244.2.0/26 blackhole;"));
    assert!(!c2.contains("net = 10.244.2.0/26"));
    // disableBGPExport pool rejected first.
    assert!(c1.contains("  if ( net ~ 10.250.0.0/16 ) then { reject; }\n  if ( internal_peer )"));
    golden("tor-n1.cfg", &c1);
    golden("tor-n2.cfg", &c2);
    for c in [&c1, &c2] {
        routing_agent::birdctl::check_config(c).unwrap_or_else(|e| panic!("{e}\n{c}"));
    }
}

#[test]
fn bird_p_rejects_broken_config() {
    assert!(routing_agent::birdctl::check_config("protocol bgp { neighbor x; }").is_err());
}

#[test]
fn load_errors_name_file_line_column_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "kind: Node\nmetadata: {name: a}\nspec: {bgp: {ipv4Address: 198.18.0.1/24}}\n---\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.244.0.0/99\n  ipipMode: Sometimes\n",
    )
    .unwrap();
    let e = load::load_paths(std::slice::from_ref(&f))
        .unwrap_err()
        .to_string();
    let fs = f.display().to_string();
    assert!(
        e.contains(&format!("{fs}:9:9: IPPool \"p\": field `spec.cidr`")),
        "{e}"
    );
    assert!(
        e.contains(&format!("{fs}:10:13: IPPool \"p\": field `spec.ipipMode`")),
        "{e}"
    );
    std::fs::write(&f, "kind: Node\nmetadata: {name: [\n").unwrap();
    let e = load::load_paths(std::slice::from_ref(&f))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("{fs}:")), "{e}");
}

#[test]
fn unknown_node_is_an_error() {
    let m = model("mesh3.yaml");
    assert!(bird::render(&m, "nope", &BirdOptions::default()).is_err());
}

#[test]
fn routing_checks_point_at_the_field() {
    // Checks policy-ir leaves to the routing agent still name file:line:column of the field.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "kind: BGPPeer\nmetadata: {name: p1}\nspec:\n  peerIP: 198.18.0.9\n  asNumber: 65001\n  nextHopMode: Sometimes\n---\nkind: BGPPeer\nmetadata: {name: p2}\nspec:\n  peerIP: 198.18.0.x:179\n  asNumber: 65001\n---\nkind: BlockAffinity\nmetadata: {name: a}\nspec: {node: n1, cidr: 10.244.0.0/26, state: lost}\n---\nkind: Node\nmetadata: {name: n1}\nspec:\n  bgp:\n    ipv4Address: 198.18.0.1/24\n    routeReflectorClusterID: nope\n",
    )
    .unwrap();
    let e = load::load_paths(std::slice::from_ref(&f))
        .unwrap_err()
        .to_string();
    let fs = f.display().to_string();
    for want in [
        format!("{fs}:6:16: BGPPeer \"p1\": field `spec.nextHopMode`"),
        format!("{fs}:11:11: BGPPeer \"p2\": field `spec.peerIP`"),
        format!("{fs}:16:46: BlockAffinity \"a\": field `spec.state`"),
        format!("{fs}:23:30: Node \"n1\": field `spec.bgp.routeReflectorClusterID`"),
    ] {
        assert!(e.contains(&want), "want {want}\n{e}");
    }
}

#[test]
fn ipam_config_and_per_node_bgp_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(
        &f,
        "kind: Node\nmetadata: {name: n1}\nspec: {bgp: {ipv4Address: 198.18.0.1/24}}\n---\nkind: BGPConfiguration\nmetadata: {name: node.n1}\nspec: {listenPort: 1790}\n---\nkind: IPAMConfiguration\nmetadata: {name: default}\nspec: {strictAffinity: true, maxBlocksPerHost: 4}\n",
    )
    .unwrap();
    let m = load::load_paths(&[f]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.nodes[0].listen_port, Some(1790));
    assert!(m.ipam.strict_affinity);
    assert!(m.ipam.auto_allocate_blocks);
    assert_eq!(m.ipam.max_blocks_per_host, 4);
}

#[test]
fn policy_ir_model_resources_convert_to_the_same_model() {
    for f in ["mesh3.yaml", "rr.yaml", "tor.yaml"] {
        let pm = policy_ir::Model::load(&[data(f)]).unwrap_or_else(|e| panic!("{f}: {e}"));
        let converted = routing_agent::from_ir::from_resources(pm.resources()).unwrap();
        assert_eq!(converted, model(f), "{f}");
    }
}

#[test]
fn seed_example_v1_forms() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-tenant.yaml");
    let m = load::load_paths(&[p]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.pools.len(), 1);
    assert_eq!(m.pools[0].cidr.to_string(), "172.16.1.0/24");
    assert_eq!(
        m.pools[0].ipip_mode,
        routing_agent::model::IpipMode::CrossSubnet
    );
    assert!(m.pools[0].nat_outgoing);
    assert_eq!(
        routes_text(&m, "slave1"),
        "172.16.1.1 dev cali0ef24b1 proto 80 scope link\n172.16.1.2 dev cali0ef24b2 proto 80 scope link\n"
    );
    assert_eq!(
        routes_text(&m, "slave2"),
        "172.16.1.3 dev cali0ef24b3 proto 80 scope link\n"
    );
}

#[test]
fn every_peer_option_renders_and_parses_in_bird() {
    let mut m = model("tor.yaml");
    m.bgp.listen_port = Some(1179);
    m.bgp.bind_node_ip = true;
    m.bgp.log_level = Some("debug".into());
    m.bgp.ignored_interfaces = vec!["veth*".into()];
    m.bgp.mesh_password = Some("s3cret".into());
    m.bgp.mesh_restart_time = Some(120);
    let p = m.peers.iter_mut().find(|p| p.name == "tor").unwrap();
    p.local_as = Some(65100);
    p.keepalive_time = Some(30);
    p.num_allowed_local_as = Some(2);
    p.max_restart_time = Some(90);
    p.password = Some("tor-pass".into());
    p.source_node_ip = false;
    p.next_hop_mode = routing_agent::model::NextHopMode::Keep;
    let c = bird::render(
        &m,
        "n1",
        &BirdOptions {
            log_file: Some("/tmp/x.log".into()),
        },
    )
    .unwrap();
    for want in [
        "  local 198.18.0.1 port 1179 as 63400;",
        "  debug all;",
        "interface -\"veth*\", -\"cali*\"",
        "neighbor 198.18.1.2 port 1179 as 63400;",
        "password \"s3cret\";",
        "graceful restart time 120;",
        "local as 65100;",
        "keepalive time 30;",
        "allow local as 2;",
        "password \"tor-pass\";",
        "next hop keep;",
        "log \"/tmp/x.log\" all;",
    ] {
        assert!(c.contains(want), "missing {want:?}\n{c}");
    }
    // The ToR session has no source address (sourceAddress: None) and is eBGP from the
    // overriding local AS.
    let tor = c.split("protocol bgp Global_198_18_0_254").nth(1).unwrap();
    let tor = tor.split("\n}\n").next().unwrap();
    assert!(!tor.contains("source address"), "{tor}");
    assert!(tor.contains("calico_export_to_bgp_peers(false)"), "{tor}");
    routing_agent::birdctl::check_config(&c).unwrap_or_else(|e| panic!("{e}\n{c}"));
}

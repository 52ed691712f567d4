//! End-to-end (root, real kernel, real BIRD 2): 3 node namespaces on a fabric bridge, the agent
//! and BIRD in each, workloads in their own namespaces (routing.md §6 scenarios).
mod common;
use common::lab::{affinity_yaml, node_yaml, pool_yaml, Lab};
use routing_agent::birdctl;

fn nodes3(lab: &Lab) {
    for n in &lab.nodes {
        lab.write(
            &format!("node-{}.yaml", n.name),
            &node_yaml(&n.name, &format!("{}/{}", n.ip, n.prefix), "", ""),
        );
    }
}

fn blocks3(lab: &Lab) {
    for (i, n) in ["n1", "n2", "n3"].iter().enumerate() {
        lab.write(
            &format!("aff-{n}.yaml"),
            &affinity_yaml(n, &format!("10.244.{}.0/26", i + 1)),
        );
    }
}

fn peers_established(lab: &Lab, node: &str, want: usize) -> bool {
    let ctl = lab.node(node).run_dir.join("bird.ctl");
    let Ok(lines) = birdctl::command(&ctl, "show protocols") else {
        return false;
    };
    let Ok(rows) = birdctl::parse_protocols(&lines) else {
        return false;
    };
    birdctl::bgp_peers(&rows)
        .iter()
        .filter(|p| p.info.starts_with("Established"))
        .count()
        == want
}

fn bird_pid(lab: &Lab, node: &str) -> Option<i32> {
    std::fs::read_to_string(lab.node(node).run_dir.join("bird.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// BGP mode (Never): mesh, pod-to-pod across nodes; then a node removed → its routes withdrawn;
/// then BIRD killed → restarted by the agent and routes back.
#[test]
fn bgp_mesh_node_removal_and_bird_restart() {
    let mut lab = Lab::new(&[
        ("n1", "198.18.0.1/24"),
        ("n2", "198.18.0.2/24"),
        ("n3", "198.18.0.3/24"),
    ]);
    nodes3(&lab);
    lab.write("pool.yaml", &pool_yaml("Never"));
    blocks3(&lab);
    lab.pod("n1", "10.244.1.1");
    lab.pod("n2", "10.244.2.1");
    lab.pod("n3", "10.244.3.1");
    lab.start_agents(true);

    lab.wait_for("mesh established on n1", 40, || {
        peers_established(&lab, "n1", 2)
    });
    lab.wait_for("n1 route to n2's block from BGP", 30, || {
        lab.routes("n1")
            .contains("10.244.2.0/26 via 198.18.0.2 dev eth0 proto bird")
    });
    let r1 = lab.routes("n1");
    assert!(r1.contains("blackhole 10.244.1.0/26 proto bird"), "{r1}");
    assert!(
        r1.contains("10.244.1.1 dev cali00000000001 proto 80 scope link"),
        "{r1}"
    );
    assert!(!r1.contains("tunl0"), "{r1}");
    lab.wait_for("pod n1 → pod n2", 20, || lab.ping(0, "10.244.2.1"));
    lab.wait_for("pod n2 → pod n3", 20, || lab.ping(1, "10.244.3.1"));

    // Node n3 removed from the datastore (its Node, block and workload).
    lab.remove("node-n3.yaml");
    lab.remove("aff-n3.yaml");
    lab.remove("wep-n3-2.yaml");
    lab.wait_for("n3's block withdrawn on n1 and n2", 20, || {
        !lab.routes("n1").contains("10.244.3.0/26") && !lab.routes("n2").contains("10.244.3.0/26")
    });
    assert!(lab.routes("n1").contains("10.244.2.0/26 via 198.18.0.2"));
    assert!(
        !lab.ping(0, "10.244.3.1"),
        "no path to a removed node's pod"
    );

    // BIRD on n2 killed: the agent restarts it, the session and the routes come back.
    let pid = bird_pid(&lab, "n2").expect("bird pid of n2");
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    lab.wait_for("bird restarted on n2", 20, || {
        bird_pid(&lab, "n2").is_some_and(|p| p != pid)
    });
    lab.wait_for("n2 re-established with n1", 40, || {
        peers_established(&lab, "n2", 1)
    });
    lab.wait_for("routes back on n2", 20, || {
        lab.routes("n2")
            .contains("10.244.1.0/26 via 198.18.0.1 dev eth0 proto bird")
    });
    lab.wait_for("pod n2 → pod n1 after restart", 20, || {
        lab.ping(1, "10.244.1.1")
    });
}

/// Route reflector: n3 reflects (cluster ID 244.0.0.1), mesh off; n1 and n2 learn each
/// other's blocks through it with the next hop kept.
#[test]
fn route_reflector() {
    let mut lab = Lab::new(&[
        ("n1", "198.18.0.1/24"),
        ("n2", "198.18.0.2/24"),
        ("n3", "198.18.0.3/24"),
    ]);
    lab.write("node-n1.yaml", &node_yaml("n1", "198.18.0.1/24", "", ""));
    lab.write("node-n2.yaml", &node_yaml("n2", "198.18.0.2/24", "", ""));
    lab.write(
        "node-n3.yaml",
        &node_yaml(
            "n3",
            "198.18.0.3/24",
            "route-reflector: \"true\"",
            ", routeReflectorClusterID: 244.0.0.1",
        ),
    );
    lab.write(
        "bgp.yaml",
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: rr}\nspec: {nodeSelector: all(), peerSelector: route-reflector == 'true'}\n",
    );
    lab.write("pool.yaml", &pool_yaml("Never"));
    blocks3(&lab);
    lab.pod("n1", "10.244.1.1");
    lab.pod("n2", "10.244.2.1");
    lab.start_agents(true);

    lab.wait_for("rr sessions on n3", 40, || peers_established(&lab, "n3", 2));
    lab.wait_for("reflected route on n1", 30, || {
        lab.routes("n1")
            .contains("10.244.2.0/26 via 198.18.0.2 dev eth0 proto bird")
    });
    let st = birdctl::node_status(&lab.node("n1").run_dir.join("bird.ctl")).unwrap();
    assert!(
        st.contains("| 198.18.0.3   | node specific | up    |"),
        "{st}"
    );
    assert!(
        !st.contains("198.18.0.2"),
        "client n1 has no session to n2: {st}"
    );
    lab.wait_for("pod n1 → pod n2 via reflected route", 20, || {
        lab.ping(0, "10.244.2.1")
    });
}

/// IPIP Always: routes via tunl0 (proto 80, onlink, mtu 1480); traffic goes through the
/// user-space tunnel (there is no other route to the remote block).
#[test]
fn ipip_always_through_tunl0() {
    let mut lab = Lab::new(&[
        ("n1", "198.18.0.1/24"),
        ("n2", "198.18.0.2/24"),
        ("n3", "198.18.0.3/24"),
    ]);
    nodes3(&lab);
    lab.write("pool.yaml", &pool_yaml("Always"));
    blocks3(&lab);
    lab.pod("n1", "10.244.1.1");
    lab.pod("n2", "10.244.2.1");
    lab.pod("n1", "10.244.2.5"); // borrowed from n2's block
    lab.start_agents(true);
    lab.wait_for("borrowed /32 on n2", 20, || {
        lab.routes("n2")
            .contains("10.244.2.5 via 198.18.0.1 dev tunl0 proto 80 onlink mtu 1480")
    });
    lab.wait_for("pod n2 → borrowed pod on n1", 20, || {
        lab.ping(1, "10.244.2.5")
    });
    lab.wait_for("tunl0 routes on n1", 20, || {
        lab.routes("n1")
            .contains("10.244.2.0/26 via 198.18.0.2 dev tunl0 proto 80 onlink mtu 1480")
    });
    let r = lab.routes("n1");
    assert!(r.contains("blackhole 10.244.1.0/26 proto 80"), "{r}");
    let addr = lab
        .node("n1")
        .ns
        .ip(&["-4", "addr", "show", "dev", "tunl0"]);
    assert!(addr.contains("inet 10.244.1.0/32"), "{addr}");
    assert!(addr.contains("mtu 1480"), "{addr}");
    lab.wait_for("pod n1 → pod n2 through tunl0", 20, || {
        lab.ping(0, "10.244.2.1")
    });
    lab.wait_for("pod n2 → pod n1 through tunl0", 20, || {
        lab.ping(1, "10.244.1.1")
    });
    // BIRD must not put pool routes into the kernel in IPIP mode.
    lab.wait_for("mesh up", 40, || peers_established(&lab, "n1", 2));
    assert!(
        !lab.routes("n1").contains("proto bird"),
        "{}",
        lab.routes("n1")
    );

    // Switch the pool to Never: tunl0 and its routes go, BGP routes take over.
    lab.write("pool.yaml", &pool_yaml("Never"));
    lab.wait_for("BGP routes replace tunnel routes on n1", 30, || {
        let r = lab.routes("n1");
        r.contains("10.244.2.0/26 via 198.18.0.2 dev eth0 proto bird") && !r.contains("tunl0")
    });
    let links = lab.node("n1").ns.ip(&["link", "show"]);
    assert!(!links.contains("tunl0"), "{links}");
    lab.wait_for("pod n1 → pod n2 without tunnel", 20, || {
        lab.ping(0, "10.244.2.1")
    });
}

/// CrossSubnet: n3 sits in another subnet (same L2); n1 reaches n2 directly and n3 via tunl0.
#[test]
fn cross_subnet_uses_tunl0_only_across_subnets() {
    let mut lab = Lab::new(&[
        ("n1", "198.18.0.1/24"),
        ("n2", "198.18.0.2/24"),
        ("n3", "198.18.1.3/24"),
    ]);
    // On-link reachability between the two subnets (they share the bridge).
    for n in ["n1", "n2"] {
        lab.node(n)
            .ns
            .ip(&["route", "add", "198.18.1.0/24", "dev", "eth0"]);
    }
    lab.node("n3")
        .ns
        .ip(&["route", "add", "198.18.0.0/24", "dev", "eth0"]);
    nodes3(&lab);
    lab.write("pool.yaml", &pool_yaml("CrossSubnet"));
    blocks3(&lab);
    lab.pod("n1", "10.244.1.1");
    lab.pod("n2", "10.244.2.1");
    lab.pod("n3", "10.244.3.1");
    lab.start_agents(false);
    lab.wait_for("routes on n1", 20, || {
        let r = lab.routes("n1");
        r.contains("10.244.2.0/26 via 198.18.0.2 dev eth0 proto 80 onlink")
            && r.contains("10.244.3.0/26 via 198.18.1.3 dev tunl0 proto 80 onlink mtu 1480")
    });
    lab.wait_for("pod n1 → pod n2 (direct)", 20, || {
        lab.ping(0, "10.244.2.1")
    });
    lab.wait_for("pod n1 → pod n3 (tunnel)", 20, || {
        lab.ping(0, "10.244.3.1")
    });
    lab.wait_for("pod n3 → pod n2 (tunnel)", 20, || {
        lab.ping(2, "10.244.2.1")
    });

    // A broken datastore file: the agents keep the last good state (routes stay).
    let before = lab.routes("n1");
    lab.write(
        "broken.yaml",
        "kind: IPPool\nmetadata: {name: x}\nspec: {cidr: 10.300.0.0/16}\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(lab.routes("n1"), before);
    assert!(lab.ping(0, "10.244.3.1"));
    // Fixed again: the next change is applied (n3's block gone → route withdrawn).
    lab.remove("broken.yaml");
    lab.remove("aff-n3.yaml");
    lab.wait_for("n3's block route removed on n1", 10, || {
        !lab.routes("n1").contains("10.244.3.0/26")
    });
}

/// A global eBGP peer ("ToR", a plain BIRD in AS 65001) next to the mesh (nodes in AS 63400):
/// every node peers with it (`Global_…`, eBGP) and it learns every node's block.
#[test]
fn global_ebgp_tor_peer() {
    let mut lab = Lab::new(&[
        ("n1", "198.18.0.1/24"),
        ("n2", "198.18.0.2/24"),
        ("n3", "198.18.0.3/24"),
    ]);
    let tor = lab.host("198.18.0.254/24");
    nodes3(&lab);
    lab.write(
        "bgp.yaml",
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 63400}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 198.18.0.254, asNumber: 65001}\n",
    );
    lab.write("pool.yaml", &pool_yaml("Never"));
    blocks3(&lab);
    let tor_dir = lab.dir.path().join("tor");
    std::fs::create_dir_all(&tor_dir).unwrap();
    let mut cfg = String::from(
        "router id 198.18.0.254;\nprotocol device { scan time 2; }\nprotocol direct { ipv4; interface \"eth0\"; }\n",
    );
    for i in 1..=3 {
        cfg.push_str(&format!(
            "protocol bgp n{i} {{ local as 65001; neighbor 198.18.0.{i} as 63400; multihop; connect delay time 1; connect retry time 2; ipv4 {{ import all; export none; }}; }}\n"
        ));
    }
    std::fs::write(tor_dir.join("bird.cfg"), cfg).unwrap();
    let ctl = tor_dir.join("bird.ctl");
    let _tor_bird = common::Proc(
        std::process::Command::new("ip")
            .args(["netns", "exec", &tor.name, "bird", "-f", "-c"])
            .arg(tor_dir.join("bird.cfg"))
            .arg("-s")
            .arg(&ctl)
            .spawn()
            .unwrap(),
    );
    lab.start_agents(true);
    lab.wait_for("ToR learns all three blocks", 40, || {
        let Ok(lines) = birdctl::command(&ctl, "show route") else {
            return false;
        };
        let t = lines.join("\n");
        (1..=3).all(|i| {
            t.contains(&format!("10.244.{i}.0/26")) && t.contains(&format!("via 198.18.0.{i}"))
        })
    });
    lab.wait_for("n1: mesh and ToR sessions up", 40, || {
        peers_established(&lab, "n1", 3)
    });
    let st = birdctl::node_status(&lab.node("n1").run_dir.join("bird.ctl")).unwrap();
    assert!(
        st.contains("| 198.18.0.254 | global            | up    |"),
        "{st}"
    );
    assert!(
        st.contains("| 198.18.0.2   | node-to-node mesh | up    |"),
        "{st}"
    );
}

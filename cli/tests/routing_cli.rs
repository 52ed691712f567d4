//! `brindle routes`, `brindle bird-config`, `brindle ipam` through the built binary.
use std::path::{Path, PathBuf};
use std::process::Command;

fn brindle(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brindle"))
        .args(args)
        .output()
        .expect("run brindle");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../routing-agent/tests/data")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn routes_in_ip_route_syntax() {
    let (code, out, err) = brindle(&["routes", &data("mesh3.yaml"), "--node", "n2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "10.244.1.0/26 via 198.18.0.1 dev tunl0 proto 80 onlink mtu 1480\n\
         blackhole 10.244.2.0/26 proto 80\n\
         10.244.2.1 dev cali00000000002 proto 80 scope link\n\
         10.244.2.5 via 198.18.0.1 dev tunl0 proto 80 onlink mtu 1480\n\
         10.244.3.0/26 via 198.18.0.3 dev tunl0 proto 80 onlink mtu 1480\n"
    );
    let (code, out, _) = brindle(&[
        "routes",
        &data("rr.yaml"),
        "--node",
        "n1",
        "--uplink",
        "ens3",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("10.244.2.0/26 via 198.18.0.2 dev ens3 proto bird\n"),
        "{out}"
    );
    let (code, out, _) = brindle(&["routes", &data("rr.yaml"), "--node", "n1", "--agent-only"]);
    assert_eq!(code, 0);
    assert_eq!(out, "");
    let (code, _, err) = brindle(&["routes", &data("rr.yaml"), "--node", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown node `nope`"), "{err}");
}

#[test]
fn bird_config_checked_by_bird() {
    let (code, out, err) = brindle(&["bird-config", &data("rr.yaml"), "--node", "n3", "--check"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("protocol bgp Node_198_18_0_1 from bgp_template"));
    assert!(out.contains("rr cluster id 244.0.0.1;"));
}

#[test]
fn bad_input_names_file_line_column_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pool.yaml");
    std::fs::write(
        &f,
        "kind: IPPool\nmetadata: {name: p}\nspec:\n  cidr: 10.244.0.0/16\n  blockSize: 40\n",
    )
    .unwrap();
    let (code, _, err) = brindle(&["routes", &f.display().to_string(), "--node", "n1"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "{}:5:14: IPPool \"p\": field `spec.blockSize`",
            f.display()
        )),
        "{err}"
    );
}

#[test]
fn ipam_assign_show_release_in_directory_datastore() {
    let dir = tempfile::tempdir().unwrap();
    let ds: PathBuf = dir.path().to_path_buf();
    std::fs::write(
        ds.join("cluster.yaml"),
        "kind: Node\nmetadata: {name: n1}\nspec: {bgp: {ipv4Address: 198.18.0.1/24}}\n---\nkind: Node\nmetadata: {name: n2}\nspec: {bgp: {ipv4Address: 198.18.0.2/24}}\n---\nkind: IPPool\nmetadata: {name: pods}\nspec: {cidr: 10.244.0.0/16, ipipMode: Always}\n",
    )
    .unwrap();
    let d = ds.display().to_string();
    let (code, out, err) = brindle(&[
        "ipam",
        "assign",
        &d,
        "--node",
        "n1",
        "--handle",
        "k8s-pod-network.a",
        "--num",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    let ips: Vec<&str> = out.lines().collect();
    assert_eq!(ips.len(), 2);
    // The block's first address went to the tunnel; the pod got the next two.
    let (_, show, _) = brindle(&["ipam", "show", &d]);
    assert!(show.contains("ipip-tunnel-addr-n1"), "{show}");
    assert!(
        show.contains(&format!("k8s-pod-network.a {},{}", ips[0], ips[1])),
        "{show}"
    );
    assert!(
        show.contains("affinity=host:n1 state=confirmed used=3/64"),
        "{show}"
    );
    // The new affinity is a datastore resource: n2 now routes n1's block through tunl0.
    let aff: Vec<_> = std::fs::read_dir(ds.join("ipam/blockaffinities"))
        .unwrap()
        .collect();
    assert_eq!(aff.len(), 1);
    let (_, routes, _) = brindle(&["routes", &d, "--node", "n2"]);
    assert!(
        routes.contains("via 198.18.0.1 dev tunl0 proto 80 onlink mtu 1480"),
        "{routes}"
    );
    let (_, routes1, _) = brindle(&["routes", &d, "--node", "n1"]);
    assert!(routes1.starts_with("blackhole 10.244."), "{routes1}");
    // Release by handle; the addresses are free again but the block stays affine.
    let (code, out, _) = brindle(&["ipam", "release", &d, "--handle", "k8s-pod-network.a"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2);
    let (_, show, _) = brindle(&["ipam", "show", &d]);
    assert!(show.contains("used=1/64"), "{show}");
    let (code, _, err) = brindle(&["ipam", "release", &d, "--ip", ips[0]]);
    assert_eq!(code, 2);
    assert!(err.contains("is not assigned"), "{err}");
}

//! `brindle check | verdict | explain | lint` through the built binary.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn brindle(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brindle"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run brindle");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_seed_ok_and_bad_file_errors() {
    let (code, out, _) = brindle(&["check", "examples/seed-tenant.yaml"]);
    assert_eq!(code, 0);
    assert!(out.contains("1 policies, 1 profiles, 3 endpoints"), "{out}");
    let (code, _, err) = brindle(&["check", "policy-ir/tests/data/bad.yaml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("policy-ir/tests/data/bad.yaml:10:17: GlobalNetworkPolicy \"broken\" spec.ingress[0].source.selector: "),
        "{err}"
    );
    assert!(err.contains("14 error(s)"), "{err}");
    let (code, _, err) = brindle(&["check", "no/such/file.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("no/such/file.yaml"), "{err}");
}

#[test]
fn verdict_json_in_input_order() {
    let (code, out, err) = brindle(&[
        "verdict",
        "examples/seed-tenant.yaml",
        "--probes",
        "examples/seed-probes.yaml",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let probes = v["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 8);
    assert_eq!(probes[1]["from"], "slave1-frontend1");
    assert_eq!(probes[1]["to"], "slave2-database");
    assert_eq!(probes[1]["protocol"], "tcp");
    assert_eq!(probes[1]["port"], 3306);
    assert_eq!(probes[1]["verdict"], "allow");
    assert_eq!(
        probes[1]["ingress"]["policy"],
        "GlobalNetworkPolicy namespace-default"
    );
    assert_eq!(probes[1]["ingress"]["decided_by"], "policy");
    assert_eq!(probes[4]["protocol"], "icmp");
    assert!(probes[4]["port"].is_null());
    assert_eq!(probes[5]["verdict"], "deny");
    assert_eq!(probes[5]["egress"]["decided_by"], "not-calico-endpoint");
    assert_eq!(probes[5]["egress"]["verdict"], "allow");
    assert_eq!(probes[5]["ingress"]["decided_by"], "end-of-tier");
}

#[test]
fn verdict_bad_probe_file_names_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.yaml");
    std::fs::write(
        &f,
        "- {from: a, to: b, protocol: tcp, port: 1}\n- {from: a, to: b, protocol: tpc, port: 1}\n",
    )
    .unwrap();
    let (code, _, err) = brindle(&[
        "verdict",
        "examples/seed-tenant.yaml",
        "--probes",
        f.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("p.yaml:2:30: [1].protocol: unknown protocol \"tpc\""),
        "{err}"
    );
}

#[test]
fn explain_names_tier_policy_and_rule() {
    let (code, out, err) = brindle(&[
        "explain",
        "examples/seed-tenant.yaml",
        "--from",
        "203.0.113.10",
        "--to",
        "slave2-database",
        "--protocol",
        "tcp",
        "--port",
        "3306",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("203.0.113.10 -> slave2-database tcp port 3306: DENY"),
        "{out}"
    );
    assert!(out.contains("ingress at destination: DENY"), "{out}");
    assert!(out.contains("Deny at end of tier default"), "{out}");
    let (_, out, _) = brindle(&[
        "explain",
        "examples/seed-tenant.yaml",
        "--from",
        "slave1-frontend1",
        "--to",
        "slave2-database",
        "--protocol",
        "tcp",
        "--port",
        "3306",
    ]);
    assert!(
        out.contains("policy:   GlobalNetworkPolicy namespace-default"),
        "{out}"
    );
    assert!(
        out.contains("rule 0:   allow from selector namespace == 'default'"),
        "{out}"
    );
}

#[test]
fn lint_exit_codes() {
    let (code, out, _) = brindle(&["lint", "examples/seed-tenant.yaml"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("shadowed-rule: Profile \"profile-database\" spec.ingress[1]"),
        "{out}"
    );
    assert!(out.contains("the earlier deny rule 0 (deny)"), "{out}");
    let (code, _, _) = brindle(&["lint", "policy-ir/tests/data/bad.yaml"]);
    assert_eq!(code, 2);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("clean.yaml");
    std::fs::write(
        &f,
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n  selector: app == 'x'\n  ingress: [{action: Allow}]\n---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: x, namespace: a, labels: {app: x}}\nspec: {node: n1, interfaceName: calix, ipNetworks: [10.0.0.1/32]}\n",
    )
    .unwrap();
    let (code, out, err) = brindle(&["lint", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

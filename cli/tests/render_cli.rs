//! `brindle compile` and `brindle trace` on the seed tenant, through the built binary.

use std::path::PathBuf;
use std::process::Command;

fn seed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-tenant.yaml")
}

fn brindle(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brindle"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compile_writes_loadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed();
    let (code, _, err) = brindle(&[
        "compile",
        seed.to_str().unwrap(),
        "--node",
        "slave2",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let rules = std::fs::read_to_string(dir.path().join("iptables.rules")).unwrap();
    let sets = std::fs::read_to_string(dir.path().join("ipsets.rules")).unwrap();
    for t in ["*raw", "*mangle", "*nat", "*filter"] {
        assert!(rules.contains(t), "{t} missing");
    }
    assert!(rules.contains(":cali-tw-cali0ef24b3 - [0:0]"));
    assert!(rules.contains(":cali-pri-profile-database - [0:0]"));
    assert!(rules.contains("--jump MASQUERADE"), "natOutgoing pool");
    assert!(sets.contains("create cali40masq-ipam-pools hash:net"));
    // The files parse back (the simulator's parser is strict about options).
    iptables_backend::save::parse_save(&rules).unwrap();
    iptables_backend::sim::IpSets::parse_restore(&sets).unwrap();
    // Only the node's own endpoints appear.
    assert!(!rules.contains("cali0ef24b1"));

    // Without --out: a readable view on stdout.
    let (code, out, err) = brindle(&["compile", seed.to_str().unwrap(), "--node", "slave1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("== table filter ==") && out.contains("cali-fw-cali0ef24b1"),
        "{out}"
    );

    // Errors: unknown node, unknown backend → exit 2 with a message.
    let (code, _, err) = brindle(&["compile", seed.to_str().unwrap(), "--node", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown node `nope`"), "{err}");
    let (code, _, err) = brindle(&[
        "compile",
        seed.to_str().unwrap(),
        "--node",
        "slave1",
        "--backend",
        "bpf",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unsupported backend"), "{err}");
}

#[test]
fn trace_seed_frontend_to_database() {
    let seed = seed();
    let (code, out, err) = brindle(&[
        "trace",
        seed.to_str().unwrap(),
        "--from",
        "slave1-frontend1",
        "--to",
        "slave2-database",
        "--protocol",
        "tcp",
        "--port",
        "3306",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let path = v["path"].as_array().unwrap();
    assert!(
        path.iter()
            .any(|s| s["node"] == "slave1" && s["chain"] == "cali-fw-cali0ef24b1"),
        "{out}"
    );
    for key in [
        "node", "table", "chain", "rule", "comment", "action", "mark",
    ] {
        assert!(path[0].get(key).is_some(), "{key} missing in {}", path[0]);
    }
    // The trace's verdict is the oracle's. (In the seed as written, policy namespace-default
    // applies to the database and admits namespace "default" before any profile is reached.)
    let model = policy_ir::Model::load(std::slice::from_ref(&seed)).unwrap();
    let oracle = model
        .verdict(&policy_ir::oracle::Probe {
            from: "slave1-frontend1".into(),
            to: "slave2-database".into(),
            protocol: policy_ir::ir::Protocol::Tcp,
            port: Some(3306),
        })
        .unwrap();
    let want = match oracle.verdict {
        policy_ir::oracle::Verdict::Allow => "allow",
        policy_ir::oracle::Verdict::Deny => "deny",
    };
    assert_eq!(v["verdict"], want, "{out}");

    // When the policy selects only the frontends, the database's profile decides its
    // ingress, and the profile's first rule (the bare deny) drops the packet: the trace must
    // say so.
    let text = std::fs::read_to_string(&seed).unwrap();
    let narrowed = text.replacen(
        "\n  selector: namespace == 'default'\n",
        "\n  selector: service == 'frontend'\n",
        1,
    );
    assert_ne!(narrowed, text);
    let dir = tempfile::tempdir().unwrap();
    let no_policy = dir.path().join("seed-frontend-policy.yaml");
    std::fs::write(&no_policy, narrowed).unwrap();
    let (code, out, err) = brindle(&[
        "trace",
        no_policy.to_str().unwrap(),
        "--from",
        "slave1-frontend1",
        "--to",
        "slave2-database",
        "--protocol",
        "tcp",
        "--port",
        "3306",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "deny", "{out}");
    let last = v["path"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["node"], "slave2");
    assert_eq!(last["table"], "filter");
    assert_eq!(last["chain"], "cali-pri-profile-database");
    assert_eq!(last["rule"], 1);
    assert_eq!(last["action"], "DROP");

    // Readable form.
    let (code, out, err) = brindle(&[
        "trace",
        seed.to_str().unwrap(),
        "--from",
        "172.16.1.1",
        "--to",
        "172.16.1.2",
        "--protocol",
        "tcp",
        "--port",
        "80",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("node slave1") && out.contains("verdict: allow"),
        "{out}"
    );

    // Bad input.
    let (code, _, err) = brindle(&[
        "trace",
        seed.to_str().unwrap(),
        "--from",
        "ghost",
        "--to",
        "172.16.1.2",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("ghost"), "{err}");
}

#[test]
fn a_closed_pipe_ends_a_read_only_command_quietly() {
    use std::process::Stdio;
    // The readable view of a 300-endpoint node is far larger than a pipe buffer, so the
    // command is still writing when its reader has gone.
    let case = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../golden/cases/dispatch-300");
    let mut child = Command::new(env!("CARGO_BIN_EXE_brindle"))
        .args(["compile", case.to_str().unwrap(), "--node", "node1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    const SIGPIPE: i32 = 13;
    assert_eq!(out.status.signal(), Some(SIGPIPE), "{:?}", out.status);
}

//! `brindle diff | apply | lab` end to end (root): real kernel, fresh namespaces only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

/// A fresh network namespace, deleted on drop (also when the test fails).
struct Ns(String);

impl Ns {
    fn new() -> Ns {
        let name = format!(
            "bcli{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        Ns(name)
    }
    fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    /// iptables-save without the comment lines (they carry timestamps).
    fn rules(&self) -> String {
        self.exec(&["iptables-save"])
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn seed() -> String {
    root()
        .join("examples/seed-tenant.yaml")
        .display()
        .to_string()
}

fn brindle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brindle"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn diff_apply_repair_cycle_with_exit_codes() {
    let ns = Ns::new();
    let s = seed();
    let d = brindle(&["diff", &s, "--node", "slave2", "--netns", &ns.0]);
    assert_eq!(d.status.code(), Some(1), "{}", text(&d));
    let out = String::from_utf8_lossy(&d.stdout);
    assert!(out.contains("@@ chain cali-tw-cali0ef24b3 (added"), "{out}");
    assert!(!out.contains("\x1b["), "no colour when not a terminal");

    let a = brindle(&["apply", &s, "--node", "slave2", "--netns", &ns.0]);
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert!(ns.rules().contains("-A cali-pri-profile-database"));

    let d = brindle(&["diff", &s, "--node", "slave2", "--netns", &ns.0]);
    assert_eq!(d.status.code(), Some(0), "{}", text(&d));
    let a = brindle(&["apply", &s, "--node", "slave2", "--netns", &ns.0]);
    assert!(
        String::from_utf8_lossy(&a.stdout).contains("nothing written"),
        "{}",
        text(&a)
    );

    // Drift: an admin deletes the profile's first rule and our FORWARD hook.
    ns.exec(&["iptables", "-D", "cali-pri-profile-database", "1"]);
    ns.exec(&["iptables", "-D", "FORWARD", "1"]);
    let d = brindle(&["diff", &s, "--node", "slave2", "--netns", &ns.0, "--json"]);
    assert_eq!(d.status.code(), Some(1), "{}", text(&d));
    let j: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    assert_eq!(j["changes"], true);
    let filter = j["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "filter")
        .unwrap();
    let chains: Vec<&str> = filter["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chain"].as_str().unwrap())
        .collect();
    assert_eq!(chains, ["cali-pri-profile-database"]);
    assert_eq!(filter["hooks"][0]["chain"], "FORWARD");
    let a = brindle(&["apply", &s, "--node", "slave2", "--netns", &ns.0]);
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    let d = brindle(&["diff", &s, "--node", "slave2", "--netns", &ns.0]);
    assert_eq!(d.status.code(), Some(0), "{}", text(&d));
}

#[test]
fn diff_against_a_saved_dump() {
    let empty = root()
        .join("examples/empty-node.save")
        .display()
        .to_string();
    let d = brindle(&["diff", &seed(), "--node", "slave1", "--current", &empty]);
    assert_eq!(d.status.code(), Some(1), "{}", text(&d));
    assert!(String::from_utf8_lossy(&d.stdout).contains("--- "));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.save");
    std::fs::write(&bad, "*filter\n:INPUT ACCEPT [0:0]\n-Z INPUT\nCOMMIT\n").unwrap();
    let d = brindle(&[
        "diff",
        &seed(),
        "--node",
        "slave1",
        "--current",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(d.status.code(), Some(2));
    assert!(
        text(&d).contains(&format!("{}:3:1: line: unexpected `-Z`", bad.display())),
        "{}",
        text(&d)
    );
}

#[test]
fn bad_input_changes_nothing_in_the_kernel() {
    let ns = Ns::new();
    let a = brindle(&["apply", &seed(), "--node", "slave2", "--netns", &ns.0]);
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    let before = ns.rules();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let mut yaml = std::fs::read_to_string(seed()).unwrap();
    yaml = yaml.replace(
        "selector: namespace == 'default'\n  ingress:",
        "selector: namespace == \n  ingress:",
    );
    std::fs::write(&bad, yaml).unwrap();
    let a = brindle(&[
        "apply",
        bad.to_str().unwrap(),
        "--node",
        "slave2",
        "--netns",
        &ns.0,
    ]);
    assert_eq!(a.status.code(), Some(2), "{}", text(&a));
    assert!(text(&a).contains("bad.yaml:"), "{}", text(&a));
    assert_eq!(ns.rules(), before);

    let a = brindle(&["apply", &seed(), "--node", "nosuchnode", "--netns", &ns.0]);
    assert_eq!(a.status.code(), Some(2));
    assert!(text(&a).contains("unknown node"), "{}", text(&a));
    assert_eq!(ns.rules(), before);
}

#[test]
fn lab_on_the_seed_tenant_with_both_backends() {
    let probes = root()
        .join("examples/seed-probes.yaml")
        .display()
        .to_string();
    for backend in ["iptables", "nft"] {
        let l = brindle(&[
            "lab",
            &seed(),
            "--probes",
            &probes,
            "--json",
            "--backend",
            backend,
        ]);
        assert_eq!(l.status.code(), Some(0), "{backend}: {}", text(&l));
        let j: serde_json::Value = serde_json::from_slice(&l.stdout).unwrap();
        let entries = j["probes"].as_array().unwrap();
        assert!(entries.len() >= 2);
        for e in entries {
            assert_eq!(e["verdict"], e["oracle"], "{backend}: {e}");
            assert!(e["verdict"] == "allow" || e["verdict"] == "deny");
        }
        let ff = entries
            .iter()
            .find(|e| e["from"] == "slave1-frontend1" && e["to"] == "slave1-frontend2")
            .expect("frontend probe");
        assert_eq!(ff["verdict"], "allow", "{backend}");
        // The outside host is stopped at the end of tier default: the rules really filter.
        let outside = entries
            .iter()
            .find(|e| e["from"] == "203.0.113.10" && e["to"] == "slave2-database")
            .expect("outside probe");
        assert_eq!(outside["verdict"], "deny", "{backend}");
        // Everything the lab created is gone.
        for ns in j["namespaces"].as_object().unwrap().values() {
            let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
            assert!(!String::from_utf8_lossy(&list.stdout).contains(ns.as_str().unwrap()));
        }
    }
}

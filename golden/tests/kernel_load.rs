//! Every golden case's payloads load into a fresh network namespace: `ipset restore` then
//! `iptables-restore` (all four tables). Needs root, as CI has; namespaces are removed by a
//! Drop guard.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use policy_ir::Model;

struct Netns(String);

impl Netns {
    fn new(tag: usize) -> Netns {
        let name = format!("gold-{}-{tag}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        Netns(name)
    }

    fn feed_ipset(&self, input: &str) -> Result<(), String> {
        self.feed_with("ipset", &["restore"], input)
    }

    fn feed(&self, prog: &str, input: &str) -> Result<(), String> {
        self.feed_with(prog, &[], input)
    }

    fn feed_with(&self, prog: &str, args: &[&str], input: &str) -> Result<(), String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, prog])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn golden_payloads_load_into_the_kernel() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let mut dirs: Vec<_> = std::fs::read_dir(&cases)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    dirs.sort();
    let mut loaded = 0;
    for (i, dir) in dirs.iter().enumerate() {
        let model = Model::load(&[dir.join("input.yaml")]).unwrap();
        for node in model.nodes() {
            let ir = model.node_ir(&node);
            if ir.workloads.is_empty() && ir.host_endpoints.is_empty() {
                continue;
            }
            let rs = iptables_backend::render(&ir);
            let ns = Netns::new(i);
            ns.feed_ipset(&rs.ipset_restore_payload())
                .unwrap_or_else(|e| panic!("{}: {node}: ipset restore: {e}", dir.display()));
            ns.feed("iptables-restore", &rs.combined_restore_payload())
                .unwrap_or_else(|e| panic!("{}: {node}: iptables-restore: {e}", dir.display()));
            loaded += 1;
        }
    }
    assert!(loaded >= 12, "{loaded}");
}

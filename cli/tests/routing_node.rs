//! `brindle node run` (agent + BIRD) in two node namespaces and `brindle node status` from
//! BIRD's control socket. Root, real kernel, real BIRD.
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Ns(String);
impl Ns {
    fn new(p: &str) -> Ns {
        let n = format!(
            "{p}{}x{}",
            std::process::id() % 100000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &n]);
        Ns(n)
    }
}
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc_kill(self.0.id() as i32, 15) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn node_run_and_status() {
    let bin = env!("CARGO_BIN_EXE_brindle");
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("ds");
    std::fs::create_dir_all(&ds).unwrap();
    std::fs::write(
        ds.join("cluster.yaml"),
        "kind: Node\nmetadata: {name: n1}\nspec: {bgp: {ipv4Address: 198.18.0.1/24}}\n---\nkind: Node\nmetadata: {name: n2}\nspec: {bgp: {ipv4Address: 198.18.0.2/24}}\n---\nkind: IPPool\nmetadata: {name: pods}\nspec: {cidr: 10.244.0.0/16}\n---\nkind: BlockAffinity\nmetadata: {name: a1}\nspec: {node: n1, cidr: 10.244.1.0/26, state: confirmed}\n---\nkind: BlockAffinity\nmetadata: {name: a2}\nspec: {node: n2, cidr: 10.244.2.0/26, state: confirmed}\n",
    )
    .unwrap();
    let fab = Ns::new("brcf");
    sh(&["ip", "-n", &fab.0, "link", "add", "br0", "type", "bridge"]);
    sh(&["ip", "-n", &fab.0, "link", "set", "br0", "up"]);
    let mut nodes = Vec::new();
    let mut procs = Vec::new();
    for i in 1..=2 {
        let ns = Ns::new("brcn");
        let port = format!("q{i}{}", &ns.0[ns.0.len().saturating_sub(10)..]);
        sh(&[
            "ip", "link", "add", &port, "netns", &fab.0, "type", "veth", "peer", "name", "eth0",
            "netns", &ns.0,
        ]);
        sh(&[
            "ip", "-n", &fab.0, "link", "set", &port, "master", "br0", "up",
        ]);
        sh(&[
            "ip",
            "-n",
            &ns.0,
            "addr",
            "add",
            &format!("198.18.0.{i}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", &ns.0, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
        let run = dir.path().join(format!("run{i}"));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, bin, "node", "run"])
            .arg(&ds)
            .args([
                "--node",
                &format!("n{i}"),
                "--interval-ms",
                "200",
                "--max-seconds",
                "120",
                "--run-dir",
            ])
            .arg(&run)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        procs.push(Proc(child));
        nodes.push((ns, run));
    }
    let ctl = nodes[0].1.join("bird.ctl");
    let t = Instant::now();
    let mut last = String::new();
    while t.elapsed() < Duration::from_secs(40) {
        let out = Command::new(bin)
            .args(["node", "status", "--socket"])
            .arg(&ctl)
            .output()
            .unwrap();
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if last.contains("Established") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(last.contains("IPv4 BGP status"), "{last}");
    assert!(
        last.contains("| 198.18.0.2   | node-to-node mesh | up    |"),
        "{last}"
    );
    assert!(last.contains("Established |"), "{last}");
    let t = Instant::now();
    loop {
        let r = sh(&["ip", "-n", &nodes[0].0 .0, "route"]);
        if r.contains("10.244.2.0/26 via 198.18.0.2 dev eth0 proto bird") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{r}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stopping the agent stops its BIRD: the control socket stops answering.
    drop(procs.remove(0));
    let out = Command::new(bin)
        .args(["node", "status", "--socket"])
        .arg(&ctl)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(procs);
    drop(nodes);
}

//! A multi-node lab (testbed.md "Several nodes and routing"): a fabric namespace with a bridge,
//! node namespaces on it, one workload namespace per node, and the real agent (with BIRD) in
//! each node namespace, running on a thread that entered it. Everything is torn down on drop:
//! agents stopped (which stops their BIRD by PID), then namespaces deleted.
#![allow(dead_code)]

use super::{sh, Netns};
use routing_agent::agent::{run_until, AgentConfig};
use routing_agent::routes::LocalSettings;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct LabNode {
    pub name: String,
    pub ns: Netns,
    pub ip: String,
    pub prefix: u8,
    pub run_dir: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub struct Pod {
    pub ns: Netns,
    pub ip: String,
    pub iface: String,
    pub node: String,
}

pub struct Lab {
    // Field order = drop order: pods, nodes (agents first in Drop impl), fabric, dir.
    pub pods: Vec<Pod>,
    pub nodes: Vec<LabNode>,
    pub fabric: Netns,
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// `nodes`: (name, "198.18.0.1/24").
    pub fn new(nodes: &[(&str, &str)]) -> Lab {
        let fabric = Netns::new("brtf");
        fabric.ip(&["link", "add", "br0", "type", "bridge"]);
        fabric.ip(&["link", "set", "br0", "up"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ds")).unwrap();
        let mut lab = Lab {
            pods: Vec::new(),
            nodes: Vec::new(),
            fabric,
            dir,
        };
        for (i, (name, cidr)) in nodes.iter().enumerate() {
            let ns = Netns::new("brtn");
            let port = format!("p{}{}", i, &ns.name[ns.name.len().saturating_sub(8)..]);
            let port: String = port.chars().take(15).collect();
            sh(&[
                "ip",
                "link",
                "add",
                &port,
                "netns",
                &lab.fabric.name,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns.name,
            ]);
            lab.fabric
                .ip(&["link", "set", &port, "master", "br0", "up"]);
            ns.ip(&["addr", "add", cidr, "dev", "eth0"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            let (ip, prefix) = cidr.split_once('/').unwrap();
            let run_dir = lab.dir.path().join(format!("run-{name}"));
            lab.nodes.push(LabNode {
                name: name.to_string(),
                ns,
                ip: ip.into(),
                prefix: prefix.parse().unwrap(),
                run_dir,
                stop: Arc::new(AtomicBool::new(false)),
                thread: None,
            });
        }
        lab
    }

    /// A plain host namespace on the fabric (e.g. a ToR router), not a Calico node.
    pub fn host(&self, cidr: &str) -> Netns {
        let ns = Netns::new("brth");
        let port: String = format!("h{}", &ns.name[ns.name.len().saturating_sub(10)..])
            .chars()
            .take(15)
            .collect();
        sh(&[
            "ip",
            "link",
            "add",
            &port,
            "netns",
            &self.fabric.name,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns.name,
        ]);
        self.fabric
            .ip(&["link", "set", &port, "master", "br0", "up"]);
        ns.ip(&["addr", "add", cidr, "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns
    }

    pub fn ds(&self) -> PathBuf {
        self.dir.path().join("ds")
    }

    /// Writes (or replaces) one datastore file.
    pub fn write(&self, file: &str, yaml: &str) {
        let p = self.ds().join(file);
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(tmp, p).unwrap();
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.ds().join(file)).unwrap();
    }

    pub fn node(&self, name: &str) -> &LabNode {
        self.nodes.iter().find(|n| n.name == name).unwrap()
    }

    /// Adds a workload namespace on `node` with `ip`, and its WorkloadEndpoint resource.
    pub fn pod(&mut self, node: &str, ip: &str) {
        let idx = self.pods.len();
        let iface = format!("cali{:011}", idx + 1);
        let ns = Netns::new("brtp");
        let n = self.node(node);
        sh(&[
            "ip", "link", "add", &iface, "netns", &n.ns.name, "type", "veth", "peer", "name",
            "eth0", "netns", &ns.name,
        ]);
        n.ns.ip(&["link", "set", &iface, "up"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"]);
        ns.ip(&[
            "route",
            "add",
            "169.254.1.1",
            "dev",
            "eth0",
            "scope",
            "link",
        ]);
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ]);
        let mac =
            n.ns.exec(&["cat", &format!("/sys/class/net/{iface}/address")]);
        ns.ip(&[
            "neigh",
            "add",
            "169.254.1.1",
            "lladdr",
            mac.trim(),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
        self.write(
            &format!("wep-{node}-{idx}.yaml"),
            &format!(
                "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {{name: {node}-k8s-pod{idx}-eth0, namespace: default}}\nspec: {{node: {node}, pod: pod{idx}, interfaceName: {iface}, ipNetworks: [{ip}/32]}}\n"
            ),
        );
        self.pods.push(Pod {
            ns,
            ip: ip.into(),
            iface,
            node: node.into(),
        });
    }

    /// Starts the agent (and BIRD) in every node namespace.
    pub fn start_agents(&mut self, bird: bool) {
        let ds = self.ds();
        for n in &mut self.nodes {
            let cfg = AgentConfig {
                paths: vec![ds.clone()],
                node: n.name.clone(),
                local: LocalSettings::default(),
                run_dir: n.run_dir.clone(),
                interval: Duration::from_millis(200),
                bird,
                max_runtime: Some(Duration::from_secs(300)),
            };
            let stop = n.stop.clone();
            let path = format!("/run/netns/{}", n.ns.name);
            n.thread = Some(std::thread::spawn(move || {
                let fd = std::fs::File::open(&path).unwrap();
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                run_until(cfg, &stop).unwrap();
            }));
        }
    }

    pub fn stop_agent(&mut self, name: &str) {
        let n = self.nodes.iter_mut().find(|n| n.name == name).unwrap();
        n.stop.store(true, Ordering::Relaxed);
        if let Some(t) = n.thread.take() {
            let _ = t.join();
        }
    }

    pub fn routes(&self, node: &str) -> String {
        self.node(node).ns.ip(&["route", "show"])
    }

    /// Waits until `f()` is true (polling), panicking with `what` and `dump()` otherwise.
    pub fn wait_for(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Duration {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if f() {
                return t0.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out after {secs}s waiting for {what}\n{}",
            self.dump()
        );
    }

    /// Round trip from a workload to an address: a TCP SYN to port 7 answered by the
    /// destination's kernel (SYN-ACK or RST) counts; a timeout or an ICMP error does not.
    /// (There is no `ping` binary on these machines.)
    pub fn ping(&self, from_pod: usize, to_ip: &str) -> bool {
        let addr: std::net::SocketAddr = format!("{to_ip}:7").parse().unwrap();
        self.pods[from_pod].ns.run(move || {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(700)) {
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
            }
        })
    }

    pub fn dump(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            s.push_str(&format!(
                "--- {} routes:\n{}",
                n.name,
                n.ns.ip(&["route", "show"])
            ));
            let ctl = n.run_dir.join("bird.ctl");
            if ctl.exists() {
                if let Ok(st) = routing_agent::birdctl::node_status(&ctl) {
                    s.push_str(&st);
                }
            }
        }
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.stop.store(true, Ordering::Relaxed);
        }
        for n in &mut self.nodes {
            if let Some(t) = n.thread.take() {
                let _ = t.join();
            }
        }
    }
}

pub fn node_yaml(name: &str, cidr: &str, extra_labels: &str, extra_bgp: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{{extra_labels}}}\nspec:\n  bgp: {{ipv4Address: {cidr}{extra_bgp}}}\n"
    )
}

pub fn pool_yaml(mode: &str) -> String {
    format!("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: pods}}\nspec: {{cidr: 10.244.0.0/16, ipipMode: {mode}}}\n")
}

/// A confirmed BlockAffinity, named as Calico names them (`<node>-<cidr with . and / as ->`), so
/// a node can hold several.
pub fn affinity_yaml(node: &str, cidr: &str) -> String {
    let name = format!("{node}-{}", cidr.replace(['.', '/'], "-"));
    format!("apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {{name: {name}}}\nspec: {{node: {node}, cidr: {cidr}, state: confirmed}}\n")
}

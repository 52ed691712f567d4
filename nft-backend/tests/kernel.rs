//! Real-kernel checks (root needed, as CI has): every golden case's nft payload passes
//! `nft -c`, loads into a fresh network namespace, reads back with the same chains and rule
//! hashes, and loads again idempotently; and real TCP traffic between workload namespaces
//! follows the reference evaluator's verdicts under the loaded table.
//!
//! Every namespace is removed by a Drop guard; names carry the process ID and a counter so
//! parallel runs do not collide. Listener threads are stopped and joined before their
//! namespaces go.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use nft_backend::listing::chain_hashes;
use nft_backend::{render, NftRuleset, TABLE};
use policy_ir::ir::Protocol;
use policy_ir::oracle::{Probe, Verdict};
use policy_ir::Model;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!(
            "brindle-nft-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(st.success(), "ip netns add {name}");
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn exec(&self, prog: &str, args: &[&str], stdin: &str) -> Result<String, String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, prog])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {}: {}",
            self.0,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn sysctl(&self, kv: &str) {
        self.exec("sysctl", &["-qw", kv], "")
            .unwrap_or_else(|e| panic!("sysctl {kv} in {}: {e}", self.0));
    }

    fn load(&self, payload: &str) -> Result<(), String> {
        self.exec("nft", &["-f", "-"], payload).map(|_| ())
    }

    fn list(&self) -> String {
        self.exec("nft", &["list", "ruleset"], "")
            .expect("nft list")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Run `f` on a new thread that has joined network namespace `ns` (sockets it creates live
/// there).
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<Result<T, String>> {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: setns on a valid namespace fd; it changes only this thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        Ok(f())
    })
}

fn expected_chains(nft: &NftRuleset) -> BTreeMap<String, Vec<Option<String>>> {
    nft.chains()
        .iter()
        .map(|(n, c)| {
            (
                n.clone(),
                c.rules.iter().map(|r| Some(r.hash.clone())).collect(),
            )
        })
        .collect()
}

fn golden_inputs() -> Vec<PathBuf> {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&cases)
        .expect("golden/cases")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("input.yaml"))
        .filter(|p| p.is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn golden_payloads_check_load_read_back_and_reload() {
    let mut loaded = 0;
    for input in golden_inputs() {
        let model = Model::load(std::slice::from_ref(&input)).expect("load case");
        for node in model.nodes() {
            let ir = model.node_ir(&node);
            let what = format!("{} node {node}", input.display());
            let nft = render(&ir).unwrap_or_else(|e| panic!("{what}: {e}"));
            let payload = nft.payload();
            let ns = Netns::new();
            ns.exec("nft", &["-c", "-f", "-"], &payload)
                .unwrap_or_else(|e| panic!("{what}: nft -c: {e}"));
            ns.load(&payload)
                .unwrap_or_else(|e| panic!("{what}: nft -f: {e}"));
            let first = ns.list();
            let got = chain_hashes(&first, TABLE);
            let want = expected_chains(&nft);
            assert_eq!(got, want, "{what}: chains and rule hashes read back");
            let rules: usize = got.values().map(Vec::len).sum();
            assert_eq!(rules, nft.rule_count(), "{what}");
            // Sets and maps are there with their elements.
            for s in nft.sets() {
                assert!(
                    first.contains(&format!("set {} {{", s.name)),
                    "{what}: {}",
                    s.name
                );
            }
            for m in nft.maps() {
                assert!(first.contains(&format!("map {} {{", m.name)), "{what}");
                for (iface, _) in &m.elements {
                    assert!(first.contains(&format!("\"{iface}\" : goto")), "{what}");
                }
            }
            // Loading again replaces the table atomically and ends in the same state.
            ns.load(&payload)
                .unwrap_or_else(|e| panic!("{what}: second nft -f: {e}"));
            assert_eq!(ns.list(), first, "{what}: reload is idempotent");
            // And the table can be removed again.
            ns.load(&NftRuleset::delete_payload())
                .unwrap_or_else(|e| panic!("{what}: delete: {e}"));
            assert!(!ns.list().contains("table ip calico"), "{what}");
            loaded += 1;
        }
    }
    assert!(loaded >= 11, "only {loaded} node payloads loaded");
}

/// Listeners on some ports in one namespace, accepting and closing connections until dropped.
struct Listeners {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Listeners {
    fn start(ns: &Netns, ports: &[u16]) -> Listeners {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let ports = ports.to_vec();
        let stop2 = stop.clone();
        let thread = in_netns(&ns.0, move || {
            let ls: Vec<TcpListener> = match ports
                .iter()
                .map(|p| {
                    let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, *p))?;
                    l.set_nonblocking(true)?;
                    Ok(l)
                })
                .collect::<std::io::Result<Vec<_>>>()
            {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            while !stop2.load(Ordering::SeqCst) {
                for l in &ls {
                    while let Ok((s, _)) = l.accept() {
                        drop(s);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let l = Listeners {
            stop,
            thread: Some(thread),
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => l,
            Ok(Err(e)) => panic!("listeners in {}: {e}", ns.0),
            Err(_) => panic!("listeners in {} did not start", ns.0),
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Connected,
    TimedOut,
    Failed(String),
}

fn connect_from(ns: &Netns, dst: Ipv4Addr, port: u16) -> JoinHandle<Result<Outcome, String>> {
    in_netns(&ns.0, move || {
        match TcpStream::connect_timeout(
            &SocketAddr::from((dst, port)),
            Duration::from_millis(1500),
        ) {
            Ok(_) => Outcome::Connected,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Outcome::TimedOut,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    })
}

/// One node namespace with a workload namespace per endpoint of the node, wired as testbed.md
/// says. Field order is drop order: listeners, then workloads, then the node.
struct Testbed {
    listeners: Vec<Listeners>,
    workloads: Vec<(String, Ipv4Addr, Netns)>,
    node: Netns,
}

impl Testbed {
    fn new(endpoints: &[(String, Ipv4Addr)]) -> Testbed {
        let node = Netns::new();
        node.ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
        node.ip(&["route", "add", "169.254.1.1/32", "dev", "lo"]);
        node.sysctl("net.ipv4.ip_forward=1");
        let mut tb = Testbed {
            listeners: Vec::new(),
            workloads: Vec::new(),
            node,
        };
        for (iface, ip) in endpoints {
            let wl = Netns::new();
            tb.node.ip(&[
                "link", "add", iface, "type", "veth", "peer", "name", "eth0", "netns", &wl.0,
            ]);
            tb.node.ip(&["link", "set", iface, "up"]);
            wl.ip(&["link", "set", "eth0", "up"]);
            wl.ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"]);
            wl.ip(&["route", "add", "169.254.1.1", "dev", "eth0"]);
            wl.ip(&["route", "add", "default", "via", "169.254.1.1"]);
            tb.node
                .ip(&["route", "add", &format!("{ip}/32"), "dev", iface]);
            tb.node
                .sysctl(&format!("net.ipv4.conf.{iface}.proxy_arp=1"));
            tb.workloads.push((iface.clone(), *ip, wl));
        }
        tb
    }
}

/// Load the node's nft payload and probe every ordered workload pair on a few TCP ports;
/// returns (allowed, denied) counts.
fn traffic_follows_oracle(case: &str, node: &str, ports: &[u16]) -> (usize, usize) {
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/cases")
        .join(case)
        .join("input.yaml");
    let model = Model::load(&[input]).expect("load case");
    let ir = model.node_ir(node);
    let endpoints: Vec<(String, Ipv4Addr)> = ir
        .workloads
        .iter()
        .filter(|w| w.admin_up)
        .map(|w| (w.interface.clone(), w.addrs[0].addr()))
        .collect();
    assert!(endpoints.len() >= 2, "{case}/{node}: need two workloads");
    let nft = render(&ir).expect("render");
    let mut tb = Testbed::new(&endpoints);
    for (_, _, wl) in &tb.workloads {
        tb.listeners.push(Listeners::start(wl, ports));
    }
    // Without the table every pair connects: the topology works and denials below come
    // from the nft rules.
    {
        let (_, _, a) = &tb.workloads[1];
        let (_, b_ip, _) = &tb.workloads[0];
        let got = connect_from(a, *b_ip, ports[0]).join().unwrap().unwrap();
        assert_eq!(got, Outcome::Connected, "{case}/{node}: bare topology");
    }
    tb.node
        .load(&nft.payload())
        .unwrap_or_else(|e| panic!("{case}/{node}: nft -f: {e}"));
    let mut probes = Vec::new();
    for (a_if, a_ip, a_ns) in &tb.workloads {
        for (b_if, b_ip, _) in &tb.workloads {
            if a_if == b_if {
                continue;
            }
            for &port in ports {
                let v = model
                    .verdict(&Probe {
                        from: a_ip.to_string(),
                        to: b_ip.to_string(),
                        protocol: Protocol::Tcp,
                        port: Some(port),
                    })
                    .expect("oracle")
                    .verdict;
                probes.push((
                    format!("{a_ip} -> {b_ip}:{port}"),
                    v,
                    connect_from(a_ns, *b_ip, port),
                ));
            }
        }
    }
    let (mut allowed, mut denied) = (0, 0);
    let mut failures = Vec::new();
    for (what, v, h) in probes {
        let got = h.join().expect("probe thread").expect("setns");
        let want = match v {
            Verdict::Allow => Outcome::Connected,
            Verdict::Deny => Outcome::TimedOut,
        };
        if got != want {
            failures.push(format!("{what}: oracle {v:?}, got {got:?}"));
        }
        match v {
            Verdict::Allow => allowed += 1,
            Verdict::Deny => denied += 1,
        }
    }
    if !failures.is_empty() {
        let listing = tb.node.list();
        panic!(
            "{case}/{node}: {} probe(s) disagree with the oracle:\n{}\n{listing}",
            failures.len(),
            failures.join("\n")
        );
    }
    eprintln!("{case}/{node}: {allowed} allowed and {denied} denied probes agree with the oracle");
    (allowed, denied)
}

#[test]
fn real_traffic_k8s_default_deny() {
    let (allowed, denied) = traffic_follows_oracle("k8s-default-deny", "node1", &[80, 5432]);
    assert!(
        allowed > 0 && denied > 0,
        "{allowed} allowed, {denied} denied"
    );
}

#[test]
fn real_traffic_seed_tenant() {
    let (allowed, _) = traffic_follows_oracle("seed-tenant", "slave1", &[80, 3306]);
    assert!(allowed > 0);
}

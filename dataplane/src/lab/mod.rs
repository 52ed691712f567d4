//! The namespace testbed of `testbed.md`: one namespace per node on a fabric bridge with static
//! routes between them, one namespace per workload on a `cali*` veth behind the proxy-ARP gateway
//! trick, and one "outside" namespace holding every other address a probe uses. Listeners are
//! threads of this process (sockets created inside the namespaces), so cleanup is deleting the
//! namespaces and joining the threads — both done by `Drop`.

pub mod probe;
pub mod scenario;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{DataplaneError, Result};
use crate::netns::{unique_prefix, Netns, Target};

pub use probe::{Listeners, ProbeOutcome, ProbeProto};

/// The key of the outside namespace in [`Lab::host_netns`].
pub const OUTSIDE: &str = "<outside>";

/// Fabric network between nodes (198.18.0.0/24: the benchmarking range, never routed).
const FABRIC_PREFIX: [u8; 3] = [198, 18, 0];
const OUTSIDE_FABRIC_HOST: u8 = 254;

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks a running lab to stop at the next step (called from a Ctrl-C handler: async-signal-safe).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether [`request_stop`] was called.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

pub(crate) fn check_stop() -> Result<()> {
    if stop_requested() {
        Err(DataplaneError::Interrupted)
    } else {
        Ok(())
    }
}

/// What to build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// Node names, one namespace each.
    pub nodes: Vec<String>,
    pub workloads: Vec<LabWorkload>,
    /// Addresses that belong to no workload of the lab (external hosts, host endpoints).
    pub outside: Vec<Ipv4Addr>,
}

/// One workload endpoint: its own namespace, `eth0` inside, `interface` on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabWorkload {
    /// How probes name it (`namespace/name`).
    pub key: String,
    pub node: String,
    /// Host-side interface name (≤ 15 characters).
    pub interface: String,
    pub addrs: Vec<Ipv4Addr>,
}

/// A workload interface name for an endpoint: its `interfaceName` if set and valid, otherwise
/// `cali` + 11 hex characters derived from the endpoint's key (as Calico's CNI does from the
/// workload ID).
pub fn interface_name(interface: Option<&str>, key: &str) -> String {
    if let Some(i) = interface {
        if !i.is_empty() && i.len() <= 15 && !i.contains(['/', ' ', ':']) {
            return i.to_string();
        }
    }
    // FNV-1a 64 over the key: stable, dependency-free; 11 hex chars = 44 bits.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("cali{:011x}", h & 0xfff_ffff_ffff)
}

#[derive(Debug)]
struct NodeNs {
    ns: Netns,
    fabric_ip: Ipv4Addr,
}

/// A built testbed. Dropping it removes everything it created (unless [`Lab::keep`]).
#[derive(Debug)]
pub struct Lab {
    // Field order is drop order: listeners stop before their namespaces go.
    listeners: Option<Listeners>,
    hosts: BTreeMap<String, Netns>,
    host_addrs: BTreeMap<String, Vec<Ipv4Addr>>,
    nodes: BTreeMap<String, NodeNs>,
    fabric: Netns,
    prefix: String,
}

impl Lab {
    /// Builds the topology. On error everything built so far is removed.
    pub fn build(spec: &LabSpec) -> Result<Lab> {
        Lab::build_named(spec, &unique_prefix())
    }

    /// [`Lab::build`] with a chosen namespace-name prefix (must be unique on the machine).
    pub fn build_named(spec: &LabSpec, prefix: &str) -> Result<Lab> {
        let prefix = prefix.to_string();
        let fabric = Netns::create(&format!("{prefix}-fab"))?;
        fabric.ip(&["link", "add", "br0", "type", "bridge"])?;
        fabric.ip(&["link", "set", "br0", "up"])?;
        let mut lab = Lab {
            listeners: None,
            hosts: BTreeMap::new(),
            host_addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            fabric,
            prefix: prefix.clone(),
        };
        let node_names: BTreeSet<&String> = spec
            .nodes
            .iter()
            .chain(spec.workloads.iter().map(|w| &w.node))
            .collect();
        if node_names.len() > 250 {
            return Err(DataplaneError::Lab("more than 250 nodes".into()));
        }
        for (i, node) in node_names.into_iter().enumerate() {
            check_stop()?;
            let ns = Netns::create(&format!("{prefix}-n{i}"))?;
            let fabric_ip = Ipv4Addr::new(
                FABRIC_PREFIX[0],
                FABRIC_PREFIX[1],
                FABRIC_PREFIX[2],
                (i + 1) as u8,
            );
            lab.attach_to_fabric(&ns, &format!("f{i}"), fabric_ip)?;
            ns.sysctl("net.ipv4.ip_forward", "1")?;
            // The proxy-ARP gateway trick: a local address and a route to 169.254.1.1 on lo.
            ns.ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"])?;
            ns.ip(&["route", "add", "169.254.1.1/32", "dev", "lo"])?;
            lab.nodes.insert(node.clone(), NodeNs { ns, fabric_ip });
        }
        let mut used: BTreeSet<Ipv4Addr> = BTreeSet::new();
        for (j, w) in spec.workloads.iter().enumerate() {
            check_stop()?;
            if w.addrs.is_empty() {
                return Err(DataplaneError::Lab(format!(
                    "workload endpoint {} has no IPv4 address",
                    w.key
                )));
            }
            if w.interface.len() > 15 {
                return Err(DataplaneError::Lab(format!(
                    "interface name {} of {} is longer than 15 characters",
                    w.interface, w.key
                )));
            }
            for a in &w.addrs {
                if !used.insert(*a) {
                    return Err(DataplaneError::Lab(format!(
                        "address {a} is used by two lab hosts"
                    )));
                }
            }
            let ns = Netns::create(&format!("{prefix}-w{j}"))?;
            let node = &lab.nodes[&w.node];
            node.ns.ip(&[
                "link",
                "add",
                &w.interface,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ])?;
            for a in &w.addrs {
                ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "eth0"])?;
            }
            ns.ip(&["link", "set", "eth0", "up"])?;
            ns.ip(&["route", "add", "169.254.1.1", "dev", "eth0"])?;
            ns.ip(&["route", "add", "default", "via", "169.254.1.1"])?;
            node.ns.ip(&["link", "set", &w.interface, "up"])?;
            node.ns
                .sysctl(&format!("net.ipv4.conf.{}.proxy_arp", w.interface), "1")?;
            // Proxy-ARP answers are delayed up to 0.8 s by default: longer than a probe timeout.
            node.ns
                .sysctl(&format!("net.ipv4.neigh.{}.proxy_delay", w.interface), "0")?;
            for a in &w.addrs {
                node.ns
                    .ip(&["route", "add", &format!("{a}/32"), "dev", &w.interface])?;
            }
            // Every other node reaches this workload through the hosting node's fabric address.
            let via = node.fabric_ip.to_string();
            for (other, o) in &lab.nodes {
                if other != &w.node {
                    for a in &w.addrs {
                        o.ns.ip(&["route", "add", &format!("{a}/32"), "via", &via])?;
                    }
                }
            }
            lab.hosts.insert(w.key.clone(), ns);
            lab.host_addrs.insert(w.key.clone(), w.addrs.clone());
        }
        let outside: Vec<Ipv4Addr> = spec
            .outside
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !outside.is_empty() {
            for a in &outside {
                if used.contains(a) {
                    return Err(DataplaneError::Lab(format!(
                        "address {a} is both a workload's and an outside address"
                    )));
                }
            }
            let ns = Netns::create(&format!("{prefix}-out"))?;
            let out_ip = Ipv4Addr::new(
                FABRIC_PREFIX[0],
                FABRIC_PREFIX[1],
                FABRIC_PREFIX[2],
                OUTSIDE_FABRIC_HOST,
            );
            lab.attach_to_fabric(&ns, "fo", out_ip)?;
            for a in &outside {
                ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"])?;
                for o in lab.nodes.values() {
                    o.ns.ip(&[
                        "route",
                        "add",
                        &format!("{a}/32"),
                        "via",
                        &out_ip.to_string(),
                    ])?;
                }
            }
            for w in &spec.workloads {
                let via = lab.nodes[&w.node].fabric_ip.to_string();
                for a in &w.addrs {
                    ns.ip(&["route", "add", &format!("{a}/32"), "via", &via])?;
                }
            }
            lab.hosts.insert(OUTSIDE.to_string(), ns);
            lab.host_addrs.insert(OUTSIDE.to_string(), outside);
        }
        Ok(lab)
    }

    fn attach_to_fabric(&self, ns: &Netns, peer: &str, ip: Ipv4Addr) -> Result<()> {
        ns.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            self.fabric.name(),
        ])?;
        self.fabric.ip(&["link", "set", peer, "master", "br0"])?;
        self.fabric.ip(&["link", "set", peer, "up"])?;
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        Ok(())
    }

    /// The prefix shared by all of this lab's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where to apply a node's rules.
    pub fn node_target(&self, node: &str) -> Option<Target> {
        self.nodes.get(node).map(|n| n.ns.target())
    }

    /// Node names with their namespace names.
    pub fn node_namespaces(&self) -> BTreeMap<String, String> {
        self.nodes
            .iter()
            .map(|(k, v)| (k.clone(), v.ns.name().to_string()))
            .collect()
    }

    /// The namespace name of a host (workload key or [`OUTSIDE`]).
    pub fn host_netns(&self, key: &str) -> Option<&str> {
        self.hosts.get(key).map(|n| n.name())
    }

    /// Which host owns an address.
    pub fn host_of(&self, addr: Ipv4Addr) -> Option<&str> {
        self.host_addrs
            .iter()
            .find(|(_, a)| a.contains(&addr))
            .map(|(k, _)| k.as_str())
    }

    /// `conntrack -F` in every node namespace (established flows outlive policy changes).
    pub fn flush_conntrack(&self) -> Result<()> {
        for n in self.nodes.values() {
            n.ns.run("conntrack", &["-F"], None)?;
        }
        Ok(())
    }

    /// Starts listeners for every (destination, protocol, port) the probes use.
    pub fn start_listeners(&mut self, probes: &[probe::KernelProbe]) -> Result<()> {
        let mut targets = BTreeSet::new();
        for p in probes {
            let host = self.host_of(p.dst).ok_or_else(|| {
                DataplaneError::Lab(format!("no lab host owns destination {}", p.dst))
            })?;
            let ns = self.hosts[host].name().to_string();
            targets.insert((ns, p.dst, p.proto, p.port));
        }
        let listeners = self.listeners.take().unwrap_or_default();
        let listeners = self.listeners.insert(listeners);
        for (ns, addr, proto, port) in targets {
            listeners.ensure(&ns, addr, proto, port)?;
        }
        Ok(())
    }

    /// Runs the probes, in parallel, returning one outcome per probe in input order.
    pub fn run_probes(
        &mut self,
        probes: &[probe::KernelProbe],
        timeout: std::time::Duration,
    ) -> Result<Vec<ProbeOutcome>> {
        self.start_listeners(probes)?;
        let mut jobs = Vec::with_capacity(probes.len());
        for p in probes {
            let src_host = self
                .host_of(p.src)
                .ok_or_else(|| DataplaneError::Lab(format!("no lab host owns source {}", p.src)))?;
            jobs.push((self.hosts[src_host].name().to_string(), p.clone()));
        }
        let listeners = self.listeners.as_ref().expect("listeners started");
        probe::run_parallel(&jobs, listeners, timeout)
    }

    /// Leave every namespace in place (`--keep`); listeners still stop at drop.
    pub fn keep(&mut self) {
        self.fabric.keep();
        for n in self.nodes.values_mut() {
            n.ns.keep();
        }
        for h in self.hosts.values_mut() {
            h.keep();
        }
    }
}

extern "C" fn on_interrupt(_sig: libc::c_int) {
    request_stop();
}

/// Routes SIGINT and SIGTERM to [`request_stop`]: a running lab stops at its next step and its
/// guards remove everything it built. (Child programs in the same process group also get the
/// signal and fail, which ends the current step.)
pub fn install_interrupt_handler() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

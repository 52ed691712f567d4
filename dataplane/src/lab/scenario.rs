//! The scenario runner behind `brindle lab`: resolve the probes' endpoints, build the testbed,
//! apply every involved node's real rules, probe the kernel, and put the kernel's verdict beside
//! the oracle's.
//!
//! The model side (resolution, rendering, the oracle) comes through the [`Scenario`] trait so the
//! runner does not depend on how the model is loaded.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::apply::apply;
use crate::error::{DataplaneError, Result};
use crate::lab::probe::KernelProbe;
use crate::lab::{check_stop, interface_name, Lab, LabSpec, LabWorkload, ProbeProto};
use crate::state::Desired;

/// One probe as written in a probe file (the format of `brindle verdict --probes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub from: String,
    pub to: String,
    pub protocol: ProbeProto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// Where a probe's `from`/`to` lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Resolved {
    /// A workload endpoint: its own namespace behind `interface` on `node`.
    Workload {
        key: String,
        node: String,
        interface: Option<String>,
        addrs: Vec<Ipv4Addr>,
    },
    /// Anything else (an external address, a host endpoint's address): the outside namespace.
    Outside { addr: Ipv4Addr },
}

/// The oracle's answer for one probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OracleAnswer {
    pub allow: bool,
    /// The oracle's explanation of each side, as it serialises it.
    pub egress: serde_json::Value,
    pub ingress: serde_json::Value,
}

/// One node's rules, in the form of the backend that programs them.
#[derive(Debug, Clone)]
pub enum NodeRules {
    /// iptables + ipsets, applied by [`apply`] (Felix's update protocol).
    Iptables(Desired),
    /// A complete `nft -f` script that atomically replaces Brindle's nftables table.
    Nftables { payload: String },
}

/// What the runner needs from the model.
pub trait Scenario {
    /// Resolves `namespace/name`, `name` or an IPv4 address.
    fn resolve(&self, spec: &str) -> std::result::Result<Resolved, String>;
    /// The rules of one node, as the backend renders them.
    fn rules_for(&self, node: &str) -> std::result::Result<NodeRules, String>;
    /// The reference verdict.
    fn oracle(&self, probe: &ProbeSpec) -> std::result::Result<OracleAnswer, String>;
}

/// Options of a lab run.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub timeout: Duration,
    /// Leave the namespaces in place.
    pub keep: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            timeout: Duration::from_millis(700),
            keep: false,
        }
    }
}

/// One line of the connectivity matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabResult {
    pub from: String,
    pub to: String,
    pub protocol: ProbeProto,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The kernel's verdict: `allow` or `deny`.
    pub verdict: String,
    /// The oracle's verdict.
    pub oracle: String,
    pub agree: bool,
    /// How the kernel probe ended (`connected`, `timeout`, `echo reply`, …).
    pub kernel: String,
    pub egress: serde_json::Value,
    pub ingress: serde_json::Value,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabReport {
    pub probes: Vec<LabResult>,
    pub disagreements: usize,
    /// Node name → namespace name (useful with `--keep`).
    pub namespaces: BTreeMap<String, String>,
    /// Every namespace of this run starts with `<prefix>-`.
    pub prefix: String,
    pub kept: bool,
}

fn word(allow: bool) -> String {
    if allow { "allow" } else { "deny" }.to_string()
}

/// Runs a scenario end to end. The testbed is removed before returning (unless `keep`), also on
/// error and on [`crate::lab::request_stop`].
pub fn run_scenario(
    model: &dyn Scenario,
    probes: &[ProbeSpec],
    opts: &LabOptions,
) -> Result<LabReport> {
    // 1. Resolve everything first: bad input fails before any namespace exists.
    let mut spec = LabSpec::default();
    let mut workloads: BTreeMap<String, LabWorkload> = BTreeMap::new();
    let mut kernel_probes = Vec::with_capacity(probes.len());
    for (i, p) in probes.iter().enumerate() {
        let mut ends = [Ipv4Addr::UNSPECIFIED; 2];
        for (k, (field, name)) in [("from", &p.from), ("to", &p.to)].into_iter().enumerate() {
            let r = model.resolve(name).map_err(|e| {
                DataplaneError::Lab(format!("probe {i} field `{field}` ({name}): {e}"))
            })?;
            ends[k] = match r {
                Resolved::Workload {
                    key,
                    node,
                    interface,
                    addrs,
                } => {
                    let first = *addrs.first().ok_or_else(|| {
                        DataplaneError::Lab(format!(
                            "probe {i} field `{field}`: endpoint {key} has no IPv4 address"
                        ))
                    })?;
                    workloads.entry(key.clone()).or_insert_with(|| LabWorkload {
                        interface: interface_name(interface.as_deref(), &key),
                        key,
                        node,
                        addrs,
                    });
                    first
                }
                Resolved::Outside { addr } => {
                    spec.outside.push(addr);
                    addr
                }
            };
        }
        if ends[0] == ends[1] {
            return Err(DataplaneError::Lab(format!(
                "probe {i}: `from` and `to` are the same address {}",
                ends[0]
            )));
        }
        let port = match (p.protocol, p.port) {
            (ProbeProto::Icmp, _) => 0,
            (_, Some(port)) => port,
            (proto, None) => {
                return Err(DataplaneError::Lab(format!(
                    "probe {i} field `port`: required for {}",
                    proto.name()
                )))
            }
        };
        kernel_probes.push(KernelProbe {
            src: ends[0],
            dst: ends[1],
            proto: p.protocol,
            port,
        });
    }
    // The outside namespace must not claim a workload's address.
    let workload_addrs: Vec<Ipv4Addr> = workloads.values().flat_map(|w| w.addrs.clone()).collect();
    spec.outside.retain(|a| !workload_addrs.contains(a));
    spec.workloads = workloads.into_values().collect();
    spec.nodes = spec.workloads.iter().map(|w| w.node.clone()).collect();
    spec.nodes.sort();
    spec.nodes.dedup();

    // 2. Oracle verdicts and rules, still before touching the kernel.
    let mut answers = Vec::with_capacity(probes.len());
    for (i, p) in probes.iter().enumerate() {
        answers.push(
            model
                .oracle(p)
                .map_err(|e| DataplaneError::Lab(format!("probe {i}: oracle: {e}")))?,
        );
    }
    let mut rules = BTreeMap::new();
    for node in &spec.nodes {
        let r = model
            .rules_for(node)
            .map_err(|e| DataplaneError::Lab(format!("node {node}: {e}")))?;
        rules.insert(node.clone(), r);
    }

    // 3. Build, apply, probe.
    check_stop()?;
    let mut lab = Lab::build(&spec)?;
    if opts.keep {
        lab.keep();
    }
    for (node, node_rules) in &rules {
        check_stop()?;
        let target = lab.node_target(node).expect("lab has every node");
        match node_rules {
            NodeRules::Iptables(desired) => {
                apply(&target, desired)?;
            }
            NodeRules::Nftables { payload } => {
                target.run("nft", &["-f", "-"], Some(payload))?;
            }
        }
    }
    lab.flush_conntrack()?;
    check_stop()?;
    let outcomes = lab.run_probes(&kernel_probes, opts.timeout)?;
    // Interrupted while probing: the outcomes may be cut short; report nothing half-done.
    check_stop()?;
    let mut report = LabReport {
        probes: Vec::with_capacity(probes.len()),
        disagreements: 0,
        namespaces: lab.node_namespaces(),
        prefix: lab.prefix().to_string(),
        kept: opts.keep,
    };
    for ((p, o), a) in probes.iter().zip(outcomes).zip(answers) {
        let agree = o.allowed == a.allow;
        if !agree {
            report.disagreements += 1;
        }
        report.probes.push(LabResult {
            from: p.from.clone(),
            to: p.to.clone(),
            protocol: p.protocol,
            port: p.port,
            verdict: word(o.allowed),
            oracle: word(a.allow),
            agree,
            kernel: o.detail,
            egress: a.egress,
            ingress: a.ingress,
        });
    }
    Ok(report)
}

/// The oracle's reason for the side that decided: the denying side of a deny, else the
/// destination's (or the source's when the destination is not a Calico endpoint).
fn deciding_reason(r: &LabResult) -> String {
    let side = |v: &serde_json::Value| -> (String, String, String) {
        (
            v["verdict"].as_str().unwrap_or_default().to_string(),
            v["decided_by"].as_str().unwrap_or_default().to_string(),
            v["reason"].as_str().unwrap_or_default().to_string(),
        )
    };
    let (ev, _, er) = side(&r.egress);
    let (iv, idec, ir) = side(&r.ingress);
    if r.oracle == "deny" {
        if ev == "deny" {
            er
        } else {
            ir
        }
    } else if iv == "allow" && idec == "not-calico-endpoint" {
        er
    } else {
        ir
    }
}

/// The connectivity matrix for people: one line per probe, kernel beside oracle.
pub fn render_report(report: &LabReport, color: bool) -> String {
    use std::fmt::Write as _;
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut rows: Vec<[String; 7]> = vec![[
        "FROM".into(),
        "TO".into(),
        "PROBE".into(),
        "KERNEL".into(),
        "ORACLE".into(),
        "".into(),
        "DECIDED BY (oracle)".into(),
    ]];
    for r in &report.probes {
        let probe = match r.port {
            Some(p) if r.protocol != ProbeProto::Icmp => format!("{}/{p}", r.protocol.name()),
            _ => r.protocol.name().to_string(),
        };
        rows.push([
            r.from.clone(),
            r.to.clone(),
            probe,
            format!("{} ({})", r.verdict, r.kernel),
            r.oracle.clone(),
            if r.agree {
                "ok".into()
            } else {
                "DISAGREE".into()
            },
            deciding_reason(r),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (k, (w, c)) in widths.iter().zip(row).enumerate() {
            let cell = format!("{c:<w$}");
            let cell = if n == 0 {
                paint("1", &cell)
            } else if k == 3 || k == 4 {
                paint(if c.starts_with("allow") { "32" } else { "31" }, &cell)
            } else if k == 5 && c == "DISAGREE" {
                paint("1;31", &cell)
            } else {
                cell
            };
            line.push_str(&cell);
            line.push_str("  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(
        out,
        "{} probes, {} disagreement(s) between kernel and oracle",
        report.probes.len(),
        report.disagreements
    );
    out
}

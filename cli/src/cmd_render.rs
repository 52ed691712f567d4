//! `brindle compile` and `brindle trace`: render a node's iptables rules and ipsets, and follow
//! one packet through the rendered rules of the nodes it crosses.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use iptables_backend::trace::{format_trace, trace, NodeRules, TraceEnd};
use policy_ir::ir::NodeIr;

#[derive(clap::Args)]
pub struct CompileArgs {
    /// Resource files or directories (YAML/JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The node to compile for.
    #[arg(long)]
    node: String,
    /// Dataplane backend (only `iptables`).
    #[arg(long, default_value = "iptables")]
    backend: String,
    /// Write `iptables.rules` and `ipsets.rules` into this directory instead of printing a
    /// readable view.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn load(paths: &[PathBuf]) -> anyhow::Result<policy_ir::Model> {
    policy_ir::Model::load(paths).map_err(|e| anyhow::anyhow!("{e}"))
}

fn node_ir(model: &policy_ir::Model, node: &str) -> anyhow::Result<NodeIr> {
    if !model.nodes().iter().any(|n| n == node) {
        bail!(
            "unknown node `{node}` (known: {})",
            model.nodes().join(", ")
        );
    }
    Ok(model.node_ir(node))
}

pub fn run_compile(args: CompileArgs) -> anyhow::Result<ExitCode> {
    if args.backend != "iptables" {
        bail!(
            "unsupported backend `{}` (supported: iptables)",
            args.backend
        );
    }
    let model = load(&args.paths)?;
    let ir = node_ir(&model, &args.node)?;
    let rs = iptables_backend::render(&ir);
    let problems = iptables_backend::graph::check(&rs);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        bail!(
            "internal error: rendered chain graph is unsound:\n{}",
            list.join("\n")
        );
    }
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let rules = dir.join("iptables.rules");
            let sets = dir.join("ipsets.rules");
            std::fs::write(&rules, rs.combined_restore_payload())
                .with_context(|| format!("writing {}", rules.display()))?;
            std::fs::write(&sets, rs.ipset_restore_payload())
                .with_context(|| format!("writing {}", sets.display()))?;
            eprintln!(
                "node {}: {} rules, {} ipsets -> {}, {}",
                args.node,
                rs.rule_count(),
                rs.ipsets.len(),
                rules.display(),
                sets.display()
            );
        }
        None => {
            println!(
                "# node {}: {} workload endpoints, {} host endpoints, {} rules, {} ipsets",
                args.node,
                ir.workloads.len(),
                ir.host_endpoints.len(),
                rs.rule_count(),
                rs.ipsets.len()
            );
            print!("{}", rs.readable());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct TraceArgs {
    /// Resource files or directories (YAML/JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Source: `namespace/name`, `name` (workload or host endpoint) or an IPv4 address.
    #[arg(long)]
    from: String,
    /// Destination, in the same forms as --from.
    #[arg(long)]
    to: String,
    /// tcp, udp, sctp, icmp, udplite or an IP protocol number.
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Destination port (TCP/UDP/SCTP).
    #[arg(long)]
    port: Option<u16>,
    /// Print `{"verdict", "path": [...]}` as JSON.
    #[arg(long)]
    json: bool,
}

fn protocol_number(s: &str) -> anyhow::Result<u8> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "sctp" => 132,
        "udplite" => 136,
        other => other
            .parse()
            .with_context(|| format!("--protocol: unknown protocol `{s}`"))?,
    })
}

/// Resolve an endpoint spec the way the oracle does (`Model::resolve_address`).
fn resolve(model: &policy_ir::Model, spec: &str) -> anyhow::Result<TraceEnd> {
    let a = model
        .resolve_address(spec)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(match a.endpoint {
        None => TraceEnd::External { ip: a.ip },
        Some(ep) if ep.host_endpoint => TraceEnd::Host {
            node: ep.node,
            iface: ep.interface,
            ip: a.ip,
        },
        Some(ep) => TraceEnd::Workload {
            node: ep.node,
            iface: ep.interface,
            ip: a.ip,
        },
    })
}

pub fn run_trace(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let model = load(&args.paths)?;
    let protocol = protocol_number(&args.protocol)?;
    if args.port.is_some() && !matches!(protocol, 6 | 17 | 132 | 136) {
        bail!("--port needs a protocol with ports (tcp, udp, sctp, udplite)");
    }
    let from = resolve(&model, &args.from).context("--from")?;
    let to = resolve(&model, &args.to).context("--to")?;
    let mut nodes = BTreeMap::new();
    for end in [&from, &to] {
        if let TraceEnd::Workload { node, .. } | TraceEnd::Host { node, .. } = end {
            if !nodes.contains_key(node) {
                let rules = NodeRules::new(&model.node_ir(node))
                    .with_context(|| format!("rendering node {node}"))?;
                nodes.insert(node.clone(), rules);
            }
        }
    }
    let t = trace(&nodes, &from, &to, protocol, args.port).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        let v = serde_json::json!({
            "verdict": if t.allowed { "allow" } else { "deny" },
            "from": from,
            "to": to,
            "legs": t.legs,
            "path": t.path,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "trace {} -> {} {}{}",
            args.from,
            args.to,
            args.protocol,
            args.port.map(|p| format!("/{p}")).unwrap_or_default()
        );
        print!("{}", format_trace(&t));
    }
    Ok(ExitCode::SUCCESS)
}

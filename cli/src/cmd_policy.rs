//! `brindle check | verdict | explain | lint`: validation, the reference evaluator and lint.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use policy_ir::oracle::{
    parse_probe_protocol, parse_probes, protocol_name, Probe, ProbeVerdict, SideVerdict, Verdict,
};
use policy_ir::{Model, PolicyIrError};

/// Loads, printing every diagnostic to stderr; `Ok(None)` when the input has errors.
fn load_model(paths: &[PathBuf]) -> anyhow::Result<Option<Model>> {
    match Model::load(paths) {
        Ok(m) => Ok(Some(m)),
        Err(PolicyIrError::Invalid(diags)) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!("{} error(s)", diags.len());
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Resource files or directories (YAML or JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let Some(model) = load_model(&args.paths)? else {
        return Ok(ExitCode::from(1));
    };
    let res = model.resources();
    println!(
        "ok: {} policies, {} profiles, {} endpoints, {} network sets, {} pools, {} nodes",
        res.global_network_policies.len() + res.network_policies.len(),
        res.profiles.len(),
        res.workload_endpoints.len() + res.host_endpoints.len(),
        res.global_network_sets.len() + res.network_sets.len(),
        res.ip_pools.len(),
        model.nodes().len()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct VerdictArgs {
    /// Resource files or directories (YAML or JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// JSON or YAML list of `{from, to, protocol, port}`.
    #[arg(long)]
    probes: PathBuf,
    /// Print `{"probes": [...]}` as JSON.
    #[arg(long)]
    json: bool,
}

fn side_json(s: &SideVerdict) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or(serde_json::Value::Null)
}

fn probe_json(p: &Probe, v: &ProbeVerdict) -> serde_json::Value {
    serde_json::json!({
        "from": p.from,
        "to": p.to,
        "protocol": protocol_name(p.protocol),
        "port": p.port,
        "verdict": if v.verdict == Verdict::Allow { "allow" } else { "deny" },
        "egress": side_json(&v.egress),
        "ingress": side_json(&v.ingress),
    })
}

fn word(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    }
}

pub fn run_verdict(args: VerdictArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.probes)
        .with_context(|| format!("cannot read {}", args.probes.display()))?;
    let probes = parse_probes(&args.probes.display().to_string(), &text)?;
    let Some(model) = load_model(&args.paths)? else {
        anyhow::bail!("the resources have errors");
    };
    let mut out = Vec::new();
    for p in &probes {
        let v = model.verdict(p)?;
        if args.json {
            out.push(probe_json(p, &v));
        } else {
            let port = p.port.map(|x| format!(":{x}")).unwrap_or_default();
            println!(
                "{:<5} {} -> {} {}{port}  (egress {}: {}; ingress {}: {})",
                word(v.verdict),
                p.from,
                p.to,
                protocol_name(p.protocol),
                word(v.egress.verdict),
                v.egress.reason,
                word(v.ingress.verdict),
                v.ingress.reason
            );
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "probes": out }))?
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Resource files or directories (YAML or JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Source: `namespace/name`, `name` or an IPv4 address.
    #[arg(long)]
    from: String,
    /// Destination: `namespace/name`, `name` or an IPv4 address.
    #[arg(long)]
    to: String,
    /// tcp, udp, sctp, icmp or a protocol number.
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Destination port (TCP/UDP/SCTP).
    #[arg(long)]
    port: Option<u16>,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

fn explain_side(model: &Model, title: &str, s: &SideVerdict) {
    println!("{title}: {}", word(s.verdict).to_uppercase());
    if let Some(e) = &s.endpoint {
        println!("  endpoint: {e}");
    }
    if let Some(t) = &s.tier {
        println!("  tier:     {t}");
    }
    if let Some(p) = &s.policy {
        println!("  policy:   {p}");
    }
    if let Some(p) = &s.profile {
        println!("  profile:  {p}");
    }
    if let (Some(i), Some(r)) = (s.rule_index, &s.rule) {
        println!("  rule {i}:   {r}");
    }
    println!("  because:  {}", s.reason);
    let _ = model;
}

pub fn run_explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let protocol = parse_probe_protocol(&args.protocol)
        .with_context(|| format!("unknown protocol {:?}", args.protocol))?;
    if protocol.has_ports() && args.port.is_none() {
        anyhow::bail!("--port is required for {}", args.protocol);
    }
    let Some(model) = load_model(&args.paths)? else {
        anyhow::bail!("the resources have errors");
    };
    let probe = Probe {
        from: args.from,
        to: args.to,
        protocol,
        port: args.port,
    };
    let v = model.verdict(&probe)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&probe_json(&probe, &v))?);
        return Ok(ExitCode::SUCCESS);
    }
    let port = probe.port.map(|x| format!(" port {x}")).unwrap_or_default();
    println!(
        "{} -> {} {}{port}: {}",
        probe.from,
        probe.to,
        protocol_name(probe.protocol),
        word(v.verdict).to_uppercase()
    );
    explain_side(&model, "egress at source", &v.egress);
    explain_side(&model, "ingress at destination", &v.ingress);
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct LintArgs {
    /// Resource files or directories (YAML or JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print the findings as JSON (`{"findings": [...]}`).
    #[arg(long)]
    json: bool,
}

/// Exit 0 clean, 1 findings, 2 errors.
pub fn run_lint(args: LintArgs) -> anyhow::Result<ExitCode> {
    let Some(model) = load_model(&args.paths)? else {
        return Ok(ExitCode::from(2));
    };
    let findings = policy_ir::lint::lint(&model);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "findings": findings }))?
        );
    } else {
        for f in &findings {
            println!("{f}");
        }
        if findings.is_empty() {
            println!("no findings");
        } else {
            println!("{} finding(s)", findings.len());
        }
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

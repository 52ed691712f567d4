//! `brindle check | verdict | explain | lint`: validation, the reference evaluator and lint.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use policy_ir::PolicyIrError;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Resource files or directories (YAML or JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Loads, printing every diagnostic; `Ok(None)` when the input has errors.
fn load(paths: &[PathBuf]) -> anyhow::Result<Option<policy_ir::Resources>> {
    match policy_ir::load::load_paths(paths) {
        Ok(r) => Ok(Some(r)),
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

pub fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let Some(res) = load(&args.paths)? else {
        return Ok(ExitCode::from(1));
    };
    println!(
        "ok: {} policies, {} profiles, {} endpoints, {} network sets, {} pools, {} nodes",
        res.global_network_policies.len() + res.network_policies.len(),
        res.profiles.len(),
        res.workload_endpoints.len() + res.host_endpoints.len(),
        res.global_network_sets.len() + res.network_sets.len(),
        res.ip_pools.len(),
        res.nodes.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct VerdictArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_verdict(args: VerdictArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

#[derive(clap::Args)]
pub struct LintArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_lint(args: LintArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    let _ = PathBuf::new;
    let _: Option<anyhow::Error> = None::<()>.context("x").err();
    anyhow::bail!("this command is not implemented yet")
}

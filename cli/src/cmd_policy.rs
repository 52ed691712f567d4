//! `brindle` commands of this group. (Not yet implemented.)
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
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
    anyhow::bail!("this command is not implemented yet")
}

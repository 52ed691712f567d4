//! `brindle` commands of this group. (Not yet implemented.)
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CompileArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_compile(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

#[derive(clap::Args)]
pub struct TraceArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_trace(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

//! `brindle` commands of this group. (Not yet implemented.)
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DiffArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

#[derive(clap::Args)]
pub struct LabArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_lab(args: LabArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

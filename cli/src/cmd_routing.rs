//! `brindle` commands of this group. (Not yet implemented.)
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct IpamArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_ipam(args: IpamArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

#[derive(clap::Args)]
pub struct RoutesArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_routes(args: RoutesArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

#[derive(clap::Args)]
pub struct BirdConfigArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_bird_config(args: BirdConfigArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

#[derive(clap::Args)]
pub struct NodeArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run_node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let _ = args.rest;
    anyhow::bail!("this command is not implemented yet")
}

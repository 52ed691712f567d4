//! `brindle`: the command-line front end. Each command group lives in its own module; this file
//! only dispatches and turns errors into reports and exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_node;
mod cmd_policy;
mod cmd_render;
mod cmd_routing;
mod cmd_selector;

#[derive(Parser)]
#[command(
    name = "brindle",
    version,
    about = "Calico's node dataplane, reimplemented: policy compiler, chain diff, lab and routing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, canonicalise and evaluate Calico selectors.
    Selector(cmd_selector::SelectorArgs),
    /// Validate resource files and report every error with file:line:column.
    Check(cmd_policy::CheckArgs),
    /// Reference verdicts for a list of probes (the oracle).
    Verdict(cmd_policy::VerdictArgs),
    /// Explain, for a person, which tier/policy/profile rule decided one probe.
    Explain(cmd_policy::ExplainArgs),
    /// Find shadowed rules, unused policies and selectors, unreachable profiles.
    Lint(cmd_policy::LintArgs),
    /// Compile a node's iptables rules and ipsets.
    Compile(cmd_render::CompileArgs),
    /// Follow one packet through the compiled rules of both nodes.
    Trace(cmd_render::TraceArgs),
    /// Show what applying would change on this node (dry run).
    Diff(cmd_node::DiffArgs),
    /// Apply a node's rules to the kernel (minimal, all-or-nothing per table).
    Apply(cmd_node::ApplyArgs),
    /// Build a namespace testbed, apply the real rules and probe the kernel against the oracle.
    Lab(cmd_node::LabArgs),
    /// IP address management: blocks, affinities, assignments.
    Ipam(cmd_routing::IpamArgs),
    /// Print a node's desired kernel routes in `ip route` syntax.
    Routes(cmd_routing::RoutesArgs),
    /// Render a node's BIRD 2 configuration.
    BirdConfig(cmd_routing::BirdConfigArgs),
    /// Node commands (`brindle node status`).
    Node(cmd_routing::NodeArgs),
}

/// Read-only commands end quietly when their reader goes away (`brindle explain ... | head`),
/// like other Unix tools: the default SIGPIPE action. Commands that change the kernel or the
/// datastore (apply, lab, ipam, node) keep Rust's "ignore SIGPIPE" so that a closed pipe can
/// never stop them halfway or skip their cleanup; for them a write error is an error.
fn end_quietly_on_closed_pipe(command: &Command) {
    let read_only = matches!(
        command,
        Command::Selector(_)
            | Command::Check(_)
            | Command::Verdict(_)
            | Command::Explain(_)
            | Command::Lint(_)
            | Command::Compile(_)
            | Command::Trace(_)
            | Command::Diff(_)
            | Command::Routes(_)
            | Command::BirdConfig(_)
    );
    if read_only {
        // SAFETY: called before any other thread exists; restores the default disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    end_quietly_on_closed_pipe(&cli.command);
    let result = match cli.command {
        Command::Selector(a) => cmd_selector::run(a),
        Command::Check(a) => cmd_policy::run_check(a),
        Command::Verdict(a) => cmd_policy::run_verdict(a),
        Command::Explain(a) => cmd_policy::run_explain(a),
        Command::Lint(a) => cmd_policy::run_lint(a),
        Command::Compile(a) => cmd_render::run_compile(a),
        Command::Trace(a) => cmd_render::run_trace(a),
        Command::Diff(a) => cmd_node::run_diff(a),
        Command::Apply(a) => cmd_node::run_apply(a),
        Command::Lab(a) => cmd_node::run_lab(a),
        Command::Ipam(a) => cmd_routing::run_ipam(a),
        Command::Routes(a) => cmd_routing::run_routes(a),
        Command::BirdConfig(a) => cmd_routing::run_bird_config(a),
        Command::Node(a) => cmd_routing::run_node(a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

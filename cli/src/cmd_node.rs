//! `brindle diff`, `brindle apply`, `brindle lab`: the node's kernel edge (dataplane crate).
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use dataplane::apply::{apply, ApplyReport};
use dataplane::lab::scenario::{render_report, run_scenario, LabOptions, ProbeSpec};
use dataplane::netns::Target;
use dataplane::plan::{compute, render_text, Style};
use dataplane::state::{parse_dump, read_current, Current, Desired};

mod model {
    //! The policy-ir side: load resources and render a node.
    use std::path::PathBuf;

    pub use dataplane::model::LabBackend;
    use dataplane::model::{desired_for, ModelScenario};
    use dataplane::state::Desired;

    pub struct Loaded {
        model: policy_ir::Model,
    }

    pub fn load(paths: &[PathBuf]) -> anyhow::Result<Loaded> {
        let model = policy_ir::Model::load(paths).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Loaded { model })
    }

    impl Loaded {
        pub fn scenario(&self, backend: LabBackend) -> ModelScenario<'_> {
            ModelScenario {
                model: &self.model,
                backend,
            }
        }

        pub fn desired(&self, node: &str) -> anyhow::Result<Desired> {
            desired_for(&self.model, node).map_err(|e| anyhow::anyhow!("{e}"))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

#[derive(clap::Args)]
pub struct DiffArgs {
    /// Resource files or directories (YAML or JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The node whose rules to compare.
    #[arg(long)]
    node: String,
    /// Compare with a saved dump (`{ iptables-save; ipset save; } > FILE`) instead of the kernel.
    #[arg(long, value_name = "FILE", conflicts_with = "netns")]
    current: Option<PathBuf>,
    /// Read the live state of this network namespace instead of the current one.
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Colour the unified diff (auto: only on a terminal).
    #[arg(long, value_enum, default_value = "auto")]
    color: ColorChoice,
}

fn target(netns: &Option<String>) -> Target {
    match netns {
        Some(n) => Target::Netns(n.clone()),
        None => Target::Current,
    }
}

fn read_state(
    current: &Option<PathBuf>,
    netns: &Option<String>,
) -> anyhow::Result<(Current, String)> {
    match current {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let name = path.display().to_string();
            Ok((parse_dump(&text, &name)?, name))
        }
        None => {
            let t = target(netns);
            let name = match &t {
                Target::Current => "kernel".to_string(),
                Target::Netns(n) => format!("kernel (netns {n})"),
            };
            Ok((read_current(&t)?, name))
        }
    }
}

/// Exit 0: nothing would change; 1: something would; 2: error.
pub fn run_diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let loaded = model::load(&args.paths)?;
    let desired: Desired = loaded.desired(&args.node)?;
    let (current, current_name) = read_state(&args.current, &args.netns)?;
    let plan = compute(&desired, &current);
    if args.json {
        let out = serde_json::json!({
            "node": args.node,
            "changes": !plan.is_empty(),
            "counts": plan.counts(),
            "tables": plan.tables,
            "ipsets": plan.ipsets,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let style = Style {
            color: args.color.enabled(),
        };
        print!(
            "{}",
            render_text(
                &plan,
                &format!("brindle (node {})", args.node),
                &current_name,
                style
            )
        );
    }
    Ok(if plan.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Resource files or directories (YAML or JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The node whose rules to apply.
    #[arg(long)]
    node: String,
    /// Apply inside this network namespace (`ip netns` name) instead of the current one.
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Machine-readable report.
    #[arg(long)]
    json: bool,
}

/// Exit 0 when applied (or nothing to do), 2 on error (the failing table is left unchanged).
pub fn run_apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let loaded = model::load(&args.paths)?;
    let desired = loaded.desired(&args.node)?;
    let t = target(&args.netns);
    let report: ApplyReport = apply(&t, &desired)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.plan.is_empty() {
        println!("node {}: already up to date, nothing written", args.node);
    } else {
        let c = report.plan.counts();
        println!(
            "node {}: wrote {} table(s) [{}], {} bytes in {:.1} ms; chains +{} ~{} -{}; hook chains {}; ipsets {} (+{} -{} members); destroyed sets: {}",
            args.node,
            report.tables_written.len(),
            report.tables_written.join(", "),
            report.payload_bytes,
            report.write_micros as f64 / 1000.0,
            c.chains_added,
            c.chains_changed,
            c.chains_removed,
            c.hook_chains,
            c.sets,
            c.set_members_added,
            c.set_members_removed,
            if report.sets_destroyed.is_empty() {
                "none".to_string()
            } else {
                report.sets_destroyed.join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Iptables,
    Nft,
}

#[derive(clap::Args)]
pub struct LabArgs {
    /// Resource files or directories (YAML or JSON).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// JSON or YAML list of probes: `{from, to, protocol, port}` (as for `brindle verdict`).
    #[arg(long, value_name = "FILE")]
    probes: PathBuf,
    /// Which dataplane to program.
    #[arg(long, value_enum, default_value = "iptables")]
    backend: Backend,
    /// Machine-readable output: `{"probes": [{from, to, protocol, port, verdict, oracle, ...}]}`.
    #[arg(long)]
    json: bool,
    /// Leave the namespaces in place for inspection (`ip netns list`).
    #[arg(long)]
    keep: bool,
    /// Probe timeout in milliseconds (a denied probe costs one timeout).
    #[arg(long, default_value_t = 700, value_name = "MS")]
    timeout_ms: u64,
    /// Colour the matrix (auto: only on a terminal).
    #[arg(long, value_enum, default_value = "auto")]
    color: ColorChoice,
}

/// Exit 0 when kernel and oracle agree on every probe, 1 on any disagreement, 2 on error.
pub fn run_lab(args: LabArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.probes)
        .with_context(|| format!("cannot read {}", args.probes.display()))?;
    let probes: Vec<ProbeSpec> =
        dataplane::model::probes_from_file(&args.probes.display().to_string(), &text)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let loaded = model::load(&args.paths)?;
    dataplane::lab::install_interrupt_handler();
    let opts = LabOptions {
        timeout: Duration::from_millis(args.timeout_ms),
        keep: args.keep,
    };
    let scenario = loaded.scenario(match args.backend {
        Backend::Iptables => model::LabBackend::Iptables,
        Backend::Nft => model::LabBackend::Nftables,
    });
    let report = run_scenario(&scenario, &probes, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_report(&report, args.color.enabled()));
        if report.kept {
            for (node, ns) in &report.namespaces {
                println!("kept: node {node} in netns {ns} (ip netns exec {ns} iptables-save)");
            }
            println!(
                "remove with: for n in $(ip netns list | awk '/^{}-/{{print $1}}'); do ip netns del $n; done",
                report.prefix
            );
        }
    }
    Ok(if report.disagreements == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

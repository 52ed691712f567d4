//! `brindle ipam`, `brindle routes`, `brindle bird-config`, `brindle node status|run`.
use anyhow::Context;
use routing_agent::{bird, birdctl, ipam, load, routes, store};
use std::path::PathBuf;
use std::process::ExitCode;

fn load_model(paths: &[PathBuf]) -> anyhow::Result<routing_agent::model::Model> {
    load::load_paths(paths).map_err(|e| anyhow::anyhow!("{e}"))
}

#[derive(clap::Args)]
pub struct IpamArgs {
    #[command(subcommand)]
    cmd: IpamCmd,
}

#[derive(clap::Subcommand)]
enum IpamCmd {
    /// Pools, blocks (affinity, state, used/free) and assignments of a directory datastore.
    Show {
        /// The datastore directory (resource YAML; IPAM state under `ipam/`).
        datastore: PathBuf,
    },
    /// Assign addresses to a handle on a node (claims or borrows blocks as needed).
    Assign {
        datastore: PathBuf,
        #[arg(long)]
        node: String,
        /// The allocation handle (e.g. `k8s-pod-network.<id>`).
        #[arg(long)]
        handle: String,
        #[arg(long, default_value_t = 1)]
        num: u32,
        /// Request this exact address instead of auto-assigning.
        #[arg(long)]
        ip: Option<std::net::Ipv4Addr>,
    },
    /// Release an address or every address of a handle.
    Release {
        datastore: PathBuf,
        #[arg(long, conflicts_with = "handle")]
        ip: Option<std::net::Ipv4Addr>,
        #[arg(long)]
        handle: Option<String>,
    },
}

pub fn run_ipam(args: IpamArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        IpamCmd::Show { datastore } => {
            let model = load_model(std::slice::from_ref(&datastore))?;
            let state = store::DirStore::new(&datastore).load(&model)?;
            print!("{}", ipam::show(&model, &state));
        }
        IpamCmd::Assign {
            datastore,
            node,
            handle,
            num,
            ip,
        } => {
            let model = load_model(std::slice::from_ref(&datastore))?;
            let st = store::DirStore::new(&datastore);
            let mut state = st.load(&model)?;
            let ips = match ip {
                Some(ip) => {
                    ipam::assign_ip(&model, &mut state, &node, &handle, ip)?;
                    vec![ip]
                }
                None => ipam::auto_assign(
                    &model,
                    &mut state,
                    &node,
                    &handle,
                    num,
                    ipam::seed_for(&node),
                )?,
            };
            st.save(&state)?;
            for ip in ips {
                println!("{ip}");
            }
        }
        IpamCmd::Release {
            datastore,
            ip,
            handle,
        } => {
            let model = load_model(std::slice::from_ref(&datastore))?;
            let st = store::DirStore::new(&datastore);
            let mut state = st.load(&model)?;
            let released = match (ip, handle) {
                (Some(ip), _) => {
                    ipam::release_ip(&mut state, ip)?;
                    vec![ip]
                }
                (None, Some(h)) => ipam::release_handle(&mut state, &h),
                (None, None) => anyhow::bail!("give --ip or --handle"),
            };
            st.save(&state)?;
            for ip in released {
                println!("released {ip}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct RoutesArgs {
    /// Resource files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long)]
    node: String,
    /// The node's uplink interface.
    #[arg(long, default_value = "eth0")]
    uplink: String,
    /// MTU of IPIP routes.
    #[arg(long, default_value_t = 1480)]
    ipip_mtu: u32,
    /// Only the routes the agent programs (leave out BIRD's `proto bird` routes).
    #[arg(long)]
    agent_only: bool,
}

pub fn run_routes(args: RoutesArgs) -> anyhow::Result<ExitCode> {
    let model = load_model(&args.paths)?;
    if model.node(&args.node).is_none() {
        anyhow::bail!("unknown node `{}`", args.node);
    }
    let local = routes::LocalSettings {
        uplink: args.uplink,
        ipip_mtu: args.ipip_mtu,
    };
    let mut r = routes::desired_routes(&model, &args.node, &local);
    if args.agent_only {
        r.retain(|r| r.owner == routes::Owner::Agent);
    }
    print!("{}", routes::render_routes(&r));
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct BirdConfigArgs {
    /// Resource files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long)]
    node: String,
    /// Add `log "<FILE>" all;`.
    #[arg(long)]
    log_file: Option<String>,
    /// Also check the result with `bird -p -c`.
    #[arg(long)]
    check: bool,
}

pub fn run_bird_config(args: BirdConfigArgs) -> anyhow::Result<ExitCode> {
    let model = load_model(&args.paths)?;
    let cfg = bird::render(
        &model,
        &args.node,
        &bird::BirdOptions {
            log_file: args.log_file,
        },
    )?;
    if args.check {
        birdctl::check_config(&cfg).context("bird -p rejected the configuration")?;
    }
    print!("{cfg}");
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    cmd: NodeCmd,
}

#[derive(clap::Subcommand)]
enum NodeCmd {
    /// calicoctl-style BGP peer table from BIRD's control socket.
    Status {
        /// BIRD control socket.
        #[arg(long, default_value = "/var/run/calico/bird.ctl")]
        socket: PathBuf,
    },
    /// Run the routing agent for one node (in the node's network namespace).
    Run(RunArgs),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The datastore: resource files or directories (re-read every interval).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long)]
    node: String,
    #[arg(long, default_value = "eth0")]
    uplink: String,
    #[arg(long, default_value_t = 1480)]
    ipip_mtu: u32,
    /// Directory for bird.cfg, bird.ctl, bird.pid, bird.log.
    #[arg(long, default_value = "/var/run/brindle")]
    run_dir: PathBuf,
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
    /// Do not run BIRD (kernel routes and tunl0 only).
    #[arg(long)]
    no_bird: bool,
    /// Exit after this many seconds.
    #[arg(long)]
    max_seconds: Option<u64>,
}

pub fn run_node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        NodeCmd::Status { socket } => {
            let out = birdctl::node_status(&socket)?;
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        NodeCmd::Run(a) => {
            routing_agent::agent::run(routing_agent::agent::AgentConfig {
                paths: a.paths,
                node: a.node,
                local: routes::LocalSettings {
                    uplink: a.uplink,
                    ipip_mtu: a.ipip_mtu,
                },
                run_dir: a.run_dir,
                interval: std::time::Duration::from_millis(a.interval_ms),
                bird: !a.no_bird,
                max_runtime: a.max_seconds.map(std::time::Duration::from_secs),
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

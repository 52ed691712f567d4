//! The node agent loop (edge): re-read the datastore, program routes and tunl0, keep BIRD's
//! configuration current and BIRD alive. Runs inside the node's network namespace.

use crate::bird::{self, BirdOptions};
use crate::birdctl::BirdSupervisor;
use crate::netlink::Netlink;
use crate::routes::{self, LocalSettings, Owner};
use crate::tunl::{self, UserTunnel};
use crate::{load, RoutingError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub paths: Vec<PathBuf>,
    pub node: String,
    pub local: LocalSettings,
    /// Holds bird.cfg, bird.ctl, bird.pid, bird.log.
    pub run_dir: PathBuf,
    pub interval: Duration,
    /// Run and supervise BIRD.
    pub bird: bool,
    /// Exit after this long (a safety net for labs).
    pub max_runtime: Option<Duration>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// State kept between passes.
pub struct Agent {
    cfg: AgentConfig,
    netlink: Netlink,
    tunnel: Option<UserTunnel>,
    pub bird: Option<BirdSupervisor>,
    last_model: Option<crate::model::Model>,
    last_load_error: Option<String>,
}

fn log(msg: &str) {
    eprintln!("brindle-agent: {msg}");
}

impl Agent {
    pub fn new(cfg: AgentConfig) -> Result<Agent, RoutingError> {
        std::fs::create_dir_all(&cfg.run_dir).map_err(|source| RoutingError::Io {
            path: cfg.run_dir.clone(),
            source,
        })?;
        let bird = cfg.bird.then(|| BirdSupervisor::new(&cfg.run_dir));
        Ok(Agent {
            netlink: Netlink::new()?,
            tunnel: None,
            bird,
            last_model: None,
            last_load_error: None,
            cfg,
        })
    }

    /// One pass. Errors of one part are logged and do not stop the others.
    pub fn step(&mut self) -> Result<(), RoutingError> {
        match load::load_paths(&self.cfg.paths) {
            Ok(m) => {
                if self.last_model.as_ref() != Some(&m) {
                    log("datastore changed");
                }
                self.last_model = Some(m);
                self.last_load_error = None;
            }
            Err(e) => {
                let msg = format!("datastore not loaded, keeping the last good state: {e}");
                if self.last_load_error.as_deref() != Some(msg.as_str()) {
                    log(&msg);
                    self.last_load_error = Some(msg);
                }
            }
        }
        let Some(model) = self.last_model.clone() else {
            return Ok(());
        };
        let desired = routes::desired_routes(&model, &self.cfg.node, &self.cfg.local);
        let agent: Vec<_> = desired
            .iter()
            .filter(|r| r.owner == Owner::Agent)
            .cloned()
            .collect();
        let mut first_err = None;

        if model.uses_ipip() {
            if let Err(e) = self.ensure_tunnel(&model, &agent) {
                log(&e.to_string());
                first_err.get_or_insert(e);
            }
        } else if self.tunnel.take().is_some() {
            // IPIP off: the user-space tunl0 goes away with its threads (closing the TUN
            // deletes the device).
            log("tunl0: no IPIP pool left; user-space tunnel stopped");
        } else if crate::netlink::if_index("tunl0").is_some() {
            // Kernel tunl0 stays but loses its address (as Felix does).
            let _ = self.netlink.set_single_addr("tunl0", None);
        }
        match self.netlink.reconcile(&agent) {
            Ok(st) if st.added + st.replaced + st.removed > 0 => log(&format!(
                "routes: {} added, {} replaced, {} removed",
                st.added, st.replaced, st.removed
            )),
            Ok(_) => {}
            Err(e) => {
                log(&e.to_string());
                first_err.get_or_insert(e);
            }
        }
        if let Some(sup) = self.bird.as_mut() {
            let opts = BirdOptions {
                log_file: Some(self.cfg.run_dir.join("bird.log").display().to_string()),
            };
            let res = bird::render(&model, &self.cfg.node, &opts).and_then(|cfg| {
                let before = sup.restarts;
                let acted = sup.ensure(&cfg)?;
                if sup.restarts > before {
                    log("bird died; restarted");
                } else if acted {
                    log("bird configured");
                }
                if let Some(pid) = sup.pid() {
                    let p = sup.dir.join("bird.pid");
                    let _ = std::fs::write(p, format!("{pid}\n"));
                }
                Ok(())
            });
            if let Err(e) = res {
                log(&e.to_string());
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    fn ensure_tunnel(
        &mut self,
        model: &crate::model::Model,
        agent: &[routes::Route],
    ) -> Result<(), RoutingError> {
        if !tunl::kernel_has_ipip() && self.tunnel.is_none() {
            self.tunnel = Some(UserTunnel::start("tunl0")?);
            log("tunl0: user-space IPIP (TUN + raw socket) started");
        }
        if let Some(t) = &self.tunnel {
            t.set_table(tunl::table_from_routes(agent));
        }
        self.netlink
            .link_up("tunl0", Some(self.cfg.local.ipip_mtu))?;
        self.netlink
            .set_single_addr("tunl0", model.tunnel_addr(&self.cfg.node))
    }
}

/// Runs the agent until SIGTERM/SIGINT (or `max_runtime`).
pub fn run(cfg: AgentConfig) -> Result<(), RoutingError> {
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    run_until(cfg, &STOP)
}

/// Runs the agent in the calling thread until `stop` is set (or `max_runtime`).
pub fn run_until(cfg: AgentConfig, stop: &AtomicBool) -> Result<(), RoutingError> {
    let start = Instant::now();
    let interval = cfg.interval;
    let max = cfg.max_runtime;
    let mut agent = Agent::new(cfg)?;
    while !stop.load(Ordering::Relaxed) {
        let _ = agent.step();
        if max.is_some_and(|m| start.elapsed() >= m) {
            break;
        }
        let until = Instant::now() + interval;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    log("stopping");
    Ok(())
}

//! Network namespaces and running programs inside them.
//!
//! A namespace is addressed by its `ip netns` name (`/run/netns/NAME`). [`Netns`] owns one it
//! created and deletes it on drop; [`Target`] says where a command runs (the current namespace or
//! a named one) without owning anything.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{DataplaneError, Result};

/// Where kernel commands run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The namespace this process runs in (a real node).
    Current,
    /// A named network namespace (`ip netns exec NAME …`).
    Netns(String),
}

impl Target {
    /// Runs `program args…` there, feeding `stdin`; returns stdout, or an error with stderr.
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut cmd = match self {
            Target::Current => Command::new(program),
            Target::Netns(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
        };
        cmd.args(args);
        let display = self.display(program, args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| DataplaneError::Spawn {
            command: display.clone(),
            source,
        })?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            // A child that exits early closes the pipe; its status tells the story.
            let _ = pipe.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|source| DataplaneError::Spawn {
                command: display.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(DataplaneError::Command {
                command: display,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn display(&self, program: &str, args: &[&str]) -> String {
        let mut s = match self {
            Target::Current => program.to_string(),
            Target::Netns(ns) => format!("ip netns exec {ns} {program}"),
        };
        for a in args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name prefix unique to this process and call: `b<pid>x<n>`. Parallel tests and labs never
/// collide because the pid differs between processes and the counter within one.
pub fn unique_prefix() -> String {
    format!(
        "b{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace this process created; deleted on drop unless [`Netns::keep`] was called.
#[derive(Debug)]
pub struct Netns {
    name: String,
    keep: bool,
}

impl Netns {
    /// Creates the namespace `name` and brings its loopback up.
    pub fn create(name: &str) -> Result<Netns> {
        Target::Current.run("ip", &["netns", "add", name], None)?;
        let ns = Netns {
            name: name.to_string(),
            keep: false,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn target(&self) -> Target {
        Target::Netns(self.name.clone())
    }

    /// Leave the namespace in place when dropped (`--keep`).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// `ip -n NAME args…`
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        Target::Current.run("ip", &all, None)
    }

    /// Runs a program inside the namespace.
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        self.target().run(program, args, stdin)
    }

    /// Sets a sysctl inside the namespace (`net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.run("sysctl", &["-q", "-w", &format!("{key}={value}")], None)
            .map(|_| ())
    }

    /// Runs `f` on a thread whose network namespace is this one; sockets it creates stay here.
    pub fn enter<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        enter_named(&self.name, f)
    }
}

/// Runs `f` on a fresh thread switched into the named network namespace.
pub fn enter_named<F, R>(name: &str, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            switch_thread_to(name)?;
            Ok(f())
        })
        .join()
        .expect("netns thread panicked")
    })
}

/// Moves the calling thread into the named network namespace (only this thread).
pub fn switch_thread_to(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).map_err(|source| DataplaneError::Netns {
        name: name.to_string(),
        source,
    })?;
    // SAFETY: setns on a valid fd we own; affects only the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(DataplaneError::Netns {
            name: name.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // The lab starts no processes inside its namespaces (listeners are threads of this
        // process), so deleting the namespace is all that is needed.
        let _ = Target::Current.run("ip", &["netns", "del", &self.name], None);
    }
}

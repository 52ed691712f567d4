//! BIRD at the edge: config check (`bird -p`), the control socket, `node status`, and a
//! supervisor that starts BIRD, reconfigures it on change and restarts it when it dies.

use crate::RoutingError;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn bird_err(m: impl Into<String>) -> RoutingError {
    RoutingError::Bird(m.into())
}

/// Checks a configuration text with `bird -p -c <tmpfile>`.
pub fn check_config(cfg: &str) -> Result<(), RoutingError> {
    let dir = std::env::temp_dir().join(format!(
        "brindle-birdcheck-{}-{}",
        std::process::id(),
        CHECK_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|source| RoutingError::Io {
        path: dir.clone(),
        source,
    })?;
    let f = dir.join("bird.cfg");
    let res = (|| {
        std::fs::write(&f, cfg).map_err(|source| RoutingError::Io {
            path: f.clone(),
            source,
        })?;
        check_file(&f)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    res
}

static CHECK_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `bird -p -c FILE`.
pub fn check_file(f: &Path) -> Result<(), RoutingError> {
    let out = Command::new("bird")
        .arg("-p")
        .arg("-c")
        .arg(f)
        .output()
        .map_err(|e| bird_err(format!("running bird -p: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(bird_err(format!(
            "bird -p -c {}: {}{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )))
    }
}

/// Sends one command on the control socket and returns the reply lines (codes kept), up to
/// and including the final line (a 4-digit code followed by a space).
pub fn command(socket: &Path, cmd: &str) -> Result<Vec<String>, RoutingError> {
    let mut s = UnixStream::connect(socket)
        .map_err(|e| bird_err(format!("connect {}: {e}", socket.display())))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let mut r = BufReader::new(s.try_clone().map_err(|e| bird_err(e.to_string()))?);
    let mut lines = Vec::new();
    // Banner: "0001 BIRD 2.0.12 ready."
    let mut banner = String::new();
    r.read_line(&mut banner)
        .map_err(|e| bird_err(format!("reading banner: {e}")))?;
    s.write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| bird_err(e.to_string()))?;
    loop {
        let mut l = String::new();
        let n = r
            .read_line(&mut l)
            .map_err(|e| bird_err(format!("reading reply: {e}")))?;
        if n == 0 {
            break;
        }
        let l = l.trim_end_matches('\n').to_string();
        let done = is_final(&l);
        lines.push(l);
        if done {
            break;
        }
    }
    Ok(lines)
}

fn is_final(l: &str) -> bool {
    let b = l.as_bytes();
    b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' '
}

/// One row of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoRow {
    pub name: String,
    pub proto: String,
    pub table: String,
    pub state: String,
    pub since: String,
    pub info: String,
}

/// Parses a `show protocols` reply (routing.md §5; header compared case-insensitively for
/// BIRD 2).
pub fn parse_protocols(lines: &[String]) -> Result<Vec<ProtoRow>, RoutingError> {
    let mut rows = Vec::new();
    let mut header_ok = false;
    for l in lines {
        let (code, body) = if l.len() >= 5 && l.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
            (&l[..4], &l[5..])
        } else if let Some(rest) = l.strip_prefix(' ') {
            ("cont", rest)
        } else {
            continue;
        };
        match code {
            "2002" => {
                let h: Vec<String> = body.split_whitespace().map(str::to_lowercase).collect();
                header_ok = h == ["name", "proto", "table", "state", "since", "info"];
                if !header_ok {
                    return Err(bird_err(format!(
                        "unexpected show protocols header: {body}"
                    )));
                }
            }
            "1002" | "cont" => {
                let f: Vec<&str> = body.split_whitespace().collect();
                if f.len() < 4 {
                    continue;
                }
                // `since` may be "2026-11-22 03:40:01" (two words) or "03:40:01.123".
                let (since, rest) = if f.len() > 5 && f[4].contains('-') && f[5].contains(':') {
                    (format!("{} {}", f[4], f[5]), &f[6..])
                } else if f.len() > 4 {
                    (f[4].to_string(), &f[5..])
                } else {
                    (String::new(), &f[4..])
                };
                rows.push(ProtoRow {
                    name: f[0].into(),
                    proto: f[1].into(),
                    table: f[2].into(),
                    state: f[3].into(),
                    since,
                    info: rest.join(" "),
                });
            }
            c if c.starts_with('8') || c.starts_with('9') => {
                return Err(bird_err(format!("bird: {body}")));
            }
            _ => {}
        }
    }
    if !header_ok {
        return Err(bird_err("no show protocols header in reply"));
    }
    Ok(rows)
}

/// A BGP peer of `node status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub address: String,
    pub peer_type: &'static str,
    pub state: String,
    pub since: String,
    pub info: String,
}

pub fn bgp_peers(rows: &[ProtoRow]) -> Vec<PeerStatus> {
    rows.iter()
        .filter(|r| r.proto == "BGP")
        .filter_map(|r| {
            let (kind, rest) = r.name.split_once('_')?;
            let peer_type = match kind {
                "Global" => "global",
                "Mesh" => "node-to-node mesh",
                "Node" => "node specific",
                _ => return None,
            };
            let addr_part = rest.split("_port_").next().unwrap_or(rest);
            let since = match r.since.split_once('.') {
                Some((t, ms)) if ms.chars().all(|c| c.is_ascii_digit()) => t.to_string(),
                _ => r.since.clone(),
            };
            Some(PeerStatus {
                address: addr_part.replace('_', "."),
                peer_type,
                state: r.state.clone(),
                since,
                info: r.info.clone(),
            })
        })
        .collect()
}

/// A go-pretty style table.
pub fn render_table(peers: &[PeerStatus]) -> String {
    let head = ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"];
    let rows: Vec<[String; 5]> = peers
        .iter()
        .map(|p| {
            [
                p.address.clone(),
                p.peer_type.to_string(),
                p.state.clone(),
                p.since.clone(),
                p.info.clone(),
            ]
        })
        .collect();
    let mut wid: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            wid[i] = wid[i].max(c.len());
        }
    }
    let sep: String = {
        let mut s = String::from("+");
        for w in &wid {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let mut out = sep.clone();
    out.push('|');
    for (i, h) in head.iter().enumerate() {
        let pad = wid[i] - h.len();
        let l = pad / 2;
        out.push_str(&format!(" {}{}{} |", " ".repeat(l), h, " ".repeat(pad - l)));
    }
    out.push('\n');
    out.push_str(&sep);
    for r in &rows {
        out.push('|');
        for (i, c) in r.iter().enumerate() {
            out.push_str(&format!(" {:<w$} |", c, w = wid[i]));
        }
        out.push('\n');
    }
    out.push_str(&sep);
    out
}

/// `brindle node status`: the full report from a control socket.
pub fn node_status(socket: &Path) -> Result<String, RoutingError> {
    let lines = command(socket, "show protocols")?;
    let rows = parse_protocols(&lines)?;
    let peers = bgp_peers(&rows);
    let mut out = String::from("BIRD process is running.\n\nIPv4 BGP status\n");
    if peers.is_empty() {
        out.push_str("No IPv4 peers found.\n");
    } else {
        out.push_str(&render_table(&peers));
    }
    Ok(out)
}

/// Runs BIRD in the foreground as a child, reconfigures and restarts it.
pub struct BirdSupervisor {
    pub dir: PathBuf,
    child: Option<Child>,
    pub restarts: u32,
    last_cfg: Option<String>,
}

impl BirdSupervisor {
    /// `dir` holds `bird.cfg`, `bird.ctl`, `bird.log`.
    pub fn new(dir: &Path) -> BirdSupervisor {
        BirdSupervisor {
            dir: dir.to_path_buf(),
            child: None,
            restarts: 0,
            last_cfg: None,
        }
    }
    pub fn cfg_path(&self) -> PathBuf {
        self.dir.join("bird.cfg")
    }
    pub fn ctl_path(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn start(&mut self) -> Result<(), RoutingError> {
        let _ = std::fs::remove_file(self.ctl_path());
        let mut cmd = Command::new("bird");
        // BIRD goes down with the agent, whatever kills the agent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .arg("-f")
            .arg("-c")
            .arg(self.cfg_path())
            .arg("-s")
            .arg(self.ctl_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| bird_err(format!("starting bird: {e}")))?;
        self.child = Some(child);
        // Wait for the control socket (BIRD creates it once the config is loaded).
        for _ in 0..100 {
            if UnixStream::connect(self.ctl_path()).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Err(bird_err(format!("bird exited at start: {st}")));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(bird_err("bird control socket did not appear"))
    }

    /// Writes `cfg` (if changed, after `bird -p`), starts BIRD if it is not running (again, if
    /// it died: counted in `restarts`), or asks it to reconfigure. Returns true if it acted.
    pub fn ensure(&mut self, cfg: &str) -> Result<bool, RoutingError> {
        let changed = self.last_cfg.as_deref() != Some(cfg);
        if changed {
            check_config(cfg)?;
            std::fs::create_dir_all(&self.dir).map_err(|source| RoutingError::Io {
                path: self.dir.clone(),
                source,
            })?;
            let p = self.cfg_path();
            let tmp = self.dir.join("bird.cfg.tmp");
            std::fs::write(&tmp, cfg).map_err(|source| RoutingError::Io {
                path: tmp.clone(),
                source,
            })?;
            std::fs::rename(&tmp, &p).map_err(|source| RoutingError::Io { path: p, source })?;
            self.last_cfg = Some(cfg.to_string());
        }
        let dead = match self.child.as_mut() {
            None => true,
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        };
        if dead {
            if self.child.take().is_some() {
                self.restarts += 1;
            }
            self.start()?;
            return Ok(true);
        }
        if changed {
            let reply = command(&self.ctl_path(), "configure")?;
            if let Some(bad) = reply
                .iter()
                .find(|l| l.starts_with('8') || l.starts_with('9'))
            {
                return Err(bird_err(format!("configure: {bad}")));
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Stops BIRD (SIGTERM, then SIGKILL) by its PID.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for BirdSupervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bird2_show_protocols() {
        let reply: Vec<String> = [
            "2002-Name       Proto      Table      State  Since         Info",
            "1002-device1    Device     ---        up     02:54:01.101  ",
            " kernel1    Kernel     master4    up     02:54:01.101  ",
            " Mesh_198_18_0_2 BGP        ---        up     02:54:03.372  Established   ",
            " Node_10_0_0_9_port_1179 BGP        ---        start  02:54:01.101  Active        Socket: Connection refused",
            " Global_198_18_0_254 BGP ---        down   02:54:01.101  ",
            "0000 ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let rows = parse_protocols(&reply).unwrap();
        assert_eq!(rows.len(), 5);
        let peers = bgp_peers(&rows);
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[0].address, "198.18.0.2");
        assert_eq!(peers[0].peer_type, "node-to-node mesh");
        assert_eq!(peers[0].since, "02:54:03");
        assert_eq!(peers[0].info, "Established");
        assert_eq!(peers[1].address, "10.0.0.9");
        assert_eq!(peers[1].peer_type, "node specific");
        assert_eq!(peers[1].info, "Active Socket: Connection refused");
        assert_eq!(peers[2].peer_type, "global");
        let t = render_table(&peers[..1]);
        assert_eq!(
            t,
            "+--------------+-------------------+-------+----------+-------------+\n\
             | PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |\n\
             +--------------+-------------------+-------+----------+-------------+\n\
             | 198.18.0.2   | node-to-node mesh | up    | 02:54:03 | Established |\n\
             +--------------+-------------------+-------+----------+-------------+\n"
        );
    }

    #[test]
    fn rejects_unknown_header() {
        let reply = vec!["2002-Foo Bar".to_string(), "0000 ".to_string()];
        assert!(parse_protocols(&reply).is_err());
    }
}

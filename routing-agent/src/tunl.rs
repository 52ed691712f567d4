//! `tunl0` without the kernel ipip module: a TUN device named `tunl0` plus a raw IP-protocol-4
//! socket doing IP-in-IP in user space (routing.md §6). TUN → look the inner destination up in
//! the agent's tunnel table (prefix → node IP, longest prefix wins) → `sendto(node IP)` (the
//! kernel writes the outer header); raw socket → strip the outer header → write into the TUN.
//! Two threads, stopped and joined on drop. On the wire this is standard IPIP, interoperable
//! with a kernel tunl0.

use crate::RoutingError;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

const TUNSETIFF: libc::c_ulong = 0x400454CA;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

fn terr(m: impl Into<String>) -> RoutingError {
    RoutingError::Tunnel(m.into())
}

fn last_os(what: &str) -> RoutingError {
    terr(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// Whether this kernel can make an ipip link (it creates `tunl0` itself when it can).
pub fn kernel_has_ipip() -> bool {
    std::path::Path::new("/sys/module/ipip").exists()
}

/// Counters of the user-space tunnel.
#[derive(Debug, Default)]
pub struct TunnelStats {
    pub encapsulated: AtomicU64,
    pub decapsulated: AtomicU64,
    pub no_route: AtomicU64,
}

pub type TunnelTable = Arc<RwLock<Vec<(Ipv4Net, Ipv4Addr)>>>;

pub struct UserTunnel {
    pub name: String,
    table: TunnelTable,
    pub stats: Arc<TunnelStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IF_NAMESIZE],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn open_tun(name: &str) -> Result<OwnedFd, RoutingError> {
    if name.len() >= libc::IF_NAMESIZE {
        return Err(terr("interface name too long"));
    }
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_os("open /dev/net/tun"));
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq {
        name: [0; libc::IF_NAMESIZE],
        flags: IFF_TUN | IFF_NO_PI,
        _pad: [0; 22],
    };
    for (i, b) in name.bytes().enumerate() {
        req.name[i] = b as libc::c_char;
    }
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) } < 0 {
        return Err(last_os("TUNSETIFF"));
    }
    Ok(fd)
}

fn open_raw() -> Result<OwnedFd, RoutingError> {
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_IPIP,
        )
    };
    if fd < 0 {
        return Err(last_os("socket(AF_INET, SOCK_RAW, 4)"));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    unsafe { libc::poll(&mut p, 1, ms) > 0 && (p.revents & libc::POLLIN) != 0 }
}

/// Longest-prefix match.
pub fn lookup(table: &[(Ipv4Net, Ipv4Addr)], dst: Ipv4Addr) -> Option<Ipv4Addr> {
    table
        .iter()
        .filter(|(n, _)| n.contains(&dst))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, gw)| *gw)
}

impl UserTunnel {
    /// Creates the TUN device `name` and starts the two forwarding threads (in the calling
    /// thread's network namespace).
    pub fn start(name: &str) -> Result<UserTunnel, RoutingError> {
        let tun = Arc::new(open_tun(name)?);
        let raw = Arc::new(open_raw()?);
        let table: TunnelTable = Arc::new(RwLock::new(Vec::new()));
        let stats = Arc::new(TunnelStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            // TUN → encapsulate.
            let (tun, raw, table, stats, stop) = (
                tun.clone(),
                raw.clone(),
                table.clone(),
                stats.clone(),
                stop.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if !readable(tun.as_raw_fd(), 200) {
                        continue;
                    }
                    let n =
                        unsafe { libc::read(tun.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if n < 20 || buf[0] >> 4 != 4 {
                        continue;
                    }
                    let dst = Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
                    let gw = lookup(&table.read().expect("table lock"), dst);
                    let Some(gw) = gw else {
                        stats.no_route.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let sa = libc::sockaddr_in {
                        sin_family: libc::AF_INET as libc::sa_family_t,
                        sin_port: 0,
                        sin_addr: libc::in_addr {
                            s_addr: u32::from(gw).to_be(),
                        },
                        sin_zero: [0; 8],
                    };
                    let r = unsafe {
                        libc::sendto(
                            raw.as_raw_fd(),
                            buf.as_ptr().cast(),
                            n as usize,
                            0,
                            (&sa as *const libc::sockaddr_in).cast(),
                            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                        )
                    };
                    if r >= 0 {
                        stats.encapsulated.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        {
            // raw socket → decapsulate.
            let (tun, raw, stats, stop) = (tun.clone(), raw.clone(), stats.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if !readable(raw.as_raw_fd(), 200) {
                        continue;
                    }
                    let n = unsafe {
                        libc::recv(raw.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                    };
                    if n < 20 {
                        continue;
                    }
                    let n = n as usize;
                    let ihl = ((buf[0] & 15) as usize) * 4;
                    if ihl < 20 || n < ihl + 20 || buf[9] != 4 || buf[ihl] >> 4 != 4 {
                        continue;
                    }
                    let r = unsafe {
                        libc::write(tun.as_raw_fd(), buf[ihl..].as_ptr().cast(), n - ihl)
                    };
                    if r >= 0 {
                        stats.decapsulated.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        Ok(UserTunnel {
            name: name.to_string(),
            table,
            stats,
            stop,
            threads,
        })
    }

    /// Replaces the inner-prefix → node-IP table (from the agent's tunl0 routes).
    pub fn set_table(&self, mut entries: Vec<(Ipv4Net, Ipv4Addr)>) {
        entries.sort();
        *self.table.write().expect("table lock") = entries;
    }

    pub fn table(&self) -> Vec<(Ipv4Net, Ipv4Addr)> {
        self.table.read().expect("table lock").clone()
    }
}

impl Drop for UserTunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The tunnel entries of a route set: every agent route on tunl0.
pub fn table_from_routes(routes: &[crate::routes::Route]) -> Vec<(Ipv4Net, Ipv4Addr)> {
    routes
        .iter()
        .filter_map(|r| match &r.kind {
            crate::routes::RouteKind::Via { gw, dev, .. } if dev == "tunl0" => Some((r.dst, *gw)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let t = vec![
            (
                "10.244.2.0/26".parse().unwrap(),
                "198.18.0.2".parse().unwrap(),
            ),
            (
                "10.244.2.5/32".parse().unwrap(),
                "198.18.0.1".parse().unwrap(),
            ),
        ];
        assert_eq!(
            lookup(&t, "10.244.2.5".parse().unwrap()),
            Some("198.18.0.1".parse().unwrap())
        );
        assert_eq!(
            lookup(&t, "10.244.2.6".parse().unwrap()),
            Some("198.18.0.2".parse().unwrap())
        );
        assert_eq!(lookup(&t, "10.244.3.1".parse().unwrap()), None);
    }
}

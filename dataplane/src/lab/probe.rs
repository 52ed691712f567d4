//! Listeners and probes, run inside the lab's namespaces by threads of this process.
//!
//! * TCP: a listener per (address, port); allowed = the handshake completes within the timeout.
//! * UDP: an echo server per (address, port); allowed = the echo comes back (via conntrack).
//! * ICMP: the kernel answers; the probe sends an echo request on a raw socket and waits for the
//!   reply with its identifier.
//! * SCTP: the kernel has no SCTP, so the probe sends a raw protocol-132 INIT with a valid CRC32c
//!   and a per-probe initiate tag; a raw socket in the destination namespace records every INIT
//!   it receives; allowed = the destination saw this probe's tag.

use std::collections::{BTreeSet, HashSet};
use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::{io_err, DataplaneError, Result};
use crate::netns::switch_thread_to;

/// The protocols the lab can probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeProto {
    Tcp,
    Udp,
    Icmp,
    Sctp,
}

impl ProbeProto {
    pub fn name(self) -> &'static str {
        match self {
            ProbeProto::Tcp => "tcp",
            ProbeProto::Udp => "udp",
            ProbeProto::Icmp => "icmp",
            ProbeProto::Sctp => "sctp",
        }
    }
}

/// One packet exchange between two lab addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelProbe {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: ProbeProto,
    /// Destination port (ignored for ICMP).
    pub port: u16,
}

/// What the kernel did with one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// The probe got through (and, for TCP/UDP/ICMP, its answer came back).
    pub allowed: bool,
    /// How it was decided, e.g. `connected`, `timeout`, `echo received`.
    pub detail: String,
}

/// (destination, initiate tag): the source may be rewritten on the way (natOutgoing
/// MASQUERADE), the tag is not.
type SctpKey = (Ipv4Addr, u32);

#[derive(Default)]
struct SctpSeen {
    seen: Mutex<HashSet<SctpKey>>,
    cond: Condvar,
}

/// Listener threads; stopped and joined on drop.
pub struct Listeners {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    started: BTreeSet<(String, Ipv4Addr, ProbeProto, u16)>,
    sctp_ns: BTreeSet<String>,
    sctp: Arc<SctpSeen>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("started", &self.started)
            .finish()
    }
}

impl Default for Listeners {
    fn default() -> Self {
        Self::new()
    }
}

const POLL: Duration = Duration::from_millis(20);

impl Listeners {
    pub fn new() -> Listeners {
        Listeners {
            stop: Arc::new(AtomicBool::new(false)),
            handles: Vec::new(),
            started: BTreeSet::new(),
            sctp_ns: BTreeSet::new(),
            sctp: Arc::new(SctpSeen::default()),
        }
    }

    /// Makes sure something answers at (`addr`, `proto`, `port`) inside namespace `ns`.
    pub fn ensure(&mut self, ns: &str, addr: Ipv4Addr, proto: ProbeProto, port: u16) -> Result<()> {
        match proto {
            ProbeProto::Icmp => Ok(()), // the kernel answers echo requests
            ProbeProto::Sctp => {
                if self.sctp_ns.contains(ns) {
                    return Ok(());
                }
                self.spawn(ns, sctp_receiver)?;
                self.sctp_ns.insert(ns.to_string());
                Ok(())
            }
            ProbeProto::Tcp | ProbeProto::Udp => {
                let key = (ns.to_string(), addr, proto, port);
                if self.started.contains(&key) {
                    return Ok(());
                }
                let sa = SocketAddrV4::new(addr, port);
                if proto == ProbeProto::Tcp {
                    self.spawn(ns, move |stop, _| tcp_listener(stop, sa))?;
                } else {
                    self.spawn(ns, move |stop, _| udp_echo(stop, sa))?;
                }
                self.started.insert(key);
                Ok(())
            }
        }
    }

    /// Spawns a thread in `ns`; `setup` binds its socket and returns the serving loop.
    fn spawn<F>(&mut self, ns: &str, setup: F) -> Result<()>
    where
        F: FnOnce(Arc<AtomicBool>, Arc<SctpSeen>) -> Result<Box<dyn FnOnce() + Send>>
            + Send
            + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let ns_name = ns.to_string();
        let stop = self.stop.clone();
        let seen = self.sctp.clone();
        let handle = std::thread::spawn(move || {
            let ready = switch_thread_to(&ns_name).and_then(|()| setup(stop, seen));
            match ready {
                Ok(serve) => {
                    let _ = tx.send(Ok(()));
                    serve();
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        let ready = rx
            .recv()
            .unwrap_or_else(|_| Err(DataplaneError::Lab("listener thread died".into())));
        self.handles.push(handle);
        ready
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn tcp_listener(stop: Arc<AtomicBool>, sa: SocketAddrV4) -> Result<Box<dyn FnOnce() + Send>> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(io_err("tcp listener socket"))?;
    s.set_reuse_address(true).map_err(io_err("SO_REUSEADDR"))?;
    s.bind(&sa.into())
        .map_err(io_err(format!("bind tcp listener {sa}")))?;
    s.listen(256).map_err(io_err("listen"))?;
    s.set_nonblocking(true).map_err(io_err("nonblocking"))?;
    Ok(Box::new(move || {
        while !stop.load(Ordering::Relaxed) {
            match s.accept() {
                Ok((conn, _)) => drop(conn),
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }))
}

fn udp_echo(stop: Arc<AtomicBool>, sa: SocketAddrV4) -> Result<Box<dyn FnOnce() + Send>> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_err("udp echo socket"))?;
    s.set_reuse_address(true).map_err(io_err("SO_REUSEADDR"))?;
    s.bind(&sa.into())
        .map_err(io_err(format!("bind udp echo {sa}")))?;
    s.set_read_timeout(Some(POLL))
        .map_err(io_err("SO_RCVTIMEO"))?;
    Ok(Box::new(move || {
        let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                // SAFETY: recv_from initialised the first n bytes.
                let data: Vec<u8> = buf[..n]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                let _ = s.send_to(&data, &from);
            }
        }
    }))
}

fn sctp_receiver(stop: Arc<AtomicBool>, seen: Arc<SctpSeen>) -> Result<Box<dyn FnOnce() + Send>> {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(132)))
        .map_err(io_err("raw SCTP socket"))?;
    s.set_read_timeout(Some(POLL))
        .map_err(io_err("SO_RCVTIMEO"))?;
    Ok(Box::new(move || {
        let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(n) = s.recv(&mut buf) {
                // SAFETY: recv initialised the first n bytes.
                let pkt: Vec<u8> = buf[..n]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                if let Some(key) = parse_sctp_init(&pkt) {
                    seen.seen.lock().expect("sctp lock").insert(key);
                    seen.cond.notify_all();
                }
            }
        }
    }))
}

/// (destination, initiate tag) of an IPv4 packet carrying an SCTP INIT chunk.
fn parse_sctp_init(pkt: &[u8]) -> Option<SctpKey> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != 132 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let sctp = pkt.get(ihl..)?;
    if sctp.len() < 12 + 20 || sctp[12] != 1 {
        return None;
    }
    let tag = u32::from_be_bytes([sctp[16], sctp[17], sctp[18], sctp[19]]);
    Some((dst, tag))
}

/// An SCTP packet (common header + INIT chunk) with a valid CRC32c.
pub fn sctp_init_packet(src_port: u16, dst_port: u16, init_tag: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&src_port.to_be_bytes());
    p.extend_from_slice(&dst_port.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes()); // verification tag: 0 in an INIT
    p.extend_from_slice(&0u32.to_be_bytes()); // checksum, filled below
    p.push(1); // INIT
    p.push(0); // flags
    p.extend_from_slice(&20u16.to_be_bytes()); // chunk length
    p.extend_from_slice(&init_tag.to_be_bytes());
    p.extend_from_slice(&65535u32.to_be_bytes()); // a_rwnd
    p.extend_from_slice(&1u16.to_be_bytes()); // outbound streams
    p.extend_from_slice(&1u16.to_be_bytes()); // inbound streams
    p.extend_from_slice(&init_tag.to_be_bytes()); // initial TSN
                                                  // RFC 9260 appendix A: the CRC32c goes into the header in little-endian byte order.
    let crc = crc32c::crc32c(&p);
    p[8..12].copy_from_slice(&crc.to_le_bytes());
    p
}

/// RFC 1071 internet checksum.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u32::from(u16::from_be_bytes([chunk[0], chunk[1]]))
        } else {
            u32::from(chunk[0]) << 8
        };
        sum = sum.wrapping_add(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

static SEQ: AtomicU32 = AtomicU32::new(1);

fn next_token() -> u32 {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    (std::process::id() << 16) ^ n.wrapping_mul(2_654_435_761)
}

/// Runs one probe on the calling thread, which must already be in the source namespace.
pub fn probe_here(
    p: &KernelProbe,
    listeners: &Listeners,
    timeout: Duration,
) -> Result<ProbeOutcome> {
    let outcome = |allowed: bool, detail: &str| ProbeOutcome {
        allowed,
        detail: detail.to_string(),
    };
    let src = SockAddr::from(SocketAddrV4::new(p.src, 0));
    let dst = SocketAddrV4::new(p.dst, p.port);
    match p.proto {
        ProbeProto::Tcp => {
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
                .map_err(io_err("tcp probe socket"))?;
            s.bind(&src)
                .map_err(io_err(format!("bind probe source {}", p.src)))?;
            match s.connect_timeout(&dst.into(), timeout) {
                Ok(()) => Ok(outcome(true, "connected")),
                Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                    Ok(outcome(false, "timeout"))
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    Ok(outcome(false, "connection refused (reset)"))
                }
                Err(e) => Err(io_err(format!("tcp probe {} -> {dst}", p.src))(e)),
            }
        }
        ProbeProto::Udp => {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
                .map_err(io_err("udp probe socket"))?;
            s.bind(&src)
                .map_err(io_err(format!("bind probe source {}", p.src)))?;
            s.connect(&dst.into()).map_err(io_err("udp connect"))?;
            let token = next_token().to_be_bytes();
            s.send(&token).map_err(io_err("udp send"))?;
            let deadline = Instant::now() + timeout;
            let mut buf = [MaybeUninit::<u8>::uninit(); 64];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(outcome(false, "timeout"));
                }
                s.set_read_timeout(Some(left))
                    .map_err(io_err("SO_RCVTIMEO"))?;
                match s.recv(&mut buf) {
                    Ok(n) => {
                        // SAFETY: recv initialised the first n bytes.
                        let got: Vec<u8> = buf[..n]
                            .iter()
                            .map(|b| unsafe { b.assume_init() })
                            .collect();
                        if got == token {
                            return Ok(outcome(true, "echo received"));
                        }
                    }
                    Err(e)
                        if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut =>
                    {
                        return Ok(outcome(false, "timeout"))
                    }
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        return Ok(outcome(false, "port unreachable"))
                    }
                    Err(e) => return Err(io_err(format!("udp probe {} -> {dst}", p.src))(e)),
                }
            }
        }
        ProbeProto::Icmp => {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
                .map_err(io_err("raw ICMP socket"))?;
            s.bind(&src)
                .map_err(io_err(format!("bind probe source {}", p.src)))?;
            let token = next_token();
            let id = (token >> 16) as u16 ^ (token as u16);
            let seq = (token & 0xffff) as u16;
            let mut pkt = vec![8u8, 0, 0, 0];
            pkt.extend_from_slice(&id.to_be_bytes());
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(b"brindle-lab-probe");
            let ck = inet_checksum(&pkt);
            pkt[2..4].copy_from_slice(&ck.to_be_bytes());
            s.send_to(&pkt, &SocketAddrV4::new(p.dst, 0).into())
                .map_err(io_err(format!("icmp probe {} -> {}", p.src, p.dst)))?;
            let deadline = Instant::now() + timeout;
            let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(outcome(false, "timeout"));
                }
                s.set_read_timeout(Some(left))
                    .map_err(io_err("SO_RCVTIMEO"))?;
                match s.recv(&mut buf) {
                    Ok(n) => {
                        // SAFETY: recv initialised the first n bytes.
                        let r: Vec<u8> = buf[..n]
                            .iter()
                            .map(|b| unsafe { b.assume_init() })
                            .collect();
                        if r.len() < 28 {
                            continue;
                        }
                        let ihl = usize::from(r[0] & 0x0f) * 4;
                        let from = Ipv4Addr::new(r[12], r[13], r[14], r[15]);
                        let icmp = &r[ihl..];
                        if icmp.len() >= 8
                            && icmp[0] == 0
                            && from == p.dst
                            && icmp[4..6] == id.to_be_bytes()
                            && icmp[6..8] == seq.to_be_bytes()
                        {
                            return Ok(outcome(true, "echo reply"));
                        }
                    }
                    Err(e)
                        if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut =>
                    {
                        return Ok(outcome(false, "timeout"))
                    }
                    Err(e) => return Err(io_err("icmp recv")(e)),
                }
            }
        }
        ProbeProto::Sctp => {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(132)))
                .map_err(io_err("raw SCTP socket"))?;
            s.bind(&src)
                .map_err(io_err(format!("bind probe source {}", p.src)))?;
            let tag = next_token() | 1;
            let src_port = 32768 + (tag % 28000) as u16;
            let pkt = sctp_init_packet(src_port, p.port, tag);
            s.send_to(&pkt, &SocketAddrV4::new(p.dst, 0).into())
                .map_err(io_err(format!("sctp probe {} -> {dst}", p.src)))?;
            let key = (p.dst, tag);
            let deadline = Instant::now() + timeout;
            let mut seen = listeners.sctp.seen.lock().expect("sctp lock");
            loop {
                if seen.remove(&key) {
                    return Ok(outcome(true, "INIT received"));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(outcome(false, "timeout"));
                }
                seen = listeners
                    .sctp
                    .cond
                    .wait_timeout(seen, left)
                    .expect("sctp lock")
                    .0;
            }
        }
    }
}

/// Most probes in flight at once.
const PARALLEL: usize = 64;

/// Runs `(source namespace, probe)` jobs in parallel; outcomes in input order.
pub fn run_parallel(
    jobs: &[(String, KernelProbe)],
    listeners: &Listeners,
    timeout: Duration,
) -> Result<Vec<ProbeOutcome>> {
    let mut out = Vec::with_capacity(jobs.len());
    for batch in jobs.chunks(PARALLEL) {
        crate::lab::check_stop()?;
        let results: Vec<Result<ProbeOutcome>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|(ns, p)| {
                    s.spawn(move || {
                        switch_thread_to(ns)?;
                        probe_here(p, listeners, timeout)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("probe thread panicked"))
                .collect()
        });
        for r in results {
            out.push(r?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sctp_init_checksum_is_crc32c_little_endian() {
        let p = sctp_init_packet(1, 2, 0x01020304);
        let mut zeroed = p.clone();
        zeroed[8..12].fill(0);
        let crc = crc32c::crc32c(&zeroed);
        assert_eq!(&p[8..12], &crc.to_le_bytes());
        assert_eq!(p.len(), 32);
        assert_eq!(p[12], 1);
    }

    #[test]
    fn internet_checksum_of_packet_with_checksum_is_zero() {
        let mut pkt = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'a', b'b', b'c'];
        let ck = inet_checksum(&pkt);
        pkt[2..4].copy_from_slice(&ck.to_be_bytes());
        assert_eq!(inet_checksum(&pkt), 0);
    }
}

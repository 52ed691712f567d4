//! Kernel routes through rtnetlink (the edge): reconcile the main table's `proto 80` routes
//! with the desired set: add missing, replace changed (RouteReplace takes a prefix over from any
//! other protocol, as Felix does), delete stale routes of our protocol, never touch others.
//! Also the few link operations tunl0 needs (MTU, up, its single /32 address).
//!
//! Works in the network namespace of the calling thread at [`Netlink::new`] time.

use crate::model::AGENT_PROTO;
use crate::routes::{Owner, Route, RouteKind};
use crate::RoutingError;
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr};

fn nl(e: impl std::fmt::Display) -> RoutingError {
    RoutingError::Netlink(e.to_string())
}

pub fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// A route read from the kernel.
#[derive(Debug, Clone)]
pub struct KernelRoute {
    pub dst: Ipv4Net,
    pub kind: Option<RouteKind>,
    pub proto: u8,
    pub mtu: Option<u32>,
    pub metric: u32,
    pub table: u32,
    msg: RouteMessage,
}

impl KernelRoute {
    fn from_msg(
        msg: RouteMessage,
        names: &mut BTreeMap<u32, Option<String>>,
    ) -> Option<KernelRoute> {
        let h = &msg.header;
        let mut dst = Ipv4Addr::UNSPECIFIED;
        let mut gw = None;
        let mut oif = None;
        let mut mtu = None;
        let mut metric = 0;
        let mut table = h.table as u32;
        for a in &msg.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(*g),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Priority(p) => metric = *p,
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Metrics(ms) => {
                    for m in ms {
                        if let RouteMetric::Mtu(v) = m {
                            mtu = Some(*v);
                        }
                    }
                }
                _ => {}
            }
        }
        let dst = Ipv4Net::new(dst, h.destination_prefix_length).ok()?;
        let dev = oif.and_then(|i| names.entry(i).or_insert_with(|| if_name(i)).clone());
        let kind = match (h.kind, gw, dev) {
            (RouteType::BlackHole, _, _) => Some(RouteKind::Blackhole),
            (RouteType::Unicast, Some(gw), Some(dev)) => Some(RouteKind::Via {
                gw,
                dev,
                onlink: h.flags.contains(RouteFlags::Onlink),
            }),
            (RouteType::Unicast, None, Some(dev)) if h.scope == RouteScope::Link => {
                Some(RouteKind::Device { dev })
            }
            _ => None,
        };
        Some(KernelRoute {
            dst,
            kind,
            proto: u8::from(h.protocol),
            mtu,
            metric,
            table,
            msg,
        })
    }
}

/// What a reconcile pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileStats {
    pub added: usize,
    pub replaced: usize,
    pub removed: usize,
    /// Desired routes whose interface does not exist yet (retried next pass).
    pub skipped: usize,
}

pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

impl Netlink {
    /// Opens a netlink connection in the calling thread's network namespace.
    pub fn new() -> Result<Netlink, RoutingError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(nl)?;
        let handle = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection().map_err(nl)?;
            tokio::spawn(conn);
            Ok::<_, RoutingError>(handle)
        })?;
        Ok(Netlink { rt, handle })
    }

    /// IPv4 routes of the main table.
    pub fn routes(&self) -> Result<Vec<KernelRoute>, RoutingError> {
        self.rt.block_on(async {
            let msgs: Vec<RouteMessage> = self
                .handle
                .route()
                .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
                .execute()
                .try_collect()
                .await
                .map_err(nl)?;
            let mut names = BTreeMap::new();
            Ok(msgs
                .into_iter()
                .filter_map(|m| KernelRoute::from_msg(m, &mut names))
                .filter(|r| r.table == RouteHeader::RT_TABLE_MAIN as u32)
                .collect())
        })
    }

    fn message(r: &Route) -> Option<RouteMessage> {
        let b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(r.dst.addr(), r.dst.prefix_len())
            .protocol(RouteProtocol::Other(r.proto));
        let b = match &r.kind {
            RouteKind::Blackhole => b.kind(RouteType::BlackHole),
            RouteKind::Device { dev } => b.output_interface(if_index(dev)?).scope(RouteScope::Link),
            RouteKind::Via { gw, dev, onlink } => {
                let b = b.gateway(*gw).output_interface(if_index(dev)?);
                if *onlink {
                    b.onlink()
                } else {
                    b
                }
            }
        };
        let mut m = b.build();
        // RouteProtocol::Other(n) normalises on parse only; emit the number as given.
        m.header.protocol = RouteProtocol::from(r.proto);
        if let Some(mtu) = r.mtu {
            m.attributes
                .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
        }
        Some(m)
    }

    /// Makes the kernel's `proto 80` routes equal to the agent-owned routes in `desired`.
    pub fn reconcile(&self, desired: &[Route]) -> Result<ReconcileStats, RoutingError> {
        let mut st = ReconcileStats::default();
        let want: BTreeMap<Ipv4Net, &Route> = desired
            .iter()
            .filter(|r| r.owner == Owner::Agent)
            .map(|r| (r.dst, r))
            .collect();
        let have = self.routes()?;
        let mut ours: BTreeMap<Ipv4Net, Vec<&KernelRoute>> = BTreeMap::new();
        for k in have.iter().filter(|k| k.metric == 0) {
            ours.entry(k.dst).or_default().push(k);
        }
        self.rt.block_on(async {
            for (dst, r) in &want {
                let current = ours.get(dst).map(|v| v.as_slice()).unwrap_or(&[]);
                let same = current.iter().any(|k| {
                    k.proto == r.proto && k.kind.as_ref() == Some(&r.kind) && k.mtu == r.mtu
                });
                if same {
                    continue;
                }
                let Some(msg) = Self::message(r) else {
                    st.skipped += 1;
                    continue;
                };
                self.handle
                    .route()
                    .add(msg)
                    .replace()
                    .execute()
                    .await
                    .map_err(|e| nl(format!("replace {r}: {e}")))?;
                if current.is_empty() {
                    st.added += 1;
                } else {
                    st.replaced += 1;
                }
            }
            for k in have.iter().filter(|k| k.proto == AGENT_PROTO) {
                if want.contains_key(&k.dst) && k.metric == 0 {
                    continue;
                }
                match self.handle.route().del(k.msg.clone()).execute().await {
                    Ok(()) => st.removed += 1,
                    Err(e) => return Err(nl(format!("delete {}: {e}", k.dst))),
                }
            }
            Ok(st)
        })
    }

    /// Sets MTU and up on a link.
    pub fn link_up(&self, name: &str, mtu: Option<u32>) -> Result<(), RoutingError> {
        let idx = if_index(name).ok_or_else(|| nl(format!("no interface {name}")))?;
        self.rt.block_on(async {
            let mut b = LinkUnspec::new_with_index(idx).up();
            if let Some(m) = mtu {
                b = b.mtu(m);
            }
            self.handle
                .link()
                .set(b.build())
                .execute()
                .await
                .map_err(|e| nl(format!("set {name}: {e}")))
        })
    }

    /// Keeps exactly one IPv4 address, `addr/32`, on `name` (none if `addr` is None).
    pub fn set_single_addr(&self, name: &str, addr: Option<Ipv4Addr>) -> Result<(), RoutingError> {
        let idx = if_index(name).ok_or_else(|| nl(format!("no interface {name}")))?;
        self.rt.block_on(async {
            let msgs: Vec<_> = self
                .handle
                .address()
                .get()
                .set_link_index_filter(idx)
                .execute()
                .try_collect()
                .await
                .map_err(nl)?;
            let mut present = false;
            for m in msgs {
                let a = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V4(a)) => Some(*a),
                    _ => None,
                });
                let Some(a) = a else { continue };
                if Some(a) == addr && m.header.prefix_len == 32 {
                    present = true;
                } else {
                    self.handle.address().del(m).execute().await.map_err(nl)?;
                }
            }
            if let (Some(a), false) = (addr, present) {
                self.handle
                    .address()
                    .add(idx, IpAddr::V4(a), 32)
                    .execute()
                    .await
                    .map_err(|e| nl(format!("add {a}/32 to {name}: {e}")))?;
            }
            Ok(())
        })
    }
}

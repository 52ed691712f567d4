//! IPAM state in the directory datastore (the I/O edge of [`crate::ipam`]).
//!
//! Layout under the datastore directory:
//! - `ipam/blockaffinities/<node>-<a-b-c-d-NN>.yaml`: `kind: BlockAffinity` (`spec.node`,
//!   `spec.cidr`, `spec.state`, `spec.deleted`), read by the model loader like any resource;
//! - `ipam/blocks/<a-b-c-d-NN>.yaml`: `kind: IPAMBlock` (`spec.cidr`, `spec.affinity`,
//!   `spec.allocations` = attribute index per ordinal or null, `spec.unallocated`,
//!   `spec.attributes[].handle_id`, `spec.sequenceNumber`), Calico's AllocationBlock form.
//!
//! Both kinds are read by policy-ir's loader (the model's loader reads the whole directory, and
//! [`DirStore::load`] reads `ipam/blocks` into IPAM state); this module only writes them.
//!
//! Handles are derived from the blocks. Files are replaced atomically (write + rename); a single
//! writer is assumed (no compare-and-swap; the etcd datastore is a later feature).

use crate::ipam::{Block, IpamState};
use crate::model::{AffinityState, BlockAffinity, Model};
use crate::RoutingError;
use ipnet::Ipv4Net;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub struct DirStore {
    pub dir: PathBuf,
}

fn io(path: &Path, source: std::io::Error) -> RoutingError {
    RoutingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn dashed(c: &Ipv4Net) -> String {
    c.to_string().replace(['.', '/'], "-")
}

impl DirStore {
    pub fn new(dir: &Path) -> DirStore {
        DirStore {
            dir: dir.to_path_buf(),
        }
    }
    fn blocks_dir(&self) -> PathBuf {
        self.dir.join("ipam/blocks")
    }
    fn aff_dir(&self) -> PathBuf {
        self.dir.join("ipam/blockaffinities")
    }

    /// Reads blocks from `ipam/blocks`; affinities come from the model (loaded from the same
    /// directory).
    pub fn load(&self, model: &Model) -> Result<IpamState, RoutingError> {
        let mut st = IpamState {
            affinities: model.affinities.clone(),
            ..Default::default()
        };
        let bd = self.blocks_dir();
        if !bd.is_dir() {
            return Ok(st);
        }
        let res =
            policy_ir::load::load_paths(std::slice::from_ref(&bd)).map_err(RoutingError::Load)?;
        for b in &res.ipam_blocks {
            let s = &b.spec;
            let bad = |field: &str, m: &str| {
                let (line, column) = res.field_location(&b.origin, field);
                RoutingError::Field {
                    file: PathBuf::from(&b.origin.file),
                    line: line.into(),
                    column: column.into(),
                    resource: format!("IPAMBlock \"{}\"", b.metadata.name),
                    field: field.into(),
                    message: m.into(),
                }
            };
            let cidr: Ipv4Net = s
                .cidr
                .trim()
                .parse()
                .map_err(|_| bad("spec.cidr", "not an IPv4 CIDR"))?;
            let size = 1usize << (32 - cidr.prefix_len());
            if s.allocations.len() != size {
                return Err(bad(
                    "spec.allocations",
                    "length does not match the block size",
                ));
            }
            let mut allocations = Vec::with_capacity(size);
            for a in &s.allocations {
                allocations.push(match a {
                    None => None,
                    Some(i) => Some(
                        usize::try_from(*i)
                            .ok()
                            .and_then(|i| s.attributes.get(i))
                            .and_then(|a| a.handle_id.clone())
                            .ok_or_else(|| {
                                bad("spec.allocations", "attribute index out of range")
                            })?,
                    ),
                });
            }
            st.blocks.insert(
                cidr,
                Block {
                    cidr,
                    affinity: s.affinity.clone(),
                    allocations,
                    unallocated: s.unallocated.clone(),
                    sequence_number: s.sequence_number,
                },
            );
        }
        Ok(st)
    }

    /// Writes every block and affinity; removes files of blocks/affinities that are gone.
    pub fn save(&self, st: &IpamState) -> Result<(), RoutingError> {
        let bd = self.blocks_dir();
        let ad = self.aff_dir();
        std::fs::create_dir_all(&bd).map_err(|e| io(&bd, e))?;
        std::fs::create_dir_all(&ad).map_err(|e| io(&ad, e))?;
        let mut keep = Vec::new();
        for b in st.blocks.values() {
            let p = bd.join(format!("{}.yaml", dashed(&b.cidr)));
            write_atomic(&p, &block_yaml(b))?;
            keep.push(p);
        }
        for a in &st.affinities {
            let p = ad.join(format!("{}-{}.yaml", a.node, dashed(&a.cidr)));
            write_atomic(&p, &affinity_yaml(a))?;
            keep.push(p);
        }
        for d in [&bd, &ad] {
            for e in std::fs::read_dir(d).map_err(|e| io(d, e))?.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|e| e == "yaml") && !keep.contains(&p) {
                    std::fs::remove_file(&p).map_err(|e| io(&p, e))?;
                }
            }
        }
        Ok(())
    }
}

fn write_atomic(p: &Path, text: &str) -> Result<(), RoutingError> {
    if std::fs::read_to_string(p).ok().as_deref() == Some(text) {
        return Ok(());
    }
    let tmp = p.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, p).map_err(|e| io(p, e))
}

pub fn affinity_yaml(a: &BlockAffinity) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata:\n  name: {}-{}\nspec:\n  node: {}\n  cidr: {}\n  state: {}\n  deleted: \"false\"\n",
        a.node,
        dashed(&a.cidr),
        a.node,
        a.cidr,
        match a.state {
            AffinityState::Confirmed => "confirmed",
            AffinityState::Pending => "pending",
            AffinityState::PendingDeletion => "pendingDeletion",
        }
    )
}

pub fn block_yaml(b: &Block) -> String {
    let mut handles: Vec<&str> = Vec::new();
    let mut allocs = Vec::new();
    for a in &b.allocations {
        allocs.push(match a {
            None => "null".to_string(),
            Some(h) => {
                let i = match handles.iter().position(|x| *x == h) {
                    Some(i) => i,
                    None => {
                        handles.push(h);
                        handles.len() - 1
                    }
                };
                i.to_string()
            }
        });
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "apiVersion: projectcalico.org/v3\nkind: IPAMBlock\nmetadata:\n  name: {}\nspec:\n  cidr: {}\n",
        dashed(&b.cidr),
        b.cidr
    );
    match &b.affinity {
        Some(a) => {
            let _ = writeln!(s, "  affinity: \"{a}\"");
        }
        None => {
            let _ = writeln!(s, "  affinity: null");
        }
    }
    let _ = writeln!(s, "  allocations: [{}]", allocs.join(", "));
    let un: Vec<String> = b.unallocated.iter().map(|u| u.to_string()).collect();
    let _ = writeln!(s, "  unallocated: [{}]", un.join(", "));
    let _ = writeln!(s, "  attributes:");
    if handles.is_empty() {
        s.truncate(s.len() - 1);
        s.push_str(" []\n");
    }
    for h in handles {
        let _ = writeln!(s, "  - handle_id: \"{h}\"");
    }
    let _ = writeln!(s, "  sequenceNumber: {}", b.sequence_number);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam;
    use crate::model::{IpipMode, Node, Pool};

    #[test]
    fn save_load_round_trip_and_stale_files_removed() {
        let dir = std::env::temp_dir().join(format!("brindle-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut m = Model::default();
        m.nodes.push(Node::new("n1", None));
        let mut p = Pool::new("p", "10.244.0.0/24".parse().unwrap(), IpipMode::Always);
        p.block_size = 28;
        m.pools.push(p);
        let mut st = IpamState::default();
        ipam::auto_assign(&m, &mut st, "n1", "a", 3, 0).unwrap();
        ipam::auto_assign(&m, &mut st, "n1", "b", 1, 0).unwrap();
        ipam::release_ip(&mut st, "10.244.0.2".parse().unwrap()).unwrap();
        let store = DirStore::new(&dir);
        store.save(&st).unwrap();
        // Affinities come back through the resource loader, blocks through the store.
        let m2 = crate::load::load_paths(std::slice::from_ref(&dir)).unwrap();
        let mut m3 = m.clone();
        m3.affinities = m2.affinities.clone();
        let back = store.load(&m3).unwrap();
        assert_eq!(back, st);
        // Dropping a block removes its files.
        st.blocks.clear();
        st.affinities.clear();
        store.save(&st).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.join("ipam/blocks")).unwrap().count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.join("ipam/blockaffinities"))
                .unwrap()
                .count(),
            0
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

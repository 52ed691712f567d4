//! routing-agent: the forwarding half of Brindle (routing.md, spec decision 7).
//!
//! Pure core (no processes, no tokio): [`model`], [`from_ir`] (policy-ir resources → model),
//! [`routes`], [`bird`], [`ipam`]. [`load`] reads files through policy-ir's loader.
//! Edge: [`store`] (IPAM files in the directory datastore), [`netlink`] (route reconcile),
//! [`tunl`] (tunl0: TUN + user-space IP-in-IP), [`birdctl`] (BIRD supervision, control socket,
//! node status), [`agent`] (the node loop).

pub mod agent;
pub mod bird;
pub mod birdctl;
pub mod from_ir;
pub mod ipam;
pub mod load;
pub mod model;
pub mod netlink;
pub mod routes;
pub mod store;
pub mod tunl;

use std::path::PathBuf;

/// Every error of this crate. Input errors carry file, line, column and field.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{file}:{line}:{column}: {resource}: field `{field}`: {message}")]
    Field {
        file: PathBuf,
        line: u64,
        column: u64,
        resource: String,
        field: String,
        message: String,
    },
    /// A file or directory policy-ir's loader could not read.
    #[error("{0}")]
    Load(policy_ir::PolicyIrError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ipam: {0}")]
    Ipam(String),
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("tunl0: {0}")]
    Tunnel(String),
    #[error("bird: {0}")]
    Bird(String),
    #[error("unknown node `{0}`")]
    UnknownNode(String),
}

/// Several input errors at once (the loader collects them all).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct RoutingErrors(pub Vec<RoutingError>);

pub type Result<T, E = RoutingError> = std::result::Result<T, E>;

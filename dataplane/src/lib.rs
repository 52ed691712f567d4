//! dataplane: the kernel edge for policy (apply, diff, drift repair) and the namespace lab.
//!
//! Everything here touches the kernel or spawns programs (`iptables-restore`, `iptables-save`,
//! `ipset`, `ip`, `conntrack`); the pure parts (plan computation, payload rendering) are plain
//! functions over data so they can be tested without a kernel.

pub mod error;
pub mod lab;
pub mod netns;

pub use error::{DataplaneError, Result};
pub mod apply;
pub mod model;
pub mod plan;
pub mod state;

//! policy-ir: Calico resources in, per-node IR and reference verdicts out.

pub mod de;
pub mod error;
pub mod ir;
pub mod k8s;
pub mod labels;
pub mod load;
pub mod resources;
pub mod v1;
pub mod validate;
pub mod yaml;

pub use error::{Diagnostic, PolicyIrError};
pub use resources::Resources;

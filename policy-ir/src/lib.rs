//! policy-ir: Calico resources in, per-node IR and reference verdicts out.

pub mod de;
pub mod ir;
pub mod yaml;

//! policy-ir: Calico resources in, per-node IR and reference verdicts out.
//!
//! - [`load`]: files/directories of YAML or JSON (v3, calicoctl v1, Kubernetes) → validated
//!   [`Resources`], every problem reported with file:line:column, resource and field path.
//! - [`Model`]: effective endpoint labels, the incremental [`labels::LabelIndex`], policies in
//!   evaluation order, [`Model::node_ir`] (the [`ir`] the backends render).
//! - [`oracle`]: the reference evaluator (verdict and the rule that decided).
//! - [`lint`]: shadowed rules, unused policies/selectors, unreachable profiles, unknown named
//!   ports.
//! - [`synth`]: the deterministic synthetic cluster generator used by the scale benchmark.

pub mod de;
pub mod error;
pub mod ir;
pub mod json;
pub mod k8s;
pub mod labels;
pub mod lint;
pub mod load;
pub mod model;
pub mod oracle;
pub mod resolve;
pub mod resources;
pub mod synth;
pub mod v1;
pub mod validate;
pub mod yaml;

pub use error::{Diagnostic, PolicyIrError};
pub use model::{Address, Model};
pub use resources::Resources;

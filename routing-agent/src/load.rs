//! Loading the routing model: files and directories are read by policy-ir's loader (the
//! project's one reader of Calico resources: v3, calicoctl v1 and Kubernetes forms, YAML or
//! JSON, every problem with file:line:column, resource and field), then converted by
//! [`crate::from_ir::from_resources`]. Nothing is parsed here.

use crate::model::Model;
use crate::{RoutingError, RoutingErrors};
use policy_ir::PolicyIrError;
use std::path::PathBuf;

/// Turns policy-ir's error into this crate's: one [`RoutingError::Field`] per diagnostic
/// (same file:line:column, resource and field path).
pub fn from_policy_ir_error(e: PolicyIrError) -> RoutingErrors {
    match e {
        PolicyIrError::Invalid(diags) => RoutingErrors(
            diags
                .into_iter()
                .map(|d| {
                    if d.resource.is_empty() && d.field.is_empty() {
                        RoutingError::Syntax {
                            file: PathBuf::from(d.file),
                            line: d.line.into(),
                            column: d.column.into(),
                            message: d.message,
                        }
                    } else {
                        RoutingError::Field {
                            file: PathBuf::from(d.file),
                            line: d.line.into(),
                            column: d.column.into(),
                            resource: d.resource,
                            field: d.field,
                            message: d.message,
                        }
                    }
                })
                .collect(),
        ),
        other => RoutingErrors(vec![RoutingError::Load(other)]),
    }
}

/// Loads files and directories (`*.yaml|yml|json`, recursively) into the routing model:
/// `policy_ir::load::load_paths`, then `from_ir::from_resources`.
pub fn load_paths(paths: &[PathBuf]) -> Result<Model, RoutingErrors> {
    let resources = policy_ir::load::load_paths(paths).map_err(from_policy_ir_error)?;
    crate::from_ir::from_resources(&resources)
}

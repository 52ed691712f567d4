//! The crate's error type. Every problem found in input carries file, line, column, the resource
//! and the field path.

use std::fmt;

use serde::Serialize;

/// One problem in the input, at a place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// `GlobalNetworkPolicy "broken"` (empty when the problem is not inside a resource).
    pub resource: String,
    /// Field path, e.g. `spec.ingress[0].source.selector` (may be empty).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        match (self.resource.is_empty(), self.field.is_empty()) {
            (true, true) => {}
            (false, true) => write!(f, "{}: ", self.resource)?,
            (true, false) => write!(f, "{}: ", self.field)?,
            (false, false) => write!(f, "{} {}: ", self.resource, self.field)?,
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyIrError {
    /// A file or directory could not be read.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// The input has errors (all of them, sorted by place).
    #[error("{}", display_all(.0))]
    Invalid(Vec<Diagnostic>),
    /// A probe or address names no endpoint and is not an IPv4 address.
    #[error("{spec:?} is neither a known endpoint (namespace/name or name) nor an IPv4 address")]
    UnknownAddress { spec: String },
    /// A name matches several endpoints.
    #[error("{spec:?} is ambiguous: it names {candidates}")]
    AmbiguousAddress { spec: String, candidates: String },
    /// An endpoint has no IPv4 address, so no packet can be built for it.
    #[error("endpoint {spec:?} has no IPv4 address")]
    NoAddress { spec: String },
    /// A probe is malformed (at `index` in its file).
    #[error("probe {index}: {message}")]
    BadProbe { index: usize, message: String },
}

fn display_all(d: &[Diagnostic]) -> String {
    let mut s = format!("{} error(s)", d.len());
    for x in d {
        s.push('\n');
        s.push_str(&x.to_string());
    }
    s
}

impl PolicyIrError {
    /// The diagnostics of an `Invalid` error (empty otherwise).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyIrError::Invalid(d) => d,
            _ => &[],
        }
    }
}

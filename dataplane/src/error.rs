//! The one error type of the dataplane crate.

use thiserror::Error;

/// Everything that can go wrong while reading or writing a kernel's rules or building the lab.
#[derive(Debug, Error)]
pub enum DataplaneError {
    /// A program could not be started at all (missing binary, no permission).
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed; `stderr` is what it said.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// `iptables-restore` rejected a table's payload; the table was left as it was.
    #[error(
        "iptables-restore rejected the {table} table payload (the table is unchanged): {stderr}"
    )]
    Restore { table: String, stderr: String },
    /// A dump (`iptables-save` / `ipset save` text) could not be understood.
    #[error("{source_name}:{line}:{column}: {field}: {message}")]
    Dump {
        source_name: String,
        line: usize,
        column: usize,
        field: String,
        message: String,
    },
    /// A network namespace could not be entered.
    #[error("network namespace `{name}`: {source}")]
    Netns {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// Socket or other system-call failure in the lab.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The lab cannot be built for this input (e.g. an endpoint without an address).
    #[error("lab: {0}")]
    Lab(String),
    /// The plan cannot be applied as it stands (nothing was written).
    #[error("refused: {0}")]
    Refused(String),
    /// The user interrupted the run (Ctrl-C); everything created was removed.
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T, E = DataplaneError> = std::result::Result<T, E>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DataplaneError {
    let context = context.into();
    move |source| DataplaneError::Io { context, source }
}

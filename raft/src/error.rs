//! The one error type of this crate.

/// Errors raised by the Raft network layer itself (not by Raft).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A body could not be encoded or decoded.
    #[error("wire format: {0}")]
    Wire(String),
    /// The network options are unusable (a secret that cannot travel in a header, ...).
    #[error("raft network: {0}")]
    Config(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The node type stored in the Raft membership config.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

/// Where a replica can be reached. Stored in every membership log entry, so the fields are
/// append-only like every persisted format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `host:port` of the public HTTP API (clients, forwarding of writes to the leader).
    pub api_addr: String,
    /// `host:port` of the Raft RPC listener (append, vote, snapshot).
    pub raft_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "api={} raft={}", self.api_addr, self.raft_addr)
    }
}

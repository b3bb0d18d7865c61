//! `/v1/dashboard/…`: the two views the web dashboard needs that no other endpoint gives.
//!
//! Both exist because a browser page can only talk to the replica that served it: it cannot
//! ask the other replicas how they are (another port is another origin), and heartbeats live
//! only in the leader's memory.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use super::cluster::ClusterStatus;

/// How long the answering replica waits for each member's own status.
pub const PROBE_TIMEOUT_MS: u64 = 1000;

/// One member, as it answers for itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaProbe {
    /// Replica id.
    pub id: u64,
    /// Its public API address.
    pub api_addr: String,
    /// A voter (false: a learner).
    pub voter: bool,
    /// Its own `GET /v1/cluster`, when it answered 200.
    #[serde(default)]
    pub status: Option<ClusterStatus>,
    /// Why there is no status: unreachable, timed out, or its error answer.
    #[serde(default)]
    pub error: Option<String>,
    /// Round trip of the probe, in ms (0 for the answering replica itself).
    pub latency_ms: u64,
}

/// Answer of `GET /v1/dashboard/replicas`: every member probed by the answering replica, in
/// id order. The caller's `Authorization` header goes along with each probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaProbes {
    /// The replica that probed.
    pub answered_by: u64,
    /// The members.
    pub replicas: Vec<ReplicaProbe>,
}

/// Answer of `GET /v1/dashboard/leases` (from the leader; a follower forwards it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseAges {
    /// The leader that answered.
    pub leader_id: u64,
    /// The lease length: a worker silent this long is declared lost.
    pub ttl_ms: u64,
    /// Milliseconds since each worker's last heartbeat, as the leader counts them (a new
    /// leader starts every lease over when it takes office).
    pub workers: BTreeMap<String, u64>,
    /// Each worker's load from its latest heartbeat to this leader (CPU busy fraction since
    /// its previous heartbeat, memory used and total); absent until a worker reported one.
    #[serde(default)]
    pub load: BTreeMap<String, crate::proto::workers::WorkerLoad>,
}

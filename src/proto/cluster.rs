//! `/v1/cluster…`, `/health`, `/ready` and the internal read-index endpoint.

use serde::Deserialize;
use serde::Serialize;

/// A replica's Raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Makes every decision.
    Leader,
    /// Replicates the leader's log.
    Follower,
    /// Asking for votes.
    Candidate,
    /// Catching up before becoming a voter.
    Learner,
    /// Stopping.
    Shutdown,
}

impl Role {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Shutdown => "shutdown",
        }
    }
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Replica id.
    pub id: u64,
    /// Its public API address.
    pub api_addr: String,
    /// Its Raft RPC address.
    pub raft_addr: String,
    /// A voter (false: a learner catching up).
    pub voter: bool,
}

/// Answer of `GET /v1/cluster` (and of membership changes): the cluster as the answering
/// replica sees it, without a Raft round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The answering replica.
    pub node_id: u64,
    /// Its process id.
    pub pid: u32,
    /// Its role.
    pub role: Role,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// Its current term.
    pub term: u64,
    /// Index of its last log entry.
    pub last_log_index: Option<u64>,
    /// Highest index it knows committed.
    pub committed: Option<u64>,
    /// Highest index it applied.
    pub last_applied: Option<u64>,
    /// Index its newest snapshot covers.
    pub snapshot: Option<u64>,
    /// Every member, voters and learners.
    pub members: Vec<MemberStatus>,
}

impl ClusterStatus {
    /// The leader's member record, if the leader is known.
    pub fn leader(&self) -> Option<&MemberStatus> {
        let id = self.leader_id?;
        self.members.iter().find(|m| m.id == id)
    }
}

/// Body of `POST /v1/cluster/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The new replica's id (never used before in this cluster).
    pub id: u64,
    /// Its public API address.
    pub api_addr: String,
    /// Its Raft RPC address.
    pub raft_addr: String,
}

/// Answer of `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The answering replica.
    pub node_id: u64,
}

/// Answer of `GET /ready` (200 when ready, 503 otherwise).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    /// A leader is known and everything known committed is applied.
    pub ready: bool,
    /// Why not, or `ok`.
    pub reason: String,
    /// The known leader.
    pub leader_id: Option<u64>,
    /// Highest index known committed.
    pub committed: u64,
    /// Highest index applied here.
    pub last_applied: u64,
}

/// Answer of `GET /v1/internal/read-index` (leader only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadIndex {
    /// A linearizable read must wait until this index is applied.
    pub index: u64,
}

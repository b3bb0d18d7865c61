//! `/v1/cluster…`, `/health`, `/ready` and the internal read-index endpoint.

use serde::Deserialize;
use serde::Serialize;

/// A replica's Raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Highest index removed from its log (everything up to it is only in the snapshot).
    #[serde(default)]
    pub purged: Option<u64>,
    /// Every member, voters and learners.
    pub members: Vec<MemberStatus>,
    /// The leader's calendar loop (absent on other replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarStatus>,
}

/// How the leader's calendar loop is doing since it took office (leader-local, not replicated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CalendarStatus {
    /// Schedule fires (nominal times) this leader committed and apply accepted (a nominal time
    /// at or below the mark is counted, but creates nothing).
    pub fires_committed: u64,
    /// Commit lateness of its newest fires (at most [`LATENESS_WINDOW`]): the time the fire's
    /// entry was committed and applied here, by the clock the loop fires by, minus the nominal
    /// time, in ms.
    pub commit_lateness_ms: Percentiles,
    /// This leader's wall clock minus the voters' median clock at the last probe, in ms (None:
    /// no majority answered yet). See README "Clock safety".
    pub wall_minus_median_ms: Option<i64>,
}

/// Fires whose commit lateness [`CalendarStatus`] keeps.
pub const LATENESS_WINDOW: usize = 65_536;

/// Percentiles of a sample, in its unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Percentiles {
    /// Values in the sample.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// Of `values` (any order).
    pub fn of(mut values: Vec<u64>) -> Self {
        values.sort_unstable();
        let rank = |q: f64| -> u64 {
            if values.is_empty() {
                return 0;
            }
            let r = (q * values.len() as f64).ceil() as usize;
            values[r.clamp(1, values.len()) - 1]
        };
        Percentiles { count: values.len() as u64, p50: rank(0.5), p99: rank(0.99), max: rank(1.0) }
    }
}

impl ClusterStatus {
    /// The leader's member record, if the leader is known.
    pub fn leader(&self) -> Option<&MemberStatus> {
        let id = self.leader_id?;
        self.members.iter().find(|m| m.id == id)
    }
}

/// Body of `POST /v1/cluster/members`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The answering replica.
    pub node_id: u64,
}

/// Answer of `GET /ready` (200 when ready, 503 otherwise).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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

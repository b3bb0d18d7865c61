//! # The node: one taskraft replica wired together
//!
//! A replica is openraft plus our storage, our state machine and two HTTP listeners.
//!
//! Starting a replica ([`Node::start`]):
//! 1. Open the durable pieces under `data_dir`: the sled Raft log (`raft-log/`) and the
//!    snapshot directory (`snapshots/`). The newest snapshot becomes the starting state.
//! 2. Build openraft's `Raft` with the HTTP network (outgoing sockets bound to our own IP).
//! 3. Serve Raft RPCs on `raft_addr` and the public API on `api_addr`.
//! 4. First start only: `bootstrap = true` initializes a one-member cluster; `join = [...]`
//!    asks an existing replica to add us (learner → catch up → voter). A restart finds its
//!    vote and log on disk and does neither.
//!
//! The path of a write lives in the API handlers (the `api` module, which this module
//! never imports); this module offers the pieces they need:
//! [`Node::write`] (propose and wait, with a deadline), [`Node::read_barrier`] (ReadIndex)
//! and leader lookup for forwarding. [`metrics`] holds the replica's Prometheus registry: the
//! state machine, the dispatch loop and the snapshot builder count into it, the API serves it.
//!
//! Deliberately not here: business rules (the pure [`crate::scheduler`]), HTTP status
//! mapping (the `api` module's `error`).

pub mod admin_token;
pub mod backup;
mod batcher;
pub mod leader;
pub mod membership;
pub mod metrics;
mod snapshot_schedule;
mod start;
mod state_machine;
mod types;

use std::sync::Arc;
use std::time::Duration;

use openraft::Instant as _;
use openraft::ReadPolicy;
use openraft::ServerState;
use openraft::errors::ClientWriteError;
use openraft::errors::LinearizableReadError;
use openraft::errors::RaftError;
use openraft::rt::watch::WatchReceiver;
use tokio::time::Instant;

pub use self::membership::MembershipError;
pub use self::start::Error;
pub use self::start::RunningNode;
pub use self::state_machine::Applied;
pub use self::state_machine::StateMachine;
pub use self::state_machine::StateView;
pub use self::types::LogId;
pub use self::types::Member;
pub use self::types::NodeId;
pub use self::types::Raft;
pub use self::types::TypeConfig;
pub use self::types::upgrade_entry;
use crate::config::ServerConfig;
use crate::scheduler::Command;
use crate::scheduler::Response;

pub use crate::proto::FORWARDED_HEADER;

/// Everything the API handlers need, shared behind an `Arc`.
pub struct Node {
    /// This replica's id.
    pub id: NodeId,
    /// The Raft handle.
    pub raft: Raft,
    /// Raft metrics of this replica (role, leader, term, membership, progress).
    pub metrics: openraft::type_config::alias::WatchReceiverOf<TypeConfig, openraft::RaftMetrics<TypeConfig>>,
    /// Read access to the applied state.
    pub view: StateView,
    /// The Prometheus registry of this replica and the instruments the node bumps.
    pub telemetry: Arc<metrics::Telemetry>,
    /// Resolved settings.
    pub config: Arc<ServerConfig>,
    /// Client for forwarding to the leader (bound to our own IP, like Raft traffic). With
    /// TLS it trusts the cluster CA and presents this replica's certificate.
    pub http: reqwest::Client,
    /// This replica's TLS material (`None`: plaintext), shared by both listeners and `http`.
    pub tls: Option<Arc<crate::tls::TlsContext>>,
    /// Leader-only duties (leases, dispatch, timeouts) and their in-memory state.
    pub leader: leader::LeaderState,
    /// Coalesces concurrent client writes into shared log entries (group commit).
    pub batcher: batcher::Batcher,
    /// Cancelled when the replica shuts down; long-polls watch it so shutdown is not held up.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Set when the replica cannot go on (e.g. its join was refused); the server exits with it.
    pub fatal: std::sync::Mutex<Option<String>>,
    /// Serializes membership changes: openraft allows one at a time, and a clear
    /// "wait your turn" beats an `InProgress` error surfacing to the operator.
    pub membership_lock: tokio::sync::Mutex<()>,
}

/// How a proposed write ended when it did not produce a `Response`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// This replica is not the leader; nothing was written. Carries the leader if known.
    #[error("not the leader")]
    NotLeader(Option<NodeId>),
    /// The leader cannot currently reach a quorum; nothing was written.
    #[error("leader has no quorum")]
    NoQuorum,
    /// The entry may or may not commit (deadline passed, or it was discarded on a leader change).
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// This replica is shutting down and did not hand the proposal to Raft; nothing was written.
    #[error("raft stopped: {0}")]
    Stopped(String),
}

/// Shapes openraft's answer to a refused or failed proposal.
pub(crate) fn map_write_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> WriteError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => WriteError::NotLeader(f.leader_id),
        // Discarded on a leader change: it may still have been committed by the new leader.
        RaftError::APIError(e @ ClientWriteError::LogEntryDiscarded(_)) => WriteError::Unknown(e.to_string()),
        RaftError::APIError(e) => WriteError::Unknown(e.to_string()),
        // Raft stopped after taking the proposal (shutdown, or the core dropped its responder):
        // the entry may already be in the log and commit later. Not "nothing was written".
        RaftError::Fatal(f) => WriteError::Unknown(format!("raft stopped after the proposal was handed over: {f}")),
    }
}

/// Why a linearizable read could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No leader is known right now.
    #[error("no leader known")]
    NoLeader,
    /// The leader could not confirm its leadership with a quorum.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The deadline passed before the state machine caught up.
    #[error("timed out waiting for the read index")]
    Timeout,
}

impl Node {
    /// `scheme://addr/path` for a call to another replica (https when TLS is on).
    pub fn url(&self, addr: &str, path: &str) -> String {
        format!("{}://{addr}{path}", self.config.scheme())
    }

    /// The latest Raft metrics of this replica (a cheap borrow; do not hold it across awaits).
    pub fn metrics(&self) -> impl std::ops::Deref<Target = openraft::RaftMetrics<TypeConfig>> + '_ {
        self.metrics.borrow_watched()
    }

    /// Current leader according to this replica, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.metrics().current_leader
    }

    /// Whether this replica currently believes it is the leader.
    pub fn is_leader(&self) -> bool {
        self.metrics().state == ServerState::Leader
    }

    /// The API address of a member, from the membership config.
    pub fn api_addr_of(&self, id: NodeId) -> Option<String> {
        let m = self.metrics();
        m.membership_config.membership().get_node(&id).map(|n| n.api_addr.clone())
    }

    /// True when this leader heard from a quorum recently enough to believe it still leads.
    /// Used to refuse writes definitely (503) instead of letting them time out (504).
    fn leader_has_quorum(&self) -> bool {
        let m = self.metrics();
        // A lone voter is its own quorum; openraft only refreshes `last_quorum_acked` from
        // followers' acknowledgements, so an idle single-replica cluster would look cut off.
        if m.membership_config.membership().voter_ids().count() <= 1 {
            return true;
        }
        match &m.last_quorum_acked {
            Some(at) => at.elapsed() < self.config.election_timeout_max * 2,
            // A fresh leader has not been acked yet; let the proposal decide.
            None => true,
        }
    }

    /// Proposes `cmd` and waits for its `Response`, at most until `deadline`.
    pub async fn write(&self, cmd: Command, deadline: Instant) -> Result<Response, WriteError> {
        if self.is_leader() && !self.leader_has_quorum() {
            return Err(WriteError::NoQuorum);
        }
        match tokio::time::timeout_at(deadline, self.batcher.propose(cmd)).await {
            Err(_) => Err(WriteError::Unknown("deadline passed before the write committed".into())),
            Ok(result) => {
                if let Ok(resp) = &result {
                    self.leader.after_write(resp);
                }
                result
            }
        }
    }

    /// On the leader: the index a linearizable read must wait for (ReadIndex: leadership is
    /// confirmed with a quorum first).
    ///
    /// The index is at least the leader's last log index when the read arrived: waiting for the
    /// whole local log (which a leader never truncates) keeps a read linearizable even where
    /// openraft's read index is older than entries already acknowledged. That happened with a
    /// leader restored in its old term after a restart; restore is off now (see `start.rs`),
    /// and the wait stays as the cheap guard it is.
    pub async fn leader_read_index(&self, deadline: Instant) -> Result<u64, ReadError> {
        let last_log = self.metrics().last_log_index.unwrap_or(0);
        let fut = self.raft.get_read_log_id(ReadPolicy::ReadIndex);
        match tokio::time::timeout_at(deadline, fut).await {
            Err(_) => Err(ReadError::Timeout),
            Ok(Ok((read_log_id, _applied))) => Ok(read_log_id.index().max(last_log)),
            Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_)))) => Err(ReadError::NoLeader),
            Ok(Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e)))) => {
                Err(ReadError::NoQuorum(e.to_string()))
            }
            Ok(Err(RaftError::Fatal(f))) => Err(ReadError::NoQuorum(f.to_string())),
        }
    }

    /// Makes the local state at least as new as every write acknowledged before this call
    /// (ReadIndex through the leader), so that a following local read is linearizable.
    pub async fn read_barrier(&self, deadline: Instant) -> Result<(), ReadError> {
        let index = if self.is_leader() {
            self.leader_read_index(deadline).await?
        } else {
            self.remote_read_index(deadline).await?
        };
        if self.view.wait_applied(index, deadline).await { Ok(()) } else { Err(ReadError::Timeout) }
    }

    /// Asks the leader for its read index over the API port.
    async fn remote_read_index(&self, deadline: Instant) -> Result<u64, ReadError> {
        let leader = self.leader().ok_or(ReadError::NoLeader)?;
        let addr = self.api_addr_of(leader).ok_or(ReadError::NoLeader)?;
        let timeout = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let resp = self
            .http
            .get(self.url(&addr, "/v1/internal/read-index"))
            .header(FORWARDED_HEADER, self.id.to_string())
            .header(crate::proto::CLUSTER_SECRET_HEADER, &self.config.cluster_secret)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| if e.is_timeout() { ReadError::Timeout } else { ReadError::NoLeader })?;
        if !resp.status().is_success() {
            return Err(ReadError::NoQuorum(format!("leader {leader} answered {}", resp.status())));
        }
        let body: crate::proto::cluster::ReadIndex =
            resp.json().await.map_err(|e| ReadError::NoQuorum(e.to_string()))?;
        Ok(body.index)
    }
}

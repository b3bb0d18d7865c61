//! Cluster membership: bootstrap, join, add and remove replicas.
//!
//! Adding a replica is three steps, each committed through Raft: add it as a learner and wait
//! until it has caught up (a far-behind learner receives a snapshot), then promote it to voter.
//! Removing one first commits `MemberRemoved` into the scheduler state (so the id can never
//! join again: a node with an old log under a reused id could otherwise vote with stale
//! state), then removes it from the voter set. Changes are serialized by
//! [`Node::membership_lock`].

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::errors::ChangeMembershipError;
use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use tokio::time::Instant;

use super::Member;
use super::Node;
use super::NodeId;
use super::WriteError;
use super::start::initial_members;
use super::start::self_member;
use crate::scheduler::Command;

/// How long adding a replica may take, catch-up included.
pub const ADD_MEMBER_TIMEOUT: Duration = Duration::from_secs(120);

pub use crate::proto::cluster::AddMember;

/// Why a membership change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// Only the leader changes membership; the caller forwards.
    #[error("not the leader")]
    NotLeader(Option<NodeId>),
    /// `cluster init` on a replica that already has a cluster.
    #[error("this replica is already part of an initialized cluster")]
    AlreadyInitialized,
    /// The id was removed before.
    #[error(
        "node id {0} was removed from this cluster and can never join again; start the replica with a new node_id and an empty data_dir"
    )]
    RemovedBefore(NodeId),
    /// The id is not a member.
    #[error("node {0} is not a member of this cluster")]
    UnknownMember(NodeId),
    /// Removing the last voter would leave no cluster.
    #[error("node {0} is the last voter; a cluster cannot remove its last voter")]
    LastVoter(NodeId),
    /// The id or an address is already used by a different member.
    #[error("{0}")]
    Conflict(String),
    /// An address does not parse as host:port.
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The change may or may not have happened (deadline, leader change).
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// Raft refused for another reason (no quorum, stopped).
    #[error("{0}")]
    Unavailable(String),
}

fn from_raft(e: RaftError<super::TypeConfig, ClientWriteError<super::TypeConfig>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader(f.leader_id),
        // Another change (the bootstrap's own first membership, or a concurrent add) has not
        // committed yet: transient, so 503 and the caller (a joining replica) tries again.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c @ ChangeMembershipError::InProgress(_))) => {
            MembershipError::Unavailable(format!("{c}; retry shortly"))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => MembershipError::Conflict(c.to_string()),
        other => MembershipError::Unknown(other.to_string()),
    }
}

fn now_ms() -> u64 {
    crate::util::now_ms()
}

impl Node {
    /// Adds a replica: learner, catch up, voter. Idempotent for an existing voter with the
    /// same addresses.
    pub async fn add_member(&self, req: AddMember) -> Result<(), MembershipError> {
        for (field, addr) in [("api_addr", &req.api_addr), ("raft_addr", &req.raft_addr)] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(MembershipError::Invalid { field, message: format!("`{addr}` is not an IP:port address") });
            }
        }
        if !self.is_leader() {
            return Err(MembershipError::NotLeader(self.leader()));
        }
        let _turn = self.membership_lock.lock().await;
        if self.view.read(|a| a.state.removed_members.contains(&req.id)) {
            return Err(MembershipError::RemovedBefore(req.id));
        }
        let member = Member { api_addr: req.api_addr.clone(), raft_addr: req.raft_addr.clone() };
        let (is_voter, existing) = {
            let m = self.metrics();
            let membership = m.membership_config.membership();
            for (id, node) in membership.nodes() {
                if *id != req.id && (node.api_addr == member.api_addr || node.raft_addr == member.raft_addr) {
                    return Err(MembershipError::Conflict(format!("node {id} already uses {node}")));
                }
            }
            (membership.voter_ids().any(|v| v == req.id), membership.get_node(&req.id).cloned())
        };
        if let Some(existing) = &existing
            && *existing != member
        {
            return Err(MembershipError::Conflict(format!("node {} is already a member at {existing}", req.id)));
        }
        if is_voter {
            return Ok(());
        }
        let deadline = Instant::now() + ADD_MEMBER_TIMEOUT;
        tracing::info!(node = req.id, %member, "adding replica as learner; waiting for it to catch up");
        let added = tokio::time::timeout_at(deadline, self.raft.add_learner(req.id, member, true)).await;
        match added {
            Err(_) => return Err(MembershipError::Unknown("learner did not catch up before the deadline".into())),
            Ok(r) => r.map_err(from_raft)?,
        };
        tracing::info!(node = req.id, "learner caught up; promoting to voter");
        let promote = ChangeMembers::AddVoterIds(BTreeSet::from([req.id]));
        match tokio::time::timeout_at(deadline, self.raft.change_membership(promote, false)).await {
            Err(_) => Err(MembershipError::Unknown("promotion did not commit before the deadline".into())),
            Ok(r) => r.map(|_| ()).map_err(from_raft),
        }?;
        tracing::info!(node = req.id, "replica is now a voter");
        Ok(())
    }

    /// Removes a replica for good. Removing the leader itself makes it step down once the
    /// new configuration commits.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), MembershipError> {
        if !self.is_leader() {
            return Err(MembershipError::NotLeader(self.leader()));
        }
        let _turn = self.membership_lock.lock().await;
        let (known, voters) = {
            let m = self.metrics();
            let membership = m.membership_config.membership();
            (membership.get_node(&id).is_some(), membership.voter_ids().collect::<BTreeSet<_>>())
        };
        if !known {
            return Err(MembershipError::UnknownMember(id));
        }
        if voters.len() == 1 && voters.contains(&id) {
            return Err(MembershipError::LastVoter(id));
        }
        let deadline = Instant::now() + self.config.request_timeout;
        match self.write(Command::MemberRemoved { now_ms: now_ms(), node_id: id }, deadline).await {
            Ok(_) => {}
            Err(WriteError::NotLeader(l)) => return Err(MembershipError::NotLeader(l)),
            Err(e) => return Err(MembershipError::Unknown(e.to_string())),
        }
        tracing::info!(node = id, "removing replica");
        let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
        match tokio::time::timeout_at(deadline, self.raft.change_membership(change, false)).await {
            Err(_) => Err(MembershipError::Unknown("removal did not commit before the deadline".into())),
            Ok(r) => r.map(|_| ()).map_err(from_raft),
        }?;
        tracing::info!(node = id, "replica removed");
        Ok(())
    }

    /// `cluster init`: make this uninitialized replica the first member of a new cluster.
    pub async fn init_cluster(&self) -> Result<(), MembershipError> {
        let initialized = self.raft.is_initialized().await.map_err(|e| MembershipError::Unavailable(e.to_string()))?;
        if initialized {
            return Err(MembershipError::AlreadyInitialized);
        }
        self.raft.initialize(initial_members(&self.config)).await.map_err(|e| match e {
            RaftError::APIError(e) => MembershipError::Conflict(e.to_string()),
            RaftError::Fatal(f) => MembershipError::Unavailable(f.to_string()),
        })?;
        tracing::info!(node_id = self.id, "initialized a new cluster with this replica as its first member");
        Ok(())
    }
}

/// First-start duties: bootstrap or join. Does nothing on a restart.
pub async fn first_start(node: &Node) {
    match node.raft.is_initialized().await {
        Ok(true) => {
            tracing::info!(node_id = node.id, "found existing raft state; rejoining the cluster as before");
            return;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot read raft state");
            return;
        }
    }
    if node.config.bootstrap {
        match node.init_cluster().await {
            Ok(()) | Err(MembershipError::AlreadyInitialized) => {}
            Err(e) => tracing::error!(error = %e, "bootstrap failed"),
        }
        return;
    }
    if node.config.join.is_empty() {
        tracing::warn!(
            node_id = node.id,
            "not part of a cluster yet: run `taskraft cluster init --addr {}` to start a new one, or add this replica from an existing cluster with `taskraft cluster add`",
            node.config.api_addr
        );
        return;
    }
    join(node).await;
}

/// Asks the configured peers to add this replica, retrying with backoff until one accepts.
async fn join(node: &Node) {
    let me = self_member(&node.config);
    let body = AddMember { id: node.id, api_addr: me.api_addr.clone(), raft_addr: me.raft_addr.clone() };
    let peers: Vec<&String> = node.config.join.iter().filter(|a| **a != me.api_addr).collect();
    let mut backoff = Duration::from_millis(200);
    loop {
        for peer in &peers {
            if node.raft.is_initialized().await.unwrap_or(false) && node.leader().is_some() {
                // Added by someone else (e.g. an operator) meanwhile.
                return;
            }
            let url =
                node.url(peer.trim_start_matches("https://").trim_start_matches("http://"), "/v1/cluster/members");
            let sent = node
                .http
                .post(&url)
                .header(crate::proto::CLUSTER_SECRET_HEADER, &node.config.cluster_secret)
                .json(&body)
                .timeout(ADD_MEMBER_TIMEOUT)
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    tracing::info!(node_id = node.id, via = %peer, "joined the cluster");
                    return;
                }
                Ok(resp) if resp.status() == reqwest::StatusCode::CONFLICT => {
                    let text = resp.text().await.unwrap_or_default();
                    tracing::error!(node_id = node.id, via = %peer, answer = %text, "join refused; stopping");
                    *node.fatal.lock().expect("fatal lock") =
                        Some(format!("joining the cluster via {peer} was refused: {text}"));
                    node.shutdown.cancel();
                    return;
                }
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    tracing::warn!(via = %peer, %status, answer = %text, "join attempt failed; will retry");
                }
                Err(e) => tracing::warn!(via = %peer, error = %e, "join attempt failed; will retry"),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod from_raft_tests {
    use openraft::errors::EmptyMembership;
    use openraft::errors::InProgress;

    use super::*;
    use crate::node::types::LogId;

    #[test]
    fn a_change_in_progress_is_retryable_and_other_refusals_are_conflicts() {
        // The bootstrap's first membership not committed yet: a joining replica must retry.
        let in_progress = InProgress { committed: None, membership_log_id: Some(LogId::new_term_index(0, 0)) };
        let e = RaftError::APIError(ClientWriteError::ChangeMembershipError(in_progress.into()));
        assert!(matches!(from_raft(e), MembershipError::Unavailable(m) if m.contains("retry")));
        let e = RaftError::APIError(ClientWriteError::ChangeMembershipError(EmptyMembership {}.into()));
        assert!(matches!(from_raft(e), MembershipError::Conflict(_)));
    }
}

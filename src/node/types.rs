//! The openraft type configuration of taskraft.

pub use taskraft_raft::Member;

use crate::scheduler::Command;
use crate::scheduler::Response;

/// Replica ids are small integers chosen by the operator (`node_id` in the config).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// taskraft's Raft types: scheduler commands in, scheduler responses out, members reached
    /// over HTTP. `leader_id_std` gives classic Raft's "at most one leader per term", which the
    /// chaos suite checks.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Member,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
);

/// The `Raft` handle specialised to our state machine.
pub type Raft = openraft::Raft<TypeConfig, super::state_machine::StateMachine>;
/// A log id (term/leader + index).
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// The membership stored with the last applied membership entry.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot whose data is the encoded state.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, Vec<u8>>;

/// openraft logs entries with `Display`: a short summary, never the whole payload.
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = format!("{self:?}");
        let head: String = text.chars().take(80).collect();
        if head.len() < text.len() { write!(f, "{head}…") } else { f.write_str(&head) }
    }
}

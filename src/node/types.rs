//! The openraft type configuration of taskraft.

pub use taskraft_raft::Member;

use crate::scheduler::Response;
use crate::scheduler::format::LogCommand;

/// Replica ids are small integers chosen by the operator (`node_id` in the config).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// taskraft's Raft types: scheduler commands (behind their format version) in, scheduler
    /// responses out, members reached over HTTP. `leader_id_std` gives classic Raft's "at most one leader per term", which the
    /// chaos suite checks.
    pub TypeConfig:
        D = LogCommand,
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

/// A log entry as openraft stores it.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;

/// Reads a log entry written by an earlier release (the log store's legacy entry format), so
/// a data dir survives an upgrade. Given to the log store with
/// [`taskraft_storage::LogStore::with_upgrade`].
///
/// Entry format 1 is `postcard(Entry)` with a format-1 [`Command`](crate::scheduler::Command)
/// as the payload and no version byte of its own: it is decoded as
/// [`v1::Command`](crate::scheduler::format::v1::Command) and upgraded in memory.
pub fn upgrade_entry(version: u8, body: &[u8]) -> Result<Entry, String> {
    use crate::scheduler::format::v1;
    type V1Entry = openraft::Entry<
        openraft::type_config::alias::CommittedLeaderIdOf<TypeConfig>,
        openraft::EntryPayload<v1::Command, NodeId, Member>,
    >;
    if version != 1 {
        return Err(format!("entry format {version} is not one this build can upgrade"));
    }
    let (old, rest) = postcard::take_from_bytes::<V1Entry>(body).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the entry", rest.len()));
    }
    let payload = match old.payload {
        openraft::EntryPayload::Blank => openraft::EntryPayload::Blank,
        openraft::EntryPayload::Normal(cmd) => openraft::EntryPayload::Normal(LogCommand(cmd.into())),
        openraft::EntryPayload::Membership(m) => openraft::EntryPayload::Membership(m),
    };
    Ok(Entry { log_id: old.log_id, payload })
}

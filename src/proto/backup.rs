//! `GET /v1/snapshot`: a backup of the whole replicated state, and the header it carries.
//!
//! The answer's body is a complete backup file, ready to be written to disk as is: the
//! checksummed snapshot file format of `taskraft-storage` (magic, version, CRC-32, lengths),
//! whose metadata is a [`BackupMeta`] in postcard and whose data is the state's snapshot payload
//! (`[STATE_FORMAT] ++ postcard(State)`). `taskraft snapshot restore` reads the same file.

use serde::Deserialize;
use serde::Serialize;

/// Format of [`BackupMeta`] written by this build. Its first byte on disk, so that a later
/// build can tell the shapes apart.
pub const BACKUP_FORMAT: u8 = 1;
/// `Content-Type` of a `GET /v1/snapshot` answer.
pub const SNAPSHOT_CONTENT_TYPE: &str = "application/octet-stream";

/// What a backup holds: the log position it was taken at, the membership of the cluster it
/// came from, and counts to check a restore against. Persisted (postcard) in backup files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupMeta {
    /// [`BACKUP_FORMAT`] of the writer.
    pub format: u8,
    /// Index of the last log entry applied to the saved state: the state is exactly the
    /// cluster's state at this index.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The replica (the leader) that took the backup.
    pub taken_by: u64,
    /// When it was taken, ms since the epoch (the leader's clock).
    pub created_ms: u64,
    /// Members of the source cluster at that index (informational: a restore starts a new
    /// cluster with a membership of its own).
    pub members: Vec<BackupMember>,
    /// Tasks in the saved state.
    pub tasks: u64,
    /// Schedules in the saved state.
    pub schedules: u64,
    /// The id the next submitted task gets.
    pub next_task_id: u64,
    /// The id the next created schedule gets.
    pub next_schedule_id: u64,
}

/// One member of the source cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupMember {
    /// Raft node id.
    pub id: u64,
    /// API address.
    pub api_addr: String,
    /// Raft address.
    pub raft_addr: String,
    /// Voter (else learner).
    pub voter: bool,
}

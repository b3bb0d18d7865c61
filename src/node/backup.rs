//! Backup and restore: a consistent copy of the replicated state, and a new cluster seeded
//! from one.
//!
//! **Backup** ([`Node::backup`], `GET /v1/snapshot` on the leader):
//! 1. ReadIndex: leadership is confirmed with a quorum and the state machine catches up with
//!    everything committed before the request, so the backup holds every acknowledged write.
//! 2. Under the state's read lock (off the async threads): a [`BackupMeta`] naming the applied
//!    index, its term and the membership, and a frozen copy of the state (`State::freeze`,
//!    cheap: the big maps are persistent and shared). One lock, so one applied index. The
//!    copy is encoded (the snapshot payload, `[STATE_FORMAT] ++ postcard(State)`) after the
//!    lock is released, so apply does not wait for the encoding.
//! 3. Both go into the checksummed snapshot file format of `taskraft-storage`; the answer's body
//!    is the file, and the client writes it with temp + fsync + rename after checking it.
//!
//! **Restore** ([`restore`], `taskraft snapshot restore FILE --data-dir DIR`, offline):
//! 1. The file's checksum, format versions and state are checked (an older state format is
//!    upgraded in memory, as on any start).
//! 2. `DIR` must be empty or missing: restoring into a replica that has a Raft log is refused,
//!    because openraft must never mix a snapshot of one cluster incarnation with the log of
//!    another.
//! 3. The state is prepared for a new cluster, as if one more entry (index + 1) were applied:
//!    every worker of the old cluster is declared lost, so attempts that were running when the
//!    backup was taken end `lost` and follow their failover policy (a worker that registers with
//!    the new cluster starts a new incarnation); the old cluster's removed replica ids are
//!    forgotten (the new cluster has its own membership).
//! 4. The result is written to `DIR/restore-seed.bin` (same file format).
//!
//! **Seeding** ([`install_restore_seed`], at the start of a replica with `--bootstrap`): the
//! seed becomes the replica's snapshot at log id (term 0, index + 1) with a membership of this
//! replica alone, then the seed file is deleted. openraft finds a snapshot ahead of an empty
//! log, marks the log purged up to it, and the lone voter elects itself: a new cluster whose log
//! continues after the backup's index (fencing tokens are log indexes, so they keep growing),
//! whose task and schedule ids continue from the saved counters. Other replicas join it as
//! usual and receive the snapshot.
//!
//! Deliberately not here: restoring into a running cluster (refused), merging states, and
//! carrying the old cluster's workers' liveness over (liveness is the leader's memory).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;

use taskraft_storage::SnapshotStore;
use tokio::time::Instant;

use super::Node;
use super::ReadError;
use super::types::LogId;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use crate::config::ServerConfig;
use crate::proto::backup::BACKUP_FORMAT;
use crate::proto::backup::BackupMember;
use crate::proto::backup::BackupMeta;
use crate::scheduler::Command;
use crate::scheduler::Response;
use crate::scheduler::State;
use crate::scheduler::WorkerState;
use crate::scheduler::format;

/// The file `taskraft snapshot restore` writes into an empty data dir; a replica started on
/// that dir with `--bootstrap` begins a new cluster from it.
pub const RESTORE_SEED_FILE: &str = "restore-seed.bin";

/// Why a backup could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The read barrier failed (no quorum, deadline).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Encoding failed (a bug).
    #[error("encoding the backup: {0}")]
    Encode(String),
}

/// Why a restore was refused or failed. Nothing is written to the data dir in any case but
/// success.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The data dir already holds something.
    #[error(
        "refusing to restore into {0}: the directory is not empty. A restore seeds a NEW cluster: give the \
         data dir of a replica that was never started (an empty or missing directory); restoring into a \
         live cluster is not possible"
    )]
    NotEmpty(String),
    /// The backup file is damaged or not a backup.
    #[error("{0}")]
    BadBackup(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
}

/// What a restore wrote.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup's header.
    pub backup: BackupMeta,
    /// The log index the new cluster's log continues after.
    pub seed_index: u64,
    /// Workers of the old cluster now marked lost.
    pub workers_lost: usize,
    /// Attempts that were live in the backup and ended `lost`.
    pub attempts_lost: usize,
    /// The seed file.
    pub seed: std::path::PathBuf,
}

impl Node {
    /// A backup file of the state at one applied index that includes every write acknowledged
    /// before this call. Leader only (the caller forwards otherwise).
    pub async fn backup(&self, deadline: Instant) -> Result<(BackupMeta, Vec<u8>), BackupError> {
        let index = self.leader_read_index(deadline).await?;
        if !self.view.wait_applied(index, deadline).await {
            return Err(ReadError::Timeout.into());
        }
        let view = self.view.clone();
        let taken_by = self.id;
        // Encoding a large state takes a while: keep it off the async worker threads, and off the
        // lock (under it the state is only frozen, see `State::freeze`).
        tokio::task::spawn_blocking(move || {
            let (meta, frozen) = view.read(|applied| {
                let membership = applied.membership.membership();
                let voters: BTreeSet<u64> = membership.voter_ids().collect();
                let state = &applied.state;
                let meta = BackupMeta {
                    format: BACKUP_FORMAT,
                    index: applied.last_applied.map_or(0, |l| l.index),
                    term: applied.last_applied.map_or(0, |l| l.leader_id.term),
                    taken_by,
                    created_ms: crate::util::now_ms(),
                    members: membership
                        .nodes()
                        .map(|(id, n)| BackupMember {
                            id: *id,
                            api_addr: n.api_addr.clone(),
                            raft_addr: n.raft_addr.clone(),
                            voter: voters.contains(id),
                        })
                        .collect(),
                    tasks: state.task_count() as u64,
                    schedules: state.schedules().count() as u64,
                    next_task_id: state.next_task_id(),
                    next_schedule_id: state.next_schedule_id,
                };
                (meta, state.freeze())
            });
            let data = frozen.encode().map_err(|e| BackupError::Encode(e.to_string()))?;
            drop(frozen);
            let file = taskraft_storage::snapshot::encode_file(&meta, &data)
                .map_err(|e| BackupError::Encode(e.to_string()))?;
            Ok((meta, file))
        })
        .await
        .map_err(|e| BackupError::Encode(e.to_string()))?
    }
}

/// Checks a backup file's bytes (read from `path`): checksum, header format, state format.
/// Returns the header and the decoded state.
pub fn read_backup(path: &Path, bytes: Vec<u8>) -> Result<(BackupMeta, State), RestoreError> {
    let bad =
        |e: &dyn std::fmt::Display| RestoreError::BadBackup(format!("{} is not a usable backup: {e}", path.display()));
    let (meta, data) = taskraft_storage::snapshot::decode_file::<BackupMeta>(path, bytes).map_err(|e| bad(&e))?;
    if meta.format != BACKUP_FORMAT {
        return Err(bad(&format!("backup header format {} (this build reads {BACKUP_FORMAT})", meta.format)));
    }
    let state = format::decode_state(&data).map_err(|e| bad(&e))?;
    Ok((meta, state))
}

/// `taskraft snapshot restore`: checks the backup at `file` and writes the seed of a new
/// cluster into the empty `data_dir` (see the module docs). `now_ms` stamps the workers and
/// attempts it ends.
pub fn restore(file: &Path, data_dir: &Path, now_ms: u64) -> Result<Restored, RestoreError> {
    let bytes = std::fs::read(file).map_err(|e| RestoreError::Io(format!("cannot read {}: {e}", file.display())))?;
    let (backup, mut state) = read_backup(file, bytes)?;
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RestoreError::NotEmpty(data_dir.display().to_string()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RestoreError::Io(format!("cannot read {}: {e}", data_dir.display()))),
    }
    let seed_index = backup.index.max(state.last_applied_index()) + 1;
    let (workers_lost, attempts_lost) = prepare_for_new_cluster(&mut state, seed_index, now_ms);
    let data = format::encode_state(&state).map_err(|e| RestoreError::Io(format!("cannot encode the state: {e}")))?;
    let seed_meta = BackupMeta { index: seed_index, term: 0, members: Vec::new(), ..backup.clone() };
    let bytes = taskraft_storage::snapshot::encode_file(&seed_meta, &data)
        .map_err(|e| RestoreError::Io(format!("cannot encode the seed: {e}")))?;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| RestoreError::Io(format!("cannot create {}: {e}", data_dir.display())))?;
    let seed = data_dir.join(RESTORE_SEED_FILE);
    taskraft_storage::snapshot::write_atomic(&seed, &bytes).map_err(|e| RestoreError::Io(e.to_string()))?;
    Ok(Restored { backup, seed_index, workers_lost, attempts_lost, seed })
}

/// Ends the old cluster's worker incarnations (their running attempts end `lost` and follow
/// their failover policy) and forgets its removed replica ids, applying at `index`. Returns
/// (workers marked lost, attempts ended).
fn prepare_for_new_cluster(state: &mut State, index: u64, now_ms: u64) -> (usize, usize) {
    let commands: Vec<Command> = state
        .workers()
        .filter(|w| matches!(w.state, WorkerState::Active | WorkerState::Draining))
        .map(|w| Command::WorkerLost { now_ms, worker_id: w.id.clone() })
        .collect();
    let workers = commands.len();
    let mut attempts = 0;
    if let Response::Many { responses } = state.apply(index, Command::Many { commands }) {
        for r in responses {
            if let Response::Worker { affected, .. } = r {
                attempts += affected.len();
            }
        }
    }
    state.removed_members.clear();
    (workers, attempts)
}

/// At the start of a replica: turns a restore seed in its data dir into its first snapshot (see
/// the module docs). Does nothing without a seed. Refuses a seed on a replica that is not
/// bootstrapping, or that already has a Raft log.
pub fn install_restore_seed(config: &ServerConfig, snapshots: &SnapshotStore) -> Result<(), String> {
    let path = config.data_dir.join(RESTORE_SEED_FILE);
    if !path.exists() {
        return Ok(());
    }
    if !config.bootstrap {
        return Err(format!(
            "{} holds a restored backup: start this replica with --bootstrap to begin the new cluster from it \
             (the other replicas join it with empty data dirs)",
            path.display()
        ));
    }
    if config.data_dir.join("raft-log").exists() {
        return Err(format!(
            "{} holds a restored backup next to a Raft log: refusing to mix a backup with a live replica's log; \
             restore into an empty data dir",
            path.display()
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (meta, data) = taskraft_storage::snapshot::decode_file::<BackupMeta>(&path, bytes)
        .map_err(|e| format!("restore seed {}: {e}", path.display()))?;
    let log_id = LogId::new_term_index(0, meta.index);
    match snapshots.load_latest::<SnapshotMeta>().map_err(|e| e.to_string())? {
        // A crash after the snapshot was saved and before the seed was deleted.
        Some((existing, _)) if existing.last_log_id == Some(log_id) => {}
        Some(_) => {
            return Err(format!(
                "{} holds a restored backup but the replica already has another snapshot; restore into an empty \
                 data dir",
                path.display()
            ));
        }
        None => {
            let me = super::start::self_member(config);
            let membership = openraft::Membership::new(
                vec![BTreeSet::from([config.node_id])],
                BTreeMap::from([(config.node_id, me)]),
            )
            .map_err(|e| format!("membership of the new cluster: {e}"))?;
            let snapshot_meta = SnapshotMeta {
                last_log_id: Some(log_id),
                last_membership: StoredMembership::new(Some(log_id), membership),
            };
            snapshots.save(&snapshot_meta, &data).map_err(|e| e.to_string())?;
        }
    }
    std::fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    tracing::info!(
        index = meta.index,
        tasks = meta.tasks,
        schedules = meta.schedules,
        next_task_id = meta.next_task_id,
        "seeded a new cluster from a restored backup"
    );
    Ok(())
}

//! The openraft state-machine adapter: decode, call the pure `apply`, persist snapshots, respond.
//!
//! The scheduler state lives in memory behind an `RwLock`; durability comes from the Raft log
//! (flushed before every acknowledgement) plus snapshot files. On restart the newest snapshot
//! is loaded and openraft re-applies the committed log entries after it.
//!
//! Business logic never lives here: every normal entry goes to
//! [`crate::scheduler::State::apply`], and its `Response` is handed back to the waiting client.
//! On the way, the cluster counters of [`super::metrics::applied`] look at the command and its
//! response (a few integer additions per entry; the counters are published once per batch),
//! and each batch reports how long its entries waited for the state's write lock.
//!
//! Snapshots never hold the lock while they encode: the builder takes the read lock only to
//! [`State::freeze`] the state (its big maps are persistent, so the copy is cheap), then encodes
//! and writes the frozen copy on a blocking thread while apply goes on. Installing a snapshot
//! decodes it on a blocking thread first; the lock is held only to swap the states, and the
//! old one is freed after it, on a blocking thread too.

use std::io;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;
use std::time::Instant;

use futures::Stream;
use futures::TryStreamExt;
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use serde::Deserialize;
use serde::Serialize;
use taskraft_storage::SnapshotStore;
use tokio::sync::watch;

use super::metrics::Probe;
use super::metrics::Tally;
use super::metrics::Telemetry;
use super::types::LogId;
use super::types::Snapshot;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use super::types::TypeConfig;
use crate::scheduler::Response;
use crate::scheduler::State;
use crate::scheduler::format;
use crate::scheduler::format::LogCommand;

/// What has been applied: the scheduler state plus the Raft bookkeeping that goes with it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    /// The replicated scheduler state.
    pub state: State,
    /// Id of the last entry applied to `state`.
    pub last_applied: Option<LogId>,
    /// Membership of the last applied membership entry.
    pub membership: StoredMembership,
}

/// Shared read access to the applied state, plus a watch on the last applied index
/// (used by linearizable reads and `/wait` long-polls).
#[derive(Clone)]
pub struct StateView {
    applied: Arc<RwLock<Applied>>,
    index: watch::Receiver<u64>,
}

impl StateView {
    /// Runs `f` on the current state under the read lock (keep it short: apply waits).
    pub fn read<T>(&self, f: impl FnOnce(&Applied) -> T) -> T {
        let guard = self.applied.read().expect("state lock poisoned: a previous apply panicked");
        f(&guard)
    }

    /// A view of `state` that no state machine updates, for tests of what reads it.
    #[cfg(test)]
    pub(crate) fn detached(state: State) -> Self {
        let index = state.last_applied_index();
        let applied = Applied { state, ..Applied::default() };
        StateView { applied: Arc::new(RwLock::new(applied)), index: watch::channel(index).1 }
    }

    /// Index of the last applied entry (0 before anything was applied).
    pub fn applied_index(&self) -> u64 {
        *self.index.borrow()
    }

    /// Waits until the state machine has applied `index`, or the deadline passes.
    /// Returns whether the index was reached.
    pub async fn wait_applied(&self, index: u64, deadline: tokio::time::Instant) -> bool {
        let mut rx = self.index.clone();
        let reached = tokio::time::timeout_at(deadline, rx.wait_for(|applied| *applied >= index)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// A receiver that changes whenever something new is applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.index.clone()
    }
}

/// The state machine handed to openraft.
pub struct StateMachine {
    applied: Arc<RwLock<Applied>>,
    index_tx: watch::Sender<u64>,
    snapshots: Arc<Snapshots>,
    telemetry: Arc<Telemetry>,
}

impl StateMachine {
    /// Opens the state machine, loading the newest snapshot from `snapshots` if there is one.
    /// What it applies is counted into a registry of its own (nobody scrapes it).
    pub fn open(snapshots: SnapshotStore) -> io::Result<(Self, StateView)> {
        Self::open_counted(snapshots, Telemetry::new())
    }

    /// [`StateMachine::open`], counting applied commands into `telemetry`.
    pub fn open_counted(snapshots: SnapshotStore, telemetry: Arc<Telemetry>) -> io::Result<(Self, StateView)> {
        let mut applied = Applied::default();
        if let Some((meta, data)) = snapshots.load_latest::<SnapshotMeta>().map_err(io::Error::other)? {
            applied.state = decode_state(&data)?;
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership;
            tracing::info!(index = applied.last_applied.map(|l| l.index), "loaded snapshot");
        }
        let index = applied.last_applied.map_or(0, |l| l.index);
        let (index_tx, index_rx) = watch::channel(index);
        let applied = Arc::new(RwLock::new(applied));
        let view = StateView { applied: applied.clone(), index: index_rx };
        let newest = applied.read().expect("state lock poisoned").last_applied;
        let snapshots = Arc::new(Snapshots { store: snapshots, newest: std::sync::Mutex::new(newest) });
        Ok((Self { applied, index_tx, snapshots, telemetry }, view))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Applied> {
        self.applied.write().expect("state lock poisoned: a previous apply panicked")
    }
}

/// Reads a snapshot payload of any format this build knows, upgrading it in memory.
fn decode_state(data: &[u8]) -> io::Result<State> {
    format::decode_state(data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let applied = self.write();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let mut last = None;
        let mut tally = Tally::default();
        // Three clock reads per entry: how long it waited for the write lock (readers, a snapshot
        // freezing the state) and how long it held it.
        let (mut longest_wait, mut busy) = (Duration::ZERO, Duration::ZERO);
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id;
            let asked = Instant::now();
            let response = {
                let mut applied = self.write();
                let got = Instant::now();
                longest_wait = longest_wait.max(got - asked);
                applied.last_applied = Some(log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => Response::Noop,
                    EntryPayload::Normal(LogCommand(cmd)) => {
                        let probe = Probe::of(&applied.state, &cmd);
                        let response = applied.state.apply(log_id.index, cmd);
                        tally.record(&probe, applied.state.counts(), &response, &self.telemetry.applied);
                        response
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(log_id), m);
                        Response::Noop
                    }
                };
                busy += asked.elapsed();
                response
            };
            last = Some(log_id.index);
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        if last.is_some() {
            self.telemetry.apply.batch(longest_wait, busy);
        }
        // Counted before the index moves, so that a reader who waited for the index sees them.
        self.telemetry.applied.add(&tally);
        if let Some(index) = last {
            self.index_tx.send_replace(index);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            applied: self.applied.clone(),
            snapshots: self.snapshots.clone(),
            metrics: self.telemetry.snapshots.clone(),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<(), io::Error> {
        // Decoding a large state takes seconds: off the async worker threads, and before the lock.
        let (state, data) = tokio::task::spawn_blocking(move || decode_state(&data).map(|state| (state, data)))
            .await
            .map_err(io::Error::other)??;
        self.telemetry.snapshots.installed(data.len());
        let snapshots = self.snapshots.clone();
        let m = meta.clone();
        tokio::task::spawn_blocking(move || snapshots.save(&m, &data, true)).await.map_err(io::Error::other)??;
        let (index, old) = {
            let mut applied = self.write();
            let old = std::mem::replace(&mut applied.state, state);
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            (meta.last_log_id.map_or(0, |l| l.index), old)
        };
        // Freeing a large state takes a while too: not under the lock, not on an async thread.
        tokio::task::spawn_blocking(move || drop(old));
        self.index_tx.send_replace(index);
        tracing::info!(index, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let snapshots = self.snapshots.clone();
        tokio::task::spawn_blocking(move || snapshots.latest()).await.map_err(io::Error::other)?
    }
}

/// The snapshot directory, with the log id of the newest snapshot saved in it. openraft may
/// build a snapshot while it installs one: a build that froze an older state must not replace
/// a newer snapshot saved meanwhile, whose log prefix is already purged.
struct Snapshots {
    store: SnapshotStore,
    newest: std::sync::Mutex<Option<LogId>>,
}

impl Snapshots {
    /// Saves `data` unless a newer snapshot is already saved (`install`: always, it comes
    /// from the leader and moves this replica forward). Returns whether it was saved.
    fn save(&self, meta: &SnapshotMeta, data: &[u8], install: bool) -> io::Result<bool> {
        let mut newest = self.newest.lock().expect("snapshot lock poisoned");
        if !install && newest.is_some() && *newest >= meta.last_log_id {
            return Ok(false);
        }
        self.store.save(meta, data).map_err(io::Error::other)?;
        *newest = meta.last_log_id;
        Ok(true)
    }

    /// The newest saved snapshot.
    fn latest(&self) -> io::Result<Option<Snapshot>> {
        let loaded = self.store.load_latest::<SnapshotMeta>().map_err(io::Error::other)?;
        Ok(loaded.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

/// Builds a snapshot of the applied state and writes it to the snapshot directory.
pub struct SnapshotBuilder {
    applied: Arc<RwLock<Applied>>,
    snapshots: Arc<Snapshots>,
    metrics: super::metrics::SnapshotMetrics,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let applied = self.applied.clone();
        let snapshots = self.snapshots.clone();
        let metrics = self.metrics.clone();
        // Encoding a large state takes a while: keep it off the async worker threads, and off the
        // lock: under it the state is only frozen (a copy that shares its persistent maps), so
        // apply goes on while the frozen copy is encoded and written. The encode runs on a
        // thread of its own at a lower CPU priority, so that on a busy machine appends,
        // heartbeats and requests of this replica come first.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let build = move || {
            let started = std::time::Instant::now();
            let (meta, frozen) = {
                let guard = applied.read().expect("state lock poisoned");
                let meta = SnapshotMeta { last_log_id: guard.last_applied, last_membership: guard.membership.clone() };
                (meta, guard.state.freeze())
            };
            // Only after the lock is released: a low-priority thread holding it would hold up
            // apply on a busy machine.
            lower_this_threads_priority();
            let data = frozen.encode().map_err(|e| io::Error::other(format!("encode snapshot: {e}")))?;
            drop(frozen);
            if !snapshots.save(&meta, &data, false)? {
                // A snapshot installed while this one was encoded is newer (and the log before
                // it is gone): it stays the current one.
                tracing::info!(index = meta.last_log_id.map(|l| l.index), "built snapshot superseded by a newer one");
                return snapshots.latest()?.ok_or_else(|| io::Error::other("the newer snapshot vanished"));
            }
            metrics.built(started.elapsed(), data.len());
            tracing::info!(
                index = meta.last_log_id.map(|l| l.index),
                bytes = data.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "built snapshot"
            );
            Ok(Snapshot { meta, snapshot: data })
        };
        std::thread::Builder::new()
            .name("snapshot-build".into())
            .spawn(move || {
                let _ = tx.send(build());
            })
            .map_err(io::Error::other)?;
        rx.await.map_err(|_| io::Error::other("the snapshot build thread ended without an answer"))?
    }
}

/// Niceness of the snapshot build thread: it yields the CPU to the replica's other threads.
const SNAPSHOT_NICE: libc::c_int = 10;

/// Lowers the calling thread's CPU priority to [`SNAPSHOT_NICE`] (Linux: niceness is per
/// thread). Best effort: a failure leaves the normal priority.
fn lower_this_threads_priority() {
    // SAFETY: gettid and setpriority take no pointers; they act on the calling thread only.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SNAPSHOT_NICE)
    };
    if result != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "could not lower the snapshot thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(term: u64, index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new_term_index(term, index)),
            last_membership: StoredMembership::default(),
        }
    }

    #[test]
    fn a_build_older_than_an_installed_snapshot_does_not_replace_it() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = Snapshots { store: SnapshotStore::open(dir.path()).unwrap(), newest: Default::default() };
        assert!(snapshots.save(&meta(1, 100), b"built at 100", false).unwrap());
        // openraft installs the leader's snapshot at 500 while a build that froze 300 encodes.
        assert!(snapshots.save(&meta(2, 500), b"installed at 500", true).unwrap());
        assert!(!snapshots.save(&meta(1, 300), b"built at 300", false).unwrap());
        let latest = snapshots.latest().unwrap().unwrap();
        assert_eq!(
            (latest.meta.last_log_id, latest.snapshot),
            (meta(2, 500).last_log_id, b"installed at 500".to_vec())
        );
        // A later build moves on.
        assert!(snapshots.save(&meta(2, 600), b"built at 600", false).unwrap());
        assert_eq!(snapshots.latest().unwrap().unwrap().snapshot, b"built at 600".to_vec());
    }
}

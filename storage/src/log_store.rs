//! [`LogStore`]: openraft's `RaftLogStorage` and `RaftLogReader` over any [`Engine`].
//!
//! Layout, in two trees of the engine:
//!
//! | tree   | key                       | value                              |
//! |--------|---------------------------|------------------------------------|
//! | `log`  | entry index, big-endian u64 | `[2] ++ postcard(C::Entry)`      |
//! | `meta` | `vote`                    | `[1] ++ postcard(Vote)`            |
//! | `meta` | `committed`               | `[1] ++ postcard(LogId)`           |
//! | `meta` | `last_purged`             | `[1] ++ postcard(LogId)`           |
//!
//! Durability rules (the reason this file exists):
//!
//! - `append` writes the whole openraft batch as one engine batch and returns: the entries are
//!   readable at once, as openraft requires. The `IOFlushed` callback goes to the store's
//!   flusher thread, which runs [`Engine::flush_blocking`] and only then fires it; callbacks
//!   queued while a flush runs share the next one (group commit), and fire in append order. A
//!   thread of its own rather than a task: the flush then writes and syncs in that thread,
//!   instead of handing the work to the engine's I/O pool and waiting to be woken. openraft
//!   counts an entry towards a quorum only after its callback, so nothing is acknowledged
//!   before it is on disk. Returning before the flush is what openraft's `append` contract asks
//!   for: on the leader it lets replication to the followers start while the leader's own
//!   fsync runs, instead of after it. **The price:** followers may hold entries the leader
//!   loses in a crash, so the leader must not resume its term after a restart (openraft's
//!   `Config::enable_leader_restore` must be `false`): in the same term it would write other
//!   entries at those (term, index) positions, and followers would take them as matching.
//! - `save_vote`, `truncate_after` and `purge` flush before they return.
//! - `save_committed` does **not** flush, and it never writes a value past the entries known to
//!   be flushed: openraft may commit an entry once `append` returned for it, before this
//!   replica's own flush (a majority of the others has it). Such a value is skipped; the next
//!   save, after the flush, writes a newer one. So the value on disk never points past the
//!   durable log, whatever order the engine persists writes in; if the newest value is lost in a
//!   crash, the node merely re-applies from an older `committed` (or its snapshot) and catches
//!   up from the leader.
//! - `purge` records `last_purged`, flushes, and returns; the entries at or below it are deleted
//!   afterwards by a background thread, in small batches, addressed by index (no scan, no value
//!   read). openraft runs `purge` on its core task, which also handles appends, votes and
//!   heartbeats: deleting 100 000 entries inline there stalled it for seconds on every replica
//!   at once (they reach a snapshot at the same index), long enough to lose the quorum. Readers
//!   never see the entries still waiting for deletion: reads start above `last_purged`, which
//!   every clone of the store shares in memory. A crash before the deletion finished leaves
//!   entries at or below `last_purged`; [`LogStore::new`] finishes it, so the stored log is
//!   always `(last_purged, last]` without holes.
//!
//! Every read decodes strictly: an undecodable value, a key that does not match its entry's
//! index, or a hole inside a requested range is an error handed to openraft, which stops the node.
//!
//! Entries of the legacy format 1 (written before application payloads carried a version of
//! their own, see [`crate::codec`]) are decoded by the application's [`UpgradeEntry`] function,
//! given with [`LogStore::with_upgrade`]; without one they are refused. They are never rewritten:
//! they leave the log with the next snapshot's purge.

use std::fmt;
use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::Bound;
use std::ops::ControlFlow;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;

use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::RaftTypeConfig;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use openraft::type_config::alias::LogIdOf;
use openraft::type_config::alias::VoteOf;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::codec;
use crate::codec::index_key;
use crate::codec::parse_index_key;
use crate::engine::Batch;
use crate::engine::Engine;
use crate::engine::Order;
use crate::engine::Tree;
use crate::error::Error;
use crate::error::Result;

/// Name of the tree holding log entries.
pub const LOG_TREE: &str = "log";
/// Name of the tree holding the vote, `committed` and `last_purged`.
pub const META_TREE: &str = "meta";

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";

/// Default for [`LogStoreOptions::max_read_bytes`]: 4 MiB of encoded entries per limited read.
///
/// Replication reads through `limited_get_log_entries`; capping a read keeps one lagging follower
/// from making the leader decode (and send) an unbounded batch at once.
pub const DEFAULT_MAX_READ_BYTES: usize = 4 << 20;

/// Tunables of a [`LogStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStoreOptions {
    /// Stop a `limited_get_log_entries` read once this many encoded bytes were read. At least one
    /// entry is always returned. Must be greater than zero.
    pub max_read_bytes: usize,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        LogStoreOptions { max_read_bytes: DEFAULT_MAX_READ_BYTES }
    }
}

/// Decodes the postcard body of a log entry stored under an older entry format (the version byte
/// is the first argument) into today's entry, or says why it cannot.
pub type UpgradeEntry<C> = fn(u8, &[u8]) -> std::result::Result<<C as RaftTypeConfig>::Entry, String>;

/// The Raft log and vote of one node, stored in an [`Engine`].
///
/// `C` is the openraft type config. Its entry, vote and log id types must be serde-serialisable;
/// with openraft's `serde` feature (on in this workspace) that already holds for every
/// `RaftTypeConfig`, so no extra bound appears here.
///
/// Clones share the same trees; the log reader handed to openraft is such a clone and therefore
/// sees every append the moment it returns.
pub struct LogStore<C: RaftTypeConfig, E: Engine> {
    engine: E,
    log: E::Tree,
    meta: E::Tree,
    options: LogStoreOptions,
    upgrade: Option<UpgradeEntry<C>>,
    purges: Arc<Purges>,
    flusher: Arc<OnceLock<FlushQueue<C, E>>>,
    _config: PhantomData<fn() -> C>,
}

/// The flusher thread's queue: callbacks waiting for a flush, each with a handle to the engine
/// and the highest index its append wrote (if any).
type FlushQueue<C, E> = mpsc::UnboundedSender<Flush<C, E>>;

/// One append waiting for the flusher thread: its callback, a handle to the engine, its last index and
/// the truncation count it was written under.
struct Flush<C: RaftTypeConfig, E> {
    callback: IOFlushed<C>,
    engine: E,
    last: Option<u64>,
    truncations: u64,
}

/// Most callbacks one flush completes; the rest wait for the next flush.
const FLUSH_GROUP: usize = 4096;

/// How many log entries one background deletion batch removes. Small enough that a concurrent
/// append never waits long behind it in the engine.
const PURGE_CHUNK: u64 = 1024;

/// The purge state every clone of a [`LogStore`] shares.
#[derive(Debug, Default)]
struct Purges {
    /// The lowest index a read may return: one above `last_purged` (0 before any purge).
    floor: std::sync::atomic::AtomicU64,
    /// The background deletion of purged entries still running, if any.
    running: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// What is known to be on disk. `save_committed` writes nothing beyond it.
    durable: Mutex<Durable>,
}

/// See [`Purges::durable`].
#[derive(Debug, Default)]
struct Durable {
    /// One above the highest index known to be durable (flushed, or covered by a purge); 0
    /// when none is.
    next: u64,
    /// Truncations so far. A flush that completes after a truncation says nothing about the
    /// entries appended before it (they are gone, and others may sit at their indexes now), so
    /// each append remembers the count it was written under (see [`Purges::mark_flushed`]).
    truncations: u64,
}

impl Purges {
    fn durable(&self) -> std::sync::MutexGuard<'_, Durable> {
        self.durable.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Everything up to `index` is on disk (or covered by a saved snapshot).
    fn mark_durable(&self, index: u64) {
        let mut d = self.durable();
        d.next = d.next.max(index.saturating_add(1));
    }

    /// A flush completed that covers appends, each up to its last index and written when its
    /// count of truncations had happened: each is durable unless the log was truncated since.
    fn mark_flushed(&self, appends: impl IntoIterator<Item = (u64, u64)>) {
        let mut d = self.durable();
        for (last, truncations) in appends {
            if d.truncations == truncations {
                d.next = d.next.max(last.saturating_add(1));
            }
        }
    }

    /// The truncation count an append written now belongs to.
    fn truncations(&self) -> u64 {
        self.durable().truncations
    }

    /// After a flushed truncation, the log ends at `last` and all of it is on disk (the flush
    /// covered every earlier write); anything appended later must be flushed anew.
    fn truncated_to(&self, last: Option<u64>) {
        let mut d = self.durable();
        d.truncations += 1;
        d.next = last.map_or(0, |l| l.saturating_add(1));
    }

    /// Whether the entry at `index` is known to be durable.
    fn is_durable(&self, index: u64) -> bool {
        index < self.durable().next
    }
}

impl Drop for Purges {
    /// The deletion thread holds a handle to the engine: the last clone of the store waits for
    /// it, so that a closed store releases its database.
    fn drop(&mut self) {
        let running = self.running.get_mut().map(Option::take).unwrap_or_else(|e| e.into_inner().take());
        if let Some(handle) = running {
            let _ = handle.join();
        }
    }
}

impl<C: RaftTypeConfig, E: Engine> Clone for LogStore<C, E> {
    fn clone(&self) -> Self {
        LogStore {
            engine: self.engine.clone(),
            log: self.log.clone(),
            meta: self.meta.clone(),
            options: self.options.clone(),
            upgrade: self.upgrade,
            purges: self.purges.clone(),
            flusher: self.flusher.clone(),
            _config: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig, E: Engine> fmt::Debug for LogStore<C, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore").field("options", &self.options).finish_non_exhaustive()
    }
}

impl<C, E> LogStore<C, E>
where
    C: RaftTypeConfig,
    E: Engine,
{
    /// Open the log store in `engine` with default options.
    pub fn new(engine: E) -> Result<Self> {
        Self::with_options(engine, LogStoreOptions::default())
    }

    /// Open the log store in `engine`, finishing a purge a crash may have interrupted.
    pub fn with_options(engine: E, options: LogStoreOptions) -> Result<Self> {
        assert!(options.max_read_bytes > 0, "LogStoreOptions::max_read_bytes must be positive");
        let store = LogStore {
            log: engine.open_tree(LOG_TREE)?,
            meta: engine.open_tree(META_TREE)?,
            engine,
            options,
            upgrade: None,
            purges: Arc::default(),
            flusher: Arc::default(),
            _config: PhantomData,
        };
        store.finish_interrupted_purge()?;
        // What a fresh open finds on disk is durable.
        if let Some(last) = store.last_log_index()? {
            store.purges.mark_durable(last);
        }
        Ok(store)
    }

    /// Reads entries of the legacy entry format with `upgrade` instead of refusing them.
    pub fn with_upgrade(mut self, upgrade: UpgradeEntry<C>) -> Self {
        self.upgrade = Some(upgrade);
        self
    }

    /// The engine this store writes to (e.g. to open more trees for the state machine).
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Index of the last stored entry, without decoding it. For diagnostics and metrics; openraft
    /// itself uses `get_log_state`.
    pub fn last_log_index(&self) -> Result<Option<u64>> {
        let mut last = None;
        self.log.scan(.., Order::Reverse, |key, _| {
            last = Some(parse_index_key(key)?);
            Ok(ControlFlow::Break(()))
        })?;
        Ok(last)
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8], what: &'static str) -> Result<Option<T>> {
        self.meta.get(key)?.map(|bytes| codec::decode(what, &bytes)).transpose()
    }

    fn last_purged(&self) -> Result<Option<LogIdOf<C>>> {
        self.read_meta(LAST_PURGED_KEY, "last purged log id")
    }

    /// Delete entries at or below `last_purged` left behind by a crash before the background
    /// deletion of a `purge` finished.
    fn finish_interrupted_purge(&self) -> Result<()> {
        if let Some(purged) = self.last_purged()? {
            self.set_floor(purged.index);
            let removed = self.log.remove_range(..=&index_key(purged.index)[..])?;
            if removed > 0 {
                tracing::warn!(removed, last_purged = purged.index, "finished an interrupted log purge");
            }
        }
        Ok(())
    }

    /// The flusher thread's queue, starting the thread on the first call. Each callback travels
    /// with a handle to the engine, so the idle thread holds none (a closed store releases its
    /// database at once); the thread ends once every clone of the store is gone. It holds the
    /// purge state only weakly: the last clone of the store, not this thread, drops it (and so
    /// waits for a running background deletion, see `Drop for Purges`).
    fn flusher(&self) -> &FlushQueue<C, E> {
        self.flusher.get_or_init(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Flush<C, E>>();
            let purges = Arc::downgrade(&self.purges);
            std::thread::Builder::new()
                .name("raft-log-flush".into())
                .spawn(move || {
                    let mut group = Vec::new();
                    while let Some(first) = rx.blocking_recv() {
                        group.push(first);
                        while group.len() < FLUSH_GROUP
                            && let Ok(next) = rx.try_recv()
                        {
                            group.push(next);
                        }
                        let result = group[0].engine.flush_blocking();
                        match (&result, purges.upgrade()) {
                            (Err(err), _) => tracing::error!(error = %err, "raft log flush failed"),
                            (Ok(()), Some(purges)) => {
                                purges.mark_flushed(group.iter().filter_map(|f| Some((f.last?, f.truncations))))
                            }
                            // Every clone of the store is gone: nobody reads the durable mark.
                            (Ok(()), None) => {}
                        }
                        // Engine handles go before anyone is told, so a caller that closes the
                        // store on the news finds the database free.
                        let callbacks: Vec<IOFlushed<C>> = group.drain(..).map(|flush| flush.callback).collect();
                        for callback in callbacks {
                            callback.io_completed(flush_result(&result));
                        }
                    }
                })
                .expect("cannot start the raft log flusher thread");
            tx
        })
    }

    /// The smallest stored index at or above `from`, without decoding its entry.
    fn first_index_from(&self, from: u64) -> Result<Option<u64>> {
        let mut first = None;
        self.log.scan(&index_key(from)[..].., Order::Forward, |key, _| {
            first = Some(parse_index_key(key)?);
            Ok(ControlFlow::Break(()))
        })?;
        Ok(first)
    }

    fn set_floor(&self, last_purged: u64) {
        self.purges.mark_durable(last_purged);
        self.purges.floor.fetch_max(last_purged.saturating_add(1), std::sync::atomic::Ordering::Release);
    }

    fn floor(&self) -> u64 {
        self.purges.floor.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until the background deletion of purged entries (if one runs) has finished. Tests
    /// use it; openraft never needs to, and shutdown does not either: the last clone of the
    /// store joins the deletion thread when it is dropped (`Drop for Purges`).
    pub fn wait_for_purge(&self) {
        let running = self.purges.running.lock().expect("purge lock poisoned").take();
        if let Some(handle) = running {
            let _ = handle.join();
        }
    }

    /// Deletes the entries `from..=upto` on a background thread, [`PURGE_CHUNK`] at a time, after
    /// any deletion still running. The keys are known (the log has no holes), so nothing is
    /// scanned or read. Not flushed: the next flush carries it, and a crash before that is
    /// repaired on open.
    fn delete_in_background(&self, from: u64, upto: u64) {
        let mut running = self.purges.running.lock().expect("purge lock poisoned");
        let previous = running.take();
        let log = self.log.clone();
        let spawned = std::thread::Builder::new().name("raft-log-purge".into()).spawn(move || {
            if let Some(previous) = previous {
                let _ = previous.join();
            }
            let started = std::time::Instant::now();
            let mut first = from;
            while first <= upto {
                let last = first.saturating_add(PURGE_CHUNK - 1).min(upto);
                let mut batch = Batch::with_capacity((last - first + 1) as usize, size_of::<u64>());
                for index in first..=last {
                    batch.remove(&index_key(index));
                }
                if let Err(err) = log.apply_batch(batch) {
                    // Harmless for correctness (reads start above `last_purged`, and the next
                    // open finishes the deletion), but the disk keeps the entries until then.
                    tracing::error!(error = %err, first, last, "deleting purged raft log entries failed");
                    return;
                }
                first = last + 1;
                std::thread::yield_now();
            }
            tracing::debug!(
                from,
                upto,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "purged raft log entries deleted"
            );
        });
        match spawned {
            Ok(handle) => *running = Some(handle),
            Err(err) => {
                tracing::error!(error = %err, "could not start the raft log purge thread; entries stay until the next open")
            }
        }
    }

    /// The entry with the highest index, decoded.
    fn last_entry(&self) -> Result<Option<C::Entry>> {
        let mut last = None;
        self.log.scan(.., Order::Reverse, |key, value| {
            last = Some(self.decode_entry(key, value)?);
            Ok(ControlFlow::Break(()))
        })?;
        Ok(last)
    }

    /// Read the entries in `range` in index order, stopping early once `max_bytes` of encoded
    /// entries were read (always returning at least one if any exists). A gap inside the range is
    /// an error: openraft never leaves holes, so one means lost data.
    fn read_entries<RB: RangeBounds<u64>>(&self, range: RB, max_bytes: usize) -> Result<Vec<C::Entry>> {
        // Entries at or below `last_purged` may still await their background deletion: never
        // return them.
        let floor = self.floor();
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(index_key((*i).max(floor))),
            Bound::Excluded(i) if *i >= floor => Bound::Excluded(index_key(*i)),
            Bound::Excluded(_) | Bound::Unbounded => Bound::Included(index_key(floor)),
        };
        let end = range.end_bound().map(|i| index_key(*i));
        let bounds = (start.as_ref().map(|k| &k[..]), end.as_ref().map(|k| &k[..]));

        let mut entries: Vec<C::Entry> = Vec::new();
        let mut bytes = 0usize;
        self.log.scan(bounds, Order::Forward, |key, value| {
            let entry = self.decode_entry(key, value)?;
            if let Some(prev) = entries.last()
                && prev.index() + 1 != entry.index()
            {
                return Err(Error::corrupt(
                    "raft log",
                    format!("hole between index {} and {}", prev.index(), entry.index()),
                ));
            }
            entries.push(entry);
            bytes += value.len();
            Ok(if bytes >= max_bytes { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
        })?;
        Ok(entries)
    }

    /// Write `entries` as one atomic engine batch (not yet flushed); returns the last index.
    fn write_entries(&self, entries: impl IntoIterator<Item = C::Entry>) -> Result<Option<u64>> {
        let entries = entries.into_iter();
        let mut batch = Batch::with_capacity(entries.size_hint().0, size_of::<u64>());
        let mut span: Option<(u64, u64)> = None;
        for entry in entries {
            let index = entry.index();
            if let Some((_, last)) = span {
                assert_eq!(index, last + 1, "openraft appended non-consecutive log entries");
            }
            batch.insert(&index_key(index), codec::encode_entry(&entry)?);
            span = Some((span.map_or(index, |(first, _)| first), index));
        }
        if let Some((first, last)) = span {
            self.log.apply_batch(batch)?;
            tracing::trace!(first, last, "raft log entries written");
        }
        Ok(span.map(|(_, last)| last))
    }

    /// Decode one log value (upgrading a legacy one) and check it sits under its own index.
    pub fn decode_entry(&self, key: &[u8], value: &[u8]) -> Result<C::Entry> {
        let index = parse_index_key(key)?;
        let (version, body) = codec::split_version(ENTRY, value)?;
        let entry: C::Entry = match (version, self.upgrade) {
            (codec::ENTRY_FORMAT, _) => codec::decode_body(ENTRY, body)?,
            (codec::LEGACY_ENTRY_FORMAT, Some(upgrade)) => {
                upgrade(version, body).map_err(|detail| Error::corrupt(ENTRY, format!("format {version}: {detail}")))?
            }
            (found, _) => return Err(Error::UnsupportedVersion { what: ENTRY, found, expected: codec::ENTRY_FORMAT }),
        };
        if entry.index() != index {
            return Err(Error::corrupt(
                "raft log",
                format!("entry stored under index {index} has index {}", entry.index()),
            ));
        }
        Ok(entry)
    }
}

/// What log entries are called in errors.
const ENTRY: &str = "raft log entry";

impl<C, E> RaftLogReader<C> for LogStore<C, E>
where
    C: RaftTypeConfig,
    E: Engine,
{
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> Result<Vec<C::Entry>, io::Error>
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        Ok(self.read_entries(range, usize::MAX)?)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.read_meta(VOTE_KEY, "raft vote")?)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<C::Entry>, io::Error> {
        Ok(self.read_entries(start..end, self.options.max_read_bytes)?)
    }
}

impl<C, E> RaftLogStorage<C> for LogStore<C, E>
where
    C: RaftTypeConfig,
    E: Engine,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let last_purged_log_id = self.last_purged()?;
        let last_entry_id = self.last_entry()?.map(|entry| entry.log_id());
        // After purging everything, the last log id is the purged one.
        let last_log_id = std::cmp::max(last_entry_id, last_purged_log_id.clone());
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.meta.insert(VOTE_KEY, codec::encode("raft vote", vote)?)?;
        // The vote must be on disk before openraft answers a vote request with it.
        self.engine.flush().await?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        // Not flushed on purpose, and never past the flushed log: see the module docs.
        match committed {
            Some(log_id) if !self.purges.is_durable(log_id.index) => {
                tracing::trace!(index = log_id.index, "committed not saved: its entry is not flushed yet");
            }
            Some(log_id) => self.meta.insert(COMMITTED_KEY, codec::encode("committed log id", &log_id)?)?,
            None => self.meta.remove(COMMITTED_KEY)?,
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.read_meta(COMMITTED_KEY, "committed log id")?)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let last = match self.write_entries(entries) {
            Ok(last) => last,
            Err(err) => {
                tracing::error!(error = %err, "raft log append failed");
                // Tell whoever waits on the callback, and fail the call so openraft stops the node.
                callback.io_completed(Err(io::Error::new(err.io_kind(), err.to_string())));
                return Err(err.into());
            }
        };
        // The hard rule: flush first, acknowledge second. The flusher thread does both, in order.
        // openraft runs append and truncate on one task, so the count read here is the one this
        // write happened under.
        let truncations = self.purges.truncations();
        let flush = Flush { callback, engine: self.engine.clone(), last, truncations };
        if let Err(mpsc::error::SendError(Flush { callback, .. })) = self.flusher().send(flush) {
            // The flusher thread is gone (it can only have panicked): flush here.
            let result = self.engine.flush().await;
            if let (Ok(()), Some(last)) = (&result, last) {
                self.purges.mark_flushed([(last, truncations)]);
            }
            callback.io_completed(flush_result(&result));
            result?;
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let first_removed = match &last_log_id {
            None => Some(0),
            Some(log_id) => log_id.index.checked_add(1),
        };
        if let Some(first) = first_removed {
            let removed = self.log.remove_range(&index_key(first)[..]..)?;
            tracing::debug!(first, removed, "raft log truncated");
        }
        self.engine.flush().await?;
        self.purges.truncated_to(last_log_id.as_ref().map(|l| l.index));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        // Record the purge point first: a crash after it leaves extra entries (deleted by
        // `LogStore::new`), never a hole. The entries go in the background (see the module docs).
        // Only stored indexes are deleted: a follower installing a snapshot far ahead purges up
        // to an index it never held.
        let stored = (self.first_index_from(self.floor())?, self.last_log_index()?);
        self.meta.insert(LAST_PURGED_KEY, codec::encode("last purged log id", &log_id)?)?;
        self.set_floor(log_id.index);
        self.engine.flush().await?;
        if let (Some(first), Some(last)) = stored
            && first <= log_id.index
        {
            self.delete_in_background(first, log_id.index.min(last));
        }
        tracing::debug!(upto = log_id.index, "raft log purge point saved; entries are deleted in the background");
        Ok(())
    }
}

/// A flush outcome as the `io::Result` an `IOFlushed` callback takes.
fn flush_result(result: &Result<()>) -> Result<(), io::Error> {
    result.as_ref().map(|_| ()).map_err(|err| io::Error::new(err.io_kind(), err.to_string()))
}

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
//! - `append` writes the whole openraft batch as one engine batch, then awaits
//!   [`Engine::flush`], and only then fires the `IOFlushed` callback. openraft counts an entry
//!   towards a quorum only after that callback, so nothing is acknowledged before it is on disk.
//! - `save_vote`, `truncate_after` and `purge` flush before they return.
//! - `save_committed` does **not** flush. Every other write was already flushed by the time
//!   openraft saves `committed`, so the value on disk never points past the durable log; if the
//!   newest value is lost in a crash, the node merely re-applies from an older `committed` (or its
//!   snapshot) and catches up from the leader. It becomes durable with the next flush anyway.
//! - `purge` records `last_purged` before deleting entries. A crash in between leaves entries at
//!   or below `last_purged`; [`LogStore::new`] finishes that deletion, so the stored log is always
//!   `(last_purged, last]` without holes.
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
use std::ops::ControlFlow;
use std::ops::RangeBounds;

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
    _config: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig, E: Engine> Clone for LogStore<C, E> {
    fn clone(&self) -> Self {
        LogStore {
            engine: self.engine.clone(),
            log: self.log.clone(),
            meta: self.meta.clone(),
            options: self.options.clone(),
            upgrade: self.upgrade,
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
            _config: PhantomData,
        };
        store.finish_interrupted_purge()?;
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

    /// Delete entries at or below `last_purged` left behind by a crash in the middle of `purge`.
    fn finish_interrupted_purge(&self) -> Result<()> {
        if let Some(purged) = self.last_purged()? {
            let removed = self.log.remove_range(..=&index_key(purged.index)[..])?;
            if removed > 0 {
                tracing::warn!(removed, last_purged = purged.index, "finished an interrupted log purge");
            }
        }
        Ok(())
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
        let start = range.start_bound().map(|i| index_key(*i));
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

    /// Write `entries` as one atomic engine batch (not yet flushed).
    fn write_entries(&self, entries: impl IntoIterator<Item = C::Entry>) -> Result<()> {
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
        Ok(())
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
        // Not flushed on purpose: see the module docs.
        match committed {
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
        let result = match self.write_entries(entries) {
            // The hard rule: flush first, acknowledge second.
            Ok(()) => self.engine.flush().await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(err) => {
                tracing::error!(error = %err, "raft log append failed");
                // Tell whoever waits on the callback, and fail the call so openraft stops the node.
                callback.io_completed(Err(io::Error::new(err.io_kind(), err.to_string())));
                Err(err.into())
            }
        }
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
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        // Record the purge point first: a crash after this line leaves extra entries (finished by
        // `LogStore::new`), never a hole.
        self.meta.insert(LAST_PURGED_KEY, codec::encode("last purged log id", &log_id)?)?;
        let removed = self.log.remove_range(..=&index_key(log_id.index)[..])?;
        tracing::debug!(upto = log_id.index, removed, "raft log purged");
        self.engine.flush().await?;
        Ok(())
    }
}

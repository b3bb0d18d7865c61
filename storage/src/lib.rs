//! Durable storage for taskraft: the engine trait (sled and in-memory), the Raft log store, and
//! snapshot files.
//!
//! # What lives here
//!
//! - [`engine`]: the narrow [`Engine`]/[`Tree`] interface over named trees of ordered byte keys,
//!   with [`SledEngine`] for production and [`MemEngine`] for tests. Both pass one shared suite.
//! - [`log_store`]: [`LogStore`], openraft's `RaftLogStorage` + `RaftLogReader` on any engine. It
//!   passes `openraft::testing::log::Suite::test_all` on both engines.
//! - [`snapshot`]: [`SnapshotStore`], checksummed snapshot files replaced by temp + fsync + rename.
//! - [`codec`]: the one value format, `[version byte] ++ postcard(value)`; log entries of the
//!   legacy format 1 go through the application's upgrade function.
//!
//! # The path of an append
//!
//! 1. A client write reaches the leader; openraft batches the pending entries and calls
//!    `RaftLogStorage::append(entries, callback)` on the [`LogStore`].
//! 2. Each entry is encoded as `[2] ++ postcard(entry)` and queued under its index (big-endian
//!    `u64`) in one engine [`Batch`] for the `log` tree.
//! 3. The batch is applied atomically. From here on every log reader (replication, apply) sees the
//!    entries, as openraft requires when `append` returns; `append` returns now, so that the
//!    leader starts replicating while its own flush runs.
//! 4. The callback goes to the store's flusher thread, which calls [`Engine::flush_blocking`].
//!    For sled this is `flush`, which (with the vendored sled) writes sled's log buffer and
//!    `fdatasync`s it in that thread; without it sled would persist only on its 500 ms timer.
//!    Callbacks that queue up during a flush share the next.
//! 5. Only after that flush is the `IOFlushed` callback fired. openraft treats the entries as
//!    persisted only from this point on (the leader counts its own copy towards the quorum, a
//!    follower reports them as matched), so an acknowledged write is on disk on a majority.
//! 6. On a write error `append` fails; on a flush error the callback receives the error. Either
//!    way openraft stops the node instead of acknowledging data that may not be durable.
//!
//! Votes, truncations and purges follow the same rule: written, flushed, then returned. Saving
//! `committed` is the one unflushed write; [`log_store`] explains why that is safe.
//!
//! # What this crate does not do
//!
//! It does not know the scheduler's state machine, commands or business rules, and it never
//! depends on the `taskraft` package. The state machine adapter lives in `src/` and may store its
//! own trees in the same [`Engine`] and its snapshots in a [`SnapshotStore`]. There is no
//! multi-tree transaction, no background compaction and no encryption.

pub mod codec;
pub mod engine;
pub mod error;
pub mod log_store;
pub mod snapshot;

pub use engine::Batch;
pub use engine::Engine;
pub use engine::KeyRange;
pub use engine::MemEngine;
pub use engine::Order;
pub use engine::SledEngine;
pub use engine::Tree;
pub use error::Error;
pub use error::Result;
pub use log_store::LogStore;
pub use log_store::LogStoreOptions;
pub use log_store::UpgradeEntry;
pub use snapshot::SnapshotStore;

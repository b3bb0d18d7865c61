//! [`SledEngine`]: the durable engine, on sled 0.34.7.

use std::ops::ControlFlow;
use std::path::Path;

use super::Batch;
use super::Engine;
use super::KeyRange;
use super::Order;
use super::Tree;
use super::visit_each;
use crate::error::Error;
use crate::error::Result;

/// sled's page cache. Its default (1 GiB) would dwarf the scheduler state; the Raft log is
/// read mostly right after it is written, so a small cache serves it.
pub const SLED_CACHE_BYTES: u64 = 64 << 20;

/// sled's segment size for a new database (sled's default is 512 KiB). sled keeps any log
/// message over a quarter of a segment (less 52 bytes of headers) in a file of its own under
/// `blobs/`: created, written, synced and its directory synced on every write, deleted later.
/// With 512 KiB segments that was every Raft entry over 128 KiB, such as two coalesced batches
/// of 1 000 submits: under `bench submit --batch 1000` about 20 blob files a second per replica.
/// With 8 MiB segments an entry stays in the log up to 2 MiB; a coalesced entry of 4 096 small
/// tasks (about 70–200 bytes each) is well below, while larger ones (big specs, checkpoints)
/// still go to blob files, synced as before. A database keeps the segment size it was created
/// with ([`segment_size_for`]).
pub const SLED_SEGMENT_BYTES: usize = 8 << 20;

/// A sled database; every [`Tree`] is a sled tree in it.
///
/// sled writes go to an in-memory log buffer first and reach the disk on sled's own timer
/// (every 500 ms by default) or on an explicit flush. [`Engine::flush`] uses `flush_async`, which
/// runs the write and its `fdatasync` on sled's I/O thread pool instead of blocking a tokio
/// worker; [`Engine::flush_blocking`] (the log store's flusher thread) uses `flush`, which does
/// both in the calling thread.
///
/// This is the sled in `vendor/sled` (see its `TASKRAFT-PATCH.md`): upstream 0.34.7 makes a
/// flushed buffer "durable" with `sync_file_range`, which leaves the growing file's metadata and
/// the device cache unsynced, and never syncs the files it keeps values above a quarter of a
/// segment in.
#[derive(Debug, Clone)]
pub struct SledEngine {
    db: sled::Db,
}

impl SledEngine {
    /// Open (creating if needed) the sled database in directory `path`.
    ///
    /// sled takes an exclusive file lock: a second open of the same directory, in this process or
    /// another, fails until the first `SledEngine` and all its clones are dropped.
    ///
    /// sled creates its files (`conf`, `db`, `blobs/`) without syncing them or their directory;
    /// they are synced here, once, so that a database created just before a power loss is still
    /// there after it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let config =
            sled::Config::new().path(path).cache_capacity(SLED_CACHE_BYTES).segment_size(segment_size_for(path)?);
        let db = config.open()?;
        sync_created_files(path)?;
        Ok(SledEngine { db })
    }

    /// Wrap an already opened sled database, e.g. one built with a custom `sled::Config`.
    pub fn from_db(db: sled::Db) -> Self {
        SledEngine { db }
    }

    /// The underlying sled database.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

impl Engine for SledEngine {
    type Tree = SledTree;

    fn open_tree(&self, name: &str) -> Result<SledTree> {
        Ok(SledTree { tree: self.db.open_tree(name)? })
    }

    async fn flush(&self) -> Result<()> {
        // All trees share one sled log, so flushing the database flushes every tree.
        self.db.flush_async().await?;
        Ok(())
    }

    fn flush_blocking(&self) -> Result<()> {
        // With the vendored sled, the calling thread writes and syncs the log buffer itself.
        self.db.flush()?;
        Ok(())
    }
}

/// The segment size to open the database in `path` with. sled refuses to open a database with
/// another size than the one its `conf` file names, but takes a `conf` without one as absent and
/// writes its own; a log read with the wrong size would be torn. So: the size `conf` names; else
/// sled's old default (512 KiB, what every database made before [`SLED_SEGMENT_BYTES`] has) if a
/// log file with data exists; else [`SLED_SEGMENT_BYTES`] for a new database.
fn segment_size_for(path: &Path) -> Result<usize> {
    const SLED_DEFAULT_SEGMENT_BYTES: usize = 512 * 1024;
    let read = |name: &str| match std::fs::read(path.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { op: "read", path: path.join(name), source }),
    };
    // sled writes one `name: value` per line, then a binary checksum.
    let named = read("conf")?.and_then(|bytes| {
        String::from_utf8_lossy(&bytes)
            .lines()
            .find_map(|line| line.strip_prefix("segment_size:"))
            .and_then(|v| v.trim().parse().ok())
    });
    if let Some(size) = named {
        return Ok(size);
    }
    let log_len = match std::fs::metadata(path.join("db")) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(source) => return Err(Error::Io { op: "stat", path: path.join("db"), source }),
    };
    Ok(if log_len > 0 { SLED_DEFAULT_SEGMENT_BYTES } else { SLED_SEGMENT_BYTES })
}

/// Syncs what sled creates on open: `conf`, the `blobs/` directory and the database directory
/// (which holds the entries of all three), and the directory above it.
fn sync_created_files(path: &Path) -> Result<()> {
    let sync = |p: &Path| {
        std::fs::File::open(p).and_then(|f| f.sync_all()).map_err(|source| Error::Io {
            op: "sync",
            path: p.to_path_buf(),
            source,
        })
    };
    sync(&path.join("conf"))?;
    sync(&path.join("blobs"))?;
    sync(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync(parent)?;
    }
    Ok(())
}

/// One sled tree.
#[derive(Debug, Clone)]
pub struct SledTree {
    tree: sled::Tree,
}

impl Tree for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.tree.insert(key, value)?;
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<()> {
        self.tree.remove(key)?;
        Ok(())
    }

    fn scan<'k, F>(&self, range: impl Into<KeyRange<'k>>, order: Order, mut visit: F) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
    {
        let range = range.into();
        if range.is_empty() {
            return Ok(());
        }
        let bounds = range.bounds();
        let iter = self.tree.range::<&[u8], _>(bounds);
        match order {
            Order::Forward => visit_each(iter.map(|item| item.map_err(Error::from)), &mut visit),
            Order::Reverse => visit_each(iter.rev().map(|item| item.map_err(Error::from)), &mut visit),
        }
    }

    fn apply_batch(&self, batch: Batch) -> Result<()> {
        // One operation is atomic by itself, and sled's batch path is dear: it rolls the log's IO
        // buffer before and after reserving the batch manifest (`PageCache::pin_log`), so every
        // batch costs two more buffer writes, each a pwrite and an fdatasync, that the next flush
        // waits for. A lone Raft entry (every sequential submit) is one insert.
        if batch.len() == 1 {
            let mut result = Ok(());
            batch.for_each_op(|key, value| {
                result = match value {
                    Some(value) => self.insert(key, value),
                    None => self.remove(key),
                }
            });
            return result;
        }
        let mut sled_batch = sled::Batch::default();
        batch.for_each_op(|key, value| match value {
            Some(value) => sled_batch.insert(key, value),
            None => sled_batch.remove(key),
        });
        self.tree.apply_batch(sled_batch)?;
        Ok(())
    }
}

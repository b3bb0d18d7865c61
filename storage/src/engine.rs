//! The narrow storage-engine interface and its two implementations.
//!
//! Everything durable in taskraft goes through [`Engine`]: a set of named [`Tree`]s, each an
//! ordered map from byte keys to byte values. The interface is deliberately small — point reads
//! and writes, ordered scans in either direction, an atomic batch within one tree, range removal,
//! and one `flush` that makes every earlier write durable — so that a second engine is cheap to
//! write and every engine can run the same test suite.
//!
//! - [`SledEngine`] is the production engine (sled 0.34.7). sled buffers writes and only flushes
//!   on its own every 500 ms, so callers that acknowledge durability **must** await
//!   [`Engine::flush`] first.
//! - [`MemEngine`] keeps `BTreeMap`s in memory; `flush` is a no-op. It backs unit tests and
//!   in-memory clusters.
//!
//! Not provided on purpose: transactions across trees, compare-and-swap, iterators that outlive a
//! call. The log store does not need them, and each one would have to be built twice.

mod mem_engine;
mod sled_engine;
#[cfg(test)]
mod suite;

use std::future::Future;
use std::ops::Bound;
use std::ops::ControlFlow;
use std::ops::Range;
use std::ops::RangeBounds;
use std::ops::RangeFrom;
use std::ops::RangeFull;
use std::ops::RangeInclusive;
use std::ops::RangeTo;
use std::ops::RangeToInclusive;

pub use mem_engine::MemEngine;
pub use mem_engine::MemTree;
pub use sled_engine::SLED_SEGMENT_BYTES;
pub use sled_engine::SledEngine;
pub use sled_engine::SledTree;

use crate::error::Result;

/// A storage engine: a set of named, independently ordered key spaces.
///
/// Handles are cheap to clone and share one underlying database.
pub trait Engine: Clone + Send + Sync + 'static {
    /// A handle to one named key space.
    type Tree: Tree;

    /// Open (creating if needed) the tree called `name`. Opening the same name twice yields
    /// handles to the same data.
    fn open_tree(&self, name: &str) -> Result<Self::Tree>;

    /// Make every write that completed before this call durable, in every tree.
    ///
    /// Only after this future resolves may a write be acknowledged as persisted.
    fn flush(&self) -> impl Future<Output = Result<()>> + Send;

    /// [`Engine::flush`], blocking the calling thread until it is done: for a thread of its own
    /// (the log store's flusher), never a runtime worker. Writing and syncing in the caller's
    /// thread saves the thread hops an asynchronous flush makes.
    fn flush_blocking(&self) -> Result<()>;
}

/// Direction of a [`Tree::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending key order.
    Forward,
    /// Descending key order.
    Reverse,
}

/// One ordered key space of an [`Engine`].
///
/// Writes are visible to every handle of the same tree as soon as the call returns; they are
/// durable only after [`Engine::flush`].
pub trait Tree: Clone + Send + Sync + 'static {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Store `value` under `key`, replacing any previous value.
    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<()>;

    /// Remove `key` if present.
    fn remove(&self, key: &[u8]) -> Result<()>;

    /// Visit the entries whose keys fall in `range`, in `order`, until `visit` returns
    /// [`ControlFlow::Break`] or an error (which is returned as is).
    ///
    /// `visit` borrows key and value without copying. It must not write to this tree: the
    /// in-memory engine holds a read lock while visiting. An empty or inverted range visits
    /// nothing.
    fn scan<'k, F>(&self, range: impl Into<KeyRange<'k>>, order: Order, visit: F) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>;

    /// Apply every operation of `batch` atomically: after a crash either all of them or none are
    /// present (once flushed, all are).
    fn apply_batch(&self, batch: Batch) -> Result<()>;

    /// Remove every key in `range` in one atomic batch; returns how many keys were removed.
    fn remove_range<'k>(&self, range: impl Into<KeyRange<'k>>) -> Result<usize> {
        let mut batch = Batch::new();
        self.scan(range, Order::Forward, |key, _| {
            batch.remove(key);
            Ok(ControlFlow::Continue(()))
        })?;
        let removed = batch.len();
        if removed > 0 {
            self.apply_batch(batch)?;
        }
        Ok(removed)
    }

    /// The entry with the smallest key, if the tree is not empty.
    fn first(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        edge(self, Order::Forward)
    }

    /// The entry with the largest key, if the tree is not empty.
    fn last(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        edge(self, Order::Reverse)
    }
}

/// A list of writes to one tree, applied atomically by [`Tree::apply_batch`].
///
/// Keys are packed into one shared buffer so that building a batch of many small keys (log
/// indexes) costs no allocation per key. Operations apply in insertion order; a later operation
/// on the same key wins.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    keys: Vec<u8>,
    ops: Vec<(Range<usize>, Option<Vec<u8>>)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `ops` operations on keys of `key_len` bytes.
    pub fn with_capacity(ops: usize, key_len: usize) -> Self {
        Batch { keys: Vec::with_capacity(ops * key_len), ops: Vec::with_capacity(ops) }
    }

    /// Queue `key = value`.
    pub fn insert(&mut self, key: &[u8], value: Vec<u8>) {
        let range = self.push_key(key);
        self.ops.push((range, Some(value)));
    }

    /// Queue the removal of `key`.
    pub fn remove(&mut self, key: &[u8]) {
        let range = self.push_key(key);
        self.ops.push((range, None));
    }

    /// Number of queued operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Consume the batch, handing each operation to `apply` in order: `Some(value)` is an insert,
    /// `None` a removal.
    pub fn for_each_op(self, mut apply: impl FnMut(&[u8], Option<Vec<u8>>)) {
        let Batch { keys, ops } = self;
        for (range, value) in ops {
            apply(&keys[range], value);
        }
    }

    fn push_key(&mut self, key: &[u8]) -> Range<usize> {
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        start..self.keys.len()
    }
}

/// The first entry a full scan of `tree` in `order` visits.
fn edge<T: Tree>(tree: &T, order: Order) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut found = None;
    tree.scan(.., order, |key, value| {
        found = Some((key.to_vec(), value.to_vec()));
        Ok(ControlFlow::Break(()))
    })?;
    Ok(found)
}

/// Feed `items` to a [`Tree::scan`] visitor until it breaks or fails.
pub(crate) fn visit_each<K, V, F>(items: impl Iterator<Item = Result<(K, V)>>, visit: &mut F) -> Result<()>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
    F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
{
    for item in items {
        let (key, value) = item?;
        if visit(key.as_ref(), value.as_ref())?.is_break() {
            break;
        }
    }
    Ok(())
}

/// A range of keys, borrowed from the caller.
///
/// Built from the usual range syntax over anything byte-like, e.g. `..`, `&a[..]..&b[..]`,
/// `&key..`, `..=&key`, or from explicit [`Bound`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange<'a> {
    /// Lower bound.
    pub start: Bound<&'a [u8]>,
    /// Upper bound.
    pub end: Bound<&'a [u8]>,
}

impl<'a> KeyRange<'a> {
    /// Every key.
    pub const ALL: KeyRange<'static> = KeyRange { start: Bound::Unbounded, end: Bound::Unbounded };

    /// A range with explicit bounds.
    pub fn new(start: Bound<&'a [u8]>, end: Bound<&'a [u8]>) -> Self {
        KeyRange { start, end }
    }

    /// Whether no key can fall in this range (including inverted ranges).
    pub fn is_empty(&self) -> bool {
        match (self.start, self.end) {
            (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => match s.cmp(e) {
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => {
                    !matches!((self.start, self.end), (Bound::Included(_), Bound::Included(_)))
                }
                std::cmp::Ordering::Greater => true,
            },
            _ => false,
        }
    }

    /// The bounds as a tuple, which `BTreeMap::range` and sled accept.
    ///
    /// `BTreeMap::range` panics on inverted ranges and sled's behaviour on them is unspecified,
    /// so engines check [`Self::is_empty`] first.
    pub fn bounds(&self) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
        (self.start, self.end)
    }
}

impl RangeBounds<[u8]> for KeyRange<'_> {
    fn start_bound(&self) -> Bound<&[u8]> {
        self.start
    }

    fn end_bound(&self) -> Bound<&[u8]> {
        self.end
    }
}

impl From<RangeFull> for KeyRange<'static> {
    fn from(_: RangeFull) -> Self {
        KeyRange::ALL
    }
}

impl<'a> From<(Bound<&'a [u8]>, Bound<&'a [u8]>)> for KeyRange<'a> {
    fn from((start, end): (Bound<&'a [u8]>, Bound<&'a [u8]>)) -> Self {
        KeyRange { start, end }
    }
}

impl<'a, K: AsRef<[u8]> + ?Sized> From<Range<&'a K>> for KeyRange<'a> {
    fn from(r: Range<&'a K>) -> Self {
        KeyRange::new(Bound::Included(r.start.as_ref()), Bound::Excluded(r.end.as_ref()))
    }
}

impl<'a, K: AsRef<[u8]> + ?Sized> From<RangeInclusive<&'a K>> for KeyRange<'a> {
    fn from(r: RangeInclusive<&'a K>) -> Self {
        let (start, end) = r.into_inner();
        KeyRange::new(Bound::Included(start.as_ref()), Bound::Included(end.as_ref()))
    }
}

impl<'a, K: AsRef<[u8]> + ?Sized> From<RangeFrom<&'a K>> for KeyRange<'a> {
    fn from(r: RangeFrom<&'a K>) -> Self {
        KeyRange::new(Bound::Included(r.start.as_ref()), Bound::Unbounded)
    }
}

impl<'a, K: AsRef<[u8]> + ?Sized> From<RangeTo<&'a K>> for KeyRange<'a> {
    fn from(r: RangeTo<&'a K>) -> Self {
        KeyRange::new(Bound::Unbounded, Bound::Excluded(r.end.as_ref()))
    }
}

impl<'a, K: AsRef<[u8]> + ?Sized> From<RangeToInclusive<&'a K>> for KeyRange<'a> {
    fn from(r: RangeToInclusive<&'a K>) -> Self {
        KeyRange::new(Bound::Unbounded, Bound::Included(r.end.as_ref()))
    }
}

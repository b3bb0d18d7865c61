//! Live output of attempts, in the leader's memory only (never in the Raft log): what workers
//! ship while their attempts run ([`crate::proto::output`]), kept so readers can follow it and
//! so an attempt that is lost keeps the output it shipped.
//!
//! Bounded twice: each attempt keeps the last [`ATTEMPT_OUTPUT_BYTES`] of its stream (older
//! bytes are dropped and the stream's `start` offset moves on), and all attempts together at
//! most [`TOTAL_OUTPUT_BYTES`]: beyond that the attempt written least recently is forgotten
//! first. Finished attempts stop being written, so they go before running ones.
//!
//! A new leader starts empty (the old leader's copy dies with its term): readers of an attempt
//! it has no copy of get the committed `output_tail` once the attempt ends, and workers send
//! again the tail they still hold, so a running attempt's recent output comes back.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::proto::workers::AttemptId;

/// Bytes kept per attempt (the end of its stream).
pub const ATTEMPT_OUTPUT_BYTES: usize = 64 * 1024;
/// Bytes kept for all attempts together (1024 full attempts).
pub const TOTAL_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// One attempt's kept bytes: the stream from offset `start` to `start + data.len()`.
#[derive(Debug, Default)]
struct Ring {
    data: VecDeque<u8>,
    start: u64,
    /// Value of the store's write clock at the last append (its key in `Inner::by_age`).
    written: u64,
}

impl Ring {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

#[derive(Debug, Default)]
struct Inner {
    rings: HashMap<AttemptId, Ring>,
    /// Write clock → attempt, oldest write first: the eviction order.
    by_age: BTreeMap<u64, AttemptId>,
    clock: u64,
    bytes: usize,
}

/// What [`OutputStore::read`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRead {
    /// First offset still held.
    pub start: u64,
    /// Offset after the returned bytes (the end of the held stream).
    pub next: u64,
    /// The bytes from `max(after, start)` to `next`.
    pub data: Vec<u8>,
}

/// The leader's live output of every attempt. Shared by the API handlers.
pub struct OutputStore {
    inner: Mutex<Inner>,
    per_attempt: usize,
    total: usize,
    /// Bumped on every append: long-polling readers wait on it.
    changed: watch::Sender<u64>,
}

impl Default for OutputStore {
    fn default() -> Self {
        Self::new(ATTEMPT_OUTPUT_BYTES, TOTAL_OUTPUT_BYTES)
    }
}

impl OutputStore {
    /// An empty store with these bounds.
    pub fn new(per_attempt: usize, total: usize) -> Self {
        assert!(per_attempt > 0 && total >= per_attempt, "output bounds {per_attempt}/{total} make no sense");
        Self { inner: Mutex::default(), per_attempt, total, changed: watch::channel(0).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the bytes `data` of `attempt`'s stream placed at `offset`, and answers where the
    /// held stream now ends (send from there next). A chunk that would leave a hole is refused
    /// (the answer tells the worker where to resume) unless it says `gap`: the worker no longer
    /// has the missing bytes either. Bytes already held are skipped, so a resent chunk is
    /// harmless.
    pub fn append(&self, attempt: AttemptId, offset: u64, gap: bool, data: &[u8]) -> u64 {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.clock += 1;
        let clock = inner.clock;
        let ring = match inner.rings.get_mut(&attempt) {
            Some(ring) => ring,
            None if offset == 0 || gap => {
                inner.rings.insert(attempt, Ring { start: offset, ..Ring::default() });
                inner.rings.get_mut(&attempt).expect("just inserted")
            }
            // Nothing held (a new leader): ask for the stream from its start.
            None => return 0,
        };
        let end = ring.end();
        let fresh = if offset > end {
            if !gap {
                return end;
            }
            inner.bytes -= ring.data.len();
            ring.data.clear();
            ring.start = offset;
            data
        } else {
            let skip = ((end - offset) as usize).min(data.len());
            &data[skip..]
        };
        ring.data.extend(fresh);
        inner.bytes += fresh.len();
        let over = ring.data.len().saturating_sub(self.per_attempt);
        ring.data.drain(..over);
        ring.start += over as u64;
        inner.bytes -= over;
        let next = ring.end();
        inner.by_age.remove(&ring.written);
        ring.written = clock;
        inner.by_age.insert(clock, attempt);
        while inner.bytes > self.total {
            let Some((_, oldest)) = inner.by_age.pop_first() else { break };
            if let Some(gone) = inner.rings.remove(&oldest) {
                inner.bytes -= gone.data.len();
            }
        }
        assert!(inner.rings.len() == inner.by_age.len(), "output store eviction index out of step");
        if !fresh.is_empty() {
            self.changed.send_modify(|n| *n += 1);
        }
        next
    }

    /// The held bytes of `attempt` after offset `after`; `None` if nothing is held.
    pub fn read(&self, attempt: AttemptId, after: u64) -> Option<OutputRead> {
        let inner = self.lock();
        let ring = inner.rings.get(&attempt)?;
        let from = after.clamp(ring.start, ring.end());
        let data = ring.data.range((from - ring.start) as usize..).copied().collect();
        Some(OutputRead { start: ring.start, next: ring.end().max(after), data })
    }

    /// A receiver that changes whenever output is stored.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Forgets everything (this replica stopped leading).
    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    /// Bytes held in all.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(task: u64) -> AttemptId {
        AttemptId::new(task, 10 + task)
    }

    #[test]
    fn appends_in_order_skip_what_is_held_and_refuse_holes() {
        let store = OutputStore::new(8, 64);
        assert_eq!(store.append(id(1), 0, false, b"abc"), 3);
        // A resent chunk overlapping what is held only adds the new part.
        assert_eq!(store.append(id(1), 1, false, b"bcde"), 5);
        // A hole is refused: the answer says where to resume.
        assert_eq!(store.append(id(1), 9, false, b"xy"), 5);
        assert_eq!(store.read(id(1), 0), Some(OutputRead { start: 0, next: 5, data: b"abcde".to_vec() }));
        assert_eq!(store.read(id(1), 3).unwrap().data, b"de");
        // A new leader holds nothing: it asks for the stream from 0, unless the worker lost it too.
        assert_eq!(store.append(id(2), 100, false, b"zz"), 0);
        assert_eq!(store.append(id(2), 100, true, b"zz"), 102);
        assert_eq!(store.read(id(2), 0), Some(OutputRead { start: 100, next: 102, data: b"zz".to_vec() }));
        assert_eq!(store.read(id(3), 0), None);
    }

    #[test]
    fn each_attempt_keeps_its_last_bytes_and_the_total_is_bounded() {
        let store = OutputStore::new(4, 8);
        assert_eq!(store.append(id(1), 0, false, b"abcdef"), 6);
        assert_eq!(store.read(id(1), 0), Some(OutputRead { start: 2, next: 6, data: b"cdef".to_vec() }));
        store.append(id(2), 0, false, b"1234");
        assert_eq!(store.bytes(), 8);
        // A third attempt pushes out the one written least recently.
        store.append(id(1), 6, false, b"g");
        store.append(id(3), 0, false, b"xyz");
        assert_eq!(store.read(id(2), 0), None);
        assert_eq!(store.read(id(1), 0).unwrap().data, b"defg");
        assert_eq!(store.bytes(), 7);
        store.clear();
        assert_eq!((store.bytes(), store.read(id(1), 0)), (0, None));
    }
}

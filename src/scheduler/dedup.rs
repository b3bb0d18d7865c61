//! The bounded request-id window: remembers what recent requests did, so a client that retries
//! after an ambiguous answer (timeout, leader change) gets the first answer instead of a second
//! effect.
//!
//! Idempotency keys are kept forever (they are part of a task); request ids are not, because
//! every single request carries one. The window keeps the most recent
//! [`REQUEST_DEDUP_CAPACITY`] request ids and forgets the oldest first. Eviction depends only on
//! the order of applied commands, so every replica forgets the same ids at the same index.

use imbl::{OrdMap, Vector};
use serde::{Deserialize, Serialize};

use super::task::TaskId;

/// Request ids remembered. A client retrying later than this many requests ago may double a
/// write unless it also uses an idempotency key. At ~100 bytes per entry this is ~10 MB.
pub const REQUEST_DEDUP_CAPACITY: usize = 100_000;

/// What a remembered request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Recorded {
    /// A submit: the tasks it answered with, in order (created or not).
    Submitted(Vec<TaskId>),
    /// A cancel of this task.
    Cancelled(TaskId),
    /// A schedule create (format 3).
    Schedule(u64),
    /// A manual trigger of a schedule and the run it started (format 3): a task id, or a
    /// workflow id for a workflow schedule.
    Triggered(u64, TaskId),
    /// A workflow submit and the workflow it created or found (format 6).
    Workflow(u64),
}

/// FIFO of request ids plus a map for lookup. Both are ordered structures so that the snapshot
/// bytes are identical on every replica, and persistent ones (O(1) to clone) so that a frozen
/// copy of the state shares them (their bytes are those of a `VecDeque` and a `BTreeMap`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestWindow {
    capacity: u64,
    order: Vector<String>,
    entries: OrdMap<String, Recorded>,
}

impl RequestWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        RequestWindow { capacity: capacity as u64, order: Vector::new(), entries: OrdMap::new() }
    }

    pub(crate) fn get(&self, request_id: &str) -> Option<&Recorded> {
        self.entries.get(request_id)
    }

    /// Remembers `request_id`, forgetting the oldest ids beyond capacity. Callers check `get`
    /// first, so an id is never recorded twice.
    pub(crate) fn record(&mut self, request_id: String, what: Recorded) {
        if self.capacity == 0 {
            return;
        }
        while self.order.len() as u64 >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        let previous = self.entries.insert(request_id.clone(), what);
        assert!(previous.is_none(), "request id {request_id} recorded twice");
        self.order.push_back(request_id);
    }

    /// The window's internal consistency, for tests.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.order.len() != self.entries.len() || self.order.len() as u64 > self.capacity {
            return Err(format!(
                "request window: {} ids in order, {} entries, capacity {}",
                self.order.len(),
                self.entries.len(),
                self.capacity
            ));
        }
        match self.order.iter().find(|id| !self.entries.contains_key(*id)) {
            Some(id) => Err(format!("request window: {id} in order but not in entries")),
            None => Ok(()),
        }
    }
}

//! Cluster-wide concurrency limits (format 6): `PUT /v1/limits/{key}` `{"max_running": n}`,
//! and tasks that carry `concurrency_key: key`.
//!
//! A permit is taken in apply, by the `Assign` that creates the attempt, and released when
//! that attempt ends (completed, lost, cancelled). Because both happen in apply, the count is
//! the same on every replica and survives leader changes: a new leader cannot over-assign
//! while the old leader's attempts still run. `Assign` refuses a task whose key is at its
//! limit (`limit_reached`), and the dispatcher does not propose one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::command::{RejectCode, Rejection, Response};
use super::state::State;
use super::task::TaskId;

/// Most distinct limits.
pub const MAX_LIMITS: usize = 10_000;
/// Largest `max_running`.
pub const MAX_LIMIT_RUNNING: u32 = 1_000_000;

/// One limit and who holds its permits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitView {
    /// The concurrency key.
    pub key: String,
    /// Most tasks with this key running at once; absent when the key has no limit.
    pub max_running: Option<u32>,
    /// Tasks whose live attempt holds a permit, in id order.
    #[schema(value_type = Vec<u64>)]
    pub running: Vec<TaskId>,
}

impl State {
    /// `SetLimit`: sets (or with `None` removes) the limit of `key`. Tasks already holding
    /// permits keep running even above a lowered limit; no new one is assigned until the count
    /// is below it.
    pub(crate) fn set_limit(&mut self, key: String, max_running: Option<u32>) -> Response {
        if key.is_empty() || key.len() > super::MAX_KEY_BYTES {
            let msg = format!("key: must be 1 to {} bytes", super::MAX_KEY_BYTES);
            return Response::Rejected(Rejection::new(RejectCode::Invalid, msg));
        }
        match max_running {
            Some(n) if n > MAX_LIMIT_RUNNING => {
                let msg = format!("max_running: is {n}; it must be at most {MAX_LIMIT_RUNNING}");
                return Response::Rejected(Rejection::new(RejectCode::Invalid, msg));
            }
            Some(n) => {
                if !self.limits.contains_key(&key) && self.limits.len() >= MAX_LIMITS {
                    let msg = format!("there are already {MAX_LIMITS} limits; delete one first");
                    return Response::Rejected(Rejection::new(RejectCode::Invalid, msg));
                }
                self.limits.insert(key.clone(), n);
            }
            None => {
                if self.limits.remove(&key).is_none() {
                    return Response::Rejected(Rejection::new(
                        RejectCode::NotFound,
                        format!("limit {key} does not exist"),
                    ));
                }
            }
        }
        Response::Limit { limit: self.limit_view(&key) }
    }

    /// The limit of `key` and its holders.
    pub fn limit_view(&self, key: &str) -> LimitView {
        LimitView {
            key: key.to_string(),
            max_running: self.limits.get(key).copied(),
            running: self.permits.get(key).map(|s| s.iter().copied().collect()).unwrap_or_default(),
        }
    }

    /// Every limit, and every key with running tasks, in key order.
    pub fn limits_view(&self) -> Vec<LimitView> {
        let keys: BTreeSet<&String> = self.limits.keys().chain(self.permits.keys()).collect();
        keys.into_iter().map(|k| self.limit_view(k)).collect()
    }

    /// `(running, max)` when `key` is at or over its limit.
    pub fn limit_reached(&self, key: &str) -> Option<(usize, u32)> {
        let max = self.limit_of(key)?;
        let running = self.permits_held(key);
        (running >= max as usize).then_some((running, max))
    }

    /// The limit of `key`, if it has one.
    pub fn limit_of(&self, key: &str) -> Option<u32> {
        self.limits.get(key).copied()
    }

    /// How many permits of `key` live attempts hold.
    pub fn permits_held(&self, key: &str) -> usize {
        self.permits.get(key).map_or(0, imbl::OrdSet::len)
    }

    /// Refuses an assignment of a task whose key is at its limit.
    pub(crate) fn check_permit(&self, task_id: TaskId, key: Option<&str>) -> Result<(), Rejection> {
        let Some(key) = key else { return Ok(()) };
        match self.limit_reached(key) {
            Some((running, max)) => {
                let msg = format!("task {task_id} waits for limit {key}: {running} of {max} permits are held");
                Err(Rejection::new(RejectCode::LimitReached, msg))
            }
            None => Ok(()),
        }
    }

    pub(crate) fn take_permit(&mut self, task_id: TaskId, key: Option<&str>) {
        if let Some(key) = key {
            self.permits.entry(key.to_string()).or_default().insert(task_id);
        }
    }

    pub(crate) fn release_permit(&mut self, task_id: TaskId, key: Option<&str>) {
        let Some(key) = key else { return };
        if let Some(set) = self.permits.get_mut(key) {
            set.remove(&task_id);
            if set.is_empty() {
                self.permits.remove(key);
            }
        }
    }

    /// Every permit is held by a live attempt of a task with that key, and every such attempt
    /// holds one. O(tasks): for tests.
    pub(crate) fn check_permits(&self) -> Result<(), String> {
        let mut expected: imbl::OrdMap<String, imbl::OrdSet<TaskId>> = Default::default();
        for (&id, task) in &self.tasks {
            if let (Some(key), Some(_)) = (&task.spec.concurrency_key, task.live_attempt()) {
                expected.entry(key.clone()).or_default().insert(id);
            }
        }
        if expected != self.permits {
            return Err(format!("permits {:?} != live attempts by key {expected:?}", self.permits));
        }
        Ok(())
    }
}

/// Why a task with `key` waits while `running` of its `max` permits are held: the one sentence
/// the planner and `task get` both give.
pub fn held_back_reason(key: &str, running: usize, max: u32) -> String {
    let pause = if max == 0 { " (a limit of 0 holds every task with this key)" } else { "" };
    format!("held back by concurrency limit {key:?}: {running} of {max} running{pause}")
}

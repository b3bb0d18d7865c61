//! Format 2, frozen: the snapshot shape before schedules. Never edit a type here.
//!
//! Its tasks are `v4::Task`: formats 2 to 4 wrote the same task record, frozen once there.
//!
//! Format 3 only *appended* to shapes format 2 shares with today's code: new `Command`
//! variants, `TaskOrigin::Schedule`, new `Recorded` variants. postcard encodes an enum variant
//! by its position, so format-2 bytes of those decode as today's types unchanged, and only the
//! state itself (which gained fields) needs a frozen copy.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use super::v4::{Task, upgrade_tasks};
use crate::scheduler as now;
use crate::scheduler::dedup::RequestWindow;
use crate::scheduler::state::TaskIndex;
use crate::scheduler::{TaskId, WorkerInfo};

/// The replicated state as format 2 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `State` documents every field")]
pub struct State {
    pub tasks: BTreeMap<TaskId, Box<Task>>,
    pub next_task_id: TaskId,
    pub last_applied_index: u64,
    pub idempotency: BTreeMap<String, TaskId>,
    pub(crate) requests: RequestWindow,
    pub workers: BTreeMap<String, WorkerInfo>,
    pub(crate) index: TaskIndex,
    pub live: BTreeMap<String, BTreeSet<TaskId>>,
    pub dependents: BTreeMap<TaskId, Vec<TaskId>>,
    pub removed_members: BTreeSet<u64>,
}

impl From<State> for now::State {
    fn from(s: State) -> Self {
        now::State::from_parts(now::state::Parts {
            tasks: upgrade_tasks(s.tasks),
            next_task_id: s.next_task_id,
            last_applied_index: s.last_applied_index,
            idempotency: s.idempotency.into_iter().collect(),
            requests: s.requests,
            workers: s.workers.into_iter().collect(),
            index: s.index,
            live: super::persistent_sets(s.live),
            dependents: s.dependents.into_iter().collect(),
            removed_members: s.removed_members,
            schedules: Default::default(),
            next_schedule_id: 1,
            schedule_keys: Default::default(),
            schedule_runs: Default::default(),
            tokens: Default::default(),
            ..now::state::Parts::empty_additions()
        })
    }
}

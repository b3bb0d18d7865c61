//! Format 8, frozen: the state before migration. Never edit a type here.
//!
//! Format 9 (migration) appended `Command::Migrate` and `AttemptOutcome::Migrated`, so format-8
//! log payloads and every record inside a snapshot (tasks, workers, schedules, workflows) are
//! format-9 bytes. Only the state gained a field (`migrations`), so only its shape is frozen
//! here, around today's records.
//!
//! Upgrading fills no migrations: nothing was ever migrated by format 8.

use std::collections::BTreeSet;

use imbl::{OrdMap, OrdSet};
use serde::Deserialize;
use serde::Serialize;

use crate::scheduler as now;
use crate::scheduler::cow::CowMap;
use crate::scheduler::dedup::RequestWindow;
use crate::scheduler::retention::ForgottenRuns;
use crate::scheduler::schedule::{Runs, Schedule};
use crate::scheduler::state::TaskIndex;
use crate::scheduler::{ApiToken, ScheduleId, Task, TaskId, WorkerInfo, Workflow, WorkflowId};

/// The replicated state as format 8 wrote it: format 9's without `migrations` (the derived
/// indexes are never written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `State` documents every field")]
pub struct State {
    pub(crate) tasks: CowMap<TaskId, Task>,
    pub(crate) next_task_id: TaskId,
    pub(crate) last_applied_index: u64,
    pub(crate) idempotency: OrdMap<String, TaskId>,
    pub(crate) requests: RequestWindow,
    pub(crate) workers: CowMap<String, WorkerInfo>,
    pub(crate) index: TaskIndex,
    pub(crate) live: OrdMap<String, OrdSet<TaskId>>,
    pub(crate) dependents: CowMap<TaskId, Vec<TaskId>>,
    pub(crate) removed_members: BTreeSet<u64>,
    pub(crate) schedules: CowMap<ScheduleId, Schedule>,
    pub(crate) next_schedule_id: ScheduleId,
    pub(crate) schedule_keys: OrdMap<String, ScheduleId>,
    pub(crate) schedule_runs: OrdMap<ScheduleId, Runs>,
    pub(crate) tokens: CowMap<String, ApiToken>,
    pub(crate) workflows: CowMap<WorkflowId, Workflow>,
    pub(crate) next_workflow_id: WorkflowId,
    pub(crate) workflow_keys: OrdMap<String, WorkflowId>,
    pub(crate) limits: OrdMap<String, u32>,
    pub(crate) permits: OrdMap<String, OrdSet<TaskId>>,
    pub(crate) forgotten_runs: OrdMap<ScheduleId, ForgottenRuns>,
}

impl From<State> for now::State {
    fn from(s: State) -> Self {
        now::State::from_parts(now::state::Parts {
            tasks: s.tasks,
            next_task_id: s.next_task_id,
            last_applied_index: s.last_applied_index,
            idempotency: s.idempotency,
            requests: s.requests,
            workers: s.workers,
            index: s.index,
            live: s.live,
            dependents: s.dependents,
            removed_members: s.removed_members,
            schedules: s.schedules,
            next_schedule_id: s.next_schedule_id,
            schedule_keys: s.schedule_keys,
            schedule_runs: s.schedule_runs,
            tokens: s.tokens,
            workflows: s.workflows,
            next_workflow_id: s.next_workflow_id,
            workflow_keys: s.workflow_keys,
            limits: s.limits,
            permits: s.permits,
            forgotten_runs: s.forgotten_runs,
            migrations: OrdMap::new(),
        })
    }
}

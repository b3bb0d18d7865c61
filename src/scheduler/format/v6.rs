//! Format 6, frozen: the task record before preemption. Never edit a type here.
//!
//! Format 7 gave `Task` its `preempted_by` and `preempted` (fields, so the task record and the
//! state that holds it are frozen here as format 6 wrote them). What format 7 appended
//! (`Command::Preempt`, `AttemptOutcome::Preempted`) is not here: format-6 log payloads decode
//! as format 7 unchanged, since variants are only appended.
//!
//! Upgrading fills no preemption: no task was ever preempted before format 7.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use imbl::{OrdMap, OrdSet};
use serde::Deserialize;
use serde::Serialize;

use crate::scheduler as now;
use crate::scheduler::cow::CowMap;
use crate::scheduler::dedup::RequestWindow;
use crate::scheduler::schedule::Runs;
use crate::scheduler::state::TaskIndex;
use crate::scheduler::{
    ApiToken, Attempt, Checkpoint, Schedule, ScheduleId, TaskId, TaskResult, TaskSpec, TaskState, WorkerInfo, Workflow,
    WorkflowId,
};

/// A task record as format 6 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `Task` documents every field")]
pub struct Task {
    pub id: TaskId,
    pub spec: TaskSpec,
    pub state: TaskState,
    pub version: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub finished_ms: Option<u64>,
    pub attempts: Vec<Attempt>,
    pub checkpoint: Option<Checkpoint>,
    pub cancel_requested: bool,
    pub cancel_reason: Option<String>,
    pub retry_at_ms: Option<u64>,
    pub last_error: Option<String>,
    pub result: Option<TaskResult>,
}

/// The replicated state as format 6 wrote it (the ready index is derived, never written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `State` documents every field")]
pub struct State {
    pub(crate) tasks: BTreeMap<TaskId, Task>,
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
}

impl From<Task> for now::Task {
    fn from(t: Task) -> Self {
        now::Task {
            id: t.id,
            spec: t.spec,
            state: t.state,
            version: t.version,
            created_ms: t.created_ms,
            updated_ms: t.updated_ms,
            finished_ms: t.finished_ms,
            attempts: t.attempts,
            checkpoint: t.checkpoint,
            cancel_requested: t.cancel_requested,
            cancel_reason: t.cancel_reason,
            retry_at_ms: t.retry_at_ms,
            last_error: t.last_error,
            result: t.result,
            preempted_by: None,
            preempted: Vec::new(),
        }
    }
}

impl From<State> for now::State {
    fn from(s: State) -> Self {
        now::State::from_parts(now::state::Parts {
            tasks: s.tasks.into_iter().map(|(id, t)| (id, now::Task::from(t))).collect(),
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
        })
    }
}

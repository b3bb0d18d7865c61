//! Format 6, frozen: the state before retention. Never edit a type here.
//!
//! Format 7 gave the state `forgotten_runs` (what retention forgot of each schedule's runs)
//! and `Command` its appended `Forget` variant. Only the state's shape changed: format-6 log
//! payloads are format-7 bytes, and every record inside the state is today's. The maps are
//! today's persistent ones, whose bytes are those format 6 wrote.
//!
//! Upgrading fills no forgotten runs: nothing was forgotten before retention existed.

use imbl::{OrdMap, OrdSet};
use serde::Deserialize;
use serde::Serialize;

use crate::scheduler as now;
use crate::scheduler::cow::CowMap;
use crate::scheduler::dedup::RequestWindow;
use crate::scheduler::schedule::{Runs, Schedule, ScheduleId};
use crate::scheduler::state::TaskIndex;
use crate::scheduler::token::ApiToken;
use crate::scheduler::workflow::{Workflow, WorkflowId};
use crate::scheduler::{Task, TaskId, WorkerInfo};

/// The replicated state as format 6 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `State` documents every field")]
pub struct State {
    pub(crate) tasks: CowMap<TaskId, Task>,
    pub next_task_id: TaskId,
    pub last_applied_index: u64,
    pub idempotency: OrdMap<String, TaskId>,
    pub(crate) requests: RequestWindow,
    pub(crate) workers: CowMap<String, WorkerInfo>,
    pub(crate) index: TaskIndex,
    pub live: OrdMap<String, OrdSet<TaskId>>,
    pub(crate) dependents: CowMap<TaskId, Vec<TaskId>>,
    pub removed_members: std::collections::BTreeSet<u64>,
    pub(crate) schedules: CowMap<ScheduleId, Schedule>,
    pub next_schedule_id: ScheduleId,
    pub schedule_keys: OrdMap<String, ScheduleId>,
    pub(crate) schedule_runs: OrdMap<ScheduleId, Runs>,
    pub(crate) tokens: CowMap<String, ApiToken>,
    pub(crate) workflows: CowMap<WorkflowId, Workflow>,
    pub next_workflow_id: WorkflowId,
    pub workflow_keys: OrdMap<String, WorkflowId>,
    pub limits: OrdMap<String, u32>,
    pub permits: OrdMap<String, OrdSet<TaskId>>,
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
            ..now::state::Parts::empty_additions()
        })
    }
}

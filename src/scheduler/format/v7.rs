//! Format 7, frozen: the shapes before preemption, with retention. Never edit a type here.
//!
//! Format 7 appended `Command::Forget` to format 6's commands and gave the state its
//! `forgotten_runs`; every record inside (task specs, tasks, workflows, schedules) is format
//! 6's ([`super::v6`]). Format 8 changed those records (preemption), so format 7's command and
//! state are frozen here, around format 6's records.
//!
//! Upgrading fills no preemption, as for format 6.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use imbl::{OrdMap, OrdSet};
use serde::Deserialize;
use serde::Serialize;

use super::v6::{Schedule, ScheduleSpec, Task, TaskSpec, Workflow, WorkflowSpec};
use crate::scheduler as now;
use crate::scheduler::cow::CowMap;
use crate::scheduler::dedup::RequestWindow;
use crate::scheduler::retention::ForgottenRuns;
use crate::scheduler::schedule::Runs;
use crate::scheduler::state::TaskIndex;
use crate::scheduler::{
    ApiToken, AttemptOutcome, Reuse, ScheduleId, TaskId, WorkerInfo, WorkerRegistration, WorkflowId,
};

/// A command as format 7 wrote it: format 6's and `Forget` (`Preempt` is format 8's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs, reason = "frozen copy; today's `Command` documents every field")]
#[allow(clippy::large_enum_variant, reason = "the frozen shape of format 7; only decoded, then converted")]
pub enum Command {
    Submit {
        request_id: Option<String>,
        now_ms: u64,
        spec: TaskSpec,
        reuse: Reuse,
    },
    SubmitBatch {
        request_id: Option<String>,
        now_ms: u64,
        specs: Vec<TaskSpec>,
        reuse: Reuse,
    },
    Cancel {
        request_id: Option<String>,
        now_ms: u64,
        task_id: TaskId,
        reason: Option<String>,
    },
    RegisterWorker {
        now_ms: u64,
        worker: WorkerRegistration,
    },
    Assign {
        now_ms: u64,
        assignments: Vec<(TaskId, String)>,
    },
    AttemptStarted {
        now_ms: u64,
        task_id: TaskId,
        token: u64,
    },
    Checkpoint {
        now_ms: u64,
        task_id: TaskId,
        token: u64,
        data: Vec<u8>,
    },
    Complete {
        now_ms: u64,
        task_id: TaskId,
        token: u64,
        outcome: AttemptOutcome,
        exit_code: Option<i32>,
        output_tail: String,
        error: Option<String>,
        result: Option<Vec<u8>>,
    },
    WorkerLost {
        now_ms: u64,
        worker_id: String,
    },
    Noop,
    DrainWorker {
        now_ms: u64,
        worker_id: String,
    },
    RemoveWorker {
        now_ms: u64,
        worker_id: String,
    },
    MemberRemoved {
        now_ms: u64,
        node_id: u64,
    },
    Many {
        commands: Vec<Command>,
    },
    WorkerLostIncarnation {
        now_ms: u64,
        worker_id: String,
        registered_ms: u64,
    },
    Reports {
        now_ms: u64,
        worker_id: String,
        reports: Vec<now::AttemptReport>,
    },
    CreateSchedule {
        request_id: Option<String>,
        now_ms: u64,
        spec: Box<ScheduleSpec>,
        paused: bool,
    },
    UpdateSchedule {
        now_ms: u64,
        id: ScheduleId,
        spec: Box<ScheduleSpec>,
    },
    PauseSchedule {
        now_ms: u64,
        id: ScheduleId,
        note: Option<String>,
    },
    ResumeSchedule {
        now_ms: u64,
        id: ScheduleId,
    },
    TriggerSchedule {
        request_id: Option<String>,
        now_ms: u64,
        id: ScheduleId,
    },
    BackfillSchedule {
        now_ms: u64,
        id: ScheduleId,
        version: u64,
        nominal: Vec<u64>,
    },
    DeleteSchedule {
        now_ms: u64,
        id: ScheduleId,
        cancel_runs: bool,
    },
    FireSchedule {
        now_ms: u64,
        id: ScheduleId,
        version: u64,
        nominal: Vec<u64>,
        advance_to: u64,
        missed: u64,
    },
    CreateToken {
        now_ms: u64,
        token: ApiToken,
    },
    RevokeToken {
        now_ms: u64,
        key_or_name: String,
    },
    WorkerCheckpoint {
        now_ms: u64,
        worker_id: String,
        task_id: TaskId,
        token: u64,
        data: Vec<u8>,
    },
    SubmitWorkflow {
        request_id: Option<String>,
        now_ms: u64,
        spec: Box<WorkflowSpec>,
    },
    CancelWorkflow {
        now_ms: u64,
        id: WorkflowId,
        reason: Option<String>,
    },
    SetLimit {
        now_ms: u64,
        key: String,
        max_running: Option<u32>,
    },
    Forget {
        now_ms: u64,
        before_ms: u64,
        keep: u64,
        max: u32,
    },
}

impl From<Command> for now::Command {
    fn from(c: Command) -> Self {
        match c {
            Command::Submit { request_id, now_ms, spec, reuse } => {
                now::Command::Submit { request_id, now_ms, spec: spec.into(), reuse }
            }
            Command::SubmitBatch { request_id, now_ms, specs, reuse } => now::Command::SubmitBatch {
                request_id,
                now_ms,
                specs: specs.into_iter().map(Into::into).collect(),
                reuse,
            },
            Command::Cancel { request_id, now_ms, task_id, reason } => {
                now::Command::Cancel { request_id, now_ms, task_id, reason }
            }
            Command::RegisterWorker { now_ms, worker } => now::Command::RegisterWorker { now_ms, worker },
            Command::Assign { now_ms, assignments } => now::Command::Assign { now_ms, assignments },
            Command::AttemptStarted { now_ms, task_id, token } => {
                now::Command::AttemptStarted { now_ms, task_id, token }
            }
            Command::Checkpoint { now_ms, task_id, token, data } => {
                now::Command::Checkpoint { now_ms, task_id, token, data }
            }
            Command::Complete { now_ms, task_id, token, outcome, exit_code, output_tail, error, result } => {
                now::Command::Complete { now_ms, task_id, token, outcome, exit_code, output_tail, error, result }
            }
            Command::WorkerLost { now_ms, worker_id } => now::Command::WorkerLost { now_ms, worker_id },
            Command::Noop => now::Command::Noop,
            Command::DrainWorker { now_ms, worker_id } => now::Command::DrainWorker { now_ms, worker_id },
            Command::RemoveWorker { now_ms, worker_id } => now::Command::RemoveWorker { now_ms, worker_id },
            Command::MemberRemoved { now_ms, node_id } => now::Command::MemberRemoved { now_ms, node_id },
            Command::Many { commands } => {
                now::Command::Many { commands: commands.into_iter().map(Into::into).collect() }
            }
            Command::WorkerLostIncarnation { now_ms, worker_id, registered_ms } => {
                now::Command::WorkerLostIncarnation { now_ms, worker_id, registered_ms }
            }
            Command::Reports { now_ms, worker_id, reports } => now::Command::Reports { now_ms, worker_id, reports },
            Command::CreateSchedule { request_id, now_ms, spec, paused } => {
                now::Command::CreateSchedule { request_id, now_ms, spec: Box::new((*spec).into()), paused }
            }
            Command::UpdateSchedule { now_ms, id, spec } => {
                now::Command::UpdateSchedule { now_ms, id, spec: Box::new((*spec).into()) }
            }
            Command::PauseSchedule { now_ms, id, note } => now::Command::PauseSchedule { now_ms, id, note },
            Command::ResumeSchedule { now_ms, id } => now::Command::ResumeSchedule { now_ms, id },
            Command::TriggerSchedule { request_id, now_ms, id } => {
                now::Command::TriggerSchedule { request_id, now_ms, id }
            }
            Command::BackfillSchedule { now_ms, id, version, nominal } => {
                now::Command::BackfillSchedule { now_ms, id, version, nominal }
            }
            Command::DeleteSchedule { now_ms, id, cancel_runs } => {
                now::Command::DeleteSchedule { now_ms, id, cancel_runs }
            }
            Command::FireSchedule { now_ms, id, version, nominal, advance_to, missed } => {
                now::Command::FireSchedule { now_ms, id, version, nominal, advance_to, missed }
            }
            Command::CreateToken { now_ms, token } => now::Command::CreateToken { now_ms, token },
            Command::RevokeToken { now_ms, key_or_name } => now::Command::RevokeToken { now_ms, key_or_name },
            Command::WorkerCheckpoint { now_ms, worker_id, task_id, token, data } => {
                now::Command::WorkerCheckpoint { now_ms, worker_id, task_id, token, data }
            }
            Command::SubmitWorkflow { request_id, now_ms, spec } => {
                now::Command::SubmitWorkflow { request_id, now_ms, spec: Box::new((*spec).into()) }
            }
            Command::CancelWorkflow { now_ms, id, reason } => now::Command::CancelWorkflow { now_ms, id, reason },
            Command::SetLimit { now_ms, key, max_running } => now::Command::SetLimit { now_ms, key, max_running },
            Command::Forget { now_ms, before_ms, keep, max } => now::Command::Forget { now_ms, before_ms, keep, max },
        }
    }
}

/// The replicated state as format 7 wrote it: format 6's and `forgotten_runs` (the ready index is derived, never written).
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
    pub(crate) schedules: BTreeMap<ScheduleId, Schedule>,
    pub(crate) next_schedule_id: ScheduleId,
    pub(crate) schedule_keys: OrdMap<String, ScheduleId>,
    pub(crate) schedule_runs: OrdMap<ScheduleId, Runs>,
    pub(crate) tokens: CowMap<String, ApiToken>,
    pub(crate) workflows: BTreeMap<WorkflowId, Workflow>,
    pub(crate) next_workflow_id: WorkflowId,
    pub(crate) workflow_keys: OrdMap<String, WorkflowId>,
    pub(crate) limits: OrdMap<String, u32>,
    pub(crate) permits: OrdMap<String, OrdSet<TaskId>>,
    pub(crate) forgotten_runs: OrdMap<ScheduleId, ForgottenRuns>,
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
            schedules: s.schedules.into_iter().map(|(id, x)| (id, x.into())).collect(),
            next_schedule_id: s.next_schedule_id,
            schedule_keys: s.schedule_keys,
            schedule_runs: s.schedule_runs,
            tokens: s.tokens,
            workflows: s.workflows.into_iter().map(|(id, x)| (id, x.into())).collect(),
            next_workflow_id: s.next_workflow_id,
            workflow_keys: s.workflow_keys,
            limits: s.limits,
            permits: s.permits,
            forgotten_runs: s.forgotten_runs,
            migrations: OrdMap::new(),
        })
    }
}

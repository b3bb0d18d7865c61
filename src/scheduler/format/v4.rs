//! Format 4, frozen: the shapes before task results. Never edit a type here.
//!
//! Format 5 gave `Command::Complete` and `AttemptEvent::Ended` a `result`, and `Task` its
//! `result`. postcard writes fields by position, so every shape that holds one of those is
//! frozen here as format 4 wrote it: the whole `Command` (its `Complete`, its `Reports` and
//! its nested `Many`), `AttemptReport`/`AttemptEvent`, `Task`, and the `State` that holds
//! tasks. Formats 2 and 3 wrote the same `Command` and `Task` (they only appended variants),
//! so their payloads decode as these too. Everything else is today's type.
//!
//! Upgrading fills no result: an attempt that ended before results existed wrote none, and
//! a replayed completion must apply as it first did.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::scheduler as now;
use crate::scheduler::dedup::RequestWindow;
use crate::scheduler::schedule::Runs;
use crate::scheduler::state::TaskIndex;
// Task specs and schedules are format 5's frozen shapes (formats 2 to 5 wrote the same bytes).
use super::v5::{Schedule, ScheduleSpec, TaskSpec, upgrade_schedules};
use crate::scheduler::{
    ApiToken, Attempt, AttemptId, AttemptOutcome, Checkpoint, Reuse, ScheduleId, TaskId, TaskState, WorkerInfo,
    WorkerRegistration,
};

/// A command as formats 2 to 4 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs, reason = "frozen copy; today's `Command` documents every field")]
#[allow(clippy::large_enum_variant, reason = "the frozen shape of format 4; only decoded, then converted")]
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
        reports: Vec<AttemptReport>,
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
}

/// A worker's report as formats 2 to 4 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy")]
pub struct AttemptReport {
    pub attempt: AttemptId,
    pub event: AttemptEvent,
}

/// A report's event as formats 2 to 4 wrote it: `Ended` without a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs, reason = "frozen copy")]
pub enum AttemptEvent {
    Started,
    Ended { outcome: AttemptOutcome, exit_code: Option<i32>, output_tail: String, error: Option<String> },
}

/// A task record as formats 2 to 4 wrote it: no `result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy")]
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
}

/// The replicated state as format 4 wrote it.
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
    pub schedules: BTreeMap<ScheduleId, Schedule>,
    pub next_schedule_id: ScheduleId,
    pub schedule_keys: BTreeMap<String, ScheduleId>,
    pub(crate) schedule_runs: BTreeMap<ScheduleId, Runs>,
    pub tokens: BTreeMap<String, ApiToken>,
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
            Command::Complete { now_ms, task_id, token, outcome, exit_code, output_tail, error } => {
                now::Command::Complete { now_ms, task_id, token, outcome, exit_code, output_tail, error, result: None }
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
            Command::Reports { now_ms, worker_id, reports } => {
                now::Command::Reports { now_ms, worker_id, reports: reports.into_iter().map(Into::into).collect() }
            }
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
        }
    }
}

impl From<AttemptReport> for now::AttemptReport {
    fn from(r: AttemptReport) -> Self {
        let event = match r.event {
            AttemptEvent::Started => now::AttemptEvent::Started,
            AttemptEvent::Ended { outcome, exit_code, output_tail, error } => {
                now::AttemptEvent::Ended { outcome, exit_code, output_tail, error, result: None }
            }
        };
        now::AttemptReport { attempt: r.attempt, event }
    }
}

impl From<Task> for now::Task {
    fn from(t: Task) -> Self {
        now::Task {
            id: t.id,
            spec: t.spec.into(),
            state: t.state,
            version: t.version,
            created_ms: t.created_ms,
            updated_ms: t.updated_ms,
            finished_ms: t.finished_ms,
            attempts: t.attempts,
            checkpoint: t.checkpoint.map(Box::new),
            cancel_requested: t.cancel_requested,
            cancel_reason: t.cancel_reason.map(Into::into),
            retry_at_ms: t.retry_at_ms,
            last_error: t.last_error.map(Into::into),
            result: None,
            preempted_by: None,
            preempted: Vec::new(),
        }
    }
}

/// Today's tasks from frozen ones (formats 2 to 4 all wrote this `Task`).
pub(crate) fn upgrade_tasks(tasks: BTreeMap<TaskId, Box<Task>>) -> crate::scheduler::cow::CowMap<TaskId, now::Task> {
    tasks.into_iter().map(|(id, t)| (id, now::Task::from(*t))).collect()
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
            schedules: upgrade_schedules(s.schedules),
            next_schedule_id: s.next_schedule_id,
            schedule_keys: s.schedule_keys.into_iter().collect(),
            schedule_runs: s.schedule_runs.into_iter().collect(),
            tokens: s.tokens.into_iter().collect(),
            ..now::state::Parts::empty_additions()
        })
    }
}

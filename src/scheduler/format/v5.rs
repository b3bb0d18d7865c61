//! Format 5, frozen: the shapes before workflows and concurrency limits. Never edit a type here.
//!
//! Format 6 gave `TaskSpec` its `concurrency_key` and `ScheduleSpec` its `workflow`, and the
//! state its workflows and limits. postcard writes fields by position, so every shape that
//! holds a `TaskSpec` is frozen here as format 5 wrote it: `TaskSpec`, `ScheduleSpec`,
//! `Schedule`, `Task`, the whole `Command` (its submits and schedule commands, and its nested
//! `Many`) and the `State`. The variants format 6 appended (`SubmitWorkflow`,
//! `CancelWorkflow`, `SetLimit`, `TaskOrigin::Workflow`, `Recorded::Workflow`) are not here:
//! format 5 never wrote them. The older frozen modules read their task specs and schedules
//! as these shapes (they are the same bytes) and upgrade through them.
//!
//! Upgrading fills no concurrency key, no workflow and no limit: a task submitted before
//! limits existed never held a permit, and a replayed entry applies as it first did.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::scheduler as now;
use crate::scheduler::calendar::{CatchUp, Trigger};
use crate::scheduler::dedup::RequestWindow;
use crate::scheduler::schedule::{Pause, Runs};
use crate::scheduler::state::TaskIndex;
use crate::scheduler::{
    ApiToken, Attempt, AttemptOutcome, Checkpoint, Executor, FailoverPolicy, Overlap, PlacementStrategy, Preferences,
    Resources, RetryPolicy, Reuse, ScheduleCounters, ScheduleId, Shard, TaskId, TaskOrigin, TaskResult, TaskState,
    WorkerInfo, WorkerRegistration,
};

/// A task spec as formats 2 to 5 wrote it: no `concurrency_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `TaskSpec` documents every field")]
pub struct TaskSpec {
    pub name: String,
    pub executor: Executor,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub priority: u32,
    pub resources: Resources,
    pub constraints: BTreeMap<String, String>,
    pub placement: PlacementStrategy,
    pub prefer: Option<Preferences>,
    pub timeout_ms: Option<u64>,
    pub retry: RetryPolicy,
    pub failover: FailoverPolicy,
    pub idempotency_key: Option<String>,
    pub shard: Option<Shard>,
    pub depends_on: Vec<TaskId>,
    pub origin: TaskOrigin,
}

/// A schedule spec as formats 3 to 5 wrote it: a task template only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `ScheduleSpec` documents every field")]
pub struct ScheduleSpec {
    pub name: String,
    pub trigger: Trigger,
    pub time_zone: String,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub catch_up: CatchUp,
    pub catch_up_window_ms: u64,
    pub overlap: Overlap,
    pub jitter_ms: u64,
    pub idempotency_key: Option<String>,
    pub task: TaskSpec,
}

/// A schedule as formats 3 to 5 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `Schedule` documents every field")]
pub struct Schedule {
    pub id: ScheduleId,
    pub spec: ScheduleSpec,
    pub version: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub paused: Option<Pause>,
    pub resumed_ms: Option<u64>,
    pub last_nominal_ms: Option<u64>,
    pub counters: ScheduleCounters,
    pub runs: u64,
    pub live: BTreeSet<TaskId>,
    pub buffered: Option<u64>,
}

/// A command as format 5 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs, reason = "frozen copy; today's `Command` documents every field")]
#[allow(clippy::large_enum_variant, reason = "the frozen shape of format 5; only decoded, then converted")]
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
        }
    }
}

/// A task record as format 5 wrote it.
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
    pub result: Option<TaskResult>,
}

/// The replicated state as format 5 wrote it.
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

impl From<TaskSpec> for now::TaskSpec {
    fn from(s: TaskSpec) -> Self {
        now::TaskSpec {
            name: s.name,
            executor: s.executor,
            command: s.command,
            env: s.env,
            working_dir: s.working_dir.map(Into::into),
            priority: s.priority,
            resources: s.resources,
            constraints: s.constraints,
            placement: s.placement,
            prefer: s.prefer.map(Box::new),
            timeout_ms: s.timeout_ms,
            retry: s.retry,
            failover: s.failover,
            idempotency_key: s.idempotency_key,
            shard: s.shard,
            depends_on: s.depends_on,
            origin: s.origin,
            concurrency_key: None,
            preemptible: None,
        }
    }
}

impl From<ScheduleSpec> for now::ScheduleSpec {
    fn from(s: ScheduleSpec) -> Self {
        now::ScheduleSpec {
            name: s.name,
            trigger: s.trigger,
            time_zone: s.time_zone,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            catch_up: s.catch_up,
            catch_up_window_ms: s.catch_up_window_ms,
            overlap: s.overlap,
            jitter_ms: s.jitter_ms,
            idempotency_key: s.idempotency_key,
            task: s.task.into(),
            workflow: None,
        }
    }
}

impl From<Schedule> for now::Schedule {
    fn from(s: Schedule) -> Self {
        now::Schedule {
            id: s.id,
            spec: s.spec.into(),
            version: s.version,
            created_ms: s.created_ms,
            updated_ms: s.updated_ms,
            paused: s.paused,
            resumed_ms: s.resumed_ms,
            last_nominal_ms: s.last_nominal_ms,
            counters: s.counters,
            runs: s.runs,
            live: s.live,
            buffered: s.buffered,
        }
    }
}

/// Today's schedules from frozen ones (formats 3 to 5 all wrote this `Schedule`).
pub(crate) fn upgrade_schedules(
    schedules: BTreeMap<ScheduleId, Schedule>,
) -> crate::scheduler::cow::CowMap<ScheduleId, now::Schedule> {
    schedules.into_iter().map(|(id, s)| (id, s.into())).collect()
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
            result: t.result.map(Box::new),
            preempted_by: None,
            preempted: Vec::new(),
        }
    }
}

impl From<State> for now::State {
    fn from(s: State) -> Self {
        now::State::from_parts(now::state::Parts {
            tasks: s.tasks.into_iter().map(|(id, t)| (id, now::Task::from(*t))).collect(),
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

//! Format 6, frozen: the shapes before retention and preemption. Never edit a type here.
//!
//! Format 7 (retention, [`super::v7`]) only appended `Command::Forget` and gave the state its
//! `forgotten_runs`; format 8 gave `TaskSpec` its `preemptible` and `Task` its
//! `preempted_by` and `preempted`. postcard writes fields by position, so every shape that
//! holds a task spec or a task is frozen here as format 6 wrote it: `TaskSpec`, the workflow
//! shapes that hold one (`NodeSpec`, `WorkflowSpec`, `Node`, `Workflow`), the schedule shapes
//! (`ScheduleSpec`, `Schedule`), the whole `Command` (and its nested `Many`), `Task` and the
//! `State`; format 7's command and state are built around these records in `v7.rs`. What
//! format 8 appended (`Command::Preempt`, `AttemptOutcome::Preempted`) is not here: format 6
//! never wrote it. The older frozen modules upgrade straight to today's shapes.
//!
//! Upgrading fills no preemption: no task was preempted before format 8, and a spec without
//! `preemptible` follows the rule of its priority, which is what `None` means today.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use imbl::{OrdMap, OrdSet};
use serde::Deserialize;
use serde::Serialize;

use crate::scheduler as now;
use crate::scheduler::calendar::{CatchUp, Trigger};
use crate::scheduler::cow::CowMap;
use crate::scheduler::dedup::RequestWindow;
use crate::scheduler::schedule::{Pause, Runs};
use crate::scheduler::state::TaskIndex;
use crate::scheduler::workflow::{EdgeSpec, NodeRule, NodeState, ShardsSpec, WorkflowOrigin};
use crate::scheduler::{
    ApiToken, Attempt, AttemptOutcome, Checkpoint, Executor, FailoverPolicy, Overlap, PlacementStrategy, Preferences,
    Resources, RetryPolicy, Reuse, ScheduleCounters, ScheduleId, Shard, TaskId, TaskOrigin, TaskResult, TaskState,
    WorkerInfo, WorkerRegistration, WorkflowId, WorkflowState,
};

/// A task spec as format 6 wrote it: no `preemptible`.
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
    pub concurrency_key: Option<String>,
}

/// A workflow node's spec as format 6 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `NodeSpec` documents every field")]
pub struct NodeSpec {
    pub id: String,
    pub task: TaskSpec,
    pub depends: Vec<EdgeSpec>,
    pub trigger: NodeRule,
    pub shards: Option<ShardsSpec>,
}

/// A workflow spec as format 6 wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `WorkflowSpec` documents every field")]
pub struct WorkflowSpec {
    pub name: String,
    pub idempotency_key: Option<String>,
    pub nodes: Vec<NodeSpec>,
}

/// A workflow node as format 6 kept it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `Node` documents every field")]
pub struct Node {
    pub spec: NodeSpec,
    pub state: NodeState,
    pub tasks: Vec<TaskId>,
    pub ended: BTreeMap<u32, TaskState>,
    pub reason: Option<String>,
    pub parents: Vec<u32>,
    pub children: Vec<u32>,
    pub counted: Vec<u32>,
    pub inputs_from: Vec<u32>,
}

/// A workflow as format 6 kept it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy; today's `Workflow` documents every field")]
pub struct Workflow {
    pub id: WorkflowId,
    pub name: String,
    pub idempotency_key: Option<String>,
    pub origin: WorkflowOrigin,
    pub state: WorkflowState,
    pub nodes: Vec<Node>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub finished_ms: Option<u64>,
    pub version: u64,
    pub cancel_reason: Option<String>,
}

/// A schedule spec as format 6 wrote it.
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
    pub workflow: Option<Box<WorkflowSpec>>,
}

/// A schedule as format 6 wrote it.
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

/// A command as format 6 wrote it (`Forget` is format 7's, `Preempt` format 8's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs, reason = "frozen copy; today's `Command` documents every field")]
#[allow(clippy::large_enum_variant, reason = "the frozen shape of format 6; only decoded, then converted")]
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
        }
    }
}

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
            ..now::state::Parts::empty_additions()
        })
    }
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
            concurrency_key: s.concurrency_key,
            preemptible: None,
        }
    }
}

impl From<NodeSpec> for now::workflow::NodeSpec {
    fn from(n: NodeSpec) -> Self {
        now::workflow::NodeSpec {
            id: n.id,
            task: n.task.into(),
            depends: n.depends,
            trigger: n.trigger,
            shards: n.shards,
        }
    }
}

impl From<WorkflowSpec> for now::WorkflowSpec {
    fn from(w: WorkflowSpec) -> Self {
        now::WorkflowSpec {
            name: w.name,
            idempotency_key: w.idempotency_key,
            nodes: w.nodes.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Node> for now::workflow::Node {
    fn from(n: Node) -> Self {
        now::workflow::Node {
            spec: n.spec.into(),
            state: n.state,
            tasks: n.tasks,
            ended: n.ended,
            reason: n.reason,
            parents: n.parents,
            children: n.children,
            counted: n.counted,
            inputs_from: n.inputs_from,
        }
    }
}

impl From<Workflow> for now::Workflow {
    fn from(w: Workflow) -> Self {
        now::Workflow {
            id: w.id,
            name: w.name,
            idempotency_key: w.idempotency_key,
            origin: w.origin,
            state: w.state,
            nodes: w.nodes.into_iter().map(Into::into).collect(),
            created_ms: w.created_ms,
            updated_ms: w.updated_ms,
            finished_ms: w.finished_ms,
            version: w.version,
            cancel_reason: w.cancel_reason,
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
            workflow: s.workflow.map(|w| Box::new((*w).into())),
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

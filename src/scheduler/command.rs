//! The vocabulary between the cluster and the core: `Command` (replicated writes) with its
//! `Response`, and `Query` (local reads) with its `QueryResponse`.
//!
//! **`Command` is persisted.** Every committed log entry holds a postcard-encoded `Command`
//! behind a format version (`scheduler::format`). Changing a variant or a field of it, or of
//! anything it carries (`TaskSpec`, `WorkerRegistration`, …), is a new format version with an
//! explicit upgrade of the old shape; see "How to add a field or a command" in the README.
//! And an old entry must apply exactly as it first did: when a rule changes, the upgrade fills
//! a field that keeps the old rule for old entries (see [`Reuse`]).
//!
//! Rejections are data: a refused command is still committed and applied, and every replica
//! computes the same `Response::Rejected`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::limit::LimitView;
use super::result::ResultData;
use super::schedule::{Schedule, ScheduleId, ScheduleSpec};
use super::task::{AttemptId, AttemptOutcome, Task, TaskId, TaskSpec, TaskState};
use super::token::ApiToken;
use super::worker::{WorkerInfo, WorkerRegistration};
use super::workflow::{Workflow, WorkflowId, WorkflowSpec};

/// A replicated write. The leader stamps `now_ms`; apply never reads a clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "decoded once and consumed by apply; a Box would cost an allocation per submit"
)]
pub enum Command {
    /// Create one task.
    Submit {
        /// Client id + serial; a repeated request id returns the tasks of the first one.
        request_id: Option<String>,
        /// Leader time at proposal.
        now_ms: u64,
        /// The task (validated again by apply).
        spec: TaskSpec,
        /// What a reused idempotency key or request id does.
        reuse: Reuse,
    },
    /// Create many tasks at once; all or none (an invalid spec rejects the batch).
    SubmitBatch {
        /// Client id + serial; a repeated request id returns the tasks of the first one.
        request_id: Option<String>,
        /// Leader time at proposal.
        now_ms: u64,
        /// The tasks, answered in the same order.
        specs: Vec<TaskSpec>,
        /// What a reused idempotency key or request id does.
        reuse: Reuse,
    },
    /// Cancel a task: at once if no attempt is live, otherwise ask its worker to kill it.
    Cancel {
        /// Client id + serial; a repeated request id gets the first answer again.
        request_id: Option<String>,
        /// Leader time at proposal.
        now_ms: u64,
        /// The task to cancel.
        task_id: TaskId,
        /// Free text kept on the task.
        reason: Option<String>,
    },
    /// Register a worker, or refresh the record of a known one.
    RegisterWorker {
        /// Leader time at proposal.
        now_ms: u64,
        /// What the worker offers.
        worker: WorkerRegistration,
    },
    /// Commit the dispatcher's placement decisions; each pair is judged on its own.
    Assign {
        /// Leader time at proposal (also decides whether a `retry_wait` task is due).
        now_ms: u64,
        /// `(task, worker)` pairs. The fencing token of every new attempt is this entry's log index.
        assignments: Vec<(TaskId, String)>,
    },
    /// The worker started the process of the current attempt. Kept for entries written before
    /// `Reports` existed: workers now send `started` inside a `Reports` batch.
    AttemptStarted {
        /// Leader time at proposal.
        now_ms: u64,
        /// The task.
        task_id: TaskId,
        /// Fencing token of the attempt the worker runs.
        token: u64,
    },
    /// The current attempt saved progress.
    Checkpoint {
        /// Leader time at proposal.
        now_ms: u64,
        /// The task.
        task_id: TaskId,
        /// Fencing token of the attempt that wrote it.
        token: u64,
        /// The checkpoint bytes (at most `MAX_CHECKPOINT_BYTES`).
        data: Vec<u8>,
    },
    /// The current attempt ended (reported by its worker, or by the leader for timeouts).
    Complete {
        /// Leader time at proposal.
        now_ms: u64,
        /// The task.
        task_id: TaskId,
        /// Fencing token of the attempt that ended.
        token: u64,
        /// How it ended.
        outcome: AttemptOutcome,
        /// Process exit code, if it exited.
        exit_code: Option<i32>,
        /// Last output of the process (apply keeps the last `MAX_OUTPUT_TAIL_BYTES`).
        output_tail: String,
        /// Error message, if any.
        error: Option<String>,
        /// What the attempt wrote to `$TASKRAFT_RESULT_OUT` (format 5); kept only if the
        /// token is current, dropped (with a note in the error) past `MAX_RESULT_BYTES`.
        result: Option<Vec<u8>>,
    },
    /// Kept for entries written before `WorkerLostIncarnation` existed; the leader no longer
    /// proposes it. The worker is lost whatever its incarnation: its live attempts end as `lost`
    /// and their tasks follow their failover policy.
    WorkerLost {
        /// Leader time at proposal.
        now_ms: u64,
        /// The worker.
        worker_id: String,
    },
    /// Does nothing. Kept for old entries: nothing proposes it (a new leader commits openraft's
    /// own blank entry).
    Noop,
    /// An operator drains a worker: it keeps running its attempts but receives nothing new.
    DrainWorker {
        /// Leader time at proposal.
        now_ms: u64,
        /// The worker.
        worker_id: String,
    },
    /// An operator removes a worker: like `WorkerLost`, then the worker is marked removed.
    RemoveWorker {
        /// Leader time at proposal.
        now_ms: u64,
        /// The worker.
        worker_id: String,
    },
    /// A replica is being removed from the Raft cluster. Its id is remembered forever so that
    /// it can never join again (a replica reusing an old id could vote with a stale log).
    MemberRemoved {
        /// Leader time at proposal.
        now_ms: u64,
        /// The Raft node id of the replica.
        node_id: u64,
    },
    /// Several independent commands committed as one log entry (the leader coalesces
    /// concurrent client writes). Applied in order; each gets its own response. A nested
    /// `Many` is rejected.
    Many {
        /// The commands, in order.
        commands: Vec<Command>,
    },
    /// Like `WorkerLost`, but only for the incarnation the leader judged: if the worker has
    /// registered again since (its `registered_ms` changed), it is rejected and the new
    /// incarnation keeps its attempts. A lease expiry decided before a re-registration can
    /// otherwise commit after it and end the fresh attempts for nothing.
    WorkerLostIncarnation {
        /// Leader time at proposal.
        now_ms: u64,
        /// The worker.
        worker_id: String,
        /// `registered_ms` of the incarnation that was judged lost.
        registered_ms: u64,
    },
    /// One worker's batch of reports about its attempts (started, ended), applied in order.
    /// A report about an attempt that belongs to another worker is refused (`wrong_worker`).
    Reports {
        /// Leader time at proposal.
        now_ms: u64,
        /// The worker that sent them.
        worker_id: String,
        /// The reports, answered in the same order.
        reports: Vec<AttemptReport>,
    },
    /// Create a schedule (format 3). Boxed: a schedule is rare next to submits.
    CreateSchedule {
        /// Client id + serial; a repeated request id returns the first schedule.
        request_id: Option<String>,
        /// Leader time at proposal: the schedule catches up from here at most.
        now_ms: u64,
        /// The schedule (its calendar checked by the API, the rest again by apply).
        spec: Box<ScheduleSpec>,
        /// Create it paused (nothing fires until it is resumed).
        paused: bool,
    },
    /// Replace a schedule's spec; bumps its version, keeps its mark and runs. A task template
    /// and a workflow template replace each other only while the schedule has started no run.
    UpdateSchedule {
        /// Leader time at proposal.
        now_ms: u64,
        /// The schedule.
        id: ScheduleId,
        /// The new spec.
        spec: Box<ScheduleSpec>,
    },
    /// Stop firing until resumed.
    PauseSchedule {
        /// Leader time at proposal.
        now_ms: u64,
        /// The schedule.
        id: ScheduleId,
        /// Why, kept on the schedule.
        note: Option<String>,
    },
    /// Fire again; fires due while paused are missed, not caught up.
    ResumeSchedule {
        /// Leader time at proposal.
        now_ms: u64,
        /// The schedule.
        id: ScheduleId,
    },
    /// Start a run now, outside the calendar (`manual` origin), whatever the overlap policy.
    TriggerSchedule {
        /// Client id + serial; a repeated request id returns the first run.
        request_id: Option<String>,
        /// Leader time at proposal: the run's nominal time.
        now_ms: u64,
        /// The schedule.
        id: ScheduleId,
    },
    /// Start runs for past calendar times the leader computed (`backfill from..to`).
    BackfillSchedule {
        /// Leader time at proposal; no nominal time may be later.
        now_ms: u64,
        /// The schedule.
        id: ScheduleId,
        /// The version the times were computed for.
        version: u64,
        /// Nominal times; those that already have a run are skipped.
        nominal: Vec<u64>,
    },
    /// Forget a schedule; its runs (tasks or workflows) stay and are cancelled only if asked.
    DeleteSchedule {
        /// Leader time at proposal.
        now_ms: u64,
        /// The schedule.
        id: ScheduleId,
        /// Also cancel its live runs.
        cancel_runs: bool,
    },
    /// The leader's calendar says these nominal times are due. Integer-only in apply: see
    /// [`super::schedule`].
    FireSchedule {
        /// Leader time at proposal; a nominal time later than this is refused.
        now_ms: u64,
        /// The schedule.
        id: ScheduleId,
        /// The version the times were planned for; an older one is refused.
        version: u64,
        /// Nominal times to fire; those at or below the mark are ignored.
        nominal: Vec<u64>,
        /// The new mark: everything up to here is decided.
        advance_to: u64,
        /// Due times the catch-up policy gave up.
        missed: u64,
    },
    /// Keep an API token's record (format 4). The API made the secret and hashed it.
    CreateToken {
        /// Leader time at proposal.
        now_ms: u64,
        /// The record; its `created_ms` is the leader's time.
        token: ApiToken,
    },
    /// Forget an API token (format 4): requests carrying it are refused from then on.
    RevokeToken {
        /// Leader time at proposal.
        now_ms: u64,
        /// The token's key or name.
        key_or_name: String,
    },
    /// A checkpoint sent with a worker token (format 4): refused unless the attempt is that
    /// worker's, so that a worker can only write its own attempts' progress.
    WorkerCheckpoint {
        /// Leader time at proposal.
        now_ms: u64,
        /// The worker the token speaks for.
        worker_id: String,
        /// The task.
        task_id: TaskId,
        /// Fencing token of the attempt.
        token: u64,
        /// The checkpoint bytes.
        data: Vec<u8>,
    },
    /// Create a workflow and start its root nodes (format 6). Boxed: rare next to submits.
    SubmitWorkflow {
        /// Client id + serial; a repeated request id returns the first workflow.
        request_id: Option<String>,
        /// Leader time at proposal.
        now_ms: u64,
        /// The DAG (validated by the API, again by apply).
        spec: Box<WorkflowSpec>,
    },
    /// Cancel a workflow (format 6): waiting nodes are cancelled, live tasks asked to stop.
    CancelWorkflow {
        /// Leader time at proposal.
        now_ms: u64,
        /// The workflow.
        id: WorkflowId,
        /// Free text kept on the workflow and its cancelled tasks.
        reason: Option<String>,
    },
    /// Set (or with `None` remove) a cluster-wide concurrency limit (format 6).
    SetLimit {
        /// Leader time at proposal.
        now_ms: u64,
        /// The concurrency key.
        key: String,
        /// Most tasks with this key whose attempts may be live at once.
        max_running: Option<u32>,
    },
    /// Retention (format 7): forget finished tasks and settled workflows, oldest first, that
    /// finished before `before_ms` or exceed `keep`; at most `max` tasks (see `retention`).
    Forget {
        /// Leader time at proposal.
        now_ms: u64,
        /// Records that finished before this are forgotten.
        before_ms: u64,
        /// Older records are forgotten too while more finished tasks than this remain.
        keep: u64,
        /// Most tasks to forget in this command (bounded by `MAX_FORGET_PER_COMMAND`).
        max: u32,
    },
    /// Ask running attempts of lower priority to stop so that `for_task` fits (format 8).
    /// Apply re-checks every victim against `rules` and marks those that pass (their tokens
    /// stay current, so a final checkpoint during the grace is accepted); the others are
    /// skipped. Nothing is marked unless `for_task` still waits to be placed.
    Preempt {
        /// Leader time at proposal: minimum runtimes and the hourly cap are judged at it.
        now_ms: u64,
        /// The waiting task that needs the room.
        for_task: TaskId,
        /// The attempts to stop, in the leader's victim order.
        victims: Vec<AttemptId>,
        /// The cluster's preemption rules when the leader decided (its options, carried so
        /// that every replica judges with the same ones).
        rules: super::preempt::PreemptRules,
    },
    /// Stop the live attempt `attempt` on the overloaded worker `from` so that its task resumes
    /// from its checkpoint on `to` (format 9). The leader decided from load reports (never
    /// replicated, summed up in `why`); apply re-checks what the state can tell (see
    /// `scheduler::migrate`) and records the mark, or rejects the whole command.
    Migrate {
        /// Leader time at proposal: minimum runtime and the hourly cap are judged at it.
        now_ms: u64,
        /// The attempt to stop.
        attempt: AttemptId,
        /// The overloaded worker it runs on.
        from: String,
        /// The under-loaded worker the task should resume on (a placement hint).
        to: String,
        /// The leader's reason, for people (`cpu 0.97 for 3 heartbeats; b at cpu 0.10`).
        why: String,
        /// The cluster's migration rules when the leader decided.
        rules: super::migrate::MigrateRules,
    },
}

/// What a submit does when its idempotency key or request id was used before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reuse {
    /// Answer with the first use's tasks, whatever this request's body says. How format 1
    /// applied every submit; upgraded entries keep it so that they replay as they first did.
    AnyBody,
    /// Answer with the first use's tasks only for the same body; a different body is refused
    /// with `idempotency_mismatch` and changes nothing (Stripe's rule). What the API proposes.
    SameBody,
}

/// One report of a worker about one of its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptReport {
    /// The attempt.
    pub attempt: AttemptId,
    /// What happened to it.
    pub event: AttemptEvent,
}

/// What a worker reports about an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptEvent {
    /// The process started (same as `AttemptStarted`).
    Started,
    /// The attempt ended (same as `Complete`).
    Ended {
        /// How it ended.
        outcome: AttemptOutcome,
        /// Process exit code, if it exited.
        exit_code: Option<i32>,
        /// Last output of the process.
        output_tail: String,
        /// Error message, if any.
        error: Option<String>,
        /// What the attempt wrote to `$TASKRAFT_RESULT_OUT`, if anything (format 5). Absent
        /// in JSON from workers older than results: no result.
        #[serde(default)]
        result: Option<ResultData>,
    },
}

/// Why a command changed nothing. Identical on every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The task or worker does not exist (HTTP 404).
    NotFound,
    /// The task or worker is in a state that does not allow this (HTTP 409).
    InvalidTransition,
    /// The token is not the current live attempt's: the sender must stop (HTTP 409).
    StaleToken,
    /// This exact report was already applied (the attempt with this token has ended); a
    /// retrying worker may treat it as success.
    Duplicate,
    /// The input breaks a rule; the message names the field (HTTP 400/422).
    Invalid,
    /// The worker is draining, lost or removed.
    WorkerUnavailable,
    /// The worker has no free slot.
    WorkerFull,
    /// The worker lacks a label the task requires.
    ConstraintMismatch,
    /// An idempotency key or request id was reused with a different body (HTTP 409).
    IdempotencyMismatch,
    /// A worker reported on an attempt that belongs to another worker (HTTP 409).
    WrongWorker,
    /// A schedule command planned for an older version of the schedule (HTTP 409).
    StaleVersion,
    /// The task's concurrency key is at its limit: it waits for a permit.
    LimitReached,
    /// The task or workflow finished longer ago than the retention horizon and was forgotten
    /// (HTTP 404).
    Forgotten,
}

impl RejectCode {
    /// The snake_case name used in JSON errors.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::NotFound => "not_found",
            RejectCode::InvalidTransition => "invalid_transition",
            RejectCode::StaleToken => "stale_token",
            RejectCode::Duplicate => "duplicate",
            RejectCode::Invalid => "invalid",
            RejectCode::WorkerUnavailable => "worker_unavailable",
            RejectCode::WorkerFull => "worker_full",
            RejectCode::ConstraintMismatch => "constraint_mismatch",
            RejectCode::IdempotencyMismatch => "idempotency_mismatch",
            RejectCode::WrongWorker => "wrong_worker",
            RejectCode::StaleVersion => "stale_version",
            RejectCode::LimitReached => "limit_reached",
            RejectCode::Forgotten => "forgotten",
        }
    }
}

/// A refused command: a code for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Machine-readable reason.
    pub code: RejectCode,
    /// What went wrong, naming the task, worker or field.
    pub message: String,
}

impl Rejection {
    /// A new rejection.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Rejection { code, message: message.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Rejection {}

/// One task of a submit answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedTask {
    /// False when the idempotency key or request id was already known: `task` is the existing one.
    pub created: bool,
    /// The task as it is after this command: shared with the state (every replica applies
    /// every submit, and only the leader's answer is read), so building the answer copies no
    /// task.
    pub task: std::sync::Arc<Task>,
}

/// A small view of a task for answers to workers (no spec, no checkpoint bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskStatus {
    /// The task.
    #[schema(value_type = u64)]
    pub id: TaskId,
    /// Its state after the command.
    pub state: TaskState,
    /// Its version after the command.
    pub version: u64,
    /// Number of the current attempt (0 if none).
    pub attempt: u32,
    /// Fencing token of the current attempt, if any.
    pub token: Option<u64>,
    /// The worker should kill the attempt.
    pub cancel_requested: bool,
}

impl TaskStatus {
    /// The status of `task`.
    pub fn of(task: &Task) -> Self {
        TaskStatus {
            id: task.id,
            state: task.state,
            version: task.version,
            attempt: task.current_attempt().map_or(0, |a| a.number),
            token: task.current_attempt().map(|a| a.fencing_token),
            cancel_requested: task.cancel_requested,
        }
    }
}

/// The verdict on one `(task, worker)` pair of an `Assign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignResult {
    /// The task.
    pub task_id: TaskId,
    /// The worker.
    pub worker_id: String,
    /// Whether the attempt was created.
    pub outcome: AssignOutcome,
}

/// Whether one assignment took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant, reason = "short-lived answer; the common variant is the large one")]
pub enum AssignOutcome {
    /// A new attempt exists; `task` is what the worker's inbox should receive.
    Assigned {
        /// Number of the new attempt.
        attempt: u32,
        /// Its fencing token (the log index of this command).
        token: u64,
        /// The task after the assignment (spec and checkpoint included).
        task: Task,
    },
    /// Nothing changed for this pair.
    Rejected(Rejection),
}

/// The answer to a `Command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Answer to `Submit` (one entry) and `SubmitBatch` (one per spec, in order).
    Submitted {
        /// The tasks, with whether each was created by this command.
        tasks: Vec<SubmittedTask>,
    },
    /// Answer to `Cancel`: terminal `cancelled`, or `cancel_requested` while an attempt is live.
    Cancelled {
        /// The task after the command.
        task: Task,
    },
    /// Answer to `RegisterWorker`, `WorkerLost`, `WorkerLostIncarnation`, `DrainWorker`, `RemoveWorker`.
    Worker {
        /// The worker after the command.
        worker: WorkerInfo,
        /// Tasks whose live attempt this command ended, in id order.
        affected: Vec<TaskStatus>,
    },
    /// Answer to `Assign`, one result per pair, in order.
    Assigned {
        /// The verdicts.
        results: Vec<AssignResult>,
    },
    /// Answer to `AttemptStarted`.
    AttemptStarted {
        /// The task after the command.
        status: TaskStatus,
    },
    /// Answer to `Checkpoint`; `status.cancel_requested` tells the worker to stop.
    CheckpointSaved {
        /// The task after the command.
        status: TaskStatus,
    },
    /// Answer to `Complete`.
    Completed {
        /// The task after the command (terminal, `retry_wait` or `pending`).
        task: Task,
    },
    /// Answer to `Noop`.
    Noop,
    /// The command changed nothing.
    Rejected(Rejection),
    /// Answer to `Many`: one response per command, in order.
    Many {
        /// The responses.
        responses: Vec<Response>,
    },
    /// Answer to `Reports`: per report, in order, `AttemptStarted`, `Completed` or `Rejected`.
    Reports {
        /// The verdicts.
        results: Vec<Response>,
    },
    /// Answer to the schedule commands but delete.
    Schedule {
        /// The schedule after the command.
        schedule: Box<Schedule>,
        /// True when `CreateSchedule` created it (false: known request id or idempotency key).
        created: bool,
        /// Runs this command started, in nominal order: task ids, or workflow ids for a
        /// workflow schedule.
        started: Vec<TaskId>,
    },
    /// Answer to `DeleteSchedule`.
    ScheduleDeleted {
        /// The schedule as it was.
        schedule: Box<Schedule>,
        /// Live runs cancelled (or asked to stop) with it: task ids, or workflow ids for a
        /// workflow schedule.
        cancelled: Vec<TaskId>,
    },
    /// Answer to `CreateToken`.
    Token {
        /// The record kept.
        token: ApiToken,
        /// False when the same record was already kept (a retried proposal).
        created: bool,
    },
    /// Answer to `RevokeToken`.
    TokenRevoked {
        /// The record as it was.
        token: ApiToken,
    },
    /// Answer to `SubmitWorkflow` and `CancelWorkflow`.
    Workflow {
        /// The workflow after the command.
        workflow: Box<Workflow>,
        /// True when `SubmitWorkflow` created it (false: a known request id or idempotency key).
        created: bool,
    },
    /// Answer to `SetLimit`.
    Limit {
        /// The limit after the command.
        limit: LimitView,
    },
    /// Answer to `Forget`: what was forgotten.
    Forgot {
        /// Tasks removed (workflow tasks included).
        tasks: u64,
        /// Workflows removed.
        workflows: u64,
        /// Records still due were left for the next command (the budget ran out).
        more: bool,
    },
    /// Answer to `Preempt`.
    Preempted {
        /// The attempts marked to stop, in the order given.
        marked: Vec<AttemptId>,
        /// The attempts skipped, each with why, in the order given.
        skipped: Vec<(AttemptId, String)>,
    },
    /// Answer to `Migrate`: the attempt is marked to stop and requeue towards `mark.to`.
    Migrating {
        /// The attempt marked.
        attempt: AttemptId,
        /// The mark recorded.
        mark: super::migrate::MigrateMark,
    },
}

/// A read of the local state. Not replicated: linearizability comes from ReadIndex around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// One task.
    GetTask {
        /// The task.
        id: TaskId,
    },
    /// A page of tasks in id order, optionally of one state.
    ListTasks {
        /// Only tasks in this state.
        state: Option<TaskState>,
        /// Cursor: only ids greater than this (the previous page's `next_cursor`).
        after: Option<TaskId>,
        /// Page size; 0 means `DEFAULT_LIST_LIMIT`, larger than `MAX_LIST_LIMIT` is clamped.
        limit: u32,
    },
    /// Counters, answered in O(1).
    Stats,
    /// Every worker, in id order.
    ListWorkers,
    /// One schedule.
    GetSchedule {
        /// The schedule.
        id: ScheduleId,
    },
    /// Every schedule, in id order.
    ListSchedules,
    /// A page of a schedule's runs in nominal order (`Tasks`, or `Workflows` for a workflow
    /// schedule; the cursor is a nominal time), or `Schedule(None)` for an unknown schedule.
    ScheduleRuns {
        /// The schedule.
        id: ScheduleId,
        /// Only runs with a nominal time after this.
        after: Option<u64>,
        /// Page size, as in `ListTasks`.
        limit: u32,
    },
    /// One workflow.
    GetWorkflow {
        /// The workflow.
        id: WorkflowId,
    },
    /// A page of workflows in id order.
    ListWorkflows {
        /// Cursor: only ids greater than this.
        after: Option<WorkflowId>,
        /// Page size, as in `ListTasks`.
        limit: u32,
    },
    /// Every concurrency limit and every key in use.
    ListLimits,
}

/// Counts of tasks per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateCounts {
    /// Tasks in `pending`.
    pub pending: u64,
    /// Tasks in `blocked`.
    pub blocked: u64,
    /// Tasks in `assigned`.
    pub assigned: u64,
    /// Tasks in `running`.
    pub running: u64,
    /// Tasks in `retry_wait`.
    pub retry_wait: u64,
    /// Tasks in `succeeded`.
    pub succeeded: u64,
    /// Tasks in `failed`.
    pub failed: u64,
    /// Tasks in `cancelled`.
    pub cancelled: u64,
}

impl StateCounts {
    /// The counter of `state`.
    pub fn get(&self, state: TaskState) -> u64 {
        match state {
            TaskState::Pending => self.pending,
            TaskState::Blocked => self.blocked,
            TaskState::Assigned => self.assigned,
            TaskState::Running => self.running,
            TaskState::RetryWait => self.retry_wait,
            TaskState::Succeeded => self.succeeded,
            TaskState::Failed => self.failed,
            TaskState::Cancelled => self.cancelled,
        }
    }

    pub(crate) fn get_mut(&mut self, state: TaskState) -> &mut u64 {
        match state {
            TaskState::Pending => &mut self.pending,
            TaskState::Blocked => &mut self.blocked,
            TaskState::Assigned => &mut self.assigned,
            TaskState::Running => &mut self.running,
            TaskState::RetryWait => &mut self.retry_wait,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        }
    }
}

/// Answer to `Query::Stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stats {
    /// Tasks per state.
    pub counts: StateCounts,
    /// All tasks.
    pub total: u64,
    /// The id the next created task will get.
    #[schema(value_type = u64)]
    pub next_task_id: TaskId,
    /// Log index of the last command applied.
    pub last_applied_index: u64,
    /// Workers in state `active`.
    pub active_workers: u64,
    /// Workers known in any state.
    pub workers: u64,
}

/// The answer to a `Query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant, reason = "short-lived answer, built once per read")]
pub enum QueryResponse {
    /// Answer to `GetTask`.
    Task(Option<Task>),
    /// Answer to `ListTasks`.
    Tasks {
        /// The page, in id order.
        tasks: Vec<Task>,
        /// Pass as `after` for the next page; `None` on the last page.
        next_cursor: Option<TaskId>,
    },
    /// Answer to `Stats`.
    Stats(Stats),
    /// Answer to `ListWorkers`.
    Workers {
        /// Every worker, in id order.
        workers: Vec<WorkerInfo>,
    },
    /// Answer to `GetSchedule`.
    Schedule(Option<Box<Schedule>>),
    /// Answer to `ListSchedules`.
    Schedules {
        /// In id order.
        schedules: Vec<Schedule>,
    },
    /// Answer to `GetWorkflow`.
    Workflow(Option<Box<Workflow>>),
    /// Answer to `ListWorkflows`.
    Workflows {
        /// The page, in id order.
        workflows: Vec<Workflow>,
        /// Pass as `after` for the next page; `None` on the last page.
        next_cursor: Option<WorkflowId>,
    },
    /// Answer to `ListLimits`.
    Limits {
        /// In key order.
        limits: Vec<LimitView>,
    },
}

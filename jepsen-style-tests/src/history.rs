//! What a run records: the shared vocabulary of the workload, the nemesis, the checkers and the
//! report.
//!
//! A run writes these files, each one JSON value per line (`final.json`, `schedules.json` and
//! `workflows.json` are one document each):
//! 1. `history.jsonl` — [`Op`]s: every client operation as an `invoke` followed by exactly one
//!    completion (`ok`, `fail` = definitely did not happen, `info` = indeterminate, may or may not
//!    have happened), and every nemesis action as an `info` pair (start, then stop).
//! 2. `sink.jsonl` — [`SinkEvent`]s: what the task processes themselves reported while running
//!    (attempt start with the checkpoint they resumed from, every checkpoint they wrote, completion).
//!    These are physical side effects, recorded whether or not taskraft accepted them.
//! 3. `leaders.jsonl` — [`LeaderObs`]: each replica's own view of (term, leader), polled often.
//! 4. `final.json` — [`FinalState`]: every task as read from the healed cluster after the quiet
//!    period.
//! 5. `schedules.json` — [`ScheduleRecord`]: the schedules the harness created, what polls saw of
//!    them during the run, and every run of each as read after the heal.
//! 6. `workflows.json` — [`WorkflowRecord`]: the concurrency limit, the workflows the harness
//!    submitted, and each one as read after the heal.
//!
//! Times are nanoseconds since the run started, on the harness's monotonic clock, so they order
//! events across every file. Task counters travel as decimal text in the checkpoint files; here
//! they are already parsed.

use serde::Deserialize;
use serde::Serialize;

/// Jepsen's completion types. A checker must read `Info` as "maybe", never as "no".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpType {
    /// The operation was sent.
    Invoke,
    /// It took effect.
    Ok,
    /// It definitely did not take effect (a 4xx validation answer, a refused connection).
    Fail,
    /// It may or may not have taken effect (timeout, 504 `outcome_unknown`, connection lost).
    Info,
}

/// Who performed an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Process {
    /// Client number `n` (one operation at a time per client).
    Client(u32),
    /// The fault injector.
    Nemesis,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history (0, 1, 2, … in the order lines were written).
    pub index: u64,
    /// Nanoseconds since the run started.
    pub time_ns: u64,
    /// Who did it; an invoke and its completion have the same process.
    pub process: Process,
    /// The replica the request was sent to (its node id), if any.
    pub node: Option<u64>,
    /// `invoke`, `ok`, `fail` or `info`.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// What was done, with its value (`f` + `value` in the JSON).
    #[serde(flatten)]
    pub body: Body,
    /// Why it failed or is indeterminate (HTTP status + error code, or the transport error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The operation and its value. Serialized as `"f": "<name>", "value": {…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "f", content = "value", rename_all = "snake_case")]
pub enum Body {
    /// Submit a task with an idempotency key.
    Submit(SubmitValue),
    /// Read one task's state.
    Read(ReadValue),
    /// Cancel a task.
    Cancel(CancelValue),
    /// A fault started or stopped.
    Nemesis(NemesisValue),
}

/// Value of a `submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitValue {
    /// Idempotency key, unique per logical submission (a client retrying after `info` reuses it in
    /// a new operation).
    pub key: String,
    /// Task id from the answer; only on `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<u64>,
}

/// Value of a `read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadValue {
    /// The task read.
    pub task_id: u64,
    /// What was seen; only on `ok`. An `ok` with `None` means the replica answered 404: code
    /// `not_found` (never existed) unless `forgotten` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<TaskRead>,
    /// On an `ok` without `seen`: the 404 carried code `forgotten`, so the task existed, ended
    /// and retention removed it. Absent (false) on a `not_found` 404 and in histories recorded
    /// before retention.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forgotten: bool,
}

/// What an `ok` read answered, one of three distinct outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAnswer<'a> {
    /// 200 with the task.
    Seen(&'a TaskRead),
    /// 404 `not_found`: no such task (an id never allocated, as far as that replica knows).
    NotFound,
    /// 404 `forgotten`: the task existed, was terminal, and retention forgot it.
    Forgotten,
}

impl ReadValue {
    /// A read value as recorded at invoke time (nothing seen yet).
    pub fn invoke(task_id: u64) -> Self {
        Self { task_id, seen: None, forgotten: false }
    }

    /// The outcome of an `ok` read with this value.
    pub fn answer(&self) -> ReadAnswer<'_> {
        match (&self.seen, self.forgotten) {
            (Some(s), _) => ReadAnswer::Seen(s),
            (None, true) => ReadAnswer::Forgotten,
            (None, false) => ReadAnswer::NotFound,
        }
    }
}

/// A task as one read saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRead {
    /// The task's version (1 at creation, +1 on every change).
    pub version: u64,
    /// Its state name (`pending`, `running`, `succeeded`, …).
    pub state: String,
    /// Number of attempts so far.
    pub attempts: u32,
    /// Fencing token of the attempt that ended the task (terminal tasks with an attempt only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_token: Option<u64>,
    /// The committed checkpoint's counter, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<u64>,
    /// The fencing token the committed checkpoint was saved under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_token: Option<u64>,
    /// Fencing tokens of every attempt, oldest first (empty in histories recorded before this
    /// field existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempt_tokens: Vec<u64>,
}

impl TaskRead {
    /// True for `succeeded`, `failed` and `cancelled`.
    pub fn is_terminal(&self) -> bool {
        is_terminal_state(&self.state)
    }
}

/// True for the state names a task never leaves.
pub fn is_terminal_state(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

/// Value of a `cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelValue {
    /// The task to cancel.
    pub task_id: u64,
    /// State named in the answer; only on `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Value of a nemesis operation: `invoke` when the fault starts, `info` when it has been applied,
/// and again `invoke`/`info` with `stop` for the heal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisValue {
    /// Family: `kill`, `pause`, `partition`, `loss`, `membership`, `clock`, `worker-kill`,
    /// `worker-pause`.
    pub fault: String,
    /// `start` or `stop`.
    pub phase: String,
    /// Human-readable detail ("kill leader n2", "partition {1} | {2,3}").
    pub detail: String,
}

/// One line of `sink.jsonl`: a task process reporting what it physically did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkEvent {
    /// Nanoseconds since the run started, stamped by the sink when the line arrived.
    pub time_ns: u64,
    /// `TASKRAFT_TASK_ID`.
    pub task_id: u64,
    /// `TASKRAFT_ATTEMPT`.
    pub attempt: u32,
    /// `TASKRAFT_FENCING_TOKEN`.
    pub token: u64,
    /// What happened.
    pub event: SinkKind,
    /// Who the process was, for a workflow task ([`crate::workflows`]); absent on the counter
    /// tasks and in sink files recorded before the workflow workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wf: Option<WfTag>,
}

/// What a workflow task (`taskraft-jepsen wf-task`) tells the sink about itself, on every line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WfTag {
    /// The workflow's name (also its idempotency key), from the task's command line.
    pub workflow: String,
    /// The node, from the task's command line.
    pub node: String,
    /// `TASKRAFT_SHARD_INDEX`, for a shard of a sharded node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// `JEPSEN_WORKER`: the worker process that started it (its environment reaches the task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// On a reduce's `start` line: what it found in `$TASKRAFT_INPUTS_DIR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<InputsSeen>,
    /// On a `done` line: the result it wrote to `$TASKRAFT_RESULT_OUT` before exiting 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// What a reduce found in `$TASKRAFT_INPUTS_DIR` when it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputsSeen {
    /// False when the variable was not set at all (a worker that does not write inputs).
    pub dir: bool,
    /// Every file below the directory, by path relative to it (`map/3`), in name order.
    pub files: Vec<InputFile>,
    /// More files than the task records were there (the rest are not listed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One file of `$TASKRAFT_INPUTS_DIR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Relative path, `/`-separated (`map/3`).
    pub path: String,
    /// Its content (lossy UTF-8, cut at [`crate::sink::MAX_INPUT_BYTES`]).
    pub text: String,
}

/// What a task process reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// The process started; `from` is the counter read from `TASKRAFT_CHECKPOINT_IN` (0 if absent).
    Start {
        /// Counter the attempt resumed from.
        from: u64,
    },
    /// The process wrote checkpoint `n` to `TASKRAFT_CHECKPOINT_OUT`.
    Checkpoint {
        /// The counter written.
        n: u64,
    },
    /// The process reached its last step and is about to exit 0.
    Done {
        /// The final counter.
        n: u64,
    },
    /// The process is about to exit with this non-zero code (a workflow task told to fail).
    Exit {
        /// The exit code.
        code: i32,
    },
}

/// One line of `leaders.jsonl`: replica `node`'s `/v1/cluster` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderObs {
    /// When the answer arrived.
    pub time_ns: u64,
    /// The replica asked.
    pub node: u64,
    /// Its current term.
    pub term: u64,
    /// `leader`, `follower`, `candidate`, `learner`.
    pub role: String,
    /// The leader it knows for that term, if any.
    pub leader_id: Option<u64>,
}

/// `final.json`: the cluster after healing and the quiet period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalState {
    /// False when the final read could not be completed (no leader after heal, …): checkers that
    /// need it then answer `unknown`.
    pub complete: bool,
    /// Every task in the cluster, by id.
    pub tasks: Vec<FinalTask>,
    /// Every id below the highest id known to the run (listed, or named by the history, the
    /// sink or a schedule poll) that the listing lacked and that `GET /v1/tasks/{id}` on the
    /// same replica answered 404 `forgotten`: tasks retention removed. Sorted. Empty in final
    /// states recorded before retention (nothing was ever forgotten then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forgotten: Vec<u64>,
}

impl FinalState {
    /// An incomplete final state (the read failed).
    pub fn incomplete() -> Self {
        Self { complete: false, tasks: Vec::new(), forgotten: Vec::new() }
    }

    /// True when the final read found `task_id` forgotten.
    pub fn is_forgotten(&self, task_id: u64) -> bool {
        self.forgotten.binary_search(&task_id).is_ok()
    }
}

/// `replicas.json`: the same final read made on every member replica on its own (each read is
/// linearizable, so a member first catches up). Only meaningful once the cluster is quiet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaViews {
    /// False when the cluster was still busy after the heal (views may differ legitimately):
    /// the replicas checker then answers `unknown`.
    pub quiet: bool,
    /// Each member's view, by node id.
    pub views: Vec<(u64, FinalState)>,
}

/// One task in the final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalTask {
    /// Task id.
    pub task_id: u64,
    /// Its idempotency key.
    pub key: Option<String>,
    /// Final state name.
    pub state: String,
    /// Final version.
    pub version: u64,
    /// Every attempt, oldest first.
    pub attempts: Vec<FinalAttempt>,
    /// The committed checkpoint's counter and the token it was committed under.
    pub checkpoint: Option<(u64, u64)>,
    /// Set on a schedule's run (the cluster created it, no client submitted it); absent on a
    /// client's task and in final states recorded before the schedule workload existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<RunOrigin>,
    /// Set on a workflow's task (the cluster created it when its node started); absent on a
    /// client's task and in final states recorded before the workflow workload existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowRef>,
    /// Its priority (absent in final states recorded before the preemption workload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Its spec's `preemptible`, when it says (absent: the priority decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptible: Option<bool>,
    /// The attempts of other tasks this task preempted, as `(task, token)` (its `preempted`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preempted: Vec<(u64, u64)>,
}

/// Where a workflow task belongs: `spec.origin` `{"workflow", "node"}` and `spec.shard.index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkflowRef {
    /// The workflow's id.
    pub workflow: u64,
    /// The node's position in the workflow's `nodes`.
    pub node: u32,
    /// The shard index, for a shard of a sharded node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
}

/// `"origin"` of a schedule's run: `{"schedule", "nominal_ms", "manual"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOrigin {
    /// The schedule.
    pub schedule: u64,
    /// The nominal fire time (ms since the epoch); for a manual trigger, the trigger's time.
    pub nominal_ms: u64,
    /// Started by `trigger` rather than by the calendar (or a backfill).
    #[serde(default)]
    pub manual: bool,
}

/// One attempt of a task in the final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalAttempt {
    /// 1-based number.
    pub number: u32,
    /// Worker it ran on.
    pub worker: String,
    /// Its fencing token.
    pub token: u64,
    /// `succeeded`, `failed`, `lost`, `timed_out`, `cancelled`, `preempted`, or `None` while live.
    pub outcome: Option<String>,
}

/// `schedules.json`: the schedule workload of a run (see [`crate::schedules`]). Times named
/// `wall_ms` are the harness's own wall clock (ms since the epoch; never faked), so they can be
/// set against nominal times; every other `_ms` is a cluster stamp (the leader's wall clock).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// Fault families of the run: with `clock`, the leaders' stamps are not comparable and the
    /// checker only measures what it would otherwise judge by them.
    pub nemesis: Vec<String>,
    /// Every schedule the harness asked for, in creation order.
    pub schedules: Vec<ScheduleLog>,
    /// True once every created schedule was paused after the heal (acknowledged): the final
    /// reads then see calendars that no longer move.
    pub paused: bool,
    /// Harness wall clock when the pause was acknowledged for the last schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_wall_ms: Option<u64>,
    /// What the polls during the run saw of each schedule (`GET /v1/schedules`, linearizable).
    pub polls: Vec<SchedulePoll>,
}

/// One schedule of the workload, from its creation to the final read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleLog {
    /// Name (also its idempotency key).
    pub name: String,
    /// The body of `POST /v1/schedules`.
    pub request: serde_json::Value,
    /// Create requests sent (retries reuse the idempotency key).
    pub create_attempts: u32,
    /// The id, once a create was acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Its `created_ms` (the leader's clock; the interval grid's anchor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<u64>,
    /// Harness wall clock when the acknowledged create was sent and answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_wall_ms: Option<(u64, u64)>,
    /// Harness wall clock when the first pause request was sent and when one was acknowledged:
    /// the calendar stopped in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_wall_ms: Option<(u64, u64)>,
    /// The last create error, if no create was acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_error: Option<String>,
    /// Each run as the polls first saw it.
    pub first_seen: Vec<SeenRun>,
    /// `GET /v1/schedules/{id}` at the end, before the runs were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_view: Option<ScheduleSeen>,
    /// `GET /v1/tasks?schedule={id}` at the end, every page (`None` if any page failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_runs: Option<Vec<RunTask>>,
    /// `GET /v1/schedules/{id}` again, after the runs were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_view_after: Option<ScheduleSeen>,
    /// Runs the polls saw (`first_seen`) that the final runs read lacked and that
    /// `GET /v1/tasks/{id}` then answered 404 `forgotten` (read between the runs and
    /// `final_view_after`). Sorted. `None` when a probe failed or in records made before
    /// retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_runs: Option<Vec<u64>>,
}

/// A schedule as one read saw it (the fields the checker needs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSeen {
    /// Its id.
    pub id: u64,
    /// The interval (interval schedules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// `start`, if one was given (the grid's anchor then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// `skip`, `fire_once` or `all`.
    pub catch_up: String,
    /// How far back catch-up reaches.
    pub catch_up_window_ms: u64,
    /// `forbid`, `allow`, `replace` or `buffer_one`.
    pub overlap: String,
    /// Creation time (leader clock).
    pub created_ms: u64,
    /// Paused?
    pub paused: bool,
    /// The high-water mark: every calendar time at or below it is decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_nominal_ms: Option<u64>,
    /// fired / missed / skipped / dropped / triggered / backfilled / replaced.
    pub counters: ScheduleCounts,
    /// Runs not yet terminal.
    pub live_runs: Vec<u64>,
    /// Runs ever started.
    pub runs: u64,
}

/// A schedule's counters (`counters` in its JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleCounts {
    /// Calendar fires that started a run.
    pub fired: u64,
    /// Due fires given up by the catch-up policy (or while paused).
    pub missed: u64,
    /// Fires not started because a run was live (`forbid`).
    pub skipped: u64,
    /// Fires dropped by a full `buffer_one`.
    pub dropped: u64,
    /// Runs started by `trigger`.
    pub triggered: u64,
    /// Runs started by `backfill`.
    pub backfilled: u64,
    /// Live runs cancelled by `replace`.
    pub replaced: u64,
}

/// One run of a schedule as the final read saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTask {
    /// Task id (allocated in log order: a larger id was created later).
    pub task_id: u64,
    /// Its origin.
    pub origin: Option<RunOrigin>,
    /// State name.
    pub state: String,
    /// Version.
    pub version: u64,
    /// When the fire that created it was committed (the proposing leader's clock).
    pub created_ms: u64,
    /// When it became terminal (leader clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Its attempts, oldest first.
    pub attempts: Vec<RunAttempt>,
}

/// One attempt of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAttempt {
    /// Fencing token: the log index of the assignment.
    pub token: u64,
    /// When the assignment was committed (leader clock).
    pub assigned_ms: u64,
    /// When the worker reported the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// Outcome, `None` while live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// A run the first time a poll saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenRun {
    /// Task id.
    pub task_id: u64,
    /// Its nominal time.
    pub nominal_ms: u64,
    /// A manual run?
    pub manual: bool,
    /// Its `created_ms` (leader clock).
    pub created_ms: u64,
    /// Harness wall clock when the read that first showed it was sent.
    pub read_sent_wall_ms: u64,
    /// Harness wall clock when that read was answered: the run was committed by then.
    pub seen_wall_ms: u64,
}

/// One schedule in one poll of `GET /v1/schedules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulePoll {
    /// Harness wall clock when the answer arrived.
    pub wall_ms: u64,
    /// The replica asked.
    pub node: u64,
    /// The schedule.
    pub schedule: u64,
    /// Its live runs then.
    pub live_runs: Vec<u64>,
    /// Its mark then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_nominal_ms: Option<u64>,
}

/// `workflows.json`: the workflow workload of a run (see [`crate::workflows`]). Times named
/// `_ns` are the harness's monotonic clock since the run started, like every other file's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    /// The concurrency limit set before any workflow was submitted.
    pub limit: LimitLog,
    /// Every workflow the harness asked for, in submission order.
    pub workflows: Vec<WorkflowLog>,
    /// Every workflow `GET /v1/workflows` listed at the end (`None` when no member answered
    /// every page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<Vec<WorkflowListed>>,
    /// `GET /v1/limits/{key}` during the load (linearizable reads; only while the limit is set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limit_polls: Vec<LimitPoll>,
    /// The same read after the final reads of the tasks and the workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_limit: Option<LimitPoll>,
}

/// One answer of `GET /v1/limits/{key}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitPoll {
    /// Harness time of the answer.
    pub time_ns: u64,
    /// The replica asked.
    pub node: u64,
    /// The limit it showed (`None`: the key had no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// The tasks holding a permit then.
    pub running: Vec<u64>,
}

/// Whether the run's concurrency limit is in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitStatus {
    /// Not asked for (a record of a run that did not get that far).
    #[default]
    NotTried,
    /// `PUT /v1/limits/{key}` was acknowledged: the workload's keyed tasks carry the key.
    Set,
    /// The route answered 404/405: this build has no limits API, so no task carries the key.
    RouteMissing,
    /// No acknowledgement within the budget (the checker then answers `unknown`).
    Failed,
}

/// `PUT /v1/limits/{key}` at the start of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitLog {
    /// The concurrency key.
    pub key: String,
    /// Its `max_running`.
    pub max_running: u32,
    /// What came of it.
    pub status: LimitStatus,
    /// Requests sent.
    pub attempts: u32,
    /// The last answer or error when it was not acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One workflow of the workload, from its submission to the final read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowLog {
    /// Name, also its idempotency key (unique in the run).
    pub name: String,
    /// `dag` or `mapreduce`.
    pub kind: String,
    /// The wave it was submitted in (0 at the start of the load; see [`crate::workflows::wave_offset`]).
    pub wave: u32,
    /// The body of `POST /v1/workflows`.
    pub request: serde_json::Value,
    /// Submit requests sent (retries reuse the idempotency key and the body).
    pub submit_attempts: u32,
    /// Harness time when the first submit was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sent_ns: Option<u64>,
    /// Harness time of the acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_ns: Option<u64>,
    /// The id from an acknowledgement (201 or 200), or recovered from the final list when no
    /// submit was acknowledged (then `acked_ns` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Every submit answered with a definite failure (4xx, 503 or a refused connection).
    pub all_failed: bool,
    /// The last error when no submit was acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_error: Option<String>,
    /// `GET /v1/workflows/{id}` after the heal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_view: Option<WfSeen>,
    /// That read answered 404 `not_found` (linearizable: the workflow does not exist).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub final_not_found: bool,
    /// That read answered 404 `forgotten`: the workflow existed, settled, and retention forgot
    /// it with every task of its nodes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub final_forgotten: bool,
    /// Why the final read failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_error: Option<String>,
}

/// One line of the final `GET /v1/workflows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowListed {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: String,
}

/// A workflow as the final read saw it (`WorkflowView`, the fields the checker needs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WfSeen {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Its idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Its version.
    pub version: u64,
    /// Its nodes, in submitted order.
    pub nodes: Vec<WfNodeSeen>,
}

/// One node of a [`WfSeen`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WfNodeSeen {
    /// The node id.
    pub id: String,
    /// `waiting`, `running`, `succeeded`, `failed`, `skipped` or `cancelled`.
    pub state: String,
    /// Its parents: `(node, on)`.
    pub depends: Vec<(String, String)>,
    /// `all` or `any`.
    pub trigger: String,
    /// Its shards, if sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<WfShards>,
    /// The `concurrency_key` of its task template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// Its tasks, by shard index.
    pub tasks: Vec<WfNodeTask>,
}

/// `shards` of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WfShards {
    /// Shards in all.
    pub count: u32,
    /// At most this many live at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// `{"min": k}`; `None` for `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
}

impl WfShards {
    /// How many shards must succeed.
    pub fn needed(&self) -> u32 {
        self.min.unwrap_or(self.count)
    }
}

/// One task of a [`WfNodeSeen`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WfNodeTask {
    /// Shard index (sharded nodes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// The task.
    pub task_id: u64,
    /// Its state.
    pub state: String,
    /// Its committed result: the text, or `base64:` and the encoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_json_has_jepsen_shape_and_round_trips() {
        let op = Op {
            index: 3,
            time_ns: 1_500,
            process: Process::Client(2),
            node: Some(1),
            kind: OpType::Ok,
            body: Body::Submit(SubmitValue { key: "k-1".into(), task_id: Some(9) }),
            error: None,
        };
        let line = serde_json::to_string(&op).unwrap();
        assert_eq!(
            line,
            r#"{"index":3,"time_ns":1500,"process":{"client":2},"node":1,"type":"ok","f":"submit","value":{"key":"k-1","task_id":9}}"#
        );
        assert_eq!(serde_json::from_str::<Op>(&line).unwrap(), op);

        let nem = Op {
            index: 4,
            time_ns: 2_000,
            process: Process::Nemesis,
            node: None,
            kind: OpType::Info,
            body: Body::Nemesis(NemesisValue { fault: "kill".into(), phase: "start".into(), detail: "n1".into() }),
            error: Some("x".into()),
        };
        let line = serde_json::to_string(&nem).unwrap();
        assert_eq!(serde_json::from_str::<Op>(&line).unwrap(), nem);
    }

    #[test]
    fn sink_event_round_trips() {
        let ev =
            SinkEvent { time_ns: 1, task_id: 2, attempt: 1, token: 40, event: SinkKind::Start { from: 7 }, wf: None };
        let line = serde_json::to_string(&ev).unwrap();
        assert_eq!(line, r#"{"time_ns":1,"task_id":2,"attempt":1,"token":40,"event":{"start":{"from":7}}}"#);
        assert_eq!(serde_json::from_str::<SinkEvent>(&line).unwrap(), ev);
        let tag = WfTag { workflow: "w".into(), node: "map".into(), shard: Some(3), ..WfTag::default() };
        let ev = SinkEvent { event: SinkKind::Exit { code: 1 }, wf: Some(tag), ..ev };
        let line = serde_json::to_string(&ev).unwrap();
        assert_eq!(
            line,
            r#"{"time_ns":1,"task_id":2,"attempt":1,"token":40,"event":{"exit":{"code":1}},"wf":{"workflow":"w","node":"map","shard":3}}"#
        );
        assert_eq!(serde_json::from_str::<SinkEvent>(&line).unwrap(), ev);
    }
}

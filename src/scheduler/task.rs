//! What a task is: the spec a client submits, and the record apply keeps for it.
//!
//! `TaskSpec` is input: it arrives through the API, is checked by [`TaskSpec::validate`], and is
//! then frozen inside the task. `Task` is the replicated record: its state, attempts and
//! checkpoint are changed only by `State::apply`, and its `version` grows by one on every change
//! so that a linearizability checker can order the reads it observes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Task ids are allocated by apply from a counter that starts at 1, identical on every replica.
pub type TaskId = u64;

/// Highest priority a task can have (priorities are 0..=1000, higher is dispatched first).
pub const MAX_PRIORITY: u32 = 1000;
/// Priority of a task that does not ask for one: the middle, so clients can go both ways.
pub const DEFAULT_PRIORITY: u32 = 500;
/// Longest task name, in bytes. Names are labels for humans, not payloads.
pub const MAX_NAME_BYTES: usize = 256;
/// Most argv entries a command may have.
pub const MAX_ARGS: usize = 1024;
/// Longest single argv entry, env value or working directory, in bytes.
pub const MAX_ARG_BYTES: usize = 64 * 1024;
/// Most environment variables a task may set.
pub const MAX_ENV_VARS: usize = 256;
/// Longest key (idempotency key, hash key, label or env name), in bytes. Keys are kept forever in
/// the idempotency map, so they must stay small.
pub const MAX_KEY_BYTES: usize = 256;
/// Most label constraints per task.
pub const MAX_CONSTRAINTS: usize = 64;
/// Most parents a task may depend on.
pub const MAX_DEPENDENCIES: usize = 1024;
/// Upper bound for `retry.max_attempts`.
pub const MAX_RETRY_ATTEMPTS: u32 = 100;
/// Upper bound for `shard.total`.
pub const MAX_SHARDS: u32 = 100_000;
/// Environment prefix the worker reserves for `TASKRAFT_TASK_ID`, `TASKRAFT_FENCING_TOKEN`, …
pub const RESERVED_ENV_PREFIX: &str = "TASKRAFT_";

/// What a client submits. Validated before it is proposed and again inside apply.
///
/// `#[serde(default)]` lets JSON clients omit everything but `command`; postcard always writes
/// every field, so the default never changes what a log entry means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskSpec {
    /// Human-readable label; may be empty.
    pub name: String,
    /// argv: the program and its arguments, run without a shell.
    pub command: Vec<String>,
    /// Extra environment for the process (names starting with `TASKRAFT_` are reserved).
    pub env: BTreeMap<String, String>,
    /// Working directory on the worker; the worker's own when absent.
    pub working_dir: Option<String>,
    /// 0..=1000, higher first. Default 500.
    pub priority: u32,
    /// What the task needs from a worker.
    pub resources: Resources,
    /// Label equality constraints: a worker qualifies only if it has every `key=value`.
    pub constraints: BTreeMap<String, String>,
    /// How the leader picks a worker for this task.
    pub placement: PlacementStrategy,
    /// Per-attempt timeout, enforced by the leader; none when absent.
    pub timeout_ms: Option<u64>,
    /// How often and how fast a failed attempt is retried.
    pub retry: RetryPolicy,
    /// What happens when the worker running an attempt is lost.
    pub failover: FailoverPolicy,
    /// Client-chosen key: a second submit with the same key returns the first task. Kept forever.
    pub idempotency_key: Option<String>,
    /// Set on the tasks a sharded job fans out to.
    pub shard: Option<Shard>,
    /// Parents that must succeed before this task may run (they must already exist).
    pub depends_on: Vec<TaskId>,
    /// Who created the task.
    pub origin: TaskOrigin,
}

impl Default for TaskSpec {
    fn default() -> Self {
        TaskSpec {
            name: String::new(),
            command: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            priority: DEFAULT_PRIORITY,
            resources: Resources::default(),
            constraints: BTreeMap::new(),
            placement: PlacementStrategy::default(),
            timeout_ms: None,
            retry: RetryPolicy::default(),
            failover: FailoverPolicy::default(),
            idempotency_key: None,
            shard: None,
            depends_on: Vec::new(),
            origin: TaskOrigin::default(),
        }
    }
}

/// Resources a task reserves on its worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// CPU in millicores (1000 = one core).
    pub cpu_millis: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
}

/// Placement strategies the leader's dispatcher knows. Apply only stores the choice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementStrategy {
    /// Highest priority first, then oldest first (with aging).
    #[default]
    PriorityFcfs,
    /// Shortest runtime estimate first.
    ShortestJobFirst,
    /// The worker with the fewest running attempts.
    LeastLoaded,
    /// The worker whose free resources fit most tightly.
    BestFit,
    /// Workers in turn.
    RoundRobin,
    /// Workers in turn, proportionally to their weight.
    WeightedRoundRobin,
    /// Any qualifying worker, chosen by the leader's random source.
    Random,
    /// The same key lands on the same worker while membership is stable.
    ConsistentHash {
        /// The key hashed onto the worker ring.
        key: String,
    },
    /// Soft label preferences (Nomad's affinities): among the workers that fit, only those
    /// matching the most of `labels` are candidates, and `then` picks one of them (and orders
    /// the queue). When no fitting worker matches any, every fitting worker is a candidate:
    /// unlike `constraints`, a preference never keeps a task waiting.
    ///
    /// A wrapper rather than a `TaskSpec` field so that log entries and snapshots written
    /// before it still decode (postcard appends enum variants compatibly, not struct fields).
    Prefer {
        /// `key=value` labels a worker should have; each one it has counts one point.
        labels: BTreeMap<String, String>,
        /// The strategy among the best-matching workers (never another `prefer`).
        #[serde(default)]
        then: Box<PlacementStrategy>,
    },
}

impl PlacementStrategy {
    /// The strategy that picks among the candidates and orders the queue: itself, or the
    /// `then` of a `prefer`.
    pub fn base(&self) -> &PlacementStrategy {
        match self {
            PlacementStrategy::Prefer { then, .. } => then.base(),
            other => other,
        }
    }

    /// The preferred labels, if any.
    pub fn preferences(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            PlacementStrategy::Prefer { labels, .. } => Some(labels),
            _ => None,
        }
    }
}

/// Retry after a failed or timed-out attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Failed or timed-out attempts allowed before the task fails (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub backoff_initial_ms: u64,
    /// Growth of the wait per retry, per mille (2000 = doubles). Integer so every replica
    /// computes the same retry time bit for bit.
    pub backoff_multiplier_permille: u32,
    /// Ceiling for the wait.
    pub backoff_max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff_initial_ms: 1_000,
            backoff_multiplier_permille: 2_000,
            backoff_max_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// Wait before the retry that follows the `failures`-th failure (1-based), capped at
    /// `backoff_max_ms`. Saturating integer math: deterministic and never overflows.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let mut wait = self.backoff_initial_ms.min(self.backoff_max_ms);
        for _ in 1..failures {
            if wait >= self.backoff_max_ms {
                break;
            }
            let grown = (u128::from(wait) * u128::from(self.backoff_multiplier_permille)) / 1000;
            wait = u64::try_from(grown).unwrap_or(u64::MAX).min(self.backoff_max_ms);
        }
        wait
    }
}

/// What to do with a task whose worker was lost mid-attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverPolicy {
    /// Requeue; the next attempt starts from the last committed checkpoint.
    #[default]
    Resume,
    /// Requeue and forget the checkpoint: the next attempt starts from scratch.
    Restart,
    /// Give up: the task fails.
    Fail,
}

/// Position of a task inside a sharded job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// 0-based shard number, below `total`.
    pub index: u32,
    /// Number of shards in the job.
    pub total: u32,
}

/// Who created a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOrigin {
    /// A client, through the API.
    #[default]
    Api,
    /// A schedule firing.
    Schedule {
        /// The schedule that fired.
        schedule_id: String,
        /// The nominal fire time (not when it actually fired), in ms since the epoch.
        nominal_time_ms: u64,
    },
}

/// Why a spec was refused: the offending field (JSON path) and a sentence a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `retry.max_attempts` or `specs[3].command`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl FieldError {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }

    /// The same error nested under `prefix` (e.g. `specs[3]`).
    pub fn within(self, prefix: &str) -> Self {
        FieldError { field: format!("{prefix}.{}", self.field), message: self.message }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.len() > max {
        return Err(FieldError::new(field, format!("is {} bytes; the limit is {max}", value.len())));
    }
    if value.contains('\0') {
        return Err(FieldError::new(field, "must not contain NUL bytes"));
    }
    Ok(())
}

fn check_key(field: &str, key: &str) -> Result<(), FieldError> {
    if key.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    check_len(field, key, MAX_KEY_BYTES)
}

impl TaskSpec {
    /// Checks everything that can be checked without the cluster state. The first problem wins,
    /// in field order, so the same spec always yields the same error.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_len("name", &self.name, MAX_NAME_BYTES)?;
        self.validate_command()?;
        if self.priority > MAX_PRIORITY {
            let msg = format!("is {}; it must be between 0 and {MAX_PRIORITY}", self.priority);
            return Err(FieldError::new("priority", msg));
        }
        if self.constraints.len() > MAX_CONSTRAINTS {
            let msg = format!("has {} entries; the limit is {MAX_CONSTRAINTS}", self.constraints.len());
            return Err(FieldError::new("constraints", msg));
        }
        for (k, v) in &self.constraints {
            check_key("constraints", k)?;
            check_len(&format!("constraints.{k}"), v, MAX_KEY_BYTES)?;
        }
        self.validate_placement()?;
        if self.timeout_ms == Some(0) {
            return Err(FieldError::new("timeout_ms", "must be positive; omit it for no timeout"));
        }
        self.validate_retry()?;
        if let Some(key) = &self.idempotency_key {
            check_key("idempotency_key", key)?;
        }
        if let Some(shard) = self.shard {
            if shard.total == 0 || shard.total > MAX_SHARDS {
                let msg = format!("is {}; it must be between 1 and {MAX_SHARDS}", shard.total);
                return Err(FieldError::new("shard.total", msg));
            }
            if shard.index >= shard.total {
                let msg = format!("is {}; it must be below shard.total ({})", shard.index, shard.total);
                return Err(FieldError::new("shard.index", msg));
            }
        }
        self.validate_dependencies()?;
        if let TaskOrigin::Schedule { schedule_id, .. } = &self.origin {
            check_key("origin.schedule.schedule_id", schedule_id)?;
        }
        Ok(())
    }

    fn validate_placement(&self) -> Result<(), FieldError> {
        let base = match &self.placement {
            PlacementStrategy::Prefer { labels, then } => {
                if labels.is_empty() {
                    return Err(FieldError::new("placement.prefer.labels", "must name at least one key=value label"));
                }
                if labels.len() > MAX_CONSTRAINTS {
                    let msg = format!("has {} entries; the limit is {MAX_CONSTRAINTS}", labels.len());
                    return Err(FieldError::new("placement.prefer.labels", msg));
                }
                for (k, v) in labels {
                    check_key("placement.prefer.labels", k)?;
                    check_len(&format!("placement.prefer.labels.{k}"), v, MAX_KEY_BYTES)?;
                }
                if matches!(**then, PlacementStrategy::Prefer { .. }) {
                    let msg = "must be a strategy, not another prefer (put every label in one prefer)";
                    return Err(FieldError::new("placement.prefer.then", msg));
                }
                then
            }
            other => other,
        };
        if let PlacementStrategy::ConsistentHash { key } = base {
            let field = if self.placement.preferences().is_some() {
                "placement.prefer.then.consistent_hash.key"
            } else {
                "placement.consistent_hash.key"
            };
            check_key(field, key)?;
        }
        Ok(())
    }

    fn validate_command(&self) -> Result<(), FieldError> {
        match self.command.first() {
            None => {
                return Err(FieldError::new("command", "must name a program (argv is empty)"));
            }
            Some(program) if program.is_empty() => {
                return Err(FieldError::new("command[0]", "program name must not be empty"));
            }
            Some(_) => {}
        }
        if self.command.len() > MAX_ARGS {
            let msg = format!("has {} arguments; the limit is {MAX_ARGS}", self.command.len());
            return Err(FieldError::new("command", msg));
        }
        for (i, arg) in self.command.iter().enumerate() {
            check_len(&format!("command[{i}]"), arg, MAX_ARG_BYTES)?;
        }
        if self.env.len() > MAX_ENV_VARS {
            let msg = format!("has {} variables; the limit is {MAX_ENV_VARS}", self.env.len());
            return Err(FieldError::new("env", msg));
        }
        for (name, value) in &self.env {
            check_key("env", name)?;
            if name.contains('=') {
                return Err(FieldError::new(format!("env.{name}"), "name must not contain '='"));
            }
            if name.starts_with(RESERVED_ENV_PREFIX) {
                let msg = format!("names starting with {RESERVED_ENV_PREFIX} are set by the worker");
                return Err(FieldError::new(format!("env.{name}"), msg));
            }
            check_len(&format!("env.{name}"), value, MAX_ARG_BYTES)?;
        }
        if let Some(dir) = &self.working_dir {
            if dir.is_empty() {
                return Err(FieldError::new("working_dir", "must not be empty; omit it instead"));
            }
            check_len("working_dir", dir, MAX_ARG_BYTES)?;
        }
        Ok(())
    }

    fn validate_retry(&self) -> Result<(), FieldError> {
        let r = &self.retry;
        if r.max_attempts == 0 || r.max_attempts > MAX_RETRY_ATTEMPTS {
            let msg = format!("is {}; it must be between 1 (no retry) and {MAX_RETRY_ATTEMPTS}", r.max_attempts);
            return Err(FieldError::new("retry.max_attempts", msg));
        }
        if !(1000..=100_000).contains(&r.backoff_multiplier_permille) {
            let msg =
                format!("is {}; it must be between 1000 (constant) and 100000 (x100)", r.backoff_multiplier_permille);
            return Err(FieldError::new("retry.backoff_multiplier_permille", msg));
        }
        if r.backoff_initial_ms > r.backoff_max_ms {
            let msg =
                format!("is {}; it must not exceed retry.backoff_max_ms ({})", r.backoff_initial_ms, r.backoff_max_ms);
            return Err(FieldError::new("retry.backoff_initial_ms", msg));
        }
        Ok(())
    }

    fn validate_dependencies(&self) -> Result<(), FieldError> {
        if self.depends_on.len() > MAX_DEPENDENCIES {
            let msg = format!("has {} parents; the limit is {MAX_DEPENDENCIES}", self.depends_on.len());
            return Err(FieldError::new("depends_on", msg));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, &parent) in self.depends_on.iter().enumerate() {
            if parent == 0 {
                return Err(FieldError::new(format!("depends_on[{i}]"), "task ids start at 1"));
            }
            if !seen.insert(parent) {
                let msg = format!("task {parent} is listed twice");
                return Err(FieldError::new(format!("depends_on[{i}]"), msg));
            }
        }
        Ok(())
    }
}

/// Lifecycle of a task. Declaration order is the order of the per-state index, so it is part of
/// the snapshot format: append new states, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for the dispatcher.
    Pending,
    /// Waiting for its parents to succeed.
    Blocked,
    /// Committed to a worker that has not reported the start yet.
    Assigned,
    /// The worker reported the process running.
    Running,
    /// A failed attempt waits out its backoff (`retry_at_ms`).
    RetryWait,
    /// Finished successfully (terminal).
    Succeeded,
    /// Gave up (terminal).
    Failed,
    /// Cancelled by a client (terminal).
    Cancelled,
}

impl TaskState {
    /// Every state, in index order.
    pub const ALL: [TaskState; 8] = [
        TaskState::Pending,
        TaskState::Blocked,
        TaskState::Assigned,
        TaskState::Running,
        TaskState::RetryWait,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    /// True for the states a task never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled)
    }

    /// The snake_case name used in JSON and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Blocked => "blocked",
            TaskState::Assigned => "assigned",
            TaskState::Running => "running",
            TaskState::RetryWait => "retry_wait",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Inverse of [`TaskState::as_str`], for query strings.
    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The process exited successfully.
    Succeeded,
    /// The process failed (non-zero exit, could not start, …).
    Failed,
    /// The worker was lost; the process may or may not still run (its token is now stale).
    Lost,
    /// The leader fenced it for running past `timeout_ms`.
    TimedOut,
    /// Killed because of a cancel request.
    Cancelled,
}

impl AttemptOutcome {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Lost => "lost",
            AttemptOutcome::TimedOut => "timed_out",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }
}

/// One run of a task on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub number: u32,
    /// The worker it was assigned to.
    pub worker_id: String,
    /// Log index of the committed assignment; every report about this attempt must carry it.
    pub fencing_token: u64,
    /// When the assignment was committed.
    pub assigned_ms: u64,
    /// When the worker reported the process started (or first checkpointed).
    pub started_ms: Option<u64>,
    /// When the attempt ended.
    pub ended_ms: Option<u64>,
    /// How it ended; `None` while live.
    pub outcome: Option<AttemptOutcome>,
    /// Process exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Last bytes of the process output (truncated to [`MAX_OUTPUT_TAIL_BYTES`]).
    pub output_tail: String,
    /// Error message, truncated to [`MAX_ERROR_BYTES`].
    pub error: Option<String>,
}

/// Largest output tail kept per attempt (64 KiB of stdout + 64 KiB of stderr); longer tails keep their end.
pub const MAX_OUTPUT_TAIL_BYTES: usize = 128 * 1024;
/// Largest error message kept; longer messages keep their start.
pub const MAX_ERROR_BYTES: usize = 1024;

impl Attempt {
    /// True until the attempt has an outcome.
    pub fn is_live(&self) -> bool {
        self.outcome.is_none()
    }
}

/// Progress saved by an attempt, handed to the next attempt under the `resume` policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Opaque bytes written by the task (at most [`MAX_CHECKPOINT_BYTES`]).
    pub data: Vec<u8>,
    /// Attempt that saved it.
    pub attempt: u32,
    /// That attempt's fencing token.
    pub token: u64,
    /// Commit time (leader clock).
    pub at_ms: u64,
}

/// Largest checkpoint accepted (256 KiB): checkpoints travel through the Raft log.
pub const MAX_CHECKPOINT_BYTES: usize = 256 * 1024;

/// The replicated record of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Allocated by apply.
    pub id: TaskId,
    /// What was submitted.
    pub spec: TaskSpec,
    /// Where it is in its lifecycle.
    pub state: TaskState,
    /// 1 at creation, +1 on every change.
    pub version: u64,
    /// Submission time (leader clock).
    pub created_ms: u64,
    /// Time of the last change.
    pub updated_ms: u64,
    /// When it reached a terminal state.
    pub finished_ms: Option<u64>,
    /// Every attempt so far, oldest first; the last one is the current attempt.
    pub attempts: Vec<Attempt>,
    /// Last committed checkpoint, if any.
    pub checkpoint: Option<Checkpoint>,
    /// A cancel arrived while an attempt was live; the worker is asked to kill it.
    pub cancel_requested: bool,
    /// Reason given with the cancel.
    pub cancel_reason: Option<String>,
    /// In `retry_wait`: earliest time the dispatcher may assign it again.
    pub retry_at_ms: Option<u64>,
    /// Summary of the most recent problem (failed attempt, lost worker, failed parent).
    pub last_error: Option<String>,
}

impl Task {
    /// True when the task will never change state again.
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// The most recent attempt, live or not.
    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    /// The current attempt if it is still live.
    pub fn live_attempt(&self) -> Option<&Attempt> {
        self.attempts.last().filter(|a| a.is_live())
    }

    /// Attempts that count against `retry.max_attempts` (lost ones are not the task's fault).
    pub fn failures(&self) -> u32 {
        let n = self
            .attempts
            .iter()
            .filter(|a| matches!(a.outcome, Some(AttemptOutcome::Failed | AttemptOutcome::TimedOut)))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Records a change: bumps the version and the update time.
    pub(crate) fn touch(&mut self, now_ms: u64) {
        self.version += 1;
        self.updated_ms = now_ms;
    }
}

/// Keeps at most `max` bytes of `s`, from the end when `keep_end`, on a char boundary.
/// Apply truncates instead of rejecting: a report is never refused for being chatty.
pub(crate) fn truncate(s: String, max: usize, keep_end: bool) -> String {
    if s.len() <= max {
        return s;
    }
    if keep_end {
        let mut start = s.len() - max;
        while !s.is_char_boundary(start) {
            start += 1;
        }
        s[start..].to_string()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    }
}

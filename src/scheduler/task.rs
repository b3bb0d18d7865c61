//! What a task is: the spec a client submits, and the record apply keeps for it.
//!
//! `TaskSpec` is input: it arrives through the API, is checked by [`TaskSpec::validate`], and is
//! then frozen inside the task. `Task` is the replicated record: its state, attempts and
//! checkpoint are changed only by `State::apply`, and its `version` grows by one on every change
//! so that a linearizability checker can order the reads it observes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::result::TaskResult;

/// Task ids are allocated by apply from a counter that starts at 1, identical on every replica.
pub type TaskId = u64;

/// One attempt of a task: the task and the attempt's fencing token (the log index of the
/// assignment that created it). Printed `task@token`, e.g. `7@42`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptId {
    /// The task.
    #[schema(value_type = u64)]
    pub task_id: TaskId,
    /// The attempt's fencing token.
    pub token: u64,
}

impl AttemptId {
    /// The attempt of `task_id` with fencing token `token`.
    pub fn new(task_id: TaskId, token: u64) -> Self {
        AttemptId { task_id, token }
    }
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.task_id, self.token)
    }
}

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
/// Prefix of the input shorthand `command: ["taskraft:sleep", "50"]` for a built-in executor
/// (`executor: "sleep"`, `command: ["50"]`). Input only: a stored spec never carries it.
pub const BUILTIN_PREFIX: &str = "taskraft:";
/// Longest `sleep` a task may ask for: one week, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 7 * 24 * 3600 * 1000;

/// What a client submits. Checked at the API edge ([`TaskSpec::validate`]) before it is
/// proposed, and again inside apply ([`TaskSpec::validate_replicated`]).
///
/// `#[serde(default)]` lets JSON clients omit everything but `command`; postcard always writes
/// every field, so the default never changes what a log entry means. A new field is a new
/// format version (see `scheduler::format`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TaskSpec {
    /// Human-readable label; may be empty.
    pub name: String,
    /// How the worker runs the task; `command` holds this executor's arguments.
    pub executor: Executor,
    /// The executor's arguments: argv for `exec` (the program first, run without a shell);
    /// `[url, method?, body?]` for `http`; `[milliseconds]` for `sleep`; nothing for `noop`.
    pub command: Vec<String>,
    /// Extra environment for the process (names starting with `TASKRAFT_` are reserved).
    pub env: BTreeMap<String, String>,
    /// Where an `exec` process runs: an absolute path on the worker, or a path inside the
    /// attempt's own directory (created if missing; `..` may not climb out of it). The attempt
    /// directory itself when absent.
    // A boxed `str` (same bytes, JSON and schema): a word less than a `String` in every task,
    // for a field most leave out (see `TASK_SIZE_CLASS`).
    #[schema(value_type = Option<String>)]
    pub working_dir: Option<Box<str>>,
    /// 0..=1000, higher first. Default 500. Unless `preemptible` says otherwise, a task below
    /// 500 ([`PREEMPTIBLE_BELOW`]) may be stopped for a waiting task at least the cluster's
    /// `preemption_gap` higher (it resumes from its checkpoint); at 500 and above it never is.
    pub priority: u32,
    /// What the task needs from a worker.
    pub resources: Resources,
    /// Label equality constraints: a worker qualifies only if it has every `key=value`.
    pub constraints: BTreeMap<String, String>,
    /// How the leader picks a worker for this task.
    pub placement: PlacementStrategy,
    /// Soft label preferences (Nomad's affinities): among the workers that fit, only those
    /// matching the most of these labels are candidates, and `placement` picks one of them.
    /// When no fitting worker matches any, every fitting worker is a candidate: unlike
    /// `constraints`, a preference never keeps a task waiting.
    // Boxed (same bytes, JSON and schema): most tasks have none, and the unboxed `None` still
    // takes four words in every task (see `TASK_SIZE_CLASS`).
    #[schema(value_type = Option<Preferences>)]
    pub prefer: Option<Box<Preferences>>,
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
    #[schema(value_type = Vec<u64>)]
    pub depends_on: Vec<TaskId>,
    /// Who created the task.
    pub origin: TaskOrigin,
    /// Cluster-wide concurrency limit this task counts against (format 6): while `n` tasks
    /// with this key hold a permit (`PUT /v1/limits/{key}`), no other one is assigned.
    pub concurrency_key: Option<String>,
    /// May this task be stopped for a waiting task of higher priority (format 8)? Absent: yes
    /// when `priority` is below 500 ([`PREEMPTIBLE_BELOW`]), no otherwise. A preempted task
    /// resumes later from its last checkpoint; see [`Task::is_preemptible`].
    pub preemptible: Option<bool>,
}

impl Default for TaskSpec {
    fn default() -> Self {
        TaskSpec {
            name: String::new(),
            executor: Executor::default(),
            command: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            priority: DEFAULT_PRIORITY,
            resources: Resources::default(),
            constraints: BTreeMap::new(),
            placement: PlacementStrategy::default(),
            prefer: None,
            timeout_ms: None,
            retry: RetryPolicy::default(),
            failover: FailoverPolicy::default(),
            idempotency_key: None,
            shard: None,
            depends_on: Vec::new(),
            origin: TaskOrigin::default(),
            concurrency_key: None,
            preemptible: None,
        }
    }
}

/// Resources a task reserves on its worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// CPU in millicores (1000 = one core).
    pub cpu_millis: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
}

/// Placement strategies the leader's dispatcher knows. Apply only stores the choice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
}

/// Soft label preferences of a task (see [`TaskSpec::prefer`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// `key=value` labels a worker should have; each one it has counts one point.
    pub labels: BTreeMap<String, String>,
}

/// How a worker runs a task. The built-ins run inside the worker, without a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    /// A program: `command` is its argv, run without a shell in its own process group.
    #[default]
    Exec,
    /// One HTTP request: `command` is `[url, method?, body?]` (default method GET); a 2xx answer
    /// succeeds. Only `http://` URLs (the worker is built without TLS).
    Http,
    /// Succeeds at once without running anything; `command` is empty.
    Noop,
    /// Waits `command[0]` milliseconds, then succeeds.
    Sleep,
}

impl Executor {
    /// Every executor, in declaration order.
    pub const ALL: [Executor; 4] = [Executor::Exec, Executor::Http, Executor::Noop, Executor::Sleep];

    /// The snake_case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Executor::Exec => "exec",
            Executor::Http => "http",
            Executor::Noop => "noop",
            Executor::Sleep => "sleep",
        }
    }

    /// Inverse of [`Executor::as_str`].
    pub fn parse(s: &str) -> Option<Executor> {
        Executor::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether an attempt runs a process (and so needs its own directory for checkpoint files
    /// and as its default working directory).
    pub fn runs_a_process(self) -> bool {
        self == Executor::Exec
    }

    /// The built-in named by a shorthand program `taskraft:NAME`: `None` when `program` is not
    /// a shorthand, `Some(Err(name))` for an unknown built-in.
    pub fn from_shorthand(program: &str) -> Option<Result<Executor, &str>> {
        let name = program.strip_prefix(BUILTIN_PREFIX)?;
        Some(match Executor::parse(name) {
            Some(e) if e != Executor::Exec => Ok(e),
            _ => Err(name),
        })
    }
}

impl fmt::Display for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Retry after a failed or timed-out attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// 0-based shard number, below `total`.
    pub index: u32,
    /// Number of shards in the job.
    pub total: u32,
}

/// Who created a task.
///
/// In JSON: `"api"`, or `{"schedule": 7, "nominal_ms": 1767225600000, "manual": false}` for a
/// run of schedule 7. Binary formats (postcard) keep the plain enum: variants are appended,
/// never reordered, so every older entry still decodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TaskOrigin {
    /// A client, through the API.
    #[default]
    Api,
    /// Formats 1 and 2 let a client *claim* a schedule origin with a free-text id; the cluster
    /// never wrote it. Kept so that those entries decode; the API no longer accepts it.
    Claimed {
        /// The id the client gave.
        schedule_id: String,
        /// The nominal time the client gave, in ms since the epoch.
        nominal_time_ms: u64,
    },
    /// A run of a schedule, created by the cluster when the schedule fired (or was triggered
    /// or backfilled).
    Schedule {
        /// The schedule.
        schedule: u64,
        /// The nominal fire time (not when it actually fired), in ms since the epoch; for a
        /// manual trigger, the time of the trigger.
        nominal_ms: u64,
        /// Started by `trigger` (outside the calendar) rather than by the calendar or a backfill.
        manual: bool,
    },
    /// A task of a workflow's node (format 6), created by the cluster when the node started
    /// (each shard of a sharded node is one; its index is in `shard`).
    Workflow {
        /// The workflow.
        workflow: u64,
        /// The node's position in the workflow's `nodes`.
        node: u32,
    },
}

/// The binary shape of [`TaskOrigin`] (what postcard reads and writes).
#[derive(Serialize, Deserialize)]
enum OriginBinary {
    Api,
    Claimed { schedule_id: String, nominal_time_ms: u64 },
    Schedule { schedule: u64, nominal_ms: u64, manual: bool },
    Workflow { workflow: u64, node: u32 },
}

/// The JSON shapes of [`TaskOrigin`] (also its OpenAPI schema): `"api"` for a task a client
/// submitted, `{"schedule", "nominal_ms", "manual"}` for a run of a schedule. A submitted task
/// may only say `"api"` (or leave it out); the other shapes are set by the cluster.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum OriginJson {
    /// A client, through the API.
    Tag(#[schema(inline)] OriginTag),
    /// A run of a schedule.
    Schedule {
        /// The schedule.
        schedule: u64,
        /// The nominal fire time, in ms since the epoch.
        nominal_ms: u64,
        /// Started by `trigger` rather than by the calendar or a backfill.
        #[serde(default)]
        manual: bool,
    },
    /// A task of a workflow's node.
    Workflow {
        /// The workflow.
        workflow: u64,
        /// The node's position in the workflow's `nodes`.
        node: u32,
    },
    /// A schedule origin claimed by a client of formats 1 and 2 (read, never accepted).
    Claimed {
        /// The id the client gave.
        schedule_id: String,
        /// The nominal time the client gave, in ms since the epoch.
        nominal_time_ms: u64,
    },
    /// Format 1's JSON: `{"schedule": {"schedule_id", "nominal_time_ms"}}`.
    Wrapped {
        /// The claimed origin.
        #[schema(inline)]
        schedule: ClaimedJson,
    },
}

/// A task a client submitted.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum OriginTag {
    Api,
}

/// A claimed origin of format 1.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
struct ClaimedJson {
    /// The id the client gave.
    schedule_id: String,
    /// The nominal time the client gave, in ms since the epoch.
    nominal_time_ms: u64,
}

impl Serialize for TaskOrigin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let o = self.clone();
        if s.is_human_readable() {
            match o {
                TaskOrigin::Api => OriginJson::Tag(OriginTag::Api),
                TaskOrigin::Claimed { schedule_id, nominal_time_ms } => {
                    OriginJson::Claimed { schedule_id, nominal_time_ms }
                }
                TaskOrigin::Schedule { schedule, nominal_ms, manual } => {
                    OriginJson::Schedule { schedule, nominal_ms, manual }
                }
                TaskOrigin::Workflow { workflow, node } => OriginJson::Workflow { workflow, node },
            }
            .serialize(s)
        } else {
            match o {
                TaskOrigin::Api => OriginBinary::Api,
                TaskOrigin::Claimed { schedule_id, nominal_time_ms } => {
                    OriginBinary::Claimed { schedule_id, nominal_time_ms }
                }
                TaskOrigin::Schedule { schedule, nominal_ms, manual } => {
                    OriginBinary::Schedule { schedule, nominal_ms, manual }
                }
                TaskOrigin::Workflow { workflow, node } => OriginBinary::Workflow { workflow, node },
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for TaskOrigin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            Ok(match OriginJson::deserialize(d)? {
                OriginJson::Tag(OriginTag::Api) => TaskOrigin::Api,
                OriginJson::Schedule { schedule, nominal_ms, manual } => {
                    TaskOrigin::Schedule { schedule, nominal_ms, manual }
                }
                OriginJson::Workflow { workflow, node } => TaskOrigin::Workflow { workflow, node },
                OriginJson::Claimed { schedule_id, nominal_time_ms }
                | OriginJson::Wrapped { schedule: ClaimedJson { schedule_id, nominal_time_ms } } => {
                    TaskOrigin::Claimed { schedule_id, nominal_time_ms }
                }
            })
        } else {
            Ok(match OriginBinary::deserialize(d)? {
                OriginBinary::Api => TaskOrigin::Api,
                OriginBinary::Claimed { schedule_id, nominal_time_ms } => {
                    TaskOrigin::Claimed { schedule_id, nominal_time_ms }
                }
                OriginBinary::Schedule { schedule, nominal_ms, manual } => {
                    TaskOrigin::Schedule { schedule, nominal_ms, manual }
                }
                OriginBinary::Workflow { workflow, node } => TaskOrigin::Workflow { workflow, node },
            })
        }
    }
}

/// The JSON schema of [`TaskOrigin`] is that of its JSON shapes.
impl utoipa::PartialSchema for TaskOrigin {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <OriginJson as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for TaskOrigin {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <OriginJson as utoipa::ToSchema>::schemas(schemas);
    }
}

impl TaskOrigin {
    /// The schedule and nominal time of a schedule run.
    pub fn schedule_run(&self) -> Option<(u64, u64)> {
        match *self {
            TaskOrigin::Schedule { schedule, nominal_ms, .. } => Some((schedule, nominal_ms)),
            _ => None,
        }
    }

    /// The workflow and node index of a workflow node's task.
    pub fn workflow_node(&self) -> Option<(u64, u32)> {
        match *self {
            TaskOrigin::Workflow { workflow, node } => Some((workflow, node)),
            _ => None,
        }
    }
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

/// A label map (constraints, preferences): at most [`MAX_CONSTRAINTS`] keys, each a key.
fn check_labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), FieldError> {
    if labels.len() > MAX_CONSTRAINTS {
        let msg = format!("has {} entries; the limit is {MAX_CONSTRAINTS}", labels.len());
        return Err(FieldError::new(field, msg));
    }
    for (k, v) in labels {
        check_key(field, k)?;
        check_len(&format!("{field}.{k}"), v, MAX_KEY_BYTES)?;
    }
    Ok(())
}

/// An `http://host…` URL (the worker's HTTP client has no TLS).
fn check_http_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Err(format!("{url:?}: only http:// URLs work (the worker is built without TLS)"));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("{url:?} is not an http:// URL"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not an http:// URL with a host"));
    }
    Ok(())
}

/// The rule for `working_dir`: an absolute path, or a relative one that stays inside the
/// attempt directory (no `..` component). The worker applies it too, to specs committed before
/// the API checked it.
pub fn working_dir_rule(dir: &str) -> Result<(), String> {
    let path = std::path::Path::new(dir);
    if !path.is_absolute() && path.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(format!("{dir:?} climbs out of the attempt directory; use a path inside it, or an absolute path"));
    }
    Ok(())
}

impl TaskSpec {
    /// Everything the API checks before a spec is proposed: [`TaskSpec::validate_replicated`]
    /// plus the rules added since (executor arguments, `working_dir`). The first problem wins,
    /// in field order, so the same spec always yields the same error.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.validate_replicated()?;
        self.validate_executor_args()?;
        self.validate_working_dir()
    }

    /// The rules apply re-checks on every replica. Every spec ever committed satisfies them (the
    /// API checked them first), so they may be loosened but **never tightened**: a stricter rule
    /// here would refuse, on replay, an old entry that was first applied, and replicas would
    /// disagree. A new rule goes into [`TaskSpec::validate`] instead.
    pub fn validate_replicated(&self) -> Result<(), FieldError> {
        check_len("name", &self.name, MAX_NAME_BYTES)?;
        self.validate_command()?;
        if self.priority > MAX_PRIORITY {
            let msg = format!("is {}; it must be between 0 and {MAX_PRIORITY}", self.priority);
            return Err(FieldError::new("priority", msg));
        }
        check_labels("constraints", &self.constraints)?;
        if let PlacementStrategy::ConsistentHash { key } = &self.placement {
            check_key("placement.consistent_hash.key", key)?;
        }
        if let Some(prefer) = &self.prefer {
            if prefer.labels.is_empty() {
                return Err(FieldError::new("prefer.labels", "must name at least one key=value label"));
            }
            check_labels("prefer.labels", &prefer.labels)?;
        }
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
        if let TaskOrigin::Claimed { schedule_id, .. } = &self.origin {
            check_key("origin.schedule.schedule_id", schedule_id)?;
        }
        if let Some(key) = &self.concurrency_key {
            check_key("concurrency_key", key)?;
        }
        Ok(())
    }

    /// Turns the input shorthand `command: ["taskraft:sleep", "50"]` into `executor: "sleep"`,
    /// `command: ["50"]`. Only for an `exec` spec whose program starts with `taskraft:`; an
    /// unknown built-in name is an error naming the known ones.
    pub fn expand_shorthand(&mut self) -> Result<(), FieldError> {
        if self.executor != Executor::Exec {
            return Ok(());
        }
        let Some(found) = self.command.first().and_then(|p| Executor::from_shorthand(p)) else {
            return Ok(());
        };
        match found {
            Ok(executor) => {
                self.executor = executor;
                self.command.remove(0);
                Ok(())
            }
            Err(name) => {
                let msg = format!("unknown built-in executor {BUILTIN_PREFIX}{name} (known: http, noop, sleep)");
                Err(FieldError::new("command[0]", msg))
            }
        }
    }

    fn validate_command(&self) -> Result<(), FieldError> {
        if self.executor == Executor::Exec {
            match self.command.first() {
                None => return Err(FieldError::new("command", "must name a program (argv is empty)")),
                Some(program) if program.is_empty() => {
                    return Err(FieldError::new("command[0]", "program name must not be empty"));
                }
                Some(_) => {}
            }
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

    /// Each executor's arguments, checked the way the worker will read them.
    fn validate_executor_args(&self) -> Result<(), FieldError> {
        let args = &self.command;
        match self.executor {
            Executor::Exec => {
                if let Some(Some(_)) = args.first().map(|p| Executor::from_shorthand(p)) {
                    let msg = "a program named taskraft:… is the built-in shorthand; give `executor` instead";
                    return Err(FieldError::new("command[0]", msg));
                }
                Ok(())
            }
            Executor::Noop if args.is_empty() => Ok(()),
            Executor::Noop => Err(FieldError::new("command", "the noop executor takes no arguments")),
            Executor::Sleep => match args.as_slice() {
                [ms] => match ms.trim().parse::<u64>() {
                    Ok(ms) if ms <= MAX_SLEEP_MS => Ok(()),
                    Ok(ms) => Err(FieldError::new("command[0]", format!("is {ms} ms; the limit is {MAX_SLEEP_MS}"))),
                    Err(_) => Err(FieldError::new("command[0]", format!("{ms:?} is not a number of milliseconds"))),
                },
                _ => {
                    let msg = format!("the sleep executor takes one argument, milliseconds; got {}", args.len());
                    Err(FieldError::new("command", msg))
                }
            },
            Executor::Http => {
                if args.is_empty() || args.len() > 3 {
                    let msg = format!("the http executor takes [url, method?, body?]; got {} arguments", args.len());
                    return Err(FieldError::new("command", msg));
                }
                check_http_url(&args[0]).map_err(|m| FieldError::new("command[0]", m))?;
                if let Some(method) = args.get(1)
                    && (method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_alphabetic()))
                {
                    return Err(FieldError::new("command[1]", format!("{method:?} is not an HTTP method")));
                }
                Ok(())
            }
        }
    }

    /// `working_dir` is for processes only, and a relative one stays inside the attempt
    /// directory: no `..` component.
    fn validate_working_dir(&self) -> Result<(), FieldError> {
        let Some(dir) = &self.working_dir else { return Ok(()) };
        if !self.executor.runs_a_process() {
            let msg = format!("only the exec executor runs a process; {} has no working directory", self.executor);
            return Err(FieldError::new("working_dir", msg));
        }
        working_dir_rule(dir).map_err(|m| FieldError::new("working_dir", m))
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Stopped to make room for a task of higher priority (format 8): the task goes back to
    /// `pending` with its checkpoint, and the attempt does not count against `max_attempts`.
    Preempted,
    /// Stopped to move the task off an overloaded worker (format 9, see `scheduler::migrate`):
    /// like `Preempted`, the task goes back to `pending` with its checkpoint, heading for the
    /// migration's target, and the attempt does not count against `max_attempts`.
    Migrated,
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
            AttemptOutcome::Preempted => "preempted",
            AttemptOutcome::Migrated => "migrated",
        }
    }
}

/// One run of a task on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
///
/// In postcard (log, snapshots) it is the plain record. In JSON the bytes show as `text` when
/// they are UTF-8 and as `base64` otherwise, next to their `size`.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The binary layout of [`Checkpoint`] (what the derive wrote before JSON got its own form).
#[derive(Serialize, Deserialize)]
#[serde(rename = "Checkpoint")]
struct CheckpointRecord<D> {
    data: D,
    attempt: u32,
    token: u64,
    at_ms: u64,
}

/// The JSON form of [`Checkpoint`] (also its OpenAPI schema): the bytes as `text` when they
/// are UTF-8, else as `base64` (neither when empty), next to their `size`.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename = "Checkpoint", deny_unknown_fields)]
struct CheckpointJson {
    /// Attempt that saved it.
    attempt: u32,
    /// That attempt's fencing token.
    token: u64,
    /// Commit time (leader clock), ms since the epoch.
    at_ms: u64,
    /// Size of the data in bytes.
    #[serde(default)]
    size: usize,
    /// The data, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The data in standard base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

impl Serialize for Checkpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        if !s.is_human_readable() {
            let record =
                CheckpointRecord { data: &self.data, attempt: self.attempt, token: self.token, at_ms: self.at_ms };
            return record.serialize(s);
        }
        let (text, base64) = match std::str::from_utf8(&self.data) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(&self.data))),
        };
        let json = CheckpointJson {
            attempt: self.attempt,
            token: self.token,
            at_ms: self.at_ms,
            size: self.data.len(),
            text,
            base64,
        };
        json.serialize(s)
    }
}

/// The JSON schema of [`Checkpoint`] is that of its JSON form.
impl utoipa::PartialSchema for Checkpoint {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <CheckpointJson as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Checkpoint {}

impl<'de> Deserialize<'de> for Checkpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        if !d.is_human_readable() {
            let r = CheckpointRecord::<Vec<u8>>::deserialize(d)?;
            return Ok(Checkpoint { data: r.data, attempt: r.attempt, token: r.token, at_ms: r.at_ms });
        }
        let j = CheckpointJson::deserialize(d)?;
        let data = match (j.text, j.base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| serde::de::Error::custom(format!("checkpoint base64: {e}")))?,
            (None, None) => Vec::new(),
            (Some(_), Some(_)) => return Err(serde::de::Error::custom("a checkpoint has either text or base64")),
        };
        Ok(Checkpoint { data, attempt: j.attempt, token: j.token, at_ms: j.at_ms })
    }
}

/// Largest checkpoint accepted (256 KiB): checkpoints travel through the Raft log.
pub const MAX_CHECKPOINT_BYTES: usize = 256 * 1024;

/// The replicated record of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// Allocated by apply.
    #[schema(value_type = u64)]
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
    /// Last committed checkpoint, if any. Boxed (same bytes and JSON): most tasks have none,
    /// and a million finished tasks should not each carry its room.
    #[schema(value_type = Option<Checkpoint>)]
    pub checkpoint: Option<Box<Checkpoint>>,
    /// A cancel arrived while an attempt was live; the worker is asked to kill it.
    pub cancel_requested: bool,
    /// Reason given with the cancel.
    // A boxed `str` (same bytes, JSON and schema): a word less than a `String` in every task,
    // for a field most leave empty (see `TASK_SIZE_CLASS`).
    #[schema(value_type = Option<String>)]
    pub cancel_reason: Option<Box<str>>,
    /// In `retry_wait`: earliest time the dispatcher may assign it again.
    pub retry_at_ms: Option<u64>,
    /// Summary of the most recent problem (failed attempt, lost worker, failed parent).
    // A boxed `str`, like `cancel_reason`.
    #[schema(value_type = Option<String>)]
    pub last_error: Option<Box<str>>,
    /// What the attempt that ended last wrote to `$TASKRAFT_RESULT_OUT`, committed with its
    /// completion under its fencing token (format 5). Once the task succeeded, the successful
    /// attempt's result.
    #[schema(value_type = Option<TaskResult>)]
    pub result: Option<Box<TaskResult>>,
    /// The last time this task was chosen as a preemption victim (format 8): by which task,
    /// when, and which attempt. While that attempt is live its worker is told to stop it
    /// (`preempted`); afterwards the mark stays as the record of who preempted it.
    // Boxed (same bytes, JSON and schema): most tasks are never preempted, and the unboxed
    // `None` still takes four words in every task (see `TASK_SIZE_CLASS`).
    #[schema(value_type = Option<PreemptMark>)]
    pub preempted_by: Option<Box<PreemptMark>>,
    /// Attempts of other tasks this task preempted to make room for itself (format 8), oldest
    /// first, at most [`MAX_PREEMPTED_RECORDS`] (the oldest are dropped).
    pub preempted: Vec<AttemptId>,
}

/// The allocation size class a task must fit in. The state keeps every task in an `Arc`, one
/// allocation of the task plus two counters (16 bytes), and mimalloc rounds an allocation up to
/// its size class: 512 bytes hold a task of up to 496 bytes, one byte more lands in the class of
/// 640, and costs 128 bytes per task (122 MiB for the million finished tasks a busy cluster
/// keeps, see `million_finished_tasks`). That is why the fields most tasks leave empty are
/// boxed; a new field must fit in what is left, or be boxed too. (Why a field is boxed is said
/// in a plain comment: its doc comment is its description in the OpenAPI document.)
const TASK_SIZE_CLASS: usize = 512;
const _: () = assert!(
    std::mem::size_of::<Task>() + 2 * std::mem::size_of::<usize>() <= TASK_SIZE_CLASS,
    "an Arc<Task> no longer fits mimalloc's 512-byte size class (see TASK_SIZE_CLASS)"
);

/// Most victims a task remembers having preempted ([`Task::preempted`]).
pub const MAX_PREEMPTED_RECORDS: usize = 64;

/// Below this priority a task that does not say `preemptible` may be preempted: a task
/// submitted with the default priority ([`DEFAULT_PRIORITY`]) or higher is never a victim
/// unless it opts in; a task *lower* than the default is one unless it opts out.
pub const PREEMPTIBLE_BELOW: u32 = DEFAULT_PRIORITY;

/// Who asked for an attempt to be preempted (see [`Task::preempted_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreemptMark {
    /// The higher-priority task that needed the room.
    #[schema(value_type = u64)]
    pub by: TaskId,
    /// When the preemption was committed (leader clock).
    pub at_ms: u64,
    /// Fencing token of the attempt that was asked to stop.
    pub token: u64,
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

    /// The preemption asked of the live attempt, if any: its worker must stop it (`preempted`).
    pub fn preempt_requested(&self) -> Option<&PreemptMark> {
        let live = self.live_attempt()?;
        self.preempted_by.as_deref().filter(|m| m.token == live.fencing_token)
    }

    /// Attempts that ended `preempted` at or after `since_ms` (the thrash cap counts these).
    pub fn preemptions_since(&self, since_ms: u64) -> u32 {
        let n = self
            .attempts
            .iter()
            .filter(|a| a.outcome == Some(AttemptOutcome::Preempted) && a.ended_ms.is_some_and(|t| t >= since_ms))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Whether the task may be a preemption victim at all: its spec's `preemptible`, or when it
    /// says nothing, priority below [`PREEMPTIBLE_BELOW`].
    pub fn is_preemptible(&self) -> bool {
        self.spec.preemptible.unwrap_or(self.spec.priority < PREEMPTIBLE_BELOW)
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

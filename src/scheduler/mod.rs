//! The pure scheduler core: the replicated state machine of taskraft.
//!
//! Every replica holds one [`State`]. Raft decides the order of [`Command`]s; each replica feeds
//! them, in that order, to [`State::apply`], and because `apply` is a pure function of the state
//! and the command, every replica ends in the same state and returns the same [`Response`].
//! Reads go through [`State::query`] on whichever replica the linearizability protocol allows.
//!
//! The path of a command:
//!
//! 1. A client or worker calls the API; the handler validates input (`TaskSpec::validate`) so
//!    obvious mistakes never reach the log.
//! 2. The leader builds the `Command`, stamping `now_ms` from its clock: apply never reads one.
//!    Dispatch decisions (which worker, when a lease expired, when an attempt timed out) are
//!    made by the leader too and arrive here as `Assign`, `WorkerLostIncarnation`, `Complete`
//!    and `Preempt` (see [`verdict`] and [`preempt`]).
//! 3. The command is postcard-encoded into a log entry behind its format version ([`format`])
//!    and committed by Raft.
//! 4. Every replica calls `apply(log_index, command)`. It de-duplicates (request id window,
//!    idempotency keys), allocates task ids from a counter, checks fencing tokens (the log index
//!    of the assignment that created an attempt), and moves tasks through their lifecycle:
//!    `pending`/`blocked` → `assigned` → `running` → `succeeded` | `failed` | `cancelled`,
//!    with `retry_wait` between attempts, and back to `pending` when an attempt is preempted
//!    for a task of higher priority ([`preempt`]).
//! 5. The `Response` — including business rejections, which are data — goes back to the caller
//!    on the replica that proposed it. The state itself, serialized whole, is the snapshot.
//!
//! What this module deliberately does not do: no I/O, no clock, no randomness, no async, no
//! openraft or storage types. Choosing workers is [`placement`]'s job — pure too, but called
//! only by the leader's dispatcher, whose decisions reach the state as `Assign` commands that
//! apply re-checks (state, slots, labels). It does not track heartbeats (the leader does, in
//! memory). Validation rules apply re-checks are part of the replicated semantics: loosening them
//! is safe, tightening them would change how old log entries replay, so new rules are checked
//! at the API edge (`TaskSpec::validate`) or gated by a field old entries upgrade to (see
//! [`format`]).

pub mod calendar;
mod command;
mod cow;
mod dedup;
pub mod format;
mod lifecycle;
pub mod limit;
pub mod migrate;
pub mod placement;
pub mod preempt;
mod ready;
mod ready_tree;
mod result;
pub mod retention;
pub mod schedule;
mod state;
mod task;
mod token;
pub mod verdict;
mod worker;
pub mod workflow;

#[cfg(test)]
mod script;
#[cfg(test)]
mod tests;

pub use command::{
    AssignOutcome, AssignResult, AttemptEvent, AttemptReport, Command, Query, QueryResponse, RejectCode, Rejection,
    Response, Reuse, StateCounts, Stats, SubmittedTask, TaskStatus,
};
pub use dedup::REQUEST_DEDUP_CAPACITY;
pub use lifecycle::MAX_TOTAL_ATTEMPTS;
pub use limit::LimitView;
pub use migrate::{MigrateMark, MigrateRules};
pub use placement::{PlacementOptions, Plan, Planner, explain_pending};
pub use preempt::{PreemptRules, Preemption};
pub use result::{MAX_RESULT_BYTES, ResultData, TaskResult, text_or_base64};
pub use schedule::{Overlap, Schedule, ScheduleCounters, ScheduleId, ScheduleSpec};
pub use state::{DEFAULT_LIST_LIMIT, Frozen, MAX_BATCH, MAX_LIST_LIMIT, MAX_REASON_BYTES, State, StateOptions};
pub use task::{
    Attempt, AttemptId, AttemptOutcome, BUILTIN_PREFIX, Checkpoint, DEFAULT_PRIORITY, Executor, FailoverPolicy,
    FieldError, MAX_ARG_BYTES, MAX_ARGS, MAX_CHECKPOINT_BYTES, MAX_CONSTRAINTS, MAX_DEPENDENCIES, MAX_ENV_VARS,
    MAX_ERROR_BYTES, MAX_KEY_BYTES, MAX_NAME_BYTES, MAX_OUTPUT_TAIL_BYTES, MAX_PREEMPTED_RECORDS, MAX_PRIORITY,
    MAX_RETRY_ATTEMPTS, MAX_SHARDS, MAX_SLEEP_MS, PREEMPTIBLE_BELOW, PlacementStrategy, PreemptMark, Preferences,
    RESERVED_ENV_PREFIX, Resources, RetryPolicy, Shard, Task, TaskId, TaskOrigin, TaskSpec, TaskState,
    working_dir_rule,
};
pub use token::{ApiToken, MAX_TOKEN_NAME_BYTES, MAX_TOKENS, Role, TOKEN_KEY_LEN};
pub use worker::{
    MAX_ADDR_BYTES, MAX_LABELS, MAX_WORKER_ID_BYTES, MAX_WORKER_SLOTS, WorkerInfo, WorkerRegistration, WorkerState,
};
pub use workflow::{Workflow, WorkflowId, WorkflowSpec, WorkflowState};

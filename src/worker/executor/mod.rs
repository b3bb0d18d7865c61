//! Task executors: how a worker turns one assigned attempt into an [`ExecResult`].
//!
//! The worker calls [`run`] once per attempt. The executor is the spec's `executor` field, and
//! `command` holds that executor's arguments:
//!
//! | `executor` | `command`                 | what it does                                  | file       |
//! |------------|---------------------------|-----------------------------------------------|------------|
//! | `exec`     | argv (program first)      | a child process in its own process group      | `exec.rs`  |
//! | `http`     | `[url, method?, body?]`   | one HTTP request (default GET); 2xx succeeds  | `http.rs`  |
//! | `noop`     | nothing                   | succeeds at once, no process                  | `noop.rs`  |
//! | `sleep`    | `[milliseconds]`          | waits, cancellable                            | `sleep.rs` |
//!
//! Only `exec` runs a process, so only its attempts get a directory ([`needs_attempt_dir`]).
//! The input shorthand `command: ["taskraft:sleep", "50"]` is expanded at the API edge and never
//! reaches a worker; an `exec` program named `taskraft:…` fails the attempt with a clear error
//! instead of being looked up on `PATH`.
//!
//! The path of an `exec` attempt:
//! 1. Write the last committed checkpoint to `<attempt_dir>/checkpoint.in`, remove any stale
//!    `checkpoint.out` and `result.out`, write a workflow task's parent results to
//!    `<attempt_dir>/inputs/` (`$TASKRAFT_INPUTS_DIR`, see `inputs.rs`), build the environment
//!    (`TASKRAFT_*`, see DESIGN §6) and pick the
//!    working directory: the attempt directory; a relative `working_dir` inside it (created if
//!    missing); an absolute one as is. A `working_dir` that breaks
//!    [`working_dir_rule`](crate::scheduler::working_dir_rule) (`..` climbing out) fails the
//!    attempt: the API refuses it at submit, and the worker does not rely on that alone.
//! 2. Spawn the program (no shell, stdin null) as the leader of a new process group.
//! 3. Until the leader exits, the attempt times out or is cancelled: capture stdout and stderr into
//!    bounded tail buffers (`tail.rs`) and poll `checkpoint.out` (`checkpoint.rs`), shipping each
//!    new checkpoint on the channel.
//! 4. Stop the group (`group.rs`): TERM, up to `kill_grace` for every member to exit, then KILL.
//!    This also runs after a normal exit, so background children never outlive their attempt.
//! 5. Read `checkpoint.out` one last time (a checkpoint written just before exit is not lost),
//!    reap the leader, read the task's result from `result.out` (`$TASKRAFT_RESULT_OUT`, see
//!    `result.rs`), and assemble the result.
//!
//! Output also reaches [`ExecRequest::live`], when given: stdout and stderr as one bounded stream
//! the worker ships while the attempt runs (`crate::worker::output`).
//!
//! Checkpoints reach the caller on the `mpsc::Sender<Vec<u8>>` given to [`run`], in the order
//! they were written, coalesced: while the channel is full only the newest unsent checkpoint is
//! kept. The last one is delivered with a blocking `send` before [`run`] returns (unless the
//! attempt was cancelled), so the caller must keep draining the receiver concurrently with [`run`]
//! — or drop it, which simply turns checkpoint shipping off. A checkpoint over
//! `checkpoint_max_bytes` is never sent; the attempt keeps running and the refusal is reported
//! in [`ExecResult::error`].
//!
//! What this module deliberately does not do: talk to the leader, check fencing tokens (the
//! leader rejects stale reports), enforce the leader's timeout (the local `timeout` is only a
//! safety net), or sandbox the process (no uid switch, cgroups or resource limits).
//!
//! Caveats: a process that leaves its group (`setsid`) escapes the kill; its output pipes are
//! abandoned after [`OUTPUT_DRAIN`]. Group members that die while orphaned may linger as zombies
//! when PID 1 does not reap (common in containers); they are treated as gone.

mod checkpoint;
mod exec;
mod group;
mod http;
mod inputs;
mod noop;
pub mod reaper;
mod result;
mod sleep;
mod tail;

pub use tail::LiveOutput;
pub use tail::LiveSlice;

#[cfg(test)]
mod tests;

use std::future::pending;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::scheduler::workflow::TaskInput;
use crate::scheduler::{AttemptOutcome, Executor, MAX_CHECKPOINT_BYTES, MAX_RESULT_BYTES, TaskSpec};

/// Default for [`ExecLimits::output_tail_bytes`]: enough for a stack trace, bounded per attempt.
pub const DEFAULT_OUTPUT_TAIL_BYTES: usize = 64 * 1024;
/// Default for [`ExecLimits::checkpoint_max_bytes`]: what the leader accepts into the Raft log.
pub const DEFAULT_CHECKPOINT_MAX_BYTES: usize = MAX_CHECKPOINT_BYTES;
/// Default for [`ExecLimits::kill_grace`]: time between TERM and KILL for a task to clean up.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// Default for [`ExecLimits::checkpoint_poll`]: how stale a shipped checkpoint may be.
pub const DEFAULT_CHECKPOINT_POLL: Duration = Duration::from_millis(200);
/// Request timeout of the `http` executor when the attempt has no timeout of its own.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long output pipes may stay open once the process group is dead (only a process that
/// escaped the group can hold them); after that the tails are taken as they are.
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// File in the attempt directory holding the checkpoint the attempt resumes from.
pub const CHECKPOINT_IN_FILE: &str = "checkpoint.in";
/// File in the attempt directory the task writes (by rename) to save progress.
pub const CHECKPOINT_OUT_FILE: &str = "checkpoint.out";
/// File in the attempt directory the task writes its result to (read once, after it ends).
pub const RESULT_OUT_FILE: &str = "result.out";
/// File in the attempt directory the worker writes, just before it sends TERM, with why it
/// stops the task (`preempted`, `cancelled`, …); absent while nobody asked it to stop.
pub const STOP_REASON_FILE: &str = "stop_reason";
/// Directory in the attempt directory holding a workflow task's inputs (its parents' results).
pub const INPUTS_DIR: &str = "inputs";

/// The task id; first of the environment variables the `exec` executor sets (DESIGN §6).
pub const ENV_TASK_ID: &str = "TASKRAFT_TASK_ID";
/// The 1-based attempt number.
pub const ENV_ATTEMPT: &str = "TASKRAFT_ATTEMPT";
/// The attempt's fencing token.
pub const ENV_FENCING_TOKEN: &str = "TASKRAFT_FENCING_TOKEN";
/// Path of the file holding the checkpoint to resume from; absent when there is none.
pub const ENV_CHECKPOINT_IN: &str = "TASKRAFT_CHECKPOINT_IN";
/// Path the task writes its checkpoint to, atomically by rename.
pub const ENV_CHECKPOINT_OUT: &str = "TASKRAFT_CHECKPOINT_OUT";
/// Path the task may write its result to (at most `result_max_bytes`), passed on to its
/// children.
pub const ENV_RESULT_OUT: &str = "TASKRAFT_RESULT_OUT";
/// Directory holding the results of a workflow task's parents (`<node>`, or `<node>/<index>`
/// for a sharded parent); set for workflow tasks only, even when it is empty.
pub const ENV_INPUTS_DIR: &str = "TASKRAFT_INPUTS_DIR";
/// 0-based shard index, for sharded tasks only.
pub const ENV_SHARD_INDEX: &str = "TASKRAFT_SHARD_INDEX";
/// Number of shards in the job, for sharded tasks only.
pub const ENV_SHARD_COUNT: &str = "TASKRAFT_SHARD_COUNT";
/// Path of the file that, once it exists, says why the worker is stopping the task: written
/// (atomically) before the TERM, so a TERM handler reads `preempted` when a task of higher
/// priority needs the room (save a checkpoint and exit), `cancelled`, `stale`, `lease_lost`
/// or `shutdown` otherwise. Always set; the file is absent until a stop.
pub const ENV_STOP_REASON_FILE: &str = "TASKRAFT_STOP_REASON_FILE";
/// The schedule that fired the run, for schedule runs only.
pub const ENV_SCHEDULE_ID: &str = "TASKRAFT_SCHEDULE_ID";
/// The run's nominal time in ms since the epoch (when it was due, not when it started).
pub const ENV_NOMINAL_MS: &str = "TASKRAFT_NOMINAL_MS";

/// Per-attempt resource bounds of the executors. `Default` gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// Bytes kept from the end of each of stdout and stderr (and of an HTTP response body).
    pub output_tail_bytes: usize,
    /// Largest checkpoint shipped; bigger ones are refused with an error in the result.
    pub checkpoint_max_bytes: usize,
    /// Time between TERM and KILL when the process group is stopped.
    pub kill_grace: Duration,
    /// Interval at which the checkpoint file is checked for changes.
    pub checkpoint_poll: Duration,
    /// Largest result a task may write; a bigger one fails the attempt (see `result.rs`).
    pub result_max_bytes: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        ExecLimits {
            output_tail_bytes: DEFAULT_OUTPUT_TAIL_BYTES,
            checkpoint_max_bytes: DEFAULT_CHECKPOINT_MAX_BYTES,
            kill_grace: DEFAULT_KILL_GRACE,
            checkpoint_poll: DEFAULT_CHECKPOINT_POLL,
            result_max_bytes: MAX_RESULT_BYTES,
        }
    }
}

/// Everything an executor needs to run one attempt.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The task being run (`TASKRAFT_TASK_ID`).
    pub task_id: u64,
    /// 1-based attempt number (`TASKRAFT_ATTEMPT`).
    pub attempt: u32,
    /// The attempt's fencing token (`TASKRAFT_FENCING_TOKEN`).
    pub token: u64,
    /// What to run.
    pub spec: TaskSpec,
    /// The last committed checkpoint, if the attempt resumes from one.
    pub checkpoint_in: Option<Vec<u8>>,
    /// The results of the task's workflow parents, written to `$TASKRAFT_INPUTS_DIR` (`exec`
    /// only; the built-ins ignore them).
    pub inputs: Vec<TaskInput>,
    /// A fresh directory owned by this attempt (created by the caller when
    /// [`needs_attempt_dir`]): checkpoint files live here, and it is the working directory
    /// (a relative `working_dir` is resolved inside it; an absolute one replaces it).
    pub attempt_dir: PathBuf,
    /// Local safety net; the leader enforces the real timeout.
    pub timeout: Option<Duration>,
    /// Output, checkpoint and kill bounds.
    pub limits: ExecLimits,
    /// Where an `exec` attempt's stdout and stderr also go, as one stream, while it runs (the
    /// worker ships it to the leader); `None` keeps only the tails of the result.
    pub live: Option<LiveOutput>,
}

/// How an attempt ended, ready to be reported to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    /// `Succeeded`, `Failed`, `TimedOut` or `Cancelled` (never `Lost`: that is the leader's call).
    pub outcome: AttemptOutcome,
    /// The process exit code; `None` without a process or when a signal ended it.
    pub exit_code: Option<i32>,
    /// Last bytes of stdout then stderr, each under a `--- stdout … ---` header (empty streams
    /// are left out); for `http`, the status line and the body's tail. Lossy UTF-8.
    pub output_tail: String,
    /// Why the attempt did not succeed, and any refused checkpoint (even on success).
    pub error: Option<String>,
    /// What the task wrote to `$TASKRAFT_RESULT_OUT`, if it wrote that file (`exec` only).
    pub result: Option<Vec<u8>>,
}

impl ExecResult {
    fn new(outcome: AttemptOutcome) -> Self {
        ExecResult { outcome, exit_code: None, output_tail: String::new(), error: None, result: None }
    }

    fn failed(error: impl Into<String>) -> Self {
        ExecResult { error: Some(error.into()), ..ExecResult::new(AttemptOutcome::Failed) }
    }

    fn stopped(stop: Stop, timeout: Option<Duration>) -> Self {
        ExecResult { error: Some(stop.describe(timeout)), ..ExecResult::new(stop.outcome()) }
    }

    /// Appends a sentence to `error`, keeping what is already there.
    fn add_error(&mut self, more: String) {
        self.error = Some(match self.error.take() {
            Some(e) => format!("{e}; {more}"),
            None => more,
        });
    }
}

/// Whether an attempt of `spec` runs a process and so needs its own directory (checkpoint
/// files, working directory). The built-in executors run in the worker and use none.
pub fn needs_attempt_dir(spec: &TaskSpec) -> bool {
    spec.executor.runs_a_process()
}

/// Runs one attempt to completion with the spec's executor and reports how it ended. Never
/// panics on bad input: a missing program, bad arguments or a bad URL all become `Failed` with a
/// clear error.
///
/// `cancel` stops the attempt (for `exec`: TERM to the whole process group, `kill_grace`, KILL)
/// and yields `Cancelled`. `checkpoints` receives each new checkpoint the task writes; see the
/// module docs for coalescing and the final delivery, which requires the receiver to be drained
/// concurrently (or dropped).
///
/// If the returned future is dropped mid-attempt, the process group is killed (SIGKILL) anyway.
pub async fn run(req: ExecRequest, cancel: CancellationToken, checkpoints: mpsc::Sender<Vec<u8>>) -> ExecResult {
    let (task_id, attempt) = (req.task_id, req.attempt);
    if cancel.is_cancelled() {
        return ExecResult::stopped(Stop::Cancelled, req.timeout);
    }
    let executor = req.spec.executor;
    debug!(task_id, attempt, executor = executor.as_str(), "attempt starting");
    let result = match executor {
        Executor::Exec => exec::run(req, &cancel, checkpoints).await,
        Executor::Http => http::run(&req, &cancel).await,
        Executor::Noop => noop::run(),
        Executor::Sleep => sleep::run(&req, &cancel).await,
    };
    debug!(task_id, attempt, outcome = result.outcome.as_str(), exit_code = result.exit_code, "attempt ended");
    result
}

/// Why an attempt was stopped before it finished on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `cancel` fired.
    Cancelled,
    /// The local timeout elapsed.
    TimedOut,
}

impl Stop {
    fn outcome(self) -> AttemptOutcome {
        match self {
            Stop::Cancelled => AttemptOutcome::Cancelled,
            Stop::TimedOut => AttemptOutcome::TimedOut,
        }
    }

    fn describe(self, timeout: Option<Duration>) -> String {
        match (self, timeout) {
            (Stop::Cancelled, _) => "cancelled".to_string(),
            (Stop::TimedOut, Some(t)) => format!("timed out after {t:?}"),
            (Stop::TimedOut, None) => "timed out".to_string(),
        }
    }
}

/// The instant the attempt's local timeout elapses, if it has one (a timeout too large to
/// represent counts as none).
fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Resolves when the attempt must stop: cancel wins over a deadline reached at the same time.
async fn stop_signal(cancel: &CancellationToken, deadline: Option<Instant>) -> Stop {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Stop::Cancelled,
        () = async {
            match deadline {
                Some(d) => sleep_until(d).await,
                None => pending().await,
            }
        } => Stop::TimedOut,
    }
}

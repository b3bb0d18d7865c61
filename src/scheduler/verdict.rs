//! The leader's worker-facing verdicts, as pure functions of the replicated state and their
//! inputs: what a heartbeat is answered, which attempts are orphaned, whether a registering
//! worker leaves a stale incarnation behind, what an expired lease means, which attempts ran
//! past their timeout, whether a worker's live output of an attempt is kept, which parent
//! results an assignment carries.
//!
//! The leader's async loops and the HTTP handlers gather the inputs (a heartbeat's body, the
//! lease table, the monotonic clock) and commit what comes out; every decision is made here, on
//! a `&State`, so golden scripts (`testdata/verdicts.script`) can pin each one down.
//!
//! A verdict is only as fresh as the state it reads. The leader judges on a state that has
//! applied everything committed before its term (it waits for that before serving workers), and
//! `heartbeat` leaves alone any token newer than the state has applied.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use super::command::Command;
use super::state::State;
use super::task::{AttemptId, AttemptOutcome, TaskId, TaskState};
use super::worker::WorkerState;
use super::workflow::TaskInput;

/// Why the leader tells a worker to stop an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A client cancelled the task: the worker kills it and reports it cancelled.
    Cancelled,
    /// The attempt is not the task's current live attempt on this worker any more (it was
    /// reassigned, timed out, or the worker was declared lost): the worker kills it and reports
    /// nothing, since its token is fenced off.
    StaleToken,
    /// A task of higher priority needs the room (format 8): the worker tells the task
    /// (`$TASKRAFT_STOP_REASON_FILE`), sends TERM, waits its kill grace for a final checkpoint,
    /// kills the group and reports the attempt `preempted`. Only sent to workers that said they
    /// know it (`Heartbeat::knows_preempted`): older workers cannot parse it.
    Preempted,
    /// The task moves off this overloaded worker (format 9, see `scheduler::migrate`): like
    /// `Preempted`, but the stop reason file says `migrated` and the attempt is reported
    /// `migrated`. Only sent to workers that said they know it (`Heartbeat::knows_migrated`).
    Migrated,
}

impl StopReason {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Cancelled => "cancelled",
            StopReason::StaleToken => "stale_token",
            StopReason::Preempted => "preempted",
            StopReason::Migrated => "migrated",
        }
    }
}

/// One attempt a worker must stop, and why. JSON: `{"task_id", "token", "reason"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StopOrder {
    /// The attempt.
    #[serde(flatten)]
    pub attempt: AttemptId,
    /// Why.
    pub reason: StopReason,
}

impl fmt::Display for StopOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.attempt, self.reason.as_str())
    }
}

/// Why a heartbeat is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatRefusal {
    /// The cluster does not know this worker, or declared it lost: it must register again.
    NotRegistered,
    /// An operator removed it: it must stop.
    Removed,
}

/// The answer to an accepted heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatVerdict {
    /// Attempts the worker runs and must stop now.
    pub stop: Vec<StopOrder>,
    /// Live attempts assigned to this worker that it no longer runs: their token is one it has
    /// seen (from its inbox) and it did not list them. Nobody runs them; the leader ends them
    /// `lost` ([`orphan_command`]) so that they resume elsewhere.
    pub orphans: Vec<AttemptId>,
}

/// Judges a heartbeat of `worker_id`, which says it runs `running` and has seen inbox tokens up
/// to `seen_token`. A worker that does not know the `preempted` stop order
/// (`knows_preempted` false) is never sent one (the leader does not preempt on it either);
/// likewise `migrated` and `knows_migrated`.
pub fn heartbeat(
    state: &State,
    worker_id: &str,
    running: &[AttemptId],
    seen_token: u64,
    knows_preempted: bool,
    knows_migrated: bool,
) -> Result<HeartbeatVerdict, HeartbeatRefusal> {
    standing(state, worker_id)?;
    let applied = state.last_applied_index();
    let stop = running
        .iter()
        // A token newer than this state has applied cannot be judged yet.
        .filter(|r| r.token <= applied)
        .filter_map(|&r| {
            let task = state.task(r.task_id);
            let live =
                task.and_then(|t| t.live_attempt()).filter(|a| a.fencing_token == r.token && a.worker_id == worker_id);
            let reason = match (task, live) {
                (_, None) => StopReason::StaleToken,
                (Some(t), Some(_)) if t.cancel_requested => StopReason::Cancelled,
                (Some(t), Some(_)) if knows_preempted && t.preempt_requested().is_some() => StopReason::Preempted,
                (Some(t), Some(_)) if knows_migrated && state.migrate_requested(t).is_some() => StopReason::Migrated,
                _ => return None,
            };
            Some(StopOrder { attempt: r, reason })
        })
        .collect();
    // A set: a worker may run thousands of attempts, and each live one is looked up.
    let running: std::collections::HashSet<AttemptId> = running.iter().copied().collect();
    let orphans = state
        .live_tasks_on(worker_id)
        .filter_map(|task_id| {
            let token = state.task(task_id)?.live_attempt()?.fencing_token;
            let attempt = AttemptId::new(task_id, token);
            (token <= seen_token && !running.contains(&attempt)).then_some(attempt)
        })
        .collect();
    Ok(HeartbeatVerdict { stop, orphans })
}

/// Whether `worker_id` may speak the worker protocol (heartbeat, inbox) at all: it must be
/// registered and neither lost (it registers again) nor removed (it stops). A draining worker
/// may: it finishes what it runs.
pub fn standing(state: &State, worker_id: &str) -> Result<(), HeartbeatRefusal> {
    match state.worker(worker_id).map(|w| w.state) {
        Some(WorkerState::Active | WorkerState::Draining) => Ok(()),
        Some(WorkerState::Removed) => Err(HeartbeatRefusal::Removed),
        None | Some(WorkerState::Lost) => Err(HeartbeatRefusal::NotRegistered),
    }
}

/// The inbox of `worker_id`: the attempts committed to it that it has not reported started yet,
/// with a fencing token above `after` (the newest the worker already holds), in task order.
/// Refused like a heartbeat for a worker without [`standing`].
pub fn inbox(state: &State, worker_id: &str, after: u64) -> Result<Vec<AttemptId>, HeartbeatRefusal> {
    standing(state, worker_id)?;
    Ok(state
        .live_tasks_on(worker_id)
        .filter_map(|id| {
            let task = state.task(id).filter(|t| t.state == TaskState::Assigned)?;
            let token = task.live_attempt()?.fencing_token;
            (token > after).then_some(AttemptId::new(id, token))
        })
        .collect())
}

/// Parent results refused for delivery: together they are over the bound a worker accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputsTooLarge {
    /// Their total size in bytes.
    pub bytes: u64,
    /// How many results.
    pub count: usize,
    /// The bound they broke.
    pub max_bytes: u64,
}

impl fmt::Display for InputsTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the results of this task's parents add up to {} bytes in {} files, over the limit of {} bytes \
             for $TASKRAFT_INPUTS_DIR; they were not delivered and the task was not run",
            self.bytes, self.count, self.max_bytes
        )
    }
}

/// What an assignment of `task_id` carries for `$TASKRAFT_INPUTS_DIR`: its parents' results
/// ([`State::inputs_of`]) when its executor runs a process (the built-ins have no use for them),
/// nothing otherwise; refused whole when they add up to more than `max_bytes`, weighed before
/// anything is copied. A function of the committed state, so every delivery of the same
/// attempt, from any replica, carries the same inputs.
pub fn assignment_inputs(state: &State, task_id: TaskId, max_bytes: u64) -> Result<Vec<TaskInput>, InputsTooLarge> {
    if !state.task(task_id).is_some_and(|t| t.spec.executor.runs_a_process()) {
        return Ok(Vec::new());
    }
    let (count, bytes) =
        state.parent_results(task_id).fold((0usize, 0u64), |(n, sum), (_, _, data)| (n + 1, sum + data.len() as u64));
    if bytes > max_bytes {
        return Err(InputsTooLarge { bytes, count, max_bytes });
    }
    Ok(state.inputs_of(task_id))
}

/// The command that ends an orphaned attempt (see [`HeartbeatVerdict::orphans`]).
pub fn orphan_command(worker_id: &str, attempt: AttemptId, now_ms: u64) -> Command {
    Command::Complete {
        now_ms,
        task_id: attempt.task_id,
        token: attempt.token,
        outcome: AttemptOutcome::Lost,
        exit_code: None,
        output_tail: String::new(),
        result: None,
        error: Some(format!("worker {worker_id} no longer runs this attempt")),
    }
}

/// A worker registers when its process starts, so it runs nothing: attempts the cluster still
/// has on it belong to an earlier incarnation (crashed and restarted within its lease). The
/// command that ends them `lost` first, so they resume elsewhere instead of waiting forever.
pub fn stale_incarnation(state: &State, worker_id: &str, now_ms: u64) -> Option<Command> {
    state.live_tasks_on(worker_id).next()?;
    let registered_ms = state.worker(worker_id)?.registered_ms;
    Some(Command::WorkerLostIncarnation { now_ms, worker_id: worker_id.to_string(), registered_ms })
}

/// What the leader does about a worker whose lease ran out.
#[allow(clippy::large_enum_variant, reason = "a short-lived answer, one per expired lease")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// Declare this incarnation lost: its attempts follow their failover policy.
    Declare(Command),
    /// Nothing to declare (unknown, already lost or removed): forget the lease.
    Forget,
}

/// Judges the expired lease of `worker_id`.
pub fn expired_lease(state: &State, worker_id: &str, now_ms: u64) -> Expiry {
    match state.worker(worker_id) {
        Some(w) if matches!(w.state, WorkerState::Active | WorkerState::Draining) => {
            Expiry::Declare(Command::WorkerLostIncarnation {
                now_ms,
                worker_id: worker_id.to_string(),
                registered_ms: w.registered_ms,
            })
        }
        _ => Expiry::Forget,
    }
}

/// A live attempt past its task's `timeout_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overdue {
    /// The attempt.
    pub attempt: AttemptId,
    /// Its task's timeout.
    pub limit_ms: u64,
}

impl Overdue {
    /// The command that fences the attempt off: it ends `timed_out` under its own token, and
    /// the worker's late report is then refused as stale.
    pub fn command(&self, now_ms: u64) -> Command {
        Command::Complete {
            now_ms,
            task_id: self.attempt.task_id,
            token: self.attempt.token,
            outcome: AttemptOutcome::TimedOut,
            exit_code: None,
            output_tail: String::new(),
            result: None,
            error: Some(format!("timed out after {} ms (enforced by the leader)", self.limit_ms)),
        }
    }
}

/// The live attempts past their timeout at wall time `now_ms`, counted from the attempt's start
/// (or assignment). Start times were stamped by whichever leader applied them, so after a
/// failover a skewed wall clock could time attempts out early: an attempt must also have been
/// watched by *this* leader, on its monotonic clock, for `min(timeout, min_watch_ms)`.
/// `watched_ms` says how long (it is called once for every attempt that has a timeout, so the
/// caller can start watching new ones).
pub fn overdue(
    state: &State,
    now_ms: u64,
    min_watch_ms: u64,
    watched_ms: &mut dyn FnMut(AttemptId) -> u64,
) -> Vec<Overdue> {
    [TaskState::Assigned, TaskState::Running]
        .into_iter()
        .flat_map(|s| state.tasks_in(s))
        .filter_map(|t| {
            let limit_ms = t.spec.timeout_ms?;
            let a = t.live_attempt()?;
            let attempt = AttemptId::new(t.id, a.fencing_token);
            let watched = watched_ms(attempt);
            let ran = now_ms.saturating_sub(a.started_ms.unwrap_or(a.assigned_ms));
            (ran > limit_ms && watched >= limit_ms.min(min_watch_ms)).then_some(Overdue { attempt, limit_ms })
        })
        .collect()
}

/// What the leader does with a chunk of live output a worker shipped for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputVerdict {
    /// A live attempt of this worker: keep the bytes.
    Store,
    /// The attempt ended, or is another worker's: drop the bytes, and the worker stops shipping.
    Stop,
    /// An attempt this state has not applied yet (or an unknown task): drop the bytes for now;
    /// the worker sends them again.
    NotYet,
}

/// Judges a chunk of live output `worker_id` shipped for `attempt`. A lost attempt's output is
/// kept as shipped until it was lost: anything later is refused.
pub fn output_chunk(state: &State, worker_id: &str, attempt: AttemptId) -> OutputVerdict {
    let found = state.task(attempt.task_id).and_then(|t| t.attempts.iter().find(|a| a.fencing_token == attempt.token));
    match found {
        None => OutputVerdict::NotYet,
        Some(a) if a.worker_id == worker_id && a.is_live() => OutputVerdict::Store,
        Some(_) => OutputVerdict::Stop,
    }
}

//! Migration off overloaded workers: the rules a migrated attempt must pass, how apply marks it,
//! and the target hint the requeued task carries (format 9).
//!
//! 1. The leader keeps each worker's load reports in memory
//!    ([`super::placement::LoadStreaks`]). When a worker has reported load at or above the
//!    high-water mark for `heartbeats` reports in a row and another worker that could hold a
//!    task now reports load below the low-water mark, [`super::placement::choose_migration`]
//!    picks one checkpointable task on the hot worker and a target.
//! 2. It commits `Command::Migrate` with the attempt, both workers, the load it saw (a sentence
//!    for people) and the cluster's [`MigrateRules`].
//! 3. Apply ([`State::migrate`]) re-checks what it can decide from the state alone with
//!    [`refusal`] (the attempt is live and running on `from`, the task resumes from
//!    checkpoints, it ran `min_runtime_ms`, the hourly cap, the target is active, has a free
//!    slot and the task's labels) and records a [`MigrateMark`] in `State::migrations`.
//!    Loads are never replicated, so apply cannot re-check them: they are the leader's reason.
//! 4. The worker's next heartbeat is answered `stop (migrated)` (only workers that say they know
//!    it: `Heartbeat::knows_migrated`): it writes `migrated` to `$TASKRAFT_STOP_REASON_FILE`,
//!    sends TERM, waits its kill grace for a final checkpoint, then KILL, and reports the attempt
//!    ended `migrated`.
//! 5. As after a preemption, the task is `pending` at once with its checkpoint and queue place,
//!    and the attempt is not a failure. The attempt's error says where it went and why.
//! 6. The planner places the task on the mark's target when that worker is a candidate and
//!    fits ([`State::migration_target`]); otherwise normal placement decides among the
//!    candidates other than the worker it left (that one only if nothing else fits). The mark is
//!    dropped at the task's next assignment (or when retention forgets the task).
//!
//! Why a separate outcome and command rather than `Preempt` with a reason: a migration has no
//! preemptor task, carries a target and a load explanation, is allowed for tasks whatever their
//! priority (only `resume` tasks, since the point is to continue elsewhere), and has its own
//! hourly cap. `AttemptOutcome::Migrated` and `Command::Migrate` are appended variants, so
//! format-8 bytes still decode; only the state gains a map (`v8.rs` freezes format 8's).

use serde::{Deserialize, Serialize};

use super::command::{RejectCode, Rejection, Response};
use super::state::State;
use super::task::{AttemptId, AttemptOutcome, FailoverPolicy, Task, TaskId, TaskState};
use super::worker::WorkerState;

/// Default of [`MigrateRules::min_runtime_ms`]: a task keeps at least this much of a run.
pub const DEFAULT_MIGRATE_MIN_RUNTIME_MS: u64 = 10_000;
/// Default of [`MigrateRules::max_per_hour`].
pub const DEFAULT_MAX_MIGRATIONS_PER_HOUR: u32 = 2;

/// The rules a migrated attempt must pass. The leader's options, carried inside
/// `Command::Migrate` so every replica judges with the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrateRules {
    /// The attempt has run (since its start report) at least this long.
    pub min_runtime_ms: u64,
    /// A task is migrated at most this many times per hour (its attempts ended `migrated`).
    pub max_per_hour: u32,
}

impl Default for MigrateRules {
    fn default() -> Self {
        MigrateRules { min_runtime_ms: DEFAULT_MIGRATE_MIN_RUNTIME_MS, max_per_hour: DEFAULT_MAX_MIGRATIONS_PER_HOUR }
    }
}

/// A committed migration of one attempt (format 9), kept in `State::migrations` by task until
/// the task is assigned again: while the attempt is live its worker is told to stop it
/// (`migrated`); once it ended `migrated`, `to` is the placement hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MigrateMark {
    /// Fencing token of the attempt asked to stop.
    pub token: u64,
    /// The overloaded worker it ran on.
    pub from: String,
    /// The worker it should go to.
    pub to: String,
    /// When the migration was committed (leader clock).
    pub at_ms: u64,
    /// The leader's reason, for people (e.g. `cpu 0.97 for 3 heartbeats`).
    pub why: String,
}

impl MigrateMark {
    /// The sentence `task get` shows on the attempt.
    pub fn describe(&self) -> String {
        format!("migrated from worker {} to worker {} ({})", self.from, self.to, self.why)
    }
}

/// Most bytes of [`MigrateMark::why`] kept.
pub const MAX_MIGRATE_WHY_BYTES: usize = 256;

/// Attempts of `task` that ended `migrated` at or after `since_ms` (the hourly cap counts these).
pub fn migrations_since(task: &Task, since_ms: u64) -> u32 {
    let n = task
        .attempts
        .iter()
        .filter(|a| a.outcome == Some(AttemptOutcome::Migrated) && a.ended_ms.is_some_and(|t| t >= since_ms))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Why the live attempt `token` of `task` on worker `from` may not be migrated at `now_ms`
/// (whatever the target); `None` when it may. `in_flight` is the task's current mark, if any.
pub fn refusal(
    task: &Task,
    token: u64,
    from: &str,
    in_flight: Option<&MigrateMark>,
    now_ms: u64,
    rules: &MigrateRules,
) -> Option<String> {
    let id = task.id;
    let Some(live) = task.live_attempt().filter(|a| a.fencing_token == token) else {
        return Some(format!("token {token} is not the live attempt of task {id}"));
    };
    if live.worker_id != from {
        return Some(format!("task {id} runs on worker {}, not {from}", live.worker_id));
    }
    if task.state != TaskState::Running {
        return Some(format!("task {id} is {}, not running", task.state));
    }
    if task.spec.failover != FailoverPolicy::Resume {
        return Some(format!("task {id} does not resume from checkpoints (failover {:?})", task.spec.failover));
    }
    if task.cancel_requested {
        return Some(format!("task {id} is being cancelled"));
    }
    if task.preempt_requested().is_some() {
        return Some(format!("task {id} is being preempted"));
    }
    if in_flight.is_some_and(|m| m.token == token) {
        return Some(format!("task {id} is already being migrated"));
    }
    let ran = now_ms.saturating_sub(live.started_ms.unwrap_or(now_ms));
    if ran < rules.min_runtime_ms {
        return Some(format!("task {id} has run {ran} ms, less than {} ms", rules.min_runtime_ms));
    }
    let recent = migrations_since(task, now_ms.saturating_sub(super::preempt::HOUR_MS));
    if recent >= rules.max_per_hour {
        let cap = rules.max_per_hour;
        return Some(format!("task {id} was migrated {recent} time(s) in the last hour (the cap is {cap})"));
    }
    None
}

impl State {
    /// The committed migration of `task`, if any (in flight or ended, until its next
    /// assignment).
    pub fn migration_of(&self, task: TaskId) -> Option<&MigrateMark> {
        self.migrations.get(&task)
    }

    /// The migration `task`'s last attempt ended with, if it did: the planner places the task
    /// on its target (`to`) when that worker is a candidate and fits, and otherwise not back on
    /// the worker it left (`from`) while another candidate fits.
    pub fn migration_target(&self, task: &Task) -> Option<&MigrateMark> {
        let mark = self.migrations.get(&task.id)?;
        let last = task.current_attempt()?;
        (last.fencing_token == mark.token && last.outcome == Some(AttemptOutcome::Migrated)).then_some(mark)
    }

    /// Why the target `to` cannot take `task` now; `None` when it can.
    fn target_refusal(&self, task: &Task, from: &str, to: &str) -> Option<String> {
        if to == from {
            return Some(format!("the target is the worker it runs on ({to})"));
        }
        let Some(w) = self.workers.get(to) else {
            return Some(format!("worker {to} is not registered"));
        };
        if w.state != WorkerState::Active {
            return Some(format!("worker {to} is {}", w.state));
        }
        if let Some((k, v)) = task.spec.constraints.iter().find(|(k, v)| w.labels.get(*k) != Some(*v)) {
            return Some(format!("worker {to} lacks label {k}={v} required by task {}", task.id));
        }
        let used = self.live.get(to).map_or(0, |s| s.len());
        if used >= w.slots as usize {
            return Some(format!("worker {to} already runs {used} of {} slots", w.slots));
        }
        None
    }

    /// `Command::Migrate`: marks `attempt` to stop and requeue towards `to` when it passes
    /// [`refusal`] and the target can take it; otherwise rejected, with why, and nothing changes.
    pub(crate) fn migrate(
        &mut self,
        now_ms: u64,
        attempt: AttemptId,
        from: String,
        to: String,
        why: String,
        rules: MigrateRules,
    ) -> Response {
        let Some(task) = self.tasks.get(&attempt.task_id) else {
            let msg = format!("task {} does not exist", attempt.task_id);
            return Response::Rejected(Rejection::new(RejectCode::NotFound, msg));
        };
        let in_flight = self.migrations.get(&attempt.task_id);
        let refused = refusal(task, attempt.token, &from, in_flight, now_ms, &rules)
            .or_else(|| self.target_refusal(task, &from, &to));
        if let Some(msg) = refused {
            return Response::Rejected(Rejection::new(RejectCode::InvalidTransition, msg));
        }
        let why = super::task::truncate(why, MAX_MIGRATE_WHY_BYTES, false);
        let mark = MigrateMark { token: attempt.token, from, to, at_ms: now_ms, why };
        self.migrations.insert(attempt.task_id, mark.clone());
        let task = self.tasks.get_mut(&attempt.task_id).expect("the task was just found");
        task.touch(now_ms);
        Response::Migrating { attempt, mark }
    }

    /// The migration mark of `task_id` when its live attempt `token` was asked to stop by one:
    /// its worker is told `migrated`.
    pub fn migrate_requested(&self, task: &Task) -> Option<&MigrateMark> {
        let live = task.live_attempt()?;
        self.migrations.get(&task.id).filter(|m| m.token == live.fencing_token)
    }

    /// What the attempt `token` of `task_id` ending `outcome` should say about its migration.
    pub(crate) fn migration_note(&self, task_id: TaskId, token: u64, outcome: AttemptOutcome) -> Option<String> {
        if outcome != AttemptOutcome::Migrated {
            return None;
        }
        self.migrations.get(&task_id).filter(|m| m.token == token).map(MigrateMark::describe)
    }
}

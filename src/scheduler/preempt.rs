//! Preemption by priority: the rules a victim must pass, and how apply marks victims.
//!
//! 1. The leader's dispatcher finds a waiting task that fits no worker now but would fit on one
//!    worker once some running attempts of lower priority stopped
//!    ([`super::placement::Planner::preemption`] picks them, in [`victim_order`]).
//! 2. It commits `Command::Preempt` with the victims and the cluster's [`PreemptRules`].
//! 3. Apply ([`State::preempt`]) re-checks each victim with [`refusal`] on the state it finds
//!    and marks those that pass (`Task::preempted_by`); the others are skipped, with why. A
//!    marked attempt stays current: its final checkpoint, sent during the grace, is accepted.
//! 4. The worker's next heartbeat is answered `stop (preempted)`
//!    ([`super::verdict::heartbeat`]): it writes `preempted` to `$TASKRAFT_STOP_REASON_FILE`,
//!    sends TERM to the process group, waits its kill grace, then KILL, and reports the attempt
//!    ended `preempted`.
//! 5. The task goes back to `pending` at once with its checkpoint, keeping its place in the
//!    queue (`ready.rs`); the attempt does not count against `retry.max_attempts`.
//!
//! A victim must be running (started) for at least `min_runtime_ms`, be preemptible (its spec's
//! `preemptible`, or when absent priority below [`PREEMPTIBLE_BELOW`]), be at least `gap` priority points below the task that needs the
//! room, not be cancelled or already asked to stop, and have been preempted fewer than
//! `max_per_hour` times in the last hour (counted from its attempts).
//!
//! What this does not do: it never preempts across workers for one task (all victims are on one
//! worker), and it does not reserve the freed room: the dispatcher holds a victim back while its
//! preemptor still waits (see `placement::preempt`), for at most [`PREEMPTOR_HEAD_START_MS`].

use serde::{Deserialize, Serialize};

use super::command::{RejectCode, Rejection, Response};
use super::state::State;
use super::task::{AttemptId, MAX_PREEMPTED_RECORDS, PREEMPTIBLE_BELOW, PreemptMark, Task, TaskId, TaskState};

/// Default of [`PreemptRules::gap`] (Nomad's).
pub const DEFAULT_PREEMPTION_GAP: u32 = 10;
/// Default of [`PreemptRules::min_runtime_ms`]: a victim keeps at least this much of a run.
pub const DEFAULT_PREEMPT_MIN_RUNTIME_MS: u64 = 10_000;
/// Default of [`PreemptRules::max_per_hour`].
pub const DEFAULT_MAX_PREEMPTIONS_PER_HOUR: u32 = 3;
/// The window of the thrash cap.
pub const HOUR_MS: u64 = 3_600_000;
/// How long a preempted task lets the task that preempted it be placed first.
pub const PREEMPTOR_HEAD_START_MS: u64 = 60_000;

/// The rules a victim must pass. The leader's options, carried inside `Command::Preempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreemptRules {
    /// A victim's priority is at most the preemptor's minus this.
    pub gap: u32,
    /// A victim has run (since its start report) at least this long.
    pub min_runtime_ms: u64,
    /// A task is preempted at most this many times per hour.
    pub max_per_hour: u32,
}

impl Default for PreemptRules {
    fn default() -> Self {
        PreemptRules {
            gap: DEFAULT_PREEMPTION_GAP,
            min_runtime_ms: DEFAULT_PREEMPT_MIN_RUNTIME_MS,
            max_per_hour: DEFAULT_MAX_PREEMPTIONS_PER_HOUR,
        }
    }
}

/// The leader's choice: stop `victims`, all on `worker`, so that `for_task` fits there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preemption {
    /// The waiting task.
    pub for_task: TaskId,
    /// The worker the victims run on.
    pub worker: String,
    /// The attempts to stop, in victim order.
    pub victims: Vec<AttemptId>,
}

/// Why the live attempt `token` of `victim` may not be preempted for a task of priority
/// `for_priority` at `now_ms`; `None` when it may.
pub fn refusal(victim: &Task, token: u64, for_priority: u32, now_ms: u64, rules: &PreemptRules) -> Option<String> {
    let Some(live) = victim.live_attempt().filter(|a| a.fencing_token == token) else {
        return Some(format!("token {token} is not the live attempt of task {}", victim.id));
    };
    if victim.state != TaskState::Running {
        return Some(format!("task {} is {}, not running", victim.id, victim.state));
    }
    if victim.cancel_requested {
        return Some(format!("task {} is being cancelled", victim.id));
    }
    if victim.preempt_requested().is_some() {
        return Some(format!("task {} is already being preempted", victim.id));
    }
    if !victim.is_preemptible() {
        let why = match victim.spec.preemptible {
            Some(_) => "it says preemptible=false".to_string(),
            None => format!("priority {} is not below {PREEMPTIBLE_BELOW}", victim.spec.priority),
        };
        return Some(format!("task {} is not preemptible: {why}", victim.id));
    }
    if victim.spec.priority.saturating_add(rules.gap) > for_priority {
        return Some(format!(
            "task {} has priority {}, not {} below {for_priority}",
            victim.id, victim.spec.priority, rules.gap
        ));
    }
    let ran = now_ms.saturating_sub(live.started_ms.unwrap_or(now_ms));
    if ran < rules.min_runtime_ms {
        return Some(format!("task {} has run {ran} ms, less than {} ms", victim.id, rules.min_runtime_ms));
    }
    let recent = victim.preemptions_since(now_ms.saturating_sub(HOUR_MS));
    if recent >= rules.max_per_hour {
        let cap = rules.max_per_hour;
        return Some(format!("task {} was preempted {recent} time(s) in the last hour (the cap is {cap})", victim.id));
    }
    None
}

/// Work a victim would lose if stopped at `now_ms`: the time since its attempt's last committed
/// checkpoint, or since it started when it has none.
pub fn work_lost_ms(victim: &Task, now_ms: u64) -> u64 {
    let Some(live) = victim.live_attempt() else { return 0 };
    let checkpoint = victim.checkpoint.as_ref().filter(|c| c.token == live.fencing_token).map(|c| c.at_ms);
    let since = checkpoint.or(live.started_ms).unwrap_or(live.assigned_ms);
    now_ms.saturating_sub(since)
}

/// The order victims are taken in: lowest priority, then least work lost, then newest start,
/// then lowest id. Smaller keys go first.
pub fn victim_order(victim: &Task, now_ms: u64) -> (u32, u64, std::cmp::Reverse<u64>, TaskId) {
    let started = victim.live_attempt().and_then(|a| a.started_ms).unwrap_or(0);
    (victim.spec.priority, work_lost_ms(victim, now_ms), std::cmp::Reverse(started), victim.id)
}

/// The task that preempted `task`'s last attempt, when `task` should let it be placed first:
/// the preemptor still waits and the preemption is less than [`PREEMPTOR_HEAD_START_MS`] old.
pub(crate) fn yields_to(state: &State, task: &Task, now_ms: u64) -> Option<TaskId> {
    let mark = task.preempted_by.as_deref()?;
    let last = task.current_attempt()?;
    if last.fencing_token != mark.token || last.outcome != Some(super::task::AttemptOutcome::Preempted) {
        return None;
    }
    if now_ms >= mark.at_ms.saturating_add(PREEMPTOR_HEAD_START_MS) {
        return None;
    }
    let waiting = state.task(mark.by).is_some_and(|p| matches!(p.state, TaskState::Pending | TaskState::RetryWait));
    waiting.then_some(mark.by)
}

impl State {
    /// `Command::Preempt`: marks the victims that pass [`refusal`], skips the others.
    pub(crate) fn preempt(
        &mut self,
        now_ms: u64,
        for_task: TaskId,
        victims: Vec<AttemptId>,
        rules: PreemptRules,
    ) -> Response {
        let Some(preemptor) = self.tasks.get(&for_task) else {
            return Response::Rejected(Rejection::new(RejectCode::NotFound, format!("task {for_task} does not exist")));
        };
        if !matches!(preemptor.state, TaskState::Pending | TaskState::RetryWait) {
            let msg = format!("task {for_task} is {}; only a waiting task may preempt", preemptor.state);
            return Response::Rejected(Rejection::new(RejectCode::InvalidTransition, msg));
        }
        let for_priority = preemptor.spec.priority;
        let mut marked = Vec::new();
        let mut skipped = Vec::new();
        for v in victims {
            let why = match self.tasks.get(&v.task_id) {
                None => Some(format!("task {} does not exist", v.task_id)),
                Some(_) if v.task_id == for_task => Some("a task cannot preempt itself".to_string()),
                Some(t) => refusal(t, v.token, for_priority, now_ms, &rules),
            };
            if let Some(why) = why {
                skipped.push((v, why));
                continue;
            }
            let task = self.tasks.get_mut(&v.task_id).expect("the victim was just found");
            task.preempted_by = Some(Box::new(PreemptMark { by: for_task, at_ms: now_ms, token: v.token }));
            task.touch(now_ms);
            marked.push(v);
        }
        if !marked.is_empty() {
            let task = self.tasks.get_mut(&for_task).expect("the preemptor was just found");
            task.preempted.extend(marked.iter().copied());
            let over = task.preempted.len().saturating_sub(MAX_PREEMPTED_RECORDS);
            task.preempted.drain(..over);
            // A new version, but not a new update time: a waiting task's update time is when it
            // became ready, its place in the queue (`ready.rs`), which this must not move.
            task.version += 1;
        }
        Response::Preempted { marked, skipped }
    }
}

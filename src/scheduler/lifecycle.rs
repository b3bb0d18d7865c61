//! Attempts: how a task meets a worker, reports progress, ends, and what happens next.
//!
//! Fencing is the heart of it. An attempt's token is the log index of the `Assign` that created
//! it; only the task's *current, live* attempt may start, checkpoint or complete. Anything else
//! (a worker that was declared lost but kept running, a report that arrives twice) is refused
//! without touching the state, so a zombie can never overwrite the work of its successor.

use super::command::{
    AssignOutcome, AssignResult, AttemptEvent, AttemptReport, RejectCode, Rejection, Response, TaskStatus,
};
use super::cow::CowMap;
use super::result::{MAX_RESULT_BYTES, TaskResult};
use super::state::{State, TaskIndex, not_found};
use super::task::{
    Attempt, AttemptOutcome, Checkpoint, FailoverPolicy, MAX_CHECKPOINT_BYTES, MAX_ERROR_BYTES, MAX_OUTPUT_TAIL_BYTES,
    Task, TaskId, TaskState, truncate,
};
use super::worker::{WorkerInfo, WorkerRegistration, WorkerState};

/// Attempts a task may accumulate, lost ones included. Lost attempts do not count against
/// `retry.max_attempts` (a dying machine is not the task's fault), but a task that keeps
/// killing its workers must stop somewhere, and the attempt list must stay bounded.
pub const MAX_TOTAL_ATTEMPTS: usize = 200;

/// How an attempt ended, as reported.
pub(crate) struct AttemptEnd {
    pub(crate) outcome: AttemptOutcome,
    pub(crate) exit_code: Option<i32>,
    pub(crate) output_tail: String,
    pub(crate) error: Option<String>,
    /// What the attempt wrote to `$TASKRAFT_RESULT_OUT`.
    pub(crate) result: Option<Vec<u8>>,
}

/// What a task does after an attempt ends.
enum Next {
    /// Terminal state.
    Done(TaskState),
    /// Back to the queue after this many ms (0 = pending at once).
    Requeue(u64),
}

fn reject(code: RejectCode, message: String) -> Response {
    Response::Rejected(Rejection::new(code, message))
}

impl State {
    pub(crate) fn register_worker(&mut self, now_ms: u64, reg: WorkerRegistration) -> Response {
        if let Err(e) = reg.validate_replicated() {
            return reject(RejectCode::Invalid, format!("worker.{e}"));
        }
        let worker = match self.workers.get_mut(&reg.id) {
            // A restarted worker re-registers under its id. Draining survives the restart (it is
            // an operator's decision); a lost or removed worker starts a new incarnation.
            Some(w) => {
                if matches!(w.state, WorkerState::Lost | WorkerState::Removed) {
                    w.state = WorkerState::Active;
                    w.registered_ms = now_ms;
                }
                w.host = reg.host;
                w.pid = reg.pid;
                w.api_addr = reg.api_addr;
                w.slots = reg.slots;
                w.cpu_millis = reg.cpu_millis;
                w.memory_mib = reg.memory_mib;
                w.labels = reg.labels;
                w.updated_ms = now_ms;
                w.clone()
            }
            None => {
                let w = WorkerInfo::from_registration(reg, now_ms);
                self.workers.insert(w.id.clone(), w.clone());
                w
            }
        };
        Response::Worker { worker, affected: Vec::new() }
    }

    pub(crate) fn drain_worker(&mut self, now_ms: u64, worker_id: &str) -> Response {
        let Some(w) = self.workers.get_mut(worker_id) else {
            return reject(RejectCode::NotFound, format!("worker {worker_id} is not registered"));
        };
        match w.state {
            WorkerState::Active => {
                w.state = WorkerState::Draining;
                w.updated_ms = now_ms;
            }
            WorkerState::Draining => {}
            WorkerState::Lost | WorkerState::Removed => {
                let msg = format!("worker {worker_id} is {}; it must register again first", w.state);
                return reject(RejectCode::InvalidTransition, msg);
            }
        }
        Response::Worker { worker: w.clone(), affected: Vec::new() }
    }

    /// `WorkerLost` and `RemoveWorker`: every live attempt on the worker ends `lost`, and each
    /// task follows its failover policy. Idempotent: a second loss finds nothing live.
    pub(crate) fn worker_gone(&mut self, now_ms: u64, worker_id: &str, to: WorkerState) -> Response {
        let Some(w) = self.workers.get_mut(worker_id) else {
            return reject(RejectCode::NotFound, format!("worker {worker_id} is not registered"));
        };
        // A removed worker stays removed when its (late) lease expiry arrives.
        if w.state != to && w.state != WorkerState::Removed {
            w.state = to;
            w.updated_ms = now_ms;
        }
        let worker = w.clone();
        let why = format!("worker {worker_id} {}", if to == WorkerState::Removed { "removed" } else { "lost" });
        let mut affected = Vec::new();
        for task_id in self.live.remove(worker_id).unwrap_or_default() {
            let key = self.tasks.get(&task_id).and_then(|t| t.spec.concurrency_key.clone());
            self.release_permit(task_id, key.as_deref());
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            let end = AttemptEnd {
                outcome: AttemptOutcome::Lost,
                exit_code: None,
                output_tail: String::new(),
                error: Some(why.clone()),
                result: None,
            };
            finish_attempt(task, &mut self.index, end, now_ms);
            self.ready.sync(task);
            affected.push(TaskStatus::of(task));
            if task.is_terminal() {
                self.settle_dependents(task_id, now_ms);
            }
        }
        Response::Worker { worker, affected }
    }

    pub(crate) fn assign(&mut self, log_index: u64, now_ms: u64, assignments: Vec<(TaskId, String)>) -> Response {
        let results = assignments
            .into_iter()
            .map(|(task_id, worker_id)| {
                let outcome = match self.assign_one(log_index, now_ms, task_id, &worker_id) {
                    Ok(outcome) => outcome,
                    Err(rejection) => AssignOutcome::Rejected(rejection),
                };
                AssignResult { task_id, worker_id, outcome }
            })
            .collect();
        Response::Assigned { results }
    }

    fn assign_one(
        &mut self,
        log_index: u64,
        now_ms: u64,
        task_id: TaskId,
        worker_id: &str,
    ) -> Result<AssignOutcome, Rejection> {
        let task = self.tasks.get_mut(&task_id).ok_or_else(|| not_found(task_id))?;
        match (task.state, task.retry_at_ms) {
            (TaskState::Pending, _) => {}
            (TaskState::RetryWait, Some(at)) if at > now_ms => {
                let msg = format!("task {task_id} waits to retry until {at} (now {now_ms})");
                return Err(Rejection::new(RejectCode::InvalidTransition, msg));
            }
            (TaskState::RetryWait, _) => {}
            (state, _) => {
                let msg = format!("task {task_id} is {state}; only pending or due retry_wait tasks can be assigned");
                return Err(Rejection::new(RejectCode::InvalidTransition, msg));
            }
        }
        let unknown = || format!("worker {worker_id} is not registered");
        let worker = self.workers.get(worker_id).ok_or_else(|| Rejection::new(RejectCode::NotFound, unknown()))?;
        if worker.state != WorkerState::Active {
            let msg = format!("worker {worker_id} is {}", worker.state);
            return Err(Rejection::new(RejectCode::WorkerUnavailable, msg));
        }
        if let Some((k, v)) = task.spec.constraints.iter().find(|(k, v)| worker.labels.get(*k) != Some(*v)) {
            let msg = format!("worker {worker_id} lacks label {k}={v} required by task {task_id}");
            return Err(Rejection::new(RejectCode::ConstraintMismatch, msg));
        }
        let used = self.live.get(worker_id).map_or(0, |s| s.len());
        if used >= worker.slots as usize {
            let msg = format!("worker {worker_id} already runs {used} of {} slots", worker.slots);
            return Err(Rejection::new(RejectCode::WorkerFull, msg));
        }
        let key = task.spec.concurrency_key.clone();
        self.check_permit(task_id, key.as_deref())?;
        self.take_permit(task_id, key.as_deref());
        let task = self.tasks.get_mut(&task_id).ok_or_else(|| not_found(task_id))?;
        let number = task.attempts.len() as u32 + 1;
        // Most tasks run once: room for exactly one attempt, not the four a first push reserves.
        if task.attempts.is_empty() {
            task.attempts.reserve_exact(1);
        }
        task.attempts.push(Attempt {
            number,
            worker_id: worker_id.to_string(),
            fencing_token: log_index,
            assigned_ms: now_ms,
            started_ms: None,
            ended_ms: None,
            outcome: None,
            exit_code: None,
            output_tail: String::new(),
            error: None,
        });
        task.retry_at_ms = None;
        // A migration's hint is used up (whichever worker took the task).
        self.migrations.remove(&task_id);
        self.index.set_state(task, TaskState::Assigned);
        task.touch(now_ms);
        self.ready.sync(task);
        self.live.entry(worker_id.to_string()).or_default().insert(task_id);
        Ok(AssignOutcome::Assigned { attempt: number, token: log_index, task: Task::clone(task) })
    }

    pub(crate) fn attempt_started(&mut self, now_ms: u64, task_id: TaskId, token: u64) -> Response {
        let task = match fence(&mut self.tasks, task_id, token) {
            Ok(task) => task,
            Err(Fenced::Ended(msg)) | Err(Fenced::Stale(msg)) => {
                return reject(RejectCode::StaleToken, msg);
            }
            Err(Fenced::Missing) => return Response::Rejected(self.missing_task(task_id)),
        };
        if task.live_attempt().is_some_and(|a| a.started_ms.is_some()) {
            let msg = format!("task {task_id} token {token} already reported started");
            return reject(RejectCode::Duplicate, msg);
        }
        mark_started(task, &mut self.index, now_ms);
        task.touch(now_ms);
        Response::AttemptStarted { status: TaskStatus::of(task) }
    }

    pub(crate) fn checkpoint(&mut self, now_ms: u64, task_id: TaskId, token: u64, data: Vec<u8>) -> Response {
        let task = match fence(&mut self.tasks, task_id, token) {
            Ok(task) => task,
            Err(Fenced::Ended(msg)) | Err(Fenced::Stale(msg)) => {
                return reject(RejectCode::StaleToken, msg);
            }
            Err(Fenced::Missing) => return Response::Rejected(self.missing_task(task_id)),
        };
        if data.len() > MAX_CHECKPOINT_BYTES {
            let msg = format!("data: checkpoint is {} bytes; the limit is {MAX_CHECKPOINT_BYTES}", data.len());
            return reject(RejectCode::Invalid, msg);
        }
        // A checkpoint proves the process runs, even if the start report was lost.
        mark_started(task, &mut self.index, now_ms);
        let attempt = task.attempts.len() as u32;
        task.checkpoint = Some(Box::new(Checkpoint { data, attempt, token, at_ms: now_ms }));
        task.touch(now_ms);
        Response::CheckpointSaved { status: TaskStatus::of(task) }
    }

    pub(crate) fn complete(&mut self, now_ms: u64, task_id: TaskId, token: u64, mut end: AttemptEnd) -> Response {
        // Where a migrated attempt went and why, on the attempt itself (`task get` shows it).
        // Read before the fence: a stale report finds no mark of its token anyway.
        if let Some(note) = self.migration_note(task_id, token, end.outcome) {
            end.error = Some(end.error.take().map_or(note.clone(), |e| format!("{note}: {e}")));
        }
        let task = match fence(&mut self.tasks, task_id, token) {
            Ok(task) => task,
            // The worker retried a report that was applied: tell it so it can stop retrying.
            Err(Fenced::Ended(msg)) => return reject(RejectCode::Duplicate, msg),
            Err(Fenced::Stale(msg)) => return reject(RejectCode::StaleToken, msg),
            Err(Fenced::Missing) => return Response::Rejected(self.missing_task(task_id)),
        };
        let worker_id = task.live_attempt().map(|a| a.worker_id.clone()).unwrap_or_default();
        let key = task.spec.concurrency_key.clone();
        finish_attempt(task, &mut self.index, end, now_ms);
        self.ready.sync(task);
        let terminal = task.is_terminal();
        self.release_permit(task_id, key.as_deref());
        if let Some(set) = self.live.get_mut(&worker_id) {
            set.remove(&task_id);
            if set.is_empty() {
                self.live.remove(&worker_id);
            }
        }
        if terminal {
            self.settle_dependents(task_id, now_ms);
        }
        match self.tasks.get(&task_id) {
            Some(task) => Response::Completed { task: Task::clone(task) },
            None => Response::Rejected(not_found(task_id)),
        }
    }

    /// One worker's batch of reports, each judged on its own, in order. Only the worker an
    /// attempt was assigned to may report on it: anyone else is refused `wrong_worker`, so a
    /// confused or malicious worker cannot end another worker's attempt.
    pub(crate) fn reports(&mut self, now_ms: u64, worker_id: &str, reports: Vec<AttemptReport>) -> Response {
        let mut results = Vec::with_capacity(reports.len());
        for AttemptReport { attempt, event } in reports {
            let owner = self
                .tasks
                .get(&attempt.task_id)
                .and_then(|t| t.current_attempt())
                .filter(|a| a.fencing_token == attempt.token)
                .map(|a| a.worker_id.as_str());
            if let Some(owner) = owner
                && owner != worker_id
            {
                let msg = format!("attempt {attempt} belongs to worker {owner}, not {worker_id}");
                results.push(reject(RejectCode::WrongWorker, msg));
                continue;
            }
            results.push(match event {
                AttemptEvent::Started => self.attempt_started(now_ms, attempt.task_id, attempt.token),
                AttemptEvent::Ended { outcome, exit_code, output_tail, error, result } => {
                    let result = result.map(|r| r.0);
                    let end = AttemptEnd { outcome, exit_code, output_tail, error, result };
                    self.complete(now_ms, attempt.task_id, attempt.token, end)
                }
            });
        }
        Response::Reports { results }
    }

    /// Whether parent `id` succeeded. A forgotten parent of a blocked child did: a parent that
    /// failed or was cancelled fails its blocked children at once, so only succeeded parents of
    /// a still-blocked child can have been forgotten since.
    pub(crate) fn parent_succeeded(&self, id: TaskId) -> bool {
        self.tasks.get(&id).map_or_else(|| self.task_forgotten(id), |p| p.state == TaskState::Succeeded)
    }

    /// A task just became terminal: children blocked on it are released when all their parents
    /// succeeded, or fail when it did not succeed — transitively, with a worklist instead of
    /// recursion so a long chain cannot overflow the stack.
    pub(crate) fn settle_dependents(&mut self, root: TaskId, now_ms: u64) {
        let mut work = vec![root];
        while let Some(parent) = work.pop() {
            self.run_ended(parent, now_ms);
            self.workflow_task_ended(parent, now_ms);
            let Some(children) = self.dependents.remove(&parent) else {
                continue;
            };
            let Some(parent_state) = self.tasks.get(&parent).map(|t| t.state) else {
                continue;
            };
            for child in children {
                let ready = match self.tasks.get(&child) {
                    Some(t) if t.state == TaskState::Blocked => {
                        t.spec.depends_on.iter().all(|&p| self.parent_succeeded(p))
                    }
                    _ => continue,
                };
                let Some(task) = self.tasks.get_mut(&child) else {
                    continue;
                };
                if parent_state == TaskState::Succeeded {
                    if ready {
                        self.index.set_state(task, TaskState::Pending);
                        task.touch(now_ms);
                        self.ready.sync(task);
                    }
                } else {
                    task.last_error = Some(format!("dependency {parent} ended {parent_state}").into());
                    task.finished_ms = Some(now_ms);
                    self.index.set_state(task, TaskState::Failed);
                    task.touch(now_ms);
                    self.ready.sync(task);
                    work.push(child);
                }
            }
        }
    }
}

/// Why a report was fenced off.
enum Fenced {
    Missing,
    /// The token is the current attempt's, but that attempt already ended.
    Ended(String),
    /// The token is not the current attempt's.
    Stale(String),
}

/// The task, if `token` is its current attempt's token and that attempt is live. Checked before
/// the task is taken to change, so a fenced-off report copies nothing a snapshot shares.
fn fence(tasks: &mut CowMap<TaskId, Task>, task_id: TaskId, token: u64) -> Result<&mut Task, Fenced> {
    let task = tasks.get(&task_id).ok_or(Fenced::Missing)?;
    match task.current_attempt() {
        Some(a) if a.fencing_token == token && a.is_live() => {}
        Some(a) if a.fencing_token == token => {
            return Err(Fenced::Ended(format!(
                "attempt {} of task {task_id} (token {token}) already ended {}",
                a.number,
                a.outcome.map_or("", AttemptOutcome::as_str)
            )));
        }
        Some(a) => {
            return Err(Fenced::Stale(format!(
                "token {token} is not the current token of task {task_id} (attempt {}, token {})",
                a.number, a.fencing_token
            )));
        }
        None => return Err(Fenced::Stale(format!("task {task_id} has no attempt; token {token} is stale"))),
    }
    Ok(tasks.get_mut(&task_id).expect("the task was just found"))
}

fn mark_started(task: &mut Task, index: &mut TaskIndex, now_ms: u64) {
    if let Some(a) = task.attempts.last_mut()
        && a.started_ms.is_none()
    {
        a.started_ms = Some(now_ms);
    }
    index.set_state(task, TaskState::Running);
}

/// Ends the live attempt of `task` and moves the task on: success and cancel are final; a
/// failure retries with backoff while `retry.max_attempts` allows; a lost attempt follows the
/// failover policy. Under `restart` the checkpoint is dropped before any new attempt, under
/// `resume` (and `fail`, for ordinary retries) it is handed to the next attempt.
fn finish_attempt(task: &mut Task, index: &mut TaskIndex, end: AttemptEnd, now_ms: u64) {
    let attempt = task.attempts.last_mut().filter(|a| a.is_live());
    let attempt = attempt.expect("finish_attempt is only called on a task with a live attempt");
    attempt.outcome = Some(end.outcome);
    attempt.ended_ms = Some(now_ms);
    attempt.exit_code = end.exit_code;
    attempt.output_tail = truncate(end.output_tail, MAX_OUTPUT_TAIL_BYTES, true);
    attempt.error = end.error.map(|e| truncate(e, MAX_ERROR_BYTES, false));
    // Who preempted it, on the attempt itself (`task get` shows it), whatever the worker wrote.
    if end.outcome == AttemptOutcome::Preempted
        && let Some(m) = task.preempted_by.as_deref().filter(|m| m.token == attempt.fencing_token)
    {
        let by = format!("preempted by task {}", m.by);
        let error = attempt.error.take().map_or(by.clone(), |e| format!("{by}: {e}"));
        attempt.error = Some(truncate(error, MAX_ERROR_BYTES, false));
    }
    // Only the fenced, current attempt gets here, so a stale attempt's result never lands.
    // The task keeps the result of the attempt that ended last, even none: a retry that writes
    // nothing must not pass on its failed predecessor's answer. Too big a result is dropped
    // (workers never send one; refusing the completion instead would leave the attempt live).
    task.result = match end.result {
        Some(data) if data.len() > MAX_RESULT_BYTES => {
            let note = format!("result of {} bytes dropped: the limit is {MAX_RESULT_BYTES}", data.len());
            let error = attempt.error.take().map_or(note.clone(), |e| format!("{e}; {note}"));
            attempt.error = Some(truncate(error, MAX_ERROR_BYTES, false));
            None
        }
        Some(data) => {
            Some(Box::new(TaskResult { data, attempt: attempt.number, token: attempt.fencing_token, at_ms: now_ms }))
        }
        None => None,
    };
    let summary = summarize(attempt);
    // A preempted attempt had its grace to save a final checkpoint: keep it, even under
    // `restart` (that policy is about attempts that vanished with their worker).
    let stopped_by_leader = matches!(end.outcome, AttemptOutcome::Preempted | AttemptOutcome::Migrated);
    let restart = task.spec.failover == FailoverPolicy::Restart && !stopped_by_leader;
    let next = match end.outcome {
        AttemptOutcome::Succeeded => Next::Done(TaskState::Succeeded),
        AttemptOutcome::Cancelled => Next::Done(TaskState::Cancelled),
        _ if task.cancel_requested => Next::Done(TaskState::Cancelled),
        AttemptOutcome::Lost if task.spec.failover == FailoverPolicy::Fail => Next::Done(TaskState::Failed),
        AttemptOutcome::Lost => Next::Requeue(0),
        // Stopped for a task of higher priority: back to the queue at once, whatever the
        // failover policy (the task did nothing wrong and its worker is fine).
        AttemptOutcome::Preempted => Next::Requeue(0),
        // Moved off an overloaded worker: the same, heading for the migration's target.
        AttemptOutcome::Migrated => Next::Requeue(0),
        AttemptOutcome::Failed | AttemptOutcome::TimedOut => {
            let failures = task.failures();
            if failures >= task.spec.retry.max_attempts {
                Next::Done(TaskState::Failed)
            } else {
                Next::Requeue(task.spec.retry.backoff_ms(failures))
            }
        }
    };
    if let Some(summary) = summary {
        task.last_error = Some(summary.into());
    }
    let next = match next {
        Next::Requeue(_) if task.attempts.len() >= MAX_TOTAL_ATTEMPTS => {
            task.last_error = Some(format!("gave up after {MAX_TOTAL_ATTEMPTS} attempts").into());
            Next::Done(TaskState::Failed)
        }
        next => next,
    };
    match next {
        Next::Done(state) => {
            task.finished_ms = Some(now_ms);
            task.retry_at_ms = None;
            index.set_state(task, state);
        }
        Next::Requeue(wait) => {
            if restart {
                task.checkpoint = None;
            }
            let (state, at) = if wait == 0 {
                (TaskState::Pending, None)
            } else {
                (TaskState::RetryWait, Some(now_ms.saturating_add(wait)))
            };
            task.retry_at_ms = at;
            index.set_state(task, state);
        }
    }
    task.touch(now_ms);
}

/// One line about an attempt that did not succeed, for `Task::last_error`.
fn summarize(a: &Attempt) -> Option<String> {
    let outcome = a.outcome?;
    // Being preempted is not the task's problem: it keeps its last error, if any.
    if matches!(
        outcome,
        AttemptOutcome::Succeeded | AttemptOutcome::Cancelled | AttemptOutcome::Preempted | AttemptOutcome::Migrated
    ) {
        return None;
    }
    let what = format!("attempt {} {}", a.number, outcome.as_str());
    Some(match (&a.error, a.exit_code) {
        (Some(e), _) => format!("{what}: {e}"),
        (None, Some(code)) => format!("{what}: exit code {code}"),
        (None, None) => what,
    })
}

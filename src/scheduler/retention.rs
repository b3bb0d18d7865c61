//! Retention: the state forgets what finished long ago, so that it stays bounded however long
//! the cluster runs.
//!
//! The leader proposes [`Command::Forget`](super::Command::Forget) from its trusted clock (as it
//! proposes schedule fires); apply decides from the state alone what to forget, so every replica
//! forgets the same records. What goes, oldest `finished_ms` first:
//! - a terminal task that is not part of a workflow: with its attempts, output tail, checkpoint,
//!   result, its idempotency key, and its entry in its schedule's runs;
//! - a *settled* workflow (terminal, no task still live) as one unit: the workflow, every task
//!   of its nodes, its idempotency key and its schedule run entry.
//!
//! A record goes when it finished before `before_ms`, or while more than `keep` finished tasks
//! (standalone ones plus the tasks of settled workflows) remain; at most `max` tasks per command
//! (the leader proposes [`MAX_FORGET_PER_COMMAND`]), except that a workflow bigger than `max`
//! goes whole, alone.
//!
//! A forgotten task can still be the parent of a blocked task (one of several parents, the
//! others still running): it succeeded, since a parent that failed or was cancelled fails its
//! blocked children at once, so readiness counts a forgotten parent as succeeded.
//!
//! Nothing else ever removes a task or a workflow, so an id below the next id that is absent
//! was forgotten: reads answer `forgotten` (HTTP 404 with that code) instead of `not_found`.
//! A schedule remembers how many of its runs were forgotten and the newest forgotten nominal
//! time ([`ForgottenRuns`]): a backfill at or before it is refused, since whether that time ran
//! is no longer known.

use imbl::OrdSet;
use serde::{Deserialize, Serialize};

use super::command::{RejectCode, Rejection, Response};
use super::schedule::ScheduleId;
use super::state::State;
use super::task::{Task, TaskId, TaskOrigin};
use super::workflow::{Workflow, WorkflowId, WorkflowOrigin};

/// Default retention horizon: finished records are forgotten 7 days after they finished.
pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// Default bound on finished tasks kept, whatever their age (about 1 GB of state on a replica
/// at the measured ~1 KB per task).
pub const DEFAULT_KEEP_FINISHED: u64 = 1_000_000;
/// Most tasks one `Forget` removes (a workflow bigger than this still goes whole, alone). At a
/// few µs per task, one entry's apply stays under about 10 ms; the leader proposes the next
/// one at once while more are due.
pub const MAX_FORGET_PER_COMMAND: u32 = 2_000;

/// What retention forgot of one schedule's runs (format 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgottenRuns {
    /// Runs forgotten: the runs index holds `Schedule::runs` minus these.
    pub count: u64,
    /// The newest nominal time of a forgotten calendar (or backfill) run, if any: a backfill at
    /// or before it could repeat a run, so it is refused.
    pub calendar_through_ms: Option<u64>,
}

/// Settled workflows by `(finished_ms, id)`, oldest first, with the number of their tasks.
/// Derived: never serialized, rebuilt on decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SettledWorkflows {
    by_finish: OrdSet<(u64, WorkflowId)>,
    tasks: u64,
}

impl SettledWorkflows {
    fn key(wf: &Workflow) -> (u64, WorkflowId) {
        (wf.finished_ms.unwrap_or(wf.updated_ms), wf.id)
    }

    fn task_count(wf: &Workflow) -> u64 {
        wf.nodes.iter().map(|n| n.tasks.len() as u64).sum()
    }

    /// Records that `wf` settled (called once, at that transition).
    pub(crate) fn insert(&mut self, wf: &Workflow) {
        if self.by_finish.insert(Self::key(wf)).is_none() {
            self.tasks += Self::task_count(wf);
        }
    }

    fn remove(&mut self, wf: &Workflow) {
        if self.by_finish.remove(&Self::key(wf)).is_some() {
            self.tasks -= Self::task_count(wf);
        }
    }

    /// The index of `workflows` (after a decode, or to check the kept one).
    pub(crate) fn of<'a>(workflows: impl Iterator<Item = &'a Workflow>) -> Self {
        let mut s = SettledWorkflows::default();
        for wf in workflows.filter(|w| w.settled()) {
            s.insert(wf);
        }
        s
    }
}

/// One record to forget.
#[derive(Debug, Clone, Copy)]
enum Gone {
    Task(TaskId),
    Workflow(WorkflowId),
}

impl State {
    /// `Forget`: see the module docs. Deterministic: depends only on the state and the command.
    pub(crate) fn forget(&mut self, before_ms: u64, keep: u64, max: u32) -> Response {
        // `max` is the command's, exactly: a build's own bound would make replicas of two
        // builds replaying the same entry forget different records.
        let max = u64::from(max.max(1));
        let mut finished = self.index.finished.len() as u64 + self.settled.tasks;
        let mut budget = max;
        let mut plan = Vec::new();
        let mut more = false;
        let mut tasks = self.index.finished.iter().peekable();
        let mut flows = self.settled.by_finish.iter().peekable();
        loop {
            // The older head of the two queues (a task first on a tie: cheaper).
            let next = match (tasks.peek(), flows.peek()) {
                (Some(&&(t, id)), Some(&&(w, _))) if t <= w => (t, Gone::Task(id)),
                (_, Some(&&(w, id))) => (w, Gone::Workflow(id)),
                (Some(&&(t, id)), None) => (t, Gone::Task(id)),
                (None, None) => break,
            };
            let (finished_ms, gone) = next;
            if finished_ms >= before_ms && finished <= keep {
                break;
            }
            let cost = match gone {
                Gone::Task(_) => 1,
                Gone::Workflow(id) => self.workflows.get(&id).map_or(0, SettledWorkflows::task_count).max(1),
            };
            if cost > budget && !plan.is_empty() {
                // Due, but over what is left of this command's budget: the next one takes it.
                more = true;
                break;
            }
            budget = budget.saturating_sub(cost);
            finished = finished.saturating_sub(cost);
            plan.push(gone);
            match gone {
                Gone::Task(_) => tasks.next(),
                Gone::Workflow(_) => flows.next(),
            };
            if budget == 0 {
                // Spent: whether more is due is the next head's question, asked by `more` below.
                more = [tasks.peek().map(|&&(t, _)| t), flows.peek().map(|&&(w, _)| w)]
                    .into_iter()
                    .flatten()
                    .any(|t| t < before_ms || finished > keep);
                break;
            }
        }
        drop((tasks, flows));
        let (mut forgot_tasks, mut forgot_workflows) = (0, 0);
        for gone in plan {
            match gone {
                Gone::Task(id) => forgot_tasks += u64::from(self.forget_task(id)),
                Gone::Workflow(id) => {
                    forgot_tasks += self.forget_workflow(id);
                    forgot_workflows += 1;
                }
            }
        }
        Response::Forgot { tasks: forgot_tasks, workflows: forgot_workflows, more }
    }

    /// Workflow `id` just settled (terminal, no task live): retention may forget it from now on,
    /// and its schedule (if a schedule fired it) learns that the run ended.
    pub(crate) fn workflow_settled(&mut self, id: WorkflowId, now_ms: u64) {
        if let Some(wf) = self.workflows.get(&id) {
            self.settled.insert(wf);
        }
        self.workflow_run_ended(id, now_ms);
    }

    /// Removes one terminal task and everything that names it. False if it was not there.
    fn forget_task(&mut self, id: TaskId) -> bool {
        let Some(task) = self.tasks.discard(&id) else { return false };
        debug_assert!(task.is_terminal(), "forgetting live task {id}");
        self.index.remove(&task);
        self.migrations.remove(&id);
        if let Some(key) = &task.spec.idempotency_key
            && self.idempotency.get(key) == Some(&id)
        {
            self.idempotency.remove(key);
        }
        if let TaskOrigin::Schedule { schedule, nominal_ms, manual } = task.spec.origin {
            self.forget_run(schedule, nominal_ms, manual, id);
        }
        true
    }

    /// Removes a settled workflow with all its tasks; the number of tasks removed.
    fn forget_workflow(&mut self, id: WorkflowId) -> u64 {
        let Some(wf) = self.workflows.discard(&id) else { return 0 };
        self.settled.remove(&wf);
        let mut n = 0;
        for task in wf.nodes.iter().flat_map(|node| &node.tasks) {
            n += u64::from(self.forget_task(*task));
        }
        if let Some(key) = &wf.idempotency_key
            && self.workflow_keys.get(key) == Some(&id)
        {
            self.workflow_keys.remove(key);
        }
        if let WorkflowOrigin::Schedule { schedule, nominal_ms, manual } = wf.origin {
            self.forget_run(schedule, nominal_ms, manual, id);
        }
        n
    }

    /// Drops run `run` of a schedule from its runs index (if the schedule still exists).
    fn forget_run(&mut self, schedule: ScheduleId, nominal_ms: u64, manual: bool, run: u64) {
        let Some(runs) = self.schedule_runs.get_mut(&schedule) else { return };
        let index = if manual { &mut runs.manual } else { &mut runs.calendar };
        if index.get(&nominal_ms) != Some(&run) {
            return;
        }
        index.remove(&nominal_ms);
        let f = self.forgotten_runs.entry(schedule).or_default();
        f.count += 1;
        if !manual {
            f.calendar_through_ms = Some(f.calendar_through_ms.map_or(nominal_ms, |t| t.max(nominal_ms)));
        }
    }

    /// True if task `id` existed and retention forgot it.
    pub fn task_forgotten(&self, id: TaskId) -> bool {
        id > 0 && id < self.next_task_id && !self.tasks.contains_key(&id)
    }

    /// True if workflow `id` existed and retention forgot it.
    pub fn workflow_forgotten(&self, id: WorkflowId) -> bool {
        id > 0 && id < self.next_workflow_id && !self.workflows.contains_key(&id)
    }

    /// The refusal for a task that is not in the state: forgotten, or never created.
    pub(crate) fn missing_task(&self, id: TaskId) -> Rejection {
        if self.task_forgotten(id) {
            Rejection::new(RejectCode::Forgotten, forgotten_task_message(id))
        } else {
            super::state::not_found(id)
        }
    }

    /// True if a `Forget { before_ms, keep }` would forget something now.
    pub fn retention_due(&self, before_ms: u64, keep: u64) -> bool {
        let oldest_task = self.index.finished.get_min().map(|&(t, _)| t);
        let oldest_workflow = self.settled.by_finish.get_min().map(|&(t, _)| t);
        let old = [oldest_task, oldest_workflow].into_iter().flatten().any(|t| t < before_ms);
        old || self.finished_task_count() > keep
    }

    /// The refusal for a workflow that is not in the state: forgotten, or never created.
    pub(crate) fn missing_workflow(&self, id: WorkflowId) -> Rejection {
        if self.workflow_forgotten(id) {
            Rejection::new(RejectCode::Forgotten, forgotten_workflow_message(id))
        } else {
            super::workflow::apply::workflow_not_found(id)
        }
    }

    /// Finished tasks retention may forget, standalone or in settled workflows.
    pub fn finished_task_count(&self) -> u64 {
        self.index.finished.len() as u64 + self.settled.tasks
    }

    /// What retention forgot of schedule `id`'s runs.
    pub fn forgotten_runs(&self, id: ScheduleId) -> ForgottenRuns {
        self.forgotten_runs.get(&id).copied().unwrap_or_default()
    }

    /// Checks the retention indexes against the records. O(n): for tests.
    pub(crate) fn check_retention(&self) -> Result<(), String> {
        let settled = SettledWorkflows::of(self.workflows.values());
        if settled != self.settled {
            return Err("settled-workflow index drifted from the workflows".into());
        }
        if let Some(id) = self.forgotten_runs.keys().find(|id| !self.schedules.contains_key(id)) {
            return Err(format!("forgotten runs of schedule {id} outlived it"));
        }
        Ok(())
    }
}

/// The message of a `forgotten` answer for task `id`.
pub fn forgotten_task_message(id: TaskId) -> String {
    format!("task {id} finished longer ago than the retention horizon and was forgotten")
}

/// The message of a `forgotten` answer for workflow `id`.
pub fn forgotten_workflow_message(id: WorkflowId) -> String {
    format!("workflow {id} finished longer ago than the retention horizon and was forgotten")
}

/// Whether a task is one retention forgets on its own (terminal, not a workflow's).
pub(crate) fn forgets_alone(task: &Task) -> bool {
    task.is_terminal() && !matches!(task.spec.origin, TaskOrigin::Workflow { .. })
}

//! A schedule's runs: what a fire starts, how the schedule learns that a run ended, and the
//! index of runs by identity.
//!
//! A run is one object identified by (schedule, nominal time): a task, or, when the schedule's
//! spec holds a `workflow`, a workflow (its node tasks carry the workflow's origin, the workflow
//! carries the schedule's). The ids a schedule keeps (`live`, [`Runs`], a recorded trigger) and
//! the ids its answers list (`started`, `cancelled`) are therefore task ids for a task schedule
//! and workflow ids for a workflow schedule: one rule, no second index. It holds because a
//! schedule's [`RunKind`] is fixed once it started a run (`UpdateSchedule` may switch the kind
//! only while `runs == 0`), so an id is never read as the other kind.
//!
//! The path of a run:
//!
//! 1. a fire, trigger, backfill, resume or ended run calls [`State::start_run`]: a task is
//!    created like a submit's, a workflow like a `SubmitWorkflow`'s (roots start at once), with
//!    the schedule's origin; the run is filed under its identity and counted live;
//! 2. overlap `replace` and `DeleteSchedule { cancel_runs }` stop live runs through
//!    [`State::cancel_run`]: a task is cancelled (or asked to stop), a workflow is cancelled,
//!    which ends it at once;
//! 3. when the task or the workflow becomes terminal, [`State::run_ended`] or
//!    [`State::workflow_run_ended`] is called from that transition: the schedule forgets the
//!    run and a `buffer_one` schedule starts its buffered fire.

use super::Runs;
use super::ScheduleId;
use super::ScheduleSpec;
use crate::scheduler::command::QueryResponse;
use crate::scheduler::command::Response;
use crate::scheduler::state::State;
use crate::scheduler::task::TaskId;
use crate::scheduler::task::TaskOrigin;
use crate::scheduler::workflow::WorkflowOrigin;

/// What a schedule's runs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Each run is a task (`ScheduleSpec::task`).
    Task,
    /// Each run is a workflow (`ScheduleSpec::workflow`).
    Workflow,
}

impl RunKind {
    /// `task` or `workflow`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Task => "task",
            RunKind::Workflow => "workflow",
        }
    }
}

impl ScheduleSpec {
    /// Whether its runs are tasks or workflows.
    pub fn run_kind(&self) -> RunKind {
        if self.workflow.is_some() { RunKind::Workflow } else { RunKind::Task }
    }
}

/// A page of `s`'s runs in nominal order, after nominal time `after`; the cursor of the next
/// page is the last nominal time returned. A calendar run and a manual run can share a
/// millisecond (at most those two): a page never ends between them, so it may hold `limit + 1`.
pub(crate) fn runs_page(s: &Runs, after: Option<u64>, limit: usize) -> (Vec<TaskId>, Option<u64>) {
    let limit = limit.max(1);
    let from = match after {
        None => 0,
        Some(u64::MAX) => return (Vec::new(), None),
        Some(a) => a + 1,
    };
    let mut calendar = s.calendar.range(from..).peekable();
    let mut manual = s.manual.range(from..).peekable();
    let mut page: Vec<(u64, TaskId)> = Vec::with_capacity(limit.min(1024) + 1);
    while page.len() <= limit + 1 {
        let next = match (calendar.peek(), manual.peek()) {
            (Some(c), Some(m)) if m.0 < c.0 => manual.next(),
            (Some(_), _) => calendar.next(),
            (None, Some(_)) => manual.next(),
            (None, None) => None,
        };
        let Some((&n, &id)) = next else { break };
        page.push((n, id));
    }
    let mut cut = limit;
    if page.len() > cut && page[cut].0 == page[cut - 1].0 {
        cut += 1;
    }
    let more = page.len() > cut;
    page.truncate(cut);
    let cursor = if more { page.last().map(|&(n, _)| n) } else { None };
    (page.into_iter().map(|(_, id)| id).collect(), cursor)
}

impl State {
    /// Creates the run of `id` for `nominal` (a task, or a workflow) and records it. Returns
    /// the run's id.
    pub(super) fn start_run(&mut self, now_ms: u64, id: ScheduleId, nominal: u64, manual: bool) -> u64 {
        let s = self.schedules.get(&id).expect("schedule exists");
        let run = match &s.spec.workflow {
            Some(workflow) => {
                let mut spec = (**workflow).clone();
                if spec.name.is_empty() {
                    spec.name =
                        crate::scheduler::task::truncate(s.spec.name.clone(), crate::scheduler::MAX_NAME_BYTES, false);
                }
                // Checked by `validate_replicated` when the schedule was created or updated.
                let origin = WorkflowOrigin::Schedule { schedule: id, nominal_ms: nominal, manual };
                self.create_workflow(now_ms, spec, origin)
            }
            None => {
                let mut spec = s.spec.task.clone();
                if spec.name.is_empty() {
                    spec.name = s.spec.name.clone();
                }
                spec.origin = TaskOrigin::Schedule { schedule: id, nominal_ms: nominal, manual };
                self.create(spec, now_ms)
            }
        };
        let runs = self.schedule_runs.entry(id).or_default();
        if manual {
            runs.manual.insert(nominal, run)
        } else {
            runs.calendar.insert(nominal, run)
        };
        let s = self.schedules.get_mut(&id).expect("schedule exists");
        s.runs += 1;
        // A run can end inside its creation only if it is born terminal, which neither a task
        // nor a workflow ever is.
        s.live.insert(run);
        run
    }

    /// Whether a live run was already asked to stop (`replace` counts a run once).
    pub(super) fn run_stopping(&self, kind: RunKind, run: u64) -> bool {
        match kind {
            RunKind::Task => self.tasks.get(&run).is_none_or(|t| t.cancel_requested),
            RunKind::Workflow => self.workflows.get(&run).is_none_or(|w| w.state.is_terminal()),
        }
    }

    /// Cancels a run: a task ends now or is asked to stop, a workflow ends `cancelled` now.
    /// True when the cancel was applied.
    pub(super) fn cancel_run(&mut self, now_ms: u64, kind: RunKind, run: u64, reason: String) -> bool {
        match kind {
            RunKind::Task => matches!(self.cancel(None, now_ms, run, Some(reason)), Response::Cancelled { .. }),
            RunKind::Workflow => matches!(self.cancel_workflow(now_ms, run, Some(reason)), Response::Workflow { .. }),
        }
    }

    /// A task just became terminal: if it was a task schedule's live run, see [`Self::end_run`].
    pub(crate) fn run_ended(&mut self, task_id: TaskId, now_ms: u64) {
        if let Some((id, _)) = self.tasks.get(&task_id).and_then(|t| t.spec.origin.schedule_run()) {
            self.end_run(id, RunKind::Task, task_id, now_ms);
        }
    }

    /// A workflow just settled (ended, and its last live task too): if it was a workflow
    /// schedule's live run, see [`Self::end_run`].
    pub(crate) fn workflow_run_ended(&mut self, workflow: u64, now_ms: u64) {
        if let Some(WorkflowOrigin::Schedule { schedule, .. }) = self.workflows.get(&workflow).map(|w| w.origin) {
            self.end_run(schedule, RunKind::Workflow, workflow, now_ms);
        }
    }

    /// The schedule forgets its ended run, and a `buffer_one` schedule whose last live run
    /// this was starts its buffered fire.
    fn end_run(&mut self, id: ScheduleId, kind: RunKind, run: u64, now_ms: u64) {
        let Some(s) = self.schedules.get_mut(&id) else { return };
        if s.spec.run_kind() != kind || !s.live.remove(&run) || !s.live.is_empty() {
            return;
        }
        if s.paused.is_some() {
            return;
        }
        if let Some(nominal) = s.buffered.take() {
            s.counters.fired += 1;
            self.start_run(now_ms, id, nominal, false);
        }
    }

    /// `ScheduleRuns`: a page of the runs of schedule `id` in nominal order, as tasks or, for
    /// a workflow schedule, as workflows. `Schedule(None)` for an unknown schedule.
    pub(crate) fn runs_query(&self, id: ScheduleId, after: Option<u64>, limit: u32) -> QueryResponse {
        let (Some(s), Some(runs)) = (self.schedules.get(&id), self.schedule_runs.get(&id)) else {
            return QueryResponse::Schedule(None);
        };
        let limit = match limit {
            0 => crate::scheduler::DEFAULT_LIST_LIMIT,
            n => n.min(crate::scheduler::MAX_LIST_LIMIT),
        } as usize;
        let (ids, next_cursor) = runs_page(runs, after, limit);
        match s.spec.run_kind() {
            RunKind::Task => QueryResponse::Tasks {
                tasks: ids.iter().filter_map(|id| self.tasks.get(id).cloned()).collect(),
                next_cursor,
            },
            RunKind::Workflow => QueryResponse::Workflows {
                workflows: ids.iter().filter_map(|id| self.workflows.get(id).cloned()).collect(),
                next_cursor,
            },
        }
    }

    /// Checks every schedule against its runs: each run carries the schedule's origin with its
    /// identity, and exactly the runs that are not terminal are counted live. O(runs): for tests.
    pub(crate) fn check_schedules(&self) -> Result<(), String> {
        for (&id, sch) in &self.schedules {
            if sch.id != id || id >= self.next_schedule_id {
                return Err(format!("schedule {id} is filed wrong (next id {})", self.next_schedule_id));
            }
            let Some(runs) = self.schedule_runs.get(&id) else {
                return Err(format!("schedule {id} has no runs index"));
            };
            let kind = sch.spec.run_kind();
            let all = runs
                .calendar
                .iter()
                .map(|(&n, &r)| (n, false, r))
                .chain(runs.manual.iter().map(|(&n, &r)| (n, true, r)));
            let mut live_runs = 0;
            for (nominal, manual, run) in all.clone() {
                // (schedule, nominal time, manual) and whether the run is terminal.
                let found = match kind {
                    RunKind::Task => self.tasks.get(&run).map(|t| match t.spec.origin {
                        TaskOrigin::Schedule { schedule, nominal_ms, manual } => {
                            (Some((schedule, nominal_ms, manual)), t.is_terminal())
                        }
                        _ => (None, t.is_terminal()),
                    }),
                    RunKind::Workflow => self.workflows.get(&run).map(|w| match w.origin {
                        WorkflowOrigin::Schedule { schedule, nominal_ms, manual } => {
                            (Some((schedule, nominal_ms, manual)), w.settled())
                        }
                        WorkflowOrigin::Api => (None, w.settled()),
                    }),
                };
                let Some((origin, terminal)) = found else {
                    return Err(format!("schedule {id} lists {} {run}, which does not exist", kind.as_str()));
                };
                if origin != Some((id, nominal, manual)) {
                    return Err(format!(
                        "{} {run}, filed as run ({id}, {nominal}, manual={manual}), has origin {origin:?}",
                        kind.as_str()
                    ));
                }
                if terminal == sch.live.contains(&run) {
                    let how = if terminal { "ended" } else { "live" };
                    return Err(format!(
                        "schedule {id}: run {} {run} is {how}, live set {:?}",
                        kind.as_str(),
                        sch.live
                    ));
                }
                live_runs += usize::from(!terminal);
            }
            let forgotten = self.forgotten_runs(id);
            if all.count() as u64 + forgotten.count != sch.runs {
                return Err(format!(
                    "schedule {id} counts {} runs, {} indexed and {} forgotten",
                    sch.runs,
                    runs.calendar.len() + runs.manual.len(),
                    forgotten.count
                ));
            }
            if live_runs != sch.live.len() {
                return Err(format!("schedule {id}: {live_runs} live runs, {} counted", sch.live.len()));
            }
        }
        if self.schedule_runs.keys().any(|id| !self.schedules.contains_key(id)) {
            return Err("a runs index outlived its schedule".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    /// Pages through every run with `limit`, following the cursor.
    fn walk(runs: &Runs, limit: usize) -> Vec<TaskId> {
        let (mut all, mut after) = (Vec::new(), None);
        for _ in 0..100 {
            let (ids, next) = runs_page(runs, after, limit);
            all.extend(ids);
            match next {
                Some(n) => after = Some(n),
                None => return all,
            }
        }
        panic!("the cursor never ended");
    }

    #[test]
    fn a_page_never_ends_between_a_calendar_run_and_a_manual_run_of_the_same_millisecond() {
        let runs = Runs {
            calendar: imbl::OrdMap::from(vec![(1000u64, 1u64), (2000, 2), (3000, 4)]),
            manual: imbl::OrdMap::from(vec![(2000u64, 3u64), (3500, 5)]),
        };
        for limit in 1..=6 {
            assert_eq!(walk(&runs, limit), vec![1, 2, 3, 4, 5], "limit {limit}");
        }
        // The tie is kept together: a page of 2 from the start holds 1, 2 and 3.
        assert_eq!(runs_page(&runs, None, 2), (vec![1, 2, 3], Some(2000)));
        assert_eq!(runs_page(&runs, None, 1), (vec![1], Some(1000)));
        assert_eq!(runs_page(&runs, Some(1000), 1), (vec![2, 3], Some(2000)));
    }
}

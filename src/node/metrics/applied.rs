//! Cluster counters: what `apply` did, counted by the state-machine adapter.
//!
//! Every replica applies the same entries in the same order, so counters bumped from apply
//! agree across replicas (at the same applied index) without any coordination, and without
//! the pure scheduler core knowing about metrics. The adapter, for each applied command:
//! 1. takes a [`Probe`] under the state lock, before apply: the per-state task counts (O(1))
//!    and which `WorkerLost*` commands name a worker that is still active or draining;
//! 2. lets [`crate::scheduler::State::apply`] run;
//! 3. folds the probe, the per-state counts after apply and the `Response` into a [`Tally`]
//!    (plain integers, no atomics; a walk over the response, still under the lock so that a
//!    deleted schedule's counters move to [`AppliedCounters`] in the same critical section
//!    that removes it from the state);
//! 4. adds the tally of the whole batch to the exported counters once, before the applied
//!    index is published.
//!
//! Entries into a terminal state come from the count difference, so they include what no
//! response shows (dependents failed with their parent, runs cancelled with their schedule).
//! The other transitions come from the responses, which name every task they moved — except
//! `blocked → pending` releases of dependents, which are not counted, and an attempt that is
//! first seen running through a checkpoint (its start report lost), which is not counted as
//! `running`. Creation is not a transition: see `taskraft_tasks_created_total`.
//!
//! What these counters do not survive: a restart (they count from the process start, like
//! every Prometheus counter), and entries a replica skipped by installing a snapshot. Rates
//! agree across replicas in either case; totals agree between replicas that applied the same
//! entries since they started.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::scrape::counter;
use super::scrape::counters;

use crate::scheduler::AssignOutcome;
use crate::scheduler::AttemptOutcome;
use crate::scheduler::Command;
use crate::scheduler::Response;
use crate::scheduler::ScheduleCounters;
use crate::scheduler::State;
use crate::scheduler::StateCounts;
use crate::scheduler::TaskState;
use crate::scheduler::WorkerState;

/// The states whose entries `taskraft_task_transitions_total` counts (`blocked` is only ever
/// entered at creation).
const ENTERED: [TaskState; 7] = [
    TaskState::Pending,
    TaskState::Assigned,
    TaskState::Running,
    TaskState::RetryWait,
    TaskState::Succeeded,
    TaskState::Failed,
    TaskState::Cancelled,
];

/// States counted from the difference of the per-state counts: a task never leaves them.
const TERMINAL: [TaskState; 3] = [TaskState::Succeeded, TaskState::Failed, TaskState::Cancelled];

/// Every way an attempt can end.
const OUTCOMES: [AttemptOutcome; 7] = [
    AttemptOutcome::Succeeded,
    AttemptOutcome::Failed,
    AttemptOutcome::TimedOut,
    AttemptOutcome::Cancelled,
    AttemptOutcome::Lost,
    AttemptOutcome::Preempted,
    AttemptOutcome::Migrated,
];

fn entered_index(state: TaskState) -> Option<usize> {
    ENTERED.iter().position(|&s| s == state)
}

fn outcome_index(outcome: AttemptOutcome) -> usize {
    OUTCOMES.iter().position(|&o| o == outcome).expect("OUTCOMES lists every attempt outcome")
}

/// What the adapter learns about a command before applying it.
#[derive(Debug)]
pub struct Probe {
    before: StateCounts,
    /// Positions (in the entry's command list) of `WorkerLost*` commands whose worker is still
    /// active or draining: if apply accepts them, that is a lease expiry. Usually empty (no
    /// allocation).
    lost: Vec<usize>,
}

impl Probe {
    /// Looks at `state` and `cmd` before `cmd` is applied.
    pub fn of(state: &State, cmd: &Command) -> Self {
        let mut lost = Vec::new();
        let single = std::slice::from_ref(cmd);
        let commands = match cmd {
            Command::Many { commands } => commands.as_slice(),
            _ => single,
        };
        for (position, c) in commands.iter().enumerate() {
            let worker = match c {
                Command::WorkerLost { worker_id, .. } | Command::WorkerLostIncarnation { worker_id, .. } => worker_id,
                _ => continue,
            };
            let alive =
                state.worker(worker).is_some_and(|w| matches!(w.state, WorkerState::Active | WorkerState::Draining));
            if alive {
                lost.push(position);
            }
        }
        Probe { before: state.counts().clone(), lost }
    }
}

/// Counts of one apply batch, added to the exported counters at once.
#[derive(Debug, Default)]
pub struct Tally {
    submitted: u64,
    entered: [u64; ENTERED.len()],
    ended: [u64; OUTCOMES.len()],
    lease_expiries: u64,
    forgotten: u64,
    preemptions: u64,
    migrations: u64,
}

impl Tally {
    /// Folds in one applied command: its probe, the per-state counts right after it, and its
    /// response. A deleted schedule's counters go to `counters` at once (see the module doc).
    pub fn record(&mut self, probe: &Probe, after: &StateCounts, response: &Response, counters: &AppliedCounters) {
        for state in TERMINAL {
            let grew = after.get(state).saturating_sub(probe.before.get(state));
            self.entered[entered_index(state).expect("terminal states are counted")] += grew;
        }
        for &position in &probe.lost {
            let answer = match response {
                Response::Many { responses } => responses.get(position),
                single => (position == 0).then_some(single),
            };
            if let Some(Response::Worker { worker, .. }) = answer
                && worker.state == WorkerState::Lost
            {
                self.lease_expiries += 1;
            }
        }
        self.walk(response, counters);
    }

    fn walk(&mut self, response: &Response, counters: &AppliedCounters) {
        match response {
            Response::Many { responses } => responses.iter().for_each(|r| self.walk(r, counters)),
            Response::Reports { results } => results.iter().for_each(|r| self.walk(r, counters)),
            Response::Submitted { tasks } => self.submitted += tasks.iter().filter(|t| t.created).count() as u64,
            Response::Assigned { results } => {
                let assigned = results.iter().filter(|r| matches!(r.outcome, AssignOutcome::Assigned { .. }));
                self.entered_non_terminal(TaskState::Assigned, assigned.count() as u64);
            }
            Response::AttemptStarted { .. } => self.entered_non_terminal(TaskState::Running, 1),
            Response::Completed { task } => {
                if let Some(outcome) = task.attempts.last().and_then(|a| a.outcome) {
                    self.ended[outcome_index(outcome)] += 1;
                }
                self.entered_non_terminal(task.state, 1);
            }
            // `affected` lists exactly the attempts this command ended, all of them lost.
            Response::Worker { affected, .. } => {
                self.ended[outcome_index(AttemptOutcome::Lost)] += affected.len() as u64;
                for status in affected {
                    self.entered_non_terminal(status.state, 1);
                }
            }
            Response::ScheduleDeleted { schedule, .. } => counters.retire(&schedule.counters),
            Response::Forgot { tasks, .. } => self.forgotten += tasks,
            Response::Preempted { marked, .. } => self.preemptions += marked.len() as u64,
            Response::Migrating { .. } => self.migrations += 1,
            Response::Cancelled { .. }
            | Response::CheckpointSaved { .. }
            | Response::Noop
            | Response::Rejected(_)
            | Response::Token { .. }
            | Response::TokenRevoked { .. }
            | Response::Workflow { .. }
            | Response::Limit { .. }
            | Response::Schedule { .. } => {}
        }
    }

    /// Terminal entries are counted from the counts instead (they include what no response
    /// names), so they are skipped here.
    fn entered_non_terminal(&mut self, state: TaskState, n: u64) {
        if TERMINAL.contains(&state) {
            return;
        }
        if let Some(i) = entered_index(state) {
            self.entered[i] += n;
        }
    }
}

/// `into += c`, field by field.
pub(crate) fn add_counters(into: &mut ScheduleCounters, c: &ScheduleCounters) {
    into.fired += c.fired;
    into.missed += c.missed;
    into.skipped += c.skipped;
    into.dropped += c.dropped;
    into.triggered += c.triggered;
    into.backfilled += c.backfilled;
    into.replaced += c.replaced;
}

/// The exported cluster counters: plain atomics, encoded in a fixed order at scrape time.
#[derive(Debug, Default)]
pub struct AppliedCounters {
    submitted: AtomicU64,
    entered: [AtomicU64; ENTERED.len()],
    ended: [AtomicU64; OUTCOMES.len()],
    lease_expiries: AtomicU64,
    forgotten: AtomicU64,
    preemptions: AtomicU64,
    migrations: AtomicU64,
    /// Counters of deleted schedules: the scrape adds the live schedules' own counters, which
    /// apply keeps in the state.
    retired: Mutex<ScheduleCounters>,
}

impl AppliedCounters {
    /// Adds one batch's tally. Only apply writes, so the additions never contend.
    pub fn add(&self, tally: &Tally) {
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.submitted, tally.submitted);
        for (counter, &n) in self.entered.iter().zip(&tally.entered) {
            add(counter, n);
        }
        for (counter, &n) in self.ended.iter().zip(&tally.ended) {
            add(counter, n);
        }
        add(&self.lease_expiries, tally.lease_expiries);
        add(&self.forgotten, tally.forgotten);
        add(&self.preemptions, tally.preemptions);
        add(&self.migrations, tally.migrations);
    }

    /// Keeps the counters of a schedule apply just deleted.
    fn retire(&self, c: &ScheduleCounters) {
        add_counters(&mut self.retired.lock().expect("retired lock"), c);
    }

    /// The counters of every schedule deleted since the process started.
    pub fn retired_schedules(&self) -> ScheduleCounters {
        self.retired.lock().expect("retired lock").clone()
    }
}

/// Every series is present from the start, at 0: a series that appears only on its first event
/// hides that first event from `rate()`.
impl Collector for AppliedCounters {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut e,
            "taskraft_tasks_submitted",
            "Tasks created by client submissions (an idempotent retry creates none).",
            get(&self.submitted),
        )?;
        counters(
            &mut e,
            "taskraft_task_transitions",
            "Tasks entering a state (creation excluded; see the README for what is counted).",
            "to",
            ENTERED.iter().zip(&self.entered).map(|(s, c)| (s.as_str(), get(c))),
        )?;
        counters(
            &mut e,
            "taskraft_attempts_ended",
            "Attempts that ended, by outcome.",
            "outcome",
            OUTCOMES.iter().zip(&self.ended).map(|(o, c)| (o.as_str(), get(c))),
        )?;
        counter(
            &mut e,
            "taskraft_worker_lease_expiries",
            "Workers declared lost because their lease expired.",
            get(&self.lease_expiries),
        )?;
        counter(
            &mut e,
            "taskraft_tasks_forgotten",
            "Finished tasks retention removed from the state (workflow tasks included).",
            get(&self.forgotten),
        )?;
        counter(
            &mut e,
            "taskraft_preemptions",
            "Running attempts marked to stop for a task of higher priority (each ends `preempted`, see taskraft_attempts_ended).",
            get(&self.preemptions),
        )?;
        counter(
            &mut e,
            "taskraft_migrations",
            "Running attempts marked to stop and move off an overloaded worker (each ends `migrated`, see taskraft_attempts_ended).",
            get(&self.migrations),
        )
    }
}

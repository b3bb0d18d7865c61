//! The placement planner: which pending tasks go to which workers in one dispatch round.
//!
//! The leader's dispatch loop owns one [`Planner`]. Every round it hands the planner the
//! replicated [`State`], the set of workers whose lease it currently holds as alive, and its
//! clock; the planner answers with a [`Plan`], and the leader commits the plan's pairs as one
//! `Command::Assign`. The planner is pure like the rest of the core: no clock, no I/O, no OS
//! randomness. Its only memory (round-robin cursor, weighted round-robin credits, a seeded
//! xorshift generator, observed runtimes) lives in the `Planner` value, so the same seed and the
//! same calls always give the same plans.
//!
//! One round, step by step:
//!
//! 1. **Seats.** Candidates are the workers that are `Active` in the state *and* live in the
//!    leader's eyes. Each gets a seat that accounts its live attempts (slots, and the cpu and
//!    memory their tasks reserve); placements made earlier in the round are added as they happen,
//!    so a plan never promises a worker more than it has.
//! 2. **Queue.** Eligible tasks are `pending` ones and `retry_wait` ones whose `retry_at_ms` has
//!    passed. They are considered by effective priority, highest first: `priority + waited_ms /
//!    aging_ms_per_priority_point`, where `waited_ms` counts from when the task last became ready
//!    (submitted, released by its parents, requeued, or its backoff ended); ties go to the lower
//!    task id. Shortest-job-first tasks keep the turns their priority earns them, but every such
//!    turn goes to the shortest-estimated shortest-job-first task still waiting (see `queue.rs`).
//!    The queue is a lazy merge over the state's ready index (tasks by priority and ready
//!    time, kept by apply), so a round costs what it takes, not what the backlog holds.
//! 3. **Fit.** A worker fits a task when every label constraint matches, a slot is free, and the
//!    task's cpu and memory fit what is left. A worker that offers 0 of a resource does not track
//!    it (only slots matter there); a task that asks for 0 of a resource needs none.
//! 4. **Choice.** The task's own strategy picks among the fitting workers (see `choose.rs`). A
//!    task that says `priority_fcfs` — the default of a spec, so indistinguishable from "did not
//!    say" — follows the cluster's [`PlacementOptions::default_strategy`], for its position in the
//!    queue and for its worker. A `prefer` strategy first narrows the fitting workers to those
//!    with the most of its preferred labels (all of them when none has any), then its `then`
//!    strategy picks and orders as above.
//! 5. **Limits.** A task whose `concurrency_key` is at its limit is held back (and the tasks
//!    behind it are still considered): the permits counted are those live attempts hold in the
//!    state plus those this round has already planned, so a round never hands out more than
//!    apply would grant (see `permits.rs`). Permits are in the replicated state, so a new
//!    leader's planner, which remembers nothing, counts them just the same.
//! 6. **Reasons.** A task that fits nowhere, or is held back, gets a sentence in [`Plan::waiting`]. Capacity only
//!    shrinks during a round, so the answer for one (constraints, resources) shape is computed
//!    once and reused: a million tasks needing a missing label cost one diagnosis.
//! 7. The round stops after [`PlacementOptions::max_per_round`] placements. Once no candidate
//!    has a free slot it only keeps walking the queue to give up to
//!    [`PlacementOptions::max_waiting_reasons`] reasons. Tasks left without a reason are counted
//!    in [`Plan::unexplained`].
//!
//! What the leader's dispatch loop owes the planner:
//!
//! - Plan only from a state that already contains the previous round's `Assign` (wait for it to
//!   be applied locally), or the same task may be planned twice and cpu/memory double-booked.
//! - Commit the plan with the same `now_ms` it passed to [`Planner::plan`].
//! - Feed every `Response::Completed` task to [`Planner::observe_completed`] (or call
//!   [`Planner::observe_runtime`]) so shortest-job-first has estimates.
//!
//! [`explain_pending`] answers "why is task N still pending?" on any replica. It has no liveness
//! information, so it treats every `Active` worker as a candidate.
//!
//! What the planner deliberately does not do:
//! - It does not commit anything or re-check what apply checks: apply is the final judge, and
//!   the plan is computed so that apply accepts all of it *provided the state it was computed
//!   from is the state the `Assign` is applied to* (plan only after the previous round's `Assign`
//!   has been applied locally). Apply enforces slots, labels and concurrency limits; cpu and
//!   memory are the planner's promise alone.
//! - No soft placement preferences: `TaskSpec` cannot express them without a new persisted
//!   field. Constraints are hard.
//! - No explicit runtime estimate on the spec either: shortest-job-first estimates from the
//!   runtimes the leader feeds back ([`Planner::observe_runtime`]), by task name.
//! - No strict head-of-line blocking: a task that does not fit is skipped and smaller tasks
//!   behind it may take the room (backfilling). A large task can therefore wait while small
//!   ones keep arriving; aging does not help it, only free capacity does, or preemption of
//!   lower-priority tasks ([`Planner::preemption`], asked separately by the leader, see
//!   `scheduler::preempt`). While a preempted task's preemptor still waits, the preempted task
//!   is held back so that the room it left goes to the preemptor.

mod choose;
mod explain;
mod migrate;
mod permits;
mod preempt;
mod queue;
#[cfg(test)]
mod scan;
mod seat;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::state::State;
use super::task::{PlacementStrategy, Task, TaskId};
use super::worker::WorkerState;
use choose::Chooser;
use explain::{Census, diagnose};
use permits::Permits;
use queue::{Queue, Runtimes, Shape};
use seat::Seat;

pub use choose::rendezvous_hash;
pub use explain::explain_pending;
pub use migrate::{
    DEFAULT_MIGRATION_HEARTBEATS, DEFAULT_MIGRATION_HIGH_WATER, DEFAULT_MIGRATION_INTERVAL_MS,
    DEFAULT_MIGRATION_LOW_WATER, Load, LoadStreaks, Migration, MigrationOptions, Streak, choose_migration,
};
pub use preempt::MAX_PREEMPT_CANDIDATES;
pub use queue::MAX_RUNTIME_NAMES;

/// Most placements in one round: one `Assign` entry stays a reasonable size.
pub const DEFAULT_MAX_PER_ROUND: usize = 1024;
/// A task gains one effective priority point per this many ms of waiting (1 per second).
pub const DEFAULT_AGING_MS_PER_PRIORITY_POINT: u64 = 1000;
/// Most entries in [`Plan::waiting`]: reasons are strings, and a backlog of a million tasks must
/// not cost a million strings per round.
pub const DEFAULT_MAX_WAITING_REASONS: usize = 1024;

/// Tunables of the planner. Leader-local: they never reach the log, so changing them needs no
/// coordination between replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlacementOptions {
    /// Strategy of tasks whose spec says `priority_fcfs` (the spec default).
    pub default_strategy: PlacementStrategy,
    /// Most placements per round (0 places nothing).
    pub max_per_round: usize,
    /// Waiting this many ms adds one effective priority point; 0 turns aging off.
    pub aging_ms_per_priority_point: u64,
    /// Most reasons reported in [`Plan::waiting`] per round.
    pub max_waiting_reasons: usize,
}

impl Default for PlacementOptions {
    fn default() -> Self {
        PlacementOptions {
            default_strategy: PlacementStrategy::PriorityFcfs,
            max_per_round: DEFAULT_MAX_PER_ROUND,
            aging_ms_per_priority_point: DEFAULT_AGING_MS_PER_PRIORITY_POINT,
            max_waiting_reasons: DEFAULT_MAX_WAITING_REASONS,
        }
    }
}

/// The outcome of one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// `(task, worker)` pairs in the order they were decided: commit them as one `Assign`.
    pub assignments: Vec<(TaskId, String)>,
    /// Why an eligible task looked at this round was not placed, for people.
    pub waiting: BTreeMap<TaskId, String>,
    /// Eligible tasks neither placed nor in `waiting`: the round reached `max_per_round` before
    /// looking at them, or `max_waiting_reasons` was used up.
    pub unexplained: usize,
    /// Eligible tasks this round (pending, plus retry_wait whose backoff ended).
    pub eligible: usize,
}

/// The leader's placement memory. Everything in it only steers (none of it is needed for
/// correctness), so a node may keep one for its lifetime and use it whenever it leads; the
/// observed runtimes are the part worth keeping.
#[derive(Debug, Clone)]
pub struct Planner {
    options: PlacementOptions,
    chooser: Chooser,
    runtimes: Runtimes,
}

impl Planner {
    /// A planner whose `random` strategy draws from a xorshift generator seeded by `seed`.
    pub fn new(options: PlacementOptions, seed: u64) -> Self {
        Planner { options, chooser: Chooser::new(seed), runtimes: Runtimes::default() }
    }

    /// The options it was built with.
    pub fn options(&self) -> &PlacementOptions {
        &self.options
    }

    /// Decides which eligible tasks go where this round. `live` holds the workers whose lease
    /// the leader holds as alive; only workers both `Active` in `state` and in `live` receive
    /// work. `now_ms` must be the `now_ms` the `Assign` will carry (it decides which retries are
    /// due). Deterministic given the planner's memory and its inputs.
    pub fn plan(&mut self, state: &State, live: &BTreeSet<String>, now_ms: u64) -> Plan {
        let census = Census::of(state, Some(live));
        let mut seats: Vec<Seat<'_>> = state
            .workers()
            .filter(|w| w.state == WorkerState::Active && live.contains(&w.id))
            .map(|w| Seat::of(state, w))
            .collect();
        self.chooser.forget_all_but(&seats);
        let scale = seat::Scale::of(&seats);
        let mut queue = Queue::build(state, now_ms, &self.options, &self.runtimes);
        let mut permits = Permits::new(state);
        let mut plan = Plan { eligible: queue.len(), ..Plan::default() };
        let mut free_slots: u64 = seats.iter().map(Seat::free_slots).sum();
        // Shapes that fit nowhere, with their reason once one was needed.
        let mut refused: BTreeMap<Shape<'_>, Option<String>> = BTreeMap::new();
        let mut fitting: Vec<usize> = Vec::with_capacity(seats.len());
        let max_reasons = self.options.max_waiting_reasons;
        while plan.assignments.len() < self.options.max_per_round {
            // With every slot taken nothing more can be placed; keep walking only to explain.
            if free_slots == 0 && plan.waiting.len() >= max_reasons {
                break;
            }
            let Some(task) = queue.pop() else { break };
            // A key at its limit holds its task back whatever the capacity; the tasks behind
            // it are still considered.
            if let Some(held) = permits.held_back(&task.spec) {
                if plan.waiting.len() < max_reasons {
                    plan.waiting.insert(task.id, held.reason());
                }
                continue;
            }
            if let Some(by) = super::preempt::yields_to(state, task, now_ms) {
                if plan.waiting.len() < max_reasons {
                    plan.waiting.insert(task.id, format!("preempted by task {by}, which is placed first"));
                }
                continue;
            }
            let shape = Shape::of(&task.spec);
            // Capacity only shrinks during a round: a shape refused once is refused for good.
            if free_slots > 0 && !refused.contains_key(&shape) {
                fitting.clear();
                fitting.extend((0..seats.len()).filter(|&i| seats[i].fits(&task.spec)));
                if let Some(prefer) = &task.spec.prefer {
                    keep_best_matches(&mut fitting, &seats, &prefer.labels);
                }
                if !fitting.is_empty() {
                    let strategy = effective_strategy(&task.spec.placement, &self.options);
                    // A migrated task goes to its migration's target when that one fits, and
                    // otherwise not back to the overloaded worker it left while another fits.
                    let migration = state.migration_target(task);
                    let hinted = migration.and_then(|m| fitting.iter().copied().find(|&i| seats[i].id() == m.to));
                    if let (None, Some(m)) = (hinted, migration)
                        && fitting.iter().any(|&i| seats[i].id() != m.from)
                    {
                        fitting.retain(|&i| seats[i].id() != m.from);
                    }
                    let chosen = match hinted {
                        Some(i) => i,
                        None => self.chooser.choose(strategy, &fitting, &seats, &task.spec, &scale),
                    };
                    assert!(fitting.contains(&chosen), "the chooser picked seat {chosen} outside {fitting:?}");
                    seats[chosen].take(&task.spec);
                    permits.take(&task.spec);
                    free_slots -= 1;
                    plan.assignments.push((task.id, seats[chosen].id().to_string()));
                    continue;
                }
            }
            let why = refused.entry(shape).or_insert(None);
            if plan.waiting.len() < max_reasons {
                let why = why.get_or_insert_with(|| diagnose(&task.spec, &census, &seats));
                plan.waiting.insert(task.id, why.clone());
            }
        }
        plan.unexplained = plan.eligible - plan.assignments.len() - plan.waiting.len();
        plan
    }

    /// Feeds back how long an attempt of a task named `task_name` ran (for shortest-job-first).
    /// Unnamed tasks teach nothing: they share no identity.
    pub fn observe_runtime(&mut self, task_name: &str, runtime_ms: u64) {
        self.runtimes.observe(task_name, runtime_ms);
    }

    /// Convenience for the leader: learns from a task a `Complete` just ended, if its last
    /// attempt succeeded and has both a start and an end time. Failed attempts are ignored
    /// (a crash at start would make a long job look short).
    pub fn observe_completed(&mut self, task: &Task) {
        let Some(a) = task.current_attempt() else { return };
        if a.outcome == Some(super::task::AttemptOutcome::Succeeded)
            && let (Some(start), Some(end)) = (a.started_ms, a.ended_ms)
        {
            self.observe_runtime(&task.spec.name, end.saturating_sub(start));
        }
    }

    /// The runtime estimate shortest-job-first would use for tasks named `task_name`, if any.
    pub fn runtime_estimate(&self, task_name: &str) -> Option<u64> {
        self.runtimes.estimate(task_name)
    }
}

/// The strategy that governs a task: its own, unless it says `priority_fcfs`.
fn effective_strategy<'t>(own: &'t PlacementStrategy, options: &'t PlacementOptions) -> &'t PlacementStrategy {
    match own {
        PlacementStrategy::PriorityFcfs => &options.default_strategy,
        other => other,
    }
}

/// Narrows `fitting` to the seats whose worker has the most of the preferred `labels` (all of
/// them when none has any): preferences steer, they never refuse.
fn keep_best_matches(fitting: &mut Vec<usize>, seats: &[Seat<'_>], labels: &BTreeMap<String, String>) {
    let score = |i: usize| labels.iter().filter(|&(k, v)| seats[i].info.labels.get(k) == Some(v)).count();
    let best = fitting.iter().map(|&i| score(i)).max().unwrap_or(0);
    if best > 0 {
        fitting.retain(|&i| score(i) == best);
    }
}

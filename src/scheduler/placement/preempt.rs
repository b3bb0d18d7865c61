//! Choosing preemption victims (see `scheduler::preempt` for the whole path).
//!
//! The leader asks after a dispatch round that placed nothing (or had no free slot at all).
//! The first waiting tasks in queue order (at most [`MAX_PREEMPT_CANDIDATES`]) are looked at,
//! best first; a task is skipped when it already has preemptions in flight, when its
//! concurrency key holds it back (stopping others would not help), or when it fits some worker
//! now (the next round places it). For the first task left, every worker that could hold it
//! (constraints, capacity) and obeys `preempted` stop orders is tried: its eligible victims
//! are taken in [`victim_order`] until the task fits, and the worker needing the fewest
//! victims wins, then the lowest sum of their priorities, then the least work lost, then the
//! lowest worker id. Deterministic: a function of the state, the clock and the queue.

use std::collections::BTreeSet;

use super::super::preempt::{PreemptRules, Preemption, refusal, victim_order, work_lost_ms};
use super::super::state::State;
use super::super::task::{AttemptId, TaskId, TaskState};
use super::super::worker::WorkerState;
use super::Planner;
use super::permits::Permits;
use super::queue::Queue;
use super::seat::Seat;

/// Most waiting tasks one preemption check looks at.
pub const MAX_PREEMPT_CANDIDATES: usize = 16;

impl Planner {
    /// The preemption to commit now, if any: victims on one worker of `preemptible_on` (live
    /// workers that obey the `preempted` stop order) that make room for the best waiting task
    /// that fits nowhere. `live` holds every worker the leader holds as alive.
    pub fn preemption(
        &self,
        state: &State,
        live: &BTreeSet<String>,
        preemptible_on: &BTreeSet<String>,
        now_ms: u64,
        rules: &PreemptRules,
    ) -> Option<Preemption> {
        let seats: Vec<Seat<'_>> = state
            .workers()
            .filter(|w| w.state == WorkerState::Active && live.contains(&w.id))
            .map(|w| Seat::of(state, w))
            .collect();
        let in_flight: BTreeSet<TaskId> =
            state.tasks_in(TaskState::Running).filter_map(|t| t.preempt_requested().map(|m| m.by)).collect();
        let permits = Permits::new(state);
        let mut queue = Queue::build(state, now_ms, &self.options, &self.runtimes);
        for _ in 0..MAX_PREEMPT_CANDIDATES {
            let task = queue.pop()?;
            if in_flight.contains(&task.id)
                || permits.held_back(&task.spec).is_some()
                || super::super::preempt::yields_to(state, task, now_ms).is_some()
                || seats.iter().any(|s| s.fits(&task.spec))
            {
                continue;
            }
            let best = seats
                .iter()
                .filter(|s| preemptible_on.contains(s.id()))
                .filter(|s| s.matches(&task.spec) && s.cpu_capable(&task.spec) && s.mem_capable(&task.spec))
                .filter_map(|s| {
                    let victims = victims_on(state, s, task.id, now_ms, rules)?;
                    let priorities: u64 = victims.iter().map(|v| u64::from(v.spec.priority)).sum();
                    let lost: u64 = victims.iter().map(|v| work_lost_ms(v, now_ms)).sum();
                    Some(((victims.len(), priorities, lost, s.id()), victims))
                })
                .min_by(|a, b| a.0.cmp(&b.0));
            if let Some(((_, _, _, worker), victims)) = best {
                let victims = victims
                    .iter()
                    .filter_map(|v| v.live_attempt().map(|a| AttemptId::new(v.id, a.fencing_token)))
                    .collect();
                return Some(Preemption { for_task: task.id, worker: worker.to_string(), victims });
            }
        }
        None
    }
}

/// The fewest victims on `seat`, taken in victim order, after which the task `for_task` fits;
/// `None` when even all of its eligible victims would not make room.
fn victims_on<'a>(
    state: &'a State,
    seat: &Seat<'a>,
    for_task: TaskId,
    now_ms: u64,
    rules: &PreemptRules,
) -> Option<Vec<&'a super::super::task::Task>> {
    let task = state.task(for_task)?;
    let mut eligible: Vec<_> = state
        .live_tasks_on(seat.id())
        .filter_map(|id| state.task(id))
        .filter(|v| {
            let token = v.live_attempt().map_or(0, |a| a.fencing_token);
            refusal(v, token, task.spec.priority, now_ms, rules).is_none()
        })
        .collect();
    eligible.sort_by_key(|v| victim_order(v, now_ms));
    let mut seat = seat.clone();
    let mut chosen = Vec::new();
    for v in eligible {
        if seat.fits(&task.spec) {
            break;
        }
        seat.used_slots = seat.used_slots.saturating_sub(1);
        seat.used_cpu = seat.used_cpu.saturating_sub(u64::from(v.spec.resources.cpu_millis));
        seat.used_mem = seat.used_mem.saturating_sub(u64::from(v.spec.resources.memory_mib));
        chosen.push(v);
    }
    (seat.fits(&task.spec) && !chosen.is_empty()).then_some(chosen)
}

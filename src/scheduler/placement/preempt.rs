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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::super::super::*;
    use crate::scheduler::preempt::refusal;

    /// `(priority, cpu, preemptible)` of a task.
    type Shape = (u32, u32, Option<bool>);

    fn shape() -> impl Strategy<Value = Shape> {
        (
            prop_oneof![3 => 0..400u32, 1 => 0..=1000u32],
            prop_oneof![Just(0u32), 1..1500u32],
            prop_oneof![3 => Just(None), 1 => proptest::option::of(any::<bool>())],
        )
    }

    fn spec((priority, cpu, preemptible): Shape) -> TaskSpec {
        let mut s = TaskSpec { priority, preemptible, command: vec!["true".into()], ..TaskSpec::default() };
        s.resources.cpu_millis = cpu;
        s
    }

    /// Slots and cpu left on `worker` once `gone` stopped.
    fn room(state: &State, worker: &WorkerInfo, gone: &[TaskId]) -> (i64, Option<i64>) {
        let live: Vec<TaskId> = state.live_tasks_on(&worker.id).filter(|id| !gone.contains(id)).collect();
        let cpu: i64 =
            live.iter().filter_map(|&id| state.task(id)).map(|t| i64::from(t.spec.resources.cpu_millis)).sum();
        let slots = i64::from(worker.slots) - live.len() as i64;
        (slots, (worker.cpu_millis > 0).then(|| i64::from(worker.cpu_millis) - cpu))
    }

    fn fits(state: &State, worker: &WorkerInfo, gone: &[TaskId], task: &TaskSpec) -> bool {
        let (slots, cpu) = room(state, worker, gone);
        slots > 0 && cpu.is_none_or(|c| i64::from(task.resources.cpu_millis) <= c)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// For any full cluster and waiting task: a chosen preemption's victims all pass the
        /// rules apply checks, run on the chosen worker, make the task fit there, are minimal
        /// in victim order (without the last one it does not fit), and apply marks them all;
        /// and when nothing is chosen for a lone waiting task, no worker could make room even
        /// by stopping every eligible victim.
        #[test]
        fn chosen_victims_obey_the_rules_make_room_and_are_needed(
            workers in proptest::collection::vec((1..=6u32, prop_oneof![1 => Just(0u32), 3 => 1000..4000u32]), 1..=3),
            running in proptest::collection::vec(shape(), 1..12),
            waiting in (prop_oneof![3 => 500..=1000u32, 1 => 0..=1000u32], prop_oneof![Just(0u32), 1000..4000u32], Just(None)),
            ran_ms in 0..20_000u64,
            gap in 1..50u32,
            min_runtime_ms in 0..15_000u64,
        ) {
            let mut state = State::default();
            let mut index = 0;
            let mut apply = |state: &mut State, cmd: Command| {
                index += 1;
                let r = state.apply(index, cmd);
                assert_eq!(state.check_invariants(), Ok(()));
                (index, r)
            };
            for (i, &(slots, cpu)) in workers.iter().enumerate() {
                let worker = WorkerRegistration {
                    id: format!("w{i}"), api_addr: None, host: String::new(), pid: None,
                    slots, cpu_millis: cpu, memory_mib: 0, labels: Default::default(),
                };
                apply(&mut state, Command::RegisterWorker { now_ms: 1_000, worker });
            }
            let specs: Vec<TaskSpec> = running.iter().copied().map(spec).collect();
            apply(&mut state, Command::SubmitBatch { request_id: None, now_ms: 1_000, specs, reuse: Reuse::SameBody });
            let live: BTreeSet<String> = state.workers().map(|w| w.id.clone()).collect();
            let options = PlacementOptions { aging_ms_per_priority_point: 0, ..PlacementOptions::default() };
            let mut planner = Planner::new(options, 7);
            let plan = planner.plan(&state, &live, 1_000);
            let (token, _) = apply(&mut state, Command::Assign { now_ms: 1_000, assignments: plan.assignments.clone() });
            for (task_id, _) in &plan.assignments {
                apply(&mut state, Command::AttemptStarted { now_ms: 1_000, task_id: *task_id, token });
            }
            let now = 1_000 + ran_ms;
            let (_, r) = apply(&mut state, Command::Submit { request_id: None, now_ms: now, spec: spec(waiting), reuse: Reuse::SameBody });
            let Response::Submitted { tasks } = r else { panic!("{r:?}") };
            let new_id = tasks[0].task.id;
            let rules = PreemptRules { gap, min_runtime_ms, max_per_hour: 3 };
            let chosen = planner.preemption(&state, &live, &live, now, &rules);
            match chosen {
                Some(p) => {
                    let task = state.task(p.for_task).unwrap().clone();
                    let worker = state.worker(&p.worker).unwrap().clone();
                    prop_assert!(state.workers().all(|w| !fits(&state, w, &[], &task.spec)), "the task fitted somewhere");
                    let ids: Vec<TaskId> = p.victims.iter().map(|v| v.task_id).collect();
                    for v in &p.victims {
                        let victim = state.task(v.task_id).unwrap();
                        prop_assert_eq!(refusal(victim, v.token, task.spec.priority, now, &rules), None);
                        prop_assert!(state.live_tasks_on(&p.worker).any(|id| id == v.task_id));
                    }
                    prop_assert!(fits(&state, &worker, &ids, &task.spec), "no room after the victims");
                    prop_assert!(!fits(&state, &worker, &ids[..ids.len() - 1], &task.spec), "a victim too many");
                    let cmd = Command::Preempt { now_ms: now, for_task: p.for_task, victims: p.victims.clone(), rules };
                    let (_, r) = apply(&mut state, cmd);
                    prop_assert_eq!(r, Response::Preempted { marked: p.victims.clone(), skipped: vec![] });
                }
                None => {
                    let lone = state.tasks_in(TaskState::Pending).all(|t| t.id == new_id);
                    let task = state.task(new_id).unwrap().clone();
                    if lone && state.workers().all(|w| !fits(&state, w, &[], &task.spec)) {
                        for w in state.workers() {
                            let eligible: Vec<TaskId> = state
                                .live_tasks_on(&w.id)
                                .filter(|&id| {
                                    let t = state.task(id).unwrap();
                                    let token = t.live_attempt().unwrap().fencing_token;
                                    refusal(t, token, task.spec.priority, now, &rules).is_none()
                                })
                                .collect();
                            prop_assert!(!fits(&state, w, &eligible, &task.spec), "room on {} was missed", w.id);
                        }
                    }
                }
            }
        }
    }
}

//! The dispatch queue as it was first written: every eligible task of the state in one heap,
//! built from a full scan each round. O(backlog) per round, so kept only as the oracle the
//! indexed [`super::queue::Queue`] is checked against (they must hand out the same tasks in
//! the same order).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::super::state::State;
use super::super::task::{PlacementStrategy, Task, TaskState};
use super::queue::{Runtimes, effective, is_eligible};
use super::{PlacementOptions, effective_strategy};

/// When a task became ready to run: its backoff end for a due retry, otherwise the time of its
/// last transition (apply touches a pending task only when it enters `pending`).
fn ready_since(task: &Task) -> u64 {
    match (task.state, task.retry_at_ms) {
        (TaskState::RetryWait, Some(at)) => at,
        _ => task.updated_ms,
    }
}

/// `priority + waited / aging` of a task, saturating; aging 0 means priority alone.
fn effective_priority(task: &Task, now_ms: u64, aging_ms: u64) -> u64 {
    effective(task.spec.priority, ready_since(task), now_ms, aging_ms)
}

/// Heap entry of the main queue: highest effective priority, then lowest id. `sjf` marks a turn
/// that goes to the shortest waiting SJF task instead of this one.
type MainKey = (u64, Reverse<u64>, bool, usize);
/// Heap entry of the SJF queue: shortest estimate, then highest effective priority, lowest id.
type SjfKey = (Reverse<u64>, u64, Reverse<u64>, usize);

/// Eligible tasks of one round, handed out in consideration order.
pub(super) struct ScanQueue<'a> {
    tasks: Vec<&'a Task>,
    main: BinaryHeap<MainKey>,
    sjf: BinaryHeap<SjfKey>,
}

impl<'a> ScanQueue<'a> {
    pub(super) fn build(state: &'a State, now_ms: u64, options: &PlacementOptions, runtimes: &Runtimes) -> Self {
        let tasks: Vec<&Task> = state
            .tasks_in(TaskState::Pending)
            .chain(state.tasks_in(TaskState::RetryWait))
            .filter(|t| is_eligible(t, now_ms))
            .collect();
        let is_sjf = |t: &Task| *effective_strategy(&t.spec.placement, options) == PlacementStrategy::ShortestJobFirst;
        let unknown = if tasks.iter().any(|t| is_sjf(t)) { runtimes.typical() } else { 0 };
        let mut main = Vec::with_capacity(tasks.len());
        let mut sjf = Vec::new();
        for (i, t) in tasks.iter().enumerate() {
            let prio = effective_priority(t, now_ms, options.aging_ms_per_priority_point);
            let turn = is_sjf(t);
            if turn {
                let estimate = runtimes.estimate(&t.spec.name).unwrap_or(unknown);
                sjf.push((Reverse(estimate), prio, Reverse(t.id), i));
            }
            main.push((prio, Reverse(t.id), turn, i));
        }
        ScanQueue { tasks, main: BinaryHeap::from(main), sjf: BinaryHeap::from(sjf) }
    }

    /// Eligible tasks in total (taken or not).
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// The next task to consider.
    pub(super) fn pop(&mut self) -> Option<&'a Task> {
        let (_, _, turn, i) = self.main.pop()?;
        let i = if turn {
            // One turn per SJF task, so the SJF heap is empty only when the turns are used up.
            self.sjf.pop().expect("an SJF turn without a waiting SJF task").3
        } else {
            i
        };
        Some(self.tasks[i])
    }
}

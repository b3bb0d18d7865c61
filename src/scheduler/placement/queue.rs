//! The order in which one round considers eligible tasks, and the runtime memory behind
//! shortest-job-first.
//!
//! Everyone queues by effective priority: `priority + waited_ms / aging_ms_per_priority_point`,
//! then lower task id. A shortest-job-first (SJF) task holds its place in that queue like any
//! other, but when its turn comes the turn goes to the SJF task with the shortest estimate that
//! is still waiting (ties: higher effective priority, then lower id). So SJF reorders only SJF
//! tasks among themselves: mixing SJF and ordinary tasks never lets either class jump the other
//! beyond what priorities say.
//!
//! Building the queue is O(n) (a heap built in one go); each task taken costs O(log n). A round
//! usually takes a few hundred tasks of a backlog that may hold a million, so the backlog is
//! never fully sorted.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::super::state::State;
use super::super::task::{PlacementStrategy, Task, TaskSpec, TaskState};
use super::{PlacementOptions, effective_strategy};

/// Most task names whose runtimes are remembered; the least recently observed is forgotten
/// first. Names are free text, so the map must not grow with the workload's variety.
pub const MAX_RUNTIME_NAMES: usize = 10_000;

/// Weight of a new runtime sample in the running average, as 1/N: recent runs count most, so
/// an estimate follows a job that grows, without one outlier taking over.
const EWMA_DIVISOR: i128 = 4;

/// When a task became ready to run: its backoff end for a due retry, otherwise the time of its
/// last transition (apply touches a pending task only when it enters `pending`).
fn ready_since(task: &Task) -> u64 {
    match (task.state, task.retry_at_ms) {
        (TaskState::RetryWait, Some(at)) => at,
        _ => task.updated_ms,
    }
}

/// Eligible now: `pending`, or `retry_wait` whose backoff has ended (the same test apply makes).
pub(super) fn is_eligible(task: &Task, now_ms: u64) -> bool {
    match task.state {
        TaskState::Pending => true,
        TaskState::RetryWait => task.retry_at_ms.is_none_or(|at| at <= now_ms),
        _ => false,
    }
}

/// `priority + waited / aging`, saturating; aging 0 means priority alone.
pub(super) fn effective_priority(task: &Task, now_ms: u64, aging_ms: u64) -> u64 {
    let waited = now_ms.saturating_sub(ready_since(task));
    let bonus = waited.checked_div(aging_ms).unwrap_or(0);
    u64::from(task.spec.priority).saturating_add(bonus)
}

/// Heap entry of the main queue: highest effective priority, then lowest id. `sjf` marks a turn
/// that goes to the shortest waiting SJF task instead of this one.
type MainKey = (u64, Reverse<u64>, bool, usize);
/// Heap entry of the SJF queue: shortest estimate, then highest effective priority, lowest id.
type SjfKey = (Reverse<u64>, u64, Reverse<u64>, usize);

/// Eligible tasks of one round, handed out in consideration order.
pub(super) struct Queue<'a> {
    tasks: Vec<&'a Task>,
    main: BinaryHeap<MainKey>,
    sjf: BinaryHeap<SjfKey>,
}

impl<'a> Queue<'a> {
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
        Queue { tasks, main: BinaryHeap::from(main), sjf: BinaryHeap::from(sjf) }
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

/// What makes two tasks fit the same workers: their constraints and resources. Capacity only
/// shrinks during a round, so a shape that fit nowhere once fits nowhere for the rest of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Shape<'a> {
    cpu: u32,
    mem: u32,
    constraints: &'a BTreeMap<String, String>,
}

impl<'a> Shape<'a> {
    pub(super) fn of(spec: &'a TaskSpec) -> Self {
        Shape { cpu: spec.resources.cpu_millis, mem: spec.resources.memory_mib, constraints: &spec.constraints }
    }
}

/// Observed runtimes per task name: an exponentially weighted average, bounded in size.
#[derive(Debug, Clone, Default)]
pub(super) struct Runtimes {
    by_name: BTreeMap<String, Observed>,
    /// Observation sequence number → name, oldest first: the eviction order.
    recency: BTreeMap<u64, String>,
    next_seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct Observed {
    avg_ms: u64,
    seq: u64,
}

impl Runtimes {
    pub(super) fn observe(&mut self, name: &str, runtime_ms: u64) {
        if name.is_empty() {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(o) = self.by_name.get_mut(name) {
            let delta = (i128::from(runtime_ms) - i128::from(o.avg_ms)) / EWMA_DIVISOR;
            o.avg_ms = u64::try_from(i128::from(o.avg_ms) + delta).unwrap_or(0);
            self.recency.remove(&o.seq);
            o.seq = seq;
        } else {
            if self.by_name.len() >= MAX_RUNTIME_NAMES
                && let Some((_, oldest)) = self.recency.pop_first()
            {
                self.by_name.remove(&oldest);
            }
            self.by_name.insert(name.to_string(), Observed { avg_ms: runtime_ms, seq });
        }
        self.recency.insert(seq, name.to_string());
    }

    pub(super) fn estimate(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).map(|o| o.avg_ms)
    }

    /// The estimate of a task nobody has seen run: the median of the known averages (lower
    /// middle), so an unknown job is neither rushed ahead of nor starved behind known ones; 0
    /// when nothing is known, which leaves SJF tasks in priority order.
    pub(super) fn typical(&self) -> u64 {
        let mut avgs: Vec<u64> = self.by_name.values().map(|o| o.avg_ms).collect();
        if avgs.is_empty() {
            return 0;
        }
        let mid = (avgs.len() - 1) / 2;
        *avgs.select_nth_unstable(mid).1
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        assert_eq!(self.by_name.len(), self.recency.len(), "runtime recency index drifted");
        self.by_name.len()
    }
}

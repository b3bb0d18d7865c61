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
//! A round usually takes a few hundred tasks of a backlog that may hold a million, so the queue
//! is a lazy merge over the state's [`ReadyIndex`](super::super::ready::ReadyIndex) and never
//! looks at the tasks it does not hand out:
//!
//! - Within one priority level, a task that became ready earlier never has a lower effective
//!   priority, so a level splits into *runs*: consecutive ready-time ranges of equal effective
//!   priority, oldest first, each strictly below the one before. The tasks of a run tie, so
//!   they go by id; the level's ready tree hands a range out in id order directly.
//! - A small heap holds the current run of every level, keyed by (effective priority, next id).
//!   Its top is the next task of the whole queue: equal effective priorities across levels
//!   also go by id. A level's run is only opened (its first id looked up) when its effective
//!   priority reaches the top, and the next run is found when one runs dry.
//! - Backoffs that have not ended are never visited: they are the tail of their level's
//!   backoff tree, past `now`.
//! - The SJF queue is built by a scan of the SJF tasks, at the first SJF turn of the round.
//!
//! Opening the queue costs O(levels · log n); each task taken O(log² n) at worst. The full-scan
//! queue it replaced is kept in `scan.rs` as the test oracle of this exact order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::super::ready::{Level, LevelIds};
use super::super::state::State;
use super::super::task::{PlacementStrategy, Task, TaskId, TaskSpec, TaskState};
use super::{PlacementOptions, effective_strategy};

/// Most task names whose runtimes are remembered; the least recently observed is forgotten
/// first. Names are free text, so the map must not grow with the workload's variety.
pub const MAX_RUNTIME_NAMES: usize = 10_000;

/// Weight of a new runtime sample in the running average, as 1/N: recent runs count most, so
/// an estimate follows a job that grows, without one outlier taking over.
const EWMA_DIVISOR: i128 = 4;

/// Eligible now: `pending`, or `retry_wait` whose backoff has ended (the same test apply makes).
pub(super) fn is_eligible(task: &Task, now_ms: u64) -> bool {
    match task.state {
        TaskState::Pending => true,
        TaskState::RetryWait => task.retry_at_ms.is_none_or(|at| at <= now_ms),
        _ => false,
    }
}

/// `priority + waited / aging` for a task of `priority` ready since `ready_ms` (the ready
/// index's key: the backoff end of a retry, otherwise when it entered `pending`), saturating;
/// aging 0 means priority alone. Never rises with `ready_ms`.
pub(super) fn effective(priority: u32, ready_ms: u64, now_ms: u64, aging_ms: u64) -> u64 {
    let waited = now_ms.saturating_sub(ready_ms);
    let bonus = waited.checked_div(aging_ms).unwrap_or(0);
    u64::from(priority).saturating_add(bonus)
}

/// A level's current run, in the heap of heads: highest effective priority first; then a run
/// not yet opened (its first id is unknown, so it must be opened before any run of the same
/// effective priority hands out a task); then the lowest next id. The last field indexes
/// `Queue::runs`.
type Head = (u64, bool, Reverse<TaskId>, usize);
/// Heap entry of the SJF queue: shortest estimate, then highest effective priority, lowest id.
type SjfKey = (Reverse<u64>, u64, Reverse<TaskId>);

/// The tasks of one level that share an effective priority: ready times `lo..=hi`.
struct Run<'a> {
    priority: u32,
    level: &'a Level,
    effective: u64,
    lo: u64,
    hi: u64,
    /// Its eligible tasks by id, once opened.
    ids: Option<LevelIds<'a>>,
}

/// Eligible tasks of one round, handed out in consideration order.
pub(super) struct Queue<'a> {
    state: &'a State,
    now_ms: u64,
    options: &'a PlacementOptions,
    runtimes: &'a Runtimes,
    eligible: usize,
    runs: Vec<Run<'a>>,
    heads: BinaryHeap<Head>,
    /// Built at the first SJF turn.
    sjf: Option<BinaryHeap<SjfKey>>,
}

impl<'a> Queue<'a> {
    pub(super) fn build(state: &'a State, now_ms: u64, options: &'a PlacementOptions, runtimes: &'a Runtimes) -> Self {
        let mut queue = Queue {
            state,
            now_ms,
            options,
            runtimes,
            eligible: 0,
            runs: Vec::new(),
            heads: BinaryHeap::new(),
            sjf: None,
        };
        for (priority, level) in state.ready_index().levels() {
            queue.eligible += level.eligible(now_ms);
            if let Some(first) = level.first_ready_from(0, now_ms) {
                let run = queue.run_from(priority, level, first);
                queue.heads.push((run.effective, true, Reverse(0), queue.runs.len()));
                queue.runs.push(run);
            }
        }
        queue
    }

    /// The run of `level` that starts with ready time `lo` (the earliest eligible one left).
    fn run_from(&self, priority: u32, level: &'a Level, lo: u64) -> Run<'a> {
        let aging = self.options.aging_ms_per_priority_point;
        let eff = |ready| effective(priority, ready, self.now_ms, aging);
        let effective = eff(lo);
        // The last ready time with the same effective priority: a binary search on a
        // non-increasing function, so the run is exactly the tasks the old ordering tied.
        let (mut last, mut beyond) = (lo, u64::MAX);
        while last < beyond {
            let mid = last + (beyond - last).div_ceil(2);
            if eff(mid) == effective { last = mid } else { beyond = mid - 1 }
        }
        Run { priority, level, effective, lo, hi: last, ids: None }
    }

    /// Eligible tasks in total (taken or not).
    pub(super) fn len(&self) -> usize {
        self.eligible
    }

    /// The next task to consider.
    pub(super) fn pop(&mut self) -> Option<&'a Task> {
        let id = self.pop_main()?;
        let task = self.state.task(id).expect("an indexed task exists");
        if !self.is_sjf(task) {
            return Some(task);
        }
        if self.sjf.is_none() {
            self.sjf = Some(self.build_sjf());
        }
        // One turn per SJF task, so the SJF heap is empty only when the turns are used up.
        let sjf = self.sjf.as_mut().expect("built above");
        let (_, _, Reverse(id)) = sjf.pop().expect("an SJF turn without a waiting SJF task");
        Some(self.state.task(id).expect("an indexed task exists"))
    }

    /// The next task in effective-priority order (before SJF turns are given away).
    fn pop_main(&mut self) -> Option<TaskId> {
        loop {
            let (effective, unopened, Reverse(id), i) = self.heads.pop()?;
            let run = &mut self.runs[i];
            if unopened {
                let mut ids = run.level.by_id_in(run.lo, run.hi, self.now_ms);
                let first = ids.peek().expect("a run starts at an eligible task");
                run.ids = Some(ids);
                self.heads.push((effective, false, Reverse(first), i));
                continue;
            }
            let ids = run.ids.as_mut().expect("only opened runs hand out tasks");
            let taken = ids.next();
            assert_eq!(taken, Some(id), "the heap of heads drifted from the run of level {}", run.priority);
            if let Some(next) = ids.peek() {
                self.heads.push((effective, false, Reverse(next), i));
                return Some(id);
            }
            let (priority, level, hi) = (run.priority, run.level, run.hi);
            if let Some(lo) = hi.checked_add(1).and_then(|from| level.first_ready_from(from, self.now_ms)) {
                let next = self.run_from(priority, level, lo);
                self.heads.push((next.effective, true, Reverse(0), i));
                self.runs[i] = next;
            }
            return Some(id);
        }
    }

    fn is_sjf(&self, task: &Task) -> bool {
        *effective_strategy(&task.spec.placement, self.options) == PlacementStrategy::ShortestJobFirst
    }

    /// Every eligible SJF task, keyed for its SJF turn. Scans the SJF tasks only (all tasks that
    /// follow the cluster default when that default is SJF).
    fn build_sjf(&self) -> BinaryHeap<SjfKey> {
        let index = self.state.ready_index();
        let candidates: Box<dyn Iterator<Item = TaskId> + '_> =
            if self.options.default_strategy == PlacementStrategy::ShortestJobFirst {
                Box::new(index.slots().map(|(id, _)| id))
            } else {
                Box::new(index.own_sjf())
            };
        let unknown = self.runtimes.typical();
        let aging = self.options.aging_ms_per_priority_point;
        let mut sjf = Vec::new();
        for id in candidates {
            let slot = index.slot(id).expect("a candidate is indexed");
            let task = self.state.task(id).expect("an indexed task exists");
            if slot.is_eligible(self.now_ms) && self.is_sjf(task) {
                let estimate = self.runtimes.estimate(&task.spec.name).unwrap_or(unknown);
                sjf.push((Reverse(estimate), effective(slot.priority, slot.ready, self.now_ms, aging), Reverse(id)));
            }
        }
        BinaryHeap::from(sjf)
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

//! `ReadyIndex`: the tasks the dispatcher may place, by priority level and ready time, kept in
//! step by apply so that a dispatch round never walks the whole backlog.
//!
//! A task is in the index while it is `pending` or `retry_wait`. Its key is its priority (the
//! level), the time it became ready (`updated_ms` when it entered `pending`; the backoff end
//! `retry_at_ms` in `retry_wait`) and its id. Within a level, the effective priority the planner
//! computes (`priority + waited / aging`) never rises with the ready time, so each level is a
//! stream that is already in queue order, apart from ties, which go by id (see `ready_tree.rs`
//! and `placement/queue.rs`).
//!
//! A level holds two trees: `open` tasks are eligible whatever the time (pending, or a
//! `retry_wait` without an end), `backoff` tasks only once `now ≥ retry_at_ms`. Keyed by that
//! time, the backoff tasks that are due form a prefix, so the planner never looks at one that
//! is not.
//!
//! The index is derived data. It is not part of the snapshot: it is rebuilt from the tasks when
//! a state is decoded, and two states are equal when their tasks are (the index compares by
//! its contents, not its shape). Every task records the key it was indexed under, so removing
//! it never depends on fields that changed since; apply calls [`ReadyIndex::sync`] after every
//! change of a task that can enter, leave or move within the index, and
//! `State::check_invariants` compares the index with a rebuild from the tasks.

use std::collections::{BTreeMap, BTreeSet};

use super::ready_tree::{ByIdInRange, ReadyTree};
use super::task::{AttemptOutcome, PlacementStrategy, Task, TaskId, TaskState};

/// Where one task is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The task's priority: its level.
    pub(crate) priority: u32,
    /// When it became (or, in backoff, becomes) ready.
    pub(crate) ready: u64,
    /// In `retry_wait` with an end: eligible only once `ready <= now`.
    pub(crate) backoff: bool,
    /// Its own strategy is shortest-job-first.
    pub(crate) sjf: bool,
}

impl Slot {
    /// The slot `task` belongs in, `None` if it cannot be dispatched (whatever the time).
    fn of(task: &Task) -> Option<Slot> {
        let (ready, backoff) = match (task.state, task.retry_at_ms) {
            // A preempted (or migrated) task keeps its place: it is queued as of its submission, not of the
            // preemption (see `scheduler::preempt`).
            (TaskState::Pending, _)
                if task.current_attempt().is_some_and(|a| {
                    matches!(a.outcome, Some(AttemptOutcome::Preempted | AttemptOutcome::Migrated))
                }) =>
            {
                (task.created_ms, false)
            }
            (TaskState::Pending, _) | (TaskState::RetryWait, None) => (task.updated_ms, false),
            (TaskState::RetryWait, Some(at)) => (at, true),
            _ => return None,
        };
        let sjf = task.spec.placement == PlacementStrategy::ShortestJobFirst;
        Some(Slot { priority: task.spec.priority, ready, backoff, sjf })
    }

    /// Eligible at `now_ms`: the same test apply makes when it assigns.
    pub(crate) fn is_eligible(&self, now_ms: u64) -> bool {
        !self.backoff || self.ready <= now_ms
    }
}

/// The ready tasks of one priority.
#[derive(Debug, Clone, Default)]
pub(crate) struct Level {
    open: ReadyTree,
    backoff: ReadyTree,
}

impl Level {
    fn tree(&mut self, backoff: bool) -> &mut ReadyTree {
        if backoff { &mut self.backoff } else { &mut self.open }
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty() && self.backoff.is_empty()
    }

    /// Tasks of this level, eligible now or not (O(1): the trees keep their sizes).
    pub(crate) fn len(&self) -> usize {
        self.open.len() + self.backoff.len()
    }

    /// Tasks of this level eligible at `now_ms`.
    pub(crate) fn eligible(&self, now_ms: u64) -> usize {
        self.open.len() + self.backoff.count_ready_at_most(now_ms)
    }

    /// The earliest ready time from `from` on among the tasks eligible at `now_ms`.
    pub(crate) fn first_ready_from(&self, from: u64, now_ms: u64) -> Option<u64> {
        let open = self.open.first_ready_from(from);
        let due = self.backoff.first_ready_from(from).filter(|&at| at <= now_ms);
        match (open, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The tasks eligible at `now_ms` whose ready time lies in `lo..=hi`, lowest id first.
    pub(crate) fn by_id_in(&self, lo: u64, hi: u64, now_ms: u64) -> LevelIds<'_> {
        LevelIds { open: self.open.by_id_in(lo, hi), backoff: self.backoff.by_id_in(lo, hi.min(now_ms)) }
    }
}

/// Both trees of a level over one range, merged by id.
#[derive(Debug, Clone)]
pub(crate) struct LevelIds<'a> {
    open: ByIdInRange<'a>,
    backoff: ByIdInRange<'a>,
}

impl LevelIds<'_> {
    /// The next id without taking it.
    pub(crate) fn peek(&mut self) -> Option<TaskId> {
        match (self.open.peek(), self.backoff.peek()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Iterator for LevelIds<'_> {
    type Item = TaskId;

    fn next(&mut self) -> Option<TaskId> {
        match (self.open.peek(), self.backoff.peek()) {
            (Some(a), Some(b)) if b < a => self.backoff.next(),
            (Some(_), _) => self.open.next(),
            (None, _) => self.backoff.next(),
        }
    }
}

/// See the module documentation.
#[derive(Clone, Default)]
pub(crate) struct ReadyIndex {
    /// Every indexed task and the key it was indexed under.
    slots: BTreeMap<TaskId, Slot>,
    /// Priority → its ready tasks; levels without tasks are dropped.
    levels: BTreeMap<u32, Level>,
    /// Indexed tasks whose own strategy is shortest-job-first.
    sjf: BTreeSet<TaskId>,
}

impl ReadyIndex {
    /// The index of `tasks`, built from scratch: O(n log n) for the sort, then O(n).
    pub(crate) fn of<'t>(tasks: impl IntoIterator<Item = &'t Task>) -> Self {
        let mut index = ReadyIndex::default();
        let mut pairs: BTreeMap<(u32, bool), Vec<(u64, TaskId)>> = BTreeMap::new();
        for task in tasks {
            if let Some(slot) = Slot::of(task) {
                let previous = index.slots.insert(task.id, slot);
                assert!(previous.is_none(), "task {} indexed twice", task.id);
                pairs.entry((slot.priority, slot.backoff)).or_default().push((slot.ready, task.id));
                if slot.sjf {
                    index.sjf.insert(task.id);
                }
            }
        }
        for ((priority, backoff), mut pairs) in pairs {
            pairs.sort_unstable();
            *index.levels.entry(priority).or_default().tree(backoff) = ReadyTree::from_sorted(&pairs);
        }
        index
    }

    /// Puts `task` where its current state, priority and ready time say (or takes it out).
    /// Cheap when nothing changed; call it after every change of a task.
    pub(crate) fn sync(&mut self, task: &Task) {
        let want = Slot::of(task);
        let have = self.slots.get(&task.id).copied();
        if want == have {
            return;
        }
        if let Some(old) = have {
            self.remove(task.id, old);
        }
        if let Some(new) = want {
            self.slots.insert(task.id, new);
            self.levels.entry(new.priority).or_default().tree(new.backoff).insert(new.ready, task.id);
            if new.sjf {
                self.sjf.insert(task.id);
            }
        }
    }

    fn remove(&mut self, id: TaskId, slot: Slot) {
        self.slots.remove(&id);
        let level = self.levels.get_mut(&slot.priority).expect("an indexed task's level exists");
        let removed = level.tree(slot.backoff).remove(slot.ready, id);
        assert!(removed, "task {id} missing from its ready level {}", slot.priority);
        if level.is_empty() {
            self.levels.remove(&slot.priority);
        }
        if slot.sjf {
            self.sjf.remove(&id);
        }
    }

    /// The non-empty levels, by priority.
    pub(crate) fn levels(&self) -> impl Iterator<Item = (u32, &Level)> + '_ {
        self.levels.iter().map(|(&p, l)| (p, l))
    }

    /// Every indexed task with its slot, in id order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (TaskId, &Slot)> + '_ {
        self.slots.iter().map(|(&id, s)| (id, s))
    }

    /// The slot of one task.
    pub(crate) fn slot(&self, id: TaskId) -> Option<&Slot> {
        self.slots.get(&id)
    }

    /// Indexed tasks whose own strategy is shortest-job-first, in id order.
    pub(crate) fn own_sjf(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.sjf.iter().copied()
    }

    /// Compares the index with one rebuilt from `tasks`, tree by tree. O(n): for tests.
    pub(crate) fn check<'t>(&self, tasks: impl IntoIterator<Item = &'t Task>) -> Result<(), String> {
        let fresh = ReadyIndex::of(tasks);
        if fresh.slots != self.slots {
            let drifted = fresh.slots.iter().find(|(id, s)| self.slots.get(id) != Some(s)).map(|(id, _)| *id);
            let extra = self.slots.keys().find(|id| !fresh.slots.contains_key(id));
            return Err(format!("ready index drifted from the tasks (task {:?})", drifted.or(extra.copied())));
        }
        if fresh.sjf != self.sjf {
            return Err("ready index: shortest-job-first set drifted".into());
        }
        if fresh.levels.keys().ne(self.levels.keys()) {
            return Err("ready index: the set of levels drifted".into());
        }
        for (p, level) in &self.levels {
            let want = &fresh.levels[p];
            for (tree, want, name) in [(&level.open, &want.open, "open"), (&level.backoff, &want.backoff, "backoff")] {
                tree.check().map_err(|e| format!("level {p} {name}: {e}"))?;
                if tree.pairs() != want.pairs() {
                    return Err(format!("ready index: level {p} {name} tree drifted from the slots"));
                }
            }
        }
        Ok(())
    }
}

/// Derived from the tasks: equal contents, equal indexes (the trees' shapes may differ).
impl PartialEq for ReadyIndex {
    fn eq(&self, other: &Self) -> bool {
        self.slots == other.slots
    }
}

impl Eq for ReadyIndex {}

impl std::fmt::Debug for ReadyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyIndex").field("tasks", &self.slots.len()).field("levels", &self.levels.len()).finish()
    }
}

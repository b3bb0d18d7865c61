//! Concurrency-limit permits as one round sees them: those live attempts hold in the state,
//! plus those this round's plan has already handed out.
//!
//! Apply takes a permit at `Assign` and refuses a task whose key is at its limit, so a plan
//! that ignored limits would be partly refused, and a round that counted only the state would
//! hand out a key's last free permit to every task with that key it meets. Counting the round's
//! own placements keeps the promise of the planner: apply accepts the whole plan. Permits live
//! in the replicated state, so a new leader's fresh planner starts from the same count.

use std::collections::BTreeMap;

use super::super::limit::held_back_reason;
use super::super::state::State;
use super::super::task::TaskSpec;

/// The round's permit ledger.
#[derive(Debug)]
pub(super) struct Permits<'a> {
    state: &'a State,
    /// Permits handed out by this round's plan so far, by key.
    planned: BTreeMap<&'a str, usize>,
}

impl<'a> Permits<'a> {
    pub(super) fn new(state: &'a State) -> Self {
        Permits { state, planned: BTreeMap::new() }
    }

    /// The limit a task with `spec` must wait for, or `None` when it may be placed (no key, no
    /// limit on its key, or a permit left).
    pub(super) fn held_back<'s>(&self, spec: &'s TaskSpec) -> Option<Held<'s>> {
        let key = spec.concurrency_key.as_deref()?;
        let max = self.state.limit_of(key)?;
        let running = self.state.permits_held(key) + self.planned.get(key).copied().unwrap_or(0);
        (running >= max as usize).then_some(Held { key, running, max })
    }

    /// Records that the plan placed a task with `spec`.
    pub(super) fn take(&mut self, spec: &'a TaskSpec) {
        if let Some(key) = spec.concurrency_key.as_deref() {
            *self.planned.entry(key).or_insert(0) += 1;
        }
    }
}

/// A key at its limit. The sentence is only written when a reason is wanted: a backlog held
/// back by one key must not cost a string per task per round.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held<'s> {
    key: &'s str,
    running: usize,
    max: u32,
}

impl Held<'_> {
    pub(super) fn reason(&self) -> String {
        held_back_reason(self.key, self.running, self.max)
    }
}

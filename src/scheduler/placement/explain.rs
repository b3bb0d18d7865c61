//! Why a task is still waiting, in one sentence a user can act on.
//!
//! The diagnosis walks the same filters as placement, widest first, and names the first one
//! that leaves nobody: no workers at all → none active (or live) → none with the labels → none
//! big enough → none with room right now. The planner asks it with the round's candidates and
//! accounting; [`explain_pending`] asks it on any replica with every `Active` worker. A task
//! whose concurrency key is at its limit is held back before any of that: the planner says so
//! itself (`permits.rs`), and [`explain_pending`] checks the limit first.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::super::limit::held_back_reason;
use super::super::state::State;
use super::super::task::{TaskId, TaskSpec, TaskState};
use super::super::worker::WorkerState;
use super::queue::is_eligible;
use super::seat::Seat;

/// Workers by state, for the reasons that are about the cluster rather than the task.
#[derive(Debug, Clone, Default)]
pub(super) struct Census {
    registered: usize,
    active: usize,
    draining: usize,
    lost: usize,
    removed: usize,
    /// Active in the state but not live for the leader (missed heartbeats).
    unheard: usize,
}

impl Census {
    /// Counts the workers; `live` is the leader's liveness view, `None` off the leader.
    pub(super) fn of(state: &State, live: Option<&BTreeSet<String>>) -> Self {
        let mut c = Census::default();
        for w in state.workers() {
            c.registered += 1;
            match w.state {
                WorkerState::Active if live.is_some_and(|l| !l.contains(&w.id)) => {
                    c.active += 1;
                    c.unheard += 1;
                }
                WorkerState::Active => c.active += 1,
                WorkerState::Draining => c.draining += 1,
                WorkerState::Lost => c.lost += 1,
                WorkerState::Removed => c.removed += 1,
            }
        }
        c
    }

    /// " (not counting 2 active workers that missed their heartbeats)" when it matters.
    fn unheard_note(&self) -> String {
        match self.unheard {
            0 => String::new(),
            1 => " (not counting 1 active worker that missed its heartbeats)".to_string(),
            n => format!(" (not counting {n} active workers that missed their heartbeats)"),
        }
    }

    /// What the candidates are called: "live" once the leader's view has excluded some.
    fn candidates(&self) -> &'static str {
        if self.unheard > 0 { "live" } else { "active" }
    }
}

/// Why `spec` fits none of `seats` (the candidates, with their current accounting).
pub(super) fn diagnose(spec: &TaskSpec, census: &Census, seats: &[Seat<'_>]) -> String {
    if census.registered == 0 {
        return "no workers registered".to_string();
    }
    if seats.is_empty() {
        return no_candidates(census);
    }
    let note = census.unheard_note();
    let matching: Vec<&Seat<'_>> = seats.iter().filter(|s| s.matches(spec)).collect();
    if matching.is_empty() {
        return format!("{}{note}", missing_labels(spec, seats, census.candidates()));
    }
    let capable: Vec<&Seat<'_>> =
        matching.iter().copied().filter(|s| s.cpu_capable(spec) && s.mem_capable(spec)).collect();
    if capable.is_empty() {
        return format!("{}{note}", too_small(spec, &matching));
    }
    // Say "large enough" when some matching workers could never hold the task: they are not
    // part of the count.
    let (one, many) = if capable.len() == matching.len() {
        ("matching worker", "matching workers")
    } else {
        ("matching worker large enough", "matching workers large enough")
    };
    let n = capable.len();
    let room = capable.iter().filter(|s| s.fits(spec)).count();
    if room > 0 {
        let who = if room == 1 { format!("1 {one} has") } else { format!("{room} {many} have") };
        return format!("{who} room; waiting for the next dispatch round");
    }
    let who = if n == 1 { format!("the only {one} is") } else { format!("all {n} {many} are") };
    let no_slot = capable.iter().filter(|s| s.free_slots() == 0).count();
    if no_slot == n {
        return format!("{who} full (slots){note}");
    }
    let counted = |k: usize, what: String| if n == 1 { what } else { format!("{k} {what}") };
    let with_slot = || capable.iter().filter(|s| s.free_slots() > 0);
    let at_most = if n == 1 { "" } else { "at most " };
    let mut parts = Vec::new();
    if no_slot > 0 {
        parts.push(counted(no_slot, "full (slots)".to_string()));
    }
    let short_cpu: Vec<u64> = with_slot().filter(|s| !s.cpu_fits(spec)).filter_map(|s| s.free_cpu()).collect();
    if let Some(most) = short_cpu.iter().max() {
        let what = format!("short of cpu (needs {} millicores, {at_most}{most} free)", spec.resources.cpu_millis);
        parts.push(counted(short_cpu.len(), what));
    }
    let short_mem: Vec<u64> = with_slot().filter(|s| !s.mem_fits(spec)).filter_map(|s| s.free_mem()).collect();
    if let Some(most) = short_mem.iter().max() {
        let what = format!("short of memory (needs {} MiB, {at_most}{most} free)", spec.resources.memory_mib);
        parts.push(counted(short_mem.len(), what));
    }
    format!("{who} busy: {}{note}", parts.join("; "))
}

fn no_candidates(c: &Census) -> String {
    if c.active > 0 {
        // Only the leader's view can make active workers non-candidates.
        let n = c.unheard;
        return if n == 1 {
            "no live worker: the only active worker missed its heartbeats".to_string()
        } else {
            format!("no live worker: all {n} active workers missed their heartbeats")
        };
    }
    if c.draining > 0 && c.lost == 0 && c.removed == 0 {
        return format!("draining workers only ({} draining)", c.draining);
    }
    let mut s = String::from("no active workers (");
    let parts: Vec<String> = [(c.draining, "draining"), (c.lost, "lost"), (c.removed, "removed")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    write!(s, "{})", parts.join(", ")).expect("writing to a String cannot fail");
    s
}

/// The first required label no candidate has; or, when each label exists somewhere but never
/// all together, the whole set.
fn missing_labels(spec: &TaskSpec, seats: &[Seat<'_>], candidates: &str) -> String {
    let missing = spec.constraints.iter().find(|(k, v)| !seats.iter().any(|s| s.info.labels.get(*k) == Some(*v)));
    match missing {
        Some((k, v)) => format!("no {candidates} worker has label {k}={v}"),
        None => {
            let all: Vec<String> = spec.constraints.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("no {candidates} worker has all of the labels {}", all.join(", "))
        }
    }
}

/// No matching worker could hold the task even empty.
fn too_small(spec: &TaskSpec, matching: &[&Seat<'_>]) -> String {
    let r = spec.resources;
    let largest_cpu = matching.iter().map(|s| s.info.cpu_millis).max().unwrap_or(0);
    let largest_mem = matching.iter().map(|s| s.info.memory_mib).max().unwrap_or(0);
    if !matching.iter().any(|s| s.cpu_capable(spec)) {
        format!("needs {} millicores cpu; the largest matching worker has {largest_cpu}", r.cpu_millis)
    } else if !matching.iter().any(|s| s.mem_capable(spec)) {
        format!("needs {} MiB memory; the largest matching worker has {largest_mem}", r.memory_mib)
    } else {
        format!("needs {} millicores cpu and {} MiB memory; no matching worker has both", r.cpu_millis, r.memory_mib)
    }
}

/// Why task `id` is not running yet, computed from the replicated state alone, so any replica
/// can answer. Without the leader's liveness view, every `Active` worker counts as a candidate:
/// the answer may say a worker has room while the leader knows it is dead. `None` if the task
/// does not exist or is not `pending`, `blocked` or `retry_wait`.
pub fn explain_pending(state: &State, id: TaskId, now_ms: u64) -> Option<String> {
    let task = state.task(id)?;
    match task.state {
        TaskState::Blocked => {
            let waiting: Vec<TaskId> =
                task.spec.depends_on.iter().copied().filter(|&p| !state.parent_succeeded(p)).collect();
            Some(format!("blocked on dependencies {waiting:?}"))
        }
        TaskState::RetryWait if !is_eligible(task, now_ms) => {
            let at = task.retry_at_ms.unwrap_or(now_ms);
            Some(format!("waiting for retry backoff until {at} (in {} ms)", at - now_ms))
        }
        TaskState::Pending | TaskState::RetryWait => {
            if let Some(key) = task.spec.concurrency_key.as_deref()
                && let Some((running, max)) = state.limit_reached(key)
            {
                return Some(held_back_reason(key, running, max));
            }
            if let Some(by) = crate::scheduler::preempt::yields_to(state, task, now_ms) {
                return Some(format!("preempted by task {by}, which is placed first"));
            }
            let seats: Vec<Seat<'_>> =
                state.workers().filter(|w| w.state == WorkerState::Active).map(|w| Seat::of(state, w)).collect();
            Some(diagnose(&task.spec, &Census::of(state, None), &seats))
        }
        _ => None,
    }
}

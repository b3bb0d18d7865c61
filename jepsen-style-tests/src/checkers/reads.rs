//! Per-task linearizability of reads.
//!
//! Each task is a register whose version only grows (1 at creation, +1 per change) and whose
//! terminal result is written once. For such a register, linearizability reduces to real-time
//! rules that need no search: if read A completed before read B was invoked, B must not see less
//! than A. Reads that overlap in time may be ordered either way, so they are never compared for
//! order. The final state counts as one more read, invoked after everything ("at +infinity").
//!
//! The check, per task:
//! 1. Collect its `ok` reads (a 404 answer is an `ok` read of "no such task", version 0); `info`
//!    and `fail` reads say nothing and are skipped.
//! 2. **version regressed**: sweep reads by invoke time while a second cursor, over reads sorted by
//!    completion time, tracks the highest version completed before the current invoke; a lower
//!    version is a violation. The final version must be at least the highest version read (a task
//!    read once and absent from the final state vanished). O(n log n) per task.
//! 3. **terminal changed**: a task ends once. Every terminal observation (reads and the final
//!    state) must show the same state and result token as the first one to complete, even
//!    concurrent ones: two different terminal results cannot both be linearized. The final
//!    state's result token is its last attempt's, as the workload derives it for reads.
//! 4. **terminal reverted**: a read invoked after a terminal read completed, and the final state,
//!    must be terminal too.
//! 5. **not found after ack**: a 404 from a read invoked after a submit that returned the task id
//!    had completed.
//! 6. **content differs**: a version names one content, since every change bumps it. Every read
//!    of the same version must show the same state, attempt count, result token, checkpoint
//!    `(counter, token)` and attempt tokens as the first read of that version to complete,
//!    whatever their times. The final state at that version must agree on the state, on the
//!    attempt tokens (when the read recorded them) and on the checkpoint (when the read recorded
//!    its token). Two contents under one version mean a committed change was lost and another
//!    change reused its version. Histories recorded before reads carried tokens compare empty
//!    with empty and stay valid.
//!
//!
//! Retention (the suite runs the cluster with a horizon of a few seconds) adds a third answer to a
//! read: 404 `forgotten`, recorded as its own outcome ([`ReadAnswer::Forgotten`]), distinct from
//! `not_found`. The final read adds it too: an id the run knows of that the listing lacks and that
//! answered `forgotten` on its own read (`final.json` `forgotten`). What retention promises, and
//! what the check therefore demands:
//! - Only a terminal task is forgotten, and nothing ever brings one back (ids are never reused).
//!   So `forgotten` is read as the task's last version, above every other: in steps 2 and 4 it
//!   counts as version +infinity. A read invoked after a `forgotten` answer completed that sees
//!   the task again, or answers `not_found`, and a final state that has the task or lacks it
//!   without `forgotten`, is **revived after forgotten**.
//! - `forgotten` says the task was terminal but no longer which result it had: a terminal read
//!   before it is not contradicted (steps 3 and 4 skip `forgotten` observations), and a read that
//!   saw it non-terminal before the `forgotten` answer is not either (it ended in between).
//! - Step 5 is untouched: `not_found` after an acknowledged submit is still **not found after
//!   ack**, even when other tasks of the run answer `forgotten`; `forgotten` is not `not_found`.
//! - Step 7, **forgotten unended**, for the counter tasks the clients submitted (ids from an `ok`
//!   submit): a task answering `forgotten` (a read, or the final read) must have been able to end
//!   before that answer. A counter task has no timeout and never exits non-zero on its own, so it
//!   ends `succeeded` (its accepted attempt reported `done` to the sink before exiting 0, and the
//!   sink waits for nobody: the line is stamped before the completion is even sent), `cancelled`
//!   (a client sent a cancel for it: `ok`, `info` or never answered; a `fail` cancel did nothing)
//!   or `failed` after `retry.max_attempts` = 20 attempts that ended `failed`/`timed_out` (lost
//!   attempts do not count), each a process that exited non-zero before its first sink line: the
//!   counter does that only when its sink or its checkpoint file is unusable, a harness failure
//!   the worker logs would show 20 times. The witnesses accepted are therefore: a read that saw
//!   the task terminal (at any time: one after the `forgotten` answer is a revival anyway), a
//!   sink `done` line stamped before the answer completed, or a cancel invoked before it. None of
//!   them is a violation. Workflow tasks and schedule runs are left to their checkers (their ends
//!   have other witnesses).
//!
//! - Step 8, **forgotten early** (needs the horizon `H`, from the run's record): apply forgets a
//!   task only if its `finished_ms` is below `now − H` by the clock of the leader that proposed
//!   the `Forget`, read before that command was even proposed, so before the `forgotten` answer
//!   completed at `t`. Its `finished_ms` was stamped by the leader that proposed its end, after
//!   that end was asked for: for a success after the accepted attempt's `done` line (so after the
//!   task's first `done` line), for a cancel after the cancel was sent. So `t − H` is later than
//!   the earliest of the first `done` line and the first cancel sent. Every replica runs on this
//!   host's clock, the harness's too, so without clock faults a `forgotten` answer less than
//!   `H −` [`EARLY_TOLERANCE_NS`] after that bound is a violation; under the `clock` nemesis the
//!   leaders' clocks are skewed on purpose and it is only measured (`early_forgets`,
//!   `max_early_ms`). Only client reads have a time; the final read's `forgotten` has none.
//!
//! The `forgotten` answers are counted (`forgotten_reads`, `forgotten_tasks`).
//!
//! With an incomplete final state the final-state comparisons are skipped and a clean result is
//! `unknown`.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::json;

use super::CheckResult;
use super::Examples;
use super::Inputs;
use super::Validity;
use super::pair_ops;
use crate::history::Body;
use crate::history::FinalTask;
use crate::history::Op;
use crate::history::OpType;
use crate::history::ReadAnswer;
use crate::history::SinkKind;
use crate::history::TaskRead;
use crate::history::is_terminal_state;

/// This checker's name in `results.json`.
pub const NAME: &str = "reads";

/// Slack of step 8 for stamping and clock-reading delays on one host (the bound is strict).
pub const EARLY_TOLERANCE_NS: u64 = 500_000_000;

/// The version a `forgotten` answer stands for: after every real one.
const FORGOTTEN_VERSION: u64 = u64::MAX;

/// One `ok` read.
#[derive(Debug, Clone, Copy)]
struct Obs<'a> {
    invoke: &'a Op,
    completion: &'a Op,
    /// `None` is a 404 (`not_found`, or `forgotten` when `forgotten` is set).
    seen: Option<&'a TaskRead>,
    /// The 404 said `forgotten`.
    forgotten: bool,
}

impl Obs<'_> {
    fn start(&self) -> u64 {
        self.invoke.time_ns
    }

    fn end(&self) -> u64 {
        self.completion.time_ns
    }

    /// `forgotten` is the last version of all (see the module docs).
    fn version(&self) -> u64 {
        match (self.seen, self.forgotten) {
            (Some(s), _) => s.version,
            (None, true) => FORGOTTEN_VERSION,
            (None, false) => 0,
        }
    }

    /// `(state, result token)` if it saw the task terminal.
    fn terminal(&self) -> Option<(&str, Option<u64>)> {
        self.seen.filter(|s| s.is_terminal()).map(|s| (s.state.as_str(), s.result_token))
    }

    fn to_json(self) -> Value {
        json!({
            "invoke_index": self.invoke.index,
            "invoke_ns": self.start(),
            "complete_index": self.completion.index,
            "complete_ns": self.end(),
            "process": self.invoke.process,
            "node": self.invoke.node,
            "seen": self.seen,
            "forgotten": self.forgotten,
        })
    }
}

/// The final state of one task, as the last read.
#[derive(Debug, Clone, Copy)]
enum Last<'a> {
    /// The final read did not complete: nothing to compare with.
    Unknown,
    /// Complete, and the task is not in it (nor forgotten).
    Missing,
    /// Complete, and the task answered `forgotten`.
    Forgotten,
    /// Complete, with this task.
    Present(&'a FinalTask),
}

impl Last<'_> {
    fn version(&self) -> u64 {
        match self {
            Last::Present(t) => t.version,
            Last::Forgotten => FORGOTTEN_VERSION,
            _ => 0,
        }
    }

    fn terminal(&self) -> Option<(&str, Option<u64>)> {
        match self {
            Last::Present(t) if is_terminal_state(&t.state) => {
                Some((t.state.as_str(), t.attempts.last().map(|a| a.token)))
            }
            _ => None,
        }
    }

    fn to_json(self) -> Value {
        match self {
            Last::Present(t) => json!({ "final": t }),
            Last::Forgotten => json!({ "final": "forgotten" }),
            _ => json!({ "final": "absent" }),
        }
    }
}

/// Violations by kind.
#[derive(Debug, Default)]
struct Findings {
    version_regressed: Examples,
    terminal_changed: Examples,
    terminal_reverted: Examples,
    not_found_after_ack: Examples,
    content_differs: Examples,
    revived_after_forgotten: Examples,
    forgotten_unended: Examples,
    forgotten_early: Examples,
    /// Step 8 under clock faults: measured, not judged.
    early_measured: Examples,
    max_early_ns: u64,
}

impl Findings {
    fn violations(&self) -> usize {
        self.version_regressed.count()
            + self.terminal_changed.count()
            + self.terminal_reverted.count()
            + self.not_found_after_ack.count()
            + self.content_differs.count()
            + self.revived_after_forgotten.count()
            + self.forgotten_unended.count()
            + self.forgotten_early.count()
    }

    /// Records that `b` contradicts `a` (either may be the final state).
    fn push(kind: &mut Examples, task_id: u64, a: impl FnOnce() -> Value, b: impl FnOnce() -> Value) {
        kind.push(|| json!({ "task_id": task_id, "a": a(), "b": b() }));
    }
}

/// Judges per-task read linearizability (see the module docs).
pub fn check(inputs: &Inputs) -> CheckResult {
    let pairing = pair_ops(inputs.history);
    let mut reads: BTreeMap<u64, Vec<Obs>> = BTreeMap::new();
    for op in &pairing.ops {
        if let (Some(completion), Body::Read(v)) = (op.completion, op.body())
            && completion.kind == OpType::Ok
        {
            let forgotten = v.answer() == ReadAnswer::Forgotten;
            let obs = Obs { invoke: op.invoke, completion, seen: v.seen.as_ref(), forgotten };
            reads.entry(v.task_id).or_default().push(obs);
        }
    }
    // The earliest moment each task id was known to exist: the first `ok` submit returning it.
    let mut acked_at: BTreeMap<u64, u64> = BTreeMap::new();
    for op in inputs.history.iter().filter(|op| op.kind == OpType::Ok) {
        if let Body::Submit(v) = &op.body
            && let Some(id) = v.task_id
        {
            let at = acked_at.entry(id).or_insert(op.time_ns);
            *at = (*at).min(op.time_ns);
        }
    }

    let complete = inputs.final_state.complete;
    let finals: BTreeMap<u64, &FinalTask> = inputs.final_state.tasks.iter().map(|t| (t.task_id, t)).collect();
    let last_of = |task_id: u64| match finals.get(&task_id) {
        _ if !complete => Last::Unknown,
        Some(t) => Last::Present(t),
        None if inputs.final_state.is_forgotten(task_id) => Last::Forgotten,
        None => Last::Missing,
    };
    let mut f = Findings::default();
    for (&task_id, obs) in &mut reads {
        let last = last_of(task_id);
        check_versions(task_id, obs, last, &mut f);
        check_terminal(task_id, obs, last, &mut f);
        check_not_found(task_id, obs, acked_at.get(&task_id).copied(), &mut f);
        check_content(task_id, obs, last, &mut f);
    }
    let ends = Ends::of(inputs);
    let mut forgotten_tasks = 0usize;
    for &task_id in acked_at.keys() {
        let obs = reads.get(&task_id).map_or(&[][..], Vec::as_slice);
        let last = last_of(task_id);
        forgotten_tasks += usize::from(matches!(last, Last::Forgotten) || obs.iter().any(|o| o.forgotten));
        check_forgotten_ended(task_id, obs, last, &ends, &mut f);
        if let Some(h) = inputs.retention_ms {
            check_forgotten_early(task_id, obs, &ends, h * 1_000_000, inputs.clock_faults, &mut f);
        }
    }
    let forgotten_reads = reads.values().flatten().filter(|o| o.forgotten).count();

    let checked: usize = reads.values().map(Vec::len).sum();
    let valid = Validity::from_findings(f.violations(), complete);
    let summary = format!(
        "{checked} ok reads of {} tasks ({forgotten_reads} answered forgotten; {forgotten_tasks} acked tasks forgotten): {} version regressions, {} terminal changes, {} terminal reverts, {} not-found after ack, {} content differences, {} revived after forgotten, {} forgotten unended, {} forgotten early{}{}",
        reads.len(),
        f.version_regressed.count(),
        f.terminal_changed.count(),
        f.terminal_reverted.count(),
        f.not_found_after_ack.count(),
        f.content_differs.count(),
        f.revived_after_forgotten.count(),
        f.forgotten_unended.count(),
        f.forgotten_early.count(),
        if f.early_measured.is_empty() {
            String::new()
        } else {
            format!(
                " ({} forgotten early under clock faults, measured, max {:.0} ms early)",
                f.early_measured.count(),
                f.max_early_ns as f64 / 1e6
            )
        },
        if complete { "" } else { "; final state incomplete" },
    );
    let details = json!({
        "final_complete": complete,
        "reads_checked": checked,
        "tasks_read": reads.len(),
        "version_regressed": f.version_regressed.count(),
        "terminal_changed": f.terminal_changed.count(),
        "terminal_reverted": f.terminal_reverted.count(),
        "not_found_after_ack": f.not_found_after_ack.count(),
        "content_differs": f.content_differs.count(),
        "revived_after_forgotten": f.revived_after_forgotten.count(),
        "forgotten_unended": f.forgotten_unended.count(),
        "forgotten_early": f.forgotten_early.count(),
        "retention_ms": inputs.retention_ms,
        "measured": {
            "early_forgets": f.early_measured.count(),
            "max_early_ms": f.max_early_ns as f64 / 1e6,
            "early_examples": f.early_measured.to_json(),
        },
        "forgotten_reads": forgotten_reads,
        "forgotten_tasks": forgotten_tasks,
        "examples": {
            "revived_after_forgotten": f.revived_after_forgotten.to_json(),
            "forgotten_unended": f.forgotten_unended.to_json(),
            "forgotten_early": f.forgotten_early.to_json(),
            "version_regressed": f.version_regressed.to_json(),
            "terminal_changed": f.terminal_changed.to_json(),
            "terminal_reverted": f.terminal_reverted.to_json(),
            "not_found_after_ack": f.not_found_after_ack.to_json(),
            "content_differs": f.content_differs.to_json(),
        },
    });
    CheckResult { name: NAME, valid, summary, details }
}

/// Step 2: versions never go back in real time. Sorts `obs` by invoke time.
fn check_versions(task_id: u64, obs: &mut [Obs], last: Last, f: &mut Findings) {
    obs.sort_by_key(|o| (o.start(), o.end()));
    let mut by_end: Vec<Obs> = obs.to_vec();
    by_end.sort_by_key(|o| o.end());

    // `highest` is the highest-version read among those completed strictly before the current
    // invoke; equal instants are treated as concurrent.
    let mut done = by_end.iter().peekable();
    let mut highest: Option<&Obs> = None;
    for b in obs.iter() {
        while let Some(a) = done.next_if(|a| a.end() < b.start()) {
            if highest.is_none_or(|h| a.version() > h.version()) {
                highest = Some(a);
            }
        }
        if let Some(a) = highest
            && b.version() < a.version()
        {
            let kind = if a.forgotten { &mut f.revived_after_forgotten } else { &mut f.version_regressed };
            Findings::push(kind, task_id, || a.to_json(), || b.to_json());
        }
    }

    if matches!(last, Last::Unknown) {
        return;
    }
    if let Some(a) = by_end.iter().max_by_key(|o| o.version())
        && last.version() < a.version()
    {
        let kind = if a.forgotten { &mut f.revived_after_forgotten } else { &mut f.version_regressed };
        Findings::push(kind, task_id, || a.to_json(), || last.to_json());
    }
}

/// Steps 3 and 4: one terminal result, never left. Expects `obs` sorted by invoke time.
fn check_terminal(task_id: u64, obs: &[Obs], last: Last, f: &mut Findings) {
    let Some(first) = obs.iter().filter(|o| o.terminal().is_some()).min_by_key(|o| o.end()) else {
        // No read saw it terminal; the final state alone cannot contradict itself.
        return;
    };
    let result = first.terminal();
    // A `forgotten` answer is terminal with a result nobody can read any more: it contradicts
    // no terminal result, and reverts nothing.
    for b in obs.iter().filter(|o| !o.forgotten) {
        if b.terminal().is_some_and(|r| Some(r) != result) {
            Findings::push(&mut f.terminal_changed, task_id, || first.to_json(), || b.to_json());
        } else if b.terminal().is_none() && b.start() > first.end() {
            Findings::push(&mut f.terminal_reverted, task_id, || first.to_json(), || b.to_json());
        }
    }
    match (last, last.terminal()) {
        (Last::Unknown | Last::Forgotten, _) => {}
        (_, None) => Findings::push(&mut f.terminal_reverted, task_id, || first.to_json(), || last.to_json()),
        (_, r) if r != result => {
            Findings::push(&mut f.terminal_changed, task_id, || first.to_json(), || last.to_json())
        }
        _ => {}
    }
}

/// Step 5: a task acknowledged before the read began must be found.
fn check_not_found(task_id: u64, obs: &[Obs], acked_at: Option<u64>, f: &mut Findings) {
    let Some(acked_at) = acked_at else { return };
    for b in obs.iter().filter(|o| o.seen.is_none() && !o.forgotten && o.start() > acked_at) {
        let ack = || json!({ "acked_at_ns": acked_at });
        Findings::push(&mut f.not_found_after_ack, task_id, ack, || b.to_json());
    }
}

/// What could have ended each counter task, for step 7: the time of its first sink `done` line
/// and the invoke time of its first cancel that was not a definite failure.
#[derive(Debug, Default)]
struct Ends {
    first_done: BTreeMap<u64, u64>,
    first_cancel: BTreeMap<u64, u64>,
}

impl Ends {
    fn of(inputs: &Inputs) -> Self {
        let mut e = Ends::default();
        for ev in inputs.sink.iter().filter(|e| matches!(e.event, SinkKind::Done { .. })) {
            let t = e.first_done.entry(ev.task_id).or_insert(ev.time_ns);
            *t = (*t).min(ev.time_ns);
        }
        for op in pair_ops(inputs.history).ops {
            let Body::Cancel(v) = &op.invoke.body else { continue };
            if op.outcome() == OpType::Fail {
                continue;
            }
            let t = e.first_cancel.entry(v.task_id).or_insert(op.invoke.time_ns);
            *t = (*t).min(op.invoke.time_ns);
        }
        e
    }
}

/// Step 7: every `forgotten` answer about a counter task has a witness that the task could have
/// ended before it (see the module docs). The final read counts as an answer at +infinity.
fn check_forgotten_ended(task_id: u64, obs: &[Obs], last: Last, ends: &Ends, f: &mut Findings) {
    if obs.iter().any(|o| o.terminal().is_some()) {
        return;
    }
    let first = obs.iter().filter(|o| o.forgotten).map(|o| o.end()).min();
    let at = match (first, last) {
        (Some(t), _) => t,
        (None, Last::Forgotten) => u64::MAX,
        _ => return,
    };
    let done = ends.first_done.get(&task_id).copied();
    let cancel = ends.first_cancel.get(&task_id).copied();
    if done.is_some_and(|d| d < at) || cancel.is_some_and(|c| c < at) {
        return;
    }
    let last_seen = obs.iter().filter(|o| o.seen.is_some()).max_by_key(|o| o.end()).map(|o| o.to_json());
    f.forgotten_unended.push(|| {
        json!({ "task_id": task_id, "forgotten_at_ns": (at != u64::MAX).then_some(at), "final": last.to_json(),
                "last_seen": last_seen, "first_done_ns": done, "first_cancel_ns": cancel })
    });
}

/// Step 8: no `forgotten` answer sooner than the horizon after the earliest moment the task
/// could have ended (see the module docs). `h_ns` is the horizon.
fn check_forgotten_early(task_id: u64, obs: &[Obs], ends: &Ends, h_ns: u64, clock_faults: bool, f: &mut Findings) {
    let bound = [ends.first_done.get(&task_id), ends.first_cancel.get(&task_id)].into_iter().flatten().min();
    let Some(&bound) = bound else { return };
    let Some(first) = obs.iter().filter(|o| o.forgotten).min_by_key(|o| o.end()) else { return };
    let due = bound + h_ns;
    if first.end() + EARLY_TOLERANCE_NS >= due {
        return;
    }
    let early = due - first.end();
    let ex = || {
        json!({ "task_id": task_id, "ended_no_earlier_than_ns": bound, "horizon_ms": h_ns / 1_000_000,
                        "early_ms": early as f64 / 1e6, "read": first.to_json() })
    };
    if clock_faults {
        f.max_early_ns = f.max_early_ns.max(early);
        f.early_measured.push(ex);
    } else {
        f.forgotten_early.push(ex);
    }
}

/// Step 6: one version, one content. The reference of each version is its first read to
/// complete; every other read of that version is compared with it, and the reference with the
/// final state.
fn check_content(task_id: u64, obs: &[Obs], last: Last, f: &mut Findings) {
    let mut reference: BTreeMap<u64, (Obs, &TaskRead)> = BTreeMap::new();
    for o in obs {
        if let Some(s) = o.seen {
            let r = reference.entry(s.version).or_insert((*o, s));
            if o.end() < r.0.end() {
                *r = (*o, s);
            }
        }
    }
    for b in obs {
        let Some(s) = b.seen else { continue };
        let (a, r) = reference[&s.version];
        let fields = read_differences(r, s);
        if !fields.is_empty() {
            let ex = || json!({ "task_id": task_id, "version": s.version, "fields": fields, "a": a.to_json(), "b": b.to_json() });
            f.content_differs.push(ex);
        }
    }
    let Last::Present(t) = last else { return };
    if let Some(&(a, r)) = reference.get(&t.version) {
        let fields = final_differences(r, t);
        if !fields.is_empty() {
            let ex = || json!({ "task_id": task_id, "version": t.version, "fields": fields, "a": a.to_json(), "b": last.to_json() });
            f.content_differs.push(ex);
        }
    }
}

/// The fields in which two reads of one version differ.
fn read_differences(a: &TaskRead, b: &TaskRead) -> Vec<&'static str> {
    let checks = [
        ("state", a.state != b.state),
        ("attempts", a.attempts != b.attempts),
        ("result_token", a.result_token != b.result_token),
        ("checkpoint", a.checkpoint != b.checkpoint),
        ("checkpoint_token", a.checkpoint_token != b.checkpoint_token),
        ("attempt_tokens", a.attempt_tokens != b.attempt_tokens),
    ];
    checks.into_iter().filter(|(_, differs)| *differs).map(|(name, _)| name).collect()
}

/// The fields in which a read contradicts the final state of the same version, judging only what
/// the read recorded (older histories carry no tokens). The checkpoint is compared as the final
/// state builds it: `(counter, token)`, absent when either part is.
fn final_differences(r: &TaskRead, t: &FinalTask) -> Vec<&'static str> {
    let tokens = || t.attempts.iter().map(|a| a.token).collect::<Vec<_>>();
    let checks = [
        ("state", r.state != t.state),
        ("attempt_tokens", !r.attempt_tokens.is_empty() && r.attempt_tokens != tokens()),
        ("checkpoint", r.checkpoint_token.is_some() && r.checkpoint.zip(r.checkpoint_token) != t.checkpoint),
    ];
    checks.into_iter().filter(|(_, differs)| *differs).map(|(name, _)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{Fixture, Hist, Outcome, attempt, seen, task};

    fn done(version: u64, state: &str, token: u64) -> TaskRead {
        TaskRead { result_token: Some(token), ..seen(version, state) }
    }

    /// Task 1 ended `succeeded` at version 5 under token 10.
    fn final_succeeded() -> Vec<FinalTask> {
        vec![FinalTask { attempts: vec![attempt(1, 10, Some("succeeded"))], ..task(1, "a", "succeeded", 5) }]
    }

    fn run(h: &Hist) -> CheckResult {
        check(&Fixture::new(h, final_succeeded()).inputs())
    }

    fn count(r: &CheckResult, field: &str) -> u64 {
        r.details[field].as_u64().unwrap()
    }

    #[test]
    fn growing_versions_and_one_terminal_result_are_valid() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 5), Outcome::Ok(1))
            .read(1, 1, (10, 20), Some(seen(1, "pending")))
            .read(2, 1, (15, 40), Some(seen(3, "running")))
            .read(3, 1, (25, 30), Some(seen(2, "assigned")))
            .read(1, 1, (50, 60), Some(done(5, "succeeded", 10)))
            .read(2, 1, (70, 80), Some(done(5, "succeeded", 10)))
            .read_info(3, 1, (90, 95));
        let r = run(&h);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(count(&r, "reads_checked"), 5, "the info read is not checked");
    }

    #[test]
    fn concurrent_reads_may_see_versions_in_any_order() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 50), Some(seen(4, "running"))).read(2, 1, (20, 30), Some(seen(2, "assigned")));
        assert_eq!(run(&h).valid, Validity::True);
    }

    #[test]
    fn reads_ending_and_starting_at_the_same_instant_are_concurrent() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(seen(4, "running"))).read(2, 1, (20, 30), Some(seen(2, "assigned")));
        assert_eq!(run(&h).valid, Validity::True);
    }

    #[test]
    fn version_going_back_in_real_time_is_invalid() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(seen(4, "running"))).read(2, 1, (12, 22), Some(seen(2, "assigned"))).read(
            3,
            1,
            (30, 40),
            Some(seen(3, "running")),
        );
        let r = run(&h);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "version_regressed"), 1);
        let ex = &r.details["examples"]["version_regressed"][0];
        assert_eq!((ex["a"]["seen"]["version"].as_u64(), ex["b"]["seen"]["version"].as_u64()), (Some(4), Some(3)));
    }

    #[test]
    fn not_found_after_the_task_was_read_is_a_regression() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(seen(1, "pending"))).read(2, 1, (30, 40), None);
        let r = run(&h);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "version_regressed"), 1);
    }

    #[test]
    fn final_version_below_a_read_is_invalid() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(seen(6, "running")));
        let r = run(&h);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "version_regressed"), 1);
        assert_eq!(count(&r, "terminal_reverted"), 0);
    }

    #[test]
    fn task_read_then_absent_from_final_state_vanished() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(seen(1, "pending")));
        let r = check(&Fixture::new(&h, vec![]).inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["examples"]["version_regressed"][0]["b"]["final"], "absent");
    }

    #[test]
    fn terminal_result_changing_token_is_invalid() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(done(5, "succeeded", 9))).read(2, 1, (30, 40), Some(done(5, "succeeded", 10)));
        let r = run(&h);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "terminal_changed"), 2, "read 2 and the final state both contradict the first result");
    }

    #[test]
    fn concurrent_reads_with_different_terminal_results_are_invalid() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 50), Some(done(5, "succeeded", 10))).read(2, 1, (20, 30), Some(done(5, "cancelled", 10)));
        let r = run(&h);
        assert_eq!(r.valid, Validity::False);
        assert!(count(&r, "terminal_changed") >= 1);
    }

    #[test]
    fn final_state_with_another_terminal_result_is_invalid() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(done(5, "failed", 10)));
        let r = run(&h);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "terminal_changed"), 1);
    }

    #[test]
    fn non_terminal_read_after_terminal_read_is_invalid() {
        let mut h = Hist::new();
        // Version 6 "running" after version 5 "succeeded": the version grew, the terminal state did not hold.
        h.read(1, 1, (10, 20), Some(done(5, "succeeded", 10))).read(2, 1, (30, 40), Some(seen(6, "running")));
        let mut fx = Fixture::new(&h, final_succeeded());
        fx.final_state.tasks[0].version = 6;
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!((count(&r, "terminal_reverted"), count(&r, "version_regressed")), (1, 0));
    }

    #[test]
    fn non_terminal_final_state_after_terminal_read_is_invalid() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(done(5, "succeeded", 10)));
        let mut fx = Fixture::new(&h, final_succeeded());
        fx.final_state.tasks[0].state = "running".into();
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "terminal_reverted"), 1);
    }

    #[test]
    fn not_found_after_ack_is_invalid_but_concurrent_not_found_is_fine() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 20), Outcome::Ok(1)).read(2, 1, (10, 30), None);
        assert_eq!(run(&h).valid, Validity::True, "the read overlapped the submit");
        h.read(2, 1, (40, 50), None);
        let r = run(&h);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "not_found_after_ack"), 1);
    }

    /// A running task: attempts under tokens 10 and 20, checkpoint 2 saved by 10.
    fn running(version: u64) -> TaskRead {
        TaskRead {
            attempts: 2,
            checkpoint: Some(2),
            checkpoint_token: Some(10),
            attempt_tokens: vec![10, 20],
            ..seen(version, "running")
        }
    }

    /// Task 1 ended `succeeded` at version 5: attempts 10 (lost) and 20, checkpoint 3 saved by 20.
    fn final_with_tokens() -> Vec<FinalTask> {
        let attempts = vec![attempt(1, 10, Some("lost")), attempt(2, 20, Some("succeeded"))];
        vec![FinalTask { attempts, checkpoint: Some((3, 20)), ..task(1, "a", "succeeded", 5) }]
    }

    /// The final task as a read sees it.
    fn succeeded_with_tokens() -> TaskRead {
        let ended = TaskRead { state: "succeeded".into(), result_token: Some(20), ..running(5) };
        TaskRead { checkpoint: Some(3), checkpoint_token: Some(20), ..ended }
    }

    #[test]
    fn reads_of_one_version_with_one_content_are_valid() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(running(4)))
            .read(2, 1, (30, 40), Some(running(4)))
            .read(3, 1, (50, 60), Some(succeeded_with_tokens()))
            .read(1, 1, (70, 80), Some(succeeded_with_tokens()));
        let r = check(&Fixture::new(&h, final_with_tokens()).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(count(&r, "content_differs"), 0);
    }

    #[test]
    fn a_lost_change_whose_version_was_reused_is_invalid() {
        // Version 4 first showed checkpoint 2 saved by token 10; after a failover the same version
        // shows checkpoint 3 saved by token 20: one of the two commits was lost.
        let mut h = Hist::new();
        let other = TaskRead { checkpoint: Some(3), checkpoint_token: Some(20), ..running(4) };
        h.read(1, 1, (10, 20), Some(running(4))).read(2, 1, (30, 40), Some(other));
        h.read(3, 1, (50, 60), Some(running(4)));
        let r = check(&Fixture::new(&h, final_with_tokens()).inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "content_differs"), 1, "only the read that differs from the first one");
        let ex = &r.details["examples"]["content_differs"][0];
        assert_eq!(ex["fields"], json!(["checkpoint", "checkpoint_token"]));
        assert_eq!((ex["a"]["complete_ns"].as_u64(), ex["b"]["complete_ns"].as_u64()), (Some(20), Some(40)));
    }

    #[test]
    fn same_version_with_other_attempts_or_state_is_invalid_even_when_concurrent() {
        let mut h = Hist::new();
        let fewer = TaskRead { attempts: 1, attempt_tokens: vec![10], ..running(4) };
        h.read(1, 1, (10, 50), Some(running(4))).read(2, 1, (20, 30), Some(fewer));
        let r = check(&Fixture::new(&h, final_with_tokens()).inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["examples"]["content_differs"][0]["fields"], json!(["attempts", "attempt_tokens"]));

        let mut h = Hist::new();
        let pending = TaskRead { state: "pending".into(), ..running(4) };
        h.read(1, 1, (10, 20), Some(running(4))).read(2, 1, (30, 40), Some(pending));
        let r = check(&Fixture::new(&h, final_with_tokens()).inputs());
        assert_eq!(r.details["examples"]["content_differs"][0]["fields"], json!(["state"]));
    }

    #[test]
    fn read_contradicting_the_final_state_of_its_version_is_invalid() {
        let other_tokens = TaskRead { attempt_tokens: vec![10, 30], ..succeeded_with_tokens() };
        let other_checkpoint = TaskRead { checkpoint: Some(2), ..succeeded_with_tokens() };
        let other_state = TaskRead { state: "running".into(), result_token: None, ..succeeded_with_tokens() };
        let cases = [(other_tokens, "attempt_tokens"), (other_checkpoint, "checkpoint"), (other_state, "state")];
        for (read, field) in cases {
            let mut h = Hist::new();
            h.read(1, 1, (10, 20), Some(read));
            let r = check(&Fixture::new(&h, final_with_tokens()).inputs());
            assert_eq!(r.valid, Validity::False, "{field}");
            assert_eq!(count(&r, "content_differs"), 1, "{field}");
            let ex = &r.details["examples"]["content_differs"][0];
            assert_eq!(ex["fields"], json!([field]));
            assert_eq!(ex["b"]["final"]["version"], 5);
        }
    }

    #[test]
    fn final_state_of_another_version_is_not_compared() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(running(4)));
        let r = check(&Fixture::new(&h, final_with_tokens()).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
    }

    #[test]
    fn reads_without_tokens_are_not_held_against_the_final_state() {
        // A history recorded before reads carried tokens: same version, same old fields, and a
        // final state with attempts and a checkpoint the reads could not show.
        let mut h = Hist::new();
        let old = TaskRead { attempts: 2, result_token: Some(20), checkpoint: Some(3), ..seen(5, "succeeded") };
        h.read(1, 1, (10, 20), Some(old.clone())).read(2, 1, (30, 40), Some(old));
        let r = check(&Fixture::new(&h, final_with_tokens()).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(count(&r, "content_differs"), 0);
    }

    #[test]
    fn incomplete_final_state_still_reports_read_violations() {
        let mut h = Hist::new();
        h.read(1, 1, (10, 20), Some(seen(1, "pending")));
        assert_eq!(check(&Fixture::new(&h, vec![]).incomplete().inputs()).valid, Validity::Unknown);
        h.read(1, 1, (30, 40), None);
        assert_eq!(check(&Fixture::new(&h, vec![]).incomplete().inputs()).valid, Validity::False);
    }

    /// Task 1 ran to the end (its sink `done` at 150), was read running, then answered
    /// `forgotten` to a read and to the final read.
    fn forgotten_after_done() -> (Hist, Vec<crate::history::SinkEvent>) {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 5), Outcome::Ok(1)).read(1, 1, (10, 20), Some(seen(3, "running"))).read_forgotten(
            2,
            1,
            (200, 210),
        );
        let s = vec![crate::checkers::testkit::sink(150, 1, 1, 10, SinkKind::Done { n: 3 })];
        (h, s)
    }

    #[test]
    fn a_task_forgotten_after_its_done_line_is_valid_and_counted() {
        let (h, s) = forgotten_after_done();
        let r = check(&Fixture::new(&h, vec![]).with_forgotten(vec![1]).with_sink(s).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((count(&r, "forgotten_reads"), count(&r, "forgotten_tasks")), (1, 1));
        // A terminal read before the forgotten answer is a witness as good as the sink.
        let mut h = Hist::new();
        h.submit(1, "a", (0, 5), Outcome::Ok(1)).read(1, 1, (10, 20), Some(done(5, "succeeded", 10)));
        h.read_forgotten(2, 1, (30, 40));
        let r = check(&Fixture::new(&h, vec![]).with_forgotten(vec![1]).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        // So is a cancel sent before it, even one never answered.
        let mut h = Hist::new();
        h.submit(1, "a", (0, 5), Outcome::Ok(1)).cancel_info(1, 1, (10, 20)).read_forgotten(2, 1, (30, 40));
        assert_eq!(check(&Fixture::new(&h, vec![]).with_forgotten(vec![1]).inputs()).valid, Validity::True);
    }

    #[test]
    fn a_forgotten_task_read_again_or_not_found_afterwards_is_revived() {
        let (mut h, s) = forgotten_after_done();
        h.read(3, 1, (220, 230), Some(done(5, "succeeded", 10))).read(1, 1, (240, 250), None);
        let r = check(&Fixture::new(&h, vec![]).with_forgotten(vec![1]).with_sink(s.clone()).inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "revived_after_forgotten"), 2, "{r:#?}");
        assert_eq!(count(&r, "version_regressed"), 0, "reported as a revival, not a plain regression");
        // The final state showing it again (or lacking it without `forgotten`) is a revival too.
        let (h, s) = forgotten_after_done();
        let present =
            vec![FinalTask { attempts: vec![attempt(1, 10, Some("succeeded"))], ..task(1, "a", "succeeded", 5) }];
        let r = check(&Fixture::new(&h, present).with_sink(s.clone()).inputs());
        assert_eq!(count(&r, "revived_after_forgotten"), 1);
        let r = check(&Fixture::new(&h, vec![]).with_sink(s).inputs());
        assert_eq!(count(&r, "revived_after_forgotten"), 1);
    }

    #[test]
    fn a_forgotten_task_never_seen_ended_without_a_done_line_or_cancel_is_invalid() {
        // Last seen running, no sink completion, no cancel: it cannot have ended, so it cannot
        // have been forgotten.
        let mut h = Hist::new();
        h.submit(1, "a", (0, 5), Outcome::Ok(1)).read(1, 1, (10, 20), Some(seen(3, "running")));
        h.read_forgotten(2, 1, (200, 210));
        let r = check(&Fixture::new(&h, vec![]).with_forgotten(vec![1]).inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "forgotten_unended"), 1);
        // A `done` line only after the forgotten answer is no witness either.
        let s = vec![crate::checkers::testkit::sink(300, 1, 1, 10, SinkKind::Done { n: 3 })];
        let r = check(&Fixture::new(&h, vec![]).with_forgotten(vec![1]).with_sink(s).inputs());
        assert_eq!(count(&r, "forgotten_unended"), 1);
        // Forgotten only in the final read, never read at all, no witness: the same.
        let mut h = Hist::new();
        h.submit(1, "a", (0, 5), Outcome::Ok(1));
        let r = check(&Fixture::new(&h, vec![]).with_forgotten(vec![1]).inputs());
        assert_eq!(count(&r, "forgotten_unended"), 1);
    }

    #[test]
    fn an_acked_task_answering_not_found_is_invalid_while_others_are_forgotten() {
        let (mut h, s) = forgotten_after_done();
        h.submit(1, "b", (0, 5), Outcome::Ok(2)).read(3, 2, (200, 210), None);
        let r = check(&Fixture::new(&h, vec![]).with_forgotten(vec![1]).with_sink(s).inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "not_found_after_ack"), 1);
        assert_eq!(count(&r, "forgotten_unended"), 0);
    }

    #[test]
    fn a_task_forgotten_sooner_than_the_horizon_after_it_ended_is_invalid_without_clock_faults() {
        // Done at 150 ns, forgotten at 210 ns: with a 1 s horizon, about 1 s early.
        let (h, s) = forgotten_after_done();
        let mut fx = Fixture::new(&h, vec![]).with_forgotten(vec![1]).with_sink(s);
        fx.retention_ms = Some(1_000);
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "forgotten_early"), 1, "{r:#?}");
        // Under clock faults the leaders' clocks are skewed on purpose: measured only.
        fx.clock_faults = true;
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["measured"]["early_forgets"], 1);
        // Answered later than the horizon after the done line: fine.
        let mut h = Hist::new();
        h.submit(1, "a", (0, 5), Outcome::Ok(1)).read_forgotten(2, 1, (1_000_000_000, 1_100_000_000));
        let s = vec![crate::checkers::testkit::sink(150, 1, 1, 10, SinkKind::Done { n: 3 })];
        let mut fx = Fixture::new(&h, vec![]).with_forgotten(vec![1]).with_sink(s);
        fx.retention_ms = Some(1_000);
        assert_eq!(check(&fx.inputs()).valid, Validity::True);
    }
}

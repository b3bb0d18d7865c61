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
use crate::history::TaskRead;
use crate::history::is_terminal_state;

/// This checker's name in `results.json`.
pub const NAME: &str = "reads";

/// One `ok` read.
#[derive(Debug, Clone, Copy)]
struct Obs<'a> {
    invoke: &'a Op,
    completion: &'a Op,
    /// `None` is a 404.
    seen: Option<&'a TaskRead>,
}

impl Obs<'_> {
    fn start(&self) -> u64 {
        self.invoke.time_ns
    }

    fn end(&self) -> u64 {
        self.completion.time_ns
    }

    fn version(&self) -> u64 {
        self.seen.map_or(0, |s| s.version)
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
        })
    }
}

/// The final state of one task, as the last read.
#[derive(Debug, Clone, Copy)]
enum Last<'a> {
    /// The final read did not complete: nothing to compare with.
    Unknown,
    /// Complete, and the task is not in it.
    Missing,
    /// Complete, with this task.
    Present(&'a FinalTask),
}

impl Last<'_> {
    fn version(&self) -> u64 {
        match self {
            Last::Present(t) => t.version,
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
}

impl Findings {
    fn violations(&self) -> usize {
        self.version_regressed.count()
            + self.terminal_changed.count()
            + self.terminal_reverted.count()
            + self.not_found_after_ack.count()
            + self.content_differs.count()
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
            let obs = Obs { invoke: op.invoke, completion, seen: v.seen.as_ref() };
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
    let mut f = Findings::default();
    for (&task_id, obs) in &mut reads {
        let last = match finals.get(&task_id) {
            _ if !complete => Last::Unknown,
            Some(t) => Last::Present(t),
            None => Last::Missing,
        };
        check_versions(task_id, obs, last, &mut f);
        check_terminal(task_id, obs, last, &mut f);
        check_not_found(task_id, obs, acked_at.get(&task_id).copied(), &mut f);
        check_content(task_id, obs, last, &mut f);
    }

    let checked: usize = reads.values().map(Vec::len).sum();
    let valid = Validity::from_findings(f.violations(), complete);
    let summary = format!(
        "{checked} ok reads of {} tasks: {} version regressions, {} terminal changes, {} terminal reverts, {} not-found after ack, {} content differences{}",
        reads.len(),
        f.version_regressed.count(),
        f.terminal_changed.count(),
        f.terminal_reverted.count(),
        f.not_found_after_ack.count(),
        f.content_differs.count(),
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
        "examples": {
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
            Findings::push(&mut f.version_regressed, task_id, || a.to_json(), || b.to_json());
        }
    }

    if matches!(last, Last::Unknown) {
        return;
    }
    if let Some(a) = by_end.iter().max_by_key(|o| o.version())
        && last.version() < a.version()
    {
        Findings::push(&mut f.version_regressed, task_id, || a.to_json(), || last.to_json());
    }
}

/// Steps 3 and 4: one terminal result, never left. Expects `obs` sorted by invoke time.
fn check_terminal(task_id: u64, obs: &[Obs], last: Last, f: &mut Findings) {
    let Some(first) = obs.iter().filter(|o| o.terminal().is_some()).min_by_key(|o| o.end()) else {
        // No read saw it terminal; the final state alone cannot contradict itself.
        return;
    };
    let result = first.terminal();
    for b in obs {
        if b.terminal().is_some_and(|r| Some(r) != result) {
            Findings::push(&mut f.terminal_changed, task_id, || first.to_json(), || b.to_json());
        } else if b.terminal().is_none() && b.start() > first.end() {
            Findings::push(&mut f.terminal_reverted, task_id, || first.to_json(), || b.to_json());
        }
    }
    match (last, last.terminal()) {
        (Last::Unknown, _) => {}
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
    for b in obs.iter().filter(|o| o.seen.is_none() && o.start() > acked_at) {
        let ack = || json!({ "acked_at_ns": acked_at });
        Findings::push(&mut f.not_found_after_ack, task_id, ack, || b.to_json());
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
}

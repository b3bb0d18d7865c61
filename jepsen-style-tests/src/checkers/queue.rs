//! Total queue: every acknowledged submission is in the final state exactly once, and nothing else
//! is.
//!
//! The unit is the idempotency key, not the operation: a client that got `info` retries the same
//! key in a new operation, and taskraft must fold all of them into one task. The check:
//! 1. Fold every submit operation into its key: how many were acknowledged (and with which task
//!    ids), how many definitely failed, how many are indeterminate (`info` or never completed).
//! 2. Fold the final state into key → task ids.
//! 3. Judge each key:
//!    - **lost**: acknowledged, but no final task has the key, or an acknowledged task id is not
//!      in the final state at all;
//!    - **duplicated**: two task ids for one key, whether two final tasks, two acks with different
//!      ids, or an ack whose id is not the key's final task;
//!    - **failed but present**: every operation on the key said `fail`, yet the key was written;
//!    - **indeterminate**: no ack and not all failed; present ("recovered") or absent, both fine.
//! 4. Judge each final task: **unexpected** if it has no key or a key nobody submitted. A task
//!    whose origin is a schedule (`"origin": {"schedule", "nominal_ms", "manual"}`) is a run the
//!    cluster created when a schedule fired, not a client submission: it is counted
//!    (`schedule_runs`) and left to the `schedules` checker, which knows which schedules exist.
//!    Likewise a task whose origin is a workflow's node (`{"workflow", "node"}`) is counted
//!    (`workflow_tasks`) and left to the `workflows` checker.
//!
//! Two acks with different task ids are a violation the history proves on its own, so that one is
//! reported even when the final state is incomplete; everything else then answers `unknown`.
//!
//! Retention (on in the suite, with a horizon of a few seconds) forgets a finished task with its
//! idempotency key, and the final read lists the acknowledged ids it lacked but that answered
//! 404 `forgotten` (`final.json` `forgotten`). Accounted for explicitly, never by dropping a rule:
//! - an acknowledged id the final state lacks is **lost** unless it is in `forgotten`; one that
//!   answered `not_found` is lost as before. A forgotten acknowledged task is counted
//!   (`acked_forgotten`); whether it could have ended first is judged by `reads` (step 7,
//!   *forgotten unended*), which sees the sink and the cancels;
//! - **duplicated** is unchanged: a key's acked id that was forgotten while another task holds
//!   the key in the final state is still two tasks for one key (the example says
//!   `acked_forgotten`). Legitimately the server may reuse a key once its task was forgotten, so
//!   the workload never retries a key later than a third of the horizon after its first submit
//!   ([`crate::run::retry_window`]): a second task from that key would need a submit to sit in
//!   the cluster for two thirds of the horizon plus a task run before being applied, longer than
//!   any fault of the suite holds a request;
//! - an indeterminate or definitely failed key whose task was forgotten is indistinguishable from
//!   one never written (the key is gone too): **recovered** and **failed but present** count only
//!   what the final state still shows.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::json;

use super::CheckResult;
use super::Examples;
use super::Inputs;
use super::Validity;
use super::pair_ops;
use crate::history::Body;
use crate::history::OpType;

/// This checker's name in `results.json`.
pub const NAME: &str = "queue";

/// What the history says about one idempotency key.
#[derive(Debug, Default)]
struct KeyOps {
    /// Operations that completed `ok`.
    acked: usize,
    /// Task ids those acks returned.
    acked_ids: BTreeSet<u64>,
    /// Operations that completed `fail`.
    failed: usize,
    /// Operations that completed `info` or never completed.
    indeterminate: usize,
}

impl KeyOps {
    fn record(&mut self, outcome: OpType, task_id: Option<u64>) {
        match outcome {
            OpType::Ok => {
                self.acked += 1;
                self.acked_ids.extend(task_id);
            }
            OpType::Fail => self.failed += 1,
            OpType::Info | OpType::Invoke => self.indeterminate += 1,
        }
    }

    fn all_failed(&self) -> bool {
        self.acked == 0 && self.indeterminate == 0 && self.failed > 0
    }
}

/// The violations and counts of one run.
#[derive(Debug, Default)]
struct Findings {
    lost: Examples,
    duplicated: Examples,
    failed_but_present: Examples,
    unexpected: Examples,
    acked: usize,
    failed: usize,
    indeterminate: usize,
    recovered: usize,
    /// Acknowledged keys whose every acked id the final read found forgotten.
    acked_forgotten: usize,
    /// Final tasks that are runs of a schedule (not judged here).
    schedule_runs: usize,
    /// Final tasks of a workflow's nodes (not judged here).
    workflow_tasks: usize,
}

impl Findings {
    fn violations(&self) -> usize {
        self.lost.count() + self.duplicated.count() + self.failed_but_present.count() + self.unexpected.count()
    }
}

/// Judges the total-queue property (see the module docs).
pub fn check(inputs: &Inputs) -> CheckResult {
    let pairing = pair_ops(inputs.history);
    let mut keys: BTreeMap<&str, KeyOps> = BTreeMap::new();
    for op in &pairing.ops {
        if let (Body::Submit(invoked), Body::Submit(answered)) = (&op.invoke.body, op.body()) {
            keys.entry(invoked.key.as_str()).or_default().record(op.outcome(), answered.task_id);
        }
    }
    // A completion whose invoke line is missing still tells what happened to its key.
    for op in &pairing.orphans {
        if let Body::Submit(v) = &op.body {
            keys.entry(v.key.as_str()).or_default().record(op.kind, v.task_id);
        }
    }

    let complete = inputs.final_state.complete;
    let mut f = Findings::default();
    judge_keys(&keys, inputs, &mut f);
    if complete {
        judge_final_tasks(&keys, inputs, &mut f);
    }

    let valid = Validity::from_findings(f.violations(), complete);
    let summary = format!(
        "{} keys: {} acked ({} forgotten), {} lost, {} duplicated, {} unexpected, {} failed-but-present; {} indeterminate ({} recovered){}",
        keys.len(),
        f.acked,
        f.acked_forgotten,
        f.lost.count(),
        f.duplicated.count(),
        f.unexpected.count(),
        f.failed_but_present.count(),
        f.indeterminate,
        f.recovered,
        if complete { "" } else { "; final state incomplete" },
    );
    let details = json!({
        "final_complete": complete,
        "keys": keys.len(),
        "acked": f.acked,
        "acked_forgotten": complete.then_some(f.acked_forgotten),
        "forgotten_in_final": inputs.final_state.forgotten.len(),
        "failed": f.failed,
        "indeterminate": f.indeterminate,
        // Whether an indeterminate key was written is only known from a complete final state.
        "recovered": complete.then_some(f.recovered),
        "not_recovered": complete.then(|| f.indeterminate - f.recovered),
        "lost": f.lost.count(),
        "duplicated": f.duplicated.count(),
        "unexpected": f.unexpected.count(),
        "failed_but_present": f.failed_but_present.count(),
        "orphan_completions": pairing.orphans.len(),
        "schedule_runs": complete.then_some(f.schedule_runs),
        "workflow_tasks": complete.then_some(f.workflow_tasks),
        "examples": {
            "lost": f.lost.to_json(),
            "duplicated": f.duplicated.to_json(),
            "unexpected": f.unexpected.to_json(),
            "failed_but_present": f.failed_but_present.to_json(),
        },
    });
    CheckResult { name: NAME, valid, summary, details }
}

/// Step 3: every submitted key against the final state (only the history-only part when the final
/// state is incomplete).
fn judge_keys(keys: &BTreeMap<&str, KeyOps>, inputs: &Inputs, f: &mut Findings) {
    let complete = inputs.final_state.complete;
    let mut final_by_key: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for t in &inputs.final_state.tasks {
        if let Some(key) = &t.key {
            final_by_key.entry(key.as_str()).or_default().insert(t.task_id);
        }
    }
    let final_ids: BTreeSet<u64> = inputs.final_state.tasks.iter().map(|t| t.task_id).collect();
    let empty = BTreeSet::new();
    let forgotten = |id: &u64| inputs.final_state.is_forgotten(*id);

    for (key, ops) in keys {
        let in_final = final_by_key.get(key).unwrap_or(&empty);
        let acked_forgotten: Vec<u64> = ops.acked_ids.iter().copied().filter(forgotten).collect();
        let example = || json!({ "key": key, "acked_ids": ops.acked_ids, "final_ids": in_final, "acked_forgotten": acked_forgotten });
        if ops.acked > 0 {
            f.acked += 1;
        } else if ops.all_failed() {
            f.failed += 1;
        } else {
            f.indeterminate += 1;
            f.recovered += usize::from(complete && !in_final.is_empty());
        }

        let acks_disagree = ops.acked_ids.len() > 1;
        if !complete {
            if acks_disagree {
                f.duplicated.push(example);
            }
            continue;
        }
        // Every acked id must be in the final state or forgotten, and the key must still be in
        // the final state unless every acked id was forgotten (the key went with its task).
        let unaccounted = ops.acked_ids.iter().any(|id| !final_ids.contains(id) && !forgotten(id));
        let all_forgotten = !ops.acked_ids.is_empty() && ops.acked_ids.iter().all(forgotten);
        if ops.acked > 0 && (unaccounted || (in_final.is_empty() && !all_forgotten)) {
            f.lost.push(example);
        }
        if ops.acked > 0 && all_forgotten {
            f.acked_forgotten += 1;
        }
        let ack_elsewhere = !in_final.is_empty() && !ops.acked_ids.is_subset(in_final);
        if acks_disagree || in_final.len() > 1 || ack_elsewhere {
            f.duplicated.push(example);
        }
        if ops.all_failed() && !in_final.is_empty() {
            f.failed_but_present.push(example);
        }
    }
}

/// Step 4: every final task must come from a submitted key, except a schedule's runs and a
/// workflow's tasks.
fn judge_final_tasks(keys: &BTreeMap<&str, KeyOps>, inputs: &Inputs, f: &mut Findings) {
    for t in &inputs.final_state.tasks {
        if t.origin.is_some() {
            f.schedule_runs += 1;
            continue;
        }
        if t.workflow.is_some() {
            f.workflow_tasks += 1;
            continue;
        }
        let submitted = t.key.as_deref().is_some_and(|k| keys.contains_key(k));
        if !submitted {
            f.unexpected.push(|| json!({ "task_id": t.task_id, "key": t.key }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{Fixture, Hist, Outcome, task};

    fn run(h: &Hist, tasks: Vec<crate::history::FinalTask>) -> CheckResult {
        check(&Fixture::new(h, tasks).inputs())
    }

    fn count(r: &CheckResult, field: &str) -> u64 {
        r.details[field].as_u64().unwrap()
    }

    #[test]
    fn acked_keys_present_once_is_valid() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1)).submit(2, "b", (5, 15), Outcome::Ok(2));
        let r = run(&h, vec![task(1, "a", "pending", 1), task(2, "b", "running", 3)]);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(count(&r, "acked"), 2);
    }

    #[test]
    fn retried_key_acked_twice_with_the_same_id_is_valid() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Info).submit(1, "a", (20, 30), Outcome::Ok(7)).submit(
            1,
            "a",
            (40, 50),
            Outcome::Ok(7),
        );
        let r = run(&h, vec![task(7, "a", "pending", 1)]);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
    }

    #[test]
    fn indeterminate_keys_may_or_may_not_be_present() {
        let mut h = Hist::new();
        h.submit(1, "present", (0, 10), Outcome::Info).submit(2, "absent", (0, 10), Outcome::Info).submit(
            3,
            "never-answered",
            (0, 0),
            Outcome::Never,
        );
        let r = run(&h, vec![task(1, "present", "pending", 1)]);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((count(&r, "indeterminate"), count(&r, "recovered"), count(&r, "not_recovered")), (3, 1, 2));
    }

    #[test]
    fn a_failed_then_info_key_may_be_present() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Fail).submit(1, "a", (20, 30), Outcome::Info);
        let r = run(&h, vec![task(1, "a", "pending", 1)]);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
    }

    #[test]
    fn acked_key_missing_is_lost() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let r = run(&h, vec![]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "lost"), 1);
        assert_eq!(r.details["examples"]["lost"][0]["key"], "a");
    }

    #[test]
    fn acked_task_id_missing_is_lost_even_if_the_key_is_elsewhere() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let r = run(&h, vec![task(2, "a", "pending", 1)]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!((count(&r, "lost"), count(&r, "duplicated")), (1, 1));
    }

    #[test]
    fn task_with_unknown_or_no_key_is_unexpected() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let mut keyless = task(3, "", "pending", 1);
        keyless.key = None;
        let r = run(&h, vec![task(1, "a", "pending", 1), task(2, "ghost", "pending", 1), keyless]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "unexpected"), 2);
    }

    #[test]
    fn schedule_runs_are_not_unexpected() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let origin = crate::history::RunOrigin { schedule: 1, nominal_ms: 5_000, manual: false };
        let mut run_task = task(2, "", "succeeded", 4);
        run_task.key = None;
        run_task.origin = Some(origin);
        let r = run(&h, vec![task(1, "a", "pending", 1), run_task]);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((count(&r, "unexpected"), count(&r, "schedule_runs")), (0, 1));
    }

    #[test]
    fn workflow_tasks_are_not_unexpected() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let mut wf_task = task(2, "", "succeeded", 4);
        wf_task.key = None;
        wf_task.workflow = Some(crate::history::WorkflowRef { workflow: 1, node: 0, shard: Some(3) });
        let r = run(&h, vec![task(1, "a", "pending", 1), wf_task]);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((count(&r, "unexpected"), count(&r, "workflow_tasks")), (0, 1));
    }

    #[test]
    fn two_final_tasks_for_one_key_are_duplicated() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Info);
        let r = run(&h, vec![task(1, "a", "pending", 1), task(2, "a", "pending", 1)]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "duplicated"), 1);
    }

    #[test]
    fn two_acks_with_different_ids_are_duplicated_even_without_a_final_state() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1)).submit(2, "a", (0, 10), Outcome::Ok(2));
        let r = check(&Fixture::new(&h, vec![]).incomplete().inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "duplicated"), 1);
    }

    #[test]
    fn ack_id_differing_from_the_keys_final_task_is_duplicated() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1)).submit(2, "b", (0, 10), Outcome::Ok(2));
        // Task 1 exists (so "a" is not lost by id) but carries key "b"; "a"'s final task is 2.
        let r = run(&h, vec![task(1, "b", "pending", 1), task(2, "a", "pending", 1)]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "duplicated"), 2);
    }

    #[test]
    fn definitely_failed_key_present_is_invalid() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Fail).submit(1, "a", (20, 30), Outcome::Fail);
        let r = run(&h, vec![task(1, "a", "pending", 1)]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "failed_but_present"), 1);
    }

    #[test]
    fn definitely_failed_key_absent_is_valid() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Fail);
        let r = run(&h, vec![]);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(count(&r, "failed"), 1);
    }

    #[test]
    fn incomplete_final_state_is_unknown() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let r = check(&Fixture::new(&h, vec![]).incomplete().inputs());
        assert_eq!(r.valid, Validity::Unknown, "a missing task proves nothing when the final read failed");
    }

    #[test]
    fn orphan_ack_still_counts() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let mut fx = Fixture::new(&h, vec![]);
        fx.history.remove(0);
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!((count(&r, "lost"), count(&r, "orphan_completions")), (1, 1));
    }

    #[test]
    fn an_acked_task_forgotten_by_the_final_read_is_not_lost() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1)).submit(2, "b", (5, 15), Outcome::Ok(2));
        let r = check(&Fixture::new(&h, vec![task(2, "b", "running", 3)]).with_forgotten(vec![1]).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((count(&r, "acked_forgotten"), count(&r, "lost")), (1, 0));
    }

    #[test]
    fn an_acked_task_answering_not_found_is_lost_while_others_are_forgotten() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1)).submit(2, "b", (5, 15), Outcome::Ok(2));
        let r = check(&Fixture::new(&h, vec![]).with_forgotten(vec![1]).inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "lost"), 1);
        assert_eq!(r.details["examples"]["lost"][0]["key"], "b");
    }

    #[test]
    fn a_key_reused_after_its_task_was_forgotten_is_still_duplicated() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let r = check(&Fixture::new(&h, vec![task(9, "a", "pending", 1)]).with_forgotten(vec![1]).inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "duplicated"), 1);
        assert_eq!(r.details["examples"]["duplicated"][0]["acked_forgotten"], serde_json::json!([1]));
    }
}

//! Liveness: after the heal and the quiet period, every acknowledged task has finished.
//!
//! Safety says nothing bad happened; this says something good eventually did. A task counts as
//! acknowledged if its id came back in an `ok` submit, or its key did (the ack of a retry may
//! carry the id while an earlier `info` created it). Each such task in the final state must be
//! `succeeded`, `failed` or `cancelled`. Tasks nobody saw acknowledged are counted but not judged:
//! the cluster owes nothing to a submission whose client gave up. A schedule's runs are never
//! acknowledged to anyone (the cluster creates them), so they land in that count too
//! (`unacked_non_terminal`); the `schedules` checker judges them.
//!
//! Workflows too: every workflow whose submit was acknowledged (`workflows.json`) must be
//! `succeeded`, `failed` or `cancelled` in its final read; one still `running` is listed with its
//! nodes' states. A workflow whose final read failed or answered 404 is not judged here (the
//! `workflows` checker says unknown or lost).
//!
//! Retention: an acknowledged task or workflow the final read found `forgotten` had finished
//! (only finished records are forgotten, settled workflows as a whole) and counts as terminal
//! here (`forgotten` in the details); whether that is believable is judged by `reads` and
//! `workflows`.
//!
//! Acknowledged tasks missing from the final state are the queue checker's business, not this
//! one's. The verdict is reported apart from the run's safety verdict (see
//! [`super::overall`]).

use std::collections::BTreeSet;

use serde_json::json;

use super::CheckResult;
use super::Examples;
use super::Inputs;
use super::Validity;
use crate::history::Body;
use crate::history::OpType;
use crate::history::is_terminal_state;

/// This checker's name in `results.json`.
pub const NAME: &str = "liveness";

/// Judges liveness (see the module docs).
pub fn check(inputs: &Inputs) -> CheckResult {
    let final_state = inputs.final_state;
    if !final_state.complete {
        let summary = "final state incomplete: cannot tell whether acknowledged tasks finished".to_string();
        return CheckResult {
            name: NAME,
            valid: Validity::Unknown,
            summary,
            details: json!({ "final_complete": false }),
        };
    }

    // Acks are read from completion lines alone: no pairing needed to know what was acknowledged.
    let mut acked_ids = BTreeSet::new();
    let mut acked_keys = BTreeSet::new();
    for op in inputs.history.iter().filter(|op| op.kind == OpType::Ok) {
        if let Body::Submit(v) = &op.body {
            acked_ids.extend(v.task_id);
            acked_keys.insert(v.key.as_str());
        }
    }

    let forgotten = acked_ids.iter().filter(|id| final_state.is_forgotten(**id)).count();
    let mut acked = forgotten;
    let mut stuck = Examples::default();
    let mut unacked_unfinished = 0;
    for t in &final_state.tasks {
        let is_acked = acked_ids.contains(&t.task_id) || t.key.as_deref().is_some_and(|k| acked_keys.contains(k));
        let finished = is_terminal_state(&t.state);
        if is_acked {
            acked += 1;
            if !finished {
                stuck.push(
                    || json!({ "task_id": t.task_id, "key": t.key, "state": t.state, "attempts": t.attempts.len() }),
                );
            }
        } else if !finished {
            unacked_unfinished += 1;
        }
    }

    let mut wf_acked = 0;
    let mut wf_forgotten = 0;
    let mut wf_stuck = Examples::default();
    for log in inputs.workflows.iter().flat_map(|r| &r.workflows).filter(|l| l.acked_ns.is_some()) {
        wf_acked += 1;
        wf_forgotten += usize::from(log.final_forgotten);
        if let Some(v) = log.final_view.as_ref().filter(|v| v.state == "running") {
            let nodes: serde_json::Map<String, serde_json::Value> =
                v.nodes.iter().map(|n| (n.id.clone(), json!(n.state))).collect();
            wf_stuck.push(|| json!({ "workflow": log.name, "id": v.id, "nodes": nodes }));
        }
    }

    let valid = Validity::from_findings(stuck.count() + wf_stuck.count(), true);
    let summary = format!(
        "{} of {acked} acknowledged tasks ({forgotten} forgotten) and {} of {wf_acked} acknowledged workflows ({wf_forgotten} forgotten) not terminal after heal",
        stuck.count(),
        wf_stuck.count()
    );
    let details = json!({
        "final_complete": true,
        "acked_tasks": acked,
        "terminal": acked - stuck.count(),
        "non_terminal": stuck.count(),
        "unacked_non_terminal": unacked_unfinished,
        "forgotten": forgotten,
        "workflows_forgotten": wf_forgotten,
        "examples": stuck.to_json(),
        "acked_workflows": wf_acked,
        "workflows_not_terminal": wf_stuck.count(),
        "workflow_examples": wf_stuck.to_json(),
    });
    CheckResult { name: NAME, valid, summary, details }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{Fixture, Hist, Outcome, task};

    #[test]
    fn acked_tasks_all_terminal_is_valid() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1)).submit(1, "b", (20, 30), Outcome::Ok(2)).submit(
            1,
            "c",
            (40, 50),
            Outcome::Ok(3),
        );
        let tasks = vec![task(1, "a", "succeeded", 5), task(2, "b", "failed", 5), task(3, "c", "cancelled", 2)];
        let r = check(&Fixture::new(&h, tasks).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["acked_tasks"], 3);
    }

    #[test]
    fn acked_task_still_running_is_reported_with_its_state() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let r = check(&Fixture::new(&h, vec![task(1, "a", "retry_wait", 4)]).inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["examples"][0]["state"], "retry_wait");
    }

    #[test]
    fn task_acked_through_its_key_counts() {
        // The first submit created task 1 but answered info; no ack carries the id... only the key.
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Info).submit(1, "a", (20, 30), Outcome::Ok(9));
        let r = check(&Fixture::new(&h, vec![task(1, "a", "pending", 1)]).inputs());
        assert_eq!(r.valid, Validity::False);
    }

    #[test]
    fn unacked_unfinished_tasks_are_counted_not_judged() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Info);
        let r = check(&Fixture::new(&h, vec![task(1, "a", "pending", 1)]).inputs());
        assert_eq!(r.valid, Validity::True);
        assert_eq!(r.details["unacked_non_terminal"], 1);
    }

    #[test]
    fn an_acked_workflow_still_running_is_a_liveness_failure() {
        use crate::history::{WfNodeSeen, WfSeen, WorkflowLog, WorkflowRecord};
        let view = |state: &str| WfSeen {
            id: 1,
            name: "w".into(),
            state: state.into(),
            nodes: vec![WfNodeSeen { id: "map".into(), state: "running".into(), ..WfNodeSeen::default() }],
            ..WfSeen::default()
        };
        let log = |state: &str, acked: bool| WorkflowLog {
            name: "w".into(),
            acked_ns: acked.then_some(5),
            final_view: Some(view(state)),
            ..WorkflowLog::default()
        };
        let h = Hist::new();
        let mut fx = Fixture::new(&h, vec![]);
        fx.workflows = Some(WorkflowRecord { workflows: vec![log("running", true)], ..WorkflowRecord::default() });
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::False, "{r:#?}");
        assert_eq!(r.details["workflow_examples"][0]["nodes"]["map"], "running");
        fx.workflows = Some(WorkflowRecord {
            workflows: vec![log("succeeded", true), log("running", false)],
            ..WorkflowRecord::default()
        });
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["acked_workflows"], 1);
    }

    #[test]
    fn incomplete_final_state_is_unknown() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1));
        let r = check(&Fixture::new(&h, vec![]).incomplete().inputs());
        assert_eq!(r.valid, Validity::Unknown);
    }
}

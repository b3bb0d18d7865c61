//! Replica agreement: once the cluster is quiet, every member holds the same tasks.
//!
//! Raft promises that committed entries never change and that every replica applies the same log.
//! The main final read asks one replica; the harness also asks every member on its own (each read
//! is linearizable, so a member catches up first). After the quiet period nothing is in flight,
//! so every member must answer exactly what the main read did. The check:
//! 1. Nothing to judge (`unknown`) when the cluster was still busy after the heal (views taken at
//!    different moments may differ legitimately), when no views were recorded (runs older than
//!    `replicas.json`), or when the main final read is incomplete.
//! 2. Each complete member view must hold the same set of task ids as the main final state, and
//!    each task the same version, state, attempts (token and outcome, in order), checkpoint and
//!    origin (a schedule's runs are tasks like the others).
//!    Workers and attempt numbers are not compared: they follow from the rest.
//! 3. A member whose own read did not complete cannot be compared: the verdict is `unknown`
//!    unless another member already proved a difference.
//!
//! A difference is a safety violation: two replicas applied different histories, or one lost a
//! committed entry (say, across a restart or a snapshot install).
//!
//! Retention keeps forgetting while the views are read (its horizon runs on through the quiet
//! period), and the member views are read after the main one. Each view lists the known ids it
//! lacked that answered `forgotten` on that member. So, explicitly:
//! - a task the main read has and a member view lacks agrees only if that member answered
//!   `forgotten` for it and the main read showed it terminal (only a terminal task is forgotten);
//!   counted as `forgotten_since_main`;
//! - a task the main read found forgotten must be forgotten in every member view: a member
//!   showing it (read later) revived it, one answering `not_found` never had it; both differ;
//! - a task a member has and the main read lacks differs as before.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::Value;
use serde_json::json;

use super::CheckResult;
use super::Examples;
use super::Inputs;
use super::Validity;
use crate::history::FinalState;
use crate::history::FinalTask;
use crate::history::is_terminal_state;

/// This checker's name in `results.json`.
pub const NAME: &str = "replicas";

/// Judges replica agreement (see the module docs).
pub fn check(inputs: &Inputs) -> CheckResult {
    let replicas = inputs.replicas;
    let main = inputs.final_state;
    let skipped = if !replicas.quiet {
        Some("cluster not quiet after the heal: member views not compared")
    } else if replicas.views.is_empty() {
        Some("no member views recorded")
    } else if !main.complete {
        Some("final state incomplete: member views not compared")
    } else {
        None
    };
    if let Some(why) = skipped {
        let details =
            json!({ "quiet": replicas.quiet, "members": replicas.views.len(), "final_complete": main.complete });
        return CheckResult { name: NAME, valid: Validity::Unknown, summary: why.to_string(), details };
    }

    let mut differing = Examples::default();
    let mut nodes_differing = BTreeSet::new();
    let mut incomplete = Vec::new();
    let mut forgotten_since = 0usize;
    for (node, view) in &replicas.views {
        if !view.complete {
            incomplete.push(*node);
            continue;
        }
        forgotten_since += forgotten_since_main(main, view);
        for diff in differences(main, view) {
            nodes_differing.insert(*node);
            differing.push(|| json!({ "node": node, "task_id": diff.task_id, "fields": diff.fields, "final": diff.main, "member": diff.member }));
        }
    }

    let valid = Validity::from_findings(differing.count(), incomplete.is_empty());
    let on_nodes = if nodes_differing.is_empty() { String::new() } else { format!(" on nodes {nodes_differing:?}") };
    let summary = format!(
        "{} member views against the final state's {} tasks ({} forgotten): {} differing tasks{on_nodes}; {forgotten_since} forgotten on a member after the main read{}",
        replicas.views.len() - incomplete.len(),
        main.tasks.len(),
        main.forgotten.len(),
        differing.count(),
        if incomplete.is_empty() { String::new() } else { format!("; incomplete views on nodes {incomplete:?}") },
    );
    let details = json!({
        "quiet": true,
        "final_complete": true,
        "members": replicas.views.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "incomplete_views": incomplete,
        "differing_tasks": differing.count(),
        "forgotten_in_main": main.forgotten.len(),
        "forgotten_since_main": forgotten_since,
        "nodes_differing": nodes_differing,
        "examples": differing.to_json(),
    });
    CheckResult { name: NAME, valid, summary, details }
}

/// One task on which a member disagrees with the main final state.
struct Difference {
    task_id: u64,
    fields: Vec<&'static str>,
    main: Value,
    member: Value,
}

/// Every task on which `view` disagrees with `main`, by task id.
fn differences(main_state: &FinalState, view_state: &FinalState) -> Vec<Difference> {
    let view_forgotten = |id: u64| view_state.is_forgotten(id);
    let (main, view) = (by_id(main_state), by_id(view_state));
    let ids: BTreeSet<u64> = main.keys().chain(view.keys()).copied().collect();
    let as_json = |t: Option<&&FinalTask>| t.map_or(json!("absent"), |t| json!(t));
    let mut out = Vec::new();
    for id in ids {
        let (a, b) = (main.get(&id), view.get(&id));
        let fields = match (a, b) {
            (Some(a), Some(b)) => task_differences(a, b),
            // Forgotten on the member after the main read: fine if it could be (terminal).
            (Some(a), None) if view_forgotten(id) && is_terminal_state(&a.state) => vec![],
            (Some(_), None) if view_forgotten(id) => vec!["forgotten_while_live"],
            _ => vec!["present"],
        };
        if !fields.is_empty() {
            out.push(Difference { task_id: id, fields, main: as_json(a), member: as_json(b) });
        }
    }
    for &id in &main_state.forgotten {
        if !view_state.is_forgotten(id) {
            let member = view.get(&id).map_or(json!("not forgotten, absent"), |t| json!(t));
            out.push(Difference { task_id: id, fields: vec!["forgotten"], main: json!("forgotten"), member });
        }
    }
    out
}

/// Tasks the main read has that `view` answered `forgotten` for.
fn forgotten_since_main(main: &FinalState, view: &FinalState) -> usize {
    main.tasks.iter().filter(|t| view.is_forgotten(t.task_id)).count()
}

fn by_id(state: &FinalState) -> BTreeMap<u64, &FinalTask> {
    state.tasks.iter().map(|t| (t.task_id, t)).collect()
}

/// The fields in which two views of one task differ.
fn task_differences(a: &FinalTask, b: &FinalTask) -> Vec<&'static str> {
    let attempts = |t: &FinalTask| t.attempts.iter().map(|x| (x.token, x.outcome.clone())).collect::<Vec<_>>();
    let checks = [
        ("version", a.version != b.version),
        ("state", a.state != b.state),
        ("attempts", attempts(a) != attempts(b)),
        ("checkpoint", a.checkpoint != b.checkpoint),
        ("origin", a.origin != b.origin),
    ];
    checks.into_iter().filter(|(_, differs)| *differs).map(|(name, _)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{Fixture, Hist, attempt, task};
    use crate::history::ReplicaViews;

    /// Tasks 1 (succeeded at version 5, checkpoint 3 from token 20) and 2 (pending).
    fn tasks() -> Vec<FinalTask> {
        let attempts = vec![attempt(1, 10, Some("lost")), attempt(2, 20, Some("succeeded"))];
        let done = FinalTask { attempts, checkpoint: Some((3, 20)), ..task(1, "a", "succeeded", 5) };
        vec![done, task(2, "b", "pending", 1)]
    }

    fn view(tasks: Vec<FinalTask>) -> FinalState {
        FinalState { complete: true, tasks, forgotten: vec![] }
    }

    fn with_views(mut fx: Fixture, views: Vec<(u64, FinalState)>) -> Fixture {
        fx.replicas = ReplicaViews { quiet: true, views };
        fx
    }

    fn run(quiet: bool, views: Vec<(u64, FinalState)>) -> CheckResult {
        let mut fx = Fixture::new(&Hist::new(), tasks());
        fx.replicas = ReplicaViews { quiet, views };
        check(&fx.inputs())
    }

    #[test]
    fn members_holding_the_final_state_agree() {
        let r = run(true, vec![(1, view(tasks())), (2, view(tasks())), (3, view(tasks()))]);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["members"], json!([1, 2, 3]));
    }

    #[test]
    fn workers_and_attempt_numbers_are_not_compared() {
        let mut other = tasks();
        other[0].attempts[0].worker = "w2".into();
        assert_eq!(run(true, vec![(1, view(tasks())), (2, view(other))]).valid, Validity::True);
    }

    #[test]
    fn a_member_with_another_version_or_checkpoint_is_invalid() {
        let mut behind = tasks();
        behind[0].version = 4;
        behind[0].checkpoint = Some((2, 10));
        let r = run(true, vec![(1, view(tasks())), (2, view(behind)), (3, view(tasks()))]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["differing_tasks"], 1);
        assert_eq!(r.details["nodes_differing"], json!([2]));
        let ex = &r.details["examples"][0];
        assert_eq!((ex["node"].as_u64(), ex["task_id"].as_u64()), (Some(2), Some(1)));
        assert_eq!(ex["fields"], json!(["version", "checkpoint"]));
    }

    #[test]
    fn a_member_with_other_attempt_outcomes_or_state_is_invalid() {
        let mut other = tasks();
        other[0].attempts[1].outcome = Some("lost".into());
        other[1].state = "cancelled".into();
        let r = run(true, vec![(3, view(other))]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["differing_tasks"], 2);
        assert_eq!(r.details["examples"][0]["fields"], json!(["attempts"]));
        assert_eq!(r.details["examples"][1]["fields"], json!(["state"]));
    }

    #[test]
    fn a_member_missing_a_task_or_holding_an_extra_one_is_invalid() {
        let mut missing = tasks();
        missing.pop();
        let mut extra = tasks();
        extra.push(task(3, "c", "pending", 1));
        let r = run(true, vec![(1, view(missing)), (2, view(extra))]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["nodes_differing"], json!([1, 2]));
        let ex = &r.details["examples"];
        assert_eq!((ex[0]["task_id"].as_u64(), &ex[0]["member"]), (Some(2), &json!("absent")));
        assert_eq!((ex[1]["task_id"].as_u64(), &ex[1]["final"]), (Some(3), &json!("absent")));
    }

    #[test]
    fn not_quiet_or_no_views_is_unknown() {
        let mut behind = tasks();
        behind[0].version = 4;
        let r = run(false, vec![(1, view(behind))]);
        assert_eq!(r.valid, Validity::Unknown, "a busy cluster's views may differ");
        assert!(r.summary.contains("not quiet"), "{}", r.summary);
        let r = run(true, vec![]);
        assert_eq!(r.valid, Validity::Unknown, "a run recorded before replicas.json");
        assert!(r.summary.contains("no member views"), "{}", r.summary);
    }

    #[test]
    fn incomplete_final_state_is_unknown() {
        let mut fx = Fixture::new(&Hist::new(), tasks()).incomplete();
        fx.replicas = ReplicaViews { quiet: true, views: vec![(1, view(vec![]))] };
        assert_eq!(check(&fx.inputs()).valid, Validity::Unknown);
    }

    #[test]
    fn an_incomplete_member_view_is_unknown_unless_another_differs() {
        let lost = FinalState::incomplete();
        let r = run(true, vec![(1, view(tasks())), (2, lost.clone())]);
        assert_eq!(r.valid, Validity::Unknown);
        assert_eq!(r.details["incomplete_views"], json!([2]));
        let mut behind = tasks();
        behind[1].version = 2;
        let r = run(true, vec![(1, view(behind)), (2, lost)]);
        assert_eq!(r.valid, Validity::False);
    }

    #[test]
    fn a_member_may_forget_a_terminal_task_after_the_main_read_but_not_a_live_one() {
        let main = Fixture::new(&Hist::new(), tasks());
        let mut forgot = view(vec![tasks()[1].clone()]);
        forgot.forgotten = vec![1];
        let r = check(&with_views(main, vec![(2, forgot.clone())]).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["forgotten_since_main"], 1);
        // Task 2 is pending in the main read: a member cannot have forgotten it.
        let mut live = view(vec![tasks()[0].clone()]);
        live.forgotten = vec![2];
        let r = check(&with_views(Fixture::new(&Hist::new(), tasks()), vec![(2, live)]).inputs());
        assert_eq!(r.valid, Validity::False);
        // Forgotten in the main read, present or merely absent on a member read later.
        let main = Fixture::new(&Hist::new(), vec![tasks()[1].clone()]).with_forgotten(vec![1]);
        let r = check(&with_views(main, vec![(2, view(tasks()))]).inputs());
        assert_eq!(r.valid, Validity::False);
        let main = Fixture::new(&Hist::new(), vec![tasks()[1].clone()]).with_forgotten(vec![1]);
        let r = check(&with_views(main, vec![(2, view(vec![tasks()[1].clone()]))]).inputs());
        assert_eq!(r.valid, Validity::False);
    }
}

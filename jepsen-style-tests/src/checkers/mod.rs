//! The checkers: judging a finished run from what it recorded.
//!
//! A checker never talks to the cluster. It reads the records of a run (see [`crate::history`])
//! and decides whether one property held, answering `true`, `false` or
//! `unknown` with counts and a few examples. The path of a run through this module:
//!
//! 1. The harness loads `history.jsonl`, `sink.jsonl`, `leaders.jsonl`, `final.json`,
//!    `replicas.json`, `schedules.json` and `workflows.json` into an [`Inputs`].
//! 2. [`check_all`] runs every checker in a fixed order: the safety properties [`queue`] (no lost,
//!    unexpected or duplicated submission), [`reads`] (per-task reads are linearizable, one
//!    content per version), [`fencing`] (only the current token's effects land), [`leaders`] (one
//!    leader per term), [`replicas`] (every member holds the same final state) and [`schedules`]
//!    (each nominal time fires once, no gap under `catch_up: all`, no overlap under `forbid`,
//!    counters add up), [`workflows`] (edges obeyed in time, skips never run, every shard result
//!    aggregated exactly once from the committed attempt, no node task twice, the concurrency
//!    limit held at every assignment), then [`liveness`] (every acknowledged task and workflow
//!    finished after the heal).
//! 3. [`overall`] folds the safety verdicts into the run's verdict. Liveness is reported apart: a
//!    cluster that is still catching up after a brutal schedule is slow, not wrong.
//!
//! Reading rules shared by every checker: an operation is an interval from invoke to completion
//! (see [`pair_ops`]); only real-time order counts (A completed before B was invoked), so
//! concurrent operations may be ordered either way; `info` and invoke-only operations are "maybe",
//! never "no"; `fail` is a definite "no". A checker whose input is incomplete still reports every
//! violation it can prove and otherwise answers `unknown`, never `true`.
//!
//! What this module deliberately does not do: it does not search for a linearization of the whole
//! history (per-task reads are checked with real-time rules, which is exact for a register whose
//! versions only grow), and it sees no log entries: "committed entries never change" is checked
//! only through what they produce (one content per task version, the same final state on every
//! member).

pub mod fencing;
pub mod leaders;
pub mod liveness;
mod pairs;
pub mod preemption;
pub mod queue;
pub mod reads;
pub mod replicas;
pub mod schedules;
mod verdict;
pub mod workflows;

#[cfg(test)]
mod testkit;

pub use pairs::{PairedOp, Pairing, pair_ops};
pub use verdict::{CheckResult, Examples, MAX_EXAMPLES, Validity};

use crate::history::FinalState;
use crate::history::LeaderObs;
use crate::history::Op;
use crate::history::ReplicaViews;
use crate::history::ScheduleRecord;
use crate::history::SinkEvent;
use crate::history::WorkflowRecord;

/// Everything a checker may read, borrowed from the loaded run.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// `history.jsonl`, in the order it was written.
    pub history: &'a [Op],
    /// `sink.jsonl`.
    pub sink: &'a [SinkEvent],
    /// `leaders.jsonl`.
    pub leaders: &'a [LeaderObs],
    /// `final.json`.
    pub final_state: &'a FinalState,
    /// `replicas.json`.
    pub replicas: &'a ReplicaViews,
    /// `schedules.json` (`None` for runs recorded before the schedule workload).
    pub schedules: Option<&'a ScheduleRecord>,
    /// `workflows.json` (`None` for runs recorded before the workflow workload).
    pub workflows: Option<&'a WorkflowRecord>,
    /// The replicas' retention horizon (`None` when not on record).
    pub retention_ms: Option<u64>,
    /// The run had the `clock` nemesis: the leaders' clocks are not the harness's.
    pub clock_faults: bool,
}

/// Runs every checker: the safety checkers first (queue, reads, fencing, leaders, replicas,
/// schedules, workflows, preemption), liveness last.
pub fn check_all(inputs: &Inputs) -> Vec<CheckResult> {
    vec![
        queue::check(inputs),
        reads::check(inputs),
        fencing::check(inputs),
        leaders::check(inputs),
        replicas::check(inputs),
        schedules::check(inputs),
        workflows::check(inputs),
        preemption::check(inputs),
        liveness::check(inputs),
    ]
}

/// True for the checkers whose `false` makes the run invalid (everything but liveness).
pub fn is_safety(result: &CheckResult) -> bool {
    result.name != liveness::NAME
}

/// The run's verdict: `false` if any safety checker said `false`, else `unknown` if any said
/// `unknown`, else `true`. Liveness is ignored here; its own result says whether it passed.
pub fn overall(results: &[CheckResult]) -> Validity {
    let safety = || results.iter().filter(|r| is_safety(r));
    if safety().any(|r| r.valid == Validity::False) {
        Validity::False
    } else if safety().any(|r| r.valid == Validity::Unknown) {
        Validity::Unknown
    } else {
        Validity::True
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::FinalTask;
    use serde_json::json;
    use testkit::{Fixture, Hist, Outcome, attempt, obs, seen, task};

    fn result(name: &'static str, valid: Validity) -> CheckResult {
        CheckResult { name, valid, summary: String::new(), details: json!({}) }
    }

    #[test]
    fn overall_is_false_over_unknown_over_true_and_ignores_liveness() {
        use Validity::*;
        let run = |v: &[(&'static str, Validity)]| overall(&v.iter().map(|(n, x)| result(n, *x)).collect::<Vec<_>>());
        assert_eq!(run(&[("queue", True), ("reads", True), ("liveness", False)]), True);
        assert_eq!(run(&[("queue", Unknown), ("reads", True), ("liveness", True)]), Unknown);
        assert_eq!(run(&[("queue", Unknown), ("reads", False)]), False);
        assert_eq!(run(&[("leaders", True), ("liveness", Unknown)]), True);
    }

    #[test]
    fn check_all_runs_every_checker_in_order() {
        let mut h = Hist::new();
        let result = crate::history::TaskRead { result_token: Some(10), ..seen(3, "succeeded") };
        h.submit(1, "a", (0, 10), Outcome::Ok(1)).read(2, 1, (20, 30), Some(result));
        let done = FinalTask { attempts: vec![attempt(1, 10, Some("succeeded"))], ..task(1, "a", "succeeded", 3) };
        let mut fx = Fixture::new(&h, vec![done]);
        fx.leaders = vec![obs(1, 1, "leader", Some(1))];
        fx.schedules = Some(schedule_record(&mut fx.final_state));
        fx.workflows = Some(crate::history::WorkflowRecord {
            limit: crate::history::LimitLog {
                key: "k".into(),
                max_running: 2,
                status: crate::history::LimitStatus::RouteMissing,
                ..Default::default()
            },
            listed: Some(vec![]),
            ..Default::default()
        });
        fx.replicas = ReplicaViews { quiet: true, views: vec![(1, fx.final_state.clone())] };
        let results = check_all(&fx.inputs());
        let names: Vec<_> = results.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            ["queue", "reads", "fencing", "leaders", "replicas", "schedules", "workflows", "preemption", "liveness"]
        );
        assert!(results.iter().all(|r| r.valid == Validity::True), "{results:#?}");
        assert_eq!(overall(&results), Validity::True);
        let json = serde_json::to_value(&results[0]).unwrap();
        assert_eq!(json["valid"], json!(true));
        assert!(is_safety(&results[4]), "replica agreement is a safety property");
        assert!(is_safety(&results[5]), "schedule fires are a safety property");
        assert!(is_safety(&results[6]), "workflow edges, aggregation and limits are safety properties");
    }

    /// A run with retention on: task 1 succeeded (sink `done` at 150) and was forgotten (a read
    /// and the final read answer `forgotten`), task 2 is still there, succeeded.
    fn forgotten_run() -> (Hist, Fixture) {
        use crate::history::SinkKind;
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1))
            .submit(2, "b", (0, 10), Outcome::Ok(2))
            .read(1, 1, (20, 30), Some(seen(2, "running")))
            .read_forgotten(2, 1, (300, 310))
            .read(3, 2, (320, 330), Some(crate::history::TaskRead { result_token: Some(20), ..seen(3, "succeeded") }));
        let two = FinalTask { attempts: vec![attempt(1, 20, Some("succeeded"))], ..task(2, "b", "succeeded", 3) };
        let sink = vec![
            testkit::sink(100, 1, 1, 10, SinkKind::Start { from: 0 }),
            testkit::sink(150, 1, 1, 10, SinkKind::Done { n: 0 }),
            testkit::sink(200, 2, 1, 20, SinkKind::Start { from: 0 }),
            testkit::sink(250, 2, 1, 20, SinkKind::Done { n: 0 }),
        ];
        let mut fx = Fixture::new(&h, vec![two]).with_forgotten(vec![1]).with_sink(sink);
        let mut member = fx.final_state.clone();
        member.forgotten = vec![1];
        fx.replicas = ReplicaViews { quiet: true, views: vec![(1, member)] };
        (h, fx)
    }

    #[test]
    fn a_run_with_forgotten_tasks_is_valid_for_every_task_checker() {
        let (_, fx) = forgotten_run();
        let results = check_all(&fx.inputs());
        for name in ["queue", "reads", "fencing", "replicas", "liveness"] {
            let r = results.iter().find(|r| r.name == name).unwrap();
            assert_eq!(r.valid, Validity::True, "{r:#?}");
        }
    }

    #[test]
    fn an_acked_task_answering_not_found_among_forgotten_ones_makes_the_run_invalid() {
        let (mut h, _) = forgotten_run();
        h.submit(3, "c", (0, 10), Outcome::Ok(3)).read(1, 3, (340, 350), None);
        let (_, mut fx) = forgotten_run();
        fx.history = h.build();
        let results = check_all(&fx.inputs());
        let of = |name: &str| results.iter().find(|r| r.name == name).unwrap();
        assert_eq!(of("queue").valid, Validity::False, "task 3 is lost: {:#?}", of("queue"));
        assert_eq!(of("reads").details["not_found_after_ack"], 1);
        assert_eq!(overall(&results), Validity::False);
        // And a forgotten task that was last seen running with no completion anywhere.
        let (_, mut fx) = forgotten_run();
        fx.sink.retain(|e| e.task_id != 1);
        let results = check_all(&fx.inputs());
        let reads = results.iter().find(|r| r.name == "reads").unwrap();
        assert_eq!(reads.details["forgotten_unended"], 1, "{reads:#?}");
        assert_eq!(overall(&results), Validity::False);
    }

    /// One `allow` schedule (id 1) that fired once, at its creation, as task 50; the run is added
    /// to `final_state`.
    fn schedule_record(final_state: &mut crate::history::FinalState) -> ScheduleRecord {
        use crate::history::{RunOrigin, RunTask, ScheduleCounts, ScheduleLog, ScheduleSeen};
        let origin = RunOrigin { schedule: 1, nominal_ms: 5_000, manual: false };
        let run = RunTask {
            task_id: 50,
            origin: Some(origin),
            state: "succeeded".into(),
            version: 4,
            created_ms: 5_010,
            finished_ms: Some(5_100),
            attempts: vec![],
        };
        let attempts = vec![attempt(1, 60, Some("succeeded"))];
        final_state.tasks.push(FinalTask { origin: Some(origin), key: None, attempts, ..task(50, "", "succeeded", 4) });
        let view = ScheduleSeen {
            id: 1,
            every_ms: Some(1000),
            catch_up: "all".into(),
            catch_up_window_ms: 3_600_000,
            overlap: "allow".into(),
            created_ms: 5_000,
            paused: true,
            last_nominal_ms: Some(5_000),
            counters: ScheduleCounts { fired: 1, ..ScheduleCounts::default() },
            runs: 1,
            ..ScheduleSeen::default()
        };
        let log = ScheduleLog {
            name: "s".into(),
            id: Some(1),
            created_ms: Some(5_000),
            final_view: Some(view.clone()),
            final_runs: Some(vec![run]),
            final_view_after: Some(view),
            ..ScheduleLog::default()
        };
        ScheduleRecord { schedules: vec![log], paused: true, ..ScheduleRecord::default() }
    }
}

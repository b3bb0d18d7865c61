//! Preemption and migration: a task stopped for one of higher priority, or moved off an
//! overloaded worker, loses nothing, finishes once, and resumes from its latest committed
//! checkpoint; and every preemption obeyed the rules.
//!
//! **Migration.** The run makes one worker at a time report itself overloaded (`crate::run`),
//! so the leader migrates counters through the same checkpoint-stop-requeue path; an attempt
//! that ended `migrated` is judged by rules 2 and 3 below (it has no preemptor), and counted.
//!
//! The workload makes the counter tasks batch work (priority 100, preemptible) and one in five
//! urgent (priority 900), so that urgent tasks arriving at a full cluster preempt batch ones
//! (see `crate::workload::counter_priority`; the replicas run with a short minimum runtime). The
//! final state lists each attempt's outcome and, on each preemptor, the attempts it preempted.
//! Per attempt that ended `preempted` (token `T`, task `X`):
//! 1. **Who.** Exactly one task lists `(X, T)` among the attempts it preempted, and it is a
//!    fair preemptor: its priority is at least [`crate::cluster::PREEMPTION_GAP`] above `X`'s,
//!    and `X` was preemptible (its spec's `preemptible`, or priority below 500). Conversely
//!    every listed `(X, T)` is an attempt of `X`.
//! 2. **Once.** `X` has at most one `succeeded` attempt, and it is its last.
//! 3. **Resume.** The attempt after `T` physically started (its sink `Start { from }`) from at
//!    least every checkpoint committed under `T`: the final checkpoint if its token is `T`, and
//!    every checkpoint an `ok` read saw with token `T`. A checkpoint under `T` can only be
//!    committed while `T` is the live attempt, which ends before the next one is assigned, so
//!    each of them precedes the next start: resuming from less loses committed progress.
//! 4. Measured, not judged: preemptions, victims, preemptors, how many resumes started exactly
//!    from the last checkpoint `T` physically wrote (the rest lost steps the worker could not
//!    ship, e.g. under a fault), and victims not finished in the final state (liveness judges
//!    those).
//!
//! **Retention.** The final read may find a victim or a preemptor forgotten (finished longer
//! ago than the horizon; `FinalState::forgotten`). Such a record cannot be judged, and is
//! counted instead, never passed:
//! - a listed `(X, T)` whose victim `X` was forgotten: `victim_forgotten`;
//! - a preempted attempt nobody lists, when a forgotten task of priority at least the gap above
//!   `X`'s exists (it may have been the preemptor): `preemptor_maybe_forgotten`. The candidates
//!   are the forgotten tasks the history acknowledged with a key, and the forgotten schedule runs
//!   the polls saw (a run has its schedule's task priority: the server's default, 500, when the
//!   template names none, which is 10 above a batch counter's). Without such a candidate it stays
//!   `unattributed`.
//!
//! Needs the final state; with an incomplete one a clean result is `unknown`. A run in which no
//! preemption happened is `true` with `exercised: false`. A preemptor remembers at most 64
//! victims; the workload's urgent tasks run once and stay far below that.

use std::collections::BTreeMap;

use serde_json::json;

use super::CheckResult;
use super::Examples;
use super::Inputs;
use super::Validity;
use crate::history::Body;
use crate::history::FinalTask;
use crate::history::OpType;
use crate::history::SinkKind;

/// This checker's name in `results.json`.
pub const NAME: &str = "preemption";

const PREEMPTED: &str = "preempted";
const MIGRATED: &str = "migrated";
/// Below this priority a task that does not say `preemptible` is preemptible.
const PREEMPTIBLE_BELOW: u32 = 500;
/// The server's priority of a task that names none (`scheduler::DEFAULT_PRIORITY`).
const SERVER_DEFAULT_PRIORITY: u32 = 500;

#[derive(Debug, Default)]
struct Findings {
    unattributed: Examples,
    attributed_twice: Examples,
    unfair: Examples,
    listed_missing: Examples,
    double_success: Examples,
    resume_behind: Examples,
}

impl Findings {
    fn total(&self) -> usize {
        [
            &self.unattributed,
            &self.attributed_twice,
            &self.unfair,
            &self.listed_missing,
            &self.double_success,
            &self.resume_behind,
        ]
        .iter()
        .map(|e| e.count())
        .sum()
    }
}

/// Judges preemption (see the module docs).
pub fn check(inputs: &Inputs) -> CheckResult {
    let tasks: BTreeMap<u64, &FinalTask> = inputs.final_state.tasks.iter().map(|t| (t.task_id, t)).collect();
    let mut f = Findings::default();
    // Priorities of the forgotten tasks the history acknowledged (a counter's priority is a
    // function of its key): the preemptors a preempted attempt may have lost to retention.
    let mut forgotten_priorities: Vec<u32> = inputs
        .history
        .iter()
        .filter(|o| o.kind == OpType::Ok)
        .filter_map(|o| match &o.body {
            Body::Submit(v) => v.task_id.map(|id| (id, &v.key)),
            _ => None,
        })
        .filter(|(id, _)| inputs.final_state.is_forgotten(*id))
        .map(|(_, key)| crate::workload::counter_priority(key))
        .collect();
    // ... and of the forgotten schedule runs the polls saw, at their schedule's task priority.
    for s in inputs.schedules.iter().flat_map(|r| &r.schedules) {
        let priority = s.request["task"]["priority"]
            .as_u64()
            .map_or(SERVER_DEFAULT_PRIORITY, |p| u32::try_from(p).unwrap_or(u32::MAX));
        let runs = s.first_seen.iter().map(|r| r.task_id).chain(s.forgotten_runs.iter().flatten().copied());
        forgotten_priorities.extend(runs.filter(|&id| inputs.final_state.is_forgotten(id)).map(|_| priority));
    }
    let (mut victim_forgotten, mut preemptor_maybe_forgotten) = (0usize, 0usize);
    // (victim, token) → the tasks that list it.
    let mut listed: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    for t in tasks.values() {
        for &(victim, token) in &t.preempted {
            listed.entry((victim, token)).or_default().push(t.task_id);
            let known = tasks.get(&victim).is_some_and(|v| v.attempts.iter().any(|a| a.token == token));
            if !known && !tasks.contains_key(&victim) && inputs.final_state.is_forgotten(victim) {
                victim_forgotten += 1;
            } else if !known {
                f.listed_missing.push(|| json!({"preemptor": t.task_id, "victim": victim, "token": token}));
            }
        }
    }
    // Committed checkpoints per (task, token): the final state's and every ok read's.
    let mut committed: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut note = |task: u64, n: u64, token: u64| {
        let e = committed.entry((task, token)).or_insert(n);
        *e = (*e).max(n);
    };
    for t in tasks.values() {
        if let Some((n, token)) = t.checkpoint {
            note(t.task_id, n, token);
        }
    }
    for op in inputs.history.iter().filter(|o| o.kind == OpType::Ok) {
        if let Body::Read(r) = &op.body
            && let Some(seen) = &r.seen
            && let (Some(n), Some(token)) = (seen.checkpoint, seen.checkpoint_token)
        {
            note(r.task_id, n, token);
        }
    }
    // What each token physically did: where it started, the last checkpoint it wrote.
    let mut started: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut wrote: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for e in inputs.sink.iter().filter(|e| e.wf.is_none()) {
        match e.event {
            SinkKind::Start { from } => {
                started.entry((e.task_id, e.token)).or_insert(from);
            }
            SinkKind::Checkpoint { n } => {
                let w = wrote.entry((e.task_id, e.token)).or_insert(n);
                *w = (*w).max(n);
            }
            _ => {}
        }
    }

    let (mut preemptions, mut exact, mut behind_written, mut unfinished) = (0usize, 0usize, 0usize, 0usize);
    let (mut victims, mut migrations, mut migrated_tasks) = (0usize, 0usize, 0usize);
    for t in tasks.values() {
        let outcome_is = |i: usize, o: &str| t.attempts[i].outcome.as_deref() == Some(o);
        let preempted: Vec<usize> = (0..t.attempts.len()).filter(|&i| outcome_is(i, PREEMPTED)).collect();
        let migrated: Vec<usize> = (0..t.attempts.len()).filter(|&i| outcome_is(i, MIGRATED)).collect();
        if preempted.is_empty() && migrated.is_empty() {
            continue;
        }
        victims += usize::from(!preempted.is_empty());
        migrated_tasks += usize::from(!migrated.is_empty());
        migrations += migrated.len();
        if !crate::history::is_terminal_state(&t.state) {
            unfinished += 1;
        }
        let successes: Vec<usize> =
            (0..t.attempts.len()).filter(|&i| t.attempts[i].outcome.as_deref() == Some("succeeded")).collect();
        if successes.len() > 1 || successes.first().is_some_and(|&i| i + 1 != t.attempts.len()) {
            f.double_success.push(|| json!({"task": t.task_id, "succeeded_attempts": successes}));
        }
        let mut stopped: Vec<(usize, bool)> =
            preempted.iter().map(|&i| (i, true)).chain(migrated.iter().map(|&i| (i, false))).collect();
        stopped.sort_unstable();
        for (i, was_preempted) in stopped {
            let token = t.attempts[i].token;
            if was_preempted {
                preemptions += 1;
                attribute(&mut f, &mut preemptor_maybe_forgotten, &listed, &tasks, &forgotten_priorities, t, token);
            }
            let Some(next) = t.attempts.get(i + 1) else { continue };
            let Some(&from) = started.get(&(t.task_id, next.token)) else { continue };
            if let Some(&saved) = committed.get(&(t.task_id, token))
                && from < saved
            {
                let how = if was_preempted { PREEMPTED } else { MIGRATED };
                f.resume_behind.push(|| {
                    json!({"task": t.task_id, "stopped_token": token, "stopped": how, "next_token": next.token,
                           "resumed_from": from, "committed": saved})
                });
            }
            match wrote.get(&(t.task_id, token)) {
                Some(&w) if from >= w => exact += 1,
                Some(_) => behind_written += 1,
                None => exact += usize::from(from == 0),
            }
        }
    }

    let complete = inputs.final_state.complete;
    let violations = f.total();
    let valid = Validity::from_findings(violations, complete);
    let preemptors = tasks.values().filter(|t| !t.preempted.is_empty()).count();
    let summary = if !complete {
        format!("final state incomplete; {violations} violations among what was seen")
    } else if preemptions + migrations == 0 {
        "no preemption or migration happened (not exercised)".to_string()
    } else {
        format!(
            "{preemptions} preemptions of {victims} tasks by {preemptors}, {migrations} migrations of \
             {migrated_tasks} tasks: {violations} violations; {exact} resumed from the last step written, \
             {behind_written} behind it"
        )
    };
    let details = json!({
        "exercised": preemptions + migrations > 0,
        "preemptions": preemptions,
        "migrations": migrations,
        "migrated_tasks": migrated_tasks,
        "victims": victims,
        "preemptors": preemptors,
        "resumed_from_last_written": exact,
        "resumed_behind_last_written": behind_written,
        "victims_unfinished": unfinished,
        "not_judged": {
            "victim_forgotten": victim_forgotten,
            "preemptor_maybe_forgotten": preemptor_maybe_forgotten,
        },
        "violations": {
            "unattributed": f.unattributed.count(),
            "attributed_twice": f.attributed_twice.count(),
            "unfair": f.unfair.count(),
            "listed_missing": f.listed_missing.count(),
            "double_success": f.double_success.count(),
            "resume_behind_committed": f.resume_behind.count(),
        },
        "examples": {
            "unattributed": f.unattributed.to_json(),
            "attributed_twice": f.attributed_twice.to_json(),
            "unfair": f.unfair.to_json(),
            "listed_missing": f.listed_missing.to_json(),
            "double_success": f.double_success.to_json(),
            "resume_behind_committed": f.resume_behind.to_json(),
        },
    });
    CheckResult { name: NAME, valid, summary, details }
}

/// Rule 1 for the preempted attempt `token` of `t`: exactly one fair preemptor lists it (or a
/// forgotten task may have been it).
fn attribute(
    f: &mut Findings,
    preemptor_maybe_forgotten: &mut usize,
    listed: &BTreeMap<(u64, u64), Vec<u64>>,
    tasks: &BTreeMap<u64, &FinalTask>,
    forgotten_priorities: &[u32],
    t: &FinalTask,
    token: u64,
) {
    let by = listed.get(&(t.task_id, token)).cloned().unwrap_or_default();
    let could_be_forgotten = || {
        let floor = t.priority.unwrap_or(0).saturating_add(crate::cluster::PREEMPTION_GAP);
        forgotten_priorities.iter().any(|&p| p >= floor)
    };
    match by.as_slice() {
        [] if could_be_forgotten() => *preemptor_maybe_forgotten += 1,
        [] => f.unattributed.push(|| json!({"task": t.task_id, "token": token})),
        [p] => {
            if let Some(why) = unfair(tasks.get(p).copied(), t) {
                f.unfair.push(|| json!({"victim": t.task_id, "token": token, "preemptor": p, "why": why}));
            }
        }
        many => f.attributed_twice.push(|| json!({"task": t.task_id, "token": token, "preemptors": many})),
    }
}

/// Why `preemptor` had no right to preempt `victim`, if it had none.
fn unfair(preemptor: Option<&FinalTask>, victim: &FinalTask) -> Option<String> {
    let Some(p) = preemptor else { return Some("the preemptor is not in the final state".into()) };
    let preemptible = victim.preemptible.unwrap_or(victim.priority.is_none_or(|v| v < PREEMPTIBLE_BELOW));
    if !preemptible {
        return Some(format!("the victim (priority {:?}) was not preemptible", victim.priority));
    }
    match (p.priority, victim.priority) {
        (Some(pp), Some(vp)) if vp.saturating_add(crate::cluster::PREEMPTION_GAP) > pp => {
            Some(format!("priority {vp} is not {} below {pp}", crate::cluster::PREEMPTION_GAP))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{Fixture, Hist, attempt, seen, sink, task};
    use crate::history::{SinkEvent, TaskRead};
    use SinkKind::{Checkpoint, Done, Start};

    fn count(r: &CheckResult, kind: &str) -> u64 {
        r.details["violations"][kind].as_u64().unwrap()
    }

    /// Batch task 1 (priority 100): attempt 1 (token 10) writes steps 1..=3, is preempted by
    /// urgent task 2 (priority 900) with step 3 committed; attempt 2 (token 30) resumes from 3.
    fn good() -> (Vec<FinalTask>, Vec<SinkEvent>) {
        let victim = FinalTask {
            attempts: vec![attempt(1, 10, Some("preempted")), attempt(2, 30, Some("succeeded"))],
            checkpoint: Some((5, 30)),
            priority: Some(100),
            ..task(1, "c1-1", "succeeded", 12)
        };
        let urgent = FinalTask {
            attempts: vec![attempt(1, 20, Some("succeeded"))],
            priority: Some(900),
            preempted: vec![(1, 10)],
            ..task(2, "c1-5", "succeeded", 5)
        };
        let sink = vec![
            sink(100, 1, 1, 10, Start { from: 0 }),
            sink(110, 1, 1, 10, Checkpoint { n: 1 }),
            sink(120, 1, 1, 10, Checkpoint { n: 2 }),
            sink(130, 1, 1, 10, Checkpoint { n: 3 }),
            sink(300, 1, 2, 30, Start { from: 3 }),
            sink(310, 1, 2, 30, Checkpoint { n: 4 }),
            sink(320, 1, 2, 30, Checkpoint { n: 5 }),
            sink(330, 1, 2, 30, Done { n: 5 }),
        ];
        (vec![victim, urgent], sink)
    }

    /// A read (completed at 200, between the preemption and the resume) saw step 3 under token 10.
    fn read_of_step_3() -> Hist {
        let mut h = Hist::new();
        let seen = TaskRead { checkpoint: Some(3), checkpoint_token: Some(10), attempts: 1, ..seen(8, "pending") };
        h.read(1, 1, (190, 200), Some(seen));
        h
    }

    fn run(h: &Hist, tasks: Vec<FinalTask>, sink: Vec<SinkEvent>) -> CheckResult {
        check(&Fixture::new(h, tasks).with_sink(sink).inputs())
    }

    #[test]
    fn a_fair_preemption_resumed_from_its_committed_checkpoint_is_valid() {
        let (tasks, sink) = good();
        let r = run(&read_of_step_3(), tasks, sink);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["preemptions"], 1);
        assert_eq!(r.details["resumed_from_last_written"], 1);
    }

    #[test]
    fn a_resume_behind_a_committed_checkpoint_is_a_violation() {
        let (tasks, mut sink) = good();
        // The second attempt started from step 1, though a read saw step 3 committed under 10.
        sink[4] = crate::checkers::testkit::sink(300, 1, 2, 30, Start { from: 1 });
        let r = run(&read_of_step_3(), tasks, sink);
        assert_eq!(r.valid, Validity::False, "{r:#?}");
        assert_eq!(count(&r, "resume_behind_committed"), 1);
        assert_eq!(r.details["examples"]["resume_behind_committed"][0]["committed"], 3);
    }

    #[test]
    fn unattributed_unfair_and_double_preemptions_are_violations() {
        let (mut tasks, sink) = good();
        // Nobody lists the preempted attempt.
        tasks[1].preempted.clear();
        let r = run(&Hist::new(), tasks.clone(), sink.clone());
        assert_eq!((r.valid, count(&r, "unattributed")), (Validity::False, 1), "{r:#?}");
        // A preemptor within the gap.
        tasks[1].preempted = vec![(1, 10)];
        tasks[1].priority = Some(105);
        let r = run(&Hist::new(), tasks.clone(), sink.clone());
        assert_eq!((r.valid, count(&r, "unfair")), (Validity::False, 1), "{r:#?}");
        // A victim that opted out.
        tasks[1].priority = Some(900);
        tasks[0].preemptible = Some(false);
        let r = run(&Hist::new(), tasks.clone(), sink.clone());
        assert_eq!(count(&r, "unfair"), 1, "{r:#?}");
        tasks[0].preemptible = None;
        // Two preemptors claim it, and one names an attempt that does not exist.
        let mut other =
            FinalTask { priority: Some(800), preempted: vec![(1, 10), (1, 99)], ..task(3, "c2-5", "succeeded", 4) };
        other.attempts = vec![attempt(1, 40, Some("succeeded"))];
        tasks.push(other);
        let r = run(&Hist::new(), tasks.clone(), sink.clone());
        assert_eq!((count(&r, "attributed_twice"), count(&r, "listed_missing")), (1, 1), "{r:#?}");
        tasks.pop();
        // The victim completed twice.
        tasks[0].attempts.push(attempt(3, 50, Some("succeeded")));
        let r = run(&Hist::new(), tasks, sink);
        assert_eq!(count(&r, "double_success"), 1, "{r:#?}");
    }

    #[test]
    fn forgotten_victims_and_preemptors_are_counted_not_passed() {
        use crate::checkers::testkit::Outcome;
        let (tasks, sink) = good();
        // The preemptor (urgent key c1-5, priority 900) was forgotten: nobody lists the
        // preempted attempt, but a forgotten urgent task may have been its preemptor.
        let victim_only = vec![tasks[0].clone()];
        let mut h = Hist::new();
        h.submit(1, "c1-5", (1, 2), Outcome::Ok(2));
        let r = check(&Fixture::new(&h, victim_only.clone()).with_sink(sink.clone()).with_forgotten(vec![2]).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["not_judged"]["preemptor_maybe_forgotten"], 1);
        // Must fail: the only forgotten task was batch work (c1-2's priority 100 is not 10 above
        // the victim's), so it cannot have been the preemptor.
        let mut h = Hist::new();
        h.submit(1, "c1-2", (1, 2), Outcome::Ok(2));
        let r = check(&Fixture::new(&h, victim_only.clone()).with_sink(sink.clone()).with_forgotten(vec![2]).inputs());
        assert_eq!((r.valid, count(&r, "unattributed")), (Validity::False, 1), "{r:#?}");
        // Must fail: nothing was forgotten at all.
        let r = check(&Fixture::new(&Hist::new(), victim_only.clone()).with_sink(sink.clone()).inputs());
        assert_eq!((r.valid, count(&r, "unattributed")), (Validity::False, 1), "{r:#?}");
        // The preemptor was a schedule run the polls saw, since forgotten (a CI kill run: run
        // 73 of a template without a priority, so 500, preempted a batch counter).
        let schedule = |task: serde_json::Value| crate::history::ScheduleRecord {
            schedules: vec![crate::history::ScheduleLog {
                name: "jep-all-1".into(),
                request: json!({"name": "jep-all-1", "task": task}),
                first_seen: vec![crate::history::SeenRun { task_id: 2, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let with_schedule = |task: serde_json::Value| {
            let mut fx =
                Fixture::new(&Hist::new(), victim_only.clone()).with_sink(sink.clone()).with_forgotten(vec![2]);
            fx.schedules = Some(schedule(task));
            check(&fx.inputs())
        };
        let r = with_schedule(json!({"executor": "noop"}));
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["not_judged"]["preemptor_maybe_forgotten"], 1);
        // Must fail: that schedule's runs have priority 105, within the gap of the victim's 100.
        let r = with_schedule(json!({"executor": "noop", "priority": 105}));
        assert_eq!((r.valid, count(&r, "unattributed")), (Validity::False, 1), "{r:#?}");
        // The victim was forgotten, its preemptor kept: the listing cannot be checked.
        let preemptor_only = vec![tasks[1].clone()];
        let r = check(&Fixture::new(&Hist::new(), preemptor_only.clone()).with_forgotten(vec![1]).inputs());
        assert_eq!(r.details["not_judged"]["victim_forgotten"], 1, "{r:#?}");
        assert_eq!(count(&r, "listed_missing"), 0);
        // Must fail: the listed victim is neither kept nor forgotten.
        let r = check(&Fixture::new(&Hist::new(), preemptor_only).inputs());
        assert_eq!(count(&r, "listed_missing"), 1, "{r:#?}");
    }

    /// `good()` with the victim's first attempt migrated instead of preempted, and no preemptor.
    fn migrated() -> (Vec<FinalTask>, Vec<SinkEvent>) {
        let (mut tasks, sink) = good();
        tasks[0].attempts[0].outcome = Some(MIGRATED.into());
        tasks.truncate(1);
        (tasks, sink)
    }

    #[test]
    fn a_migration_resumed_from_its_committed_checkpoint_is_valid_and_needs_no_preemptor() {
        let (tasks, sink) = migrated();
        let r = run(&read_of_step_3(), tasks, sink);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((r.details["migrations"].clone(), r.details["preemptions"].clone()), (json!(1), json!(0)));
        assert_eq!(
            (r.details["exercised"].clone(), r.details["resumed_from_last_written"].clone()),
            (json!(true), json!(1))
        );
    }

    #[test]
    fn a_migrated_task_resumed_behind_its_checkpoint_or_completed_twice_is_a_violation() {
        // Must fail: the attempt after the migration started from step 1, though step 3 was
        // committed under the migrated token.
        let (tasks, mut sink) = migrated();
        sink[4] = crate::checkers::testkit::sink(300, 1, 2, 30, Start { from: 1 });
        let r = run(&read_of_step_3(), tasks, sink);
        assert_eq!((r.valid, count(&r, "resume_behind_committed")), (Validity::False, 1), "{r:#?}");
        assert_eq!(r.details["examples"]["resume_behind_committed"][0]["stopped"], MIGRATED);
        // Must fail: the migrated task succeeded twice (the old attempt's success landed too).
        let (mut tasks, sink) = migrated();
        tasks[0].attempts[0].outcome = Some("succeeded".into());
        tasks[0].attempts.insert(1, attempt(2, 20, Some(MIGRATED)));
        let r = run(&Hist::new(), tasks, sink);
        assert_eq!((r.valid, count(&r, "double_success")), (Validity::False, 1), "{r:#?}");
    }

    #[test]
    fn no_preemption_is_not_exercised_and_an_incomplete_state_is_unknown() {
        let plain = FinalTask { attempts: vec![attempt(1, 10, Some("succeeded"))], ..task(1, "c1-1", "succeeded", 4) };
        let r = run(&Hist::new(), vec![plain], vec![]);
        assert_eq!((r.valid, r.details["exercised"].clone()), (Validity::True, json!(false)), "{r:#?}");
        let (tasks, sink) = good();
        let r = check(&Fixture::new(&Hist::new(), tasks).incomplete().with_sink(sink).inputs());
        assert_eq!(r.valid, Validity::Unknown, "{r:#?}");
    }
}

//! Fencing: only the current attempt's effects land.
//!
//! Every attempt carries a fencing token (the log index of its assignment, so later attempts have
//! larger tokens). A worker that was paused or partitioned may keep running an attempt the cluster
//! already gave away; that physical overlap is allowed and only measured here. What must hold is
//! that the cluster accepts reports from the current token alone, and that a resuming attempt
//! starts from the latest committed checkpoint. Three records meet: the final state (what was
//! accepted), the sink (what task processes physically did) and the `ok` reads (what was committed
//! when). The check, per task:
//! 1. From the final state: at most one `succeeded` attempt, and it is the last one; a `succeeded`
//!    task has one; tokens strictly increase with the attempt number.
//! 2. Final state against sink, for tasks that wrote to the sink at all (other commands never
//!    do): the succeeded attempt's token physically finished (a `Done` line), every `Start` came
//!    from a token the final state lists (no uncommitted assignment ran), and the committed
//!    checkpoint `(n, token)` was physically written by that token.
//! 3. Reads against sink, for the same tasks: every committed checkpoint `(n, token)` an `ok` read
//!    saw was physically written by that token (reads recorded before they carried the token are
//!    skipped). Each distinct unwritten checkpoint counts once.
//! 4. Sink against itself and the reads, for each `Start { from }` of attempt `a` with token `T`:
//!    if `from > 0`, some earlier token wrote checkpoint `from` (nobody resumes from progress never
//!    made); and `from` is at least every checkpoint an `ok` read saw, if that read completed before
//!    the start and saw fewer than `a` attempts. The attempt count guard matters: a read that saw
//!    attempt `a` or a later one may show checkpoints `T` or its successors wrote, and a stale `T`
//!    started late by a paused worker legitimately resumes from older progress.
//! 5. Checkpoints against attempts, ordered by version (not time: a version is a position in the
//!    task's own history). The observations are the `ok` reads that list attempt tokens and the
//!    final state. If an observation at version `v` lists an attempt with token `M`, and one at a
//!    higher version shows another committed checkpoint than the observations just below it, that
//!    checkpoint was committed after attempt `M` existed, so its token must be at least `M`: a
//!    smaller one is a stale attempt's save the cluster should have fenced off. Observations of
//!    one version are not ordered against each other.
//! 6. Measured, not judged: how long attempts with different tokens physically overlapped (each
//!    token's span from its first to its last sink line), and how many `Done` lines came from
//!    tokens the cluster did not accept.
//!
//! Steps 1 and 2 need the final state; with an incomplete one they are skipped and a clean result
//! is `unknown`. Steps 3 to 5 run regardless (step 5 without the final state).
//!
//! Retention: a task the final read found `forgotten` (`final.json` `forgotten`) has no final
//! attempts to hold the sink against, and is never called an uncommitted start for that. Its
//! evidence is used instead: a forgotten task was terminal, and a terminal task gets no new
//! attempt, so when an `ok` read saw it terminal, that read (the one with the highest version)
//! is its final content and step 2 runs against it: its attempt tokens are every committed
//! token, its result token (a `succeeded` one) must have physically finished, its checkpoint
//! must have been written by its token. A forgotten task no read saw terminal keeps steps 3 to
//! 5 only (`forgotten_unjudged`). Steps 3 to 5 never needed the final state.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::Value;
use serde_json::json;

use super::CheckResult;
use super::Examples;
use super::Inputs;
use super::Validity;
use super::pair_ops;
use crate::history::Body;
use crate::history::FinalTask;
use crate::history::OpType;
use crate::history::SinkEvent;
use crate::history::SinkKind;

/// This checker's name in `results.json`.
pub const NAME: &str = "fencing";

const SUCCEEDED: &str = "succeeded";

/// A checkpoint an `ok` read saw.
#[derive(Debug, Clone, Copy)]
struct SeenCheckpoint {
    complete_ns: u64,
    attempts: u32,
    n: u64,
    /// The token it was saved under (`None` in histories recorded before reads carried it).
    token: Option<u64>,
    complete_index: u64,
}

/// One observation of a task at a known version, with the tokens it lists (step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Versioned {
    version: u64,
    /// The highest attempt token listed.
    newest_attempt: Option<u64>,
    /// The committed checkpoint as `(counter, token)`, either part possibly unknown.
    checkpoint: (Option<u64>, Option<u64>),
    /// The read's completion line, or `None` for the final state.
    complete_index: Option<u64>,
}

impl Versioned {
    fn to_json(self) -> Value {
        json!({
            "source": if self.complete_index.is_some() { "read" } else { "final" },
            "complete_index": self.complete_index,
            "version": self.version,
            "newest_attempt_token": self.newest_attempt,
            "checkpoint": self.checkpoint.0,
            "checkpoint_token": self.checkpoint.1,
        })
    }
}

/// What the `ok` reads saw, per task.
#[derive(Debug, Default)]
struct Reads {
    /// Every checkpoint seen (steps 3 and 4).
    checkpoints: BTreeMap<u64, Vec<SeenCheckpoint>>,
    /// Every read that listed attempt tokens (step 5).
    versioned: BTreeMap<u64, Vec<Versioned>>,
    /// Per task, the highest-version read that saw it terminal and listed its attempt tokens,
    /// as a final task (step 2 for a forgotten task; see the module docs).
    terminal: BTreeMap<u64, FinalTask>,
}

/// Violations by kind, plus the measurements.
#[derive(Debug, Default)]
struct Findings {
    multiple_successes: Examples,
    success_not_last: Examples,
    succeeded_without_success: Examples,
    tokens_not_increasing: Examples,
    success_without_done: Examples,
    uncommitted_start: Examples,
    checkpoint_not_written: Examples,
    checkpoint_unwritten_read: Examples,
    resume_from_unwritten: Examples,
    resume_behind_committed: Examples,
    stale_checkpoint_accepted: Examples,
    overlap: Overlap,
}

impl Findings {
    fn kinds(&self) -> [(&'static str, &Examples); 11] {
        [
            ("multiple_successes", &self.multiple_successes),
            ("success_not_last", &self.success_not_last),
            ("succeeded_without_success", &self.succeeded_without_success),
            ("tokens_not_increasing", &self.tokens_not_increasing),
            ("success_without_done", &self.success_without_done),
            ("uncommitted_start", &self.uncommitted_start),
            ("checkpoint_not_written", &self.checkpoint_not_written),
            ("checkpoint_unwritten_read", &self.checkpoint_unwritten_read),
            ("resume_from_unwritten", &self.resume_from_unwritten),
            ("resume_behind_committed", &self.resume_behind_committed),
            ("stale_checkpoint_accepted", &self.stale_checkpoint_accepted),
        ]
    }

    fn violations(&self) -> usize {
        self.kinds().iter().map(|(_, e)| e.count()).sum()
    }
}

/// Physical overlap of attempts and stale completions (measured, never a violation).
#[derive(Debug, Default)]
struct Overlap {
    pairs: usize,
    total_ns: u64,
    max_ns: u64,
    examples: Examples,
    stale_done: Examples,
}

/// Judges fencing (see the module docs).
pub fn check(inputs: &Inputs) -> CheckResult {
    let mut sink: BTreeMap<u64, Vec<&SinkEvent>> = BTreeMap::new();
    for ev in inputs.sink {
        sink.entry(ev.task_id).or_default().push(ev);
    }
    let mut reads = read_observations(inputs);
    let complete = inputs.final_state.complete;
    let finals: BTreeMap<u64, &FinalTask> = inputs.final_state.tasks.iter().map(|t| (t.task_id, t)).collect();

    let mut f = Findings::default();
    if complete {
        for t in &inputs.final_state.tasks {
            check_attempts(t, &mut f);
            reads.versioned.entry(t.task_id).or_default().push(final_observation(t));
        }
    }
    let (mut from_read, mut unjudged) = (0usize, 0usize);
    for (&task_id, events) in &sink {
        if complete && !finals.contains_key(&task_id) && inputs.final_state.is_forgotten(task_id) {
            match reads.terminal.get(&task_id) {
                Some(t) => {
                    from_read += 1;
                    check_against_sink(task_id, Some(t), events, &mut f);
                }
                None => unjudged += 1,
            }
        } else if complete {
            let task = finals.get(&task_id).copied();
            check_against_sink(task_id, task, events, &mut f);
            if let Some(task) = task {
                measure_stale_done(task, events, &mut f.overlap);
            }
        }
        let seen = reads.checkpoints.get(&task_id).map_or(&[][..], Vec::as_slice);
        check_read_checkpoints(task_id, events, seen, &mut f);
        check_resumes(task_id, events, seen, &mut f);
        measure_overlap(task_id, events, &mut f.overlap);
    }
    for (&task_id, observations) in &mut reads.versioned {
        check_checkpoint_tokens(task_id, observations, &mut f);
    }

    let valid = Validity::from_findings(f.violations(), complete);
    let o = &f.overlap;
    let summary = format!(
        "{} tasks with sink lines ({} forgotten: {from_read} judged from a terminal read, {unjudged} without one): {} violations; measured {} overlapping attempt pairs (max {:.1} ms), {} stale completions{}",
        sink.len(),
        from_read + unjudged,
        f.violations(),
        o.pairs,
        ms(o.max_ns),
        o.stale_done.count(),
        if complete { "" } else { "; final state incomplete" },
    );
    let counts: serde_json::Map<String, Value> =
        f.kinds().iter().map(|(k, e)| (k.to_string(), json!(e.count()))).collect();
    let examples: serde_json::Map<String, Value> =
        f.kinds().iter().map(|(k, e)| (k.to_string(), e.to_json())).collect();
    let details = json!({
        "final_complete": complete,
        "tasks_with_sink": sink.len(),
        "forgotten_judged_from_read": from_read,
        "forgotten_unjudged": unjudged,
        "sink_events": inputs.sink.len(),
        "violations": counts,
        "examples": examples,
        "measured": {
            "overlapping_attempt_pairs": o.pairs,
            "total_overlap_ms": ms(o.total_ns),
            "max_overlap_ms": ms(o.max_ns),
            "overlap_examples": o.examples.to_json(),
            "stale_done": o.stale_done.count(),
            "stale_done_examples": o.stale_done.to_json(),
        },
    });
    CheckResult { name: NAME, valid, summary, details }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// What the `ok` reads saw, per task.
fn read_observations(inputs: &Inputs) -> Reads {
    let mut out = Reads::default();
    for op in pair_ops(inputs.history).ops {
        let (Some(c), Body::Read(v)) = (op.completion, op.body()) else { continue };
        let Some(s) = v.seen.as_ref().filter(|_| c.kind == OpType::Ok) else { continue };
        if let Some(n) = s.checkpoint {
            let (complete_ns, complete_index) = (c.time_ns, c.index);
            let seen =
                SeenCheckpoint { complete_ns, attempts: s.attempts, n, token: s.checkpoint_token, complete_index };
            out.checkpoints.entry(v.task_id).or_default().push(seen);
        }
        if s.is_terminal() && !s.attempt_tokens.is_empty() {
            let as_final = terminal_read_as_final(v.task_id, s);
            let slot = out.terminal.entry(v.task_id).or_insert_with(|| as_final.clone());
            if slot.version < as_final.version {
                *slot = as_final;
            }
        }
        if !s.attempt_tokens.is_empty() {
            let versioned = Versioned {
                version: s.version,
                newest_attempt: s.attempt_tokens.iter().copied().max(),
                checkpoint: (s.checkpoint, s.checkpoint_token),
                complete_index: Some(c.index),
            };
            out.versioned.entry(v.task_id).or_default().push(versioned);
        }
    }
    out
}

/// A read that saw a task terminal, as the final state it was: every attempt's token (a terminal
/// task gets no new attempt), the last one `succeeded` when the task did (outcomes of the others
/// are not in a read and step 2 needs none), and the committed checkpoint.
fn terminal_read_as_final(task_id: u64, s: &crate::history::TaskRead) -> FinalTask {
    let n = s.attempt_tokens.len();
    let attempts = s
        .attempt_tokens
        .iter()
        .enumerate()
        .map(|(i, &token)| crate::history::FinalAttempt {
            number: i as u32 + 1,
            worker: String::new(),
            token,
            outcome: (i + 1 == n && s.state == SUCCEEDED).then(|| SUCCEEDED.to_string()),
        })
        .collect();
    FinalTask {
        task_id,
        key: None,
        state: s.state.clone(),
        version: s.version,
        attempts,
        checkpoint: s.checkpoint.zip(s.checkpoint_token),
        origin: None,
        workflow: None,
        // A read does not carry what the preemption checker judges; it reads the final tasks.
        priority: None,
        preemptible: None,
        preempted: Vec::new(),
    }
}

/// The final state of a task as one more observation for step 5.
fn final_observation(t: &FinalTask) -> Versioned {
    Versioned {
        version: t.version,
        newest_attempt: t.attempts.iter().map(|a| a.token).max(),
        checkpoint: (t.checkpoint.map(|c| c.0), t.checkpoint.map(|c| c.1)),
        complete_index: None,
    }
}

/// Step 1: the attempts of one final task.
fn check_attempts(t: &FinalTask, f: &mut Findings) {
    let mut attempts: Vec<_> = t.attempts.iter().collect();
    attempts.sort_by_key(|a| (a.number, a.token));
    let example = || json!({ "task_id": t.task_id, "state": t.state, "attempts": t.attempts });

    let successes: Vec<_> = attempts.iter().filter(|a| a.outcome.as_deref() == Some(SUCCEEDED)).collect();
    if successes.len() > 1 {
        f.multiple_successes.push(example);
    }
    let last = attempts.last().map(|a| a.number);
    if successes.first().is_some_and(|s| Some(s.number) != last) {
        f.success_not_last.push(example);
    }
    if t.state == SUCCEEDED && successes.is_empty() {
        f.succeeded_without_success.push(example);
    }
    if attempts.windows(2).any(|w| w[0].number >= w[1].number || w[0].token >= w[1].token) {
        f.tokens_not_increasing.push(example);
    }
}

/// Step 2: what the cluster accepted against what the task's processes did. `task` is `None` when
/// the final state does not have the task at all.
fn check_against_sink(task_id: u64, task: Option<&FinalTask>, events: &[&SinkEvent], f: &mut Findings) {
    let tokens: Vec<u64> = task.map_or(vec![], |t| t.attempts.iter().map(|a| a.token).collect());
    for ev in events.iter().filter(|e| matches!(e.event, SinkKind::Start { .. }) && !tokens.contains(&e.token)) {
        f.uncommitted_start.push(|| json!({ "task_id": task_id, "start": ev, "final_tokens": tokens }));
    }
    let Some(task) = task else { return };

    let wrote = |token: u64, kind: SinkKind| events.iter().any(|e| e.token == token && e.event == kind);
    let did_finish = |token: u64| events.iter().any(|e| e.token == token && matches!(e.event, SinkKind::Done { .. }));
    for a in task.attempts.iter().filter(|a| a.outcome.as_deref() == Some(SUCCEEDED)) {
        if !did_finish(a.token) {
            f.success_without_done.push(|| json!({ "task_id": task_id, "accepted_token": a.token }));
        }
    }
    if let Some((n, token)) = task.checkpoint
        && !wrote(token, SinkKind::Checkpoint { n })
    {
        f.checkpoint_not_written.push(|| json!({ "task_id": task_id, "checkpoint": n, "token": token }));
    }
}

/// Step 3: every checkpoint a read saw committed was physically written by its token. Reported
/// once per distinct `(n, token)`, with the first read that saw it.
fn check_read_checkpoints(task_id: u64, events: &[&SinkEvent], seen: &[SeenCheckpoint], f: &mut Findings) {
    let mut reported = BTreeSet::new();
    for s in seen {
        let Some(token) = s.token else { continue };
        let written = events.iter().any(|e| e.token == token && e.event == SinkKind::Checkpoint { n: s.n });
        if !written && reported.insert((s.n, token)) {
            let read = json!({ "complete_index": s.complete_index, "complete_ns": s.complete_ns });
            f.checkpoint_unwritten_read
                .push(|| json!({ "task_id": task_id, "checkpoint": s.n, "token": token, "read": read }));
        }
    }
}

/// Step 4: every physical start resumed from progress that was written, and not behind progress
/// that was committed before its attempt existed.
fn check_resumes(task_id: u64, events: &[&SinkEvent], seen: &[SeenCheckpoint], f: &mut Findings) {
    for start in events {
        let SinkKind::Start { from } = start.event else { continue };
        let earlier = || {
            events.iter().filter(|e| e.token < start.token).filter_map(|e| match e.event {
                SinkKind::Checkpoint { n } => Some(n),
                _ => None,
            })
        };
        if from > 0 && !earlier().any(|n| n == from) {
            let max_written = earlier().max();
            f.resume_from_unwritten
                .push(|| json!({ "task_id": task_id, "start": start, "max_written_by_earlier_tokens": max_written }));
        }
        let committed =
            seen.iter().filter(|s| s.complete_ns < start.time_ns && s.attempts < start.attempt).max_by_key(|s| s.n);
        if let Some(s) = committed
            && from < s.n
        {
            let read = json!({ "complete_index": s.complete_index, "complete_ns": s.complete_ns, "attempts": s.attempts, "checkpoint": s.n });
            f.resume_behind_committed.push(|| json!({ "task_id": task_id, "start": start, "read": read }));
        }
    }
}

/// Step 5: a checkpoint that changed after attempt `M` existed was saved by `M` or a later attempt.
/// Sorts `observations` by version.
fn check_checkpoint_tokens(task_id: u64, observations: &mut [Versioned], f: &mut Findings) {
    observations.sort_by_key(|o| (o.version, o.complete_index.is_none(), o.complete_index));
    // `newest` is the observation listing the highest attempt token among the lower versions.
    let mut newest: Option<&Versioned> = None;
    let mut below: &[Versioned] = &[];
    for group in observations.chunk_by(|a, b| a.version == b.version) {
        for o in below {
            if newest.is_none_or(|n| o.newest_attempt > n.newest_attempt) {
                newest = Some(o);
            }
        }
        for o in group {
            let (Some(token), Some(m)) = (o.checkpoint.1, newest) else { continue };
            let Some(before) = below.iter().find(|b| b.checkpoint != o.checkpoint) else { continue };
            if m.newest_attempt.is_some_and(|m| token < m) {
                let (before, after, newer) = (before.to_json(), o.to_json(), m.to_json());
                f.stale_checkpoint_accepted.push(
                    || json!({ "task_id": task_id, "before": before, "after": after, "newer_attempt_seen_in": newer }),
                );
            }
        }
        below = group;
    }
}

/// Step 6: physical overlap between tokens of one task.
fn measure_overlap(task_id: u64, events: &[&SinkEvent], o: &mut Overlap) {
    let mut spans: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for e in events {
        let span = spans.entry(e.token).or_insert((e.time_ns, e.time_ns));
        *span = (span.0.min(e.time_ns), span.1.max(e.time_ns));
    }
    let spans: Vec<_> = spans.into_iter().collect();
    for (i, &(ta, (sa, ea))) in spans.iter().enumerate() {
        for &(tb, (sb, eb)) in &spans[i + 1..] {
            if sa.max(sb) <= ea.min(eb) {
                let ns = ea.min(eb) - sa.max(sb);
                o.pairs += 1;
                o.total_ns += ns;
                o.max_ns = o.max_ns.max(ns);
                o.examples.push(|| json!({ "task_id": task_id, "tokens": [ta, tb], "overlap_ms": ms(ns) }));
            }
        }
    }
}

/// Step 6: completions that physically happened under a token the cluster did not accept (every
/// `Done` of a task that did not succeed, and those of other tokens when it did).
fn measure_stale_done(task: &FinalTask, events: &[&SinkEvent], o: &mut Overlap) {
    let accepted = task.attempts.iter().rev().find(|a| a.outcome.as_deref() == Some(SUCCEEDED)).map(|a| a.token);
    for e in events.iter().filter(|e| matches!(e.event, SinkKind::Done { .. }) && Some(e.token) != accepted) {
        o.stale_done.push(|| json!({ "task_id": task.task_id, "done": e, "accepted_token": accepted }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{Fixture, Hist, attempt, seen, sink, task};
    use crate::history::FinalAttempt;
    use crate::history::TaskRead;
    use SinkKind::{Checkpoint, Done, Start};

    fn count(r: &CheckResult, kind: &str) -> u64 {
        r.details["violations"][kind].as_u64().unwrap()
    }

    fn final_task(state: &str, attempts: Vec<FinalAttempt>, checkpoint: Option<(u64, u64)>) -> FinalTask {
        FinalTask { attempts, checkpoint, ..task(1, "a", state, 9) }
    }

    /// Attempt 1 (token 10) checkpoints 1 and 2 then is lost; attempt 2 (token 20) resumes from 2,
    /// checkpoints 3 and finishes.
    fn good_sink() -> Vec<SinkEvent> {
        vec![
            sink(100, 1, 1, 10, Start { from: 0 }),
            sink(110, 1, 1, 10, Checkpoint { n: 1 }),
            sink(120, 1, 1, 10, Checkpoint { n: 2 }),
            sink(300, 1, 2, 20, Start { from: 2 }),
            sink(310, 1, 2, 20, Checkpoint { n: 3 }),
            sink(320, 1, 2, 20, Done { n: 3 }),
        ]
    }

    fn good_task() -> FinalTask {
        let attempts = vec![attempt(1, 10, Some("lost")), attempt(2, 20, Some("succeeded"))];
        final_task("succeeded", attempts, Some((3, 20)))
    }

    fn run_with(h: &Hist, t: FinalTask, sink: Vec<SinkEvent>) -> CheckResult {
        check(&Fixture::new(h, vec![t]).with_sink(sink).inputs())
    }

    fn run(t: FinalTask, sink: Vec<SinkEvent>) -> CheckResult {
        run_with(&Hist::new(), t, sink)
    }

    #[test]
    fn resume_from_latest_checkpoint_with_one_success_is_valid() {
        let r = run(good_task(), good_sink());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["measured"]["overlapping_attempt_pairs"], 0);
    }

    #[test]
    fn task_without_sink_lines_is_judged_on_attempts_only() {
        let t = final_task("succeeded", vec![attempt(1, 10, Some("succeeded"))], None);
        assert_eq!(run(t, vec![]).valid, Validity::True);
    }

    #[test]
    fn two_successes_are_invalid() {
        let attempts = vec![attempt(1, 10, Some("succeeded")), attempt(2, 20, Some("succeeded"))];
        let r = run(final_task("succeeded", attempts, None), vec![]);
        assert_eq!(r.valid, Validity::False);
        assert_eq!((count(&r, "multiple_successes"), count(&r, "success_not_last")), (1, 1));
    }

    #[test]
    fn success_that_is_not_the_last_attempt_is_invalid() {
        let attempts = vec![attempt(1, 10, Some("succeeded")), attempt(2, 20, Some("lost"))];
        let r = run(final_task("succeeded", attempts, None), vec![]);
        assert_eq!(count(&r, "success_not_last"), 1);
        assert_eq!(r.valid, Validity::False);
    }

    #[test]
    fn succeeded_task_without_succeeded_attempt_is_invalid() {
        let r = run(final_task("succeeded", vec![attempt(1, 10, Some("failed"))], None), vec![]);
        assert_eq!(count(&r, "succeeded_without_success"), 1);
    }

    #[test]
    fn tokens_must_increase_with_attempt_number() {
        let attempts = vec![attempt(1, 20, Some("lost")), attempt(2, 10, Some("succeeded"))];
        let r = run(final_task("succeeded", attempts, None), vec![]);
        assert_eq!(count(&r, "tokens_not_increasing"), 1);
        let attempts = vec![attempt(1, 10, Some("lost")), attempt(2, 10, Some("succeeded"))];
        let r = run(final_task("succeeded", attempts, None), vec![]);
        assert_eq!(count(&r, "tokens_not_increasing"), 1, "equal tokens are not strictly increasing");
    }

    #[test]
    fn accepted_token_that_never_finished_is_invalid() {
        let mut s = good_sink();
        s.pop();
        let r = run(good_task(), s);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "success_without_done"), 1);
    }

    #[test]
    fn start_from_an_uncommitted_assignment_is_invalid() {
        let mut s = good_sink();
        s.push(sink(400, 1, 3, 30, Start { from: 3 }));
        let r = run(good_task(), s);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "uncommitted_start"), 1);
    }

    #[test]
    fn sink_lines_of_a_task_missing_from_the_final_state_are_uncommitted() {
        let r = check(&Fixture::new(&Hist::new(), vec![]).with_sink(good_sink()).inputs());
        assert_eq!(count(&r, "uncommitted_start"), 2);
    }

    #[test]
    fn resume_from_progress_nobody_wrote_is_invalid() {
        let mut s = good_sink();
        s[3].event = Start { from: 7 };
        let r = run(good_task(), s);
        assert_eq!(count(&r, "resume_from_unwritten"), 1);
        assert_eq!(r.details["examples"]["resume_from_unwritten"][0]["max_written_by_earlier_tokens"], 2);
    }

    #[test]
    fn resume_from_a_checkpoint_only_a_later_token_wrote_is_invalid() {
        let mut s = good_sink();
        s[0].event = Start { from: 3 };
        let r = run(good_task(), s);
        assert_eq!(count(&r, "resume_from_unwritten"), 1);
    }

    #[test]
    fn resume_behind_a_checkpoint_a_read_saw_committed_is_invalid() {
        let mut s = good_sink();
        s[3].event = Start { from: 1 };
        let mut h = Hist::new();
        let read = TaskRead { attempts: 1, checkpoint: Some(2), ..seen(4, "running") };
        h.read(1, 1, (130, 150), Some(read));
        let r = run_with(&h, good_task(), s);
        assert_eq!(r.valid, Validity::False);
        assert_eq!((count(&r, "resume_behind_committed"), count(&r, "resume_from_unwritten")), (1, 0));
    }

    #[test]
    fn stale_start_after_a_later_attempt_committed_is_only_overlap() {
        // Attempt 1 (token 10) was assigned, its worker paused before launching it; attempt 2
        // (token 20) ran and committed checkpoint 1, a read saw it; then attempt 1's process
        // started late from 0 and ran concurrently. Fenced, so not a violation.
        let s = vec![
            sink(100, 1, 2, 20, Start { from: 0 }),
            sink(110, 1, 2, 20, Checkpoint { n: 1 }),
            sink(150, 1, 1, 10, Start { from: 0 }),
            sink(160, 1, 1, 10, Done { n: 1 }),
            sink(200, 1, 2, 20, Done { n: 1 }),
        ];
        let mut h = Hist::new();
        h.read(1, 1, (120, 130), Some(TaskRead { attempts: 2, checkpoint: Some(1), ..seen(5, "running") }));
        let attempts = vec![attempt(1, 10, Some("lost")), attempt(2, 20, Some("succeeded"))];
        let r = run_with(&h, final_task("succeeded", attempts, Some((1, 20))), s);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        let m = &r.details["measured"];
        assert_eq!((m["overlapping_attempt_pairs"].as_u64(), m["stale_done"].as_u64()), (Some(1), Some(1)));
        assert_eq!(m["max_overlap_ms"], 0.00001);
    }

    #[test]
    fn final_checkpoint_not_written_by_its_token_is_invalid() {
        let t = FinalTask { checkpoint: Some((3, 10)), ..good_task() };
        let r = run(t, good_sink());
        assert_eq!(count(&r, "checkpoint_not_written"), 1);
    }

    /// What a read of task 1 at `version` saw: attempts under `tokens`, checkpoint `(n, token)`.
    fn read_at(version: u64, tokens: &[u64], checkpoint: Option<(u64, u64)>) -> TaskRead {
        TaskRead {
            attempts: tokens.len() as u32,
            attempt_tokens: tokens.to_vec(),
            checkpoint: checkpoint.map(|c| c.0),
            checkpoint_token: checkpoint.map(|c| c.1),
            ..seen(version, "running")
        }
    }

    #[test]
    fn checkpoints_reads_saw_were_written_by_their_tokens() {
        let mut h = Hist::new();
        h.read(1, 1, (115, 118), Some(read_at(3, &[10], Some((1, 10)))))
            .read(2, 1, (200, 210), Some(read_at(5, &[10, 20], Some((2, 10)))))
            .read(3, 1, (400, 410), Some(read_at(9, &[10, 20], Some((3, 20)))));
        let r = run_with(&h, good_task(), good_sink());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
    }

    #[test]
    fn checkpoint_a_read_saw_that_its_token_never_wrote_is_invalid() {
        // Token 20 never wrote checkpoint 2 (token 10 did): the pair was made up or misattributed.
        // Seen twice, reported once.
        let mut h = Hist::new();
        let made_up = read_at(7, &[10, 20], Some((2, 20)));
        h.read(1, 1, (330, 340), Some(made_up.clone())).read(2, 1, (350, 360), Some(made_up));
        let r = run_with(&h, good_task(), good_sink());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "checkpoint_unwritten_read"), 1);
        let ex = &r.details["examples"]["checkpoint_unwritten_read"][0];
        assert_eq!((ex["checkpoint"].as_u64(), ex["token"].as_u64()), (Some(2), Some(20)));
    }

    #[test]
    fn read_checkpoints_without_token_or_sink_lines_are_not_judged() {
        // A read recorded before reads carried the token.
        let mut h = Hist::new();
        let old = TaskRead { attempts: 2, checkpoint: Some(5), ..seen(7, "running") };
        h.read(1, 1, (400, 410), Some(old));
        assert_eq!(run_with(&h, good_task(), good_sink()).valid, Validity::True);
        // A task that never wrote to the sink (not a counter task).
        let mut h = Hist::new();
        h.read(1, 1, (400, 410), Some(read_at(7, &[10], Some((5, 10)))));
        let t = final_task("succeeded", vec![attempt(1, 10, Some("succeeded"))], None);
        assert_eq!(run_with(&h, t, vec![]).valid, Validity::True);
    }

    /// Attempt 1 (token 10) checkpoints 1 and 2 and is lost; attempt 2 (token 20) resumes from 2,
    /// checkpoints 3 and finishes; attempt 1's paused process wakes up and writes checkpoint 3 too.
    fn late_stale_writer_sink() -> Vec<SinkEvent> {
        let mut s = good_sink();
        s.push(sink(330, 1, 1, 10, Checkpoint { n: 3 }));
        s
    }

    #[test]
    fn checkpoint_saved_by_an_older_attempt_after_a_newer_one_existed_is_invalid() {
        // A read at version 5 saw attempt 20 assigned and checkpoint 2 from token 10; the final
        // state holds checkpoint 3 from token 10: token 10's save landed after token 20 existed.
        let mut h = Hist::new();
        h.read(1, 1, (200, 210), Some(read_at(5, &[10, 20], Some((2, 10)))));
        let t = FinalTask { checkpoint: Some((3, 10)), ..good_task() };
        let r = run_with(&h, t, late_stale_writer_sink());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "stale_checkpoint_accepted"), 1);
        assert_eq!(count(&r, "checkpoint_not_written"), 0, "token 10 did physically write it");
        let ex = &r.details["examples"]["stale_checkpoint_accepted"][0];
        assert_eq!(ex["after"]["source"], "final");
        assert_eq!(ex["newer_attempt_seen_in"]["newest_attempt_token"], 20);
    }

    #[test]
    fn stale_checkpoint_between_two_reads_is_invalid_without_a_final_state() {
        let mut h = Hist::new();
        let (before, stale) = (read_at(5, &[10, 20], Some((2, 10))), read_at(6, &[10, 20], Some((3, 10))));
        h.read(1, 1, (200, 210), Some(before)).read(2, 1, (340, 350), Some(stale));
        let fx = Fixture::new(&h, vec![]).with_sink(late_stale_writer_sink()).incomplete();
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!(count(&r, "stale_checkpoint_accepted"), 1);
        assert_eq!(r.details["examples"]["stale_checkpoint_accepted"][0]["before"]["version"], 5);
    }

    #[test]
    fn an_old_checkpoint_kept_after_a_new_attempt_is_not_stale() {
        // Checkpoint 2 from token 10 stays committed while attempt 20 runs: it did not change, so
        // its token is not judged; the one that replaces it comes from token 20.
        let mut h = Hist::new();
        h.read(1, 1, (115, 118), Some(read_at(3, &[10], None)))
            .read(2, 1, (200, 210), Some(read_at(5, &[10, 20], Some((2, 10)))))
            .read(3, 1, (250, 260), Some(read_at(6, &[10, 20], Some((2, 10)))));
        let r = run_with(&h, good_task(), good_sink());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
    }

    #[test]
    fn observations_of_one_version_are_not_ordered() {
        // Two reads of version 5 that disagree (the reads checker's business): taking one as
        // earlier than the other would invent a stale save.
        let mut h = Hist::new();
        let (newer_attempt, newer_checkpoint) =
            (read_at(5, &[10, 20], Some((1, 10))), read_at(5, &[10], Some((2, 10))));
        h.read(1, 1, (200, 210), Some(newer_attempt)).read(2, 1, (220, 230), Some(newer_checkpoint));
        let r = run_with(&h, good_task(), good_sink());
        assert_eq!(count(&r, "stale_checkpoint_accepted"), 0, "{r:#?}");
    }

    #[test]
    fn reads_without_attempt_tokens_take_no_part_in_checkpoint_order() {
        // An old history: the read lists no tokens, so nothing tells which attempts existed at
        // version 5, and the final state's checkpoint from token 10 cannot be judged stale.
        let mut h = Hist::new();
        let old = TaskRead { attempts: 2, checkpoint: Some(2), ..seen(5, "running") };
        h.read(1, 1, (200, 210), Some(old));
        let t = FinalTask { checkpoint: Some((3, 10)), ..good_task() };
        let r = run_with(&h, t, late_stale_writer_sink());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
    }

    #[test]
    fn incomplete_final_state_is_unknown_but_resumes_are_still_checked() {
        let fx = Fixture::new(&Hist::new(), vec![]).with_sink(good_sink()).incomplete();
        assert_eq!(check(&fx.inputs()).valid, Validity::Unknown);
        let mut s = good_sink();
        s[3].event = Start { from: 9 };
        let fx = Fixture::new(&Hist::new(), vec![]).with_sink(s).incomplete();
        assert_eq!(check(&fx.inputs()).valid, Validity::False);
    }

    #[test]
    fn a_forgotten_task_is_judged_against_its_last_terminal_read() {
        let mut h = Hist::new();
        let terminal = TaskRead { result_token: Some(20), ..read_at(6, &[10, 20], Some((3, 20))) };
        let terminal = TaskRead { state: "succeeded".into(), ..terminal };
        h.read(1, 1, (400, 410), Some(terminal));
        let fx = |s| Fixture::new(&h, vec![]).with_forgotten(vec![1]).with_sink(s);
        let r = check(&fx(good_sink()).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["forgotten_judged_from_read"], 1);
        // The succeeded token never finished: still a violation after the task was forgotten.
        let mut s = good_sink();
        s.pop();
        let r = check(&fx(s).inputs());
        assert_eq!(count(&r, "success_without_done"), 1);
        // A start from a token the terminal read does not list was never committed.
        let mut s = good_sink();
        s.push(sink(500, 1, 3, 30, Start { from: 3 }));
        assert_eq!(count(&check(&fx(s).inputs()), "uncommitted_start"), 1);
    }

    #[test]
    fn a_forgotten_task_without_a_terminal_read_is_not_called_uncommitted() {
        let r = check(&Fixture::new(&Hist::new(), vec![]).with_forgotten(vec![1]).with_sink(good_sink()).inputs());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((count(&r, "uncommitted_start"), r.details["forgotten_unjudged"].as_u64()), (0, Some(1)));
    }
}

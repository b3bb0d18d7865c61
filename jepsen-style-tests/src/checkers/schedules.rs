//! Schedules: every nominal time fires once, `catch_up: all` leaves no gap, `forbid` never runs
//! two at once, and the counters add up.
//!
//! The input is `schedules.json` ([`ScheduleRecord`], written by [`crate::schedules`]): the
//! schedules the harness created, what polls saw of them during the run, and the final read
//! made after the heal (the schedules were paused first, so their calendars stood still): per
//! schedule the view `A`, every run, then the view `B`. The main final state (`final.json`) is
//! used too: the runs are tasks like any other. A run is *calendar* when its origin says
//! `manual: false` (fired by the calendar; a backfill also makes those). The check:
//! 1. Per schedule, over the final runs:
//!    - **doubled**: two calendar runs with the same nominal time;
//!    - **foreign run**: a listed run whose origin names no schedule or another one;
//!    - **created before nominal**: a run whose `created_ms` is below its nominal time (apply
//!      refuses a nominal time later than the proposer's clock, and the run is stamped with
//!      that same clock, so this holds whatever the clocks do).
//! 2. Per interval schedule with `catch_up: all`, against view `A` (mark `L`): the grid is
//!    `created_ms + k * every_ms` (or `start_ms + …`) up to `L`.
//!    - **off grid**: a calendar run whose nominal time is not on the grid;
//!    - **missing**: grid times without a run beyond what the counters explain: each grid time
//!      without a run must be counted `skipped` (`forbid` found a live run) or `missed`. More
//!      such times than `skipped + missed` is a lost fire; fewer is an inconsistent counter;
//!    - **missed within window**: `missed > 0` although the catch-up window is longer than the
//!      schedule has existed (nothing can have been older than the window);
//!    - **never fired**: no mark at all (it was created before the load and the run lasted far
//!      longer than one period);
//!    - **beyond mark**: once the pause was acknowledged, a calendar run above `L`.
//! 3. Counters, against view `A` (`allow`/`forbid`, or any policy once paused): `fired +
//!    backfilled` equals the calendar runs at or below `L`; once paused also `triggered` the
//!    manual runs and `runs` every run.
//! 4. `forbid`, ordered by task id (ids are allocated in log order, so a larger id was created
//!    later), never by wall time:
//!    - an earlier run still not terminal in the final read while a later run exists: it was
//!      live when the later one was created (terminal is forever);
//!    - a later run holding an attempt token below an attempt token of an earlier run: tokens
//!      are log indexes of assignments and a terminal task is never assigned again, so at the
//!      later run's assignment both were live;
//!    - a poll or a final view listing two live runs (a linearizable read of the state);
//!    - by the leaders' stamps, a run created more than [`STAMP_TOLERANCE_MS`] before an
//!      earlier run's `finished_ms`. Stamps come from whichever leader proposed, read before the
//!      command is queued, so they may invert by a scheduling delay; the tolerance covers that.
//!      Without clock faults every replica reads the same host clock, so this is a verdict;
//!      under the `clock` nemesis the stamps of two leaders are not comparable and it is only
//!      measured.
//! 5. Live runs: a run listed live in view `B` that the runs read (made before `B`) already
//!    showed terminal.
//! 6. Against the main final state (when complete): a run of a schedule the harness never
//!    created is unexpected; once paused, each schedule's runs are exactly the final state's
//!    tasks with that schedule as origin.
//! 7. Measured, never judged: fire lateness `created_ms - nominal` (leader clock) and the
//!    harness-observed lateness (wall time of the poll that first saw the run minus its nominal
//!    time: an upper bound, at the poll's resolution); **early fires**, runs a poll saw before
//!    their nominal time by the harness's own clock (a leader whose clock was ahead when it was
//!    elected fires early by that much); `forbid` overlaps by stamps under clock faults; and the
//!    **mark lag at the pause** (harness wall clock when the first pause request was sent, minus
//!    the mark) with the grid times due at least a second before the pause that never fired
//!    (`unfired_at_pause`): a calendar that stalled (its leader believes a clock far behind the
//!    real one) shows no late run at all, only fires that never happened.
//!
//! `unknown` when there is no `schedules.json` (runs recorded before the workload existed), a
//! create was never acknowledged, or a final read failed; proven violations still make it
//! `false`.
//!
//! Retention (on in the suite) forgets a finished run: it leaves the runs listing, while the
//! schedule's `runs` counter still counts it. The final read asks for every run a poll saw
//! (`first_seen`) that the listing lacks; those answering `forgotten` (`forgotten_runs`) take
//! part in every rule as what they provably were: a run of this schedule with the nominal time,
//! `manual` flag and `created_ms` the poll saw, terminal, with unknown attempts and finish time.
//! So a forgotten run fills its grid time, counts for `fired`, is doubled by another run at its
//! nominal time, ends the `forbid` "earlier run not terminal" rule for itself but not for an
//! earlier run still live, and contributes no token or finish stamp (those rules use the runs
//! that still have them, which only leaves out evidence). A run listed live by the last view
//! that answered `forgotten` before it is a **live but terminal** run. A run a poll saw that
//! the final read lacks without `forgotten` is still missing from the index (**index
//! mismatch**, as before). Runs forgotten before any poll saw them are known only by number:
//! `runs − listed − forgotten_runs` once paused (`forgotten_unseen`; below zero the counters
//! are inconsistent). Each of them could fill one grid time, so more grid times without a run
//! than `skipped + missed + forgotten_unseen` is still a lost fire, while a gap the unseen runs
//! could explain makes the schedule `unknown` rather than valid; `fired + backfilled` must lie
//! between the calendar runs known and that plus `forgotten_unseen`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::Value;
use serde_json::json;

use super::CheckResult;
use super::Examples;
use super::Inputs;
use super::Validity;
use crate::history::RunTask;
use crate::history::ScheduleLog;
use crate::history::ScheduleRecord;
use crate::history::ScheduleSeen;
use crate::history::is_terminal_state;
use crate::report::Distribution;

/// This checker's name in `results.json`.
pub const NAME: &str = "schedules";

/// How far two leader stamps may invert without clock faults (see the module docs, step 4).
pub const STAMP_TOLERANCE_MS: u64 = 1_000;

/// The state the checker gives a run the final read found forgotten (terminal, details gone).
const FORGOTTEN: &str = "forgotten";

/// Terminal, or forgotten (only terminal runs are forgotten).
fn run_ended(r: &RunTask) -> bool {
    is_terminal_state(&r.state) || r.state == FORGOTTEN
}

/// The runs of `log` that the final read found forgotten, as runs (see the module docs).
fn forgotten_runs(log: &ScheduleLog, id: u64) -> Vec<RunTask> {
    let gone = log.forgotten_runs.as_deref().unwrap_or(&[]);
    log.first_seen
        .iter()
        .filter(|r| gone.binary_search(&r.task_id).is_ok())
        .map(|r| RunTask {
            task_id: r.task_id,
            origin: Some(crate::history::RunOrigin { schedule: id, nominal_ms: r.nominal_ms, manual: r.manual }),
            state: FORGOTTEN.into(),
            version: 0,
            created_ms: r.created_ms,
            finished_ms: None,
            attempts: vec![],
        })
        .collect()
}

/// A grid time counts as owed at the pause only if it was due this long before it.
const OWED_GRACE_MS: u64 = 1_000;

/// Violations by kind, and the measurements.
#[derive(Debug, Default)]
struct Findings {
    doubled: Examples,
    foreign_run: Examples,
    created_before_nominal: Examples,
    off_grid: Examples,
    missing: Examples,
    counters_inconsistent: Examples,
    missed_within_window: Examples,
    never_fired: Examples,
    beyond_mark: Examples,
    overlap: Examples,
    live_but_terminal: Examples,
    unexpected_run: Examples,
    index_mismatch: Examples,
    /// Missing grid times, counted one by one (the `missing` examples are per schedule).
    missing_times: usize,
    m: Measured,
}

impl Findings {
    fn kinds(&self) -> [(&'static str, &Examples); 13] {
        [
            ("doubled", &self.doubled),
            ("foreign_run", &self.foreign_run),
            ("created_before_nominal", &self.created_before_nominal),
            ("off_grid", &self.off_grid),
            ("missing", &self.missing),
            ("counters_inconsistent", &self.counters_inconsistent),
            ("missed_within_window", &self.missed_within_window),
            ("never_fired", &self.never_fired),
            ("beyond_mark", &self.beyond_mark),
            ("overlap", &self.overlap),
            ("live_but_terminal", &self.live_but_terminal),
            ("unexpected_run", &self.unexpected_run),
            ("index_mismatch", &self.index_mismatch),
        ]
    }

    fn violations(&self) -> usize {
        self.kinds().iter().map(|(_, e)| e.count()).sum()
    }
}

/// What is measured, not judged.
#[derive(Debug, Default)]
struct Measured {
    /// Runs the final read found forgotten (seen by a poll first).
    forgotten_runs: usize,
    /// Runs forgotten before any poll saw them (by the `runs` counter).
    forgotten_unseen: usize,
    lateness_ms: Vec<f64>,
    observed_lateness_ms: Vec<f64>,
    early: Examples,
    max_early_ms: u64,
    stamp_overlaps: usize,
    max_stamp_overlap_ms: u64,
    calendar_runs: usize,
    manual_runs: usize,
    fired: u64,
    skipped: u64,
    missed: u64,
    /// Largest `paused_wall_ms - mark` over the schedules: how far behind the harness's clock
    /// the calendars stood when they were paused.
    max_mark_lag_ms: i64,
    /// Grid times due by the harness's clock at the pause that were never decided (not fired,
    /// skipped nor missed): fires a stalled calendar still owed.
    unfired_at_pause: u64,
}

/// Judges the schedules (see the module docs).
pub fn check(inputs: &Inputs) -> CheckResult {
    let Some(record) = inputs.schedules else {
        let summary = "no schedules.json (a run recorded before the schedule workload)".to_string();
        return CheckResult { name: NAME, valid: Validity::Unknown, summary, details: json!({ "recorded": false }) };
    };
    let clock_faults = record.nemesis.iter().any(|n| n == "clock");
    let mut f = Findings::default();
    let mut incomplete: Vec<String> = Vec::new();
    let mut per_schedule = Vec::new();
    if record.schedules.is_empty() {
        incomplete.push("no schedule was asked for".into());
    }
    for log in &record.schedules {
        let Some(id) = log.id else {
            incomplete.push(format!("{}: create never acknowledged ({:?})", log.name, log.create_error));
            continue;
        };
        if log.final_view.is_none() || log.final_runs.is_none() || log.final_view_after.is_none() {
            incomplete.push(format!("{}: final read failed", log.name));
        } else if log.forgotten_runs.is_none() && absent_seen(log) > 0 {
            incomplete.push(format!("{}: runs a poll saw are not listed and could not be asked about", log.name));
        }
        per_schedule.push(check_schedule(record, log, id, clock_faults, &mut f, &mut incomplete));
    }
    check_polls(record, &mut f);
    check_against_final_state(record, inputs, &mut incomplete, &mut f);

    let valid = Validity::from_findings(f.violations(), incomplete.is_empty());
    let lateness = Distribution::of(&f.m.lateness_ms);
    let observed = Distribution::of(&f.m.observed_lateness_ms);
    let m = &f.m;
    let summary = format!(
        "{} schedules, {} calendar runs (fired {}, skipped {}, missed {}; forgotten {} seen + {} unseen): {} doubled, {} missing, {} overlapping, {} other violations; lateness p50 {:.0} p99 {:.0} max {:.0} ms (observed max {:.0} ms); {} early fires (max {} ms); mark lag at pause {} ms ({} fires owed){}{}",
        per_schedule.len(),
        m.calendar_runs,
        m.fired,
        m.skipped,
        m.missed,
        m.forgotten_runs,
        m.forgotten_unseen,
        f.doubled.count(),
        f.missing_times,
        f.overlap.count(),
        f.violations() - f.doubled.count() - f.missing.count() - f.overlap.count(),
        lateness.p50,
        lateness.p99,
        lateness.max,
        observed.max,
        m.early.count(),
        m.max_early_ms,
        m.max_mark_lag_ms,
        m.unfired_at_pause,
        if clock_faults {
            format!("; {} stamp overlaps measured (clock faults)", m.stamp_overlaps)
        } else {
            String::new()
        },
        if incomplete.is_empty() { String::new() } else { format!("; incomplete: {}", incomplete.join("; ")) },
    );
    let mut counts = serde_json::Map::new();
    let mut examples = serde_json::Map::new();
    for (kind, ex) in f.kinds() {
        counts.insert(kind.into(), json!(ex.count()));
        if !ex.is_empty() {
            examples.insert(kind.into(), ex.to_json());
        }
    }
    let details = json!({
        "recorded": true,
        "paused": record.paused,
        "clock_faults": clock_faults,
        "incomplete": incomplete,
        "schedules": per_schedule,
        "calendar_runs": m.calendar_runs,
        "manual_runs": m.manual_runs,
        "fired": m.fired,
        "skipped": m.skipped,
        "missed": m.missed,
        "forgotten_runs": m.forgotten_runs,
        "forgotten_unseen": m.forgotten_unseen,
        "doubled": f.doubled.count(),
        "missing": f.missing_times,
        "overlaps": f.overlap.count(),
        "violations": counts,
        "measured": {
            "lateness_ms": lateness,
            "observed_lateness_ms": observed,
            "early_fires": m.early.count(),
            "max_early_ms": m.max_early_ms,
            "early_examples": m.early.to_json(),
            "stamp_overlaps": m.stamp_overlaps,
            "max_stamp_overlap_ms": m.max_stamp_overlap_ms,
            "stamp_tolerance_ms": STAMP_TOLERANCE_MS,
            "max_mark_lag_at_pause_ms": m.max_mark_lag_ms,
            "unfired_at_pause": m.unfired_at_pause,
        },
        "examples": examples,
    });
    CheckResult { name: NAME, valid, summary, details }
}

/// Runs the polls saw that the final runs read lacks.
fn absent_seen(log: &ScheduleLog) -> usize {
    let listed: BTreeSet<u64> = log.final_runs.iter().flatten().map(|r| r.task_id).collect();
    log.first_seen.iter().filter(|r| !listed.contains(&r.task_id)).count()
}

/// Steps 1 to 5 and the measurements for one schedule; returns its line of `details.schedules`.
fn check_schedule(
    record: &ScheduleRecord,
    log: &ScheduleLog,
    id: u64,
    clock_faults: bool,
    f: &mut Findings,
    incomplete: &mut Vec<String>,
) -> Value {
    let listed_runs = log.final_runs.as_deref().unwrap_or(&[]).len();
    let mut all_runs: Vec<RunTask> = log.final_runs.clone().unwrap_or_default();
    let gone = forgotten_runs(log, id);
    let forgotten_known = gone.len();
    all_runs.extend(gone);
    let runs: &[RunTask] = &all_runs;
    let view = log.final_view.as_ref();
    // Runs forgotten before any poll saw them (only countable once the calendar stood still).
    let unseen = view.filter(|_| record.paused).map(|v| v.runs as i64 - runs.len() as i64);
    f.m.forgotten_runs += forgotten_known;
    f.m.forgotten_unseen += unseen.unwrap_or(0).max(0) as usize;
    let name = log.name.as_str();
    let mut calendar: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut manual = 0usize;
    for r in runs {
        let Some(o) = r.origin.filter(|o| o.schedule == id) else {
            f.foreign_run.push(|| json!({ "schedule": id, "task_id": r.task_id, "origin": r.origin }));
            continue;
        };
        if r.created_ms < o.nominal_ms {
            f.created_before_nominal.push(|| json!({ "schedule": id, "task_id": r.task_id, "nominal_ms": o.nominal_ms, "created_ms": r.created_ms }));
        }
        if o.manual {
            manual += 1;
            continue;
        }
        calendar.entry(o.nominal_ms).or_default().push(r.task_id);
        f.m.lateness_ms.push(r.created_ms as f64 - o.nominal_ms as f64);
    }
    for (nominal, ids) in calendar.iter().filter(|(_, ids)| ids.len() > 1) {
        f.doubled.push(|| json!({ "schedule": id, "name": name, "nominal_ms": nominal, "task_ids": ids }));
    }
    f.m.calendar_runs += calendar.values().map(Vec::len).sum::<usize>();
    f.m.manual_runs += manual;
    measure_first_seen(log, &mut f.m);

    let mut line = json!({
        "id": id,
        "name": name,
        "runs": runs.len(),
        "listed_runs": listed_runs,
        "forgotten_runs": forgotten_known,
        "forgotten_unseen": unseen,
        "calendar_runs": calendar.values().map(Vec::len).sum::<usize>(),
        "manual_runs": manual,
    });
    if let Some(v) = view {
        f.m.fired += v.counters.fired;
        f.m.skipped += v.counters.skipped;
        f.m.missed += v.counters.missed;
        line["every_ms"] = json!(v.every_ms);
        line["catch_up"] = json!(v.catch_up);
        line["overlap"] = json!(v.overlap);
        line["created_ms"] = json!(v.created_ms);
        line["last_nominal_ms"] = json!(v.last_nominal_ms);
        line["counters"] = json!(v.counters);
        line["first_run_after_creation_ms"] =
            json!(calendar.keys().next().map(|&n| n as i64 - v.start_ms.unwrap_or(v.created_ms) as i64));
        let paused = log.pause_wall_ms.map(|(sent, _)| sent).or(record.paused_wall_ms);
        if let (Some(paused), Some(every)) = (paused, v.every_ms.filter(|&e| e > 0)) {
            let mark = v.last_nominal_ms.unwrap_or(v.start_ms.unwrap_or(v.created_ms).saturating_sub(1));
            let lag = paused as i64 - mark as i64;
            // Grid times due at least OWED_GRACE_MS before the pause (a fire takes a moment).
            let owed = if lag > OWED_GRACE_MS as i64 { (lag as u64 - OWED_GRACE_MS) / every } else { 0 };
            f.m.max_mark_lag_ms = f.m.max_mark_lag_ms.max(lag);
            f.m.unfired_at_pause += owed;
            line["mark_lag_at_pause_ms"] = json!(lag);
            line["unfired_at_pause"] = json!(owed);
        }
        if log.final_runs.is_some() {
            let unseen = unseen.unwrap_or(0).max(0) as u64;
            if !check_grid(record, id, name, v, &calendar, unseen, &mut line, f) {
                incomplete
                    .push(format!("{name}: a gap the {unseen} runs forgotten before any poll saw them could explain"));
            }
            check_counters(record, id, name, v, runs, &calendar, unseen, f);
        }
        if v.overlap == "forbid" && log.final_runs.is_some() {
            check_forbid(id, name, runs, clock_faults, f);
        }
    }
    for v in [log.final_view.as_ref(), log.final_view_after.as_ref()].into_iter().flatten() {
        if v.overlap == "forbid" && v.live_runs.len() > 1 {
            f.overlap
                .push(|| json!({ "schedule": id, "rule": "two live runs in a final view", "live_runs": v.live_runs }));
        }
    }
    if let (Some(after), Some(_)) = (&log.final_view_after, &log.final_runs) {
        let terminal: BTreeSet<u64> = runs.iter().filter(|r| run_ended(r)).map(|r| r.task_id).collect();
        for t in after.live_runs.iter().filter(|t| terminal.contains(t)) {
            f.live_but_terminal.push(|| json!({ "schedule": id, "task_id": t, "live_runs": after.live_runs }));
        }
    }
    line
}

/// Step 2: the grid of an interval schedule with `catch_up: all`. `unseen` runs were forgotten
/// before any poll saw them. False when a gap is left that only those could explain (the
/// schedule is then not provably complete: `unknown`).
#[allow(clippy::too_many_arguments)]
fn check_grid(
    record: &ScheduleRecord,
    id: u64,
    name: &str,
    v: &ScheduleSeen,
    calendar: &BTreeMap<u64, Vec<u64>>,
    unseen: u64,
    line: &mut Value,
    f: &mut Findings,
) -> bool {
    let (Some(every), "all") = (v.every_ms.filter(|&e| e > 0), v.catch_up.as_str()) else { return true };
    let anchor = v.start_ms.unwrap_or(v.created_ms);
    for &n in calendar.keys() {
        if n < anchor || !(n - anchor).is_multiple_of(every) {
            f.off_grid.push(|| json!({ "schedule": id, "nominal_ms": n, "anchor_ms": anchor, "every_ms": every }));
        }
    }
    let Some(mark) = v.last_nominal_ms else {
        f.never_fired.push(|| json!({ "schedule": id, "name": name, "created_ms": v.created_ms }));
        return true;
    };
    if record.paused {
        for (&n, ids) in calendar.range(mark.saturating_add(1)..) {
            f.beyond_mark.push(|| json!({ "schedule": id, "nominal_ms": n, "task_ids": ids, "mark": mark }));
        }
    }
    let grid = if mark < anchor { 0 } else { (mark - anchor) / every + 1 };
    let mut not_run = Vec::new();
    let mut k = 0;
    while k < grid {
        let n = anchor + k * every;
        if !calendar.contains_key(&n) {
            not_run.push(n);
        }
        k += 1;
    }
    let explained = v.counters.skipped + v.counters.missed;
    let gap = (not_run.len() as u64).saturating_sub(explained);
    // Each run forgotten unseen may have filled one of these times.
    let lost = gap.saturating_sub(unseen);
    line["grid_times"] = json!(grid);
    line["grid_times_without_run"] = json!(not_run.len());
    if lost > 0 {
        f.missing_times += lost as usize;
        let shown: Vec<u64> = not_run.iter().take(20).copied().collect();
        f.missing.push(|| {
            json!({ "schedule": id, "name": name, "overlap": v.overlap, "unexplained": lost, "skipped": v.counters.skipped,
                    "missed": v.counters.missed, "grid_times_without_run": not_run.len(), "first_without_run": shown })
        });
    } else if (not_run.len() as u64) < explained {
        f.counters_inconsistent.push(|| {
            json!({ "schedule": id, "rule": "skipped + missed exceed the grid times without a run",
                    "skipped": v.counters.skipped, "missed": v.counters.missed, "grid_times_without_run": not_run.len() })
        });
    }
    if v.counters.missed > 0 && v.catch_up_window_ms > mark.saturating_sub(anchor) + 600_000 {
        f.missed_within_window.push(|| {
            json!({ "schedule": id, "missed": v.counters.missed, "window_ms": v.catch_up_window_ms, "span_ms": mark.saturating_sub(anchor) })
        });
    }
    lost > 0 || gap == 0
}

/// Step 3: the counters against the runs (`unseen`: forgotten before any poll saw them).
#[allow(clippy::too_many_arguments)]
fn check_counters(
    record: &ScheduleRecord,
    id: u64,
    name: &str,
    v: &ScheduleSeen,
    runs: &[RunTask],
    calendar: &BTreeMap<u64, Vec<u64>>,
    unseen: u64,
    f: &mut Findings,
) {
    if !(record.paused || matches!(v.overlap.as_str(), "allow" | "forbid")) {
        return;
    }
    let Some(mark) = v.last_nominal_ms else { return };
    let below: usize = calendar.range(..=mark).map(|(_, ids)| ids.len()).sum();
    let c = &v.counters;
    let below = below as u64;
    if !(below..=below + unseen).contains(&(c.fired + c.backfilled)) {
        f.counters_inconsistent.push(|| {
            json!({ "schedule": id, "name": name, "rule": "fired + backfilled != calendar runs at or below the mark",
                    "fired": c.fired, "backfilled": c.backfilled, "calendar_runs": below, "forgotten_unseen": unseen })
        });
    }
    if record.paused {
        let manual = runs.iter().filter(|r| r.origin.is_some_and(|o| o.manual)).count() as u64;
        if !(manual..=manual + unseen).contains(&c.triggered) || v.runs < runs.len() as u64 {
            f.counters_inconsistent.push(|| {
                json!({ "schedule": id, "name": name, "rule": "triggered / runs differ from the runs read",
                        "triggered": c.triggered, "manual_runs": manual, "runs_counter": v.runs, "runs_read": runs.len() })
            });
        }
    }
}

/// Step 4 (final read part): no two runs of a `forbid` schedule were live at once.
fn check_forbid(id: u64, name: &str, runs: &[RunTask], clock_faults: bool, f: &mut Findings) {
    let mut ordered: Vec<&RunTask> =
        runs.iter().filter(|r| r.origin.is_some_and(|o| o.schedule == id && !o.manual)).collect();
    ordered.sort_by_key(|r| r.task_id);
    // The earlier run with the highest token, and the one that finished last (None: never).
    let mut max_token: Option<(u64, u64)> = None;
    let mut last_finish: Option<(u64, Option<u64>)> = None;
    for (i, r) in ordered.iter().enumerate() {
        if let Some(&later) = ordered.get(i + 1)
            && !run_ended(r)
        {
            f.overlap.push(|| {
                json!({ "schedule": id, "name": name, "rule": "earlier run not terminal while a later run exists",
                        "task_id": r.task_id, "state": r.state, "later_task_id": later.task_id })
            });
        }
        let min_token = r.attempts.iter().map(|a| a.token).min();
        if let (Some(min), Some((earlier, max))) = (min_token, max_token)
            && min < max
        {
            f.overlap.push(|| {
                json!({ "schedule": id, "name": name, "rule": "a later run was assigned before an earlier run's last assignment",
                        "task_id": r.task_id, "min_token": min, "earlier_task_id": earlier, "earlier_max_token": max })
            });
        }
        if let Some((earlier, Some(finished))) = last_finish
            && r.created_ms < finished
        {
            let by = finished - r.created_ms;
            f.m.max_stamp_overlap_ms = f.m.max_stamp_overlap_ms.max(by);
            if by > STAMP_TOLERANCE_MS {
                f.m.stamp_overlaps += 1;
                if !clock_faults {
                    f.overlap.push(|| {
                        json!({ "schedule": id, "name": name, "rule": "created before an earlier run finished (leader stamps)",
                                "task_id": r.task_id, "created_ms": r.created_ms, "earlier_task_id": earlier,
                                "earlier_finished_ms": finished, "by_ms": by })
                    });
                }
            }
        }
        if let Some(max) = r.attempts.iter().map(|a| a.token).max()
            && max_token.is_none_or(|(_, m)| max > m)
        {
            max_token = Some((r.task_id, max));
        }
        // A forgotten run finished at a time no longer known: it bounds nothing.
        if r.state == FORGOTTEN {
            continue;
        }
        let newer = match (last_finish, r.finished_ms) {
            (None, _) => true,
            (Some((_, Some(old))), Some(new)) => new > old,
            (Some((_, Some(_))), None) => true,
            (Some((_, None)), _) => false,
        };
        if newer {
            last_finish = Some((r.task_id, r.finished_ms));
        }
    }
}

/// Step 4 (polls): a `forbid` schedule never shows two live runs.
fn check_polls(record: &ScheduleRecord, f: &mut Findings) {
    let forbid: BTreeSet<u64> =
        record.schedules.iter().filter(|s| s.request["overlap"] == "forbid").filter_map(|s| s.id).collect();
    for p in record.polls.iter().filter(|p| forbid.contains(&p.schedule) && p.live_runs.len() > 1) {
        f.overlap.push(|| {
            json!({ "schedule": p.schedule, "rule": "two live runs in a poll", "wall_ms": p.wall_ms, "node": p.node,
                    "live_runs": p.live_runs })
        });
    }
}

/// Step 6: the runs against the main final state.
fn check_against_final_state(record: &ScheduleRecord, inputs: &Inputs, incomplete: &mut Vec<String>, f: &mut Findings) {
    let fs = inputs.final_state;
    if !fs.complete {
        incomplete.push("main final state incomplete".into());
        return;
    }
    let known: BTreeSet<u64> = record.schedules.iter().filter_map(|s| s.id).collect();
    // A create that was never acknowledged may still have taken effect: its runs are then of a
    // schedule whose id nobody knows, so no run can be called unexpected.
    let all_known = record.schedules.iter().all(|s| s.id.is_some());
    let mut by_schedule: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for t in &fs.tasks {
        let Some(o) = t.origin else { continue };
        if known.contains(&o.schedule) {
            by_schedule.entry(o.schedule).or_default().insert(t.task_id);
        } else if all_known {
            f.unexpected_run.push(|| json!({ "task_id": t.task_id, "origin": o }));
        }
    }
    if !record.paused {
        return;
    }
    for log in &record.schedules {
        let (Some(id), Some(runs)) = (log.id, &log.final_runs) else { continue };
        let listed: BTreeSet<u64> = runs.iter().map(|r| r.task_id).collect();
        // The main final read came first: a run it had may have been forgotten since.
        let gone: BTreeSet<u64> = log.forgotten_runs.iter().flatten().copied().collect();
        let in_final: BTreeSet<u64> =
            by_schedule.remove(&id).unwrap_or_default().into_iter().filter(|t| !gone.contains(t)).collect();
        if listed != in_final {
            let only_listed: Vec<u64> = listed.difference(&in_final).copied().take(20).collect();
            let only_final: Vec<u64> = in_final.difference(&listed).copied().take(20).collect();
            f.index_mismatch.push(|| {
                json!({ "schedule": id, "name": log.name, "only_in_runs_read": only_listed, "only_in_final_state": only_final })
            });
        }
    }
}

/// The raw lateness samples of a record, in ms: `created_ms - nominal_ms` of every calendar run
/// of the final reads (leader clock), and the harness-observed lateness of every calendar run the
/// polls saw. What [`check`] summarizes; pooled across runs by [`crate::aggregate`].
pub fn lateness_samples(record: &ScheduleRecord) -> (Vec<f64>, Vec<f64>) {
    let mut stamped = Vec::new();
    let mut observed = Vec::new();
    for log in &record.schedules {
        let Some(id) = log.id else { continue };
        for r in log.final_runs.iter().flatten() {
            if let Some(o) = r.origin.filter(|o| o.schedule == id && !o.manual) {
                stamped.push(r.created_ms as f64 - o.nominal_ms as f64);
            }
        }
        for s in log.first_seen.iter().filter(|s| !s.manual) {
            observed.push(s.seen_wall_ms as f64 - s.nominal_ms as f64);
        }
    }
    (stamped, observed)
}

/// Step 7: early fires and observed lateness, from the polls' first sightings.
fn measure_first_seen(log: &ScheduleLog, m: &mut Measured) {
    for s in log.first_seen.iter().filter(|s| !s.manual) {
        m.observed_lateness_ms.push(s.seen_wall_ms as f64 - s.nominal_ms as f64);
        if s.seen_wall_ms < s.nominal_ms {
            let early = s.nominal_ms - s.seen_wall_ms;
            m.max_early_ms = m.max_early_ms.max(early);
            m.early.push(|| {
                json!({ "schedule": log.id, "task_id": s.task_id, "nominal_ms": s.nominal_ms, "seen_wall_ms": s.seen_wall_ms,
                        "early_by_ms": early, "created_ms": s.created_ms })
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{Fixture, Hist, task};
    use crate::history::FinalTask;
    use crate::history::RunAttempt;
    use crate::history::RunOrigin;
    use crate::history::ScheduleCounts;
    use crate::history::SchedulePoll;
    use crate::history::SeenRun;

    const T0: u64 = 1_000_000;

    fn run(
        task_id: u64,
        schedule: u64,
        nominal_ms: u64,
        created_ms: u64,
        finished_ms: Option<u64>,
        token: u64,
    ) -> RunTask {
        RunTask {
            task_id,
            origin: Some(RunOrigin { schedule, nominal_ms, manual: false }),
            state: if finished_ms.is_some() { "succeeded" } else { "running" }.into(),
            version: 4,
            created_ms,
            finished_ms,
            attempts: vec![RunAttempt {
                token,
                assigned_ms: created_ms + 5,
                started_ms: Some(created_ms + 10),
                ended_ms: finished_ms,
                outcome: finished_ms.map(|_| "succeeded".into()),
            }],
        }
    }

    fn view(id: u64, overlap: &str, mark: Option<u64>, counters: ScheduleCounts, runs: u64) -> ScheduleSeen {
        ScheduleSeen {
            id,
            every_ms: Some(1000),
            start_ms: None,
            catch_up: "all".into(),
            catch_up_window_ms: 3_600_000,
            overlap: overlap.into(),
            created_ms: T0,
            paused: true,
            last_nominal_ms: mark,
            counters,
            live_runs: vec![],
            runs,
        }
    }

    fn log(id: u64, overlap: &str, view: ScheduleSeen, runs: Vec<RunTask>) -> ScheduleLog {
        let first_seen = runs
            .iter()
            .map(|r| SeenRun {
                task_id: r.task_id,
                nominal_ms: r.origin.unwrap().nominal_ms,
                manual: false,
                created_ms: r.created_ms,
                read_sent_wall_ms: r.created_ms,
                seen_wall_ms: r.created_ms + 100,
            })
            .collect();
        ScheduleLog {
            name: format!("s{id}"),
            request: json!({ "overlap": overlap }),
            create_attempts: 1,
            id: Some(id),
            created_ms: Some(T0),
            create_wall_ms: Some((T0 - 5, T0 + 5)),
            pause_wall_ms: None,
            create_error: None,
            first_seen,
            final_view: Some(view.clone()),
            final_runs: Some(runs),
            forgotten_runs: Some(vec![]),
            final_view_after: Some(view),
        }
    }

    fn fired(n: u64) -> ScheduleCounts {
        ScheduleCounts { fired: n, ..ScheduleCounts::default() }
    }

    /// An `allow` schedule 1 that fired at T0, T0+1s, T0+2s (tasks 10..12), each 20 ms late.
    fn allow_runs() -> Vec<RunTask> {
        (0..3).map(|k| run(10 + k, 1, T0 + k * 1000, T0 + k * 1000 + 20, Some(T0 + k * 1000 + 50), 100 + k)).collect()
    }

    /// A `forbid` schedule 2 whose runs take 2.5 s: fires at T0, T0+3s (T0+1s, +2s skipped).
    fn forbid_runs() -> Vec<RunTask> {
        vec![run(20, 2, T0, T0 + 10, Some(T0 + 2600), 200), run(21, 2, T0 + 3000, T0 + 3010, Some(T0 + 5600), 210)]
    }

    fn forbid_view() -> ScheduleSeen {
        view(2, "forbid", Some(T0 + 3000), ScheduleCounts { fired: 2, skipped: 2, ..ScheduleCounts::default() }, 2)
    }

    fn record(logs: Vec<ScheduleLog>, nemesis: &[&str]) -> ScheduleRecord {
        ScheduleRecord {
            nemesis: nemesis.iter().map(|s| s.to_string()).collect(),
            schedules: logs,
            paused: true,
            paused_wall_ms: Some(T0 + 10_000),
            polls: vec![],
        }
    }

    /// The main final state holding exactly the runs of `rec`.
    fn finals(rec: &ScheduleRecord) -> Vec<FinalTask> {
        let runs = rec.schedules.iter().flat_map(|s| s.final_runs.clone().unwrap_or_default());
        runs.map(|r| FinalTask { origin: r.origin, key: None, ..task(r.task_id, "", &r.state, r.version) }).collect()
    }

    fn check_record(rec: ScheduleRecord) -> CheckResult {
        let tasks = finals(&rec);
        let mut fx = Fixture::new(&Hist::new(), tasks);
        fx.schedules = Some(rec);
        check(&fx.inputs())
    }

    fn good() -> ScheduleRecord {
        let allow = log(1, "allow", view(1, "allow", Some(T0 + 2000), fired(3), 3), allow_runs());
        let forbid = log(2, "forbid", forbid_view(), forbid_runs());
        record(vec![allow, forbid], &["kill"])
    }

    fn violations(r: &CheckResult, kind: &str) -> u64 {
        r.details["violations"][kind].as_u64().unwrap()
    }

    #[test]
    fn a_clean_allow_and_forbid_pair_is_valid_and_measured() {
        let r = check_record(good());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["calendar_runs"], 5);
        assert_eq!((r.details["fired"].as_u64(), r.details["skipped"].as_u64()), (Some(5), Some(2)));
        assert_eq!(r.details["measured"]["lateness_ms"]["max"], json!(20.0));
        assert_eq!(r.details["measured"]["early_fires"], 0);
        assert_eq!(r.details["schedules"][1]["grid_times_without_run"], 2);
    }

    #[test]
    fn a_doubled_nominal_time_is_invalid() {
        let mut rec = good();
        let mut runs = allow_runs();
        runs.push(run(13, 1, T0 + 1000, T0 + 1500, Some(T0 + 1600), 103));
        rec.schedules[0] = log(1, "allow", view(1, "allow", Some(T0 + 2000), fired(4), 4), runs);
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["doubled"], 1);
        assert_eq!(r.details["examples"]["doubled"][0]["task_ids"], json!([11, 13]));
    }

    #[test]
    fn a_gap_in_an_all_schedule_is_invalid() {
        let mut rec = good();
        let mut runs = allow_runs();
        runs.remove(1);
        // The counters agree with the runs (fired 2), and nothing was skipped or missed.
        rec.schedules[0] = log(1, "allow", view(1, "allow", Some(T0 + 2000), fired(2), 2), runs);
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["missing"], 1);
        assert_eq!(r.details["examples"]["missing"][0]["first_without_run"], json!([T0 + 1000]));
    }

    #[test]
    fn a_forbid_gap_the_skipped_counter_does_not_explain_is_invalid() {
        let mut rec = good();
        let v =
            view(2, "forbid", Some(T0 + 3000), ScheduleCounts { fired: 2, skipped: 1, ..ScheduleCounts::default() }, 2);
        rec.schedules[1] = log(2, "forbid", v, forbid_runs());
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["missing"], 1);
    }

    #[test]
    fn an_overlapping_forbid_pair_is_invalid_by_stamps_without_clock_faults() {
        let mut rec = good();
        // The second run created at T0+1s while the first ran until T0+2.6s.
        let runs =
            vec![run(20, 2, T0, T0 + 10, Some(T0 + 2600), 200), run(21, 2, T0 + 1000, T0 + 1010, Some(T0 + 3600), 210)];
        let v = view(2, "forbid", Some(T0 + 1000), fired(2), 2);
        rec.schedules[1] = log(2, "forbid", v, runs);
        let r = check_record(rec.clone());
        assert_eq!(r.valid, Validity::False, "{r:#?}");
        assert_eq!(r.details["overlaps"], 1);
        assert_eq!(r.details["examples"]["overlap"][0]["by_ms"], 1590);
        // Under the clock nemesis the same stamps are only measured.
        rec.nemesis = vec!["clock".into()];
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["measured"]["stamp_overlaps"], 1);
    }

    #[test]
    fn a_small_stamp_inversion_is_tolerated() {
        let mut rec = good();
        let runs =
            vec![run(20, 2, T0, T0 + 10, Some(T0 + 2600), 200), run(21, 2, T0 + 2000, T0 + 2590, Some(T0 + 5600), 210)];
        let v =
            view(2, "forbid", Some(T0 + 2000), ScheduleCounts { fired: 2, skipped: 1, ..ScheduleCounts::default() }, 2);
        rec.schedules[1] = log(2, "forbid", v, runs);
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["measured"]["max_stamp_overlap_ms"], 10);
    }

    #[test]
    fn forbid_overlaps_proven_by_order_are_invalid_even_under_clock_faults() {
        // Token order: the later run (21) was assigned at index 150, before the earlier run's
        // retry at index 220; the stamps look fine.
        let mut later = run(21, 2, T0 + 3000, T0 + 3010, Some(T0 + 5600), 150);
        later.attempts[0].token = 150;
        let mut earlier = run(20, 2, T0, T0 + 10, Some(T0 + 2600), 200);
        earlier.attempts.push(RunAttempt { token: 220, ..earlier.attempts[0].clone() });
        let mut rec = good();
        rec.nemesis = vec!["clock".into()];
        rec.schedules[1] = log(2, "forbid", forbid_view(), vec![earlier, later]);
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(
            r.details["examples"]["overlap"][0]["rule"],
            "a later run was assigned before an earlier run's last assignment"
        );

        // An earlier run still running while a later one exists.
        let mut rec = good();
        rec.nemesis = vec!["clock".into()];
        let runs = vec![run(20, 2, T0, T0 + 10, None, 200), run(21, 2, T0 + 3000, T0 + 3010, Some(T0 + 5600), 210)];
        rec.schedules[1] = log(2, "forbid", forbid_view(), runs);
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["examples"]["overlap"][0]["rule"], "earlier run not terminal while a later run exists");

        // A poll that saw two live runs.
        let mut rec = good();
        rec.polls.push(SchedulePoll {
            wall_ms: T0 + 1500,
            node: 1,
            schedule: 2,
            live_runs: vec![20, 21],
            last_nominal_ms: None,
        });
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.details["overlaps"], 1);
    }

    #[test]
    fn inconsistent_counters_are_invalid() {
        let mut rec = good();
        rec.schedules[0] = log(1, "allow", view(1, "allow", Some(T0 + 2000), fired(5), 3), allow_runs());
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(violations(&r, "counters_inconsistent"), 1);
    }

    #[test]
    fn a_live_run_already_terminal_and_a_run_before_its_nominal_time_are_invalid() {
        let mut rec = good();
        rec.schedules[0].final_view_after.as_mut().unwrap().live_runs = vec![11];
        rec.schedules[0].final_runs.as_mut().unwrap()[2].created_ms = T0 + 1999;
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(violations(&r, "live_but_terminal"), 1);
        assert_eq!(violations(&r, "created_before_nominal"), 1);
    }

    #[test]
    fn runs_of_unknown_schedules_and_index_differences_are_invalid() {
        let rec = good();
        let mut tasks = finals(&rec);
        tasks.pop();
        let stray = RunOrigin { schedule: 9, nominal_ms: T0, manual: false };
        tasks.push(FinalTask { origin: Some(stray), key: None, ..task(99, "", "succeeded", 3) });
        let mut fx = Fixture::new(&Hist::new(), tasks);
        fx.schedules = Some(rec);
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::False);
        assert_eq!((violations(&r, "unexpected_run"), violations(&r, "index_mismatch")), (1, 1));
    }

    #[test]
    fn early_fires_are_measured_not_judged() {
        let mut rec = good();
        rec.nemesis = vec!["clock".into()];
        // Seen by the harness 5 s before its nominal time (a leader 7 s ahead fired it).
        rec.schedules[0].first_seen[2].seen_wall_ms = T0 + 2000 - 5000;
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["measured"]["early_fires"], 1);
        assert_eq!(r.details["measured"]["max_early_ms"], 5000);
    }

    #[test]
    fn a_failed_final_read_or_create_is_unknown_and_no_record_too() {
        let mut rec = good();
        rec.schedules[1].final_runs = None;
        // Its tasks are still in the main final state, but the index is not compared then.
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::Unknown, "{r:#?}");
        let mut rec = good();
        rec.schedules[0].id = None;
        rec.schedules[0].create_error = Some("timeout".into());
        let mut fx = Fixture::new(&Hist::new(), finals(&good()));
        fx.schedules = Some(rec);
        // Runs of schedule 1 are then of a schedule nobody knows the id of: not unexpected.
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::Unknown, "{r:#?}");
        assert_eq!(violations(&r, "unexpected_run"), 0);
        let fx = Fixture::new(&Hist::new(), vec![]);
        let r = check(&fx.inputs());
        assert_eq!(r.valid, Validity::Unknown);
        assert_eq!(r.details["recorded"], false);
    }

    #[test]
    fn a_stalled_calendar_is_measured_by_its_mark_lag() {
        let mut rec = good();
        // Paused 10 s after creation, but the allow schedule's mark is at T0+2s: the grid times
        // T0+3s..=T0+9s were due at least a second before the pause, 7 fires owed.
        rec.schedules[0].pause_wall_ms = Some((T0 + 10_000, T0 + 10_020));
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(r.details["schedules"][0]["mark_lag_at_pause_ms"], 8000);
        assert_eq!(r.details["schedules"][0]["unfired_at_pause"], 7);
        assert_eq!(r.details["measured"]["max_mark_lag_at_pause_ms"], 8000);
    }

    #[test]
    fn a_schedule_that_never_fired_is_invalid() {
        let mut rec = good();
        rec.schedules[0] = log(1, "allow", view(1, "allow", None, fired(0), 0), vec![]);
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(violations(&r, "never_fired"), 1);
    }

    /// `good()` after retention forgot the first run of each schedule (tasks 10 and 20): gone
    /// from the runs read and the main final state, found `forgotten` by the final read.
    fn good_with_forgotten() -> ScheduleRecord {
        let mut rec = good();
        for (log, gone) in rec.schedules.iter_mut().zip([10u64, 20]) {
            log.final_runs.as_mut().unwrap().retain(|r| r.task_id != gone);
            log.forgotten_runs = Some(vec![gone]);
        }
        rec
    }

    #[test]
    fn forgotten_runs_fill_their_grid_times_and_count_for_the_counters() {
        let r = check_record(good_with_forgotten());
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((r.details["forgotten_runs"].as_u64(), r.details["forgotten_unseen"].as_u64()), (Some(2), Some(0)));
        assert_eq!(r.details["missing"], 0);
    }

    #[test]
    fn a_run_gone_without_forgotten_is_still_missing_and_a_forgotten_one_listed_live_is_terminal() {
        // The final read did not find run 10 forgotten: the schedule counts a run nobody has.
        let mut rec = good_with_forgotten();
        rec.schedules[0].forgotten_runs = Some(vec![]);
        rec.schedules[0].first_seen.retain(|r| r.task_id != 10);
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::Unknown, "a gap only an unseen forgotten run could explain: {r:#?}");
        assert_eq!(r.details["forgotten_unseen"], 1);
        // Two grid times gone with one run unaccounted for: at least one fire was lost.
        let mut rec = good_with_forgotten();
        rec.schedules[0].forgotten_runs = Some(vec![]);
        rec.schedules[0].final_runs.as_mut().unwrap().retain(|r| r.task_id != 11);
        rec.schedules[0].final_view.as_mut().unwrap().runs = 2;
        let r = check_record(rec);
        assert_eq!(r.valid, Validity::False, "{r:#?}");
        assert_eq!(r.details["missing"], 1);
        // A run the last view lists live had already answered forgotten.
        let mut rec = good_with_forgotten();
        rec.schedules[1].final_view_after.as_mut().unwrap().live_runs = vec![20];
        assert_eq!(violations(&check_record(rec), "live_but_terminal"), 1);
        // A forgotten later run while an earlier forbid run is still live is an overlap.
        let mut rec = good_with_forgotten();
        rec.schedules[1].forgotten_runs = Some(vec![21]);
        let runs = rec.schedules[1].final_runs.as_mut().unwrap();
        *runs = vec![run(20, 2, T0, T0 + 10, None, 200)];
        assert!(violations(&check_record(rec), "overlap") >= 1);
    }
}

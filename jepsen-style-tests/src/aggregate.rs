//! Across runs: verdicts, failover distributions and error rates per fault family.
//!
//! A single run sees a handful of faults; the distributions that matter (leader kill → first
//! acknowledged write, worker loss → task running again) need the raw samples of many runs. So
//! this module re-measures every stored run from its own files (the measurements are pure
//! functions of `history.jsonl` and `sink.jsonl`) and pools the samples by nemesis; the schedule
//! figures come from each run's `schedules` checker details and `schedules.json`, the workflow
//! figures from its `workflows` checker details. Used at the end of `suite` and by
//! `taskraft-jepsen summarize STORE`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::history::Op;
use crate::history::SinkEvent;
use crate::report::Counts;
use crate::report::Distribution;
use crate::report::measure;
use crate::report::read_jsonl;

/// Pooled figures of every run of one nemesis combination.
#[derive(Debug, Default, Serialize)]
pub struct FamilyAggregate {
    /// Runs by verdict.
    pub valid: usize,
    /// Runs that were invalid.
    pub invalid: usize,
    /// Runs whose verdict is unknown.
    pub unknown: usize,
    /// Leader kill → first acknowledged submit, ms, every sample.
    pub leader_kill_ms: Distribution,
    /// Leader kills with no acknowledged submit before the run ended.
    pub leader_kill_without_ack: usize,
    /// Worker loss → a task of it running again elsewhere, ms.
    pub worker_recovery_ms: Distribution,
    /// Client outcomes while this family's faults were active, per operation.
    pub during_faults: BTreeMap<String, Counts>,
    /// Client outcomes outside every fault window, per operation.
    pub outside_faults: BTreeMap<String, Counts>,
    /// The schedule workload, pooled.
    pub schedules: ScheduleAggregate,
    /// The workflow workload, pooled.
    pub workflows: WorkflowAggregate,
}

/// The workflow workload of every run of one nemesis combination (`workflows` checker details
/// summed).
#[derive(Debug, Default, Serialize)]
pub struct WorkflowAggregate {
    /// Runs whose workflows checker answered (runs without `workflows.json` are not counted).
    pub runs: usize,
    /// Workflows submitted.
    pub workflows: u64,
    /// Of those, acknowledged.
    pub acked: u64,
    /// Terminal in the final read.
    pub terminal: u64,
    /// Acknowledged and still running after the heal.
    pub not_finished: u64,
    /// Every violation of any kind.
    pub violations: u64,
    /// Physical starts of reduces judged, and the shard inputs they showed.
    pub reduce_starts: u64,
    /// Shard inputs compared with the committed results.
    pub shard_inputs_checked: u64,
    /// Parent → child edges judged in time.
    pub edges_timed: u64,
    /// Runs where the concurrency limit was in force.
    pub limit_runs: usize,
    /// Keyed assignments judged against the limit.
    pub limit_assignments: u64,
    /// Largest number of permit holders the sink witnessed at one assignment.
    pub max_witnessed_holders: u64,
    /// Largest number of keyed processes running at once, zombies included.
    pub max_physical: u64,
}

/// The schedule workload of every run of one nemesis combination (`schedules` checker details
/// summed, lateness samples from each `schedules.json` pooled).
#[derive(Debug, Default, Serialize)]
pub struct ScheduleAggregate {
    /// Runs whose schedules checker answered (runs without `schedules.json` are not counted).
    pub runs: usize,
    /// Calendar runs seen in the final reads.
    pub calendar_runs: u64,
    /// `fired` counters, summed.
    pub fired: u64,
    /// `skipped` counters, summed (`forbid`).
    pub skipped: u64,
    /// Nominal times with two calendar runs.
    pub doubled: u64,
    /// Grid times of `catch_up: all` schedules without a run nor a counter explaining it.
    pub missing: u64,
    /// Proven `forbid` overlaps.
    pub overlaps: u64,
    /// Every violation of any kind.
    pub violations: u64,
    /// Runs a poll saw before their nominal time (harness clock).
    pub early_fires: u64,
    /// The largest of those leads, ms.
    pub max_early_ms: u64,
    /// `forbid` overlaps by the leaders' stamps, over the tolerance (measured under clock faults).
    pub stamp_overlaps: u64,
    /// Largest mark lag at the pause (harness clock − mark), ms.
    pub max_mark_lag_ms: i64,
    /// Grid times due at the pause but never decided, summed.
    pub unfired_at_pause: u64,
    /// `created_ms - nominal_ms` of every calendar run, ms.
    pub lateness_ms: Distribution,
    /// First poll that saw a run − its nominal time (harness clock; an upper bound), ms.
    pub observed_lateness_ms: Distribution,
}

/// Scans `store` (every sub-directory with a `results.json`) and pools by nemesis.
pub fn aggregate(store: &Path) -> anyhow::Result<BTreeMap<String, FamilyAggregate>> {
    let mut raw: BTreeMap<String, (FamilyAggregate, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut lateness: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut dirs: Vec<_> = std::fs::read_dir(store)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for dir in dirs {
        let Ok(bytes) = std::fs::read(dir.join("results.json")) else { continue };
        let results: Value = serde_json::from_slice(&bytes)?;
        let nemesis: Vec<&str> =
            results["nemesis"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let key = if nemesis.is_empty() { "none".to_string() } else { nemesis.join("+") };
        let (agg, kills, recoveries) = raw.entry(key.clone()).or_default();
        let checkers = results["checkers"].as_array().map(Vec::as_slice).unwrap_or_default();
        if let Some(d) = checkers.iter().find(|c| c["name"] == "schedules" && c["details"]["recorded"] == true) {
            add_schedules(&mut agg.schedules, &d["details"]);
            if let Ok(bytes) = std::fs::read(dir.join(crate::schedules::FILE))
                && let Ok(record) = serde_json::from_slice::<crate::history::ScheduleRecord>(&bytes)
            {
                let (stamped, observed) = crate::checkers::schedules::lateness_samples(&record);
                let pooled = lateness.entry(key.clone()).or_default();
                pooled.0.extend(stamped);
                pooled.1.extend(observed);
            }
        }
        if let Some(d) = checkers.iter().find(|c| c["name"] == "workflows" && c["details"]["recorded"] == true) {
            add_workflows(&mut agg.workflows, &d["details"]);
        }
        match &results["valid"] {
            Value::Bool(true) => agg.valid += 1,
            Value::Bool(false) => agg.invalid += 1,
            _ => agg.unknown += 1,
        }
        let history: Vec<Op> = read_jsonl(&dir.join("history.jsonl"))?;
        let sink: Vec<SinkEvent> = read_jsonl(&dir.join("sink.jsonl"))?;
        let windows = measure::fault_windows(&history);
        for k in measure::leader_kill_failover(&history, &windows) {
            match k {
                Some(ms) => kills.push(ms),
                None => agg.leader_kill_without_ack += 1,
            }
        }
        recoveries.extend(measure::worker_recovery(&sink, &windows));
        for row in measure::rates_per_fault(&history, &windows) {
            let into = if row.fault == measure::NO_FAULT { &mut agg.outside_faults } else { &mut agg.during_faults };
            let c = into.entry(row.f.clone()).or_default();
            c.ok += row.counts.ok;
            c.fail += row.counts.fail;
            c.info += row.counts.info;
        }
    }
    Ok(raw
        .into_iter()
        .map(|(k, (mut agg, kills, recoveries))| {
            agg.leader_kill_ms = Distribution::of(&kills);
            agg.worker_recovery_ms = Distribution::of(&recoveries);
            if let Some((stamped, observed)) = lateness.get(&k) {
                agg.schedules.lateness_ms = Distribution::of(stamped);
                agg.schedules.observed_lateness_ms = Distribution::of(observed);
            }
            (k, agg)
        })
        .collect())
}

/// Adds one run's `schedules` checker details to `agg`.
fn add_schedules(agg: &mut ScheduleAggregate, d: &Value) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    agg.runs += 1;
    agg.calendar_runs += n(&d["calendar_runs"]);
    agg.fired += n(&d["fired"]);
    agg.skipped += n(&d["skipped"]);
    agg.doubled += n(&d["doubled"]);
    agg.missing += n(&d["missing"]);
    agg.overlaps += n(&d["overlaps"]);
    agg.violations += d["violations"].as_object().map_or(0, |m| m.values().map(n).sum());
    agg.early_fires += n(&d["measured"]["early_fires"]);
    agg.max_early_ms = agg.max_early_ms.max(n(&d["measured"]["max_early_ms"]));
    agg.stamp_overlaps += n(&d["measured"]["stamp_overlaps"]);
    agg.max_mark_lag_ms = agg.max_mark_lag_ms.max(d["measured"]["max_mark_lag_at_pause_ms"].as_i64().unwrap_or(0));
    agg.unfired_at_pause += n(&d["measured"]["unfired_at_pause"]);
}

/// Adds one run's `workflows` checker details to `agg`.
fn add_workflows(agg: &mut WorkflowAggregate, d: &Value) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    agg.runs += 1;
    agg.workflows += n(&d["workflows"]);
    agg.acked += n(&d["acked"]);
    agg.terminal += n(&d["terminal"]);
    agg.not_finished += n(&d["not_finished"]);
    agg.violations += d["violations"].as_object().map_or(0, |m| m.values().map(n).sum());
    agg.reduce_starts += n(&d["reduce_starts"]);
    agg.shard_inputs_checked += n(&d["shard_inputs_checked"]);
    agg.edges_timed += n(&d["edges_timed"]);
    let l = &d["limit"];
    if l["exercised"] == true {
        agg.limit_runs += 1;
        agg.limit_assignments += n(&l["assignments_judged"]);
        agg.max_witnessed_holders = agg.max_witnessed_holders.max(n(&l["max_witnessed_holders"]));
        agg.max_physical = agg.max_physical.max(n(&l["max_physical"]));
    }
}

/// The human table of [`aggregate`].
pub fn summary(aggs: &BTreeMap<String, FamilyAggregate>) -> String {
    let mut s = String::new();
    let dist = |d: &Distribution| {
        if d.count == 0 {
            "n=0".to_string()
        } else {
            format!("n={} p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}", d.count, d.p50, d.p90, d.p99, d.max)
        }
    };
    let rate = |c: &Counts| {
        let total = (c.ok + c.fail + c.info).max(1) as f64;
        format!("{:>5.1}% fail {:>5.1}% info", 100.0 * c.fail as f64 / total, 100.0 * c.info as f64 / total)
    };
    for (family, a) in aggs {
        let _ = writeln!(s, "{family}: {} valid, {} invalid, {} unknown", a.valid, a.invalid, a.unknown);
        if a.leader_kill_ms.count > 0 || a.leader_kill_without_ack > 0 {
            let _ = writeln!(
                s,
                "  leader kill -> first ack ms: {} ({} without an ack)",
                dist(&a.leader_kill_ms),
                a.leader_kill_without_ack
            );
        }
        if a.worker_recovery_ms.count > 0 {
            let _ = writeln!(s, "  worker loss -> running again ms: {}", dist(&a.worker_recovery_ms));
        }
        let sc = &a.schedules;
        if sc.runs > 0 {
            let _ = writeln!(
                s,
                "  schedules: {} calendar runs in {} runs (fired {}, skipped {}): {} doubled, {} missing, {} overlaps, {} violations; {} early fires (max {} ms); {} stamp overlaps; mark lag at pause max {} ms, {} fires owed",
                sc.calendar_runs,
                sc.runs,
                sc.fired,
                sc.skipped,
                sc.doubled,
                sc.missing,
                sc.overlaps,
                sc.violations,
                sc.early_fires,
                sc.max_early_ms,
                sc.stamp_overlaps,
                sc.max_mark_lag_ms,
                sc.unfired_at_pause
            );
            let _ = writeln!(s, "  schedule fire lateness ms: {}", dist(&sc.lateness_ms));
            let _ = writeln!(s, "  observed lateness ms:      {}", dist(&sc.observed_lateness_ms));
        }
        let wf = &a.workflows;
        if wf.runs > 0 {
            let _ = writeln!(
                s,
                "  workflows: {} in {} runs ({} acked, {} terminal, {} not finished): {} violations; {} reduce starts, {} shard inputs checked, {} edges timed; limit in {} runs: {} assignments judged, max {} holders witnessed, max {} keyed processes at once",
                wf.workflows,
                wf.runs,
                wf.acked,
                wf.terminal,
                wf.not_finished,
                wf.violations,
                wf.reduce_starts,
                wf.shard_inputs_checked,
                wf.edges_timed,
                wf.limit_runs,
                wf.limit_assignments,
                wf.max_witnessed_holders,
                wf.max_physical
            );
        }
        for (f, c) in &a.during_faults {
            let _ = writeln!(s, "  during faults  {f:<6} {}  (of {})", rate(c), c.ok + c.fail + c.info);
        }
        for (f, c) in &a.outside_faults {
            let _ = writeln!(s, "  outside faults {f:<6} {}  (of {})", rate(c), c.ok + c.fail + c.info);
        }
    }
    s
}

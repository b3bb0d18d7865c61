//! The verdict of a finished run: checkers + measurements → `results.json`, `plot.svg`, summary.
//!
//! Used right after a run and by `taskraft-jepsen check DIR` on a stored one, so a checker fix
//! can be replayed against old histories.

use std::path::Path;

use serde::Serialize;

use crate::checkers;
use crate::checkers::Inputs;
use crate::checkers::Validity;
use crate::history::FinalState;
use crate::history::LeaderObs;
use crate::history::Op;
use crate::history::ReplicaViews;
use crate::history::ScheduleRecord;
use crate::history::SinkEvent;
use crate::history::WorkflowRecord;
use crate::report;
use crate::report::JsonlWriter;
use crate::report::Measurements;

/// A finished run, borrowed from memory or loaded from its directory.
pub struct RunRecord<'a> {
    /// The run's directory (results and plot are written there).
    pub dir: &'a Path,
    /// Seed that replays it.
    pub seed: u64,
    /// Fault families it used.
    pub nemesis: Vec<String>,
    /// Replicas at the start.
    pub nodes: usize,
    /// Workers.
    pub workers: u32,
    /// Length of the fault-and-load phase.
    pub time_limit_s: f64,
    /// `history.jsonl`.
    pub history: &'a [Op],
    /// `sink.jsonl`.
    pub sink: &'a [SinkEvent],
    /// `leaders.jsonl`.
    pub leaders: &'a [LeaderObs],
    /// `final.json`.
    pub final_state: &'a FinalState,
    /// `replicas.json`.
    pub replicas: &'a ReplicaViews,
    /// `schedules.json` (absent in runs recorded before the schedule workload).
    pub schedules: Option<&'a ScheduleRecord>,
    /// `workflows.json` (absent in runs recorded before the workflow workload).
    pub workflows: Option<&'a WorkflowRecord>,
    /// The replicas' retention horizon, if known.
    pub retention_ms: Option<u64>,
}

/// Runs the checkers, writes `results.json` and `plot.svg`, prints the summary and returns the
/// verdict.
pub fn judge(run: &RunRecord) -> anyhow::Result<Validity> {
    let inputs = Inputs {
        history: run.history,
        sink: run.sink,
        leaders: run.leaders,
        final_state: run.final_state,
        replicas: run.replicas,
        schedules: run.schedules,
        workflows: run.workflows,
        retention_ms: run.retention_ms,
        clock_faults: run.nemesis.iter().any(|n| n == "clock"),
    };
    let results = checkers::check_all(&inputs);
    let valid = checkers::overall(&results);
    let m = Measurements::of(run.history, run.sink);
    let out = report::Results {
        valid: serde_json::to_value(valid)?,
        seed: run.seed,
        nemesis: run.nemesis.clone(),
        nodes: run.nodes,
        workers: run.workers as usize,
        time_limit_s: run.time_limit_s.round() as u64,
        checkers: serde_json::to_value(&results)?,
        fault_counts: m.fault_counts.clone(),
        failover: m.failover.clone(),
        rates: m.rates.clone(),
        ops: m.ops,
        store: run.dir.display().to_string(),
        retention: Some(retention(run, &results)),
    };
    report::write_results(run.dir, &out)?;
    let end_s = run.history.last().map_or(run.time_limit_s, |o| o.time_ns as f64 / 1e9);
    report::write_plot(&run.dir.join(report::PLOT_FILE), &m.series, &m.windows, end_s)?;
    println!("{}", report::summary_text(&out));
    Ok(valid)
}

/// What retention forgot in `run`, from its records and the checkers' counts.
fn retention(run: &RunRecord, results: &[checkers::CheckResult]) -> report::Retention {
    let detail = |name: &str, field: &str| {
        results.iter().find(|r| r.name == name).and_then(|r| r.details[field].as_u64()).unwrap_or(0) as usize
    };
    let reads =
        run.history.iter().filter(|op| matches!(&op.body, crate::history::Body::Read(v) if v.forgotten)).count();
    report::Retention {
        horizon_ms: run.retention_ms,
        tasks: run.final_state.forgotten.len(),
        acked_tasks: detail(checkers::queue::NAME, "acked_forgotten"),
        reads,
        workflows: run.workflows.map_or(0, |w| w.workflows.iter().filter(|l| l.final_forgotten).count()),
        schedule_runs: detail(checkers::schedules::NAME, "forgotten_runs"),
        schedule_runs_unseen: detail(checkers::schedules::NAME, "forgotten_unseen"),
    }
}

/// Writes `items` as JSON lines to `path`.
pub fn write_jsonl<T: Serialize>(path: &Path, items: &[T]) -> anyhow::Result<()> {
    let mut w = JsonlWriter::create(path)?;
    for item in items {
        w.write(item)?;
    }
    w.flush()
}

//! The end of a run: turning the recorded files and the checkers' verdicts into `results.json`, a
//! plot and the summary printed on the terminal.
//!
//! The path of a finished run through this module:
//! 1. The harness reads back `history.jsonl` and `sink.jsonl` with [`read_jsonl`] (it wrote them
//!    during the run with a [`JsonlWriter`]).
//! 2. [`Measurements::of`] derives the fault windows, recovery times, error rates and the
//!    per-second series ([`measure`]).
//! 3. The harness fills [`Results`] with those numbers, the run's parameters and the checkers'
//!    already-serialized verdicts, then calls [`write_results`] and [`write_plot`].
//! 4. [`summary_text`] renders the same `Results` for humans.
//!
//! What it deliberately does not do: decide validity (the checkers do; `valid` arrives as a value)
//! or interpret checker details beyond an optional `name`/`valid`/`summary` per checker.

pub mod jsonl;
pub mod measure;
pub mod plot;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

pub use self::jsonl::JsonlWriter;
pub use self::jsonl::read_jsonl;
pub use self::measure::Counts;
pub use self::measure::Distribution;
pub use self::measure::FaultWindow;
pub use self::measure::OpCounts;
pub use self::measure::RateRow;
pub use self::measure::SecondBucket;
pub use self::plot::write_plot;
use crate::history::Op;
use crate::history::SinkEvent;

/// Name of the results document inside a run's directory.
pub const RESULTS_FILE: &str = "results.json";

/// Name of the plot inside a run's directory.
pub const PLOT_FILE: &str = "plot.svg";

/// How quickly the system made progress again after faults, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Failover {
    /// Leader kill → first acknowledged submit, over the kills that were followed by one.
    pub leader_kill_ms: Distribution,
    /// Leader kills after which no submit was acknowledged before the run ended.
    pub leader_kill_without_ack: usize,
    /// Worker loss → a task that was running on it started again elsewhere.
    pub worker_recovery_ms: Distribution,
}

/// Everything [`measure`] derives from a run's history and sink, computed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurements {
    /// Fault windows, by start.
    pub windows: Vec<FaultWindow>,
    /// Number of windows per fault family.
    pub fault_counts: BTreeMap<String, usize>,
    /// Recovery times.
    pub failover: Failover,
    /// Client outcomes per fault family and operation.
    pub rates: Vec<RateRow>,
    /// Client outcomes per operation over the whole run.
    pub ops: OpCounts,
    /// Per-second submit throughput and latency, for the plot.
    pub series: Vec<SecondBucket>,
}

impl Measurements {
    /// Measures a run.
    pub fn of(history: &[Op], sink: &[SinkEvent]) -> Self {
        let windows = measure::fault_windows(history);
        let kills = measure::leader_kill_failover(history, &windows);
        let acked: Vec<f64> = kills.iter().flatten().copied().collect();
        let failover = Failover {
            leader_kill_ms: Distribution::of(&acked),
            leader_kill_without_ack: kills.len() - acked.len(),
            worker_recovery_ms: Distribution::of(&measure::worker_recovery(sink, &windows)),
        };
        Measurements {
            fault_counts: measure::fault_counts(&windows),
            failover,
            rates: measure::rates_per_fault(history, &windows),
            ops: OpCounts::of(history),
            series: measure::time_series(history),
            windows,
        }
    }
}

/// `results.json`: the verdict of a run and the numbers around it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Results {
    /// `true`, `false` or `"unknown"` (the exit code follows it: 0, 1, 2).
    pub valid: Value,
    /// The seed that replays this run.
    pub seed: u64,
    /// Fault families the nemesis was allowed to inject.
    pub nemesis: Vec<String>,
    /// Number of replicas.
    pub nodes: usize,
    /// Number of workers.
    pub workers: usize,
    /// Length of the fault-and-load phase, in seconds.
    pub time_limit_s: u64,
    /// The checkers' results as they serialized them. Rendered in the summary when it is a list
    /// (or a name-keyed map) of objects with `name`, `valid` and `summary`.
    pub checkers: Value,
    /// Number of windows per fault family.
    pub fault_counts: BTreeMap<String, usize>,
    /// Recovery times.
    pub failover: Failover,
    /// Client outcomes per fault family and operation.
    pub rates: Vec<RateRow>,
    /// Client outcomes per operation.
    pub ops: OpCounts,
    /// The run's directory (history, sink, node logs).
    pub store: String,
    /// What retention forgot during the run (absent when the run predates retention and no
    /// record was forgotten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// What retention forgot in one run, so a reader sees that it was exercised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Retention {
    /// The replicas' horizon (`None` in runs re-judged without it on record).
    pub horizon_ms: Option<u64>,
    /// Tasks the final read found forgotten (client, workflow and schedule tasks alike).
    pub tasks: usize,
    /// Of those, tasks whose submit was acknowledged.
    pub acked_tasks: usize,
    /// Client reads that answered `forgotten`.
    pub reads: usize,
    /// Workflows whose final read answered `forgotten`.
    pub workflows: usize,
    /// Schedule runs a poll saw that the final read found forgotten.
    pub schedule_runs: usize,
    /// Schedule runs forgotten before any poll saw them (counted by the schedules' `runs`).
    pub schedule_runs_unseen: usize,
}

impl Retention {
    /// One line for the summary.
    pub fn text(&self) -> String {
        format!(
            "horizon {}; forgotten: {} tasks ({} acked), {} reads answered forgotten, {} workflows, {} schedule runs (+{} unseen)",
            self.horizon_ms.map_or("unknown".to_string(), |h| format!("{h} ms")),
            self.tasks,
            self.acked_tasks,
            self.reads,
            self.workflows,
            self.schedule_runs,
            self.schedule_runs_unseen
        )
    }
}

/// Writes `results.json` (pretty-printed) into `dir`.
pub fn write_results(dir: &Path, results: &Results) -> anyhow::Result<()> {
    let path = dir.join(RESULTS_FILE);
    let mut text = serde_json::to_string_pretty(results).context("serialize results")?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
}

/// The human summary printed at the end of a run.
pub fn summary_text(results: &Results) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; the `let _` keeps that out of every line below.
    let _ = writeln!(s, "valid: {}  (seed {})", verdict_word(&results.valid), results.seed);
    let _ = writeln!(
        s,
        "run: {} nodes, {} workers, {} s, nemesis [{}], store {}",
        results.nodes,
        results.workers,
        results.time_limit_s,
        results.nemesis.join(", "),
        results.store
    );
    let faults: Vec<String> = results.fault_counts.iter().map(|(f, n)| format!("{f} x{n}")).collect();
    let _ = writeln!(s, "faults: {}", if faults.is_empty() { "none".to_string() } else { faults.join(", ") });
    if let Some(r) = &results.retention {
        let _ = writeln!(s, "retention: {}", r.text());
    }
    let checkers = checker_lines(&results.checkers);
    if !checkers.is_empty() {
        let _ = writeln!(s, "checkers:");
        for (name, valid, summary) in checkers {
            let _ = writeln!(s, "  {:<8} {name}: {summary}", verdict_word(&valid));
        }
    }
    let f = &results.failover;
    let _ = writeln!(s, "failover (ms):");
    let _ = writeln!(
        s,
        "  leader kill -> first ack  {}  ({} without an ack)",
        distribution_text(&f.leader_kill_ms),
        f.leader_kill_without_ack
    );
    let _ = writeln!(s, "  worker loss -> rerun      {}", distribution_text(&f.worker_recovery_ms));
    let o = &results.ops;
    let _ = writeln!(
        s,
        "ops (ok/fail/info): submit {}, read {}, cancel {}",
        counts_text(&o.submit),
        counts_text(&o.read),
        counts_text(&o.cancel)
    );
    s.push_str(&rates_table(&results.rates));
    s
}

/// `ok`, `INVALID` or `unknown` for a `valid` value.
fn verdict_word(valid: &Value) -> &'static str {
    match valid {
        Value::Bool(true) => "ok",
        Value::Bool(false) => "INVALID",
        _ => "unknown",
    }
}

/// (name, valid, summary) of each checker found in the opaque checker results; empty when they
/// have another shape.
fn checker_lines(checkers: &Value) -> Vec<(String, Value, String)> {
    let entry = |fallback: String, v: &Value| {
        let obj = v.as_object()?;
        let name = obj.get("name").and_then(Value::as_str).map_or(fallback, str::to_string);
        let valid = obj.get("valid").cloned().unwrap_or(Value::Null);
        let summary = match obj.get("summary") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        Some((name, valid, summary))
    };
    match checkers {
        Value::Array(items) => items.iter().enumerate().filter_map(|(i, v)| entry(format!("#{i}"), v)).collect(),
        Value::Object(map) if map.contains_key("name") => entry(String::new(), checkers).into_iter().collect(),
        Value::Object(map) => map.iter().filter_map(|(k, v)| entry(k.clone(), v)).collect(),
        _ => Vec::new(),
    }
}

fn distribution_text(d: &Distribution) -> String {
    if d.count == 0 {
        return "n=0".to_string();
    }
    format!("n={} min {:.0} p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}", d.count, d.min, d.p50, d.p90, d.p99, d.max)
}

fn counts_text(c: &Counts) -> String {
    format!("{}/{}/{}", c.ok, c.fail, c.info)
}

/// The rates as an aligned table, rows without completions left out.
fn rates_table(rates: &[RateRow]) -> String {
    let rows: Vec<&RateRow> = rates.iter().filter(|r| r.counts.total() > 0).collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from("rates (by the fault active at completion):\n");
    let _ = writeln!(
        s,
        "  {:<14} {:<7} {:>7} {:>7} {:>7} {:>6} {:>6}",
        "fault", "f", "ok", "fail", "info", "fail%", "info%"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "  {:<14} {:<7} {:>7} {:>7} {:>7} {:>6.1} {:>6.1}",
            r.fault,
            r.f,
            r.counts.ok,
            r.counts.fail,
            r.counts.info,
            r.error_rate * 100.0,
            r.indeterminate_rate * 100.0
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Body;
    use crate::history::NemesisValue;
    use crate::history::OpType;
    use crate::history::Process;
    use crate::history::SubmitValue;

    fn sample_history() -> Vec<Op> {
        let nem = |t, kind, phase: &str| Op {
            index: 0,
            time_ns: t,
            process: Process::Nemesis,
            node: None,
            kind,
            body: Body::Nemesis(NemesisValue {
                fault: "kill".into(),
                phase: phase.into(),
                detail: "kill leader n1".into(),
            }),
            error: None,
        };
        let sub = |t, kind| Op {
            index: 0,
            time_ns: t,
            process: Process::Client(0),
            node: Some(1),
            kind,
            body: Body::Submit(SubmitValue { key: "k".into(), task_id: None }),
            error: None,
        };
        vec![
            nem(1_000_000_000, OpType::Info, "start"),
            sub(1_100_000_000, OpType::Invoke),
            sub(1_600_000_000, OpType::Ok),
            nem(2_000_000_000, OpType::Info, "stop"),
            nem(3_000_000_000, OpType::Info, "start"),
        ]
    }

    fn results(m: &Measurements, checkers: Value) -> Results {
        Results {
            valid: Value::from("unknown"),
            seed: 42,
            nemesis: vec!["kill".into()],
            nodes: 3,
            workers: 2,
            time_limit_s: 60,
            checkers,
            fault_counts: m.fault_counts.clone(),
            failover: m.failover.clone(),
            rates: m.rates.clone(),
            ops: m.ops,
            store: "/tmp/run-42".into(),
            retention: None,
        }
    }

    #[test]
    fn measurements_feed_failover_and_counts() {
        let m = Measurements::of(&sample_history(), &[]);
        assert_eq!(m.windows.len(), 2);
        assert_eq!(m.fault_counts, BTreeMap::from([("kill".to_string(), 2)]));
        assert_eq!((m.failover.leader_kill_ms.count, m.failover.leader_kill_ms.p50), (1, 600.0));
        assert_eq!(m.failover.leader_kill_without_ack, 1);
        assert_eq!(m.ops.submit.ok, 1);
        assert_eq!(m.series.len(), 4);
    }

    #[test]
    fn results_json_has_the_documented_shape() {
        let m = Measurements::of(&sample_history(), &[]);
        let dir = std::env::temp_dir().join(format!("taskraft-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_results(&dir, &results(&m, Value::Array(vec![]))).unwrap();
        let text = std::fs::read_to_string(dir.join(RESULTS_FILE)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["valid"], "unknown");
        assert_eq!(json["seed"], 42);
        assert_eq!(json["fault_counts"]["kill"], 2);
        assert_eq!(json["failover"]["leader_kill_without_ack"], 1);
        assert_eq!(json["failover"]["leader_kill_ms"]["p50"], 600.0);
        assert_eq!(json["ops"]["submit"]["ok"], 1);
        assert_eq!(json["rates"][0]["fault"], "none");
        assert!(json["rates"][0].get("ok").is_some(), "counts are flattened into the row");
    }

    #[test]
    fn summary_names_verdicts_checkers_and_rates() {
        let m = Measurements::of(&sample_history(), &[]);
        let checkers = serde_json::json!([
            {"name": "no-double-run", "valid": true, "summary": "12 tasks, no overlap"},
            {"name": "durability", "valid": false, "summary": "task 3 lost"},
            {"name": "leaders", "valid": "unknown"},
        ]);
        let text = summary_text(&results(&m, checkers));
        assert!(text.starts_with("valid: unknown  (seed 42)"), "{text}");
        assert!(text.contains("ok       no-double-run: 12 tasks, no overlap"), "{text}");
        assert!(text.contains("INVALID  durability: task 3 lost"), "{text}");
        assert!(text.contains("unknown  leaders: "), "{text}");
        assert!(text.contains("leader kill -> first ack  n=1 min 600"), "{text}");
        assert!(text.contains("(1 without an ack)"), "{text}");
        assert!(text.contains("kill           submit"), "{text}");

        let keyed = serde_json::json!({"durability": {"valid": true, "summary": "fine"}});
        assert!(summary_text(&results(&m, keyed)).contains("ok       durability: fine"));
        let opaque = summary_text(&results(&m, Value::Null));
        assert!(!opaque.contains("checkers:"), "{opaque}");
    }
}

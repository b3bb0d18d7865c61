//! Numbers about a run that are not verdicts: when each fault was active, how long the cluster took
//! to recover from it, how error rates moved while it lasted, and throughput/latency over time.
//!
//! Everything here is a pure function of the recorded files (`history.jsonl`, `sink.jsonl`), so a
//! report can be recomputed from a stored run. The path of a run through this module:
//! 1. [`fault_windows`] pairs the nemesis `start`/`stop` operations into [`FaultWindow`]s.
//! 2. [`leader_kill_failover`] and [`worker_recovery`] measure, per window, the time until the
//!    system made progress again (a client ack, a task restarted elsewhere).
//! 3. [`rates_per_fault`] splits client completions by the fault family active when they completed.
//! 4. [`time_series`] buckets submit throughput and latency per second for the plot.
//!
//! What it deliberately does not do: judge correctness (that is `checkers`), or guess which node or
//! worker a fault hit beyond the nemesis's own `detail` text.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use serde::Serialize;

use crate::history::Body;
use crate::history::NemesisValue;
use crate::history::Op;
use crate::history::OpType;
use crate::history::Process;
use crate::history::SinkEvent;
use crate::history::SinkKind;

/// How long after a worker fault a restart elsewhere still counts as recovery from it. Past this,
/// a restart is more likely an unrelated retry than the consequence of the fault.
pub const RECOVERY_HORIZON_NS: u64 = 60 * NS_PER_S;

/// The pseudo fault family of client operations that completed while no fault was active.
pub const NO_FAULT: &str = "none";

/// Nanoseconds per second, for bucketing.
const NS_PER_S: u64 = 1_000_000_000;

/// Nanoseconds per millisecond, for reporting.
const NS_PER_MS: f64 = 1_000_000.0;

/// The operation names a client performs, in report order.
pub const CLIENT_FS: [&str; 3] = ["submit", "read", "cancel"];

/// One interval during which a fault was in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultWindow {
    /// Family (`kill`, `partition`, `worker-kill`, …): the nemesis value's `fault`.
    pub fault: String,
    /// The nemesis's description of the start ("kill leader n2").
    pub detail: String,
    /// When the fault had been applied (the start `info`; its `invoke` if the `info` is missing).
    pub start_ns: u64,
    /// When it had been healed; `None` if it never was, meaning "until the end of the run".
    pub end_ns: Option<u64>,
}

impl FaultWindow {
    /// True if `t_ns` falls inside the window (both ends included; an open window never ends).
    pub fn covers(&self, t_ns: u64) -> bool {
        t_ns >= self.start_ns && self.end_ns.is_none_or(|end| t_ns <= end)
    }

    /// True for a kill aimed at the leader, the only kill that forces an election.
    pub fn is_leader_kill(&self) -> bool {
        self.fault == "kill" && self.detail.contains("leader")
    }

    /// True for the faults that take a worker away from its running tasks.
    pub fn is_worker_loss(&self) -> bool {
        matches!(self.fault.as_str(), "worker-kill" | "worker-pause")
    }
}

/// A window being assembled while scanning the history.
struct OpenWindow {
    window: FaultWindow,
    /// The start `info` has been seen (before that, `start_ns` is the invoke's time).
    start_applied: bool,
    /// A stop `invoke` has been seen; `end_ns` holds its time until the stop `info` arrives.
    stop_invoked: bool,
}

impl OpenWindow {
    fn new(op: &Op, value: &NemesisValue, start_applied: bool) -> Self {
        OpenWindow {
            window: FaultWindow {
                fault: value.fault.clone(),
                detail: value.detail.clone(),
                start_ns: op.time_ns,
                end_ns: None,
            },
            start_applied,
            stop_invoked: false,
        }
    }
}

/// Pairs the nemesis operations of `history` into fault windows, ordered by start.
///
/// Within one family, starts and stops pair first-in first-out, so two overlapping faults of the
/// same family (two nodes killed) give two windows. A stop with nothing open is ignored; a start
/// whose completion is `fail` (definitely not applied) is dropped.
pub fn fault_windows(history: &[Op]) -> Vec<FaultWindow> {
    let mut open: BTreeMap<&str, VecDeque<OpenWindow>> = BTreeMap::new();
    let mut done = Vec::new();
    for op in history {
        let Body::Nemesis(value) = &op.body else { continue };
        if op.process == Process::Nemesis {
            let queue = open.entry(value.fault.as_str()).or_default();
            done.extend(pair_step(queue, op, value));
        }
    }
    // Whatever is still open was never healed, or was healed without a recorded `info`: the stop
    // invoke's time (already in `end_ns`) is then the best end we have.
    done.extend(open.into_values().flatten().map(|o| o.window));
    done.sort_by(|a, b| (a.start_ns, &a.fault).cmp(&(b.start_ns, &b.fault)));
    done
}

/// Applies one nemesis operation to its family's open windows; returns the window it closed.
fn pair_step(queue: &mut VecDeque<OpenWindow>, op: &Op, value: &NemesisValue) -> Option<FaultWindow> {
    match (value.phase.as_str(), op.kind) {
        ("start", OpType::Invoke) => queue.push_back(OpenWindow::new(op, value, false)),
        ("start", OpType::Fail) => {
            let i = queue.iter().position(|o| !o.start_applied)?;
            queue.remove(i);
        }
        ("start", OpType::Info | OpType::Ok) => match queue.iter_mut().find(|o| !o.start_applied) {
            Some(o) => {
                o.window.start_ns = op.time_ns;
                o.start_applied = true;
                if !value.detail.is_empty() {
                    o.window.detail = value.detail.clone();
                }
            }
            // A history that records only completions (no invoke) still opens a window.
            None => queue.push_back(OpenWindow::new(op, value, true)),
        },
        ("stop", OpType::Invoke) => {
            let o = queue.iter_mut().find(|o| !o.stop_invoked)?;
            o.window.end_ns = Some(op.time_ns);
            o.stop_invoked = true;
        }
        ("stop", _) => {
            // The window whose stop was invoked, else (completion-only history) the oldest one.
            let i = queue.iter().position(|o| o.stop_invoked).unwrap_or(0);
            let mut closed = queue.remove(i)?.window;
            closed.end_ns = Some(op.time_ns);
            return Some(closed);
        }
        _ => {}
    }
    None
}

/// Counts fault windows per family.
pub fn fault_counts(windows: &[FaultWindow]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for w in windows {
        *counts.entry(w.fault.clone()).or_insert(0) += 1;
    }
    counts
}

/// For every leader-kill window, in order, the milliseconds from the kill to the first `ok` submit
/// that was *sent after* the kill; `None` when no such submit was acknowledged before the run ended.
///
/// Only submits invoked after the kill count: an answer already on its way when the leader died
/// (committed before the kill) would otherwise read as a zero-time failover.
pub fn leader_kill_failover(history: &[Op], windows: &[FaultWindow]) -> Vec<Option<f64>> {
    let mut invoked: BTreeMap<Process, u64> = BTreeMap::new();
    let mut acks: Vec<(u64, u64)> = Vec::new();
    for op in history.iter().filter(|op| is_client(op) && matches!(op.body, Body::Submit(_))) {
        match op.kind {
            OpType::Invoke => {
                invoked.insert(op.process, op.time_ns);
            }
            OpType::Ok => acks.push((invoked.get(&op.process).copied().unwrap_or(op.time_ns), op.time_ns)),
            _ => {}
        }
    }
    windows
        .iter()
        .filter(|w| w.is_leader_kill())
        .map(|w| {
            acks.iter()
                .filter(|&&(sent, _)| sent >= w.start_ns)
                .map(|&(_, done)| done)
                .min()
                .map(|t| ns_to_ms(t - w.start_ns))
        })
        .collect()
}

/// Milliseconds from each worker loss (`worker-kill`, `worker-pause`) to a task that was running at
/// that moment being started again under a newer fencing token.
///
/// A task counts for a window starting at `t` when its latest attempt before `t` had not reported
/// `done`, and a `start` with a larger token arrives within [`RECOVERY_HORIZON_NS`] after `t`; only
/// that first restart is measured. Tasks on workers the fault did not touch simply never restart,
/// so they add nothing.
pub fn worker_recovery(sink: &[SinkEvent], windows: &[FaultWindow]) -> Vec<f64> {
    let mut by_task: BTreeMap<u64, Vec<&SinkEvent>> = BTreeMap::new();
    for ev in sink {
        by_task.entry(ev.task_id).or_default().push(ev);
    }
    for events in by_task.values_mut() {
        events.sort_by_key(|ev| ev.time_ns);
    }
    let mut out = Vec::new();
    for w in windows.iter().filter(|w| w.is_worker_loss()) {
        let t = w.start_ns;
        for events in by_task.values() {
            if let Some(ms) = restart_after(events, t) {
                out.push(ms);
            }
        }
    }
    out
}

/// The restart delay of one task (events sorted by time) after a worker loss at `t`, if any.
fn restart_after(events: &[&SinkEvent], t: u64) -> Option<f64> {
    let live = events.iter().filter(|ev| ev.time_ns < t).map(|ev| ev.token).max()?;
    let finished =
        events.iter().any(|ev| ev.time_ns < t && ev.token == live && matches!(ev.event, SinkKind::Done { .. }));
    if finished {
        return None;
    }
    events
        .iter()
        .find(|ev| {
            matches!(ev.event, SinkKind::Start { .. })
                && ev.token > live
                && ev.time_ns > t
                && ev.time_ns - t <= RECOVERY_HORIZON_NS
        })
        .map(|ev| ns_to_ms(ev.time_ns - t))
}

/// Completions of one kind of client operation, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Took effect.
    pub ok: u64,
    /// Definitely did not take effect.
    pub fail: u64,
    /// Indeterminate.
    pub info: u64,
}

impl Counts {
    /// All completions.
    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.info
    }

    /// Adds one completion; invokes are not completions and are ignored.
    pub fn record(&mut self, kind: OpType) {
        match kind {
            OpType::Ok => self.ok += 1,
            OpType::Fail => self.fail += 1,
            OpType::Info => self.info += 1,
            OpType::Invoke => {}
        }
    }
}

/// Client completions per operation over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    /// `submit` completions.
    pub submit: Counts,
    /// `read` completions.
    pub read: Counts,
    /// `cancel` completions.
    pub cancel: Counts,
}

impl OpCounts {
    /// Counts every client completion in `history`.
    pub fn of(history: &[Op]) -> Self {
        let mut counts = OpCounts::default();
        for op in history.iter().filter(|op| is_client(op)) {
            match op.body {
                Body::Submit(_) => counts.submit.record(op.kind),
                Body::Read(_) => counts.read.record(op.kind),
                Body::Cancel(_) => counts.cancel.record(op.kind),
                Body::Nemesis(_) => {}
            }
        }
        counts
    }
}

/// Outcomes of one client operation while one fault family was active.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateRow {
    /// Fault family, or [`NO_FAULT`] for completions outside every window.
    pub fault: String,
    /// `submit`, `read` or `cancel`.
    pub f: String,
    /// Completions by outcome.
    #[serde(flatten)]
    pub counts: Counts,
    /// `fail / total` (0 when there were none).
    pub error_rate: f64,
    /// `info / total` (0 when there were none).
    pub indeterminate_rate: f64,
}

/// Splits client completions by the fault family active when they completed: one row per
/// (family, operation), [`NO_FAULT`] first, then families in name order. A completion during two
/// overlapping families counts for both.
pub fn rates_per_fault(history: &[Op], windows: &[FaultWindow]) -> Vec<RateRow> {
    let mut table: BTreeMap<&str, [Counts; 3]> = BTreeMap::new();
    table.insert(NO_FAULT, Default::default());
    for w in windows {
        table.entry(w.fault.as_str()).or_default();
    }
    for op in history.iter().filter(|op| is_client(op) && op.kind != OpType::Invoke) {
        let Some(i) = client_f_index(&op.body) else { continue };
        let mut families: Vec<&str> =
            windows.iter().filter(|w| w.covers(op.time_ns)).map(|w| w.fault.as_str()).collect();
        families.sort_unstable();
        families.dedup();
        if families.is_empty() {
            families.push(NO_FAULT);
        }
        for family in families {
            table.entry(family).or_default()[i].record(op.kind);
        }
    }
    let none = table.remove(NO_FAULT).map(|c| (NO_FAULT, c));
    none.into_iter()
        .chain(table)
        .flat_map(|(fault, counts)| {
            counts.into_iter().zip(CLIENT_FS).map(move |(counts, f)| RateRow {
                fault: fault.to_string(),
                f: f.to_string(),
                counts,
                error_rate: ratio(counts.fail, counts.total()),
                indeterminate_rate: ratio(counts.info, counts.total()),
            })
        })
        .collect()
}

/// Summary statistics of a sample. With no (finite) values, `count` is 0 and every other field 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Distribution {
    /// Number of finite values.
    pub count: usize,
    /// Smallest value.
    pub min: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Distribution {
    /// Summarizes `values`, ignoring NaN and infinities (they would poison every statistic).
    pub fn of(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return Self::default();
        }
        sorted.sort_by(f64::total_cmp);
        Distribution {
            count: sorted.len(),
            min: sorted[0],
            p50: quantile(&sorted, 0.50),
            p90: quantile(&sorted, 0.90),
            p99: quantile(&sorted, 0.99),
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        }
    }
}

/// Nearest-rank quantile of a sorted, non-empty sample: always one of the observed values, which
/// reads better than an interpolated latency nobody experienced.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of an empty sample");
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Submit throughput and latency during one second of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondBucket {
    /// Seconds since the run started (the bucket covers `[second, second + 1)`).
    pub second: u64,
    /// Submits acknowledged (`ok`) in this second.
    pub ok_submits: u64,
    /// Submits completed in this second with any outcome.
    pub submits_completed: u64,
    /// Median invoke→completion latency of those submits, in ms.
    pub submit_p50_ms: Option<f64>,
    /// 99th percentile of the same.
    pub submit_p99_ms: Option<f64>,
}

/// Per-second buckets from 0 to the last recorded second (empty for an empty history).
///
/// Latency covers every submit completion, `fail` and `info` included, bucketed by completion
/// time: a timeout is the latency a client actually waited, and hiding it would flatten exactly
/// the spikes a fault causes.
pub fn time_series(history: &[Op]) -> Vec<SecondBucket> {
    let Some(last) = history.iter().map(|op| op.time_ns).max() else { return Vec::new() };
    let mut buckets: Vec<(u64, u64, Vec<f64>)> = vec![(0, 0, Vec::new()); (last / NS_PER_S) as usize + 1];
    // One operation at a time per client, so the open invoke of a process is the one completing.
    let mut invoked: BTreeMap<Process, u64> = BTreeMap::new();
    for op in history.iter().filter(|op| is_client(op)) {
        if op.kind == OpType::Invoke {
            invoked.insert(op.process, op.time_ns);
            continue;
        }
        let started = invoked.remove(&op.process);
        if !matches!(op.body, Body::Submit(_)) {
            continue;
        }
        let bucket = &mut buckets[(op.time_ns / NS_PER_S) as usize];
        bucket.1 += 1;
        if op.kind == OpType::Ok {
            bucket.0 += 1;
        }
        if let Some(started) = started {
            bucket.2.push(ns_to_ms(op.time_ns.saturating_sub(started)));
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(second, (ok_submits, submits_completed, latencies))| {
            let d = Distribution::of(&latencies);
            let has = d.count > 0;
            SecondBucket {
                second: second as u64,
                ok_submits,
                submits_completed,
                submit_p50_ms: has.then_some(d.p50),
                submit_p99_ms: has.then_some(d.p99),
            }
        })
        .collect()
}

/// Client operations only: the nemesis shares the history but is not load.
fn is_client(op: &Op) -> bool {
    matches!(op.process, Process::Client(_))
}

/// Position of a client operation in [`CLIENT_FS`].
fn client_f_index(body: &Body) -> Option<usize> {
    match body {
        Body::Submit(_) => Some(0),
        Body::Read(_) => Some(1),
        Body::Cancel(_) => Some(2),
        Body::Nemesis(_) => None,
    }
}

fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / NS_PER_MS
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CancelValue;
    use crate::history::ReadValue;
    use crate::history::SubmitValue;

    const S: u64 = NS_PER_S;
    const MS: u64 = 1_000_000;

    fn op(time_ns: u64, process: Process, kind: OpType, body: Body) -> Op {
        Op { index: 0, time_ns, process, node: None, kind, body, error: None }
    }

    fn nemesis(time_ns: u64, kind: OpType, fault: &str, phase: &str, detail: &str) -> Op {
        let value = NemesisValue { fault: fault.into(), phase: phase.into(), detail: detail.into() };
        op(time_ns, Process::Nemesis, kind, Body::Nemesis(value))
    }

    fn submit(time_ns: u64, client: u32, kind: OpType) -> Op {
        op(time_ns, Process::Client(client), kind, Body::Submit(SubmitValue { key: "k".into(), task_id: None }))
    }

    fn read(time_ns: u64, client: u32, kind: OpType) -> Op {
        op(time_ns, Process::Client(client), kind, Body::Read(ReadValue::invoke(1)))
    }

    fn cancel(time_ns: u64, client: u32, kind: OpType) -> Op {
        op(time_ns, Process::Client(client), kind, Body::Cancel(CancelValue { task_id: 1, state: None }))
    }

    fn window(fault: &str, detail: &str, start_ns: u64, end_ns: Option<u64>) -> FaultWindow {
        FaultWindow { fault: fault.into(), detail: detail.into(), start_ns, end_ns }
    }

    fn sink(time_ns: u64, task_id: u64, token: u64, event: SinkKind) -> SinkEvent {
        SinkEvent { time_ns, task_id, attempt: 1, token, event, wf: None }
    }

    #[test]
    fn windows_use_info_times_and_pair_per_family() {
        let history = vec![
            nemesis(10, OpType::Invoke, "kill", "start", "kill leader n2"),
            nemesis(12, OpType::Info, "kill", "start", "kill leader n2"),
            nemesis(15, OpType::Invoke, "partition", "start", "partition {1} | {2,3}"),
            nemesis(16, OpType::Info, "partition", "start", "partition {1} | {2,3}"),
            nemesis(20, OpType::Invoke, "kill", "stop", "restart n2"),
            nemesis(23, OpType::Info, "kill", "stop", "restart n2"),
            // Second kill: the start info is missing, so its invoke is the start.
            nemesis(30, OpType::Invoke, "kill", "start", "kill n3"),
            nemesis(40, OpType::Invoke, "kill", "stop", "restart n3"),
            nemesis(41, OpType::Info, "kill", "stop", "restart n3"),
            // Never healed.
            nemesis(50, OpType::Invoke, "worker-kill", "start", "kill worker w1"),
            nemesis(51, OpType::Info, "worker-kill", "start", "kill worker w1"),
        ];
        let windows = fault_windows(&history);
        assert_eq!(
            windows,
            vec![
                window("kill", "kill leader n2", 12, Some(23)),
                window("partition", "partition {1} | {2,3}", 16, None),
                window("kill", "kill n3", 30, Some(41)),
                window("worker-kill", "kill worker w1", 51, None),
            ]
        );
        assert_eq!(
            fault_counts(&windows),
            BTreeMap::from([("kill".into(), 2), ("partition".into(), 1), ("worker-kill".into(), 1)])
        );
    }

    #[test]
    fn windows_fall_back_to_stop_invoke_and_accept_info_only_histories() {
        let history = vec![
            // Only completions recorded.
            nemesis(5, OpType::Info, "pause", "start", "pause n1"),
            nemesis(9, OpType::Info, "pause", "stop", "resume n1"),
            // Stop info missing: the stop invoke ends the window.
            nemesis(10, OpType::Invoke, "loss", "start", "loss 20%"),
            nemesis(11, OpType::Info, "loss", "start", "loss 20%"),
            nemesis(20, OpType::Invoke, "loss", "stop", "heal"),
            // A stop with nothing open, and a start that definitely failed, leave no window.
            nemesis(25, OpType::Info, "clock", "stop", "reset"),
            nemesis(26, OpType::Invoke, "clock", "start", "skew n1"),
            nemesis(27, OpType::Fail, "clock", "start", "skew n1"),
        ];
        assert_eq!(
            fault_windows(&history),
            vec![window("pause", "pause n1", 5, Some(9)), window("loss", "loss 20%", 11, Some(20))]
        );
    }

    #[test]
    fn overlapping_windows_of_one_family_pair_first_in_first_out() {
        let history = vec![
            nemesis(1, OpType::Info, "kill", "start", "kill n1"),
            nemesis(2, OpType::Info, "kill", "start", "kill n2"),
            nemesis(3, OpType::Info, "kill", "stop", "restart n1"),
            nemesis(4, OpType::Info, "kill", "stop", "restart n2"),
        ];
        assert_eq!(
            fault_windows(&history),
            vec![window("kill", "kill n1", 1, Some(3)), window("kill", "kill n2", 2, Some(4))]
        );
    }

    #[test]
    fn empty_inputs_measure_nothing() {
        assert!(fault_windows(&[]).is_empty());
        assert!(leader_kill_failover(&[], &[]).is_empty());
        assert!(worker_recovery(&[], &[]).is_empty());
        assert!(time_series(&[]).is_empty());
        assert_eq!(OpCounts::of(&[]), OpCounts::default());
        let rates = rates_per_fault(&[], &[]);
        assert_eq!(rates.len(), 3);
        assert!(rates.iter().all(|r| r.fault == NO_FAULT && r.counts.total() == 0 && r.error_rate == 0.0));
        assert_eq!(Distribution::of(&[]), Distribution::default());
    }

    #[test]
    fn failover_is_time_to_first_ok_submit_after_a_leader_kill() {
        let windows = vec![
            window("kill", "kill leader n2", S, Some(3 * S)),
            window("kill", "kill n3", 4 * S, Some(5 * S)), // not the leader: not measured
            window("kill", "kill leader n1", 10 * S, None), // no ack afterwards
        ];
        let history = vec![
            submit(S / 2, 0, OpType::Invoke),
            submit(S + 100 * MS, 0, OpType::Info), // indeterminate: not an ack
            read(S + 200 * MS, 1, OpType::Ok),     // not a submit
            submit(S + 300 * MS, 0, OpType::Invoke),
            submit(S + 1500 * MS, 0, OpType::Ok),
            submit(3 * S, 1, OpType::Ok),
        ];
        assert_eq!(leader_kill_failover(&history, &windows), vec![Some(1500.0), None]);
    }

    #[test]
    fn failover_ignores_acks_of_submits_sent_before_the_kill() {
        let windows = vec![window("kill", "kill leader n2", S, Some(3 * S))];
        let history = vec![
            submit(S - 10 * MS, 0, OpType::Invoke), // sent before the kill
            submit(S + MS, 0, OpType::Ok),          // its answer was already on the way
            submit(S + 100 * MS, 1, OpType::Invoke),
            submit(S + 800 * MS, 1, OpType::Ok),
        ];
        assert_eq!(leader_kill_failover(&history, &windows), vec![Some(800.0)]);
    }

    #[test]
    fn worker_recovery_measures_first_restart_under_a_newer_token() {
        let windows =
            vec![window("worker-kill", "kill worker w1", 10 * S, Some(12 * S)), window("kill", "kill n1", 0, None)];
        let sink = vec![
            // Task 1: running under token 5 at the kill, restarted under 7 two seconds later
            // (and once more later, which is not counted).
            sink(8 * S, 1, 5, SinkKind::Start { from: 0 }),
            sink(9 * S, 1, 5, SinkKind::Checkpoint { n: 3 }),
            sink(12 * S, 1, 7, SinkKind::Start { from: 3 }),
            sink(13 * S, 1, 9, SinkKind::Start { from: 3 }),
            // Task 2: finished before the kill; a later start is not recovery from it.
            sink(5 * S, 2, 4, SinkKind::Start { from: 0 }),
            sink(6 * S, 2, 4, SinkKind::Done { n: 10 }),
            sink(11 * S, 2, 6, SinkKind::Start { from: 10 }),
            // Task 3: on another worker, never restarted.
            sink(9 * S, 3, 6, SinkKind::Start { from: 0 }),
            sink(15 * S, 3, 6, SinkKind::Done { n: 10 }),
            // Task 4: restarted past the horizon.
            sink(9 * S, 4, 3, SinkKind::Start { from: 0 }),
            sink(10 * S + RECOVERY_HORIZON_NS + 1, 4, 8, SinkKind::Start { from: 0 }),
            // Task 5: first seen after the fault.
            sink(11 * S, 5, 10, SinkKind::Start { from: 0 }),
        ];
        assert_eq!(worker_recovery(&sink, &windows), vec![2000.0]);
    }

    #[test]
    fn rates_split_completions_by_active_family() {
        let windows = vec![window("partition", "p", 10 * S, Some(20 * S)), window("kill", "k", 15 * S, None)];
        let history = vec![
            submit(S, 0, OpType::Invoke),
            submit(2 * S, 0, OpType::Ok),
            read(3 * S, 1, OpType::Fail),
            submit(11 * S, 0, OpType::Info),                          // partition only
            submit(16 * S, 0, OpType::Ok),                            // partition and kill
            cancel(30 * S, 1, OpType::Fail),                          // kill only (never healed)
            nemesis(12 * S, OpType::Info, "partition", "start", "p"), // not a client op
        ];
        let rates = rates_per_fault(&history, &windows);
        let row = |fault: &str, f: &str| rates.iter().find(|r| r.fault == fault && r.f == f).unwrap().clone();
        assert_eq!(rates.len(), 9);
        assert_eq!(rates[0].fault, NO_FAULT, "the baseline comes first");
        assert_eq!(row("none", "submit").counts, Counts { ok: 1, fail: 0, info: 0 });
        assert_eq!(row("none", "read").counts, Counts { ok: 0, fail: 1, info: 0 });
        assert_eq!(row("none", "read").error_rate, 1.0);
        assert_eq!(row("partition", "submit").counts, Counts { ok: 1, fail: 0, info: 1 });
        assert_eq!(row("partition", "submit").indeterminate_rate, 0.5);
        assert_eq!(row("kill", "submit").counts, Counts { ok: 1, fail: 0, info: 0 });
        assert_eq!(row("kill", "cancel").counts, Counts { ok: 0, fail: 1, info: 0 });
        assert_eq!(row("kill", "read").counts.total(), 0);

        let ops = OpCounts::of(&history);
        assert_eq!(ops.submit, Counts { ok: 2, fail: 0, info: 1 });
        assert_eq!(ops.read, Counts { ok: 0, fail: 1, info: 0 });
        assert_eq!(ops.cancel, Counts { ok: 0, fail: 1, info: 0 });
    }

    #[test]
    fn distribution_uses_nearest_rank_and_ignores_nan() {
        let values: Vec<f64> = (1..=100).map(f64::from).chain([f64::NAN]).collect();
        let d = Distribution::of(&values);
        assert_eq!((d.count, d.min, d.p50, d.p90, d.p99, d.max, d.mean), (100, 1.0, 50.0, 90.0, 99.0, 100.0, 50.5));
        let one = Distribution::of(&[7.0]);
        assert_eq!((one.count, one.min, one.p50, one.p99, one.max), (1, 7.0, 7.0, 7.0, 7.0));
    }

    #[test]
    fn time_series_buckets_ok_submits_and_latency_by_completion_second() {
        let history = vec![
            submit(100 * MS, 0, OpType::Invoke),
            submit(300 * MS, 0, OpType::Ok), // 200 ms, second 0
            submit(400 * MS, 1, OpType::Invoke),
            read(500 * MS, 2, OpType::Invoke),
            read(600 * MS, 2, OpType::Ok),             // not a submit
            submit(2 * S + 400 * MS, 1, OpType::Info), // 2000 ms timeout, second 2
            nemesis(3 * S + 1, OpType::Info, "kill", "start", "k"),
        ];
        let series = time_series(&history);
        assert_eq!(series.len(), 4, "buckets run to the last recorded second");
        assert_eq!((series[0].ok_submits, series[0].submits_completed, series[0].submit_p50_ms), (1, 1, Some(200.0)));
        assert_eq!((series[1].ok_submits, series[1].submit_p99_ms), (0, None));
        assert_eq!((series[2].ok_submits, series[2].submits_completed, series[2].submit_p99_ms), (0, 1, Some(2000.0)));
        assert_eq!(series[3].submits_completed, 0);
    }
}

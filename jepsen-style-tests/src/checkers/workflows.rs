//! Workflows: edges are obeyed, every shard result is aggregated exactly once, no node's task
//! succeeds twice, nothing acknowledged is lost, and the concurrency limit holds.
//!
//! Inputs: `workflows.json` ([`WorkflowRecord`], written by [`crate::workflows`]: the limit, each
//! workflow's submissions and its view read after the heal, and the final list), the sink (every
//! workflow task reports its start, checkpoints and end with a [`WfTag`]: workflow, node, shard,
//! worker, and on a reduce's start what it found in `$TASKRAFT_INPUTS_DIR`) and the final state
//! (attempts, tokens, outcomes). Sink times are the harness's monotonic clock; a task process
//! waits for the sink's `ok` before going on, so the sink order of two events is their causal
//! order whenever one caused the other. The check:
//!
//! 1. **Submissions** (like `queue`, with the workflow's name as its key): an acknowledged
//!    workflow that the final `GET /v1/workflows/{id}` answers 404 or the final list lacks is
//!    **lost**; two listed workflows with one name, or an acknowledged id that is not the listed
//!    one, is **duplicated**; a listed workflow the harness never asked for is **unexpected**; one
//!    whose every submit definitely failed but that exists is **failed but present**; a view
//!    whose name, key or node ids differ from the request is a **view mismatch**.
//! 2. **Tasks against the views**: every task a view lists is in the final state with origin
//!    (that workflow, that node) and that shard index, in the same state once terminal, and every
//!    final task with a workflow origin is listed by its workflow's view (**index mismatch**); a
//!    node lists one task per shard index and no more than its shard count, and no two final
//!    tasks share (workflow, node, shard) (**node task twice**); no task has two `succeeded`
//!    attempts (**succeeded twice**).
//! 3. **Rules**, from the parents' final node states and the edge table of
//!    `src/scheduler/workflow/mod.rs` (`success`: succeeded; `failure`: failed or cancelled;
//!    `always`: any end, skipped included; `not_failed`: succeeded or skipped): a node that ran
//!    (has tasks or is running/succeeded/failed) must have its rule met (**ran without rule**);
//!    a skipped node must have a rule that can no longer be met (**skipped wrongly**), no task and
//!    no sink line at all (**skipped but ran**); a waiting node must have an undecided rule, a
//!    node's state must agree with its tasks (plain: the task's end; sharded: `succeeded` needs
//!    the `success` count of succeeded shards, `failed` a shard that ended otherwise, and a node
//!    whose every shard ended is decided), and the workflow's state must be the one its nodes
//!    give (`succeeded` unless a failed or cancelled node has no `failure`/`always` child)
//!    (**node / workflow state mismatch**).
//! 4. **Edges in time** (**started before parent**): every physical start (any attempt, zombies
//!    included: each was assigned after its node started) of a node's task must come after the
//!    end of the parent attempts that decided each parent the node waited for. A parent's
//!    decision is bounded below by the last sink line of the attempts that decided it: the
//!    succeeded attempts of its `success`-count shards (plain: its one task) when it succeeded,
//!    the earliest of the final attempts of its shards that did not succeed when it failed
//!    (an attempt ended by its own report ended after its last line, and the node was decided
//!    in the apply of that end, before any child task existed; an attempt apply ended itself,
//!    `lost` or `timed_out`, may have run on, so it bounds nothing). Under `all` every parent that ran bounds the child;
//!    under `any` at least one satisfying parent must. A skipped parent never ran and bounds
//!    nothing (only its rule is checked); a bound needing an attempt without sink lines is not
//!    used (counted as untimed).
//! 5. **Results**: a workflow task that succeeded has a committed result (**result missing**)
//!    equal to the one its succeeded token reported writing in its `done` line (**result not
//!    from the committed attempt**: never a zombie's); a shard's result names its own shard
//!    index, task and succeeded token, a plain node's its node, task and token (**shard result
//!    wrong**).
//! 6. **Aggregation**, for every node with a sharded parent (the reduce), at every physical
//!    start of any of its attempts (all read the same committed inputs): `$TASKRAFT_INPUTS_DIR`
//!    was set (**inputs missing**); under `<parent>/` there is exactly one file per shard index
//!    whose task succeeded (**shard missing**), none twice (`3` and `03` are the same index:
//!    **shard twice**), none for an index out of range, another name or a shard that did not
//!    succeed (**shard unexpected**), and each file equals that shard task's committed result
//!    (**shard input mismatch**).
//! 7. **Identity**: a sink line's workflow, node and shard are where the views put its task, and
//!    its worker is the worker of that token's attempt in the final state
//!    (**sink identity mismatch**).
//! 8. **Concurrency limit** (only when `PUT /v1/limits/{key}` was acknowledged; a build without
//!    the route is reported as not exercised). The guarantee is the apply rule: a permit is
//!    taken by the `Assign` that creates an attempt (its fencing token is that entry's log
//!    index) and released when apply ends the attempt (its completion, `WorkerLost`, a cancel
//!    or a timeout). So at the index of every keyed assignment, the attempts holding a permit
//!    (that one, and every earlier-assigned keyed attempt not yet ended in apply) are at most
//!    `max_running`. The physical processes do not obey that bound: a worker that is paused or
//!    cut off keeps its process running after apply ended its attempt as `lost` and released
//!    the permit, and that zombie overlaps the replacement until it learns it is fenced. The
//!    check therefore witnesses only what the sink proves: for a keyed attempt `Y` (listed in
//!    the final state, with a sink start at time `s`), every keyed attempt `X` with a smaller
//!    token whose own report ended it (`succeeded` or `failed`; or still live) and that wrote a
//!    sink line after `s` was still holding its permit when `Y` was assigned (its end was
//!    committed after its process exited, after that line; `Y` was assigned before `s`). `1 +`
//!    their number above the limit is **limit exceeded**. Attempts ended by apply while their
//!    process ran on (`lost`, `cancelled`, `timed_out`) are never counted as holders after the
//!    assignment, only measured: the physical concurrency of every keyed process, zombies
//!    included, is reported as `max_physical` next to the limit. The limit's own linearizable
//!    reads (`GET /v1/limits/{key}` every 0.5 s during the load, and once after the final
//!    reads) must show it set to its value (**limit read wrong**), at most that many holders
//!    (**limit read exceeded**), only keyed workflow tasks as holders (**limit read wrong**),
//!    and in the final read no holder that the final state shows terminal (**permit leaked**).
//! 9. **Liveness** (reported, not judged here; the `liveness` checker judges it): acknowledged
//!    workflows not terminal in the final read are listed as not finished.
//!
//! `unknown` when there is no `workflows.json` (a run recorded before the workload), the limit
//! could not be set, the final state or a final read is incomplete, or the reduce's inputs were
//! truncated; proven violations still make it `false`.
//!
//! Retention (on in the suite) forgets a settled workflow as one unit with every task of its
//! nodes; its final read then answers 404 `forgotten` (`final_forgotten`), recorded apart from
//! `not_found`. Accounted for explicitly:
//! - an acknowledged workflow answering `forgotten` is not **lost** (one answering `not_found`,
//!   or missing from the list without `forgotten`, still is); one whose every submit failed but
//!   that answers `forgotten` existed, so it is **failed but present**; it counts as settled;
//! - its view is gone, so steps 2 to 6 have nothing to judge it by: its nodes are counted as
//!   not judged (`forgotten`), never as passing. Its sink lines still must name a workflow the
//!   harness submitted (step 7); the workers of their attempts are gone with the tasks;
//! - the main final state is read before the workflows: a task of a workflow whose own read
//!   then answered `forgotten` is not an **index mismatch** (the workflow went as a unit after
//!   the main read), but two such tasks in one (workflow, node, shard) are still a **node task
//!   twice**;
//! - step 8 sees the keyed attempts of the workflows it has views of; the holders-outside-keyed
//!   rule of the limit reads needs every view and is skipped when a workflow was forgotten
//!   (reported as `limit_reads_unjudged_forgotten`). The limit's other rules do not need them.
//!
//! Workflow submissions are retried only within the run's key retry window (a third of the
//! retention horizon, see [`crate::run::retry_window`]), so a second workflow under one name is
//! still **duplicated**.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::Value;
use serde_json::json;

use super::CheckResult;
use super::Examples;
use super::Inputs;
use super::Validity;
use crate::history::FinalTask;
use crate::history::LimitStatus;
use crate::history::SinkEvent;
use crate::history::SinkKind;
use crate::history::WfNodeSeen;
use crate::history::WfSeen;
use crate::history::WorkflowLog;
use crate::history::WorkflowRecord;
use crate::history::WorkflowRef;
use crate::history::is_terminal_state;

/// This checker's name in `results.json`.
pub const NAME: &str = "workflows";

const SUCCEEDED: &str = "succeeded";

/// Violations by kind.
#[derive(Debug, Default)]
struct Findings {
    lost: Examples,
    duplicated: Examples,
    unexpected: Examples,
    failed_but_present: Examples,
    view_mismatch: Examples,
    index_mismatch: Examples,
    node_task_twice: Examples,
    succeeded_twice: Examples,
    ran_without_rule: Examples,
    skipped_wrongly: Examples,
    skipped_but_ran: Examples,
    node_state_mismatch: Examples,
    workflow_state_mismatch: Examples,
    started_before_parent: Examples,
    result_missing: Examples,
    result_not_from_committed_attempt: Examples,
    shard_result_wrong: Examples,
    inputs_missing: Examples,
    shard_missing: Examples,
    shard_twice: Examples,
    shard_unexpected: Examples,
    shard_input_mismatch: Examples,
    sink_identity_mismatch: Examples,
    limit_exceeded: Examples,
    limit_read_exceeded: Examples,
    limit_read_wrong: Examples,
    permit_leaked: Examples,
    m: Measured,
}

impl Findings {
    fn kinds(&self) -> [(&'static str, &Examples); 27] {
        [
            ("lost", &self.lost),
            ("duplicated", &self.duplicated),
            ("unexpected", &self.unexpected),
            ("failed_but_present", &self.failed_but_present),
            ("view_mismatch", &self.view_mismatch),
            ("index_mismatch", &self.index_mismatch),
            ("node_task_twice", &self.node_task_twice),
            ("succeeded_twice", &self.succeeded_twice),
            ("ran_without_rule", &self.ran_without_rule),
            ("skipped_wrongly", &self.skipped_wrongly),
            ("skipped_but_ran", &self.skipped_but_ran),
            ("node_state_mismatch", &self.node_state_mismatch),
            ("workflow_state_mismatch", &self.workflow_state_mismatch),
            ("started_before_parent", &self.started_before_parent),
            ("result_missing", &self.result_missing),
            ("result_not_from_committed_attempt", &self.result_not_from_committed_attempt),
            ("shard_result_wrong", &self.shard_result_wrong),
            ("inputs_missing", &self.inputs_missing),
            ("shard_missing", &self.shard_missing),
            ("shard_twice", &self.shard_twice),
            ("shard_unexpected", &self.shard_unexpected),
            ("shard_input_mismatch", &self.shard_input_mismatch),
            ("sink_identity_mismatch", &self.sink_identity_mismatch),
            ("limit_exceeded", &self.limit_exceeded),
            ("limit_read_exceeded", &self.limit_read_exceeded),
            ("limit_read_wrong", &self.limit_read_wrong),
            ("permit_leaked", &self.permit_leaked),
        ]
    }

    fn violations(&self) -> usize {
        self.kinds().iter().map(|(_, e)| e.count()).sum()
    }
}

/// What is measured, not judged.
#[derive(Debug, Default)]
struct Measured {
    acked: usize,
    terminal: usize,
    /// Workflows whose final read answered `forgotten`.
    forgotten: usize,
    /// Final tasks of those (the main read came before they went).
    tasks_of_forgotten: usize,
    /// Limit reads whose holders were not matched against the keyed tasks (a view was forgotten).
    limit_reads_unjudged_forgotten: usize,
    by_state: BTreeMap<String, usize>,
    not_finished: Examples,
    nodes_ran: usize,
    nodes_skipped: usize,
    edges_timed: usize,
    edges_untimed: usize,
    reduce_starts: usize,
    shard_inputs_checked: usize,
    results_checked: usize,
    keyed_attempts: usize,
    limit_assignments_judged: usize,
    max_witnessed_holders: usize,
    max_physical: usize,
    limit_reads: usize,
    max_read_holders: usize,
}

/// The sink and the final state, indexed.
struct Ctx<'a> {
    finals: BTreeMap<u64, &'a FinalTask>,
    final_complete: bool,
    /// Every sink line by task id, in time order.
    sink: BTreeMap<u64, Vec<&'a SinkEvent>>,
}

impl<'a> Ctx<'a> {
    fn events(&self, task_id: u64) -> &[&'a SinkEvent] {
        self.sink.get(&task_id).map_or(&[], Vec::as_slice)
    }

    /// The last sink line of `(task, token)`: a lower bound of that attempt's end.
    fn last_line(&self, task_id: u64, token: u64) -> Option<u64> {
        self.events(task_id).iter().filter(|e| e.token == token).map(|e| e.time_ns).max()
    }

    /// The attempt that ended a terminal task (its last one), if its own report ended it
    /// (`succeeded` or `failed`): only then was its process done before the end was applied. An
    /// attempt apply ended on its own (`lost`, `timed_out`, `cancelled`) may have run on.
    fn deciding_token(&self, task_id: u64) -> Option<u64> {
        let t = self.finals.get(&task_id)?;
        if !is_terminal_state(&t.state) {
            return None;
        }
        let last = t.attempts.iter().max_by_key(|a| a.number)?;
        matches!(last.outcome.as_deref(), Some("succeeded" | "failed")).then_some(last.token)
    }

    fn succeeded_token(&self, task_id: u64) -> Option<u64> {
        let t = self.finals.get(&task_id)?;
        t.attempts.iter().find(|a| a.outcome.as_deref() == Some(SUCCEEDED)).map(|a| a.token)
    }
}

/// Judges the workflows (see the module docs).
pub fn check(inputs: &Inputs) -> CheckResult {
    let Some(record) = inputs.workflows else {
        let summary = "no workflows.json (a run recorded before the workflow workload)".to_string();
        return CheckResult { name: NAME, valid: Validity::Unknown, summary, details: json!({ "recorded": false }) };
    };
    let mut sink: BTreeMap<u64, Vec<&SinkEvent>> = BTreeMap::new();
    for ev in inputs.sink {
        sink.entry(ev.task_id).or_default().push(ev);
    }
    for events in sink.values_mut() {
        events.sort_by_key(|e| e.time_ns);
    }
    let ctx = Ctx {
        finals: inputs.final_state.tasks.iter().map(|t| (t.task_id, t)).collect(),
        final_complete: inputs.final_state.complete,
        sink,
    };
    let mut f = Findings::default();
    let mut incomplete: Vec<String> = Vec::new();
    if !ctx.final_complete {
        incomplete.push("final state incomplete".into());
    }
    match record.limit.status {
        LimitStatus::Failed | LimitStatus::NotTried => {
            incomplete.push(format!("the limit was not set ({:?})", record.limit.last_error));
        }
        LimitStatus::Set | LimitStatus::RouteMissing => {}
    }
    check_submissions(record, &mut f, &mut incomplete);
    for log in &record.workflows {
        let Some(view) = &log.final_view else { continue };
        check_workflow(log, view, &ctx, &mut f, &mut incomplete);
    }
    check_sink_identity(record, inputs.sink, &ctx, &mut f);
    if ctx.final_complete {
        check_final_tasks(record, &ctx, &mut f);
    }
    let limit = check_limit(record, &ctx, &mut f, &mut incomplete);

    let valid = Validity::from_findings(f.violations(), incomplete.is_empty());
    let m = &f.m;
    let summary = format!(
        "{} workflows ({} acked, {} terminal: {}; {} forgotten, not judged beyond submission), {} nodes ran, {} skipped; {} violations ({} started before a parent, {} shard inputs wrong/missing/twice, {} limit exceeded); {} reduce starts with {} shard inputs checked, {} edges timed; limit {}{}",
        record.workflows.len(),
        m.acked,
        m.terminal,
        m.by_state.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", "),
        m.forgotten,
        m.nodes_ran,
        m.nodes_skipped,
        f.violations(),
        f.started_before_parent.count(),
        f.shard_input_mismatch.count()
            + f.shard_missing.count()
            + f.shard_twice.count()
            + f.shard_unexpected.count()
            + f.inputs_missing.count(),
        f.limit_exceeded.count(),
        m.reduce_starts,
        m.shard_inputs_checked,
        m.edges_timed,
        limit_text(record, m),
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
        "incomplete": incomplete,
        "workflows": record.workflows.len(),
        "acked": m.acked,
        "terminal": m.terminal,
        "states": m.by_state,
        "forgotten": m.forgotten,
        "tasks_of_forgotten": m.tasks_of_forgotten,
        "limit_reads_unjudged_forgotten": m.limit_reads_unjudged_forgotten,
        "not_finished": m.not_finished.count(),
        "not_finished_examples": m.not_finished.to_json(),
        "nodes_ran": m.nodes_ran,
        "nodes_skipped": m.nodes_skipped,
        "edges_timed": m.edges_timed,
        "edges_untimed": m.edges_untimed,
        "reduce_starts": m.reduce_starts,
        "shard_inputs_checked": m.shard_inputs_checked,
        "results_checked": m.results_checked,
        "limit": limit,
        "violations": counts,
        "examples": examples,
    });
    CheckResult { name: NAME, valid, summary, details }
}

fn limit_text(record: &WorkflowRecord, m: &Measured) -> String {
    match record.limit.status {
        LimitStatus::Set => format!(
            "{} = {}: {} keyed attempts, {} assignments judged, at most {} holders witnessed, {} keyed processes at once (zombies included)",
            record.limit.key,
            record.limit.max_running,
            m.keyed_attempts,
            m.limit_assignments_judged,
            m.max_witnessed_holders,
            m.max_physical
        ),
        LimitStatus::RouteMissing => {
            "not exercised (PUT /v1/limits answered 404: no limits route in this build)".into()
        }
        LimitStatus::Failed | LimitStatus::NotTried => "not set".into(),
    }
}

/// Step 1.
fn check_submissions(record: &WorkflowRecord, f: &mut Findings, incomplete: &mut Vec<String>) {
    let names: BTreeSet<&str> = record.workflows.iter().map(|l| l.name.as_str()).collect();
    let mut listed_by_name: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    match &record.listed {
        Some(listed) => {
            for w in listed {
                listed_by_name.entry(w.name.as_str()).or_default().push(w.id);
                if !names.contains(w.name.as_str()) {
                    f.unexpected.push(|| json!({ "id": w.id, "name": w.name }));
                }
            }
            for (name, ids) in listed_by_name.iter().filter(|(_, ids)| ids.len() > 1) {
                f.duplicated.push(|| json!({ "name": name, "listed_ids": ids }));
            }
        }
        None => incomplete.push("the final list of workflows failed".into()),
    }
    for log in &record.workflows {
        let acked = log.acked_ns.is_some();
        f.m.acked += usize::from(acked);
        let listed = listed_by_name.get(log.name.as_str());
        let example = || json!({ "name": log.name, "id": log.id, "listed_ids": listed, "acked": acked });
        let forgotten = log.final_forgotten;
        f.m.forgotten += usize::from(forgotten);
        if acked && (log.final_not_found || record.listed.is_some() && listed.is_none() && !forgotten) {
            f.lost.push(example);
        }
        if acked
            && let (Some(id), Some(ids)) = (log.id, listed)
            && !ids.contains(&id)
        {
            f.duplicated.push(example);
        }
        let present = log.final_view.is_some() || listed.is_some() || log.final_forgotten;
        if log.all_failed && present {
            f.failed_but_present.push(example);
        }
        if log.id.is_some() && log.final_view.is_none() && !log.final_not_found && !log.final_forgotten {
            incomplete.push(format!("{}: final read failed ({:?})", log.name, log.final_error));
        }
        if let Some(view) = &log.final_view {
            let asked: Vec<&str> =
                log.request["nodes"].as_array().into_iter().flatten().filter_map(|n| n["id"].as_str()).collect();
            let got: Vec<&str> = view.nodes.iter().map(|n| n.id.as_str()).collect();
            if view.name != log.name || view.idempotency_key.as_deref() != Some(log.name.as_str()) || asked != got {
                f.view_mismatch.push(|| {
                    json!({ "name": log.name, "view_name": view.name, "view_key": view.idempotency_key, "asked_nodes": asked, "view_nodes": got })
                });
            }
            *f.m.by_state.entry(view.state.clone()).or_default() += 1;
            if view.state != "running" {
                f.m.terminal += 1;
            } else if acked {
                f.m.not_finished.push(|| json!({ "name": log.name, "id": view.id, "nodes": node_states(view) }));
            }
        }
    }
}

fn node_states(view: &WfSeen) -> Value {
    view.nodes.iter().map(|n| (n.id.clone(), json!(n.state))).collect::<serde_json::Map<_, _>>().into()
}

fn node_done(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "skipped" | "cancelled")
}

/// The edge table of `src/scheduler/workflow/mod.rs`.
fn satisfies(on: &str, parent: &str) -> bool {
    match on {
        "success" => parent == "succeeded",
        "failure" => matches!(parent, "failed" | "cancelled"),
        "always" => node_done(parent),
        "not_failed" => matches!(parent, "succeeded" | "skipped"),
        _ => false,
    }
}

/// `(met, impossible)` of a node's rule over its parents' final states.
fn rule(view: &WfSeen, node: &WfNodeSeen) -> (bool, bool) {
    let parent = |id: &str| view.nodes.iter().find(|n| n.id == id).map_or("", |n| n.state.as_str());
    let edges: Vec<(bool, bool)> = node
        .depends
        .iter()
        .map(|(p, on)| {
            let s = parent(p);
            (node_done(s), satisfies(on, s))
        })
        .collect();
    if node.trigger == "any" {
        if edges.is_empty() {
            return (true, false);
        }
        let met = edges.iter().any(|&(done, sat)| done && sat);
        let impossible = edges.iter().all(|&(done, sat)| done && !sat);
        (met, impossible)
    } else {
        let met = edges.iter().all(|&(done, sat)| done && sat);
        let impossible = edges.iter().any(|&(done, sat)| done && !sat);
        (met, impossible)
    }
}

/// Steps 2 to 6 for one workflow.
fn check_workflow(log: &WorkflowLog, view: &WfSeen, ctx: &Ctx, f: &mut Findings, incomplete: &mut Vec<String>) {
    let wf = log.name.as_str();
    let cancelled = view.state == "cancelled";
    for (idx, node) in view.nodes.iter().enumerate() {
        check_node_tasks(view, idx, node, ctx, f);
        let (met, impossible) = rule(view, node);
        let ran = !node.tasks.is_empty() || matches!(node.state.as_str(), "running" | "succeeded" | "failed");
        let ex = || json!({ "workflow": wf, "id": view.id, "node": node.id, "state": node.state, "parents": parents_json(view, node), "trigger": node.trigger });
        if node.state == "skipped" {
            f.m.nodes_skipped += 1;
            if !impossible {
                f.skipped_wrongly.push(ex);
            }
            let lines = ctx
                .sink
                .values()
                .flatten()
                .filter(|e| e.wf.as_ref().is_some_and(|t| t.workflow == wf && t.node == node.id))
                .count();
            if !node.tasks.is_empty() || lines > 0 {
                let tasks: Vec<u64> = node.tasks.iter().map(|t| t.task_id).collect();
                f.skipped_but_ran
                    .push(|| json!({ "workflow": wf, "node": node.id, "tasks": tasks, "sink_lines": lines }));
            }
        } else if ran {
            f.m.nodes_ran += 1;
            if !met {
                f.ran_without_rule.push(ex);
            }
        } else if node.state == "waiting" && (met || impossible) && !cancelled {
            f.node_state_mismatch.push(|| json!({ "workflow": wf, "node": node.id, "state": "waiting", "rule_met": met, "rule_impossible": impossible }));
        }
        check_node_state(wf, node, f);
        if ran {
            check_edge_times(wf, view, node, ctx, f);
        }
        check_results(wf, node, ctx, f);
        check_aggregation(wf, view, node, ctx, f, incomplete);
    }
    check_workflow_state(wf, view, f);
}

fn parents_json(view: &WfSeen, node: &WfNodeSeen) -> Value {
    node.depends
        .iter()
        .map(|(p, on)| {
            let s = view.nodes.iter().find(|n| &n.id == p).map(|n| n.state.clone());
            json!({ "node": p, "on": on, "state": s })
        })
        .collect()
}

/// Step 2 for one node.
fn check_node_tasks(view: &WfSeen, idx: usize, node: &WfNodeSeen, ctx: &Ctx, f: &mut Findings) {
    let count = node.shards.map_or(1, |s| s.count) as usize;
    let mut shards = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let twice = node.tasks.iter().any(|t| !shards.insert(t.shard) || !ids.insert(t.task_id));
    let shard_ok = node.tasks.iter().all(|t| match (node.shards, t.shard) {
        (Some(s), Some(i)) => i < s.count,
        (None, None) => true,
        _ => false,
    });
    if twice || node.tasks.len() > count || !shard_ok {
        let tasks: Vec<_> = node.tasks.iter().map(|t| (t.shard, t.task_id)).collect();
        f.node_task_twice
            .push(|| json!({ "workflow": view.name, "node": node.id, "shard_count": count, "tasks": tasks }));
    }
    if !ctx.final_complete {
        return;
    }
    for t in &node.tasks {
        let expected = WorkflowRef { workflow: view.id, node: idx as u32, shard: t.shard };
        let ft = ctx.finals.get(&t.task_id);
        let bad = match ft {
            None => true,
            Some(ft) => ft.workflow != Some(expected) || is_terminal_state(&ft.state) && ft.state != t.state,
        };
        if bad {
            f.index_mismatch.push(|| {
                json!({ "workflow": view.name, "node": node.id, "shard": t.shard, "task_id": t.task_id, "view_state": t.state,
                        "final": ft.map(|ft| json!({ "state": ft.state, "workflow": ft.workflow })) })
            });
        }
        if let Some(ft) = ft {
            let successes = ft.attempts.iter().filter(|a| a.outcome.as_deref() == Some(SUCCEEDED)).count();
            if successes > 1 {
                f.succeeded_twice.push(
                    || json!({ "workflow": view.name, "node": node.id, "task_id": t.task_id, "attempts": ft.attempts }),
                );
            }
        }
    }
}

/// Step 3: a node's state against its tasks.
fn check_node_state(wf: &str, node: &WfNodeSeen, f: &mut Findings) {
    let succeeded = node.tasks.iter().filter(|t| t.state == SUCCEEDED).count() as u32;
    let ended_otherwise = node.tasks.iter().filter(|t| is_terminal_state(&t.state) && t.state != SUCCEEDED).count();
    let all_ended = node.tasks.iter().all(|t| is_terminal_state(&t.state));
    let ok = match (node.shards, node.state.as_str()) {
        (_, "waiting" | "skipped") => node.tasks.is_empty(),
        (Some(s), "succeeded") => succeeded >= s.needed(),
        (Some(_), "failed") => ended_otherwise > 0,
        (Some(s), "running") => !(node.tasks.len() as u32 == s.count && all_ended),
        (Some(_), "cancelled") => true,
        (None, state) => match node.tasks.first().map(|t| t.state.as_str()) {
            None => state == "cancelled",
            Some(task) => match state {
                "running" => !is_terminal_state(task),
                "succeeded" => task == SUCCEEDED,
                "failed" => task == "failed",
                "cancelled" => true,
                _ => false,
            },
        },
        _ => false,
    };
    if !ok {
        let tasks: Vec<_> =
            node.tasks.iter().map(|t| json!({ "shard": t.shard, "task_id": t.task_id, "state": t.state })).collect();
        f.node_state_mismatch.push(
            || json!({ "workflow": wf, "node": node.id, "state": node.state, "shards": node.shards, "tasks": tasks }),
        );
    }
}

/// Step 3: the workflow's state against its nodes.
fn check_workflow_state(wf: &str, view: &WfSeen, f: &mut Findings) {
    let all_done = view.nodes.iter().all(|n| node_done(&n.state));
    let expected = if view.state == "cancelled" {
        "cancelled"
    } else if !all_done {
        "running"
    } else {
        let unhandled = view.nodes.iter().any(|n| {
            matches!(n.state.as_str(), "failed" | "cancelled")
                && !view
                    .nodes
                    .iter()
                    .any(|c| c.depends.iter().any(|(p, on)| p == &n.id && matches!(on.as_str(), "failure" | "always")))
        });
        if unhandled { "failed" } else { "succeeded" }
    };
    if view.state != expected {
        f.workflow_state_mismatch.push(|| json!({ "workflow": wf, "id": view.id, "state": view.state, "expected": expected, "nodes": node_states(view) }));
    }
}

/// Step 4: a lower bound of the time the parent `p` was decided, from its deciding attempts'
/// last sink lines; `None` when it did not run or a needed attempt left no line.
fn decision_bound(p: &WfNodeSeen, ctx: &Ctx) -> Option<u64> {
    let end = |task_id: u64| ctx.deciding_token(task_id).and_then(|tok| ctx.last_line(task_id, tok));
    match p.state.as_str() {
        "succeeded" => {
            let needed = p.shards.map_or(1, |s| s.needed()) as usize;
            let ends: Option<Vec<u64>> =
                p.tasks.iter().filter(|t| t.state == SUCCEEDED).map(|t| end(t.task_id)).collect();
            let mut ends = ends?;
            ends.sort_unstable();
            // The node succeeded when its needed-th success ended; every success is known, so the
            // needed-th smallest end is a lower bound of that moment.
            ends.get(needed.checked_sub(1)?).copied()
        }
        "failed" | "cancelled" => {
            let ends: Option<Vec<u64>> = p
                .tasks
                .iter()
                .filter(|t| is_terminal_state(&t.state) && t.state != SUCCEEDED)
                .map(|t| end(t.task_id))
                .collect();
            ends?.into_iter().min()
        }
        _ => None,
    }
}

/// Step 4 for the tasks of `node`.
fn check_edge_times(wf: &str, view: &WfSeen, node: &WfNodeSeen, ctx: &Ctx, f: &mut Findings) {
    let starts: Vec<&SinkEvent> = node
        .tasks
        .iter()
        .flat_map(|t| ctx.events(t.task_id).iter().copied())
        .filter(|e| matches!(e.event, SinkKind::Start { .. }))
        .collect();
    if node.depends.is_empty() || starts.is_empty() {
        return;
    }
    // (parent, on, satisfied, bound)
    let edges: Vec<(&str, &str, bool, Option<u64>)> = node
        .depends
        .iter()
        .map(|(p, on)| {
            let parent = view.nodes.iter().find(|n| &n.id == p);
            let state = parent.map_or("", |n| n.state.as_str());
            (p.as_str(), on.as_str(), satisfies(on, state), parent.and_then(|n| decision_bound(n, ctx)))
        })
        .collect();
    for e in &edges {
        if e.3.is_some() {
            f.m.edges_timed += 1;
        } else {
            f.m.edges_untimed += 1;
        }
    }
    let early = |s: &SinkEvent| -> bool {
        if node.trigger == "any" {
            let sat: Vec<_> = edges.iter().filter(|e| e.2).collect();
            // A satisfying parent without a bound (skipped, or no sink line) explains the start.
            !sat.is_empty() && sat.iter().all(|e| e.3.is_some_and(|b| s.time_ns < b))
        } else {
            edges.iter().any(|e| e.3.is_some_and(|b| s.time_ns < b))
        }
    };
    for s in starts.iter().filter(|s| early(s)) {
        let bounds: Vec<_> = edges
            .iter()
            .map(|e| json!({ "parent": e.0, "on": e.1, "satisfied": e.2, "decided_after_ns": e.3 }))
            .collect();
        f.started_before_parent.push(|| {
            json!({ "workflow": wf, "node": node.id, "trigger": node.trigger, "task_id": s.task_id, "token": s.token, "start_ns": s.time_ns, "parents": bounds })
        });
    }
}

/// The `done` line of `(task, token)` and the result it carries.
fn done_result<'a>(ctx: &'a Ctx, task_id: u64, token: u64) -> Option<Option<&'a str>> {
    ctx.events(task_id)
        .iter()
        .find(|e| e.token == token && matches!(e.event, SinkKind::Done { .. }))
        .map(|e| e.wf.as_ref().and_then(|w| w.result.as_deref()))
}

/// Step 5 for the tasks of `node`.
fn check_results(wf: &str, node: &WfNodeSeen, ctx: &Ctx, f: &mut Findings) {
    for t in node.tasks.iter().filter(|t| t.state == SUCCEEDED) {
        // Only tasks the workload's program ran report to the sink; a task without a line is
        // judged by `fencing` (a success without `done`).
        if ctx.events(t.task_id).is_empty() {
            continue;
        }
        f.m.results_checked += 1;
        let Some(result) = &t.result else {
            f.result_missing
                .push(|| json!({ "workflow": wf, "node": node.id, "shard": t.shard, "task_id": t.task_id }));
            continue;
        };
        let token = ctx.succeeded_token(t.task_id);
        let reported = token.and_then(|tok| done_result(ctx, t.task_id, tok));
        if reported != Some(Some(result.as_str())) {
            let dones: Vec<_> = ctx
                .events(t.task_id)
                .iter()
                .filter(|e| matches!(e.event, SinkKind::Done { .. }))
                .map(|e| json!({ "token": e.token, "result": e.wf.as_ref().and_then(|w| w.result.clone()) }))
                .collect();
            f.result_not_from_committed_attempt.push(|| {
                json!({ "workflow": wf, "node": node.id, "shard": t.shard, "task_id": t.task_id, "committed": result, "succeeded_token": token, "done_lines": dones })
            });
        }
        let reduce = result.starts_with("inputs=");
        let names = match (t.shard, token) {
            _ if reduce => true,
            (Some(i), Some(tok)) => *result == format!("shard={i} task={} token={tok}", t.task_id),
            (None, Some(tok)) => *result == format!("node={} task={} token={tok}", node.id, t.task_id),
            (_, None) => false,
        };
        if !names {
            f.shard_result_wrong.push(|| json!({ "workflow": wf, "node": node.id, "shard": t.shard, "task_id": t.task_id, "committed": result, "succeeded_token": token }));
        }
    }
}

/// Step 6 for `node`, if one of its parents is sharded.
fn check_aggregation(
    wf: &str,
    view: &WfSeen,
    node: &WfNodeSeen,
    ctx: &Ctx,
    f: &mut Findings,
    incomplete: &mut Vec<String>,
) {
    let parents: Vec<&WfNodeSeen> =
        node.depends.iter().filter_map(|(p, _)| view.nodes.iter().find(|n| &n.id == p)).collect();
    if !parents.iter().any(|p| p.shards.is_some()) {
        return;
    }
    for t in &node.tasks {
        for start in ctx.events(t.task_id).iter().filter(|e| matches!(e.event, SinkKind::Start { .. })) {
            f.m.reduce_starts += 1;
            let at = || json!({ "workflow": wf, "node": node.id, "task_id": t.task_id, "token": start.token, "start_ns": start.time_ns });
            let Some(inputs) = start.wf.as_ref().and_then(|w| w.inputs.as_ref()).filter(|i| i.dir) else {
                f.inputs_missing.push(at);
                continue;
            };
            if inputs.truncated {
                incomplete.push(format!("{wf}/{}: the reduce's inputs were truncated", node.id));
            }
            for p in parents.iter().filter(|p| p.shards.is_some()) {
                let prefix = format!("{}/", p.id);
                let mut seen: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
                for file in inputs.files.iter().filter(|x| x.path.starts_with(&prefix)) {
                    let name = &file.path[prefix.len()..];
                    let index = name.bytes().all(|b| b.is_ascii_digit()).then(|| name.parse::<u32>().ok()).flatten();
                    match index.and_then(|i| p.tasks.iter().find(|x| x.shard == Some(i)).map(|x| (i, x))) {
                        Some((i, shard_task)) if shard_task.state == SUCCEEDED => {
                            seen.entry(i).or_default().push(file.path.as_str());
                            f.m.shard_inputs_checked += 1;
                            if shard_task.result.as_deref() != Some(file.text.as_str()) {
                                f.shard_input_mismatch.push(|| {
                                    json!({ "at": at(), "path": file.path, "seen": file.text, "committed": shard_task.result, "shard_task": shard_task.task_id })
                                });
                            }
                        }
                        _ => f.shard_unexpected.push(|| json!({ "at": at(), "path": file.path, "text": file.text })),
                    }
                }
                for (i, paths) in seen.iter().filter(|(_, p)| p.len() > 1) {
                    f.shard_twice.push(|| json!({ "at": at(), "parent": p.id, "shard": i, "paths": paths }));
                }
                let expected: Vec<u32> = p
                    .tasks
                    .iter()
                    .filter(|x| x.state == SUCCEEDED && x.result.is_some())
                    .filter_map(|x| x.shard)
                    .collect();
                let missing: Vec<u32> = expected.iter().copied().filter(|i| !seen.contains_key(i)).collect();
                if !missing.is_empty() {
                    f.shard_missing
                        .push(|| json!({ "at": at(), "parent": p.id, "missing": missing, "expected": expected }));
                }
            }
            // Files of no sharded parent: a plain parent's own file, or nothing a parent wrote.
            for file in &inputs.files {
                let top = file.path.split('/').next().unwrap_or("");
                let Some(p) = parents.iter().find(|p| p.id == top) else {
                    f.shard_unexpected.push(|| json!({ "at": at(), "path": file.path, "text": file.text }));
                    continue;
                };
                if p.shards.is_none()
                    && (file.path != p.id
                        || p.tasks.first().and_then(|x| x.result.as_deref()) != Some(file.text.as_str()))
                {
                    f.shard_input_mismatch.push(|| json!({ "at": at(), "path": file.path, "seen": file.text }));
                }
            }
        }
    }
}

/// Step 7: every tagged sink line is where the views put its task, on its attempt's worker.
fn check_sink_identity(record: &WorkflowRecord, sink: &[SinkEvent], ctx: &Ctx, f: &mut Findings) {
    let views: BTreeMap<&str, &WfSeen> =
        record.workflows.iter().filter_map(|l| l.final_view.as_ref().map(|v| (l.name.as_str(), v))).collect();
    let known: BTreeSet<&str> = record.workflows.iter().map(|l| l.name.as_str()).collect();
    for e in sink {
        let Some(tag) = &e.wf else { continue };
        let bad_place = match views.get(tag.workflow.as_str()) {
            Some(view) => !view
                .nodes
                .iter()
                .any(|n| n.id == tag.node && n.tasks.iter().any(|t| t.task_id == e.task_id && t.shard == tag.shard)),
            // A workflow without a view was not read: nothing to compare (the record says why).
            None => !known.contains(tag.workflow.as_str()),
        };
        let attempt_worker = ctx
            .finals
            .get(&e.task_id)
            .and_then(|t| t.attempts.iter().find(|a| a.token == e.token))
            .map(|a| a.worker.as_str());
        let bad_worker = matches!((attempt_worker, tag.worker.as_deref()), (Some(a), Some(w)) if a != w);
        if bad_place || bad_worker {
            f.sink_identity_mismatch.push(|| json!({ "line": e, "attempt_worker": attempt_worker }));
        }
    }
}

/// Step 2: final tasks with a workflow origin against the views.
fn check_final_tasks(record: &WorkflowRecord, ctx: &Ctx, f: &mut Findings) {
    let views: BTreeMap<u64, &WfSeen> =
        record.workflows.iter().filter_map(|l| l.final_view.as_ref()).map(|v| (v.id, v)).collect();
    let listed: Option<BTreeSet<u64>> = record.listed.as_ref().map(|l| l.iter().map(|w| w.id).collect());
    let forgotten: BTreeSet<u64> = record.workflows.iter().filter(|l| l.final_forgotten).filter_map(|l| l.id).collect();
    let mut slots: BTreeMap<WorkflowRef, Vec<u64>> = BTreeMap::new();
    for t in ctx.finals.values() {
        let Some(r) = t.workflow else { continue };
        slots.entry(r).or_default().push(t.task_id);
        let listed_by_view = views.get(&r.workflow).map(|v| {
            v.nodes
                .get(r.node as usize)
                .is_some_and(|n| n.tasks.iter().any(|x| x.task_id == t.task_id && x.shard == r.shard))
        });
        // A task of a workflow that no view covers is judged only if the final list (which
        // would show it) does not have that workflow at all.
        // A task of a workflow forgotten after the main read is no orphan (see the module docs).
        let gone = forgotten.contains(&r.workflow);
        f.m.tasks_of_forgotten += usize::from(gone && listed_by_view.is_none());
        let orphan = listed_by_view.is_none() && !gone && listed.as_ref().is_some_and(|l| !l.contains(&r.workflow));
        if listed_by_view == Some(false) || orphan {
            f.index_mismatch.push(|| json!({ "task_id": t.task_id, "workflow_ref": r, "state": t.state, "listed_by_view": listed_by_view }));
        }
    }
    for (r, ids) in slots.iter().filter(|(_, ids)| ids.len() > 1) {
        f.node_task_twice.push(|| json!({ "workflow_ref": r, "task_ids": ids }));
    }
}

/// One keyed attempt, with its physical span from the sink.
#[derive(Debug, Clone)]
struct Keyed {
    task_id: u64,
    token: u64,
    outcome: Option<String>,
    /// First and last sink line.
    span: Option<(u64, u64)>,
}

/// Step 8. Returns the details of the limit.
fn check_limit(record: &WorkflowRecord, ctx: &Ctx, f: &mut Findings, incomplete: &mut Vec<String>) -> Value {
    let limit = &record.limit;
    let mut details = json!({
        "key": limit.key,
        "max_running": limit.max_running,
        "status": limit.status,
        "exercised": limit.status == LimitStatus::Set,
    });
    if limit.status != LimitStatus::Set {
        return details;
    }
    let mut keyed = Vec::new();
    for view in record.workflows.iter().filter_map(|l| l.final_view.as_ref()) {
        for node in view.nodes.iter().filter(|n| n.concurrency_key.as_deref() == Some(limit.key.as_str())) {
            for t in &node.tasks {
                let Some(ft) = ctx.finals.get(&t.task_id) else { continue };
                for a in &ft.attempts {
                    let times: Vec<u64> =
                        ctx.events(t.task_id).iter().filter(|e| e.token == a.token).map(|e| e.time_ns).collect();
                    let span = times.iter().min().zip(times.iter().max()).map(|(&s, &e)| (s, e));
                    keyed.push(Keyed { task_id: t.task_id, token: a.token, outcome: a.outcome.clone(), span });
                }
            }
        }
    }
    f.m.keyed_attempts = keyed.len();
    check_limit_reads(record, &keyed, ctx, f, incomplete);
    // Holders: ended by their own report (their process exited before apply released the
    // permit), or still live.
    let holds_to_its_end = |k: &Keyed| matches!(k.outcome.as_deref(), None | Some("succeeded") | Some("failed"));
    for y in &keyed {
        let Some((s, _)) = y.span else { continue };
        f.m.limit_assignments_judged += 1;
        let holders: Vec<&Keyed> = keyed
            .iter()
            .filter(|x| x.token < y.token && holds_to_its_end(x) && x.span.is_some_and(|(_, last)| last > s))
            .collect();
        f.m.max_witnessed_holders = f.m.max_witnessed_holders.max(1 + holders.len());
        if 1 + holders.len() > limit.max_running as usize {
            let held: Vec<_> = holders
                .iter()
                .map(|x| json!({ "task_id": x.task_id, "token": x.token, "outcome": x.outcome, "span_ns": x.span }))
                .collect();
            f.limit_exceeded.push(|| {
                json!({ "key": limit.key, "max_running": limit.max_running, "assigned": { "task_id": y.task_id, "token": y.token, "start_ns": s }, "still_holding": held })
            });
        }
    }
    // Measured: every keyed process, zombies included, at once.
    let mut edges: Vec<(u64, i32)> = keyed.iter().filter_map(|k| k.span).flat_map(|(s, e)| [(s, 1), (e, -1)]).collect();
    edges.sort_by_key(|&(t, d)| (t, -d));
    let mut now = 0i32;
    for (_, d) in edges {
        now += d;
        f.m.max_physical = f.m.max_physical.max(now.max(0) as usize);
    }
    details["keyed_attempts"] = json!(f.m.keyed_attempts);
    details["assignments_judged"] = json!(f.m.limit_assignments_judged);
    details["max_witnessed_holders"] = json!(f.m.max_witnessed_holders);
    details["max_physical"] = json!(f.m.max_physical);
    details["reads"] = json!(f.m.limit_reads);
    details["max_read_holders"] = json!(f.m.max_read_holders);
    details["final_holders"] = json!(record.final_limit.as_ref().map(|p| &p.running));
    details
}

/// Step 8, from the limit's own reads: every linearizable `GET /v1/limits/{key}` shows the limit
/// as set and at most that many holders, each a keyed workflow task; the final one (made after
/// the final read of the tasks) no holder the final state shows terminal (a terminal task has
/// no live attempt, so it holds nothing: a permit never released).
fn check_limit_reads(
    record: &WorkflowRecord,
    keyed: &[Keyed],
    ctx: &Ctx,
    f: &mut Findings,
    incomplete: &mut Vec<String>,
) {
    let limit = &record.limit;
    let keyed_tasks: BTreeSet<u64> = keyed.iter().map(|k| k.task_id).collect();
    let views_complete = record.workflows.iter().all(|l| l.final_view.is_some() || l.id.is_none());
    if record.workflows.iter().any(|l| l.final_forgotten) {
        f.m.limit_reads_unjudged_forgotten = record.limit_polls.len() + usize::from(record.final_limit.is_some());
    }
    let reads = record.limit_polls.iter().map(|p| (p, false)).chain(record.final_limit.iter().map(|p| (p, true)));
    for (p, last) in reads {
        f.m.limit_reads += 1;
        f.m.max_read_holders = f.m.max_read_holders.max(p.running.len());
        let ex = || json!({ "read": p, "final": last, "limit": limit.max_running });
        if p.max_running != Some(limit.max_running) {
            f.limit_read_wrong.push(ex);
        } else if p.running.len() > limit.max_running as usize {
            f.limit_read_exceeded.push(ex);
        }
        // Only workflow tasks carry the key; with every view read, a holder outside them is wrong.
        if ctx.final_complete && views_complete && p.running.iter().any(|t| !keyed_tasks.contains(t)) {
            f.limit_read_wrong.push(ex);
        }
        if last && ctx.final_complete {
            let ended: Vec<u64> = p
                .running
                .iter()
                .copied()
                .filter(|t| ctx.finals.get(t).is_some_and(|ft| is_terminal_state(&ft.state)))
                .collect();
            if !ended.is_empty() {
                f.permit_leaked.push(|| json!({ "read": p, "terminal_holders": ended }));
            }
        }
    }
    if record.final_limit.is_none() {
        incomplete.push("the final read of the limit failed".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{Fixture, Hist};
    use crate::history::FinalAttempt;
    use crate::history::InputFile;
    use crate::history::InputsSeen;
    use crate::history::LimitLog;
    use crate::history::LimitPoll;
    use crate::history::WfNodeTask;
    use crate::history::WfShards;
    use crate::history::WfTag;
    use crate::history::WorkflowListed;

    /// The tag of a hand-made sink line, from worker w1.
    fn tag(workflow: &str, node: &str, shard: Option<u32>) -> WfTag {
        WfTag { workflow: workflow.into(), node: node.into(), shard, worker: Some("w1".into()), ..WfTag::default() }
    }

    const MS: u64 = 1_000_000;
    const KEY: &str = "jep-limit";

    /// A node of a hand-made workflow: (id, depends as (parent, on), trigger, shard count,
    /// carries the concurrency key).
    type NodeDef<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, Option<u32>, bool);

    /// A run under construction: the views, the final tasks and the sink, built together.
    #[derive(Default)]
    struct Run {
        record: WorkflowRecord,
        tasks: Vec<FinalTask>,
        sink: Vec<SinkEvent>,
        next_task: u64,
    }

    /// How one attempt of a task goes.
    #[derive(Clone, Copy)]
    struct Att {
        token: u64,
        start_ms: u64,
        end_ms: u64,
        outcome: &'static str,
    }

    fn ok(token: u64, start_ms: u64, end_ms: u64) -> Att {
        Att { token, start_ms, end_ms, outcome: "succeeded" }
    }

    impl Run {
        fn new() -> Self {
            let limit =
                LimitLog { key: KEY.into(), max_running: 2, status: LimitStatus::Set, attempts: 1, last_error: None };
            Run {
                record: WorkflowRecord {
                    limit,
                    listed: Some(vec![]),
                    final_limit: Some(LimitPoll { time_ns: 900 * MS, node: 1, max_running: Some(2), running: vec![] }),
                    ..WorkflowRecord::default()
                },
                next_task: 100,
                ..Run::default()
            }
        }

        /// Adds workflow `name` (id `id`) with nodes `(id, depends, trigger, shards, key)`, all
        /// waiting; tasks are added with [`Run::task`].
        fn workflow(&mut self, name: &str, id: u64, nodes: &[NodeDef]) {
            let view = WfSeen {
                id,
                name: name.into(),
                state: "running".into(),
                idempotency_key: Some(name.into()),
                version: 1,
                nodes: nodes
                    .iter()
                    .map(|(nid, deps, trigger, shards, keyed)| WfNodeSeen {
                        id: (*nid).into(),
                        state: "waiting".into(),
                        depends: deps.iter().map(|(p, on)| ((*p).into(), (*on).into())).collect(),
                        trigger: (*trigger).into(),
                        shards: shards.map(|c| WfShards { count: c, max_parallel: Some(2), min: None }),
                        concurrency_key: keyed.then(|| KEY.into()),
                        tasks: vec![],
                    })
                    .collect(),
            };
            let request = json!({ "nodes": nodes.iter().map(|n| json!({ "id": n.0 })).collect::<Vec<_>>() });
            self.record.workflows.push(WorkflowLog {
                name: name.into(),
                kind: "test".into(),
                request,
                submit_attempts: 1,
                first_sent_ns: Some(0),
                acked_ns: Some(1),
                id: Some(id),
                final_view: Some(view),
                ..WorkflowLog::default()
            });
            self.record.listed.as_mut().unwrap().push(WorkflowListed {
                id,
                name: name.into(),
                state: "running".into(),
            });
        }

        fn view(&mut self, wf: &str) -> &mut WfSeen {
            self.record.workflows.iter_mut().find(|l| l.name == wf).unwrap().final_view.as_mut().unwrap()
        }

        fn set_state(&mut self, wf: &str, node: &str, state: &str) {
            let v = self.view(wf);
            v.nodes.iter_mut().find(|n| n.id == node).unwrap().state = state.into();
        }

        /// A task of `node` (shard `shard`) with these attempts: final task, view entry, and
        /// sink lines (start, then done with the result or exit 1). The result committed is the
        /// succeeded attempt's. Returns the task id.
        fn task(&mut self, wf: &str, node: &str, shard: Option<u32>, atts: &[Att]) -> u64 {
            let task_id = self.next_task;
            self.next_task += 1;
            let (wf_id, idx) = {
                let v = self.view(wf);
                (v.id, v.nodes.iter().position(|n| n.id == node).unwrap())
            };
            let result_of = |tok: u64| match shard {
                Some(i) => format!("shard={i} task={task_id} token={tok}"),
                None => format!("node={node} task={task_id} token={tok}"),
            };
            let mut committed = None;
            for a in atts {
                let t = tag(wf, node, shard);
                self.sink.push(SinkEvent {
                    time_ns: a.start_ms * MS,
                    task_id,
                    attempt: 1,
                    token: a.token,
                    event: SinkKind::Start { from: 0 },
                    wf: Some(t.clone()),
                });
                let end = match a.outcome {
                    "failed" => SinkEvent {
                        time_ns: a.end_ms * MS,
                        task_id,
                        attempt: 1,
                        token: a.token,
                        event: SinkKind::Exit { code: 1 },
                        wf: Some(t),
                    },
                    _ => SinkEvent {
                        time_ns: a.end_ms * MS,
                        task_id,
                        attempt: 1,
                        token: a.token,
                        event: SinkKind::Done { n: 1 },
                        wf: Some(WfTag { result: Some(result_of(a.token)), ..t }),
                    },
                };
                self.sink.push(end);
                if a.outcome == "succeeded" {
                    committed = Some(result_of(a.token));
                }
            }
            let state = atts.last().map_or("pending", |a| match a.outcome {
                "succeeded" | "failed" => a.outcome,
                _ => "running",
            });
            self.tasks.push(FinalTask {
                task_id,
                key: None,
                state: state.into(),
                version: 5,
                attempts: atts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| FinalAttempt {
                        number: i as u32 + 1,
                        worker: "w1".into(),
                        token: a.token,
                        outcome: Some(a.outcome.into()),
                    })
                    .collect(),
                checkpoint: None,
                origin: None,
                workflow: Some(WorkflowRef { workflow: wf_id, node: idx as u32, shard }),
                priority: None,
                preemptible: None,
                preempted: vec![],
            });
            let v = self.view(wf);
            v.nodes[idx].tasks.push(WfNodeTask { shard, task_id, state: state.into(), result: committed });
            task_id
        }

        /// The reduce of `wf` started at `start_ms` with these input files, and succeeded.
        fn reduce(&mut self, wf: &str, start_ms: u64, files: Vec<InputFile>, dir: bool) -> u64 {
            let id = self.task(wf, "reduce", None, &[ok(900 + start_ms, start_ms, start_ms + 50)]);
            let ev =
                self.sink.iter_mut().find(|e| e.task_id == id && matches!(e.event, SinkKind::Start { .. })).unwrap();
            ev.wf.as_mut().unwrap().inputs = Some(InputsSeen { dir, files, truncated: false });
            id
        }

        /// Input files equal to the committed result of every shard of `map`.
        fn map_inputs(&mut self, wf: &str) -> Vec<InputFile> {
            let v = self.view(wf);
            let map = v.nodes.iter().find(|n| n.id == "map").unwrap();
            map.tasks
                .iter()
                .map(|t| InputFile { path: format!("map/{}", t.shard.unwrap()), text: t.result.clone().unwrap() })
                .collect()
        }

        fn finish(&mut self, wf: &str, state: &str) {
            self.view(wf).state = state.into();
            let log = self.record.workflows.iter().find(|l| l.name == wf).unwrap();
            let id = log.id.unwrap();
            for l in self.record.listed.as_mut().unwrap().iter_mut().filter(|l| l.id == id) {
                l.state = state.into();
            }
        }

        fn check(&self) -> CheckResult {
            let mut fx = Fixture::new(&Hist::new(), self.tasks.clone()).with_sink(self.sink.clone());
            fx.workflows = Some(self.record.clone());
            check(&fx.inputs())
        }
    }

    /// A clean map-reduce: 3 shards under a limit of 2 (two at a time), then the reduce.
    fn mapreduce() -> Run {
        let mut r = Run::new();
        r.workflow(
            "mr",
            1,
            &[("map", &[], "all", Some(3), true), ("reduce", &[("map", "success")], "all", None, false)],
        );
        r.set_state("mr", "map", "succeeded");
        r.task("mr", "map", Some(0), &[ok(10, 100, 300)]);
        r.task("mr", "map", Some(1), &[ok(11, 110, 310)]);
        r.task("mr", "map", Some(2), &[ok(20, 320, 500)]);
        let files = r.map_inputs("mr");
        r.set_state("mr", "reduce", "succeeded");
        r.reduce("mr", 600, files, true);
        r.finish("mr", "succeeded");
        r
    }

    /// A clean DAG: a → b (success); f fails → on_fail (failure); skipped (a failure) is skipped;
    /// any (f success | b success) runs after b.
    fn dag() -> Run {
        let mut r = Run::new();
        r.workflow(
            "dag",
            2,
            &[
                ("a", &[], "all", None, false),
                ("b", &[("a", "success")], "all", None, true),
                ("f", &[("a", "success")], "all", None, false),
                ("on_fail", &[("f", "failure")], "all", None, false),
                ("skipped", &[("a", "failure")], "all", None, false),
                ("any", &[("f", "success"), ("b", "success")], "any", None, false),
            ],
        );
        r.task("dag", "a", None, &[ok(30, 100, 200)]);
        r.set_state("dag", "a", "succeeded");
        r.task("dag", "b", None, &[ok(40, 250, 400)]);
        r.set_state("dag", "b", "succeeded");
        r.task("dag", "f", None, &[Att { token: 41, start_ms: 260, end_ms: 300, outcome: "failed" }]);
        r.set_state("dag", "f", "failed");
        r.task("dag", "on_fail", None, &[ok(50, 350, 450)]);
        r.set_state("dag", "on_fail", "succeeded");
        r.set_state("dag", "skipped", "skipped");
        r.task("dag", "any", None, &[ok(60, 450, 550)]);
        r.set_state("dag", "any", "succeeded");
        r.finish("dag", "succeeded");
        r
    }

    fn count(r: &CheckResult, kind: &str) -> u64 {
        r.details["violations"][kind].as_u64().unwrap()
    }

    fn only(r: &CheckResult, kind: &str) {
        assert_eq!(r.valid, Validity::False, "{r:#?}");
        let others: Vec<_> = r.details["violations"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| k.as_str() != kind && v.as_u64() != Some(0))
            .map(|(k, _)| k.clone())
            .collect();
        assert!(count(r, kind) > 0, "expected {kind}: {r:#?}");
        assert!(others.is_empty(), "only {kind} expected, also got {others:?}: {r:#?}");
    }

    #[test]
    fn a_clean_mapreduce_and_dag_are_valid_and_measured() {
        let r = mapreduce().check();
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!(r.details["reduce_starts"], 1);
        assert_eq!(r.details["shard_inputs_checked"], 3);
        assert_eq!(r.details["limit"]["keyed_attempts"], 3);
        assert_eq!(r.details["limit"]["max_witnessed_holders"], 2);
        assert_eq!(r.details["limit"]["max_physical"], 2);
        assert_eq!(r.details["edges_timed"], 1);
        let r = dag().check();
        assert_eq!(r.valid, Validity::True, "{r:#?}");
        assert_eq!((r.details["nodes_ran"].as_u64(), r.details["nodes_skipped"].as_u64()), (Some(5), Some(1)));
        assert_eq!(r.details["states"]["succeeded"], 1);
    }

    #[test]
    fn a_reduce_started_before_the_last_shard_ended_is_invalid() {
        let mut r = mapreduce();
        // Shard 2's committed attempt ends at 500 ms; this reduce started at 450 ms.
        let start = r.sink.iter_mut().find(|e| e.token == 1500 && matches!(e.event, SinkKind::Start { .. })).unwrap();
        start.time_ns = 450 * MS;
        only(&r.check(), "started_before_parent");
    }

    #[test]
    fn a_child_started_before_its_failure_parent_ended_is_invalid() {
        let mut r = dag();
        // on_fail (on: failure of f) started at 290 ms; f's attempt exited at 300 ms.
        let on_fail = r.view("dag").nodes[3].tasks[0].task_id;
        r.sink
            .iter_mut()
            .find(|e| e.task_id == on_fail && matches!(e.event, SinkKind::Start { .. }))
            .unwrap()
            .time_ns = 290 * MS;
        only(&r.check(), "started_before_parent");
    }

    #[test]
    fn an_any_node_started_before_every_satisfying_parent_ended_is_invalid() {
        let mut r = dag();
        // any (f success | b success): f failed, b ended at 400 ms; any started at 350 ms.
        let any = r.view("dag").nodes[5].tasks[0].task_id;
        r.sink.iter_mut().find(|e| e.task_id == any && matches!(e.event, SinkKind::Start { .. })).unwrap().time_ns =
            350 * MS;
        only(&r.check(), "started_before_parent");
    }

    #[test]
    fn a_shard_result_counted_twice_is_invalid() {
        let mut r = mapreduce();
        let mut files = r.map_inputs("mr");
        // "01" names shard 1 again.
        files.push(InputFile { path: "map/01".into(), text: files[1].text.clone() });
        let reduce = r.view("mr").nodes[1].tasks[0].task_id;
        let ev = r.sink.iter_mut().find(|e| e.task_id == reduce && matches!(e.event, SinkKind::Start { .. })).unwrap();
        ev.wf.as_mut().unwrap().inputs.as_mut().unwrap().files = files.clone();
        only(&r.check(), "shard_twice");
        // The same path listed twice.
        files.pop();
        files.push(files[0].clone());
        let ev = r.sink.iter_mut().find(|e| e.task_id == reduce && matches!(e.event, SinkKind::Start { .. })).unwrap();
        ev.wf.as_mut().unwrap().inputs.as_mut().unwrap().files = files;
        only(&r.check(), "shard_twice");
    }

    #[test]
    fn a_missing_shard_is_invalid() {
        let mut r = mapreduce();
        let reduce = r.view("mr").nodes[1].tasks[0].task_id;
        let ev = r.sink.iter_mut().find(|e| e.task_id == reduce && matches!(e.event, SinkKind::Start { .. })).unwrap();
        ev.wf.as_mut().unwrap().inputs.as_mut().unwrap().files.remove(2);
        let res = r.check();
        only(&res, "shard_missing");
        assert_eq!(res.details["examples"]["shard_missing"][0]["missing"], json!([2]));
    }

    #[test]
    fn a_reduce_without_an_inputs_dir_is_invalid() {
        let mut r = mapreduce();
        let reduce = r.view("mr").nodes[1].tasks[0].task_id;
        let ev = r.sink.iter_mut().find(|e| e.task_id == reduce && matches!(e.event, SinkKind::Start { .. })).unwrap();
        ev.wf.as_mut().unwrap().inputs = Some(InputsSeen::default());
        only(&r.check(), "inputs_missing");
    }

    #[test]
    fn a_zombie_result_aggregated_or_committed_is_invalid() {
        // Shard 1 ran twice: token 11 was lost (a zombie that still finished), token 12 succeeded.
        let build = || {
            let mut r = Run::new();
            r.workflow(
                "mr",
                1,
                &[("map", &[], "all", Some(2), false), ("reduce", &[("map", "success")], "all", None, false)],
            );
            r.set_state("mr", "map", "succeeded");
            r.task("mr", "map", Some(0), &[ok(10, 100, 300)]);
            let lost = Att { token: 11, start_ms: 110, end_ms: 400, outcome: "lost" };
            r.task("mr", "map", Some(1), &[lost, ok(12, 350, 420)]);
            r.set_state("mr", "reduce", "succeeded");
            r.finish("mr", "succeeded");
            r
        };
        let mut r = build();
        let files = r.map_inputs("mr");
        r.reduce("mr", 500, files, true);
        assert_eq!(r.check().valid, Validity::True, "{:#?}", r.check());

        // The reduce saw the zombie's result for shard 1.
        let mut r = build();
        let mut files = r.map_inputs("mr");
        files[1].text = files[1].text.replace("token=12", "token=11");
        r.reduce("mr", 500, files, true);
        only(&r.check(), "shard_input_mismatch");

        // The cluster committed the zombie's result (and the reduce read what was committed).
        let mut r = build();
        let t = &mut r.view("mr").nodes[0].tasks[1];
        t.result = Some(t.result.clone().unwrap().replace("token=12", "token=11"));
        let files = r.map_inputs("mr");
        r.reduce("mr", 500, files, true);
        let res = r.check();
        assert_eq!(res.valid, Validity::False);
        assert_eq!((count(&res, "result_not_from_committed_attempt"), count(&res, "shard_result_wrong")), (1, 1));
    }

    #[test]
    fn three_keyed_attempts_holding_permits_at_once_exceed_a_limit_of_two() {
        let mut r = mapreduce();
        // Shard 2 (token 20) now starts at 200 ms, while tokens 10 and 11 run until 300 and 310.
        for e in r.sink.iter_mut().filter(|e| e.token == 20 && matches!(e.event, SinkKind::Start { .. })) {
            e.time_ns = 200 * MS;
        }
        let res = r.check();
        only(&res, "limit_exceeded");
        assert_eq!(res.details["examples"]["limit_exceeded"][0]["still_holding"].as_array().unwrap().len(), 2);
        assert_eq!(res.details["limit"]["max_witnessed_holders"], 3);
    }

    #[test]
    fn a_zombie_overlapping_its_replacement_does_not_hold_a_permit() {
        // Shard 1's first attempt (token 11) was lost on a paused worker but ran on until 450 ms;
        // the retry (token 21) and shard 2 (token 20) ran from 320 ms: three processes at once,
        // two permits held.
        let mut r = Run::new();
        r.workflow(
            "mr",
            1,
            &[("map", &[], "all", Some(3), true), ("reduce", &[("map", "success")], "all", None, false)],
        );
        r.set_state("mr", "map", "succeeded");
        r.task("mr", "map", Some(0), &[ok(10, 100, 300)]);
        let zombie = Att { token: 11, start_ms: 110, end_ms: 450, outcome: "lost" };
        r.task("mr", "map", Some(1), &[zombie, ok(21, 330, 480)]);
        r.task("mr", "map", Some(2), &[ok(20, 320, 500)]);
        let files = r.map_inputs("mr");
        r.set_state("mr", "reduce", "succeeded");
        r.reduce("mr", 600, files, true);
        r.finish("mr", "succeeded");
        let res = r.check();
        assert_eq!(res.valid, Validity::True, "{res:#?}");
        assert_eq!(res.details["limit"]["max_physical"], 3);
        assert_eq!(res.details["limit"]["max_witnessed_holders"], 2);

        // Had token 11 completed (succeeded or failed by its own report), it held its permit
        // until after 450 ms: three holders at token 21's assignment.
        let t = r.tasks.iter_mut().find(|t| t.attempts.iter().any(|a| a.token == 11)).unwrap();
        t.attempts[0].outcome = Some("failed".into());
        only(&r.check(), "limit_exceeded");
    }

    #[test]
    fn a_limit_read_over_the_limit_wrong_or_with_a_leaked_permit_is_invalid() {
        let mut r = mapreduce();
        let [s0, s1, s2] = [0, 1, 2].map(|i| r.view("mr").nodes[0].tasks[i].task_id);
        let poll = |running: Vec<u64>| LimitPoll { time_ns: 150 * MS, node: 2, max_running: Some(2), running };
        r.record.limit_polls = vec![poll(vec![s0, s1])];
        let res = r.check();
        assert_eq!(res.valid, Validity::True, "{res:#?}");
        assert_eq!(
            (res.details["limit"]["reads"].as_u64(), res.details["limit"]["max_read_holders"].as_u64()),
            (Some(2), Some(2))
        );

        r.record.limit_polls = vec![poll(vec![s0, s1, s2])];
        only(&r.check(), "limit_read_exceeded");
        r.record.limit_polls = vec![LimitPoll { max_running: Some(5), ..poll(vec![s0]) }];
        only(&r.check(), "limit_read_wrong");
        r.record.limit_polls = vec![poll(vec![s0, 4242])];
        only(&r.check(), "limit_read_wrong");

        r.record.limit_polls.clear();
        r.record.final_limit.as_mut().unwrap().running = vec![s2];
        only(&r.check(), "permit_leaked");
        r.record.final_limit = None;
        assert_eq!(r.check().valid, Validity::Unknown);
    }

    #[test]
    fn the_limit_is_not_judged_without_the_route_and_unknown_when_it_could_not_be_set() {
        let mut r = mapreduce();
        for e in r.sink.iter_mut().filter(|e| e.token == 20 && matches!(e.event, SinkKind::Start { .. })) {
            e.time_ns = 200 * MS;
        }
        r.record.limit.status = LimitStatus::RouteMissing;
        let res = r.check();
        assert_eq!(res.valid, Validity::True, "{res:#?}");
        assert_eq!(res.details["limit"]["exercised"], false);
        assert!(res.summary.contains("not exercised"), "{}", res.summary);
        r.record.limit.status = LimitStatus::Failed;
        assert_eq!(r.check().valid, Validity::Unknown);
    }

    #[test]
    fn a_skipped_node_that_ran_or_a_node_run_without_its_rule_is_invalid() {
        // A sink line from the skipped node.
        let mut r = dag();
        let mut line = r.sink[0].clone();
        line.task_id = 999;
        line.wf = Some(tag("dag", "skipped", None));
        r.sink.push(line);
        let res = r.check();
        assert_eq!(count(&res, "skipped_but_ran"), 1, "{res:#?}");
        assert_eq!(res.valid, Validity::False);

        // `skipped` (on: failure of a, which succeeded) ran and succeeded.
        let mut r = dag();
        r.set_state("dag", "skipped", "succeeded");
        r.task("dag", "skipped", None, &[ok(70, 300, 350)]);
        let res = r.check();
        assert_eq!(count(&res, "ran_without_rule"), 1, "{res:#?}");

        // `on_fail` skipped although f failed.
        let mut r = dag();
        let v = r.view("dag");
        v.nodes[3].tasks.clear();
        v.nodes[3].state = "skipped".into();
        r.tasks.retain(|t| t.workflow.map(|w| w.node) != Some(3));
        r.sink.retain(|e| e.wf.as_ref().is_none_or(|t| t.node != "on_fail"));
        only(&r.check(), "skipped_wrongly");
    }

    #[test]
    fn a_wrong_workflow_or_node_state_is_invalid() {
        let mut r = dag();
        r.view("dag").state = "failed".into();
        r.record.listed.as_mut().unwrap()[0].state = "failed".into();
        only(&r.check(), "workflow_state_mismatch");
        let mut r = mapreduce();
        r.view("mr").nodes[0].tasks[2].state = "failed".into();
        let res = r.check();
        assert!(count(&res, "node_state_mismatch") >= 1, "{res:#?}");
    }

    #[test]
    fn a_node_task_twice_or_twice_succeeded_is_invalid() {
        let mut r = mapreduce();
        let mut extra = r.tasks[0].clone();
        extra.task_id = 555;
        r.tasks.push(extra);
        let res = r.check();
        assert_eq!(res.valid, Validity::False);
        assert!(count(&res, "node_task_twice") >= 1, "{res:#?}");

        let mut r = mapreduce();
        let again = FinalAttempt { number: 2, worker: "w1".into(), token: 99, outcome: Some("succeeded".into()) };
        r.tasks[0].attempts.push(again);
        let res = r.check();
        assert!(count(&res, "succeeded_twice") >= 1, "{res:#?}");
    }

    #[test]
    fn a_lost_duplicated_or_unexpected_workflow_is_invalid_and_an_unfinished_one_is_reported() {
        let mut r = mapreduce();
        let log = &mut r.record.workflows[0];
        log.final_view = None;
        log.final_not_found = true;
        r.record.listed = Some(vec![]);
        r.tasks.clear();
        r.sink.clear();
        only(&r.check(), "lost");

        let mut r = mapreduce();
        r.record.listed.as_mut().unwrap().push(WorkflowListed { id: 7, name: "mr".into(), state: "running".into() });
        r.record.listed.as_mut().unwrap().push(WorkflowListed { id: 8, name: "other".into(), state: "running".into() });
        let res = r.check();
        assert_eq!((count(&res, "duplicated"), count(&res, "unexpected")), (1, 1), "{res:#?}");

        let mut r = dag();
        let v = r.view("dag");
        v.state = "running".into();
        v.nodes[5].state = "running".into();
        v.nodes[5].tasks[0].state = "running".into();
        let any = v.nodes[5].tasks[0].task_id;
        let t = r.tasks.iter_mut().find(|t| t.task_id == any).unwrap();
        t.state = "running".into();
        t.attempts[0].outcome = None;
        r.sink.retain(|e| !(e.task_id == any && matches!(e.event, SinkKind::Done { .. })));
        let res = r.check();
        assert_eq!(res.valid, Validity::True, "{res:#?}");
        assert_eq!(res.details["not_finished"], 1);
    }

    #[test]
    fn a_line_from_another_worker_or_place_is_invalid_and_no_record_is_unknown() {
        let mut r = mapreduce();
        r.sink[0].wf.as_mut().unwrap().worker = Some("w2".into());
        only(&r.check(), "sink_identity_mismatch");
        let mut r = mapreduce();
        r.sink[0].wf.as_mut().unwrap().shard = Some(2);
        only(&r.check(), "sink_identity_mismatch");
        let fx = Fixture::new(&Hist::new(), vec![]);
        let res = check(&fx.inputs());
        assert_eq!(res.valid, Validity::Unknown);
        assert_eq!(res.details["recorded"], false);
    }

    #[test]
    fn a_forgotten_workflow_is_not_lost_and_its_leftover_tasks_are_no_orphans() {
        // Forgotten after the list and the main read: listed, its tasks still in the final state.
        let mut r = mapreduce();
        let log = &mut r.record.workflows[0];
        log.final_view = None;
        log.final_forgotten = true;
        let res = r.check();
        assert_eq!(count(&res, "index_mismatch"), 0, "{res:#?}");
        assert_eq!(res.details["forgotten"], 1);
        assert!(res.details["tasks_of_forgotten"].as_u64().unwrap() > 0);
        assert_eq!(count(&res, "lost"), 0);
        // Forgotten before the list and the main read: gone everywhere, still not lost.
        let mut r = mapreduce();
        let log = &mut r.record.workflows[0];
        log.final_view = None;
        log.final_forgotten = true;
        r.record.listed = Some(vec![]);
        r.tasks.clear();
        let res = r.check();
        assert_eq!(count(&res, "lost"), 0, "{res:#?}");
        assert_eq!(count(&res, "index_mismatch"), 0);
        // Every submit failed, yet it answers forgotten: it existed.
        r.record.workflows[0].acked_ns = None;
        r.record.workflows[0].all_failed = true;
        assert_eq!(count(&r.check(), "failed_but_present"), 1);
    }
}

//! `taskraft bench workflow`: a fan-out/fan-in and many small diamonds through a local cluster.
//!
//! Times come from the replicated state (leader clock, ms): a task's `created_ms` is its
//! creation (in the same entry that decided its parents), an attempt's `started_ms` is when the
//! worker's start report was proposed, `finished_ms` when its completion was. So:
//! - **makespan** of a workflow: its `finished_ms - created_ms`;
//! - **edge overhead**: for each DAG edge parent → child, the child's first `started_ms` minus
//!   the parent's `finished_ms`: deciding the edge, creating the child, assigning it, delivering
//!   it to a worker and the worker's start report — everything but the tasks' own run time (the
//!   tasks are `noop`). For a sharded parent, the edge is from its last shard to finish.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use serde_json::json;
use tokio::time::Instant;

use crate::client::Client;
use crate::proto::workflows::WorkflowView;
use crate::scheduler::Task;

/// What `bench workflow` measures.
pub struct WorkflowBenchArgs {
    /// Shards of the fan-out's middle node.
    pub shards: u32,
    /// Fan-out workflows to run, one after the other.
    pub rounds: usize,
    /// Small diamonds submitted at once.
    pub diamonds: usize,
    /// Nodes of the chain run alone (its edges measure the overhead without queueing).
    pub chain: usize,
}

fn noop() -> Value {
    json!({"executor": "noop"})
}

/// Every task of the cluster by id (a few thousand: the bench's own).
async fn all_tasks(client: &Client) -> anyhow::Result<BTreeMap<u64, Task>> {
    let mut tasks = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = client.list_tasks(None, 1000, cursor).await?;
        tasks.extend(page.tasks.into_iter().map(|t| (t.id, t)));
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok(tasks);
        }
    }
}

async fn wait_ended(client: &Client, id: u64, deadline: Instant) -> anyhow::Result<WorkflowView> {
    loop {
        let wf = client.get_workflow(id).await?;
        if wf.state.is_terminal() {
            anyhow::ensure!(
                wf.state == crate::scheduler::workflow::WorkflowState::Succeeded,
                "workflow {id} ended {}",
                wf.state.as_str()
            );
            return Ok(wf);
        }
        anyhow::ensure!(Instant::now() < deadline, "workflow {id} did not end in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Edge overheads of `wf` in ms (see the module doc).
fn edge_overheads(wf: &WorkflowView, tasks: &BTreeMap<u64, Task>, out: &mut Vec<u64>) {
    edge_stages(wf, tasks, out, &mut Vec::new(), &mut Vec::new());
}

/// Like [`edge_overheads`], also split in two: parent end → child's `Assign` proposed
/// (`to_assign`), and that → the child's start report proposed (`to_start`: the Assign's
/// commit, its delivery to the worker and the worker's report).
fn edge_stages(
    wf: &WorkflowView,
    tasks: &BTreeMap<u64, Task>,
    out: &mut Vec<u64>,
    to_assign: &mut Vec<u64>,
    to_start: &mut Vec<u64>,
) {
    let ended = |node: &str| -> Option<u64> {
        let n = wf.nodes.iter().find(|n| n.id == node)?;
        n.tasks.iter().filter_map(|t| tasks.get(&t.task_id)?.finished_ms).max()
    };
    for n in &wf.nodes {
        for edge in &n.depends {
            let Some(parent_end) = ended(&edge.node) else { continue };
            for t in &n.tasks {
                let Some(first) = tasks.get(&t.task_id).and_then(|t| t.attempts.first()) else { continue };
                if let Some(s) = first.started_ms {
                    out.push(s.saturating_sub(parent_end));
                    to_assign.push(first.assigned_ms.saturating_sub(parent_end));
                    to_start.push(s.saturating_sub(first.assigned_ms));
                }
            }
        }
    }
}

/// Runs both measurements against `client`'s cluster (workers already registered).
pub async fn run(client: &Arc<Client>, args: &WorkflowBenchArgs) -> anyhow::Result<Value> {
    // 1. Fan-out / fan-in: split → map (N shards) → reduce, one workflow at a time.
    let mut makespans = Vec::new();
    let mut client_walls = Vec::new();
    let mut fan_edges = Vec::new();
    let mut fan_ids = Vec::new();
    let mut plain_makespans = Vec::new();
    for round in 0..args.rounds {
        // The baseline, alternating with the fan-out: as many plain tasks in one batch, no DAG.
        let specs: Vec<Value> = (0..args.shards as usize + 2).map(|_| noop()).collect();
        let batch = client.submit_batch(specs).await?;
        let ids: Vec<u64> = batch.iter().map(|t| t.id).collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = 0;
        for &id in &ids {
            loop {
                let t = client.get_task(id, false).await?;
                if let Some(f) = t.finished_ms {
                    last = last.max(f);
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "baseline task {id} did not finish in time");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let first = batch.iter().map(|t| t.created_ms).min().unwrap_or(last);
        plain_makespans.push(last.saturating_sub(first));
        let spec = json!({
            "name": format!("fan-{round}"),
            "nodes": [
                {"id": "split", "task": noop()},
                {"id": "map", "task": noop(), "depends": [{"node": "split"}], "shards": {"count": args.shards}},
                {"id": "reduce", "task": noop(), "depends": [{"node": "map"}]}
            ]
        });
        let t0 = Instant::now();
        let (wf, _) = client.submit_workflow(spec).await?;
        let done = wait_ended(client, wf.id, Instant::now() + Duration::from_secs(120)).await?;
        client_walls.push(t0.elapsed().as_millis() as u64);
        makespans.push(done.finished_ms.unwrap_or(done.created_ms).saturating_sub(done.created_ms));
        fan_ids.push(done);
    }
    let tasks = all_tasks(client).await?;
    for wf in &fan_ids {
        edge_overheads(wf, &tasks, &mut fan_edges);
    }
    // 2. A chain a1 → a2 → … alone: every edge's overhead without any queueing behind it.
    let (mut chain_edges, mut chain_to_assign, mut chain_to_start) = (Vec::new(), Vec::new(), Vec::new());
    let mut chain_makespan = 0;
    if args.chain >= 2 {
        let nodes: Vec<Value> = (0..args.chain)
            .map(|i| {
                let depends = if i == 0 { json!([]) } else { json!([{"node": format!("n{}", i - 1)}]) };
                json!({"id": format!("n{i}"), "task": noop(), "depends": depends})
            })
            .collect();
        let (wf, _) = client.submit_workflow(json!({"name": "chain", "nodes": nodes})).await?;
        let done = wait_ended(client, wf.id, Instant::now() + Duration::from_secs(120)).await?;
        chain_makespan = done.finished_ms.unwrap_or(done.created_ms).saturating_sub(done.created_ms);
        edge_stages(&done, &all_tasks(client).await?, &mut chain_edges, &mut chain_to_assign, &mut chain_to_start);
    }
    // 3. Many small diamonds at once: a → (b, c) → d.
    let diamond = |i: usize| {
        json!({"name": format!("diamond-{i}"), "idempotency_key": format!("bench-diamond-{i}"), "nodes": [
            {"id": "a", "task": noop()},
            {"id": "b", "task": noop(), "depends": [{"node": "a"}]},
            {"id": "c", "task": noop(), "depends": [{"node": "a"}]},
            {"id": "d", "task": noop(), "depends": [{"node": "b"}, {"node": "c"}]}
        ]})
    };
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(args.diamonds);
    let mut inflight = Vec::new();
    for i in 0..args.diamonds {
        let c = client.clone();
        let body = diamond(i);
        inflight.push(tokio::spawn(async move { c.submit_workflow(body).await }));
        if inflight.len() >= 64 {
            ids.push(inflight.remove(0).await??.0.id);
        }
    }
    for h in inflight {
        ids.push(h.await??.0.id);
    }
    let submitted_in = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut views = Vec::with_capacity(ids.len());
    for &id in &ids {
        views.push(wait_ended(client, id, deadline).await?);
    }
    let tasks = all_tasks(client).await?;
    let mut diamond_edges = Vec::new();
    for wf in &views {
        edge_overheads(wf, &tasks, &mut diamond_edges);
    }
    let first = views.iter().map(|w| w.created_ms).min().unwrap_or(0);
    let last = views.iter().filter_map(|w| w.finished_ms).max().unwrap_or(first);
    let span_s = (last.saturating_sub(first)).max(1) as f64 / 1000.0;
    Ok(json!({
        "fan_out": {
            "shards": args.shards, "rounds": args.rounds,
            "baseline_plain_batch_makespan_ms": super::bench::percentiles(plain_makespans),
            "makespan_ms": super::bench::percentiles(makespans),
            "client_wall_ms": super::bench::percentiles(client_walls),
            "edge_overhead_ms": super::bench::percentiles(fan_edges),
        },
        "chain": {
            "nodes": args.chain,
            "makespan_ms": chain_makespan,
            "edge_overhead_ms": super::bench::percentiles(chain_edges),
            "parent_end_to_assign_ms": super::bench::percentiles(chain_to_assign),
            "assign_to_start_ms": super::bench::percentiles(chain_to_start),
        },
        "diamonds": {
            "workflows": args.diamonds,
            "submitted_in_ms": submitted_in.as_millis() as u64,
            "completed_per_sec": (args.diamonds as f64 / span_s).round(),
            "span_ms": last.saturating_sub(first),
            "makespan_ms": super::bench::percentiles(views.iter().map(|w| w.finished_ms.unwrap_or(w.created_ms) - w.created_ms).collect()),
            "edge_overhead_ms": super::bench::percentiles(diamond_edges),
        }
    }))
}

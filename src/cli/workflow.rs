//! `taskraft workflow …`: submit a DAG from a JSON or TOML file, draw it with its states, list
//! and cancel workflows.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use super::ClientArgs;
use super::Output;
use super::output::escape;
use super::output::print_json;
use super::output::print_table;
use crate::proto::workflows::NodeView;
use crate::proto::workflows::WorkflowView;
use crate::scheduler::workflow::{NodeState, WorkflowState};

const SUBMIT_HELP: &str = "\
The file holds what POST /v1/workflows takes, as JSON or TOML (by extension; otherwise JSON is
tried first). Each node: id, task (as `task submit` takes it), depends [{node, on}], trigger
all|any, shards {count, max_parallel, success all|{min: k}}. Edge `on`: success (default),
failure, always, not_failed.

Example (wordcount.toml):
  name = \"wordcount\"
  [[nodes]]
  id = \"count\"
  shards = { count = 3 }
  task = { command = [\"sh\", \"-c\", \"wc -w < part.$TASKRAFT_SHARD_INDEX > $TASKRAFT_RESULT_OUT\"] }
  [[nodes]]
  id = \"sum\"
  depends = [{ node = \"count\" }]
  task = { command = [\"sh\", \"-c\", \"cat $TASKRAFT_INPUTS_DIR/count/* | paste -sd+ | bc > $TASKRAFT_RESULT_OUT\"] }";

/// Workflows: DAGs of tasks with edge conditions, shards and results passed to children.
#[derive(Debug, clap::Subcommand)]
pub enum WorkflowCmd {
    /// Submit a workflow from a JSON or TOML file (`-` reads JSON from stdin).
    #[command(after_help = SUBMIT_HELP)]
    Submit {
        /// The spec file.
        file: String,
        /// Wait until the workflow ends, then draw it; exit 1 unless it succeeded.
        #[arg(long)]
        wait: bool,
        /// How long `--wait` waits, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Draw a workflow as text: nodes by layer, with their state, shards and parents.
    Get {
        /// Workflow id.
        id: u64,
        /// Also print each node's task results (text, or the size of binary ones).
        #[arg(long)]
        results: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a node's task result as it was written (raw bytes on stdout), e.g. to diff it.
    Result {
        /// Workflow id.
        id: u64,
        /// Node id.
        node: String,
        /// Shard index, for a sharded node (default 0).
        #[arg(long, default_value_t = 0)]
        shard: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List workflows, oldest first (a page; `--cursor` is the last id shown).
    List {
        /// Most workflows shown.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only workflows with a larger id (the `next cursor` a page prints).
        #[arg(long)]
        cursor: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a workflow: waiting nodes are cancelled and live tasks asked to stop.
    Cancel {
        /// Workflow id.
        id: u64,
        /// Why; kept on the workflow and its cancelled tasks.
        #[arg(long, allow_hyphen_values = true)]
        reason: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl WorkflowCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            WorkflowCmd::Submit { file, wait, timeout, client } => {
                let spec = super::spec_file::read_workflow_spec(Path::new(&file))?;
                let api = client.connect()?;
                let (wf, created) = api.submit_workflow(spec).await?;
                if !wait {
                    if client.output == Output::Json {
                        print_json(&wf);
                    } else {
                        let what = if created { "submitted" } else { "already known (same idempotency key):" };
                        println!("{what} workflow {} ({} nodes)", wf.id, wf.nodes.len());
                        print!("{}", draw(&wf, false));
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
                let mut last = wf;
                while !last.state.is_terminal() {
                    if tokio::time::Instant::now() >= deadline {
                        bail!("workflow {} still {} after {timeout} s", last.id, last.state.as_str());
                    }
                    // Workflows have no long-poll yet: poll the linearizable read.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    last = api.get_workflow(last.id).await?;
                }
                if client.output == Output::Json {
                    print_json(&last);
                } else {
                    print!("{}", draw(&last, true));
                }
                Ok(if last.state == WorkflowState::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            WorkflowCmd::Get { id, results, client } => {
                let wf = client.connect()?.get_workflow(id).await?;
                if client.output == Output::Json {
                    print_json(&wf);
                } else {
                    print!("{}", draw(&wf, results));
                }
                Ok(ExitCode::SUCCESS)
            }
            WorkflowCmd::Result { id, node, shard, client } => {
                let api = client.connect()?;
                let wf = api.get_workflow(id).await?;
                let Some(n) = wf.nodes.iter().find(|n| n.id == node) else {
                    let ids: Vec<&str> = wf.nodes.iter().map(|n| n.id.as_str()).collect();
                    bail!("workflow {id} has no node {node:?} (nodes: {})", ids.join(", "));
                };
                let index = if n.shards.is_some() { shard as usize } else { 0 };
                let Some(task) = n.tasks.get(index) else {
                    bail!("node {node} has no task for shard {shard} yet (it is {})", n.state.as_str());
                };
                // The task itself: a workflow answer may leave large results out.
                let task = api.get_task(task.task_id, false).await?;
                let Some(result) = &task.result else {
                    bail!("task {} of node {node} has no result (it is {})", task.id, task.state);
                };
                use std::io::Write as _;
                std::io::stdout().write_all(&result.data)?;
                Ok(ExitCode::SUCCESS)
            }
            WorkflowCmd::List { limit, cursor, client } => {
                let list = client.connect()?.list_workflows(limit, cursor).await?;
                if client.output == Output::Json {
                    print_json(&list);
                } else {
                    let rows: Vec<Vec<String>> = list
                        .workflows
                        .iter()
                        .map(|w| {
                            let nodes: Vec<String> = w.nodes.iter().map(|(s, n)| format!("{n} {s}")).collect();
                            vec![
                                w.id.to_string(),
                                escape(&w.name),
                                w.state.as_str().to_string(),
                                nodes.join(", "),
                                crate::scheduler::calendar::rfc3339_utc(w.created_ms),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "NAME", "STATE", "NODES", "CREATED"], &rows);
                    if let Some(next) = list.next_cursor {
                        println!("more: taskraft workflow list --cursor {next}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            WorkflowCmd::Cancel { id, reason, client } => {
                let wf = client.connect()?.cancel_workflow(id, reason.as_deref()).await?;
                if client.output == Output::Json {
                    print_json(&wf);
                } else {
                    println!("workflow {} is {}", wf.id, wf.state.as_str());
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn mark(state: NodeState) -> &'static str {
    match state {
        NodeState::Waiting => "·",
        NodeState::Running => "▶",
        NodeState::Succeeded => "✔",
        NodeState::Failed => "✘",
        NodeState::Skipped => "↷",
        NodeState::Cancelled => "⊘",
    }
}

/// Layer of each node: 0 for roots, else one more than its deepest parent.
fn layers(wf: &WorkflowView) -> Vec<usize> {
    let index: std::collections::BTreeMap<&str, usize> =
        wf.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut layer: Vec<Option<usize>> = vec![None; wf.nodes.len()];
    // Acyclic by construction; at most `nodes` passes settle every layer.
    for _ in 0..wf.nodes.len() {
        let mut changed = false;
        for (i, n) in wf.nodes.iter().enumerate() {
            let parents: Option<Vec<usize>> =
                n.depends.iter().map(|e| index.get(e.node.as_str()).and_then(|&p| layer[p])).collect();
            let l = parents.map(|ps| ps.into_iter().map(|p| p + 1).max().unwrap_or(0));
            if l.is_some() && layer[i] != l {
                layer[i] = l;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer.into_iter().map(|l| l.unwrap_or(0)).collect()
}

fn describe_tasks(n: &NodeView) -> String {
    let p = &n.progress;
    match (&n.shards, n.tasks.as_slice()) {
        (None, []) => String::new(),
        (None, [t]) => format!("task {}", t.task_id),
        (None, ts) => format!("tasks {}", ts.iter().map(|t| t.task_id.to_string()).collect::<Vec<_>>().join(",")),
        (Some(s), _) => {
            let mut out = format!("shards {}/{} ok", p.succeeded, p.total);
            if p.failed > 0 {
                out.push_str(&format!(", {} failed", p.failed));
            }
            if p.live > 0 {
                out.push_str(&format!(", {} live", p.live));
            }
            if let Some(par) = s.max_parallel {
                out.push_str(&format!(" (max {par} at once)"));
            }
            if let (Some(first), Some(last)) = (n.tasks.first(), n.tasks.last()) {
                out.push_str(&format!(" tasks {}..{}", first.task_id, last.task_id));
            }
            out
        }
    }
}

/// The text drawing of `workflow get`: a header, then each layer of the DAG with every node's
/// state, tasks and parents (`←`), and why a node was skipped, failed or cancelled.
pub fn draw(wf: &WorkflowView, results: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let name = if wf.name.is_empty() { String::new() } else { format!(" {:?}", wf.name) };
    let took = wf.finished_ms.map(|f| format!(" in {:.1} s", f.saturating_sub(wf.created_ms) as f64 / 1000.0));
    writeln!(out, "workflow {}{name}: {}{}", wf.id, wf.state.as_str(), took.unwrap_or_default()).unwrap();
    if let Some(r) = &wf.cancel_reason {
        writeln!(out, "  cancelled: {}", escape(r)).unwrap();
    }
    let layer = layers(wf);
    let width = wf.nodes.iter().map(|n| n.id.chars().count()).max().unwrap_or(0);
    let depth = layer.iter().copied().max().unwrap_or(0);
    for l in 0..=depth {
        let members: Vec<usize> = (0..wf.nodes.len()).filter(|&i| layer[i] == l).collect();
        if members.is_empty() {
            continue;
        }
        if l > 0 {
            writeln!(out, "  │").unwrap();
        }
        for (k, &i) in members.iter().enumerate() {
            let n = &wf.nodes[i];
            let branch = if members.len() == 1 {
                "●"
            } else if k == 0 {
                "┬"
            } else if k + 1 == members.len() {
                "└"
            } else {
                "├"
            };
            let parents: Vec<String> =
                n.depends
                    .iter()
                    .map(|e| {
                        if e.on.as_str() == "success" {
                            e.node.clone()
                        } else {
                            format!("{}({})", e.node, e.on.as_str())
                        }
                    })
                    .collect();
            let mut line =
                format!("  {branch} {} {:<width$}  {:<9}", mark(n.state), n.id, n.state.as_str(), width = width);
            let tasks = describe_tasks(n);
            if !tasks.is_empty() {
                write!(line, "  {tasks}").unwrap();
            }
            if !parents.is_empty() {
                let rule = if n.trigger == crate::scheduler::workflow::NodeRule::Any { " (any)" } else { "" };
                write!(line, "  ← {}{rule}", parents.join(", ")).unwrap();
            }
            writeln!(out, "{}", line.trim_end()).unwrap();
            if let Some(r) = &n.reason
                && matches!(n.state, NodeState::Skipped | NodeState::Failed | NodeState::Cancelled)
            {
                writeln!(out, "      {}", escape(r)).unwrap();
            }
            if results {
                for t in &n.tasks {
                    let Some(r) = &t.result else { continue };
                    let at = t.shard.map_or_else(String::new, |s| format!("[{s}]"));
                    let text = match std::str::from_utf8(&r.0) {
                        Ok(s) => format!("{:?}", s.chars().take(200).collect::<String>()),
                        Err(_) => format!("<{} bytes, binary>", r.0.len()),
                    };
                    writeln!(out, "      result{at}: {text}").unwrap();
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(json: serde_json::Value) -> WorkflowView {
        serde_json::from_value(json).unwrap()
    }

    fn node(id: &str, state: &str, depends: &[(&str, &str)], tasks: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "id": id, "state": state, "reason": null, "trigger": "all", "shards": null,
            "depends": depends.iter().map(|(n, on)| serde_json::json!({"node": n, "on": on})).collect::<Vec<_>>(),
            "progress": {"total": 1, "created": 1, "live": 0, "succeeded": 1, "failed": 0},
            "tasks": tasks, "task": {"command": ["true"]}
        })
    }

    #[test]
    fn a_diamond_is_drawn_by_layers_with_states_and_parents() {
        let t = |id: u64, state: &str| serde_json::json!([{"shard": null, "task_id": id, "state": state, "result": {"size": 2, "text": "42"}}]);
        let view = wf(serde_json::json!({
            "id": 7, "name": "diamond", "state": "running", "idempotency_key": null, "origin": "api",
            "created_ms": 1000, "updated_ms": 2000, "finished_ms": null, "cancel_reason": null, "version": 3,
            "nodes": [
                node("extract", "succeeded", &[], t(1, "succeeded")),
                node("left", "running", &[("extract", "success")], t(2, "running")),
                node("right", "failed", &[("extract", "success")], t(3, "failed")),
                node("join", "waiting", &[("left", "success"), ("right", "always")], serde_json::json!([])),
            ]
        }));
        let text = draw(&view, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "workflow 7 \"diamond\": running");
        assert!(lines[1].contains("● ✔ extract") && lines[1].contains("task 1"), "{text}");
        assert!(lines.iter().any(|l| l.contains("┬ ▶ left") && l.contains("← extract")), "{text}");
        assert!(lines.iter().any(|l| l.contains("└ ✘ right")), "{text}");
        let join = lines.iter().position(|l| l.contains("join")).unwrap();
        let left = lines.iter().position(|l| l.contains("left")).unwrap();
        assert!(join > left, "join is drawn below its parents:\n{text}");
        assert!(lines[join].contains("← left, right(always)"), "{text}");
        assert!(text.contains("result: \"42\""), "{text}");
    }
}

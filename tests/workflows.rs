//! Workflows end to end: real replicas, real worker processes, real shell tasks.
//!
//! Every task appends `start|end NODE SHARD TOKEN NANOS` to a sink file, so the tests check
//! order from what the processes did, not from what the cluster says: no child's committed
//! attempt started before its parents' committed attempts ended.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::Value;
use serde_json::json;
use taskraft::proto::workflows::WorkflowView;
use taskraft::scheduler::TaskState;
use taskraft::scheduler::workflow::{NodeState, WorkflowState};

/// Runs the `taskraft` CLI against the cluster; its stdout and whether it exited 0.
fn cli(cluster: &TestCluster, args: &[&str]) -> (bool, String) {
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.api_addr.clone()).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(args)
        .args(["--addr", &addrs.join(",")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "taskraft {args:?}: {stderr}");
    (out.status.success(), format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)))
}

/// A node task that records its start and end in `sink`, sleeping `ms` in between.
fn recorded(sink: &Path, node: &str, ms: u64, body: &str) -> Value {
    let script = format!(
        r#"rec() {{ echo "$1 {node} ${{TASKRAFT_SHARD_INDEX:--}} $TASKRAFT_FENCING_TOKEN $(date +%s%N)" >> "$SINK"; }}
rec start; sleep {secs}; {body}
rec end"#,
        secs = ms as f64 / 1000.0
    );
    json!({"command": ["sh", "-c", script], "env": {"SINK": sink.display().to_string()}})
}

/// `(event, node, shard, token) -> nanos` from the sink.
fn read_sink(sink: &Path) -> BTreeMap<(String, String, String, u64), u128> {
    let text = std::fs::read_to_string(sink).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [event, node, shard, token, ns] = f.as_slice() else { return None };
            Some(((event.to_string(), node.to_string(), shard.to_string(), token.parse().ok()?), ns.parse().ok()?))
        })
        .collect()
}

async fn wait_ended(client: &taskraft::client::Client, id: u64, timeout: Duration) -> WorkflowView {
    eventually(&format!("workflow {id} ends"), timeout, || async {
        let wf = client.get_workflow(id).await.ok()?;
        wf.state.is_terminal().then_some(wf)
    })
    .await
}

/// Checks, from the sink, that every node's committed attempts started after every parent's
/// committed attempts ended, and that every task of a succeeded node succeeded exactly once.
async fn check_order(client: &taskraft::client::Client, wf: &WorkflowView, sink: &Path) {
    let events = read_sink(sink);
    let mut committed: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for n in &wf.nodes {
        for t in &n.tasks {
            let task = client.get_task(t.task_id, false).await.unwrap();
            let wins: Vec<_> =
                task.attempts.iter().filter(|a| a.outcome.map(|o| o.as_str()) == Some("succeeded")).collect();
            if n.state == NodeState::Succeeded && task.state == TaskState::Succeeded {
                assert_eq!(wins.len(), 1, "node {} task {} succeeded {} times", n.id, t.task_id, wins.len());
            }
            let shard = t.shard.map_or("-".to_string(), |s| s.to_string());
            for a in wins {
                committed.entry(n.id.clone()).or_default().push((shard.clone(), a.fencing_token));
            }
        }
    }
    let at = |event: &str, node: &str, shard: &str, token: u64| {
        *events
            .get(&(event.to_string(), node.to_string(), shard.to_string(), token))
            .unwrap_or_else(|| panic!("no {event} record of {node}[{shard}] token {token} in the sink:\n{events:?}"))
    };
    for n in &wf.nodes {
        for (shard, token) in committed.get(&n.id).into_iter().flatten() {
            let started = at("start", &n.id, shard, *token);
            for edge in &n.depends {
                for (pshard, ptoken) in committed.get(&edge.node).into_iter().flatten() {
                    let ended = at("end", &edge.node, pshard, *ptoken);
                    assert!(
                        started > ended,
                        "{}[{shard}] started before its parent {}[{pshard}] ended",
                        n.id,
                        edge.node
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_runs_each_node_after_its_parents_and_the_cli_draws_it() {
    let mut cluster = TestCluster::start(1, &[]).await;
    cluster.add_worker("w1", 8, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("sink");
    let spec = json!({
        "name": "diamond",
        "nodes": [
            {"id": "extract", "task": recorded(&sink, "extract", 200, "")},
            {"id": "left", "task": recorded(&sink, "left", 300, ""), "depends": [{"node": "extract"}]},
            {"id": "right", "task": recorded(&sink, "right", 100, ""), "depends": [{"node": "extract"}]},
            {"id": "join", "task": recorded(&sink, "join", 0, ""), "depends": [{"node": "left"}, {"node": "right"}]},
            {"id": "on_fail", "task": recorded(&sink, "on_fail", 0, ""), "depends": [{"node": "join", "on": "failure"}]}
        ]
    });
    // Through the CLI, from a file (JSON here; TOML is covered below).
    let file = dir.path().join("diamond.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let (ok, out) = cli(&cluster, &["workflow", "submit", file.to_str().unwrap(), "--wait", "--timeout", "60"]);
    assert!(ok, "{out}");
    assert!(out.contains("workflow 1 \"diamond\": succeeded"), "{out}");
    let wf = client.get_workflow(1).await.unwrap();
    assert_eq!(wf.state, WorkflowState::Succeeded);
    let states: Vec<(&str, NodeState)> = wf.nodes.iter().map(|n| (n.id.as_str(), n.state)).collect();
    assert_eq!(
        states,
        [
            ("extract", NodeState::Succeeded),
            ("left", NodeState::Succeeded),
            ("right", NodeState::Succeeded),
            ("join", NodeState::Succeeded),
            ("on_fail", NodeState::Skipped)
        ]
    );
    check_order(&client, &wf, &sink).await;
    // The skipped handler never ran.
    assert!(!std::fs::read_to_string(&sink).unwrap().contains("on_fail"));
    let (ok, drawn) = cli(&cluster, &["workflow", "get", "1"]);
    assert!(ok, "{drawn}");
    let join = drawn.lines().find(|l| l.contains("join")).unwrap_or_default();
    assert!(join.contains("succeeded") && join.contains("← left, right"), "{drawn}");
    assert!(drawn.contains("↷ on_fail") && drawn.contains("its edge wants failure"), "{drawn}");
    let (ok, listed) = cli(&cluster, &["workflow", "list"]);
    assert!(ok && listed.contains("diamond") && listed.contains("succeeded"), "{listed}");

    // A TOML file; a failure handled by an `on: failure` edge; a cycle refused with its nodes named.
    let toml = dir.path().join("handled.toml");
    std::fs::write(
        &toml,
        r#"name = "handled"
[[nodes]]
id = "flaky"
task = { command = ["false"] }
[[nodes]]
id = "cleanup"
depends = [{ node = "flaky", on = "failure" }]
task = { command = ["true"] }
"#,
    )
    .unwrap();
    let (ok, out) = cli(&cluster, &["workflow", "submit", toml.to_str().unwrap(), "--wait", "--timeout", "60"]);
    assert!(ok, "a handled failure is a success: {out}");
    let cycle = dir.path().join("cycle.json");
    std::fs::write(
        &cycle,
        json!({"nodes": [
            {"id": "a", "task": {"command": ["true"]}, "depends": [{"node": "b"}]},
            {"id": "b", "task": {"command": ["true"]}, "depends": [{"node": "a"}]}
        ]})
        .to_string(),
    )
    .unwrap();
    let (ok, out) = cli(&cluster, &["workflow", "submit", cycle.to_str().unwrap()]);
    assert!(!ok && out.contains("cycle") && (out.contains("a → b → a") || out.contains("b → a → b")), "{out}");
    assert!(client.get_workflow(3).await.is_err(), "nothing was written for the cycle");
}

/// The README's word count: 8 map shards (each checkpointing as it goes) → one reduce. A
/// worker is SIGKILLed while it runs shards; they resume elsewhere from their checkpoints and
/// the reduce's answer is still exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_word_count_is_exact_after_a_worker_is_killed_mid_shard() {
    let mut cluster = TestCluster::start(3, &["--worker-ttl-ms", "1500"]).await;
    cluster.add_worker("w1", 4, &[]);
    cluster.add_worker("w2", 4, &[]);
    cluster.wait_workers(2).await;
    let client = cluster.client();
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("sink");
    let words = ["apple", "pear", "fig", "plum", "kiwi", "lime"];
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for part in 0..8u64 {
        let mut text = String::new();
        for line in 0..30u64 {
            let n = 1 + (part * 7 + line * 3) % 5;
            let ws: Vec<&str> = (0..n).map(|k| words[((part + line + k) % words.len() as u64) as usize]).collect();
            for w in &ws {
                *expected.entry(w).or_default() += 1;
            }
            text.push_str(&ws.join(" "));
            text.push('\n');
        }
        std::fs::write(dir.path().join(format!("part.{part}")), text).unwrap();
    }
    let map = r#"f="$DATA/part.$TASKRAFT_SHARD_INDEX"; start=0; : > acc
if [ -s "$TASKRAFT_CHECKPOINT_IN" ]; then
  start=$(head -n 1 "$TASKRAFT_CHECKPOINT_IN"); tail -n +2 "$TASKRAFT_CHECKPOINT_IN" > acc
  echo "resume map $TASKRAFT_SHARD_INDEX $start" >> "$SINK"
fi
n=0
while IFS= read -r line; do
  n=$((n+1)); [ "$n" -le "$start" ] && continue
  for w in $line; do echo "$w" >> acc; done
  { echo "$n"; cat acc; } > ckpt.tmp && mv ckpt.tmp "$TASKRAFT_CHECKPOINT_OUT"
  sleep 0.1
done < "$f"
sort acc | uniq -c | awk '{print $2, $1}' > "$TASKRAFT_RESULT_OUT""#;
    let reduce = r#"ls "$TASKRAFT_INPUTS_DIR/map" | wc -l | tr -d ' ' > inputs.count
echo "inputs $(cat inputs.count)" >> "$SINK"
cat "$TASKRAFT_INPUTS_DIR"/map/* | awk '{c[$1]+=$2} END {for (w in c) print w, c[w]}' | sort > "$TASKRAFT_RESULT_OUT""#;
    let env = json!({"DATA": dir.path().display().to_string(), "SINK": sink.display().to_string(), "LC_ALL": "C"});
    let spec = json!({
        "name": "wordcount",
        "nodes": [
            {"id": "map", "shards": {"count": 8}, "task": {"command": ["sh", "-c", map], "env": env, "retry": {"max_attempts": 3}}},
            {"id": "reduce", "depends": [{"node": "map"}], "task": {"command": ["sh", "-c", reduce], "env": env}}
        ]
    });
    let (wf, created) = client.submit_workflow(spec).await.unwrap();
    assert!(created);
    // Kill w1 once one of its shards has committed a checkpoint.
    eventually("a shard on w1 has a checkpoint", Duration::from_secs(30), || async {
        let wf = client.get_workflow(wf.id).await.ok()?;
        for t in &wf.nodes[0].tasks {
            let task = client.get_task(t.task_id, false).await.ok()?;
            let on_w1 = task.attempts.last().is_some_and(|a| a.worker_id == "w1" && a.outcome.is_none());
            if on_w1 && task.checkpoint.is_some() {
                return Some(());
            }
        }
        None
    })
    .await;
    cluster.worker("w1").kill9();
    let done = wait_ended(&client, wf.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, WorkflowState::Succeeded, "{done:?}");
    let result = done.nodes[1].tasks[0].result.as_ref().expect("reduce wrote a result");
    let want: String = expected.iter().map(|(w, c)| format!("{w} {c}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&result.0), want, "the word count is exact");
    let log = std::fs::read_to_string(&sink).unwrap();
    assert!(log.contains("inputs 8"), "the reduce saw 8 shard results: {log}");
    let resumed: Vec<&str> = log.lines().filter(|l| l.starts_with("resume map")).collect();
    assert!(!resumed.is_empty(), "a killed shard resumed from its checkpoint: {log}");
    assert!(resumed.iter().all(|l| l.split_whitespace().nth(3).is_some_and(|n| n != "0")), "{resumed:?}");
}

/// The leader is SIGKILLed while a workflow with a sharded middle runs: it still ends
/// `succeeded`, no node's task succeeds twice, and no child starts before its parents ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_survives_the_leader_being_killed() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 8, &[]);
    cluster.add_worker("w2", 8, &[]);
    cluster.wait_workers(2).await;
    let client = cluster.client();
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("sink");
    let spec = json!({
        "name": "failover",
        "nodes": [
            {"id": "a", "task": recorded(&sink, "a", 300, "")},
            {"id": "fan", "task": recorded(&sink, "fan", 800, ""), "depends": [{"node": "a"}], "shards": {"count": 6, "max_parallel": 3}},
            {"id": "side", "task": recorded(&sink, "side", 500, ""), "depends": [{"node": "a"}]},
            {"id": "z", "task": recorded(&sink, "z", 100, ""), "depends": [{"node": "fan"}, {"node": "side"}]}
        ]
    });
    let (wf, _) = client.submit_workflow(spec).await.unwrap();
    eventually("the fan-out runs", Duration::from_secs(30), || async {
        let wf = client.get_workflow(wf.id).await.ok()?;
        (wf.nodes[1].progress.live > 0).then_some(())
    })
    .await;
    let leader = cluster.wait_leader().await;
    cluster.node_mut(leader).kill9();
    let done = wait_ended(&client, wf.id, Duration::from_secs(90)).await;
    assert_eq!(done.state, WorkflowState::Succeeded, "{done:?}");
    assert!(done.nodes.iter().all(|n| n.state == NodeState::Succeeded));
    assert_eq!(done.nodes[1].tasks.len(), 6);
    check_order(&client, &done, &sink).await;
}

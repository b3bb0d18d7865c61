//! End-to-end tests of workflow schedules on real processes: a schedule created by the CLI from
//! a TOML workflow fires every second, real workers run each run's nodes in order, and a pause
//! stops it; the API takes exactly one of `task` and `workflow` and parses node tasks like task
//! submits.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::Value;
use serde_json::json;
use taskraft::client::Client;
use taskraft::proto::schedules::RunPage;
use taskraft::scheduler::Task;
use taskraft::scheduler::TaskOrigin;
use taskraft::scheduler::TaskState;
use taskraft::scheduler::schedule::RunKind;

/// Runs the `taskraft` CLI against the cluster; its stdout, parsed as JSON.
fn cli(cluster: &TestCluster, args: &[&str]) -> Value {
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.api_addr.clone()).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(args)
        .args(["--addr", &addrs.join(","), "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "taskraft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Every task of the cluster, in id order.
async fn all_tasks(client: &Client) -> Vec<Task> {
    let (mut tasks, mut cursor) = (Vec::new(), None);
    for _ in 0..1000 {
        let page = client.list_tasks(None, 1000, cursor).await.unwrap();
        tasks.extend(page.tasks);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return tasks,
        }
    }
    panic!("the task cursor never ended");
}

/// Every run of a schedule, through `GET /v1/schedules/{id}/runs` page by page.
async fn all_runs(client: &Client, schedule: u64) -> RunPage {
    let mut all = RunPage { runs: Vec::new(), next_cursor: None };
    let mut cursor = None;
    for _ in 0..1000 {
        let page = client.schedule_runs(schedule, 2, cursor).await.unwrap();
        all.runs.extend(page.runs);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
    panic!("the runs cursor never ended");
}

const NIGHTLY: &str = r#"
# Two nodes: load runs once extract succeeded.
[[nodes]]
id = "extract"
task = { command = ["sh", "-c", "echo extracted"], labels = { role = "etl" } }

[[nodes]]
id = "load"
task = { command = ["sh", "-c", "echo loaded"], max_attempts = 2 }
depends = [{ node = "extract" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_a_two_node_workflow_every_second_until_paused() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 4, &["--label", "role=etl"]);
    cluster.wait_workers(1).await;
    let client = cluster.client().with_timeout(Duration::from_secs(20));

    let file = cluster.dir.path().join("nightly.toml");
    std::fs::write(&file, NIGHTLY).unwrap();
    let created = cli(
        &cluster,
        &["schedule", "create", "--name", "nightly", "--every", "1s", "--workflow", file.to_str().unwrap()],
    );
    let id = created["id"].as_u64().unwrap();
    assert!(created.get("task").is_none(), "a workflow schedule shows no task: {created}");
    assert_eq!(created["workflow"]["nodes"][0]["task"]["constraints"]["role"], "etl", "{created}");
    assert_eq!(created["workflow"]["nodes"][1]["task"]["retry"]["max_attempts"], 2, "{created}");
    let created_ms = created["created_ms"].as_u64().unwrap();

    // At least two runs end, each a workflow whose nodes both succeeded.
    eventually("two run workflows succeeded", Duration::from_secs(60), || async {
        let page = client.schedule_runs(id, 100, None).await.ok()?;
        (page.runs.iter().filter(|r| r.state == "succeeded").count() >= 2).then_some(())
    })
    .await;
    let paused = client.pause_schedule(id, Some("test over")).await.unwrap();

    // Once paused, nothing more fires. A witness schedule on the same leader loop fires every
    // second: after three of its fires, a paused schedule that could fire would have.
    let (witness, _) = client
        .create_schedule(json!({"name": "witness", "every_ms": 1000, "overlap": "allow", "task": {"executor": "noop"}}))
        .await
        .unwrap();
    eventually("the witness fired three times", Duration::from_secs(30), || async {
        let w = client.get_schedule(witness.id).await.ok()?;
        (w.counters.fired >= 3).then_some(())
    })
    .await;
    let after = client.get_schedule(id).await.unwrap();
    assert_eq!(after.counters, paused.counters, "a paused schedule fired: {after:?}");
    assert_eq!(after.runs, paused.runs, "a paused schedule started runs");
    assert_eq!(after.last_nominal_ms, paused.last_nominal_ms);

    // Runs still live at the pause end on their own.
    eventually("every run workflow ended", Duration::from_secs(30), || async {
        let page = all_runs(&client, id).await;
        page.runs.iter().all(|r| r.finished_ms.is_some()).then_some(())
    })
    .await;
    let runs = all_runs(&client, id).await;
    assert_eq!(runs.runs.len() as u64, after.runs, "every run is listed: {:?}", runs.runs);
    let cli_runs = cli(&cluster, &["schedule", "runs", &id.to_string(), "--limit", "1000"]);
    assert_eq!(cli_runs["runs"].as_array().unwrap().len(), runs.runs.len(), "{cli_runs}");

    // Each run: a workflow of this schedule, identified by its nominal second.
    let tasks = all_tasks(&client).await;
    let mut nodes: BTreeMap<(u64, u32), Vec<&Task>> = BTreeMap::new();
    for t in &tasks {
        if let TaskOrigin::Workflow { workflow, node } = t.spec.origin {
            nodes.entry((workflow, node)).or_default().push(t);
        }
    }
    let mut nominal = Vec::new();
    for r in &runs.runs {
        assert_eq!(r.kind, RunKind::Workflow, "{r:?}");
        assert!(!r.manual, "{r:?}");
        assert!(r.nominal_ms >= created_ms && r.nominal_ms <= after.last_nominal_ms.unwrap(), "{r:?}");
        assert_eq!((r.nominal_ms - runs.runs[0].nominal_ms) % 1000, 0, "runs off the 1 s grid: {r:?}");
        nominal.push(r.nominal_ms);
        assert_eq!(r.state, "succeeded", "{r:?}");
        let [extract] = nodes[&(r.id, 0)][..] else { panic!("node extract of workflow {}: {:?}", r.id, nodes) };
        let [load] = nodes[&(r.id, 1)][..] else { panic!("node load of workflow {}: {:?}", r.id, nodes) };
        assert_eq!(extract.spec.name, "nightly/extract");
        assert_eq!((extract.state, load.state), (TaskState::Succeeded, TaskState::Succeeded));
        // In order: load was created once extract had ended.
        assert!(load.created_ms >= extract.finished_ms.unwrap(), "load started before extract ended: {r:?}");
        assert_eq!(extract.attempts[0].worker_id, "w1");
    }
    assert!(nominal.windows(2).all(|w| w[0] < w[1]), "a nominal time fired twice, or out of order: {nominal:?}");
    assert!(nominal.len() >= 2);
    eprintln!("workflow schedule: {} runs, counters {:?}", nominal.len(), after.counters);

    // A workflow schedule's runs are not tasks: the task listing points elsewhere.
    let err = client.list_schedule_runs(id, 10, None).await.unwrap_err().to_string();
    assert!(err.contains(&format!("/v1/schedules/{id}/runs")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_a_task_or_a_workflow_and_parses_node_tasks_like_submits() {
    let cluster = TestCluster::start(1, &[]).await;
    let client = cluster.client();
    let node = |id: &str| json!({"id": id, "task": {"command": ["true"]}});
    let cases = [
        (json!({"every_ms": 1000}), "task"),
        (json!({"every_ms": 1000, "task": {"executor": "noop"}, "workflow": {"nodes": [node("a")]}}), "workflow"),
        (json!({"every_ms": 1000, "workflow": {"nodes": []}}), "workflow.nodes"),
        (json!({"every_ms": 1000, "workflow": {"nodes": [node("a"), node("a")]}}), "workflow.nodes[1].id"),
        (
            json!({"every_ms": 1000, "workflow": {"nodes": [{"id": "a", "task": {"command": []}}]}}),
            "workflow.nodes[0].task.command",
        ),
        (json!({"every_ms": 1000, "workflow": {"idempotency_key": "k", "nodes": [node("a")]}}), "idempotency_key"),
        (
            json!({"every_ms": 1000, "workflow": {"nodes": [
                {"id": "a", "task": {"command": ["true"]}, "depends": [{"node": "b"}]},
                {"id": "b", "task": {"command": ["true"]}, "depends": [{"node": "a"}]},
            ]}}),
            "cycle",
        ),
    ];
    for (body, field) in cases {
        let err = client.create_schedule(body.clone()).await.unwrap_err().to_string();
        assert!(err.contains("422") || err.contains("invalid"), "{body}: {err}");
        assert!(err.contains(field), "{body}: the error must name {field}: {err}");
    }
    assert!(client.list_schedules().await.unwrap().schedules.is_empty(), "nothing was created");

    // Node tasks take the task shorthands: `taskraft:sleep`, `labels`, `max_attempts`.
    let body = json!({"name": "wf", "every_ms": 3_600_000, "start": "2100-01-01T00:00:00Z", "workflow": {"nodes": [
        {"id": "nap", "task": {"command": ["taskraft:sleep", "10"], "labels": {"zone": "a"}, "max_attempts": 3}},
        {"id": "after", "task": {"command": ["true"]}, "depends": [{"node": "nap", "on": "always"}]},
    ]}});
    let (s, created) = client.create_schedule(body.clone()).await.unwrap();
    assert!(created);
    let wf = s.workflow.clone().expect("the schedule shows its workflow");
    assert!(s.task.is_none(), "{s:?}");
    let nap = &wf.nodes[0].task;
    assert_eq!(nap.executor.as_str(), "sleep");
    assert_eq!(nap.command, vec!["10".to_string()]);
    assert_eq!(nap.constraints.get("zone").map(String::as_str), Some("a"));
    assert_eq!(nap.retry.max_attempts, 3);

    // A trigger starts a run workflow (no worker here: it stays live).
    let started = client.trigger_schedule(s.id).await.unwrap();
    let [run] = started.started[..] else { panic!("{started:?}") };
    let page = client.schedule_runs(s.id, 10, None).await.unwrap();
    assert_eq!(page.runs.len(), 1, "{page:?}");
    let r = &page.runs[0];
    assert_eq!((r.kind, r.id, r.manual, r.state.as_str()), (RunKind::Workflow, run, true, "running"), "{r:?}");
    let view = client.get_schedule(s.id).await.unwrap();
    assert_eq!(view.live_runs, vec![run]);

    // Once it started runs, a schedule keeps its kind.
    let mut as_task = body.clone();
    as_task.as_object_mut().unwrap().remove("workflow");
    as_task["task"] = json!({"executor": "noop"});
    let err = client.update_schedule(s.id, as_task).await.unwrap_err().to_string();
    assert!(err.contains("409") || err.contains("invalid_transition"), "{err}");
    assert!(err.contains("runs stay workflows"), "{err}");
    // Another workflow is fine.
    let mut other = body.clone();
    other["workflow"]["nodes"] = json!([node("only")]);
    let updated = client.update_schedule(s.id, other).await.unwrap();
    assert_eq!(updated.workflow.unwrap().nodes.len(), 1);

    // Deleting with cancel_runs cancels the live run workflow.
    let deleted = client.delete_schedule(s.id, true).await.unwrap();
    assert_eq!(deleted.cancelled, vec![run]);
    let nap_task = all_tasks(&client)
        .await
        .into_iter()
        .find(|t| t.spec.origin == TaskOrigin::Workflow { workflow: run, node: 0 })
        .expect("the run's root task");
    assert_eq!(nap_task.state, TaskState::Cancelled, "{nap_task:?}");
    let err = client.schedule_runs(s.id, 10, None).await.unwrap_err().to_string();
    assert!(err.contains("404") || err.contains("not_found"), "{err}");
}

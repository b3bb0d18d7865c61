//! End-to-end tests of cluster-wide concurrency limits on real processes: the API and CLI, the
//! "why pending" explanation, and the promise itself, measured from inside the tasks: every
//! task appends `start <id> <ns>` and `end <id> <ns>` to a shared file, and the file must never
//! show more tasks of one key running at once than its limit, not even across a leader SIGKILL.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::Value;
use serde_json::json;
use taskraft::client::Client;
use taskraft::client::ClientError;
use taskraft::scheduler::TaskState;

/// How long each probe task runs.
const RUN_MS: u64 = 300;

/// A task with concurrency key `key` that logs its start and end (ns since the epoch) to `log`.
fn probe(log: &Path, key: &str) -> Value {
    let log = log.display();
    let secs = RUN_MS as f64 / 1000.0;
    let script = format!(
        r#"echo "start $TASKRAFT_TASK_ID $(date +%s%N)" >> "{log}"
sleep {secs}
echo "end $TASKRAFT_TASK_ID $(date +%s%N)" >> "{log}""#
    );
    json!({"name": "probe", "command": ["sh", "-c", script], "concurrency_key": key})
}

/// The most intervals of `log` open at once, and how many intervals it holds. Every start must
/// have its end: an attempt that vanished mid-run would hide a real overlap.
fn max_overlap(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).expect("read the probe log");
    let mut open: std::collections::BTreeMap<u64, u128> = Default::default();
    let mut events: Vec<(u128, i32)> = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [what, id, ns] = parts[..] else { panic!("bad probe line {line:?}") };
        let (id, ns): (u64, u128) = (id.parse().expect("task id"), ns.parse().expect("date +%s%N"));
        match what {
            "start" => assert!(open.insert(id, ns).is_none(), "task {id} started twice without ending:\n{text}"),
            "end" => {
                let start = open.remove(&id).unwrap_or_else(|| panic!("task {id} ended without a start:\n{text}"));
                assert!(start <= ns, "task {id} ended before it started:\n{text}");
                events.push((start, 1));
                events.push((ns, -1));
            }
            other => panic!("bad probe line {other:?}"),
        }
    }
    assert!(open.is_empty(), "tasks {:?} never logged their end:\n{text}", open.keys());
    // At equal times an end sorts before a start: touching intervals do not overlap.
    events.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in &events {
        now += delta;
        most = most.max(now);
    }
    (most as usize, events.len() / 2)
}

async fn submit_probes(client: &Client, log: &Path, key: &str, n: usize) -> Vec<u64> {
    let specs = (0..n).map(|_| probe(log, key)).collect();
    client.submit_batch(specs).await.expect("submit the probes").into_iter().map(|t| t.id).collect()
}

/// Waits until every task in `ids` succeeded (any other end fails the test).
async fn wait_succeeded(client: &Client, ids: &[u64], within: Duration) {
    eventually(&format!("tasks {ids:?} succeeded"), within, || async {
        for &id in ids {
            let t = client.get_task(id, false).await.ok()?;
            match t.state {
                TaskState::Succeeded => {}
                TaskState::Failed | TaskState::Cancelled => panic!("task {id} ended {:?}: {t:?}", t.state),
                _ => return None,
            }
        }
        Some(())
    })
    .await
}

fn taskraft(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_taskraft")).args(args).output().expect("run taskraft")
}

fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "taskraft failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn raw(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url).timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_running_tasks_of_a_key_run_at_once_even_across_a_leader_kill() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 8, &[]);
    cluster.add_worker("w2", 8, &[]);
    cluster.wait_workers(2).await;
    let client = cluster.client();
    let limit = client.set_limit("db", 2).await.expect("set the limit");
    assert_eq!((limit.key.as_str(), limit.max_running), ("db", Some(2)));

    // 1. Six tasks, sixteen free slots, two permits.
    let log = cluster.dir.path().join("steady.log");
    let ids = submit_probes(&client, &log, "db", 6).await;
    // A task held back says so (`GET /v1/tasks/{id}`), while it waits.
    let why = eventually("a task held back by the limit", Duration::from_secs(20), || async {
        for &id in &ids {
            let view = client.get_task_view(id, false).await.ok()?;
            if let Some(why) = view.pending_reason.filter(|w| w.contains("concurrency limit")) {
                return Some(why);
            }
        }
        None
    })
    .await;
    assert!(why.starts_with("held back by concurrency limit \"db\": 2 of 2 running"), "{why}");
    wait_succeeded(&client, &ids, Duration::from_secs(60)).await;
    let (most, runs) = max_overlap(&log);
    eprintln!("steady: {runs} runs, at most {most} at once");
    assert_eq!(runs, 6, "one run per task");
    assert!(most <= 2, "{most} tasks of key db ran at once; the limit is 2");
    assert_eq!(most, 2, "the limit was never used in full: the tasks ran one at a time");
    assert!(client.get_limit("db").await.unwrap().running.is_empty(), "every permit came back");

    // 2. The same while the leader is killed mid-way: permits are in the replicated state, so
    //    the new leader's dispatcher, which remembers nothing, still hands out at most two.
    let log = cluster.dir.path().join("failover.log");
    let ids = submit_probes(&client, &log, "db", 6).await;
    eventually("the first probes running", Duration::from_secs(20), || async {
        std::fs::read_to_string(&log).ok().filter(|t| t.contains("start")).map(|_| ())
    })
    .await;
    let leader = cluster.wait_leader().await;
    let pid = cluster.node(leader).pid();
    cluster.node_mut(leader).kill9();
    let killed_ms = taskraft::util::now_ms();
    assert!(!common::process_alive(pid), "the leader (pid {pid}) was killed");
    let survivors =
        Client::new(cluster.nodes.iter().filter(|n| n.id != leader).map(|n| n.api_addr.clone()).collect()).unwrap();
    let new_leader = cluster.wait_leader().await;
    assert_ne!(new_leader, leader);
    wait_succeeded(&survivors, &ids, Duration::from_secs(90)).await;
    let (most, runs) = max_overlap(&log);
    eprintln!("leader {leader} killed, {new_leader} leads: {runs} runs, at most {most} at once");
    assert!(runs >= 6, "every task ran ({runs} runs)");
    assert!(most <= 2, "{most} tasks of key db ran at once across the leader change; the limit is 2");
    assert_eq!(most, 2, "the limit was never used in full across the leader change");
    // The test is only worth something if the new leader did part of the dispatching.
    let tasks: Vec<_> = futures::future::join_all(ids.iter().map(|&id| survivors.get_task(id, false))).await;
    let after_kill = tasks.iter().filter(|t| t.as_ref().unwrap().attempts[0].assigned_ms > killed_ms).count();
    eprintln!("{after_kill} of 6 probes were assigned by the new leader");
    assert!(after_kill > 0, "every probe was assigned before the leader was killed: {tasks:?}");
    assert!(survivors.get_limit("db").await.unwrap().running.is_empty(), "every permit came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_through_the_api_and_the_cli() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 4, &[]);
    cluster.wait_workers(1).await;
    let leader = cluster.wait_leader().await;
    let followers: Vec<String> =
        cluster.nodes.iter().filter(|n| n.id != leader).map(|n| format!("http://{}", n.api_addr)).collect();
    let (f1, f2) = (&followers[0], &followers[1]);
    let addrs: String = cluster.nodes.iter().map(|n| n.api_addr.clone()).collect::<Vec<_>>().join(",");
    let (put, get, delete) = (reqwest::Method::PUT, reqwest::Method::GET, reqwest::Method::DELETE);

    // 1. Validation: a 422 naming the field, nothing written.
    let (s, v) = raw(put.clone(), format!("{f1}/v1/limits/db"), Some(json!({"max_running": 1_000_001}))).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("max_running:"), "{v}");
    let (s, v) = raw(put.clone(), format!("{f1}/v1/limits/db"), Some(json!({"max_running": -1}))).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("max_running"), "{v}");
    let (s, v) = raw(put.clone(), format!("{f1}/v1/limits/db"), Some(json!({"max": 3}))).await;
    assert_eq!(s, 422, "{v}");
    let long = "k".repeat(257);
    let (s, v) = raw(put.clone(), format!("{f1}/v1/limits/{long}"), Some(json!({"max_running": 1}))).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("key:"), "{v}");
    let (s, v) = raw(get.clone(), format!("{f1}/v1/limits"), None).await;
    assert_eq!((s, v), (200, json!({"limits": []})), "nothing was written");

    // 2. Set through one follower, read at once through the other (reads are linearizable).
    let (s, v) = raw(put.clone(), format!("{f1}/v1/limits/db%2Fbackup"), Some(json!({"max_running": 0}))).await;
    assert_eq!((s, &v), (200, &json!({"key": "db/backup", "max_running": 0, "running": []})), "{v}");
    let (s, v) = raw(get.clone(), format!("{f2}/v1/limits/db%2Fbackup"), None).await;
    assert_eq!((s, v["max_running"].as_u64()), (200, Some(0)), "{v}");
    let (s, v) = raw(get.clone(), format!("{f2}/v1/limits/nothing-here"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")), "{v}");
    let (s, v) = raw(delete.clone(), format!("{f2}/v1/limits/nothing-here"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")), "{v}");

    // 3. A limit of 0 holds its tasks; `task get` says why, in JSON and in the CLI.
    let (s, v) = raw(
        reqwest::Method::POST,
        format!("{f1}/v1/tasks"),
        Some(json!({"command": ["true"], "concurrency_key": "db/backup"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["spec"]["concurrency_key"], "db/backup", "the spec keeps its key: {v}");
    let held = v["id"].as_u64().unwrap();
    let (s, v) = raw(get.clone(), format!("{f2}/v1/tasks/{held}"), None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("pending")), "{v}");
    let why = v["pending_reason"].as_str().unwrap();
    assert!(why.starts_with("held back by concurrency limit \"db/backup\": 0 of 0 running"), "{why}");
    let shown = stdout_of(&taskraft(&["task", "get", &held.to_string(), "--addr", &addrs]));
    assert!(shown.contains("concurrency: db/backup"), "{shown}");
    assert!(shown.contains("waiting:     held back by concurrency limit \"db/backup\": 0 of 0 running"), "{shown}");

    // 4. The CLI: set, list, get, and submit with --concurrency-key.
    let shown = stdout_of(&taskraft(&["limit", "set", "reports", "1", "--addr", &addrs]));
    assert!(shown.contains("max running: 1"), "{shown}");
    let out = taskraft(&[
        "task",
        "submit",
        "--concurrency-key",
        "reports",
        "--output",
        "json",
        "--addr",
        &addrs,
        "--",
        "sleep",
        "60",
    ]);
    let long_task: Value = serde_json::from_str(&stdout_of(&out)).expect("task JSON");
    let long_id = long_task["id"].as_u64().unwrap();
    assert_eq!(long_task["spec"]["concurrency_key"], "reports", "{long_task}");
    let client = cluster.client();
    eventually("the reports task holds a permit", Duration::from_secs(20), || async {
        (client.get_limit("reports").await.ok()?.running == [long_id]).then_some(())
    })
    .await;
    let shown = stdout_of(&taskraft(&["limit", "list", "--addr", &addrs]));
    let rows: Vec<Vec<&str>> = shown.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["KEY", "MAX", "RUNNING", "TASKS"], "{shown}");
    assert!(rows.contains(&vec!["db/backup", "0", "0", "-"]), "{shown}");
    assert!(rows.contains(&vec!["reports", "1", "1", long_id.to_string().as_str()]), "{shown}");
    let shown = stdout_of(&taskraft(&["limit", "get", "reports", "--addr", &addrs, "--output", "json"]));
    let view: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(view, json!({"key": "reports", "max_running": 1, "running": [long_id]}));

    // 5. Removing a limit: the key in use stays visible with no maximum while its task runs,
    //    and the held task is released at once.
    let shown = stdout_of(&taskraft(&["limit", "delete", "reports", "--addr", &addrs]));
    assert!(shown.contains("max running: none (unlimited)"), "{shown}");
    let (s, v) = raw(get.clone(), format!("{f2}/v1/limits/reports"), None).await;
    assert_eq!((s, &v), (200, &json!({"key": "reports", "max_running": null, "running": [long_id]})), "{v}");
    let out = taskraft(&["limit", "get", "nobody", "--addr", &addrs]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"), "{}", String::from_utf8_lossy(&out.stderr));
    let gone = client.delete_limit("db/backup").await.expect("delete through the client");
    assert_eq!(gone.max_running, None);
    let done = client.wait(held, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "the held task ran once its limit was removed: {done:?}");
    match client.delete_limit("db/backup").await {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("a second delete is a 404, not {other:?}"),
    }
    client.cancel(long_id, Some("test over")).await.unwrap();
}

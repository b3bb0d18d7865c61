//! End to end: a workflow child reads its parents' results from `$TASKRAFT_INPUTS_DIR`.
//!
//! No HTTP route submits workflows yet, so the test runs the replica in this process
//! (`Server::start`, the composition root `taskraft server` runs) and proposes the workflow
//! through its own write path (`Node::write`). Everything after that is the real path: the
//! leader assigns the node tasks, a `taskraft worker` process long-polls its inbox over HTTP
//! (the assignment carries the inputs), writes them under the attempt directory, runs `sh`,
//! and the results come back committed with the completions.

mod common;

use std::process::Child;
use std::process::Command as Process;
use std::process::Stdio;
use std::time::Duration;

use common::eventually;
use common::free_port;
use taskraft::client::Client;
use taskraft::config::ServerArgs;
use taskraft::config::ServerConfig;
use taskraft::scheduler::Command;
use taskraft::scheduler::Response;
use taskraft::scheduler::TaskState;
use taskraft::scheduler::Workflow;
use taskraft::scheduler::WorkflowSpec;
use taskraft::scheduler::WorkflowState;
use taskraft::server::Server;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest wait for anything in this test.
const WAIT: Duration = Duration::from_secs(60);

/// A `taskraft worker` process, killed (by its pid) when dropped.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A node whose `sh` task runs `script`, depending on `depends` (on success).
fn sh_node(id: &str, script: &str, depends: &[&str]) -> serde_json::Value {
    let depends: Vec<_> = depends.iter().map(|d| serde_json::json!({ "node": d })).collect();
    serde_json::json!({ "id": id, "task": { "command": ["sh", "-c", script] }, "depends": depends })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_child_reads_plain_and_sharded_parent_results_from_inputs_dir() {
    let dir = tempfile::Builder::new().prefix("taskraft-test-").tempdir().unwrap();
    let api_addr = format!("127.0.0.1:{}", free_port());
    let args = ServerArgs {
        node_id: Some(1),
        api_addr: Some(api_addr.clone()),
        raft_addr: Some(format!("127.0.0.1:{}", free_port())),
        data_dir: Some(dir.path().join("node-1")),
        cluster_secret: Some("test-secret".into()),
        auth: Some(false),
        bootstrap: Some(true),
        storage: Some("memory".into()),
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    let server = Server::start(ServerConfig::resolve(args, None).unwrap(), shutdown.clone()).await.unwrap();
    let node = server.node.clone();
    let serving = tokio::spawn(server.run_until_shutdown());
    eventually("a ready leader", WAIT, || async { (node.is_leader() && node.leader.is_ready()).then_some(()) }).await;

    let worker_log = std::fs::File::create(dir.path().join("w1.log")).unwrap();
    let worker = Process::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(["worker", "--cluster", &api_addr, "--id", "w1", "--slots", "4", "--work-dir"])
        .arg(dir.path().join("w1"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(worker_log.try_clone().unwrap())
        .stderr(worker_log)
        .spawn()
        .expect("spawn taskraft worker");
    let _worker = WorkerProcess(worker);

    // a: a plain parent; m: 3 shards, each writes its index; b: a binary result (base64 on the
    // wire); quiet: no result. join reads all of a, m and b; after_quiet gets an empty dir.
    let join = r#"set -e
        in="$TASKRAFT_INPUTS_DIR"
        { cat "$in/a"; echo; for i in 0 1 2; do cat "$in/m/$i"; echo; done
          od -An -tx1 "$in/b" | tr -d ' \n'; echo; ls "$in" | tr '\n' ' '; } > "$TASKRAFT_RESULT_OUT""#;
    let after_quiet = r#"in="$TASKRAFT_INPUTS_DIR"
        [ -d "$in" ] && printf 'entries=%s' "$(ls -A "$in" | wc -l)" > "$TASKRAFT_RESULT_OUT""#;
    let mut m = sh_node("m", r#"printf "m$TASKRAFT_SHARD_INDEX/$TASKRAFT_SHARD_COUNT" > "$TASKRAFT_RESULT_OUT""#, &[]);
    m["shards"] = serde_json::json!({ "count": 3 });
    let spec = serde_json::json!({
        "name": "inputs",
        "nodes": [
            sh_node("a", r#"printf 'A' > "$TASKRAFT_RESULT_OUT""#, &[]),
            m,
            sh_node("b", r#"printf '\377\000\n' > "$TASKRAFT_RESULT_OUT""#, &[]),
            sh_node("quiet", "true", &[]),
            sh_node("join", join, &["a", "m", "b"]),
            sh_node("after_quiet", after_quiet, &["quiet"]),
        ],
    });
    let spec: WorkflowSpec = serde_json::from_value(spec).unwrap();
    let cmd = Command::SubmitWorkflow { request_id: None, now_ms: taskraft::util::now_ms(), spec: Box::new(spec) };
    let id = match node.write(cmd, Instant::now() + Duration::from_secs(10)).await.unwrap() {
        Response::Workflow { workflow, created: true } => workflow.id,
        other => panic!("unexpected answer to the submit: {other:?}"),
    };

    let ended: Workflow = eventually("the workflow to end", WAIT, || async {
        node.view.read(|a| a.state.workflow(id).filter(|w| w.state.is_terminal()).cloned())
    })
    .await;
    assert_eq!(ended.state, WorkflowState::Succeeded, "{ended:#?}");

    let client = Client::new(vec![api_addr.clone()]).unwrap().with_timeout(Duration::from_secs(10));
    let result_of = |node_id: &str| {
        let task = ended.node(node_id).expect("node").tasks[0];
        let client = &client;
        async move {
            let task = client.get_task(task, false).await.unwrap();
            assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
            String::from_utf8(task.result.expect("a result").data).unwrap()
        }
    };
    assert_eq!(result_of("join").await, "A\nm0/3\nm1/3\nm2/3\nff000a\na b m ");
    assert_eq!(result_of("after_quiet").await, "entries=0");

    shutdown.cancel();
    tokio::time::timeout(WAIT, serving).await.expect("the replica stops").unwrap().unwrap();
}

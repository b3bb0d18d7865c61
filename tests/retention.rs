//! End-to-end tests of retention on real processes: finished tasks are forgotten after the
//! horizon and answer 404 `forgotten`, live ones are kept, and a replica that was down while
//! the cluster forgot catches up through a snapshot to the same state.

mod common;

use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::json;
use taskraft::client::Client;
use taskraft::proto::ErrorCode;
use taskraft::scheduler::TaskState;

/// A task that runs until `file` exists: live for exactly as long as the test wants.
fn wait_for_file(file: &std::path::Path) -> serde_json::Value {
    let script = format!("while [ ! -e {} ]; do sleep 0.05; done; echo released", file.display());
    json!({"command": ["sh", "-c", script], "name": "held"})
}

/// Waits until task `id` answers `forgotten` on `client` (stale reads read that replica's own
/// state).
async fn wait_forgotten(client: &Client, id: u64, stale: bool) {
    eventually(&format!("task {id} forgotten"), Duration::from_secs(30), || async {
        match client.get_task(id, stale).await {
            Err(e) if e.code() == Some(ErrorCode::Forgotten) => Some(()),
            _ => None,
        }
    })
    .await;
}

async fn wait_state(client: &Client, id: u64, state: TaskState) {
    eventually(&format!("task {id} {state}"), Duration::from_secs(30), || async {
        (client.get_task(id, false).await.ok()?.state == state).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_are_forgotten_after_the_horizon_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(3, &["--retention-ms", "1500"]).await;
    cluster.add_worker("w1", 4, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    let (quick, _) =
        client.submit(json!({"command": ["true"], "name": "quick", "idempotency_key": "nightly-1"})).await.unwrap();
    let release = dir.path().join("release");
    let (held, _) = client.submit(wait_for_file(&release)).await.unwrap();
    wait_state(&client, quick.id, TaskState::Succeeded).await;
    wait_state(&client, held.id, TaskState::Running).await;

    wait_forgotten(&client, quick.id, false).await;
    let err = client.get_task(quick.id, false).await.unwrap_err();
    assert!(err.to_string().contains("retention horizon"), "{err}");
    // Never created: still `not_found`, not `forgotten`.
    let unknown = client.get_task(999_999, false).await.unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::NotFound));
    // The live task, older than the forgotten one, is kept.
    let kept = client.get_task(held.id, false).await.unwrap();
    assert_eq!(kept.state, TaskState::Running);
    // The idempotency key went with its task: the same key now creates a new task.
    let (again, created) =
        client.submit(json!({"command": ["true"], "name": "quick", "idempotency_key": "nightly-1"})).await.unwrap();
    assert!(created && again.id > held.id, "a forgotten key names nothing: {again:?}");
    // Cancelling a forgotten task says so.
    let cancel = client.cancel(quick.id, None).await.unwrap_err();
    assert_eq!(cancel.code(), Some(ErrorCode::Forgotten));
    // Once the held task ends, it goes too.
    std::fs::write(&release, b"").unwrap();
    wait_state(&client, held.id, TaskState::Succeeded).await;
    wait_forgotten(&client, held.id, false).await;
    // Every replica forgot the same tasks (stale reads of each replica's own state).
    for id in 1..=3 {
        let replica = cluster.node(id).client();
        wait_forgotten(&replica, quick.id, true).await;
        wait_forgotten(&replica, held.id, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_after_a_forget_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster::start(3, &["--snapshot-logs", "50", "--retention-ms", "1500"]).await;
    cluster.add_worker("w1", 8, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    cluster.node_mut(3).kill9();
    let release = dir.path().join("release");
    let (held, _) = client.submit(wait_for_file(&release)).await.unwrap();
    let noop = |i: usize| json!({"executor": "noop", "command": [], "name": format!("n{i}")});
    let first: Vec<u64> =
        client.submit_batch((0..40).map(noop).collect()).await.unwrap().iter().map(|t| t.id).collect();
    for k in 0..150 {
        client.submit(noop(100 + k)).await.unwrap();
    }
    for &id in &first {
        wait_forgotten(&client, id, false).await;
    }
    let leader = cluster.wait_leader().await;
    // Restart node 3 only once the leader purged the log it missed: the snapshot, taken after
    // the forgets, is then its only way to catch up.
    let status = eventually("the leader purged its log past node 3", Duration::from_secs(30), || async {
        let s = cluster.status_of(leader).await?;
        (s["purged"].as_u64().unwrap_or(0) >= 100).then_some(s)
    })
    .await;
    cluster.node_mut(3).start();
    let target = status["last_applied"].as_u64().unwrap();
    cluster.wait_applied(3, target).await;
    let lagger = cluster.node(3).client();
    for &id in &first {
        let err = lagger.get_task_from(0, id, true).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forgotten), "node 3, task {id}: {err}");
    }
    let kept = lagger.get_task_from(0, held.id, true).await.expect("node 3 keeps the live task");
    assert!(matches!(kept.state, TaskState::Running | TaskState::Assigned), "{kept:?}");
    let log = std::fs::read_to_string(&cluster.node(3).log).unwrap();
    assert!(log.contains("installed snapshot"), "node 3 should have caught up through a snapshot");
    // It goes on applying forgets like the others once caught up.
    std::fs::write(&release, b"").unwrap();
    wait_state(&client, held.id, TaskState::Succeeded).await;
    wait_forgotten(&lagger, held.id, true).await;
}

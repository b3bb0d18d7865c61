//! End-to-end tests of `taskraft snapshot save` and `snapshot restore` on real processes.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::Value;
use serde_json::json;
use taskraft::client::Client;
use taskraft::proto::tokens::CreateToken;
use taskraft::proto::tokens::generate_token;
use taskraft::scheduler::AttemptOutcome;
use taskraft::scheduler::Role;
use taskraft::scheduler::TaskState;

/// Tasks in the backup, created with the batch endpoint.
const TASKS: u64 = 10_000;
const BATCH: u64 = 2_000;

/// Runs the `taskraft` binary with `args`.
/// A worker token for worker `w1` (the only worker id these tests use), named `name`.
async fn worker_token(admin: &Client, name: &str) -> String {
    let req = CreateToken { name: name.into(), role: Role::Worker, worker_id: Some("w1".into()) };
    admin.create_token(&req).await.expect("create a worker token").token
}

fn taskraft(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_taskraft")).args(args).output().expect("run taskraft")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A task that runs long on its first attempt and ends at once on any later one.
fn long_task() -> Value {
    json!({
        "name": "long",
        "command": ["sh", "-c", "if [ \"$TASKRAFT_ATTEMPT\" = 1 ]; then sleep 120; fi; echo attempt $TASKRAFT_ATTEMPT done"],
        "labels": {"pool": "long"},
    })
}

/// Fills a 3-replica cluster with 10,000 pending tasks, one running task and three schedules,
/// saves a backup into `file` through a follower (forwarded to the leader), and returns the
/// running task's id. The cluster runs with auth on (`admin`) and holds a submitter token `ci`.
async fn save_backup_of_a_busy_cluster(file: &Path, admin: &str) -> (u64, String) {
    let mut old = TestCluster::start_with_auth(3, &[], admin).await;
    let w1 = worker_token(&old.client(), "w1").await;
    old.add_worker("w1", 2, &["--label", "pool=long", "--token", &w1]);
    old.wait_workers(1).await;
    let client = old.client().with_timeout(Duration::from_secs(60));
    for b in 0..TASKS / BATCH {
        // No worker has `pool=none`: these stay pending.
        let specs = (0..BATCH)
            .map(
                |i| json!({"name": format!("t{}", b * BATCH + i + 1), "command": ["true"], "labels": {"pool": "none"}}),
            )
            .collect();
        client.submit_batch(specs).await.unwrap();
    }
    let (long, _) = client.submit(long_task()).await.unwrap();
    assert_eq!(long.id, TASKS + 1);
    eventually("the long task running", Duration::from_secs(30), || async {
        (client.get_task(long.id, false).await.ok()?.state == TaskState::Running).then_some(())
    })
    .await;
    for i in 1..=3 {
        let body = json!({"name": format!("nightly-{i}"), "cron": "0 0 3 * * *", "paused": true,
                          "task": {"executor": "noop"}});
        client.create_schedule(body).await.unwrap();
    }
    let leader = old.wait_leader().await;
    let follower = old.nodes.iter().find(|n| n.id != leader).unwrap().api_addr.clone();
    let ci = CreateToken { name: "ci".into(), role: Role::Submitter, worker_id: None };
    let ci = client.create_token(&ci).await.unwrap().token;
    // Only an admin may take a backup.
    let out = taskraft(&["snapshot", "save", file.to_str().unwrap(), "--addr", &follower, "--token", &ci]);
    assert!(!out.status.success() && text(&out.stderr).contains("forbidden"), "{}", text(&out.stderr));
    let out = taskraft(&["snapshot", "save", file.to_str().unwrap(), "--addr", &follower, "--token", admin]);
    assert!(out.status.success(), "snapshot save: {}{}", text(&out.stdout), text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains(&format!("{} tasks, 3 schedules", TASKS + 1)), "{said}");
    (long.id, ci)
    // The old cluster and its worker are killed here.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_fresh_three_replica_cluster_and_ids_continue() {
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("cluster.backup");
    let admin = generate_token();
    let (long_id, ci) = save_backup_of_a_busy_cluster(&file, &admin).await;

    // The new cluster runs with auth on too; its replicas find tokens in the restored state,
    // so the bootstrap admin token is not committed again: the old tokens are the tokens.
    let mut new = TestCluster::empty(&["--auth=true"]);
    new.token = Some(admin.clone());
    let data_dir = new.dir.path().join("node-1");
    let (file_arg, dir_arg) = (file.to_str().unwrap(), data_dir.to_str().unwrap());
    let out = taskraft(&["snapshot", "restore", file_arg, "--data-dir", dir_arg]);
    assert!(out.status.success(), "snapshot restore: {}{}", text(&out.stdout), text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("1 workers of the old cluster marked lost; 1 running attempts ended lost"), "{said}");
    // A second restore into the same (now non-empty) data dir is refused with a clear error.
    let again = taskraft(&["snapshot", "restore", file_arg, "--data-dir", dir_arg]);
    assert!(!again.status.success());
    let err = text(&again.stderr);
    assert!(err.contains("is not empty") && err.contains("NEW cluster"), "{err}");
    // A damaged backup is refused by its checksum.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x20;
    let damaged = backups.path().join("damaged.backup");
    std::fs::write(&damaged, &bytes).unwrap();
    let refused = taskraft(&["snapshot", "restore", damaged.to_str().unwrap(), "--data-dir", "/nonexistent/x"]);
    assert!(text(&refused.stderr).contains("checksum"), "{}", text(&refused.stderr));

    // The new cluster: node 1 bootstraps from the seed, the others join with empty data dirs.
    new.add_node_process(1, true);
    new.wait_leader().await;
    new.add_node_process(2, false);
    new.add_node_process(3, false);
    new.wait_voters(3).await;
    let client = new.client().with_timeout(Duration::from_secs(30));
    let tokens = client.list_tokens().await.unwrap();
    let names: Vec<&str> = tokens.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"ci") && names.contains(&"bootstrap-admin") && names.contains(&"w1"), "{names:?}");
    // The restored submitter token works on the new cluster.
    let as_ci = new.client().with_token(Some(&ci)).unwrap();
    assert_eq!(as_ci.stats().await.unwrap().total, TASKS + 1);
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.total, TASKS + 1, "{stats:?}");
    assert_eq!(stats.counts.pending, TASKS + 1, "the running attempt ended lost and its task waits again: {stats:?}");
    assert_eq!(stats.next_task_id, TASKS + 2);
    let schedules = client.list_schedules().await.unwrap();
    assert_eq!(schedules.schedules.len(), 3);
    for id in [1, TASKS / 2, TASKS] {
        assert_eq!(client.get_task(id, false).await.unwrap().spec.name, format!("t{id}"));
    }
    // Every replica holds the restored state (the joiners received it as a snapshot).
    for replica in 0..new.nodes.len() {
        eventually(&format!("replica #{replica} holds the restored tasks"), Duration::from_secs(30), || async {
            let t = client.get_task_from(replica, TASKS, true).await.ok()?;
            (t.spec.name == format!("t{TASKS}")).then_some(())
        })
        .await;
    }
    let long = client.get_task(long_id, false).await.unwrap();
    assert_eq!(long.attempts.len(), 1);
    assert_eq!(long.attempts[0].outcome, Some(AttemptOutcome::Lost), "{long:?}");
    // Ids continue from the saved counters.
    let (fresh, _) = client.submit(json!({"command": ["true"], "labels": {"pool": "none"}})).await.unwrap();
    assert_eq!(fresh.id, TASKS + 2);
    let (s, _) = client
        .create_schedule(json!({"cron": "0 0 4 * * *", "paused": true, "task": {"executor": "noop"}}))
        .await
        .unwrap();
    assert_eq!(s.id, 4);
    // Not wedged: a worker of the new cluster runs the task that was running in the backup.
    new.add_worker("w1", 2, &["--label", "pool=long", "--token", &worker_token(&client, "w1-new").await]);
    let done = client.wait(long_id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    assert!(done.attempts[1].output_tail.contains("attempt 2 done"), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_seed_is_refused_by_a_replica_that_does_not_bootstrap() {
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("small.backup");
    {
        let old = TestCluster::start(1, &[]).await;
        old.client().submit(json!({"command": ["true"], "labels": {"pool": "none"}})).await.unwrap();
        let addr = old.nodes[0].api_addr.clone();
        let out = taskraft(&["snapshot", "save", file.to_str().unwrap(), "--addr", &addr, "--output", "json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((meta["tasks"].as_u64(), meta["next_task_id"].as_u64()), (Some(1), Some(2)), "{meta}");
    }
    let mut new = TestCluster::empty(&[]);
    let data_dir = new.dir.path().join("node-1");
    let out = taskraft(&["snapshot", "restore", file.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Node 1 of this test cluster joins (no --bootstrap): it must refuse to start on the seed.
    new.add_node_process(1, false);
    let status = new.nodes[0].wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    let log = std::fs::read_to_string(&new.nodes[0].log).unwrap();
    assert!(log.contains("start this replica with --bootstrap"), "{log}");
}

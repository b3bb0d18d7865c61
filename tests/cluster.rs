//! End-to-end tests on real `taskraft` processes: replication, failover, restarts,
//! membership changes and snapshot catch-up. No acknowledged task may ever go missing.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use common::TestCluster;
use common::eventually;
use serde_json::json;
use taskraft::client::Client;
use taskraft::client::ClientError;

async fn submit_n(client: &Client, n: usize, prefix: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (task, created) = client
            .submit(json!({"command": ["true"], "name": format!("{prefix}-{i}"), "idempotency_key": format!("{prefix}-{i}")}))
            .await
            .expect("submit");
        assert!(created);
        ids.push(task.id);
    }
    ids
}

async fn assert_all_present(client: &Client, ids: &[u64]) {
    for id in ids {
        let t = client.get_task(*id, false).await.unwrap_or_else(|e| panic!("acknowledged task {id} is missing: {e}"));
        assert_eq!(t.id, *id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_through_a_follower_and_read_from_every_replica() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    let (task, created) =
        follower.client().submit(json!({"command": ["echo", "hi"], "name": "via-follower"})).await.unwrap();
    assert!(created);
    assert_eq!(task.state.as_str(), "pending");
    for n in &cluster.nodes {
        let got = n.client().get_task(task.id, false).await.unwrap();
        assert_eq!(got, task, "linearizable read on node {}", n.id);
    }
    // Stale reads converge too.
    for n in &cluster.nodes {
        let c = n.client();
        let id = task.id;
        eventually("stale read sees the task", Duration::from_secs(5), || async {
            c.get_task_from(0, id, true).await.ok()
        })
        .await;
    }
    // Idempotency key through different replicas: one task.
    let body = json!({"command": ["true"], "idempotency_key": "once"});
    let (a, created_a) = cluster.nodes[0].client().submit(body.clone()).await.unwrap();
    let (b, created_b) = cluster.nodes[2].client().submit(body).await.unwrap();
    assert!(created_a && !created_b);
    assert_eq!(a.id, b.id);
    // Batch through a follower keeps order.
    let tasks = follower
        .client()
        .submit_batch((0..5).map(|i| json!({"command": ["true"], "name": format!("b{i}")})).collect())
        .await
        .unwrap();
    let names: Vec<_> = tasks.iter().map(|t| t.spec.name.clone()).collect();
    assert_eq!(names, vec!["b0", "b1", "b2", "b3", "b4"]);
    assert!(tasks.windows(2).all(|w| w[1].id == w[0].id + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_nothing_and_it_catches_up_after_restart() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = cluster.client();
    let before = submit_n(&client, 30, "pre").await;
    let old_leader = cluster.wait_leader().await;
    let killed_at = Instant::now();
    cluster.node_mut(old_leader).kill9();
    // Keep submitting: the first acknowledged write after the kill marks the failover.
    let survivors =
        Client::new(cluster.nodes.iter().filter(|n| n.id != old_leader).map(|n| n.api_addr.clone()).collect())
            .unwrap()
            .with_timeout(Duration::from_secs(10));
    let (first, _) = survivors.submit(json!({"command": ["true"], "idempotency_key": "after-kill"})).await.unwrap();
    let failover = killed_at.elapsed();
    eprintln!("leader kill -> first acknowledged write: {failover:?}");
    assert!(failover < Duration::from_secs(2), "failover took {failover:?}");
    let after = submit_n(&survivors, 20, "post").await;
    assert_all_present(&survivors, &before).await;
    assert_all_present(&survivors, &after).await;
    assert!(first.id > *before.last().unwrap());

    // The old leader restarts with the same flags (including --bootstrap: it must not
    // re-bootstrap) and catches up. Its saved vote makes openraft report it as leader for a
    // moment; it must not claim leadership in its log until a quorum confirmed it.
    let new_leader = cluster.wait_leader().await;
    let new_term = cluster.status_of(new_leader).await.unwrap()["term"].as_u64().unwrap();
    let log_before = std::fs::read_to_string(&cluster.node(old_leader).log).unwrap().len();
    cluster.node_mut(old_leader).start();
    let leader = cluster.wait_leader().await;
    let target = cluster.status_of(leader).await.unwrap()["last_applied"].as_u64().unwrap();
    cluster.wait_applied(old_leader, target).await;
    let old = cluster.node(old_leader).client();
    for id in before.iter().chain(&after) {
        old.get_task_from(0, *id, true).await.unwrap_or_else(|e| panic!("restarted node misses task {id}: {e}"));
    }
    cluster.wait_voters(3).await;
    let log = std::fs::read_to_string(&cluster.node(old_leader).log).unwrap();
    let after_restart = &log[log_before..];
    // It may win a later election for real, but only in a term above the one the survivors
    // elected a leader in while it was down; a claim in its stale term is the bug.
    for line in after_restart.lines().filter(|l| l.contains("became leader")) {
        let term: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("term="))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no term in {line:?}"));
        assert!(term > new_term, "the restarted replica claimed leadership of term {term} (≤ {new_term}):\n{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stop_and_restart_keeps_every_acknowledged_task() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = cluster.client();
    let ids = submit_n(&client, 40, "durable").await;
    let batch = client
        .submit_batch((0..100).map(|i| json!({"command": ["true"], "name": format!("bulk{i}")})).collect())
        .await
        .unwrap();
    // Half the replicas crash, the other half stop cleanly.
    cluster.node_mut(1).kill9();
    cluster.node_mut(2).terminate();
    cluster.node_mut(3).kill9();
    for n in &mut cluster.nodes {
        n.start();
    }
    cluster.wait_leader().await;
    assert_all_present(&client, &ids).await;
    assert_all_present(&client, &batch.iter().map(|t| t.id).collect::<Vec<_>>()).await;
    let page = client.list_tasks(None, 1000, None).await.unwrap();
    assert_eq!(page.tasks.len(), 140);
    // Ids continue after the restart: nothing was re-bootstrapped or reset.
    let (next, _) = client.submit(json!({"command": ["true"]})).await.unwrap();
    assert_eq!(next.id, 141);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_under_load_lose_nothing() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = Arc::new(cluster.client());
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            let mut unknown = 0;
            while !stop.load(Ordering::Relaxed) {
                match client.submit(json!({"command": ["true"], "idempotency_key": format!("load-{i}")})).await {
                    Ok((t, _)) => acked.lock().unwrap().push(t.id),
                    Err(ClientError::OutcomeUnknown(_)) => unknown += 1,
                    Err(e) => panic!("submit failed definitely during a membership change: {e}"),
                }
                i += 1;
            }
            unknown
        })
    };
    // Add a fourth replica (it joins through the API of the others), then remove node 2.
    cluster.add_node_process(4, false);
    cluster.wait_voters(4).await;
    let removed = client.remove_member(2).await.unwrap();
    assert!(removed.members.iter().all(|m| m.id != 2));
    cluster.node_mut(2).kill9();
    // And remove the current leader too: it steps down and another takes over.
    let leader = cluster.wait_leader().await;
    client.remove_member(leader).await.unwrap();
    eventually("a new leader after removing the old one", Duration::from_secs(10), || async {
        let others: Vec<u64> = cluster.nodes.iter().filter(|n| n.id != leader && n.id != 2).map(|n| n.id).collect();
        let s = cluster.status_of(others[0]).await?;
        let l = s["leader_id"].as_u64()?;
        (l != leader).then_some(())
    })
    .await;
    let more = acked.lock().unwrap().len() + 20;
    eventually("load continues after the changes", Duration::from_secs(20), || async {
        (acked.lock().unwrap().len() >= more).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let unknown = load.await.unwrap();
    eprintln!("acknowledged {} submits, {unknown} indeterminate", acked.lock().unwrap().len());
    let ids: Vec<u64> = acked.lock().unwrap().clone();
    assert!(ids.len() > 20);
    let remaining =
        Client::new(cluster.nodes.iter().filter(|n| n.id != 2 && n.id != leader).map(|n| n.api_addr.clone()).collect())
            .unwrap();
    assert_all_present(&remaining, &ids).await;
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "one idempotency key produced two tasks");
    // A removed id can never come back: not through the API…
    let err = remaining.add_member(2, &cluster.node(2).api_addr, &cluster.node(2).raft_addr).await.unwrap_err();
    assert!(err.to_string().contains("can never join again"), "{err}");
    // …nor by starting a fresh replica under that id: it is refused and exits with an error.
    std::fs::remove_dir_all(&cluster.node(2).data_dir).unwrap();
    let peers: Vec<String> = cluster.nodes.iter().filter(|n| n.id != 2).map(|n| n.api_addr.clone()).collect();
    let node2 = cluster.node_mut(2);
    node2.extra = vec!["--join".into(), peers.join(",")];
    node2.start();
    let status = node2.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "a replica whose join is refused must exit with an error");
    let log = std::fs::read_to_string(&cluster.node(2).log).unwrap();
    assert!(log.contains("can never join again"), "the refusal must be logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_catches_up_through_a_snapshot() {
    let mut cluster = TestCluster::start(3, &["--snapshot-logs", "50"]).await;
    let client = cluster.client();
    cluster.node_mut(3).kill9();
    let ids = submit_n(&client, 30, "lag").await;
    let bulk: Vec<u64> = {
        let mut v = Vec::new();
        for b in 0..10 {
            let t = client
                .submit_batch((0..20).map(|i| json!({"command": ["true"], "name": format!("s{b}-{i}")})).collect())
                .await
                .unwrap();
            v.extend(t.iter().map(|t| t.id));
        }
        v
    };
    for k in 0..200 {
        client.submit(json!({"command": ["true"], "name": format!("pad{k}")})).await.unwrap();
    }
    let leader = cluster.wait_leader().await;
    // Node 3 stopped near the start of the log: restart it only once the leader has removed that
    // part of its log (openraft purges after a snapshot, when no replication still reads it), so
    // the only way to catch up is the snapshot.
    let status = eventually("the leader purged its log past node 3", Duration::from_secs(20), || async {
        let s = cluster.status_of(leader).await?;
        (s["purged"].as_u64().unwrap_or(0) >= 100).then_some(s)
    })
    .await;
    assert!(status["snapshot"].as_u64().unwrap_or(0) > 0, "leader should have snapshotted: {status}");
    cluster.node_mut(3).start();
    let target = status["last_applied"].as_u64().unwrap();
    cluster.wait_applied(3, target).await;
    let lagger = cluster.node(3).client();
    for id in ids.iter().chain(&bulk) {
        lagger.get_task_from(0, *id, true).await.unwrap_or_else(|e| panic!("node 3 misses task {id}: {e}"));
    }
    let log = std::fs::read_to_string(&cluster.node(3).log).unwrap();
    assert!(log.contains("installed snapshot"), "node 3 should have caught up through a snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submits_are_coalesced_yet_each_gets_its_own_answer() {
    let cluster = TestCluster::start(3, &[]).await;
    let client = Arc::new(cluster.client());
    client.prefer_leader().await.unwrap();
    let mut handles = Vec::new();
    for w in 0..32u64 {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..20u64 {
                let key = format!("key-{}", (w * 20 + i) % 100);
                let (task, _) = client.submit(json!({"command": ["true"], "idempotency_key": key})).await.unwrap();
                assert_eq!(
                    task.spec.idempotency_key.as_deref(),
                    Some(key.as_str()),
                    "answer belongs to another request"
                );
                seen.push((key, task.id));
            }
            seen
        }));
    }
    let mut by_key = std::collections::BTreeMap::new();
    for h in handles {
        for (key, id) in h.await.unwrap() {
            let first = *by_key.entry(key.clone()).or_insert(id);
            assert_eq!(first, id, "idempotency key {key} produced two tasks");
        }
    }
    assert_eq!(by_key.len(), 100);
    let page = client.list_tasks(None, 1000, None).await.unwrap();
    assert_eq!(page.tasks.len(), 100, "640 submits of 100 keys must create exactly 100 tasks");
}

/// A one-replica cluster (a first trial, a laptop) keeps accepting writes after sitting idle
/// longer than the window in which a leader must hear from a quorum: a lone voter is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_replica_accepts_writes_after_idling() {
    let cluster = TestCluster::start(1, &[]).await;
    let client = cluster.client();
    client.submit(json!({"command": ["true"]})).await.unwrap();
    // The scenario itself is the idle period: longer than 2 x election_timeout_max (800 ms).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (task, created) = client.submit(json!({"command": ["true"], "name": "after-idle"})).await.unwrap();
    assert!(created && task.id == 2, "{task:?}");
}

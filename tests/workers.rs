//! End-to-end tests of workers, leases, fencing and checkpoints on real processes.

mod common;

use std::time::Duration;
use std::time::Instant;

use common::TestCluster;
use common::eventually;
use common::process_alive;
use serde_json::json;
use taskraft::client::Client;
use taskraft::scheduler::AttemptOutcome;
use taskraft::scheduler::Task;
use taskraft::scheduler::TaskState;

/// A task that counts to `to`, checkpointing its counter, starting from the checkpoint it
/// is given. It prints where it started, so the output proves a resume.
fn counter_task(to: u32, dir: &std::path::Path) -> serde_json::Value {
    let script = format!(
        r#"i=0
[ -n "$TASKRAFT_CHECKPOINT_IN" ] && i=$(cat "$TASKRAFT_CHECKPOINT_IN")
echo "attempt $TASKRAFT_ATTEMPT starts at $i"
echo $$ > "{dir}/pid-$TASKRAFT_ATTEMPT"
while [ "$i" -lt {to} ]; do
  i=$((i+1))
  echo "$i" > "$TASKRAFT_CHECKPOINT_OUT.tmp" && mv "$TASKRAFT_CHECKPOINT_OUT.tmp" "$TASKRAFT_CHECKPOINT_OUT"
  sleep 0.1
done
echo "finished at $i""#,
        dir = dir.display()
    );
    json!({"name": "counter", "command": ["sh", "-c", script]})
}

async fn task(client: &Client, id: u64) -> Task {
    client.get_task(id, false).await.unwrap()
}

fn succeeded_attempts(t: &Task) -> usize {
    t.attempts.iter().filter(|a| a.outcome == Some(AttemptOutcome::Succeeded)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_task_resumes_elsewhere_from_its_checkpoint() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 2, &[]);
    cluster.add_worker("w2", 2, &[]);
    cluster.wait_workers(2).await;
    let client = cluster.client();
    let (t, _) = client.submit(counter_task(60, cluster.dir.path())).await.unwrap();
    // Wait until it has made progress and saved a checkpoint.
    let running = eventually("a checkpoint of at least 10", Duration::from_secs(30), || async {
        let t = task(&client, t.id).await;
        let cp: u32 = String::from_utf8_lossy(&t.checkpoint.as_ref()?.data).trim().parse().ok()?;
        (cp >= 10).then_some(t)
    })
    .await;
    let victim = running.attempts.last().unwrap().worker_id.clone();
    let pid1: i32 = std::fs::read_to_string(cluster.dir.path().join("pid-1")).unwrap().trim().parse().unwrap();
    cluster.worker(&victim).kill9();
    let killed_at = Instant::now();
    // The task process does not outlive its worker.
    eventually("the dead worker's task process dies with it", Duration::from_secs(5), || async {
        (!process_alive(pid1)).then_some(())
    })
    .await;
    eventually("a second attempt running elsewhere", Duration::from_secs(30), || async {
        let t = task(&client, t.id).await;
        let a = t.attempts.get(1)?;
        (a.started_ms.is_some() && a.worker_id != victim).then_some(())
    })
    .await;
    let took = killed_at.elapsed();
    eprintln!("worker SIGKILL -> task running again elsewhere: {took:?}");
    assert!(took < Duration::from_secs(5), "resume took {took:?} (default TTL is 3 s)");
    let done = client.wait(t.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    assert_eq!(done.attempts[0].outcome, Some(AttemptOutcome::Lost));
    let out = &done.attempts[1].output_tail;
    let start: u32 =
        out.split("starts at ").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|s| s.parse().ok()).unwrap();
    assert!(start >= 10, "the second attempt must resume from the checkpoint, not from 0: {out}");
    assert!(out.contains("finished at 60"), "{out}");
}

/// Submits a shell task whose attempt 1 runs `first` and later attempts `later`; each writes its
/// pid to `pid-N` in the cluster's directory and ends with "attempt N done". Returns the task
/// and the pid of attempt 1 once it runs.
async fn submit_long_first_attempt(cluster: &TestCluster, client: &Client, first: &str, later: &str) -> (Task, i32) {
    let dir = cluster.dir.path().display().to_string();
    let script = format!(
        r#"echo $$ > "{dir}/pid-$TASKRAFT_ATTEMPT"
if [ "$TASKRAFT_ATTEMPT" = 1 ]; then {first}; else {later}; fi
echo "attempt $TASKRAFT_ATTEMPT done""#
    );
    let (t, _) = client.submit(json!({"command": ["sh", "-c", script]})).await.unwrap();
    let pid1_file = cluster.dir.path().join("pid-1");
    let pid1 = eventually("attempt 1 running", Duration::from_secs(30), || async {
        std::fs::read_to_string(&pid1_file).ok()?.trim().parse().ok()
    })
    .await;
    (t, pid1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_hands_its_running_attempt_back_as_lost() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 1, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    let (t, pid1) = submit_long_first_attempt(&cluster, &client, "sleep 60", ":").await;
    eventually("attempt 1 reported started", Duration::from_secs(10), || async {
        task(&client, t.id).await.attempts.first()?.started_ms
    })
    .await;
    let status = cluster.worker("w1").terminate();
    assert!(status.success(), "the worker's shutdown failed: {status:?}");
    assert!(!process_alive(pid1), "the task's process outlived its worker");
    // Reported by the worker on its way out, before it exits: the attempt ends `lost` (never
    // `cancelled`, which would end the task for good) and the task waits.
    let after = task(&client, t.id).await;
    assert_eq!(after.attempts[0].outcome, Some(AttemptOutcome::Lost), "{:?}", after.attempts);
    assert!(!after.state.is_terminal(), "the task must wait for another worker: {after:?}");
    cluster.add_worker("w2", 1, &[]);
    let done = client.wait(t.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    // The departed worker's lease outlives it by up to a TTL, so the retry may first be assigned
    // to it again and end `lost` at expiry; the run that succeeds is on w2.
    let last = done.attempts.last().unwrap();
    assert_eq!(last.worker_id, "w2", "{:?}", done.attempts);
    assert!(last.output_tail.contains(&format!("attempt {} done", last.number)), "{last:?}");
    assert!(done.attempts[..done.attempts.len() - 1].iter().all(|a| a.outcome == Some(AttemptOutcome::Lost)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_is_fenced_off_and_kills_its_stale_copy() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 2, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    // Attempt 1 runs long; later attempts finish quickly.
    let count = |n| format!("i=0; while [ $i -lt {n} ]; do sleep 0.1; i=$((i+1)); done");
    let (t, pid1) = submit_long_first_attempt(&cluster, &client, &count(600), &count(5)).await;
    // A second worker to take over, then pause the first past its lease.
    cluster.add_worker("w2", 2, &[]);
    cluster.wait_workers(2).await;
    cluster.worker("w1").pause();
    let done = client.wait(t.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    assert_eq!(done.attempts[0].outcome, Some(AttemptOutcome::Lost));
    assert_eq!(done.attempts[1].worker_id, "w2");
    // The stale copy is still running on the paused worker's machine (measured, not asserted away).
    eprintln!("stale attempt still alive while its worker is paused: {}", process_alive(pid1));
    cluster.worker("w1").resume();
    eventually("the old worker kills its stale copy", Duration::from_secs(20), || async {
        (!process_alive(pid1)).then_some(())
    })
    .await;
    let after = task(&client, t.id).await;
    assert_eq!(after.attempts[0].outcome, Some(AttemptOutcome::Lost), "the stale attempt's report must not land");
    assert_eq!(succeeded_attempts(&after), 1);
    assert_eq!(after.version, done.version, "nothing from the stale attempt may change the task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_during_dispatch_runs_every_task_exactly_once() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 16, &[]);
    cluster.add_worker("w2", 16, &[]);
    cluster.wait_workers(2).await;
    let client = cluster.client();
    let mut ids = Vec::new();
    for b in 0..4 {
        let specs =
            (0..500).map(|i| json!({"command": ["taskraft:sleep", "5"], "name": format!("n{b}-{i}")})).collect();
        ids.extend(client.submit_batch(specs).await.unwrap().into_iter().map(|t| t.id));
    }
    // Kill the leader while dispatch is under way.
    eventually("some tasks done", Duration::from_secs(30), || async {
        let page = client.list_tasks(Some("succeeded"), 50, None).await.ok()?;
        (page.tasks.len() >= 20).then_some(())
    })
    .await;
    let leader = cluster.wait_leader().await;
    cluster.node_mut(leader).kill9();
    let survivors =
        Client::new(cluster.nodes.iter().filter(|n| n.id != leader).map(|n| n.api_addr.clone()).collect()).unwrap();
    eventually("all 2000 tasks finished", Duration::from_secs(120), || async {
        let mut done = 0;
        let mut cursor = None;
        loop {
            let page = survivors.list_tasks(None, 1000, cursor).await.ok()?;
            done += page.tasks.iter().filter(|t| t.is_terminal()).count();
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        (done == ids.len()).then_some(())
    })
    .await;
    let mut cursor = None;
    let mut checked = 0;
    loop {
        let page = survivors.list_tasks(None, 1000, cursor).await.unwrap();
        for t in &page.tasks {
            assert_eq!(t.state, TaskState::Succeeded, "task {} ended {:?}", t.id, t.state);
            assert_eq!(succeeded_attempts(t), 1, "task {} has {} accepted completions", t.id, succeeded_attempts(t));
            // The new leader granted the workers a full lease of grace: nobody was declared lost.
            assert!(
                t.attempts.iter().all(|a| a.outcome != Some(AttemptOutcome::Lost)),
                "task {} lost an attempt across the leader change: {:?}",
                t.id,
                t.attempts
            );
            checked += 1;
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(checked, 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_timeout_kill_the_whole_process_group() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 4, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    let spawn_tree = |tag: &str| {
        let dir = cluster.dir.path().display().to_string();
        format!(r#"sleep 300 & echo $! > "{dir}/{tag}-child"; echo $$ > "{dir}/{tag}-parent"; wait"#)
    };
    let read_pids = |tag: &str| {
        let dir = cluster.dir.path().to_path_buf();
        let tag = tag.to_string();
        async move {
            let p: i32 = std::fs::read_to_string(dir.join(format!("{tag}-parent"))).ok()?.trim().parse().ok()?;
            let c: i32 = std::fs::read_to_string(dir.join(format!("{tag}-child"))).ok()?.trim().parse().ok()?;
            Some((p, c))
        }
    };

    let (t, _) = client.submit(json!({"command": ["sh", "-c", spawn_tree("cancel")]})).await.unwrap();
    let (parent, child) = eventually("the cancel task runs", Duration::from_secs(30), || read_pids("cancel")).await;
    client.cancel(t.id, Some("test")).await.unwrap();
    let done = client.wait(t.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.state, TaskState::Cancelled, "{done:?}");
    eventually("cancelled process tree gone", Duration::from_secs(15), || async {
        (!process_alive(parent) && !process_alive(child)).then_some(())
    })
    .await;

    let (t, _) =
        client.submit(json!({"command": ["sh", "-c", spawn_tree("timeout")], "timeout_ms": 1500})).await.unwrap();
    let (parent, child) = eventually("the timeout task runs", Duration::from_secs(30), || read_pids("timeout")).await;
    let done = client.wait(t.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.state, TaskState::Failed, "{done:?}");
    assert_eq!(done.attempts[0].outcome, Some(AttemptOutcome::TimedOut));
    eventually("timed-out process tree gone", Duration::from_secs(15), || async {
        (!process_alive(parent) && !process_alive(child)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_within_its_lease_gives_up_its_old_attempts() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 2, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    let (t, _) = client.submit(counter_task(40, cluster.dir.path())).await.unwrap();
    eventually("a checkpoint", Duration::from_secs(30), || async { task(&client, t.id).await.checkpoint.map(|_| ()) })
        .await;
    // Crash and come back at once, well inside the 3 s lease: the new process runs nothing,
    // so the attempt the cluster still has on it must be given up and resumed.
    cluster.worker("w1").kill9();
    cluster.worker("w1").start();
    let done = client.wait(t.id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    assert_eq!(done.attempts[0].outcome, Some(AttemptOutcome::Lost), "{:?}", done.attempts);
    assert!(done.attempts[1].output_tail.contains("finished at 40"), "{}", done.attempts[1].output_tail);
    assert!(!done.attempts[1].output_tail.contains("starts at 0"), "must resume from the checkpoint");
}

/// Regression (found by the chaos suite, `taskraft-jepsen run --nemesis pause --seed 1`): a
/// SIGSTOPped leader still accepts connections and never answers, and workers kept sending
/// their heartbeats there until the new leader's grace ran out, so every running attempt was
/// declared lost and ran twice. Workers must reach the new leader within its grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_leader_loses_no_running_attempt() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 4, &[]);
    cluster.add_worker("w2", 4, &[]);
    cluster.wait_workers(2).await;
    let client = cluster.client();
    let mut ids = Vec::new();
    for i in 0..4 {
        let (t, _) = client.submit(json!({"name": format!("long-{i}"), "command": ["sleep", "8"]})).await.unwrap();
        ids.push(t.id);
    }
    eventually("every task running", Duration::from_secs(30), || async {
        for &id in &ids {
            task(&client, id).await.attempts.last()?.started_ms?;
        }
        Some(())
    })
    .await;
    let old = cluster.wait_leader().await;
    cluster.node(old).pause();
    let paused_at = Instant::now();
    // Watch the new leader for longer than a worker lease (3 s) after the election: no attempt
    // may end, and no worker may be declared lost.
    let others: Vec<u64> = (1..=3).filter(|&n| n != old).collect();
    let watcher = Client::new(others.iter().map(|&n| cluster.node(n).api_addr.clone()).collect())
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let new = eventually("a new leader", Duration::from_secs(10), || async {
        let s = watcher.cluster_status().await.ok()?;
        s.leader_id.filter(|&l| l != old)
    })
    .await;
    let elected_after = paused_at.elapsed();
    while paused_at.elapsed() < elected_after + Duration::from_secs(4) {
        for &id in &ids {
            let t = watcher.get_task(id, false).await.unwrap();
            assert_eq!(
                t.attempts.len(),
                1,
                "task {id} lost its attempt while n{old} was paused (leader n{new}): {t:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.node(old).resume();
    for &id in &ids {
        let done = client.wait(id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
        assert_eq!(done.attempts.len(), 1, "ran more than once: {done:?}");
    }
}

/// Runs the `taskraft` CLI against the cluster; its stdout, parsed as JSON.
fn cli(cluster: &TestCluster, args: &[&str]) -> serde_json::Value {
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.api_addr.clone()).collect();
    // The client options go before `--`: after it everything is the task's command.
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(&args[..split])
        .args(["--addr", &addrs.join(","), "--output", "json"])
        .args(&args[split..])
        .output()
        .unwrap();
    assert!(out.status.success(), "taskraft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_submits_builtin_executors_and_preferences_that_workers_honour() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("plain", 4, &[]);
    cluster.add_worker("ssd-1", 4, &["--label", "disk=ssd"]);
    cluster.wait_workers(2).await;
    let client = cluster.client();

    let sleep = cli(&cluster, &["task", "submit", "--executor", "sleep", "--", "50"]);
    assert_eq!((&sleep["spec"]["executor"], &sleep["spec"]["command"]), (&json!("sleep"), &json!(["50"])), "{sleep}");
    // Preferences steer every task to the one matching worker while it has room.
    let mut preferred = Vec::new();
    for _ in 0..3 {
        let t = cli(&cluster, &["task", "submit", "--prefer", "disk=ssd", "--", "true"]);
        assert_eq!(t["spec"]["prefer"], json!({"labels": {"disk": "ssd"}}), "{t}");
        preferred.push(t["id"].as_u64().unwrap());
    }
    let done = client.wait(sleep["id"].as_u64().unwrap(), Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    for id in preferred {
        let done = client.wait(id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
        assert_eq!(done.attempts[0].worker_id, "ssd-1", "{done:?}");
    }
    // `task get` shows the same task through the typed read.
    let got = cli(&cluster, &["task", "get", &sleep["id"].to_string()]);
    assert_eq!((&got["state"], &got["spec"]["executor"]), (&json!("succeeded"), &json!("sleep")), "{got}");
}

/// Completions carry up to 128 KiB of output each: a batch of them goes past the server's
/// 1 MiB body limit. The worker splits such a batch (413) instead of losing the reports, so
/// every task ends `succeeded` after one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_with_large_output_tails_are_all_reported() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 32, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    let script = "head -c 200000 /dev/zero | tr '\\0' o; head -c 200000 /dev/zero | tr '\\0' e >&2";
    let specs: Vec<_> =
        (0..32).map(|i| json!({"name": format!("chatty-{i}"), "command": ["sh", "-c", script]})).collect();
    let tasks = client.submit_batch(specs).await.unwrap();
    for t in tasks {
        let done = client.wait(t.id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
        assert_eq!(done.attempts.len(), 1, "a lost report made the task run again: {:?}", done.attempts);
        assert!(done.attempts[0].output_tail.len() > 60_000, "the output tail was kept");
    }
}

/// A task's result (`$TASKRAFT_RESULT_OUT`) is committed with its completion and shown by
/// `task get`: as text when it is UTF-8, as base64 otherwise, and on one line in the text form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_written_by_a_task_is_shown_by_task_get() {
    let mut cluster = TestCluster::start(1, &[]).await;
    cluster.add_worker("w1", 4, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();

    let answer = cli(&cluster, &["task", "submit", "--", "sh", "-c", r#"echo 42 > "$TASKRAFT_RESULT_OUT""#]);
    let binary = cli(&cluster, &["task", "submit", "--", "sh", "-c", r#"printf '\377\000' > "$TASKRAFT_RESULT_OUT""#]);
    let (answer, binary) = (answer["id"].as_u64().unwrap(), binary["id"].as_u64().unwrap());
    for id in [answer, binary] {
        let done = client.wait(id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    }
    let got = cli(&cluster, &["task", "get", &answer.to_string()]);
    let token = got["attempts"][0]["fencing_token"].clone();
    assert_eq!(got["result"]["text"], "42\n", "{got}");
    assert_eq!(
        (&got["result"]["size"], &got["result"]["attempt"], &got["result"]["token"]),
        (&json!(3), &json!(1), &token)
    );
    let got = cli(&cluster, &["task", "get", &binary.to_string()]);
    assert_eq!((&got["result"]["base64"], got["result"].get("text")), (&json!("/wA="), None), "{got}");

    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.api_addr.clone()).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(["task", "get", &answer.to_string(), "--addr", &addrs.join(",")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("result:      3 bytes from attempt 1: 42\\n\n"), "{text}{stderr}");
}

//! Preemption end to end on real processes (README "Preemption"): a low-priority task that
//! checkpoints fills the only worker slot; a high-priority task arrives; the leader preempts the
//! low one, whose worker writes `preempted` to `$TASKRAFT_STOP_REASON_FILE` and sends TERM; the
//! task saves a final checkpoint in its grace and exits; the high one runs; the low one resumes
//! from that checkpoint and both succeed. The tasks' own log proves the resume point.

mod common;

use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::json;
use taskraft::scheduler::AttemptId;
use taskraft::scheduler::AttemptOutcome;
use taskraft::scheduler::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_priority_task_preempts_a_low_one_which_resumes_from_its_checkpoint() {
    let mut cluster = TestCluster::start(1, &["--preempt-min-runtime-ms", "300", "--worker-heartbeat-ms", "300"]).await;
    // The grace in which the counter saves its last step (the default is 5 s).
    cluster.add_worker("w1", 1, &["--kill-grace-ms", "2000"]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    let log = cluster.dir.path().join("counter.log");

    // 1. The low-priority counter fills the only slot and checkpoints.
    let low = json!({
        "name": "counter",
        "priority": 100,
        "command": ["sh", "-c", common::counter_script(100, "0.05")],
        "env": {"LOG": log.display().to_string()},
    });
    let (low, _) = client.submit(low).await.expect("submit the counter");
    eventually("the counter checkpointed a few steps", Duration::from_secs(30), || async {
        let t = client.get_task(low.id, false).await.ok()?;
        let step: u32 = String::from_utf8_lossy(&t.checkpoint?.data).trim().parse().ok()?;
        (t.state == TaskState::Running && step >= 5).then_some(())
    })
    .await;

    // 2. The urgent task fits nowhere; the leader preempts the counter for it.
    let high = json!({"name": "urgent", "priority": 900, "command": ["sh", "-c", "echo urgent >> \"$LOG\""],
                      "env": {"LOG": log.display().to_string()}});
    let (high, _) = client.submit(high).await.expect("submit the urgent task");
    let high = eventually("the urgent task succeeded", Duration::from_secs(60), || done(&client, high.id)).await;
    let low = eventually("the counter succeeded", Duration::from_secs(60), || done(&client, low.id)).await;

    // 3. The record: the counter's first attempt was preempted by the urgent task, which says
    //    whom it preempted; the preemption cost no failure.
    let first = &low.attempts[0];
    assert_eq!(first.outcome, Some(AttemptOutcome::Preempted), "{low:?}");
    assert_eq!(first.error.as_deref(), Some(format!("preempted by task {}", high.id).as_str()));
    assert_eq!(low.attempts.len(), 2, "{low:?}");
    assert_eq!(low.attempts[1].outcome, Some(AttemptOutcome::Succeeded));
    assert_eq!(low.failures(), 0);
    assert_eq!(low.preempted_by.map(|m| (m.by, m.token)), Some((high.id, first.fencing_token)));
    assert_eq!(high.preempted, [AttemptId::new(low.id, first.fencing_token)]);
    // The urgent task ran in between: before the counter's second attempt was assigned.
    let high_start = high.attempts[0].started_ms.expect("the urgent task started");
    assert!(high_start <= low.attempts[1].assigned_ms, "the freed slot went to the urgent task first");

    // 4. The tasks' own log: stopped with the reason `preempted` at step N, saved N in its
    //    grace, and the second attempt started at exactly N.
    let text = std::fs::read_to_string(&log).expect("read the counter's log");
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("counter log:\n{text}");
    assert_eq!(lines.first(), Some(&"attempt 1 starts at 0"), "{text}");
    let stop = lines.iter().find_map(|l| l.strip_prefix("stop preempted at ")).expect("a preempted stop line");
    let step: u32 = stop.parse().expect("the step at the stop");
    assert!((5..100).contains(&step), "stopped at step {step}:\n{text}");
    let urgent = lines.iter().position(|l| *l == "urgent").expect("the urgent task ran");
    let resumed = lines.iter().position(|l| *l == format!("attempt 2 starts at {step}")).expect("resumed at the stop");
    assert!(urgent < resumed, "the urgent task ran before the counter resumed:\n{text}");
    assert_eq!(lines.last(), Some(&"done at 100"), "{text}");

    // 5. `task get` tells who preempted whom, in text and in JSON.
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.api_addr.clone()).collect();
    let get = |id: u64, json: bool| {
        let mut args = vec!["task".to_string(), "get".into(), id.to_string(), "--addr".into(), addrs.join(",")];
        if json {
            args.extend(["--output".into(), "json".into()]);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft")).args(&args).output().unwrap();
        assert!(out.status.success(), "taskraft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let victim = get(low.id, false);
    assert!(victim.contains(&format!("error: preempted by task {}", high.id)), "{victim}");
    assert!(victim.contains("): preempted exit=143"), "{victim}");
    let preemptor = get(high.id, false);
    assert!(
        preemptor.contains(&format!("preempted:   task {} (token {})", low.id, first.fencing_token)),
        "{preemptor}"
    );
    let json: serde_json::Value = serde_json::from_str(&get(low.id, true)).unwrap();
    assert_eq!(json["preempted_by"]["by"], high.id, "{json}");
    assert_eq!(json["attempts"][0]["outcome"], "preempted", "{json}");
}

/// The task once it succeeded; any other end fails the test.
async fn done(client: &taskraft::client::Client, id: u64) -> Option<taskraft::scheduler::Task> {
    let t = client.get_task(id, false).await.ok()?;
    assert!(!matches!(t.state, TaskState::Failed | TaskState::Cancelled), "task {id} ended {t:?}");
    (t.state == TaskState::Succeeded).then_some(t)
}

//! Migration off an overloaded worker end to end on real processes (README "Migration off
//! overloaded workers"): a checkpointing task runs on w1; w1 then reports itself overloaded
//! (`worker --load-file`) while w2 reports itself idle; after N heartbeats the leader migrates
//! the task: w1 writes `migrated` to `$TASKRAFT_STOP_REASON_FILE` and sends TERM, the task saves
//! its step in the grace, and it resumes from that step on w2 and succeeds. `task get` says
//! where it went and why; the metric counts it.

mod common;

use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::json;
use taskraft::scheduler::AttemptOutcome;
use taskraft::scheduler::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_an_overloaded_worker_moves_to_an_idle_one_and_resumes_from_its_checkpoint() {
    let mut cluster = TestCluster::start(
        1,
        &[
            "--migration",
            "--migrate-min-runtime-ms",
            "300",
            "--worker-heartbeat-ms",
            "300",
            "--migration-heartbeats",
            "3",
        ],
    )
    .await;
    let load1 = cluster.dir.path().join("w1.load");
    let load2 = cluster.dir.path().join("w2.load");
    std::fs::write(&load1, "0.10 0.20").unwrap();
    std::fs::write(&load2, "0.10 0.20").unwrap();
    let grace = ["--kill-grace-ms", "2000", "--load-file"];
    cluster.add_worker("w1", 2, &[&grace[..], &[load1.to_str().unwrap()]].concat());
    cluster.wait_workers(1).await;
    let client = cluster.client();
    let log = cluster.dir.path().join("counter.log");

    // 1. The counter runs on w1 (the only worker yet) and checkpoints.
    let spec = json!({
        "name": "counter",
        "command": ["sh", "-c", common::counter_script(80, "0.1")],
        "env": {"LOG": log.display().to_string()},
    });
    let (task, _) = client.submit(spec).await.expect("submit the counter");
    eventually("the counter checkpointed a few steps on w1", Duration::from_secs(30), || async {
        let t = client.get_task(task.id, false).await.ok()?;
        let step: u32 = String::from_utf8_lossy(&t.checkpoint?.data).trim().parse().ok()?;
        (t.state == TaskState::Running && step >= 3).then_some(())
    })
    .await;

    // 2. w2 joins, idle; w1 reports itself overloaded from now on.
    cluster.add_worker("w2", 2, &[&grace[..], &[load2.to_str().unwrap()]].concat());
    cluster.wait_workers(2).await;
    std::fs::write(&load1, "0.97 0.20").unwrap();

    // 3. The counter is migrated to w2, resumes there and succeeds.
    let done = eventually("the counter succeeded", Duration::from_secs(60), || async {
        let t = client.get_task(task.id, false).await.ok()?;
        assert!(!matches!(t.state, TaskState::Failed | TaskState::Cancelled), "the counter ended {t:?}");
        (t.state == TaskState::Succeeded).then_some(t)
    })
    .await;
    let first = &done.attempts[0];
    assert_eq!((first.worker_id.as_str(), first.outcome), ("w1", Some(AttemptOutcome::Migrated)), "{done:?}");
    let error = first.error.as_deref().unwrap_or("");
    assert!(error.starts_with("migrated from worker w1 to worker w2 (cpu 0.97 for "), "{error}");
    assert!(error.ends_with("heartbeats; w2 at cpu 0.10 mem 0.20)"), "{error}");
    assert_eq!(done.attempts.len(), 2, "{done:?}");
    assert_eq!(done.attempts[1].worker_id, "w2", "the target hint was honoured");
    assert_eq!(done.attempts[1].outcome, Some(AttemptOutcome::Succeeded));
    assert_eq!(done.failures(), 0);

    // 4. The task's own log: stopped with the reason `migrated` at step N, saved N in its
    //    grace, and the second attempt started at exactly N.
    let text = std::fs::read_to_string(&log).expect("read the counter's log");
    eprintln!("counter log:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"attempt 1 starts at 0"), "{text}");
    let stop = lines.iter().find_map(|l| l.strip_prefix("stop migrated at ")).expect("a migrated stop line");
    let step: u32 = stop.parse().expect("the step at the stop");
    assert!((3..80).contains(&step), "stopped at step {step}:\n{text}");
    assert!(lines.contains(&format!("attempt 2 starts at {step}").as_str()), "resumed at the stop:\n{text}");
    assert_eq!(lines.last(), Some(&"done at 80"), "{text}");

    // 5. `task get` says where it went and why, in text and in JSON; the metric counts it.
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.api_addr.clone()).collect();
    let get = |json: bool| {
        let mut args = vec!["task".to_string(), "get".into(), task.id.to_string(), "--addr".into(), addrs.join(",")];
        if json {
            args.extend(["--output".into(), "json".into()]);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft")).args(&args).output().unwrap();
        assert!(out.status.success(), "taskraft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = get(false);
    assert!(text.contains("error: migrated from worker w1 to worker w2 (cpu 0.97 for "), "{text}");
    assert!(text.contains("): migrated exit=143"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&get(true)).unwrap();
    assert_eq!(json["attempts"][0]["outcome"], "migrated", "{json}");
    let metrics = reqwest::get(format!("http://{}/metrics", addrs[0])).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "taskraft_migrations_total 1"), "{metrics}");
}

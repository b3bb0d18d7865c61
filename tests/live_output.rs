//! End-to-end tests of live attempt output (`taskraft task logs`, `GET /v1/tasks/{id}/output`)
//! on real replica and worker processes.

mod common;

use std::io::BufRead;
use std::io::BufReader;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use std::time::Instant;

use common::TestCluster;
use common::eventually;
use serde_json::json;
use taskraft::proto::output::OutputSource;
use taskraft::scheduler::AttemptOutcome;
use taskraft::scheduler::TaskState;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A follower's API address (requests through it are forwarded to the leader).
async fn follower_addr(cluster: &TestCluster) -> String {
    let leader = cluster.wait_leader().await;
    cluster.nodes.iter().find(|n| n.id != leader).unwrap().api_addr.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_logs_follow_prints_lines_while_the_task_still_runs() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 2, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();
    let script = "for i in 1 2 3; do echo line$i; sleep 0.3; done";
    let (t, _) = client.submit(json!({"command": ["sh", "-c", script]})).await.unwrap();

    // Started right away: `--follow` waits for the first attempt of a task that has none yet.
    let addr = follower_addr(&cluster).await;
    let mut logs = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(["task", "logs", &t.id.to_string(), "--follow", "--addr", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(String, u64)>();
    let stdout = logs.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((line, now_ms())).is_err() {
                return;
            }
        }
    });

    // The first line arrives while the task still runs: the API says so right then, and the
    // attempt ends later than the line was printed.
    let (first, seen_ms) =
        eventually("line1 printed by task logs --follow", Duration::from_secs(30), || async { rx.try_recv().ok() })
            .await;
    assert_eq!(first, "line1");
    let then = client.get_task(t.id, false).await.unwrap();
    assert!(!then.is_terminal(), "the task had already ended when its first line was shown: {then:?}");

    let mut lines = vec![first];
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        while let Ok((line, _)) = rx.try_recv() {
            lines.push(line);
        }
        if let Some(status) = logs.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "task logs --follow did not exit after the attempt ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The reader thread may still hold the last lines.
    std::thread::sleep(Duration::from_millis(50));
    while let Ok((line, _)) = rx.try_recv() {
        lines.push(line);
    }
    assert!(status.success(), "task logs exited with {status}");
    assert_eq!(lines, ["line1", "line2", "line3"]);
    let done = client.wait(t.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    let ended_ms = done.attempts[0].ended_ms.unwrap();
    assert!(seen_ms < ended_ms, "line1 shown at {seen_ms}, the attempt ended at {ended_ms}");
    eprintln!("line1 shown {} ms before the attempt ended", ended_ms - seen_ms);

    // Without --follow: the whole output of the finished attempt, once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(["task", "logs", &t.id.to_string(), "--addr", &addr])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line1\nline2\nline3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_attempt_keeps_the_output_it_shipped() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 2, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client().with_timeout(Duration::from_secs(20));
    let script = "echo first words; echo second words >&2; sleep 120";
    let (t, _) = client.submit(json!({"command": ["sh", "-c", script]})).await.unwrap();
    eventually("both lines shipped to the leader", Duration::from_secs(30), || async {
        let out = client.task_output(t.id, None, 0, Duration::ZERO).await.ok()?;
        (out.text.contains("first words") && out.text.contains("second words")).then_some(())
    })
    .await;

    cluster.worker("w1").kill9();
    let lost = eventually("attempt 1 ends lost", Duration::from_secs(30), || async {
        let task = client.get_task(t.id, false).await.ok()?;
        (task.attempts.first()?.outcome == Some(AttemptOutcome::Lost)).then_some(task)
    })
    .await;
    assert!(lost.attempts[0].output_tail.is_empty(), "a lost attempt's completion carries no tail");

    let out = client.task_output(t.id, Some(1), 0, Duration::ZERO).await.unwrap();
    assert_eq!(out.source, OutputSource::Live, "{out:?}");
    assert_eq!(out.outcome, Some(AttemptOutcome::Lost));
    assert!(out.complete, "{out:?}");
    // stdout and stderr are two pipes: the worker ships lines in the order it reads them, which
    // between the two pipes is whichever the scheduler ran first (seen both ways in CI).
    assert_eq!(sorted_lines(&out.text), ["first words", "second words"], "{:?}", out.text);

    // The CLI shows it too, through a follower.
    let addr = follower_addr(&cluster).await;
    let get = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(["task", "get", &t.id.to_string(), "--addr", &addr])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&get.stdout);
    assert!(get.status.success(), "{}", String::from_utf8_lossy(&get.stderr));
    assert!(shown.contains("output of attempt 1 shipped before it was lost"), "{shown}");
    assert!(shown.contains("| second words"), "{shown}");
    let logs = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(["task", "logs", &t.id.to_string(), "--attempt", "1", "--follow", "--addr", &addr])
        .output()
        .unwrap();
    assert!(logs.status.success());
    assert_eq!(String::from_utf8_lossy(&logs.stdout), out.text, "the CLI prints what the API keeps");
}

/// The lines of `text`, sorted (for output merged from two pipes).
fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

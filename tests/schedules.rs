//! End-to-end tests of schedules on real processes: fires survive leader kills and pauses
//! with no gap and no duplicate, and `forbid` never lets two runs of a schedule overlap.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::json;
use taskraft::client::Client;
use taskraft::scheduler::Task;
use taskraft::scheduler::TaskOrigin;

/// The nominal times of a schedule's runs (calendar runs only), and how often each appears.
fn nominal_counts(runs: &[Task], schedule: u64) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for t in runs {
        match t.spec.origin {
            TaskOrigin::Schedule { schedule: s, nominal_ms, manual: false } => {
                assert_eq!(s, schedule, "a run of another schedule in the list: {t:?}");
                *counts.entry(nominal_ms).or_insert(0) += 1;
            }
            ref other => panic!("task {} in the runs of schedule {schedule} has origin {other:?}", t.id),
        }
    }
    counts
}

/// Every nominal second from the first run to `until` has exactly one run.
fn assert_every_second_once(counts: &BTreeMap<u64, usize>, created_ms: u64, until_ms: u64, what: &str) {
    let first = *counts.keys().next().unwrap_or_else(|| panic!("{what}: no runs"));
    assert!(first >= created_ms, "{what}: a run at {first} before the schedule's creation at {created_ms}");
    assert!(first < created_ms + 1000, "{what}: first run at {first}, the schedule was created at {created_ms}");
    let doubled: Vec<_> = counts.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(doubled.is_empty(), "{what}: nominal times fired twice: {doubled:?}");
    let mut missing = Vec::new();
    let mut at = first;
    while at <= until_ms {
        if !counts.contains_key(&at) {
            missing.push(at);
        }
        at += 1000;
    }
    assert!(missing.is_empty(), "{what}: nominal seconds with no run: {missing:?} (runs: {:?})", counts.keys());
    let off_grid: Vec<_> = counts.keys().filter(|&&n| !(n - first).is_multiple_of(1000)).collect();
    assert!(off_grid.is_empty(), "{what}: runs off the 1 s grid: {off_grid:?}");
}

async fn schedule_created_ms(client: &Client, id: u64) -> u64 {
    client.get_schedule(id).await.unwrap().created_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_second_fires_once_per_nominal_time_through_leader_kills_and_a_pause() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = cluster.client().with_timeout(Duration::from_secs(20));
    let body = |name: &str| {
        json!({"name": name, "every_ms": 1000, "catch_up": "all", "overlap": "allow",
               "task": {"executor": "noop"}})
    };
    let (a, created) = client.create_schedule(body("a")).await.unwrap();
    assert!(created);
    let (b, _) = client.create_schedule(body("b")).await.unwrap();
    assert_eq!(a.next_fires.len(), 5, "{a:?}");
    eventually("a few fires", Duration::from_secs(10), || async {
        let s = client.get_schedule(a.id).await.ok()?;
        (s.counters.fired >= 3).then_some(())
    })
    .await;

    // Kill the leader twice (restarting it in between), and pause it once past an election.
    for round in 0..2 {
        let leader = cluster.wait_leader().await;
        cluster.node_mut(leader).kill9();
        eprintln!("round {round}: killed leader {leader}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.node_mut(leader).start();
        cluster.wait_voters(3).await;
    }
    let leader = cluster.wait_leader().await;
    cluster.node(leader).pause();
    eprintln!("paused leader {leader}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.node(leader).resume();
    cluster.wait_voters(3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Judge up to a time every replica has certainly passed: a second ago.
    let until = taskraft::util::now_ms() - 2000;
    for s in [&a, &b] {
        let created_ms = schedule_created_ms(&client, s.id).await;
        let runs = client.all_schedule_runs(s.id).await.unwrap();
        let counts = nominal_counts(&runs, s.id);
        eprintln!("schedule {}: {} runs from {created_ms}", s.id, counts.len());
        assert_every_second_once(&counts, created_ms, until, &format!("schedule {}", s.id));
        let view = client.get_schedule(s.id).await.unwrap();
        assert_eq!(view.counters.missed, 0, "catch-up all within the window misses nothing: {view:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbid_schedule_never_has_two_live_runs() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 4, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client().with_timeout(Duration::from_secs(20));
    // Each run sleeps 2.5 s while the schedule fires every second: most fires must be skipped.
    let body = json!({"name": "slow", "every_ms": 1000, "overlap": "forbid",
                      "task": {"executor": "sleep", "command": ["2500"]}});
    let (s, _) = client.create_schedule(body).await.unwrap();
    let leader = cluster.wait_leader().await;
    eventually("several runs done", Duration::from_secs(30), || async {
        let v = client.get_schedule(s.id).await.ok()?;
        (v.counters.fired >= 3 && v.counters.skipped >= 3).then_some(())
    })
    .await;
    // A leader change in the middle must not let an overlapping run through.
    cluster.node_mut(leader).kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.node_mut(leader).start();
    let v = eventually("more runs after the failover", Duration::from_secs(30), || async {
        let v = client.get_schedule(s.id).await.ok()?;
        (v.counters.fired >= 6).then_some(v)
    })
    .await;
    client.pause_schedule(s.id, Some("test over")).await.unwrap();
    let runs = client.all_schedule_runs(s.id).await.unwrap();
    for r in &runs {
        client.wait(r.id, Duration::from_secs(30)).await.unwrap();
    }
    let runs = client.all_schedule_runs(s.id).await.unwrap();
    // Each run's life: from its creation (the fire) to its end. No two may overlap.
    let mut lives: Vec<(u64, u64, u64)> =
        runs.iter().map(|t| (t.created_ms, t.finished_ms.expect("every run finished"), t.id)).collect();
    lives.sort();
    for pair in lives.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        assert!(start >= end, "runs {a} and {b} overlap: {a} ended at {end}, {b} was fired at {start}");
    }
    eprintln!("forbid: {} runs, counters {:?}", runs.len(), v.counters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_are_refused_naming_the_field_and_the_cli_shows_them() {
    let cluster = TestCluster::start(3, &[]).await;
    let client = cluster.client();
    let cases = [
        (json!({"cron": "0 61 * * * *", "task": {"executor": "noop"}}), "cron"),
        (json!({"cron": "0 * * * * *", "time_zone": "Mars/Olympus", "task": {"executor": "noop"}}), "time_zone"),
        (json!({"every_ms": 0, "task": {"executor": "noop"}}), "every_ms"),
        (json!({"every_ms": 1000, "overlap": "sometimes", "task": {"executor": "noop"}}), "overlap"),
        (json!({"every_ms": 1000, "catch_up": "never", "task": {"executor": "noop"}}), "catch_up"),
        (json!({"every_ms": 1000, "cron": "* * * * * *", "task": {"executor": "noop"}}), "cron"),
        (json!({"every_ms": 1000, "task": {"command": []}}), "task.command"),
        (json!({"at": "tomorrow", "task": {"executor": "noop"}}), "at"),
    ];
    for (body, field) in cases {
        let err = client.create_schedule(body.clone()).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("422") || text.contains("invalid"), "{body}: {text}");
        assert!(text.contains(field), "{body}: the error must name {field}: {text}");
    }
    assert!(client.list_schedules().await.unwrap().schedules.is_empty(), "nothing was created");
}

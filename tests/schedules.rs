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

    // Judge up to now: wait until both schedules' marks have passed it (the new leader catches
    // up everything due meanwhile), then every nominal second up to it must have one run.
    let until = taskraft::util::now_ms();
    eventually("both marks past the end of the faults", Duration::from_secs(20), || async {
        for s in [&a, &b] {
            let v = client.get_schedule(s.id).await.ok()?;
            if v.last_nominal_ms? < until {
                return None;
            }
        }
        Some(())
    })
    .await;
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
async fn bad_schedules_are_refused_naming_the_field() {
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

/// A leader whose wall clock is already 8 s ahead when it is elected fires nothing early: it
/// compares its clock with the voters' and fires by theirs (README "Clock safety").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_clock_runs_ahead_fires_nothing_early() {
    let libfaketime = format!("/usr/lib/{}-linux-gnu/faketime/libfaketimeMT.so.1", std::env::consts::ARCH);
    assert!(
        std::path::Path::new(&libfaketime).exists(),
        "this test needs libfaketime at {libfaketime} (Debian package faketime; .ci/run installs it)"
    );
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = cluster.client().with_timeout(Duration::from_secs(20));
    // Restart the leader with its clock 8 s ahead, then kill the others' leaders until it leads
    // again: its clock was already ahead when it was elected, so no clock step is seen.
    let skewed = cluster.wait_leader().await;
    {
        let node = cluster.node_mut(skewed);
        node.env = vec![
            ("LD_PRELOAD".into(), libfaketime.clone()),
            ("FAKETIME".into(), "+8s".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ];
        node.kill9();
        node.start();
    }
    cluster.wait_voters(3).await;
    // Hand leadership to the skewed replica: kill whoever else leads (bounded).
    for _ in 0..10 {
        let leader = cluster.wait_leader().await;
        if leader == skewed {
            break;
        }
        cluster.node_mut(leader).kill9();
        let new = eventually("a new leader", Duration::from_secs(10), || async {
            let l = cluster.wait_leader().await;
            (l != leader).then_some(l)
        })
        .await;
        cluster.node_mut(leader).start();
        cluster.wait_voters(3).await;
        eprintln!("killed {leader}, {new} leads now");
    }
    assert_eq!(cluster.wait_leader().await, skewed, "the skewed replica never became leader in 10 elections");
    eprintln!("leader {skewed} runs 8 s ahead");

    // catch_up all, created "now" by the skewed leader's clock, i.e. 8 s in the future: a
    // leader that believed its own clock would fire it at once, and every second after.
    let body = json!({"name": "ahead", "every_ms": 1000, "catch_up": "all", "overlap": "allow",
                      "task": {"executor": "noop"}});
    let (s, _) = client.create_schedule(body).await.unwrap();
    let mut early = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(14);
    while std::time::Instant::now() < deadline {
        let seen_at = taskraft::util::now_ms();
        let runs = client.all_schedule_runs(s.id).await.unwrap();
        let read_at = taskraft::util::now_ms();
        // A run read back at real time `read_at` was fired at or before it: its nominal time
        // must not be later (1 s of tolerance for the MAX_DEVIATION threshold).
        for t in &runs {
            if let Some((_, nominal)) = t.spec.origin.schedule_run()
                && nominal > read_at + 1000
            {
                early.entry(nominal).or_insert(seen_at);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(early.is_empty(), "runs fired before their nominal time (nominal → real time first seen): {early:?}");
    let view = client.get_schedule(s.id).await.unwrap();
    assert!(view.counters.fired >= 3, "the schedule fired once the real time reached it: {view:?}");
    let log = std::fs::read_to_string(&cluster.node(skewed).log).unwrap();
    assert!(
        log.contains("is ahead of the median of the voters' clocks"),
        "the leader says it fires by the voters' clocks; its log:\n{log}"
    );
}

//! The schedule workload: timed triggers fired by the cluster while faults happen.
//!
//! Always on in `run` and `suite` (three schedules at about one fire per second cost little):
//! 1. [`create_all`], before the clients and the nemesis start: `POST /v1/schedules` for each of
//!    [`specs`] (two `catch_up: all` / `overlap: allow` interval schedules running `noop`, and a
//!    `forbid` one whose `sleep` run lasts longer than its period), each with an idempotency key,
//!    so a create retried after a lost answer cannot create a second schedule.
//! 2. [`poll`] during the run, every [`POLL_EVERY`]: `GET /v1/schedules` (live runs and mark of
//!    each schedule, linearizable) and the new runs of each (`GET /v1/tasks?schedule=ID` from the
//!    last nominal time seen), stamped with the harness's own wall clock: that is what tells an
//!    early fire (a run committed before its nominal time) under the clock nemesis.
//! 3. [`pause_all`] after the heal, before the quiet wait: the calendars stop moving, so the
//!    cluster can get quiet and the final reads see a fixed mark.
//! 4. [`final_read`] after the quiet wait, like the final read of the tasks: per schedule,
//!    `GET /v1/schedules/{id}`, every page of its runs, and the schedule again.
//!
//! Everything lands in `schedules.json` ([`ScheduleRecord`]); [`crate::checkers::schedules`]
//! judges it. Every loop here is bounded in attempts and time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::Value;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::api_url;
use crate::history::RunAttempt;
use crate::history::RunOrigin;
use crate::history::RunTask;
use crate::history::ScheduleCounts;
use crate::history::ScheduleLog;
use crate::history::SchedulePoll;
use crate::history::ScheduleRecord;
use crate::history::ScheduleSeen;
use crate::history::SeenRun;
use crate::workload::Outcome;
use crate::workload::Shared;
use crate::workload::exchange;
use crate::workload::http_client;

/// The record's file in a run directory.
pub const FILE: &str = "schedules.json";
/// How often the runs are polled during the load.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Longest time spent creating (or pausing) one schedule.
const PER_SCHEDULE_LIMIT: Duration = Duration::from_secs(15);
/// Most requests per schedule for a create or a pause.
const MAX_TRIES: u32 = 30;
/// Page size of the runs reads.
const PAGE: u32 = 1000;
/// Most pages per runs read (far more than a run creates).
const MAX_PAGES: usize = 100;
/// Catch-up window of the `all` schedules: far longer than any run.
pub const CATCH_UP_WINDOW_MS: u64 = 3_600_000;

/// The schedules every run creates: (name, body of `POST /v1/schedules`).
pub fn specs() -> Vec<(String, Value)> {
    let all = |name: &str, every_ms: u64| {
        json!({
            "name": name,
            "every_ms": every_ms,
            "catch_up": "all",
            "catch_up_window_ms": CATCH_UP_WINDOW_MS,
            "overlap": "allow",
            "idempotency_key": name,
            "task": {"executor": "noop"},
        })
    };
    vec![
        ("jep-all-1".to_string(), all("jep-all-1", 1000)),
        ("jep-all-2".to_string(), all("jep-all-2", 1500)),
        (
            "jep-forbid".to_string(),
            json!({
                "name": "jep-forbid",
                "every_ms": 1000,
                "catch_up": "all",
                "catch_up_window_ms": CATCH_UP_WINDOW_MS,
                "overlap": "forbid",
                "idempotency_key": "jep-forbid",
                // Longer than the period: most fires find the previous run live and are skipped.
                "task": {"executor": "sleep", "command": ["2500"]},
            }),
        ),
    ]
}

/// The harness's wall clock, ms since the epoch (never under libfaketime).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Creates every schedule of [`specs`], retrying each (same idempotency key) on the next member
/// until it is acknowledged or its budget runs out. A schedule that could not be created keeps
/// `id: None` and its last error; the checker then answers `unknown`.
pub async fn create_all(members: &[u64], nemesis: Vec<String>) -> ScheduleRecord {
    let http = http_client();
    let mut record = ScheduleRecord { nemesis, ..ScheduleRecord::default() };
    for (name, body) in specs() {
        let mut log = ScheduleLog { name, request: body.clone(), ..ScheduleLog::default() };
        let start = Instant::now();
        let mut k = 0usize;
        while log.create_attempts < MAX_TRIES && start.elapsed() < PER_SCHEDULE_LIMIT && !members.is_empty() {
            let node = members[k % members.len()];
            k += 1;
            log.create_attempts += 1;
            let sent = wall_ms();
            let url = api_url(node, "/v1/schedules");
            match exchange(http.post(url).json(&body)).await {
                Outcome::Answer(200 | 201, v) => match parse_view(&v) {
                    Some(view) => {
                        log.id = Some(view.id);
                        log.created_ms = Some(view.created_ms);
                        log.create_wall_ms = Some((sent, wall_ms()));
                        log.create_error = None;
                        break;
                    }
                    None => log.create_error = Some(format!("unparsable answer: {v}")),
                },
                Outcome::Answer(status, v) => log.create_error = Some(format!("{status} {}", v["error"])),
                Outcome::NotSent(e) | Outcome::Lost(e) => log.create_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        record.schedules.push(log);
    }
    record
}

/// Polls the schedules and their new runs every [`POLL_EVERY`] until `stop`, into `record`.
pub async fn poll(shared: Arc<Shared>, record: Arc<Mutex<ScheduleRecord>>, seed: u64, stop: CancellationToken) {
    use rand::SeedableRng;
    let http = http_client();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5c4e_d01e);
    let ids: Vec<u64> = record.lock().unwrap().schedules.iter().filter_map(|s| s.id).collect();
    if ids.is_empty() {
        return;
    }
    // Per schedule, the newest nominal time seen: the cursor of the next runs read.
    let mut cursors: Vec<Option<u64>> = vec![None; ids.len()];
    while !stop.is_cancelled() {
        let Some(node) = shared.members.lock().unwrap().choose(&mut rng).copied() else { break };
        let url = api_url(node, "/v1/schedules");
        if let Outcome::Answer(200, v) = exchange(http.get(url)).await {
            let wall = wall_ms();
            let mut rec = record.lock().unwrap();
            for s in v["schedules"].as_array().into_iter().flatten().filter_map(parse_view) {
                if ids.contains(&s.id) {
                    let last_nominal_ms = s.last_nominal_ms;
                    rec.polls.push(SchedulePoll {
                        wall_ms: wall,
                        node,
                        schedule: s.id,
                        live_runs: s.live_runs,
                        last_nominal_ms,
                    });
                }
            }
        }
        for (i, &id) in ids.iter().enumerate() {
            if stop.is_cancelled() {
                break;
            }
            let sent = wall_ms();
            let Some(runs) = read_runs(&http, node, id, cursors[i]).await else { continue };
            let seen_wall_ms = wall_ms();
            let mut rec = record.lock().unwrap();
            let Some(log) = rec.schedules.iter_mut().find(|s| s.id == Some(id)) else { continue };
            for r in runs {
                let Some(o) = r.origin else { continue };
                if !o.manual {
                    cursors[i] = Some(cursors[i].map_or(o.nominal_ms, |c| c.max(o.nominal_ms)));
                }
                if log.first_seen.iter().any(|s| s.task_id == r.task_id) {
                    continue;
                }
                log.first_seen.push(SeenRun {
                    task_id: r.task_id,
                    nominal_ms: o.nominal_ms,
                    manual: o.manual,
                    created_ms: r.created_ms,
                    read_sent_wall_ms: sent,
                    seen_wall_ms,
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = stop.cancelled() => break,
        }
    }
}

/// Pauses every created schedule (bounded retries, any member). True when every pause was
/// acknowledged; the record then says `paused`.
pub async fn pause_all(members: &[u64], record: &mut ScheduleRecord) -> bool {
    let http = http_client();
    let mut all = true;
    for log in &mut record.schedules {
        let Some(id) = log.id else { continue };
        let start = Instant::now();
        let first_sent = wall_ms();
        let mut done = false;
        let mut tries = 0u32;
        while !done && tries < MAX_TRIES && start.elapsed() < PER_SCHEDULE_LIMIT && !members.is_empty() {
            let node = members[tries as usize % members.len()];
            tries += 1;
            let url = api_url(node, &format!("/v1/schedules/{id}/pause"));
            let body = json!({"note": "jepsen: end of the load"});
            done = matches!(exchange(http.post(url).json(&body)).await, Outcome::Answer(200, _));
            if done {
                log.pause_wall_ms = Some((first_sent, wall_ms()));
            } else {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        all &= done;
    }
    record.paused = all && record.schedules.iter().all(|s| s.id.is_some());
    if record.paused {
        record.paused_wall_ms = Some(wall_ms());
    }
    record.paused
}

/// The final read of every created schedule: the schedule, every page of its runs, the schedule
/// again, all from one member (the first that answers all three).
pub async fn final_read(members: &[u64], record: &mut ScheduleRecord) {
    let http = http_client();
    if record.schedules.iter().any(|s| s.id.is_none()) {
        recover_ids(&http, members, record).await;
    }
    for log in &mut record.schedules {
        let Some(id) = log.id else { continue };
        for &node in members {
            let Some(before) = read_view(&http, node, id).await else { continue };
            let Some(runs) = read_runs(&http, node, id, None).await else { continue };
            // Runs a poll saw that the listing lacks: retention forgot them, or they are lost.
            let listed: BTreeSet<u64> = runs.iter().map(|r| r.task_id).collect();
            let absent: Vec<u64> = log.first_seen.iter().map(|r| r.task_id).filter(|t| !listed.contains(t)).collect();
            let forgotten = crate::workload::probe_tasks(&http, node, &absent).await.map(|answers| {
                let mut ids: Vec<u64> = answers
                    .into_iter()
                    .filter(|(_, a)| matches!(a, crate::workload::Probe::Forgotten))
                    .map(|(t, _)| t)
                    .collect();
                ids.sort_unstable();
                ids
            });
            let Some(after) = read_view(&http, node, id).await else { continue };
            log.final_view = Some(before);
            log.final_runs = Some(runs);
            log.forgotten_runs = forgotten;
            log.final_view_after = Some(after);
            break;
        }
    }
}

/// A create that was never acknowledged may have taken effect: look for its idempotency key in
/// `GET /v1/schedules` and adopt the id (`create_error` stays, so the record shows it).
async fn recover_ids(http: &reqwest::Client, members: &[u64], record: &mut ScheduleRecord) {
    for &node in members {
        let url = api_url(node, "/v1/schedules");
        let Outcome::Answer(200, v) = exchange(http.get(url)).await else { continue };
        let listed = v["schedules"].as_array().cloned().unwrap_or_default();
        for log in record.schedules.iter_mut().filter(|s| s.id.is_none()) {
            let key = log.request["idempotency_key"].clone();
            if let Some(found) = listed.iter().find(|s| s["idempotency_key"] == key).and_then(parse_view) {
                log.id = Some(found.id);
                log.created_ms = Some(found.created_ms);
            }
        }
        return;
    }
}

async fn read_view(http: &reqwest::Client, node: u64, id: u64) -> Option<ScheduleSeen> {
    let url = api_url(node, &format!("/v1/schedules/{id}"));
    match exchange(http.get(url)).await {
        Outcome::Answer(200, v) => parse_view(&v),
        _ => None,
    }
}

/// Every run of `id` after nominal time `after` (all of them for `None`), paged; `None` if a
/// page failed.
async fn read_runs(http: &reqwest::Client, node: u64, id: u64, after: Option<u64>) -> Option<Vec<RunTask>> {
    let mut runs = Vec::new();
    let mut cursor = after;
    for _ in 0..MAX_PAGES {
        let mut url = api_url(node, &format!("/v1/tasks?schedule={id}&limit={PAGE}"));
        if let Some(c) = cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let Outcome::Answer(200, page) = exchange(http.get(url)).await else { return None };
        runs.extend(page["tasks"].as_array().into_iter().flatten().filter_map(parse_run));
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = Some(c),
            None => return Some(runs),
        }
    }
    None
}

/// The origin of a task JSON when it is a schedule's run (`spec.origin`, or a top-level
/// `origin`), else `None`.
pub fn parse_origin(task: &Value) -> Option<RunOrigin> {
    let o = if task["spec"]["origin"].is_object() { &task["spec"]["origin"] } else { &task["origin"] };
    Some(RunOrigin {
        schedule: o["schedule"].as_u64()?,
        nominal_ms: o["nominal_ms"].as_u64()?,
        manual: o["manual"].as_bool().unwrap_or(false),
    })
}

/// A schedule JSON (`ScheduleView`) as the checker needs it.
pub fn parse_view(v: &Value) -> Option<ScheduleSeen> {
    let c = &v["counters"];
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    Some(ScheduleSeen {
        id: v["id"].as_u64()?,
        every_ms: v["every_ms"].as_u64(),
        start_ms: v["start_ms"].as_u64(),
        catch_up: v["catch_up"].as_str().unwrap_or("").to_string(),
        catch_up_window_ms: v["catch_up_window_ms"].as_u64().unwrap_or(0),
        overlap: v["overlap"].as_str().unwrap_or("").to_string(),
        created_ms: v["created_ms"].as_u64()?,
        paused: v["paused"].as_bool().unwrap_or(false),
        last_nominal_ms: v["last_nominal_ms"].as_u64(),
        counters: ScheduleCounts {
            fired: n("fired"),
            missed: n("missed"),
            skipped: n("skipped"),
            dropped: n("dropped"),
            triggered: n("triggered"),
            backfilled: n("backfilled"),
            replaced: n("replaced"),
        },
        live_runs: v["live_runs"].as_array().map_or(vec![], |a| a.iter().filter_map(Value::as_u64).collect()),
        runs: v["runs"].as_u64().unwrap_or(0),
    })
}

/// A run's task JSON as the checker needs it.
pub fn parse_run(t: &Value) -> Option<RunTask> {
    let attempts = t["attempts"]
        .as_array()?
        .iter()
        .map(|a| RunAttempt {
            token: a["fencing_token"].as_u64().unwrap_or(0),
            assigned_ms: a["assigned_ms"].as_u64().unwrap_or(0),
            started_ms: a["started_ms"].as_u64(),
            ended_ms: a["ended_ms"].as_u64(),
            outcome: a["outcome"].as_str().map(str::to_string),
        })
        .collect();
    Some(RunTask {
        task_id: t["id"].as_u64()?,
        origin: parse_origin(t),
        state: t["state"].as_str()?.to_string(),
        version: t["version"].as_u64()?,
        created_ms: t["created_ms"].as_u64()?,
        finished_ms: t["finished_ms"].as_u64(),
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_parsed_from_the_task_json() {
        let t = json!({
            "id": 41, "state": "succeeded", "version": 5, "created_ms": 1000, "updated_ms": 1300,
            "finished_ms": 1300,
            "spec": {"executor": "noop", "origin": {"schedule": 2, "nominal_ms": 999, "manual": false}},
            "attempts": [{"number": 1, "worker_id": "w1", "fencing_token": 77, "assigned_ms": 1100,
                          "started_ms": 1150, "ended_ms": 1300, "outcome": "succeeded"}],
        });
        let r = parse_run(&t).unwrap();
        assert_eq!(r.origin, Some(RunOrigin { schedule: 2, nominal_ms: 999, manual: false }));
        assert_eq!((r.task_id, r.created_ms, r.finished_ms), (41, 1000, Some(1300)));
        assert_eq!(r.attempts[0].token, 77);
        assert_eq!(r.attempts[0].outcome.as_deref(), Some("succeeded"));
        let client_task = json!({"id": 1, "spec": {"origin": "api"}});
        assert_eq!(parse_origin(&client_task), None);
    }

    #[test]
    fn a_schedule_view_is_parsed() {
        let v = json!({
            "id": 3, "every_ms": 1000, "catch_up": "all", "catch_up_window_ms": 3600000, "overlap": "forbid",
            "created_ms": 5000, "paused": true, "last_nominal_ms": 9000, "live_runs": [12],
            "counters": {"fired": 2, "missed": 0, "skipped": 3, "dropped": 0, "triggered": 0, "backfilled": 0,
                         "replaced": 0},
            "runs": 2, "start_ms": null,
        });
        let s = parse_view(&v).unwrap();
        assert_eq!((s.id, s.every_ms, s.start_ms, s.last_nominal_ms), (3, Some(1000), None, Some(9000)));
        assert_eq!((s.counters.fired, s.counters.skipped, s.live_runs.clone()), (2, 3, vec![12]));
        assert_eq!((s.catch_up.as_str(), s.overlap.as_str(), s.paused), ("all", "forbid", true));
    }

    #[test]
    fn every_spec_has_an_idempotency_key_and_a_task() {
        for (name, body) in specs() {
            assert_eq!(body["idempotency_key"], json!(name));
            assert!(body["task"].is_object());
            assert!(body["every_ms"].as_u64().unwrap() >= 1000);
        }
    }
}

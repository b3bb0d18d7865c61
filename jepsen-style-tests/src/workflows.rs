//! The workflow workload: DAGs of tasks the cluster drives itself while faults happen, a
//! sharded map whose results a reduce aggregates, and a cluster-wide concurrency limit.
//!
//! Always on in `run` and `suite` (four small workflows per run):
//! 1. [`set_limit`], before the clients and the nemesis start: `PUT /v1/limits/jep-limit`
//!    `{"max_running": 2}` (retried until acknowledged). Only when it is acknowledged do the
//!    keyed tasks below carry `concurrency_key: jep-limit`; a build without the limits route
//!    (404/405) runs the same workflows without the key, and the record says `route_missing`.
//! 2. [`drive`] during the load: [`wave_count`] waves (2 for a run of up to 29 s, one more per
//!    10 s, at most 6), spread over the first 80 % of the time limit ([`wave_offset`]: a 20 s
//!    smoke run submits at 0 and 8 s), each wave one [`dag`] and one [`mapreduce`] workflow,
//!    submitted with an idempotency key (its name) and retried with the same body on the next
//!    member until acknowledged, for at most [`PER_WORKFLOW_LIMIT`] or until the load stops.
//!    - `dag`: a diamond `a → b, c → d` on `success` edges; `f` fails on purpose, `on_fail`
//!      hangs on it `on: failure` and `always` on `f` and `d` `on: always`; `skipped` waits for
//!      `a` to fail (it does not), `skip2` on `skipped` succeeding (skip propagation), `nf` on
//!      `skipped` `not_failed` (runs); `any` runs on `f` or `c` succeeding (`c` does),
//!      `anyskip` on `f` or `skipped` succeeding (neither: skipped). `b`, `c`, `d` carry the
//!      concurrency key.
//!    - `mapreduce`: `map` fans out [`MAP_SHARDS`] shards, at most [`MAP_PARALLEL`] live (more
//!      than the limit of 2: the limit is what binds), each checkpointing while it runs and
//!      writing `shard=<i> task=<id> token=<token>` as its result; `reduce` (on `map` success)
//!      records every file of `$TASKRAFT_INPUTS_DIR` in the sink and writes them as its result.
//!
//!    Every task is `taskraft-jepsen wf-task` ([`crate::sink::wf_task`]): start, checkpoints,
//!    end and identity (workflow, node, shard, worker, fencing token) go to the sink.
//!    While the limit is set, [`poll_limit`] reads `GET /v1/limits/jep-limit` (linearizable: the
//!    permit holders at one point of the log) every [`LIMIT_POLL_EVERY`].
//! 3. [`final_read`] after the heal and the quiet wait: every page of `GET /v1/workflows`, then
//!    `GET /v1/workflows/{id}` of each workflow (an unacknowledged one is found by its name),
//!    then the limit once more.
//!
//! Everything lands in `workflows.json` ([`WorkflowRecord`]); [`crate::checkers::workflows`]
//! judges it with the sink and the final state. Every loop here is bounded in tries and time.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::api_url;
use crate::history::LimitLog;
use crate::history::LimitPoll;
use crate::history::LimitStatus;
use crate::history::WfNodeSeen;
use crate::history::WfNodeTask;
use crate::history::WfSeen;
use crate::history::WfShards;
use crate::history::WorkflowListed;
use crate::history::WorkflowLog;
use crate::history::WorkflowRecord;
use crate::workload::Outcome;
use crate::workload::Shared;
use crate::workload::exchange;
use crate::workload::http_client;

/// The record's file in a run directory.
pub const FILE: &str = "workflows.json";
/// The concurrency key of the run's limit.
pub const LIMIT_KEY: &str = "jep-limit";
/// Its `max_running`.
pub const LIMIT_MAX: u32 = 2;
/// Shards of each map.
pub const MAP_SHARDS: u32 = 8;
/// `max_parallel` of each map (above the limit, so that the limit is what holds them back).
pub const MAP_PARALLEL: u32 = 3;
/// Priority of every workflow task (above the counter tasks' default, so a backlog of those
/// does not starve the workflows).
const PRIORITY: u32 = 700;
/// The waves are spread over this fraction of the time limit.
const WAVES_WITHIN: f64 = 0.8;
/// Most waves per run.
const MAX_WAVES: u32 = 6;
/// Longest time spent submitting one workflow.
const PER_WORKFLOW_LIMIT: Duration = Duration::from_secs(20);
/// Most submit requests per workflow (and per limit request).
const MAX_TRIES: u32 = 40;
/// Longest time spent setting the limit.
const LIMIT_BUDGET: Duration = Duration::from_secs(15);
/// Page size and most pages of the final list.
const PAGE: u32 = 1000;
const MAX_PAGES: usize = 50;

/// How a workflow task is started: this binary's `wf-task` and the sink's address.
#[derive(Debug, Clone)]
pub struct Program {
    /// This executable.
    pub exe: String,
    /// The sink's `127.0.0.1:port`.
    pub sink: String,
}

/// What one node's task does.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    steps: u64,
    step_ms: u64,
    fail: bool,
    reduce: bool,
}

const QUICK: Behaviour = Behaviour { steps: 3, step_ms: 250, fail: false, reduce: false };
const FAILS: Behaviour = Behaviour { steps: 1, step_ms: 250, fail: true, reduce: false };
const SHARD: Behaviour = Behaviour { steps: 5, step_ms: 250, fail: false, reduce: false };
const REDUCE: Behaviour = Behaviour { steps: 1, step_ms: 100, fail: false, reduce: true };

/// The task object (as `POST /v1/tasks` takes it) of node `node` of workflow `wf`.
fn task(p: &Program, wf: &str, node: &str, b: Behaviour, key: Option<&str>) -> Value {
    let mut command: Vec<String> = vec![
        p.exe.clone(),
        "wf-task".into(),
        "--sink".into(),
        p.sink.clone(),
        "--workflow".into(),
        wf.into(),
        "--node".into(),
        node.into(),
        "--steps".into(),
        b.steps.to_string(),
        "--step-ms".into(),
        b.step_ms.to_string(),
    ];
    if b.fail {
        command.push("--fail".into());
    }
    if b.reduce {
        command.push("--reduce".into());
    }
    // A task told to fail gets one attempt, so its failure ends it; the others retry (a lost
    // attempt does not count against the retries anyway).
    let attempts = if b.fail { 1 } else { 20 };
    let mut t = json!({
        "command": command,
        "priority": PRIORITY,
        "retry": {"max_attempts": attempts, "backoff_initial_ms": 200, "backoff_max_ms": 1000},
    });
    if let Some(k) = key {
        t["concurrency_key"] = json!(k);
    }
    t
}

fn node(id: &str, task: Value, depends: &[(&str, &str)], trigger: &str) -> Value {
    let depends: Vec<Value> = depends.iter().map(|(n, on)| json!({"node": n, "on": on})).collect();
    json!({"id": id, "task": task, "depends": depends, "trigger": trigger})
}

/// The DAG workflow `name` (see the module docs); `key` is the concurrency key of `b`, `c`, `d`.
pub fn dag(p: &Program, name: &str, key: Option<&str>) -> Value {
    let t = |id: &str, b: Behaviour, key: Option<&str>| task(p, name, id, b, key);
    let nodes = vec![
        node("a", t("a", QUICK, None), &[], "all"),
        node("b", t("b", QUICK, key), &[("a", "success")], "all"),
        node("c", t("c", QUICK, key), &[("a", "success")], "all"),
        node("d", t("d", QUICK, key), &[("b", "success"), ("c", "success")], "all"),
        node("f", t("f", FAILS, None), &[("a", "success")], "all"),
        node("on_fail", t("on_fail", QUICK, None), &[("f", "failure")], "all"),
        node("always", t("always", QUICK, None), &[("f", "always"), ("d", "always")], "all"),
        node("skipped", t("skipped", QUICK, None), &[("a", "failure")], "all"),
        node("skip2", t("skip2", QUICK, None), &[("skipped", "success")], "all"),
        node("nf", t("nf", QUICK, None), &[("skipped", "not_failed")], "all"),
        node("any", t("any", QUICK, None), &[("f", "success"), ("c", "success")], "any"),
        node("anyskip", t("anyskip", QUICK, None), &[("f", "success"), ("skipped", "success")], "any"),
    ];
    json!({"name": name, "idempotency_key": name, "nodes": nodes})
}

/// The map-reduce workflow `name` (see the module docs); `key` is the concurrency key of the
/// map's shards.
pub fn mapreduce(p: &Program, name: &str, key: Option<&str>) -> Value {
    let mut map = node("map", task(p, name, "map", SHARD, key), &[], "all");
    map["shards"] = json!({"count": MAP_SHARDS, "max_parallel": MAP_PARALLEL, "success": "all"});
    let reduce = node("reduce", task(p, name, "reduce", REDUCE, None), &[("map", "success")], "all");
    json!({"name": name, "idempotency_key": name, "nodes": [map, reduce]})
}

/// Waves of a run of `time_limit`: one per 10 s, at least 2, at most [`MAX_WAVES`].
pub fn wave_count(time_limit: Duration) -> u32 {
    ((time_limit.as_secs_f64() / 10.0) as u32).clamp(2, MAX_WAVES)
}

/// When wave `k` of `n` starts, from the start of the load.
pub fn wave_offset(k: u32, n: u32, time_limit: Duration) -> Duration {
    time_limit.mul_f64(WAVES_WITHIN * f64::from(k) / f64::from(n.max(1)))
}

/// Every workflow of a run, `waves` waves of a DAG and a map-reduce. The key is set only when
/// the limit is in force.
pub fn plan(p: &Program, limit: &LimitLog, waves: u32) -> Vec<WorkflowLog> {
    let key = (limit.status == LimitStatus::Set).then_some(limit.key.as_str());
    let mut out = Vec::new();
    for wave in 0..waves {
        let name = format!("jep-wf{wave}-dag");
        out.push(log(wave, "dag", &name, dag(p, &name, key)));
        let name = format!("jep-wf{wave}-mr");
        out.push(log(wave, "mapreduce", &name, mapreduce(p, &name, key)));
    }
    out
}

fn log(wave: u32, kind: &str, name: &str, request: Value) -> WorkflowLog {
    WorkflowLog { name: name.into(), kind: kind.into(), wave, request, ..WorkflowLog::default() }
}

/// `PUT /v1/limits/{LIMIT_KEY}` `{"max_running": LIMIT_MAX}` on each member in turn until one
/// acknowledges it, one answers that the route does not exist, or the budget runs out.
pub async fn set_limit(members: &[u64]) -> LimitLog {
    let http = http_client();
    let mut log = LimitLog { key: LIMIT_KEY.into(), max_running: LIMIT_MAX, ..LimitLog::default() };
    let body = json!({"max_running": LIMIT_MAX});
    let start = Instant::now();
    log.status = LimitStatus::Failed;
    while log.attempts < MAX_TRIES && start.elapsed() < LIMIT_BUDGET && !members.is_empty() {
        let node = members[log.attempts as usize % members.len()];
        log.attempts += 1;
        let url = api_url(node, &format!("/v1/limits/{LIMIT_KEY}"));
        match exchange(http.put(url).json(&body)).await {
            Outcome::Answer(200..=299, _) => {
                log.status = LimitStatus::Set;
                log.last_error = None;
                break;
            }
            Outcome::Answer(status @ (404 | 405), v) => {
                log.status = LimitStatus::RouteMissing;
                log.last_error = Some(format!("{status} {}", v["error"]));
                break;
            }
            Outcome::Answer(status, v) => log.last_error = Some(format!("{status} {}", v["error"])),
            Outcome::NotSent(e) | Outcome::Lost(e) => log.last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    log
}

/// Submits the workflows of `record` wave by wave (wave `k` at [`wave_offset`] after
/// `load_start`) until `stop`. A wave not yet started when the load stops is dropped from
/// the record (nothing was sent for it).
pub async fn drive(
    shared: Arc<Shared>,
    record: Arc<Mutex<WorkflowRecord>>,
    load_start: Instant,
    time_limit: Duration,
    stop: CancellationToken,
) {
    let http = http_client();
    let waves: Vec<u32> = {
        let mut w: Vec<u32> = record.lock().unwrap().workflows.iter().map(|l| l.wave).collect();
        w.dedup();
        w
    };
    let n = waves.len() as u32;
    for wave in waves {
        let at = load_start + wave_offset(wave, n, time_limit);
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = stop.cancelled() => {}
        }
        if stop.is_cancelled() {
            record.lock().unwrap().workflows.retain(|l| l.wave < wave);
            return;
        }
        let count = record.lock().unwrap().workflows.len();
        for i in 0..count {
            let mut log = record.lock().unwrap().workflows[i].clone();
            if log.wave != wave {
                continue;
            }
            submit(&shared, &http, &mut log, &stop).await;
            record.lock().unwrap().workflows[i] = log;
        }
    }
}

/// Submits one workflow until acknowledged, definitely refused (4xx), out of budget, or the
/// load stops. `all_failed` says whether every try was a definite failure.
async fn submit(shared: &Shared, http: &reqwest::Client, log: &mut WorkflowLog, stop: &CancellationToken) {
    let start = Instant::now();
    let mut maybe = false;
    let mut k = 0usize;
    // Retention forgets a settled workflow with its idempotency key: a retry after that would
    // make a second workflow, so retries stay within the run's key retry window as well.
    let budget = PER_WORKFLOW_LIMIT.min(shared.retry_window);
    while log.submit_attempts < MAX_TRIES && start.elapsed() < budget && !stop.is_cancelled() {
        let members = shared.members.lock().unwrap().clone();
        if members.is_empty() {
            break;
        }
        let node = members[k % members.len()];
        k += 1;
        log.submit_attempts += 1;
        log.first_sent_ns.get_or_insert(shared.rec.now_ns());
        let url = api_url(node, "/v1/workflows");
        match exchange(http.post(url).json(&log.request)).await {
            Outcome::Answer(200 | 201, v) => match v["id"].as_u64() {
                Some(id) => {
                    log.id = Some(id);
                    log.acked_ns = Some(shared.rec.now_ns());
                    log.submit_error = None;
                    break;
                }
                None => {
                    maybe = true;
                    log.submit_error = Some(format!("answer without an id: {v}"));
                }
            },
            Outcome::Answer(status, v) => {
                log.submit_error = Some(format!("{status} {}", v["error"]));
                // 4xx: nothing was written, and the same body will be refused again.
                if (400..500).contains(&status) {
                    break;
                }
                maybe |= status != 503;
            }
            Outcome::NotSent(e) => log.submit_error = Some(e),
            Outcome::Lost(e) => {
                maybe = true;
                log.submit_error = Some(e);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.cancelled() => {}
        }
    }
    log.all_failed = log.id.is_none() && !maybe && log.submit_attempts > 0;
}

/// How often the limit is read during the load.
pub const LIMIT_POLL_EVERY: Duration = Duration::from_millis(500);

/// Reads `GET /v1/limits/{key}` from a random member every [`LIMIT_POLL_EVERY`] until `stop`,
/// while the limit is set, into `record.limit_polls`.
pub async fn poll_limit(shared: Arc<Shared>, record: Arc<Mutex<WorkflowRecord>>, seed: u64, stop: CancellationToken) {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let (key, set) = {
        let r = record.lock().unwrap();
        (r.limit.key.clone(), r.limit.status == LimitStatus::Set)
    };
    if !set {
        return;
    }
    let http = http_client();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x11_4117);
    while !stop.is_cancelled() {
        let Some(node) = shared.members.lock().unwrap().choose(&mut rng).copied() else { break };
        if let Some(poll) = read_limit(&http, &shared, node, &key).await {
            record.lock().unwrap().limit_polls.push(poll);
        }
        tokio::select! {
            _ = tokio::time::sleep(LIMIT_POLL_EVERY) => {}
            _ = stop.cancelled() => break,
        }
    }
}

async fn read_limit(http: &reqwest::Client, shared: &Shared, node: u64, key: &str) -> Option<LimitPoll> {
    let url = api_url(node, &format!("/v1/limits/{key}"));
    let Outcome::Answer(200, v) = exchange(http.get(url)).await else { return None };
    Some(LimitPoll {
        time_ns: shared.rec.now_ns(),
        node,
        max_running: v["max_running"].as_u64().map(|m| m as u32),
        running: v["running"].as_array()?.iter().filter_map(Value::as_u64).collect(),
    })
}

/// The final read: every workflow listed, then each of the record's by id (found by name in
/// the list when no submit was acknowledged), then the limit.
pub async fn final_read(shared: &Shared, members: &[u64], record: &mut WorkflowRecord) {
    let http = http_client();
    record.listed = list_all(&http, members).await;
    for log in &mut record.workflows {
        if log.id.is_none()
            && let Some(listed) = &record.listed
        {
            log.id = listed.iter().filter(|w| w.name == log.name).map(|w| w.id).min();
        }
        let Some(id) = log.id else { continue };
        log.final_error = Some("no member answered".into());
        for &node in members {
            let url = api_url(node, &format!("/v1/workflows/{id}"));
            match exchange(http.get(url)).await {
                Outcome::Answer(200, v) => match parse_view(&v) {
                    Some(view) => {
                        log.final_view = Some(view);
                        log.final_error = None;
                        break;
                    }
                    None => log.final_error = Some(format!("unparsable view: {v}")),
                },
                Outcome::Answer(404, v) if v["error"]["code"] == "not_found" => {
                    log.final_not_found = true;
                    log.final_error = None;
                    break;
                }
                Outcome::Answer(404, v) if v["error"]["code"] == "forgotten" => {
                    log.final_forgotten = true;
                    log.final_error = None;
                    break;
                }
                Outcome::Answer(status, v) => log.final_error = Some(format!("{status} {}", v["error"])),
                Outcome::NotSent(e) | Outcome::Lost(e) => log.final_error = Some(e),
            }
        }
    }
    if record.limit.status == LimitStatus::Set {
        for &node in members {
            if let Some(poll) = read_limit(&http, shared, node, &record.limit.key).await {
                record.final_limit = Some(poll);
                break;
            }
        }
    }
}

async fn list_all(http: &reqwest::Client, members: &[u64]) -> Option<Vec<WorkflowListed>> {
    'member: for &node in members {
        let mut out = Vec::new();
        let mut cursor: Option<u64> = None;
        for _ in 0..MAX_PAGES {
            let mut url = api_url(node, &format!("/v1/workflows?limit={PAGE}"));
            if let Some(c) = cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let Outcome::Answer(200, page) = exchange(http.get(url)).await else { continue 'member };
            for w in page["workflows"].as_array().into_iter().flatten() {
                let (Some(id), Some(name), Some(state)) = (w["id"].as_u64(), w["name"].as_str(), w["state"].as_str())
                else {
                    continue 'member;
                };
                out.push(WorkflowListed { id, name: name.into(), state: state.into() });
            }
            match page["next_cursor"].as_u64() {
                Some(c) => cursor = Some(c),
                None => return Some(out),
            }
        }
    }
    None
}

/// A `WorkflowView` JSON as the checker needs it.
pub fn parse_view(v: &Value) -> Option<WfSeen> {
    let mut nodes = Vec::new();
    for n in v["nodes"].as_array()? {
        let depends = n["depends"]
            .as_array()?
            .iter()
            .map(|e| Some((e["node"].as_str()?.to_string(), e["on"].as_str().unwrap_or("success").to_string())))
            .collect::<Option<Vec<_>>>()?;
        let shards = n["shards"].as_object().map(|s| WfShards {
            count: s.get("count").and_then(Value::as_u64).unwrap_or(0) as u32,
            max_parallel: s.get("max_parallel").and_then(Value::as_u64).map(|m| m as u32),
            min: s.get("success").and_then(|x| x["min"].as_u64()).map(|m| m as u32),
        });
        let tasks = n["tasks"]
            .as_array()?
            .iter()
            .map(|t| {
                Some(WfNodeTask {
                    shard: t["shard"].as_u64().map(|s| s as u32),
                    task_id: t["task_id"].as_u64()?,
                    state: t["state"].as_str()?.to_string(),
                    result: result_text(&t["result"]),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        nodes.push(WfNodeSeen {
            id: n["id"].as_str()?.to_string(),
            state: n["state"].as_str()?.to_string(),
            depends,
            trigger: n["trigger"].as_str().unwrap_or("all").to_string(),
            shards,
            concurrency_key: n["task"]["concurrency_key"].as_str().map(str::to_string),
            tasks,
        });
    }
    Some(WfSeen {
        id: v["id"].as_u64()?,
        name: v["name"].as_str()?.to_string(),
        state: v["state"].as_str()?.to_string(),
        idempotency_key: v["idempotency_key"].as_str().map(str::to_string),
        version: v["version"].as_u64()?,
        nodes,
    })
}

/// A result's `text`, or `base64:` and its `base64`.
fn result_text(r: &Value) -> Option<String> {
    if let Some(t) = r["text"].as_str() {
        return Some(t.to_string());
    }
    r["base64"].as_str().map(|b| format!("base64:{b}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> Program {
        Program { exe: "/bin/jep".into(), sink: "127.0.0.1:9".into() }
    }

    #[test]
    fn the_plan_is_two_waves_of_a_dag_and_a_mapreduce_keyed_only_under_a_limit() {
        let set = LimitLog { key: LIMIT_KEY.into(), max_running: 2, status: LimitStatus::Set, ..LimitLog::default() };
        let planned = plan(&program(), &set, 2);
        let names: Vec<_> = planned.iter().map(|l| (l.wave, l.name.as_str())).collect();
        assert_eq!(names, [(0, "jep-wf0-dag"), (0, "jep-wf0-mr"), (1, "jep-wf1-dag"), (1, "jep-wf1-mr")]);
        for l in &planned {
            assert_eq!(l.request["idempotency_key"], json!(l.name));
            assert_eq!(l.request["name"], json!(l.name));
        }
        let mr = &planned[1].request;
        assert_eq!(mr["nodes"][0]["shards"]["count"], json!(MAP_SHARDS));
        assert_eq!(mr["nodes"][0]["task"]["concurrency_key"], json!(LIMIT_KEY));
        assert!(mr["nodes"][1]["task"]["command"].as_array().unwrap().contains(&json!("--reduce")));
        let keyed: Vec<_> = planned[0].request["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["task"]["concurrency_key"].is_string())
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(keyed, ["b", "c", "d"]);
        // The limit, not max_parallel, must be what holds the shards back.
        assert_eq!(mr["nodes"][0]["shards"]["max_parallel"], json!(MAP_PARALLEL));
        assert_eq!((MAP_PARALLEL, LIMIT_MAX), (3, 2));

        let missing = LimitLog { status: LimitStatus::RouteMissing, ..set };
        let unkeyed = plan(&program(), &missing, 3);
        assert_eq!(unkeyed.len(), 6);
        assert!(unkeyed.iter().all(|l| !l.request.to_string().contains("concurrency_key")));
    }

    #[test]
    fn waves_spread_over_the_run() {
        let secs = Duration::from_secs;
        assert_eq!(wave_count(secs(20)), 2);
        assert_eq!((wave_offset(0, 2, secs(20)), wave_offset(1, 2, secs(20))), (secs(0), secs(8)));
        assert_eq!(wave_count(secs(60)), 6);
        assert_eq!(wave_count(secs(600)), MAX_WAVES);
        assert_eq!(wave_offset(5, 6, secs(120)), secs(80));
    }

    #[test]
    fn a_workflow_view_is_parsed() {
        let v = json!({
            "id": 4, "name": "jep-wf0-mr", "state": "succeeded", "idempotency_key": "jep-wf0-mr", "version": 30,
            "origin": "api", "created_ms": 1, "updated_ms": 2, "finished_ms": 3, "cancel_reason": null,
            "nodes": [
                {"id": "map", "state": "succeeded", "reason": null, "depends": [], "trigger": "all",
                 "shards": {"count": 2, "max_parallel": 1, "success": "all"},
                 "progress": {"total": 2, "created": 2, "live": 0, "succeeded": 2, "failed": 0},
                 "tasks": [{"shard": 0, "task_id": 10, "state": "succeeded", "result": {"size": 3, "text": "abc"}},
                           {"shard": 1, "task_id": 11, "state": "succeeded", "result": {"size": 1, "base64": "/w=="}}],
                 "task": {"concurrency_key": "jep-limit"}},
                {"id": "reduce", "state": "skipped", "reason": "x", "depends": [{"node": "map", "on": "success"}],
                 "trigger": "all", "shards": null, "progress": {}, "tasks": [], "task": {}}
            ]
        });
        let w = parse_view(&v).unwrap();
        assert_eq!((w.id, w.state.as_str(), w.version), (4, "succeeded", 30));
        let map = &w.nodes[0];
        assert_eq!(map.shards, Some(WfShards { count: 2, max_parallel: Some(1), min: None }));
        assert_eq!(map.concurrency_key.as_deref(), Some(LIMIT_KEY));
        assert_eq!(map.tasks[0].result.as_deref(), Some("abc"));
        assert_eq!(map.tasks[1].result.as_deref(), Some("base64:/w=="));
        assert_eq!(w.nodes[1].depends, [("map".to_string(), "success".to_string())]);
        assert_eq!(w.nodes[1].shards, None);
        let mut min = v.clone();
        min["nodes"][0]["shards"]["success"] = json!({"min": 1});
        assert_eq!(parse_view(&min).unwrap().nodes[0].shards.unwrap().needed(), 1);
    }
}

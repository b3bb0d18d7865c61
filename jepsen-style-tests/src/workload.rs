//! The clients: what the system is asked to do while faults happen, and how answers are recorded.
//!
//! 1. [`Recorder`] numbers and time-stamps every operation ([`crate::history::Op`]).
//! 2. Each client ([`client_loop`]) runs one operation at a time against a random member replica:
//!    submit a counter task with a fresh idempotency key (or retry a key whose last submit was
//!    indeterminate), read a known task linearizably, or cancel one. Answers are classified:
//!    2xx → `ok`; 4xx and 503 (which the API documents as "nothing was written") and a refused
//!    connection → `fail`; 504, 5xx, timeouts and broken connections → `info`.
//! 3. [`poll_leaders`] asks every member for `/v1/cluster` a few times a second.
//! 4. After the heal, [`wait_quiet`] waits (polling, bounded) until no task is in flight, and
//!    [`final_state`] pages through every task with linearizable reads, then asks the same
//!    replica for each task the run knows of that the listing lacked: retention forgets
//!    finished tasks, and such a task answers 404 `forgotten` rather than `not_found`.
//!
//! Retention (the cluster runs with a short horizon, see [`crate::cluster::Layout`]) also
//! forgets a finished task's idempotency key, so a key retried after its task was forgotten
//! would legitimately make a second task. The clients therefore stop retrying a key
//! [`Shared::retry_window`] after its first submit, well inside the horizon: a duplicate is then
//! still a violation (the `queue` checker's docs give the arithmetic).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::api_url;
use crate::history::Body;
use crate::history::CancelValue;
use crate::history::FinalAttempt;
use crate::history::FinalState;
use crate::history::FinalTask;
use crate::history::LeaderObs;
use crate::history::Op;
use crate::history::OpType;
use crate::history::Process;
use crate::history::ReadValue;
use crate::history::SubmitValue;
use crate::history::TaskRead;
use crate::history::WorkflowRef;
use crate::history::is_terminal_state;

/// Client-side deadline of one request. Short, as Jepsen clients are: a client stuck on a paused
/// replica would otherwise stop loading the healthy ones for the whole pause. Ops that hit it are
/// `info` (indeterminate) and their keys are retried later, which exercises idempotency too.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(2_000);

/// The shared, time-stamped history of one run.
pub struct Recorder {
    epoch: Instant,
    ops: Mutex<Vec<Op>>,
    leaders: Mutex<Vec<LeaderObs>>,
}

impl Recorder {
    /// An empty history whose times count from `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self { epoch, ops: Mutex::new(Vec::new()), leaders: Mutex::new(Vec::new()) }
    }

    /// Nanoseconds since the run started.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Appends one operation.
    pub fn record(&self, process: Process, node: Option<u64>, kind: OpType, body: Body, error: Option<String>) {
        let mut ops = self.ops.lock().unwrap();
        let index = ops.len() as u64;
        ops.push(Op { index, time_ns: self.now_ns(), process, node, kind, body, error });
    }

    /// Everything recorded, in order.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }

    /// Every leader observation.
    pub fn leaders(&self) -> Vec<LeaderObs> {
        self.leaders.lock().unwrap().clone()
    }
}

/// What the clients share: the replicas they may talk to and the tasks they know of.
pub struct Shared {
    /// The history.
    pub rec: Recorder,
    /// Member replica ids (kept current by the nemesis).
    pub members: Mutex<Vec<u64>>,
    /// Task ids from acknowledged submits.
    known: Mutex<Vec<u64>>,
    /// Keys whose last submit was indeterminate, to be retried, with when each was first sent.
    retry_keys: Mutex<Vec<(String, Instant)>>,
    /// The counter task every submit runs.
    pub task_command: Vec<String>,
    /// A key is retried only this long after its first submit (see the module docs).
    pub retry_window: Duration,
}

impl Shared {
    /// State for a run whose task program is `task_command`; keys are retried within
    /// `retry_window` of their first submit.
    pub fn new(epoch: Instant, members: Vec<u64>, task_command: Vec<String>, retry_window: Duration) -> Self {
        Self {
            rec: Recorder::new(epoch),
            members: Mutex::new(members),
            known: Mutex::new(Vec::new()),
            retry_keys: Mutex::new(Vec::new()),
            task_command,
            retry_window,
        }
    }
}

/// Plain HTTP client for the workload (no retries, no leader following: every request is one op).
pub fn http_client() -> reqwest::Client {
    crate::tls::client_builder()
        .timeout(CLIENT_TIMEOUT)
        .connect_timeout(Duration::from_millis(1_000))
        .build()
        .expect("building an HTTP client cannot fail without TLS")
}

/// How an HTTP exchange ended.
pub(crate) enum Outcome {
    /// A status and its JSON body.
    Answer(u16, Value),
    /// Nothing was sent (connection refused): definitely no effect.
    NotSent(String),
    /// Sent, but no answer: may have taken effect.
    Lost(String),
}

/// Sends one request and classifies how it ended.
pub(crate) async fn exchange(req: reqwest::RequestBuilder) -> Outcome {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(b) => Outcome::Answer(status, serde_json::from_slice(&b).unwrap_or(Value::Null)),
                Err(e) => Outcome::Lost(format!("reading the answer: {e}")),
            }
        }
        Err(e) if e.is_connect() => Outcome::NotSent(format!("connect: {e}")),
        Err(e) if e.is_timeout() => Outcome::Lost("timeout".into()),
        Err(e) => Outcome::Lost(format!("{e}")),
    }
}

/// Classifies every outcome but a success: a 4xx or 503 answer (documented as "nothing was
/// written") and a refused connection are `fail`; anything else (504, 5xx, timeout, broken
/// connection) is `info`. Returns the type and the error text.
fn unsuccessful(outcome: Outcome) -> (OpType, String) {
    match outcome {
        Outcome::Answer(status, body) => {
            let text = format!("{status} {}", body["error"]["code"].as_str().unwrap_or(""));
            match status {
                400..=499 | 503 => (OpType::Fail, text),
                _ => (OpType::Info, text),
            }
        }
        Outcome::NotSent(e) => (OpType::Fail, e),
        Outcome::Lost(e) => (OpType::Info, e),
    }
}

/// Parses a task JSON into what a read saw.
pub fn task_read(v: &Value) -> Option<TaskRead> {
    let state = v["state"].as_str()?.to_string();
    let attempts = v["attempts"].as_array().map_or(0, |a| a.len() as u32);
    let result_token = if is_terminal_state(&state) {
        v["attempts"].as_array().and_then(|a| a.last()).and_then(|a| a["fencing_token"].as_u64())
    } else {
        None
    };
    let attempt_tokens =
        v["attempts"].as_array().map_or(vec![], |a| a.iter().filter_map(|x| x["fencing_token"].as_u64()).collect());
    Some(TaskRead {
        version: v["version"].as_u64()?,
        state,
        attempts,
        result_token,
        checkpoint: checkpoint_counter(v),
        checkpoint_token: v["checkpoint"]["token"].as_u64(),
        attempt_tokens,
    })
}

/// The counter a sink task checkpointed: its checkpoint is UTF-8, so the API shows it as `text`.
fn checkpoint_counter(v: &Value) -> Option<u64> {
    v["checkpoint"]["text"].as_str()?.trim().parse().ok()
}

/// How many of the newest acknowledged tasks count as "recent" for targeted reads.
const RECENT_TASKS: usize = 32;

/// One client: operations one at a time, at about `ops_per_s`, until `stop`.
pub async fn client_loop(shared: Arc<Shared>, id: u32, seed: u64, ops_per_s: f64, stop: CancellationToken) {
    let http = http_client();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (u64::from(id) << 32));
    let mut serial = 0u64;
    let period = Duration::from_secs_f64(1.0 / ops_per_s.max(0.01));
    let mut next = Instant::now();
    while !stop.is_cancelled() {
        // Jittered, open-loop pacing: a slow answer does not push later operations back further.
        next += period.mul_f64(rng.gen_range(0.5..1.5));
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.cancelled() => break,
        }
        next = next.max(Instant::now() - period * 4);
        let Some(node) = shared.members.lock().unwrap().choose(&mut rng).copied() else { continue };
        let roll: f64 = rng.r#gen();
        // Half the reads and cancels go to the newest tasks, which are likely still running: that
        // is where checkpoints and attempts change, and what the resume and fencing checks need.
        let known = {
            let known = shared.known.lock().unwrap();
            let recent = &known[known.len().saturating_sub(RECENT_TASKS)..];
            if rng.gen_bool(0.5) { recent.choose(&mut rng) } else { known.choose(&mut rng) }.copied()
        };
        match known {
            Some(task) if roll < 0.45 => read(&shared, &http, id, node, task).await,
            Some(task) if roll < 0.50 => cancel(&shared, &http, id, node, task).await,
            _ => {
                let retry = {
                    let mut keys = shared.retry_keys.lock().unwrap();
                    // A key past its window is dropped: its task may be forgotten by now.
                    keys.retain(|(_, first)| first.elapsed() < shared.retry_window);
                    if !keys.is_empty() && rng.gen_bool(0.5) { Some(keys.swap_remove(0)) } else { None }
                };
                let (key, first) = retry.unwrap_or_else(|| {
                    serial += 1;
                    (format!("c{id}-{serial}"), Instant::now())
                });
                submit(&shared, &http, id, node, key, first).await;
            }
        }
    }
}

async fn submit(shared: &Shared, http: &reqwest::Client, client: u32, node: u64, key: String, first: Instant) {
    let process = Process::Client(client);
    let value = |task_id| Body::Submit(SubmitValue { key: key.clone(), task_id });
    shared.rec.record(process, Some(node), OpType::Invoke, value(None), None);
    let body = serde_json::json!({
        "name": "counter",
        "command": shared.task_command,
        "idempotency_key": key,
        "priority": counter_priority(&key),
        "retry": {"max_attempts": 20},
    });
    let url = api_url(node, "/v1/tasks");
    match exchange(http.post(url).json(&body)).await {
        Outcome::Answer(status, v) if (200..300).contains(&status) => match v["id"].as_u64() {
            Some(task_id) => {
                shared.rec.record(process, Some(node), OpType::Ok, value(Some(task_id)), None);
                shared.known.lock().unwrap().push(task_id);
            }
            None => {
                shared.rec.record(process, Some(node), OpType::Info, value(None), Some(format!("{status}: no id")));
                shared.retry_keys.lock().unwrap().push((key.clone(), first));
            }
        },
        other => {
            let (kind, err) = unsuccessful(other);
            shared.rec.record(process, Some(node), kind, value(None), Some(err));
            if kind == OpType::Info {
                shared.retry_keys.lock().unwrap().push((key.clone(), first));
            }
        }
    }
}

/// Priority of a counter task (the preemption workload): one key in [`URGENT_EVERY`] is
/// urgent ([`URGENT_PRIORITY`], never preempted), the others are batch work
/// ([`BATCH_PRIORITY`], below 500: preemptible). A function of the key, so a retried submit
/// sends the same body.
pub fn counter_priority(key: &str) -> u32 {
    let serial: u64 = key.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(1);
    if serial.is_multiple_of(URGENT_EVERY) { URGENT_PRIORITY } else { BATCH_PRIORITY }
}

/// One counter key in this many is urgent.
pub const URGENT_EVERY: u64 = 5;
/// Priority of an urgent counter task.
pub const URGENT_PRIORITY: u32 = 900;
/// Priority of the other counter tasks.
pub const BATCH_PRIORITY: u32 = 100;

async fn read(shared: &Shared, http: &reqwest::Client, client: u32, node: u64, task_id: u64) {
    let process = Process::Client(client);
    let value = |seen| Body::Read(ReadValue { task_id, seen, forgotten: false });
    shared.rec.record(process, Some(node), OpType::Invoke, value(None), None);
    let url = api_url(node, &format!("/v1/tasks/{task_id}"));
    match exchange(http.get(url)).await {
        Outcome::Answer(200, v) => match task_read(&v) {
            Some(seen) => shared.rec.record(process, Some(node), OpType::Ok, value(Some(seen)), None),
            None => shared.rec.record(process, Some(node), OpType::Info, value(None), Some("unparsable task".into())),
        },
        Outcome::Answer(404, v) if v["error"]["code"] == "not_found" => {
            shared.rec.record(process, Some(node), OpType::Ok, value(None), None)
        }
        // Its own outcome: the task existed and ended, and retention removed it.
        Outcome::Answer(404, v) if v["error"]["code"] == "forgotten" => {
            let body = Body::Read(ReadValue { task_id, seen: None, forgotten: true });
            shared.rec.record(process, Some(node), OpType::Ok, body, None)
        }
        other => {
            let (kind, err) = unsuccessful(other);
            shared.rec.record(process, Some(node), kind, value(None), Some(err));
        }
    }
}

async fn cancel(shared: &Shared, http: &reqwest::Client, client: u32, node: u64, task_id: u64) {
    let process = Process::Client(client);
    let value = |state| Body::Cancel(CancelValue { task_id, state });
    shared.rec.record(process, Some(node), OpType::Invoke, value(None), None);
    let url = api_url(node, &format!("/v1/tasks/{task_id}/cancel"));
    match exchange(http.post(url).json(&serde_json::json!({"reason": "jepsen"}))).await {
        Outcome::Answer(status, v) if (200..300).contains(&status) => {
            let state = v["state"].as_str().map(str::to_string);
            shared.rec.record(process, Some(node), OpType::Ok, value(state), None)
        }
        other => {
            let (kind, err) = unsuccessful(other);
            shared.rec.record(process, Some(node), kind, value(None), Some(err));
        }
    }
}

/// Polls every member's `/v1/cluster` every `every` until `stop`.
pub async fn poll_leaders(shared: Arc<Shared>, every: Duration, stop: CancellationToken) {
    let http = crate::tls::client_builder().timeout(Duration::from_millis(300)).build().expect("client");
    while !stop.is_cancelled() {
        let members = shared.members.lock().unwrap().clone();
        let polls = members.iter().map(|&id| {
            let http = http.clone();
            async move {
                let url = api_url(id, "/v1/cluster");
                let v: Value = http.get(url).send().await.ok()?.json().await.ok()?;
                Some((id, v))
            }
        });
        for (id, v) in futures::future::join_all(polls).await.into_iter().flatten() {
            let obs = LeaderObs {
                time_ns: shared.rec.now_ns(),
                node: id,
                term: v["term"].as_u64().unwrap_or(0),
                role: v["role"].as_str().unwrap_or("").to_string(),
                leader_id: v["leader_id"].as_u64(),
            };
            shared.rec.leaders.lock().unwrap().push(obs);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => break,
        }
    }
}

/// Reads `/v1/stats` from any member (linearizable); `None` when nobody answers.
async fn stats(http: &reqwest::Client, members: &[u64]) -> Option<Value> {
    for &id in members {
        let url = api_url(id, "/v1/stats");
        if let Outcome::Answer(200, v) = exchange(http.get(url)).await {
            return Some(v);
        }
    }
    None
}

/// Waits until no task is pending, assigned, running or waiting to retry, or `limit` passes.
/// Returns how long it took, or `None` on timeout.
pub async fn wait_quiet(members: &[u64], limit: Duration) -> Option<Duration> {
    let http = http_client();
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = stats(&http, members).await {
            let c = &s["counts"];
            let busy: u64 = ["pending", "assigned", "running", "retry_wait", "blocked"]
                .iter()
                .map(|k| c[*k].as_u64().unwrap_or(0))
                .sum();
            if busy == 0 {
                return Some(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Every task, paged with linearizable reads from the first member that answers all pages;
/// then each id of `known` the listing lacked is read on that same member, and those answering
/// 404 `forgotten` are listed as forgotten (one answering 200 meanwhile joins the tasks; one
/// answering `not_found` stays absent). A member that fails a page or a probe is skipped.
pub async fn final_state(members: &[u64], known: &BTreeSet<u64>) -> FinalState {
    let http = http_client();
    for &id in members {
        let mut tasks = Vec::new();
        let mut cursor: Option<u64> = None;
        let complete = loop {
            let mut url = api_url(id, "/v1/tasks?limit=500");
            if let Some(c) = cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let Outcome::Answer(200, page) = exchange(http.get(url)).await else { break false };
            for t in page["tasks"].as_array().into_iter().flatten() {
                if let Some(ft) = final_task(t) {
                    tasks.push(ft);
                }
            }
            match page["next_cursor"].as_u64() {
                Some(c) => cursor = Some(c),
                None => break true,
            }
        };
        if !complete {
            continue;
        }
        let listed: BTreeSet<u64> = tasks.iter().map(|t| t.task_id).collect();
        let absent: Vec<u64> = known.difference(&listed).copied().collect();
        let Some(probed) = probe_tasks(&http, id, &absent).await else { continue };
        let mut forgotten = Vec::new();
        for (task_id, answer) in probed {
            match answer {
                Probe::Present(t) => tasks.push(*t),
                Probe::Forgotten => forgotten.push(task_id),
                Probe::NotFound => {}
            }
        }
        tasks.sort_by_key(|t| t.task_id);
        forgotten.sort_unstable();
        return FinalState { complete: true, tasks, forgotten };
    }
    FinalState::incomplete()
}

/// What `GET /v1/tasks/{id}` answered for a task a listing lacked.
pub(crate) enum Probe {
    /// 200: it exists (created or listed late).
    Present(Box<FinalTask>),
    /// 404 `forgotten`.
    Forgotten,
    /// 404 `not_found`.
    NotFound,
}

/// How many times one probe is tried before the whole probe counts as failed.
const PROBE_TRIES: u32 = 3;

/// Reads each of `ids` on member `node`, 16 at a time. `None` if one of them got no definite
/// answer in [`PROBE_TRIES`] tries.
pub(crate) async fn probe_tasks(http: &reqwest::Client, node: u64, ids: &[u64]) -> Option<Vec<(u64, Probe)>> {
    use futures::StreamExt;
    let one = |task_id: u64| async move {
        for _ in 0..PROBE_TRIES {
            let url = api_url(node, &format!("/v1/tasks/{task_id}"));
            match exchange(http.get(url)).await {
                Outcome::Answer(200, v) => {
                    if let Some(t) = final_task(&v) {
                        return Some((task_id, Probe::Present(Box::new(t))));
                    }
                }
                Outcome::Answer(404, v) if v["error"]["code"] == "forgotten" => {
                    return Some((task_id, Probe::Forgotten));
                }
                Outcome::Answer(404, v) if v["error"]["code"] == "not_found" => {
                    return Some((task_id, Probe::NotFound));
                }
                _ => {}
            }
        }
        None
    };
    let answers: Vec<Option<(u64, Probe)>> =
        futures::stream::iter(ids.iter().copied()).map(one).buffer_unordered(16).collect().await;
    answers.into_iter().collect()
}

fn final_task(t: &Value) -> Option<FinalTask> {
    let attempts = t["attempts"]
        .as_array()?
        .iter()
        .map(|a| FinalAttempt {
            number: a["number"].as_u64().unwrap_or(0) as u32,
            worker: a["worker_id"].as_str().unwrap_or("").to_string(),
            token: a["fencing_token"].as_u64().unwrap_or(0),
            outcome: a["outcome"].as_str().map(str::to_string),
        })
        .collect();
    let checkpoint = checkpoint_counter(t).zip(t["checkpoint"]["token"].as_u64());
    Some(FinalTask {
        task_id: t["id"].as_u64()?,
        key: t["spec"]["idempotency_key"].as_str().map(str::to_string),
        state: t["state"].as_str()?.to_string(),
        version: t["version"].as_u64()?,
        attempts,
        checkpoint,
        origin: crate::schedules::parse_origin(t),
        workflow: workflow_ref(t),
        priority: t["spec"]["priority"].as_u64().and_then(|p| u32::try_from(p).ok()),
        preemptible: t["spec"]["preemptible"].as_bool(),
        preempted: t["preempted"]
            .as_array()
            .map(|v| v.iter().filter_map(|a| Some((a["task_id"].as_u64()?, a["token"].as_u64()?))).collect())
            .unwrap_or_default(),
    })
}

/// `spec.origin` `{"workflow", "node"}` and `spec.shard.index` of a workflow's task.
pub fn workflow_ref(t: &Value) -> Option<WorkflowRef> {
    let o = &t["spec"]["origin"];
    Some(WorkflowRef {
        workflow: o["workflow"].as_u64()?,
        node: u32::try_from(o["node"].as_u64()?).ok()?,
        shard: t["spec"]["shard"]["index"].as_u64().and_then(|i| u32::try_from(i).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_counter_key_in_five_is_urgent_and_a_retry_keeps_its_priority() {
        let p: Vec<u32> = (1..=10).map(|n| counter_priority(&format!("c3-{n}"))).collect();
        assert_eq!(p, [100, 100, 100, 100, 900, 100, 100, 100, 100, 900]);
        assert_eq!(counter_priority("c3-5"), counter_priority("c3-5"));
    }

    #[test]
    fn the_checkpoint_counter_is_read_from_the_api_text_form() {
        let task = serde_json::json!({"checkpoint": {"attempt": 1, "token": 9, "at_ms": 5, "size": 3, "text": "42\n"}});
        assert_eq!(checkpoint_counter(&task), Some(42));
        let binary =
            serde_json::json!({"checkpoint": {"attempt": 1, "token": 9, "at_ms": 5, "size": 2, "base64": "/w=="}});
        assert_eq!(checkpoint_counter(&binary), None);
        assert_eq!(checkpoint_counter(&serde_json::json!({"checkpoint": null})), None);
    }

    #[test]
    fn a_workflow_task_names_its_workflow_node_and_shard() {
        let t = serde_json::json!({"id": 7, "state": "succeeded", "version": 4, "attempts": [],
            "spec": {"origin": {"workflow": 3, "node": 1}, "shard": {"index": 5, "total": 8}}});
        let ft = final_task(&t).unwrap();
        assert_eq!(ft.workflow, Some(WorkflowRef { workflow: 3, node: 1, shard: Some(5) }));
        assert_eq!(ft.origin, None);
        let plain = serde_json::json!({"spec": {"origin": {"workflow": 3, "node": 0}}});
        assert_eq!(workflow_ref(&plain), Some(WorkflowRef { workflow: 3, node: 0, shard: None }));
        assert_eq!(workflow_ref(&serde_json::json!({"spec": {"origin": "api"}})), None);
    }
}

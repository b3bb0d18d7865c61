//! The worker protocol and worker administration: `/v1/workers…` and attempt reports.
//!
//! A worker (see [`crate::worker`]):
//! 1. registers with `POST /v1/workers` (committed);
//! 2. heartbeats `POST /v1/workers/{id}/heartbeat` with the attempts it runs; the leader renews
//!    its lease in memory and answers which of them must stop (cancelled, or fenced off);
//! 3. long-polls `GET /v1/workers/{id}/inbox` for committed assignments;
//! 4. reports each attempt with its fencing token: `…/started`, `…/checkpoint` (raw bytes),
//!    `…/complete`. A report with a stale token is refused with 409 `stale_token`, and the
//!    worker kills that process.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;
use serde::Deserialize;
use serde::Serialize;
use tokio::time::Instant;

use super::error::ApiError;
use super::error::path_error;
use super::forward;
use super::tasks::Body;
use super::tasks::Proposed;
use super::tasks::propose;
use crate::node::Node;
use crate::scheduler;
use crate::scheduler::AttemptOutcome;
use crate::scheduler::Command;
use crate::scheduler::QueryResponse;
use crate::scheduler::Task;
use crate::scheduler::TaskState;
use crate::scheduler::WorkerRegistration;
use crate::scheduler::WorkerState;
use crate::util::now_ms;

/// Longest inbox long-poll.
pub const MAX_INBOX_WAIT: Duration = Duration::from_secs(30);

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(path_error)
}

/// Proposes on the leader (forwarding otherwise): the scheduler's answer, or the leader's
/// relayed HTTP answer.
async fn on_leader(
    node: &Node,
    cmd: Command,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Result<scheduler::Response, Response>, ApiError> {
    Ok(match propose(node, cmd, method, uri, headers, body).await? {
        Proposed::Applied(resp) => Ok(*resp),
        Proposed::Forwarded(relayed) => Err(relayed),
    })
}

/// `POST /v1/workers`: register (or re-register) a worker.
pub async fn register(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body?;
    let reg: WorkerRegistration = json_body(&body)?;
    reg.validate().map_err(|e| ApiError::invalid(format!("{}: {}", e.field, e.message)))?;
    let id = reg.id.clone();
    // A worker registers when its process starts, so it runs nothing: attempts the cluster
    // still has on it belong to a previous incarnation (crashed and restarted within its
    // lease). End them lost first, so they resume elsewhere instead of waiting forever.
    let stale_incarnation = if node.is_leader() {
        node.view.read(|a| a.state.live_tasks_on(&id).next().and_then(|_| a.state.worker(&id)).map(|w| w.registered_ms))
    } else {
        None
    };
    if let Some(registered_ms) = stale_incarnation {
        tracing::warn!(worker = %id, "worker re-registered with attempts still assigned; ending them lost");
        let lost = Command::WorkerLostIncarnation { now_ms: now_ms(), worker_id: id.clone(), registered_ms };
        if let Err(forwarded) = on_leader(&node, lost, Method::POST, &uri, &headers, body.clone()).await? {
            return Ok(forwarded);
        }
    }
    match on_leader(
        &node,
        Command::RegisterWorker { now_ms: now_ms(), worker: reg },
        Method::POST,
        &uri,
        &headers,
        body,
    )
    .await?
    {
        Err(forwarded) => Ok(forwarded),
        Ok(scheduler::Response::Worker { worker, .. }) => {
            node.leader.leases.renew(&id);
            node.leader.wake.notify_one();
            Ok((StatusCode::OK, Json(worker)).into_response())
        }
        Ok(other) => Err(ApiError::internal(format!("unexpected answer to register: {other:?}"))),
    }
}

/// One attempt a worker says it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningAttempt {
    /// The task.
    pub task_id: u64,
    /// The attempt's fencing token.
    pub token: u64,
}

/// Body of a heartbeat.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Attempts the worker is running now.
    #[serde(default)]
    pub running: Vec<RunningAttempt>,
    /// The highest fencing token the worker has received from its inbox. A live attempt on
    /// this worker with a token up to this one that is not in `running` is no longer run by
    /// anyone: the leader ends it `lost` so it resumes elsewhere.
    #[serde(default)]
    pub seen_token: u64,
}

/// An attempt the worker must stop, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopOrder {
    /// The task.
    pub task_id: u64,
    /// The attempt's token.
    pub token: u64,
    /// `cancelled` or `stale`.
    pub reason: String,
}

/// Answer to a heartbeat.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// The lease length the worker must renew within.
    pub ttl_ms: u64,
    /// Attempts to kill now.
    pub stop: Vec<StopOrder>,
}

/// `POST /v1/workers/{id}/heartbeat` (leader only; forwarded otherwise).
pub async fn heartbeat(
    State(node): State<Arc<Node>>,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let body = body?;
    let hb: Heartbeat = if body.is_empty() { Heartbeat::default() } else { json_body(&body)? };
    if !node.is_leader() {
        return Ok(forward::to_leader(&node, None, Method::POST, &uri, &headers, body).await);
    }
    // Judge attempts only from a state that has everything committed before this term
    // applied; until then a valid attempt could look stale.
    if !node.leader.is_ready() {
        return Err(ApiError::unavailable("leader_not_ready", "the new leader is catching up; retry"));
    }
    // A leader cut off from the majority must not keep leases alive: the other side has
    // elected a leader that will declare this worker lost and reassign its tasks, and the
    // worker has to notice (no renewal) and fence itself.
    let lease =
        tokio::time::timeout(Duration::from_millis(500), node.raft.get_read_log_id(openraft::ReadPolicy::LeaseRead));
    if !matches!(lease.await, Ok(Ok(_))) {
        return Err(ApiError::unavailable("no_quorum", "this leader cannot confirm its leadership; not renewing"));
    }
    let listed: std::collections::BTreeSet<(u64, u64)> = hb.running.iter().map(|r| (r.task_id, r.token)).collect();
    let answer = node.view.read(|a| {
        let applied = a.state.last_applied_index();
        let worker = a.state.worker(&id).ok_or(Refusal::NotRegistered)?;
        match worker.state {
            WorkerState::Active | WorkerState::Draining => {}
            WorkerState::Removed => return Err(Refusal::Removed),
            WorkerState::Lost => return Err(Refusal::NotRegistered),
        }
        let stop = hb
            .running
            .iter()
            // A token newer than what this replica applied cannot be judged yet.
            .filter(|r| r.token <= applied)
            .filter_map(|r| {
                let task = a.state.task(r.task_id);
                let live =
                    task.and_then(Task::live_attempt).filter(|att| att.fencing_token == r.token && att.worker_id == id);
                match (task, live) {
                    (_, None) => Some(StopOrder { task_id: r.task_id, token: r.token, reason: "stale".into() }),
                    (Some(t), Some(_)) if t.cancel_requested => {
                        Some(StopOrder { task_id: r.task_id, token: r.token, reason: "cancelled".into() })
                    }
                    _ => None,
                }
            })
            .collect::<Vec<_>>();
        let orphans = a
            .state
            .live_tasks_on(&id)
            .filter_map(|tid| {
                let token = a.state.task(tid)?.live_attempt()?.fencing_token;
                (token <= hb.seen_token && !listed.contains(&(tid, token))).then_some((tid, token))
            })
            .collect::<Vec<_>>();
        Ok((stop, orphans))
    });
    let (stop, orphans) = match answer {
        Ok(v) => v,
        Err(Refusal::Removed) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "worker_removed",
                format!("worker {id} was removed by an operator; it must stop (start it again to re-register)"),
            ));
        }
        Err(Refusal::NotRegistered) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_registered",
                format!("worker {id} is not registered (or was declared lost): register again"),
            ));
        }
    };
    for (task_id, token) in orphans {
        tracing::warn!(worker = %id, task_id, token, "worker no longer runs this attempt; ending it lost");
        let cmd = Command::Complete {
            now_ms: now_ms(),
            task_id,
            token,
            outcome: AttemptOutcome::Lost,
            exit_code: None,
            output_tail: String::new(),
            error: Some(format!("worker {id} no longer runs this attempt")),
        };
        if let Err(e) = node.write(cmd, Instant::now() + node.config.request_timeout).await {
            tracing::warn!(task_id, error = %e, "could not end the orphaned attempt; the next heartbeat retries");
        }
        node.leader.wake.notify_one();
    }
    node.leader.leases.renew(&id);
    let ttl_ms = node.leader.leases.ttl().as_millis() as u64;
    Ok(Json(HeartbeatAnswer { ttl_ms, stop }).into_response())
}

/// Why a heartbeat is refused.
enum Refusal {
    NotRegistered,
    Removed,
}

/// Query of the inbox long-poll.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxParams {
    wait_ms: Option<u64>,
    /// Only assignments with a fencing token above this (the highest the worker has seen).
    after: Option<u64>,
}

/// One committed assignment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Assignment {
    /// The attempt number.
    pub attempt: u32,
    /// Its fencing token.
    pub token: u64,
    /// The task (spec and last committed checkpoint included).
    pub task: Task,
}

/// Answer of the inbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct Inbox {
    /// Assignments not yet reported started.
    pub assignments: Vec<Assignment>,
}

fn inbox_of(node: &Node, worker: &str, after: u64) -> Vec<Assignment> {
    node.view.read(|a| {
        a.state
            .live_tasks_on(worker)
            .filter_map(|id| a.state.task(id))
            .filter(|t| t.state == TaskState::Assigned)
            .filter_map(|t| {
                let att = t.live_attempt().filter(|a| a.fencing_token > after)?;
                Some(Assignment { attempt: att.number, token: att.fencing_token, task: t.clone() })
            })
            .collect()
    })
}

/// `GET /v1/workers/{id}/inbox?wait_ms=&after=`: committed assignments of this worker that it
/// has not reported started yet (and, with `after`, newer than the ones it already has); waits
/// up to `wait_ms` for one to appear.
pub async fn inbox(
    State(node): State<Arc<Node>>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<InboxParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(id), Query(p)) = (id?, params?);
    let wait = p.wait_ms.map_or(Duration::ZERO, Duration::from_millis).min(MAX_INBOX_WAIT);
    let deadline = Instant::now() + wait;
    node.read_barrier(Instant::now() + node.config.request_timeout).await?;
    let mut changes = node.view.subscribe();
    loop {
        changes.borrow_and_update();
        let assignments = inbox_of(&node, &id, p.after.unwrap_or(0));
        if !assignments.is_empty() {
            return Ok(Json(Inbox { assignments }).into_response());
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, changes.changed()) => {
                if !matches!(changed, Ok(Ok(()))) {
                    return Ok(Json(Inbox { assignments }).into_response());
                }
            }
            _ = node.shutdown.cancelled() => return Ok(Json(Inbox { assignments }).into_response()),
        }
    }
}

/// Path of attempt reports: task id and fencing token.
pub type AttemptPath = Result<Path<(u64, u64)>, PathRejection>;

/// Answer of a report: the task's status after it.
async fn report(node: &Node, cmd: Command, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    match on_leader(node, cmd, Method::POST, uri, headers, body).await? {
        Err(forwarded) => Ok(forwarded),
        Ok(scheduler::Response::AttemptStarted { status }) | Ok(scheduler::Response::CheckpointSaved { status }) => {
            Ok(Json(status).into_response())
        }
        Ok(scheduler::Response::Completed { task }) => {
            let status = scheduler::TaskStatus::of(&task);
            node.leader.note_completed(task);
            node.leader.wake.notify_one();
            Ok(Json(status).into_response())
        }
        Ok(other) => Err(ApiError::internal(format!("unexpected answer to a report: {other:?}"))),
    }
}

/// `POST /v1/tasks/{id}/attempts/{token}/started`.
pub async fn started(
    State(node): State<Arc<Node>>,
    path: AttemptPath,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((task_id, token)) = path?;
    report(&node, Command::AttemptStarted { now_ms: now_ms(), task_id, token }, &uri, &headers, Bytes::new()).await
}

/// `POST /v1/tasks/{id}/attempts/{token}/checkpoint` with the checkpoint bytes as the body.
pub async fn checkpoint(
    State(node): State<Arc<Node>>,
    path: AttemptPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((task_id, token)) = path?;
    let body = body?;
    if body.len() > scheduler::MAX_CHECKPOINT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "checkpoint_too_large",
            format!("checkpoint of {} bytes is over the {} byte limit", body.len(), scheduler::MAX_CHECKPOINT_BYTES),
        ));
    }
    let cmd = Command::Checkpoint { now_ms: now_ms(), task_id, token, data: body.to_vec() };
    report(&node, cmd, &uri, &headers, body).await
}

/// Body of a completion report.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    /// How the attempt ended.
    pub outcome: AttemptOutcome,
    /// Exit code, if the process exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Last output.
    #[serde(default)]
    pub output_tail: String,
    /// Error text.
    #[serde(default)]
    pub error: Option<String>,
}

/// `POST /v1/tasks/{id}/attempts/{token}/complete`.
pub async fn complete(
    State(node): State<Arc<Node>>,
    path: AttemptPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((task_id, token)) = path?;
    let body = body?;
    let c: Completion = json_body(&body)?;
    let cmd = Command::Complete {
        now_ms: now_ms(),
        task_id,
        token,
        outcome: c.outcome,
        exit_code: c.exit_code,
        output_tail: c.output_tail,
        error: c.error,
    };
    report(&node, cmd, &uri, &headers, body).await
}

/// `GET /v1/workers`: every known worker with its live attempts.
pub async fn list(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    node.read_barrier(Instant::now() + node.config.request_timeout).await?;
    let workers = node.view.read(|a| match a.state.query(&scheduler::Query::ListWorkers) {
        QueryResponse::Workers { workers } => workers
            .into_iter()
            .map(|w| {
                let running = a.state.live_tasks_on(&w.id).count();
                serde_json::json!({"worker": w, "running": running})
            })
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    });
    Ok(Json(serde_json::json!({ "workers": workers })).into_response())
}

/// `POST /v1/workers/{id}/drain`: no new work; it finishes what it runs.
pub async fn drain(
    State(node): State<Arc<Node>>,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(worker_id) = id?;
    match on_leader(
        &node,
        Command::DrainWorker { now_ms: now_ms(), worker_id },
        Method::POST,
        &uri,
        &headers,
        Bytes::new(),
    )
    .await?
    {
        Err(forwarded) => Ok(forwarded),
        Ok(scheduler::Response::Worker { worker, .. }) => Ok(Json(worker).into_response()),
        Ok(other) => Err(ApiError::internal(format!("unexpected answer to drain: {other:?}"))),
    }
}

/// `DELETE /v1/workers/{id}`: remove a worker; its running attempts end lost and follow their
/// failover policy.
pub async fn remove(
    State(node): State<Arc<Node>>,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(worker_id) = id?;
    let cmd = Command::RemoveWorker { now_ms: now_ms(), worker_id: worker_id.clone() };
    match on_leader(&node, cmd, Method::DELETE, &uri, &headers, Bytes::new()).await? {
        Err(forwarded) => Ok(forwarded),
        Ok(scheduler::Response::Worker { worker, affected }) => {
            node.leader.leases.forget(&worker_id);
            node.leader.wake.notify_one();
            Ok(Json(serde_json::json!({"worker": worker, "affected": affected})).into_response())
        }
        Ok(other) => Err(ApiError::internal(format!("unexpected answer to remove: {other:?}"))),
    }
}

/// What a report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// The process started.
    Started,
    /// The attempt ended (`outcome` required).
    Complete,
}

/// One report of `POST /v1/workers/{id}/reports`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The task.
    pub task_id: u64,
    /// The attempt's fencing token.
    pub token: u64,
    /// What happened.
    pub kind: ReportKind,
    /// For `complete`: how the attempt ended.
    #[serde(default)]
    pub outcome: Option<AttemptOutcome>,
    /// For `complete`: exit code, if the process exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// For `complete`: last output.
    #[serde(default)]
    pub output_tail: String,
    /// For `complete`: error text.
    #[serde(default)]
    pub error: Option<String>,
}

/// Body of `POST /v1/workers/{id}/reports`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    /// The reports, answered in order.
    pub reports: Vec<Report>,
}

/// The verdict on one report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportResult {
    /// The task's status after an accepted report.
    pub status: Option<scheduler::TaskStatus>,
    /// Why it was refused (`stale_token`, `duplicate`, …) — definite.
    pub code: Option<String>,
    /// Human-readable reason.
    pub message: Option<String>,
}

/// Answer of `POST /v1/workers/{id}/reports`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportResults {
    /// One result per report, in order.
    pub results: Vec<ReportResult>,
}

/// Most reports in one batch.
pub const MAX_REPORTS: usize = 4096;

/// `POST /v1/workers/{id}/reports`: many `started` / `complete` reports in one request (the
/// worker batches them; the leader commits them together). Answered per report, in order.
pub async fn reports(
    State(node): State<Arc<Node>>,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(worker) = id?;
    let body = body?;
    let batch: Reports = json_body(&body)?;
    if batch.reports.len() > MAX_REPORTS {
        return Err(ApiError::invalid(format!("reports: at most {MAX_REPORTS} per request")));
    }
    if !node.is_leader() {
        return Ok(forward::to_leader(&node, None, Method::POST, &uri, &headers, body).await);
    }
    let deadline = Instant::now() + node.config.request_timeout;
    let now = now_ms();
    // Only the worker that holds an attempt may report on it.
    let foreign = node.view.read(|a| {
        batch.reports.iter().position(|r| {
            a.state
                .task(r.task_id)
                .and_then(Task::live_attempt)
                .is_some_and(|att| att.fencing_token == r.token && att.worker_id != worker)
        })
    });
    if let Some(i) = foreign {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_worker",
            format!("reports[{i}]: that attempt belongs to another worker"),
        ));
    }
    let mut cmds = Vec::with_capacity(batch.reports.len());
    for (i, r) in batch.reports.into_iter().enumerate() {
        cmds.push(match (r.kind, r.outcome) {
            (ReportKind::Started, _) => Command::AttemptStarted { now_ms: now, task_id: r.task_id, token: r.token },
            (ReportKind::Complete, Some(outcome)) => Command::Complete {
                now_ms: now,
                task_id: r.task_id,
                token: r.token,
                outcome,
                exit_code: r.exit_code,
                output_tail: r.output_tail,
                error: r.error,
            },
            (ReportKind::Complete, None) => {
                return Err(ApiError::invalid(format!("reports[{i}].outcome: required for a complete report")));
            }
        });
    }
    let writes = cmds.into_iter().map(|cmd| node.write(cmd, deadline));
    let mut results = Vec::new();
    let mut completed = false;
    for outcome in futures::future::join_all(writes).await {
        results.push(match outcome {
            Ok(scheduler::Response::Rejected(r)) => {
                ReportResult { status: None, code: Some(r.code.as_str().to_string()), message: Some(r.message) }
            }
            Ok(scheduler::Response::AttemptStarted { status }) => {
                ReportResult { status: Some(status), code: None, message: None }
            }
            Ok(scheduler::Response::Completed { task }) => {
                completed = true;
                let status = scheduler::TaskStatus::of(&task);
                node.leader.note_completed(task);
                ReportResult { status: Some(status), code: None, message: None }
            }
            Ok(other) => return Err(ApiError::internal(format!("unexpected answer to a report: {other:?}"))),
            // Not leader any more, no quorum, or unknown: the whole request is retried by the worker.
            Err(e) => return Err(e.into()),
        });
    }
    if completed {
        node.leader.wake.notify_one();
    }
    Ok(Json(ReportResults { results }).into_response())
}

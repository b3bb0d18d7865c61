//! The worker protocol: register, heartbeat, inbox, reports and checkpoints (types and flow in
//! [`crate::proto::workers`]).
//!
//! Handlers translate HTTP to the leader's verdicts ([`crate::scheduler::verdict`], pure
//! functions of the state) and to commands, and back; they decide nothing themselves.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
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
use tokio::time::Instant;

use super::auth::Principal;
use super::auth::ensure_worker;
use super::error::ApiError;
use super::error::path_error;
use super::forward;
use super::tasks::Body;
use super::tasks::Proposed;
use super::tasks::propose;
use crate::node::Node;
use crate::proto::ErrorCode;
use crate::proto::MAX_CHECKPOINT_BYTES;
use crate::proto::MAX_INBOX_WAIT;
use crate::proto::MAX_INPUTS_BYTES;
use crate::proto::MAX_REPORTS;
use crate::proto::workers::Assignment;
use crate::proto::workers::Heartbeat;
use crate::proto::workers::HeartbeatAnswer;
use crate::proto::workers::Inbox;
use crate::proto::workers::InboxQuery;
use crate::proto::workers::Registered;
use crate::proto::workers::ReportResult;
use crate::proto::workers::ReportResults;
use crate::proto::workers::Reports;
use crate::scheduler;
use crate::scheduler::Command;
use crate::scheduler::WorkerRegistration;
use crate::scheduler::verdict;
use crate::scheduler::verdict::HeartbeatRefusal;
use crate::util::now_ms;

/// Decodes a JSON body, naming the bad field.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(path_error)
}

/// Proposes on the leader (forwarding otherwise): the scheduler's answer, or the leader's
/// relayed HTTP answer.
pub(crate) async fn on_leader(
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

/// The 409 answers to a refused heartbeat.
fn refused(id: &str, why: HeartbeatRefusal) -> ApiError {
    match why {
        HeartbeatRefusal::Removed => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::WorkerRemoved,
            format!("worker {id} was removed by an operator; it must stop (start it again to re-register)"),
        ),
        HeartbeatRefusal::NotRegistered => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotRegistered,
            format!("worker {id} is not registered (or was declared lost): register again"),
        ),
    }
}

/// `POST /v1/workers`: register (or re-register) a worker; answers its lease.
#[utoipa::path(
    post,
    path = "/v1/workers",
    tag = "workers",
    operation_id = "register_worker",
    request_body(content = WorkerRegistration, content_type = "application/json"),
    responses(
        (status = 200, description = "Registered: the worker and its lease", body = Registered),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn register(
    State(node): State<Arc<Node>>,
    principal: Option<Extension<Principal>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body?;
    let mut reg: WorkerRegistration = json_body(&body)?;
    // Workers of the first release sent `ip:0` for "no address"; read it as none.
    if reg.api_addr.as_deref().is_some_and(|a| a.ends_with(":0")) {
        reg.api_addr = None;
    }
    reg.validate().map_err(|e| ApiError::invalid(format!("{}: {}", e.field, e.message)))?;
    // A worker token registers its own worker only: never another's (which would take over
    // its registration and end its attempts).
    if let Some(Extension(p)) = &principal {
        ensure_worker(p, &reg.id)?;
    }
    let id = reg.id.clone();
    if !node.is_leader() {
        return Ok(forward::to_leader(&node, None, Method::POST, &uri, &headers, body).await);
    }
    // Stale incarnations are judged from a state with everything committed before this term
    // applied; a state that is behind could miss the old incarnation's running attempts.
    if !node.leader.is_ready() {
        return Err(ApiError::unavailable(ErrorCode::LeaderNotReady, "the new leader is catching up; retry"));
    }
    let register = Command::RegisterWorker { now_ms: now_ms(), worker: reg };
    // The old incarnation's attempts end `lost` in the same entry as the registration. If the
    // lease watchdog got there first, that half is refused (`registered_ms` changed) and only
    // the registration counts.
    let cmd = match node.view.read(|a| verdict::stale_incarnation(&a.state, &id, now_ms())) {
        Some(lost) => {
            tracing::warn!(worker = %id, "worker re-registered with attempts still assigned; ending them lost");
            Command::Many { commands: vec![lost, register] }
        }
        None => register,
    };
    let answer = match on_leader(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Err(forwarded) => return Ok(forwarded),
        Ok(scheduler::Response::Many { responses }) => responses.into_iter().last(),
        Ok(other) => Some(other),
    };
    match answer {
        Some(scheduler::Response::Worker { worker, .. }) => {
            node.leader.leases.renew(&id);
            Ok(Json(Registered { worker, lease: node.leader.options.lease() }).into_response())
        }
        Some(scheduler::Response::Rejected(r)) => Err(r.into()),
        other => Err(ApiError::internal(format!("unexpected answer to register: {other:?}"))),
    }
}

/// `POST /v1/workers/{id}/heartbeat` (leader only; forwarded otherwise): renews the lease,
/// answers the attempts to stop, and ends the orphaned ones.
#[utoipa::path(
    post,
    path = "/v1/workers/{id}/heartbeat",
    tag = "workers",
    operation_id = "heartbeat",
    params(("id" = String, Path, description = "Worker id")),
    request_body(content = Option<Heartbeat>, description = "Optional (an empty body is an empty heartbeat)", content_type = "application/json"),
    responses(
        (status = 200, description = "Lease renewed; the attempts to stop", body = HeartbeatAnswer),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
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
        return Err(ApiError::unavailable(ErrorCode::LeaderNotReady, "the new leader is catching up; retry"));
    }
    // A leader cut off from the majority must not keep leases alive: the other side has
    // elected a leader that will declare this worker lost and reassign its tasks, and the
    // worker has to notice (no renewal) and fence itself.
    let lease =
        tokio::time::timeout(Duration::from_millis(500), node.raft.get_read_log_id(openraft::ReadPolicy::LeaseRead));
    if !matches!(lease.await, Ok(Ok(_))) {
        return Err(ApiError::unavailable(
            ErrorCode::NoQuorum,
            "this leader cannot confirm its leadership; not renewing",
        ));
    }
    let judged = node
        .view
        .read(|a| verdict::heartbeat(&a.state, &id, &hb.running, hb.seen_token, hb.knows_preempted, hb.knows_migrated));
    let judged = judged.map_err(|why| refused(&id, why))?;
    // Renew first: the answer must not wait on a commit (a slow one would make the worker
    // retry elsewhere and, in the end, fence itself for nothing).
    node.leader.leases.renew(&id);
    node.leader.leases.record_knows_preempted(&id, hb.knows_preempted);
    node.leader.leases.record_knows_migrated(&id, hb.knows_migrated);
    if let Some(load) = hb.load {
        node.leader.leases.record_load(&id, load);
        node.leader.observe_load(&id, load);
    }
    if !judged.orphans.is_empty() {
        for orphan in &judged.orphans {
            tracing::warn!(worker = %id, attempt = %orphan, "worker no longer runs this attempt; ending it lost");
        }
        let now = now_ms();
        let commands: Vec<Command> = judged.orphans.iter().map(|&o| verdict::orphan_command(&id, o, now)).collect();
        let cmd =
            if commands.len() == 1 { commands.into_iter().next().expect("one") } else { Command::Many { commands } };
        let node = node.clone();
        // In the background, as one entry; a failure is retried by the next heartbeat, which
        // reports the same orphans again (apply answers an ended attempt `duplicate`).
        tokio::spawn(async move {
            if let Err(e) = node.write(cmd, Instant::now() + node.config.request_timeout).await {
                tracing::warn!(error = %e, "could not end the orphaned attempts; the next heartbeat retries");
            }
        });
    }
    Ok(Json(HeartbeatAnswer { lease: node.leader.options.lease(), stop: judged.stop }).into_response())
}

/// The worker's inbox as [`verdict::inbox`] judges it, with each attempt's task and the inputs
/// [`verdict::assignment_inputs`] gives it.
fn inbox_of(node: &Node, worker: &str, after: u64) -> Result<Vec<Assignment>, HeartbeatRefusal> {
    node.view.read(|a| {
        let ids = verdict::inbox(&a.state, worker, after)?;
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                let task = a.state.task(id.task_id)?;
                let number = task.live_attempt()?.number;
                let (inputs, inputs_error) =
                    match verdict::assignment_inputs(&a.state, id.task_id, MAX_INPUTS_BYTES as u64) {
                        Ok(inputs) => (inputs, None),
                        Err(too_large) => (Vec::new(), Some(too_large.to_string())),
                    };
                Some(Assignment { attempt: number, token: id.token, task: task.clone(), inputs, inputs_error })
            })
            .collect())
    })
}

/// `GET /v1/workers/{id}/inbox?wait_ms=&after=`: committed assignments of this worker that it
/// has not reported started yet (with `after`, only newer ones than it has), each with its
/// workflow parents' results (`inputs`, or `inputs_error` over 64 MiB); waits up to
/// `wait_ms` for one to appear. 409 `not_registered` for a worker the cluster does not know
/// (or declared lost), like its heartbeat.
#[utoipa::path(
    get,
    path = "/v1/workers/{id}/inbox",
    tag = "workers",
    operation_id = "inbox",
    params(("id" = String, Path, description = "Worker id"), InboxQuery),
    responses(
        (status = 200, description = "Assignments not yet reported started (empty when the wait ran out)", body = Inbox),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn inbox(
    State(node): State<Arc<Node>>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(id), Query(p)) = (id?, params?);
    let wait = p.wait_ms.map_or(Duration::ZERO, Duration::from_millis).min(MAX_INBOX_WAIT);
    let deadline = Instant::now() + wait;
    node.read_barrier(Instant::now() + node.config.request_timeout).await?;
    let mut changes = node.view.subscribe();
    loop {
        changes.borrow_and_update();
        // Judged again after every change: a worker removed or declared lost while it waits
        // hears so at once, as its heartbeat would.
        let assignments = inbox_of(&node, &id, p.after.unwrap_or(0)).map_err(|why| refused(&id, why))?;
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

/// Path of an attempt: task id and fencing token.
pub type AttemptPath = Result<Path<(u64, u64)>, PathRejection>;

/// `POST /v1/tasks/{id}/attempts/{token}/checkpoint` with the checkpoint bytes as the body:
/// the task's status after it (`cancel_requested` tells the worker to stop).
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/attempts/{token}/checkpoint",
    tag = "workers",
    operation_id = "checkpoint",
    params(("id" = u64, Path, description = "Task id"), ("token" = u64, Path, description = "The attempt's fencing token")),
    request_body(content = crate::api::openapi::Binary, description = "The checkpoint bytes (at most 256 KiB)", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Saved; the task's status", body = crate::scheduler::TaskStatus),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn checkpoint(
    State(node): State<Arc<Node>>,
    principal: Option<Extension<Principal>>,
    path: AttemptPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((task_id, token)) = path?;
    let body = body?;
    if body.len() > MAX_CHECKPOINT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::CheckpointTooLarge,
            format!("checkpoint of {} bytes is over the {MAX_CHECKPOINT_BYTES} byte limit", body.len()),
        ));
    }
    let data = body.to_vec();
    // With a worker token, apply checks that the attempt is that worker's.
    let cmd = match principal.as_ref().and_then(|Extension(p)| p.bound_worker()) {
        Some(worker) => {
            Command::WorkerCheckpoint { now_ms: now_ms(), worker_id: worker.to_string(), task_id, token, data }
        }
        None => Command::Checkpoint { now_ms: now_ms(), task_id, token, data },
    };
    match on_leader(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Err(forwarded) => Ok(forwarded),
        Ok(scheduler::Response::CheckpointSaved { status }) => Ok(Json(status).into_response()),
        Ok(other) => Err(ApiError::internal(format!("unexpected answer to a checkpoint: {other:?}"))),
    }
}

/// `POST /v1/workers/{id}/reports`: a batch of `started` / `ended` reports, committed as one
/// `Reports` command and answered per report, in order. Apply checks that each attempt is this
/// worker's.
#[utoipa::path(
    post,
    path = "/v1/workers/{id}/reports",
    tag = "workers",
    operation_id = "reports",
    params(("id" = String, Path, description = "Worker id")),
    request_body(content = Reports, content_type = "application/json"),
    responses(
        (status = 200, description = "One verdict per report, in order", body = ReportResults),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn reports(
    State(node): State<Arc<Node>>,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(worker_id) = id?;
    let body = body?;
    let batch: Reports = json_body(&body)?;
    if batch.reports.len() > MAX_REPORTS {
        return Err(ApiError::invalid(format!("reports: at most {MAX_REPORTS} per request")));
    }
    let cmd = Command::Reports { now_ms: now_ms(), worker_id, reports: batch.reports };
    let results = match on_leader(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Err(forwarded) => return Ok(forwarded),
        Ok(scheduler::Response::Reports { results }) => results,
        Ok(other) => return Err(ApiError::internal(format!("unexpected answer to reports: {other:?}"))),
    };
    let results = results
        .into_iter()
        .map(|r| match r {
            scheduler::Response::Rejected(r) => {
                ReportResult { status: None, code: Some(r.code.into()), message: Some(r.message) }
            }
            scheduler::Response::AttemptStarted { status } => {
                ReportResult { status: Some(status), code: None, message: None }
            }
            scheduler::Response::Completed { task } => {
                ReportResult { status: Some(scheduler::TaskStatus::of(&task)), code: None, message: None }
            }
            other => ReportResult {
                status: None,
                code: Some(ErrorCode::Internal),
                message: Some(format!("unexpected answer to a report: {other:?}")),
            },
        })
        .collect();
    Ok(Json(ReportResults { results }).into_response())
}

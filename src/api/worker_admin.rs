//! Worker administration: list, drain, remove (types in [`crate::proto::workers`]).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::PathRejection;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;
use tokio::time::Instant;

use super::error::ApiError;
use super::worker_protocol::on_leader;
use crate::node::Node;
use crate::proto::workers::RemovedWorker;
use crate::proto::workers::WorkerEntry;
use crate::proto::workers::WorkerList;
use crate::scheduler;
use crate::scheduler::Command;
use crate::scheduler::QueryResponse;
use crate::util::now_ms;

/// `GET /v1/workers`: every known worker with its live attempts.
#[utoipa::path(
    get,
    path = "/v1/workers",
    tag = "workers",
    operation_id = "list_workers",
    responses(
        (status = 200, description = "Every worker the cluster knows", body = WorkerList),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn list(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    node.read_barrier(Instant::now() + node.config.request_timeout).await?;
    let workers = node.view.read(|a| match a.state.query(&scheduler::Query::ListWorkers) {
        QueryResponse::Workers { workers } => workers
            .into_iter()
            .map(|w| {
                let running = a.state.live_tasks_on(&w.id).count();
                WorkerEntry { worker: w, running }
            })
            .collect(),
        _ => Vec::new(),
    });
    Ok(Json(WorkerList { workers }).into_response())
}

/// `POST /v1/workers/{id}/drain`: no new work; it finishes what it runs.
#[utoipa::path(
    post,
    path = "/v1/workers/{id}/drain",
    tag = "workers",
    operation_id = "drain_worker",
    params(("id" = String, Path, description = "Worker id")),
    responses(
        (status = 200, description = "The worker, now draining", body = crate::scheduler::WorkerInfo),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn drain(
    State(node): State<Arc<Node>>,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(worker_id) = id?;
    let cmd = Command::DrainWorker { now_ms: now_ms(), worker_id };
    match on_leader(&node, cmd, Method::POST, &uri, &headers, Bytes::new()).await? {
        Err(forwarded) => Ok(forwarded),
        Ok(scheduler::Response::Worker { worker, .. }) => Ok(Json(worker).into_response()),
        Ok(other) => Err(ApiError::internal(format!("unexpected answer to drain: {other:?}"))),
    }
}

/// `DELETE /v1/workers/{id}`: remove a worker; its running attempts end lost and follow their
/// failover policy.
#[utoipa::path(
    delete,
    path = "/v1/workers/{id}",
    tag = "workers",
    operation_id = "remove_worker",
    params(("id" = String, Path, description = "Worker id")),
    responses(
        (status = 200, description = "The worker, now removed, and the tasks whose attempt on it ended lost", body = RemovedWorker),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
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
            Ok(Json(RemovedWorker { worker, affected }).into_response())
        }
        Ok(other) => Err(ApiError::internal(format!("unexpected answer to remove: {other:?}"))),
    }
}

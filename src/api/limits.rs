//! `/v1/limits…`: set, remove, list and read cluster-wide concurrency limits.
//!
//! A limit is one committed `SetLimit` entry; apply keeps it with the permits (see
//! [`crate::scheduler::limit`]), so every replica answers reads from its own state after the
//! read barrier, and a leader change loses nothing. The handlers only check the request's shape
//! (key length, `max_running` range) so that a bad request is a 422 naming the field and writes
//! nothing; apply checks the same bounds again.

use std::sync::Arc;

use axum::Json;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;
use tokio::time::Instant;

use super::error::ApiError;
use super::error::path_error;
use super::tasks::Body;
use super::tasks::Proposed;
use super::tasks::barrier;
use super::tasks::propose;
use crate::node::Node;
use crate::proto::limits::LimitList;
use crate::proto::limits::LimitView;
use crate::proto::limits::MAX_LIMIT_KEY_BYTES;
use crate::proto::limits::MAX_LIMIT_RUNNING;
use crate::proto::limits::SetLimit;
use crate::proto::tasks::ReadQuery;
use crate::scheduler;
use crate::scheduler::Command;
use crate::util::now_ms;

/// A `{key}` path segment (percent-decoded).
type KeyPath = Result<Path<String>, PathRejection>;

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_LIMIT_KEY_BYTES {
        return Err(ApiError::invalid(format!(
            "key: is {} bytes; a concurrency key is 1 to {MAX_LIMIT_KEY_BYTES} bytes",
            key.len()
        )));
    }
    Ok(())
}

fn limit_of(resp: scheduler::Response, what: &str) -> Result<LimitView, ApiError> {
    match resp {
        scheduler::Response::Limit { limit } => Ok(limit),
        scheduler::Response::Rejected(r) => Err(r.into()),
        other => Err(ApiError::internal(format!("unexpected answer to {what}: {other:?}"))),
    }
}

/// `PUT /v1/limits/{key}` `{"max_running": n}`: sets (or changes) the limit of a key.
#[utoipa::path(
    put,
    path = "/v1/limits/{key}",
    tag = "limits",
    operation_id = "set_limit",
    params(("key" = String, Path, description = "The concurrency key (1 to 256 bytes, percent-encoded)")),
    request_body(content = SetLimit, content_type = "application/json"),
    responses(
        (status = 200, description = "The limit as set, with the tasks holding its permits", body = LimitView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn set(
    State(node): State<Arc<Node>>,
    key: KeyPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(key) = key?;
    let body = body?;
    check_key(&key)?;
    let req: SetLimit =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)).map_err(path_error)?;
    if req.max_running > MAX_LIMIT_RUNNING {
        return Err(ApiError::invalid(format!(
            "max_running: is {}; it must be 0 to {MAX_LIMIT_RUNNING} (0 holds every task with the key)",
            req.max_running
        )));
    }
    let cmd = Command::SetLimit { now_ms: now_ms(), key, max_running: Some(req.max_running) };
    match propose(&node, cmd, Method::PUT, &uri, &headers, body).await? {
        Proposed::Forwarded(relayed) => Ok(relayed),
        Proposed::Applied(resp) => {
            let limit = limit_of(*resp, "set limit")?;
            tracing::info!(key = %limit.key, max_running = ?limit.max_running, "set a concurrency limit");
            Ok(Json(limit).into_response())
        }
    }
}

/// `DELETE /v1/limits/{key}`: removes the limit; the key becomes unlimited at once.
#[utoipa::path(
    delete,
    path = "/v1/limits/{key}",
    tag = "limits",
    operation_id = "delete_limit",
    params(("key" = String, Path, description = "The concurrency key (percent-encoded)")),
    responses(
        (status = 200, description = "The key after the removal: no `max_running`, and the tasks still holding its permits (they run to their end)", body = LimitView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn delete(
    State(node): State<Arc<Node>>,
    key: KeyPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(key) = key?;
    let body = body?;
    check_key(&key)?;
    let cmd = Command::SetLimit { now_ms: now_ms(), key, max_running: None };
    match propose(&node, cmd, Method::DELETE, &uri, &headers, body).await? {
        Proposed::Forwarded(relayed) => Ok(relayed),
        Proposed::Applied(resp) => {
            let limit = limit_of(*resp, "delete limit")?;
            tracing::info!(key = %limit.key, "removed a concurrency limit");
            Ok(Json(limit).into_response())
        }
    }
}

/// `GET /v1/limits`: every limit, and every key in use without one.
#[utoipa::path(
    get,
    path = "/v1/limits",
    tag = "limits",
    operation_id = "list_limits",
    params(ReadQuery),
    responses(
        (status = 200, description = "Every limit and every key in use, in key order", body = LimitList),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    p: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = p?;
    barrier(&node, &p.consistency, Instant::now() + node.config.request_timeout).await?;
    let limits = node.view.read(|a| a.state.limits_view());
    Ok(Json(LimitList { limits }).into_response())
}

/// `GET /v1/limits/{key}`: one key's limit and permit holders. A key in use without a limit
/// answers with no `max_running`; a key with neither is a 404.
#[utoipa::path(
    get,
    path = "/v1/limits/{key}",
    tag = "limits",
    operation_id = "get_limit",
    params(("key" = String, Path, description = "The concurrency key (percent-encoded)"), ReadQuery),
    responses(
        (status = 200, description = "The key's limit (absent when it has none) and the tasks holding its permits", body = LimitView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn get(
    State(node): State<Arc<Node>>,
    key: KeyPath,
    p: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(key), Query(p)) = (key?, p?);
    check_key(&key)?;
    barrier(&node, &p.consistency, Instant::now() + node.config.request_timeout).await?;
    let view = node.view.read(|a| a.state.limit_view(&key));
    if view.max_running.is_none() && view.running.is_empty() {
        return Err(ApiError::not_found(format!("key {key:?} has no limit and no running task")));
    }
    Ok(Json(view).into_response())
}

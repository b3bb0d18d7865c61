//! `GET /v1/snapshot`: a backup of the replicated state (see [`crate::node::backup`]).
//!
//! Served by the leader, which confirms its leadership with a quorum first; a follower forwards
//! the request. The body is the backup file itself (`application/octet-stream`); the index,
//! term and counts are in its checksummed header, and repeated in `x-taskraft-snapshot-*`
//! headers for a quick look with curl. Admin only (see `api::auth`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::Method;
use axum::http::Uri;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::response::Response;
use tokio::time::Instant;

use super::error::ApiError;
use super::forward;
use crate::node::Node;
use crate::node::backup::BackupError;
use crate::proto::backup::SNAPSHOT_CONTENT_TYPE;

/// `GET /v1/snapshot`.
#[utoipa::path(
    get,
    path = "/v1/snapshot",
    tag = "cluster",
    operation_id = "snapshot",
    responses(
        (status = 200, description = "A consistent, checksummed backup of the whole state (admin); restore it with `taskraft snapshot restore`", content_type = "application/octet-stream", body = crate::api::openapi::Binary),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn snapshot(State(node): State<Arc<Node>>, uri: Uri, headers: HeaderMap) -> Response {
    if !node.is_leader() {
        return forward::to_leader(&node, None, Method::GET, &uri, &headers, Bytes::new()).await;
    }
    match node.backup(Instant::now() + node.config.request_timeout).await {
        Ok((meta, file)) => {
            tracing::info!(index = meta.index, tasks = meta.tasks, bytes = file.len(), "backup taken");
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(SNAPSHOT_CONTENT_TYPE));
            headers.insert("x-taskraft-snapshot-index", HeaderValue::from(meta.index));
            headers.insert("x-taskraft-snapshot-term", HeaderValue::from(meta.term));
            headers.insert("x-taskraft-snapshot-tasks", HeaderValue::from(meta.tasks));
            (headers, file).into_response()
        }
        Err(BackupError::Read(e)) => ApiError::from(e).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

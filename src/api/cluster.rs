//! `/v1/cluster…`, `/health`, `/ready` and the internal read-index endpoint.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;
use openraft::ServerState;
use tokio::time::Instant;

use super::error::ApiError;
use super::error::path_error;
use super::forward;
use crate::node::MembershipError;
use crate::node::Node;
use crate::proto::ErrorCode;
use crate::proto::cluster::AddMember;
use crate::proto::cluster::ClusterStatus;
use crate::proto::cluster::Health;
use crate::proto::cluster::MemberStatus;
use crate::proto::cluster::ReadIndex;
use crate::proto::cluster::Readiness;
use crate::proto::cluster::Role;

/// The cluster as this replica sees it (no Raft round trip: cheap enough to poll).
pub fn status(node: &Node) -> ClusterStatus {
    let m = node.metrics();
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, n)| MemberStatus {
            id: *id,
            api_addr: n.api_addr.clone(),
            raft_addr: n.raft_addr.clone(),
            voter: voters.contains(id),
        })
        .collect();
    let role = match m.state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Shutdown,
    };
    ClusterStatus {
        node_id: node.id,
        pid: std::process::id(),
        role,
        leader_id: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        committed: m.local_committed.map(|l| l.index),
        last_applied: m.last_applied.map(|l| l.index),
        snapshot: m.snapshot.map(|l| l.index),
        purged: m.purged.map(|l| l.index),
        members,
        calendar: (role == Role::Leader).then(|| node.leader.calendar_status()),
    }
}

/// `GET /v1/cluster`.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = "cluster",
    operation_id = "cluster_status",
    responses(
        (status = 200, description = "The cluster as this replica sees it", body = ClusterStatus),
    ),
)]
pub async fn get_status(State(node): State<Arc<Node>>) -> Json<ClusterStatus> {
    Json(status(&node))
}

/// `GET /health`: the process is alive and serving HTTP.
#[utoipa::path(
    get,
    path = "/health",
    tag = "cluster",
    operation_id = "health",
    responses(
        (status = 200, description = "Alive", body = Health),
    ),
)]
pub async fn health(State(node): State<Arc<Node>>) -> Json<Health> {
    Json(Health { status: "ok".into(), node_id: node.id })
}

/// `GET /ready`: 200 only when a leader is known and everything known committed is applied.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "cluster",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: no leader known, or still applying", body = Readiness),
    ),
)]
pub async fn ready(State(node): State<Arc<Node>>) -> Response {
    let (leader, committed, applied) = {
        let m = node.metrics();
        (
            m.current_leader,
            m.cluster_committed.or(m.local_committed).map_or(0, |l| l.index),
            m.last_applied.map_or(0, |l| l.index),
        )
    };
    let (ready, reason) = match leader {
        None => (false, "no leader known".to_string()),
        Some(_) if applied < committed => (false, format!("applying: {applied} of {committed} committed entries")),
        Some(_) => (true, "ok".to_string()),
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, reason, leader_id: leader, committed, last_applied: applied })).into_response()
}

/// `GET /v1/internal/read-index` (leader only): confirms leadership with a quorum and returns
/// the index a linearizable read must wait for. Followers call it for their reads.
pub async fn read_index(State(node): State<Arc<Node>>) -> Result<Json<ReadIndex>, ApiError> {
    if !node.is_leader() {
        return Err(ApiError::unavailable(ErrorCode::NotLeader, "this replica is not the leader"));
    }
    let index = node.leader_read_index(Instant::now() + node.config.request_timeout).await?;
    Ok(Json(ReadIndex { index }))
}

/// Runs a membership change here if we lead, otherwise forwards it.
async fn on_leader<F, Fut>(
    node: &Node,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    change: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), MembershipError>>,
{
    if !node.is_leader() {
        return forward::to_leader(node, None, method, uri, headers, body).await;
    }
    match change().await {
        Ok(()) => Json(status(node)).into_response(),
        Err(MembershipError::NotLeader(hint)) => forward::to_leader(node, hint, method, uri, headers, body).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /v1/cluster/members` `{"id", "api_addr", "raft_addr"}`: learner, catch up, voter.
#[utoipa::path(
    post,
    path = "/v1/cluster/members",
    tag = "cluster",
    operation_id = "add_member",
    request_body(content = AddMember, content_type = "application/json"),
    responses(
        (status = 200, description = "The new replica is a voter (or already was); the cluster after the change", body = ClusterStatus),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn add_member(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let req: AddMember =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)).map_err(path_error)?;
    if req.id == 0 {
        return Err(ApiError::invalid("id: must be at least 1"));
    }
    Ok(on_leader(&node, Method::POST, &uri, &headers, body, || node.add_member(req)).await)
}

/// `DELETE /v1/cluster/members/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/cluster/members/{id}",
    tag = "cluster",
    operation_id = "remove_member",
    params(("id" = u64, Path, description = "Replica id")),
    responses(
        (status = 200, description = "Removed; the cluster after the change", body = ClusterStatus),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn remove_member(
    State(node): State<Arc<Node>>,
    id: super::tasks::IdPath,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Path(id) = match id {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    on_leader(&node, Method::DELETE, &uri, &headers, Bytes::new(), || node.remove_member(id)).await
}

/// `POST /v1/cluster/init`: make this fresh replica the first member of a new cluster.
#[utoipa::path(
    post,
    path = "/v1/cluster/init",
    tag = "cluster",
    operation_id = "init_cluster",
    responses(
        (status = 200, description = "Initialized; the new cluster", body = ClusterStatus),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 503, response = crate::api::openapi::Unavailable),
    ),
)]
pub async fn init(State(node): State<Arc<Node>>) -> Result<Json<ClusterStatus>, ApiError> {
    node.init_cluster().await?;
    Ok(Json(status(&node)))
}

//! Forwarding a request to the leader: one hop, answered as if sent there.

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;

use super::error::ApiError;
use crate::node::Node;
use crate::node::NodeId;
use crate::proto::ErrorCode;
use crate::proto::FORWARDED_HEADER;
use crate::proto::LEADER_HEADER;
use crate::proto::REQUEST_ID_HEADER;

/// Extra time a forwarded request gets over the leader's own deadline, so that the leader's
/// answer (even a 504) normally arrives before we give up on it.
const FORWARD_SLACK: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends the request to the leader (`hint`, else the leader this replica knows) and relays
/// its answer. A request that was already forwarded once is not forwarded again.
pub async fn to_leader(
    node: &Node,
    hint: Option<NodeId>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    to_leader_within(node, hint, method, uri, headers, body, node.config.request_timeout).await
}

/// [`to_leader`] for a request the leader may hold up to `leader_deadline` (a long-poll).
pub async fn to_leader_within(
    node: &Node,
    hint: Option<NodeId>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    leader_deadline: std::time::Duration,
) -> Response {
    if headers.contains_key(FORWARDED_HEADER) {
        return ApiError::unavailable(
            ErrorCode::NoLeader,
            "leadership moved while the request was being forwarded; retry",
        )
        .into_response();
    }
    let Some(leader) = hint.or_else(|| node.leader()) else {
        return ApiError::unavailable(
            ErrorCode::NoLeader,
            "no leader is known right now (election in progress?); retry shortly",
        )
        .into_response();
    };
    if leader == node.id {
        return ApiError::unavailable(ErrorCode::NoLeader, "leadership is changing; retry").into_response();
    }
    let Some(addr) = node.api_addr_of(leader) else {
        return ApiError::unavailable(ErrorCode::NoLeader, format!("leader {leader} has no known address yet; retry"))
            .into_response();
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = node.url(&addr, path);
    let mut req = node
        .http
        .request(method.clone(), &url)
        .header(FORWARDED_HEADER, node.id.to_string())
        .timeout(leader_deadline + FORWARD_SLACK)
        .body(body);
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        req = req.header(axum::http::header::CONTENT_TYPE, ct);
    }
    if let Some(rid) = headers.get(REQUEST_ID_HEADER) {
        req = req.header(REQUEST_ID_HEADER, rid);
    }
    // The leader authorizes the request again, with the caller's own credentials: never with
    // this replica's (a forwarded request must not gain rights on the way).
    for name in [axum::http::header::AUTHORIZATION.as_str(), crate::proto::CLUSTER_SECRET_HEADER] {
        if let Some(value) = headers.get(name) {
            req = req.header(name, value);
        }
    }
    match req.send().await {
        Ok(resp) => relay(resp, &addr).await,
        // Not connected: the request never reached the leader, so nothing was written.
        Err(e) if e.is_connect() => {
            ApiError::unavailable(ErrorCode::NoLeader, format!("leader {leader} at {addr} is unreachable; retry")).into_response()
        }
        Err(e) if method == Method::GET => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, ErrorCode::Timeout, format!("forwarding to leader {leader}: {e}")).into_response()
        }
        Err(e) => ApiError::outcome_unknown(format!(
            "forwarded to leader {leader} but got no answer ({e}); the write may still take effect: retry with the same idempotency_key or request_id"
        ))
        .into_response(),
    }
}

async fn relay(resp: reqwest::Response, leader_addr: &str) -> Response {
    let status = resp.status();
    let mut headers = HeaderMap::new();
    if let Ok(v) = axum::http::HeaderValue::from_str(leader_addr) {
        headers.insert(LEADER_HEADER, v);
    }
    for name in [axum::http::header::CONTENT_TYPE, axum::http::header::RETRY_AFTER] {
        if let Some(v) = resp.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    match resp.bytes().await {
        Ok(body) => (status, headers, body).into_response(),
        Err(e) => ApiError::outcome_unknown(format!(
            "the leader's answer was cut off ({e}); retry with the same idempotency_key or request_id"
        ))
        .into_response(),
    }
}

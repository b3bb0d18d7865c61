//! `GET /v1/dashboard/replicas` and `GET /v1/dashboard/leases` (types in
//! [`crate::proto::dashboard`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::Uri;
use axum::http::header::AUTHORIZATION;
use axum::response::IntoResponse;
use axum::response::Response;
use tokio::time::Instant;

use crate::api::cluster;
use crate::api::forward;
use crate::node::Node;
use crate::proto::cluster::ClusterStatus;
use crate::proto::cluster::MemberStatus;
use crate::proto::dashboard::LeaseAges;
use crate::proto::dashboard::PROBE_TIMEOUT_MS;
use crate::proto::dashboard::ReplicaProbe;
use crate::proto::dashboard::ReplicaProbes;

/// `GET /v1/dashboard/replicas`: every member's own `GET /v1/cluster`, fetched in parallel
/// with a short timeout, so that one page shows each replica's role, indexes and health.
/// The caller's `Authorization` header goes along: each member checks it itself.
#[utoipa::path(
    get,
    path = "/v1/dashboard/replicas",
    tag = "cluster",
    operation_id = "dashboard_replicas",
    responses((status = 200, description = "Every member's own status, or why it did not answer", body = ReplicaProbes)),
)]
pub async fn replicas(State(node): State<Arc<Node>>, headers: HeaderMap) -> Json<ReplicaProbes> {
    let here = cluster::status(&node);
    let auth = headers.get(AUTHORIZATION).cloned();
    let probes = here.members.iter().map(|m| {
        let (node, auth, here) = (node.clone(), auth.clone(), &here);
        async move {
            if m.id == node.id {
                return ReplicaProbe::answered(m, Ok(here.clone()), Duration::ZERO);
            }
            let started = Instant::now();
            let mut req =
                node.http.get(node.url(&m.api_addr, "/v1/cluster")).timeout(Duration::from_millis(PROBE_TIMEOUT_MS));
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a);
            }
            let answer = match req.send().await {
                Ok(resp) if resp.status().is_success() => resp.json::<ClusterStatus>().await.map_err(|e| e.to_string()),
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    Err(format!("answered {status}: {}", body.chars().take(200).collect::<String>()))
                }
                Err(e) if e.is_timeout() => Err(format!("no answer within {PROBE_TIMEOUT_MS} ms")),
                Err(e) if e.is_connect() => Err("unreachable (connection refused or no route)".to_string()),
                Err(e) => Err(e.to_string()),
            };
            ReplicaProbe::answered(m, answer, started.elapsed())
        }
    });
    let mut replicas = futures::future::join_all(probes).await;
    replicas.sort_by_key(|r| r.id);
    Json(ReplicaProbes { answered_by: node.id, replicas })
}

impl ReplicaProbe {
    fn answered(m: &MemberStatus, answer: Result<ClusterStatus, String>, took: Duration) -> Self {
        let (status, error) = match answer {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        let latency_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        ReplicaProbe { id: m.id, api_addr: m.api_addr.clone(), voter: m.voter, status, error, latency_ms }
    }
}

/// `GET /v1/dashboard/leases`: the leader's milliseconds since each worker's last heartbeat.
/// Heartbeats are never replicated, so a follower forwards this to the leader.
#[utoipa::path(
    get,
    path = "/v1/dashboard/leases",
    tag = "workers",
    operation_id = "dashboard_leases",
    responses(
        (status = 200, description = "The leader's time since each worker's last heartbeat", body = LeaseAges),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn leases(State(node): State<Arc<Node>>, uri: Uri, headers: HeaderMap) -> Response {
    if !node.is_leader() {
        return forward::to_leader(&node, None, Method::GET, &uri, &headers, Bytes::new()).await;
    }
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let workers = node.leader.leases.ages().into_iter().map(|(w, age)| (w, ms(age))).collect();
    let load = node.leader.leases.loads();
    Json(LeaseAges { leader_id: node.id, ttl_ms: ms(node.leader.leases.ttl()), workers, load }).into_response()
}

//! Inbound Raft RPCs: the axum routes served on a replica's `raft_addr`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::post;
use openraft::Raft;
use openraft::RaftTypeConfig;
use openraft::SnapshotMeta;
use openraft::storage::RaftStateMachine;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::VoteOf;
use serde::Serialize;

use crate::wire;

/// Header that carries the cluster secret on every peer request.
pub const SECRET_HEADER: &str = "x-taskraft-secret";

/// Largest RPC body accepted: a full snapshot of a big state travels in one request.
const MAX_RPC_BODY: usize = 4 << 30;

struct Peer<C: RaftTypeConfig, SM: RaftStateMachine<C>> {
    raft: Raft<C, SM>,
    secret: String,
}

/// The routes under `/raft/…` that peers call. Every request must carry `secret` in
/// [`SECRET_HEADER`]; a wrong or missing secret is answered 401 and logged.
pub fn raft_router<C, SM>(raft: Raft<C, SM>, secret: String) -> Router
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C, SnapshotData = Vec<u8>>,
{
    let peer = Arc::new(Peer { raft, secret });
    Router::new()
        .route("/raft/append", post(append::<C, SM>))
        .route("/raft/vote", post(vote::<C, SM>))
        .route("/raft/pre-vote", post(pre_vote::<C, SM>))
        .route("/raft/snapshot", post(snapshot::<C, SM>))
        .route("/raft/transfer-leader", post(transfer_leader::<C, SM>))
        .route("/raft/clock", post(clock::<C, SM>))
        .layer(DefaultBodyLimit::max(MAX_RPC_BODY))
        .with_state(peer)
}

type PeerState<C, SM> = State<Arc<Peer<C, SM>>>;

/// Checks the secret and decodes the body, or produces the refusal to send back.
fn admit<C, SM, T>(peer: &Peer<C, SM>, headers: &HeaderMap, body: &[u8], rpc: &str) -> Result<T, (StatusCode, String)>
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C>,
    T: serde::de::DeserializeOwned,
{
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes());
    // Constant time: the secret is what admits a replica; its bytes must not leak by timing.
    let matches = given.is_some_and(|g| bool::from(subtle::ConstantTimeEq::ct_eq(g, peer.secret.as_bytes())));
    if !matches {
        tracing::warn!(rpc, secret_present = given.is_some(), "refused raft rpc: wrong or missing cluster secret");
        return Err((StatusCode::UNAUTHORIZED, "wrong or missing cluster secret".into()));
    }
    wire::decode(body).map_err(|e| {
        tracing::warn!(rpc, error = %e, "refused raft rpc: undecodable body");
        (StatusCode::BAD_REQUEST, e.to_string())
    })
}

fn reply<T: Serialize>(value: &T) -> Response {
    match wire::encode(value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn append<C: RaftTypeConfig, SM: RaftStateMachine<C>>(
    State(peer): PeerState<C, SM>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit(&peer, &headers, &body, "append") {
        Ok(req) => reply(&peer.raft.append_entries(req).await),
        Err(refusal) => refusal.into_response(),
    }
}

async fn vote<C: RaftTypeConfig, SM: RaftStateMachine<C>>(
    State(peer): PeerState<C, SM>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit(&peer, &headers, &body, "vote") {
        Ok(req) => reply(&peer.raft.vote(req).await),
        Err(refusal) => refusal.into_response(),
    }
}

async fn pre_vote<C: RaftTypeConfig, SM: RaftStateMachine<C>>(
    State(peer): PeerState<C, SM>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit(&peer, &headers, &body, "pre-vote") {
        Ok(req) => reply(&peer.raft.pre_vote(req).await),
        Err(refusal) => refusal.into_response(),
    }
}

async fn snapshot<C, SM>(State(peer): PeerState<C, SM>, headers: HeaderMap, body: Bytes) -> Response
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C, SnapshotData = Vec<u8>>,
{
    let (vote, meta, data): (VoteOf<C>, SnapshotMetaOf<C>, Vec<u8>) = match admit(&peer, &headers, &body, "snapshot") {
        Ok(req) => req,
        Err(refusal) => return refusal.into_response(),
    };
    let meta: SnapshotMeta<_, _, _> = meta;
    tracing::info!(last_log_id = ?meta.last_log_id, bytes = data.len(), "installing snapshot from leader");
    let snapshot = openraft::Snapshot { meta, snapshot: data };
    reply(&peer.raft.install_full_snapshot(vote, snapshot).await)
}

async fn transfer_leader<C: RaftTypeConfig, SM: RaftStateMachine<C>>(
    State(peer): PeerState<C, SM>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit(&peer, &headers, &body, "transfer-leader") {
        Ok(req) => reply(&peer.raft.handle_transfer_leader(req).await),
        Err(refusal) => refusal.into_response(),
    }
}

/// This replica's wall clock, in ms since the epoch (postcard `u64`). The leader compares it with
/// its own before firing schedules, so a leader whose clock runs ahead of a majority's does not
/// fire early (see the product's `node/leader/clock.rs`).
async fn clock<C: RaftTypeConfig, SM: RaftStateMachine<C>>(
    State(peer): PeerState<C, SM>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match admit::<C, SM, ()>(&peer, &headers, &body, "clock") {
        Ok(()) => reply(&wall_ms()),
        Err(refusal) => refusal.into_response(),
    }
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

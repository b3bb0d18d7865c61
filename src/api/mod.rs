//! # The public HTTP API (JSON), served by every replica on `api_addr`
//!
//! The path of `POST /v1/tasks` through a replica:
//! 1. The body (≤ `max_body_bytes`, else 413) is parsed and validated: malformed JSON → 400,
//!    a bad field → 422 naming the field. Nothing is written for either.
//! 2. Not the leader? The original request is forwarded to the leader (one hop, see
//!    [`forward`]) and its answer relayed as is.
//! 3. On the leader the command is stamped with the leader's clock and proposed through Raft
//!    with the request deadline; when it is committed and applied, the scheduler's `Response`
//!    comes back: 201 with the task (200 for a known idempotency key).
//! 4. No leader / no quorum → 503 + `Retry-After` (nothing written); deadline passed after
//!    proposing → 504 `outcome_unknown` (retry with the same key: apply de-duplicates).
//!
//! Reads are linearizable by default: the replica obtains a read index from the leader
//! (ReadIndex, leadership confirmed by a quorum) and waits until it has applied that far,
//! then reads its own state. `?consistency=stale` skips that.
//!
//! Every request runs under a deadline (`request_timeout_ms`, long-polls their own, and at
//! most `max_long_polls` of them at once: [`long_poll`]); error
//! bodies are `{"error": {"code", "message"}}` (405 and 431 included), mapped in [`error`]
//! only. Request and response types live in [`crate::proto`]; handlers translate HTTP to
//! commands and to the leader's verdicts ([`crate::scheduler::verdict`]) and back.
//!
//! | module              | endpoints                                                   |
//! |---------------------|-------------------------------------------------------------|
//! | [`tasks`]           | `/v1/tasks…`, `/v1/stats`                                   |
//! | [`worker_protocol`] | register, heartbeat, inbox, reports, checkpoints            |
//! | [`worker_admin`]    | `GET /v1/workers`, drain, remove                            |
//! | [`schedules`]       | `/v1/schedules…`                                            |
//! | [`cluster`]         | `/v1/cluster…`, `/health`, `/ready`, internal read index    |

pub mod cluster;
pub mod error;
pub mod forward;
pub mod long_poll;
pub mod schedules;
pub mod tasks;
pub mod worker_admin;
pub mod worker_protocol;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::delete;
use axum::routing::get;
use axum::routing::post;

pub use self::error::ApiError;
use crate::node::Node;

/// The API router of one replica.
pub fn router(node: Arc<Node>) -> Router {
    let limit = node.config.max_body_bytes;
    let gate =
        axum::middleware::from_fn_with_state(long_poll::LongPolls::new(node.config.max_long_polls), long_poll::gate);
    Router::new()
        .route("/health", get(cluster::health))
        .route("/ready", get(cluster::ready))
        .route("/v1/tasks", post(tasks::submit).get(tasks::list))
        .route("/v1/tasks/batch", post(tasks::submit_batch))
        .route("/v1/tasks/{id}", get(tasks::get))
        .route("/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/v1/tasks/{id}/wait", get(tasks::wait).layer(gate.clone()))
        .route("/v1/tasks/{id}/attempts/{token}/checkpoint", post(worker_protocol::checkpoint))
        .route("/v1/workers", post(worker_protocol::register).get(worker_admin::list))
        .route("/v1/workers/{id}", delete(worker_admin::remove))
        .route("/v1/workers/{id}/heartbeat", post(worker_protocol::heartbeat))
        .route("/v1/workers/{id}/inbox", get(worker_protocol::inbox).layer(gate))
        .route("/v1/workers/{id}/drain", post(worker_admin::drain))
        .route("/v1/workers/{id}/reports", post(worker_protocol::reports))
        .route("/v1/schedules", post(schedules::create).get(schedules::list))
        .route("/v1/schedules/preview", get(schedules::preview))
        .route("/v1/schedules/{id}", get(schedules::get).put(schedules::update).delete(schedules::delete))
        .route("/v1/schedules/{id}/pause", post(schedules::pause))
        .route("/v1/schedules/{id}/resume", post(schedules::resume))
        .route("/v1/schedules/{id}/trigger", post(schedules::trigger))
        .route("/v1/schedules/{id}/backfill", post(schedules::backfill))
        .route("/v1/stats", get(tasks::stats))
        .route("/v1/cluster", get(cluster::get_status))
        .route("/v1/cluster/init", post(cluster::init))
        .route("/v1/cluster/members", post(cluster::add_member))
        .route("/v1/cluster/members/{id}", delete(cluster::remove_member))
        .route("/v1/internal/read-index", get(cluster::read_index))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(node)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    error::method_not_allowed(&method, uri.path())
}

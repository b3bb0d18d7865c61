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
//! | [`workflows`]       | `/v1/workflows…`                                            |
//! | [`limits`]          | `/v1/limits…` (concurrency limits)                          |
//! | [`cluster`]         | `/v1/cluster…`, `/health`, `/ready`, internal read index    |
//! | [`tokens`]          | `/v1/tokens…` (who may do what: [`auth`])                   |
//! | [`metrics`]         | `/metrics`, and the layer counting and timing every request |
//! | [`backup`]          | `GET /v1/snapshot` (a backup file)                          |
//! | [`output`]          | live attempt output (ship, read, follow)                    |
//! | [`openapi`]         | `/v1/openapi.json`: this API described by its own code      |
//!
//! Every public route is registered with its `#[utoipa::path]` description (see [`openapi`]),
//! so the OpenAPI document lists exactly what the router serves.

pub mod auth;
pub mod backup;
pub mod cluster;
pub mod error;
pub mod forward;
pub mod limits;
pub mod long_poll;
pub mod metrics;
pub mod openapi;
pub mod output;
pub mod schedules;
pub mod tasks;
pub mod tokens;
pub mod worker_admin;
pub mod worker_protocol;
pub mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use self::error::ApiError;
use crate::node::Node;

/// Every public route with its documentation, not yet bound to a node.
fn documented() -> OpenApiRouter<Arc<Node>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(cluster::health))
        .routes(routes!(cluster::ready))
        .routes(routes!(tasks::submit, tasks::list))
        .routes(routes!(tasks::submit_batch))
        .routes(routes!(tasks::get))
        .routes(routes!(tasks::cancel))
        .routes(routes!(tasks::wait))
        .routes(routes!(worker_protocol::checkpoint))
        .routes(routes!(worker_protocol::register, worker_admin::list))
        .routes(routes!(worker_admin::remove))
        .routes(routes!(worker_protocol::heartbeat))
        .routes(routes!(worker_protocol::inbox))
        .routes(routes!(worker_admin::drain))
        .routes(routes!(worker_protocol::reports))
        .routes(routes!(schedules::create, schedules::list))
        .routes(routes!(schedules::preview))
        .routes(routes!(schedules::get, schedules::update, schedules::delete))
        .routes(routes!(schedules::pause))
        .routes(routes!(schedules::resume))
        .routes(routes!(schedules::trigger))
        .routes(routes!(schedules::backfill))
        .routes(routes!(schedules::runs))
        .routes(routes!(workflows::submit, workflows::list))
        .routes(routes!(workflows::get))
        .routes(routes!(workflows::cancel))
        .routes(routes!(limits::list))
        .routes(routes!(limits::get, limits::set, limits::delete))
        .routes(routes!(tasks::stats))
        .routes(routes!(cluster::get_status))
        .routes(routes!(cluster::init))
        .routes(routes!(cluster::add_member))
        .routes(routes!(cluster::remove_member))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(metrics::scrape))
        .routes(routes!(backup::snapshot))
        .routes(routes!(output::ship))
        .routes(routes!(output::read))
        .routes(routes!(crate::dashboard::views::replicas))
        .routes(routes!(crate::dashboard::views::leases))
        .routes(routes!(openapi::serve))
}

/// The API router of one replica. Build it once per node: it registers the HTTP metrics.
pub fn router(node: Arc<Node>) -> Router {
    let limit = node.config.max_body_bytes;
    let http = node.telemetry.register(metrics::HttpMetrics::register);
    let gate =
        axum::middleware::from_fn_with_state(long_poll::LongPolls::new(node.config.max_long_polls), long_poll::gate);
    let (public, _) = documented().split_for_parts();
    public
        // Replica to replica: not part of the public API or its document.
        .route("/v1/internal/read-index", get(cluster::read_index))
        // Long-polls hold a permit of their own (`max_long_polls`); everything else must be
        // done by its deadline, body included.
        .route_layer(gate)
        .route_layer(axum::middleware::from_fn_with_state(node.config.request_timeout, long_poll::deadline))
        .route_layer(axum::middleware::from_fn_with_state(node.clone(), auth::authorize))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        // After every route and fallback, so that it sees them all (and their matched path).
        .layer(axum::middleware::from_fn_with_state(http, metrics::track))
        .with_state(node)
}

/// The OpenAPI 3.1 document of the public API (served, cached, by [`openapi::serve`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut spec) = documented().split_for_parts();
    openapi::finish(&mut spec);
    spec
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    error::method_not_allowed(&method, uri.path())
}

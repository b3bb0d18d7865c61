//! # The composition root of a replica: the node, and the public API served on it
//!
//! [`crate::node`] is one Raft replica with its state machine, leader loops and Raft listener;
//! [`crate::api`] is the HTTP handlers over a node. This module is the only one that knows
//! both: it binds the API listener, starts the node and serves the API on it until shutdown.
//! So the arrows point one way (`server` → `api` → `node`), and a test can run a node without
//! HTTP.
//!
//! The API listener is served by [`crate::listener`] (TLS when configured, the connection
//! cap, slow-head and idle timeouts, shared with the Raft listener). What is particular to the
//! API is added here:
//! - **request heads**: up to [`MAX_HEADER_BYTES`] of headers, answered `431` with the JSON
//!   error shape beyond that (hyper's own refusal has an empty body, so its hard limits are set
//!   well above ours: only a head over [`HARD_HEADER_BYTES`] gets hyper's bare answer);
//! - **long-polls** are capped by the API router itself (`api::long_poll`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::ApiError;
use crate::config::ServerConfig;
pub use crate::listener::HARD_HEADER_BYTES;
use crate::listener::Listener;
use crate::node::Error;
use crate::node::Node;
use crate::node::RunningNode;
use crate::proto::ErrorCode;

/// Most API connections served at once, by default (`max_connections`).
pub const MAX_CONNECTIONS: usize = crate::listener::DEFAULT_MAX_CONNECTIONS;
/// Largest request head (request line and headers) answered normally; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header fields in one request; more get 431.
pub const MAX_HEADER_COUNT: usize = 100;
/// How long shutdown waits for in-flight API requests.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// A running replica: its node and the API served on it.
pub struct Server {
    /// The node, for embedding tests.
    pub node: Arc<Node>,
    running: RunningNode,
    api: TaskTracker,
}

impl Server {
    /// Binds the API listener, starts the node (storage, Raft, leader loops), and serves the
    /// API on it. Returns once both listeners accept connections.
    pub async fn start(config: ServerConfig, shutdown: CancellationToken) -> Result<Self, Error> {
        let api_addr = config.api_addr;
        let listener = TcpListener::bind(api_addr).await.map_err(|source| Error::Bind { addr: api_addr, source })?;
        let running = RunningNode::start(config, shutdown.clone()).await?;
        let node = running.node.clone();
        let router = crate::api::router(node.clone()).layer(axum::middleware::from_fn(limit_headers));
        let tls = node.tls.as_ref().map(|t| t.api_server()).transpose()?;
        let limits = node.config.limits;
        let api = TaskTracker::new();
        let serving = Listener { name: "api", listener, router, tls, limits };
        api.spawn(crate::listener::serve(serving, shutdown, api.clone()));
        tracing::info!(
            node_id = node.id, api = %api_addr, tls = node.tls.is_some(),
            max_connections = limits.max_connections, idle_timeout = ?limits.idle_timeout,
            "serving the API"
        );
        Ok(Self { node, running, api })
    }

    /// Waits for the shutdown token, drains the API, then stops the node.
    pub async fn run_until_shutdown(self) -> Result<(), Error> {
        self.node.shutdown.cancelled().await;
        self.api.close();
        if tokio::time::timeout(DRAIN_GRACE, self.api.wait()).await.is_err() {
            tracing::warn!("some API requests were still running after {DRAIN_GRACE:?}; closing them");
        }
        self.running.run_until_shutdown().await
    }
}

/// Answers 431 with the JSON error shape when the request head is over our limits.
async fn limit_headers(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let bytes: usize =
        headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>() + req.uri().to_string().len();
    if bytes > MAX_HEADER_BYTES || headers.len() > MAX_HEADER_COUNT {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::HeadersTooLarge,
            format!(
                "the request head has {} header fields and about {bytes} bytes; the limits are \
                 {MAX_HEADER_COUNT} fields and {MAX_HEADER_BYTES} bytes",
                headers.len()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

//! # The composition root of a replica: the node, and the public API served on it
//!
//! [`crate::node`] is one Raft replica with its state machine, leader loops and Raft listener;
//! [`crate::api`] is the HTTP handlers over a node. This module is the only one that knows
//! both: it binds the API listener, starts the node and serves the API on it until shutdown.
//! So the arrows point one way (`server` → `api` → `node`), and a test can run a node without
//! HTTP.
//!
//! The API listener is a plain accept loop over hyper rather than `axum::serve`, for two
//! limits users can hit:
//! - **connections**: at most [`MAX_CONNECTIONS`] at once; the next one waits in the kernel's
//!   backlog until one closes, instead of exhausting file descriptors;
//! - **request heads**: up to [`MAX_HEADER_BYTES`] of headers, answered `431` with the JSON
//!   error shape beyond that (hyper's own refusal has an empty body, so its hard limits are set
//!   well above ours: only a head over [`HARD_HEADER_BYTES`] gets hyper's bare answer).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::ApiError;
use crate::config::ServerConfig;
use crate::node::Error;
use crate::node::Node;
use crate::node::RunningNode;
use crate::proto::ErrorCode;

/// Most API connections served at once.
pub const MAX_CONNECTIONS: usize = 8192;
/// Largest request head (request line and headers) answered normally; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header fields in one request; more get 431.
pub const MAX_HEADER_COUNT: usize = 100;
/// hyper's own limit on a request head: beyond it hyper answers 431 with an empty body.
pub const HARD_HEADER_BYTES: usize = 1024 * 1024;
/// hyper's own limit on header fields.
const HARD_HEADER_COUNT: usize = 1000;
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
        let api = TaskTracker::new();
        api.spawn(serve(listener, router, shutdown, api.clone()));
        tracing::info!(node_id = node.id, api = %api_addr, "serving the API");
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

/// The accept loop: one task per connection, at most [`MAX_CONNECTIONS`].
async fn serve(listener: TcpListener, router: axum::Router, shutdown: CancellationToken, tracker: TaskTracker) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let token = shutdown.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(HARD_HEADER_BYTES)
                .max_headers(HARD_HEADER_COUNT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = token.cancelled() => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
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

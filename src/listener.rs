//! # Serving a router on a TCP listener, with TLS if configured, within limits
//!
//! Both listeners of a replica (the public API and Raft RPCs) go through [`serve`], a plain
//! accept loop over hyper rather than `axum::serve`, because each limit below is a way an
//! ordinary client could otherwise take a replica down:
//! - **connections**: at most [`Limits::max_connections`] at once; the next one waits in the
//!   kernel's backlog until one closes, instead of exhausting file descriptors;
//! - **slow heads**: a client must finish its TLS handshake and then each request head within
//!   [`Limits::header_read_timeout`] of starting it, or the connection is closed (hyper's
//!   `header_read_timeout`, which needs a timer);
//! - **idle connections**: a connection with no request in flight for
//!   [`Limits::idle_timeout`] is closed (a fresh connection that never sends a byte included,
//!   which hyper's head timer does not cover). hyper also runs the head timer while a kept-alive
//!   connection waits for its next request, so in practice an idle connection is closed after
//!   the shorter of the two timeouts.
//!
//! The path of one connection:
//! 1. Accept (after taking a connection permit), `TCP_NODELAY`.
//! 2. In its own task (a slow handshake never blocks the accept loop): the TLS handshake if
//!    configured, under the head timeout.
//! 3. hyper serves HTTP/1.1 on it; every request passes through an [`Activity`] guard that
//!    tells the idle watchdog whether a request is in flight and when the last one ended.
//! 4. The connection ends when the client closes it, a timeout fires, or shutdown asks it to
//!    finish its request in flight and close.
//!
//! What it deliberately does not do: HTTP/2, per-client rate limits, or limits on particular
//! routes (the API's long-poll cap lives with the API, in `api::long_poll`).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

/// Default cap on connections served at once by one listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
/// Default time a client has to finish its TLS handshake, and each request head once started.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection may stay open with no request in flight. hyper's head timer
/// ([`DEFAULT_HEADER_READ_TIMEOUT`]) also runs while a kept-alive connection waits, so an idle
/// connection is in fact closed after the shorter of the two; clients' connection pools keep
/// idle connections for less than that (the typed client: [`crate::client::POOL_IDLE`]), so
/// they normally close first and never reuse a connection the server is closing.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// hyper's own limit on a request head: beyond it hyper answers 431 with an empty body.
pub const HARD_HEADER_BYTES: usize = 1024 * 1024;
/// hyper's own limit on header fields.
pub const HARD_HEADER_COUNT: usize = 1000;

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// One listener to serve: what it is called in logs, its router, TLS, limits.
pub struct Listener {
    /// `"api"` or `"raft"`, for logs.
    pub name: &'static str,
    /// Bound socket.
    pub listener: TcpListener,
    /// The routes.
    pub router: axum::Router,
    /// With TLS: the rustls configuration (client certificates required or not).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// See [`Limits`].
    pub limits: Limits,
}

/// The accept loop: one task per connection (spawned on `tracker`), until `shutdown`.
pub async fn serve(l: Listener, shutdown: CancellationToken, tracker: TaskTracker) {
    let permits = Arc::new(Semaphore::new(l.limits.max_connections));
    let acceptor = l.tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = l.listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(listener = l.name, error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = l.router.clone();
        let token = shutdown.clone();
        let acceptor = acceptor.clone();
        let (name, limits) = (l.name, l.limits);
        tracker.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => connection(stream, router, limits, token).await,
                Some(acceptor) => match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await
                {
                    Ok(Ok(tls)) => connection(tls, router, limits, token).await,
                    // Plaintext on a TLS port, an untrusted client certificate, a scanner:
                    // debug only, since anyone who can connect could flood the log otherwise.
                    Ok(Err(e)) => tracing::debug!(listener = name, %peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::debug!(listener = name, %peer, "TLS handshake timed out"),
                },
            }
        });
    }
}

/// Serves HTTP/1.1 on one accepted (and maybe TLS-wrapped) stream until it ends.
async fn connection<S>(stream: S, router: axum::Router, limits: Limits, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut router = router.clone();
        let guard = tracked.begin();
        async move {
            // axum's Router is always ready, so `call` needs no `poll_ready` first.
            let resp = router.call(req).await;
            drop(guard);
            resp
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HARD_HEADER_BYTES)
        .max_headers(HARD_HEADER_COUNT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = shutdown.cancelled(), if !closing => {
                // Finish the request in flight, then close.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.idle_for(limits.idle_timeout), if !closing => {
                tracing::trace!(idle = ?limits.idle_timeout, "closing an idle connection");
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Whether a connection has a request in flight, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    last_done: Mutex<Instant>,
}

/// Marks one request in flight until dropped.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Self { in_flight: AtomicUsize::new(0), last_done: Mutex::new(Instant::now()) }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let wake = if self.in_flight.load(Ordering::SeqCst) > 0 {
                // Busy (a long-poll, a slow body): look again a full period later.
                Instant::now() + limit
            } else {
                let since = *self.last_done.lock().expect("activity lock");
                if since.elapsed() >= limit {
                    return;
                }
                since + limit
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last_done.lock().expect("activity lock") = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

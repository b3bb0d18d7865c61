//! The cap on long-polls in flight (`max_long_polls`).
//!
//! A long-poll (`GET /v1/tasks/{id}/wait`, `GET /v1/workers/{id}/inbox?wait_ms=N`) holds its
//! connection for up to a minute while doing nothing. Counted against their own semaphore,
//! waiting clients can never hold every connection of the replica: once the cap is reached a
//! new long-poll is answered at once with 503 `overloaded` and `Retry-After`, which the typed
//! client treats like any 503 (it tries another replica), while ordinary requests still find
//! connections (the cap is kept below `max_connections`).

use std::sync::Arc;

use axum::extract::Request;
use axum::extract::State;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use tokio::sync::Semaphore;

use super::ApiError;
use crate::proto::ErrorCode;

/// Permits for long-polls in flight, shared by every long-poll route of a replica.
#[derive(Clone)]
pub struct LongPolls {
    permits: Arc<Semaphore>,
    cap: usize,
}

impl LongPolls {
    /// At most `cap` long-polls at once.
    pub fn new(cap: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(cap)), cap }
    }

    /// Long-polls in flight right now.
    pub fn in_flight(&self) -> usize {
        self.cap - self.permits.available_permits()
    }
}

/// The value of `key` in a query string, if present, decoded as the handlers decode it (so
/// `wait%5Fms=…` counts as `wait_ms`). A query that does not decode reads as `Some("")`:
/// treated as a wait, never as a way around the cap.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query?) {
        Ok(pairs) => pairs,
        Err(_) => return Some(String::new()),
    };
    pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Whether this request will wait: a task wait unless `timeout_ms=0`; an inbox read only
/// with `wait_ms` above zero.
pub fn waits(path: &str, query: Option<&str>) -> bool {
    let positive = |key| query_value(query, key).is_some_and(|v| v.parse::<u64>().map_or(true, |ms| ms > 0));

    let (tasks, workers) = (path.starts_with("/v1/tasks/"), path.starts_with("/v1/workers/"));
    if workers && path.ends_with("/inbox") || tasks && path.ends_with("/output") {
        positive("wait_ms")
    } else if tasks && path.ends_with("/wait") {
        query_value(query, "timeout_ms").is_none() || positive("timeout_ms")
    } else {
        false
    }
}

/// Longest any other request may take, body upload included, beyond `request_timeout`: a
/// client that sends its head and then trickles its body is cut off here (the header timeout
/// covers only the head). Handlers answer within `request_timeout` themselves (forwarding
/// adds a second), so this only ever ends slow clients.
pub const REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Middleware of every route: a request that is not a long-poll must be done within
/// `request_timeout` + [`REQUEST_GRACE`]. Past that, 408 (a read) or 504 `outcome_unknown`
/// (a write: it may have been proposed).
pub async fn deadline(State(limit): State<std::time::Duration>, req: Request, next: Next) -> Response {
    // Membership changes wait for a learner to catch up (up to `ADD_MEMBER_TIMEOUT`) under
    // their own deadline.
    if waits(req.uri().path(), req.uri().query()) || req.uri().path().starts_with("/v1/cluster/") {
        return next.run(req).await;
    }
    let read = req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD;
    let path = req.uri().path().to_string();
    match tokio::time::timeout(limit + REQUEST_GRACE, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(%path, "cut off a request that outlived its deadline (a slow client?)");
            let message = format!("the request was not done within {:?}", limit + REQUEST_GRACE);
            if read {
                ApiError::new(axum::http::StatusCode::REQUEST_TIMEOUT, ErrorCode::Timeout, message).into_response()
            } else {
                ApiError::outcome_unknown(format!(
                    "{message}; it may still take effect: retry with the same request id"
                ))
                .into_response()
            }
        }
    }
}

/// Middleware of the long-poll routes: holds a permit for the whole wait, or refuses.
pub async fn gate(State(polls): State<LongPolls>, req: Request, next: Next) -> Response {
    if !waits(req.uri().path(), req.uri().query()) {
        return next.run(req).await;
    }
    match polls.permits.clone().try_acquire_owned() {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(_) => {
            tracing::warn!(cap = polls.cap, path = req.uri().path(), "refused a long-poll: at max_long_polls");
            ApiError::unavailable(
                ErrorCode::Overloaded,
                format!(
                    "this replica already serves {} long-polls (max_long_polls); retry shortly or at another replica",
                    polls.cap
                ),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_count_as_long_polls() {
        assert!(waits("/v1/tasks/7/wait", None));
        assert!(waits("/v1/tasks/7/wait", Some("timeout_ms=500")));
        assert!(!waits("/v1/tasks/7/wait", Some("timeout_ms=0")));
        assert!(!waits("/v1/workers/w1/inbox", Some("after=3")));
        assert!(!waits("/v1/workers/w1/inbox", Some("after=3&wait_ms=0")));
        assert!(waits("/v1/workers/w1/inbox", Some("after=3&wait_ms=1000")));
        assert!(waits("/v1/tasks/7/output", Some("wait_ms=1000")));
        // The gate sits on every route: anything else is not a long-poll.
        assert!(!waits("/v1/tasks", None));
        assert!(!waits("/v1/workers/w1/heartbeat", None));
        // Encoded keys are what the handlers see, so they count.
        assert!(waits("/v1/workers/w1/inbox", Some("wait%5Fms=1000")));
        assert!(waits("/v1/tasks/7/output", Some("wait_ms=%31")));
    }
}
